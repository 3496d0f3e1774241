// LeaderElector: Lease-based leader election, as client-go's leaderelection package.
//
// Several replicas of a component (controller-manager, scheduler) run the same elector against
// one coordination.k8s.io/v1 Lease. Whoever holds the Lease (spec.holderIdentity) is the leader
// and renews spec.renewTime every retry period. Writes are conditional on the resourceVersion
// read (optimistic concurrency), so two candidates can never both succeed.
//
// Clock-skew rule (client-go's observedTime): a candidate never compares the holder's renewTime
// with its own wall clock. It remembers, on its OWN monotonic clock, when it last saw the record
// change, and takes over only once leaseDurationSeconds have passed since then with no change.
//
// A leader that cannot renew within renew_deadline stops leading (its on_started_leading thread
// is told to stop, then on_stopped_leading runs); like kube-controller-manager, the process
// should then exit. When run() is stopped cleanly (SIGTERM) and release_on_cancel is set, the
// leader releases the Lease (holder cleared, leaseDurationSeconds = 1) so a standby takes over
// at its next retry instead of waiting for the lease to expire.
//
// Thread-safety: run() on one thread; is_leader()/leader() from any thread. Callbacks run on
// the elector's thread except on_started_leading, which gets a thread of its own.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>

#include "common/status.h"
#include "proto/client/workqueue.h"  // Clock, FakeClock
#include "proto/time.h"

namespace skiff::client {

class ApiClient;

// The fields of the Lease the election reads and writes.
struct LeaderElectionRecord {
  std::string holder_identity;  // "" when nobody holds it
  int32_t lease_duration_seconds = 0;
  proto::MicroTime acquire_time, renew_time;
  int32_t lease_transitions = 0;
  bool operator==(const LeaderElectionRecord&) const = default;
};

// Where the record lives. ApiLeaseLock is the real one; tests use an in-memory fake.
class LeaseLock {
 public:
  struct Versioned {
    LeaderElectionRecord record;
    std::string version;  // resourceVersion: update() is conditional on it
  };
  virtual ~LeaseLock() = default;
  // NotFound when there is no Lease yet.
  [[nodiscard]] virtual Result<Versioned> get() = 0;
  // AlreadyExists when another candidate created it first. Returns the new version.
  [[nodiscard]] virtual Result<std::string> create(const LeaderElectionRecord& r) = 0;
  // Conflict when `version` is no longer current. Returns the new version.
  [[nodiscard]] virtual Result<std::string> update(const LeaderElectionRecord& r,
                                                   const std::string& version) = 0;
  // "kube-system/skiff-controller-manager", for messages.
  virtual std::string describe() const = 0;
};

// A coordination.k8s.io/v1 Lease through the API. create() also creates the namespace when the
// API server says it does not exist (a fresh cluster has no kube-system yet).
class ApiLeaseLock : public LeaseLock {
 public:
  ApiLeaseLock(std::shared_ptr<ApiClient> api, std::string ns, std::string name);
  Result<Versioned> get() override;
  Result<std::string> create(const LeaderElectionRecord& r) override;
  Result<std::string> update(const LeaderElectionRecord& r, const std::string& version) override;
  std::string describe() const override { return ns_ + "/" + name_; }

 private:
  std::shared_ptr<ApiClient> api_;
  std::string ns_, name_;
  std::mutex mu_;
  std::string last_json_;  // the Lease as last read or written (update PUTs the whole object)
};

struct LeaderCallbacks {
  // Runs on its own thread once this candidate becomes leader. `stop` is signalled when
  // leadership is lost or run() is stopped; the function should then return promptly.
  std::function<void(std::stop_token stop)> on_started_leading;
  // After leading ended (lost, or run() stopped) and on_started_leading has returned. Not
  // called when this candidate never led.
  std::function<void()> on_stopped_leading;
  // Whenever the observed holder changes (also to this candidate itself). Must not block.
  std::function<void(const std::string& identity)> on_new_leader;
};

struct LeaderElectionConfig {
  std::shared_ptr<LeaseLock> lock;
  std::string identity;
  // Candidates wait this long after the last observed change before taking over.
  std::chrono::milliseconds lease_duration{15'000};
  // The leader gives up when it could not renew for this long.
  std::chrono::milliseconds renew_deadline{10'000};
  // Interval between attempts (acquire or renew).
  std::chrono::milliseconds retry_period{2'000};
  bool release_on_cancel = true;
  LeaderCallbacks callbacks;
  const Clock* clock = nullptr;  // monotonic, for observed times and deadlines; null = real
  // Wall clock for acquireTime/renewTime written into the Lease; null = system_clock.
  std::function<std::chrono::system_clock::time_point()> wall_clock;
};

// OK when lease_duration > renew_deadline > 1.2 * retry_period > 0 and lease_duration >= 1s
// (client-go's rule: the leader gives up before a standby may take over, with room for more
// than one renewal attempt). The Status says which relation is violated.
[[nodiscard]] Status validate_durations(std::chrono::milliseconds lease_duration,
                                        std::chrono::milliseconds renew_deadline,
                                        std::chrono::milliseconds retry_period);

class LeaderElector {
 public:
  // Invalid when the lock or identity is missing, or the durations are not
  // lease_duration > renew_deadline > 1.2 * retry_period > 0 (client-go's rule).
  static Result<std::unique_ptr<LeaderElector>> create(LeaderElectionConfig config);
  ~LeaderElector();

  // Blocks: tries to acquire every retry period until it leads or `stop` is requested; then
  // runs on_started_leading and renews until renewal fails for renew_deadline or `stop` is
  // requested (then releases, when configured). Returns when it no longer leads.
  void run(std::stop_token stop);

  // One attempt to acquire or renew (client-go's tryAcquireOrRenew); true when this candidate
  // holds the lease afterwards. Public for tests; run() calls it.
  bool try_acquire_or_renew();
  // Gives the lease up if this candidate holds it (holder "", leaseDurationSeconds 1).
  [[nodiscard]] Status release();

  bool is_leader() const;
  // The holder last observed ("" when none).
  std::string leader() const;
  const std::string& identity() const { return cfg_.identity; }

 private:
  explicit LeaderElector(LeaderElectionConfig config);
  bool acquire(std::stop_token stop);
  void renew(std::stop_token stop);
  void observe(const LeaderElectionRecord& r, const std::string& version);
  bool sleep(std::stop_token stop, std::chrono::milliseconds d);
  std::chrono::system_clock::time_point wall_now() const;

  LeaderElectionConfig cfg_;
  const Clock& clock_;
  mutable std::mutex mu_;
  LeaderElectionRecord observed_;
  std::string observed_version_;
  Clock::time_point observed_time_{};
  bool have_observed_ = false;
  std::string reported_leader_;
};

}  // namespace skiff::client
