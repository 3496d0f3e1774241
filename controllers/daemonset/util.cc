#include "controllers/daemonset/util.h"

#include <algorithm>
#include <cmath>

#include "controllers/api_util.h"
#include "proto/time.h"

namespace skiff::controllers::daemonset {

namespace {

const json& labels_of(const json& o) { return at(o, "metadata", "labels"); }

bool contains(const json& values, const std::string& v) {
  if (!values.is_array()) return false;
  for (const auto& x : values)
    if (x.is_string() && x.get<std::string>() == v) return true;
  return false;
}

bool parse_i64(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (i == s.size()) return false;
  int64_t v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - 9) / 10) return false;
    v = v * 10 + (s[i] - '0');
  }
  out = s[0] == '-' ? -v : v;
  return true;
}

// One requirement against a label map (or {"metadata.name": node} for matchFields).
bool match_requirement(const json& r, const json& labels) {
  std::string key = str(at(r, "key")), op = str(at(r, "operator"));
  const json& values = at(r, "values");
  const json& val = labels.is_object() && labels.contains(key) ? labels[key] : json();
  bool has = val.is_string();
  std::string v = has ? val.get<std::string>() : "";
  if (op == "In") return has && contains(values, v);
  if (op == "NotIn") return !has || !contains(values, v);
  if (op == "Exists") return has;
  if (op == "DoesNotExist") return !has;
  if (op == "Gt" || op == "Lt") {
    int64_t want, got;
    if (!has || !values.is_array() || values.size() != 1 || !values[0].is_string() ||
        !parse_i64(values[0].get<std::string>(), want) || !parse_i64(v, got))
      return false;
    return op == "Gt" ? got > want : got < want;
  }
  return false;
}

bool match_term(const json& term, const json& node) {
  const json& exprs = at(term, "matchExpressions");
  const json& fields = at(term, "matchFields");
  bool has_exprs = exprs.is_array() && !exprs.empty();
  bool has_fields = fields.is_array() && !fields.empty();
  if (!has_exprs && !has_fields) return false;  // an empty term matches nothing
  if (has_exprs)
    for (const auto& r : exprs)
      if (!match_requirement(r, labels_of(node))) return false;
  if (has_fields) {
    json by_field = {{"metadata.name", str(at(node, "metadata", "name"))}};
    for (const auto& r : fields) {
      if (str(at(r, "key")) != "metadata.name") return false;  // the only supported field
      if (!match_requirement(r, by_field)) return false;
    }
  }
  return true;
}

std::optional<WallTime> ready_since(const json& pod) {
  const json& conds = at(pod, "status", "conditions");
  if (!conds.is_array()) return std::nullopt;
  for (const auto& c : conds) {
    if (str(at(c, "type")) != "Ready" || str(at(c, "status")) != "True") continue;
    auto t = proto::parse_rfc3339(str(at(c, "lastTransitionTime")));
    return t ? *t : WallTime{};
  }
  return std::nullopt;
}

WallTime created(const json& o) {
  auto t = proto::parse_rfc3339(str(at(o, "metadata", "creationTimestamp")));
  return t ? *t : WallTime{};
}

json toleration(const char* key, const char* effect) {
  return {{"key", key}, {"operator", "Exists"}, {"effect", effect}};
}

// Toleration.MatchToleration: same key, operator, value and effect (tolerationSeconds aside).
bool same_toleration(const json& a, const json& b) {
  for (const char* f : {"key", "operator", "value", "effect"})
    if (str(at(a, f)) != str(at(b, f))) return false;
  return true;
}

}  // namespace

bool toleration_tolerates(const json& t, const json& taint) {
  std::string effect = str(at(t, "effect"));
  if (!effect.empty() && effect != str(at(taint, "effect"))) return false;
  std::string key = str(at(t, "key")), op = str(at(t, "operator"));
  if (op.empty()) op = "Equal";
  if (key.empty()) return op == "Exists";  // an empty key with Exists tolerates everything
  if (key != str(at(taint, "key"))) return false;
  if (op == "Exists") return true;
  return op == "Equal" && str(at(t, "value")) == str(at(taint, "value"));
}

std::optional<json> untolerated_taint(const json& node, const json& tolerations,
                                      bool no_execute_only) {
  const json& taints = at(node, "spec", "taints");
  if (!taints.is_array()) return std::nullopt;
  for (const auto& taint : taints) {
    std::string effect = str(at(taint, "effect"));
    if (no_execute_only ? effect != "NoExecute" : (effect != "NoSchedule" && effect != "NoExecute"))
      continue;
    bool ok = false;
    if (tolerations.is_array())
      for (const auto& t : tolerations)
        if (toleration_tolerates(t, taint)) {
          ok = true;
          break;
        }
    if (!ok) return taint;
  }
  return std::nullopt;
}

bool pod_matches_node_affinity(const json& pod_spec, const json& node) {
  const json& sel = at(pod_spec, "nodeSelector");
  if (sel.is_object()) {
    const json& labels = labels_of(node);
    for (auto it = sel.begin(); it != sel.end(); ++it) {
      if (!labels.is_object() || !labels.contains(it.key()) || labels[it.key()] != it.value())
        return false;
    }
  }
  const json& req = at(at(at(pod_spec, "affinity"), "nodeAffinity"),
                       "requiredDuringSchedulingIgnoredDuringExecution");
  if (req.is_null()) return true;
  const json& terms = at(req, "nodeSelectorTerms");
  if (!terms.is_array()) return false;
  for (const auto& term : terms)
    if (match_term(term, node)) return true;
  return false;
}

void add_daemon_tolerations(json& spec) {
  std::vector<json> defaults = {
      toleration("node.kubernetes.io/not-ready", "NoExecute"),
      toleration("node.kubernetes.io/unreachable", "NoExecute"),
      toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
      toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
      toleration("node.kubernetes.io/pid-pressure", "NoSchedule"),
      toleration("node.kubernetes.io/unschedulable", "NoSchedule"),
  };
  if (at(spec, "hostNetwork") == true)
    defaults.push_back(toleration("node.kubernetes.io/network-unavailable", "NoSchedule"));
  json& tols = spec["tolerations"];
  if (!tols.is_array()) tols = json::array();
  for (const auto& d : defaults) {
    bool found = false;
    for (auto& t : tols)
      if (same_toleration(t, d)) {
        t = d;  // AddOrUpdateTolerationInPodSpec replaces the matching one
        found = true;
      }
    if (!found) tols.push_back(d);
  }
}

ShouldRun node_should_run_daemon_pod(const json& node, const json& ds) {
  json tmpl = at(ds, "spec", "template");
  json spec = at(tmpl, "spec").is_object() ? at(tmpl, "spec") : json::object();
  std::string node_name = str(at(node, "metadata", "name"));
  std::string want = str(at(spec, "nodeName"));
  if (!want.empty() && want != node_name) return {};
  if (!pod_matches_node_affinity(spec, node)) return {};
  add_daemon_tolerations(spec);
  if (untolerated_taint(node, at(spec, "tolerations"), false)) {
    // Scheduled daemon pods keep running unless a NoExecute taint evicts them.
    return {false, !untolerated_taint(node, at(spec, "tolerations"), true)};
  }
  return {true, true};
}

json pod_template_for(const json& ds, std::optional<int64_t> generation, const std::string& hash) {
  json t = at(ds, "spec", "template").is_object() ? at(ds, "spec", "template") : json::object();
  if (!t["spec"].is_object()) t["spec"] = json::object();
  add_daemon_tolerations(t["spec"]);
  json& labels = t["metadata"]["labels"];
  if (!labels.is_object()) labels = json::object();
  if (generation) labels[kTemplateGenerationLabel] = std::to_string(*generation);
  if (!hash.empty()) labels[kRevisionHashLabel] = hash;
  return t;
}

json replace_node_name_affinity(json affinity, const std::string& node) {
  json term = {{"matchFields", json::array({{{"key", "metadata.name"},
                                             {"operator", "In"},
                                             {"values", json::array({node})}}})}};
  if (!affinity.is_object()) affinity = json::object();
  if (!affinity["nodeAffinity"].is_object()) affinity["nodeAffinity"] = json::object();
  affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = {
      {"nodeSelectorTerms", json::array({term})}};
  return affinity;
}

json new_daemon_pod(const json& ds, const json& tmpl, const std::string& node) {
  std::string name = str(at(ds, "metadata", "name"));
  json meta = {{"generateName", name + "-"},
               {"namespace", str(at(ds, "metadata", "namespace"))},
               {"labels", at(tmpl, "metadata", "labels")},
               {"ownerReferences", json::array({{{"apiVersion", "apps/v1"},
                                                 {"kind", "DaemonSet"},
                                                 {"name", name},
                                                 {"uid", str(at(ds, "metadata", "uid"))},
                                                 {"controller", true},
                                                 {"blockOwnerDeletion", true}}})}};
  for (const char* k : {"annotations", "finalizers"})
    if (const json& v = at(tmpl, "metadata", k); !v.is_null() && !v.empty()) meta[k] = v;
  json pod = {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", std::move(meta)}};
  pod["spec"] = at(tmpl, "spec").is_object() ? at(tmpl, "spec") : json::object();
  pod["spec"]["affinity"] = replace_node_name_affinity(at(pod["spec"], "affinity"), node);
  return pod;
}

std::optional<std::string> target_node_name(const json& pod) {
  std::string n = str(at(pod, "spec", "nodeName"));
  if (!n.empty()) return n;
  const json& terms = at(at(at(at(pod, "spec", "affinity"), "nodeAffinity"),
                            "requiredDuringSchedulingIgnoredDuringExecution"),
                         "nodeSelectorTerms");
  if (!terms.is_array()) return std::nullopt;
  for (const auto& term : terms) {
    const json& fields = at(term, "matchFields");
    if (!fields.is_array()) continue;
    for (const auto& r : fields) {
      const json& values = at(r, "values");
      if (str(at(r, "key")) == "metadata.name" && str(at(r, "operator")) == "In" &&
          values.is_array() && values.size() == 1 && values[0].is_string())
        return values[0].get<std::string>();
    }
  }
  return std::nullopt;
}

std::optional<int64_t> template_generation(const json& ds) {
  std::string a = str(at(at(ds, "metadata", "annotations"), kTemplateGenerationAnnotation));
  int64_t v;
  if (!a.empty() && parse_i64(a, v)) return v;
  const json& g = at(ds, "metadata", "generation");
  if (g.is_number_integer()) return g.get<int64_t>();
  return std::nullopt;
}

bool is_pod_updated(const json& pod, const std::string& hash, std::optional<int64_t> generation) {
  const json& labels = labels_of(pod);
  bool template_matches =
      generation && str(at(labels, kTemplateGenerationLabel)) == std::to_string(*generation);
  bool hash_matches = !hash.empty() && str(at(labels, kRevisionHashLabel)) == hash;
  return hash_matches || template_matches;
}

bool is_pod_ready(const json& pod) { return ready_since(pod).has_value(); }

bool is_pod_available(const json& pod, int min_ready_seconds, WallTime now) {
  auto since = ready_since(pod);
  if (!since) return false;
  return min_ready_seconds <= 0 || *since + std::chrono::seconds(min_ready_seconds) <= now;
}

std::optional<std::chrono::nanoseconds> time_until_available(const json& pod, int min_ready_seconds,
                                                             WallTime now) {
  auto since = ready_since(pod);
  if (!since || min_ready_seconds <= 0) return std::nullopt;
  auto at_time = *since + std::chrono::seconds(min_ready_seconds);
  if (at_time <= now) return std::nullopt;
  return at_time - now;
}

bool pod_less(const json& a, const json& b) {
  bool sa = !str(at(a, "spec", "nodeName")).empty(), sb = !str(at(b, "spec", "nodeName")).empty();
  if (sa != sb) return sa;
  WallTime ta = created(a), tb = created(b);
  if (ta != tb) return ta < tb;
  return str(at(a, "metadata", "name")) < str(at(b, "metadata", "name"));
}

bool is_terminating(const json& obj) { return !at(obj, "metadata", "deletionTimestamp").is_null(); }


namespace {

// intstr.GetScaledValueFromIntOrPercent with rounding up; malformed => 0.
int scaled(const json& v, int total) {
  if (v.is_number_integer()) return std::max(0, v.get<int>());
  if (!v.is_string()) return 0;
  std::string s = v.get<std::string>();
  if (s.size() < 2 || s.back() != '%') return 0;
  int64_t p;
  if (!parse_i64(s.substr(0, s.size() - 1), p) || p < 0) return 0;
  return static_cast<int>(std::ceil(static_cast<double>(p) * total / 100.0));
}

}  // namespace

void resolve_surge_unavailable(const json& ds, int desired, int* surge, int* unavailable) {
  *surge = *unavailable = 0;
  const json& st = at(ds, "spec", "updateStrategy");
  std::string type = str(at(st, "type"));
  if (!type.empty() && type != "RollingUpdate") return;
  const json& ru = at(st, "rollingUpdate");
  *surge = scaled(at(ru, "maxSurge"), desired);
  // maxUnavailable defaults to 1 (absent on an object the API server did not default).
  const json& mu = at(ru, "maxUnavailable");
  *unavailable = mu.is_null() ? 1 : scaled(mu, desired);
  if (*surge == 0 && *unavailable == 0) *unavailable = 1;
}

bool FailedPodBackoff::in_backoff(const std::string& key, Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  return now - it->second.last < it->second.period;
}

std::chrono::nanoseconds FailedPodBackoff::get(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  return it == entries_.end() ? std::chrono::nanoseconds{0} : it->second.period;
}

void FailedPodBackoff::next(const std::string& key, Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || now - it->second.last > 2 * max_) {
    entries_[key] = {initial_, now};
    return;
  }
  it->second.period = std::min(it->second.period * 2, max_);
  it->second.last = now;
}

void FailedPodBackoff::gc(Clock::time_point now) {
  std::lock_guard lock(mu_);
  std::erase_if(entries_, [&](const auto& kv) { return now - kv.second.last > 2 * max_; });
}

}  // namespace skiff::controllers::daemonset
