#include "cli/workloads.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>

#include "proto/selector.h"

namespace skiff::cli {

namespace {

// Deployment annotations a rollback never copies from a ReplicaSet (kubectl's
// annotationsToSkip); the deployment's own values are kept instead.
const char* const kAnnotationsToSkip[] = {
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
};

bool skip_annotation(const std::string& k) {
  return std::any_of(std::begin(kAnnotationsToSkip), std::end(kAnnotationsToSkip),
                     [&](const char* s) { return k == s; });
}

int64_t int_at(const json& o, const char* key, int64_t def = 0) {
  const json& v = child(o, key);
  return v.is_number_integer() ? v.get<int64_t>() : def;
}

std::string name_of(const json& obj) { return str_of(child(obj, "metadata"), "name"); }

// A template without the pod-template-hash label (and without an emptied labels map, as Go's
// omitempty drops it).
json without_hash(json tmpl) {
  if (!tmpl.is_object()) return tmpl;
  auto md = tmpl.find("metadata");
  if (md == tmpl.end() || !md->is_object()) return tmpl;
  auto labels = md->find("labels");
  if (labels == md->end() || !labels->is_object()) return tmpl;
  labels->erase(kPodTemplateHashLabel);
  if (labels->empty()) md->erase("labels");
  return tmpl;
}

std::string dq(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

Result<std::vector<ResourceArg>> parse_resource_args(const std::vector<std::string>& args) {
  std::vector<ResourceArg> out;
  if (args.empty()) return out;
  bool slash_form = std::any_of(args.begin(), args.end(), [](const std::string& a) {
    return a.find('/') != std::string::npos;
  });
  if (slash_form) {
    if (args[0].find('/') == std::string::npos) {
      return Status::invalid(
          "there is no need to specify a resource type as a separate argument when passing "
          "arguments in resource/name form (e.g. 'skiffctl get resource/<resource_name>' "
          "instead of 'skiffctl get resource resource/<resource_name>'");
    }
    for (const auto& a : args) {
      size_t slash = a.find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == a.size() ||
          a.find('/', slash + 1) != std::string::npos) {
        return Status::invalid(
            "arguments in resource/name form must have a single resource and "
            "name");
      }
      out.push_back({a.substr(0, slash), a.substr(slash + 1)});
    }
    return out;
  }
  std::vector<std::string> types;
  size_t pos = 0;
  while (true) {
    size_t comma = args[0].find(',', pos);
    std::string t = args[0].substr(pos, comma == std::string::npos ? comma : comma - pos);
    if (!t.empty()) types.push_back(t);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  if (types.empty()) return Status::invalid("resource type \"" + args[0] + "\" is empty");
  for (const auto& t : types) {
    if (args.size() == 1) out.push_back({t, ""});
    for (size_t i = 1; i < args.size(); ++i) out.push_back({t, args[i]});
  }
  return out;
}

Result<std::chrono::nanoseconds> parse_go_duration(const std::string& orig) {
  auto invalid = [&] { return Status::invalid("time: invalid duration " + dq(orig)); };
  std::string s = orig;
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.erase(0, 1);
  }
  if (s == "0") return std::chrono::nanoseconds(0);
  if (s.empty()) return invalid();
  long double total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    bool int_digits = i > start;
    long double value = int_digits ? std::stold(s.substr(start, i - start)) : 0;
    bool frac_digits = false;
    if (i < s.size() && s[i] == '.') {
      ++i;
      long double scale = 0.1L;
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
        value += (s[i] - '0') * scale;
        scale /= 10;
        ++i;
        frac_digits = true;
      }
    }
    if (!int_digits && !frac_digits) return invalid();
    size_t ustart = i;
    while (i < s.size() && s[i] != '.' && !std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    std::string unit = s.substr(ustart, i - ustart);
    static const std::map<std::string, long double> kUnits = {
        {"ns", 1.0L}, {"us", 1e3L}, {"\xC2\xB5s", 1e3L}, {"\xCE\xBCs", 1e3L},
        {"ms", 1e6L}, {"s", 1e9L},  {"m", 60e9L},        {"h", 3600e9L}};
    if (unit.empty()) return Status::invalid("time: missing unit in duration " + dq(orig));
    auto it = kUnits.find(unit);
    if (it == kUnits.end()) {
      return Status::invalid("time: unknown unit " + dq(unit) + " in duration " + dq(orig));
    }
    total += value * it->second;
    if (total > 9.2e18L) return invalid();  // Go: overflow is an invalid duration
  }
  auto ns = static_cast<int64_t>(std::llround(total));
  return std::chrono::nanoseconds(neg ? -ns : ns);
}

Result<int64_t> revision_of(const json& obj) {
  const json& ann = child(child(obj, "metadata"), "annotations");
  const json& v = child(ann, kRevisionAnnotation);
  if (!v.is_string()) return int64_t{0};
  const std::string& s = v.get_ref<const std::string&>();
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i == s.size() || s.size() > 19 ||
      !std::all_of(s.begin() + static_cast<long>(i), s.end(),
                   [](unsigned char c) { return std::isdigit(c); })) {
    return Status::invalid("strconv.ParseInt: parsing " + dq(s) + ": invalid syntax");
  }
  return static_cast<int64_t>(std::stoll(s));
}

Result<RolloutStatusView> deployment_status_view(const json& d, int64_t revision) {
  const std::string name = name_of(d);
  if (revision > 0) {
    auto rev = revision_of(d);
    if (!rev) {
      return Status::invalid("cannot get the revision of deployment " + dq(name) + ": " +
                             rev.status().message());
    }
    if (*rev != revision) {
      return Status::invalid("desired revision (" + std::to_string(revision) +
                             ") is different from the running revision (" + std::to_string(*rev) +
                             ")");
    }
  }
  const json& status = child(d, "status");
  if (int_at(child(d, "metadata"), "generation") > int_at(status, "observedGeneration")) {
    return RolloutStatusView{"Waiting for deployment spec update to be observed...\n", false};
  }
  const json& conds = child(status, "conditions");
  if (conds.is_array()) {
    for (const auto& c : conds) {
      if (str_of(c, "type") == "Progressing") {
        if (str_of(c, "reason") == "ProgressDeadlineExceeded") {
          return Status::invalid("deployment " + dq(name) + " exceeded its progress deadline");
        }
        break;
      }
    }
  }
  const std::string waiting = "Waiting for deployment " + dq(name) + " rollout to finish: ";
  int64_t updated = int_at(status, "updatedReplicas");
  int64_t replicas = int_at(status, "replicas");
  int64_t available = int_at(status, "availableReplicas");
  const json& want = child(child(d, "spec"), "replicas");
  if (want.is_number_integer() && updated < want.get<int64_t>()) {
    return RolloutStatusView{waiting + std::to_string(updated) + " out of " +
                                 std::to_string(want.get<int64_t>()) +
                                 " new replicas have been updated...\n",
                             false};
  }
  if (replicas > updated) {
    return RolloutStatusView{
        waiting + std::to_string(replicas - updated) + " old replicas are pending termination...\n",
        false};
  }
  if (available < updated) {
    return RolloutStatusView{waiting + std::to_string(available) + " of " +
                                 std::to_string(updated) + " updated replicas are available...\n",
                             false};
  }
  return RolloutStatusView{"deployment " + dq(name) + " successfully rolled out\n", true};
}

std::vector<json> controlled_replicasets(const json& deployment, const json& items) {
  std::vector<json> out;
  const std::string uid = str_of(child(deployment, "metadata"), "uid");
  if (!items.is_array() || uid.empty()) return out;
  for (const auto& rs : items) {
    const json& owners = child(child(rs, "metadata"), "ownerReferences");
    if (!owners.is_array()) continue;
    for (const auto& o : owners) {
      if (o.value("controller", false) && str_of(o, "uid") == uid) {
        out.push_back(rs);
        break;
      }
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const json& a, const json& b) {
    std::string ta = str_of(child(a, "metadata"), "creationTimestamp");
    std::string tb = str_of(child(b, "metadata"), "creationTimestamp");
    if (ta != tb) return ta < tb;
    return name_of(a) < name_of(b);
  });
  return out;
}

bool equal_ignore_hash(const json& a, const json& b) { return without_hash(a) == without_hash(b); }

int find_new_replicaset(const json& deployment, const std::vector<json>& rses) {
  const json& tmpl = child(child(deployment, "spec"), "template");
  for (size_t i = 0; i < rses.size(); ++i) {
    if (equal_ignore_hash(child(child(rses[i], "spec"), "template"), tmpl)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

Result<std::string> rollout_history(const std::vector<json>& rses, int64_t revision) {
  std::map<int64_t, json> history;  // revision -> template (with the change cause)
  for (const auto& rs : rses) {
    auto rev = revision_of(rs);
    if (!rev) continue;  // kubectl logs a warning and skips it
    json tmpl = child(child(rs, "spec"), "template");
    if (!tmpl.is_object()) tmpl = json::object();
    std::string cause = str_of(child(child(rs, "metadata"), "annotations"), kChangeCauseAnnotation);
    if (!cause.empty()) tmpl["metadata"]["annotations"][kChangeCauseAnnotation] = cause;
    history[*rev] = std::move(tmpl);
  }
  if (history.empty()) return std::string("No rollout history found.");
  if (revision > 0) {
    auto it = history.find(revision);
    if (it == history.end()) return Status::not_found("unable to find the specified revision");
    DescribeWriter w(false);
    describe_pod_template(w, it->second);
    return w.flush();
  }
  TabWriter tw(0, 2);
  tw.write("REVISION\tCHANGE-CAUSE\n");
  for (const auto& [rev, tmpl] : history) {
    std::string cause =
        str_of(child(child(tmpl, "metadata"), "annotations"), kChangeCauseAnnotation);
    tw.write(std::to_string(rev) + "\t" + (cause.empty() ? "<none>" : cause) + "\n");
  }
  return tw.flush();
}

Result<RollbackPlan> plan_rollback(const json& deployment, const std::vector<json>& rses,
                                   int64_t to_revision) {
  auto not_found = [&] {
    return Status::not_found("unable to find specified revision " + std::to_string(to_revision) +
                             " in history");
  };
  if (to_revision < 0) return not_found();
  const json* target = nullptr;
  const json* latest = nullptr;
  int64_t latest_rev = -1, previous_rev = -1;
  const json* previous = nullptr;
  for (const auto& rs : rses) {
    auto rev = revision_of(rs);
    if (!rev) continue;
    if (to_revision == 0) {
      if (latest_rev < *rev) {
        previous_rev = latest_rev;
        previous = latest;
        latest_rev = *rev;
        latest = &rs;
      } else if (previous_rev < *rev) {
        previous_rev = *rev;
        previous = &rs;
      }
    } else if (*rev == to_revision) {
      target = &rs;
      break;
    }
  }
  if (to_revision > 0 && !target) return not_found();
  if (to_revision == 0) {
    if (!previous) {
      return Status::not_found("no rollout history found for deployment " +
                               dq(name_of(deployment)));
    }
    target = previous;
  }
  const json& spec = child(deployment, "spec");
  if (spec.value("paused", false)) {
    return Status::invalid(
        "you cannot rollback a paused deployment; resume it first with 'skiffctl rollout "
        "resume' and try again");
  }
  const json& tmpl = child(child(*target, "spec"), "template");
  RollbackPlan plan;
  if (equal_ignore_hash(tmpl, child(spec, "template"))) {
    plan.skipped = true;
    // kubectl prints the requested revision, which is 0 for "the previous one".
    plan.message = "skipped rollback (current template already matches revision " +
                   std::to_string(to_revision) + ")";
    return plan;
  }
  const json& md = child(deployment, "metadata");
  json annotations = json::object();
  const json& own = child(md, "annotations");
  if (own.is_object()) {
    for (const auto& [k, v] : own.items()) {
      if (skip_annotation(k)) annotations[k] = v;
    }
  }
  const json& theirs = child(child(*target, "metadata"), "annotations");
  if (theirs.is_object()) {
    for (const auto& [k, v] : theirs.items()) {
      if (!skip_annotation(k)) annotations[k] = v;
    }
  }
  plan.message = "rolled back";
  plan.patch = json::array();
  plan.patch.push_back({{"op", "test"},
                        {"path", "/metadata/resourceVersion"},
                        {"value", str_of(md, "resourceVersion")}});
  plan.patch.push_back(
      {{"op", "replace"}, {"path", "/spec/template"}, {"value", without_hash(tmpl)}});
  // "replace" needs the member to exist; "add" sets it either way.
  plan.patch.push_back({{"op", own.is_object() ? "replace" : "add"},
                        {"path", "/metadata/annotations"},
                        {"value", annotations}});
  return plan;
}

std::string rfc3339_local(std::chrono::system_clock::time_point tp) {
  std::time_t tt = std::chrono::system_clock::to_time_t(tp);
  std::tm local{};
  localtime_r(&tt, &local);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &local);
  std::string out = buf;
  long off = local.tm_gmtoff;
  if (off == 0) return out + "Z";
  char sign = off < 0 ? '-' : '+';
  off = std::labs(off);
  int minutes = static_cast<int>(off / 60 % (24 * 60));  // zone offsets are under a day
  char zone[16];
  std::snprintf(zone, sizeof(zone), "%c%02d:%02d", sign, minutes / 60, minutes % 60);
  return out + zone;
}

std::string selector_query(const json& workload) {
  const json& sel = child(child(workload, "spec"), "selector");
  if (!sel.is_object() || sel.empty()) return "";
  auto parsed = proto::LabelSelector::from_json(sel);
  return parsed ? parsed->to_string() : "";
}

namespace {

void write_conditions(DescribeWriter& w, const json& status) {
  const json& conds = child(status, "conditions");
  if (!conds.is_array() || conds.empty()) return;
  w.write(0, "Conditions:\n  Type\tStatus\tReason\n");
  w.write(1, "----\t------\t------\n");
  for (const auto& c : conds) {
    w.write(1, str_of(c, "type") + " \t" + str_of(c, "status") + "\t" + str_of(c, "reason") + "\n");
  }
}

std::string replicasets_text(const std::vector<const json*>& rses) {
  std::string out;
  for (const json* rs : rses) {
    if (!out.empty()) out += ", ";
    out += name_of(*rs) + " (" + std::to_string(int_at(child(*rs, "status"), "replicas")) + "/" +
           std::to_string(int_at(child(*rs, "spec"), "replicas")) + " replicas created)";
  }
  return out.empty() ? "<none>" : out;
}

}  // namespace

void describe_deployment(DescribeWriter& w, const json& d, const std::vector<json>& rses) {
  const json& md = child(d, "metadata");
  const json& spec = child(d, "spec");
  const json& status = child(d, "status");
  w.kv(0, "Name", str_of(md, "name"));
  w.kv(0, "Namespace", str_of(md, "namespace"));
  w.kv(0, "CreationTimestamp", format_describe_time(str_of(md, "creationTimestamp")));
  write_labels(w, "Labels", child(md, "labels"));
  write_annotations(w, "Annotations", child(md, "annotations"));
  w.kv(0, "Selector", selector_query(d));
  w.kv(0, "Replicas",
       std::to_string(int_at(spec, "replicas")) + " desired | " +
           std::to_string(int_at(status, "updatedReplicas")) + " updated | " +
           std::to_string(int_at(status, "replicas")) + " total | " +
           std::to_string(int_at(status, "availableReplicas")) + " available | " +
           std::to_string(int_at(status, "unavailableReplicas")) + " unavailable");
  const json& strategy = child(spec, "strategy");
  w.kv(0, "StrategyType", str_of(strategy, "type"));
  w.kv(0, "MinReadySeconds", std::to_string(int_at(spec, "minReadySeconds")));
  const json& ru = child(strategy, "rollingUpdate");
  if (ru.is_object()) {
    w.kv(0, "RollingUpdateStrategy",
         str_of(ru, "maxUnavailable", "<nil>") + " max unavailable, " +
             str_of(ru, "maxSurge", "<nil>") + " max surge");
  }
  describe_pod_template(w, child(spec, "template"));
  write_conditions(w, status);
  // The new one is the oldest matching the template; kubectl 1.32 lists every other one as
  // old, scaled to zero or not.
  int new_index = find_new_replicaset(d, rses);
  std::vector<const json*> old_rses, new_rses;
  for (size_t i = 0; i < rses.size(); ++i) {
    (static_cast<int>(i) == new_index ? new_rses : old_rses).push_back(&rses[i]);
  }
  w.kv(0, "OldReplicaSets", replicasets_text(old_rses));
  w.kv(0, "NewReplicaSet", replicasets_text(new_rses));
}

PodCounts count_pods(const json& pod_items, const std::string& owner_uid) {
  PodCounts c;
  if (!pod_items.is_array()) return c;
  for (const auto& pod : pod_items) {
    bool owned = false;
    const json& owners = child(child(pod, "metadata"), "ownerReferences");
    if (owners.is_array()) {
      for (const auto& o : owners) {
        if (o.value("controller", false) && str_of(o, "uid") == owner_uid) owned = true;
      }
    }
    if (!owned) continue;
    std::string phase = str_of(child(pod, "status"), "phase");
    if (phase == "Running") ++c.running;
    if (phase == "Pending") ++c.waiting;
    if (phase == "Succeeded") ++c.succeeded;
    if (phase == "Failed") ++c.failed;
  }
  return c;
}

void describe_replicaset(DescribeWriter& w, const json& rs, const PodCounts& pods,
                         const std::string& pods_error) {
  const json& md = child(rs, "metadata");
  const json& spec = child(rs, "spec");
  w.kv(0, "Name", str_of(md, "name"));
  w.kv(0, "Namespace", str_of(md, "namespace"));
  std::string sel = selector_query(rs);
  w.kv(0, "Selector", sel.empty() ? "<none>" : sel);
  write_labels(w, "Labels", child(md, "labels"));
  write_annotations(w, "Annotations", child(md, "annotations"));
  const json& owners = child(md, "ownerReferences");
  if (owners.is_array()) {
    for (const auto& o : owners) {
      if (o.value("controller", false)) {
        w.kv(0, "Controlled By", str_of(o, "kind") + "/" + str_of(o, "name"));
        break;
      }
    }
  }
  w.kv(0, "Replicas",
       std::to_string(int_at(child(rs, "status"), "replicas")) + " current / " +
           std::to_string(int_at(spec, "replicas")) + " desired");
  if (!pods_error.empty()) {
    w.kv(0, "Pods Status", "error in fetching pods: " + pods_error);
  } else {
    w.kv(0, "Pods Status",
         std::to_string(pods.running) + " Running / " + std::to_string(pods.waiting) +
             " Waiting / " + std::to_string(pods.succeeded) + " Succeeded / " +
             std::to_string(pods.failed) + " Failed");
  }
  describe_pod_template(w, child(spec, "template"));
  write_conditions(w, child(rs, "status"));
}

}  // namespace skiff::cli
