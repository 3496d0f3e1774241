#include "proto/codec.h"

#include <catch2/catch.hpp>

namespace skiff::proto {
namespace {

struct Port {
  std::string name;
  int32_t container_port = 0;
  std::string protocol;
  template <class V>
  void visit(V& v) {
    v("name", name);
    v("containerPort", container_port, kAlways);
    v("protocol", protocol);
  }
};

struct Box {
  std::string name;
  std::optional<int32_t> replicas;
  bool ready = false;
  std::vector<Port> ports;
  std::vector<std::string> args;
  std::map<std::string, std::string> labels;
  Port main;
  std::optional<Port> extra;
  template <class V>
  void visit(V& v) {
    v("name", name, kAlways);
    v("replicas", replicas);
    v("ready", ready);
    v("ports", ports, merge_by("containerPort"));
    v("args", args);
    v("labels", labels);
    v("main", main);
    v("extra", extra);
  }
};

TEST_CASE("codec follows Go omission rules") {
  Box b;
  json j = encode(b);
  CHECK(j == json::parse(R"({"name":"","main":{"containerPort":0}})"));
  b.replicas = 0;
  b.ports.push_back({"http", 80, "TCP"});
  j = encode(b);
  CHECK(j["replicas"] == 0);
  CHECK(j["ports"][0] == json::parse(R"({"name":"http","containerPort":80,"protocol":"TCP"})"));
}

TEST_CASE("codec round-trips and reports errors with paths") {
  auto in = json::parse(R"({"name":"x","replicas":3,"ready":true,
    "ports":[{"containerPort":"eighty"}],"labels":{"a":"b"},"bogus":1,"main":{"nope":2}})");
  FieldErrors errs;
  Box b = decode<Box>(in, errs);
  REQUIRE(errs.size() == 3);
  CHECK(errs[0].field == "ports[0].containerPort");
  CHECK(errs[0].type == ErrorType::kTypeInvalid);
  CHECK(b.replicas == 3);
  CHECK(b.labels.at("a") == "b");
  bool saw_bogus = false, saw_nope = false;
  for (auto& e : errs) {
    saw_bogus |= e.type == ErrorType::kUnknownField && e.field == "bogus";
    saw_nope |= e.type == ErrorType::kUnknownField && e.field == "main.nope";
  }
  CHECK(saw_bogus);
  CHECK(saw_nope);
}

TEST_CASE("codec rejects out-of-range integers") {
  FieldErrors errs;
  decode<Port>(json::parse(R"({"containerPort":4294967296})"), errs);
  REQUIRE(errs.size() == 1);
  errs.clear();
  decode<Port>(json::parse(R"({"containerPort":1.5})"), errs);
  REQUIRE(errs.size() == 1);
}

TEST_CASE("schema records merge keys and kinds") {
  const Schema& s = schema_of<Box>();
  REQUIRE(s.find("ports"));
  CHECK(s.find("ports")->kind == FieldSchema::Kind::kList);
  CHECK(s.find("ports")->opts.merge_key == "containerPort");
  CHECK(s.find("ports")->elem == &schema_of<Port>());
  CHECK(s.find("main")->kind == FieldSchema::Kind::kObject);
  CHECK(s.find("labels")->kind == FieldSchema::Kind::kMap);
  CHECK(s.find("args")->elem == nullptr);
}

}  // namespace
}  // namespace skiff::proto
