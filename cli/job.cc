#include "cli/job.h"

#include <nlohmann/json.hpp>

#include "cli/workloads.h"   // selector_query
#include "proto/registry.h"  // human_duration

namespace skiff::cli {

namespace {

// `key` of `o` when it is an integer.
std::optional<int64_t> int_of(const json& o, const char* key) {
  const json& v = child(o, key);
  if (!v.is_number_integer()) return std::nullopt;
  return v.get<int64_t>();
}

}  // namespace

std::string cap_indexes(const std::string& indexes, size_t soft_limit) {
  if (indexes.empty()) return "<none>";
  size_t ix = soft_limit;
  while (ix < indexes.size() && indexes[ix] != ',') ++ix;
  if (ix >= indexes.size()) return indexes;
  return indexes.substr(0, ix) + ",...";
}

void describe_job(DescribeWriter& w, const json& job) {
  const json& md = child(job, "metadata");
  const json& spec = child(job, "spec");
  const json& st = child(job, "status");
  w.kv(0, "Name", str_of(md, "name"));
  w.kv(0, "Namespace", str_of(md, "namespace"));
  w.kv(0, "Selector", selector_query(job));
  write_labels(w, "Labels", child(md, "labels"));
  write_annotations(w, "Annotations", child(md, "annotations"));
  if (const json& owners = child(md, "ownerReferences"); owners.is_array())
    for (const auto& o : owners)
      if (o.value("controller", false)) {
        w.kv(0, "Controlled By", str_of(o, "kind") + "/" + str_of(o, "name"));
        break;
      }
  if (auto p = int_of(spec, "parallelism")) w.kv(0, "Parallelism", std::to_string(*p));
  auto completions = int_of(spec, "completions");
  w.kv(0, "Completions", completions ? std::to_string(*completions) : "<unset>");
  const std::string mode = str_of(spec, "completionMode");
  if (!mode.empty()) w.kv(0, "Completion Mode", mode);
  if (child(spec, "suspend").is_boolean())
    w.kv(0, "Suspend", child(spec, "suspend").get<bool>() ? "true" : "false");
  if (auto b = int_of(spec, "backoffLimit")) w.kv(0, "Backoff Limit", std::to_string(*b));
  if (auto t = int_of(spec, "ttlSecondsAfterFinished"))
    w.kv(0, "TTL Seconds After Finished", std::to_string(*t));
  const std::string start = str_of(st, "startTime"), done = str_of(st, "completionTime");
  if (!start.empty()) w.kv(0, "Start Time", format_describe_time(start));
  if (!done.empty()) w.kv(0, "Completed At", format_describe_time(done));
  if (auto a = parse_rfc3339(start), b = parse_rfc3339(done); a && b)
    w.kv(0, "Duration", proto::human_duration(*b - *a));
  if (auto d = int_of(spec, "activeDeadlineSeconds"))
    w.kv(0, "Active Deadline Seconds", std::to_string(*d) + "s");
  const std::string active = std::to_string(int_of(st, "active").value_or(0));
  const std::string counts = std::to_string(int_of(st, "succeeded").value_or(0)) + " Succeeded / " +
                             std::to_string(int_of(st, "failed").value_or(0)) + " Failed";
  if (auto ready = int_of(st, "ready"))
    w.kv(0, "Pods Statuses", active + " Active (" + std::to_string(*ready) + " Ready) / " + counts);
  else
    w.kv(0, "Pods Statuses", active + " Active / " + counts);
  if (mode == "Indexed") {
    w.kv(0, "Completed Indexes", cap_indexes(str_of(st, "completedIndexes")));
    if (child(spec, "backoffLimitPerIndex").is_number_integer())
      w.kv(0, "Failed Indexes", cap_indexes(str_of(st, "failedIndexes")));
  }
  describe_pod_template(w, child(spec, "template"));
}

}  // namespace skiff::cli
