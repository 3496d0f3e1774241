// Unit tests of the scheduler's pure parts: request math, filters, message, scores, cache
// (assumed pods), queue (back-off, parking) with a fake clock. No network.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "controllers/scheduler/algorithm.h"
#include "controllers/scheduler/cache.h"
#include "controllers/scheduler/filters.h"
#include "controllers/scheduler/framework.h"
#include "controllers/scheduler/queue.h"
#include "controllers/scheduler/scores.h"

using namespace skiff;
using namespace skiff::scheduler;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

json container(const std::string& name, const std::string& cpu, const std::string& mem) {
  json c = {{"name", name}, {"image", "busybox"}};
  if (!cpu.empty()) c["resources"]["requests"]["cpu"] = cpu;
  if (!mem.empty()) c["resources"]["requests"]["memory"] = mem;
  return c;
}

json pod_json(const std::string& name, json spec = json::object()) {
  if (!spec.contains("containers")) spec["containers"] = json::array({container("c", "", "")});
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", "default"}, {"uid", "uid-" + name}}},
          {"spec", spec}};
}

PodInfo pod(const std::string& name, json spec = json::object()) {
  auto p = pod_info_from_json(pod_json(name, std::move(spec)));
  REQUIRE(p.is_ok());
  return *p;
}

PodInfo pod_with_cpu(const std::string& name, const std::string& cpu,
                     const std::string& owner = "") {
  PodInfo p = pod(name, {{"containers", json::array({container("c", cpu, "")})}});
  p.owner_uid = owner;
  return p;
}

NodeInfo node(const std::string& name, int64_t milli_cpu = 4000, int64_t mem = 8LL << 30,
              int64_t pods = 110) {
  NodeInfo n;
  n.name = name;
  n.ready = true;
  n.allocatable = {milli_cpu, mem, pods};
  return n;
}

Reasons filter(const PodInfo& p, const NodeInfo& n) {
  Reasons r;
  run_filters(p, n, r);
  return r;
}

}  // namespace

TEST_CASE("effective requests: max(init) vs sum(containers), overhead, non-zero defaults") {
  json spec = {
      {"containers", json::array({container("a", "200m", "100Mi"), container("b", "300m", "")})},
      {"initContainers",
       json::array({container("i1", "1", "50Mi"), container("i2", "100m", "1Gi")})}};
  PodInfo p = pod("p", spec);
  CHECK(p.requests.milli_cpu == 1000);      // init 1 > 200m + 300m
  CHECK(p.requests.memory == (1LL << 30));  // init 1Gi > 100Mi + 0
  CHECK(p.requests.pods == 1);
  CHECK(p.nonzero.milli_cpu == 1000);
  CHECK(p.nonzero.memory == (1LL << 30));  // 100Mi + 200Mi default < 1Gi
  PodInfo q = pod(
      "q",
      {{"containers", json::array({container("a", "200m", "100Mi"), container("b", "300m", "")})},
       {"initContainers", json::array({container("i", "100m", "")})}});
  CHECK(q.requests.milli_cpu == 500);
  CHECK(q.requests.memory == 100LL << 20);
  CHECK(q.nonzero.memory == (100LL << 20) + kDefaultMemoryRequest);
  PodInfo none = pod("n");
  CHECK(none.requests.milli_cpu == 0);
  CHECK(none.nonzero.milli_cpu == kDefaultMilliCpuRequest);
  PodInfo zero = pod("z", {{"containers", json::array({container("a", "0", "0")})}});
  CHECK(zero.nonzero.milli_cpu == 0);  // an explicit zero is not defaulted
  PodInfo oh = pod("o", {{"containers", json::array({container("a", "100m", "")})},
                         {"overhead", {{"cpu", "250m"}}}});
  CHECK(oh.requests.milli_cpu == 350);
}

TEST_CASE("pod info: owner, ports, needs_scheduling") {
  json j = pod_json(
      "p", {{"containers",
             json::array({{{"name", "c"},
                           {"ports", json::array({{{"containerPort", 80}, {"hostPort", 8080}},
                                                  {{"containerPort", 81}}})}}})}});
  j["metadata"]["ownerReferences"] =
      json::array({{{"apiVersion", "v1"}, {"kind", "X"}, {"name", "x"}, {"uid", "not-controller"}},
                   {{"apiVersion", "apps/v1"},
                    {"kind", "ReplicaSet"},
                    {"name", "rs"},
                    {"uid", "rs-uid"},
                    {"controller", true}}});
  auto p = pod_info_from_json(j);
  REQUIRE(p.is_ok());
  CHECK(p->owner_uid == "rs-uid");
  REQUIRE(p->host_ports.size() == 1);
  CHECK(p->host_ports[0] == HostPort{"TCP", "0.0.0.0", 8080});
  CHECK(needs_scheduling(*p, "default-scheduler"));
  p->scheduler_name = "other";
  CHECK_FALSE(needs_scheduling(*p, "default-scheduler"));
  p->scheduler_name = "";
  p->terminating = true;
  CHECK_FALSE(needs_scheduling(*p, "default-scheduler"));
  p->terminating = false;
  p->node_name = "n1";
  CHECK_FALSE(needs_scheduling(*p, "default-scheduler"));
  CHECK_FALSE(pod_info_from_json(json{{"spec", 5}}).is_ok());
}

TEST_CASE("node info from a Node") {
  json j = {{"apiVersion", "v1"},
            {"kind", "Node"},
            {"metadata", {{"name", "n1"}, {"labels", {{"zone", "a"}}}}},
            {"spec",
             {{"unschedulable", true},
              {"taints", json::array({{{"key", "k"}, {"effect", "NoSchedule"}}})}}},
            {"status",
             {{"allocatable", {{"cpu", "2"}, {"memory", "1Gi"}, {"pods", "10"}}},
              {"conditions", json::array({{{"type", "Ready"}, {"status", "True"}}})}}}};
  auto n = node_info_from_json(j);
  REQUIRE(n.is_ok());
  CHECK(n->allocatable == Resources{2000, 1LL << 30, 10});
  CHECK(n->ready);
  CHECK(n->unschedulable);
  CHECK(n->labels.at("zone") == "a");
  CHECK(n->taints.size() == 1);
  j["status"]["conditions"][0]["status"] = "Unknown";
  CHECK_FALSE(node_info_from_json(j)->ready);
}

TEST_CASE("filter: ready and unschedulable") {
  NodeInfo n = node("n");
  PodInfo p = pod("p");
  CHECK(filter(p, n).empty());
  n.ready = false;
  CHECK(filter(p, n) == Reasons{kReasonNotReady});
  n.ready = true;
  n.unschedulable = true;
  CHECK(filter(p, n) == Reasons{kReasonUnschedulable});
  p.tolerations.push_back({.key = "node.kubernetes.io/unschedulable",
                           .op = "Exists",
                           .value = "",
                           .effect = "NoSchedule",
                           .toleration_seconds = {}});
  CHECK(filter(p, n).empty());
}

TEST_CASE("filter: taints and tolerations") {
  NodeInfo n = node("n");
  n.taints.push_back(
      {.key = "dedicated", .value = "gpu", .effect = "NoSchedule", .time_added = {}});
  PodInfo p = pod("p");
  CHECK(filter(p, n) == Reasons{"node(s) had untolerated taint {dedicated: gpu}"});
  auto tol = [](std::string k, std::string op, std::string v, std::string e) {
    return proto::Toleration{.key = std::move(k),
                             .op = std::move(op),
                             .value = std::move(v),
                             .effect = std::move(e),
                             .toleration_seconds = {}};
  };
  const proto::Taint& t = n.taints[0];
  CHECK(toleration_tolerates(tol("dedicated", "Equal", "gpu", "NoSchedule"), t));
  CHECK(toleration_tolerates(tol("dedicated", "", "gpu", ""), t));  // "" = Equal, any effect
  CHECK_FALSE(toleration_tolerates(tol("dedicated", "Equal", "cpu", "NoSchedule"), t));
  CHECK_FALSE(toleration_tolerates(tol("dedicated", "Equal", "gpu", "NoExecute"), t));
  CHECK(toleration_tolerates(tol("dedicated", "Exists", "", ""), t));
  CHECK(toleration_tolerates(tol("", "Exists", "", ""), t));  // tolerates everything
  CHECK_FALSE(toleration_tolerates(tol("", "Equal", "", ""), t));
  CHECK_FALSE(toleration_tolerates(tol("dedicated", "Bogus", "gpu", ""), t));
  p.tolerations.push_back(tol("dedicated", "Equal", "gpu", "NoSchedule"));
  CHECK(filter(p, n).empty());
  // NoExecute blocks too; PreferNoSchedule never does.
  n.taints.push_back({.key = "evict", .value = "", .effect = "NoExecute", .time_added = {}});
  CHECK(filter(p, n) == Reasons{"node(s) had untolerated taint {evict: }"});
  n.taints.back().effect = "PreferNoSchedule";
  CHECK(filter(p, n).empty());
}

TEST_CASE("filter: nodeSelector and required node affinity") {
  NodeInfo n = node("n1");
  n.labels = {{"zone", "a"}, {"disk", "ssd"}, {"cores", "8"}};
  PodInfo p = pod("p");
  p.node_selector = {{"zone", "a"}};
  CHECK(filter(p, n).empty());
  p.node_selector = {{"zone", "b"}};
  CHECK(filter(p, n) == Reasons{kReasonAffinity});
  p.node_selector.clear();

  auto req = [](std::string k, std::string op, std::vector<std::string> v) {
    return proto::NodeSelectorRequirement{std::move(k), std::move(op), std::move(v)};
  };
  const auto& labels = n.labels;
  CHECK(match_requirement(req("zone", "In", {"a", "b"}), labels));
  CHECK_FALSE(match_requirement(req("zone", "In", {"b"}), labels));
  CHECK_FALSE(match_requirement(req("nope", "In", {"a"}), labels));
  CHECK(match_requirement(req("zone", "NotIn", {"b"}), labels));
  CHECK(match_requirement(req("nope", "NotIn", {"b"}), labels));
  CHECK_FALSE(match_requirement(req("zone", "NotIn", {"a"}), labels));
  CHECK(match_requirement(req("disk", "Exists", {}), labels));
  CHECK_FALSE(match_requirement(req("gpu", "Exists", {}), labels));
  CHECK(match_requirement(req("gpu", "DoesNotExist", {}), labels));
  CHECK_FALSE(match_requirement(req("disk", "DoesNotExist", {}), labels));
  CHECK(match_requirement(req("cores", "Gt", {"4"}), labels));
  CHECK_FALSE(match_requirement(req("cores", "Gt", {"8"}), labels));
  CHECK(match_requirement(req("cores", "Lt", {"16"}), labels));
  CHECK_FALSE(match_requirement(req("zone", "Gt", {"1"}), labels));  // not an integer
  CHECK_FALSE(match_requirement(req("cores", "Gt", {"x"}), labels));
  CHECK_FALSE(match_requirement(req("cores", "Gt", {"1", "2"}), labels));
  CHECK_FALSE(match_requirement(req("zone", "Bogus", {"a"}), labels));

  // Terms are ORed, expressions within a term ANDed; an empty term matches nothing.
  proto::NodeSelector sel;
  sel.node_selector_terms.push_back({{req("zone", "In", {"b"})}, {}});
  sel.node_selector_terms.push_back({{req("zone", "In", {"a"}), req("disk", "In", {"hdd"})}, {}});
  p.required_affinity = sel;
  CHECK(filter(p, n) == Reasons{kReasonAffinity});
  p.required_affinity->node_selector_terms.push_back({{req("disk", "Exists", {})}, {}});
  CHECK(filter(p, n).empty());
  CHECK_FALSE(match_node_selector_term({}, n));
  CHECK(match_node_selector_term({{}, {req("metadata.name", "In", {"n1"})}}, n));
  CHECK_FALSE(match_node_selector_term({{}, {req("metadata.name", "In", {"n2"})}}, n));
  // nodeSelector and affinity must both hold.
  p.node_selector = {{"zone", "b"}};
  CHECK(filter(p, n) == Reasons{kReasonAffinity});
}

TEST_CASE("filter: host ports") {
  NodeInfo n = node("n");
  n.used_ports = {{"TCP", "0.0.0.0", 80}, {"UDP", "10.0.0.1", 53}};
  PodInfo p = pod("p");
  p.host_ports = {{"TCP", "0.0.0.0", 81}};
  CHECK(filter(p, n).empty());
  p.host_ports = {{"TCP", "127.0.0.1", 80}};  // 0.0.0.0 holds every address
  CHECK(filter(p, n) == Reasons{kReasonPorts});
  p.host_ports = {{"UDP", "0.0.0.0", 80}};  // another protocol
  CHECK(filter(p, n).empty());
  p.host_ports = {{"UDP", "10.0.0.2", 53}};  // another address
  CHECK(filter(p, n).empty());
  p.host_ports = {{"UDP", "0.0.0.0", 53}};
  CHECK(filter(p, n) == Reasons{kReasonPorts});
}

TEST_CASE("filter: resources") {
  NodeInfo n = node("n", 1000, 1LL << 30, 2);
  CHECK(filter(pod_with_cpu("p", "1"), n).empty());
  CHECK(filter(pod_with_cpu("p", "1001m"), n) == Reasons{kReasonCpu});
  n.requested = {500, 512LL << 20, 1};
  CHECK(filter(pod_with_cpu("p", "500m"), n).empty());
  PodInfo big = pod("big", {{"containers", json::array({container("c", "600m", "600Mi")})}});
  CHECK(filter(big, n) == Reasons{kReasonCpu, kReasonMemory});
  n.requested.pods = 2;
  CHECK(filter(pod("p"), n) == Reasons{kReasonTooManyPods});
  // A pod without requests fits a full node except for the pod count.
  n.requested = {1000, 1LL << 30, 0};
  CHECK(filter(pod("p"), n).empty());
}

TEST_CASE("unschedulable message as kube-scheduler's") {
  ReasonHistogram h;
  add_reasons(h, {kReasonCpu});
  add_reasons(h, {kReasonAffinity});
  add_reasons(h, {kReasonCpu});
  CHECK(unschedulable_message(3, h) ==
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 "
        "Insufficient cpu.");
  ReasonHistogram both;
  add_reasons(both, {kReasonCpu, kReasonMemory});
  CHECK(unschedulable_message(1, both) ==
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory.");
  CHECK(unschedulable_message(0, {}) == "no nodes available to schedule pods");
}

TEST_CASE("least allocated score") {
  NodeInfo n = node("n", 4000, 4LL << 30);
  PodInfo p = pod("p", {{"containers", json::array({container("c", "1", "1Gi")})}});
  CHECK(least_allocated_score(p, n) == 75);  // (3/4 cpu + 3/4 memory) free
  n.nonzero_requested = {2000, 3LL << 30, 0};
  CHECK(least_allocated_score(p, n) == (25 + 0) / 2);
  n.nonzero_requested = {4000, 0, 0};  // over on cpu: 0 for cpu
  CHECK(least_allocated_score(p, n) == (0 + 75) / 2);
  NodeInfo empty = node("e", 0, 0);
  CHECK(least_allocated_score(p, empty) == 0);
  // Requests not set count the defaults (100m, 200Mi).
  NodeInfo small = node("s", 1000, 1000LL << 20);
  CHECK(least_allocated_score(pod("d"), small) == (90 + 80) / 2);
}

TEST_CASE("spread score and selection") {
  CHECK(spread_score(0, 0) == 100);
  CHECK(spread_score(0, 2) == 100);
  CHECK(spread_score(1, 2) == 50);
  CHECK(spread_score(2, 2) == 0);
  NodeInfo n = node("n");
  n.owner_counts = {{"rs", 2}};
  CHECK(owner_count(pod_with_cpu("p", "1", "rs"), n) == 2);
  CHECK(owner_count(pod_with_cpu("p", "1", "other"), n) == 0);
  CHECK(owner_count(pod_with_cpu("p", "1"), n) == 0);

  std::mt19937_64 rng(1);
  CHECK(select_node({1, 5, 3}, rng) == 1);
  // Ties broken at random: over many draws each tied index comes up.
  std::map<size_t, int> seen;
  for (int i = 0; i < 300; ++i) ++seen[select_node({7, 2, 7, 7}, rng)];
  CHECK(seen.count(1) == 0);
  CHECK(seen[0] > 50);
  CHECK(seen[2] > 50);
  CHECK(seen[3] > 50);
}

TEST_CASE("number of feasible nodes to find") {
  CHECK(num_feasible_nodes_to_find(50, 0) == 50);
  CHECK(num_feasible_nodes_to_find(1000, 0) == 420);     // 50 - 1000/125 = 42%
  CHECK(num_feasible_nodes_to_find(5000, 0) == 500);     // 10%
  CHECK(num_feasible_nodes_to_find(100000, 0) == 5000);  // floor of 5%
  CHECK(num_feasible_nodes_to_find(200, 10) == 100);     // at least 100
  CHECK(num_feasible_nodes_to_find(1000, 100) == 1000);
}

TEST_CASE("cache: bound and assumed pods count on their node") {
  Cache c;
  CHECK(c.upsert_node(node("n1", 1000)));
  CHECK_FALSE(c.upsert_node(node("n1", 1000)));  // nothing that matters changed
  PodInfo a = pod_with_cpu("a", "600m", "rs");
  c.assume(a, "n1");
  CHECK(c.is_assumed("default/a"));
  CHECK(c.node("n1").requested.milli_cpu == 600);
  CHECK(c.node("n1").owner_counts.at("rs") == 1);
  // Another pod no longer fits: the assumed one counts before the watch shows it.
  CHECK(filter(pod_with_cpu("b", "500m"), c.node("n1")) == Reasons{kReasonCpu});
  // The watch confirms it: counted once, no longer assumed; forget() is then a no-op.
  a.node_name = "n1";
  c.add_pod(a);
  CHECK_FALSE(c.is_assumed("default/a"));
  CHECK(c.node("n1").requested.milli_cpu == 600);
  CHECK(c.node("n1").requested.pods == 1);
  c.forget("default/a");
  CHECK(c.node("n1").requested.milli_cpu == 600);
  // A failed binding: forget() releases the assumed pod.
  PodInfo b = pod_with_cpu("b", "300m");
  c.assume(b, "n1");
  CHECK(c.node("n1").requested.milli_cpu == 900);
  c.forget("default/b");
  CHECK(c.node("n1").requested.milli_cpu == 600);
  // Deletion releases everything; a Node update keeps the usage.
  c.upsert_node(node("n1", 2000));
  CHECK(c.node("n1").requested.milli_cpu == 600);
  CHECK(c.node("n1").allocatable.milli_cpu == 2000);
  c.remove_pod("default/a");
  CHECK(c.node("n1").requested == Resources{});
  CHECK(c.node("n1").owner_counts.empty());
  CHECK(c.num_pods() == 0);
}

TEST_CASE("cache: pods on a node not seen yet, ports, node list") {
  Cache c;
  PodInfo p = pod_with_cpu("p", "1");
  p.node_name = "late";
  p.host_ports = {{"TCP", "0.0.0.0", 80}};
  c.add_pod(p);
  size_t listed = 0;
  c.with_nodes([&](const std::vector<const NodeInfo*>& ns) { listed = ns.size(); });
  CHECK(listed == 0);  // no Node object yet
  c.upsert_node(node("late"));
  c.upsert_node(node("a"));
  std::vector<std::string> names;
  c.with_nodes([&](const std::vector<const NodeInfo*>& ns) {
    for (auto* n : ns) names.push_back(n->name);
  });
  CHECK(names == std::vector<std::string>{"a", "late"});
  CHECK(c.node("late").requested.milli_cpu == 1000);
  CHECK(c.node("late").used_ports.size() == 1);
  c.remove_node("late");
  CHECK(c.num_nodes() == 1);
  c.remove_pod("default/p");
  CHECK(c.node("late").name.empty());  // gone with its last pod
}

TEST_CASE("queue: FIFO, de-duplication, removal") {
  client::FakeClock clock;
  SchedulingQueue q({.clock = &clock});
  q.add("a");
  q.add("b");
  q.add("a");
  CHECK(q.num_active() == 2);
  auto p = q.try_pop();
  REQUIRE(p);
  CHECK(p->key == "a");
  q.add("a");  // an update while in flight: not queued twice
  CHECK(q.num_active() == 1);
  q.done("a");
  q.remove("b");
  CHECK_FALSE(q.try_pop());
}

TEST_CASE("queue: higher priority first, FIFO among equals") {
  client::FakeClock clock;
  SchedulingQueue q({.initial_backoff = 1s, .max_backoff = 10s, .clock = &clock});
  q.add("low-1", -5);
  q.add("mid-1");
  q.add("high", 1000);
  q.add("mid-2");
  q.add("low-2", -5);
  q.add("critical", 2000000000);
  std::vector<std::string> order;
  while (auto p = q.try_pop()) {
    order.push_back(p->key);
    q.done(p->key);
  }
  CHECK(order == std::vector<std::string>{"critical", "high", "mid-1", "mid-2", "low-1", "low-2"});
  // A pod back from back-off goes ahead of lower-priority pods already waiting.
  q.add("h", 10);
  REQUIRE(q.try_pop());
  q.backoff("h");
  q.add("z1");
  q.add("z2");
  clock.advance(2s);
  auto p = q.try_pop();
  REQUIRE(p);
  CHECK(p->key == "h");
}

TEST_CASE("queue: unschedulable pods wait for an event, then their back-off") {
  client::FakeClock clock;
  SchedulingQueue q(
      {.initial_backoff = 1s, .max_backoff = 10s, .unschedulable_timeout = 60s, .clock = &clock});
  q.add("p");
  REQUIRE(q.try_pop());
  q.unschedulable("p");
  CHECK(q.num_unschedulable() == 1);
  clock.advance(5s);
  CHECK_FALSE(q.try_pop());  // parked: no event yet
  q.move_all_on_event();
  CHECK(q.num_backoff() == 1);
  auto p = q.try_pop();  // back-off of 1 s already over
  REQUIRE(p);
  CHECK(p->attempts == 1);
  q.unschedulable("p");
  q.move_all_on_event();
  CHECK_FALSE(q.try_pop());  // 2nd failure: 2 s back-off
  clock.advance(1s);
  CHECK_FALSE(q.try_pop());
  clock.advance(1s);
  REQUIRE(q.try_pop());
  // An event during the attempt: back-off instead of parking.
  q.move_all_on_event();
  q.unschedulable("p");
  CHECK(q.num_unschedulable() == 0);
  CHECK(q.num_backoff() == 1);
  clock.advance(4s);
  REQUIRE(q.try_pop());
  // Without events, a parked pod is retried after the timeout.
  q.unschedulable("p");
  clock.advance(59s);
  CHECK_FALSE(q.try_pop());
  clock.advance(1s);
  REQUIRE(q.try_pop());
  CHECK(q.backoff_for(1) == 1s);
  CHECK(q.backoff_for(4) == 8s);
  CHECK(q.backoff_for(10) == 10s);
}

TEST_CASE("queue: a failed binding retries after back-off; an update of a parked pod too") {
  client::FakeClock clock;
  SchedulingQueue q({.clock = &clock});
  q.add("p");
  REQUIRE(q.try_pop());
  q.done("p");     // assumed, binding sent
  q.backoff("p");  // binding failed
  CHECK(q.num_backoff() == 1);
  CHECK_FALSE(q.try_pop());
  clock.advance(1s);
  REQUIRE(q.try_pop());
  q.unschedulable("p");
  q.add("p");  // the pod changed (say, a toleration added)
  CHECK(q.num_unschedulable() == 0);
  clock.advance(2s);
  REQUIRE(q.try_pop());
  q.done("p");
  q.remove("p");
  CHECK(q.num_active() + q.num_backoff() + q.num_unschedulable() == 0);
}

TEST_CASE("find_node: spreading with assumed pods, round-robin start, feasible-node limit") {
  Cache c;
  for (const char* n : {"a", "b", "c"}) c.upsert_node(node(n, 8000));
  std::mt19937_64 rng(7);
  size_t start = 0;
  std::map<std::string, int> per_node;
  for (int i = 0; i < 6; ++i) {
    PodInfo p = pod_with_cpu("p" + std::to_string(i), "100m", "rs");
    Placement pl;
    c.with_nodes(
        [&](const std::vector<const NodeInfo*>& ns) { pl = find_node(p, ns, 0, start, rng); });
    REQUIRE_FALSE(pl.node.empty());
    c.assume(p, pl.node);  // as the scheduler does before the binding is seen
    ++per_node[pl.node];
  }
  CHECK(per_node == std::map<std::string, int>{{"a", 2}, {"b", 2}, {"c", 2}});

  // No fit: the message counts every node's first failing filter.
  PodInfo huge = pod_with_cpu("huge", "9");
  Placement pl;
  c.with_nodes(
      [&](const std::vector<const NodeInfo*>& ns) { pl = find_node(huge, ns, 0, start, rng); });
  CHECK(pl.node.empty());
  CHECK(pl.message == "0/3 nodes are available: 3 Insufficient cpu.");
  std::vector<const NodeInfo*> none;
  CHECK(find_node(huge, none, 0, start, rng).message == "no nodes available to schedule pods");

  // 1,000 nodes: 420 looked at per pod (adaptive 42%), the next pod starts after them.
  std::vector<NodeInfo> many(1000, node("x"));
  std::vector<const NodeInfo*> ptrs;
  for (size_t i = 0; i < many.size(); ++i) {
    many[i].name = "n" + std::to_string(i);
    ptrs.push_back(&many[i]);
  }
  size_t s = 990;
  Placement first = find_node(pod("p"), ptrs, 0, s, rng);
  CHECK(first.evaluated == 420);
  CHECK(s == (990 + 420) % 1000);
  // Infeasible nodes do not count toward the limit.
  for (size_t i = 0; i < 500; ++i) many[i].ready = false;
  s = 0;
  Placement second = find_node(pod("p"), ptrs, 0, s, rng);
  CHECK(second.evaluated == 920);
  CHECK(std::stoi(second.node.substr(1)) >= 500);
}
