// skiffctl scale and rollout (status, history, undo, restart, pause, resume): kubectl 1.32's
// requests and output; the decisions are the pure functions of cli/workloads.h.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>

#include "cli/commands.h"
#include "cli/printers.h"
#include "cli/statefulset.h"
#include "cli/workloads.h"

namespace skiff::cli {
namespace {

struct Workload {
  const proto::ResourceType* type;
  std::string name;
};

// "deployments.apps": kubectl's resource string in per-object errors.
std::string resource_string(const proto::ResourceType& t) {
  return t.group.empty() ? t.plural : t.plural + "." + t.group;
}

// Resolves TYPE/NAME arguments to types the command supports; a type without names means every
// object of that type in the namespace when `type_only` allows it. Prints errors itself.
std::optional<std::vector<Workload>> resolve_workloads(Context& ctx,
                                                       const std::vector<std::string>& args,
                                                       bool type_only) {
  if (args.empty()) {
    *ctx.err << "error: required resource not specified\n";
    return std::nullopt;
  }
  auto parsed = parse_resource_args(args);
  if (!parsed) {
    *ctx.err << "error: " << parsed.status().message() << "\n";
    return std::nullopt;
  }
  std::vector<Workload> out;
  for (const auto& a : *parsed) {
    const auto* t = ctx.resolve(a.type);
    if (!t) return std::nullopt;
    if (!a.name.empty()) {
      out.push_back({t, a.name});
      continue;
    }
    if (!type_only) {
      *ctx.err << "error: resource(s) were provided, but no name was specified\n";
      return std::nullopt;
    }
    auto list = ctx.api->list(*t, ctx.namespace_);
    if (!list) {
      ctx.print_error(list.status());
      return std::nullopt;
    }
    for (const auto& it : (*list)["items"]) {
      out.push_back({t, str_of(child(it, "metadata"), "name")});
    }
  }
  if (out.empty()) {
    *ctx.err << "No resources found in " << ctx.namespace_ << " namespace.\n";
  }
  return out;
}

// One request; prints the error (server or transport) and returns nullopt on failure.
std::optional<json> call(Context& ctx, const std::string& method, const std::string& path,
                         const client::Query& query = {}, const std::string& body = "",
                         const std::string& content_type = "") {
  auto r = ctx.rest->request(method, path, query, body, content_type);
  if (!r) {
    ctx.print_error(r.status());
    return std::nullopt;
  }
  if (!r->ok()) {
    ctx.print_error(*r);
    return std::nullopt;
  }
  json j = json::parse(r->body, nullptr, false);
  if (!j.is_object()) {
    *ctx.err << "error: the server's answer to " << method << " " << path
             << " is not a JSON object\n";
    return std::nullopt;
  }
  return j;
}

std::optional<json> get_object(Context& ctx, const Workload& w) {
  return call(ctx, "GET", client::resource_path(*w.type, ctx.namespace_, w.name));
}

// The deployment's controlled ReplicaSets, oldest first (kubectl lists by the selector, then
// keeps those whose controller is the deployment).
std::optional<std::vector<json>> replicasets_of(Context& ctx, const json& deployment) {
  const auto* rs_type = proto::Registry::builtin().by_kind("apps/v1", "ReplicaSet");
  if (!rs_type) {
    *ctx.err << "error: this skiffctl has no apps/v1 ReplicaSet type\n";
    return std::nullopt;
  }
  client::Query q;
  std::string sel = selector_query(deployment);
  if (!sel.empty()) q.emplace_back("labelSelector", sel);
  auto list = call(ctx, "GET", client::resource_path(*rs_type, ctx.namespace_), q);
  if (!list) return std::nullopt;
  return controlled_replicasets(deployment, child(*list, "items"));
}

bool is_deployment(const Workload& w) { return w.type->kind == "Deployment"; }
// StatefulSets and DaemonSets keep their history in ControllerRevisions.
bool has_revisions(const Workload& w) {
  return w.type->group == "apps" && (w.type->kind == "StatefulSet" || w.type->kind == "DaemonSet");
}

// The ControllerRevisions the object controls, by revision (kubectl lists them by the
// object's selector, then keeps those it controls).
std::optional<std::vector<json>> revisions_of(Context& ctx, const json& owner) {
  const auto* cr_type = proto::Registry::builtin().by_kind("apps/v1", "ControllerRevision");
  if (!cr_type) {
    *ctx.err << "error: this skiffctl has no apps/v1 ControllerRevision type\n";
    return std::nullopt;
  }
  client::Query q;
  std::string sel = selector_query(owner);
  if (!sel.empty()) q.emplace_back("labelSelector", sel);
  auto list = call(ctx, "GET", client::resource_path(*cr_type, ctx.namespace_), q);
  if (!list) return std::nullopt;
  return controlled_revisions(owner, child(*list, "items"));
}

// The status line of a Deployment, StatefulSet or DaemonSet (kubectl's StatusViewerFor).
Result<RolloutStatusView> status_view(const Workload& w, const json& obj, int64_t revision) {
  if (w.type->kind == "StatefulSet") return statefulset_status_view(obj);
  if (w.type->kind == "DaemonSet") return daemonset_status_view(obj);
  return deployment_status_view(obj, revision);
}

// A timer that requests stop on a stop_source when the deadline passes (0: never).
class Deadline {
 public:
  Deadline(std::chrono::nanoseconds timeout, std::stop_source& src) {
    if (timeout.count() <= 0) return;
    end_ = std::chrono::steady_clock::now() + timeout;
    thread_ = std::jthread([this, &src](std::stop_token st) {
      std::unique_lock lock(mu_);
      if (!cv_.wait_until(lock, st, *end_, [] { return false; })) {
        if (!st.stop_requested()) {
          expired_ = true;
          src.request_stop();
        }
      }
    });
  }
  bool expired() const { return expired_; }
  // Seconds left, at least 1; `fallback` without a deadline.
  int seconds_left(int fallback) const {
    if (!end_) return fallback;
    auto left =
        std::chrono::duration_cast<std::chrono::seconds>(*end_ - std::chrono::steady_clock::now());
    return static_cast<int>(std::clamp<int64_t>(left.count() + 1, 1, fallback));
  }

 private:
  std::optional<std::chrono::steady_clock::time_point> end_;
  std::mutex mu_;
  std::condition_variable_any cv_;
  std::atomic<bool> expired_{false};
  std::jthread thread_;
};

int cmd_status(Context& ctx, const RolloutOptions& o) {
  auto targets = resolve_workloads(ctx, o.args, true);
  if (!targets) return 1;
  if (targets->size() != 1) {
    if (!targets->empty()) {
      *ctx.err << "error: rollout status is only supported on individual resources and resource "
                  "collections - "
               << targets->size() << " resources were found\n";
    }
    return 1;
  }
  const Workload& w = (*targets)[0];
  if (!is_deployment(w) && !has_revisions(w)) {
    *ctx.err << "error: no status viewer has been implemented for " << w.type->kind << "."
             << w.type->group << "\n";
    return 1;
  }
  auto timeout = parse_go_duration(o.timeout);
  if (!timeout) {
    *ctx.err << "error: invalid argument \"" << o.timeout
             << "\" for \"--timeout\" flag: " << timeout.status().message() << "\n";
    return 1;
  }
  if (!get_object(ctx, w)) return 1;

  std::stop_source stop;
  Deadline deadline(*timeout, stop);
  const std::string path = client::resource_path(*w.type, ctx.namespace_);
  const std::string field_selector = "metadata.name=" + w.name;
  std::optional<int> result;  // the exit code once decided
  // Prints the status of one observed object; decides the result when done or failed.
  auto observe = [&](const json& obj) {
    auto view = status_view(w, obj, o.revision);
    if (!view) {
      *ctx.err << "error: " << view.status().message() << "\n";
      result = 1;
      return;
    }
    *ctx.out << view->message;
    ctx.out->flush();
    if (view->done || !o.watch) result = 0;
  };
  // As client-go's UntilWithSync: list, then watch from the list's resourceVersion; when the
  // watch ends (server timeout, expired history) list again.
  for (int round = 0; round < 100000 && !result && !stop.stop_requested(); ++round) {
    auto list = call(ctx, "GET", path, {{"fieldSelector", field_selector}});
    if (!list) return 1;
    for (const auto& item : child(*list, "items").is_array() ? (*list)["items"] : json::array()) {
      if (!result) observe(item);
    }
    if (result) break;
    std::string rv = str_of(child(*list, "metadata"), "resourceVersion");
    client::Query q = {{"fieldSelector", field_selector},
                       {"resourceVersion", rv},
                       {"allowWatchBookmarks", "true"},
                       {"timeoutSeconds", std::to_string(deadline.seconds_left(300))},
                       {"watch", "true"}};
    Status st = ctx.rest->watch(
        path, q,
        [&](const json& ev) {
          std::string type = ev.value("type", "");
          const json& obj = child(ev, "object");
          if (type == "ADDED" || type == "MODIFIED") {
            observe(obj);
            return !result.has_value();
          }
          if (type == "DELETED") {
            *ctx.err << "error: object has been deleted\n";
            result = 1;
            return false;
          }
          if (type == "ERROR") {  // typically 410 Expired: start over from a fresh list
            return false;
          }
          return true;  // BOOKMARK
        },
        stop.get_token());
    if (result || deadline.expired()) break;
    if (!st.is_ok()) {
      ctx.print_error(st);
      return 1;
    }
  }
  if (result) return *result;
  *ctx.err << "error: timed out waiting for the condition\n";
  return 1;
}

int cmd_history(Context& ctx, const RolloutOptions& o) {
  auto targets = resolve_workloads(ctx, o.args, true);
  if (!targets) return 1;
  int rc = 0;
  for (const auto& w : *targets) {
    if (!is_deployment(w) && !has_revisions(w)) {
      *ctx.err << "error: no history viewer has been implemented for \"" << w.type->kind << "."
               << w.type->group << "\"\n";
      return 1;
    }
    auto d = get_object(ctx, w);
    if (!d) return 1;
    Result<std::string> text = std::string();
    if (has_revisions(w)) {
      auto revs = revisions_of(ctx, *d);
      if (!revs) return 1;
      text = revision_history(*revs, o.revision);
    } else {
      auto rses = replicasets_of(ctx, *d);
      if (!rses) return 1;
      text = rollout_history(*rses, o.revision);
    }
    if (!text) {
      *ctx.err << "error: " << text.status().message() << "\n";
      return 1;
    }
    std::string with_revision =
        o.revision > 0 ? "with revision #" + std::to_string(o.revision) : "";
    *ctx.out << kind_prefix(*w.type) << "/" << w.name << " " << with_revision << "\n"
             << *text << "\n";
  }
  return rc;
}

// kubectl's StatefulSetRollbacker / DaemonSetRollbacker: the revision's data is the strategic
// merge patch that puts its template back.
int undo_from_revisions(Context& ctx, const Workload& w, const RolloutOptions& o) {
  auto obj = get_object(ctx, w);
  if (!obj) return 1;
  auto revs = revisions_of(ctx, *obj);
  if (!revs) return 1;
  auto plan = plan_revision_rollback(*obj, *revs, o.to_revision);
  if (!plan) {
    *ctx.err << "error: " << plan.status().message() << "\n";
    return 1;
  }
  if (!plan->skipped) {
    auto r = ctx.rest->request("PATCH", client::resource_path(*w.type, ctx.namespace_, w.name),
                               {{"fieldManager", "kubectl-rollout"}}, plan->patch.dump(),
                               "application/strategic-merge-patch+json");
    if (!r) {
      ctx.print_error(r.status());
      return 1;
    }
    if (!r->ok()) {
      *ctx.err << "error: failed restoring revision " << o.to_revision << ": "
               << client::api_error(*r).message << "\n";
      return 1;
    }
  }
  *ctx.out << kind_prefix(*w.type) << "/" << w.name << " " << plan->message << "\n";
  return 0;
}

int cmd_undo(Context& ctx, const RolloutOptions& o) {
  auto targets = resolve_workloads(ctx, o.args, true);
  if (!targets) return 1;
  for (const auto& w : *targets) {
    if (has_revisions(w)) {
      if (undo_from_revisions(ctx, w, o) != 0) return 1;
      continue;
    }
    if (!is_deployment(w)) {
      *ctx.err << "error: no rollbacker has been implemented for \"" << w.type->kind << "."
               << w.type->group << "\"\n";
      return 1;
    }
    // The patch tests the resourceVersion it was computed from: when the Deployment changed
    // meanwhile the server refuses it and the plan is made again from fresh objects.
    const int kAttempts = 5;
    for (int attempt = 1;; ++attempt) {
      auto d = get_object(ctx, w);
      if (!d) return 1;
      auto rses = replicasets_of(ctx, *d);
      if (!rses) return 1;
      auto plan = plan_rollback(*d, *rses, o.to_revision);
      if (!plan) {
        *ctx.err << "error: " << plan.status().message() << "\n";
        return 1;
      }
      if (!plan->skipped) {
        auto r = ctx.rest->request("PATCH", client::resource_path(*w.type, ctx.namespace_, w.name),
                                   {{"fieldManager", "kubectl-rollout"}}, plan->patch.dump(),
                                   "application/json-patch+json");
        if (!r) {
          ctx.print_error(r.status());
          return 1;
        }
        if (!r->ok()) {
          client::ApiError e = client::api_error(*r);
          bool raced = e.code == 409 || e.code == 422;
          if (raced && attempt < kAttempts) continue;
          *ctx.err << "error: failed restoring revision " << o.to_revision << ": " << e.message
                   << "\n";
          return 1;
        }
      }
      *ctx.out << kind_prefix(*w.type) << "/" << w.name << " " << plan->message << "\n";
      break;
    }
  }
  return 0;
}

// restart, pause, resume: a strategic merge patch computed from the live object, as kubectl's
// ObjectRestarter/ObjectPauser/ObjectResumer.
int cmd_patch(Context& ctx, const RolloutOptions& o) {
  auto targets = resolve_workloads(ctx, o.args, true);
  if (!targets) return 1;
  int rc = 0;
  for (const auto& w : *targets) {
    auto obj = get_object(ctx, w);
    if (!obj) {
      rc = 1;
      continue;
    }
    auto fail = [&](const std::string& why) {
      *ctx.err << "error: " << resource_string(*w.type) << " \"" << w.name << "\" " << why << "\n";
      rc = 1;
    };
    json patch;
    std::string done;
    bool paused = child(*obj, "spec").value("paused", false);
    if (o.verb == "restart") {
      if (!is_deployment(w) && !has_revisions(w)) {
        fail("restarting is not supported");
        continue;
      }
      if (paused) {
        fail("can't restart paused deployment (run rollout resume first)");
        continue;
      }
      patch = {{"spec",
                {{"template",
                  {{"metadata",
                    {{"annotations",
                      {{kRestartedAtAnnotation,
                        rfc3339_local(std::chrono::system_clock::now())}}}}}}}}}};
      done = "restarted";
    } else if (o.verb == "pause") {
      if (!is_deployment(w)) {
        fail("pausing is not supported");
        continue;
      }
      if (paused) {
        fail("is already paused");
        continue;
      }
      patch = {{"spec", {{"paused", true}}}};
      done = "paused";
    } else {
      if (!is_deployment(w)) {
        fail("resuming is not supported");
        continue;
      }
      if (!paused) {
        fail("is not paused");
        continue;
      }
      patch = {{"spec", {{"paused", nullptr}}}};  // false is omitted, so the patch deletes it
      done = "resumed";
    }
    if (!call(ctx, "PATCH", client::resource_path(*w.type, ctx.namespace_, w.name),
              {{"fieldManager", "kubectl-rollout"}}, patch.dump(),
              "application/strategic-merge-patch+json")) {
      rc = 1;
      continue;
    }
    *ctx.out << kind_prefix(*w.type) << "/" << w.name << " " << done << "\n";
  }
  return rc;
}

}  // namespace

int run_rollout(Context& ctx, const RolloutOptions& o) {
  if (o.verb == "status") return cmd_status(ctx, o);
  if (o.verb == "history") return cmd_history(ctx, o);
  if (o.verb == "undo") return cmd_undo(ctx, o);
  return cmd_patch(ctx, o);
}

int run_scale(Context& ctx, const ScaleOptions& o) {
  if (o.replicas < 0) {
    *ctx.err << "error: The --replicas=COUNT flag is required, and COUNT must be greater than or "
                "equal to 0\n";
    return 1;
  }
  auto targets = resolve_workloads(ctx, o.args, false);
  if (!targets) return 1;
  int rc = 0;
  // kubectl first fetches every object; when none could be had it reports them all as
  // "no objects passed to scale ..."; otherwise each missing one is an error of its own.
  std::vector<Workload> found;
  std::vector<client::Response> missing;
  for (const auto& w : *targets) {
    if (w.type->kind != "Deployment" && w.type->kind != "ReplicaSet" &&
        w.type->kind != "StatefulSet") {
      *ctx.err << "error: cannot scale " << w.type->kind << ": it has no scale subresource\n";
      return 1;
    }
    auto r = ctx.rest->request("GET", client::resource_path(*w.type, ctx.namespace_, w.name));
    if (!r) {
      ctx.print_error(r.status());
      return 1;
    }
    if (r->ok()) {
      found.push_back(w);
    } else {
      missing.push_back(*r);
    }
  }
  if (found.empty() && !missing.empty()) {
    std::string all;
    for (const auto& r : missing) all += (all.empty() ? "" : ", ") + client::api_error(r).message;
    *ctx.err << "error: no objects passed to scale " << (missing.size() > 1 ? "[" + all + "]" : all)
             << "\n";
    return 1;
  }
  for (const auto& r : missing) {
    ctx.print_error(r);
    rc = 1;
  }
  for (const auto& w : found) {
    const std::string path = client::resource_path(*w.type, ctx.namespace_, w.name, "scale");
    bool ok = false;
    if (o.current_replicas < 0 && o.resource_version.empty()) {
      // kubectl: without preconditions, a merge patch of the Scale.
      json patch = {{"spec", {{"replicas", o.replicas}}}};
      ok = call(ctx, "PATCH", path, {{"fieldManager", "kubectl-scale"}}, patch.dump(),
                "application/merge-patch+json")
               .has_value();
    } else {
      // With preconditions: GET the Scale, check, PUT it back (its resourceVersion makes the
      // PUT conditional); retried on conflicts as kubectl's ScaleWithRetries.
      for (int attempt = 1; attempt <= 10; ++attempt) {
        auto scale = call(ctx, "GET", path);
        if (!scale) break;
        int64_t cur = child(child(*scale, "spec"), "replicas").is_number_integer()
                          ? (*scale)["spec"]["replicas"].get<int64_t>()
                          : 0;
        std::string rv = str_of(child(*scale, "metadata"), "resourceVersion");
        if (o.current_replicas >= 0 && cur != o.current_replicas) {
          *ctx.err << "error: Expected replicas to be " << o.current_replicas << ", was " << cur
                   << "\n";
          break;
        }
        if (!o.resource_version.empty() && rv != o.resource_version) {
          *ctx.err << "error: Expected resource version to be " << o.resource_version << ", was "
                   << rv << "\n";
          break;
        }
        (*scale)["spec"]["replicas"] = o.replicas;
        auto r = ctx.rest->request("PUT", path, {{"fieldManager", "kubectl-scale"}}, scale->dump(),
                                   "application/json");
        if (!r) {
          ctx.print_error(r.status());
          break;
        }
        if (r->ok()) {
          ok = true;
          break;
        }
        if (r->status != 409 || attempt == 10) {
          ctx.print_error(*r);
          break;
        }
      }
    }
    if (!ok) {
      rc = 1;
      continue;
    }
    *ctx.out << kind_prefix(*w.type) << "/" << w.name << " scaled\n";
  }
  return rc;
}

}  // namespace skiff::cli
