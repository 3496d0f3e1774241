#include "proto/client/workqueue.h"

#include <algorithm>
#include <cmath>

namespace skiff::client {
namespace {

class RealClock : public Clock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }
};

// How long a blocked get() sleeps before looking at the clock again when delayed keys exist:
// a fake clock cannot wake us, so waits are sliced.
constexpr auto kPollSlice = std::chrono::milliseconds(20);

}  // namespace

const Clock& Clock::real() {
  static const RealClock c;
  return c;
}

WorkQueue::WorkQueue(WorkQueueOptions opts)
    : opts_(opts),
      clock_(opts.clock ? *opts.clock : Clock::real()),
      tokens_(opts.burst),
      last_refill_(clock_.now()) {}

void WorkQueue::add_locked(const std::string& key) {
  if (shutdown_ || dirty_.count(key)) return;
  dirty_.insert(key);
  if (processing_.count(key)) return;  // done() re-queues it
  queue_.push_back(key);
  cv_.notify_one();
}

void WorkQueue::add(const std::string& key) {
  std::lock_guard lock(mu_);
  add_locked(key);
}

void WorkQueue::promote_due_locked() const {
  auto now = clock_.now();
  while (!waiting_.empty() && waiting_.begin()->first <= now) {
    std::string key = waiting_.begin()->second;
    waiting_.erase(waiting_.begin());
    waiting_due_.erase(key);
    if (shutdown_ || dirty_.count(key)) continue;
    dirty_.insert(key);
    if (processing_.count(key)) continue;
    queue_.push_back(key);
    cv_.notify_one();
  }
}

void WorkQueue::add_after(const std::string& key, std::chrono::nanoseconds delay) {
  std::lock_guard lock(mu_);
  if (shutdown_) return;
  if (delay.count() <= 0) {
    add_locked(key);
    return;
  }
  auto due = clock_.now() + delay;
  auto it = waiting_due_.find(key);
  if (it != waiting_due_.end()) {
    if (it->second <= due) return;  // already due sooner
    auto range = waiting_.equal_range(it->second);
    for (auto w = range.first; w != range.second; ++w) {
      if (w->second == key) {
        waiting_.erase(w);
        break;
      }
    }
  }
  waiting_due_[key] = due;
  waiting_.emplace(due, key);
  cv_.notify_all();
}

std::chrono::nanoseconds WorkQueue::backoff_locked(const std::string& key) {
  int failures = failures_[key]++;
  double exp = static_cast<double>(opts_.base_delay.count()) * std::pow(2.0, failures);
  auto per_key = exp >= static_cast<double>(opts_.max_delay.count())
                     ? opts_.max_delay
                     : std::chrono::nanoseconds(static_cast<int64_t>(exp));
  // Token bucket: refill, take one; a negative balance is a wait until it is repaid.
  auto now = clock_.now();
  double elapsed = std::chrono::duration<double>(now - last_refill_).count();
  last_refill_ = now;
  tokens_ = std::min<double>(opts_.burst, tokens_ + elapsed * opts_.qps);
  tokens_ -= 1;
  std::chrono::nanoseconds bucket{0};
  if (tokens_ < 0 && opts_.qps > 0) {
    bucket = std::chrono::nanoseconds(static_cast<int64_t>(-tokens_ / opts_.qps * 1e9));
  }
  return std::max(per_key, bucket);
}

void WorkQueue::add_rate_limited(const std::string& key) {
  std::chrono::nanoseconds delay;
  {
    std::lock_guard lock(mu_);
    if (shutdown_) return;
    delay = backoff_locked(key);
  }
  add_after(key, delay);
}

void WorkQueue::forget(const std::string& key) {
  std::lock_guard lock(mu_);
  failures_.erase(key);
}

int WorkQueue::num_requeues(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

std::optional<std::string> WorkQueue::get_until(
    std::optional<std::chrono::steady_clock::time_point> end) {
  std::unique_lock lock(mu_);
  while (true) {
    promote_due_locked();
    if (shutdown_) return std::nullopt;
    if (!queue_.empty()) break;
    auto real_now = std::chrono::steady_clock::now();
    if (end && real_now >= *end) return std::nullopt;
    auto wake = real_now + (waiting_.empty() ? std::chrono::hours(1) : kPollSlice);
    if (!waiting_.empty() && &clock_ == &Clock::real()) {
      wake = std::min(wake, waiting_.begin()->first);
    }
    if (end) wake = std::min(wake, *end);
    cv_.wait_until(lock, wake);
  }
  std::string key = std::move(queue_.front());
  queue_.pop_front();
  processing_.insert(key);
  dirty_.erase(key);
  return key;
}

std::optional<std::string> WorkQueue::get() { return get_until(std::nullopt); }

std::optional<std::string> WorkQueue::get_for(std::chrono::milliseconds timeout) {
  return get_until(std::chrono::steady_clock::now() + timeout);
}

void WorkQueue::done(const std::string& key) {
  std::lock_guard lock(mu_);
  processing_.erase(key);
  if (dirty_.count(key) && !shutdown_) {
    queue_.push_back(key);
    cv_.notify_one();
  }
}

void WorkQueue::shut_down() {
  std::lock_guard lock(mu_);
  shutdown_ = true;
  cv_.notify_all();
}

bool WorkQueue::shutting_down() const {
  std::lock_guard lock(mu_);
  return shutdown_;
}

size_t WorkQueue::len() const {
  std::lock_guard lock(mu_);
  promote_due_locked();
  return queue_.size();
}

size_t WorkQueue::num_waiting() const {
  std::lock_guard lock(mu_);
  promote_due_locked();
  return waiting_.size();
}

}  // namespace skiff::client
