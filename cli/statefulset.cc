#include "cli/statefulset.h"

#include <algorithm>
#include <map>

#include "cli/tabwriter.h"

namespace skiff::cli {

namespace {

int64_t int_at(const json& o, const char* key, int64_t def = 0) {
  const json& v = child(o, key);
  return v.is_number_integer() ? v.get<int64_t>() : def;
}

std::string dq(const std::string& s) { return "\"" + s + "\""; }

std::string strategy_type(const json& obj) {
  std::string t = str_of(child(child(obj, "spec"), "updateStrategy"), "type");
  return t.empty() ? "RollingUpdate" : t;
}

// The template a revision holds (applyStatefulSetHistory / applyDaemonSetHistory: the data's
// spec.template replaces the owner's).
json revision_template(const json& revision) {
  json tmpl = child(child(child(revision, "data"), "spec"), "template");
  if (!tmpl.is_object()) return json::object();
  tmpl.erase("$patch");
  return tmpl;
}

// Go's fmt of a []string: "[a b]".
std::string go_list(const json& a) {
  std::string out = "[";
  if (a.is_array()) {
    for (size_t i = 0; i < a.size(); ++i)
      out += (i ? " " : "") + (a[i].is_string() ? a[i].get<std::string>() : a[i].dump());
  }
  return out + "]";
}

// printLabelsMultilineWithIndent(w, "  ", title, "\t", m): continuation lines keep the indent.
void write_indented_labels(DescribeWriter& w, const std::string& title, const json& m) {
  w.write(0, "  " + title + ":\t");
  if (!m.is_object() || m.empty()) {
    w.write(0, "<none>\n");
    return;
  }
  bool first = true;
  for (const auto& [k, v] : m.items()) {
    if (!first) w.write(0, "  \t");
    first = false;
    w.write(0, k + "=" + (v.is_string() ? v.get<std::string>() : v.dump()) + "\n");
  }
}

}  // namespace

Result<RolloutStatusView> statefulset_status_view(const json& sts) {
  const json& spec = child(sts, "spec");
  const json& status = child(sts, "status");
  if (strategy_type(sts) != "RollingUpdate")
    return Status::invalid("rollout status is only available for RollingUpdate strategy type");
  int64_t observed = int_at(status, "observedGeneration");
  if (observed == 0 || int_at(child(sts, "metadata"), "generation") > observed)
    return RolloutStatusView{"Waiting for statefulset spec update to be observed...\n", false};
  const json& replicas = child(spec, "replicas");
  int64_t ready = int_at(status, "readyReplicas");
  if (replicas.is_number_integer() && ready < replicas.get<int64_t>())
    return RolloutStatusView{
        "Waiting for " + std::to_string(replicas.get<int64_t>() - ready) + " pods to be ready...\n",
        false};
  const json& ru = child(child(spec, "updateStrategy"), "rollingUpdate");
  int64_t updated = int_at(status, "updatedReplicas");
  if (ru.is_object()) {
    const json& partition = child(ru, "partition");
    if (replicas.is_number_integer() && partition.is_number_integer()) {
      int64_t want = replicas.get<int64_t>() - partition.get<int64_t>();
      if (updated < want)
        return RolloutStatusView{
            "Waiting for partitioned roll out to finish: " + std::to_string(updated) + " out of " +
                std::to_string(want) + " new pods have been updated...\n",
            false};
    }
    return RolloutStatusView{"partitioned roll out complete: " + std::to_string(updated) +
                                 " new pods have been updated...\n",
                             true};
  }
  std::string update_rev = str_of(status, "updateRevision");
  std::string current_rev = str_of(status, "currentRevision");
  if (update_rev != current_rev)
    return RolloutStatusView{"waiting for statefulset rolling update to complete " +
                                 std::to_string(updated) + " pods at revision " + update_rev +
                                 "...\n",
                             false};
  return RolloutStatusView{"statefulset rolling update complete " +
                               std::to_string(int_at(status, "currentReplicas")) +
                               " pods at revision " + current_rev + "...\n",
                           true};
}

Result<RolloutStatusView> daemonset_status_view(const json& ds) {
  if (strategy_type(ds) != "RollingUpdate")
    return Status::invalid("rollout status is only available for RollingUpdate strategy type");
  const json& status = child(ds, "status");
  const std::string name = str_of(child(ds, "metadata"), "name");
  if (int_at(child(ds, "metadata"), "generation") <= int_at(status, "observedGeneration")) {
    int64_t desired = int_at(status, "desiredNumberScheduled");
    int64_t updated = int_at(status, "updatedNumberScheduled");
    int64_t available = int_at(status, "numberAvailable");
    const std::string waiting = "Waiting for daemon set " + dq(name) + " rollout to finish: ";
    if (updated < desired)
      return RolloutStatusView{waiting + std::to_string(updated) + " out of " +
                                   std::to_string(desired) + " new pods have been updated...\n",
                               false};
    if (available < desired)
      return RolloutStatusView{waiting + std::to_string(available) + " of " +
                                   std::to_string(desired) + " updated pods are available...\n",
                               false};
    return RolloutStatusView{"daemon set " + dq(name) + " successfully rolled out\n", true};
  }
  return RolloutStatusView{"Waiting for daemon set spec update to be observed...\n", false};
}

std::vector<json> controlled_revisions(const json& owner, const json& items) {
  std::vector<json> out;
  const std::string uid = str_of(child(owner, "metadata"), "uid");
  if (!items.is_array() || uid.empty()) return out;
  for (const auto& r : items) {
    const json& refs = child(child(r, "metadata"), "ownerReferences");
    if (!refs.is_array()) continue;
    for (const auto& o : refs) {
      if (o.value("controller", false) && str_of(o, "uid") == uid) {
        out.push_back(r);
        break;
      }
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const json& a, const json& b) {
    return int_at(a, "revision") < int_at(b, "revision");
  });
  return out;
}

Result<std::string> revision_history(const std::vector<json>& revisions, int64_t revision) {
  std::map<int64_t, const json*> by_number;
  for (const auto& r : revisions) by_number[int_at(r, "revision")] = &r;
  if (by_number.empty()) return std::string("No rollout history found.");
  if (revision > 0) {
    auto it = by_number.find(revision);
    if (it == by_number.end()) return Status::not_found("unable to find the specified revision");
    DescribeWriter w(false);
    describe_pod_template(w, revision_template(*it->second));
    return w.flush();
  }
  TabWriter tw(0, 2);
  tw.write("REVISION\tCHANGE-CAUSE\n");
  for (const auto& [n, r] : by_number) {
    std::string cause = str_of(child(child(*r, "metadata"), "annotations"), kChangeCauseAnnotation);
    tw.write(std::to_string(n) + "\t" + (cause.empty() ? "<none>" : cause) + "\n");
  }
  return tw.flush();
}

json template_revision_data(const json& owner) {
  json tmpl = child(child(owner, "spec"), "template");
  if (!tmpl.is_object()) tmpl = json::object();
  tmpl["$patch"] = "replace";
  return {{"spec", {{"template", std::move(tmpl)}}}};
}

Result<RollbackPlan> plan_revision_rollback(const json& owner, const std::vector<json>& revisions,
                                            int64_t to_revision) {
  auto not_found = [&] {
    return Status::not_found("unable to find specified revision " + std::to_string(to_revision) +
                             " in history");
  };
  if (to_revision < 0) return not_found();
  if (to_revision == 0 && revisions.size() <= 1)
    return Status::not_found("no last revision to roll back to");
  const json* target = nullptr;
  if (to_revision == 0) {
    std::vector<const json*> sorted;
    for (const auto& r : revisions) sorted.push_back(&r);
    std::stable_sort(sorted.begin(), sorted.end(), [](const json* a, const json* b) {
      return int_at(*a, "revision") < int_at(*b, "revision");
    });
    target = sorted[sorted.size() - 2];
  } else {
    for (const auto& r : revisions)
      if (int_at(r, "revision") == to_revision) target = &r;
  }
  if (!target) return not_found();
  RollbackPlan plan;
  const json& data = child(*target, "data");
  if (data == template_revision_data(owner)) {
    plan.skipped = true;
    plan.message = "skipped rollback (current template already matches revision " +
                   std::to_string(to_revision) + ")";
    return plan;
  }
  plan.message = "rolled back";
  plan.patch = data;
  return plan;
}

void describe_statefulset(DescribeWriter& w, const json& sts, const PodCounts& pods,
                          const std::string& pods_error) {
  const json& md = child(sts, "metadata");
  const json& spec = child(sts, "spec");
  w.kv(0, "Name", str_of(md, "name"));
  w.kv(0, "Namespace", str_of(md, "namespace"));
  w.kv(0, "CreationTimestamp", format_describe_time(str_of(md, "creationTimestamp")));
  w.kv(0, "Selector", selector_query(sts));
  write_labels(w, "Labels", child(md, "labels"));
  write_annotations(w, "Annotations", child(md, "annotations"));
  w.kv(0, "Replicas",
       std::to_string(int_at(spec, "replicas")) + " desired | " +
           std::to_string(int_at(child(sts, "status"), "replicas")) + " total");
  const json& strategy = child(spec, "updateStrategy");
  w.kv(0, "Update Strategy", str_of(strategy, "type"));
  const json& ru = child(strategy, "rollingUpdate");
  if (ru.is_object() && child(ru, "partition").is_number_integer()) {
    w.kv(1, "Partition", std::to_string(int_at(ru, "partition")));
    if (!child(ru, "maxUnavailable").is_null())
      w.kv(1, "MaxUnavailable", str_of(ru, "maxUnavailable"));
  }
  if (!pods_error.empty()) {
    w.kv(0, "Pods Status", "error in fetching pods: " + pods_error);
  } else {
    w.kv(0, "Pods Status",
         std::to_string(pods.running) + " Running / " + std::to_string(pods.waiting) +
             " Waiting / " + std::to_string(pods.succeeded) + " Succeeded / " +
             std::to_string(pods.failed) + " Failed");
  }
  describe_pod_template(w, child(spec, "template"));
  const json& claims = child(spec, "volumeClaimTemplates");
  if (!claims.is_array() || claims.empty()) {
    w.kv(0, "Volume Claims", "<none>");
    return;
  }
  w.line(0, "Volume Claims:");
  for (const auto& pvc : claims) {
    const json& pmd = child(pvc, "metadata");
    const json& pspec = child(pvc, "spec");
    w.kv(1, "Name", str_of(pmd, "name"));
    // storageutil.GetPersistentVolumeClaimClass: the beta annotation wins over the field.
    std::string sc = str_of(child(pmd, "annotations"), "volume.beta.kubernetes.io/storage-class");
    if (sc.empty()) sc = str_of(pspec, "storageClassName");
    w.kv(1, "StorageClass", sc);
    write_indented_labels(w, "Labels", child(pmd, "labels"));
    write_indented_labels(w, "Annotations", child(pmd, "annotations"));
    std::string capacity = str_of(child(child(pspec, "resources"), "requests"), "storage");
    w.kv(1, "Capacity", capacity.empty() ? "<default>" : capacity);
    w.kv(1, "Access Modes", go_list(child(pspec, "accessModes")));
  }
}

void describe_statefulset_of(Context& ctx, DescribeWriter& w, const json& sts) {
  PodCounts counts;
  std::string error;
  if (const auto* t = proto::Registry::builtin().by_kind("v1", "Pod")) {
    client::ListOptions opts;
    opts.label_selector = selector_query(sts);
    auto list = ctx.api->list(*t, str_of(child(sts, "metadata"), "namespace"), opts);
    if (list)
      counts = count_pods(child(*list, "items"), str_of(child(sts, "metadata"), "uid"));
    else
      error = list.status().message();
  } else {
    error = "no Pod type in this skiffctl";
  }
  describe_statefulset(w, sts, counts, error);
}

}  // namespace skiff::cli
