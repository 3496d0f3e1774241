// The self-review answers (kubectl auth can-i / can-i --list / whoami).
#include "apiserver/reviews.h"

#include <catch2/catch.hpp>

namespace skiff::apiserver {
namespace {

const ReviewResource& res(const char* group, const char* version, const char* plural) {
  const ReviewResource* r = find_review(group, version, plural);
  REQUIRE(r != nullptr);
  return *r;
}

const Requester kAlice{"alice", {"dev", "system:authenticated"}};

TEST_CASE("reviews: an access review is allowed, saying why") {
  const auto& ssar = res("authorization.k8s.io", "v1", "selfsubjectaccessreviews");
  json in = json::parse(R"({"kind":"SelfSubjectAccessReview",
      "apiVersion":"authorization.k8s.io/v1","metadata":{},
      "spec":{"resourceAttributes":{"namespace":"default","verb":"create","resource":"pods"}}})");
  auto out = answer_review(ssar, in, kAlice);
  REQUIRE(out.ok());
  CHECK(out.value()["status"]["allowed"] == true);
  CHECK_THAT(out.value()["status"]["reason"].get<std::string>(),
             Catch::Contains("no authorization"));
  CHECK(out.value()["spec"] == in["spec"]);  // the request comes back with its status
  // Non-resource URLs too.
  CHECK(answer_review(ssar, json::parse(R"({"spec":{"nonResourceAttributes":{"path":"/logs",
      "verb":"get"}}})"),
                      kAlice)
            .value()["status"]["allowed"] == true);
}

TEST_CASE("reviews: an access review names exactly one kind of attributes") {
  const auto& ssar = res("authorization.k8s.io", "v1", "selfsubjectaccessreviews");
  for (const char* body : {R"({"spec":{}})", R"({})",
                           R"({"spec":{"resourceAttributes":{},"nonResourceAttributes":{}}})"}) {
    auto out = answer_review(ssar, json::parse(body), kAlice);
    REQUIRE(!out.ok());
    CHECK(out.error().code == 422);
    CHECK(out.error().details["causes"][0]["field"] == "spec.resourceAttributes");
  }
  auto typed = answer_review(ssar, json::parse(R"({"spec":{"resourceAttributes":"x"}})"), kAlice);
  REQUIRE(!typed.ok());
  CHECK(typed.error().code == 422);
  auto spec = answer_review(ssar, json::parse(R"({"spec":[1]})"), kAlice);
  REQUIRE(!spec.ok());
  CHECK(spec.error().code == 422);
}

TEST_CASE("reviews: the wrong kind or a non-object body is 400") {
  const auto& ssar = res("authorization.k8s.io", "v1", "selfsubjectaccessreviews");
  auto wrong = answer_review(ssar, json::parse(R"({"kind":"Pod","spec":{}})"), kAlice);
  REQUIRE(!wrong.ok());
  CHECK(wrong.error().code == 400);
  CHECK_THAT(wrong.error().message, Catch::Contains("SelfSubjectAccessReview"));
  CHECK(answer_review(ssar, json::array(), kAlice).error().code == 400);
}

TEST_CASE("reviews: rules review lists everything; whoami tells who") {
  auto rules = answer_review(res("authorization.k8s.io", "v1", "selfsubjectrulesreviews"),
                             json::parse(R"({"spec":{"namespace":"default"}})"), kAlice);
  REQUIRE(rules.ok());
  CHECK(rules.value()["status"]["resourceRules"][0]["verbs"] == json::array({"*"}));
  CHECK(rules.value()["status"]["incomplete"] == false);
  for (const char* v : {"v1", "v1beta1"}) {
    auto who = answer_review(res("authentication.k8s.io", v, "selfsubjectreviews"), json::object(),
                             kAlice);
    REQUIRE(who.ok());
    CHECK(who.value()["apiVersion"] == std::string("authentication.k8s.io/") + v);
    CHECK(who.value()["status"]["userInfo"]["username"] == "alice");
    CHECK(who.value()["status"]["userInfo"]["groups"] ==
          json::array({"dev", "system:authenticated"}));
  }
  CHECK(find_review("authorization.k8s.io", "v1", "subjectaccessreviews") == nullptr);
}

}  // namespace
}  // namespace skiff::apiserver
