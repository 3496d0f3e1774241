// The service proxy of skiff-netagent: kube-proxy's nftables mode (pkg/proxy/nftables) on
// skiff's batch layer (netagent/nft), in table `ip skiff` only. See netagent/services/README.md.
//
// Two layers:
//  - the model (pure): Services + Endpoints (API JSON) -> a ServiceMap, one ServicePort per
//    Service port, keyed "ns/name:port-name/PROTO". Garbage never throws; it is skipped with a
//    reason.
//  - Proxier: keeps the kernel's `ip skiff` service chains and maps equal to a ServiceMap. Each
//    sync computes the difference from what it last applied and commits ONE batch holding only
//    the changed map elements and chains; a full re-assert (every chain and map of ours rebuilt
//    in one transaction, the table and `postrouting` kept) runs on the first sync, every
//    full_sync_period and after any failed commit. Established connections are never
//    disturbed: conntrack keeps their NAT whatever the rules do.
//
// Thread-safety: the model functions are pure and thread-safe; a Proxier must be used by one
// thread at a time (like the NftTables under it).
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "netagent/nft/nft.h"

namespace skiff::services {

// ---------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------

// IANA protocol numbers (the value `meta l4proto` compares with).
enum class Protocol : uint8_t { kTcp = 6, kUdp = 17, kSctp = 132 };
const char* protocol_name(Protocol p);  // "TCP", "UDP", "SCTP"

// An IPv4 address in host byte order.
using Ipv4 = uint32_t;
std::string ipv4_to_string(Ipv4 a);
// Strict dotted quad; false on anything else.
bool parse_ipv4(std::string_view text, Ipv4* out);

inline constexpr uint32_t kDefaultAffinityTimeoutSeconds = 10800;  // Kubernetes' default

struct Endpoint {
  Ipv4 ip = 0;
  uint16_t port = 0;
  bool local = false;  // its nodeName is this node
  auto operator<=>(const Endpoint&) const = default;
};

// One port of one Service, with its ready endpoints: everything the rules depend on.
struct ServicePort {
  std::string ns, name, port_name;  // port_name may be "" (single unnamed port)
  Protocol protocol = Protocol::kTcp;
  Ipv4 cluster_ip = 0;
  uint16_t port = 0;
  uint16_t node_port = 0;                 // 0: none
  std::vector<Ipv4> external_ips;         // spec.externalIPs, sorted, unique
  std::vector<Ipv4> load_balancer_ips;    // status.loadBalancer.ingress[].ip, sorted, unique
  bool external_policy_local = false;     // externalTrafficPolicy: Local
  bool internal_policy_local = false;     // internalTrafficPolicy: Local
  uint32_t affinity_timeout_seconds = 0;  // sessionAffinity ClientIP: its timeout; 0 = none
  std::vector<Endpoint> endpoints;        // ready addresses, sorted by (ip, port), unique

  bool operator==(const ServicePort&) const = default;
  // "ns/name:port-name/TCP" (the ServiceMap key).
  std::string key() const;
  // NodePort, externalIPs or LoadBalancer ingress: it has an `external-` chain.
  bool has_external() const {
    return node_port != 0 || !external_ips.empty() || !load_balancer_ips.empty();
  }
};

// Sorted by key, so one Service's ports ("ns/name:...") are contiguous.
using ServiceMap = std::map<std::string, ServicePort, std::less<>>;

// Something the model left out, and why ("default/web: spec.clusterIP \"10.96.x\" is not an
// IPv4 address"). Headless and ExternalName Services are not reported (they simply have no
// rules).
struct Skipped {
  std::string object;  // "ns/name" or "ns/name:port"
  std::string reason;
};

struct ModelOptions {
  std::string node_name;  // endpoints whose nodeName equals it are local
};

// The ServicePorts of one Service (core/v1 JSON) with its Endpoints (same ns/name; nullptr when
// there is none: every port then has no endpoints). Headless (clusterIP None/"") and
// ExternalName Services give none. Never throws; bad fields are skipped into `skipped` (may be
// nullptr). The endpoint port of a Service port is the Endpoints port with the same name (the
// only port when the Service has one unnamed port); an endpoint port with another protocol is
// ignored.
std::vector<ServicePort> service_ports(const nlohmann::json& service,
                                       const nlohmann::json* endpoints, const ModelOptions& opts,
                                       std::vector<Skipped>* skipped);

// The whole map from lists of Services and Endpoints (matched by namespace/name).
ServiceMap build_service_map(const std::vector<nlohmann::json>& services,
                             const std::vector<nlohmann::json>& endpoints, const ModelOptions& opts,
                             std::vector<Skipped>* skipped);

// Incremental form for informer events: replaces every entry of Service ns/name in *map with
// service_ports(*service, endpoints) (service == nullptr: the Service is gone, its entries are
// removed). Returns true when *map changed. O(ports of that Service + log N). When it changed
// and changed_keys is given, the keys of that Service before and after are appended to it (the
// hint Proxier::sync takes).
bool update_service(ServiceMap* map, std::string_view ns, std::string_view name,
                    const nlohmann::json* service, const nlohmann::json* endpoints,
                    const ModelOptions& opts, std::vector<Skipped>* skipped,
                    std::vector<std::string>* changed_keys = nullptr);

// ---------------------------------------------------------------------------------------------
// Names (kube-proxy's scheme; public for tests, bench and debugging)
// ---------------------------------------------------------------------------------------------

// "service-<8 chars>-ns/name/tcp/portname", "external-<8>-...", "endpoint-<8>-...__ip/port",
// "affinity-<8>-...__ip/port" (a set). The 8 characters are a hash of the rest, so a name
// shortened to fit the kernel's 255-byte limit stays unique.
std::string service_chain_name(const ServicePort& sp);
std::string external_chain_name(const ServicePort& sp);
std::string endpoint_chain_name(const ServicePort& sp, const Endpoint& ep);
std::string affinity_set_name(const ServicePort& sp, const Endpoint& ep);

// Static chains, sets and maps of the set-dispatch layout (created by every full sync; never
// deleted; `postrouting` belongs to netagent/nft's sync_masquerade and is never touched here).
// See README.md "Table layout".
inline constexpr char kChainNatPrerouting[] = "nat-prerouting";  // nat prerouting dstnat
inline constexpr char kChainNatOutput[] = "nat-output";          // nat output dstnat
inline constexpr char kChainNatHairpin[] = "nat-hairpin";        // nat postrouting srcnat - 1
inline constexpr char kChainFilterInput[] = "filter-input";
inline constexpr char kChainFilterForward[] = "filter-forward";
inline constexpr char kChainFilterOutput[] = "filter-output";
inline constexpr char kChainServices[] = "services";
inline constexpr char kChainNodePorts[] = "nodeports";
inline constexpr char kChainServiceDispatch[] = "service-dispatch";    // all-n / ilocal-n rules
inline constexpr char kChainNodePortDispatch[] = "nodeport-dispatch";  // np-all-n rules
inline constexpr char kChainExternalLocal[] = "external-local-dispatch";
inline constexpr char kChainNodePortExternalLocal[] = "np-external-local-dispatch";
inline constexpr char kChainMarkForMasquerade[] = "mark-for-masquerade";
inline constexpr char kChainReject[] = "reject-chain";
// Endpoint slots: (address . l4proto . port . slot) : (endpoint . port); slots 0..N-1 all
// ready endpoints, kLocalSlotBase + 0..L-1 the local ones.
inline constexpr char kMapServiceEndpoints[] = "service-endpoints";
inline constexpr char kMapNodePortEndpoints[] = "nodeport-endpoints";  // l4proto . port . slot
inline constexpr uint32_t kLocalSlotBase = 65536;
// Verdict maps to the per-Service chains, used only by Services with ClientIP affinity.
inline constexpr char kMapServiceIps[] = "service-ips";  // daddr . l4proto . dport : verdict
inline constexpr char kMapServiceNodePorts[] = "service-nodeports";  // l4proto . dport : verdict
// Plain sets (changing them never makes the kernel re-validate the chain graph).
inline constexpr char kSetNoEndpointServices[] = "noep-services";    // -> reject
inline constexpr char kSetNoEndpointNodePorts[] = "noep-nodeports";  // -> reject
inline constexpr char kSetClusterMasq[] = "cluster-masq";      // ClusterIP keys with endpoints
inline constexpr char kSetExternalMasq[] = "external-masq";    // external keys, ETP Cluster
inline constexpr char kSetExternalLocal[] = "external-local";  // external keys, ETP Local
inline constexpr char kSetNodePortMasq[] = "np-masq";
inline constexpr char kSetNodePortLocal[] = "np-local";
inline constexpr char kSetHairpin[] = "hairpin";  // endpoint . endpoint

// ---------------------------------------------------------------------------------------------
// Proxier
// ---------------------------------------------------------------------------------------------

struct ProxierOptions {
  // Traffic to a ClusterIP from outside this CIDR is masqueraded (kube-proxy's
  // --cluster-cidr). "" = masquerade nothing by source (hairpin and external still are).
  std::string cluster_cidr = "10.244.0.0/16";
  // A full re-assert at least this often (also at the first sync and after a failed commit).
  std::chrono::milliseconds full_sync_period{60'000};
  // The clock (tests inject a fake one); default steady_clock::now.
  std::function<std::chrono::steady_clock::time_point()> now;
};

// A UDP flow whose conntrack entry the agent should delete after a sync (conntrack would keep
// sending it to an endpoint that is gone).
struct StaleUdpFlow {
  // The address the client used: the ClusterIP, an external IP or an LB IP; 0 = any local
  // address of the node (a NodePort: then service_port is the node port).
  Ipv4 service_ip = 0;
  uint16_t service_port = 0;
  Ipv4 endpoint_ip = 0;  // the removed endpoint
  uint16_t endpoint_port = 0;
  bool operator==(const StaleUdpFlow&) const = default;
};

struct SyncResult {
  // Every chain and set the proxier wrote (per-count dispatch chains, affinity Services'
  // chains) and elements of every set and map count below.
  bool full = false;         // a full re-assert
  size_t ports_added = 0;    // ServicePorts new since the last applied sync
  size_t ports_changed = 0;  // ServicePorts whose rules changed
  size_t ports_removed = 0;
  size_t chains_written = 0;  // chains created or flushed and refilled
  size_t chains_deleted = 0;
  size_t elements_added = 0;  // map/set elements added
  size_t elements_deleted = 0;
  size_t batch_ops = 0;                 // operations in the committed batch (0: nothing committed)
  std::vector<StaleUdpFlow> stale_udp;  // for conntrack cleanup (see StaleUdpFlow)
  std::chrono::nanoseconds build_time{0};   // diff + batch construction
  std::chrono::nanoseconds commit_time{0};  // NftTables::commit
};

class Proxier {
 public:
  // `tables` is not owned and must outlive the Proxier. Fails (kInvalid) on a bad cluster_cidr.
  [[nodiscard]] static Result<std::unique_ptr<Proxier>> create(nft::NftTables& tables,
                                                               ProxierOptions opts);
  ~Proxier();
  Proxier(const Proxier&) = delete;
  Proxier& operator=(const Proxier&) = delete;

  // Makes the kernel match `desired`: incremental (only the ServicePorts that differ from the
  // last applied ones) unless a full re-assert is due. One batch; nothing is committed when
  // nothing changed (batch_ops == 0). On failure the kernel kept the previous ruleset, the
  // Status names the refused operation, and the next sync is a full re-assert.
  //
  // `changed` (optional) lists the keys that may differ from the last sync (collected from
  // update_service); the O(N) walk comparing the whole map is then skipped, so an event costs
  // O(changed). Keys not listed are assumed unchanged until the next full re-assert, which
  // always walks everything and ignores the hint.
  // With `changed`, only those keys of `desired` are read unless the sync is a full one: a
  // caller may then pass a map holding just the changed Services' ports, provided it checks
  // full_due() first and sets a full_sync_period it will not reach (it schedules full syncs).
  [[nodiscard]] Result<SyncResult> sync(const ServiceMap& desired,
                                        const std::vector<std::string>* changed = nullptr);
  // The same with a map the Proxier may keep: a full re-assert moves it into applied() instead
  // of copying it (one ServiceMap in memory, not two).
  [[nodiscard]] Result<SyncResult> sync(ServiceMap&& desired,
                                        const std::vector<std::string>* changed = nullptr);
  // Makes the next sync a full re-assert (e.g. the agent's resync timer or a suspected drift).
  void request_full_sync() { full_due_ = true; }
  // Whether the next sync is a full re-assert whatever it is given: the first sync, after a
  // failed commit or request_full_sync() (the periodic one aside). It then needs the whole map.
  bool full_due() const { return full_due_; }
  // What the last successful sync applied.
  const ServiceMap& applied() const { return applied_; }

 private:
  struct State;
  Proxier(nft::NftTables& tables, ProxierOptions opts);
  Result<SyncResult> sync_impl(const ServiceMap& desired, const std::vector<std::string>* changed,
                               ServiceMap* take);

  nft::NftTables& tables_;
  ProxierOptions opts_;
  std::unique_ptr<State> state_;
  ServiceMap applied_;
  bool full_due_ = true;
  std::chrono::steady_clock::time_point last_full_{};
};

}  // namespace skiff::services
