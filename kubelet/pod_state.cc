#include "kubelet/pod_state.h"

#include <algorithm>
#include <cstdlib>

#include "kubelet/container_config.h"
#include "proto/time.h"

namespace skiff::kubelet {

namespace {

TimePoint from_ns(int64_t ns) {
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(std::chrono::nanoseconds(ns)));
}

proto::Time time_ns(int64_t ns) {
  // API times are whole seconds (metav1.Time).
  auto t = std::chrono::time_point_cast<std::chrono::seconds>(from_ns(ns));
  return proto::Time::at(t);
}

// Go's time.Duration.String() for whole seconds: "10s", "1m20s", "5m0s".
std::string go_duration(std::chrono::milliseconds d) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (s < 60) return std::to_string(s) + "s";
  auto m = s / 60;
  s %= 60;
  if (m < 60) return std::to_string(m) + "m" + std::to_string(s) + "s";
  return std::to_string(m / 60) + "h" + std::to_string(m % 60) + "m" + std::to_string(s) + "s";
}

bool should_restart(const std::string& policy, const Instance& l) {
  if (policy == "Never") return false;
  if (policy == "OnFailure") return l.state.exit_code != 0 || l.state.reason == "StartError";
  return true;  // Always (the default)
}

bool init_succeeded(const Instance& l) {
  return l.exited() && l.state.exit_code == 0 && l.state.reason != "StartError";
}

}  // namespace

Instance instance_from(const runtime::ContainerState& s) {
  Instance i;
  i.state = s;
  auto get = [&](const char* k) -> std::string {
    auto it = s.labels.find(k);
    return it == s.labels.end() ? std::string() : it->second;
  };
  i.name = get(runtime::kLabelContainerName);
  i.attempt = std::atoi(get(runtime::kLabelAttempt).c_str());
  i.init = get(runtime::kLabelInit) == "true";
  i.hash = get(runtime::kLabelSpecHash);
  i.image_ref = get(kLabelImageRef);
  i.image_id = get(kLabelImageId);
  return i;
}

Observed::Observed(const std::vector<Instance>& all) {
  for (const auto& i : all) {
    auto& l = latest[i.name];
    if (!l || i.attempt > l->attempt ||
        (i.attempt == l->attempt && i.state.created_at_ns > l->state.created_at_ns)) {
      if (l) previous[i.name] = l;
      l = &i;
    } else {
      auto& p = previous[i.name];
      if (!p || i.attempt > p->attempt) p = &i;
    }
  }
  for (auto it = previous.begin(); it != previous.end();)
    it = it->second ? std::next(it) : previous.erase(it);
}

PodPlan plan_pod(const proto::Pod& pod, const std::vector<Instance>& instances,
                 const Backoff& backoff, TimePoint now) {
  PodPlan plan;
  Observed obs(instances);
  const std::string& uid = pod.metadata.uid;
  const std::string policy =
      pod.spec.restart_policy.empty() ? std::string("Always") : pod.spec.restart_policy;

  std::map<std::string, const proto::Container*> spec;
  for (const auto& c : pod.spec.init_containers) spec[c.name] = &c;
  for (const auto& c : pod.spec.containers) spec[c.name] = &c;

  // Running instances that are not the current one of a container in the spec.
  for (const auto& i : instances) {
    if (!i.running()) continue;
    auto it = spec.find(i.name);
    if (it == spec.end())
      plan.kill.push_back({i.state.id, i.name, "Container " + i.name + " is not in the pod spec"});
    else if (obs.latest[i.name] != &i)
      plan.kill.push_back({i.state.id, i.name, "Container " + i.name + " has a newer instance"});
  }

  // Restart `c` (whose latest instance `l` ended) unless it is in back-off.
  auto restart = [&](const proto::Container& c, const Instance& l, bool init) {
    std::string key = uid + "/" + c.name;
    TimePoint finished = from_ns(l.state.finished_at_ns);
    if (backoff.in_backoff(key, finished, now)) {
      plan.backoff[c.name] = "back-off " + go_duration(backoff.current(key)) +
                             " restarting failed container=" + c.name +
                             " pod=" + pod.metadata.name + "_" + pod.metadata.namespace_ + "(" +
                             uid + ")";
      TimePoint until = backoff.until(key, finished);
      if (!plan.resync_at || until < *plan.resync_at) plan.resync_at = until;
      return;
    }
    plan.start.push_back({c.name, init, l.attempt + 1, true});
  };

  bool regular_seen = false;
  for (const auto& c : pod.spec.containers)
    if (obs.latest.count(c.name)) regular_seen = true;

  plan.init_done = true;
  if (!regular_seen) {
    for (const auto& c : pod.spec.init_containers) {
      auto it = obs.latest.find(c.name);
      if (it == obs.latest.end()) {
        plan.start.push_back({c.name, true, 0, false});
        plan.init_done = false;
        break;
      }
      const Instance& l = *it->second;
      if (init_succeeded(l)) continue;
      plan.init_done = false;
      if (l.running()) break;
      if (policy == "Never") {
        plan.init_failed = true;
        plan.finished = true;
        break;
      }
      restart(c, l, true);
      break;
    }
  }
  if (!plan.init_done) return plan;

  bool all_done = !pod.spec.containers.empty();
  for (const auto& c : pod.spec.containers) {
    auto it = obs.latest.find(c.name);
    if (it == obs.latest.end()) {
      plan.start.push_back({c.name, false, 0, false});
      all_done = false;
      continue;
    }
    const Instance& l = *it->second;
    if (l.running()) {
      all_done = false;
      if (!l.hash.empty() && l.hash != container_hash(c))
        plan.kill.push_back(
            {l.state.id, c.name, "Container " + c.name + " definition changed, will be restarted"});
      continue;
    }
    if (!should_restart(policy, l)) continue;
    all_done = false;
    restart(c, l, false);
  }
  plan.finished = all_done;
  return plan;
}

namespace {

proto::ContainerStateTerminated terminated_of(const Instance& l) {
  proto::ContainerStateTerminated t;
  t.exit_code = l.state.exit_code;
  t.signal = l.state.signal;
  t.reason = l.state.reason;
  if (t.reason.empty()) t.reason = l.state.exit_code == 0 ? "Completed" : "Error";
  if (l.state.oom_killed) t.reason = "OOMKilled";
  t.message = l.state.message;
  if (l.state.started_at_ns) t.started_at = time_ns(l.state.started_at_ns);
  if (l.state.finished_at_ns) t.finished_at = time_ns(l.state.finished_at_ns);
  t.container_id = "skiff://" + l.state.id;
  return t;
}

proto::ContainerStatus container_status(const StatusInput& in, const Observed& obs,
                                        const proto::Container& c, bool init) {
  proto::ContainerStatus cs;
  cs.name = c.name;
  cs.image = c.image;
  auto li = obs.latest.find(c.name);
  const Instance* l = li == obs.latest.end() ? nullptr : li->second;
  auto pi = obs.previous.find(c.name);
  const Instance* p = pi == obs.previous.end() ? nullptr : pi->second;
  auto waiting = in.waiting.find(c.name);
  cs.started = false;

  if (l) {
    if (!l->image_ref.empty()) cs.image = l->image_ref;
    cs.image_id = l->image_id;
    cs.container_id = "skiff://" + l->state.id;
    cs.restart_count = l->attempt;
  }
  if (l && l->running()) {
    proto::ContainerStateRunning r;
    r.started_at =
        time_ns(l->state.started_at_ns ? l->state.started_at_ns : l->state.created_at_ns);
    cs.state.running = r;
    if (p && p->exited()) cs.last_state.terminated = terminated_of(*p);
    bool started = !in.started || in.started(l->state.id);
    cs.started = started;
    cs.ready = !init && started && (!in.ready || in.ready(l->state.id));
    return cs;
  }
  if (l) {  // exited
    const std::string* bo = nullptr;
    if (in.plan) {
      auto it = in.plan->backoff.find(c.name);
      if (it != in.plan->backoff.end()) bo = &it->second;
    }
    if (bo) {
      cs.state.waiting = proto::ContainerStateWaiting{"CrashLoopBackOff", *bo};
      cs.last_state.terminated = terminated_of(*l);
    } else if (waiting != in.waiting.end()) {
      cs.state.waiting =
          proto::ContainerStateWaiting{waiting->second.reason, waiting->second.message};
      cs.last_state.terminated = terminated_of(*l);
    } else {
      cs.state.terminated = terminated_of(*l);
      if (p && p->exited()) cs.last_state.terminated = terminated_of(*p);
    }
    return cs;
  }
  if (waiting != in.waiting.end())
    cs.state.waiting =
        proto::ContainerStateWaiting{waiting->second.reason, waiting->second.message};
  else if (!init && in.plan && !in.plan->init_done)
    cs.state.waiting = proto::ContainerStateWaiting{"PodInitializing", ""};
  else
    cs.state.waiting = proto::ContainerStateWaiting{"ContainerCreating", ""};
  return cs;
}

proto::PodCondition condition(const proto::PodStatus& old, const std::string& type, bool ok,
                              const std::string& reason, const std::string& message,
                              TimePoint now) {
  proto::PodCondition c;
  c.type = type;
  c.status = ok ? "True" : "False";
  if (!ok) {
    c.reason = reason;
    c.message = message;
  }
  c.last_transition_time = proto::Time::at(std::chrono::time_point_cast<std::chrono::seconds>(now));
  for (const auto& o : old.conditions)
    if (o.type == type && o.status == c.status) c.last_transition_time = o.last_transition_time;
  return c;
}

std::string bracket_list(const std::vector<std::string>& names) {
  std::string s = "[";
  for (size_t i = 0; i < names.size(); ++i) s += (i ? " " : "") + names[i];
  return s + "]";
}

}  // namespace

std::string pod_phase(const proto::PodSpec& spec, const std::vector<proto::ContainerStatus>& init,
                      const std::vector<proto::ContainerStatus>& regular, bool init_failed) {
  auto find = [](const std::vector<proto::ContainerStatus>& v,
                 const std::string& n) -> const proto::ContainerStatus* {
    for (const auto& s : v)
      if (s.name == n) return &s;
    return nullptr;
  };
  const std::string policy = spec.restart_policy.empty() ? "Always" : spec.restart_policy;
  int pending_init = 0, failed_init = 0;
  for (const auto& c : spec.init_containers) {
    const auto* s = find(init, c.name);
    if (!s || s->state.running) {
      ++pending_init;
    } else if (s->state.terminated) {
      if (s->state.terminated->exit_code != 0) ++failed_init;
    } else if (s->last_state.terminated) {
      if (s->last_state.terminated->exit_code != 0) ++failed_init;
    } else {
      ++pending_init;
    }
  }
  int unknown = 0, running = 0, waiting = 0, stopped = 0, succeeded = 0;
  for (const auto& c : spec.containers) {
    const auto* s = find(regular, c.name);
    if (!s) {
      ++unknown;
    } else if (s->state.running) {
      ++running;
    } else if (s->state.terminated) {
      ++stopped;
      if (s->state.terminated->exit_code == 0) ++succeeded;
    } else if (s->state.waiting) {
      if (s->last_state.terminated)
        ++stopped;
      else
        ++waiting;
    } else {
      ++unknown;
    }
  }
  if ((failed_init > 0 && policy == "Never") || init_failed) return "Failed";
  if (pending_init > 0 || waiting > 0) return "Pending";
  if (running > 0 && unknown == 0) return "Running";
  if (running == 0 && stopped > 0 && unknown == 0) {
    if (policy == "Always") return "Running";
    if (stopped == succeeded) return "Succeeded";
    if (policy == "Never") return "Failed";
    return "Running";
  }
  return "Pending";
}

std::optional<TimePoint> active_deadline(const proto::Pod& pod,
                                         const std::optional<proto::Time>& start_time) {
  if (!pod.spec.active_deadline_seconds || !start_time || start_time->is_zero())
    return std::nullopt;
  return proto::plus_seconds(start_time->value, *pod.spec.active_deadline_seconds);
}

void apply_active_deadline(PodPlan& plan, const proto::Pod& pod,
                           const std::vector<Instance>& instances,
                           const std::optional<proto::Time>& start_time, TimePoint now) {
  auto deadline = active_deadline(pod, start_time);
  if (!deadline) return;
  if (now < *deadline) {
    if (!plan.resync_at || *deadline < *plan.resync_at) plan.resync_at = *deadline;
    return;
  }
  plan.deadline_exceeded = true;
  plan.start.clear();
  plan.backoff.clear();
  plan.resync_at.reset();
  for (const auto& i : instances) {
    if (!i.running()) continue;
    bool planned = false;
    for (const auto& k : plan.kill) planned |= k.id == i.state.id;
    if (!planned) plan.kill.push_back({i.state.id, i.name, "Stopping container " + i.name});
  }
  plan.finished = plan.kill.empty();
}

proto::PodStatus compute_status(const StatusInput& in) {
  const proto::Pod& pod = *in.pod;
  Observed obs(*in.instances);
  proto::PodStatus st;
  const proto::PodStatus& old = pod.status;
  for (const auto& c : pod.spec.init_containers)
    st.init_container_statuses.push_back(container_status(in, obs, c, true));
  for (const auto& c : pod.spec.containers)
    st.container_statuses.push_back(container_status(in, obs, c, false));
  bool init_failed = in.plan && in.plan->init_failed;
  st.phase = pod_phase(pod.spec, st.init_container_statuses, st.container_statuses, init_failed);
  const bool deadline = in.plan && in.plan->deadline_exceeded;
  if (deadline) st.phase = "Failed";

  std::vector<std::string> incomplete, unready;
  bool init_done = in.plan ? in.plan->init_done : true;
  if (!init_done)
    for (const auto& s : st.init_container_statuses)
      if (!(s.state.terminated && s.state.terminated->exit_code == 0)) incomplete.push_back(s.name);
  for (const auto& s : st.container_statuses)
    if (!s.ready) unready.push_back(s.name);
  bool completed = st.phase == "Succeeded" || st.phase == "Failed";
  std::string not_ready_reason = completed ? "PodCompleted" : "ContainersNotReady";
  std::string not_ready_msg =
      completed ? "" : "containers with unready status: " + bracket_list(unready);
  // Readiness gates: the named conditions (written by others) must be True too.
  bool gates_ok = true;
  std::vector<std::string> missing_gates;
  for (const auto& g : pod.spec.readiness_gates) {
    bool ok = false;
    for (const auto& c : old.conditions)
      if (c.type == g.condition_type && c.status == "True") ok = true;
    if (!ok) {
      gates_ok = false;
      missing_gates.push_back(g.condition_type);
    }
  }
  bool containers_ready = unready.empty() && !completed;
  std::string ready_reason = not_ready_reason, ready_msg = not_ready_msg;
  if (containers_ready && !gates_ok) {
    ready_reason = "ReadinessGatesNotReady";
    ready_msg = "corresponding condition of pod readiness gate \"" + missing_gates[0] +
                "\" does not exist.";
  }

  st.conditions.push_back(
      condition(old, "Initialized", init_done && !init_failed, "ContainersNotInitialized",
                "containers with incomplete status: " + bracket_list(incomplete), in.now));
  st.conditions.push_back(
      condition(old, "Ready", containers_ready && gates_ok, ready_reason, ready_msg, in.now));
  st.conditions.push_back(
      condition(old, "ContainersReady", containers_ready, not_ready_reason, not_ready_msg, in.now));
  st.conditions.push_back(condition(old, "PodScheduled", true, "", "", in.now));
  // Conditions others own (readiness gates, DisruptionTarget, ...) are kept.
  for (const auto& c : old.conditions)
    if (c.type != "Initialized" && c.type != "Ready" && c.type != "ContainersReady" &&
        c.type != "PodScheduled")
      st.conditions.push_back(c);

  st.host_ip = in.host_ip;
  if (!in.host_ip.empty()) st.host_ips.push_back({in.host_ip});
  st.pod_ip = in.pod_ip;
  if (!in.pod_ip.empty()) st.pod_ips.push_back({in.pod_ip});
  st.start_time = in.start_time;
  st.qos_class = old.qos_class;
  st.reason = deadline ? kDeadlineExceeded : in.pod_reason;
  st.message = deadline ? kDeadlineMessage : in.pod_message;
  st.nominated_node_name = old.nominated_node_name;
  return st;
}

bool status_changed(const proto::PodStatus& a, const proto::PodStatus& b) {
  return proto::encode(a) != proto::encode(b);
}

}  // namespace skiff::kubelet
