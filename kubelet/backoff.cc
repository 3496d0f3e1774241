#include "kubelet/backoff.h"

#include <algorithm>

namespace skiff::kubelet {

bool Backoff::in_backoff(const std::string& key, Clock::time_point since,
                         Clock::time_point now) const {
  return now < until(key, since);
}

Backoff::Clock::time_point Backoff::until(const std::string& key, Clock::time_point since) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return since;
  return since + it->second.backoff;
}

void Backoff::next(const std::string& key, Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || now - it->second.last_update > 2 * max_) {
    entries_[key] = Entry{initial_, now};
    return;
  }
  it->second.backoff = std::min<Duration>(it->second.backoff * 2, max_);
  it->second.last_update = now;
}

Backoff::Duration Backoff::current(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  return it == entries_.end() ? Duration(0) : it->second.backoff;
}

void Backoff::reset(const std::string& key) {
  std::lock_guard lock(mu_);
  entries_.erase(key);
}

void Backoff::reset_prefix(const std::string& prefix) {
  std::lock_guard lock(mu_);
  for (auto it = entries_.lower_bound(prefix);
       it != entries_.end() && it->first.compare(0, prefix.size(), prefix) == 0;)
    it = entries_.erase(it);
}

}  // namespace skiff::kubelet
