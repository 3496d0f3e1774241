#include "controllers/history/history.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "controllers/api_util.h"
#include "proto/client/api_client.h"
#include "proto/registry.h"

namespace skiff::controllers::history {

using nlohmann::json;

namespace {

const proto::ResourceType& revision_type() {
  return resource_type<proto::controllerrevision_resource>();
}

std::string key_of(const ControllerRevision& r) {
  return r.metadata.namespace_ + "/" + r.metadata.name;
}

// How many names create_controller_revision tries before it gives up: each collision means
// another revision's data hashed to the same name, so more than a few is a bug, not bad luck.
constexpr int kMaxCollisionProbes = 100;
constexpr int kMaxUpdateAttempts = 5;

}  // namespace

uint32_t fnv32(const std::string& data, uint32_t h) {
  for (unsigned char c : data) {
    h *= 16777619u;
    h ^= c;
  }
  return h;
}

uint32_t fnv32a(const std::string& data, uint32_t h) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

std::string safe_encode_string(const std::string& s) {
  static const std::string alnum = "bcdfghjklmnpqrstvwxz2456789";
  std::string out(s.size(), 'b');
  for (size_t i = 0; i < s.size(); ++i)
    out[i] = alnum[static_cast<unsigned char>(s[i]) % alnum.size()];
  return out;
}

std::string hash_controller_revision(const ControllerRevision& r, std::optional<int32_t> probe) {
  uint32_t h = 2166136261u;
  if (!r.data.is_null()) h = fnv32(r.data.dump(), h);
  if (probe) h = fnv32(std::to_string(*probe), h);
  return safe_encode_string(std::to_string(h));
}

std::string compute_template_hash(const json& pod_template,
                                  std::optional<int32_t> collision_count) {
  uint32_t h = fnv32a(pod_template.dump());
  if (collision_count) {
    std::string bytes(8, '\0');
    auto v = static_cast<uint32_t>(*collision_count);
    for (int i = 0; i < 4; ++i) bytes[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    h = fnv32a(bytes, h);
  }
  return safe_encode_string(std::to_string(h));
}

std::string controller_revision_name(const std::string& prefix, const std::string& hash) {
  return (prefix.size() > 223 ? prefix.substr(0, 223) : prefix) + "-" + hash;
}

Result<ControllerRevision> new_revision(const Parent& parent,
                                        const std::map<std::string, std::string>& template_labels,
                                        const json& data, int64_t revision,
                                        std::optional<int32_t> collision_count) {
  if (!data.is_object())
    return Status::invalid("new revision of " + parent.kind + " " + parent.namespace_ + "/" +
                           parent.name + ": data must be a JSON object, not " + data.type_name());
  ControllerRevision r;
  r.type_meta.api_version = "apps/v1";
  r.type_meta.kind = "ControllerRevision";
  r.metadata.namespace_ = parent.namespace_;
  r.metadata.labels = template_labels;
  proto::OwnerReference ref;
  ref.api_version = parent.api_version;
  ref.kind = parent.kind;
  ref.name = parent.name;
  ref.uid = parent.uid;
  ref.controller = true;
  ref.block_owner_deletion = true;
  r.metadata.owner_references.push_back(ref);
  r.data = data;
  r.revision = revision;
  std::string hash = hash_controller_revision(r, collision_count);
  r.metadata.name = controller_revision_name(parent.name, hash);
  r.metadata.labels[kControllerRevisionHashLabel] = hash;
  return r;
}

bool equal_revision(const ControllerRevision& a, const ControllerRevision& b) {
  return a.data == b.data;
}

std::vector<size_t> find_equal_revisions(const Revisions& revisions,
                                         const ControllerRevision& needle) {
  std::vector<size_t> out;
  for (size_t i = 0; i < revisions.size(); ++i)
    if (equal_revision(revisions[i], needle)) out.push_back(i);
  return out;
}

int64_t next_revision(const Revisions& revisions) {
  int64_t max = 0;
  for (const auto& r : revisions) max = std::max(max, r.revision);
  return max + 1;
}

bool revision_less(const ControllerRevision& a, const ControllerRevision& b) {
  if (a.revision != b.revision) return a.revision < b.revision;
  auto ta = a.metadata.creation_timestamp.value_or(proto::Time{}).value;
  auto tb = b.metadata.creation_timestamp.value_or(proto::Time{}).value;
  if (ta != tb) return ta < tb;
  return a.metadata.name < b.metadata.name;
}

void sort_revisions(Revisions& revisions) {
  std::stable_sort(revisions.begin(), revisions.end(), revision_less);
}

std::string controller_uid(const ControllerRevision& r) {
  for (const auto& o : r.metadata.owner_references)
    if (o.controller.value_or(false)) return o.uid;
  return "";
}

Result<ControllerRevision> revision_from_json(const json& j) {
  proto::FieldErrors errs;
  auto r = proto::decode<ControllerRevision>(j, errs);
  if (!errs.empty()) {
    std::string msg = "decode ControllerRevision " + str(at(j, "metadata", "namespace")) + "/" +
                      str(at(j, "metadata", "name")) + ":";
    for (const auto& e : errs) msg += " " + e.field + ": " + e.detail + ";";
    return Status::invalid(msg);
  }
  return r;
}

json revision_to_json(const ControllerRevision& r) { return proto::encode(r); }

bool listed_for(const ControllerRevision& r, const Parent& parent,
                const proto::LabelSelector& selector) {
  if (r.metadata.namespace_ != parent.namespace_) return false;
  if (!selector.matches(r.metadata.labels)) return false;
  std::string uid = controller_uid(r);
  return uid.empty() || uid == parent.uid;
}

json adopt_patch(const Parent& parent, const ControllerRevision& r) {
  return {{"metadata",
           {{"ownerReferences", json::array({{{"apiVersion", parent.api_version},
                                              {"kind", parent.kind},
                                              {"name", parent.name},
                                              {"uid", parent.uid},
                                              {"controller", true},
                                              {"blockOwnerDeletion", true}}})},
            {"uid", r.metadata.uid}}}};
}

json release_patch(const Parent& parent, const ControllerRevision& r) {
  return {{"metadata",
           {{"ownerReferences", json::array({{{"$patch", "delete"}, {"uid", parent.uid}}})},
            {"uid", r.metadata.uid}}}};
}

// ---------------------------------------------------------------------------------------------
// ApiHistory

Result<Revisions> ApiHistory::list_controller_revisions(const Parent& parent,
                                                        const proto::LabelSelector& selector) {
  std::vector<json> items;
  if (cache_) {
    items = cache_(parent.namespace_);
  } else {
    client::ListOptions opts;
    opts.label_selector = selector.to_string();
    auto list = api_.list(revision_type(), parent.namespace_, opts);
    if (!list)
      return list.status().with_context("list controllerrevisions of " + parent.kind + " " +
                                        parent.namespace_ + "/" + parent.name);
    for (const auto& i : at(*list, "items")) items.push_back(i);
  }
  Revisions out;
  for (const auto& j : items) {
    auto r = revision_from_json(j);
    if (!r) continue;  // a malformed object is not one of ours to manage
    if (listed_for(*r, parent, selector)) out.push_back(std::move(*r));
  }
  return out;
}

Result<ControllerRevision> ApiHistory::create_controller_revision(
    const Parent& parent, const ControllerRevision& revision, int32_t* collision_count) {
  SKIFF_CHECK(collision_count != nullptr);
  ControllerRevision clone = revision;
  clone.metadata.namespace_ = parent.namespace_;
  for (int attempt = 0; attempt < kMaxCollisionProbes; ++attempt) {
    clone.metadata.name =
        controller_revision_name(parent.name, hash_controller_revision(revision, *collision_count));
    auto created = api_.create(revision_type(), parent.namespace_, revision_to_json(clone));
    if (created) return revision_from_json(*created);
    if (created.status().code() != Code::kAlreadyExists)
      return created.status().with_context("create controllerrevision " + key_of(clone));
    auto existing = api_.get(revision_type(), parent.namespace_, clone.metadata.name);
    if (!existing)
      return existing.status().with_context("get existing controllerrevision " + key_of(clone));
    auto ex = revision_from_json(*existing);
    if (!ex) return ex.status();
    if (ex->data == clone.data) return ex;
    ++*collision_count;
  }
  return Status::internal("create controllerrevision for " + parent.kind + " " + parent.namespace_ +
                          "/" + parent.name + ": " + std::to_string(kMaxCollisionProbes) +
                          " hash collisions in a row");
}

Result<ControllerRevision> ApiHistory::update_controller_revision(
    const ControllerRevision& revision, int64_t new_revision) {
  ControllerRevision clone = revision;
  Status last;
  for (int attempt = 0; attempt < kMaxUpdateAttempts; ++attempt) {
    if (clone.revision == new_revision) return clone;
    clone.revision = new_revision;
    auto updated = api_.update(revision_type(), revision_to_json(clone));
    if (updated) return revision_from_json(*updated);
    last = updated.status();
    if (last.code() != Code::kConflict) break;
    auto fresh = api_.get(revision_type(), revision.metadata.namespace_, revision.metadata.name);
    if (!fresh) return fresh.status().with_context("re-read controllerrevision " + key_of(clone));
    auto f = revision_from_json(*fresh);
    if (!f) return f.status();
    clone = std::move(*f);
  }
  return last.with_context("update controllerrevision " + key_of(revision) + " to revision " +
                           std::to_string(new_revision));
}

Status ApiHistory::delete_controller_revision(const ControllerRevision& revision) {
  Status st = api_.remove(revision_type(), revision.metadata.namespace_, revision.metadata.name);
  if (!st) return st.with_context("delete controllerrevision " + key_of(revision));
  return Status::ok();
}

Result<ControllerRevision> ApiHistory::adopt_controller_revision(
    const Parent& parent, const ControllerRevision& revision) {
  std::string owner = controller_uid(revision);
  if (!owner.empty() && owner != parent.uid)
    return Status::conflict("adopt controllerrevision " + key_of(revision) + ": owned by uid " +
                            owner + ", not " + parent.kind + " " + parent.name);
  auto r = api_.patch(revision_type(), revision.metadata.namespace_, revision.metadata.name,
                      adopt_patch(parent, revision), client::PatchType::kStrategic);
  if (!r) return r.status().with_context("adopt controllerrevision " + key_of(revision));
  return revision_from_json(*r);
}

Result<ControllerRevision> ApiHistory::release_controller_revision(
    const Parent& parent, const ControllerRevision& revision) {
  auto r = api_.patch(revision_type(), revision.metadata.namespace_, revision.metadata.name,
                      release_patch(parent, revision), client::PatchType::kStrategic);
  if (!r) {
    // Gone, or re-created under another uid (the uid precondition failed): nothing to release.
    if (r.status().code() == Code::kNotFound || r.status().code() == Code::kInvalid)
      return ControllerRevision{};
    return r.status().with_context("release controllerrevision " + key_of(revision));
  }
  return revision_from_json(*r);
}

Result<ControllerRevision> History::create_exact(const ControllerRevision& revision) {
  return Status::internal("create controllerrevision " + key_of(revision) +
                          ": create_exact is not implemented by this History");
}

Result<ControllerRevision> History::get_controller_revision(const std::string& ns,
                                                            const std::string& name) {
  return Status::internal("get controllerrevision " + ns + "/" + name +
                          ": not implemented by this History");
}

Result<ControllerRevision> ApiHistory::create_exact(const ControllerRevision& revision) {
  auto created =
      api_.create(revision_type(), revision.metadata.namespace_, revision_to_json(revision));
  if (!created) {
    if (created.status().code() == Code::kAlreadyExists) return created.status();
    return created.status().with_context("create controllerrevision " + key_of(revision));
  }
  return revision_from_json(*created);
}

Result<ControllerRevision> ApiHistory::get_controller_revision(const std::string& ns,
                                                               const std::string& name) {
  auto got = api_.get(revision_type(), ns, name);
  if (!got) return got.status();
  return revision_from_json(*got);
}

}  // namespace skiff::controllers::history
