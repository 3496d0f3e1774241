// The self-review APIs clients ask before acting: authorization.k8s.io/v1
// SelfSubjectAccessReview (`kubectl auth can-i`) and SelfSubjectRulesReview (`can-i --list`),
// authentication.k8s.io/v1 (and v1beta1) SelfSubjectReview (`kubectl auth whoami`). They are
// create-only and never stored: the answer is the request with its status filled in.
//
// skiff has no authorization yet (apiserver/README.md): every authenticated user may do
// everything, so every access review is allowed, with that reason, and the rules review lists
// "*" rules. When RBAC comes, these answers come from it. Private to apiserver/.
#pragma once

#include <string>
#include <vector>

#include "apiserver/errors.h"

namespace skiff::apiserver {

struct ReviewResource {
  const char* group;
  const char* version;
  const char* plural;
  const char* kind;
};

// Every review resource, for discovery and routing.
const std::vector<ReviewResource>& review_resources();
// The review served at /apis/<group>/<version>/<plural>, or nullptr.
const ReviewResource* find_review(const std::string& group, const std::string& version,
                                  const std::string& plural);

struct Requester {
  std::string user;
  std::vector<std::string> groups;
};

// The answer to a POSTed review (`body` decoded JSON): the review with its status; 400 when the
// body is not that kind of review, 422 when its spec is invalid.
ApiResult<json> answer_review(const ReviewResource& r, const json& body, const Requester& who);

}  // namespace skiff::apiserver
