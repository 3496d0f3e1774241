#include "controllers/replicaset/expectations.h"

namespace skiff::controllers::replicaset {

bool Expectations::satisfied(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = records_.find(key);
  if (it == records_.end()) return true;
  const Record& r = it->second;
  if (r.adds <= 0 && r.deletes.empty()) return true;
  // A lost watch event must not block the controller forever.
  return clock_.now() - r.set_at > ttl_;
}

void Expectations::expect_creations(const std::string& key, int adds) {
  std::lock_guard lock(mu_);
  records_[key] = Record{.adds = adds, .deletes = {}, .set_at = clock_.now()};
}

void Expectations::expect_deletions(const std::string& key,
                                    const std::vector<std::string>& pod_keys) {
  std::lock_guard lock(mu_);
  records_[key] =
      Record{.adds = 0, .deletes = {pod_keys.begin(), pod_keys.end()}, .set_at = clock_.now()};
}

void Expectations::creation_observed(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = records_.find(key);
  if (it != records_.end() && it->second.adds > 0) --it->second.adds;
}

void Expectations::deletion_observed(const std::string& key, const std::string& pod_key) {
  std::lock_guard lock(mu_);
  auto it = records_.find(key);
  if (it != records_.end()) it->second.deletes.erase(pod_key);
}

void Expectations::forget(const std::string& key) {
  std::lock_guard lock(mu_);
  records_.erase(key);
}

std::optional<Expectations::Pending> Expectations::pending(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = records_.find(key);
  if (it == records_.end()) return std::nullopt;
  return Pending{it->second.adds, static_cast<int>(it->second.deletes.size())};
}

}  // namespace skiff::controllers::replicaset
