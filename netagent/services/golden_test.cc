// The reference Services of testdata.h and the tables they must produce in the set-dispatch
// layout (README "Table layout"). The expected text was reviewed element by element against the
// layout's semantics (kube-proxy's behaviour per Service: masquerade, ETP/ITP Local, reject,
// affinity chains); the kernel test (kernel_test.cc) checks that the kernel lists the same text.
#include "netagent/services/testdata.h"

namespace skiff::services::testdata {
namespace {

using nlohmann::json;

json ports(const std::string& name, int port, const std::string& proto = "TCP", int node_port = 0) {
  json p = {{"name", name}, {"port", port}, {"protocol", proto}};
  if (node_port) p["nodePort"] = node_port;
  return json::array({p});
}

// The static chains every table has (compared with testdata::canonical: block order is free).
constexpr char kStatic[] = R"(  chain mark-for-masquerade {
    meta mark set meta mark | 0x00004000
  }

  chain reject-chain {
    reject with tcp reset
    reject
  }

  chain services {
    ip daddr . meta l4proto . th dport vmap @service-ips
    ip daddr . meta l4proto . th dport @cluster-masq ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x00004000
    ip daddr . meta l4proto . th dport @external-masq meta mark set meta mark | 0x00004000
    fib saddr type local ip daddr . meta l4proto . th dport @external-local meta mark set meta mark | 0x00004000
    ip saddr != 10.244.0.0/16 fib saddr type != local jump external-local-dispatch
    goto service-dispatch
  }

  chain nodeports {
    meta l4proto . th dport vmap @service-nodeports
    meta l4proto . th dport @np-masq meta mark set meta mark | 0x00004000
    fib saddr type local meta l4proto . th dport @np-local meta mark set meta mark | 0x00004000
    ip saddr != 10.244.0.0/16 fib saddr type != local jump np-external-local-dispatch
    goto nodeport-dispatch
  }

  chain nat-prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    jump services
    fib daddr type local ip daddr != 127.0.0.0/8 jump nodeports
  }

  chain nat-output {
    type nat hook output priority -100; policy accept;
    jump services
    fib daddr type local ip daddr != 127.0.0.0/8 jump nodeports
  }

  chain nat-hairpin {
    type nat hook postrouting priority srcnat - 1; policy accept;
    ct status dnat ip saddr . ip daddr @hairpin meta mark set meta mark | 0x00004000
  }

  chain filter-input {
    type filter hook input priority filter; policy accept;
    ct state new ip daddr . meta l4proto . th dport @noep-services goto reject-chain
    ct state new fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport @noep-nodeports goto reject-chain
  }

  chain filter-forward {
    type filter hook forward priority filter; policy accept;
    ct state new ip daddr . meta l4proto . th dport @noep-services goto reject-chain
  }

  chain filter-output {
    type filter hook output priority filter; policy accept;
    ct state new ip daddr . meta l4proto . th dport @noep-services goto reject-chain
    ct state new fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport @noep-nodeports goto reject-chain
  }
)";

// The listing of table ip skiff: the static chains plus `rest` (every set and map, the dispatch
// chains, pick chains and affinity Services' chains), two-space indents (whitespace is ignored).
std::string listing(const std::string& rest) {
  return "table ip skiff {\n" + rest + "\n\n" + kStatic + "}\n";
}

}  // namespace

std::string canonical(const std::string& listing) {
  std::vector<std::string> blocks;
  std::vector<std::string> cur;
  std::string head;
  size_t pos = 0;
  while (pos < listing.size()) {
    size_t nl = listing.find('\n', pos);
    if (nl == std::string::npos) nl = listing.size();
    std::string line = listing.substr(pos, nl - pos);
    pos = nl + 1;
    // Block boundaries: a line indented by one tab (or two spaces) opening or closing a block.
    if (line.rfind("  ", 0) == 0 && line.rfind("    ", 0) != 0) line = "\t" + line.substr(2);
    bool open = (line.rfind("\tchain ", 0) == 0 || line.rfind("\tmap ", 0) == 0 ||
                 line.rfind("\tset ", 0) == 0);
    if (open) cur.clear();
    cur.push_back(line);
    if (line == "\t}") {
      std::string text;
      for (const std::string& l : cur) text += l + "\n";
      blocks.push_back(nft::normalize_listing(text));
    }
    if (line.rfind("table ", 0) == 0) head = line;
  }
  std::sort(blocks.begin(), blocks.end());
  std::string out = head + "\n";
  for (const std::string& b : blocks) out += b + "\n";
  return out;
}

std::vector<Golden> goldens() {
  std::vector<Golden> out;
  {
    ApiObjects o;
    o.add("web", {{"clusterIP", "10.96.0.20"}, {"ports", ports("http", 80)}},
          {{"10.244.1.5", "node1"}, {"10.244.2.5", "node2"}, {"10.244.3.5", "node3"}}, "http",
          8080);
    out.push_back({"clusterip-3-endpoints", o.map(), listing(R"(  map service-ips {
    type ipv4_addr . inet_proto . inet_service : verdict
  }

  map service-nodeports {
    type inet_proto . inet_service : verdict
  }

  set noep-services {
    type ipv4_addr . inet_proto . inet_service
  }

  set noep-nodeports {
    type inet_proto . inet_service
  }

  set cluster-masq {
    type ipv4_addr . inet_proto . inet_service
    elements = { 10.96.0.20 . tcp . 80 }
  }

  set external-masq {
    type ipv4_addr . inet_proto . inet_service
  }

  set external-local {
    type ipv4_addr . inet_proto . inet_service
  }

  set np-masq {
    type inet_proto . inet_service
  }

  set np-local {
    type inet_proto . inet_service
  }

  map service-endpoints {
    typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport
    elements = { 10.96.0.20 . tcp . 80 . 0 : 10.244.1.5 . 8080,
           10.96.0.20 . tcp . 80 . 1 : 10.244.2.5 . 8080,
           10.96.0.20 . tcp . 80 . 2 : 10.244.3.5 . 8080 }
  }

  map nodeport-endpoints {
    typeof meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport
  }

  set hairpin {
    type ipv4_addr . ipv4_addr
    elements = { 10.244.1.5 . 10.244.1.5,
           10.244.2.5 . 10.244.2.5,
           10.244.3.5 . 10.244.3.5 }
  }

  set all-3 {
    type ipv4_addr . inet_proto . inet_service
    elements = { 10.96.0.20 . tcp . 80 }
  }

  chain service-dispatch {
    ip daddr . meta l4proto . th dport @all-3 goto pick-3
  }

  chain nodeport-dispatch {
  }

  chain external-local-dispatch {
  }

  chain np-external-local-dispatch {
  }

  chain pick-3 {
    dnat ip to ip daddr . meta l4proto . tcp dport . numgen random mod 3 map @service-endpoints
    dnat ip to ip daddr . meta l4proto . udp dport . numgen random mod 3 map @service-endpoints
    dnat ip to ip daddr . meta l4proto . sctp dport . numgen random mod 3 map @service-endpoints
  }
)")});
  }
  {
    ApiObjects o;
    o.add("np",
          {{"clusterIP", "10.96.0.21"},
           {"type", "NodePort"},
           {"ports", ports("http", 80, "TCP", 30080)}},
          {{"10.244.1.6", "node1"}, {"10.244.2.6", "node2"}}, "http", 8080);
    out.push_back({"nodeport", o.map(), listing(R"(  map service-ips {
    type ipv4_addr . inet_proto . inet_service : verdict
  }

  map service-nodeports {
    type inet_proto . inet_service : verdict
  }

  set noep-services {
    type ipv4_addr . inet_proto . inet_service
  }

  set noep-nodeports {
    type inet_proto . inet_service
  }

  set cluster-masq {
    type ipv4_addr . inet_proto . inet_service
    elements = { 10.96.0.21 . tcp . 80 }
  }

  set external-masq {
    type ipv4_addr . inet_proto . inet_service
  }

  set external-local {
    type ipv4_addr . inet_proto . inet_service
  }

  set np-masq {
    type inet_proto . inet_service
    elements = { tcp . 30080 }
  }

  set np-local {
    type inet_proto . inet_service
  }

  map service-endpoints {
    typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport
    elements = { 10.96.0.21 . tcp . 80 . 0 : 10.244.1.6 . 8080,
           10.96.0.21 . tcp . 80 . 1 : 10.244.2.6 . 8080 }
  }

  map nodeport-endpoints {
    typeof meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport
    elements = { tcp . 30080 . 0 : 10.244.1.6 . 8080,
           tcp . 30080 . 1 : 10.244.2.6 . 8080 }
  }

  set hairpin {
    type ipv4_addr . ipv4_addr
    elements = { 10.244.1.6 . 10.244.1.6,
           10.244.2.6 . 10.244.2.6 }
  }

  set all-2 {
    type ipv4_addr . inet_proto . inet_service
    elements = { 10.96.0.21 . tcp . 80 }
  }

  set np-all-2 {
    type inet_proto . inet_service
    elements = { tcp . 30080 }
  }

  chain service-dispatch {
    ip daddr . meta l4proto . th dport @all-2 goto pick-2
  }

  chain nodeport-dispatch {
    meta l4proto . th dport @np-all-2 goto np-pick-2
  }

  chain external-local-dispatch {
  }

  chain np-external-local-dispatch {
  }

  chain pick-2 {
    dnat ip to ip daddr . meta l4proto . tcp dport . numgen random mod 2 map @service-endpoints
    dnat ip to ip daddr . meta l4proto . udp dport . numgen random mod 2 map @service-endpoints
    dnat ip to ip daddr . meta l4proto . sctp dport . numgen random mod 2 map @service-endpoints
  }

  chain np-pick-2 {
    dnat ip to meta l4proto . tcp dport . numgen random mod 2 map @nodeport-endpoints
    dnat ip to meta l4proto . udp dport . numgen random mod 2 map @nodeport-endpoints
    dnat ip to meta l4proto . sctp dport . numgen random mod 2 map @nodeport-endpoints
  }
)")});
  }
  {
    ApiObjects o;
    o.add("lb",
          {{"clusterIP", "10.96.0.22"},
           {"type", "LoadBalancer"},
           {"externalIPs", {"192.0.2.10"}},
           {"ports", ports("", 80, "TCP", 30081)}},
          {{"10.244.2.7", "node2"}}, "", 80, "TCP",
          {{"loadBalancer", {{"ingress", {{{"ip", "10.250.0.200"}}}}}}});
    out.push_back({"loadbalancer-externalips", o.map(), listing(R"(  map service-ips {
    type ipv4_addr . inet_proto . inet_service : verdict
  }

  map service-nodeports {
    type inet_proto . inet_service : verdict
  }

  set noep-services {
    type ipv4_addr . inet_proto . inet_service
  }

  set noep-nodeports {
    type inet_proto . inet_service
  }

  set cluster-masq {
    type ipv4_addr . inet_proto . inet_service
    elements = { 10.96.0.22 . tcp . 80 }
  }

  set external-masq {
    type ipv4_addr . inet_proto . inet_service
    elements = { 10.250.0.200 . tcp . 80,
           192.0.2.10 . tcp . 80 }
  }

  set external-local {
    type ipv4_addr . inet_proto . inet_service
  }

  set np-masq {
    type inet_proto . inet_service
    elements = { tcp . 30081 }
  }

  set np-local {
    type inet_proto . inet_service
  }

  map service-endpoints {
    typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport
    elements = { 10.96.0.22 . tcp . 80 . 0 : 10.244.2.7 . 80,
           10.250.0.200 . tcp . 80 . 0 : 10.244.2.7 . 80,
           192.0.2.10 . tcp . 80 . 0 : 10.244.2.7 . 80 }
  }

  map nodeport-endpoints {
    typeof meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport
    elements = { tcp . 30081 . 0 : 10.244.2.7 . 80 }
  }

  set hairpin {
    type ipv4_addr . ipv4_addr
    elements = { 10.244.2.7 . 10.244.2.7 }
  }

  set all-1 {
    type ipv4_addr . inet_proto . inet_service
    elements = { 10.96.0.22 . tcp . 80,
           10.250.0.200 . tcp . 80,
           192.0.2.10 . tcp . 80 }
  }

  set np-all-1 {
    type inet_proto . inet_service
    elements = { tcp . 30081 }
  }

  chain service-dispatch {
    ip daddr . meta l4proto . th dport @all-1 goto pick-1
  }

  chain nodeport-dispatch {
    meta l4proto . th dport @np-all-1 goto np-pick-1
  }

  chain external-local-dispatch {
  }

  chain np-external-local-dispatch {
  }

  chain pick-1 {
    dnat ip to ip daddr . meta l4proto . tcp dport . numgen random mod 1 map @service-endpoints
    dnat ip to ip daddr . meta l4proto . udp dport . numgen random mod 1 map @service-endpoints
    dnat ip to ip daddr . meta l4proto . sctp dport . numgen random mod 1 map @service-endpoints
  }

  chain np-pick-1 {
    dnat ip to meta l4proto . tcp dport . numgen random mod 1 map @nodeport-endpoints
    dnat ip to meta l4proto . udp dport . numgen random mod 1 map @nodeport-endpoints
    dnat ip to meta l4proto . sctp dport . numgen random mod 1 map @nodeport-endpoints
  }
)")});
  }
  {
    ApiObjects o;
    o.add("local",
          {{"clusterIP", "10.96.0.23"},
           {"type", "NodePort"},
           {"externalTrafficPolicy", "Local"},
           {"ports", ports("http", 80, "TCP", 30082)}},
          {{"10.244.1.8", "node1"}, {"10.244.2.8", "node2"}}, "http", 8080);
    o.add("remote",
          {{"clusterIP", "10.96.0.24"},
           {"type", "NodePort"},
           {"externalTrafficPolicy", "Local"},
           {"ports", ports("http", 80, "TCP", 30083)}},
          {{"10.244.2.9", "node2"}}, "http", 8080);
    out.push_back({"external-traffic-policy-local", o.map(), listing(R"(  map service-ips {
    type ipv4_addr . inet_proto . inet_service : verdict
  }

  map service-nodeports {
    type inet_proto . inet_service : verdict
  }

  set noep-services {
    type ipv4_addr . inet_proto . inet_service
  }

  set noep-nodeports {
    type inet_proto . inet_service
  }

  set cluster-masq {
    type ipv4_addr . inet_proto . inet_service
    elements = { 10.96.0.23 . tcp . 80,
           10.96.0.24 . tcp . 80 }
  }

  set external-masq {
    type ipv4_addr . inet_proto . inet_service
  }

  set external-local {
    type ipv4_addr . inet_proto . inet_service
  }

  set np-masq {
    type inet_proto . inet_service
  }

  set np-local {
    type inet_proto . inet_service
    elements = { tcp . 30082,
           tcp . 30083 }
  }

  map service-endpoints {
    typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport
    elements = { 10.96.0.23 . tcp . 80 . 0 : 10.244.1.8 . 8080,
           10.96.0.23 . tcp . 80 . 1 : 10.244.2.8 . 8080,
           10.96.0.24 . tcp . 80 . 0 : 10.244.2.9 . 8080 }
  }

  map nodeport-endpoints {
    typeof meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport
    elements = { tcp . 30082 . 0 : 10.244.1.8 . 8080,
           tcp . 30082 . 1 : 10.244.2.8 . 8080,
           tcp . 30082 . 65536 : 10.244.1.8 . 8080,
           tcp . 30083 . 0 : 10.244.2.9 . 8080 }
  }

  set hairpin {
    type ipv4_addr . ipv4_addr
    elements = { 10.244.1.8 . 10.244.1.8,
           10.244.2.8 . 10.244.2.8,
           10.244.2.9 . 10.244.2.9 }
  }

  set all-1 {
    type ipv4_addr . inet_proto . inet_service
    elements = { 10.96.0.24 . tcp . 80 }
  }

  set all-2 {
    type ipv4_addr . inet_proto . inet_service
    elements = { 10.96.0.23 . tcp . 80 }
  }

  set np-all-1 {
    type inet_proto . inet_service
    elements = { tcp . 30083 }
  }

  set np-all-2 {
    type inet_proto . inet_service
    elements = { tcp . 30082 }
  }

  set np-elocal-0 {
    type inet_proto . inet_service
    elements = { tcp . 30083 }
  }

  set np-elocal-1 {
    type inet_proto . inet_service
    elements = { tcp . 30082 }
  }

  chain service-dispatch {
    ip daddr . meta l4proto . th dport @all-1 goto pick-1
    ip daddr . meta l4proto . th dport @all-2 goto pick-2
  }

  chain nodeport-dispatch {
    meta l4proto . th dport @np-all-1 goto np-pick-1
    meta l4proto . th dport @np-all-2 goto np-pick-2
  }

  chain external-local-dispatch {
  }

  chain np-external-local-dispatch {
    meta l4proto . th dport @np-elocal-0 drop comment "no local endpoints"
    meta l4proto . th dport @np-elocal-1 goto np-pick-local-1
  }

  chain pick-1 {
    dnat ip to ip daddr . meta l4proto . tcp dport . numgen random mod 1 map @service-endpoints
    dnat ip to ip daddr . meta l4proto . udp dport . numgen random mod 1 map @service-endpoints
    dnat ip to ip daddr . meta l4proto . sctp dport . numgen random mod 1 map @service-endpoints
  }

  chain pick-2 {
    dnat ip to ip daddr . meta l4proto . tcp dport . numgen random mod 2 map @service-endpoints
    dnat ip to ip daddr . meta l4proto . udp dport . numgen random mod 2 map @service-endpoints
    dnat ip to ip daddr . meta l4proto . sctp dport . numgen random mod 2 map @service-endpoints
  }

  chain np-pick-1 {
    dnat ip to meta l4proto . tcp dport . numgen random mod 1 map @nodeport-endpoints
    dnat ip to meta l4proto . udp dport . numgen random mod 1 map @nodeport-endpoints
    dnat ip to meta l4proto . sctp dport . numgen random mod 1 map @nodeport-endpoints
  }

  chain np-pick-2 {
    dnat ip to meta l4proto . tcp dport . numgen random mod 2 map @nodeport-endpoints
    dnat ip to meta l4proto . udp dport . numgen random mod 2 map @nodeport-endpoints
    dnat ip to meta l4proto . sctp dport . numgen random mod 2 map @nodeport-endpoints
  }

  chain np-pick-local-1 {
    dnat ip to meta l4proto . tcp dport . numgen random mod 1 offset 65536 map @nodeport-endpoints
    dnat ip to meta l4proto . udp dport . numgen random mod 1 offset 65536 map @nodeport-endpoints
    dnat ip to meta l4proto . sctp dport . numgen random mod 1 offset 65536 map @nodeport-endpoints
  }
)")});
  }
  {
    ApiObjects o;
    o.add("empty",
          {{"clusterIP", "10.96.0.25"},
           {"type", "NodePort"},
           {"ports", ports("http", 80, "TCP", 30084)}},
          {}, "http", 8080);
    out.push_back({"no-endpoints-reject", o.map(), listing(R"(  map service-ips {
    type ipv4_addr . inet_proto . inet_service : verdict
  }

  map service-nodeports {
    type inet_proto . inet_service : verdict
  }

  set noep-services {
    type ipv4_addr . inet_proto . inet_service
    elements = { 10.96.0.25 . tcp . 80 }
  }

  set noep-nodeports {
    type inet_proto . inet_service
    elements = { tcp . 30084 }
  }

  set cluster-masq {
    type ipv4_addr . inet_proto . inet_service
  }

  set external-masq {
    type ipv4_addr . inet_proto . inet_service
  }

  set external-local {
    type ipv4_addr . inet_proto . inet_service
  }

  set np-masq {
    type inet_proto . inet_service
  }

  set np-local {
    type inet_proto . inet_service
  }

  map service-endpoints {
    typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport
  }

  map nodeport-endpoints {
    typeof meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport
  }

  set hairpin {
    type ipv4_addr . ipv4_addr
  }

  chain service-dispatch {
  }

  chain nodeport-dispatch {
  }

  chain external-local-dispatch {
  }

  chain np-external-local-dispatch {
  }
)")});
  }
  {
    ApiObjects o;
    o.add("sticky",
          {{"clusterIP", "10.96.0.26"},
           {"sessionAffinity", "ClientIP"},
           {"sessionAffinityConfig", {{"clientIP", {{"timeoutSeconds", 300}}}}},
           {"ports", ports("http", 80)}},
          {{"10.244.1.10", "node1"}, {"10.244.2.10", "node2"}}, "http", 8080);
    out.push_back({"session-affinity", o.map(), listing(R"(  map service-ips {
    type ipv4_addr . inet_proto . inet_service : verdict
    elements = { 10.96.0.26 . tcp . 80 : goto service-LBIPX4XU-default/sticky/tcp/http }
  }

  map service-nodeports {
    type inet_proto . inet_service : verdict
  }

  set noep-services {
    type ipv4_addr . inet_proto . inet_service
  }

  set noep-nodeports {
    type inet_proto . inet_service
  }

  set cluster-masq {
    type ipv4_addr . inet_proto . inet_service
  }

  set external-masq {
    type ipv4_addr . inet_proto . inet_service
  }

  set external-local {
    type ipv4_addr . inet_proto . inet_service
  }

  set np-masq {
    type inet_proto . inet_service
  }

  set np-local {
    type inet_proto . inet_service
  }

  map service-endpoints {
    typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport
  }

  map nodeport-endpoints {
    typeof meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport
  }

  set hairpin {
    type ipv4_addr . ipv4_addr
    elements = { 10.244.1.10 . 10.244.1.10,
           10.244.2.10 . 10.244.2.10 }
  }

  set affinity-5ZOHLYQX-default/sticky/tcp/http__10.244.2.10/8080 {
    type ipv4_addr
    size 65535
    flags dynamic,timeout
    timeout 5m
  }

  set affinity-GWANOPQG-default/sticky/tcp/http__10.244.1.10/8080 {
    type ipv4_addr
    size 65535
    flags dynamic,timeout
    timeout 5m
  }

  chain service-dispatch {
  }

  chain nodeport-dispatch {
  }

  chain external-local-dispatch {
  }

  chain np-external-local-dispatch {
  }

  chain endpoint-BZZJNP2N-default/sticky/tcp/http__10.244.1.10/8080 {
    ip saddr 10.244.1.10 meta mark set meta mark | 0x00004000
    update @affinity-GWANOPQG-default/sticky/tcp/http__10.244.1.10/8080 { ip saddr }
    meta l4proto tcp dnat to 10.244.1.10:8080
  }

  chain endpoint-EKSTVVSK-default/sticky/tcp/http__10.244.2.10/8080 {
    ip saddr 10.244.2.10 meta mark set meta mark | 0x00004000
    update @affinity-5ZOHLYQX-default/sticky/tcp/http__10.244.2.10/8080 { ip saddr }
    meta l4proto tcp dnat to 10.244.2.10:8080
  }

  chain service-LBIPX4XU-default/sticky/tcp/http {
    ip daddr 10.96.0.26 ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x00004000
    ip saddr @affinity-GWANOPQG-default/sticky/tcp/http__10.244.1.10/8080 goto endpoint-BZZJNP2N-default/sticky/tcp/http__10.244.1.10/8080
    ip saddr @affinity-5ZOHLYQX-default/sticky/tcp/http__10.244.2.10/8080 goto endpoint-EKSTVVSK-default/sticky/tcp/http__10.244.2.10/8080
    numgen random mod 2 vmap { 0 : goto endpoint-BZZJNP2N-default/sticky/tcp/http__10.244.1.10/8080, 1 : goto endpoint-EKSTVVSK-default/sticky/tcp/http__10.244.2.10/8080 }
  }
)")});
  }
  {
    ApiObjects o;
    o.add("headless", {{"clusterIP", "None"}, {"ports", ports("http", 80)}},
          {{"10.244.1.11", "node1"}}, "http", 8080);
    o.add("dns", {{"clusterIP", "10.96.0.27"}, {"ports", ports("dns", 53, "UDP")}},
          {{"10.244.1.12", "node1"}}, "dns", 5353, "UDP");
    out.push_back({"headless-skipped-and-udp", o.map(), listing(R"(  map service-ips {
    type ipv4_addr . inet_proto . inet_service : verdict
  }

  map service-nodeports {
    type inet_proto . inet_service : verdict
  }

  set noep-services {
    type ipv4_addr . inet_proto . inet_service
  }

  set noep-nodeports {
    type inet_proto . inet_service
  }

  set cluster-masq {
    type ipv4_addr . inet_proto . inet_service
    elements = { 10.96.0.27 . udp . 53 }
  }

  set external-masq {
    type ipv4_addr . inet_proto . inet_service
  }

  set external-local {
    type ipv4_addr . inet_proto . inet_service
  }

  set np-masq {
    type inet_proto . inet_service
  }

  set np-local {
    type inet_proto . inet_service
  }

  map service-endpoints {
    typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport
    elements = { 10.96.0.27 . udp . 53 . 0 : 10.244.1.12 . 5353 }
  }

  map nodeport-endpoints {
    typeof meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport
  }

  set hairpin {
    type ipv4_addr . ipv4_addr
    elements = { 10.244.1.12 . 10.244.1.12 }
  }

  set all-1 {
    type ipv4_addr . inet_proto . inet_service
    elements = { 10.96.0.27 . udp . 53 }
  }

  chain service-dispatch {
    ip daddr . meta l4proto . th dport @all-1 goto pick-1
  }

  chain nodeport-dispatch {
  }

  chain external-local-dispatch {
  }

  chain np-external-local-dispatch {
  }

  chain pick-1 {
    dnat ip to ip daddr . meta l4proto . tcp dport . numgen random mod 1 map @service-endpoints
    dnat ip to ip daddr . meta l4proto . udp dport . numgen random mod 1 map @service-endpoints
    dnat ip to ip daddr . meta l4proto . sctp dport . numgen random mod 1 map @service-endpoints
  }
)")});
  }
  return out;
}

}  // namespace skiff::services::testdata

// Not a test: prints each reference table as the fake lists it (to review a layout change).
#include <catch2/catch.hpp>
#include <cstdio>

#include "netagent/nft/fake.h"

TEST_CASE("print the reference tables", "[.][golden-print]") {
  using namespace skiff::services;
  for (const testdata::Golden& g : testdata::goldens()) {
    skiff::nft::FakeNftTables fake;
    ProxierOptions o;
    auto p = Proxier::create(fake, o);
    REQUIRE(p.is_ok());
    REQUIRE(p.value()->sync(g.map).is_ok());
    std::printf("==== %s\n%s", g.name.c_str(), fake.list().c_str());
  }
}
