// skiff-netagent: the node's network agent (see netagent/README.md): the pod network between
// nodes, the service proxy, cluster DNS and the LoadBalancer address announcer.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <mutex>
#include <thread>

#include "common/daemon/daemon.h"
#include "common/daemon/flags.h"
#include "common/netlink/ip4.h"
#include "netagent/announce/announcer.h"
#include "netagent/dns/dns.h"
#include "netagent/fastpath/fastpath.h"
#include "netagent/netagent.h"
#include "netagent/nft/nft.h"
#include "netagent/service_agent.h"
#include "proto/client/informer.h"
#include "proto/endpoints.h"
#include "proto/service.h"

using namespace skiff;

namespace {

constexpr const char* kProgram = "skiff-netagent";

int fail(const std::string& what) { return daemon::fail(kProgram, what); }

// The Service and Endpoints informers that the service proxy, DNS and the announcer share:
// one watch and one cache of each per agent. Every user adds its handlers before start().
struct ServiceInformers {
  explicit ServiceInformers(std::shared_ptr<client::ApiClient> api)
      : services(api, service_type(), slim(netagent::slim_service)),
        endpoints(api, endpoints_type(), slim(netagent::slim_endpoints)) {}
  // Every cached object keeps only what its readers use, serialized (at 10,000 Services x 5
  // endpoints the whole objects were ~130 MB of the agent's RSS; slim but as nlohmann::json
  // still ~65 MB; slim CBOR ~6 MB).
  static client::InformerOptions slim(void (*transform)(nlohmann::json&)) {
    client::InformerOptions o;
    o.transform = transform;
    o.compact_cache = true;
    o.indexes = false;  // no reader asks by namespace, label or owner
    return o;
  }
  static const proto::ResourceType& service_type() {
    static const proto::ResourceType t = proto::service_resource();  // the informer keeps a ref
    return t;
  }
  static const proto::ResourceType& endpoints_type() {
    static const proto::ResourceType t = proto::endpoints_resource();
    return t;
  }
  void start() {
    services.start();
    endpoints.start();
  }
  void stop() {
    services.stop();
    endpoints.stop();
  }
  client::Informer services, endpoints;
};

// The announcer needs this node's underlay address, which (without --node-ip) is known only
// once the agent has read its Node: it is started then, from its own thread, and retried while
// it cannot start (the interface may not exist yet). The shared informers run before it exists,
// so their events reach it through the handlers added here (an informer takes handlers only
// before it starts).
class LateAnnouncer {
 public:
  LateAnnouncer(std::shared_ptr<client::ApiClient> api, netagent::announce::Options opts,
                const netagent::NetAgent* agent)
      : api_(std::move(api)), opts_(std::move(opts)), agent_(agent) {
    for (auto* inf : {opts_.services, opts_.endpoints}) {
      if (!inf) continue;
      inf->add_handlers({[this](const nlohmann::json&) { kick(); },
                         [this](const nlohmann::json&, const nlohmann::json&) { kick(); },
                         [this](const nlohmann::json&) { kick(); }});
    }
  }
  ~LateAnnouncer() { stop(); }

  void start() {
    thread_ = std::jthread([this](std::stop_token st) { run(st); });
  }
  void stop() {
    if (thread_.joinable()) {
      thread_.request_stop();
      thread_.join();
    }
    std::lock_guard l(mu_);
    if (ann_) ann_->stop();
  }
  std::string metrics_text() const {
    std::lock_guard l(mu_);
    return ann_ ? ann_->metrics_text() : std::string();
  }
  void kick() {
    std::lock_guard l(mu_);
    if (ann_) ann_->kick();
  }

 private:
  void run(std::stop_token st) {
    std::string last_error;
    while (!st.stop_requested()) {
      netagent::announce::Options o = opts_;
      if (o.underlay_ip.empty()) o.underlay_ip = agent_->underlay_ip();
      if (!o.underlay_ip.empty() || !o.interface.empty()) {
        auto a = std::make_unique<netagent::announce::Announcer>(api_, o);
        Status s = a->start();
        if (s) {
          spdlog::info("LoadBalancer announcer is up (underlay {}{})", o.underlay_ip,
                       o.interface.empty() ? "" : " dev " + o.interface);
          std::lock_guard l(mu_);
          ann_ = std::move(a);
          return;
        }
        if (s.message() != last_error) spdlog::error("{} (retrying every 10s)", s.to_string());
        last_error = s.message();
        sleep(st, std::chrono::seconds(10));
      } else {
        sleep(st, std::chrono::milliseconds(200));
      }
    }
  }
  static void sleep(std::stop_token& st, std::chrono::milliseconds d) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock l(m);
    cv.wait_for(l, st, d, [] { return false; });
  }

  std::shared_ptr<client::ApiClient> api_;
  netagent::announce::Options opts_;
  const netagent::NetAgent* agent_;
  mutable std::mutex mu_;
  std::unique_ptr<netagent::announce::Announcer> ann_;
  std::jthread thread_;
};

}  // namespace

// skiff-netagent links jemalloc (CMakeLists.txt) for its memory: a cold sync at 10,000 Services
// decodes every cached Service and Endpoints and builds a batch of ~50,000 elements, a ~50 MB
// peak of small objects freed at once. glibc kept ~30 MB of it resident afterwards, in pages
// pinned by the few long-lived objects allocated among them (malloc_trim could not return them);
// jemalloc's size-class slabs give them back. One arena (the agent's threads rarely allocate at
// the same time); freed pages returned after 200 ms by jemalloc's background thread, without
// the lazy MADV_FREE stage (its pages stay counted in RSS until the kernel needs them); no
// per-thread caches: they held ~2.5 MB of freed objects (counted as allocated) over the agent's
// dozen threads, for a first sync at 10,000 Services of ~0.55 s instead of ~0.4 s (bench
// svc_agent_rss). MALLOC_CONF in the environment overrides this.
extern "C" {
const char* malloc_conf =
    "narenas:1,tcache:false,background_thread:true,dirty_decay_ms:200,muzzy_decay_ms:0";
}

int main(int argc, char** argv) {
  CLI::App app{
      "skiff-netagent: the pod network between nodes (VXLAN or host-gw routes), the service "
      "proxy (nftables), cluster DNS and LoadBalancer address announcement"};
  netagent::Options o;
  std::string kubeconfig, backend = "vxlan", resync = "30s";
  bool services = true, lb_announce = true, fast_path = true;
  std::string service_cidr = "10.96.0.0/16", cluster_dns = "10.96.0.10",
              cluster_domain = "cluster.local";
  std::vector<std::string> dns_upstreams;
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
  app.add_flag("--services{true}", services,
               "run the service proxy: ClusterIP, NodePort, LoadBalancer and external IPs in "
               "table ip skiff (--services=false: pod network only)")
      ->capture_default_str();
  app.add_option("--service-cidr", service_cidr, "the Service ClusterIP range (IPv4)")
      ->capture_default_str();
  app.add_option("--cluster-dns", cluster_dns,
                 "serve cluster DNS on this address (a dummy link skiff.dns holds it); \"\": off")
      ->capture_default_str();
  app.add_option("--cluster-domain", cluster_domain, "the cluster's DNS domain")
      ->capture_default_str();
  app.add_option("--dns-upstream", dns_upstreams,
                 "IP[:port] of a resolver for names outside the cluster domain (repeatable; "
                 "default: the nameservers of /etc/resolv.conf other than --cluster-dns)")
      ->allow_extra_args(false);
  app.add_flag("--lb-announce{true}", lb_announce,
               "answer ARP for the LoadBalancer addresses this node wins the Lease of "
               "(--lb-announce=false: off)")
      ->capture_default_str();
  app.add_flag("--fast-path{true}", fast_path,
               "carry pod traffic between nodes around the node's IP stack with eBPF (TCX, "
               "kernel 6.6+; without it, or with --fast-path=false, the kernel's forwarding)")
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
  if (!netlink::parse_ip4_net(service_cidr))
    return fail("--service-cidr \"" + service_cidr + "\": not an IPv4 CIDR");
  if (!cluster_dns.empty() && !netlink::parse_ip4(cluster_dns))
    return fail("--cluster-dns \"" + cluster_dns + "\": not an IPv4 address (\"\" turns it off)");
  if (cluster_domain.empty() && !cluster_dns.empty()) return fail("--cluster-domain: empty");

  // One agent per node (network namespace): two would both program its nftables table, routes
  // and devices, each undoing the other's changes on every resync.
  if (auto st = daemon::lock_netns("skiff-netagent", kProgram); !st) return fail(st.message());

  // Stop signals are taken by sigwait; every thread inherits the mask.
  daemon::StopSignals signals;

  auto cc = daemon::load_client_config(kubeconfig, kProgram);
  if (!cc) return fail(cc.status().message());
  auto api = daemon::make_api_client(*cc);
  if (!api) return fail(api.status().message());

  auto kernel = overlay::make_netlink_kernel();
  if (!kernel) return fail("rtnetlink: " + kernel.status().to_string());

  // Waits for the service agent's endpoints before it carries anything (see fastpath.h).
  if (fast_path) o.fast_path = std::make_shared<fastpath::FastPath>(services);
  netagent::NetAgent agent(o, *api, kernel->get());
  ServiceInformers informers(*api);

  std::unique_ptr<nft::NftnlTables> tables;
  std::unique_ptr<netagent::ServiceAgent> svc;
  if (services) {
    auto t = nft::NftnlTables::open();
    if (!t) return fail("nftables: " + t.status().to_string());
    tables = std::move(*t);
    netagent::ServiceOptions so;
    so.node_name = o.node_name;
    so.cluster_cidr = o.cluster_cidr;
    so.service_cidr = service_cidr;
    so.services = &informers.services;
    so.endpoints = &informers.endpoints;
    so.fast_path = o.fast_path;
    svc = std::make_unique<netagent::ServiceAgent>(so, tables.get());
  }
  std::unique_ptr<dns::DnsServer> dns_server;
  if (!cluster_dns.empty()) {
    dns::Options dopt;
    dopt.cluster_dns = cluster_dns;
    dopt.cluster_domain = cluster_domain;
    dopt.upstreams = dns_upstreams;
    dopt.service_cidr = service_cidr;
    dopt.cluster_cidr = o.cluster_cidr;
    dopt.services = &informers.services;
    dopt.endpoints = &informers.endpoints;
    dns_server = std::make_unique<dns::DnsServer>(*api, dopt);
  }
  std::unique_ptr<LateAnnouncer> announcer;
  if (lb_announce) {
    netagent::announce::Options ao;
    ao.node_name = o.node_name;
    ao.interface = o.iface;
    ao.underlay_ip = o.node_ip;
    ao.services = &informers.services;
    ao.endpoints = &informers.endpoints;
    auto lease = daemon::make_lease_client(*cc, ao.renew_deadline);
    if (!lease) return fail(lease.status().message());
    ao.lease_api = *lease;
    announcer = std::make_unique<LateAnnouncer>(*api, ao, &agent);
  }

  std::unique_ptr<daemon::StatusServer> http;
  if (sf.port != 0) {
    daemon::StatusEndpoints e;
    e.metrics = [&] {
      std::string m = agent.metrics_text();
      if (svc) m += svc->metrics_text();
      if (dns_server) m += dns_server->metrics_text();
      if (announcer) m += announcer->metrics_text();
      return m;
    };
    e.unhealthy_reason = [&] {
      if (!agent.healthy())
        return std::string("the sync loop has not run for two resync periods\n");
      if (svc && !svc->healthy())
        return std::string("the services sync has been failing for two full sync periods\n");
      return std::string();
    };
    auto s = daemon::StatusServer::start(sf.bind_address, sf.port, std::move(e));
    if (!s) return fail(s.status().message());
    http = std::move(*s);
  }
  // The shared informers stop last but before any of their users is destroyed (their handlers
  // call into them).
  auto stop_all = [&] {
    if (announcer) announcer->stop();
    if (dns_server) dns_server->stop();
    if (svc) svc->stop();
    agent.stop();
    informers.stop();
    if (http) http->shutdown();
  };
  if (auto s = agent.start(); !s) {
    stop_all();
    return fail(s.message());
  }
  if (svc) {
    if (auto s = svc->start(); !s) {
      stop_all();
      return fail(s.message());
    }
  }
  if (dns_server) {
    if (auto s = dns_server->start(); !s) {
      stop_all();
      return fail("cluster DNS: " + s.message());
    }
  }
  if (svc || dns_server || announcer) informers.start();  // after every user added its handlers
  if (announcer) announcer->start();
  spdlog::info(
      "skiff-netagent on node {} ({} backend) started; services {}, DNS {}, LB announce {}",
      o.node_name, backend, services ? "on" : "off", cluster_dns.empty() ? "off" : cluster_dns,
      lb_announce ? "on" : "off");

  int sig = signals.wait();
  // The kernel state stays: a restarted agent finds it as it wants it (traffic goes on).
  spdlog::info("signal {}: stopping (routes, device, rules and the DNS link stay in place)", sig);
  stop_all();
  return 0;
}
