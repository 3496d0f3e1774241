#include "proto/rbac.h"

#include "proto/kind_util.h"
#include "proto/resource.h"
#include "proto/selector.h"

namespace skiff::proto {
namespace {

// Go's %#v of the internal rbac.RoleRef, as in Kubernetes' "cannot change roleRef" message.
std::string go_role_ref(const RoleRef& r) {
  return "rbac.RoleRef{APIGroup:" + go_quote(r.api_group) + ", Kind:" + go_quote(r.kind) +
         ", Name:" + go_quote(r.name) + "}";
}

// ---- Defaults (rbac/v1 defaults.go).

void default_subjects(std::vector<Subject>& subjects) {
  for (auto& s : subjects)
    if (s.api_group.empty() && (s.kind == "User" || s.kind == "Group")) s.api_group = kRbacGroup;
}

template <class B>
void default_binding(B& b) {
  if (b.role_ref.api_group.empty()) b.role_ref.api_group = kRbacGroup;
  default_subjects(b.subjects);
}

// ---- Validation (pkg/apis/rbac/validation).

void validate_policy_rule(const PolicyRule& rule, bool namespaced, const Path& p,
                          FieldErrors& errs) {
  if (rule.verbs.empty())
    errs.push_back({ErrorType::kRequired, p.field("verbs").str(),
                    "verbs must contain at least one value", ""});
  if (!rule.non_resource_urls.empty()) {
    const std::string urls = go_string_slice(rule.non_resource_urls);
    if (namespaced)
      errs.push_back({ErrorType::kInvalid, p.field("nonResourceURLs").str(),
                      "namespaced rules cannot apply to non-resource URLs", urls});
    if (!rule.api_groups.empty() || !rule.resources.empty() || !rule.resource_names.empty())
      errs.push_back({ErrorType::kInvalid, p.field("nonResourceURLs").str(),
                      "rules cannot apply to both regular resources and non-resource URLs", urls});
    return;
  }
  if (rule.api_groups.empty())
    errs.push_back({ErrorType::kRequired, p.field("apiGroups").str(),
                    "resource rules must supply at least one api group", ""});
  if (rule.resources.empty())
    errs.push_back({ErrorType::kRequired, p.field("resources").str(),
                    "resource rules must supply at least one resource", ""});
}

void validate_rules(const std::optional<std::vector<PolicyRule>>& rules, bool namespaced,
                    FieldErrors& errs) {
  if (!rules) return;
  for (size_t i = 0; i < rules->size(); ++i)
    validate_policy_rule((*rules)[i], namespaced, Path("rules").index(i), errs);
}

// ValidateRoleBindingSubject.
void validate_subject(const Subject& s, bool namespaced, const Path& p, FieldErrors& errs) {
  if (s.name.empty()) errs.push_back({ErrorType::kRequired, p.field("name").str(), "", ""});
  if (s.kind == "ServiceAccount") {
    if (!s.name.empty()) add_errors(errs, p.field("name"), s.name, is_dns1123_subdomain(s.name));
    if (!s.api_group.empty()) not_supported(errs, p.field("apiGroup"), s.api_group, {""});
    // In a RoleBinding an empty namespace means the binding's own.
    if (!namespaced && s.namespace_.empty())
      errs.push_back({ErrorType::kRequired, p.field("namespace").str(), "", ""});
  } else if (s.kind == "User" || s.kind == "Group") {
    not_supported(errs, p.field("apiGroup"), s.api_group, {kRbacGroup});
  } else {
    not_supported(errs, p.field("kind"), s.kind, {"ServiceAccount", "User", "Group"});
  }
}

// ValidateRoleBinding / ValidateClusterRoleBinding and their Update variants.
void validate_binding(const std::vector<Subject>& subjects, const RoleRef& ref,
                      const RoleRef* old_ref, bool namespaced, FieldErrors& errs) {
  const Path rr("roleRef");
  not_supported(errs, rr.field("apiGroup"), ref.api_group, {kRbacGroup});
  if (namespaced)
    not_supported(errs, rr.field("kind"), ref.kind, {"Role", "ClusterRole"});
  else
    not_supported(errs, rr.field("kind"), ref.kind, {"ClusterRole"});
  if (ref.name.empty())
    errs.push_back({ErrorType::kRequired, rr.field("name").str(), "", ""});
  else
    add_errors(errs, rr.field("name"), ref.name, is_path_segment_name(ref.name));
  for (size_t i = 0; i < subjects.size(); ++i)
    validate_subject(subjects[i], namespaced, Path("subjects").index(i), errs);
  if (old_ref && !(*old_ref == ref))
    errs.push_back({ErrorType::kInvalid, rr.str(), "cannot change roleRef", go_role_ref(ref)});
}

void validate_role(const Role& r, const Role*, FieldErrors& errs) {
  validate_rules(r.rules, true, errs);
}

void validate_clusterrole(const ClusterRole& r, const ClusterRole*, FieldErrors& errs) {
  validate_rules(r.rules, false, errs);
  if (!r.aggregation_rule) return;
  const Path sels = Path("aggregationRule").field("clusterRoleSelectors");
  const auto& selectors = r.aggregation_rule->cluster_role_selectors;
  if (selectors.empty())
    errs.push_back({ErrorType::kRequired, sels.str(),
                    "at least one clusterRoleSelector required if aggregationRule is non-nil", ""});
  for (size_t i = 0; i < selectors.size(); ++i)
    LabelSelector::validate_json(encode(selectors[i]), sels.index(i), errs);
}

void validate_rolebinding(const RoleBinding& b, const RoleBinding* old, FieldErrors& errs) {
  validate_binding(b.subjects, b.role_ref, old ? &old->role_ref : nullptr, true, errs);
}

void validate_clusterrolebinding(const ClusterRoleBinding& b, const ClusterRoleBinding* old,
                                 FieldErrors& errs) {
  validate_binding(b.subjects, b.role_ref, old ? &old->role_ref : nullptr, false, errs);
}

// ---- Tables (kubectl's printers.go).

// printRole: the creation time as RFC 3339 in UTC (Go's zero time when unset).
std::string created_at(const ObjectMeta& m) {
  return m.creation_timestamp ? m.creation_timestamp->to_string() : "0001-01-01T00:00:00Z";
}

template <class R>
json role_row(const R& r, Clock::time_point) {
  return json::array({r.metadata.name, created_at(r.metadata)});
}

template <class B>
json binding_row(const B& b, Clock::time_point now) {
  std::string users, groups, sas;
  subjects_cells(b.subjects, users, groups, sas);
  return json::array({b.metadata.name, role_ref_cell(b.role_ref),
                      since(b.metadata.creation_timestamp.value_or(Time{}).value, now), users,
                      groups, sas});
}

std::vector<Column> role_columns() {
  return {name_column(),
          column("Created At", "date",
                 "CreationTimestamp is a timestamp representing the server time when this "
                 "object was created.")};
}

std::vector<Column> binding_columns(const char* what) {
  return {name_column(),
          column("Role", "string",
                 "RoleRef can reference a Role in the current namespace or a "
                 "ClusterRole in the global namespace."),
          age_column(),
          column("Users", "string", std::string("Users in the ") + what, 1),
          column("Groups", "string", std::string("Groups in the ") + what, 1),
          column("ServiceAccounts", "string", std::string("ServiceAccounts in the ") + what, 1)};
}

template <class T>
KindSpec<T> rbac_kind(const char* kind, const char* plural, const char* singular, bool namespaced) {
  KindSpec<T> k;
  k.type.group = kRbacGroup;
  k.type.version = "v1";
  k.type.kind = kind;
  k.type.list_kind = std::string(kind) + "List";
  k.type.plural = plural;
  k.type.singular = singular;
  k.type.namespaced = namespaced;
  k.type.has_spec = false;
  k.name_rule = is_path_segment_name;
  return k;
}

}  // namespace

std::vector<std::string> is_path_segment_name(std::string_view name) {
  if (name == "." || name == "..") return {"may not be '" + std::string(name) + "'"};
  std::vector<std::string> out;
  for (const char* bad : {"/", "%"})
    if (name.find(bad) != std::string_view::npos)
      out.push_back("may not contain '" + std::string(bad) + "'");
  return out;
}

std::string role_ref_cell(const RoleRef& r) { return r.kind + "/" + r.name; }

void subjects_cells(const std::vector<Subject>& subjects, std::string& users, std::string& groups,
                    std::string& service_accounts) {
  auto append = [](std::string& cell, const std::string& v) {
    cell += (cell.empty() ? "" : ", ") + v;
  };
  users.clear();
  groups.clear();
  service_accounts.clear();
  for (const auto& s : subjects) {
    if (s.kind == "ServiceAccount")
      append(service_accounts, s.namespace_ + "/" + s.name);
    else if (s.kind == "User")
      append(users, s.name);
    else if (s.kind == "Group")
      append(groups, s.name);
  }
}

ResourceType role_resource() {
  auto k = rbac_kind<Role>("Role", "roles", "role", true);
  k.type.columns = role_columns();
  k.validate = validate_role;
  k.row = role_row<Role>;
  return make_resource(std::move(k));
}

ResourceType clusterrole_resource() {
  auto k = rbac_kind<ClusterRole>("ClusterRole", "clusterroles", "clusterrole", false);
  k.type.columns = role_columns();
  k.validate = validate_clusterrole;
  k.row = role_row<ClusterRole>;
  return make_resource(std::move(k));
}

ResourceType rolebinding_resource() {
  auto k = rbac_kind<RoleBinding>("RoleBinding", "rolebindings", "rolebinding", true);
  k.type.columns = binding_columns("roleBinding");
  k.defaults = default_binding<RoleBinding>;
  k.validate = validate_rolebinding;
  k.row = binding_row<RoleBinding>;
  return make_resource(std::move(k));
}

ResourceType clusterrolebinding_resource() {
  auto k = rbac_kind<ClusterRoleBinding>("ClusterRoleBinding", "clusterrolebindings",
                                         "clusterrolebinding", false);
  k.type.columns = binding_columns("clusterRoleBinding");
  k.defaults = default_binding<ClusterRoleBinding>;
  k.validate = validate_clusterrolebinding;
  k.row = binding_row<ClusterRoleBinding>;
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
