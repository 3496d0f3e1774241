#include "cli/daemonset.h"

#include <nlohmann/json.hpp>

#include "cli/context.h"
#include "proto/client/api_client.h"
#include "proto/registry.h"

namespace skiff::cli {

namespace {

std::string int_text(const json& status, const char* key) {
  const json& v = child(status, key);
  return std::to_string(v.is_number_integer() ? v.get<int64_t>() : 0);
}

// labels.FormatLabels: "k=v,k2=v2" sorted, "<none>" when empty.
std::string format_labels(const json& m) {
  if (!m.is_object() || m.empty()) return "<none>";
  std::string out;
  for (auto it = m.begin(); it != m.end(); ++it) {
    if (!out.empty()) out += ",";
    out += it.key() + "=" + (it->is_string() ? it->get<std::string>() : it->dump());
  }
  return out;
}

}  // namespace

void describe_daemonset(DescribeWriter& w, const json& ds, const PodCounts& pods,
                        const std::string& pods_error) {
  const json& md = child(ds, "metadata");
  const json& spec = child(ds, "spec");
  const json& status = child(ds, "status");
  w.kv(0, "Name", str_of(md, "name"));
  w.kv(0, "Selector", selector_query(ds));
  w.kv(0, "Node-Selector",
       format_labels(child(child(child(spec, "template"), "spec"), "nodeSelector")));
  write_labels(w, "Labels", child(md, "labels"));
  write_annotations(w, "Annotations", child(md, "annotations"));
  // kubectl writes these five without a tab: they are not aligned with the other keys.
  w.line(0, "Desired Number of Nodes Scheduled: " + int_text(status, "desiredNumberScheduled"));
  w.line(0, "Current Number of Nodes Scheduled: " + int_text(status, "currentNumberScheduled"));
  w.line(0, "Number of Nodes Scheduled with Up-to-date Pods: " +
                int_text(status, "updatedNumberScheduled"));
  w.line(0,
         "Number of Nodes Scheduled with Available Pods: " + int_text(status, "numberAvailable"));
  w.line(0, "Number of Nodes Misscheduled: " + int_text(status, "numberMisscheduled"));
  if (!pods_error.empty()) {
    w.kv(0, "Pods Status", "error in fetching pods: " + pods_error);
  } else {
    w.kv(0, "Pods Status",
         std::to_string(pods.running) + " Running / " + std::to_string(pods.waiting) +
             " Waiting / " + std::to_string(pods.succeeded) + " Succeeded / " +
             std::to_string(pods.failed) + " Failed");
  }
  describe_pod_template(w, child(spec, "template"));
}

void describe_daemonset_of(Context& ctx, DescribeWriter& w, const json& ds) {
  const json& md = child(ds, "metadata");
  std::string error;
  json items = json::array();
  const auto* t = proto::Registry::builtin().by_kind("v1", "Pod");
  std::string sel = selector_query(ds);
  if (!t) {
    error = "no Pod type in this skiffctl";
  } else if (!sel.empty()) {  // no selector selects nothing (labels.Nothing)
    client::ListOptions opts;
    opts.label_selector = sel;
    auto list = ctx.api->list(*t, str_of(md, "namespace"), opts);
    if (!list)
      error = list.status().message();
    else if (child(*list, "items").is_array())
      items = (*list)["items"];
  }
  describe_daemonset(w, ds, count_pods(items, str_of(md, "uid")), error);
}

}  // namespace skiff::cli
