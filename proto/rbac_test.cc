// core/v1 ServiceAccount and rbac.authorization.k8s.io/v1 Role, ClusterRole, RoleBinding,
// ClusterRoleBinding: codec round trips, Go's omission rules, defaults, validation paths and
// messages (pkg/apis/rbac/validation, ValidateServiceAccount), roleRef immutability, RBAC names
// with ':' (path segment names), kubectl's Table cells, and the registry entries.
#include "proto/rbac.h"

#include <catch2/catch.hpp>
#include <map>

#include "proto/registry.h"
#include "proto/serviceaccount.h"
#include "proto/test_util.h"
#include "proto/time.h"

namespace skiff::proto {
namespace {

using testutil::by_field;
using testutil::describe;
using testutil::fixture;

const ResourceType& type(const char* plural) {
  const char* group = std::string_view(plural) == "serviceaccounts" ? "" : kRbacGroup;
  const ResourceType* t = Registry::builtin().find(group, "v1", plural);
  REQUIRE(t != nullptr);
  return *t;
}

json normalized(const char* plural, const std::string& body) {
  FieldErrors errs;
  json n = type(plural).normalize(json::parse(body), errs, {});
  INFO(describe(errs));
  REQUIRE(errs.empty());
  return n;
}

json defaulted(const char* plural, const std::string& body) {
  json n = normalized(plural, body);
  type(plural).apply_defaults(n);
  return n;
}

// normalize + defaults + validate, as the API server's create (or update, with `old`) does.
FieldErrors validate(const char* plural, const std::string& body, const std::string& old = "") {
  json n = defaulted(plural, body);
  if (old.empty()) return type(plural).validate(n, nullptr);
  json o = defaulted(plural, old);
  return type(plural).validate(n, &o);
}

template <class T>
void round_trip(const char* plural, const char* file) {
  INFO(file);
  testutil::check_round_trip<T>(type(plural), fixture(file));
}

const std::string kMeta = R"("metadata":{"name":"x","namespace":"ci"})";
const std::string kClusterMeta = R"("metadata":{"name":"x"})";

TEST_CASE("rbac and serviceaccount kinds round-trip through the codec") {
  round_trip<ServiceAccount>("serviceaccounts", "serviceaccount");
  round_trip<Role>("roles", "role");
  round_trip<ClusterRole>("clusterroles", "clusterrole");
  round_trip<RoleBinding>("rolebindings", "rolebinding");
  round_trip<ClusterRoleBinding>("clusterrolebindings", "clusterrolebinding");
}

TEST_CASE("rbac Go omission rules") {
  // rules has no omitempty: absent reads back as null, [] as [].
  CHECK(normalized("roles", "{" + kMeta + "}") == json::parse(R"({"apiVersion":
      "rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"x","namespace":"ci"},
      "rules":null})"));
  CHECK(normalized("clusterroles", "{" + kClusterMeta + R"(,"rules":[]})")["rules"] ==
        json::array());
  // verbs always written; the other lists omitted when empty.
  CHECK(normalized("roles", "{" + kMeta + R"(,"rules":[{"apiGroups":[""]}]})")["rules"] ==
        json::parse(R"([{"verbs":[],"apiGroups":[""]}])"));
  // roleRef is a struct (never omitted, its fields always written); subjects omitempty;
  // subject kind and name always written.
  json b = normalized("rolebindings", "{" + kMeta + R"(,"subjects":[{}]})");
  CHECK(b["roleRef"] == json::parse(R"({"apiGroup":"","kind":"","name":""})"));
  CHECK(b["subjects"] == json::parse(R"([{"kind":"","name":""}])"));
  CHECK_FALSE(normalized("rolebindings", "{" + kMeta + "}").contains("subjects"));
  // ServiceAccount: automountServiceAccountToken is a pointer (false is kept), lists omitempty.
  json sa = normalized("serviceaccounts",
                       "{" + kMeta + R"(,"secrets":[],"automountServiceAccountToken":false})");
  CHECK(sa == json::parse(R"({"apiVersion":"v1","kind":"ServiceAccount",
      "metadata":{"name":"x","namespace":"ci"},"automountServiceAccountToken":false})"));
  // Unknown fields are reported with their paths (fieldValidation=Strict).
  FieldErrors errs;
  (void)type("rolebindings")
      .normalize(json::parse("{" + kMeta + R"(,"roleRef":{"nme":"a"},"subjects":[{"kind":7}]})"),
                 errs, {});
  std::map<std::string, std::string> m = by_field(errs);
  CHECK(m.count("roleRef.nme"));
  CHECK(m.count("subjects[0].kind"));
}

TEST_CASE("rbac defaults: roleRef and User/Group subjects get the rbac group") {
  json b = defaulted("rolebindings", "{" + kMeta + R"(,"roleRef":{"kind":"Role","name":"r"},
      "subjects":[{"kind":"User","name":"u"},{"kind":"Group","name":"g"},
                  {"kind":"ServiceAccount","name":"s"},{"kind":"User","apiGroup":"x","name":"v"}]})");
  CHECK(b["roleRef"]["apiGroup"] == kRbacGroup);
  CHECK(b["subjects"][0]["apiGroup"] == kRbacGroup);
  CHECK(b["subjects"][1]["apiGroup"] == kRbacGroup);
  CHECK_FALSE(b["subjects"][2].contains("apiGroup"));
  CHECK(b["subjects"][3]["apiGroup"] == "x");  // given: kept (and refused by validation)
  json c = defaulted("clusterrolebindings",
                     "{" + kClusterMeta + R"(,"roleRef":{"kind":"ClusterRole","name":"r"}})");
  CHECK(c["roleRef"]["apiGroup"] == kRbacGroup);
  // Roles have no defaults.
  std::string role = "{" + kMeta + R"(,"rules":[{"verbs":["get"]}]})";
  CHECK(defaulted("roles", role) == normalized("roles", role));
}

TEST_CASE("policy rules are validated as ValidatePolicyRule") {
  auto m = by_field(validate("roles", "{" + kMeta + R"(,"rules":[
      {"apiGroups":[""],"resources":["pods"]},
      {"verbs":["get"]},
      {"verbs":["get"],"nonResourceURLs":["/healthz"]},
      {"verbs":["get"],"apiGroups":[""],"resources":["pods"]}]})"));
  CHECK(m == std::map<std::string, std::string>{
                 {"rules[0].verbs", "Required value: verbs must contain at least one value"},
                 {"rules[1].apiGroups",
                  "Required value: resource rules must supply at least one api group"},
                 {"rules[1].resources",
                  "Required value: resource rules must supply at least one resource"},
                 {"rules[2].nonResourceURLs",
                  "Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to "
                  "non-resource URLs"}});
  // ClusterRoles may have non-resource rules, but not mixed with resources.
  CHECK(validate("clusterroles",
                 "{" + kClusterMeta + R"(,"rules":[{"verbs":["get"],"nonResourceURLs":["/x"]}]})")
            .empty());
  m = by_field(validate("clusterroles", "{" + kClusterMeta + R"(,"rules":[
      {"verbs":["get"],"resources":["pods"],"nonResourceURLs":["/x","/y*"]}]})"));
  CHECK(m == std::map<std::string, std::string>{
                 {"rules[0].nonResourceURLs",
                  "Invalid value: []string{\"/x\", \"/y*\"}: rules cannot apply to both regular "
                  "resources and non-resource URLs"}});
  // No rules at all is valid (an aggregated ClusterRole gets them from its controller).
  CHECK(validate("roles", "{" + kMeta + "}").empty());
  // aggregationRule: at least one selector, each a valid label selector.
  m = by_field(validate("clusterroles", "{" + kClusterMeta + R"(,"aggregationRule":{}})"));
  CHECK(m == std::map<std::string, std::string>{
                 {"aggregationRule.clusterRoleSelectors",
                  "Required value: at least one clusterRoleSelector required if aggregationRule "
                  "is non-nil"}});
  FieldErrors errs = validate("clusterroles", "{" + kClusterMeta + R"(,"aggregationRule":
      {"clusterRoleSelectors":[{"matchExpressions":[{"key":"a","operator":"Bogus"}]}]}})");
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].field.rfind("aggregationRule.clusterRoleSelectors[0].matchExpressions[0]", 0) == 0);
}

TEST_CASE("bindings are validated as ValidateRoleBinding / ValidateClusterRoleBinding") {
  const std::string ref = R"("roleRef":{"kind":"Role","name":"r"})";
  CHECK(validate("rolebindings", "{" + kMeta + "," + ref + "}").empty());
  auto m = by_field(validate("rolebindings", "{" + kMeta + R"(,"roleRef":{"apiGroup":"x",
      "kind":"Pod","name":"a/b"},"subjects":[{"kind":"ServiceAccount","name":"Bad_Name",
      "apiGroup":"rbac.authorization.k8s.io"},{"kind":"User","apiGroup":"v1","name":"u"},
      {"kind":"Robot","name":"r"},{"kind":"Group"}]})"));
  CHECK(m == std::map<std::string, std::string>{
                 {"roleRef.apiGroup",
                  "Unsupported value: \"x\": supported values: \"rbac.authorization.k8s.io\""},
                 {"roleRef.kind",
                  "Unsupported value: \"Pod\": supported values: \"Role\", \"ClusterRole\""},
                 {"roleRef.name", "Invalid value: \"a/b\": may not contain '/'"},
                 {"subjects[0].name",
                  "Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of "
                  "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                  "alphanumeric character (e.g. 'example.com', regex used for validation is "
                  "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"},
                 {"subjects[0].apiGroup",
                  "Unsupported value: \"rbac.authorization.k8s.io\": supported values: \"\""},
                 {"subjects[1].apiGroup",
                  "Unsupported value: \"v1\": supported values: \"rbac.authorization.k8s.io\""},
                 {"subjects[2].kind",
                  "Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", "
                  "\"Group\""},
                 {"subjects[3].name", "Required value"}});
  // roleRef required; a RoleBinding's ServiceAccount subject may leave out its namespace (the
  // binding's), a ClusterRoleBinding's may not; a ClusterRoleBinding binds ClusterRoles only.
  m = by_field(validate("rolebindings", "{" + kMeta + R"(,"subjects":[
      {"kind":"ServiceAccount","name":"default"}]})"));
  CHECK(m == std::map<std::string, std::string>{
                 {"roleRef.kind",
                  "Unsupported value: \"\": supported values: \"Role\", \"ClusterRole\""},
                 {"roleRef.name", "Required value"}});
  m = by_field(validate("clusterrolebindings", "{" + kClusterMeta + R"(,"roleRef":{
      "kind":"Role","name":"r"},"subjects":[{"kind":"ServiceAccount","name":"default"}]})"));
  CHECK(m == std::map<std::string, std::string>{
                 {"roleRef.kind", "Unsupported value: \"Role\": supported values: \"ClusterRole\""},
                 {"subjects[0].namespace", "Required value"}});
}

TEST_CASE("roleRef cannot change on update; subjects can") {
  const std::string old = "{" + kMeta + R"(,"roleRef":{"kind":"Role","name":"a"},
      "subjects":[{"kind":"User","name":"u"}]})";
  CHECK(validate("rolebindings",
                 "{" + kMeta + R"(,"roleRef":{"kind":"Role","name":"a"},"subjects":[]})", old)
            .empty());
  auto m = by_field(validate(
      "rolebindings", "{" + kMeta + R"(,"roleRef":{"kind":"ClusterRole","name":"b"}})", old));
  CHECK(m == std::map<std::string, std::string>{
                 {"roleRef",
                  "Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", "
                  "Kind:\"ClusterRole\", Name:\"b\"}: cannot change roleRef"}});
  const std::string crb_old =
      "{" + kClusterMeta + R"(,"roleRef":{"kind":"ClusterRole","name":"a"}})";
  m = by_field(validate("clusterrolebindings",
                        "{" + kClusterMeta + R"(,"roleRef":{"kind":"ClusterRole","name":"c"}})",
                        crb_old));
  CHECK(m.size() == 1);
  CHECK(m["roleRef"].find("cannot change roleRef") != std::string::npos);
}

TEST_CASE("RBAC names are path segment names; ServiceAccount names DNS subdomains") {
  CHECK(is_path_segment_name("system:controller:foo").empty());
  CHECK(is_path_segment_name("Upper_Case and space").empty());
  CHECK(is_path_segment_name(".") == std::vector<std::string>{"may not be '.'"});
  CHECK(is_path_segment_name("..") == std::vector<std::string>{"may not be '..'"});
  CHECK(is_path_segment_name("a/b%c") ==
        std::vector<std::string>{"may not contain '/'", "may not contain '%'"});
  CHECK(validate("clusterroles", R"({"metadata":{"name":"system:controller:foo"}})").empty());
  CHECK(validate("roles", R"({"metadata":{"name":"system:r","namespace":"ci"}})").empty());
  CHECK(validate("clusterrolebindings", R"({"metadata":{"name":"system:b"},
      "roleRef":{"kind":"ClusterRole","name":"system:controller:foo"}})")
            .empty());
  auto m = by_field(validate("clusterroles", R"({"metadata":{"name":"a/b"}})"));
  CHECK(m == std::map<std::string, std::string>{
                 {"metadata.name", "Invalid value: \"a/b\": may not contain '/'"}});
  // Namespaced kinds still need a namespace, cluster-scoped ones refuse one.
  CHECK(by_field(validate("roles", R"({"metadata":{"name":"r"}})")).count("metadata.namespace"));
  CHECK(by_field(validate("clusterroles", R"({"metadata":{"name":"r","namespace":"x"}})"))
            .count("metadata.namespace"));
  // ServiceAccounts: only the metadata is checked; the name is a DNS-1123 subdomain.
  CHECK(validate("serviceaccounts", "{" + kMeta + R"(,"secrets":[{"name":"whatever"}]})").empty());
  CHECK(by_field(validate("serviceaccounts", R"({"metadata":{"name":"a:b","namespace":"ci"}})"))
            .count("metadata.name"));
}

TEST_CASE("rbac and serviceaccount Table cells as kubectl prints them") {
  auto now = parse_rfc3339("2026-12-01T10:05:00Z").value();
  auto row = [&](const char* plural, const char* file) {
    return type(plural).row_cells(fixture(file), now);
  };
  CHECK(row("serviceaccounts", "serviceaccount") == json::parse(R"(["builder", 2, "5m"])"));
  CHECK(row("roles", "role") == json::parse(R"(["pod-reader", "2026-12-01T10:00:00Z"])"));
  CHECK(row("clusterroles", "clusterrole") ==
        json::parse(R"(["system:controller:skiff-test", "2026-12-01T10:00:00Z"])"));
  CHECK(row("rolebindings", "rolebinding") ==
        json::parse(R"(["read-pods", "Role/pod-reader", "5m", "jane", "devs",
                        "ci/builder, /default"])"));
  CHECK(row("clusterrolebindings", "clusterrolebinding") ==
        json::parse(R"(["system:controller:skiff-test", "ClusterRole/system:controller:skiff-test",
                        "5m", "system:kube-scheduler", "", "ci/builder"])"));
  auto names = [](const ResourceType& t) {
    std::vector<std::string> out;
    for (const auto& c : t.columns) out.push_back(c.name + (c.priority ? "*" : ""));
    return out;
  };
  using V = std::vector<std::string>;
  CHECK(names(type("serviceaccounts")) == V{"Name", "Secrets", "Age"});
  CHECK(names(type("roles")) == V{"Name", "Created At"});
  CHECK(names(type("clusterroles")) == V{"Name", "Created At"});
  CHECK(names(type("rolebindings")) ==
        V{"Name", "Role", "Age", "Users*", "Groups*", "ServiceAccounts*"});
  CHECK(names(type("clusterrolebindings")) ==
        V{"Name", "Role", "Age", "Users*", "Groups*", "ServiceAccounts*"});
  CHECK(type("roles").columns[1].type == "date");
}

TEST_CASE("rbac and serviceaccount registry entries") {
  const Registry& r = Registry::builtin();
  CHECK(r.resolve("sa")->kind == "ServiceAccount");
  CHECK(r.resolve("serviceaccount")->plural == "serviceaccounts");
  CHECK(r.find("", "v1", "serviceaccounts")->namespaced);
  CHECK(r.resolve("role")->kind == "Role");
  CHECK(r.resolve("roles.rbac.authorization.k8s.io")->kind == "Role");
  CHECK(r.resolve("clusterrolebinding")->kind == "ClusterRoleBinding");
  CHECK(r.by_kind("rbac.authorization.k8s.io/v1", "ClusterRole")->plural == "clusterroles");
  CHECK(r.find(kRbacGroup, "v1", "roles")->namespaced);
  CHECK(r.find(kRbacGroup, "v1", "rolebindings")->namespaced);
  CHECK_FALSE(r.find(kRbacGroup, "v1", "clusterroles")->namespaced);
  CHECK_FALSE(r.find(kRbacGroup, "v1", "clusterrolebindings")->namespaced);
  CHECK(r.find(kRbacGroup, "v1", "roles")->list_kind == "RoleList");
  // Strategic merge: a ServiceAccount's secrets merge by name.
  const Schema& sa = *r.find("", "v1", "serviceaccounts")->schema;
  CHECK(sa.find("secrets")->opts.merge_key == "name");
}

}  // namespace
}  // namespace skiff::proto
