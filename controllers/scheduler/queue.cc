#include "controllers/scheduler/queue.h"

#include <iterator>

namespace skiff::scheduler {

SchedulingQueue::SchedulingQueue(QueueOptions opts)
    : opts_(opts), clock_(opts.clock ? *opts.clock : Clock::real()) {}

std::chrono::nanoseconds SchedulingQueue::backoff_for(int attempts) const {
  auto d = opts_.initial_backoff;
  for (int i = 1; i < attempts && d < opts_.max_backoff; ++i) d *= 2;
  return std::min(d, opts_.max_backoff);
}

void SchedulingQueue::push_active_locked(const std::string& key) {
  const int32_t priority = entries_[key].priority;
  // From the back: with equal priorities (the usual case) this is a push_back.
  auto pos = active_.end();
  while (pos != active_.begin()) {
    auto prev = std::prev(pos);
    auto it = entries_.find(*prev);
    if (it == entries_.end() || it->second.priority >= priority) break;
    pos = prev;
  }
  active_.insert(pos, key);
}

void SchedulingQueue::add(const std::string& key, int32_t priority) {
  std::lock_guard lock(mu_);
  if (shutdown_) return;
  auto [it, inserted] = entries_.try_emplace(key);
  Entry& e = it->second;
  e.priority = priority;  // immutable on a pod; a re-added key keeps its place
  if (inserted) {
    e.first_seen = clock_.now();
    push_active_locked(key);
    cv_.notify_one();
    return;
  }
  switch (e.where) {
    case Where::kInFlight:
      e.changed_in_flight = true;
      break;
    case Where::kUnschedulable:
      unschedulable_.erase(key);
      to_backoff_locked(key, e);
      break;
    case Where::kActive:
    case Where::kBackoff:
      break;  // already waiting
  }
}

void SchedulingQueue::remove(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  switch (it->second.where) {
    case Where::kActive:
      // Rare (a pending pod deleted before its turn): a linear scan is fine.
      for (auto a = active_.begin(); a != active_.end(); ++a)
        if (*a == key) {
          active_.erase(a);
          break;
        }
      break;
    case Where::kBackoff:
      --backoff_count_;  // its backoff_ entry is skipped as stale
      break;
    case Where::kUnschedulable:
      unschedulable_.erase(key);
      break;
    case Where::kInFlight:
      break;
  }
  entries_.erase(it);
}

void SchedulingQueue::to_backoff_locked(const std::string& key, Entry& e) {
  e.where = Where::kBackoff;
  ++backoff_count_;
  backoff_.emplace(e.last_attempt + backoff_for(e.attempts), key);
  cv_.notify_one();
}

void SchedulingQueue::promote_locked() {
  auto now = clock_.now();
  while (!backoff_.empty() && backoff_.begin()->first <= now) {
    auto node = backoff_.extract(backoff_.begin());
    auto it = entries_.find(node.mapped());
    if (it == entries_.end() || it->second.where != Where::kBackoff) continue;  // stale
    if (it->second.last_attempt + backoff_for(it->second.attempts) != node.key()) continue;
    it->second.where = Where::kActive;
    --backoff_count_;
    push_active_locked(node.mapped());
  }
  if (!unschedulable_.empty()) {
    for (auto u = unschedulable_.begin(); u != unschedulable_.end();) {
      Entry& e = entries_[*u];
      if (now - e.last_attempt >= opts_.unschedulable_timeout) {
        e.where = Where::kActive;
        push_active_locked(*u);
        u = unschedulable_.erase(u);
      } else {
        ++u;
      }
    }
  }
}

std::optional<QueuedPod> SchedulingQueue::take_locked() {
  if (active_.empty()) return std::nullopt;
  std::string key = std::move(active_.front());
  active_.pop_front();
  Entry& e = entries_[key];
  e.where = Where::kInFlight;
  e.changed_in_flight = false;
  e.popped_at_cycle = move_cycle_;
  return QueuedPod{std::move(key), e.first_seen, e.attempts};
}

std::optional<QueuedPod> SchedulingQueue::try_pop() {
  std::lock_guard lock(mu_);
  if (shutdown_) return std::nullopt;
  promote_locked();
  return take_locked();
}

std::optional<QueuedPod> SchedulingQueue::pop(std::stop_token stop) {
  std::unique_lock lock(mu_);
  std::stop_callback wake(stop, [this] {
    std::lock_guard l(mu_);
    cv_.notify_all();
  });
  while (!shutdown_ && !stop.stop_requested()) {
    promote_locked();
    if (auto p = take_locked()) return p;
    // Wake for the next back-off, a parked pod's timeout, or at least every 100 ms (also lets
    // a FakeClock-driven test make progress).
    cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
  return std::nullopt;
}

void SchedulingQueue::done(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it != entries_.end() && it->second.where == Where::kInFlight) entries_.erase(it);
}

void SchedulingQueue::unschedulable(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.where != Where::kInFlight) return;
  Entry& e = it->second;
  ++e.attempts;
  e.last_attempt = clock_.now();
  if (e.changed_in_flight || e.popped_at_cycle != move_cycle_) {
    to_backoff_locked(key, e);
  } else {
    e.where = Where::kUnschedulable;
    unschedulable_.insert(key);
  }
}

void SchedulingQueue::backoff(const std::string& key) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = entries_.try_emplace(key);
  Entry& e = it->second;
  if (inserted) e.first_seen = clock_.now();
  if (!inserted && e.where != Where::kInFlight) return;  // already queued again
  ++e.attempts;
  e.last_attempt = clock_.now();
  to_backoff_locked(key, e);
}

void SchedulingQueue::move_all_on_event() {
  std::lock_guard lock(mu_);
  ++move_cycle_;  // pods in flight now see the event when their attempt ends
  for (const auto& key : unschedulable_) to_backoff_locked(key, entries_[key]);
  unschedulable_.clear();
}

void SchedulingQueue::shut_down() {
  std::lock_guard lock(mu_);
  shutdown_ = true;
  cv_.notify_all();
}

size_t SchedulingQueue::num_active() const {
  std::lock_guard lock(mu_);
  return active_.size();
}
size_t SchedulingQueue::num_backoff() const {
  std::lock_guard lock(mu_);
  return backoff_count_;
}
size_t SchedulingQueue::num_unschedulable() const {
  std::lock_guard lock(mu_);
  return unschedulable_.size();
}

}  // namespace skiff::scheduler
