// Prober: per container instance and probe kind, a schedule and Kubernetes' threshold logic
// (pkg/kubelet/prober/worker.go). A timer thread hands due checks to a few worker threads, so a
// check that blocks until its timeout delays no other.
#include "kubelet/probes/prober.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <thread>

namespace skiff::probes {
namespace {

class RealClock : public Clock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }
};

// The API server defaults these, but a pod built in code (tests, static pods) may not be.
proto::Probe with_defaults(proto::Probe p) {
  if (p.timeout_seconds <= 0) p.timeout_seconds = 1;
  if (p.period_seconds <= 0) p.period_seconds = 10;
  if (p.success_threshold <= 0) p.success_threshold = 1;
  if (p.failure_threshold <= 0) p.failure_threshold = 3;
  if (p.initial_delay_seconds < 0) p.initial_delay_seconds = 0;
  return p;
}

struct Spec {
  proto::Container container;
  Target target;
};

struct ProbeState {
  Kind kind;
  proto::Probe probe;
  Result result;                   // published, after thresholds
  Result last = Result::kUnknown;  // last raw result and how many times in a row
  int run = 0;
  Clock::time_point next;
  bool in_flight = false;
  bool on_hold = false;  // liveness/startup failed: the container is being replaced
};

struct Instance {
  std::string pod_uid;
  uint64_t epoch = 0;  // tells a re-added container_id from the one a check was started for
  bool started = true;
  std::shared_ptr<const Spec> spec;
  std::vector<ProbeState> probes;
  ProbeState* find(Kind k) {
    for (auto& p : probes)
      if (p.kind == k) return &p;
    return nullptr;
  }
};

struct Job {
  std::string container_id;
  uint64_t epoch;
  Kind kind;
  proto::Probe probe;
  std::shared_ptr<const Spec> spec;
  Clock::time_point started;
};

struct Notice {
  std::string pod_uid, container;
  Kind kind;
  Result result;
  std::string message;
};

}  // namespace

const Clock& Clock::real() {
  static const RealClock clock;
  return clock;
}

Clock::time_point FakeClock::now() const {
  std::lock_guard<std::mutex> l(mu_);
  return now_;
}

void FakeClock::advance(std::chrono::nanoseconds d) {
  std::lock_guard<std::mutex> l(mu_);
  now_ += std::chrono::duration_cast<std::chrono::steady_clock::duration>(d);
}

struct Prober::Impl {
  OnChange on_change;
  ProberOptions opts;
  const Clock& clock;
  CheckFn check;

  mutable std::mutex mu;
  std::condition_variable timer_cv, work_cv;
  std::map<std::string, Instance> instances;  // by container_id
  std::deque<Job> queue;
  bool stop = false;
  uint64_t next_epoch = 1;
  std::thread timer;
  std::vector<std::thread> workers;

  Impl(OnChange cb, ProberOptions o)
      : on_change(std::move(cb)),
        opts(std::move(o)),
        clock(opts.clock ? *opts.clock : Clock::real()),
        check(opts.check ? opts.check : CheckFn(run_once)) {}

  static bool eligible(const Instance& inst, const ProbeState& st) {
    return st.kind == Kind::kStartup ? !inst.started : inst.started;
  }

  // Marks due checks in flight and returns them; `earliest` gets the next due time of the rest.
  std::vector<Job> collect_due_locked(Clock::time_point now, Clock::time_point& earliest) {
    std::vector<Job> jobs;
    for (auto& [id, inst] : instances) {
      for (auto& st : inst.probes) {
        if (st.in_flight || st.on_hold || !eligible(inst, st)) continue;
        if (st.next > now) {
          earliest = std::min(earliest, st.next);
          continue;
        }
        st.in_flight = true;
        jobs.push_back(Job{id, inst.epoch, st.kind, st.probe, inst.spec, now});
      }
    }
    return jobs;
  }

  // Kubernetes' worker.doProbe after the check: Unknown is thrown away; a result counts only once
  // it was seen failureThreshold/successThreshold times in a row.
  void apply_locked(Instance& inst, ProbeState& st, const Outcome& o, Clock::time_point now,
                    std::vector<Notice>& notices) {
    Result r = o.result;
    if (r == Result::kUnknown) return;
    if (st.last == r) {
      ++st.run;
    } else {
      st.last = r;
      st.run = 1;
    }
    if ((r == Result::kFailure && st.run < st.probe.failure_threshold) ||
        (r == Result::kSuccess && st.run < st.probe.success_threshold))
      return;
    bool changed = st.result != r;
    st.result = r;
    Notice n{inst.pod_uid, inst.spec->container.name, st.kind, r, o.message};
    if (st.kind == Kind::kStartup && r == Result::kSuccess) {
      inst.started = true;
      // Liveness and readiness were waiting for this; their delays may have passed long ago.
      for (auto& other : inst.probes) other.next = std::max(other.next, now);
    }
    if ((st.kind == Kind::kLiveness || st.kind == Kind::kStartup) && r == Result::kFailure) {
      // The kubelet restarts the container; probing this instance again could only race with that
      // (Kubernetes puts the worker on hold until a new container ID shows up).
      st.on_hold = true;
      st.run = 0;
      notices.push_back(std::move(n));
    } else if (changed) {
      notices.push_back(std::move(n));
    }
  }

  void execute(const Job& job) {
    Outcome o = check(job.probe, job.spec->container, job.spec->target);
    std::vector<Notice> notices;
    {
      std::lock_guard<std::mutex> l(mu);
      auto it = instances.find(job.container_id);
      if (it == instances.end() || it->second.epoch != job.epoch) return;  // removed meanwhile
      Instance& inst = it->second;
      ProbeState* st = inst.find(job.kind);
      if (!st) return;
      st->in_flight = false;
      auto now = clock.now();
      st->next = std::max(job.started + std::chrono::seconds(st->probe.period_seconds), now);
      apply_locked(inst, *st, o, now, notices);
    }
    timer_cv.notify_one();
    if (on_change)
      for (const auto& n : notices) on_change(n.pod_uid, n.container, n.kind, n.result, n.message);
  }

  void timer_loop() {
    // A fake clock moves without telling us: poll it often. The real one: sleep until due (capped,
    // so a clock jump or a missed wake-up costs at most a second).
    const auto cap =
        &clock == &Clock::real() ? std::chrono::milliseconds(1000) : std::chrono::milliseconds(5);
    std::unique_lock<std::mutex> l(mu);
    while (!stop) {
      auto now = clock.now();
      auto earliest = Clock::time_point::max();
      for (auto& job : collect_due_locked(now, earliest)) {
        queue.push_back(std::move(job));
        work_cv.notify_one();
      }
      auto wait = earliest == Clock::time_point::max()
                      ? std::chrono::duration_cast<std::chrono::milliseconds>(cap)
                      : std::chrono::duration_cast<std::chrono::milliseconds>(earliest - now) +
                            std::chrono::milliseconds(1);
      timer_cv.wait_for(l, std::min<std::chrono::milliseconds>(wait, cap));
    }
  }

  void worker_loop() {
    std::unique_lock<std::mutex> l(mu);
    for (;;) {
      work_cv.wait(l, [&] { return stop || !queue.empty(); });
      if (stop) return;
      Job job = std::move(queue.front());
      queue.pop_front();
      l.unlock();
      execute(job);
      l.lock();
    }
  }
};

Prober::Prober(OnChange on_change, ProberOptions options)
    : impl_(std::make_unique<Impl>(std::move(on_change), std::move(options))) {
  if (impl_->opts.manual) return;
  int n = std::max(1, impl_->opts.workers);
  for (int i = 0; i < n; ++i) impl_->workers.emplace_back([this] { impl_->worker_loop(); });
  impl_->timer = std::thread([this] { impl_->timer_loop(); });
}

Prober::~Prober() {
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    impl_->stop = true;
  }
  impl_->timer_cv.notify_all();
  impl_->work_cv.notify_all();
  if (impl_->timer.joinable()) impl_->timer.join();
  for (auto& w : impl_->workers) w.join();
}

void Prober::add(const std::string& pod_uid, const std::string& container_id,
                 const proto::Container& container, const Target& target) {
  Instance inst;
  inst.pod_uid = pod_uid;
  inst.spec = std::make_shared<const Spec>(Spec{container, target});
  inst.started = !container.startup_probe.has_value();
  auto now = impl_->clock.now();
  auto push = [&](Kind kind, const std::optional<proto::Probe>& p, Result initial) {
    if (!p) return;
    ProbeState st{kind, with_defaults(*p), initial};
    st.next = now + std::chrono::seconds(st.probe.initial_delay_seconds);
    inst.probes.push_back(std::move(st));
  };
  push(Kind::kStartup, container.startup_probe, Result::kUnknown);
  push(Kind::kLiveness, container.liveness_probe, Result::kSuccess);
  push(Kind::kReadiness, container.readiness_probe, Result::kFailure);
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    inst.epoch = impl_->next_epoch++;
    impl_->instances[container_id] = std::move(inst);
  }
  impl_->timer_cv.notify_one();
}

void Prober::remove_container(const std::string& container_id) {
  std::lock_guard<std::mutex> l(impl_->mu);
  impl_->instances.erase(container_id);
}

void Prober::remove_pod(const std::string& pod_uid) {
  std::lock_guard<std::mutex> l(impl_->mu);
  std::erase_if(impl_->instances, [&](const auto& kv) { return kv.second.pod_uid == pod_uid; });
}

Result Prober::result(const std::string& container_id, Kind kind) const {
  std::lock_guard<std::mutex> l(impl_->mu);
  auto it = impl_->instances.find(container_id);
  if (it == impl_->instances.end()) return Result::kSuccess;
  auto* st = const_cast<Instance&>(it->second).find(kind);
  return st ? st->result : Result::kSuccess;
}

void Prober::run_due() {
  // Bounded: each pass runs only what is due now, and a check's next run is a period away.
  for (int pass = 0; pass < 100; ++pass) {
    std::vector<Job> jobs;
    {
      std::lock_guard<std::mutex> l(impl_->mu);
      auto earliest = Clock::time_point::max();
      jobs = impl_->collect_due_locked(impl_->clock.now(), earliest);
    }
    if (jobs.empty()) return;
    for (const auto& job : jobs) impl_->execute(job);
  }
}

}  // namespace skiff::probes
