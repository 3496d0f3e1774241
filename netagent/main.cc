// skiff-netagent: the pod network between nodes on this node (see netagent/README.md).
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "common/daemon/daemon.h"
#include "common/daemon/flags.h"
#include "netagent/netagent.h"

using namespace skiff;

namespace {

constexpr const char* kProgram = "skiff-netagent";

int fail(const std::string& what) { return daemon::fail(kProgram, what); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"skiff-netagent: the pod network between nodes (VXLAN or host-gw routes)"};
  netagent::Options o;
  std::string kubeconfig, backend = "vxlan", resync = "30s";
  int verbosity = 0;
  daemon::StatusFlags sf;
  sf.port = 10256;
  app.add_option("--kubeconfig", kubeconfig, "kubeconfig for the API server");
  app.add_option("--node-name", o.node_name, "this node's Node name (default: the hostname)");
  app.add_option("--backend", backend, "vxlan or host-gw (nodes on one L2 segment)")
      ->capture_default_str();
  app.add_option("--cluster-cidr", o.cluster_cidr,
                 "pod CIDR of the cluster; traffic from it to elsewhere is masqueraded")
      ->capture_default_str();
  app.add_option("--node-ip", o.node_ip, "underlay IPv4 address (default: the Node's InternalIP)");
  app.add_option("--iface", o.iface, "underlay device (default: the one holding the node IP)");
  app.add_option("--vxlan-port", o.vxlan_port, "VXLAN UDP port")->capture_default_str();
  app.add_option("--vni", o.vni, "VXLAN network identifier")->capture_default_str();
  app.add_option("--resync-period", resync,
                 "full re-assert of device, routes, neighbours, FDB and nftables this often")
      ->capture_default_str();
  daemon::add_status_flags(app, sf);
  daemon::add_verbosity_flag(app, verbosity);
  if (auto rc = daemon::parse_flags(app, argc, argv)) return *rc;
  daemon::init_logging(kProgram, verbosity);

  auto b = overlay::parse_backend(backend);
  if (!b) return fail("--backend \"" + backend + "\": want vxlan or host-gw");
  o.backend = *b;
  auto d = daemon::parse_positive_duration(resync);
  if (!d) return fail("--resync-period: " + d.status().message());
  o.resync_period = *d;
  if (auto s = daemon::check_port(sf.port); !s) return fail(s.message());
  if (o.node_name.empty()) o.node_name = daemon::hostname();

  // Stop signals are taken by sigwait; every thread inherits the mask.
  daemon::StopSignals signals;

  auto cc = daemon::load_client_config(kubeconfig, kProgram);
  if (!cc) return fail(cc.status().message());
  auto api = daemon::make_api_client(*cc);
  if (!api) return fail(api.status().message());

  auto kernel = overlay::make_netlink_kernel();
  if (!kernel) return fail("rtnetlink: " + kernel.status().to_string());

  netagent::NetAgent agent(o, *api, kernel->get());
  std::unique_ptr<daemon::StatusServer> http;
  if (sf.port != 0) {
    daemon::StatusEndpoints e;
    e.metrics = [&] { return agent.metrics_text(); };
    e.unhealthy_reason = [&] {
      return agent.healthy() ? std::string()
                             : std::string("the sync loop has not run for two resync periods\n");
    };
    auto s = daemon::StatusServer::start(sf.bind_address, sf.port, std::move(e));
    if (!s) return fail(s.status().message());
    http = std::move(*s);
  }
  if (auto s = agent.start(); !s) {
    if (http) http->shutdown();
    return fail(s.message());
  }
  spdlog::info("skiff-netagent on node {} ({} backend) started", o.node_name, backend);

  int sig = signals.wait();
  // The kernel state stays: a restarted agent finds it as it wants it (traffic goes on).
  spdlog::info("signal {}: stopping (routes, device and rules stay in place)", sig);
  agent.stop();
  if (http) http->shutdown();
  return 0;
}
