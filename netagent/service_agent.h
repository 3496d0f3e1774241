// ServiceAgent: the Service half of skiff-netagent (see netagent/README.md). It follows every
// Service and Endpoints, keeps a ServiceMap (netagent/services) up to date, and has the
// Proxier program table `ip skiff` from it; after each sync it deletes the conntrack entries
// of UDP flows whose endpoint went away (netagent/conntrack), as kube-proxy does.
//
// Informer handlers only record which Service changed and when (the moment the change was
// seen, and the Endpoints' `endpoints.kubernetes.io/last-change-trigger-time`). One worker
// thread applies them: a change is applied at once when the last sync is at least
// min_sync_interval old, else with everything else that arrived meanwhile when that interval
// is over (bursts coalesce into one batch per interval). A full re-assert (the map rebuilt from
// the informers' caches, every chain and map of ours rewritten) runs after the first lists,
// every full_sync_period, and after a failed sync (retried with exponential back-off).
// Stopping leaves the rules in place: conntrack keeps established flows, and a restarted agent
// rebuilds the same ruleset.
//
// Thread-safety: start/stop from one thread; metrics_text and healthy from any.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "netagent/conntrack/conntrack.h"
#include "netagent/services/proxier.h"

namespace skiff::client {
class Informer;
}

namespace skiff::fastpath {
class FastPath;
}  // namespace skiff::fastpath

namespace skiff::nft {
class NftTables;
}

namespace skiff::netagent {

inline constexpr char kTriggerTimeAnnotation[] = "endpoints.kubernetes.io/last-change-trigger-time";

// ---- pure parts (tested in netagent_test.cc) -------------------------------------------------

// A Prometheus histogram with fixed upper bounds (seconds). Not thread-safe.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  // The _bucket, _sum and _count lines, with # HELP and # TYPE.
  std::string text(const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bound (not cumulative); +Inf is count_
  uint64_t count_ = 0;
  double sum_ = 0;
};

// The changes of one Service (ns/name) not yet applied.
struct PendingChange {
  std::chrono::steady_clock::time_point seen;  // the first unapplied change was seen then
  // Distinct Endpoints trigger times of the unapplied changes (at most kMaxTriggers, oldest).
  std::vector<std::chrono::system_clock::time_point> triggers;
  // False for the objects of the informers' first lists (a start, not a change to measure).
  bool measure = true;
};

// Records changes per "ns/name" key; merging keeps the first seen time and every distinct
// trigger time.
class ChangeTracker {
 public:
  static constexpr size_t kMaxTriggers = 16;
  void mark(const std::string& key, std::chrono::steady_clock::time_point seen,
            std::optional<std::chrono::system_clock::time_point> trigger, bool measure);
  // Puts back changes taken by take() (a failed sync), merged with newer ones.
  void restore(std::map<std::string, PendingChange> changes);
  std::map<std::string, PendingChange> take();
  bool empty() const { return pending_.empty(); }
  size_t size() const { return pending_.size(); }

 private:
  void merge(const std::string& key, const PendingChange& c);
  std::map<std::string, PendingChange> pending_;
};

// The Endpoints' last-change-trigger-time annotation, when present and RFC 3339.
std::optional<std::chrono::system_clock::time_point> trigger_time(const nlohmann::json& endpoints);

// Informer transforms (client::InformerOptions::transform) for the Service and Endpoints
// informers that the proxy, DNS and the LB announcer share: they keep only the fields those
// read, so 10,000 Services x 5 endpoints cost a few MB of cache instead of ~130 MB. A reader
// of another field must add it here.
//   Service:   metadata name/namespace/resourceVersion/deletionTimestamp; spec type,
//              clusterIP, clusterIPs (unless it is just [clusterIP]), ports
//              (name/protocol/port/nodePort), externalIPs, sessionAffinity
//              (+Config), external/internalTrafficPolicy, loadBalancerClass, externalName;
//              status.loadBalancer.
//   Endpoints: the same metadata + the trigger-time annotation; subsets' addresses (ip,
//              nodeName, hostname) and ports (name/port/protocol); notReadyAddresses and
//              targetRef are dropped (no reader).
// Anything that is not an object is left as it is (the model reports garbage).
void slim_service(nlohmann::json& svc);
void slim_endpoints(nlohmann::json& eps);

// The network programming latencies, in seconds, of the changes applied by a sync that returned
// at `done` (steady) / `done_wall` (system): per trigger time newer than `not_before` (the
// agent's start: older ones come from the first lists), else from the moment the change was
// seen. Changes with measure == false give none; negative values (clock skew) are dropped.
std::vector<double> programming_latencies(const std::map<std::string, PendingChange>& applied,
                                          std::chrono::steady_clock::time_point done,
                                          std::chrono::system_clock::time_point done_wall,
                                          std::chrono::system_clock::time_point not_before);

// The conntrack entries to delete after a sync that went from `before` to `after` and reported
// `stale` flows: each stale flow (a removed UDP endpoint, on a Service address or a node port),
// and every entry to the addresses (ClusterIP, external and LoadBalancer IPs) and node port of a
// UDP ServicePort that had no endpoints in `before` and has some in `after`.
conntrack::CleanupSpec conntrack_cleanup_spec(const services::ServiceMap& before,
                                              const services::ServiceMap& after,
                                              const std::vector<services::StaleUdpFlow>& stale);
// Adds `more` to `into` (a cleanup that failed is retried with the next one's).
void merge_cleanup(conntrack::CleanupSpec* into, const conntrack::CleanupSpec& more);

// When the worker syncs next. A full re-assert is due at the start, every full_period after a
// full sync that succeeded, and as the retry of a failed sync: min_retry after it, doubling up to
// max_retry while they keep failing; changes wait for that retry. Otherwise changes are applied
// at most once per min_interval (from the start of the last sync). Not thread-safe.
class SyncSchedule {
 public:
  using Clock = std::chrono::steady_clock;
  SyncSchedule(std::chrono::milliseconds full_period, std::chrono::milliseconds min_interval,
               std::chrono::milliseconds min_retry, std::chrono::milliseconds max_retry,
               Clock::time_point start);
  // When the next sync is due; `pending`: changes are waiting.
  Clock::time_point due(bool pending) const;
  // Whether a sync starting at `now` re-asserts everything.
  bool full(Clock::time_point now) const { return now >= next_full_; }
  // Records a sync that started at `start` and ended at `end`; on failure returns the delay
  // before the retry.
  std::chrono::milliseconds done(bool ok, Clock::time_point start, Clock::time_point end);

 private:
  std::chrono::milliseconds full_period_, min_interval_, min_retry_, max_retry_;
  Clock::time_point next_full_;  // also the retry after a failure
  Clock::time_point last_start_{};
  std::chrono::milliseconds retry_;  // the back-off of the next failure
  bool failed_ = false;              // the last sync failed: changes wait for the retry
};

// ---- the agent -------------------------------------------------------------------------------

struct ServiceOptions {
  std::string node_name;
  std::string cluster_cidr = "10.244.0.0/16";
  std::string service_cidr = "10.96.0.0/16";
  std::chrono::milliseconds full_sync_period{60'000};
  std::chrono::milliseconds min_sync_interval{20};
  std::chrono::milliseconds min_retry{500};
  std::chrono::milliseconds max_retry{30'000};
  // Deletes conntrack entries; default: a ctnetlink socket opened at the first use.
  std::function<Status(const conntrack::CleanupSpec&, conntrack::CleanupResult*)> conntrack;
  // Required: the Service and Endpoints informers, shared with the agent's other components
  // (not owned). start() adds handlers to them, so the owner starts them after start() and
  // stops them after stop() (before destroying the agent).
  client::Informer* services = nullptr;
  client::Informer* endpoints = nullptr;
  // The fast path (netagent/fastpath), told the endpoints before each commit; nullptr: none.
  std::shared_ptr<fastpath::FastPath> fast_path;
};

class ServiceAgent {
 public:
  // `tables` is not owned and must outlive the agent.
  ServiceAgent(ServiceOptions opts, nft::NftTables* tables);
  ~ServiceAgent();

  // Validates the options, creates the Proxier, adds its handlers to the informers and starts
  // the worker. The first sync waits for both informers' first lists (an empty map would delete
  // every rule).
  Status start();
  // Stops the worker; the rules stay.
  void stop();

  std::string metrics_text() const;
  // False when the last sync failed long ago or the worker has not looped for a long time.
  bool healthy() const;

 private:
  void mark(const nlohmann::json& obj, bool endpoints);
  void run(std::stop_token stop);
  // Applies `changes` (full: rebuilds the map from the caches); returns the sync's status.
  Status sync(std::map<std::string, PendingChange>& changes, bool full);
  void cleanup_conntrack();

  ServiceOptions opts_;
  nft::NftTables* tables_;
  std::unique_ptr<services::Proxier> proxier_;
  client::Informer* services_ = nullptr;
  client::Informer* endpoints_ = nullptr;
  std::unique_ptr<conntrack::Conntrack> ct_;  // opened at the first cleanup
  std::chrono::system_clock::time_point started_wall_{};

  // Worker thread only.
  conntrack::CleanupSpec pending_cleanup_;
  std::set<std::string> last_skipped_;  // of the last full sync, logged when they change

  std::mutex mu_;
  std::condition_variable_any cv_;
  ChangeTracker changes_;

  mutable std::mutex stats_mu_;
  uint64_t syncs_full_ = 0, syncs_partial_ = 0, sync_errors_ = 0;
  uint64_t conntrack_deleted_ = 0, conntrack_errors_ = 0;
  double last_sync_seconds_ = 0;
  Histogram sync_hist_;
  Histogram latency_hist_;
  size_t ports_ = 0, endpoints_count_ = 0, skipped_ = 0;
  bool synced_ = false;       // the first sync succeeded
  bool last_failed_ = false;  // the last sync failed
  std::chrono::steady_clock::time_point last_loop_{}, last_ok_{};
  std::string last_error_;

  std::jthread worker_;
};

}  // namespace skiff::netagent
