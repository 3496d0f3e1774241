// skiff-scheduler: places pending pods on nodes (see controllers/scheduler/README.md), leader
// elected through a Lease so several replicas can run.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>

#include "common/daemon/daemon.h"
#include "common/daemon/flags.h"
#include "controllers/scheduler/scheduler.h"
#include "proto/client/leader_election.h"

using namespace skiff;

namespace {

constexpr const char* kProgram = "skiff-scheduler";

int fail(const std::string& what) { return daemon::fail(kProgram, what); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"skiff-scheduler: assigns pending pods to nodes"};
  std::string kubeconfig, scheduler_name = "default-scheduler";
  int verbosity = 0, percentage = 0, binds = 64;
  daemon::LeaderElectionFlags lef;
  lef.lease_name = "skiff-scheduler";
  daemon::StatusFlags sf;
  sf.port = 10259;
  app.add_option("--kubeconfig", kubeconfig, "kubeconfig for the API server");
  app.add_option("--scheduler-name", scheduler_name,
                 "schedule pods whose spec.schedulerName is this (or empty)")
      ->capture_default_str();
  daemon::add_leader_election_flags(
      app, lef, "schedule only while holding the leader Lease (=false: always)");
  app.add_option("--percentage-of-nodes-to-score", percentage,
                 "stop filtering once this share of the nodes is feasible (0: adaptive, as "
                 "kube-scheduler; at least 100 nodes)")
      ->capture_default_str();
  app.add_option("--max-binds-in-flight", binds, "concurrent binding requests")
      ->capture_default_str();
  daemon::add_status_flags(app, sf);
  daemon::add_verbosity_flag(app, verbosity);
  if (auto rc = daemon::parse_flags(app, argc, argv)) return *rc;
  daemon::init_logging(kProgram, verbosity);

  client::LeaderElectionConfig le;
  if (auto s = daemon::parse_duration_flags(
          {{"--leader-elect-lease-duration", &lef.lease_duration, &le.lease_duration},
           {"--leader-elect-renew-deadline", &lef.renew_deadline, &le.renew_deadline},
           {"--leader-elect-retry-period", &lef.retry_period, &le.retry_period}});
      !s.is_ok())
    return fail(s.message());
  if (lef.leader_elect)
    if (auto s = client::validate_durations(le.lease_duration, le.renew_deadline, le.retry_period);
        !s.is_ok())
      return fail("--leader-elect-*: " + s.message());
  if (lef.id.empty()) lef.id = daemon::default_identity();
  if (auto s = daemon::check_port(sf.port); !s.is_ok()) return fail(s.message());
  if (percentage < 0 || percentage > 100)
    return fail("--percentage-of-nodes-to-score " + std::to_string(percentage) + ": not 0..100");
  if (binds < 1 || binds > 1024)
    return fail("--max-binds-in-flight " + std::to_string(binds) + ": not 1..1024");
  if (scheduler_name.empty()) return fail("--scheduler-name: must not be empty");

  // Stop signals are taken by sigwait on a thread of their own; every thread inherits the mask.
  daemon::StopSignals signals;

  auto cc = daemon::load_client_config(kubeconfig, kProgram);
  if (!cc.is_ok()) return fail(cc.status().message());
  // Bindings go out concurrently: keep as many connections as there are in flight.
  cc->max_idle_connections = static_cast<size_t>(binds) + 8;
  auto api = daemon::make_api_client(*cc);
  if (!api.is_ok()) return fail(api.status().message());

  scheduler::SchedulerOptions so;
  so.scheduler_name = scheduler_name;
  so.identity = lef.id;
  so.percentage_of_nodes_to_score = percentage;
  so.max_binds_in_flight = binds;
  scheduler::Scheduler sched(*api, so);
  std::atomic<bool> leading{false};

  std::unique_ptr<daemon::StatusServer> http;
  if (sf.port != 0) {
    auto metrics = [&] {
      return "# HELP leader_election_master_status 1 when this process holds the leader "
             "lease.\n# TYPE leader_election_master_status gauge\n"
             "leader_election_master_status{name=\"" +
             lef.lease_name + "\"} " + (leading ? "1" : "0") + "\n" + sched.metrics_text();
    };
    auto s = daemon::StatusServer::start(sf.bind_address, sf.port, {.metrics = metrics});
    if (!s.is_ok()) return fail(s.status().message());
    http = std::move(*s);
  }

  std::stop_source stop;
  signals.request_stop_on_signal(stop);
  spdlog::info("skiff-scheduler {} starting (scheduler name {}, leader election {})", lef.id,
               scheduler_name, lef.leader_elect ? "on" : "off");

  int rc = 0;
  if (!lef.leader_elect) {
    leading = true;
    rc = sched.run(stop.get_token()) ? 0 : 1;
  } else {
    le.lock = std::make_shared<client::ApiLeaseLock>(*api, lef.lease_namespace, lef.lease_name);
    le.identity = lef.id;
    le.release_on_cancel = true;
    // Scheduling runs while we lead. Like kube-scheduler, losing the lease ends the process
    // (the caches are not reusable across leaderships).
    auto r = daemon::run_leader_elected(
        std::move(le), [&](std::stop_token st) { return sched.run(st); }, leading, stop.get_token(),
        {.doing = "scheduling", .start_failure = "the informers did not sync"});
    if (!r.is_ok()) return fail(r.status().to_string());
    rc = *r;
  }
  return signals.finish(rc, stop, http.get());
}
