// skiff-controller-manager: runs the cluster's controllers (see controllers/README.md), leader
// elected through a Lease so several replicas can run.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "common/daemon/daemon.h"
#include "controllers/deployment/deployment.h"
#include "controllers/gc/garbage_collector.h"
#include "controllers/manager.h"
#include "controllers/namespace/namespace_controller.h"
#include "controllers/nodeipam/node_ipam.h"
#include "controllers/nodelifecycle/node_lifecycle.h"
#include "controllers/replicaset/replicaset.h"
#include "proto/client/leader_election.h"

using namespace skiff;

namespace {

constexpr const char* kProgram = "skiff-controller-manager";

int fail(const std::string& what) { return daemon::fail(kProgram, what); }

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
  if (auto s = daemon::parse_duration_flags(
          {{"--leader-elect-lease-duration", &lease_duration, &mo.lease_duration},
           {"--leader-elect-renew-deadline", &renew_deadline, &mo.renew_deadline},
           {"--leader-elect-retry-period", &retry_period, &mo.retry_period}});
      !s)
    return fail(s.message());
  controllers::nodelifecycle::NodeLifecycleOptions nlo;
  if (auto s = daemon::parse_duration_flags(
          {{"--node-monitor-grace-period", &grace_period, &nlo.grace_period},
           {"--pod-eviction-timeout", &eviction_timeout, &nlo.pod_eviction_timeout},
           {"--node-monitor-period", &monitor_period, &nlo.monitor_period}});
      !s)
    return fail(s.message());
  if (nlo.monitor_period.count() <= 0) return fail("--node-monitor-period: must be positive");
  if (leader_elect)
    if (auto s = client::validate_durations(mo.lease_duration, mo.renew_deadline, mo.retry_period);
        !s)
      return fail("--leader-elect-*: " + s.message());
  if (id.empty()) id = daemon::default_identity();
  mo.identity = id;
  if (auto s = daemon::check_port(port); !s) return fail(s.message());

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
  daemon::StopSignals signals;

  auto cc = daemon::load_client_config(kubeconfig, kProgram);
  if (!cc) return fail(cc.status().message());
  auto api = daemon::make_api_client(*cc);
  if (!api) return fail(api.status().message());

  controllers::ControllerManager manager(*api, mo);
  if (leader_elect) {
    auto lease_api = daemon::make_lease_client(*cc, mo.renew_deadline);
    if (!lease_api) return fail(lease_api.status().message());
    manager.set_lease_client(*lease_api);
  }
  if (ipam) manager.add(std::move(ipam));
  manager.add(std::make_unique<controllers::replicaset::ReplicaSetController>());
  manager.add(std::make_unique<controllers::deployment::DeploymentController>());
  manager.add(std::make_unique<controllers::gc::GarbageCollector>());
  manager.add(std::make_unique<controllers::ns::NamespaceController>());
  manager.add(std::make_unique<controllers::nodelifecycle::NodeLifecycleController>(nlo));

  std::unique_ptr<daemon::StatusServer> http;
  if (port != 0) {
    auto s = daemon::StatusServer::start(bind_address, port,
                                         {.metrics = [&] { return manager.metrics_text(); }});
    if (!s) return fail(s.status().message());
    http = std::move(*s);
  }

  std::stop_source stop;
  signals.request_stop_on_signal(stop);
  spdlog::info("skiff-controller-manager {} starting (leader election {})", id,
               leader_elect ? "on" : "off");
  int rc = manager.run(stop.get_token());
  return signals.finish(rc, stop, http.get());
}
