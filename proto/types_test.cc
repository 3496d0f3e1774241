// Codec round-trips, defaulting, validation, Table rows and field selectors for every built-in
// kind, driven through the registry as the API server drives them.
#include <catch2/catch.hpp>
#include <set>

#include "proto/configmap.h"
#include "proto/endpoints.h"
#include "proto/event.h"
#include "proto/lease.h"
#include "proto/namespace.h"
#include "proto/node.h"
#include "proto/pod.h"
#include "proto/registry.h"
#include "proto/secret.h"
#include "proto/service.h"
#include "proto/test_util.h"

namespace skiff::proto {
namespace {

using testutil::describe;
using testutil::fixture;

const ResourceType& type(const char* name) {
  const ResourceType* t = Registry::builtin().resolve(name);
  REQUIRE(t != nullptr);
  return *t;
}

// normalize(fixture) == fixture, decode -> encode -> decode is stable, and defaulting leaves
// the fixture unchanged and valid.
template <class T>
void check_round_trip(const char* plural, const char* file) {
  INFO(file);
  testutil::check_round_trip<T>(type(plural), fixture(file));
}

TEST_CASE("every kind round-trips through the codec") {
  check_round_trip<Pod>("pods", "pod");
  check_round_trip<Service>("services", "service");
  check_round_trip<Namespace>("namespaces", "namespace");
  check_round_trip<Node>("nodes", "node");
  check_round_trip<Endpoints>("endpoints", "endpoints");
  check_round_trip<ConfigMap>("configmaps", "configmap");
  check_round_trip<Secret>("secrets", "secret");
  check_round_trip<Event>("events", "event");
  check_round_trip<Lease>("leases", "lease");
}

TEST_CASE("Go omission rules on minimal objects") {
  FieldErrors errs;
  json pod = type("pods").normalize(
      json::parse(R"({"metadata":{"name":"a"},"spec":{"containers":[{"name":"c"}]}})"), errs, {});
  CHECK(pod == json::parse(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},
      "spec":{"containers":[{"name":"c","resources":{}}]},"status":{}})"));
  json cm = type("cm").normalize(json::parse(R"({"metadata":{"name":"a"}})"), errs, {});
  CHECK(cm == json::parse(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}})"));
  json ev = type("ev").normalize(json::parse(R"({"metadata":{"name":"a"}})"), errs, {});
  CHECK(ev == json::parse(R"({"apiVersion":"v1","kind":"Event","metadata":{"name":"a"},
      "involvedObject":{},"source":{},"firstTimestamp":null,"lastTimestamp":null,
      "eventTime":null,"reportingComponent":"","reportingInstance":""})"));
  json svc = type("svc").normalize(json::parse(R"({"spec":{"ports":[{"port":80}]}})"), errs, {});
  CHECK(svc["spec"]["ports"][0] == json::parse(R"({"port":80,"targetPort":0})"));
  CHECK(svc["status"] == json::parse(R"({"loadBalancer":{}})"));
  CHECK(errs.empty());
}

TEST_CASE("normalize reports type errors and unknown fields with paths") {
  FieldErrors errs;
  (void)type("pods").normalize(json::parse(R"({"metadata":{"name":"a"},"spec":{"containers":[
      {"name":"c","ports":[{"containerPort":"80"}],"bogus":1}]}})"),
                               errs, DecodeOptions{});
  REQUIRE(errs.size() == 2);
  std::set<std::string> fields;
  for (const auto& e : errs) fields.insert(e.field);
  CHECK(fields.count("spec.containers[0].ports[0].containerPort"));
  CHECK(fields.count("spec.containers[0].bogus"));
  errs.clear();
  (void)type("pods").normalize(json::parse(R"({"spec":{"containers":[{"resources":
      {"limits":{"cpu":"lots"}}}]}})"),
                               errs, DecodeOptions{});
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].field == "spec.containers[0].resources.limits[cpu]");
}

// ---------------------------------------------------------------------------------------------
// Defaulting.

json defaulted(const char* plural, const char* text) {
  const ResourceType& t = type(plural);
  FieldErrors errs;
  json obj = t.normalize(json::parse(text), errs, {});
  REQUIRE(errs.empty());
  t.apply_defaults(obj);
  return obj;
}

TEST_CASE("pod defaults") {
  json p = defaulted("pods", R"({"metadata":{"name":"a","namespace":"default"},"spec":{
      "containers":[{"name":"a","image":"nginx","ports":[{"containerPort":80}],
                     "readinessProbe":{"httpGet":{"port":80}},
                     "resources":{"limits":{"cpu":"1","memory":"1Gi"}},
                     "env":[{"name":"N","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}]},
                    {"name":"b","image":"nginx:1.25"},
                    {"name":"c","image":"registry:5000/x:latest"},
                    {"name":"d","image":"registry:5000/x"},
                    {"name":"e","image":"x@sha256:abc"}],
      "volumes":[{"name":"v"},{"name":"cm","configMap":{"name":"x"}}]}})");
  const json& s = p["spec"];
  CHECK(s["restartPolicy"] == "Always");
  CHECK(s["dnsPolicy"] == "ClusterFirst");
  CHECK(s["terminationGracePeriodSeconds"] == 30);
  CHECK(s["schedulerName"] == "default-scheduler");
  CHECK(s["securityContext"] == json::object());
  CHECK(s["enableServiceLinks"] == true);
  const json& c = s["containers"][0];
  CHECK(c["ports"][0]["protocol"] == "TCP");
  CHECK(c["imagePullPolicy"] == "Always");
  CHECK(c["terminationMessagePath"] == "/dev/termination-log");
  CHECK(c["terminationMessagePolicy"] == "File");
  CHECK(c["readinessProbe"] == json::parse(R"({"httpGet":{"path":"/","port":80,"scheme":"HTTP"},
      "timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3})"));
  CHECK(c["resources"]["requests"] == json::parse(R"({"cpu":"1","memory":"1Gi"})"));
  CHECK(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1");
  CHECK(s["containers"][1]["imagePullPolicy"] == "IfNotPresent");
  CHECK(s["containers"][2]["imagePullPolicy"] == "Always");
  CHECK(s["containers"][3]["imagePullPolicy"] == "Always");
  CHECK(s["containers"][4]["imagePullPolicy"] == "IfNotPresent");
  CHECK(s["volumes"][0]["emptyDir"] == json::object());
  CHECK(s["volumes"][1]["configMap"]["defaultMode"] == 420);
  CHECK(p["status"]["phase"] == "Pending");
  CHECK(p["status"]["qosClass"] == "Burstable");
  // Defaulting is idempotent.
  json again = p;
  type("pods").apply_defaults(again);
  CHECK(again == p);
}

TEST_CASE("service, secret, namespace and endpoints defaults") {
  json svc = defaulted("services", R"({"metadata":{"name":"a"},"spec":{"type":"NodePort",
      "ports":[{"port":80},{"port":443,"targetPort":"https","protocol":"UDP"}]}})");
  CHECK(svc["spec"]["ports"][0] == json::parse(R"({"port":80,"protocol":"TCP","targetPort":80})"));
  CHECK(svc["spec"]["ports"][1]["targetPort"] == "https");
  CHECK(svc["spec"]["ports"][1]["protocol"] == "UDP");
  CHECK(svc["spec"]["sessionAffinity"] == "None");
  CHECK(svc["spec"]["externalTrafficPolicy"] == "Cluster");
  CHECK(svc["spec"]["internalTrafficPolicy"] == "Cluster");
  json plain = defaulted("services", R"({"metadata":{"name":"a"},"spec":{"ports":[{"port":80}]}})");
  CHECK(plain["spec"]["type"] == "ClusterIP");
  CHECK_FALSE(plain["spec"].contains("externalTrafficPolicy"));

  json sec = defaulted("secrets", R"({"metadata":{"name":"s"},"data":{"a":"eA=="},
      "stringData":{"b":"hello","a":"yz"}})");
  CHECK(sec["type"] == "Opaque");
  CHECK(sec["data"] == json::parse(R"({"a":"eXo=","b":"aGVsbG8="})"));
  CHECK_FALSE(sec.contains("stringData"));

  json ns = defaulted("namespaces", R"({"metadata":{"name":"n"}})");
  CHECK(ns["spec"]["finalizers"] == json::array({"kubernetes"}));
  CHECK(ns["status"]["phase"] == "Active");

  json ep = defaulted("endpoints", R"({"metadata":{"name":"e"},"subsets":[{"addresses":
      [{"ip":"10.0.0.1"}],"ports":[{"port":80}]}]})");
  CHECK(ep["subsets"][0]["ports"][0]["protocol"] == "TCP");
}

// ---------------------------------------------------------------------------------------------
// Validation.

FieldErrors validate(const char* plural, const json& obj, const json* old = nullptr) {
  const ResourceType& t = type(plural);
  FieldErrors errs;
  json n = t.normalize(obj, errs, {});
  REQUIRE(errs.empty());
  t.apply_defaults(n);
  if (old) {
    json o = t.normalize(*old, errs, {});
    t.apply_defaults(o);
    return t.validate(n, &o);
  }
  return t.validate(n, nullptr);
}

const FieldError* find(const FieldErrors& errs, const std::string& field,
                       ErrorType type = ErrorType::kInvalid) {
  for (const auto& e : errs)
    if (e.field == field && e.type == type) return &e;
  return nullptr;
}

TEST_CASE("node validation: pod CIDRs are CIDRs, at most one per IP family") {
  auto node = [](const char* spec) {
    return json::parse(std::string(R"({"metadata":{"name":"n1"},"spec":)") + spec + "}");
  };
  CHECK(validate("nodes", node(R"({"podCIDR":"10.244.1.0/24"})")).empty());
  CHECK(validate("nodes", node(R"({"podCIDRs":["10.244.1.0/24","fd00:1::/64"]})")).empty());
  auto errs = validate("nodes", node(R"({"podCIDR":"1Gi"})"));
  INFO(describe(errs));
  const FieldError* e = find(errs, "spec.podCIDR");
  REQUIRE(e);
  CHECK(e->message() ==
        "Invalid value: \"1Gi\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)");
  for (const char* bad :
       {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0", "fd00::/129", "x/8", "10.0.0.0/2a"}) {
    INFO(bad);
    CHECK(find(validate("nodes", node((std::string(R"({"podCIDRs":[")") + bad + "\"]}").c_str())),
               "spec.podCIDRs[0]"));
  }
  errs = validate("nodes", node(R"({"podCIDRs":["10.244.1.0/24","10.244.2.0/24"]})"));
  e = find(errs, "spec.podCIDRs");
  REQUIRE(e);
  CHECK(e->message().find("may specify no more than one CIDR for each IP family") !=
        std::string::npos);
}

TEST_CASE("metadata validation") {
  auto errs = validate("pods", json::parse(R"({"metadata":{"name":"Foo_bar","namespace":"default",
      "labels":{"bad key!":"v"},"annotations":{"ok":"v"}},
      "spec":{"containers":[{"name":"c","image":"i"}]}})"));
  INFO(describe(errs));
  const FieldError* e = find(errs, "metadata.name");
  REQUIRE(e);
  CHECK(e->message().rfind("Invalid value: \"Foo_bar\": a lowercase RFC 1123 subdomain", 0) == 0);
  CHECK(find(errs, "metadata.labels"));

  errs = validate("pods", json::parse(R"({"spec":{"containers":[{"name":"c","image":"i"}]}})"));
  e = find(errs, "metadata.name", ErrorType::kRequired);
  REQUIRE(e);
  CHECK(e->message() == "Required value: name or generateName is required");
  CHECK(find(errs, "metadata.namespace", ErrorType::kRequired));

  errs = validate("pods", json::parse(R"({"metadata":{"generateName":"web-","namespace":"x"},
      "spec":{"containers":[{"name":"c","image":"i"}]}})"));
  CHECK(errs.empty());

  // Cluster-scoped kinds refuse a namespace; namespaces and services use label rules.
  errs = validate("nodes", json::parse(R"({"metadata":{"name":"n.example.com","namespace":"x"}})"));
  CHECK(find(errs, "metadata.namespace", ErrorType::kForbidden));
  CHECK_FALSE(find(errs, "metadata.name"));
  errs = validate("namespaces", json::parse(R"({"metadata":{"name":"a.b"}})"));
  CHECK(find(errs, "metadata.name"));
  errs = validate("services", json::parse(R"({"metadata":{"name":"1abc","namespace":"d"},
      "spec":{"ports":[{"port":80}]}})"));
  e = find(errs, "metadata.name");
  REQUIRE(e);
  CHECK(e->detail.find("DNS-1035") != std::string::npos);

  errs = validate("configmaps", json::parse(R"({"metadata":{"name":"a","namespace":"d",
      "ownerReferences":[{"apiVersion":"v1","kind":"","name":"x","uid":""}]}})"));
  CHECK(find(errs, "metadata.ownerReferences[0].kind"));
  CHECK(find(errs, "metadata.ownerReferences[0].uid"));
}

TEST_CASE("metadata is immutable on update") {
  json old = json::parse(R"({"metadata":{"name":"a","namespace":"d","uid":"u1"}})");
  json now = json::parse(R"({"metadata":{"name":"b","namespace":"e","uid":"u2"}})");
  auto errs = validate("configmaps", now, &old);
  INFO(describe(errs));
  CHECK(find(errs, "metadata.name"));
  CHECK(find(errs, "metadata.namespace"));
  CHECK(find(errs, "metadata.uid"));
  CHECK(find(errs, "metadata.name")->message() == "Invalid value: \"b\": field is immutable");
}

TEST_CASE("pod validation: user and group IDs are 0..2147483647") {
  auto errs = validate("pods", json::parse(R"({"metadata":{"name":"p","namespace":"default"},
      "spec":{"securityContext":{"runAsUser":-1,"runAsGroup":2147483648,"fsGroup":0,
        "supplementalGroups":[5,-5]},
        "containers":[{"name":"c","image":"i","securityContext":{"runAsUser":2147483648,
          "runAsGroup":2147483647}}]}})"));
  INFO(describe(errs));
  const FieldError* e = find(errs, "spec.securityContext.runAsUser");
  REQUIRE(e);
  CHECK(e->message() == "Invalid value: -1: must be between 0 and 2147483647, inclusive");
  CHECK(find(errs, "spec.securityContext.runAsGroup"));
  CHECK_FALSE(find(errs, "spec.securityContext.fsGroup"));
  CHECK(find(errs, "spec.securityContext.supplementalGroups[1]"));
  CHECK_FALSE(find(errs, "spec.securityContext.supplementalGroups[0]"));
  CHECK(find(errs, "spec.containers[0].securityContext.runAsUser"));
  CHECK_FALSE(find(errs, "spec.containers[0].securityContext.runAsGroup"));
  CHECK(errs.size() == 4);
}

TEST_CASE("pod validation: activeDeadlineSeconds is 1..2147483647") {
  auto with = [](const std::string& ads) {
    return validate("pods", json::parse(R"({"metadata":{"name":"p","namespace":"default"},
        "spec":{"activeDeadlineSeconds":)" + ads + R"(,"containers":[{"name":"c","image":"i"}]}})"));
  };
  CHECK(with("1").empty());
  CHECK(with("2147483647").empty());
  for (const char* bad : {"0", "-1", "2147483648", "9223372036854775807"}) {
    INFO(bad);
    auto errs = with(bad);
    REQUIRE(errs.size() == 1);
    CHECK(errs[0].field == "spec.activeDeadlineSeconds");
    CHECK(errs[0].message() ==
          std::string("Invalid value: ") + bad + ": must be between 1 and 2147483647, inclusive");
  }
}

TEST_CASE("pod validation returns every error with its path") {
  auto errs = validate("pods", json::parse(R"({"metadata":{"name":"p","namespace":"d"},"spec":{
      "restartPolicy":"Sometimes",
      "containers":[
        {"name":"web","ports":[{"containerPort":0,"name":"way-too-long-port-name"},
                               {"containerPort":70000,"protocol":"ICMP"}],
         "env":[{"name":""},{"name":"1BAD=","value":"x"}],
         "resources":{"limits":{"cpu":"1"},"requests":{"cpu":"2"}},
         "volumeMounts":[{"name":"missing","mountPath":"/x"}]},
        {"name":"web","image":"i"},
        {"name":"Bad_Name","image":"i"}]}})"));
  INFO(describe(errs));
  const FieldError* e = find(errs, "spec.containers[0].image", ErrorType::kRequired);
  REQUIRE(e);
  CHECK(e->message() == "Required value");
  CHECK(find(errs, "spec.containers[0].ports[0].containerPort"));
  CHECK(find(errs, "spec.containers[0].ports[0].name"));
  CHECK(find(errs, "spec.containers[0].ports[1].containerPort"));
  e = find(errs, "spec.containers[0].ports[1].protocol", ErrorType::kNotSupported);
  REQUIRE(e);
  CHECK(e->message() ==
        "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"");
  CHECK(find(errs, "spec.containers[0].env[0].name", ErrorType::kRequired));
  CHECK(find(errs, "spec.containers[0].env[1].name"));
  e = find(errs, "spec.containers[0].resources.requests[cpu]");
  REQUIRE(e);
  CHECK(e->message() == "Invalid value: \"2\": must be less than or equal to cpu limit of 1");
  CHECK(find(errs, "spec.containers[0].volumeMounts[0].name"));
  CHECK(find(errs, "spec.containers[1].name", ErrorType::kDuplicate));
  CHECK(find(errs, "spec.containers[2].name"));
  e = find(errs, "spec.restartPolicy", ErrorType::kNotSupported);
  REQUIRE(e);
  CHECK(e->message() ==
        "Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\", \"OnFailure\"");

  errs = validate("pods", json::parse(R"({"metadata":{"name":"p","namespace":"d"},"spec":{}})"));
  CHECK(find(errs, "spec.containers", ErrorType::kRequired));

  errs = validate("pods", json::parse(R"({"metadata":{"name":"p","namespace":"d"},"spec":{
      "containers":[{"name":"c","image":"i","livenessProbe":{"periodSeconds":5},
                     "readinessProbe":{"exec":{"command":["x"]},"tcpSocket":{"port":0}}}],
      "tolerations":[{"operator":"Equal","value":"x"}],
      "volumes":[{"name":"a","emptyDir":{},"hostPath":{"path":"/x"}}]}})"));
  INFO(describe(errs));
  CHECK(find(errs, "spec.containers[0].livenessProbe", ErrorType::kRequired));
  CHECK(find(errs, "spec.containers[0].readinessProbe", ErrorType::kForbidden));
  CHECK(find(errs, "spec.containers[0].readinessProbe.tcpSocket.port"));
  CHECK(find(errs, "spec.tolerations[0].operator"));
  CHECK(find(errs, "spec.volumes[0]", ErrorType::kForbidden));
}

TEST_CASE("pod updates may only change images and activeDeadlineSeconds") {
  json old = json::parse(R"({"metadata":{"name":"p","namespace":"d"},"spec":{
      "activeDeadlineSeconds":100,"containers":[{"name":"c","image":"nginx:1.25"}]}})");
  json ok = old;
  ok["spec"]["containers"][0]["image"] = "nginx:1.26";
  ok["spec"]["activeDeadlineSeconds"] = 50;
  ok["spec"]["tolerations"] = json::parse(R"([{"key":"k","operator":"Exists"}])");
  ok["metadata"]["labels"] = {{"new", "label"}};
  ok["status"] = {{"phase", "Running"}};
  auto errs = validate("pods", ok, &old);
  INFO(describe(errs));
  CHECK(errs.empty());

  json bad = old;
  bad["spec"]["containers"][0]["command"] = {"sh"};
  bad["spec"]["activeDeadlineSeconds"] = 200;
  errs = validate("pods", bad, &old);
  const FieldError* e = find(errs, "spec", ErrorType::kForbidden);
  REQUIRE(e);
  CHECK(e->message().rfind("Forbidden: pod updates may not change fields other than "
                           "`spec.containers[*].image`",
                           0) == 0);
  CHECK(find(errs, "spec.activeDeadlineSeconds"));
}

TEST_CASE("service validation") {
  auto errs = validate("services", json::parse(R"({"metadata":{"name":"s","namespace":"d"},
      "spec":{"type":"Fancy","clusterIP":"300.1.1.1","ports":[
        {"port":80,"nodePort":30080},{"port":0},{"name":"a","port":81},{"name":"a","port":82}]}})"));
  INFO(describe(errs));
  CHECK(find(errs, "spec.type", ErrorType::kNotSupported));
  const FieldError* e = find(errs, "spec.clusterIP");
  REQUIRE(e);
  CHECK(e->detail == "must be empty, 'None', or a valid IP address");
  CHECK(find(errs, "spec.ports[0].name", ErrorType::kRequired));
  CHECK(find(errs, "spec.ports[1].port"));
  CHECK(find(errs, "spec.ports[3].name", ErrorType::kDuplicate));

  errs = validate("services", json::parse(R"({"metadata":{"name":"s","namespace":"d"},
      "spec":{"ports":[{"port":80,"nodePort":30080}]}})"));
  e = find(errs, "spec.ports[0].nodePort", ErrorType::kForbidden);
  REQUIRE(e);
  CHECK(e->message() == "Forbidden: may not be used when `type` is 'ClusterIP'");

  errs =
      validate("services", json::parse(R"({"metadata":{"name":"s","namespace":"d"},"spec":{}})"));
  CHECK(find(errs, "spec.ports", ErrorType::kRequired));
  // Headless and ExternalName services need no ports.
  CHECK(validate("services", json::parse(R"({"metadata":{"name":"s","namespace":"d"},
      "spec":{"clusterIP":"None"}})"))
            .empty());
  CHECK(validate("services", json::parse(R"({"metadata":{"name":"s","namespace":"d"},
      "spec":{"type":"ExternalName","externalName":"db.example.com"}})"))
            .empty());
  errs = validate("services", json::parse(R"({"metadata":{"name":"s","namespace":"d"},
      "spec":{"type":"NodePort","clusterIP":"None","ports":[{"port":80}]}})"));
  e = find(errs, "spec.clusterIPs[0]", ErrorType::kInvalid);
  REQUIRE(e);
  CHECK(e->message() == "Invalid value: \"None\": may not be set to 'None' for NodePort services");
  errs = validate("services", json::parse(R"({"metadata":{"name":"s","namespace":"d"},
      "spec":{"type":"ExternalName"}})"));
  CHECK(find(errs, "spec.externalName", ErrorType::kRequired));

  json old = json::parse(R"({"metadata":{"name":"s","namespace":"d"},
      "spec":{"clusterIP":"10.96.0.5","ports":[{"port":80}]}})");
  json now = old;
  now["spec"]["clusterIP"] = "10.96.0.6";
  errs = validate("services", now, &old);
  CHECK(find(errs, "spec.clusterIP"));
  now["spec"]["clusterIP"] = "10.96.0.5";
  now["spec"]["ports"][0]["port"] = 81;
  CHECK(validate("services", now, &old).empty());
}

TEST_CASE("configmap and secret validation") {
  auto errs = validate("configmaps", json::parse(R"({"metadata":{"name":"c","namespace":"d"},
      "data":{"bad/key":"v","dup":"x"},"binaryData":{"dup":"AA==","blob":"not base64!"}})"));
  INFO(describe(errs));
  CHECK(find(errs, "data[bad/key]"));
  CHECK(find(errs, "data[dup]"));
  CHECK(find(errs, "binaryData[blob]"));

  json old = json::parse(R"({"metadata":{"name":"c","namespace":"d"},"immutable":true,
      "data":{"a":"1"}})");
  json now = old;
  now["data"]["a"] = "2";
  errs = validate("configmaps", now, &old);
  CHECK(find(errs, "data", ErrorType::kForbidden));
  now = old;
  now["metadata"]["labels"] = {{"x", "y"}};
  CHECK(validate("configmaps", now, &old).empty());

  errs = validate("secrets", json::parse(R"({"metadata":{"name":"s","namespace":"d"},
      "data":{"a":"abc"},"type":"kubernetes.io/tls"})"));
  INFO(describe(errs));
  const FieldError* e = find(errs, "data[a]");
  REQUIRE(e);
  CHECK(e->detail == "illegal base64 data at input byte 0");
  CHECK(find(errs, "data[tls.crt]", ErrorType::kRequired));
  CHECK(find(errs, "data[tls.key]", ErrorType::kRequired));
  old = json::parse(R"({"metadata":{"name":"s","namespace":"d"},"data":{"a":"YQ=="}})");
  now = old;
  now["type"] = "example.com/other";
  errs = validate("secrets", now, &old);
  CHECK(find(errs, "type"));
}

TEST_CASE("other kinds' validation") {
  auto errs = validate("nodes", json::parse(R"({"metadata":{"name":"n"},"spec":{"taints":[
      {"key":"a","effect":"Sometimes"},{"key":"a","effect":"Sometimes"}]}})"));
  CHECK(find(errs, "spec.taints[0].effect", ErrorType::kNotSupported));
  CHECK(find(errs, "spec.taints[1]", ErrorType::kDuplicate));
  errs = validate("endpoints", json::parse(R"({"metadata":{"name":"e","namespace":"d"},
      "subsets":[{"addresses":[{"ip":"nope"}],"ports":[{"port":80},{"port":81}]}]})"));
  CHECK(find(errs, "subsets[0].addresses[0].ip"));
  CHECK(find(errs, "subsets[0].ports[0].name", ErrorType::kRequired));
  errs = validate("events", json::parse(R"({"metadata":{"name":"e","namespace":"d"},
      "involvedObject":{"kind":"Pod","namespace":"other","name":"p"}})"));
  const FieldError* e = find(errs, "involvedObject.namespace");
  REQUIRE(e);
  CHECK(e->detail == "does not match event.namespace");
  errs = validate("events", json::parse(R"({"metadata":{"name":"e","namespace":"d"},
      "involvedObject":{"kind":"Pod","namespace":"d","name":"p"},
      "eventTime":"2026-11-25T10:00:00.000000Z"})"));
  CHECK(find(errs, "reportingComponent", ErrorType::kRequired));
  CHECK(find(errs, "action", ErrorType::kRequired));
  errs = validate("leases", json::parse(R"({"metadata":{"name":"l","namespace":"d"},
      "spec":{"leaseDurationSeconds":0}})"));
  CHECK(find(errs, "spec.leaseDurationSeconds"));
  errs = validate("namespaces", json::parse(R"({"metadata":{"name":"n"},
      "status":{"phase":"Gone"}})"));
  CHECK(find(errs, "status.phase", ErrorType::kNotSupported));
}

// ---------------------------------------------------------------------------------------------
// Tables.

const Clock::time_point kNow = *parse_rfc3339("2026-11-25T10:10:00Z");

std::vector<std::string> column_names(const ResourceType& t, bool wide) {
  std::vector<std::string> out;
  for (const auto& c : t.columns)
    if (wide || c.priority == 0) out.push_back(c.name);
  return out;
}

TEST_CASE("table columns are kubectl's") {
  using V = std::vector<std::string>;
  CHECK(column_names(type("pods"), true) == V{"Name", "Ready", "Status", "Restarts", "Age", "IP",
                                              "Node", "Nominated Node", "Readiness Gates"});
  CHECK(column_names(type("svc"), true) ==
        V{"Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"});
  CHECK(column_names(type("no"), false) == V{"Name", "Status", "Roles", "Age", "Version"});
  CHECK(column_names(type("ns"), true) == V{"Name", "Status", "Age"});
  CHECK(column_names(type("ep"), true) == V{"Name", "Endpoints", "Age"});
  CHECK(column_names(type("cm"), true) == V{"Name", "Data", "Age"});
  CHECK(column_names(type("secrets"), true) == V{"Name", "Type", "Data", "Age"});
  CHECK(column_names(type("ev"), false) == V{"Last Seen", "Type", "Reason", "Object", "Message"});
  CHECK(column_names(type("leases"), true) == V{"Name", "Holder", "Age"});
  CHECK(type("pods").columns[0].format == "name");
  CHECK(type("pods").columns[3].type == "integer");
  for (const auto& t : Registry::builtin().all()) {
    json row = t.row_cells(fixture(t.singular == "endpoints" ? "endpoints" : t.singular), kNow);
    INFO(t.kind);
    CHECK(row.size() == t.columns.size());
  }
}

TEST_CASE("table rows") {
  CHECK(type("pods").row_cells(fixture("pod"), kNow) ==
        json::parse(R"(["web-0","1/1","Running",2,"10m","10.244.1.5","node-1","<none>","0/1"])"));
  CHECK(type("svc").row_cells(fixture("service"), kNow) ==
        json::parse(R"(["web","LoadBalancer","10.96.0.10","203.0.113.9,lb.example.com,192.0.2.7",
                        "80:30080/TCP,9090:30090/TCP","10m","app=web"])"));
  CHECK(type("no").row_cells(fixture("node"), kNow) ==
        json::parse(R"j(["node-1","Ready,SchedulingDisabled","control-plane","10m","v1.29.0",
            "192.168.1.10","<none>","Debian GNU/Linux 12 (bookworm)","6.1.0-18-amd64",
            "skiff://0.1.0"])j"));
  CHECK(type("ns").row_cells(fixture("namespace"), kNow) ==
        json::parse(R"(["team-a","Terminating","10m"])"));
  CHECK(type("ep").row_cells(fixture("endpoints"), kNow) ==
        json::parse(
            R"(["web","10.244.1.5:8080,10.244.2.7:8080,10.244.1.5:9090 + 1 more...","10m"])"));
  CHECK(type("cm").row_cells(fixture("configmap"), kNow) ==
        json::parse(R"(["web-config",3,"10m"])"));
  CHECK(type("secret").row_cells(fixture("secret"), kNow) ==
        json::parse(R"(["web-secret","kubernetes.io/basic-auth",2,"10m"])"));
  CHECK(type("ev").row_cells(fixture("event"), kNow) ==
        json::parse(R"(["5m59s","Normal","Pulled","pod/web-0","spec.containers{nginx}",
            "kubelet, node-1","Container image \"nginx:1.25\" already present on machine",
            "10m",3,"web-0.17a8b9c0d1e2f3a4"])"));
  CHECK(type("lease").row_cells(fixture("lease"), kNow) ==
        json::parse(R"(["node-1","node-1","10m"])"));
}

std::string pod_status(const char* status_json, const char* extra_meta = "") {
  Pod p;
  FieldErrors errs;
  p = decode<Pod>(json::parse(std::string(R"({"metadata":{"name":"p")") + extra_meta +
                              R"(},"spec":{"initContainers":[{"name":"i"}],"containers":[
                              {"name":"a"},{"name":"b"}]},"status":)" +
                              status_json + "}"),
                  errs);
  REQUIRE(errs.empty());
  return pod_status_reason(p);
}

TEST_CASE("pod status column follows kubectl's logic") {
  CHECK(pod_status(R"({"phase":"Pending"})") == "Pending");
  CHECK(pod_status(R"({"phase":"Pending","initContainerStatuses":[{"name":"i","state":{
      "running":{}}}]})") == "Init:0/1");
  CHECK(pod_status(R"({"phase":"Pending","initContainerStatuses":[{"name":"i","state":{
      "waiting":{"reason":"ImagePullBackOff"}}}]})") == "Init:ImagePullBackOff");
  CHECK(pod_status(R"({"phase":"Pending","initContainerStatuses":[{"name":"i","state":{
      "terminated":{"exitCode":2}}}]})") == "Init:ExitCode:2");
  CHECK(pod_status(R"({"phase":"Running","containerStatuses":[
      {"name":"a","state":{"waiting":{"reason":"CrashLoopBackOff"}}},
      {"name":"b","ready":true,"state":{"running":{}}}]})") == "CrashLoopBackOff");
  CHECK(pod_status(R"({"phase":"Succeeded","containerStatuses":[
      {"name":"a","state":{"terminated":{"exitCode":0,"reason":"Completed"}}}]})") == "Completed");
  CHECK(pod_status(R"({"phase":"Running","containerStatuses":[
      {"name":"a","state":{"terminated":{"exitCode":0,"reason":"Completed"}}},
      {"name":"b","ready":true,"state":{"running":{}}}]})") == "NotReady");
  CHECK(pod_status(R"({"phase":"Failed","containerStatuses":[
      {"name":"a","state":{"terminated":{"exitCode":0,"signal":9}}}]})") == "Signal:9");
  CHECK(pod_status(R"({"phase":"Running"})", R"(,"deletionTimestamp":"2026-11-25T10:00:00Z")") ==
        "Terminating");
  CHECK(pod_status(R"({"phase":"Running","reason":"NodeLost"})",
                   R"(,"deletionTimestamp":"2026-11-25T10:00:00Z")") == "Unknown");
  CHECK(pod_status(R"({"phase":"Failed","reason":"Evicted"})") == "Evicted");
}

TEST_CASE("endpoints column") {
  Endpoints ep;
  CHECK(format_endpoints(ep) == "<none>");
  ep.subsets.push_back({});
  ep.subsets[0].addresses = {{"10.0.0.1"}, {"fd00::1"}};
  CHECK(format_endpoints(ep) == "10.0.0.1,fd00::1");
  ep.subsets[0].ports = {{"", 80}};
  CHECK(format_endpoints(ep) == "10.0.0.1:80,[fd00::1]:80");
}

TEST_CASE("field selector values") {
  auto get = [](const char* plural, const char* file, std::string_view field) {
    return type(plural).field_value(fixture(file), field);
  };
  CHECK(get("pods", "pod", "metadata.name") == "web-0");
  CHECK(get("pods", "pod", "metadata.namespace") == "default");
  CHECK(get("pods", "pod", "spec.nodeName") == "node-1");
  CHECK(get("pods", "pod", "status.phase") == "Running");
  CHECK(get("pods", "pod", "status.podIP") == "10.244.1.5");
  CHECK(get("pods", "pod", "spec.restartPolicy") == "Always");
  CHECK(get("pods", "pod", "spec.schedulerName") == "default-scheduler");
  CHECK(get("pods", "pod", "spec.serviceAccountName") == "default");
  CHECK(get("pods", "pod", "status.nominatedNodeName") == "");
  CHECK(get("pods", "pod", "spec.hostNetwork") == "false");
  CHECK(get("pods", "pod", "spec.containers") == std::nullopt);
  CHECK(get("events", "event", "involvedObject.kind") == "Pod");
  CHECK(get("events", "event", "involvedObject.name") == "web-0");
  CHECK(get("events", "event", "involvedObject.uid") == "2f6c");
  CHECK(get("events", "event", "involvedObject.fieldPath") == "spec.containers{nginx}");
  CHECK(get("events", "event", "source") == "kubelet");
  CHECK(get("events", "event", "reason") == "Pulled");
  CHECK(get("events", "event", "type") == "Normal");
  CHECK(get("events", "event", "reportingComponent") == "kubelet");
  CHECK(get("secrets", "secret", "type") == "kubernetes.io/basic-auth");
  CHECK(get("nodes", "node", "spec.unschedulable") == "true");
  CHECK(get("namespaces", "namespace", "status.phase") == "Terminating");
  CHECK(get("namespaces", "namespace", "metadata.namespace") == "");
  CHECK(get("configmaps", "configmap", "data") == std::nullopt);
}

}  // namespace
}  // namespace skiff::proto
