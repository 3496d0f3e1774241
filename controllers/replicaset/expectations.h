// Expectations: what a controller has asked the API for and not yet seen in its informer cache
// (Kubernetes' UIDTrackingControllerExpectations), per controller key ("ns/name").
//
// A sync that creates N pods first expects N adds; each pod add event lowers it. Deletions are
// expected by pod key, so only the delete (or terminating update) of a pod this controller
// deleted lowers them, once. Until a key's expectations are met (or 5 minutes have passed since
// they were set, in case an event was lost) its sync does not create or delete, so a cache that
// lags behind the API never causes a second round of creates.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "proto/client/workqueue.h"

namespace skiff::controllers::replicaset {

class Expectations {
 public:
  static constexpr std::chrono::minutes kDefaultTtl{5};

  explicit Expectations(const client::Clock& clock, std::chrono::nanoseconds ttl = kDefaultTtl)
      : clock_(clock), ttl_(ttl) {}

  // True when `key` has no record, its adds and deletes are all observed, or the record expired.
  bool satisfied(const std::string& key) const;
  // Replaces `key`'s record: expect `adds` creations (and no deletions).
  void expect_creations(const std::string& key, int adds);
  // Replaces `key`'s record: expect the deletion of these pods ("ns/name").
  void expect_deletions(const std::string& key, const std::vector<std::string>& pod_keys);
  // One expected creation happened (or will not happen: a failed create).
  void creation_observed(const std::string& key);
  // The deletion of `pod_key` happened (or will not: a failed delete); ignored when not expected.
  void deletion_observed(const std::string& key, const std::string& pod_key);
  // Drops `key`'s record (its controller object is gone).
  void forget(const std::string& key);

  struct Pending {
    int adds = 0;
    int deletes = 0;
  };
  // What `key` still waits for (nullopt without a record).
  std::optional<Pending> pending(const std::string& key) const;

 private:
  struct Record {
    int adds = 0;
    std::set<std::string> deletes;
    client::Clock::time_point set_at;
  };
  const client::Clock& clock_;
  std::chrono::nanoseconds ttl_;
  mutable std::mutex mu_;
  std::map<std::string, Record> records_;
};

}  // namespace skiff::controllers::replicaset
