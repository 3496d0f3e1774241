// skiff-scheduler: places pending pods on nodes (see controllers/scheduler/README.md), leader
// elected through a Lease so several replicas can run.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>

#include "common/daemon/daemon.h"
#include "controllers/scheduler/scheduler.h"
#include "proto/client/leader_election.h"

using namespace skiff;

namespace {

constexpr const char* kProgram = "skiff-scheduler";

int fail(const std::string& what) { return daemon::fail(kProgram, what); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"skiff-scheduler: assigns pending pods to nodes"};
  std::string kubeconfig, id, bind_address = "127.0.0.1", scheduler_name = "default-scheduler";
  std::string lease_duration = "15s", renew_deadline = "10s", retry_period = "2s";
  std::string lease_ns = "kube-system", lease_name = "skiff-scheduler";
  int port = 10259, verbosity = 0, percentage = 0, binds = 64;
  bool leader_elect = true;
  app.add_option("--kubeconfig", kubeconfig, "kubeconfig for the API server");
  app.add_option("--scheduler-name", scheduler_name,
                 "schedule pods whose spec.schedulerName is this (or empty)")
      ->capture_default_str();
  app.add_flag("--leader-elect{true}", leader_elect,
               "schedule only while holding the leader Lease (=false: always)")
      ->capture_default_str();
  app.add_option("--leader-elect-lease-duration", lease_duration,
                 "how long standbys wait after the last renewal they saw before taking over")
      ->capture_default_str();
  app.add_option("--leader-elect-renew-deadline", renew_deadline,
                 "the leader gives up (and exits) when it could not renew for this long")
      ->capture_default_str();
  app.add_option("--leader-elect-retry-period", retry_period,
                 "interval between attempts to acquire or renew")
      ->capture_default_str();
  app.add_option("--leader-elect-resource-namespace", lease_ns)->capture_default_str();
  app.add_option("--leader-elect-resource-name", lease_name)->capture_default_str();
  app.add_option("--id", id, "identity in the Lease (default: <hostname>_<pid>)");
  app.add_option("--percentage-of-nodes-to-score", percentage,
                 "stop filtering once this share of the nodes is feasible (0: adaptive, as "
                 "kube-scheduler; at least 100 nodes)")
      ->capture_default_str();
  app.add_option("--max-binds-in-flight", binds, "concurrent binding requests")
      ->capture_default_str();
  app.add_option("--bind-address", bind_address,
                 "address of the plain-HTTP /healthz and /metrics endpoint (loopback only)")
      ->capture_default_str();
  app.add_option("--port", port, "port of /healthz and /metrics (0: off)")->capture_default_str();
  app.add_option("-v,--v", verbosity, "log verbosity (2+: debug)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  spdlog::set_default_logger(spdlog::stderr_color_mt("skiff-scheduler"));
  spdlog::set_level(verbosity >= 2 ? spdlog::level::debug : spdlog::level::info);

  client::LeaderElectionConfig le;
  if (auto s = daemon::parse_duration_flags(
          {{"--leader-elect-lease-duration", &lease_duration, &le.lease_duration},
           {"--leader-elect-renew-deadline", &renew_deadline, &le.renew_deadline},
           {"--leader-elect-retry-period", &retry_period, &le.retry_period}});
      !s.is_ok())
    return fail(s.message());
  if (leader_elect)
    if (auto s = client::validate_durations(le.lease_duration, le.renew_deadline, le.retry_period);
        !s.is_ok())
      return fail("--leader-elect-*: " + s.message());
  if (id.empty()) id = daemon::default_identity();
  if (auto s = daemon::check_port(port); !s.is_ok()) return fail(s.message());
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
  so.identity = id;
  so.percentage_of_nodes_to_score = percentage;
  so.max_binds_in_flight = binds;
  scheduler::Scheduler sched(*api, so);
  std::atomic<bool> leading{false};

  std::unique_ptr<daemon::StatusServer> http;
  if (port != 0) {
    auto metrics = [&] {
      return "# HELP leader_election_master_status 1 when this process holds the leader "
             "lease.\n# TYPE leader_election_master_status gauge\n"
             "leader_election_master_status{name=\"" +
             lease_name + "\"} " + (leading ? "1" : "0") + "\n" + sched.metrics_text();
    };
    auto s = daemon::StatusServer::start(bind_address, port, {.metrics = metrics});
    if (!s.is_ok()) return fail(s.status().message());
    http = std::move(*s);
  }

  std::stop_source stop;
  signals.request_stop_on_signal(stop);
  spdlog::info("skiff-scheduler {} starting (scheduler name {}, leader election {})", id,
               scheduler_name, leader_elect ? "on" : "off");

  int rc = 0;
  if (!leader_elect) {
    leading = true;
    rc = sched.run(stop.get_token()) ? 0 : 1;
  } else {
    le.lock = std::make_shared<client::ApiLeaseLock>(*api, lease_ns, lease_name);
    le.identity = id;
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
