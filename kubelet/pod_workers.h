// PodWorkers: one serialized worker per pod on a small thread pool.
//
// enqueue(key) asks for a sync of `key`; a key is synced by at most one thread
// at a time, and requests that arrive while it is being synced collapse into
// one more sync right after (so the latest desired state always gets its own
// pass, and a burst of events costs one pass). enqueue_after() schedules a sync
// (back-off ends, grace periods, periodic relist); only the earliest pending
// time per key is kept. The sync function reads the current desired state
// itself: the queue carries keys, never objects.
//
// Thread-safe. The sync function runs on pool threads, never on the caller's.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace skiff::kubelet {

class PodWorkers {
 public:
  using Clock = std::chrono::steady_clock;
  PodWorkers(int threads, std::function<void(const std::string& key)> sync);
  ~PodWorkers();  // stop()
  PodWorkers(const PodWorkers&) = delete;
  PodWorkers& operator=(const PodWorkers&) = delete;

  void enqueue(const std::string& key);
  void enqueue_after(const std::string& key, std::chrono::milliseconds delay);
  // Finishes the syncs in progress, drops the rest, joins the threads.
  // Idempotent.
  void stop();
  // Keys queued, scheduled or being synced (for tests and metrics).
  size_t pending() const;

 private:
  void run();
  void make_ready_locked(const std::string& key);

  std::function<void(const std::string&)> sync_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> ready_;
  std::set<std::string> queued_;  // in ready_
  std::set<std::string> active_;  // being synced
  std::set<std::string> dirty_;   // asked for again while active
  std::map<std::string, Clock::time_point> timers_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace skiff::kubelet
