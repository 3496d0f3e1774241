// core/v1 ServiceAccount: an identity for processes in pods. Stored, listed and shown as
// Kubernetes does; skiff issues no tokens for it yet (no token controller, no TokenRequest) and
// does not enforce anything with it (no authorization). skiff-controller-manager's
// serviceaccount controller keeps a `default` one in every active namespace.
// Validation and Table in serviceaccount.cc.
#pragma once

#include <optional>
#include <vector>

#include "proto/codec.h"
#include "proto/meta.h"

namespace skiff::proto {

struct ResourceType;

struct ServiceAccount {
  TypeMeta type_meta;
  ObjectMeta metadata;
  std::vector<ObjectReference> secrets;  // patchMergeKey name
  std::vector<LocalObjectReference> image_pull_secrets;
  std::optional<bool> automount_service_account_token;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("secrets", secrets, merge_by("name"));
    v("imagePullSecrets", image_pull_secrets);
    v("automountServiceAccountToken", automount_service_account_token);
  }
};

// The ServiceAccount every namespace gets (Kubernetes' serviceaccounts controller).
inline constexpr const char* kDefaultServiceAccountName = "default";

ResourceType serviceaccount_resource();

}  // namespace skiff::proto
