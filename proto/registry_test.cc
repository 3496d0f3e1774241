#include "proto/registry.h"

#include <catch2/catch.hpp>

#include "proto/time.h"

namespace skiff::proto {
namespace {

TEST_CASE("registry resolves every name a user may type") {
  const Registry& r = Registry::builtin();
  CHECK(r.all().size() == 27);
  for (const char* name : {"po", "pods", "pod", "Pod", "PODS", "pods."}) {
    INFO(name);
    const ResourceType* t = r.resolve(name);  // "pods." names the core group explicitly
    REQUIRE(t);
    CHECK(t->kind == "Pod");
  }
  CHECK(r.resolve("deployment")->kind == "Deployment");
  CHECK(r.resolve("deployments.apps")->kind == "Deployment");
  CHECK(r.resolve("deployments.batch") == nullptr);
  CHECK(r.resolve("svc")->kind == "Service");
  CHECK(r.resolve("no")->kind == "Node");
  CHECK(r.resolve("ns")->kind == "Namespace");
  CHECK(r.resolve("ep")->kind == "Endpoints");
  CHECK(r.resolve("cm")->kind == "ConfigMap");
  CHECK(r.resolve("ev")->kind == "Event");
  CHECK(r.resolve("secret")->kind == "Secret");
  CHECK(r.resolve("leases.coordination.k8s.io")->kind == "Lease");
  CHECK(r.resolve("lease.v1.coordination.k8s.io")->kind == "Lease");
  CHECK(r.resolve("pods.v1")->kind == "Pod");
  CHECK(r.resolve("leases.apps") == nullptr);
}

TEST_CASE("registry lookups by path and by kind") {
  const Registry& r = Registry::builtin();
  const ResourceType* pods = r.find("", "v1", "pods");
  REQUIRE(pods);
  CHECK(pods->namespaced);
  CHECK(pods->list_kind == "PodList");
  CHECK(pods->api_version() == "v1");
  CHECK(pods->categories == std::vector<std::string>{"all"});
  CHECK(pods->subresources ==
        std::vector<std::string>{"status", "binding", "log", "exec", "eviction"});
  REQUIRE(pods->schema);
  CHECK(pods->schema->find("spec"));
  CHECK(r.find("", "v1", "services")->categories == std::vector<std::string>{"all"});
  CHECK(r.find("", "v1", "namespaces")->subresources ==
        std::vector<std::string>{"status", "finalize"});
  CHECK_FALSE(r.find("", "v1", "namespaces")->namespaced);
  CHECK_FALSE(r.find("", "v1", "nodes")->namespaced);
  CHECK(r.find("", "v2", "pods") == nullptr);
  CHECK(r.find("coordination.k8s.io", "v1", "leases"));
  CHECK(r.by_kind("coordination.k8s.io/v1", "Lease"));
  CHECK(r.by_kind("v1", "Lease") == nullptr);
  CHECK(r.by_kind("v1", "Event")->plural == "events");
  // Strategic merge patch needs the merge keys.
  const Schema& spec = *pods->schema->find("spec")->elem;
  CHECK(spec.find("containers")->opts.merge_key == "name");
  const Schema& ctr = *spec.find("containers")->elem;
  CHECK(ctr.find("ports")->opts.merge_key == "containerPort");
  CHECK(ctr.find("volumeMounts")->opts.merge_key == "mountPath");
  CHECK(spec.find("volumes")->opts.strategy == PatchStrategy::kMergeRetainKeys);
  const Schema& md = *pods->schema->find("metadata")->elem;
  CHECK(md.find("finalizers")->opts.strategy == PatchStrategy::kMerge);
  CHECK(md.find("ownerReferences")->opts.merge_key == "uid");
}

TEST_CASE("human_duration matches kubectl") {
  using namespace std::chrono;
  const std::pair<system_clock::duration, const char*> cases[] = {
      {seconds(-5), "<invalid>"}, {seconds(-1), "0s"},        {seconds(0), "0s"},
      {seconds(59), "59s"},       {seconds(119), "119s"},     {seconds(120), "2m"},
      {seconds(150), "2m30s"},    {minutes(10), "10m"},       {minutes(179), "179m"},
      {hours(3), "3h"},           {minutes(200), "3h20m"},    {hours(8), "8h"},
      {hours(47), "47h"},         {hours(48), "2d"},          {hours(50), "2d2h"},
      {hours(24 * 8), "8d"},      {hours(24 * 400), "400d"},  {hours(24 * 365 * 2), "2y"},
      {hours(24 * 800), "2y70d"}, {hours(24 * 365 * 9), "9y"}};
  for (const auto& [d, want] : cases) {
    INFO(want);
    CHECK(human_duration(d) == want);
  }
}

TEST_CASE("age_of reads metadata.creationTimestamp") {
  auto now = *parse_rfc3339("2026-11-25T10:10:00Z");
  CHECK(age_of(json::parse(R"({"metadata":{"creationTimestamp":"2026-11-25T10:00:00Z"}})"), now) ==
        "10m");
  CHECK(age_of(json::parse(R"({"metadata":{}})"), now) == "<unknown>");
  CHECK(age_of(json::parse(R"({})"), now) == "<unknown>");
}

}  // namespace
}  // namespace skiff::proto
