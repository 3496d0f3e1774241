// skiff-controller-manager: runs the cluster's controllers (see controllers/README.md), leader
// elected through a Lease so several replicas can run.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <thread>

#include "common/http/http_server.h"
#include "controllers/deployment/deployment.h"
#include "controllers/gc/garbage_collector.h"
#include "controllers/manager.h"
#include "controllers/namespace/namespace_controller.h"
#include "controllers/nodeipam/node_ipam.h"
#include "controllers/nodelifecycle/node_lifecycle.h"
#include "controllers/replicaset/replicaset.h"
#include "proto/client/api_client.h"
#include "proto/client/kubeconfig.h"
#include "proto/client/leader_election.h"

using namespace skiff;

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "skiff-controller-manager: %s\n", what.c_str());
  return 1;
}

class Endpoints : public web::Handler {
 public:
  explicit Endpoints(controllers::ControllerManager& m) : m_(m) {}
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
      r.body = m_.metrics_text();
    } else {
      r.status = 404;
      r.body = "not found: /healthz and /metrics only\n";
    }
    return r;
  }

 private:
  controllers::ControllerManager& m_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"skiff-controller-manager: runs the cluster's controllers"};
  std::string kubeconfig, cluster_cidr = "10.244.0.0/16", id, bind_address = "127.0.0.1";
  std::string lease_duration = "15s", renew_deadline = "10s", retry_period = "2s";
  std::string lease_ns = "kube-system", lease_name = "skiff-controller-manager";
  int mask_size = 24, port = 10257, verbosity = 0;
  bool allocate_node_cidrs = true, leader_elect = true;
  app.add_option("--kubeconfig", kubeconfig, "kubeconfig for the API server");
  app.add_option("--cluster-cidr", cluster_cidr, "pod CIDR of the cluster (IPv4)")
      ->capture_default_str();
  app.add_option("--node-cidr-mask-size", mask_size, "prefix length of each node's pod CIDR")
      ->capture_default_str();
  app.add_flag(
         "--allocate-node-cidrs{true}", allocate_node_cidrs,
         "assign spec.podCIDR to Nodes from --cluster-cidr (--allocate-node-cidrs=false: off)")
      ->capture_default_str();
  app.add_flag("--leader-elect{true}", leader_elect,
               "run the controllers only while holding the leader Lease (=false: always)")
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
  app.add_option("--bind-address", bind_address,
                 "address of the plain-HTTP /healthz and /metrics endpoint (loopback only)")
      ->capture_default_str();
  app.add_option("--port", port, "port of /healthz and /metrics (0: off)")->capture_default_str();
  std::string grace_period = "40s", eviction_timeout = "60s", monitor_period = "5s";
  app.add_option("--node-monitor-grace-period", grace_period,
                 "a Node whose Lease is not renewed for this long becomes Ready=Unknown")
      ->capture_default_str();
  app.add_option("--pod-eviction-timeout", eviction_timeout,
                 "pods of an unreachable/not-ready Node are deleted after this (unless a "
                 "NoExecute toleration says otherwise)")
      ->capture_default_str();
  app.add_option("--node-monitor-period", monitor_period, "how often Node health is checked")
      ->capture_default_str();
  app.add_option("-v,--v", verbosity, "log verbosity (2+: debug)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  spdlog::set_default_logger(spdlog::stderr_color_mt("skiff-controller-manager"));
  spdlog::set_level(verbosity >= 2 ? spdlog::level::debug : spdlog::level::info);

  controllers::ManagerOptions mo;
  mo.leader_elect = leader_elect;
  mo.lease_namespace = lease_ns;
  mo.lease_name = lease_name;
  for (auto [flag, text, out] :
       {std::tuple{"--leader-elect-lease-duration", &lease_duration, &mo.lease_duration},
        std::tuple{"--leader-elect-renew-deadline", &renew_deadline, &mo.renew_deadline},
        std::tuple{"--leader-elect-retry-period", &retry_period, &mo.retry_period}}) {
    auto d = controllers::parse_duration(*text);
    if (!d) return fail(std::string(flag) + ": " + d.status().message());
    *out = *d;
  }
  controllers::nodelifecycle::NodeLifecycleOptions nlo;
  for (auto [flag, text, out] :
       {std::tuple{"--node-monitor-grace-period", &grace_period, &nlo.grace_period},
        std::tuple{"--pod-eviction-timeout", &eviction_timeout, &nlo.pod_eviction_timeout},
        std::tuple{"--node-monitor-period", &monitor_period, &nlo.monitor_period}}) {
    auto d = controllers::parse_duration(*text);
    if (!d) return fail(std::string(flag) + ": " + d.status().message());
    *out = *d;
  }
  if (nlo.monitor_period.count() <= 0) return fail("--node-monitor-period: must be positive");
  if (leader_elect)
    if (auto s = client::validate_durations(mo.lease_duration, mo.renew_deadline, mo.retry_period);
        !s)
      return fail("--leader-elect-*: " + s.message());
  if (id.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    id = std::string(host) + "_" + std::to_string(getpid());
  }
  mo.identity = id;
  if (port < 0 || port > 65535) return fail("--port " + std::to_string(port) + ": not 0..65535");

  std::unique_ptr<controllers::nodeipam::NodeIpamController> ipam;
  if (allocate_node_cidrs) {
    controllers::nodeipam::NodeIpamOptions no;
    no.cluster_cidr = cluster_cidr;
    no.node_cidr_mask_size = mask_size;
    auto c = controllers::nodeipam::NodeIpamController::create(no);
    if (!c) return fail("--cluster-cidr/--node-cidr-mask-size: " + c.status().message());
    ipam = std::move(*c);
  }

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
  if (!kc) return fail(kc.status().to_string());
  auto cc = client::ClientConfig::from_kubeconfig(*kc);
  cc.user_agent = "skiff-controller-manager";
  auto rest = client::RestClient::create(cc);
  if (!rest) return fail(rest.status().to_string());
  auto api =
      std::make_shared<client::ApiClient>(std::shared_ptr<client::RestClient>(std::move(*rest)));

  controllers::ControllerManager manager(api, mo);
  if (leader_elect) {
    // Lease requests: bounded well inside the renew deadline (see set_lease_client).
    auto lc = cc;
    auto per_request =
        std::max<std::chrono::milliseconds>(mo.renew_deadline / 2, std::chrono::milliseconds(1000));
    lc.request_timeout = lc.connect_timeout = lc.handshake_timeout = per_request;
    auto lease_rest = client::RestClient::create(lc);
    if (!lease_rest) return fail(lease_rest.status().to_string());
    manager.set_lease_client(std::make_shared<client::ApiClient>(
        std::shared_ptr<client::RestClient>(std::move(*lease_rest))));
  }
  if (ipam) manager.add(std::move(ipam));
  manager.add(std::make_unique<controllers::replicaset::ReplicaSetController>());
  manager.add(std::make_unique<controllers::deployment::DeploymentController>());
  manager.add(std::make_unique<controllers::gc::GarbageCollector>());
  manager.add(std::make_unique<controllers::ns::NamespaceController>());
  manager.add(std::make_unique<controllers::nodelifecycle::NodeLifecycleController>(nlo));

  Endpoints endpoints(manager);
  std::unique_ptr<web::HttpServer> http;
  if (port != 0) {
    web::ServerOptions so;
    so.listen = "";
    so.insecure_listen = bind_address + ":" + std::to_string(port);
    so.anonymous = true;
    so.public_path = [](std::string_view) { return true; };
    so.io_threads = 1;
    so.worker_threads = 2;
    auto s = web::HttpServer::start(so, &endpoints);
    if (!s)
      return fail("serving /healthz and /metrics on " + so.insecure_listen + ": " +
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
  spdlog::info("skiff-controller-manager {} starting (leader election {})", id,
               leader_elect ? "on" : "off");
  int rc = manager.run(stop.get_token());
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
