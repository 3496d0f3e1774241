// Cluster DNS served by skiff-netagent on every node (no CoreDNS, no kube-dns Service).
//
// DnsServer answers the cluster domain from its own informers on Services and Endpoints
// (`<svc>.<ns>.svc.<domain>` A/SRV, headless endpoint IPs and hostnames, ExternalName CNAME,
// `<a-b-c-d>.<ns>.pod.<domain>`, PTR for the service and cluster CIDRs) and forwards every
// other name to the node's upstream resolvers. UDP and TCP on <cluster_dns>:<port>; the address
// is put on a dummy link `skiff.dns` (<ip>/32), created when missing (idempotent; no other
// link is touched). Answers come from an immutable zone snapshot swapped on informer events,
// so a query never waits for the API server. Asio stays in the .cc (own I/O thread).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace skiff::client {
class ApiClient;
class Informer;
}  // namespace skiff::client

namespace skiff::dns {

struct Options {
  std::string cluster_dns = "10.96.0.10";  // listen address (IPv4)
  std::string cluster_domain = "cluster.local";
  // "IP" or "IP:port" (port 53 when absent). Empty: the IPv4 nameservers of `resolv_conf`
  // that are not `cluster_dns` (the agent runs in the node's namespace, so a loopback stub
  // resolver such as 127.0.0.53 is fine). None at all: forwarded names get SERVFAIL.
  std::vector<std::string> upstreams;
  std::string resolv_conf = "/etc/resolv.conf";
  std::string service_cidr = "10.96.0.0/16";   // reverse zone answered locally
  std::string cluster_cidr = "10.244.0.0/16";  // reverse zone answered locally
  int port = 53;                               // tests use another
  // Create the dummy link `skiff.dns` holding <cluster_dns>/32. Tests that listen on an
  // address that already exists (loopback, a veth) turn it off.
  bool manage_link = true;
  int ttl_seconds = 5;
  int upstream_timeout_ms = 2000;   // per upstream try (UDP); then the next upstream
  int tcp_idle_timeout_ms = 10000;  // a TCP client idle this long is disconnected
  // Service and Endpoints informers shared with the agent's other components (not owned; both
  // or neither). start() adds handlers to them, so the owner starts them after start() and
  // stops them after stop(). Null: the server runs its own (when it has an API client).
  client::Informer* services = nullptr;
  client::Informer* endpoints = nullptr;
};

class DnsServer {
 public:
  DnsServer(std::shared_ptr<client::ApiClient> api, Options opts);
  ~DnsServer();  // stops
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  // Validates the options, ensures the link/address, binds UDP and TCP, starts the informers
  // and the I/O thread. Returns at once (does not wait for the first lists: until the
  // informers have synced, cluster names get SERVFAIL). An error says what failed and why.
  // `api` may be null (tests): the zone is then empty and synced, and only forwarding and the
  // apex records work.
  Status start();
  // Stops the informers and the I/O thread, closes the sockets. Leaves the link in place.
  // Idempotent. A stopped server cannot be started again (make a new one).
  void stop();

  // Prometheus text: skiff_dns_queries_total{type,rcode}, skiff_dns_forwarded_total,
  // skiff_dns_forward_errors_total, skiff_dns_request_duration_seconds (histogram),
  // skiff_dns_zone_records, skiff_dns_synced.
  std::string metrics_text() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace skiff::dns
