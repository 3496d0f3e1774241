// rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding.
//
// Stored, validated, listed and shown as Kubernetes does, so that ordinary manifests (Helm
// charts, operators) apply; NOT enforced: skiff has no authorizer yet, every authenticated user
// may do everything (see apiserver/reviews.h). Names are path segment names (ValidateRBACName:
// anything but "." and "..", no "/" nor "%"), so `system:controller:foo` is fine.
// Defaulting (rbac/v1 defaults.go), validation (pkg/apis/rbac/validation) and the Tables
// (kubectl's printers.go) in rbac.cc.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "proto/codec.h"
#include "proto/meta.h"

namespace skiff::proto {

struct ResourceType;

inline constexpr const char* kRbacGroup = "rbac.authorization.k8s.io";

struct PolicyRule {
  std::vector<std::string> verbs;  // required, non-empty
  std::vector<std::string> api_groups;
  std::vector<std::string> resources;
  std::vector<std::string> resource_names;
  std::vector<std::string> non_resource_urls;  // ClusterRoles only
  template <class V>
  void visit(V& v) {
    v("verbs", verbs, kAlways);
    v("apiGroups", api_groups);
    v("resources", resources);
    v("resourceNames", resource_names);
    v("nonResourceURLs", non_resource_urls);
  }
};

struct AggregationRule {
  std::vector<LabelSelectorSpec> cluster_role_selectors;
  template <class V>
  void visit(V& v) {
    v("clusterRoleSelectors", cluster_role_selectors);
  }
};

// Go's `rules` has no omitempty and is a slice: absent => null, [] => []. The optional keeps
// that difference so objects read back as Kubernetes writes them.
struct Role {
  TypeMeta type_meta;
  ObjectMeta metadata;
  std::optional<std::vector<PolicyRule>> rules;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("rules", rules, kAlways);
  }
};

struct ClusterRole {
  TypeMeta type_meta;
  ObjectMeta metadata;
  std::optional<std::vector<PolicyRule>> rules;
  std::optional<AggregationRule> aggregation_rule;  // stored; no aggregation controller yet
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("rules", rules, kAlways);
    v("aggregationRule", aggregation_rule);
  }
};

struct Subject {
  std::string kind;       // User | Group | ServiceAccount
  std::string api_group;  // defaulted: rbac.authorization.k8s.io for User/Group, "" for SA
  std::string name;
  std::string namespace_;  // ServiceAccounts: required in ClusterRoleBindings
  template <class V>
  void visit(V& v) {
    v("kind", kind, kAlways);
    v("apiGroup", api_group);
    v("name", name, kAlways);
    v("namespace", namespace_);
  }
};

struct RoleRef {
  std::string api_group;  // rbac.authorization.k8s.io (defaulted)
  std::string kind;       // Role | ClusterRole
  std::string name;
  template <class V>
  void visit(V& v) {
    v("apiGroup", api_group, kAlways);
    v("kind", kind, kAlways);
    v("name", name, kAlways);
  }
  bool operator==(const RoleRef&) const = default;
};

// RoleBinding and ClusterRoleBinding have the same shape; roleRef is immutable.
struct RoleBinding {
  TypeMeta type_meta;
  ObjectMeta metadata;
  std::vector<Subject> subjects;
  RoleRef role_ref;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("subjects", subjects);
    v("roleRef", role_ref);
  }
};

struct ClusterRoleBinding {
  TypeMeta type_meta;
  ObjectMeta metadata;
  std::vector<Subject> subjects;
  RoleRef role_ref;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("subjects", subjects);
    v("roleRef", role_ref);
  }
};

// ValidateRBACName (path.IsValidPathSegmentName): "may not be '.'", "may not contain '/'", ...
std::vector<std::string> is_path_segment_name(std::string_view name);
// kubectl's ROLE cell ("Role/x", "ClusterRole/x") and the wide USERS / GROUPS / SERVICEACCOUNTS
// cells (rbac.SubjectsStrings joined by ", "; service accounts as "namespace/name").
std::string role_ref_cell(const RoleRef& r);
void subjects_cells(const std::vector<Subject>& subjects, std::string& users, std::string& groups,
                    std::string& service_accounts);

ResourceType role_resource();
ResourceType clusterrole_resource();
ResourceType rolebinding_resource();
ResourceType clusterrolebinding_resource();

}  // namespace skiff::proto
