// WorkQueue: the controllers' queue of string keys ("namespace/name").
//
// - De-duplicating: a key waiting in the queue is there once however often it is added; a key
//   added while a worker processes it is queued again when the worker calls done(), so one key
//   is never processed by two workers at once and no change is lost.
// - Delays: add_after() and add_rate_limited(), which waits the longer of the key's
//   exponential back-off (base * 2^failures, capped) and an overall token bucket (qps, burst).
//   forget() resets a key's back-off after a successful sync.
// - shut_down() wakes every get() (which then returns nullopt) and ignores further adds.
// Thread-safe. Time comes from a Clock, so tests drive it with FakeClock.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace skiff::client {

class Clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual time_point now() const = 0;
  static const Clock& real();
};

// A clock that moves only when told to. Thread-safe.
class FakeClock : public Clock {
 public:
  time_point now() const override {
    std::lock_guard lock(mu_);
    return now_;
  }
  void advance(std::chrono::nanoseconds d) {
    std::lock_guard lock(mu_);
    now_ += d;
  }

 private:
  mutable std::mutex mu_;
  time_point now_{std::chrono::hours(1)};
};

struct WorkQueueOptions {
  std::chrono::nanoseconds base_delay = std::chrono::milliseconds(5);
  std::chrono::nanoseconds max_delay = std::chrono::seconds(1000);
  double qps = 10;  // overall retry rate once the burst is spent
  int burst = 100;
  const Clock* clock = nullptr;  // nullptr: Clock::real()
};

class WorkQueue {
 public:
  explicit WorkQueue(WorkQueueOptions opts = {});

  void add(const std::string& key);
  // Adds `key` once `delay` has passed (at once when delay <= 0).
  void add_after(const std::string& key, std::chrono::nanoseconds delay);
  // Adds `key` after its back-off (see above) and counts a failure for it.
  void add_rate_limited(const std::string& key);
  // Clears `key`'s failure count (its next add_rate_limited waits base_delay again).
  void forget(const std::string& key);
  int num_requeues(const std::string& key) const;

  // Blocks until a key is ready, then marks it processing. nullopt after shut_down().
  std::optional<std::string> get();
  // Like get() but gives up after `timeout` (real time) and returns nullopt.
  std::optional<std::string> get_for(std::chrono::milliseconds timeout);
  // REQUIRES: `key` came from get(). Ends its processing; re-queues it if it was added since.
  void done(const std::string& key);

  void shut_down();
  bool shutting_down() const;
  // Keys ready to be handed out (delayed keys not yet due are not counted).
  size_t len() const;
  // Keys waiting for a delay to pass.
  size_t num_waiting() const;

 private:
  void add_locked(const std::string& key);
  void promote_due_locked() const;
  std::chrono::nanoseconds backoff_locked(const std::string& key);
  std::optional<std::string> get_until(std::optional<std::chrono::steady_clock::time_point> end);

  WorkQueueOptions opts_;
  const Clock& clock_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable std::deque<std::string> queue_;
  mutable std::unordered_set<std::string> dirty_;
  std::unordered_set<std::string> processing_;
  // Delayed keys: when due -> key; plus each key's earliest due time to de-duplicate.
  mutable std::multimap<Clock::time_point, std::string> waiting_;
  mutable std::unordered_map<std::string, Clock::time_point> waiting_due_;
  std::unordered_map<std::string, int> failures_;
  double tokens_;
  Clock::time_point last_refill_;
  bool shutdown_ = false;
};

}  // namespace skiff::client
