// ControllerRevision history, Kubernetes' pkg/controller/history in C++: the immutable snapshots
// (apps/v1 ControllerRevision) a StatefulSet or DaemonSet keeps of its pod template, how they
// are named and hashed, compared and ordered, and the `History` interface through which a
// controller lists, creates, renumbers, adopts, releases and deletes them.
//
// The pure functions are thread-safe. `ApiHistory` is thread-safe as far as its ApiClient is;
// `FakeHistory` (fake_history.h) is guarded by a mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/controllerrevision.h"
#include "proto/selector.h"

namespace skiff::client {
class ApiClient;
}

namespace skiff::controllers::history {

using proto::ControllerRevision;
using Revisions = std::vector<ControllerRevision>;

// history.ControllerRevisionHashLabel: the hash of the revision's data, set by new_revision.
inline constexpr const char* kControllerRevisionHashLabel = "controller.kubernetes.io/hash";
// apps.ControllerRevisionHashLabelKey (== DefaultDaemonSetUniqueLabelKey): what StatefulSet and
// DaemonSet pods (and DaemonSet revisions) carry to name their revision.
inline constexpr const char* kRevisionHashLabel = "controller-revision-hash";

// The controller that owns revisions: what an ownerReference names.
struct Parent {
  std::string api_version;  // "apps/v1"
  std::string kind;         // "StatefulSet"
  std::string namespace_;
  std::string name;
  std::string uid;
};

// FNV-1 (hash/fnv New32, multiply then xor) and FNV-1a (New32a, xor then multiply), 32 bits,
// continuing from `h`.
uint32_t fnv32(const std::string& data, uint32_t h = 2166136261u);
uint32_t fnv32a(const std::string& data, uint32_t h = 2166136261u);
// rand.SafeEncodeString: each byte mapped onto "bcdfghjklmnpqrstvwxz2456789" (no vowels, no
// look-alikes), so a hash never spells a word.
std::string safe_encode_string(const std::string& s);

// HashControllerRevision: FNV-1 over the revision's data (its JSON text, keys sorted: our
// canonical form of Data.Raw) and, when `probe` is set, the probe in decimal; the decimal
// 32-bit sum rendered by safe_encode_string.
std::string hash_controller_revision(const ControllerRevision& r, std::optional<int32_t> probe);
// controller.ComputeHash (what the DaemonSet controller names its revisions and labels its pods
// by): FNV-1a over the template's canonical JSON and, when set, the collision count as 8
// little-endian bytes (the upper 4 zero); rendered as above. Stable across runs; not
// byte-equal to Kubernetes' (which hashes Go's spew dump of the struct).
std::string compute_template_hash(const nlohmann::json& pod_template,
                                  std::optional<int32_t> collision_count);
// ControllerRevisionName: "<prefix>-<hash>", the prefix cut to 223 bytes so the name fits 253.
std::string controller_revision_name(const std::string& prefix, const std::string& hash);

// NewControllerRevision: a revision of `parent` holding `data` with number `revision`: labels
// = `template_labels` + kControllerRevisionHashLabel, the controller ownerReference
// (controller and blockOwnerDeletion true), namespace of the parent, name
// controller_revision_name(parent.name, hash_controller_revision(r, collision_count)).
// Fails (Invalid) when `data` is not a JSON object.
Result<ControllerRevision> new_revision(const Parent& parent,
                                        const std::map<std::string, std::string>& template_labels,
                                        const nlohmann::json& data, int64_t revision,
                                        std::optional<int32_t> collision_count);

// EqualRevision: same data (JSON equality; our stand-in for bytes.Equal of Data.Raw).
bool equal_revision(const ControllerRevision& a, const ControllerRevision& b);
// FindEqualRevisions: indexes into `revisions` of those equal to `needle`, in their order.
std::vector<size_t> find_equal_revisions(const Revisions& revisions,
                                         const ControllerRevision& needle);
// NextRevision: 1 + the highest revision number (1 for none).
int64_t next_revision(const Revisions& revisions);
// SortControllerRevisions: stable, by revision, then creation time, then name.
void sort_revisions(Revisions& revisions);
bool revision_less(const ControllerRevision& a, const ControllerRevision& b);
// The uid of the controller ownerReference, "" for an orphan.
std::string controller_uid(const ControllerRevision& r);

// Kubernetes' history.Interface. Every method may block on the API server.
class History {
 public:
  virtual ~History() = default;
  // ListControllerRevisions: the revisions in parent's namespace matching `selector` that
  // `parent` controls or that nobody controls (orphans, for the caller to adopt), unsorted.
  [[nodiscard]] virtual Result<Revisions> list_controller_revisions(
      const Parent& parent, const proto::LabelSelector& selector) = 0;
  // CreateControllerRevision: creates `revision` named parent-<hash(revision, *collision)>. When
  // that name exists with equal data, the existing revision is returned; with other data (a hash
  // collision) *collision_count is incremented and the next name tried (at most 100 times: the
  // caller persists the new count in its status). REQUIRES collision_count != nullptr.
  [[nodiscard]] virtual Result<ControllerRevision> create_controller_revision(
      const Parent& parent, const ControllerRevision& revision, int32_t* collision_count) = 0;
  // UpdateControllerRevision: sets `revision` to `new_revision` (a no-op when equal), retrying
  // on Conflict with a fresh read (at most 5 attempts). Returns the stored object.
  [[nodiscard]] virtual Result<ControllerRevision> update_controller_revision(
      const ControllerRevision& revision, int64_t new_revision) = 0;
  // DeleteControllerRevision. NotFound is returned as is (callers usually ignore it).
  [[nodiscard]] virtual Status delete_controller_revision(const ControllerRevision& revision) = 0;
  // AdoptControllerRevision / ReleaseControllerRevision: add or remove parent's controller
  // ownerReference (strategic merge patch carrying the revision's uid as a precondition).
  // Adopting a revision another controller owns fails with Conflict; releasing one that is gone
  // is not an error (the empty revision is returned).
  [[nodiscard]] virtual Result<ControllerRevision> adopt_controller_revision(
      const Parent& parent, const ControllerRevision& revision) = 0;
  [[nodiscard]] virtual Result<ControllerRevision> release_controller_revision(
      const Parent& parent, const ControllerRevision& revision) = 0;
  // Not in Kubernetes' interface: the DaemonSet controller names its revisions itself
  // (`<ds>-<ComputeHash(template, collisionCount)>`) and POSTs them as they are. `create_exact`
  // returns AlreadyExists unchanged (the caller compares data and bumps its collision count);
  // `get_controller_revision` is a fresh read from the API server, not a cache.
  [[nodiscard]] virtual Result<ControllerRevision> create_exact(const ControllerRevision& revision);
  [[nodiscard]] virtual Result<ControllerRevision> get_controller_revision(const std::string& ns,
                                                                           const std::string& name);
};

// History over the API server. Lists come from `cache` (e.g. a shared ControllerRevision
// informer's by_namespace) when given, else from a LIST with the selector; writes go to `api`.
class ApiHistory : public History {
 public:
  using CacheLister = std::function<std::vector<nlohmann::json>(const std::string& ns)>;
  explicit ApiHistory(client::ApiClient& api, CacheLister cache = nullptr)
      : api_(api), cache_(std::move(cache)) {}

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

 private:
  client::ApiClient& api_;
  CacheLister cache_;
};

// Shared by ApiHistory and FakeHistory.
// Decodes an API object into a ControllerRevision; Invalid with the decoder's errors.
Result<ControllerRevision> revision_from_json(const nlohmann::json& j);
nlohmann::json revision_to_json(const ControllerRevision& r);
// True when `r` belongs in list_controller_revisions(parent, selector)'s answer.
bool listed_for(const ControllerRevision& r, const Parent& parent,
                const proto::LabelSelector& selector);
// The strategic merge patches of adopt/release.
nlohmann::json adopt_patch(const Parent& parent, const ControllerRevision& r);
nlohmann::json release_patch(const Parent& parent, const ControllerRevision& r);

}  // namespace skiff::controllers::history
