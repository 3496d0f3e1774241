// Unit tests of the kubelet's pure logic: argv/env building, back-off, restart
// decisions and status computation, driven by a fake ContainerRuntime.
#include <atomic>
#include <catch2/catch.hpp>
#include <limits>
#include <thread>

#include "kubelet/backoff.h"
#include "kubelet/container_config.h"
#include "kubelet/pod_state.h"
#include "kubelet/pod_workers.h"

using namespace skiff;
using namespace skiff::kubelet;
using std::chrono::seconds;

namespace {

proto::Pod make_pod(const std::string& policy = "Always") {
  proto::Pod p;
  p.metadata.name = "web";
  p.metadata.namespace_ = "default";
  p.metadata.uid = "u1";
  p.metadata.labels["app"] = "web";
  p.spec.restart_policy = policy;
  p.spec.node_name = "n1";
  proto::Container c;
  c.name = "main";
  c.image = "busybox:1.35";
  p.spec.containers.push_back(c);
  return p;
}

// A ContainerRuntime that only remembers what it was told.
class FakeContainerRuntime : public runtime::ContainerRuntime {
 public:
  int64_t clock_ns = 1'700'000'000'000'000'000;
  std::map<std::string, runtime::ContainerState> states;
  int next_id = 0;

  Result<runtime::ContainerState> start(const runtime::ContainerConfig& cfg) override {
    runtime::ContainerState s;
    s.id = cfg.id.empty() ? "c" + std::to_string(next_id++) : cfg.id;
    s.labels = cfg.labels;
    s.created_at_ns = s.started_at_ns = (clock_ns += 1'000'000'000);
    if (!cfg.args.empty() && cfg.args[0] == "nope") {
      s.status = runtime::ContainerStatus::kExited;
      s.exit_code = 128;
      s.reason = "StartError";
      s.message = "exec: \"nope\": executable file not found in $PATH";
      s.finished_at_ns = s.started_at_ns;
    } else {
      s.status = runtime::ContainerStatus::kRunning;
      s.pid = 100 + next_id;
    }
    states[s.id] = s;
    return s;
  }
  void exit(const std::string& id, int code) {
    auto& s = states.at(id);
    s.status = runtime::ContainerStatus::kExited;
    s.exit_code = code;
    s.reason = code == 0 ? "Completed" : "Error";
    s.finished_at_ns = (clock_ns += 1'000'000'000);
  }
  Status signal(const std::string& id, int) override { return Status::ok(); }
  Result<runtime::ContainerState> inspect(const std::string& id) const override {
    auto it = states.find(id);
    if (it == states.end()) return Status::not_found(id);
    return it->second;
  }
  std::vector<runtime::ContainerState> list() const override {
    std::vector<runtime::ContainerState> v;
    for (const auto& [k, s] : states) v.push_back(s);
    return v;
  }
  Status remove(const std::string& id, std::chrono::milliseconds) override {
    states.erase(id);
    return Status::ok();
  }
  Result<runtime::ExecProcess> exec(const std::string&, const runtime::ExecOptions&) override {
    return Status::unavailable("no exec");
  }
  Result<int> wait_exec(const runtime::ExecProcess&, std::chrono::milliseconds) override {
    return Status::unavailable("no exec");
  }
  void on_exit(std::function<void(const std::string&)>) override {}

  std::vector<Instance> instances() const {
    std::vector<Instance> v;
    for (const auto& s : list()) v.push_back(instance_from(s));
    return v;
  }
};

// Starts what the plan says, as the Kubelet does (labels, attempt, back-off
// bookkeeping).
void apply(FakeContainerRuntime& rt, const proto::Pod& pod, const PodPlan& plan, Backoff& bo,
           TimePoint now) {
  for (const auto& s : plan.start) {
    const proto::Container* c = nullptr;
    for (const auto& x : pod.spec.init_containers)
      if (x.name == s.name) c = &x;
    for (const auto& x : pod.spec.containers)
      if (x.name == s.name) c = &x;
    runtime::ContainerConfig cfg;
    cfg.labels[runtime::kLabelPodUid] = pod.metadata.uid;
    cfg.labels[runtime::kLabelContainerName] = s.name;
    cfg.labels[runtime::kLabelAttempt] = std::to_string(s.attempt);
    cfg.labels[runtime::kLabelInit] = s.init ? "true" : "false";
    cfg.labels[runtime::kLabelSpecHash] = container_hash(*c);
    cfg.args = container_argv(*c, {}, {});
    if (s.restart) bo.next(pod.metadata.uid + "/" + s.name, now);
    (void)rt.start(cfg);
  }
}

std::string latest_id(const FakeContainerRuntime& rt, const std::string& name) {
  std::string id;
  int best = -1;
  for (const auto& i : rt.instances())
    if (i.name == name && i.attempt > best) {
      best = i.attempt;
      id = i.state.id;
    }
  return id;
}

proto::PodStatus status_of(const FakeContainerRuntime& rt, const proto::Pod& pod,
                           const PodPlan& plan, TimePoint now,
                           std::map<std::string, Waiting> waiting = {}) {
  auto inst = rt.instances();
  StatusInput in;
  in.pod = &pod;
  in.instances = &inst;
  in.plan = &plan;
  in.waiting = std::move(waiting);
  in.now = now;
  in.pod_ip = "10.244.0.5";
  in.host_ip = "10.0.0.1";
  return compute_status(in);
}

const proto::PodCondition* cond(const proto::PodStatus& s, const std::string& t) {
  for (const auto& c : s.conditions)
    if (c.type == t) return &c;
  return nullptr;
}

}  // namespace

TEST_CASE("expand_vars follows Kubernetes' expansion rules") {
  std::map<std::string, std::string> vars{{"A", "x"}, {"B", "y z"}};
  auto lookup = [&](const std::string& n) -> const std::string* {
    auto it = vars.find(n);
    return it == vars.end() ? nullptr : &it->second;
  };
  CHECK(expand_vars("$(A)", lookup) == "x");
  CHECK(expand_vars("pre-$(A)-$(B)-post", lookup) == "pre-x-y z-post");
  CHECK(expand_vars("$(MISSING)", lookup) == "$(MISSING)");
  CHECK(expand_vars("$$(A)", lookup) == "$(A)");
  CHECK(expand_vars("$$$(A)", lookup) == "$x");
  CHECK(expand_vars("$(A", lookup) == "$(A");
  CHECK(expand_vars("a$b", lookup) == "a$b");
  CHECK(expand_vars("end$", lookup) == "end$");
  CHECK(expand_vars("$()", lookup) == "$()");
  CHECK(expand_vars("", lookup) == "");
}

TEST_CASE(
    "command and args merge with the image's Entrypoint and Cmd as "
    "Kubernetes does") {
  images::ImageConfig img;
  img.entrypoint = {"/entry"};
  img.cmd = {"--default"};
  proto::Container c;
  CHECK(container_argv(c, img, {}) == std::vector<std::string>{"/entry", "--default"});
  c.args = {"--x"};
  CHECK(container_argv(c, img, {}) == std::vector<std::string>{"/entry", "--x"});
  c.command = {"/bin/sh", "-c"};
  c.args = {};
  CHECK(container_argv(c, img, {}) == std::vector<std::string>{"/bin/sh", "-c"});
  c.args = {"echo $(GREETING) $(NOPE)"};
  EnvList env{{"GREETING", "hi"}};
  CHECK(container_argv(c, img, env) ==
        std::vector<std::string>{"/bin/sh", "-c", "echo hi $(NOPE)"});
  images::ImageConfig none;
  proto::Container only_args;
  only_args.args = {"a"};
  CHECK(container_argv(only_args, none, {}) == std::vector<std::string>{"a"});
}

TEST_CASE("container_env: envFrom, env, valueFrom and expansion") {
  proto::Pod pod = make_pod();
  pod.metadata.annotations["team"] = "blue";
  pod.spec.service_account_name = "sa";
  auto& c = pod.spec.containers[0];
  c.resources.limits["memory"] = *proto::Quantity::parse("64Mi");
  c.resources.requests["cpu"] = *proto::Quantity::parse("250m");
  proto::EnvFromSource ef;
  ef.prefix = "CM_";
  ef.config_map_ref = proto::EnvRefSource{"cfg", {}};
  c.env_from.push_back(ef);
  auto add = [&](std::string n, std::string v) {
    proto::EnvVar e;
    e.name = std::move(n);
    e.value = std::move(v);
    c.env.push_back(e);
    return &c.env.back();
  };
  auto add_from = [&](std::string n, proto::EnvVarSource src) {
    proto::EnvVar e;
    e.name = std::move(n);
    e.value_from = std::move(src);
    c.env.push_back(e);
  };
  add("A", "a");
  add("B", "$(A)-$(CM_k1)-$(C)");  // C is defined later: stays literal
  add("C", "c");
  proto::EnvVarSource f;
  f.field_ref = proto::ObjectFieldSelector{"v1", "metadata.labels['app']"};
  add_from("APP", f);
  f.field_ref->field_path = "metadata.annotations['team']";
  add_from("TEAM", f);
  f.field_ref->field_path = "status.podIP";
  add_from("IP", f);
  f.field_ref->field_path = "spec.serviceAccountName";
  add_from("SA", f);
  proto::EnvVarSource r;
  r.resource_field_ref =
      proto::ResourceFieldSelector{"", "limits.memory", *proto::Quantity::parse("1Mi")};
  add_from("MEM", r);
  r.resource_field_ref =
      proto::ResourceFieldSelector{"", "requests.cpu", *proto::Quantity::parse("1m")};
  add_from("CPU", r);
  r.resource_field_ref = proto::ResourceFieldSelector{"", "limits.cpu", {}};
  add_from("CPU_LIMIT",
           r);  // no limit: node allocatable, in whole cores (rounded up)
  proto::EnvVarSource k;
  k.secret_key_ref = proto::KeySelector{"sec", "pw", {}};
  add_from("PW", k);

  EnvContext ctx;
  ctx.pod_ip = "10.244.0.9";
  ctx.node_cpu_millis = 1500;
  ctx.sources.config_map =
      [](const std::string& ns,
         const std::string& name) -> Result<std::map<std::string, std::string>> {
    if (name == "cfg") return std::map<std::string, std::string>{{"k1", "v1"}, {"bad key", "x"}};
    return Status::not_found("no");
  };
  ctx.sources.secret = [](const std::string&,
                          const std::string& name) -> Result<std::map<std::string, std::string>> {
    if (name == "sec") return std::map<std::string, std::string>{{"pw", "hunter2"}};
    return Status::not_found("no");
  };
  auto env = container_env(pod, c, ctx);
  REQUIRE(env.is_ok());
  std::map<std::string, std::string> m(env->begin(), env->end());
  CHECK(m["CM_k1"] == "v1");
  CHECK(m.count("CM_bad key") == 0);
  CHECK(m["B"] == "a-v1-$(C)");
  CHECK(m["APP"] == "web");
  CHECK(m["TEAM"] == "blue");
  CHECK(m["IP"] == "10.244.0.9");
  CHECK(m["SA"] == "sa");
  CHECK(m["MEM"] == "64");
  CHECK(m["CPU"] == "250");
  CHECK(m["CPU_LIMIT"] == "2");
  CHECK(m["PW"] == "hunter2");
  CHECK(env->front().first == "CM_k1");  // envFrom first

  SECTION("a missing configMap is a clear error") {
    c.env.push_back({});
    c.env.back().name = "X";
    c.env.back().value_from = proto::EnvVarSource{};
    c.env.back().value_from->config_map_key_ref = proto::KeySelector{"missing", "k", {}};
    auto bad = container_env(pod, c, ctx);
    REQUIRE_FALSE(bad.is_ok());
    CHECK(bad.status().message() == "configmap \"missing\" not found");
    c.env.back().value_from->config_map_key_ref->optional = true;
    CHECK(container_env(pod, c, ctx).is_ok());
  }
  SECTION("a missing key names the object") {
    c.env.push_back({});
    c.env.back().name = "X";
    c.env.back().value_from = proto::EnvVarSource{};
    c.env.back().value_from->config_map_key_ref = proto::KeySelector{"cfg", "nokey", {}};
    auto bad = container_env(pod, c, ctx);
    REQUIRE_FALSE(bad.is_ok());
    CHECK(bad.status().message() == "couldn't find key nokey in ConfigMap default/cfg");
  }
}

TEST_CASE("merge_env: image env first, container variables override in place") {
  auto out = merge_env({"PATH=/bin", "HOME=/root"}, {{"HOME", "/home/x"}, {"NEW", "1"}});
  CHECK(out == std::vector<std::string>{"PATH=/bin", "HOME=/home/x", "NEW=1"});
}

TEST_CASE("resources: container and pod cgroup limits") {
  proto::Pod pod = make_pod();
  pod.spec.containers[0].resources.limits["cpu"] = *proto::Quantity::parse("500m");
  pod.spec.containers[0].resources.limits["memory"] = *proto::Quantity::parse("64Mi");
  auto cr = container_resources(pod.spec.containers[0]);
  CHECK(cr.cpu_limit_millis == 500);
  CHECK(cr.cpu_request_millis == 500);
  CHECK(cr.memory_limit_bytes == 64 << 20);
  proto::Container side;
  side.name = "side";
  side.resources.limits["memory"] = *proto::Quantity::parse("32Mi");
  pod.spec.containers.push_back(side);
  auto pr = pod_resources(pod);
  CHECK(pr.memory_limit_bytes == 96 << 20);
  CHECK_FALSE(pr.cpu_limit_millis.has_value());  // side has no CPU limit
  CHECK(pr.cpu_request_millis == 500);
}

TEST_CASE("pull policy defaults") {
  proto::Container c;
  c.image = "busybox:1.35";
  CHECK(effective_pull_policy(c) == "IfNotPresent");
  c.image = "busybox";
  CHECK(effective_pull_policy(c) == "Always");
  c.image = "127.0.0.1:5000/x:latest";
  CHECK(effective_pull_policy(c) == "Always");
  c.image = "127.0.0.1:5000/x";
  CHECK(effective_pull_policy(c) == "Always");
  c.image_pull_policy = "Never";
  CHECK(effective_pull_policy(c) == "Never");
}

TEST_CASE("Backoff: first restart immediate, then 10s doubling to 5 min") {
  Backoff bo;
  auto t0 = std::chrono::system_clock::time_point(seconds(1000));
  CHECK_FALSE(bo.in_backoff("k", t0, t0));
  bo.next("k", t0);
  CHECK(bo.current("k") == seconds(10));
  CHECK(bo.in_backoff("k", t0, t0 + seconds(9)));
  CHECK_FALSE(bo.in_backoff("k", t0, t0 + seconds(10)));
  std::vector<int> seen;
  auto t = t0;
  for (int i = 0; i < 8; ++i) {
    t += seconds(1);
    bo.next("k", t);
    seen.push_back(static_cast<int>(std::chrono::duration_cast<seconds>(bo.current("k")).count()));
  }
  CHECK(seen == std::vector<int>{20, 40, 80, 160, 300, 300, 300, 300});
  // Untouched for more than 2*max: starts over.
  bo.next("k", t + std::chrono::minutes(11));
  CHECK(bo.current("k") == seconds(10));
  bo.next("u1/a", t);
  bo.next("u1/b", t);
  bo.reset_prefix("u1/");
  CHECK(bo.current("u1/a").count() == 0);
  CHECK(bo.current("k") == seconds(10));
}

TEST_CASE("plan and status: a running pod") {
  FakeContainerRuntime rt;
  Backoff bo;
  proto::Pod pod = make_pod();
  proto::Container side = pod.spec.containers[0];
  side.name = "side";
  pod.spec.containers.push_back(side);
  auto now = std::chrono::system_clock::now();
  auto plan = plan_pod(pod, rt.instances(), bo, now);
  REQUIRE(plan.start.size() == 2);
  CHECK(plan.init_done);
  auto st = status_of(rt, pod, plan, now);
  CHECK(st.phase == "Pending");
  CHECK(st.container_statuses[0].state.waiting->reason == "ContainerCreating");
  apply(rt, pod, plan, bo, now);
  plan = plan_pod(pod, rt.instances(), bo, now);
  CHECK(plan.start.empty());
  CHECK(plan.kill.empty());
  st = status_of(rt, pod, plan, now);
  CHECK(st.phase == "Running");
  CHECK(st.pod_ip == "10.244.0.5");
  CHECK(st.host_ips.size() == 1);
  REQUIRE(st.container_statuses.size() == 2);
  const auto& cs = st.container_statuses[0];
  CHECK(cs.state.running.has_value());
  CHECK(cs.ready);
  CHECK(cs.started == true);
  CHECK(cs.restart_count == 0);
  CHECK(cs.container_id.rfind("skiff://", 0) == 0);
  CHECK(cond(st, "Ready")->status == "True");
  CHECK(cond(st, "ContainersReady")->status == "True");
  CHECK(cond(st, "Initialized")->status == "True");
  CHECK(cond(st, "PodScheduled")->status == "True");
  // Computing again from the same facts changes nothing (no spurious writes).
  pod.status = st;
  auto again =
      status_of(rt, pod, plan_pod(pod, rt.instances(), bo, now + seconds(30)), now + seconds(30));
  CHECK_FALSE(status_changed(st, again));
}

TEST_CASE("readiness: an unready container keeps the pod out of Ready") {
  FakeContainerRuntime rt;
  Backoff bo;
  proto::Pod pod = make_pod();
  auto now = std::chrono::system_clock::now();
  apply(rt, pod, plan_pod(pod, rt.instances(), bo, now), bo, now);
  auto plan = plan_pod(pod, rt.instances(), bo, now);
  auto inst = rt.instances();
  StatusInput in;
  in.pod = &pod;
  in.instances = &inst;
  in.plan = &plan;
  in.now = now;
  in.ready = [](const std::string&) { return false; };
  auto st = compute_status(in);
  CHECK(st.phase == "Running");
  CHECK_FALSE(st.container_statuses[0].ready);
  CHECK(cond(st, "Ready")->status == "False");
  CHECK(cond(st, "Ready")->reason == "ContainersNotReady");
  CHECK(cond(st, "Ready")->message == "containers with unready status: [main]");
}

TEST_CASE("restartPolicy Always: crash, immediate restart, then CrashLoopBackOff") {
  FakeContainerRuntime rt;
  Backoff bo;
  proto::Pod pod = make_pod("Always");
  auto now = std::chrono::system_clock::now();
  apply(rt, pod, plan_pod(pod, rt.instances(), bo, now), bo, now);
  rt.exit(latest_id(rt, "main"), 1);
  auto plan = plan_pod(pod, rt.instances(), bo, now);
  REQUIRE(plan.start.size() == 1);
  CHECK(plan.start[0].attempt == 1);
  CHECK(plan.start[0].restart);
  apply(rt, pod, plan, bo, now);
  rt.exit(latest_id(rt, "main"), 2);
  auto finished = std::chrono::system_clock::time_point(
      std::chrono::nanoseconds(rt.states.at(latest_id(rt, "main")).finished_at_ns));
  plan = plan_pod(pod, rt.instances(), bo, finished + seconds(1));
  CHECK(plan.start.empty());
  REQUIRE(plan.backoff.count("main"));
  CHECK(plan.backoff["main"] ==
        "back-off 10s restarting failed container=main pod=web_default(u1)");
  REQUIRE(plan.resync_at.has_value());
  CHECK(*plan.resync_at == finished + seconds(10));
  auto st = status_of(rt, pod, plan, finished + seconds(1));
  const auto& cs = st.container_statuses[0];
  REQUIRE(cs.state.waiting.has_value());
  CHECK(cs.state.waiting->reason == "CrashLoopBackOff");
  REQUIRE(cs.last_state.terminated.has_value());
  CHECK(cs.last_state.terminated->exit_code == 2);
  CHECK(cs.last_state.terminated->reason == "Error");
  CHECK(cs.restart_count == 1);
  CHECK(st.phase == "Running");
  CHECK(cond(st, "Ready")->status == "False");
  // After the back-off: started again, and the next back-off doubles.
  plan = plan_pod(pod, rt.instances(), bo, finished + seconds(10));
  REQUIRE(plan.start.size() == 1);
  CHECK(plan.start[0].attempt == 2);
  apply(rt, pod, plan, bo, finished + seconds(10));
  CHECK(bo.current("u1/main") == seconds(20));
  st = status_of(rt, pod, plan_pod(pod, rt.instances(), bo, finished + seconds(10)), finished);
  CHECK(st.container_statuses[0].restart_count == 2);
  CHECK(st.container_statuses[0].last_state.terminated->exit_code == 2);
}

TEST_CASE("activeDeadlineSeconds: stopped and Failed with DeadlineExceeded once it passes") {
  FakeContainerRuntime rt;
  Backoff bo;
  proto::Pod pod = make_pod("Always");
  auto now = std::chrono::system_clock::now();
  auto start = proto::Time::at(std::chrono::floor<seconds>(now));
  // No deadline, or not started yet: nothing changes.
  auto plan = plan_pod(pod, rt.instances(), bo, now);
  apply_active_deadline(plan, pod, rt.instances(), start, now);
  CHECK_FALSE(plan.deadline_exceeded);
  CHECK_FALSE(active_deadline(pod, start));
  pod.spec.active_deadline_seconds = 30;
  CHECK_FALSE(active_deadline(pod, std::nullopt));
  REQUIRE(active_deadline(pod, start));
  CHECK(*active_deadline(pod, start) == start.value + seconds(30));

  // Before it: the plan runs as usual and looks again at the deadline.
  plan = plan_pod(pod, rt.instances(), bo, now);
  apply_active_deadline(plan, pod, rt.instances(), start, now);
  CHECK_FALSE(plan.deadline_exceeded);
  REQUIRE(plan.start.size() == 1);
  REQUIRE(plan.resync_at);
  CHECK(*plan.resync_at == start.value + seconds(30));
  apply(rt, pod, plan, bo, now);

  // At it: nothing starts, the running container stops, the pod is Failed.
  auto at = start.value + seconds(30);
  plan = plan_pod(pod, rt.instances(), bo, at);
  apply_active_deadline(plan, pod, rt.instances(), start, at);
  CHECK(plan.deadline_exceeded);
  CHECK(plan.start.empty());
  REQUIRE(plan.kill.size() == 1);
  CHECK(plan.kill[0].id == latest_id(rt, "main"));
  CHECK_FALSE(plan.resync_at);
  auto st = status_of(rt, pod, plan, at);
  CHECK(st.phase == "Failed");
  CHECK(st.reason == "DeadlineExceeded");
  CHECK(st.message == "Pod was active on the node longer than the specified deadline");
  CHECK(cond(st, "Ready")->status == "False");
  CHECK(cond(st, "Ready")->reason == "PodCompleted");

  // Once it has stopped (restartPolicy Always): not restarted, still Failed.
  rt.exit(latest_id(rt, "main"), 137);
  plan = plan_pod(pod, rt.instances(), bo, at + seconds(5));
  apply_active_deadline(plan, pod, rt.instances(), start, at + seconds(5));
  CHECK(plan.start.empty());
  CHECK(plan.kill.empty());
  CHECK(plan.finished);
  st = status_of(rt, pod, plan, at + seconds(5));
  CHECK(st.phase == "Failed");
  CHECK(st.container_statuses[0].state.terminated->exit_code == 137);

  // A deadline near int64's max is far away (it saturates instead of wrapping into the past).
  pod.spec.active_deadline_seconds = std::numeric_limits<int64_t>::max();
  plan = plan_pod(pod, rt.instances(), bo, at);
  apply_active_deadline(plan, pod, rt.instances(), start, at);
  CHECK_FALSE(plan.deadline_exceeded);
}

TEST_CASE("restartPolicy Never and OnFailure: Succeeded and Failed") {
  auto now = std::chrono::system_clock::now();
  for (std::string policy : {"Never", "OnFailure"}) {
    FakeContainerRuntime rt;
    Backoff bo;
    proto::Pod pod = make_pod(policy);
    apply(rt, pod, plan_pod(pod, rt.instances(), bo, now), bo, now);
    rt.exit(latest_id(rt, "main"), 0);
    auto plan = plan_pod(pod, rt.instances(), bo, now);
    CHECK(plan.start.empty());
    CHECK(plan.finished);
    auto st = status_of(rt, pod, plan, now);
    CHECK(st.phase == "Succeeded");
    CHECK(st.container_statuses[0].state.terminated->reason == "Completed");
    CHECK(cond(st, "Ready")->reason == "PodCompleted");
  }
  FakeContainerRuntime rt;
  Backoff bo;
  proto::Pod pod = make_pod("Never");
  apply(rt, pod, plan_pod(pod, rt.instances(), bo, now), bo, now);
  rt.exit(latest_id(rt, "main"), 3);
  auto plan = plan_pod(pod, rt.instances(), bo, now);
  CHECK(plan.finished);
  CHECK(status_of(rt, pod, plan, now).phase == "Failed");
  // OnFailure restarts a failure.
  proto::Pod of = make_pod("OnFailure");
  FakeContainerRuntime rt2;
  apply(rt2, of, plan_pod(of, rt2.instances(), bo, now), bo, now);
  rt2.exit(latest_id(rt2, "main"), 3);
  plan = plan_pod(of, rt2.instances(), bo, now);
  CHECK(plan.start.size() == 1);
  CHECK_FALSE(plan.finished);
}

TEST_CASE("init containers run in order before the app containers") {
  FakeContainerRuntime rt;
  Backoff bo;
  proto::Pod pod = make_pod("Always");
  proto::Container i1 = pod.spec.containers[0], i2 = pod.spec.containers[0];
  i1.name = "init1";
  i2.name = "init2";
  pod.spec.init_containers = {i1, i2};
  auto now = std::chrono::system_clock::now();
  auto plan = plan_pod(pod, rt.instances(), bo, now);
  REQUIRE(plan.start.size() == 1);
  CHECK(plan.start[0].name == "init1");
  CHECK(plan.start[0].init);
  auto st = status_of(rt, pod, plan, now);
  CHECK(st.phase == "Pending");
  CHECK(st.container_statuses[0].state.waiting->reason == "PodInitializing");
  CHECK(cond(st, "Initialized")->status == "False");
  CHECK(cond(st, "Initialized")->message == "containers with incomplete status: [init1 init2]");
  apply(rt, pod, plan, bo, now);
  CHECK(plan_pod(pod, rt.instances(), bo, now).start.empty());  // init1 still runs
  rt.exit(latest_id(rt, "init1"), 0);
  plan = plan_pod(pod, rt.instances(), bo, now);
  REQUIRE(plan.start.size() == 1);
  CHECK(plan.start[0].name == "init2");
  apply(rt, pod, plan, bo, now);
  rt.exit(latest_id(rt, "init2"),
          1);  // fails: restarted (policy Always), not the app
  plan = plan_pod(pod, rt.instances(), bo, now);
  REQUIRE(plan.start.size() == 1);
  CHECK(plan.start[0].name == "init2");
  CHECK(plan.start[0].attempt == 1);
  apply(rt, pod, plan, bo, now);
  rt.exit(latest_id(rt, "init2"), 0);
  plan = plan_pod(pod, rt.instances(), bo, now);
  REQUIRE(plan.start.size() == 1);
  CHECK(plan.start[0].name == "main");
  CHECK(plan.init_done);
  apply(rt, pod, plan, bo, now);
  st = status_of(rt, pod, plan_pod(pod, rt.instances(), bo, now), now);
  CHECK(st.phase == "Running");
  CHECK(cond(st, "Initialized")->status == "True");
  CHECK(st.init_container_statuses[1].restart_count == 1);
  CHECK(st.init_container_statuses[0].state.terminated->reason == "Completed");
}

TEST_CASE("a failed init container under Never fails the pod") {
  FakeContainerRuntime rt;
  Backoff bo;
  proto::Pod pod = make_pod("Never");
  proto::Container i1 = pod.spec.containers[0];
  i1.name = "init1";
  pod.spec.init_containers = {i1};
  auto now = std::chrono::system_clock::now();
  apply(rt, pod, plan_pod(pod, rt.instances(), bo, now), bo, now);
  rt.exit(latest_id(rt, "init1"), 7);
  auto plan = plan_pod(pod, rt.instances(), bo, now);
  CHECK(plan.init_failed);
  CHECK(plan.start.empty());
  auto st = status_of(rt, pod, plan, now);
  CHECK(st.phase == "Failed");
  CHECK(st.init_container_statuses[0].state.terminated->exit_code == 7);
}

TEST_CASE("a command that does not exist: StartError, then back-off") {
  FakeContainerRuntime rt;
  Backoff bo;
  proto::Pod pod = make_pod("Always");
  pod.spec.containers[0].command = {"nope"};
  auto now = std::chrono::system_clock::now();
  apply(rt, pod, plan_pod(pod, rt.instances(), bo, now), bo, now);
  auto plan = plan_pod(pod, rt.instances(), bo, now);
  auto st = status_of(rt, pod, plan, now);
  const auto& cs = st.container_statuses[0];
  // The first failure restarts at once (no back-off yet), so the status shows
  // the termination.
  REQUIRE(plan.start.size() == 1);
  REQUIRE(cs.state.terminated.has_value());
  CHECK(cs.state.terminated->reason == "StartError");
  CHECK(cs.state.terminated->message.find("executable file not found") != std::string::npos);
  apply(rt, pod, plan, bo, now);
  auto finished = std::chrono::system_clock::time_point(
      std::chrono::nanoseconds(rt.states.at(latest_id(rt, "main")).finished_at_ns));
  plan = plan_pod(pod, rt.instances(), bo, finished);
  CHECK(plan.backoff.count("main"));
}

TEST_CASE("waiting reasons from the sync appear in the status") {
  FakeContainerRuntime rt;
  Backoff bo;
  proto::Pod pod = make_pod();
  auto now = std::chrono::system_clock::now();
  auto plan = plan_pod(pod, rt.instances(), bo, now);
  auto st = status_of(rt, pod, plan, now,
                      {{"main", {"CreateContainerConfigError", "configmap \"x\" not found"}}});
  CHECK(st.phase == "Pending");
  CHECK(st.container_statuses[0].state.waiting->reason == "CreateContainerConfigError");
  CHECK(st.container_statuses[0].state.waiting->message == "configmap \"x\" not found");
}

TEST_CASE(
    "adoption: restartCount comes from the attempt label, stray "
    "instances are killed") {
  FakeContainerRuntime rt;
  Backoff bo;
  proto::Pod pod = make_pod();
  runtime::ContainerConfig cfg;
  cfg.args = {"sleep"};
  cfg.labels = {{runtime::kLabelPodUid, "u1"},
                {runtime::kLabelContainerName, "main"},
                {runtime::kLabelAttempt, "4"},
                {runtime::kLabelSpecHash, container_hash(pod.spec.containers[0])}};
  (void)rt.start(cfg);
  cfg.labels[runtime::kLabelContainerName] = "gone";
  (void)rt.start(cfg);
  auto now = std::chrono::system_clock::now();
  auto plan = plan_pod(pod, rt.instances(), bo, now);
  CHECK(plan.start.empty());
  REQUIRE(plan.kill.size() == 1);
  CHECK(plan.kill[0].name == "gone");
  auto st = status_of(rt, pod, plan, now);
  CHECK(st.container_statuses[0].restart_count == 4);
  CHECK(st.container_statuses[0].state.running.has_value());
  // A changed spec restarts the container.
  pod.spec.containers[0].image = "busybox:1.36";
  plan = plan_pod(pod, rt.instances(), bo, now);
  bool killed_main = false;
  for (const auto& k : plan.kill) killed_main |= k.name == "main";
  CHECK(killed_main);
}

TEST_CASE("pod_phase matches Kubernetes' getPhase") {
  proto::PodSpec spec;
  spec.restart_policy = "Always";
  spec.containers.resize(2);
  spec.containers[0].name = "a";
  spec.containers[1].name = "b";
  std::vector<proto::ContainerStatus> st(2);
  st[0].name = "a";
  st[1].name = "b";
  st[0].state.running = proto::ContainerStateRunning{};
  st[1].state.waiting = proto::ContainerStateWaiting{"ContainerCreating", ""};
  CHECK(pod_phase(spec, {}, st, false) == "Pending");
  st[1].state.waiting.reset();
  st[1].state.terminated = proto::ContainerStateTerminated{};
  st[1].state.terminated->exit_code = 1;
  CHECK(pod_phase(spec, {}, st, false) == "Running");
  st[0].state.running.reset();
  st[0].state.terminated = proto::ContainerStateTerminated{};
  CHECK(pod_phase(spec, {}, st, false) == "Running");  // Always: restarting
  spec.restart_policy = "Never";
  CHECK(pod_phase(spec, {}, st, false) == "Failed");
  st[1].state.terminated->exit_code = 0;
  CHECK(pod_phase(spec, {}, st, false) == "Succeeded");
  CHECK(pod_phase(spec, {}, {}, false) == "Pending");
}

TEST_CASE("PodWorkers: one sync at a time per key, bursts collapse") {
  std::mutex mu;
  std::map<std::string, int> runs;
  std::atomic<int> concurrent{0}, max_concurrent{0};
  std::atomic<bool> release{false};
  PodWorkers w(3, [&](const std::string& k) {
    if (k == "a") {
      int c = ++concurrent;
      max_concurrent = std::max(max_concurrent.load(), c);
    }
    while (k == "a" && !release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    {
      std::lock_guard l(mu);
      ++runs[k];
    }
    if (k == "a") --concurrent;
  });
  w.enqueue("a");
  // While "a" is being synced, more requests for it collapse into one extra
  // pass.
  for (int i = 0; i < 50 && w.pending() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (int i = 0; i < 10; ++i) w.enqueue("a");
  w.enqueue("b");
  w.enqueue_after("c", std::chrono::milliseconds(5));
  release = true;
  // Up to 20 s (not 2): the workers' threads may wait for a CPU on a busy CI machine.
  for (int i = 0; i < 20000 && w.pending() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  w.stop();
  std::lock_guard l(mu);
  CHECK(runs["a"] >= 1);
  CHECK(runs["a"] <= 2);
  CHECK(runs["b"] == 1);
  CHECK(runs["c"] == 1);
  CHECK(max_concurrent == 1);
}
