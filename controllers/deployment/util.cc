#include "controllers/deployment/util.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

namespace skiff::controllers::deployment {

namespace {

std::optional<int64_t> parse_int(const std::string& s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<int32_t> int32_annotation(const ReplicaSet& rs, const char* key) {
  auto it = rs.metadata.annotations.find(key);
  if (it == rs.metadata.annotations.end()) return std::nullopt;
  auto v = parse_int(it->second);
  if (!v || *v < INT32_MIN || *v > INT32_MAX) return std::nullopt;
  return static_cast<int32_t>(*v);
}

proto::Clock::time_point created(const ReplicaSet& rs) {
  return rs.metadata.creation_timestamp ? rs.metadata.creation_timestamp->value
                                        : proto::Clock::time_point{};
}

}  // namespace

uint32_t fnv32a(const std::string& data, uint32_t h) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

std::string safe_encode_string(const std::string& s) {
  // k8s.io/apimachinery/pkg/util/rand: no vowels and no look-alike characters.
  static const std::string alnum = "bcdfghjklmnpqrstvwxz2456789";
  std::string out(s.size(), 'b');
  for (size_t i = 0; i < s.size(); ++i)
    out[i] = alnum[static_cast<unsigned char>(s[i]) % alnum.size()];
  return out;
}

std::string compute_hash(const proto::PodTemplateSpec& t, std::optional<int32_t> collision_count) {
  uint32_t h = fnv32a(proto::encode(t).dump());
  if (collision_count) {
    std::string bytes(8, '\0');
    auto v = static_cast<uint32_t>(*collision_count);
    for (int i = 0; i < 4; ++i) bytes[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    h = fnv32a(bytes, h);
  }
  return safe_encode_string(std::to_string(h));
}

bool equal_ignore_hash(const proto::PodTemplateSpec& a, const proto::PodTemplateSpec& b) {
  proto::json x = proto::encode(a), y = proto::encode(b);
  for (proto::json* j : {&x, &y}) {
    auto m = j->find("metadata");
    if (m == j->end() || !m->is_object()) continue;
    auto l = m->find("labels");
    if (l == m->end() || !l->is_object()) continue;
    l->erase(kHashLabel);
    if (l->empty()) m->erase("labels");
  }
  return x == y;
}

std::optional<int32_t> scaled_value(const proto::IntOrString& v, int32_t total, bool round_up) {
  if (!v.is_string) return v.int_val;
  const std::string& s = v.str_val;
  if (s.size() < 2 || s.back() != '%') return std::nullopt;
  auto p = parse_int(s.substr(0, s.size() - 1));
  if (!p || *p < 0 || *p > INT32_MAX) return std::nullopt;
  double x = static_cast<double>(*p) * total / 100.0;
  return static_cast<int32_t>(round_up ? std::ceil(x) : std::floor(x));
}

int32_t replicas_of(const Deployment& d) { return d.spec.replicas.value_or(1); }
int32_t replicas_of(const ReplicaSet& rs) { return rs.spec.replicas.value_or(1); }

bool is_rolling_update(const Deployment& d) {
  return d.spec.strategy.type.empty() || d.spec.strategy.type == "RollingUpdate";
}

void resolve_fenceposts(const Deployment& d, int32_t* surge, int32_t* unavailable) {
  // Unset values are defaulted by the API server to 25%; a missing rollingUpdate block is
  // treated the same way.
  proto::IntOrString def = proto::IntOrString::from_string("25%");
  const auto& ru = d.spec.strategy.rolling_update;
  proto::IntOrString s = ru && ru->max_surge ? *ru->max_surge : def;
  proto::IntOrString u = ru && ru->max_unavailable ? *ru->max_unavailable : def;
  int32_t desired = replicas_of(d);
  // Malformed values (the API server rejects them) count as 0, as Kubernetes' MaxSurge does.
  *surge = std::max(0, scaled_value(s, desired, true).value_or(0));
  *unavailable = std::max(0, scaled_value(u, desired, false).value_or(0));
  if (*surge == 0 && *unavailable == 0) *unavailable = 1;
}

int32_t max_surge(const Deployment& d) {
  if (!is_rolling_update(d)) return 0;
  int32_t s, u;
  resolve_fenceposts(d, &s, &u);
  return s;
}

int32_t max_unavailable(const Deployment& d) {
  if (!is_rolling_update(d) || replicas_of(d) == 0) return 0;
  int32_t s, u;
  resolve_fenceposts(d, &s, &u);
  return std::min(u, replicas_of(d));
}

int64_t revision_of(const ReplicaSet& rs) {
  auto it = rs.metadata.annotations.find(kRevisionAnnotation);
  if (it == rs.metadata.annotations.end()) return 0;
  return parse_int(it->second).value_or(0);
}

int64_t max_revision(const RSList& l) {
  int64_t m = 0;
  for (const auto* rs : l)
    if (rs) m = std::max(m, revision_of(*rs));
  return m;
}

std::optional<int32_t> desired_replicas_annotation(const ReplicaSet& rs) {
  return int32_annotation(rs, kDesiredReplicasAnnotation);
}
std::optional<int32_t> max_replicas_annotation(const ReplicaSet& rs) {
  return int32_annotation(rs, kMaxReplicasAnnotation);
}

bool replicas_annotations_need_update(const ReplicaSet& rs, int32_t desired, int32_t max) {
  auto& a = rs.metadata.annotations;
  auto d = a.find(kDesiredReplicasAnnotation);
  auto m = a.find(kMaxReplicasAnnotation);
  return d == a.end() || d->second != std::to_string(desired) || m == a.end() ||
         m->second != std::to_string(max);
}

bool set_replicas_annotations(ReplicaSet& rs, int32_t desired, int32_t max) {
  if (!replicas_annotations_need_update(rs, desired, max)) return false;
  rs.metadata.annotations[kDesiredReplicasAnnotation] = std::to_string(desired);
  rs.metadata.annotations[kMaxReplicasAnnotation] = std::to_string(max);
  return true;
}

bool skip_copy_annotation(const std::string& key) {
  static const std::set<std::string> skip = {
      "kubectl.kubernetes.io/last-applied-configuration",
      kRevisionAnnotation,
      kRevisionHistoryAnnotation,
      kDesiredReplicasAnnotation,
      kMaxReplicasAnnotation,
      "deprecated.deployment.rollback.to",
  };
  return skip.count(key) > 0;
}

bool set_new_rs_annotations(const Deployment& d, ReplicaSet& rs, const std::string& new_revision,
                            bool exists) {
  bool changed = false;
  auto& a = rs.metadata.annotations;
  for (const auto& [k, v] : d.metadata.annotations) {
    if (skip_copy_annotation(k)) continue;
    auto it = a.find(k);
    if (it != a.end() && it->second == v) continue;
    a[k] = v;
    changed = true;
  }
  auto old_it = a.find(kRevisionAnnotation);
  bool had = old_it != a.end();
  std::string old_revision = had ? old_it->second : "";
  int64_t old_rev = 0;
  if (!old_revision.empty()) {
    auto p = parse_int(old_revision);
    if (!p) return false;  // someone else's value: leave the RS alone, as Kubernetes does
    old_rev = *p;
  }
  int64_t new_rev = parse_int(new_revision).value_or(0);
  if (old_rev < new_rev) {
    a[kRevisionAnnotation] = new_revision;
    changed = true;
  }
  // A known RS getting a higher revision is a rollback to it: keep its earlier revisions.
  if (had && old_rev < new_rev) {
    std::string hist = a.count(kRevisionHistoryAnnotation) ? a[kRevisionHistoryAnnotation] : "";
    if (hist.empty()) {
      a[kRevisionHistoryAnnotation] = old_revision;
    } else {
      std::vector<std::string> parts;
      size_t start = 0;
      while (true) {
        size_t c = hist.find(',', start);
        parts.push_back(hist.substr(start, c - start));
        if (c == std::string::npos) break;
        start = c + 1;
      }
      size_t total = hist.size() + old_revision.size() + 1;
      size_t first = 0;
      while (total > kMaxRevisionHistoryChars && first < parts.size())
        total -= parts[first++].size() + 1;
      if (total <= kMaxRevisionHistoryChars) {
        std::string out;
        for (size_t i = first; i < parts.size(); ++i) out += parts[i] + ",";
        a[kRevisionHistoryAnnotation] = out + old_revision;
      }
    }
  }
  if (!exists && set_replicas_annotations(rs, replicas_of(d), replicas_of(d) + max_surge(d)))
    changed = true;
  return changed;
}

proto::DeploymentCondition new_condition(const std::string& type, const std::string& status,
                                         const std::string& reason, const std::string& message,
                                         proto::Time now) {
  proto::DeploymentCondition c;
  c.type = type;
  c.status = status;
  c.reason = reason;
  c.message = message;
  c.last_update_time = now;
  c.last_transition_time = now;
  return c;
}

const proto::DeploymentCondition* get_condition(const proto::DeploymentStatus& s,
                                                const std::string& type) {
  for (const auto& c : s.conditions)
    if (c.type == type) return &c;
  return nullptr;
}

void set_condition(proto::DeploymentStatus& s, proto::DeploymentCondition c) {
  const auto* cur = get_condition(s, c.type);
  if (cur && cur->status == c.status && cur->reason == c.reason) return;
  if (cur && cur->status == c.status) c.last_transition_time = cur->last_transition_time;
  remove_condition(s, c.type);
  s.conditions.push_back(std::move(c));
}

void remove_condition(proto::DeploymentStatus& s, const std::string& type) {
  std::erase_if(s.conditions, [&](const auto& c) { return c.type == type; });
}

bool has_progress_deadline(const Deployment& d) {
  return d.spec.progress_deadline_seconds && *d.spec.progress_deadline_seconds != INT32_MAX;
}

bool has_revision_history_limit(const Deployment& d) {
  return d.spec.revision_history_limit && *d.spec.revision_history_limit != INT32_MAX;
}

int32_t spec_replicas_sum(const RSList& l) {
  int32_t n = 0;
  for (const auto* rs : l)
    if (rs) n += replicas_of(*rs);
  return n;
}
int32_t actual_replicas_sum(const RSList& l) {
  int32_t n = 0;
  for (const auto* rs : l)
    if (rs) n += rs->status.replicas;
  return n;
}
int32_t ready_replicas_sum(const RSList& l) {
  int32_t n = 0;
  for (const auto* rs : l)
    if (rs) n += rs->status.ready_replicas;
  return n;
}
int32_t available_replicas_sum(const RSList& l) {
  int32_t n = 0;
  for (const auto* rs : l)
    if (rs) n += rs->status.available_replicas;
  return n;
}

int32_t countable_available(const ReplicaSet& rs) {
  if (rs.status.observed_generation < rs.metadata.generation) return 0;
  return std::min(rs.status.available_replicas, replicas_of(rs));
}
int32_t countable_available_sum(const RSList& l) {
  int32_t n = 0;
  for (const auto* rs : l)
    if (rs) n += countable_available(*rs);
  return n;
}

RSList filter_active(const RSList& l) {
  RSList out;
  for (auto* rs : l)
    if (rs && replicas_of(*rs) > 0) out.push_back(rs);
  return out;
}

bool older(const ReplicaSet& a, const ReplicaSet& b) {
  auto ta = created(a), tb = created(b);
  if (ta != tb) return ta < tb;
  return a.metadata.name < b.metadata.name;
}

void sort_by_creation(RSList& l) {
  std::stable_sort(l.begin(), l.end(), [](auto* a, auto* b) { return older(*a, *b); });
}

void sort_by_revision(RSList& l) {
  std::stable_sort(l.begin(), l.end(), [](auto* a, auto* b) {
    int64_t ra = revision_of(*a), rb = revision_of(*b);
    if (ra != rb) return ra < rb;
    return older(*a, *b);
  });
}

void sort_by_size_newer(RSList& l) {
  std::stable_sort(l.begin(), l.end(), [](auto* a, auto* b) {
    if (replicas_of(*a) != replicas_of(*b)) return replicas_of(*a) > replicas_of(*b);
    return older(*b, *a);
  });
}

void sort_by_size_older(RSList& l) {
  std::stable_sort(l.begin(), l.end(), [](auto* a, auto* b) {
    if (replicas_of(*a) != replicas_of(*b)) return replicas_of(*a) > replicas_of(*b);
    return older(*a, *b);
  });
}

bool deployment_complete(const Deployment& d, const proto::DeploymentStatus& s) {
  int32_t n = replicas_of(d);
  return s.updated_replicas == n && s.replicas == n && s.available_replicas == n &&
         s.observed_generation >= d.metadata.generation;
}

bool deployment_progressing(const Deployment& d, const proto::DeploymentStatus& s) {
  const auto& o = d.status;
  int32_t old_old = o.replicas - o.updated_replicas;
  int32_t new_old = s.replicas - s.updated_replicas;
  return s.updated_replicas > o.updated_replicas || new_old < old_old ||
         s.ready_replicas > o.ready_replicas || s.available_replicas > o.available_replicas;
}

bool deployment_timed_out(const Deployment& d, const proto::DeploymentStatus& s,
                          proto::Clock::time_point now) {
  if (!has_progress_deadline(d)) return false;
  const auto* c = get_condition(s, kProgressing);
  if (!c) return false;
  if (c->reason == kNewRSAvailableReason) return false;
  if (c->reason == kTimedOutReason) return true;
  auto deadline =
      c->last_update_time.value + std::chrono::seconds(*d.spec.progress_deadline_seconds);
  return deadline < now;
}

bool is_saturated(const Deployment& d, const ReplicaSet* rs) {
  if (!rs) return false;
  auto desired = desired_replicas_annotation(*rs);
  int32_t n = replicas_of(d);
  return desired && *desired == n && replicas_of(*rs) == n && rs->status.available_replicas == n;
}

const proto::OwnerReference* controller_of(const proto::ObjectMeta& m) {
  for (const auto& r : m.owner_references)
    if (r.controller.value_or(false)) return &r;
  return nullptr;
}

}  // namespace skiff::controllers::deployment
