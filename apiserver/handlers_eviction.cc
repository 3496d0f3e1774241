// pods/eviction: a policy/v1 Eviction deletes a pod unless that would violate its
// PodDisruptionBudget (Kubernetes' pkg/registry/core/pod/storage/eviction.go). `kubectl drain`
// uses it whenever discovery lists pods/eviction, and retries on 429.
#include <string>

#include "apiserver/api_impl.h"
#include "apiserver/protobuf.h"
#include "apiserver/store/store.h"
#include "proto/registry.h"
#include "proto/selector.h"

namespace skiff::apiserver {
namespace {

// Kubernetes' MaxDisruptedPodSize: evictions the disruption controller has not confirmed yet.
constexpr size_t kMaxDisruptedPods = 2000;

const char* const kViolationMessage =
    "Cannot evict pod as it would violate the pod's disruption budget.";

// errors.NewTooManyRequests(message, 0) with one DisruptionBudget cause.
ApiError too_many_requests(const std::string& cause) {
  return ApiError{
      429,
      "TooManyRequests",
      kViolationMessage,
      {{"causes", json::array({{{"reason", "DisruptionBudget"}, {"message", cause}}})}}};
}

ApiError still_processing(const std::string& pdb) {
  return too_many_requests("The disruption budget " + pdb +
                           " is still being processed by the server.");
}

std::string phase_of(const json& pod) {
  const json* st = pod.contains("status") && pod["status"].is_object() ? &pod["status"] : nullptr;
  if (st == nullptr || !st->value("phase", json()).is_string()) return "";
  return (*st)["phase"].get<std::string>();
}

bool terminal(const json& pod) {
  std::string p = phase_of(pod);
  return p == "Succeeded" || p == "Failed";
}

// canIgnorePDB: a terminal, pending (unscheduled or not started; Go's zero phase is Pending
// too) or already terminating pod is deleted without consulting budgets.
bool can_ignore_pdb(const json& pod) {
  std::string p = phase_of(pod);
  return p == "Succeeded" || p == "Failed" || p == "Pending" || p.empty() ||
         !meta_string(pod, "deletionTimestamp").empty();
}

bool pod_ready(const json& pod) {
  if (!pod.contains("status") || !pod["status"].is_object()) return false;
  const json& conds = pod["status"].value("conditions", json::array());
  if (!conds.is_array()) return false;
  for (const auto& c : conds)
    if (c.is_object() && c.value("type", json()) == "Ready" && c.value("status", json()) == "True")
      return true;
  return false;
}

int64_t int_field(const json& obj, const char* a, const char* b) {
  if (!obj.contains(a) || !obj[a].is_object()) return 0;
  const json& v = obj[a].value(b, json());
  return v.is_number_integer() ? v.get<int64_t>() : 0;
}

// The Eviction's deleteOptions as delete_object takes them; `user_resource_version` when the
// client gave a resourceVersion precondition.
ApiResult<DeleteParams> evict_options(const json& eviction, bool* user_resource_version) {
  const json& d = eviction.value("deleteOptions", json());
  *user_resource_version = false;
  if (d.is_null()) return DeleteParams{};
  if (!d.is_object())
    return errors::bad_request("json: cannot unmarshal " + std::string(d.type_name()) +
                               " into Go struct field Eviction.deleteOptions of type "
                               "v1.DeleteOptions");
  auto o = parse_delete_options(d, "DeleteOptions.deleteOptions.");
  if (o.ok() && o.value().preconditions.is_object()) {
    const json& rv = o.value().preconditions.value("resourceVersion", json());
    *user_resource_version = rv.is_string() && !rv.get<std::string>().empty();
  }
  return o;
}

Response success() {
  return json_response(201, {{"kind", "Status"},
                             {"apiVersion", "v1"},
                             {"metadata", json::object()},
                             {"status", "Success"},
                             {"code", 201}});
}

// apimachinery's SetStatusCondition for the DisruptionAllowed condition (UpdateDisruptionAllowed
// Condition): the transition time moves only when the status flips.
void set_disruption_condition(json& pdb) {
  json& st = pdb["status"];
  const bool allowed = int_field(pdb, "status", "disruptionsAllowed") > 0;
  json cond = {{"type", "DisruptionAllowed"},
               {"status", allowed ? "True" : "False"},
               {"reason", allowed ? "SufficientPods" : "InsufficientPods"},
               {"message", ""},
               {"observedGeneration", int_field(pdb, "status", "observedGeneration")},
               {"lastTransitionTime", now_rfc3339()}};
  if (!st.contains("conditions") || !st["conditions"].is_array()) st["conditions"] = json::array();
  for (auto& c : st["conditions"]) {
    if (!c.is_object() || c.value("type", json()) != "DisruptionAllowed") continue;
    if (c.value("status", json()) == cond["status"] && c.contains("lastTransitionTime"))
      cond["lastTransitionTime"] = c["lastTransitionTime"];
    c = cond;
    return;
  }
  st["conditions"].push_back(cond);
}

// podutil.UpdatePodCondition with Kubernetes' DisruptionTarget condition (PodDisruptionConditions,
// on by default since 1.26): the transition time moves only when the status changes. False when
// the pod already had exactly this condition.
bool set_disruption_target(json& pod) {
  json& st = pod["status"];
  if (!st.is_object()) st = json::object();
  if (!st.contains("conditions") || !st["conditions"].is_array()) st["conditions"] = json::array();
  json cond = {{"type", "DisruptionTarget"},
               {"status", "True"},
               {"reason", "EvictionByEvictionAPI"},
               {"message", "Eviction API: evicting"},
               {"lastTransitionTime", now_rfc3339()}};
  for (auto& c : st["conditions"]) {
    if (!c.is_object() || c.value("type", json()) != "DisruptionTarget") continue;
    if (c.value("status", json()) == "True" && c.contains("lastTransitionTime"))
      cond["lastTransitionTime"] = c["lastTransitionTime"];
    if (c == cond) return false;
    c = cond;
    return true;
  }
  st["conditions"].push_back(cond);
  return true;
}

}  // namespace

Response ApiImpl::evict(const Request& req, const Target& t) {
  if (req.method != "POST") return error_response(errors::method_not_allowed(req.method));
  auto wo = write_options(req);
  if (!wo.ok()) return error_response(wo.error());
  json eviction;
  if (media_type(req.header("content-type")) == kProtobufMediaType) {
    auto decoded = decode_protobuf_eviction(req.body);
    if (!decoded.ok()) return error_response(decoded.error());
    eviction = std::move(decoded.value());
  } else {
    if (auto e = check_json_body(req)) return error_response(*e);
    eviction = json::parse(req.body, nullptr, false);
    if (eviction.is_discarded() || !eviction.is_object())
      return error_response(
          errors::bad_request("the Eviction in the request body is not a JSON object"));
    const json& kind = eviction.value("kind", json());
    const json& av = eviction.value("apiVersion", json());
    if ((kind.is_string() && kind != "Eviction") ||
        (av.is_string() && av != "policy/v1" && av != "policy/v1beta1"))
      return error_response(
          errors::bad_request("the body of pods/eviction must be a policy/v1 Eviction, got " +
                              (av.is_string() ? av.get<std::string>() : std::string("?")) + " " +
                              (kind.is_string() ? kind.get<std::string>() : std::string("?"))));
  }
  if (meta_string(eviction, "name") != t.name)
    return error_response(
        errors::bad_request("name in URL does not match name in Eviction object"));
  std::string body_ns = meta_string(eviction, "namespace");
  if (!body_ns.empty() && body_ns != t.ns)
    return error_response(errors::bad_request(
        "the namespace of the provided object does not match the namespace sent on the "
        "request"));
  bool user_resource_version = false;
  auto eo = evict_options(eviction, &user_resource_version);
  if (!eo.ok()) return error_response(eo.error());
  const DeleteParams& opts = eo.value();
  if (opts.dry_run) wo.value().dry_run = true;
  const bool dry_run = wo.value().dry_run;

  const proto::ResourceType& pods = *t.rt;
  // addConditionAndDeletePod: unless this is a dry run, the pod first gets the DisruptionTarget
  // condition (on its newest version, after the preconditions are checked against it), then is
  // deleted through the ordinary delete; a resourceVersion precondition moves to the version
  // the condition was written at.
  auto remove_pod = [&](json preconditions) -> ApiResult<json> {
    if (!dry_run) {
      const std::string key = object_key(pods, t.ns, t.name);
      for (int attempt = 0;; ++attempt) {
        if (attempt == kMaxWriteAttempts) return errors::conflict(pods, t.name);
        auto kv = timed("get", [&] { return store_->get(key); });
        if (!kv.is_ok()) return errors::from_store(kv.status(), pods, t.name);
        auto latest = read_object(*kv);
        if (!latest.ok()) return latest.error();
        const json& old = latest.value();
        const std::string rv = std::to_string(kv->mod_revision);
        if (preconditions.is_object()) {
          const json& uid = preconditions.value("uid", json());
          if (uid.is_string() && !uid.get<std::string>().empty() && uid != meta_string(old, "uid"))
            return errors::conflict(pods, t.name,
                                    "the UID in the precondition (" + uid.get<std::string>() +
                                        ") does not match the UID in record (" +
                                        meta_string(old, "uid") +
                                        "). The object might have been deleted and then recreated");
          const json& prv = preconditions.value("resourceVersion", json());
          if (prv.is_string() && !prv.get<std::string>().empty() && prv != rv)
            return errors::conflict(pods, t.name,
                                    "the ResourceVersion in the precondition (" +
                                        prv.get<std::string>() +
                                        ") does not match the ResourceVersion in record (" + rv +
                                        "). The object might have been modified");
        }
        json marked = old;
        if (!set_disruption_target(marked)) break;
        auto up = update_object(pods, "status", marked, old, kv->mod_revision, WriteOptions{});
        if (!up.ok()) {
          if (up.error().code == 409 && up.error().reason == "Conflict") continue;
          return up.error();
        }
        if (preconditions.is_object() && preconditions.contains("resourceVersion"))
          preconditions["resourceVersion"] = meta_string(up.value(), "resourceVersion");
        break;
      }
    }
    return delete_object(pods, t.ns, t.name, preconditions, opts.grace, wo.value(),
                         opts.propagation);
  };
  // The pod's resourceVersion as a precondition, unless the client gave one: the pod must not
  // have become ready (and so guarded by its budget) since it was read.
  auto with_rv = [&](const json& pod) {
    if (user_resource_version) return opts.preconditions;
    json p = opts.preconditions.is_object() ? opts.preconditions : json::object();
    p["resourceVersion"] = meta_string(pod, "resourceVersion");
    return p;
  };

  // Pods the budget cannot protect are deleted at once; a conflict is retried on a fresh read
  // unless the client asked for a specific resourceVersion.
  json pod;
  for (int attempt = 0;; ++attempt) {
    if (attempt == kMaxWriteAttempts) return error_response(errors::conflict(pods, t.name));
    auto kv = timed("get", [&] { return store_->get(object_key(pods, t.ns, t.name)); });
    if (!kv.is_ok()) return error_response(errors::from_store(kv.status(), pods, t.name));
    auto obj = read_object(*kv);
    if (!obj.ok()) return error_response(obj.error());
    pod = std::move(obj.value());
    if (!can_ignore_pdb(pod)) break;
    const bool enforce_rv = !terminal(pod) && meta_string(pod, "deletionTimestamp").empty();
    auto res = remove_pod(enforce_rv ? with_rv(pod) : opts.preconditions);
    if (res.ok()) return success();
    if (res.error().code == 409 && !user_resource_version) continue;
    return error_response(res.error());
  }

  // The budgets of the pod's namespace that select it (an empty or invalid selector selects
  // nothing here).
  const proto::ResourceType* pdb_rt = reg_.find("policy", "v1", "poddisruptionbudgets");
  json pdb;
  int64_t pdb_rev = 0;
  if (pdb_rt != nullptr) {
    auto page = timed("list", [&] { return store_->list(list_prefix(*pdb_rt, t.ns), 0, 0, ""); });
    if (!page.is_ok()) return error_response(errors::from_store(page.status(), *pdb_rt, ""));
    int matching = 0;
    const json& labels = pod["metadata"].value("labels", json::object());
    for (const auto& kv : page->items) {
      auto obj = read_object(kv);
      if (!obj.ok()) continue;
      const json& spec = obj.value().value("spec", json::object());
      if (!spec.is_object() || !spec.contains("selector")) continue;
      auto sel = proto::LabelSelector::from_json(spec["selector"]);
      if (!sel.is_ok() || sel->empty() || !sel->matches_json(labels)) continue;
      if (++matching > 1)
        return json_response(500,
                             {{"kind", "Status"},
                              {"apiVersion", "v1"},
                              {"metadata", json::object()},
                              {"status", "Failure"},
                              {"message",
                               "This pod has more than one PodDisruptionBudget, which the eviction "
                               "subresource does not support."},
                              {"code", 500}});
      pdb = std::move(obj.value());
      pdb_rev = kv.mod_revision;
    }
  }

  bool unhealthy_delete = false;  // deleted without using a disruption (needs the pod's rv)
  if (pdb.is_object()) {
    const std::string pdb_name = meta_string(pdb, "name");
    if (!pod_ready(pod)) {
      const json& spec = pdb["spec"];
      const bool always_allow = spec.value("unhealthyPodEvictionPolicy", json()) == "AlwaysAllow";
      const int64_t current = int_field(pdb, "status", "currentHealthy");
      const int64_t desired = int_field(pdb, "status", "desiredHealthy");
      // An unready pod does not count towards the budget: it may go when the policy says so,
      // or when the application is not disrupted at the moment.
      if (always_allow || (current >= desired && desired > 0)) unhealthy_delete = true;
    }
    // checkAndDecrement, re-reading the budget after a conflict.
    for (int attempt = 0; !unhealthy_delete; ++attempt) {
      if (attempt == kMaxWriteAttempts)
        return error_response(
            ApiError{504,
                     "Timeout",
                     "couldn't update PodDisruptionBudget \"" + pdb_name + "\" due to conflicts",
                     {{"retryAfterSeconds", 10}}});
      if (attempt > 0) {
        auto kv = timed("get", [&] { return store_->get(object_key(*pdb_rt, t.ns, pdb_name)); });
        if (!kv.is_ok()) return error_response(errors::from_store(kv.status(), *pdb_rt, pdb_name));
        auto obj = read_object(*kv);
        if (!obj.ok()) return error_response(obj.error());
        pdb = std::move(obj.value());
        pdb_rev = kv->mod_revision;
      }
      const int64_t generation = pdb["metadata"].value("generation", json(0)).is_number_integer()
                                     ? pdb["metadata"]["generation"].get<int64_t>()
                                     : 0;
      if (int_field(pdb, "status", "observedGeneration") < generation)
        return error_response(still_processing(pdb_name));
      const int64_t allowed = int_field(pdb, "status", "disruptionsAllowed");
      if (allowed < 0)
        return error_response(
            errors::forbidden("poddisruptionbudgets.policy \"" + pdb_name +
                              "\" is forbidden: pdb disruptions allowed is negative"));
      const json& st = pdb.value("status", json::object());
      const json disrupted = st.is_object() ? st.value("disruptedPods", json()) : json();
      if (disrupted.is_object() && disrupted.size() > kMaxDisruptedPods)
        return error_response(errors::forbidden(
            "poddisruptionbudgets.policy \"" + pdb_name +
            "\" is forbidden: DisruptedPods map too big - too many evictions not confirmed by "
            "PDB controller"));
      if (allowed == 0)
        return error_response(too_many_requests(
            "The disruption budget " + pdb_name + " needs " +
            std::to_string(int_field(pdb, "status", "desiredHealthy")) + " healthy pods and has " +
            std::to_string(int_field(pdb, "status", "currentHealthy")) + " currently"));
      if (dry_run) break;  // a dry run changes nothing
      json updated = pdb;
      updated["status"]["disruptionsAllowed"] = allowed - 1;
      if (allowed - 1 == 0) set_disruption_condition(updated);
      // Tells the disruption controller the pod is about to go, so it is not counted as
      // healthy meanwhile; the controller drops the entry after 2 minutes if it stays.
      updated["status"]["disruptedPods"][t.name] = now_rfc3339();
      auto res = update_object(*pdb_rt, "status", updated, pdb, pdb_rev, WriteOptions{});
      if (res.ok()) break;
      if (res.error().code != 409) return error_response(res.error());
    }
  }

  auto res = remove_pod(unhealthy_delete ? with_rv(pod) : opts.preconditions);
  if (!res.ok()) {
    if (res.error().code == 409 && unhealthy_delete && !user_resource_version)
      // The pod changed (it may have become ready) since it was judged: the client retries.
      return error_response(still_processing(meta_string(pdb, "name")));
    return error_response(res.error());
  }
  return success();
}

}  // namespace skiff::apiserver
