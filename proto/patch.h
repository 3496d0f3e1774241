// Patches, as the Kubernetes API applies them to stored objects (all on JSON values).
//
// - JSON merge patch (RFC 7386, application/merge-patch+json).
// - JSON patch (RFC 6902, application/json-patch+json): add, remove, replace, move, copy, test.
// - Strategic merge patch (application/strategic-merge-patch+json): like merge patch, but lists
//   with a merge key merge element-wise by that key, and the directives `$patch`
//   (replace/merge/delete), `$setElementOrder/<list>`, `$retainKeys`,
//   `$deleteFromPrimitiveList/<list>` and `null` (delete) are honoured, using the type's Schema.
// Errors are Invalid with a message saying what in the patch was wrong. Pure functions.
#pragma once

#include "common/status.h"
#include "proto/codec.h"

namespace skiff::proto {

Result<json> apply_merge_patch(const json& original, const json& patch);
Result<json> apply_json_patch(const json& original, const json& patch);
Result<json> apply_strategic_merge_patch(const json& original, const json& patch,
                                         const Schema& schema);

// Kubernetes' patchStrategy:"replace" on a struct-valued field (PodDisruptionBudgetSpec.selector):
// a strategic merge patch replaces the value whole instead of merging into it, and a computed
// patch always carries the whole new value (so `kubectl apply` says "configured"). `parent` is
// the schema of the struct holding `field`. Kind files declare theirs once, when their
// ResourceType is made; thread-safe.
void set_struct_replace(const Schema* parent, std::string_view field);

// Computes a JSON merge patch that turns `from` into `to` (nulls for removed keys).
json create_merge_patch(const json& from, const json& to);

// kubectl's client-side apply: the strategic patch from the last-applied configuration
// (`original`), the new manifest (`modified`) and the live object (`current`): fields removed
// since last-applied are deleted, fields in `modified` that differ from `current` are set.
// Returns an empty object when nothing changes.
Result<json> create_three_way_strategic_patch(const json& original, const json& modified,
                                              const json& current, const Schema& schema);

}  // namespace skiff::proto
