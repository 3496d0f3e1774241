// skiff-netagent: the pod network between nodes on this node (see netagent/README.md).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>

#include "common/http/http_server.h"
#include "netagent/netagent.h"
#include "proto/client/api_client.h"
#include "proto/client/kubeconfig.h"

using namespace skiff;

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "skiff-netagent: %s\n", what.c_str());
  return 1;
}

class Endpoints : public web::Handler {
 public:
  explicit Endpoints(netagent::NetAgent& a) : a_(a) {}
  web::Response handle(const web::Request& req) override {
    web::Response r;
    r.content_type = "text/plain; charset=utf-8";
    if (req.method != "GET" && req.method != "HEAD") {
      r.status = 405;
      r.body = "method not allowed\n";
    } else if (req.path == "/healthz") {
      bool ok = a_.healthy();
      r.status = ok ? 200 : 503;
      r.body = ok ? "ok" : "the sync loop has not run for two resync periods\n";
    } else if (req.path == "/metrics") {
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      r.body = a_.metrics_text();
    } else {
      r.status = 404;
      r.body = "not found: /healthz and /metrics only\n";
    }
    return r;
  }

 private:
  netagent::NetAgent& a_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"skiff-netagent: the pod network between nodes (VXLAN or host-gw routes)"};
  netagent::Options o;
  std::string kubeconfig, backend = "vxlan", resync = "30s", bind_address = "127.0.0.1";
  int port = 10256, verbosity = 0;
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
  spdlog::set_default_logger(spdlog::stderr_color_mt("skiff-netagent"));
  spdlog::set_level(verbosity >= 2 ? spdlog::level::debug : spdlog::level::info);

  auto b = overlay::parse_backend(backend);
  if (!b) return fail("--backend \"" + backend + "\": want vxlan or host-gw");
  o.backend = *b;
  auto d = netagent::parse_duration(resync);
  if (!d) return fail("--resync-period: " + d.status().message());
  o.resync_period = *d;
  if (port < 0 || port > 65535) return fail("--port " + std::to_string(port) + ": not 0..65535");
  if (o.node_name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    o.node_name = host;
  }

  // Stop signals are taken by sigwait; every thread inherits the mask.
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
  cc.user_agent = "skiff-netagent";
  auto rest = client::RestClient::create(cc);
  if (!rest) return fail(rest.status().to_string());
  auto api =
      std::make_shared<client::ApiClient>(std::shared_ptr<client::RestClient>(std::move(*rest)));

  auto kernel = overlay::make_netlink_kernel();
  if (!kernel) return fail("rtnetlink: " + kernel.status().to_string());

  netagent::NetAgent agent(o, api, kernel->get());
  Endpoints endpoints(agent);
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
  if (auto s = agent.start(); !s) {
    if (http) http->shutdown();
    return fail(s.message());
  }
  spdlog::info("skiff-netagent on node {} ({} backend) started", o.node_name, backend);

  int sig = 0;
  sigwait(&sigs, &sig);
  // The kernel state stays: a restarted agent finds it as it wants it (traffic goes on).
  spdlog::info("signal {}: stopping (routes, device and rules stay in place)", sig);
  agent.stop();
  if (http) http->shutdown();
  return 0;
}
