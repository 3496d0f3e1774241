// SchedulingQueue: the pods waiting for a node, as kube-scheduler's priority queue without
// priorities.
//
// - active: pods ready to be tried (new pods, pods whose back-off is over), higher
//   spec.priority first and FIFO among equal priorities (kube-scheduler's PrioritySort, with
//   the queue order standing in for its timestamps). No preemption.
// - back-off: pods that failed, waiting initial_backoff * 2^(attempts-1) (capped at
//   max_backoff) after their last attempt.
// - unschedulable: pods no node fits. They stay parked until a cluster event that may make
//   them fit (move_all_on_event: a Node added or changed, a pod deleted), which moves them to
//   back-off (so a pod is never retried faster than its back-off), or until they have been
//   parked for unschedulable_timeout.
// A pod is in at most one place. pop() hands a pod out ("in flight") until done(),
// unschedulable() or backoff(); an event or update during the attempt makes unschedulable()
// use back-off instead of parking, so no change is missed.
//
// Thread-safe. Time comes from a Clock (FakeClock in tests; see try_pop).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "proto/client/workqueue.h"

namespace skiff::scheduler {

using client::Clock;

struct QueueOptions {
  std::chrono::nanoseconds initial_backoff = std::chrono::seconds(1);
  std::chrono::nanoseconds max_backoff = std::chrono::seconds(10);
  std::chrono::nanoseconds unschedulable_timeout = std::chrono::seconds(60);
  const Clock* clock = nullptr;  // null: real
};

struct QueuedPod {
  std::string key;
  Clock::time_point first_seen;  // when it was first queued (for the e2e latency)
  int attempts = 0;              // failed attempts so far
};

class SchedulingQueue {
 public:
  explicit SchedulingQueue(QueueOptions opts = {});

  // A pod that needs scheduling was added or changed. New: active. Parked as unschedulable:
  // moved to back-off (it changed, it may fit now). In flight: remembered (see above).
  // `priority` is the pod's spec.priority (0 when unset).
  void add(const std::string& key, int32_t priority = 0);
  // The pod no longer needs scheduling (bound, deleted): forgotten wherever it is.
  void remove(const std::string& key);

  // The next active pod (promoting due back-offs and timed-out parked pods first); blocks until
  // there is one, `stop` or shut_down() (then nullopt).
  std::optional<QueuedPod> pop(std::stop_token stop);
  // Non-blocking pop (tests with a FakeClock).
  std::optional<QueuedPod> try_pop();

  // Ends an attempt: scheduled (forget the pod) ...
  void done(const std::string& key);
  // ... no node fits (park it, or back-off when something changed during the attempt) ...
  void unschedulable(const std::string& key);
  // ... or an error (binding failed): retry after back-off.
  void backoff(const std::string& key);

  // A Node was added or changed, or a pod was deleted: parked pods move to back-off.
  void move_all_on_event();

  void shut_down();
  size_t num_active() const;
  size_t num_backoff() const;
  size_t num_unschedulable() const;
  // Back-off of a pod after `attempts` failures.
  std::chrono::nanoseconds backoff_for(int attempts) const;

 private:
  enum class Where { kActive, kBackoff, kUnschedulable, kInFlight };
  struct Entry {
    Where where = Where::kActive;
    Clock::time_point first_seen, last_attempt;
    int attempts = 0;
    bool changed_in_flight = false;
    uint64_t popped_at_cycle = 0;
    int32_t priority = 0;
  };
  // Queues `key` in active_ behind every pod of the same or a higher priority.
  void push_active_locked(const std::string& key);
  void to_backoff_locked(const std::string& key, Entry& e);
  void promote_locked();
  std::optional<QueuedPod> take_locked();

  QueueOptions opts_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<std::string, Entry> entries_;
  std::deque<std::string> active_;
  std::multimap<Clock::time_point, std::string> backoff_;  // due -> key (stale ones skipped)
  std::unordered_set<std::string> unschedulable_;
  size_t backoff_count_ = 0;
  uint64_t move_cycle_ = 0;  // counts move_all_on_event calls
  bool shutdown_ = false;
};

}  // namespace skiff::scheduler
