// skiff-controller-manager: runs the cluster's controllers (see controllers/README.md), leader
// elected through a Lease so several replicas can run.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "common/daemon/daemon.h"
#include "common/daemon/flags.h"
#include "controllers/cronjob/cronjob.h"
#include "controllers/daemonset/daemonset.h"
#include "controllers/deployment/deployment.h"
#include "controllers/disruption/disruption.h"
#include "controllers/endpoints/endpoints.h"
#include "controllers/endpointslice/endpointslice.h"
#include "controllers/gc/garbage_collector.h"
#include "controllers/job/job.h"
#include "controllers/loadbalancer/load_balancer.h"
#include "controllers/manager.h"
#include "controllers/namespace/namespace_controller.h"
#include "controllers/nodeipam/node_ipam.h"
#include "controllers/nodelifecycle/node_lifecycle.h"
#include "controllers/replicaset/replicaset.h"
#include "controllers/serviceaccount/serviceaccount.h"
#include "controllers/statefulset/statefulset.h"
#include "controllers/volume/volume.h"
#include "proto/client/leader_election.h"

using namespace skiff;

namespace {

constexpr const char* kProgram = "skiff-controller-manager";

int fail(const std::string& what) { return daemon::fail(kProgram, what); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"skiff-controller-manager: runs the cluster's controllers"};
  std::string kubeconfig, cluster_cidr = "10.244.0.0/16";
  int mask_size = 24, verbosity = 0;
  bool allocate_node_cidrs = true;
  daemon::LeaderElectionFlags lef;
  lef.lease_name = "skiff-controller-manager";
  daemon::StatusFlags sf;
  sf.port = 10257;
  app.add_option("--kubeconfig", kubeconfig, "kubeconfig for the API server");
  app.add_option("--cluster-cidr", cluster_cidr, "pod CIDR of the cluster (IPv4)")
      ->capture_default_str();
  app.add_option("--node-cidr-mask-size", mask_size, "prefix length of each node's pod CIDR")
      ->capture_default_str();
  app.add_flag(
         "--allocate-node-cidrs{true}", allocate_node_cidrs,
         "assign spec.podCIDR to Nodes from --cluster-cidr (--allocate-node-cidrs=false: off)")
      ->capture_default_str();
  daemon::add_leader_election_flags(
      app, lef, "run the controllers only while holding the leader Lease (=false: always)");
  daemon::add_status_flags(app, sf);
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
  std::vector<std::string> lb_pool;
  app.add_option("--lb-pool", lb_pool,
                 "LoadBalancer address pool: CIDR, A-B range or one address (repeatable; "
                 "ConfigMap kube-system/skiff-lb-pool key pool adds to it)");
  daemon::add_verbosity_flag(app, verbosity);
  if (auto rc = daemon::parse_flags(app, argc, argv)) return *rc;
  daemon::init_logging(kProgram, verbosity);

  controllers::ManagerOptions mo;
  mo.leader_elect = lef.leader_elect;
  mo.lease_namespace = lef.lease_namespace;
  mo.lease_name = lef.lease_name;
  if (auto s = daemon::parse_duration_flags(
          {{"--leader-elect-lease-duration", &lef.lease_duration, &mo.lease_duration},
           {"--leader-elect-renew-deadline", &lef.renew_deadline, &mo.renew_deadline},
           {"--leader-elect-retry-period", &lef.retry_period, &mo.retry_period}});
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
  if (lef.leader_elect)
    if (auto s = client::validate_durations(mo.lease_duration, mo.renew_deadline, mo.retry_period);
        !s)
      return fail("--leader-elect-*: " + s.message());
  if (lef.id.empty()) lef.id = daemon::default_identity();
  mo.identity = lef.id;
  if (auto s = daemon::check_port(sf.port); !s) return fail(s.message());

  controllers::loadbalancer::LoadBalancerOptions lbo;
  lbo.pool = lb_pool;
  auto lb = controllers::loadbalancer::LoadBalancerController::create(std::move(lbo));
  if (!lb) return fail(lb.status().message());  // already says "--lb-pool: ..."

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
  if (lef.leader_elect) {
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
  manager.add(std::make_unique<controllers::endpoints::EndpointsController>());
  manager.add(std::make_unique<controllers::endpointslice::EndpointSliceController>());
  manager.add(std::make_unique<controllers::cronjob::CronJobController>());
  manager.add(std::make_unique<controllers::statefulset::StatefulSetController>());
  manager.add(std::make_unique<controllers::daemonset::DaemonSetController>());
  manager.add(std::make_unique<controllers::job::JobController>());
  manager.add(std::make_unique<controllers::job::TtlAfterFinishedController>());
  manager.add(std::make_unique<controllers::volume::VolumeController>());
  manager.add(std::make_unique<controllers::serviceaccount::ServiceAccountsController>());
  manager.add(std::make_unique<controllers::disruption::DisruptionController>());
  manager.add(std::move(*lb));

  std::unique_ptr<daemon::StatusServer> http;
  if (sf.port != 0) {
    auto s = daemon::StatusServer::start(sf.bind_address, sf.port,
                                         {.metrics = [&] { return manager.metrics_text(); }});
    if (!s) return fail(s.status().message());
    http = std::move(*s);
  }

  std::stop_source stop;
  signals.request_stop_on_signal(stop);
  spdlog::info("skiff-controller-manager {} starting (leader election {})", lef.id,
               lef.leader_elect ? "on" : "off");
  int rc = manager.run(stop.get_token());
  return signals.finish(rc, stop, http.get());
}
