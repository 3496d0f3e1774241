#include "controllers/history/fake_history.h"

#include <chrono>

namespace skiff::controllers::history {

void FakeHistory::put(ControllerRevision r) {
  std::lock_guard lock(mu_);
  ++seq_;
  if (r.metadata.uid.empty()) r.metadata.uid = "uid-rev-" + std::to_string(seq_);
  if (r.metadata.resource_version.empty()) r.metadata.resource_version = std::to_string(seq_);
  if (!r.metadata.creation_timestamp)
    r.metadata.creation_timestamp =
        now_.value_or(proto::Time{proto::Clock::time_point{} + std::chrono::seconds(seq_)});
  objects_[key(r.metadata.namespace_, r.metadata.name)] = std::move(r);
}

std::vector<ControllerRevision> FakeHistory::all() const {
  std::lock_guard lock(mu_);
  std::vector<ControllerRevision> out;
  for (const auto& [k, r] : objects_) out.push_back(r);
  return out;
}

std::optional<ControllerRevision> FakeHistory::find(const std::string& ns,
                                                    const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = objects_.find(key(ns, name));
  if (it == objects_.end()) return std::nullopt;
  return it->second;
}

void FakeHistory::fail_next_create(Status st) {
  std::lock_guard lock(mu_);
  fail_create_ = std::move(st);
}
void FakeHistory::fail_next_update(Status st) {
  std::lock_guard lock(mu_);
  fail_update_ = std::move(st);
}
void FakeHistory::fail_next_delete(Status st) {
  std::lock_guard lock(mu_);
  fail_delete_ = std::move(st);
}
std::vector<std::string> FakeHistory::calls() const {
  std::lock_guard lock(mu_);
  return calls_;
}
void FakeHistory::clear_calls() {
  std::lock_guard lock(mu_);
  calls_.clear();
}
void FakeHistory::set_now(proto::Time now) {
  std::lock_guard lock(mu_);
  now_ = now;
}

Result<Revisions> FakeHistory::list_controller_revisions(const Parent& parent,
                                                         const proto::LabelSelector& selector) {
  std::lock_guard lock(mu_);
  Revisions out;
  for (const auto& [k, r] : objects_)
    if (listed_for(r, parent, selector)) out.push_back(r);
  return out;
}

Result<ControllerRevision> FakeHistory::create_controller_revision(
    const Parent& parent, const ControllerRevision& revision, int32_t* collision_count) {
  SKIFF_CHECK(collision_count != nullptr);
  ControllerRevision clone = revision;
  clone.metadata.namespace_ = parent.namespace_;
  for (int attempt = 0; attempt < 100; ++attempt) {
    clone.metadata.name =
        controller_revision_name(parent.name, hash_controller_revision(revision, *collision_count));
    {
      std::lock_guard lock(mu_);
      calls_.push_back("create " + key(clone.metadata.namespace_, clone.metadata.name));
      if (fail_create_) {
        Status st = std::move(*fail_create_);
        fail_create_.reset();
        return st;
      }
      auto it = objects_.find(key(clone.metadata.namespace_, clone.metadata.name));
      if (it != objects_.end()) {
        if (it->second.data == clone.data) return it->second;
        ++*collision_count;
        continue;
      }
    }
    clone.metadata.uid.clear();
    clone.metadata.resource_version.clear();
    clone.metadata.creation_timestamp.reset();
    put(clone);
    return *find(clone.metadata.namespace_, clone.metadata.name);
  }
  return Status::internal("create controllerrevision: 100 hash collisions in a row");
}

Result<ControllerRevision> FakeHistory::update_controller_revision(
    const ControllerRevision& revision, int64_t new_revision) {
  std::lock_guard lock(mu_);
  std::string k = key(revision.metadata.namespace_, revision.metadata.name);
  calls_.push_back("update " + k + " " + std::to_string(new_revision));
  if (fail_update_) {
    Status st = std::move(*fail_update_);
    fail_update_.reset();
    return st;
  }
  auto it = objects_.find(k);
  if (it == objects_.end())
    return Status::not_found("controllerrevisions.apps \"" + revision.metadata.name +
                             "\" not found");
  it->second.revision = new_revision;
  it->second.metadata.resource_version = std::to_string(++seq_);
  return it->second;
}

Status FakeHistory::delete_controller_revision(const ControllerRevision& revision) {
  std::lock_guard lock(mu_);
  std::string k = key(revision.metadata.namespace_, revision.metadata.name);
  calls_.push_back("delete " + k);
  if (fail_delete_) {
    Status st = std::move(*fail_delete_);
    fail_delete_.reset();
    return st;
  }
  if (objects_.erase(k) == 0)
    return Status::not_found("controllerrevisions.apps \"" + revision.metadata.name +
                             "\" not found");
  return Status::ok();
}

Result<ControllerRevision> FakeHistory::adopt_controller_revision(
    const Parent& parent, const ControllerRevision& revision) {
  std::lock_guard lock(mu_);
  std::string k = key(revision.metadata.namespace_, revision.metadata.name);
  calls_.push_back("adopt " + k);
  auto it = objects_.find(k);
  if (it == objects_.end() || it->second.metadata.uid != revision.metadata.uid)
    return Status::not_found("controllerrevisions.apps \"" + revision.metadata.name +
                             "\" not found");
  std::string owner = controller_uid(it->second);
  if (!owner.empty() && owner != parent.uid)
    return Status::conflict("adopt controllerrevision " + k + ": owned by uid " + owner);
  if (owner.empty()) {
    proto::OwnerReference ref;
    ref.api_version = parent.api_version;
    ref.kind = parent.kind;
    ref.name = parent.name;
    ref.uid = parent.uid;
    ref.controller = true;
    ref.block_owner_deletion = true;
    it->second.metadata.owner_references.push_back(ref);
  }
  return it->second;
}

Result<ControllerRevision> FakeHistory::release_controller_revision(
    const Parent& parent, const ControllerRevision& revision) {
  std::lock_guard lock(mu_);
  std::string k = key(revision.metadata.namespace_, revision.metadata.name);
  calls_.push_back("release " + k);
  auto it = objects_.find(k);
  if (it == objects_.end() || it->second.metadata.uid != revision.metadata.uid)
    return ControllerRevision{};
  auto& refs = it->second.metadata.owner_references;
  std::erase_if(refs, [&](const proto::OwnerReference& o) { return o.uid == parent.uid; });
  return it->second;
}

Result<ControllerRevision> FakeHistory::create_exact(const ControllerRevision& revision) {
  {
    std::lock_guard lock(mu_);
    std::string k = key(revision.metadata.namespace_, revision.metadata.name);
    calls_.push_back("create " + k);
    if (fail_create_) {
      Status st = std::move(*fail_create_);
      fail_create_.reset();
      return st;
    }
    if (objects_.count(k))
      return Status::already_exists("controllerrevisions.apps \"" + revision.metadata.name +
                                    "\" already exists");
  }
  ControllerRevision clone = revision;
  clone.metadata.uid.clear();
  clone.metadata.resource_version.clear();
  clone.metadata.creation_timestamp.reset();
  put(clone);
  return *find(clone.metadata.namespace_, clone.metadata.name);
}

Result<ControllerRevision> FakeHistory::get_controller_revision(const std::string& ns,
                                                                const std::string& name) {
  auto r = find(ns, name);
  if (!r) return Status::not_found("controllerrevisions.apps \"" + name + "\" not found");
  return *r;
}

}  // namespace skiff::controllers::history
