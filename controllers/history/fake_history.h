// FakeHistory: an in-memory History for controller unit tests (Kubernetes' fake history uses a
// fake clientset the same way). Behaves as ApiHistory over an API server would: names from the
// hash and collision count, AlreadyExists handling, uid preconditions. Records every call and
// can be told to fail the next create/update/delete. Thread-safe (one mutex).
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "controllers/history/history.h"

namespace skiff::controllers::history {

class FakeHistory : public History {
 public:
  Result<Revisions> list_controller_revisions(const Parent& parent,
                                              const proto::LabelSelector& selector) override;
  Result<ControllerRevision> create_controller_revision(const Parent& parent,
                                                        const ControllerRevision& revision,
                                                        int32_t* collision_count) override;
  Result<ControllerRevision> update_controller_revision(const ControllerRevision& revision,
                                                        int64_t new_revision) override;
  Status delete_controller_revision(const ControllerRevision& revision) override;
  Result<ControllerRevision> adopt_controller_revision(const Parent& parent,
                                                       const ControllerRevision& revision) override;
  Result<ControllerRevision> release_controller_revision(
      const Parent& parent, const ControllerRevision& revision) override;
  Result<ControllerRevision> create_exact(const ControllerRevision& revision) override;
  Result<ControllerRevision> get_controller_revision(const std::string& ns,
                                                     const std::string& name) override;

  // Test set-up and inspection. Stored objects are keyed "ns/name".
  void put(ControllerRevision r);  // as if created by someone else (uid filled when empty)
  std::vector<ControllerRevision> all() const;  // sorted by key
  std::optional<ControllerRevision> find(const std::string& ns, const std::string& name) const;
  // The next call of that kind fails with `st` (then the fake works again).
  void fail_next_create(Status st);
  void fail_next_update(Status st);
  void fail_next_delete(Status st);
  // "create ns/name", "update ns/name 3", "delete ns/name", "adopt ns/name", "release ns/name"
  // (create_exact logs "create ns/name" too).
  std::vector<std::string> calls() const;
  void clear_calls();
  // Creation timestamps: `now` is stamped on created objects (default: the epoch + n seconds,
  // increasing, so sort order by creation is deterministic).
  void set_now(proto::Time now);

 private:
  static std::string key(const std::string& ns, const std::string& name) { return ns + "/" + name; }
  mutable std::mutex mu_;
  std::map<std::string, ControllerRevision> objects_;
  std::vector<std::string> calls_;
  std::optional<Status> fail_create_, fail_update_, fail_delete_;
  std::optional<proto::Time> now_;
  int64_t seq_ = 0;
};

}  // namespace skiff::controllers::history
