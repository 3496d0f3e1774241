#include "apiserver/reviews.h"

namespace skiff::apiserver {

namespace {

constexpr const char* kNoAuthorization =
    "skiff has no authorization yet: every authenticated user may do everything";

ApiError invalid(const ReviewResource& r, const std::string& field, const std::string& message) {
  return ApiError{
      422,
      "Invalid",
      std::string(r.kind) + ".authorization.k8s.io \"\" is invalid: " + field + ": " + message,
      {{"kind", r.kind},
       {"group", r.group},
       {"causes",
        json::array({{{"reason", "FieldValueInvalid"}, {"message", message}, {"field", field}}})}}};
}

json user_info(const Requester& who) {
  json groups = json::array();
  for (const auto& g : who.groups) groups.push_back(g);
  json u = {{"username", who.user}};
  if (!groups.empty()) u["groups"] = groups;
  return u;
}

}  // namespace

const std::vector<ReviewResource>& review_resources() {
  static const std::vector<ReviewResource> all = {
      {"authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview"},
      {"authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview"},
      {"authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview"},
      {"authentication.k8s.io", "v1beta1", "selfsubjectreviews", "SelfSubjectReview"},
  };
  return all;
}

const ReviewResource* find_review(const std::string& group, const std::string& version,
                                  const std::string& plural) {
  for (const auto& r : review_resources())
    if (group == r.group && version == r.version && plural == r.plural) return &r;
  return nullptr;
}

ApiResult<json> answer_review(const ReviewResource& r, const json& body, const Requester& who) {
  const std::string api_version = std::string(r.group) + "/" + r.version;
  if (!body.is_object()) return errors::bad_request("the request body is not a JSON object");
  if (body.contains("kind") && body["kind"] != r.kind)
    return errors::bad_request("the request body is a " + body["kind"].dump() + ", expected " +
                               r.kind);
  json out = body;
  out["kind"] = r.kind;
  out["apiVersion"] = api_version;
  if (!out.contains("metadata") || !out["metadata"].is_object()) out["metadata"] = json::object();
  const std::string kind = r.kind;
  if (kind == "SelfSubjectReview") {
    out["status"] = {{"userInfo", user_info(who)}};
    return out;
  }
  const json spec = body.value("spec", json());
  if (!spec.is_null() && !spec.is_object()) return invalid(r, "spec", "must be an object");
  if (kind == "SelfSubjectAccessReview") {
    // Kubernetes: exactly one of resourceAttributes and nonResourceAttributes.
    bool res = spec.is_object() && spec.contains("resourceAttributes") &&
               !spec["resourceAttributes"].is_null();
    bool non = spec.is_object() && spec.contains("nonResourceAttributes") &&
               !spec["nonResourceAttributes"].is_null();
    if (res == non)
      return invalid(r, "spec.resourceAttributes",
                     "exactly one of nonResourceAttributes or resourceAttributes must be "
                     "specified");
    const json& attrs = res ? spec["resourceAttributes"] : spec["nonResourceAttributes"];
    if (!attrs.is_object())
      return invalid(r, res ? "spec.resourceAttributes" : "spec.nonResourceAttributes",
                     "must be an object");
    out["status"] = {{"allowed", true}, {"reason", kNoAuthorization}};
    return out;
  }
  // SelfSubjectRulesReview: everything, complete.
  out["status"] = {
      {"resourceRules",
       json::array({{{"verbs", {"*"}}, {"apiGroups", {"*"}}, {"resources", {"*"}}}})},
      {"nonResourceRules", json::array({{{"verbs", {"*"}}, {"nonResourceURLs", {"*"}}}})},
      {"incomplete", false}};
  return out;
}

}  // namespace skiff::apiserver
