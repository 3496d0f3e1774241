#include "cli/workloads.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <sstream>

#include "cli/cli.h"

namespace skiff::cli {
namespace {

json deployment(int64_t generation, int64_t observed, int64_t want, int64_t replicas,
                int64_t updated, int64_t available) {
  return {{"metadata", {{"name", "web"}, {"generation", generation}}},
          {"spec", {{"replicas", want}}},
          {"status",
           {{"observedGeneration", observed},
            {"replicas", replicas},
            {"updatedReplicas", updated},
            {"availableReplicas", available}}}};
}

std::string view(const json& d) {
  auto v = deployment_status_view(d);
  REQUIRE(v.is_ok());
  return v->message + (v->done ? "[done]" : "");
}

json tmpl(const std::string& image, const std::string& hash = "") {
  json t = {{"metadata", {{"labels", {{"app", "web"}}}}},
            {"spec", {{"containers", {{{"name", "web"}, {"image", image}}}}}}};
  if (!hash.empty()) t["metadata"]["labels"]["pod-template-hash"] = hash;
  return t;
}

json rs(const std::string& name, int64_t revision, const std::string& image,
        const std::string& created, int64_t replicas = 0, const std::string& owner = "uid-1") {
  json r = {{"metadata",
             {{"name", name},
              {"creationTimestamp", created},
              {"annotations",
               {{"deployment.kubernetes.io/revision", std::to_string(revision)},
                {"deployment.kubernetes.io/desired-replicas", "3"}}},
              {"ownerReferences",
               {{{"kind", "Deployment"}, {"name", "web"}, {"uid", owner}, {"controller", true}}}}}},
            {"spec", {{"replicas", replicas}, {"template", tmpl(image, name.substr(4))}}},
            {"status", {{"replicas", replicas}}}};
  return r;
}

json live_deployment(const std::string& image) {
  return {{"metadata",
           {{"name", "web"},
            {"namespace", "default"},
            {"uid", "uid-1"},
            {"resourceVersion", "42"},
            {"annotations",
             {{"deployment.kubernetes.io/revision", "3"},
              {"kubectl.kubernetes.io/last-applied-configuration", "{}"},
              {"team", "blue"}}}}},
          {"spec", {{"replicas", 3}, {"template", tmpl(image)}}}};
}

TEST_CASE("workloads: TYPE/NAME argument forms") {
  auto a = parse_resource_args({"deployment/web", "rs/web-1"});
  REQUIRE(a.is_ok());
  REQUIRE(a->size() == 2);
  CHECK((*a)[0].type == "deployment");
  CHECK((*a)[0].name == "web");
  CHECK((*a)[1].type == "rs");
  CHECK((*a)[1].name == "web-1");

  a = parse_resource_args({"deploy", "a", "b"});
  REQUIRE(a.is_ok());
  REQUIRE(a->size() == 2);
  CHECK((*a)[1].type == "deploy");
  CHECK((*a)[1].name == "b");

  a = parse_resource_args({"deploy,rs", "x"});
  REQUIRE(a.is_ok());
  REQUIRE(a->size() == 2);
  CHECK((*a)[1].type == "rs");

  a = parse_resource_args({"replicaset"});
  REQUIRE(a.is_ok());
  REQUIRE(a->size() == 1);
  CHECK((*a)[0].name.empty());

  CHECK(parse_resource_args({}).value().empty());
  a = parse_resource_args({"deploy", "deploy/web"});
  REQUIRE_FALSE(a.is_ok());
  CHECK(a.status().message().find("no need to specify a resource type") != std::string::npos);
  CHECK_FALSE(parse_resource_args({"deploy/web", "other"}).is_ok());
  CHECK_FALSE(parse_resource_args({"deploy/"}).is_ok());
  CHECK_FALSE(parse_resource_args({"/web"}).is_ok());
  CHECK_FALSE(parse_resource_args({"a/b/c"}).is_ok());
}

TEST_CASE("workloads: Go durations") {
  using std::chrono::nanoseconds;
  CHECK(parse_go_duration("0").value() == nanoseconds(0));
  CHECK(parse_go_duration("5m").value() == std::chrono::minutes(5));
  CHECK(parse_go_duration("1h30m").value() == std::chrono::minutes(90));
  CHECK(parse_go_duration("1.5s").value() == std::chrono::milliseconds(1500));
  CHECK(parse_go_duration("300ms").value() == std::chrono::milliseconds(300));
  CHECK(parse_go_duration("-2s").value() == std::chrono::seconds(-2));
  CHECK(parse_go_duration("0s").value() == nanoseconds(0));
  auto bad = parse_go_duration("5");
  REQUIRE_FALSE(bad.is_ok());
  CHECK(bad.status().message() == "time: missing unit in duration \"5\"");
  bad = parse_go_duration("5x");
  REQUIRE_FALSE(bad.is_ok());
  CHECK(bad.status().message() == "time: unknown unit \"x\" in duration \"5x\"");
  CHECK_FALSE(parse_go_duration("").is_ok());
  CHECK_FALSE(parse_go_duration("m").is_ok());
  CHECK_FALSE(parse_go_duration(".s").is_ok());
}

TEST_CASE("workloads: rollout status messages (kubectl's DeploymentStatusViewer)") {
  CHECK(view(deployment(2, 1, 3, 3, 3, 3)) ==
        "Waiting for deployment spec update to be observed...\n");
  CHECK(view(deployment(2, 2, 3, 3, 1, 1)) ==
        "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been "
        "updated...\n");
  CHECK(view(deployment(2, 2, 3, 4, 3, 3)) ==
        "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending "
        "termination...\n");
  CHECK(view(deployment(2, 2, 3, 3, 3, 2)) ==
        "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are "
        "available...\n");
  CHECK(view(deployment(2, 2, 3, 3, 3, 3)) == "deployment \"web\" successfully rolled out\n[done]");
  CHECK(view(deployment(1, 5, 0, 0, 0, 0)) == "deployment \"web\" successfully rolled out\n[done]");

  json late = deployment(2, 2, 3, 3, 1, 1);
  late["status"]["conditions"] = {
      {{"type", "Available"}, {"status", "False"}, {"reason", "MinimumReplicasUnavailable"}},
      {{"type", "Progressing"}, {"status", "False"}, {"reason", "ProgressDeadlineExceeded"}}};
  auto v = deployment_status_view(late);
  REQUIRE_FALSE(v.is_ok());
  CHECK(v.status().message() == "deployment \"web\" exceeded its progress deadline");
  // The deadline is only judged once the spec was observed.
  late["metadata"]["generation"] = 3;
  CHECK(view(late) == "Waiting for deployment spec update to be observed...\n");

  // An object whose status is still empty waits for the controller.
  CHECK(view(json{{"metadata", {{"name", "web"}, {"generation", 1}}}}) ==
        "Waiting for deployment spec update to be observed...\n");

  json pinned = deployment(2, 2, 3, 3, 3, 3);
  pinned["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "4";
  CHECK(deployment_status_view(pinned, 4).is_ok());
  v = deployment_status_view(pinned, 3);
  REQUIRE_FALSE(v.is_ok());
  CHECK(v.status().message() == "desired revision (3) is different from the running revision (4)");
}

TEST_CASE("workloads: revisions, controlled ReplicaSets, the new ReplicaSet") {
  CHECK(revision_of(json::object()).value() == 0);
  CHECK(revision_of(rs("web-a", 7, "x", "t")).value() == 7);
  json bad = rs("web-a", 1, "x", "t");
  bad["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "seven";
  CHECK_FALSE(revision_of(bad).is_ok());

  json items = json::array({rs("web-c", 3, "nginx:3", "2026-01-03T00:00:00Z"),
                            rs("web-a", 1, "nginx:1", "2026-01-01T00:00:00Z"),
                            rs("web-x", 9, "nginx:9", "2026-01-01T00:00:00Z", 0, "other-uid"),
                            rs("web-b", 2, "nginx:2", "2026-01-02T00:00:00Z")});
  auto owned = controlled_replicasets(live_deployment("nginx:2"), items);
  REQUIRE(owned.size() == 3);
  CHECK(owned[0]["metadata"]["name"] == "web-a");
  CHECK(owned[2]["metadata"]["name"] == "web-c");
  CHECK(find_new_replicaset(live_deployment("nginx:2"), owned) == 1);
  CHECK(find_new_replicaset(live_deployment("nginx:7"), owned) == -1);
  CHECK(equal_ignore_hash(tmpl("a", "h1"), tmpl("a", "h2")));
  CHECK(equal_ignore_hash(tmpl("a", "h1"), tmpl("a")));
  CHECK_FALSE(equal_ignore_hash(tmpl("a"), tmpl("b")));
}

TEST_CASE("workloads: rollout history table and one revision") {
  std::vector<json> rses = {rs("web-a", 1, "nginx:1", "2026-01-01T00:00:00Z"),
                            rs("web-c", 10, "nginx:3", "2026-01-03T00:00:00Z"),
                            rs("web-b", 2, "nginx:2", "2026-01-02T00:00:00Z")};
  rses[2]["metadata"]["annotations"]["kubernetes.io/change-cause"] = "image 2";
  auto t = rollout_history(rses, 0);
  REQUIRE(t.is_ok());
  CHECK(*t ==
        "REVISION  CHANGE-CAUSE\n"
        "1         <none>\n"
        "2         image 2\n"
        "10        <none>\n");
  CHECK(rollout_history({}, 0).value() == "No rollout history found.");
  auto one = rollout_history(rses, 2);
  REQUIRE(one.is_ok());
  CHECK(*one ==
        "Pod Template:\n"
        "  Labels:\tapp=web\n"
        "\tpod-template-hash=b\n"
        "  Annotations:\tkubernetes.io/change-cause: image 2\n"
        "  Containers:\n"
        "   web:\n"
        "    Image:\tnginx:2\n"
        "    Port:\t<none>\n"
        "    Host Port:\t<none>\n"
        "    Environment:\t<none>\n"
        "    Mounts:\t<none>\n"
        "  Volumes:\t<none>\n"
        "  Node-Selectors:\t<none>\n"
        "  Tolerations:\t<none>\n");
  auto missing = rollout_history(rses, 5);
  REQUIRE_FALSE(missing.is_ok());
  CHECK(missing.status().message() == "unable to find the specified revision");
}

TEST_CASE("workloads: pod template as kubectl 1.32 prints it (rollout history --revision)") {
  // The expected text is kubectl 1.32's output for this template (captured by
  // skiffctl_rollout_test.py): ports, command/args, resources, probes, env with fieldRef,
  // sorted mounts, emptyDir/configMap volumes, tolerations sorted by key.
  json t = json::parse(R"({"metadata":{"labels":{"app":"web"}},"spec":{
    "containers":[{"name":"web","image":"nginx:2","command":["/bin/server"],"args":["--port","80"],
      "ports":[{"containerPort":80,"protocol":"TCP"},{"containerPort":53,"protocol":"UDP"}],
      "env":[{"name":"MODE","value":"test"},
             {"name":"POD","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.name"}}}],
      "resources":{"limits":{"cpu":"500m","memory":"128Mi"},"requests":{"cpu":"100m","memory":"128Mi"}},
      "livenessProbe":{"httpGet":{"path":"/healthz","port":80,"scheme":"HTTP"},"timeoutSeconds":1,
                       "periodSeconds":10,"successThreshold":1,"failureThreshold":3},
      "readinessProbe":{"exec":{"command":["cat","/tmp/ready"]},"periodSeconds":5},
      "volumeMounts":[{"name":"scratch","mountPath":"/scratch"},
                      {"name":"cfg","mountPath":"/etc/cfg","readOnly":true}]}],
    "volumes":[{"name":"scratch","emptyDir":{}},{"name":"cfg","configMap":{"name":"web-cfg"}}],
    "tolerations":[{"key":"dedicated","operator":"Equal","value":"web","effect":"NoSchedule"},
                   {"operator":"Exists"}]}})");
  DescribeWriter w(false);
  describe_pod_template(w, t);
  CHECK(
      w.flush() ==
      "Pod Template:\n  Labels:\tapp=web\n  Containers:\n   web:\n    Image:\tnginx:2\n"
      "    Ports:\t80/TCP, 53/UDP\n    Host Ports:\t0/TCP, 0/UDP\n    Command:\n      /bin/server\n"
      "    Args:\n      --port\n      80\n    Limits:\n      cpu:\t500m\n      memory:\t128Mi\n"
      "    Requests:\n      cpu:\t100m\n      memory:\t128Mi\n"
      "    Liveness:\thttp-get http://:80/healthz delay=0s timeout=1s period=10s #success=1 "
      "#failure=3\n"
      "    Readiness:\texec [cat /tmp/ready] delay=0s timeout=1s period=5s #success=1 "
      "#failure=3\n"
      "    Environment:\n      MODE:\ttest\n      POD:\t (v1:metadata.name)\n"
      "    Mounts:\n      /etc/cfg from cfg (ro)\n      /scratch from scratch (rw)\n"
      "  Volumes:\n   scratch:\n"
      "    Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n"
      "    Medium:\t\n    SizeLimit:\t<unset>\n   cfg:\n"
      "    Type:\tConfigMap (a volume populated by a ConfigMap)\n    Name:\tweb-cfg\n"
      "    Optional:\tfalse\n  Node-Selectors:\t<none>\n"
      "  Tolerations:\top=Exists\n\tdedicated=web:NoSchedule\n");
}

TEST_CASE("workloads: rollback plan (kubectl's DeploymentRollbacker)") {
  std::vector<json> rses = {rs("web-a", 1, "nginx:1", "2026-01-01T00:00:00Z"),
                            rs("web-b", 2, "nginx:2", "2026-01-02T00:00:00Z"),
                            rs("web-c", 3, "nginx:3", "2026-01-03T00:00:00Z", 3)};
  rses[0]["metadata"]["annotations"]["kubernetes.io/change-cause"] = "first";
  json d = live_deployment("nginx:3");

  // Default: the previous revision (2).
  auto p = plan_rollback(d, rses, 0);
  REQUIRE(p.is_ok());
  CHECK_FALSE(p->skipped);
  CHECK(p->message == "rolled back");
  REQUIRE(p->patch.size() == 3);
  CHECK(p->patch[0] ==
        json{{"op", "test"}, {"path", "/metadata/resourceVersion"}, {"value", "42"}});
  CHECK(p->patch[1]["op"] == "replace");
  CHECK(p->patch[1]["path"] == "/spec/template");
  CHECK(p->patch[1]["value"] == tmpl("nginx:2"));  // the hash label removed
  CHECK(p->patch[2]["path"] == "/metadata/annotations");
  // The deployment keeps its own revision and last-applied; the RS's other annotations come
  // over; the deployment's unrelated ones go (kubectl replaces the whole map).
  CHECK(p->patch[2]["value"] == json{{"deployment.kubernetes.io/revision", "3"},
                                     {"kubectl.kubernetes.io/last-applied-configuration", "{}"}});

  p = plan_rollback(d, rses, 1);
  REQUIRE(p.is_ok());
  CHECK(p->patch[1]["value"]["spec"]["containers"][0]["image"] == "nginx:1");
  CHECK(p->patch[2]["value"]["kubernetes.io/change-cause"] == "first");

  p = plan_rollback(d, rses, 3);
  REQUIRE(p.is_ok());
  CHECK(p->skipped);
  CHECK(p->message == "skipped rollback (current template already matches revision 3)");
  CHECK(p->patch.is_null());

  auto e = plan_rollback(d, rses, 9);
  REQUIRE_FALSE(e.is_ok());
  CHECK(e.status().message() == "unable to find specified revision 9 in history");
  CHECK_FALSE(plan_rollback(d, rses, -1).is_ok());
  e = plan_rollback(d, {rses[2]}, 0);
  REQUIRE_FALSE(e.is_ok());
  CHECK(e.status().message() == "no rollout history found for deployment \"web\"");

  json paused = d;
  paused["spec"]["paused"] = true;
  e = plan_rollback(paused, rses, 0);
  REQUIRE_FALSE(e.is_ok());
  CHECK(e.status().message().find("you cannot rollback a paused deployment") == 0);

  // No annotations on the deployment: the patch adds the member instead of replacing it.
  json bare = d;
  bare["metadata"].erase("annotations");
  p = plan_rollback(bare, rses, 1);
  REQUIRE(p.is_ok());
  CHECK(p->patch[2]["op"] == "add");
}

TEST_CASE("workloads: RFC 3339 restartedAt in the local zone") {
  const char* old_tz = std::getenv("TZ");
  std::string saved = old_tz ? old_tz : "";
  setenv("TZ", "UTC", 1);
  tzset();
  auto tp = std::chrono::system_clock::from_time_t(1767225600);  // 2026-01-01T00:00:00Z
  CHECK(rfc3339_local(tp) == "2026-01-01T00:00:00Z");
  setenv("TZ", "EST5", 1);
  tzset();
  CHECK(rfc3339_local(tp) == "2025-12-31T19:00:00-05:00");
  if (old_tz) {
    setenv("TZ", saved.c_str(), 1);
  } else {
    unsetenv("TZ");
  }
  tzset();
}

TEST_CASE("workloads: describe deployment and replicaset layouts") {
  setenv("TZ", "UTC", 1);
  tzset();
  json d = live_deployment("nginx:3");
  d["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z";
  d["metadata"]["labels"] = {{"app", "web"}};
  d["spec"]["selector"] = {{"matchLabels", {{"app", "web"}}}};
  d["spec"]["strategy"] = {{"type", "RollingUpdate"},
                           {"rollingUpdate", {{"maxUnavailable", "25%"}, {"maxSurge", "25%"}}}};
  d["spec"]["template"]["spec"]["containers"][0]["ports"] = {
      {{"containerPort", 80}, {"protocol", "TCP"}}};
  d["status"] = {
      {"replicas", 3},
      {"updatedReplicas", 3},
      {"availableReplicas", 3},
      {"conditions",
       {{{"type", "Available"}, {"status", "True"}, {"reason", "MinimumReplicasAvailable"}},
        {{"type", "Progressing"}, {"status", "True"}, {"reason", "NewReplicaSetAvailable"}}}}};
  std::vector<json> rses = {rs("web-a", 1, "nginx:1", "2026-01-01T00:00:00Z", 1),
                            rs("web-b", 2, "nginx:2", "2026-01-02T00:00:00Z", 0),
                            rs("web-c", 3, "nginx:3", "2026-01-03T00:00:00Z", 3)};
  rses[2]["spec"]["template"] = d["spec"]["template"];
  DescribeWriter w;
  describe_deployment(w, d, rses);
  CHECK(w.flush() ==
        "Name:                   web\n"
        "Namespace:              default\n"
        "CreationTimestamp:      Thu, 01 Jan 2026 00:00:00 +0000\n"
        "Labels:                 app=web\n"
        "Annotations:            deployment.kubernetes.io/revision: 3\n"
        "                        team: blue\n"
        "Selector:               app=web\n"
        "Replicas:               3 desired | 3 updated | 3 total | 3 available | 0 unavailable\n"
        "StrategyType:           RollingUpdate\n"
        "MinReadySeconds:        0\n"
        "RollingUpdateStrategy:  25% max unavailable, 25% max surge\n"
        "Pod Template:\n"
        "  Labels:  app=web\n"
        "  Containers:\n"
        "   web:\n"
        "    Image:         nginx:3\n"
        "    Port:          80/TCP\n"
        "    Host Port:     0/TCP\n"
        "    Environment:   <none>\n"
        "    Mounts:        <none>\n"
        "  Volumes:         <none>\n"
        "  Node-Selectors:  <none>\n"
        "  Tolerations:     <none>\n"
        "Conditions:\n"
        "  Type           Status  Reason\n"
        "  ----           ------  ------\n"
        "  Available      True    MinimumReplicasAvailable\n"
        "  Progressing    True    NewReplicaSetAvailable\n"
        "OldReplicaSets:  web-a (1/1 replicas created), web-b (0/0 replicas created)\n"
        "NewReplicaSet:   web-c (3/3 replicas created)\n");

  json pods = json::array();
  for (const char* phase : {"Running", "Running", "Pending", "Failed"}) {
    pods.push_back(
        {{"metadata", {{"ownerReferences", {{{"uid", "rs-uid"}, {"controller", true}}}}}},
         {"status", {{"phase", phase}}}});
  }
  pods.push_back({{"metadata", json::object()}, {"status", {{"phase", "Running"}}}});
  PodCounts counts = count_pods(pods, "rs-uid");
  CHECK(counts.running == 2);
  CHECK(counts.waiting == 1);
  CHECK(counts.failed == 1);
  json r = rses[2];
  r["metadata"]["namespace"] = "default";
  r["spec"]["selector"] = {{"matchLabels", {{"app", "web"}, {"pod-template-hash", "c"}}}};
  r["metadata"]["labels"] = {{"app", "web"}, {"pod-template-hash", "c"}};
  DescribeWriter rw;
  describe_replicaset(rw, r, counts);
  std::string text = rw.flush();
  CHECK(text.find("Selector:       app=web,pod-template-hash=c\n") != std::string::npos);
  CHECK(text.find("Labels:         app=web\n                pod-template-hash=c\n") !=
        std::string::npos);
  CHECK(text.find("Controlled By:  Deployment/web\n") != std::string::npos);
  CHECK(text.find("Replicas:       3 current / 3 desired\n") != std::string::npos);
  CHECK(text.find("Pods Status:    2 Running / 1 Waiting / 0 Succeeded / 1 Failed\n") !=
        std::string::npos);
}

int run_args(std::vector<const char*> args, std::string& err_text) {
  std::istringstream in;
  std::ostringstream out, err;
  int rc = run(static_cast<int>(args.size()), const_cast<char**>(args.data()), in, out, err);
  err_text = err.str();
  return rc;
}

TEST_CASE("cli: scale and rollout usage errors need no server") {
  // --server makes connect() succeed without a kubeconfig; nothing below sends a request.
  std::string err;
  CHECK(run_args({"skiffctl", "--server", "https://127.0.0.1:1", "scale", "deploy/web"}, err) == 1);
  CHECK(err.find("The --replicas=COUNT flag is required") != std::string::npos);
  CHECK(run_args(
            {"skiffctl", "--server", "https://127.0.0.1:1", "scale", "deploy", "--replicas", "2"},
            err) == 1);
  CHECK(err.find("no name was specified") != std::string::npos);
  CHECK(run_args({"skiffctl", "--server", "https://127.0.0.1:1", "rollout", "status", "deploy/a",
                  "deploy/b"},
                 err) == 1);
  CHECK(err.find("only supported on individual resources") != std::string::npos);
  CHECK(run_args({"skiffctl", "--server", "https://127.0.0.1:1", "rollout", "status", "deploy/a",
                  "--timeout", "soon"},
                 err) == 1);
  CHECK(err.find("invalid argument \"soon\" for \"--timeout\" flag") != std::string::npos);
  CHECK(run_args({"skiffctl", "--server", "https://127.0.0.1:1", "rollout", "status", "rs/a"},
                 err) == 1);
  CHECK(err.find("no status viewer has been implemented for ReplicaSet.apps") != std::string::npos);
  CHECK(run_args({"skiffctl", "--server", "https://127.0.0.1:1", "rollout", "frobnicate"}, err) ==
        1);
  CHECK(run_args({"skiffctl", "--server", "https://127.0.0.1:1", "rollout", "status"}, err) == 1);
  CHECK(err.find("required resource not specified") != std::string::npos);
}

}  // namespace
}  // namespace skiff::cli
