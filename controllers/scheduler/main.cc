// skiff-scheduler: places pending pods on nodes (see controllers/scheduler/README.md), leader
// elected through a Lease so several replicas can run.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <thread>

#include "common/http/http_server.h"
#include "controllers/scheduler/scheduler.h"
#include "proto/client/api_client.h"
#include "proto/client/kubeconfig.h"
#include "proto/client/leader_election.h"

using namespace skiff;

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "skiff-scheduler: %s\n", what.c_str());
  return 1;
}

// "15s", "1500ms", "2m", "1h", "1m30s" (Go durations with units ms, s, m, h).
Result<std::chrono::milliseconds> parse_duration(const std::string& s) {
  auto bad = [&] {
    return Status::invalid("duration \"" + s +
                           "\": want a number with a unit (ms, s, m, h), e.g. 15s");
  };
  if (s.empty()) return bad();
  double total_ms = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i == start) return bad();
    double v;
    try {
      v = std::stod(s.substr(start, i - start));
    } catch (...) {
      return bad();
    }
    size_t ustart = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    std::string unit = s.substr(ustart, i - ustart);
    if (unit == "ms")
      total_ms += v;
    else if (unit == "s")
      total_ms += v * 1000;
    else if (unit == "m")
      total_ms += v * 60'000;
    else if (unit == "h")
      total_ms += v * 3'600'000;
    else
      return bad();
  }
  return std::chrono::milliseconds(static_cast<int64_t>(total_ms));
}

class Endpoints : public web::Handler {
 public:
  Endpoints(scheduler::Scheduler& s, std::atomic<bool>& leading, std::string lease_name)
      : s_(s), leading_(leading), lease_name_(std::move(lease_name)) {}
  web::Response handle(const web::Request& req) override {
    web::Response r;
    r.content_type = "text/plain; charset=utf-8";
    if (req.method != "GET" && req.method != "HEAD") {
      r.status = 405;
      r.body = "method not allowed\n";
    } else if (req.path == "/healthz") {
      r.body = "ok";
    } else if (req.path == "/metrics") {
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      r.body =
          "# HELP leader_election_master_status 1 when this process holds the leader "
          "lease.\n# TYPE leader_election_master_status gauge\n"
          "leader_election_master_status{name=\"" +
          lease_name_ + "\"} " + (leading_ ? "1" : "0") + "\n" + s_.metrics_text();
    } else {
      r.status = 404;
      r.body = "not found: /healthz and /metrics only\n";
    }
    return r;
  }

 private:
  scheduler::Scheduler& s_;
  std::atomic<bool>& leading_;
  std::string lease_name_;
};

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
  for (auto [flag, text, out] :
       {std::tuple{"--leader-elect-lease-duration", &lease_duration, &le.lease_duration},
        std::tuple{"--leader-elect-renew-deadline", &renew_deadline, &le.renew_deadline},
        std::tuple{"--leader-elect-retry-period", &retry_period, &le.retry_period}}) {
    auto d = parse_duration(*text);
    if (!d.is_ok()) return fail(std::string(flag) + ": " + d.status().message());
    *out = *d;
  }
  if (leader_elect)
    if (auto s = client::validate_durations(le.lease_duration, le.renew_deadline, le.retry_period);
        !s.is_ok())
      return fail("--leader-elect-*: " + s.message());
  if (id.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    id = std::string(host) + "_" + std::to_string(getpid());
  }
  if (port < 0 || port > 65535) return fail("--port " + std::to_string(port) + ": not 0..65535");
  if (percentage < 0 || percentage > 100)
    return fail("--percentage-of-nodes-to-score " + std::to_string(percentage) + ": not 0..100");
  if (binds < 1 || binds > 1024)
    return fail("--max-binds-in-flight " + std::to_string(binds) + ": not 1..1024");
  if (scheduler_name.empty()) return fail("--scheduler-name: must not be empty");

  // Stop signals are taken by sigwait on a thread of their own; every thread inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::string kc_path = client::find_kubeconfig(kubeconfig);
  if (kc_path.empty()) return fail("no kubeconfig: pass --kubeconfig");
  auto kc = client::load_kubeconfig(kc_path);
  if (!kc.is_ok()) return fail(kc.status().to_string());
  auto cc = client::ClientConfig::from_kubeconfig(*kc);
  cc.user_agent = "skiff-scheduler";
  // Bindings go out concurrently: keep as many connections as there are in flight.
  cc.max_idle_connections = static_cast<size_t>(binds) + 8;
  auto rest = client::RestClient::create(cc);
  if (!rest.is_ok()) return fail(rest.status().to_string());
  auto api =
      std::make_shared<client::ApiClient>(std::shared_ptr<client::RestClient>(std::move(*rest)));

  scheduler::SchedulerOptions so;
  so.scheduler_name = scheduler_name;
  so.identity = id;
  so.percentage_of_nodes_to_score = percentage;
  so.max_binds_in_flight = binds;
  scheduler::Scheduler sched(api, so);
  std::atomic<bool> leading{false};

  Endpoints endpoints(sched, leading, lease_name);
  std::unique_ptr<web::HttpServer> http;
  if (port != 0) {
    web::ServerOptions ho;
    ho.listen = "";
    ho.insecure_listen = bind_address + ":" + std::to_string(port);
    ho.anonymous = true;
    ho.public_path = [](std::string_view) { return true; };
    ho.io_threads = 1;
    ho.worker_threads = 2;
    auto s = web::HttpServer::start(ho, &endpoints);
    if (!s.is_ok())
      return fail("serving /healthz and /metrics on " + ho.insecure_listen + ": " +
                  s.status().message());
    http = std::move(*s);
    spdlog::info("serving /healthz and /metrics on http://{}:{}", bind_address,
                 http->insecure_port());
  }

  std::stop_source stop;
  std::thread signals([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    spdlog::info("signal {}: stopping", sig);
    stop.request_stop();
  });
  spdlog::info("skiff-scheduler {} starting (scheduler name {}, leader election {})", id,
               scheduler_name, leader_elect ? "on" : "off");

  int rc = 0;
  if (!leader_elect) {
    leading = true;
    rc = sched.run(stop.get_token()) ? 0 : 1;
  } else {
    std::atomic<bool> start_failed{false};
    le.lock = std::make_shared<client::ApiLeaseLock>(api, lease_ns, lease_name);
    le.identity = id;
    le.release_on_cancel = true;
    // Scheduling runs while we lead. Like kube-scheduler, losing the lease ends the process
    // (the caches are not reusable across leaderships).
    le.callbacks.on_started_leading = [&](std::stop_token st) {
      leading = true;
      spdlog::info("{} is the leader: scheduling", id);
      if (!sched.run(st)) start_failed = true;
    };
    le.callbacks.on_stopped_leading = [&] {
      leading = false;
      spdlog::info("{} stopped leading", id);
    };
    le.callbacks.on_new_leader = [&](const std::string& who) {
      if (who != id) spdlog::info("new leader elected: {}", who);
    };
    auto elector = client::LeaderElector::create(std::move(le));
    if (!elector.is_ok()) return fail(elector.status().to_string());
    std::stop_source inner;
    std::stop_callback forward(stop.get_token(), [&] { inner.request_stop(); });
    std::jthread watchdog([&](std::stop_token st) {
      while (!st.stop_requested() && !start_failed)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (start_failed) inner.request_stop();
    });
    (*elector)->run(inner.get_token());
    watchdog.request_stop();
    watchdog.join();
    rc = stop.stop_requested() && !start_failed ? 0 : 1;
    if (rc) spdlog::error("leader election lost (or the informers did not sync): exiting");
  }
  if (!stop.stop_requested()) {
    // Leadership lost or start-up failed: exit without waiting for a signal.
    if (http) http->shutdown();
    spdlog::shutdown();
    std::_Exit(rc);
  }
  signals.join();
  if (http) http->shutdown();
  return rc;
}
