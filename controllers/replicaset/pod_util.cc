#include "controllers/replicaset/pod_util.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "controllers/api_util.h"
#include "proto/time.h"

namespace skiff::controllers::replicaset {

namespace {

WallTime time_of(const json& j) {
  if (!j.is_string()) return {};
  auto t = proto::parse_rfc3339(j.get<std::string>());
  return t ? *t : WallTime{};
}

// The Ready condition, or nullptr.
const json* ready_condition(const json& pod) {
  const json& conds = at(at(pod, "status"), "conditions");
  if (!conds.is_array()) return nullptr;
  for (const auto& c : conds)
    if (str(at(c, "type")) == "Ready") return &c;
  return nullptr;
}

// Kubernetes' podPhaseToOrdinal; phases it does not list count as Pending.
int phase_ordinal(const std::string& phase) {
  if (phase == "Unknown") return 1;
  if (phase == "Running") return 2;
  return 0;
}

// controller.kubernetes.io/pod-deletion-cost; a missing or malformed value counts as 0, as in
// GetDeletionCostFromPodAnnotations' callers.
int64_t deletion_cost(const json& pod) {
  const json& v =
      at(at(at(pod, "metadata"), "annotations"), "controller.kubernetes.io/pod-deletion-cost");
  if (!v.is_string()) return 0;
  const std::string s = v.get<std::string>();
  if (s.empty()) return 0;
  size_t pos = 0;
  try {
    long long n = std::stoll(s, &pos, 10);
    if (pos != s.size() || n < INT32_MIN || n > INT32_MAX) return 0;
    return n;
  } catch (...) {
    return 0;
  }
}

int max_container_restarts(const json& pod) {
  int m = 0;
  const json& cs = at(at(pod, "status"), "containerStatuses");
  if (cs.is_array())
    for (const auto& c : cs) {
      const json& r = at(c, "restartCount");
      if (r.is_number_integer()) m = std::max(m, r.get<int>());
    }
  return m;
}

bool after_or_zero(WallTime a, WallTime b) {
  if (a == WallTime{} || b == WallTime{}) return a == WallTime{};
  return a > b;
}

// Kubernetes' logarithmicRankDiff: compares floor(log2(age in ns)) of two times.
int64_t log_rank_diff(WallTime a, WallTime b, WallTime now) {
  auto rank = [&](WallTime t) -> int64_t {
    auto d = std::chrono::duration_cast<std::chrono::nanoseconds>(now - t).count();
    return d > 0 ? static_cast<int64_t>(std::log2(static_cast<double>(d))) : -1;
  };
  return rank(a) - rank(b);
}

// What ActivePodsWithRanks.Less looks at, computed once per pod.
struct Ranked {
  json pod;
  std::string node, uid;
  int phase = 0;
  bool ready = false;
  int64_t cost = 0;
  int rank = 0;  // active related pods on the same node
  WallTime ready_time{}, created{};
  int restarts = 0;
};

bool less(const Ranked& a, const Ranked& b, WallTime now) {
  if (a.node != b.node && (a.node.empty() || b.node.empty())) return a.node.empty();
  if (a.phase != b.phase) return a.phase < b.phase;
  if (a.ready != b.ready) return !a.ready;
  if (a.cost != b.cost) return a.cost < b.cost;
  if (a.rank != b.rank) return a.rank > b.rank;
  if (a.ready && b.ready && a.ready_time != b.ready_time) {
    if (a.ready_time == WallTime{} || b.ready_time == WallTime{})
      return after_or_zero(a.ready_time, b.ready_time);
    int64_t d = log_rank_diff(a.ready_time, b.ready_time, now);
    if (d == 0) return a.uid < b.uid;
    return d < 0;
  }
  if (a.restarts != b.restarts) return a.restarts > b.restarts;
  if (a.created != b.created) {
    if (a.created == WallTime{} || b.created == WallTime{})
      return after_or_zero(a.created, b.created);
    int64_t d = log_rank_diff(a.created, b.created, now);
    if (d == 0) return a.uid < b.uid;
    return d < 0;
  }
  return false;
}

// Merge sort: the uid tie-breaks inside log2 buckets make Kubernetes' order not a strict weak
// ordering, which std::sort may not survive; std::merge only ever compares within bounds.
void merge_sort(std::vector<Ranked>& v, size_t lo, size_t hi, std::vector<Ranked>& tmp,
                WallTime now) {
  if (hi - lo < 2) return;
  size_t mid = lo + (hi - lo) / 2;
  merge_sort(v, lo, mid, tmp, now);
  merge_sort(v, mid, hi, tmp, now);
  tmp.clear();
  std::merge(std::make_move_iterator(v.begin() + lo), std::make_move_iterator(v.begin() + mid),
             std::make_move_iterator(v.begin() + mid), std::make_move_iterator(v.begin() + hi),
             std::back_inserter(tmp),
             [now](const Ranked& a, const Ranked& b) { return less(a, b, now); });
  std::move(tmp.begin(), tmp.end(), v.begin() + lo);
}

}  // namespace


bool is_terminating(const json& obj) {
  const json& d = at(at(obj, "metadata"), "deletionTimestamp");
  return !d.is_null();
}

bool is_pod_active(const json& pod) {
  std::string phase = str(at(at(pod, "status"), "phase"));
  return phase != "Succeeded" && phase != "Failed" && !is_terminating(pod);
}

bool is_pod_ready(const json& pod) {
  const json* c = ready_condition(pod);
  return c != nullptr && str(at(*c, "status")) == "True";
}

std::optional<WallTime> pod_ready_since(const json& pod) {
  const json* c = ready_condition(pod);
  if (c == nullptr || str(at(*c, "status")) != "True") return std::nullopt;
  WallTime t = time_of(at(*c, "lastTransitionTime"));
  if (t == WallTime{}) return std::nullopt;
  return t;
}

bool is_pod_available(const json& pod, int min_ready_seconds, WallTime now) {
  if (!is_pod_ready(pod)) return false;
  if (min_ready_seconds <= 0) return true;
  auto since = pod_ready_since(pod);
  return since && *since + std::chrono::seconds(min_ready_seconds) < now;
}

std::optional<std::chrono::nanoseconds> time_until_available(const json& pod, int min_ready_seconds,
                                                             WallTime now) {
  if (min_ready_seconds <= 0 || !is_pod_ready(pod)) return std::nullopt;
  if (is_pod_available(pod, min_ready_seconds, now)) return std::nullopt;
  auto since = pod_ready_since(pod);
  if (!since) return std::nullopt;  // no transition time: never becomes available
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
      *since + std::chrono::seconds(min_ready_seconds) - now);
}

std::vector<json> pods_to_delete(std::vector<json> pods, const std::vector<json>& related, int diff,
                                 WallTime now) {
  if (diff <= 0) return {};
  if (static_cast<size_t>(diff) > pods.size()) diff = static_cast<int>(pods.size());
  std::map<std::string, int> on_node;
  for (const auto& p : related)
    if (is_pod_active(p)) ++on_node[str(at(at(p, "spec"), "nodeName"))];
  std::vector<Ranked> ranked;
  ranked.reserve(pods.size());
  for (auto& p : pods) {
    Ranked r;
    r.node = str(at(at(p, "spec"), "nodeName"));
    r.uid = str(at(at(p, "metadata"), "uid"));
    r.phase = phase_ordinal(str(at(at(p, "status"), "phase")));
    r.ready = is_pod_ready(p);
    r.cost = deletion_cost(p);
    r.rank = on_node.count(r.node) ? on_node[r.node] : 0;
    if (r.ready) r.ready_time = pod_ready_since(p).value_or(WallTime{});
    r.restarts = max_container_restarts(p);
    r.created = time_of(at(at(p, "metadata"), "creationTimestamp"));
    r.pod = std::move(p);
    ranked.push_back(std::move(r));
  }
  std::vector<Ranked> tmp;
  tmp.reserve(ranked.size());
  merge_sort(ranked, 0, ranked.size(), tmp, now);
  std::vector<json> out;
  for (int i = 0; i < diff; ++i) out.push_back(std::move(ranked[i].pod));
  return out;
}

std::string pod_key(const json& pod) {
  const json& m = at(pod, "metadata");
  return str(at(m, "namespace")) + "/" + str(at(m, "name"));
}

}  // namespace skiff::controllers::replicaset
