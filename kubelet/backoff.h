// Backoff: per-key exponential back-off as the kubelet's flowcontrol.Backoff
// does it: the first restart is immediate, each later one waits `initial`
// doubling up to `max`, measured from the moment the previous instance
// finished; an entry untouched for 2*max starts over.
//
// Used for container restarts (CrashLoopBackOff) and image pulls
// (ImagePullBackOff). Time is passed in, so tests need no clock. Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>

namespace skiff::kubelet {

class Backoff {
 public:
  using Clock = std::chrono::system_clock;
  using Duration = std::chrono::milliseconds;
  Backoff(Duration initial = std::chrono::seconds(10), Duration max = std::chrono::minutes(5))
      : initial_(initial), max_(max) {}

  // True while `now` is within the current back-off counted from `since`.
  bool in_backoff(const std::string& key, Clock::time_point since, Clock::time_point now) const;
  // When the back-off counted from `since` ends (`since` itself when the key
  // has none).
  Clock::time_point until(const std::string& key, Clock::time_point since) const;
  // Records one more attempt: the back-off becomes `initial` (new or expired
  // entry) or doubles.
  void next(const std::string& key, Clock::time_point now);
  // The current back-off of `key` (zero when none).
  Duration current(const std::string& key) const;
  void reset(const std::string& key);
  // Forgets every key starting with `prefix` (a deleted pod's "uid/").
  void reset_prefix(const std::string& prefix);

 private:
  struct Entry {
    Duration backoff{0};
    Clock::time_point last_update;
  };
  const Duration initial_, max_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

}  // namespace skiff::kubelet
