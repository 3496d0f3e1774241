#include "proto/patch.h"

#include <catch2/catch.hpp>

namespace skiff::proto {
namespace {

// Small stand-ins for the API types, with the Kubernetes patch tags that matter here.
struct TPort {
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
struct TEnv {
  std::string name, value;
  template <class V>
  void visit(V& v) {
    v("name", name);
    v("value", value);
  }
};
struct TContainer {
  std::string name, image;
  std::vector<std::string> args;
  std::vector<TPort> ports;
  std::vector<TEnv> env;
  template <class V>
  void visit(V& v) {
    v("name", name);
    v("image", image);
    v("args", args);
    v("ports", ports, merge_by("containerPort"));
    v("env", env, merge_by("name"));
  }
};
struct TMeta {
  std::string name;
  std::map<std::string, std::string> labels, annotations;
  std::vector<std::string> finalizers;
  template <class V>
  void visit(V& v) {
    v("name", name);
    v("labels", labels);
    v("annotations", annotations);
    v("finalizers", finalizers, kMergeSet);
  }
};
struct TPodSpec {
  std::vector<TContainer> containers;
  std::map<std::string, std::string> node_selector;
  template <class V>
  void visit(V& v) {
    v("containers", containers, merge_by("name"));
    v("nodeSelector", node_selector);
  }
};
struct TTemplate {
  TMeta metadata;
  TPodSpec spec;
  template <class V>
  void visit(V& v) {
    v("metadata", metadata);
    v("spec", spec);
  }
};
struct TRollingUpdate {
  std::string max_surge;
  template <class V>
  void visit(V& v) {
    v("maxSurge", max_surge);
  }
};
struct TStrategy {
  std::string type;
  std::optional<TRollingUpdate> rolling_update;
  template <class V>
  void visit(V& v) {
    v("type", type);
    v("rollingUpdate", rolling_update);
  }
};
struct TDeploySpec {
  std::optional<int32_t> replicas;
  TStrategy strategy;
  TTemplate tmpl;
  template <class V>
  void visit(V& v) {
    v("replicas", replicas);
    v("strategy", strategy, kRetainKeys);
    v("template", tmpl);
  }
};
struct TDeployment {
  TMeta metadata;
  TDeploySpec spec;
  json status;
  template <class V>
  void visit(V& v) {
    v("metadata", metadata);
    v("spec", spec);
    v("status", status);
  }
};
struct TServicePort {
  std::string name;
  int32_t port = 0;
  int32_t target_port = 0;
  template <class V>
  void visit(V& v) {
    v("name", name);
    v("port", port);
    v("targetPort", target_port);
  }
};
struct TServiceSpec {
  std::vector<TServicePort> ports;
  std::map<std::string, std::string> selector;
  template <class V>
  void visit(V& v) {
    v("ports", ports, merge_by("port"));
    v("selector", selector);
  }
};
struct TService {
  TMeta metadata;
  TServiceSpec spec;
  template <class V>
  void visit(V& v) {
    v("metadata", metadata);
    v("spec", spec);
  }
};

json J(const char* s) { return json::parse(s); }

std::string smp(const json& orig, const json& patch, const Schema& schema) {
  auto r = apply_strategic_merge_patch(orig, patch, schema);
  if (!r) return "ERROR: " + r.status().message();
  return r->dump();
}

// ---------------------------------------------------------------------------------------------

TEST_CASE("JSON merge patch follows RFC 7386's examples") {
  struct Case {
    const char *orig, *patch, *want;
  };
  const Case cases[] = {
      {R"({"a":"b"})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"b"})", R"({"b":"c"})", R"({"a":"b","b":"c"})"},
      {R"({"a":"b"})", R"({"a":null})", R"({})"},
      {R"({"a":"b","b":"c"})", R"({"a":null})", R"({"b":"c"})"},
      {R"({"a":["b"]})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"c"})", R"({"a":["b"]})", R"({"a":["b"]})"},
      {R"({"a":{"b":"c"}})", R"({"a":{"b":"d","c":null}})", R"({"a":{"b":"d"}})"},
      {R"({"a":[{"b":"c"}]})", R"({"a":[1]})", R"({"a":[1]})"},
      {R"(["a","b"])", R"(["c","d"])", R"(["c","d"])"},
      {R"({"a":"b"})", R"(["c"])", R"(["c"])"},
      {R"({"a":"foo"})", "null", "null"},
      {R"({"e":null})", R"({"a":1})", R"({"a":1,"e":null})"},
      {R"([1,2])", R"({"a":"b","c":null})", R"({"a":"b"})"},
      {R"({})", R"({"a":{"bb":{"ccc":null}}})", R"({"a":{"bb":{}}})"},
  };
  for (const auto& c : cases) {
    INFO(c.orig << " + " << c.patch);
    auto r = apply_merge_patch(J(c.orig), J(c.patch));
    REQUIRE(r);
    CHECK(r->dump() == J(c.want).dump());
  }
}

TEST_CASE("create_merge_patch produces a patch that reproduces the target") {
  json from = J(R"({"a":1,"b":{"c":2,"d":3},"e":[1,2],"f":"x"})");
  json to = J(R"({"a":1,"b":{"c":5},"e":[1],"g":true})");
  json p = create_merge_patch(from, to);
  CHECK(p.dump() == J(R"({"b":{"c":5,"d":null},"e":[1],"f":null,"g":true})").dump());
  auto back = apply_merge_patch(from, p);
  REQUIRE(back);
  CHECK(*back == to);
  CHECK(create_merge_patch(to, to) == json::object());
}

TEST_CASE("JSON patch operations, pointers and errors") {
  json doc = J(R"({"a":{"b":[1,2,3]},"c~d":1,"e/f":2})");
  auto run = [&](const char* ops) {
    auto r = apply_json_patch(doc, J(ops));
    return r ? r->dump() : "ERROR: " + r.status().message();
  };
  CHECK(run(R"([{"op":"add","path":"/a/b/1","value":9}])") ==
        J(R"({"a":{"b":[1,9,2,3]},"c~d":1,"e/f":2})").dump());
  CHECK(run(R"([{"op":"add","path":"/a/b/-","value":4}])") ==
        J(R"({"a":{"b":[1,2,3,4]},"c~d":1,"e/f":2})").dump());
  CHECK(run(R"([{"op":"remove","path":"/c~0d"},{"op":"replace","path":"/e~1f","value":7}])") ==
        J(R"({"a":{"b":[1,2,3]},"e/f":7})").dump());
  CHECK(run(R"([{"op":"move","from":"/a/b","path":"/x"}])") ==
        J(R"({"a":{},"c~d":1,"e/f":2,"x":[1,2,3]})").dump());
  CHECK(run(R"([{"op":"copy","from":"/a/b/0","path":"/a/b/3"}])") ==
        J(R"({"a":{"b":[1,2,3,1]},"c~d":1,"e/f":2})").dump());
  CHECK(run(R"([{"op":"test","path":"/a/b/2","value":3},{"op":"remove","path":"/a"}])") ==
        J(R"({"c~d":1,"e/f":2})").dump());
  CHECK(run(R"([{"op":"replace","path":"","value":{"z":1}}])") == R"({"z":1})");
  CHECK(run(R"([{"op":"add","path":"/n","value":null}])") ==
        J(R"({"a":{"b":[1,2,3]},"c~d":1,"e/f":2,"n":null})").dump());

  // Errors name the failing operation by index; nothing is applied.
  CHECK(run(R"([{"op":"add","path":"/q","value":1},{"op":"test","path":"/q","value":2}])") ==
        "ERROR: json patch operation 1 (test): test failed: value at /q is 1, not 2");
  CHECK(run(R"([{"op":"remove","path":"/nope"}])") ==
        "ERROR: json patch operation 0 (remove): path /nope does not exist");
  CHECK(run(R"([{"op":"replace","path":"/a/b/3","value":0}])") ==
        "ERROR: json patch operation 0 (replace): array index 3 is out of bounds at /a/b/3");
  CHECK(run(R"([{"op":"add","path":"/a/b/01","value":0}])")
            .starts_with("ERROR: json patch operation 0 (add): \"01\" is not a valid array index"));
  CHECK(run(R"([{"op":"add","path":"/x/y","value":0}])") ==
        "ERROR: json patch operation 0 (add): path /x does not exist");
  CHECK(run(R"([{"op":"add","path":"a","value":0}])").find("must start with '/'") !=
        std::string::npos);
  CHECK(run(R"([{"op":"add","path":"/a~2","value":0}])").find("invalid escape") !=
        std::string::npos);
  CHECK(run(R"([{"op":"frob","path":"/a"}])") ==
        "ERROR: json patch operation 0 (frob): unknown op \"frob\"");
  CHECK(run(R"([{"op":"add","path":"/a"}])") ==
        "ERROR: json patch operation 0 (add): missing \"value\"");
  CHECK(run(R"([{"op":"move","from":"/a","path":"/a/b/c"}])").find("its own child") !=
        std::string::npos);
  CHECK(run(R"({"op":"add"})").starts_with("ERROR: a JSON patch must be a list"));
}

TEST_CASE("strategic merge patch: keyed lists merge element-wise") {
  const Schema& s = schema_of<TPodSpec>();
  json live = J(R"({"containers":[
      {"name":"web","image":"nginx:1.25","ports":[{"containerPort":80,"protocol":"TCP"}],
       "args":["a","b"]},
      {"name":"side","image":"busybox"}],"nodeSelector":{"disk":"ssd"}})");
  // Change one field of one element; the rest of the element and the list are kept.
  CHECK(smp(live, J(R"({"containers":[{"name":"web","image":"nginx:1.26"}]})"), s) ==
        J(R"({"containers":[
      {"name":"web","image":"nginx:1.26","ports":[{"containerPort":80,"protocol":"TCP"}],
       "args":["a","b"]},
      {"name":"side","image":"busybox"}],"nodeSelector":{"disk":"ssd"}})")
            .dump());
  // A list without a merge strategy (args) is replaced; nested keyed lists merge. Without
  // $setElementOrder a new element goes before the live ones, as in Kubernetes (kubectl always
  // sends $setElementOrder, which fixes the order).
  CHECK(smp(live, J(R"({"containers":[{"name":"web","args":["c"],
        "ports":[{"containerPort":443}]}]})"),
            s) == J(R"({"containers":[
      {"name":"web","image":"nginx:1.25",
       "ports":[{"containerPort":443},{"containerPort":80,"protocol":"TCP"}],"args":["c"]},
      {"name":"side","image":"busybox"}],"nodeSelector":{"disk":"ssd"}})")
                      .dump());
  // $patch: delete removes by key; null removes a field; a new element is appended.
  CHECK(smp(live, J(R"({"containers":[{"$patch":"delete","name":"side"},
        {"name":"web","ports":null},{"name":"new","image":"x"}],"nodeSelector":null})"),
            s) == J(R"({"containers":[{"name":"web","image":"nginx:1.25","args":["a","b"]},
                                     {"name":"new","image":"x"}]})")
                      .dump());
  // $patch: replace inside the list replaces the whole list.
  CHECK(smp(live, J(R"({"containers":[{"name":"only","image":"x"},{"$patch":"replace"}]})"), s) ==
        J(R"({"containers":[{"name":"only","image":"x"}],"nodeSelector":{"disk":"ssd"}})").dump());
  // $patch on a map: replace takes the patch's map as it is; delete empties it.
  CHECK(smp(live, J(R"({"nodeSelector":{"$patch":"replace","zone":"a"}})"), s) ==
        J(R"({"containers":[
      {"name":"web","image":"nginx:1.25","ports":[{"containerPort":80,"protocol":"TCP"}],
       "args":["a","b"]},
      {"name":"side","image":"busybox"}],"nodeSelector":{"zone":"a"}})")
            .dump());
  auto deleted = apply_strategic_merge_patch(live, J(R"({"nodeSelector":{"$patch":"delete"}})"), s);
  REQUIRE(deleted);
  CHECK((*deleted)["nodeSelector"] == json::object());
  // Errors: an element without its merge key; an unknown directive.
  CHECK(smp(live, J(R"({"containers":[{"image":"x"}]})"), s)
            .find("does not contain declared merge key: name") != std::string::npos);
  CHECK(smp(live, J(R"({"containers":[{"$patch":"frob","name":"web"}]})"), s)
            .find("unknown patch type") != std::string::npos);
  CHECK(smp(live, J(R"([1])"), s).starts_with("ERROR: a strategic merge patch must be"));
}

TEST_CASE("strategic merge patch: $setElementOrder orders the merged list") {
  const Schema& s = schema_of<TPodSpec>();
  json live = J(R"({"containers":[{"name":"a"},{"name":"b"},{"name":"c"}]})");
  CHECK(smp(live, J(R"({"$setElementOrder/containers":[{"name":"c"},{"name":"a"},{"name":"b"}]})"),
            s) == J(R"({"containers":[{"name":"c"},{"name":"a"},{"name":"b"}]})").dump());
  // Listed elements follow the order; the unlisted live element "b" is placed by its live
  // position relative to the listed ones it can be compared with (Kubernetes' mergeSortedSlice).
  CHECK(smp(live, J(R"({"$setElementOrder/containers":[{"name":"a"},{"name":"n"},{"name":"c"}],
                        "containers":[{"name":"n","image":"x"}]})"),
            s) ==
        J(R"({"containers":[{"name":"a"},{"name":"n","image":"x"},{"name":"b"},{"name":"c"}]})")
            .dump());
  // Without an order directive, patched elements follow the patch's order and new ones lead.
  CHECK(smp(live, J(R"({"containers":[{"name":"d"},{"name":"c","image":"y"}]})"), s) ==
        J(R"({"containers":[{"name":"d"},{"name":"a"},{"name":"b"},{"name":"c","image":"y"}]})")
            .dump());
  // A patch list whose order contradicts $setElementOrder is rejected.
  CHECK(smp(live, J(R"({"$setElementOrder/containers":[{"name":"a"},{"name":"b"}],
                        "containers":[{"name":"b","image":"1"},{"name":"a","image":"2"}]})"),
            s)
            .find("doesn't match $setElementOrder") != std::string::npos);
}

TEST_CASE("strategic merge patch: primitive sets, $deleteFromPrimitiveList, $retainKeys") {
  const Schema& d = schema_of<TDeployment>();
  json live = J(R"({"metadata":{"name":"web","finalizers":["a","b"],"labels":{"app":"web"}},
      "spec":{"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%"}}}})");
  auto r = apply_strategic_merge_patch(
      live,
      J(R"({"metadata":{"finalizers":["c","a"],"$deleteFromPrimitiveList/finalizers":["b"]}})"), d);
  REQUIRE(r);
  CHECK((*r)["metadata"]["finalizers"] == J(R"(["c","a"])"));
  r = apply_strategic_merge_patch(live, J(R"({"metadata":{"finalizers":["z"]}})"), d);
  REQUIRE(r);
  CHECK((*r)["metadata"]["finalizers"] == J(R"(["z","a","b"])"));

  r = apply_strategic_merge_patch(
      live, J(R"({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}})"), d);
  REQUIRE(r);
  CHECK((*r)["spec"]["strategy"] == J(R"({"type":"Recreate"})"));
  // Without $retainKeys the object merges and rollingUpdate stays.
  r = apply_strategic_merge_patch(live, J(R"({"spec":{"strategy":{"type":"Recreate"}}})"), d);
  REQUIRE(r);
  CHECK((*r)["spec"]["strategy"].contains("rollingUpdate"));
  CHECK(smp(live, J(R"({"spec":{"strategy":{"$retainKeys":["rollingUpdate"],"type":"x"}}})"), d)
            .find("invalid patch format of retainKeys") != std::string::npos);

  // Fields the schema does not know: maps merge like a merge patch, lists replace.
  live["status"] = J(R"({"conditions":[{"type":"A"}],"nested":{"x":1,"y":2}})");
  r = apply_strategic_merge_patch(
      live, J(R"({"status":{"conditions":[{"type":"B"}],"nested":{"y":null,"z":3}},
                  "extra":{"k":[1]}})"),
      d);
  REQUIRE(r);
  CHECK((*r)["status"] == J(R"({"conditions":[{"type":"B"}],"nested":{"x":1,"z":3}})"));
  CHECK((*r)["extra"] == J(R"({"k":[1]})"));
}

// ---------------------------------------------------------------------------------------------
// kubectl client-side apply: the patch shapes recorded from kubectl 1.20 (kubectl-compat §6).

struct ThreeWay {
  json original, modified, current;
};

json three_way(const ThreeWay& t, const Schema& s) {
  auto p = create_three_way_strategic_patch(t.original, t.modified, t.current, s);
  REQUIRE(p);
  return *p;
}

// After applying the patch, every field of `modified` is in the result, and `current`'s other
// (server-owned) fields survive.
void check_round_trip(const ThreeWay& t, const json& patch, const Schema& s, const json& expect) {
  auto applied = apply_strategic_merge_patch(t.current, patch, s);
  REQUIRE(applied);
  CHECK(applied->dump() == expect.dump());
}

TEST_CASE("three-way patch: replicas and image change (kubectl apply twice)") {
  ThreeWay t;
  t.original = J(R"({"metadata":{"name":"web"},"spec":{"replicas":2,"template":{"spec":{
      "containers":[{"name":"web","image":"nginx:1.25"}]}}}})");
  t.modified = J(R"({"metadata":{"name":"web"},"spec":{"replicas":3,"template":{"spec":{
      "containers":[{"name":"web","image":"nginx:1.26"}]}}}})");
  t.current = J(R"({"metadata":{"name":"web","uid":"u1","resourceVersion":"7"},
      "spec":{"replicas":2,"strategy":{"type":"RollingUpdate"},"template":{"spec":{
      "containers":[{"name":"web","image":"nginx:1.25","imagePullPolicy":"IfNotPresent"}]}}},
      "status":{"replicas":2}})");
  const Schema& s = schema_of<TDeployment>();
  json p = three_way(t, s);
  CHECK(p.dump() == J(R"({"spec":{"replicas":3,"template":{"spec":{
      "$setElementOrder/containers":[{"name":"web"}],
      "containers":[{"image":"nginx:1.26","name":"web"}]}}}})")
                        .dump());
  check_round_trip(t, p, s, J(R"({"metadata":{"name":"web","uid":"u1","resourceVersion":"7"},
      "spec":{"replicas":3,"strategy":{"type":"RollingUpdate"},"template":{"spec":{
      "containers":[{"name":"web","image":"nginx:1.26","imagePullPolicy":"IfNotPresent"}]}}},
      "status":{"replicas":2}})"));
  // An identical manifest produces no patch.
  t.original = t.modified;
  t.current = t.modified;
  CHECK(three_way(t, s) == json::object());
}

TEST_CASE("three-way patch: a field removed since last-applied becomes null") {
  ThreeWay t;
  t.original = J(R"({"spec":{"template":{"spec":{"containers":[
      {"name":"web","image":"nginx","ports":[{"containerPort":80}]}]}}}})");
  t.modified = J(R"({"spec":{"template":{"spec":{"containers":[
      {"name":"web","image":"nginx"}]}}}})");
  t.current = J(R"({"spec":{"template":{"spec":{"containers":[
      {"name":"web","image":"nginx","ports":[{"containerPort":80,"protocol":"TCP"}]}]}}}})");
  const Schema& s = schema_of<TDeployment>();
  json p = three_way(t, s);
  CHECK(p.dump() == J(R"({"spec":{"template":{"spec":{
      "$setElementOrder/containers":[{"name":"web"}],
      "containers":[{"name":"web","ports":null}]}}}})")
                        .dump());
  check_round_trip(t, p, s, t.modified);
}

TEST_CASE("three-way patch: adding a container appends it and lists the order") {
  ThreeWay t;
  t.original = J(R"({"spec":{"template":{"spec":{"containers":[{"name":"web","image":"a"}]}}}})");
  t.modified = J(R"({"spec":{"template":{"spec":{"containers":[
      {"name":"web","image":"a"},{"name":"log","image":"b"}]}}}})");
  t.current = J(R"({"spec":{"template":{"spec":{"containers":[
      {"name":"web","image":"a","imagePullPolicy":"Always"}]}}}})");
  const Schema& s = schema_of<TDeployment>();
  json p = three_way(t, s);
  CHECK(p.dump() == J(R"({"spec":{"template":{"spec":{
      "$setElementOrder/containers":[{"name":"web"},{"name":"log"}],
      "containers":[{"image":"b","name":"log"}]}}}})")
                        .dump());
  check_round_trip(t, p, s, J(R"({"spec":{"template":{"spec":{"containers":[
      {"name":"web","image":"a","imagePullPolicy":"Always"},{"name":"log","image":"b"}]}}}})"));
}

TEST_CASE("three-way patch: Service port 80 -> 8080") {
  ThreeWay t;
  t.original = J(R"({"spec":{"ports":[{"port":80,"targetPort":80}],"selector":{"app":"web"}}})");
  t.modified = J(R"({"spec":{"ports":[{"port":8080,"targetPort":80}],"selector":{"app":"web"}}})");
  t.current = J(R"({"spec":{"ports":[{"port":80,"protocol":"TCP","targetPort":80}],
      "selector":{"app":"web"},"clusterIP":"10.0.0.9"}})");
  const Schema& s = schema_of<TService>();
  json p = three_way(t, s);
  CHECK(p.dump() == J(R"({"spec":{"$setElementOrder/ports":[{"port":8080}],
      "ports":[{"port":8080,"targetPort":80},{"$patch":"delete","port":80}]}})")
                        .dump());
  check_round_trip(t, p, s, J(R"({"spec":{"ports":[{"port":8080,"targetPort":80}],
      "selector":{"app":"web"},"clusterIP":"10.0.0.9"}})"));
}

TEST_CASE("three-way patch: strategy -> Recreate uses $retainKeys") {
  ThreeWay t;
  t.original = J(R"({"spec":{"replicas":1}})");
  t.modified = J(R"({"spec":{"replicas":1,"strategy":{"type":"Recreate"}}})");
  t.current = J(R"({"spec":{"replicas":1,"strategy":{"type":"RollingUpdate",
      "rollingUpdate":{"maxSurge":"25%"}}}})");
  const Schema& s = schema_of<TDeployment>();
  json p = three_way(t, s);
  CHECK(p.dump() ==
        J(R"({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}})").dump());
  check_round_trip(t, p, s, t.modified);
}

TEST_CASE("three-way patch: finalizers merge as a set; labels removed become null") {
  ThreeWay t;
  t.original = J(R"({"metadata":{"finalizers":["a","b"],"labels":{"app":"web","tier":"fe"}}})");
  t.modified = J(R"({"metadata":{"finalizers":["a","c"],"labels":{"app":"web"}}})");
  t.current = J(R"({"metadata":{"finalizers":["a","b","server"],
      "labels":{"app":"web","tier":"fe","added-by-server":"x"}}})");
  const Schema& s = schema_of<TDeployment>();
  json p = three_way(t, s);
  CHECK(p.dump() == J(R"({"metadata":{
      "$deleteFromPrimitiveList/finalizers":["b"],
      "$setElementOrder/finalizers":["a","c"],
      "finalizers":["c"],
      "labels":{"tier":null}}})")
                        .dump());
  // Server-added finalizers and labels survive: apply only removes what it set.
  check_round_trip(t, p, s, J(R"({"metadata":{"finalizers":["a","c","server"],
      "labels":{"app":"web","added-by-server":"x"}}})"));
}

TEST_CASE("three-way patch: a removed keyed element is deleted, a changed one patched") {
  ThreeWay t;
  t.original = J(R"({"spec":{"template":{"spec":{"containers":[
      {"name":"a","image":"1","env":[{"name":"X","value":"1"},{"name":"Y","value":"2"}]},
      {"name":"b","image":"1"}]}}}})");
  t.modified = J(R"({"spec":{"template":{"spec":{"containers":[
      {"name":"a","image":"1","env":[{"name":"Y","value":"3"}]}]}}}})");
  t.current = t.original;
  const Schema& s = schema_of<TDeployment>();
  json p = three_way(t, s);
  auto applied = apply_strategic_merge_patch(t.current, p, s);
  REQUIRE(applied);
  CHECK(applied->dump() == t.modified.dump());
  // The exact shape: delete directives after the patched elements, order lists for both lists.
  CHECK(p.dump() == J(R"({"spec":{"template":{"spec":{
      "$setElementOrder/containers":[{"name":"a"}],
      "containers":[{"$setElementOrder/env":[{"name":"Y"}],"env":[{"name":"Y","value":"3"},
                     {"$patch":"delete","name":"X"}],"name":"a"},
                    {"$patch":"delete","name":"b"}]}}}})")
                        .dump());
}

}  // namespace
}  // namespace skiff::proto
