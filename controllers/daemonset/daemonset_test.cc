#include "controllers/daemonset/daemonset.h"

#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "controllers/daemonset/util.h"
#include "controllers/history/fake_history.h"
#include "proto/time.h"

using namespace skiff;
using namespace skiff::controllers;
using namespace skiff::controllers::daemonset;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

const WallTime kT0 = *proto::parse_rfc3339("2026-12-01T10:00:00Z");
std::string ts(WallTime t) { return proto::format_rfc3339(t); }

json make_ds(const std::string& image = "agent:1") {
  return {
      {"apiVersion", "apps/v1"},
      {"kind", "DaemonSet"},
      {"metadata",
       {{"name", "agent"},
        {"namespace", "kube-system"},
        {"uid", "uid-ds"},
        {"generation", 1},
        {"resourceVersion", "5"}}},
      {"spec",
       {{"selector", {{"matchLabels", {{"app", "agent"}}}}},
        {"template",
         {{"metadata", {{"labels", {{"app", "agent"}}}}},
          {"spec", {{"containers", {{{"name", "a"}, {"image", image}}}}}}}},
        {"updateStrategy",
         {{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxUnavailable", 1}, {"maxSurge", 0}}}}},
        {"revisionHistoryLimit", 10}}},
      {"status",
       {{"currentNumberScheduled", 0},
        {"numberMisscheduled", 0},
        {"desiredNumberScheduled", 0},
        {"numberReady", 0}}}};
}

json make_node(const std::string& name, json labels = json::object(), json taints = nullptr) {
  json n = {{"apiVersion", "v1"},
            {"kind", "Node"},
            {"metadata", {{"name", name}, {"labels", labels}}},
            {"spec", json::object()},
            {"status", {{"conditions", {{{"type", "Ready"}, {"status", "True"}}}}}}};
  if (!taints.is_null()) n["spec"]["taints"] = taints;
  return n;
}

class FakeListers : public Listers {
 public:
  std::map<std::string, json> ds;
  std::vector<json> pod_list, node_list;
  std::optional<json> daemonset(const std::string& key) override {
    auto it = ds.find(key);
    if (it == ds.end()) return std::nullopt;
    return it->second;
  }
  std::vector<json> daemonsets() override {
    std::vector<json> out;
    for (auto& [k, v] : ds) out.push_back(v);
    return out;
  }
  std::function<void()> after_pods;  // once, right after a listing (an event landing then)
  std::vector<json> pods(const std::string&) override {
    std::vector<json> out = pod_list;
    if (after_pods) std::exchange(after_pods, nullptr)();
    return out;
  }
  std::vector<json> nodes() override { return node_list; }
};

class FakeControl : public DaemonControl {
 public:
  explicit FakeControl(FakeListers& l) : listers(l) {}
  FakeListers& listers;
  std::vector<json> created;
  std::vector<std::string> deleted;
  std::vector<json> patches;
  std::vector<json> statuses;
  int n = 0;
  int fail_creates_from = -1;  // the create call with this index and later ones fail
  Result<json> create_pod(const std::string& ns, const json& pod) override {
    int i = n++;
    if (fail_creates_from >= 0 && i >= fail_creates_from) return Status::forbidden("quota");
    json p = pod;
    p["metadata"]["name"] = pod["metadata"]["generateName"].get<std::string>() + std::to_string(i);
    p["metadata"]["namespace"] = ns;
    p["metadata"]["uid"] = "uid-pod-" + std::to_string(i);
    p["metadata"]["resourceVersion"] = std::to_string(100 + i);
    p["metadata"]["creationTimestamp"] = ts(kT0 + std::chrono::seconds(i));
    created.push_back(p);
    return p;
  }
  Status delete_pod(const std::string&, const std::string& name) override {
    deleted.push_back(name);
    return Status::ok();
  }
  Status patch_pod(const std::string&, const std::string& name, const json& patch) override {
    patches.push_back({{"name", name}, {"patch", patch}});
    return Status::ok();
  }
  Result<json> get_daemonset(const std::string& ns, const std::string& name) override {
    auto d = listers.daemonset(ns + "/" + name);
    if (!d) return Status::not_found("daemonset not found");
    return *d;
  }
  Result<json> update_status(const json& ds) override {
    statuses.push_back(ds["status"]);
    listers.ds[ds["metadata"]["namespace"].get<std::string>() + "/" +
               ds["metadata"]["name"].get<std::string>()] = ds;
    return ds;
  }
};

class FakeEvents : public EventSink {
 public:
  std::vector<std::string> events;  // "Normal SuccessfulCreate: Created pod: x"
  void event(const json&, const std::string&, bool warning, const std::string& reason,
             const std::string& message) override {
    events.push_back(std::string(warning ? "Warning " : "Normal ") + reason + ": " + message);
  }
  int count(const std::string& reason) const {
    int c = 0;
    for (const auto& e : events)
      if (e.find(" " + reason + ":") != std::string::npos) ++c;
    return c;
  }
};

struct Env {
  client::FakeClock clock;
  WallTime wall = kT0 + 1h;
  FakeListers listers;
  FakeControl control{listers};
  history::FakeHistory hist;
  FakeEvents events;
  std::unique_ptr<DaemonSetController> c;
  Env() {
    DaemonSetOptions o;
    o.clock = &clock;
    o.wall_clock = [this] { return wall; };
    c = std::make_unique<DaemonSetController>(o);
    c->set_clients(&listers, &control, &hist, &events);
  }
  void put(const json& ds) { listers.ds["kube-system/agent"] = ds; }
  json ds() { return listers.ds["kube-system/agent"]; }
  Status sync() { return c->sync("kube-system/agent"); }
  // The created pods appear in the cache, bound to their target node, Running and (if
  // `ready`) Ready since kT0.
  void observe_created(bool ready = true) {
    for (auto p : control.created) {
      p["spec"]["nodeName"] = *target_node_name(p);
      p["status"] = {{"phase", "Running"}};
      if (ready)
        p["status"]["conditions"] = {
            {{"type", "Ready"}, {"status", "True"}, {"lastTransitionTime", ts(kT0)}}};
      listers.pod_list.push_back(p);
      c->on_pod_add(p);
    }
    control.created.clear();
  }
  void observe_deleted() {
    for (const auto& name : control.deleted) {
      auto it = std::find_if(listers.pod_list.begin(), listers.pod_list.end(),
                             [&](const json& p) { return p["metadata"]["name"] == name; });
      if (it == listers.pod_list.end()) continue;
      json p = *it;
      listers.pod_list.erase(it);
      c->on_pod_delete(p);
    }
    control.deleted.clear();
  }
  std::vector<std::string> created_nodes() {
    std::vector<std::string> out;
    for (const auto& p : control.created) out.push_back(*target_node_name(p));
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string node_of(const std::string& pod) {
    for (const auto& p : listers.pod_list)
      if (p["metadata"]["name"] == pod) return p["spec"]["nodeName"];
    return "";
  }
};

}  // namespace

TEST_CASE("node eligibility follows the daemon controller's predicates") {
  json ds = make_ds();
  CHECK(node_should_run_daemon_pod(make_node("n"), ds).should_run);
  // Not-ready / unreachable / unschedulable nodes: the default tolerations cover them.
  json nr = make_node("n", json::object(),
                      {{{"key", "node.kubernetes.io/not-ready"}, {"effect", "NoExecute"}},
                       {{"key", "node.kubernetes.io/unschedulable"}, {"effect", "NoSchedule"}}});
  nr["status"]["conditions"][0]["status"] = "False";
  CHECK(node_should_run_daemon_pod(nr, ds).should_run);
  // An untolerated NoSchedule taint: no new pod, an existing one stays.
  json ns = make_node("n", json::object(),
                      {{{"key", "dedicated"}, {"value", "db"}, {"effect", "NoSchedule"}}});
  auto r = node_should_run_daemon_pod(ns, ds);
  CHECK_FALSE(r.should_run);
  CHECK(r.should_continue);
  // NoExecute evicts; PreferNoSchedule does not matter.
  json ne = make_node("n", json::object(), {{{"key", "dedicated"}, {"effect", "NoExecute"}}});
  r = node_should_run_daemon_pod(ne, ds);
  CHECK_FALSE(r.should_run);
  CHECK_FALSE(r.should_continue);
  json pref = make_node("n", json::object(), {{{"key", "x"}, {"effect", "PreferNoSchedule"}}});
  CHECK(node_should_run_daemon_pod(pref, ds).should_run);
  // A matching toleration in the template.
  json tol = ds;
  tol["spec"]["template"]["spec"]["tolerations"] = {
      {{"key", "dedicated"}, {"operator", "Equal"}, {"value", "db"}, {"effect", "NoSchedule"}}};
  CHECK(node_should_run_daemon_pod(ns, tol).should_run);
  // network-unavailable is tolerated only by hostNetwork pods.
  json nu =
      make_node("n", json::object(),
                {{{"key", "node.kubernetes.io/network-unavailable"}, {"effect", "NoSchedule"}}});
  CHECK_FALSE(node_should_run_daemon_pod(nu, ds).should_run);
  json hn = ds;
  hn["spec"]["template"]["spec"]["hostNetwork"] = true;
  CHECK(node_should_run_daemon_pod(nu, hn).should_run);
  // nodeSelector and required affinity; template nodeName.
  json sel = ds;
  sel["spec"]["template"]["spec"]["nodeSelector"] = {{"disk", "ssd"}};
  CHECK_FALSE(node_should_run_daemon_pod(make_node("n"), sel).should_continue);
  CHECK(node_should_run_daemon_pod(make_node("n", {{"disk", "ssd"}}), sel).should_run);
  json aff = ds;
  aff["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
     ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] = {
         {{"matchExpressions", {{{"key", "zone"}, {"operator", "In"}, {"values", {"a", "b"}}}}}},
         {{"matchFields",
           {{{"key", "metadata.name"}, {"operator", "In"}, {"values", {"special"}}}}}}};
  CHECK(node_should_run_daemon_pod(make_node("n", {{"zone", "b"}}), aff).should_run);
  CHECK(node_should_run_daemon_pod(make_node("special"), aff).should_run);
  CHECK_FALSE(node_should_run_daemon_pod(make_node("n", {{"zone", "c"}}), aff).should_run);
  json named = ds;
  named["spec"]["template"]["spec"]["nodeName"] = "n1";
  CHECK(node_should_run_daemon_pod(make_node("n1"), named).should_run);
  CHECK_FALSE(node_should_run_daemon_pod(make_node("n2"), named).should_continue);
}

TEST_CASE("daemon pod: labels, default tolerations, node-name affinity, target node") {
  json ds = make_ds();
  ds["spec"]["template"]["spec"]["tolerations"] = {{{"key", "node.kubernetes.io/not-ready"},
                                                    {"operator", "Exists"},
                                                    {"effect", "NoExecute"},
                                                    {"tolerationSeconds", 30}},
                                                   {{"key", "custom"}, {"operator", "Exists"}}};
  ds["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] = {
        {{"matchExpressions", {{{"key", "zone"}, {"operator", "In"}, {"values", {"a"}}}}}}};
  json t = pod_template_for(ds, 4, "h4sh");
  CHECK(t["metadata"]["labels"] == json({{"app", "agent"},
                                         {"controller-revision-hash", "h4sh"},
                                         {"pod-template-generation", "4"}}));
  const json& tols = t["spec"]["tolerations"];
  REQUIRE(tols.size() == 7);  // custom + the six defaults (not-ready replaced in place)
  CHECK(tols[0] == json({{"key", "node.kubernetes.io/not-ready"},
                         {"operator", "Exists"},
                         {"effect", "NoExecute"}}));
  CHECK(tols[1]["key"] == "custom");
  json pod = new_daemon_pod(ds, t, "node-1");
  CHECK(pod["metadata"]["generateName"] == "agent-");
  CHECK(pod["metadata"]["ownerReferences"][0] == json({{"apiVersion", "apps/v1"},
                                                       {"kind", "DaemonSet"},
                                                       {"name", "agent"},
                                                       {"uid", "uid-ds"},
                                                       {"controller", true},
                                                       {"blockOwnerDeletion", true}}));
  CHECK(pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] ==
        json::parse(R"({"nodeSelectorTerms":[{"matchFields":[{"key":"metadata.name",
                        "operator":"In","values":["node-1"]}]}]})"));
  CHECK_FALSE(pod["spec"].contains("nodeName"));
  CHECK(target_node_name(pod) == "node-1");
  pod["spec"]["nodeName"] = "node-2";
  CHECK(target_node_name(pod) == "node-2");
  CHECK_FALSE(target_node_name(json::object()));
}

TEST_CASE("sync creates one pod per eligible node, with a ControllerRevision") {
  Env e;
  e.put(make_ds());
  e.listers.node_list = {
      make_node("n1"), make_node("n2"),
      make_node("n3", json::object(), {{{"key", "gpu"}, {"effect", "NoSchedule"}}})};
  REQUIRE(e.sync());
  CHECK(e.created_nodes() == std::vector<std::string>{"n1", "n2"});
  auto revs = e.hist.all();
  REQUIRE(revs.size() == 1);
  const auto& rev = revs[0];
  std::string hash = history::compute_template_hash(make_ds()["spec"]["template"], std::nullopt);
  CHECK(rev.metadata.name == "agent-" + hash);
  CHECK(rev.revision == 1);
  CHECK(rev.metadata.labels.at("controller-revision-hash") == hash);
  CHECK(rev.metadata.labels.at("app") == "agent");
  CHECK(history::controller_uid(rev) == "uid-ds");
  CHECK(rev.data["spec"]["template"]["$patch"] == "replace");
  for (const auto& p : e.control.created) {
    CHECK(p["metadata"]["labels"]["controller-revision-hash"] == hash);
    CHECK(p["metadata"]["labels"]["pod-template-generation"] == "1");
  }
  CHECK(e.events.count("SuccessfulCreate") == 2);
  REQUIRE_FALSE(e.control.statuses.empty());
  CHECK(e.control.statuses.back()["desiredNumberScheduled"] == 2);
  CHECK(e.control.statuses.back()["currentNumberScheduled"] == 0);
  CHECK(e.control.statuses.back()["observedGeneration"] == 1);

  SECTION("expectations: a stale cache creates nothing more") {
    e.control.created.clear();
    REQUIRE(e.sync());
    CHECK(e.control.created.empty());
    e.clock.advance(6min);  // expectations expire
    REQUIRE(e.sync());
    CHECK(e.created_nodes() == std::vector<std::string>{"n1", "n2"});
  }
  SECTION("observed pods: nothing to do, status counts them; a new node gets a pod") {
    e.observe_created();
    REQUIRE(e.sync());
    CHECK(e.control.created.empty());
    CHECK(e.control.deleted.empty());
    json st = e.ds()["status"];
    CHECK(st["currentNumberScheduled"] == 2);
    CHECK(st["numberReady"] == 2);
    CHECK(st["numberAvailable"] == 2);
    CHECK(st["updatedNumberScheduled"] == 2);
    CHECK(st["numberUnavailable"] == 0);
    size_t writes = e.control.statuses.size();
    REQUIRE(e.sync());
    CHECK(e.control.statuses.size() == writes);  // unchanged: no write
    e.listers.node_list.push_back(make_node("n4"));
    e.c->on_node_add(e.listers.node_list.back());
    REQUIRE(e.c->queue().len() == 1);
    REQUIRE(e.sync());
    CHECK(e.created_nodes() == std::vector<std::string>{"n4"});
  }
  SECTION("nodes that stop qualifying or disappear lose their pods; misscheduled counted") {
    e.observe_created();
    e.listers.node_list[0]["spec"]["taints"] = {{{"key", "evict"}, {"effect", "NoExecute"}}};
    e.listers.node_list.erase(e.listers.node_list.begin() + 1);  // n2 deleted
    REQUIRE(e.sync());
    std::vector<std::string> nodes;
    for (const auto& p : e.control.deleted) nodes.push_back(e.node_of(p));
    std::sort(nodes.begin(), nodes.end());
    CHECK(nodes == std::vector<std::string>{"n1", "n2"});
    CHECK(e.ds()["status"]["numberMisscheduled"] == 1);  // n1 (n2 is no node any more)
    CHECK(e.events.count("SuccessfulDelete") == 2);
  }
  SECTION("a NoSchedule taint added later keeps the running pod, counted misscheduled") {
    e.observe_created();
    e.listers.node_list[0]["spec"]["taints"] = {{{"key", "gpu"}, {"effect", "NoSchedule"}}};
    REQUIRE(e.sync());
    CHECK(e.control.deleted.empty());
    CHECK(e.ds()["status"]["numberMisscheduled"] == 1);
    CHECK(e.ds()["status"]["desiredNumberScheduled"] == 1);
  }
}

TEST_CASE("excess pods on a node: the oldest is kept") {
  Env e;
  e.put(make_ds());
  e.listers.node_list = {make_node("n1")};
  REQUIRE(e.sync());
  e.observe_created();
  json extra = e.listers.pod_list[0];
  extra["metadata"]["name"] = "agent-extra";
  extra["metadata"]["uid"] = "uid-extra";
  extra["metadata"]["creationTimestamp"] = ts(kT0 + 1h);
  e.listers.pod_list.push_back(extra);
  REQUIRE(e.sync());
  CHECK(e.control.deleted == std::vector<std::string>{"agent-extra"});
}

TEST_CASE("failed daemon pods are deleted with back-off and recreated") {
  Env e;
  e.put(make_ds());
  e.listers.node_list = {make_node("n1")};
  REQUIRE(e.sync());
  e.observe_created();
  e.listers.pod_list[0]["status"]["phase"] = "Failed";
  std::string name = e.listers.pod_list[0]["metadata"]["name"];
  REQUIRE(e.sync());
  CHECK(e.control.deleted == std::vector<std::string>{name});
  CHECK(e.events.count("FailedDaemonPod") == 1);
  CHECK(e.events.events[e.events.events.size() - 2] ==
        "Warning FailedDaemonPod: Found failed daemon pod kube-system/" + name +
            " on node n1, will try to kill it");
  e.observe_deleted();
  REQUIRE(e.sync());
  CHECK(e.created_nodes() == std::vector<std::string>{"n1"});
  // The replacement fails at once: within the back-off (now 1 s) it is not deleted again.
  e.observe_created();
  e.listers.pod_list[0]["status"]["phase"] = "Failed";
  REQUIRE(e.sync());
  CHECK(e.control.deleted.empty());
  e.clock.advance(1500ms);
  REQUIRE(e.sync());
  CHECK(e.control.deleted.size() == 1);
  CHECK(e.events.count("FailedDaemonPod") == 2);
}

TEST_CASE("failed creates: slow start stops, FailedCreate, expectations lowered") {
  Env e;
  e.put(make_ds());
  for (int i = 0; i < 10; ++i) e.listers.node_list.push_back(make_node("n" + std::to_string(i)));
  e.control.fail_creates_from = 3;  // batches 1, 2 succeed; the batch of 4 fails on its first
  Status st = e.sync();
  CHECK_FALSE(st);
  CHECK(e.control.n == 7);  // 1 + 2 + 4 attempted
  CHECK(e.control.created.size() == 3);
  CHECK(e.events.count("FailedCreate") == 4);
  e.observe_created();
  CHECK(e.c->expectations().satisfied("kube-system/agent"));
}

TEST_CASE("rolling update: at most maxUnavailable old pods down at a time") {
  Env e;
  e.put(make_ds());
  e.listers.node_list = {make_node("n1"), make_node("n2"), make_node("n3")};
  REQUIRE(e.sync());
  e.observe_created();
  REQUIRE(e.sync());
  json ds = make_ds("agent:2");
  ds["metadata"]["generation"] = 2;
  e.put(ds);
  REQUIRE(e.sync());
  auto revs = e.hist.all();
  REQUIRE(revs.size() == 2);
  history::sort_revisions(revs);
  CHECK(revs[1].revision == 2);
  CHECK(e.control.deleted.size() == 1);
  CHECK(e.ds()["status"]["updatedNumberScheduled"] == 0);
  std::string first = e.node_of(e.control.deleted[0]);
  e.observe_deleted();
  // The next sync recreates the pod on that node with the new template, deletes nothing else.
  REQUIRE(e.sync());
  CHECK(e.created_nodes() == std::vector<std::string>{first});
  CHECK(e.control.created[0]["spec"]["containers"][0]["image"] == "agent:2");
  CHECK(e.control.created[0]["metadata"]["labels"]["pod-template-generation"] == "2");
  CHECK(e.control.deleted.empty());
  e.observe_created(/*ready=*/false);
  REQUIRE(e.sync());
  CHECK(e.control.deleted.empty());  // the new pod is not available yet
  for (auto& p : e.listers.pod_list)
    if (p["spec"]["containers"][0]["image"] == "agent:2")
      p["status"]["conditions"] = {
          {{"type", "Ready"}, {"status", "True"}, {"lastTransitionTime", ts(kT0)}}};
  REQUIRE(e.sync());
  CHECK(e.control.deleted.size() == 1);
  CHECK(e.node_of(e.control.deleted[0]) != first);
  CHECK(e.ds()["status"]["updatedNumberScheduled"] == 1);

  SECTION("rollback to the first template reuses revision 1, renumbered 3") {
    e.observe_deleted();
    json back = make_ds("agent:1");
    back["metadata"]["generation"] = 3;
    e.put(back);
    REQUIRE(e.sync());
    auto rs = e.hist.all();
    REQUIRE(rs.size() == 2);
    history::sort_revisions(rs);
    CHECK(rs[1].revision == 3);
    CHECK(rs[1].data["spec"]["template"]["spec"]["containers"][0]["image"] == "agent:1");
  }
}

TEST_CASE("an unavailable old pod is replaced at once") {
  Env e;
  e.put(make_ds());
  e.listers.node_list = {make_node("n1"), make_node("n2")};
  REQUIRE(e.sync());
  e.observe_created(/*ready=*/false);
  json ds = make_ds("agent:2");
  ds["metadata"]["generation"] = 2;
  e.put(ds);
  REQUIRE(e.sync());
  CHECK(e.control.deleted.size() == 2);  // neither serves: both replaced despite maxUnavailable 1
}

TEST_CASE("OnDelete: a template change deletes nothing; deleted pods come back new") {
  Env e;
  json ds = make_ds();
  ds["spec"]["updateStrategy"] = {{"type", "OnDelete"}};
  e.put(ds);
  e.listers.node_list = {make_node("n1"), make_node("n2")};
  REQUIRE(e.sync());
  e.observe_created();
  ds["spec"]["template"]["spec"]["containers"][0]["image"] = "agent:2";
  ds["metadata"]["generation"] = 2;
  e.put(ds);
  REQUIRE(e.sync());
  CHECK(e.control.deleted.empty());
  CHECK(e.ds()["status"]["updatedNumberScheduled"] == 0);
  // The user deletes one pod.
  e.control.deleted = {e.listers.pod_list[0]["metadata"]["name"]};
  e.observe_deleted();
  REQUIRE(e.sync());
  REQUIRE(e.control.created.size() == 1);
  CHECK(e.control.created[0]["spec"]["containers"][0]["image"] == "agent:2");
}

TEST_CASE("rolling update with maxSurge: the new pod starts beside the old one") {
  Env e;
  json ds = make_ds();
  ds["spec"]["updateStrategy"]["rollingUpdate"] = {{"maxUnavailable", 0}, {"maxSurge", 1}};
  e.put(ds);
  e.listers.node_list = {make_node("n1"), make_node("n2")};
  REQUIRE(e.sync());
  e.observe_created();
  ds["spec"]["template"]["spec"]["containers"][0]["image"] = "agent:2";
  ds["metadata"]["generation"] = 2;
  e.put(ds);
  REQUIRE(e.sync());
  REQUIRE(e.control.created.size() == 1);  // one node surged
  CHECK(e.control.deleted.empty());
  std::string node = *target_node_name(e.control.created[0]);
  e.observe_created(/*ready=*/true);
  REQUIRE(e.sync());
  // The new pod is available: the old one on that node goes, the other node surges.
  REQUIRE(e.control.deleted.size() == 1);
  CHECK(e.node_of(e.control.deleted[0]) == node);
  CHECK(e.created_nodes().size() == 1);
  CHECK(e.created_nodes()[0] != node);
}

TEST_CASE("hash collision bumps status.collisionCount") {
  Env e;
  e.put(make_ds());
  e.listers.node_list = {make_node("n1")};
  std::string hash = history::compute_template_hash(make_ds()["spec"]["template"], std::nullopt);
  history::ControllerRevision squatter;
  squatter.metadata.name = "agent-" + hash;
  squatter.metadata.namespace_ = "kube-system";
  squatter.data = {{"other", 1}};
  e.hist.put(squatter);  // an orphan without matching labels: not listed
  Status st = e.sync();
  CHECK(st.code() == Code::kConflict);
  CHECK(e.ds()["status"]["collisionCount"] == 1);
  REQUIRE(e.sync());
  CHECK(e.hist.find("kube-system",
                    "agent-" + history::compute_template_hash(make_ds()["spec"]["template"], 1)));
}

TEST_CASE("old revisions beyond revisionHistoryLimit are deleted unless pods use them") {
  Env e;
  json ds = make_ds();
  ds["spec"]["revisionHistoryLimit"] = 1;
  ds["spec"]["updateStrategy"] = {{"type", "OnDelete"}};
  e.put(ds);
  e.listers.node_list = {make_node("n1")};
  REQUIRE(e.sync());
  e.observe_created();  // runs revision 1
  for (int v = 2; v <= 4; ++v) {
    ds["spec"]["template"]["spec"]["containers"][0]["image"] = "agent:" + std::to_string(v);
    e.put(ds);
    REQUIRE(e.sync());
  }
  // Old revisions: 1 is in use (kept, and it fills the limit of 1), 2 and 3 are deleted as
  // Kubernetes' cleanupHistory does; 4 is current.
  auto rs = e.hist.all();
  history::sort_revisions(rs);
  REQUIRE(rs.size() == 2);
  CHECK(rs[0].revision == 1);
  CHECK(rs[1].revision == 4);
  CHECK(e.hist.calls().back().rfind("delete kube-system/agent-", 0) == 0);
}

TEST_CASE("adoption of matching orphans, release of relabelled pods, empty selector refused") {
  Env e;
  e.put(make_ds());
  e.listers.node_list = {make_node("n1")};
  json orphan = {{"metadata",
                  {{"name", "stray"},
                   {"namespace", "kube-system"},
                   {"uid", "uid-stray"},
                   {"labels", {{"app", "agent"}}},
                   {"creationTimestamp", ts(kT0)}}},
                 {"spec", {{"nodeName", "n1"}}},
                 {"status", {{"phase", "Running"}}}};
  e.listers.pod_list.push_back(orphan);
  json mine = orphan;
  mine["metadata"]["name"] = "relabelled";
  mine["metadata"]["uid"] = "uid-rel";
  mine["metadata"]["labels"] = {{"app", "other"}};
  mine["metadata"]["ownerReferences"] = {{{"apiVersion", "apps/v1"},
                                          {"kind", "DaemonSet"},
                                          {"name", "agent"},
                                          {"uid", "uid-ds"},
                                          {"controller", true}}};
  e.listers.pod_list.push_back(mine);
  REQUIRE(e.sync());
  REQUIRE(e.control.patches.size() == 2);
  CHECK(e.control.patches[0]["name"] == "stray");
  CHECK(e.control.patches[0]["patch"]["metadata"]["ownerReferences"][0]["uid"] == "uid-ds");
  CHECK(e.control.patches[1]["name"] == "relabelled");
  CHECK(e.control.patches[1]["patch"]["metadata"]["ownerReferences"][0]["$patch"] == "delete");
  CHECK(e.control.created.empty());  // the adopted pod serves n1

  json all = make_ds();
  all["spec"]["selector"] = json::object();
  e.put(all);
  REQUIRE(e.sync());
  CHECK(e.events.count("SelectingAll") == 1);
}

TEST_CASE("handlers enqueue the right DaemonSet") {
  Env e;
  e.put(make_ds());
  json pod = {
      {"metadata",
       {{"name", "p"},
        {"namespace", "kube-system"},
        {"resourceVersion", "1"},
        {"labels", {{"app", "agent"}}},
        {"ownerReferences",
         {{{"kind", "DaemonSet"}, {"name", "agent"}, {"uid", "uid-ds"}, {"controller", true}}}}}}};
  e.c->on_pod_add(pod);
  CHECK(e.c->queue().len() == 1);
  auto k = e.c->queue().get();
  REQUIRE(k);
  CHECK(*k == "kube-system/agent");
  e.c->queue().done(*k);
  // A heartbeat-only node update is ignored; a label change is not.
  json n = make_node("n1");
  json hb = n;
  hb["status"]["conditions"][0]["lastHeartbeatTime"] = ts(kT0);
  e.c->on_node_update(n, hb);
  CHECK(e.c->queue().len() == 0);
  json relabel = n;
  relabel["metadata"]["labels"]["x"] = "y";
  e.c->on_node_update(n, relabel);
  CHECK(e.c->queue().len() == 1);
  // Another DaemonSet's pod (uid mismatch) enqueues nothing.
  k = e.c->queue().get();
  e.c->queue().done(*k);
  pod["metadata"]["ownerReferences"][0]["uid"] = "other";
  e.c->on_pod_add(pod);
  CHECK(e.c->queue().len() == 0);
}

TEST_CASE("a pod that starts terminating counts as deleted for the expectations") {
  Env e;
  e.put(make_ds());
  e.listers.node_list = {make_node("n1"), make_node("n2")};
  REQUIRE(e.sync());
  e.observe_created();
  json ds = make_ds("agent:2");
  ds["metadata"]["generation"] = 2;
  e.put(ds);
  REQUIRE(e.sync());
  REQUIRE(e.control.deleted.size() == 1);
  CHECK_FALSE(e.c->expectations().satisfied("kube-system/agent"));
  // The API server sets deletionTimestamp; the object stays until its kubelet confirms.
  for (auto& p : e.listers.pod_list) {
    if (p["metadata"]["name"] != e.control.deleted[0]) continue;
    json old = p;
    p["metadata"]["deletionTimestamp"] = ts(kT0 + 2h);
    p["metadata"]["resourceVersion"] = "999";
    e.c->on_pod_update(old, p);
  }
  CHECK(e.c->expectations().satisfied("kube-system/agent"));
  e.control.deleted.clear();
  REQUIRE(e.sync());
  // Its node waits for the terminating pod to go (as Kubernetes), the other old pod stays
  // while that node counts as unavailable.
  CHECK(e.control.created.empty());
  CHECK(e.control.deleted.empty());
}

TEST_CASE("a pod whose add event lands right after the sync listed the pods is not doubled") {
  // Expectations are read before the listing (as Kubernetes): read after it, the add event of
  // the pod the previous sync created met them although the list lacked that pod, and its
  // node got a second daemon pod.
  Env e;
  e.put(make_ds());
  e.listers.node_list = {make_node("n1")};
  REQUIRE(e.sync());
  REQUIRE(e.control.created.size() == 1);
  e.listers.after_pods = [&] { e.observe_created(); };
  REQUIRE(e.sync());
  CHECK(e.control.created.empty());  // nothing new: the node has its pod
  REQUIRE(e.sync());                 // the next sync sees it
  CHECK(e.control.created.empty());
  CHECK(e.listers.pod_list.size() == 1);
}
