// Protobuf request bodies, encoded by hand the way go-to-protobuf writes them (every non-pointer
// field present, zero or not), decoded into the JSON kubectl would have sent.
#include "apiserver/protobuf.h"

#include <catch2/catch.hpp>
#include <string>

namespace skiff::apiserver {
namespace {

std::string varint(uint64_t v) {
  std::string s;
  while (v >= 0x80) {
    s += char(uint8_t(v) | 0x80);
    v >>= 7;
  }
  s += char(v);
  return s;
}
// Length-delimited field (strings, bytes, messages, map entries).
std::string ld(int field, const std::string& b) {
  return varint(uint64_t(field) << 3 | 2) + varint(b.size()) + b;
}
std::string num(int field, uint64_t v) { return varint(uint64_t(field) << 3) + varint(v); }
std::string entry(int field, const std::string& k, const std::string& v) {
  return ld(field, ld(1, k) + ld(2, v));
}
std::string envelope(const std::string& api_version, const std::string& kind,
                     const std::string& raw) {
  return std::string("k8s\0", 4) + ld(1, ld(1, api_version) + ld(2, kind)) + ld(2, raw) +
         ld(3, "") + ld(4, "");
}
json decode(const std::string& body) {
  auto j = decode_protobuf_object(body);
  if (!j.ok()) FAIL(j.error().message);
  return j.value();
}
// ObjectMeta as client-go writes it: empty strings and a zero creationTimestamp included.
std::string meta(const std::string& name, const std::string& labels = "") {
  return ld(1, name) + ld(2, "") + ld(3, "") + ld(4, "") + ld(5, "") + ld(6, "") + num(7, 0) +
         ld(8, num(1, 0) + num(2, 0)) + labels;
}
std::string container(const std::string& name, const std::string& image,
                      const std::string& extra = "") {
  return ld(1, name) + ld(2, image) + ld(5, "") + ld(8, "") + ld(13, "") + ld(14, "") + num(16, 0) +
         num(17, 0) + num(18, 0) + ld(20, "") + extra;
}
std::string pod_spec(const std::string& containers, const std::string& extra = "") {
  return containers + ld(3, "") + ld(6, "") + ld(8, "") + ld(9, "") + ld(10, "") + num(11, 0) +
         num(12, 0) + num(13, 0) + ld(16, "") + ld(17, "") + ld(19, "") + ld(24, "") + extra;
}

TEST_CASE("protobuf: kubectl create deployment") {
  std::string labels = entry(11, "app", "web");
  std::string port = ld(1, "") + num(2, 0) + num(3, 8080) + ld(4, "TCP") + ld(5, "");
  std::string tmpl = ld(1, meta("", labels)) +
                     ld(2, pod_spec(ld(2, container("busybox", "busybox:1.35", ld(6, port)))));
  std::string spec = num(1, 2) + ld(2, entry(1, "app", "web")) + ld(3, tmpl) + ld(4, ld(1, "")) +
                     num(5, 0) + num(7, 0);
  json got =
      decode(envelope("apps/v1", "Deployment",
                      ld(1, meta("web", labels)) + ld(2, spec) + ld(3, num(1, 0) + num(2, 0))));
  CHECK(got == json::parse(R"({"apiVersion":"apps/v1","kind":"Deployment",
    "metadata":{"name":"web","labels":{"app":"web"}},
    "spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},"strategy":{},
      "template":{"metadata":{"labels":{"app":"web"}},
        "spec":{"containers":[{"name":"busybox","image":"busybox:1.35","resources":{},
          "ports":[{"containerPort":8080,"protocol":"TCP"}]}]}}}})"));
  CHECK(protobuf_decodable("apps/v1", "Deployment"));
  CHECK(!protobuf_decodable("v1", "Deployment"));
  CHECK(!protobuf_decodable("apps/v1", "StatefulSet"));
}

TEST_CASE("protobuf: pointer fields keep explicit zeros, plain fields drop them") {
  // replicas: 0 (*int32) stays; minReadySeconds 0 and paused false (plain) go.
  json got = decode(envelope(
      "apps/v1", "Deployment",
      ld(1, meta("z")) + ld(2, num(1, 0) + num(5, 0) + num(7, 0) + num(6, 0) + num(9, 600))));
  CHECK(got["spec"] ==
        json::parse(R"({"replicas":0,"revisionHistoryLimit":0,"progressDeadlineSeconds":600})"));
  // maxSurge as a percentage, maxUnavailable as an integer (IntOrString).
  std::string ru = ld(1, num(1, 0) + num(2, 1) + ld(3, "")) + ld(2, num(1, 1) + ld(3, "25%"));
  got = decode(envelope("apps/v1", "Deployment",
                        ld(1, meta("s")) + ld(2, ld(4, ld(1, "RollingUpdate") + ld(2, ru)))));
  CHECK(got["spec"]["strategy"] == json::parse(
                                       R"({"type":"RollingUpdate",
        "rollingUpdate":{"maxUnavailable":1,"maxSurge":"25%"}})"));
}

TEST_CASE("protobuf: job and cronjob") {
  std::string c = container("x", "busybox", ld(3, "date") + ld(3, "-u"));
  std::string tmpl = ld(1, meta("")) + ld(2, pod_spec(ld(2, c), "") + ld(3, "Never"));
  json job = decode(envelope("batch/v1", "Job", ld(1, meta("x")) + ld(2, ld(6, tmpl))));
  CHECK(job == json::parse(R"({"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"x"},
    "spec":{"template":{"metadata":{},"spec":{"restartPolicy":"Never","containers":[
      {"name":"x","image":"busybox","command":["date","-u"],"resources":{}}]}}}})"));

  std::string jt = ld(1, meta("cj")) + ld(2, ld(6, tmpl));
  json cj = decode(envelope(
      "batch/v1", "CronJob",
      ld(1, meta("cj")) + ld(2, ld(1, "*/5 * * * *") + ld(3, "") + ld(5, jt) + num(4, 0))));
  CHECK(cj["spec"]["schedule"] == "*/5 * * * *");
  CHECK(cj["spec"]["suspend"] == false);  // *bool: an explicit false stays
  CHECK(!cj["spec"].contains("concurrencyPolicy"));
  CHECK(cj["spec"]["jobTemplate"]["metadata"]["name"] == "cj");
  CHECK(cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"] ==
        json::parse(R"(["date","-u"])"));
}

TEST_CASE("protobuf: configmap and secret data") {
  json cm = decode(envelope("v1", "ConfigMap",
                            ld(1, meta("cfg")) + entry(2, "a", "1") + entry(2, "b", "") +
                                entry(3, "bin", std::string("\0\xff", 2))));
  CHECK(cm == json::parse(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg"},
    "data":{"a":"1","b":""},"binaryData":{"bin":"AP8="}})"));
  json sec = decode(envelope("v1", "Secret",
                             ld(1, meta("s")) + entry(2, "password", "hunter2") + ld(3, "Opaque")));
  CHECK(sec == json::parse(R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},
    "data":{"password":"aHVudGVyMg=="},"type":"Opaque"})"));
}

TEST_CASE("protobuf: embedded structs are inlined (selectors, volumes, probes)") {
  std::string env =
      ld(1, "MODE") + ld(2, "") + ld(3, ld(3, ld(1, ld(1, "cfg")) + ld(2, "mode") + num(3, 1)));
  std::string probe = ld(1, ld(2, ld(1, "/healthz") + ld(2, num(1, 1) + ld(3, "http")) + ld(3, "") +
                                      ld(4, "HTTP"))) +
                      num(2, 5) + num(3, 1) + num(4, 10) + num(5, 1) + num(6, 3);
  std::string res =
      ld(1, ld(1, "cpu") + ld(2, ld(1, "500m"))) + ld(2, ld(1, "memory") + ld(2, ld(1, "64Mi")));
  std::string mount = ld(1, "conf") + num(2, 1) + ld(3, "/etc/conf") + ld(4, "") + ld(6, "");
  std::string c = container("app", "img", ld(7, env) + ld(11, probe) + ld(9, mount)) + ld(8, res);
  std::string vol = ld(1, "conf") + ld(2, ld(19, ld(1, ld(1, "cfg")) + num(3, 0644)));
  std::string sc = num(4, 1000) + num(4, 2000) + num(5, 1000) +  // unpacked repeated
                   ld(4, varint(3000) + varint(4000));           // packed
  json sa = decode(envelope("v1", "ServiceAccount", ld(1, meta("sa")) + num(4, 0)));
  CHECK(sa == json::parse(R"({"apiVersion":"v1","kind":"ServiceAccount",
    "metadata":{"name":"sa"},"automountServiceAccountToken":false})"));

  std::string tmpl = ld(1, meta("")) + ld(2, pod_spec(ld(2, c), ld(1, vol) + ld(14, sc)));
  json d = decode(envelope("apps/v1", "Deployment", ld(1, meta("d")) + ld(2, ld(3, tmpl))));
  json spec = d["spec"]["template"]["spec"];
  CHECK(spec["volumes"] ==
        json::parse(R"([{"name":"conf","configMap":{"name":"cfg","defaultMode":420}}])"));
  CHECK(spec["securityContext"] ==
        json::parse(R"({"supplementalGroups":[1000,2000,3000,4000],"fsGroup":1000})"));
  json ctr = spec["containers"][0];
  CHECK(ctr["env"] == json::parse(R"([{"name":"MODE",
    "valueFrom":{"configMapKeyRef":{"name":"cfg","key":"mode","optional":true}}}])"));
  CHECK(ctr["readinessProbe"] == json::parse(R"({"httpGet":{"path":"/healthz","port":"http",
    "scheme":"HTTP"},"initialDelaySeconds":5,"timeoutSeconds":1,"periodSeconds":10,
    "successThreshold":1,"failureThreshold":3})"));
  CHECK(ctr["resources"] ==
        json::parse(R"({"limits":{"cpu":"500m"},"requests":{"memory":"64Mi"}})"));
  CHECK(ctr["volumeMounts"] ==
        json::parse(R"([{"name":"conf","readOnly":true,"mountPath":"/etc/conf"}])"));
}

TEST_CASE("protobuf: unknown fields are skipped") {
  // Field 99 (varint), 98 (bytes), 97 (fixed64), 96 (fixed32) in metadata and spec: a newer
  // client's fields.
  std::string unknown = num(99, 7) + ld(98, "new") + varint(97 << 3 | 1) + std::string(8, 'x') +
                        varint(96 << 3 | 5) + std::string(4, 'y');
  json got = decode(
      envelope("v1", "ConfigMap", ld(1, meta("u") + unknown) + unknown + entry(2, "k", "v")));
  CHECK(got == json::parse(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"u"},
    "data":{"k":"v"}})"));
}

TEST_CASE("protobuf: malformed bodies are 400 naming the field") {
  auto err = [](const std::string& body) {
    auto r = decode_protobuf_object(body);
    REQUIRE(!r.ok());
    CHECK(r.error().code == 400);
    return r.error().message;
  };
  // spec.replicas sent as a string.
  std::string m = err(envelope("apps/v1", "Deployment", ld(1, meta("x")) + ld(2, ld(1, "2"))));
  CHECK(m.find("spec: field replicas (1) has wire type 2, expected 0") != std::string::npos);
  // A container whose image length runs past its message.
  std::string bad_ctr = ld(1, "c") + varint(2 << 3 | 2) + varint(50) + "busybox";
  std::string tmpl = ld(2, ld(2, bad_ctr));
  m = err(envelope("apps/v1", "Deployment", ld(1, meta("x")) + ld(2, ld(3, tmpl))));
  CHECK(m.find("spec.template.spec.containers[0]: length 50 runs past the end") !=
        std::string::npos);
  // A varint cut off at the end of the body.
  m = err(envelope("batch/v1", "Job", ld(1, meta("x"))) + "\x08\xff");
  CHECK(m.find("truncated varint") != std::string::npos);
  // Group wire types (3/4) are not used by Kubernetes.
  m = err(envelope("v1", "Secret", ld(1, meta("x")) + varint(50 << 3 | 3)));
  CHECK(m.find("unsupported wire type 3") != std::string::npos);
  CHECK(err("k8s").find("magic") != std::string::npos);
  CHECK(err(std::string("k8s\0", 4)).find("names no apiVersion and kind") != std::string::npos);
  CHECK(err(std::string("k8s\0", 4) + ld(1, ld(1, "v1") + ld(2, "Secret"))).find("no object") !=
        std::string::npos);
}

TEST_CASE("protobuf: every truncation or corrupted byte is 400 or decodes, never a crash") {
  std::string env = ld(1, ld(1, "MODE") + ld(2, "x"));
  std::string probe = ld(1, ld(2, ld(1, "/") + ld(2, num(1, 0) + num(2, 80)))) + num(4, 10);
  std::string c = container("app", "img", ld(7, env) + ld(10, probe) + ld(3, "sh"));
  std::string tmpl = ld(1, meta("", entry(11, "a", "b"))) + ld(2, pod_spec(ld(2, c)));
  std::string body =
      envelope("apps/v1", "Deployment", ld(1, meta("d")) + ld(2, num(1, 3) + ld(3, tmpl)));
  REQUIRE(decode_protobuf_object(body).ok());
  int bad = 0;
  for (size_t n = 4; n < body.size(); ++n) {
    auto r = decode_protobuf_object(body.substr(0, n));
    if (!r.ok()) {
      CHECK(r.error().code == 400);
      ++bad;
    }
  }
  CHECK(bad > 0);
  // Each byte after the magic set to each of a few values (fixed, so the test is repeatable).
  for (size_t i = 4; i < body.size(); ++i)
    for (char v : {'\x00', '\x07', '\x7f', '\x80', '\xff'}) {
      std::string b = body;
      b[i] = v;
      auto r = decode_protobuf_object(b);
      if (!r.ok()) CHECK((r.error().code == 400 || r.error().code == 415));
    }
}

TEST_CASE("protobuf: kubectl create priorityclass") {
  // kubectl create priorityclass high --value=1000 --description=x: every plain field written,
  // globalDefault false; value 0 is kept (`json:"value"`), false/"" plain fields are dropped.
  json got = decode(envelope(
      "scheduling.k8s.io/v1", "PriorityClass",
      ld(1, meta("high")) + num(2, 1000) + num(3, 0) + ld(4, "x") + ld(5, "PreemptLowerPriority")));
  CHECK(got == json::parse(R"({"apiVersion":"scheduling.k8s.io/v1","kind":"PriorityClass",
    "metadata":{"name":"high"},"value":1000,"description":"x",
    "preemptionPolicy":"PreemptLowerPriority"})"));
  json zero = decode(envelope("scheduling.k8s.io/v1", "PriorityClass",
                              ld(1, meta("zero")) + num(2, 0) + num(3, 1) + ld(4, "")));
  CHECK(zero == json::parse(R"({"apiVersion":"scheduling.k8s.io/v1","kind":"PriorityClass",
    "metadata":{"name":"zero"},"value":0,"globalDefault":true})"));
  // A negative int32 is a 10-byte varint.
  json neg = decode(envelope("scheduling.k8s.io/v1", "PriorityClass",
                             ld(1, meta("neg")) + num(2, uint64_t(int64_t(-5)))));
  CHECK(neg["value"] == -5);
  CHECK(protobuf_decodable("scheduling.k8s.io/v1", "PriorityClass"));
}

TEST_CASE("protobuf: DeleteOptions from kubectl drain") {
  // gracePeriodSeconds 0, preconditions {uid}, propagationPolicy Background, dryRun [All].
  std::string raw = num(1, 0) + ld(2, ld(1, "u-1")) + ld(4, "Background") + ld(5, "All");
  json got = decode_protobuf_delete_options(envelope("v1", "DeleteOptions", raw)).value();
  CHECK(got["gracePeriodSeconds"] == 0);  // a pointer: an explicit 0 is "now"
  CHECK(got["preconditions"] == json{{"uid", "u-1"}});
  CHECK(got["propagationPolicy"] == "Background");
  CHECK(got["dryRun"] == json::array({"All"}));
  // Any group version; nothing set is an empty DeleteOptions.
  CHECK(decode_protobuf_delete_options(envelope("meta.k8s.io/v1", "DeleteOptions", "")).ok());
  CHECK(decode_protobuf_delete_options(envelope("apps/v1", "DeleteOptions", "")).ok());
  // Another kind where DeleteOptions belong is 415; DeleteOptions is not an object to create.
  CHECK(decode_protobuf_delete_options(envelope("v1", "Pod", "")).error().code == 415);
  CHECK(decode_protobuf_object(envelope("v1", "DeleteOptions", "")).error().code == 415);
  // Malformed: 400 naming the field.
  auto bad = decode_protobuf_delete_options(envelope("v1", "DeleteOptions", ld(1, "x")));
  REQUIRE(!bad.ok());
  CHECK(bad.error().code == 400);
  CHECK_THAT(bad.error().message, Catch::Contains("gracePeriodSeconds"));
}

TEST_CASE("protobuf: kubectl auth can-i's SelfSubjectAccessReview") {
  std::string attrs = ld(1, "default") + ld(2, "create") + ld(3, "") + ld(4, "") + ld(5, "pods") +
                      ld(6, "") + ld(7, "");
  json got = decode(envelope("authorization.k8s.io/v1", "SelfSubjectAccessReview",
                             ld(1, meta("")) + ld(2, ld(1, attrs)) + ld(3, num(1, 0))));
  CHECK(got["kind"] == "SelfSubjectAccessReview");
  CHECK(got["spec"]["resourceAttributes"] ==
        json({{"namespace", "default"}, {"verb", "create"}, {"resource", "pods"}}));
  CHECK(!got.contains("status"));  // the server's to fill
  json who = decode(envelope("authentication.k8s.io/v1", "SelfSubjectReview", ld(1, meta(""))));
  CHECK(who["kind"] == "SelfSubjectReview");
}

TEST_CASE("protobuf: kubectl create role, clusterrole, rolebinding, clusterrolebinding") {
  // kubectl create role r1 --verb=get,list --resource=pods,deployments.apps: one rule per API
  // group; the core group is the empty string, which a repeated field keeps.
  std::string pods = ld(1, "get") + ld(1, "list") + ld(2, "") + ld(3, "pods");
  std::string deploys = ld(1, "get") + ld(1, "list") + ld(2, "apps") + ld(3, "deployments");
  json role = decode(envelope("rbac.authorization.k8s.io/v1", "Role",
                              ld(1, meta("r1")) + ld(2, pods) + ld(2, deploys)));
  CHECK(role == json::parse(R"({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role",
    "metadata":{"name":"r1"},"rules":[
      {"verbs":["get","list"],"apiGroups":[""],"resources":["pods"]},
      {"verbs":["get","list"],"apiGroups":["apps"],"resources":["deployments"]}]})"));
  // A ClusterRole with a name holding ':', a non-resource rule and an aggregation rule.
  json cr =
      decode(envelope("rbac.authorization.k8s.io/v1", "ClusterRole",
                      ld(1, meta("system:controller:x")) + ld(2, ld(1, "get") + ld(5, "/healthz")) +
                          ld(3, ld(1, entry(1, "rbac.example.com/aggregate", "true")))));
  CHECK(cr == json::parse(R"({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole",
    "metadata":{"name":"system:controller:x"},
    "rules":[{"verbs":["get"],"nonResourceURLs":["/healthz"]}],
    "aggregationRule":{"clusterRoleSelectors":[
      {"matchLabels":{"rbac.example.com/aggregate":"true"}}]}})"));
  // kubectl create rolebinding rb --role=r1 --user=jane --serviceaccount=ci:builder: every
  // Subject and RoleRef string written, empty ones too; the omitempty ones are dropped.
  std::string user = ld(1, "User") + ld(2, "rbac.authorization.k8s.io") + ld(3, "jane") + ld(4, "");
  std::string sa = ld(1, "ServiceAccount") + ld(2, "") + ld(3, "builder") + ld(4, "ci");
  std::string ref = ld(1, "rbac.authorization.k8s.io") + ld(2, "Role") + ld(3, "r1");
  json rb = decode(envelope("rbac.authorization.k8s.io/v1", "RoleBinding",
                            ld(1, meta("rb")) + ld(2, user) + ld(2, sa) + ld(3, ref)));
  CHECK(rb == json::parse(R"({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding",
    "metadata":{"name":"rb"},"subjects":[
      {"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"jane"},
      {"kind":"ServiceAccount","name":"builder","namespace":"ci"}],
    "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"r1"}})"));
  // An empty RoleRef keeps its (no-omitempty) fields, so validation names them.
  json crb = decode(envelope("rbac.authorization.k8s.io/v1", "ClusterRoleBinding",
                             ld(1, meta("crb")) + ld(3, ld(1, "") + ld(2, "") + ld(3, ""))));
  CHECK(crb["roleRef"] == json::parse(R"({"apiGroup":"","kind":"","name":""})"));
  CHECK(!crb.contains("subjects"));
  for (const char* k : {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})
    CHECK(protobuf_decodable("rbac.authorization.k8s.io/v1", k));
  CHECK(!protobuf_decodable("rbac.authorization.k8s.io/v1beta1", "Role"));
}

TEST_CASE("protobuf: kubectl create poddisruptionbudget and drain's Eviction") {
  // IntOrString {type, intVal, strVal}: --min-available=1, then --max-unavailable=25%.
  std::string one = num(1, 0) + num(2, 1) + ld(3, "");
  std::string pct = num(1, 1) + num(2, 0) + ld(3, "25%");
  std::string sel = entry(1, "app", "a");
  json pdb = decode(envelope("policy/v1", "PodDisruptionBudget",
                             ld(1, meta("x")) + ld(2, ld(1, one) + ld(2, sel))));
  CHECK(pdb == json::parse(R"({"apiVersion":"policy/v1","kind":"PodDisruptionBudget",
    "metadata":{"name":"x"},"spec":{"minAvailable":1,"selector":{"matchLabels":{"app":"a"}}}})"));
  pdb = decode(envelope("policy/v1", "PodDisruptionBudget",
                        ld(1, meta("y")) + ld(2, ld(2, sel) + ld(3, pct) + ld(4, "AlwaysAllow"))));
  CHECK(pdb["spec"] == json::parse(R"({"maxUnavailable":"25%","selector":{"matchLabels":
    {"app":"a"}},"unhealthyPodEvictionPolicy":"AlwaysAllow"})"));
  CHECK(protobuf_decodable("policy/v1", "PodDisruptionBudget"));

  // Eviction {metadata{name, namespace}, deleteOptions{gracePeriodSeconds 0}}, policy/v1 or
  // the v1beta1 kubectl 1.20 names; only through decode_protobuf_eviction.
  std::string raw = ld(1, ld(1, "p1") + ld(3, "ns1")) + ld(2, num(1, 0));
  for (const char* v : {"policy/v1", "policy/v1beta1"}) {
    auto ev = decode_protobuf_eviction(envelope(v, "Eviction", raw));
    REQUIRE(ev.ok());
    CHECK(ev.value()["metadata"] == json::parse(R"({"name":"p1","namespace":"ns1"})"));
    CHECK(ev.value()["deleteOptions"] == json::parse(R"({"gracePeriodSeconds":0})"));
  }
  CHECK(decode_protobuf_eviction(envelope("v1", "DeleteOptions", "")).error().code == 415);
  CHECK(decode_protobuf_object(envelope("policy/v1", "Eviction", raw)).error().code == 415);
}

TEST_CASE("protobuf: kinds without a table are 415") {
  auto r = decode_protobuf_object(envelope("apps/v1", "StatefulSet", ld(1, meta("x"))));
  REQUIRE(!r.ok());
  CHECK(r.error().code == 415);
  CHECK(r.error().message.find("apps/v1 StatefulSet") != std::string::npos);
}

}  // namespace
}  // namespace skiff::apiserver
