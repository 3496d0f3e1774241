// Proxier: the set-dispatch layout (README "Table layout"). Each ServicePort becomes elements
// of sets and maps (a PortPlan: ElemPlans, plain data); the chains are static, plus one small
// pick chain per distinct endpoint count, plus kube-proxy's per-Service chains only for
// Services with ClientIP affinity. An incremental sync diffs the plans of the changed ports
// and sends element deletes and adds, which the kernel applies without re-validating the chain
// graph (perf/README.md); only a new endpoint count or an affinity Service adds rules.
//
// Only the ServicePorts that differ from the last applied ones are planned on an incremental
// sync (O(changed) plans, strings and batch operations; the walk that finds them compares
// structs, no strings are built for unchanged ports).
#include "netagent/services/proxier.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "netagent/nft/skiff_table.h"

namespace skiff::services {
namespace {

using nft::Batch;
using nft::Expr;
using nft::Rule;
using nft::Verdict;
using nft::VerdictCode;

// ---- Names ----

uint64_t fnv1a(std::string_view s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// 8 base32 characters of the hash (kube-proxy uses 8 of sha256's; any stable spread will do).
void append_hash(std::string* out, uint64_t h) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  for (int i = 0; i < 8; ++i) out->push_back(kAlphabet[(h >> (5 * i)) & 31]);
}

constexpr size_t kMaxName = 255;  // NFT_NAME_MAXLEN - 1

std::string lower_proto(Protocol p) {
  switch (p) {
    case Protocol::kTcp:
      return "tcp";
    case Protocol::kUdp:
      return "udp";
    case Protocol::kSctp:
      return "sctp";
  }
  return "?";
}

// "ns/name/tcp/portname"
std::string port_base(const ServicePort& sp) {
  std::string b;
  b.reserve(sp.ns.size() + sp.name.size() + sp.port_name.size() + 8);
  b.append(sp.ns).append("/").append(sp.name).append("/").append(lower_proto(sp.protocol));
  b.append("/").append(sp.port_name);
  return b;
}

std::string endpoint_base(const ServicePort& sp, const Endpoint& ep) {
  std::string b = port_base(sp);
  b.append("__").append(ipv4_to_string(ep.ip)).append("/").append(std::to_string(ep.port));
  return b;
}

std::string hashed_name(std::string_view prefix, const std::string& base, uint64_t h) {
  std::string n;
  n.reserve(prefix.size() + 9 + base.size());
  n.append(prefix);
  append_hash(&n, h);
  n.append("-").append(base);
  if (n.size() > kMaxName) n.resize(kMaxName);  // the hash keeps shortened names unique
  return n;
}

// ---- Element plans ----
//
// Everything that changes with Services and endpoints is an element of a set or map of the
// table. An ElemPlan is one such element as plain data (no strings but a vmap's chain), so a
// port's elements are computed, compared and diffed cheaply; to_element() makes the nft form.

enum class SetKind : uint8_t {
  // Static (one each).
  kServiceIps,     // vmap: affinity Services' address -> goto their chain
  kNodePorts,      // vmap: affinity Services' node port -> goto their external chain
  kNoEpServices,   // address keys of Services without endpoints -> reject
  kNoEpNodePorts,  // node ports of Services without endpoints -> reject
  kClusterMasq,    // ClusterIP keys with endpoints (masquerade from outside the pod CIDR)
  kExternalMasq,   // external keys, ETP Cluster (always masquerade)
  kExternalLocal,  // external keys, ETP Local (masquerade the node's own traffic)
  kNpMasq,         // node ports, ETP Cluster
  kNpLocal,        // node ports, ETP Local
  kSvcEndpoints,   // map: address key . slot -> endpoint . port
  kNpEndpoints,    // map: node port key . slot -> endpoint . port
  // Per endpoint count n (one set, and a dispatch rule, per n present).
  kAll,      // all-n: address keys dispatched among n endpoints (pick-n)
  kILocal,   // ilocal-n: ClusterIP keys of ITP Local Services, n local endpoints (0: drop)
  kELocal,   // elocal-n: external keys of ETP Local Services, n local endpoints (0: drop)
  kNpAll,    // np-all-n
  kNpELocal  // np-elocal-n
};
constexpr int kStaticSets = static_cast<int>(SetKind::kAll);

bool is_count_set(SetKind k) { return k >= SetKind::kAll; }
bool is_nodeport_set(SetKind k) {
  return k == SetKind::kNodePorts || k == SetKind::kNoEpNodePorts || k == SetKind::kNpMasq ||
         k == SetKind::kNpLocal || k == SetKind::kNpEndpoints || k == SetKind::kNpAll ||
         k == SetKind::kNpELocal;
}

const char* static_set_name(SetKind k) {
  switch (k) {
    case SetKind::kServiceIps:
      return kMapServiceIps;
    case SetKind::kNodePorts:
      return kMapServiceNodePorts;
    case SetKind::kNoEpServices:
      return kSetNoEndpointServices;
    case SetKind::kNoEpNodePorts:
      return kSetNoEndpointNodePorts;
    case SetKind::kClusterMasq:
      return kSetClusterMasq;
    case SetKind::kExternalMasq:
      return kSetExternalMasq;
    case SetKind::kExternalLocal:
      return kSetExternalLocal;
    case SetKind::kNpMasq:
      return kSetNodePortMasq;
    case SetKind::kNpLocal:
      return kSetNodePortLocal;
    case SetKind::kSvcEndpoints:
      return kMapServiceEndpoints;
    case SetKind::kNpEndpoints:
      return kMapNodePortEndpoints;
    default:
      return "?";
  }
}

// A per-count set: its kind and endpoint count.
struct CountSet {
  SetKind kind;
  uint32_t n;
  auto operator<=>(const CountSet&) const = default;
};

std::string count_set_name(CountSet c) {
  const char* prefix = c.kind == SetKind::kAll      ? "all-"
                       : c.kind == SetKind::kILocal ? "ilocal-"
                       : c.kind == SetKind::kELocal ? "elocal-"
                       : c.kind == SetKind::kNpAll  ? "np-all-"
                                                    : "np-elocal-";
  return prefix + std::to_string(c.n);
}

// The chain a count set's keys go to: pick-n / pick-local-n / np-pick-n / np-pick-local-n
// ("" for n = 0 local sets: they drop).
std::string pick_chain_name(CountSet c) {
  switch (c.kind) {
    case SetKind::kAll:
      return "pick-" + std::to_string(c.n);
    case SetKind::kILocal:
    case SetKind::kELocal:
      return c.n ? "pick-local-" + std::to_string(c.n) : "";
    case SetKind::kNpAll:
      return "np-pick-" + std::to_string(c.n);
    case SetKind::kNpELocal:
      return c.n ? "np-pick-local-" + std::to_string(c.n) : "";
    default:
      return "";
  }
}

// The chain holding a count set's dispatch rule. These four chains hold only dispatch rules,
// in count order, and are rewritten whole when a count appears or goes (so the table is the
// same whichever syncs built it: a restarted agent's first full sync changes nothing).
const char* dispatch_chain(SetKind k) {
  switch (k) {
    case SetKind::kAll:
    case SetKind::kILocal:
      return kChainServiceDispatch;
    case SetKind::kELocal:
      return kChainExternalLocal;
    case SetKind::kNpAll:
      return kChainNodePortDispatch;
    default:
      return kChainNodePortExternalLocal;
  }
}

struct ElemPlan {
  SetKind set;
  uint32_t n = 0;  // count sets: the endpoint count
  Ipv4 ip = 0;     // 0 for node port keys
  Protocol proto = Protocol::kTcp;
  uint16_t port = 0;
  uint32_t slot = 0;  // endpoint maps
  Ipv4 data_ip = 0;   // endpoint maps: the endpoint
  uint16_t data_port = 0;
  std::string chain;  // verdict maps: goto chain

  auto key() const { return std::tie(set, n, ip, proto, port, slot); }
  bool operator==(const ElemPlan& o) const {
    return key() == o.key() && data_ip == o.data_ip && data_port == o.data_port && chain == o.chain;
  }
  // The address a Service claims with this element (see Proxier::State::owner).
  uint64_t owner_key() const {
    return (uint64_t(is_nodeport_set(set)) << 56) | (uint64_t(ip) << 24) | (uint64_t(proto) << 16) |
           port;
  }
};
bool key_less(const ElemPlan& a, const ElemPlan& b) { return a.key() < b.key(); }

// ---- Affinity Services' chains (kube-proxy's per-Service layout) ----

enum class ChainKind : uint8_t { kService, kLocal, kExternal, kEndpoint };
struct ChainPlan {
  std::string name;
  ChainKind kind;
  std::string sig;  // the inputs its rules depend on (besides names derived from the key)
  size_t ep = 0;    // kEndpoint: index in sp.endpoints
};

struct SetPlan {
  std::string name;
  uint32_t timeout_s;
};

struct PortPlan {
  std::vector<ChainPlan> chains;  // sorted by name (affinity Services only)
  std::vector<ElemPlan> elems;    // sorted by key, unique
  std::vector<SetPlan> sets;      // sorted by name (affinity sets)
  // The names the rules refer to, built once here so rendering builds none: the service and
  // local chains, and by endpoint index its chain and (with affinity) its set.
  std::string svc_chain, loc_chain;
  std::vector<std::string> ep_chains, ep_sets;
};

void append_u32(std::string* s, uint32_t v) { s->append(reinterpret_cast<const char*>(&v), 4); }

std::string affinity_name(const ServicePort& sp, const Endpoint& ep) {
  std::string b = endpoint_base(sp, ep);
  // The timeout is part of the hash: a new timeout makes new sets (a set's timeout cannot be
  // changed in place) and the old ones go as stale.
  return hashed_name("affinity-", b, fnv1a(std::to_string(sp.affinity_timeout_seconds), fnv1a(b)));
}

bool uses_local_chain(const ServicePort& sp) {
  return sp.internal_policy_local || (sp.external_policy_local && sp.has_external());
}

// The external addresses (externalIPs and LoadBalancer ingress IPs), sorted, unique.
std::vector<Ipv4> external_addresses(const ServicePort& sp) {
  std::vector<Ipv4> v = sp.external_ips;
  v.insert(v.end(), sp.load_balancer_ips.begin(), sp.load_balancer_ips.end());
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// Chains (and the vmap elements reaching them) of a Service with ClientIP affinity: the
// affinity sets are updated from the packet path per endpoint, which needs a rule per
// endpoint, so these Services keep kube-proxy's per-Service chains.
void plan_affinity(const ServicePort& sp, PortPlan& p) {
  const std::string base = port_base(sp);
  const uint64_t h = fnv1a(base);
  p.svc_chain = hashed_name("service-", base, h);
  const bool local_chain = uses_local_chain(sp);
  if (local_chain) p.loc_chain = hashed_name("local-", base, h);
  const std::string ext_chain = sp.has_external() ? hashed_name("external-", base, h) : "";

  ChainPlan c{p.svc_chain, ChainKind::kService, {}, 0};
  append_u32(&c.sig, sp.cluster_ip);
  append_u32(&c.sig, sp.affinity_timeout_seconds);
  for (const Endpoint& e : sp.endpoints) {
    append_u32(&c.sig, e.ip);
    append_u32(&c.sig, e.port);
  }
  p.chains.push_back(std::move(c));
  if (local_chain) {
    ChainPlan l{p.loc_chain, ChainKind::kLocal, {}, 0};
    append_u32(&l.sig, sp.internal_policy_local ? sp.cluster_ip : 0);
    append_u32(&l.sig, sp.affinity_timeout_seconds);
    for (const Endpoint& e : sp.endpoints) {
      if (!e.local) continue;
      append_u32(&l.sig, e.ip);
      append_u32(&l.sig, e.port);
    }
    p.chains.push_back(std::move(l));
  }
  if (!ext_chain.empty()) {
    ChainPlan x{ext_chain, ChainKind::kExternal, {}, 0};
    x.sig = sp.external_policy_local ? "L" : "C";
    p.chains.push_back(std::move(x));
  }
  for (size_t i = 0; i < sp.endpoints.size(); ++i) {
    const Endpoint& e = sp.endpoints[i];
    std::string eb = endpoint_base(sp, e);
    ChainPlan ec{hashed_name("endpoint-", eb, fnv1a(eb)), ChainKind::kEndpoint, {}, i};
    append_u32(&ec.sig, sp.affinity_timeout_seconds);
    p.ep_chains.push_back(ec.name);
    p.chains.push_back(std::move(ec));
    p.ep_sets.push_back(affinity_name(sp, e));
    p.sets.push_back({p.ep_sets.back(), sp.affinity_timeout_seconds});
  }
  auto vmap = [&](SetKind set, Ipv4 ip, uint16_t port, const std::string& chain) {
    ElemPlan e{set};
    e.ip = ip;
    e.proto = sp.protocol;
    e.port = port;
    e.chain = chain;
    p.elems.push_back(std::move(e));
  };
  vmap(SetKind::kServiceIps, sp.cluster_ip, sp.port,
       sp.internal_policy_local ? p.loc_chain : p.svc_chain);
  for (Ipv4 ip : external_addresses(sp)) vmap(SetKind::kServiceIps, ip, sp.port, ext_chain);
  if (sp.node_port) vmap(SetKind::kNodePorts, 0, sp.node_port, ext_chain);
  std::sort(p.chains.begin(), p.chains.end(),
            [](const ChainPlan& a, const ChainPlan& b) { return a.name < b.name; });
  std::sort(p.sets.begin(), p.sets.end(),
            [](const SetPlan& a, const SetPlan& b) { return a.name < b.name; });
}

// The set-dispatch elements of a Service without affinity (README "Table layout").
void plan_dispatch(const ServicePort& sp, PortPlan& p) {
  const uint32_t n = static_cast<uint32_t>(sp.endpoints.size());
  std::vector<const Endpoint*> local;
  for (const Endpoint& e : sp.endpoints) {
    if (e.local) local.push_back(&e);
  }
  const uint32_t l = static_cast<uint32_t>(local.size());
  auto add = [&](SetKind set, uint32_t count, Ipv4 ip, uint16_t port) {
    ElemPlan e{set};
    e.n = count;
    e.ip = ip;
    e.proto = sp.protocol;
    e.port = port;
    p.elems.push_back(std::move(e));
  };
  // Slots of one address (or node port: ip 0): all endpoints, and/or the local ones.
  auto slots = [&](SetKind map, Ipv4 ip, uint16_t port, bool all, bool locals) {
    if (all) {
      for (uint32_t i = 0; i < n; ++i) {
        add(map, 0, ip, port);
        p.elems.back().slot = i;
        p.elems.back().data_ip = sp.endpoints[i].ip;
        p.elems.back().data_port = sp.endpoints[i].port;
      }
    }
    if (locals) {
      for (uint32_t i = 0; i < l; ++i) {
        add(map, 0, ip, port);
        p.elems.back().slot = kLocalSlotBase + i;
        p.elems.back().data_ip = local[i]->ip;
        p.elems.back().data_port = local[i]->port;
      }
    }
  };
  add(SetKind::kClusterMasq, 0, sp.cluster_ip, sp.port);
  if (sp.internal_policy_local) {
    add(SetKind::kILocal, l, sp.cluster_ip, sp.port);
    slots(SetKind::kSvcEndpoints, sp.cluster_ip, sp.port, false, true);
  } else {
    add(SetKind::kAll, n, sp.cluster_ip, sp.port);
    slots(SetKind::kSvcEndpoints, sp.cluster_ip, sp.port, true, false);
  }
  const bool elocal = sp.external_policy_local;
  for (Ipv4 ip : external_addresses(sp)) {
    // Pod and node traffic to an ETP Local address still goes to any endpoint (all-n), so
    // both dispatches are present; outside traffic is taken by elocal-l first.
    add(elocal ? SetKind::kExternalLocal : SetKind::kExternalMasq, 0, ip, sp.port);
    add(SetKind::kAll, n, ip, sp.port);
    if (elocal) add(SetKind::kELocal, l, ip, sp.port);
    slots(SetKind::kSvcEndpoints, ip, sp.port, true, elocal);
  }
  if (sp.node_port) {
    add(elocal ? SetKind::kNpLocal : SetKind::kNpMasq, 0, 0, sp.node_port);
    add(SetKind::kNpAll, n, 0, sp.node_port);
    if (elocal) add(SetKind::kNpELocal, l, 0, sp.node_port);
    slots(SetKind::kNpEndpoints, 0, sp.node_port, true, elocal);
  }
}

PortPlan plan_port(const ServicePort& sp) {
  PortPlan p;
  if (sp.endpoints.empty()) {
    // Rejected (TCP reset / ICMP port unreachable) in the filter hooks on new connections.
    auto add = [&](SetKind set, Ipv4 ip, uint16_t port) {
      ElemPlan e{set};
      e.ip = ip;
      e.proto = sp.protocol;
      e.port = port;
      p.elems.push_back(std::move(e));
    };
    add(SetKind::kNoEpServices, sp.cluster_ip, sp.port);
    for (Ipv4 ip : external_addresses(sp)) add(SetKind::kNoEpServices, ip, sp.port);
    if (sp.node_port) add(SetKind::kNoEpNodePorts, 0, sp.node_port);
  } else if (sp.affinity_timeout_seconds) {
    plan_affinity(sp, p);
  } else {
    plan_dispatch(sp, p);
  }
  std::sort(p.elems.begin(), p.elems.end(), key_less);
  // The same address twice (an external IP that is also the ClusterIP): keep one.
  p.elems.erase(
      std::unique(p.elems.begin(), p.elems.end(),
                  [](const ElemPlan& a, const ElemPlan& b) { return a.key() == b.key(); }),
      p.elems.end());
  return p;
}

// ---- Rules ----

void append(std::vector<Expr>* to, std::vector<Expr> from) {
  for (Expr& e : from) to->push_back(std::move(e));
}

// `<prefix> meta mark set meta mark | 0x4000`: marks the packet for postrouting's masquerade.
// kube-proxy jumps to mark-for-masquerade instead; skiff sets the bit in place because the
// kernel validates the whole reachable chain graph on every commit that adds a rule, and
// 60,000 jumps to that chain (one per endpoint chain at 10,000 Services x 5) doubled the chains
// it visits: measured at 2,000 Services, a one-endpoint change went from 40-60 ms to 8-17 ms.
Rule mark_for_masquerade(std::vector<Expr> prefix = {}, std::string comment = {}) {
  Rule r{std::move(prefix), std::move(comment)};
  append(&r.exprs, nft::set_mark_bits(nft::kMasqueradeMark));
  return r;
}

// `fib saddr type local`: the packet comes from this node itself.
std::vector<Expr> match_fib_saddr_local() {
  std::vector<Expr> e;
  e.push_back(nft::Fib{nft::kFibSaddr, nft::FibResult::kAddrType, nft::Reg::k1});
  e.push_back(nft::Cmp{nft::CmpOp::kEq, nft::Reg::k1, nft::u32_key(2 /* RTN_LOCAL */)});
  return e;
}

nft::Ipv4Prefix host(Ipv4 ip) { return nft::Ipv4Prefix{ip, 32}; }

struct Renderer {
  const std::optional<nft::Ipv4Prefix>& cluster;

  // `ip daddr <clusterIP> ip saddr != <cluster CIDR> jump mark-for-masquerade`: traffic to the
  // ClusterIP from outside the pod network (a node, a host-network pod) is masqueraded so the
  // endpoint's reply comes back through this node.
  void masquerade_off_cluster(const ServicePort& sp, std::vector<Rule>* rules) const {
    if (!cluster) return;
    std::vector<Expr> m = nft::match_ipv4(nft::IpField::kDaddr, host(sp.cluster_ip));
    append(&m, nft::match_ipv4(nft::IpField::kSaddr, *cluster, /*negate=*/true));
    rules->push_back(mark_for_masquerade(std::move(m)));
  }

  // Affinity look-ups then the random choice among the endpoints at indexes `eps` (or drop
  // when there is none).
  void pick(const ServicePort& sp, const PortPlan& p, const std::vector<size_t>& eps,
            std::vector<Rule>* rules) const {
    if (eps.empty()) {
      rules->push_back(Rule{{Verdict{VerdictCode::kDrop, {}}}, "no local endpoints"});
      return;
    }
    std::vector<std::string> chains;
    chains.reserve(eps.size());
    for (size_t i : eps) chains.push_back(p.ep_chains[i]);
    if (sp.affinity_timeout_seconds) {
      for (size_t i = 0; i < eps.size(); ++i) {
        Rule r{nft::match_saddr_in_set(p.ep_sets[eps[i]]), {}};
        r.exprs.push_back(Verdict{VerdictCode::kGoto, chains[i]});
        rules->push_back(std::move(r));
      }
    }
    rules->push_back(Rule{nft::numgen_vmap_goto(chains), {}});
  }

  std::vector<Rule> render(const ServicePort& sp, const PortPlan& p, const ChainPlan& c) const {
    std::vector<Rule> rules;
    std::vector<size_t> eps;
    switch (c.kind) {
      case ChainKind::kService:
        masquerade_off_cluster(sp, &rules);
        for (size_t i = 0; i < sp.endpoints.size(); ++i) eps.push_back(i);
        pick(sp, p, eps, &rules);
        break;
      case ChainKind::kLocal:
        if (sp.internal_policy_local) masquerade_off_cluster(sp, &rules);
        for (size_t i = 0; i < sp.endpoints.size(); ++i) {
          if (sp.endpoints[i].local) eps.push_back(i);
        }
        pick(sp, p, eps, &rules);
        break;
      case ChainKind::kExternal: {
        const std::string& svc = p.svc_chain;
        if (!sp.external_policy_local) {
          // Traffic from outside reaching an endpoint on another node must come back here.
          rules.push_back(mark_for_masquerade());
          rules.push_back(Rule{{Verdict{VerdictCode::kGoto, svc}}, {}});
          break;
        }
        if (cluster) {
          rules.push_back(
              Rule{nft::match_ipv4(nft::IpField::kSaddr, *cluster), "short-circuit pod traffic"});
          rules.back().exprs.push_back(Verdict{VerdictCode::kGoto, svc});
        }
        rules.push_back(mark_for_masquerade(match_fib_saddr_local(), "masquerade local traffic"));
        rules.push_back(Rule{match_fib_saddr_local(), "short-circuit local traffic"});
        rules.back().exprs.push_back(Verdict{VerdictCode::kGoto, svc});
        rules.push_back(Rule{{Verdict{VerdictCode::kGoto, p.loc_chain}}, {}});
        break;
      }
      case ChainKind::kEndpoint: {
        const Endpoint& e = sp.endpoints[c.ep];
        // Hairpin: an endpoint reaching itself through the Service must see the node as the
        // source, or it would answer itself directly and the client would drop the reply.
        rules.push_back(mark_for_masquerade(nft::match_ipv4(nft::IpField::kSaddr, host(e.ip))));
        if (sp.affinity_timeout_seconds) {
          rules.push_back(Rule{nft::update_set_saddr(p.ep_sets[c.ep]), {}});
        }
        rules.push_back(Rule{nft::dnat_to(e.ip, e.port, static_cast<uint8_t>(sp.protocol)), {}});
        break;
      }
    }
    return rules;
  }
};

nft::Element to_element(const ElemPlan& p) {
  nft::Element e;
  const uint8_t proto = static_cast<uint8_t>(p.proto);
  if (is_nodeport_set(p.set)) {
    e.key = nft::proto_port_key(proto, p.port);
  } else {
    e.key = nft::service_key(p.ip, proto, p.port);
  }
  if (p.set == SetKind::kSvcEndpoints || p.set == SetKind::kNpEndpoints) {
    e.key.push_back(nft::u32_key(p.slot));
    e.data = nft::concat_bytes({nft::ipv4_bytes(p.data_ip), nft::port_bytes(p.data_port)});
  } else if (p.set == SetKind::kServiceIps || p.set == SetKind::kNodePorts) {
    e.data = Verdict{VerdictCode::kGoto, p.chain};
  }
  return e;
}

std::string set_name(const ElemPlan& p) {
  return is_count_set(p.set) ? count_set_name({p.set, p.n}) : static_set_name(p.set);
}

nft::Set affinity_set(const SetPlan& s) {
  nft::Set set;
  set.name = s.name;
  set.key = {nft::SetType::kIpv4Addr};
  set.timeout = true;
  set.dynamic = true;
  set.timeout_ms = uint64_t(s.timeout_s) * 1000;
  return set;
}

nft::Set plain_set(std::string name, bool with_addr) {
  nft::Set m;
  m.name = std::move(name);
  if (with_addr) m.key.push_back(nft::SetType::kIpv4Addr);
  m.key.push_back(nft::SetType::kInetProto);
  m.key.push_back(nft::SetType::kInetService);
  return m;
}

nft::Set static_set(SetKind k) {
  using T = nft::TypeofExpr;
  switch (k) {
    case SetKind::kServiceIps:
    case SetKind::kNodePorts: {
      nft::Set m = plain_set(static_set_name(k), k == SetKind::kServiceIps);
      m.data = nft::SetType::kVerdict;
      return m;
    }
    case SetKind::kSvcEndpoints:
      return nft::typeof_map(kMapServiceEndpoints,
                             {T::kIpDaddr, T::kMetaL4proto, T::kThDport, T::kNumgen},
                             {T::kIpDaddr, T::kThDport});
    case SetKind::kNpEndpoints:
      return nft::typeof_map(kMapNodePortEndpoints, {T::kMetaL4proto, T::kThDport, T::kNumgen},
                             {T::kIpDaddr, T::kThDport});
    default:
      return plain_set(static_set_name(k), !is_nodeport_set(k));
  }
}

nft::Set hairpin_set() {
  nft::Set s;
  s.name = kSetHairpin;
  s.key = {nft::SetType::kIpv4Addr, nft::SetType::kIpv4Addr};
  return s;
}

nft::Element hairpin_element(Ipv4 ip) {
  nft::Element e;
  e.key = {nft::ipv4_bytes(ip), nft::ipv4_bytes(ip)};
  return e;
}

// The static chains: base chains with their hooks, and the regular ones every sync keeps.
struct StaticChain {
  const char* name;
  std::optional<nft::BaseChain> base;
};
std::vector<StaticChain> static_chains() {
  using nft::BaseChain;
  using nft::Hook;
  return {
      {kChainMarkForMasquerade, std::nullopt},
      {kChainReject, std::nullopt},
      {kChainServiceDispatch, std::nullopt},
      {kChainNodePortDispatch, std::nullopt},
      {kChainExternalLocal, std::nullopt},
      {kChainNodePortExternalLocal, std::nullopt},
      {kChainServices, std::nullopt},
      {kChainNodePorts, std::nullopt},
      {kChainNatPrerouting,
       BaseChain{"nat", Hook::kPrerouting, nft::kPriorityDstNat, VerdictCode::kAccept}},
      {kChainNatOutput,
       BaseChain{"nat", Hook::kOutput, nft::kPriorityDstNat, VerdictCode::kAccept}},
      // Before netagent/nft's `postrouting` (srcnat), which masquerades what this marks.
      {kChainNatHairpin,
       BaseChain{"nat", Hook::kPostrouting, nft::kPrioritySrcNat - 1, VerdictCode::kAccept}},
      {kChainFilterInput,
       BaseChain{"filter", Hook::kInput, nft::kPriorityFilter, VerdictCode::kAccept}},
      {kChainFilterForward,
       BaseChain{"filter", Hook::kForward, nft::kPriorityFilter, VerdictCode::kAccept}},
      {kChainFilterOutput,
       BaseChain{"filter", Hook::kOutput, nft::kPriorityFilter, VerdictCode::kAccept}},
  };
}

std::vector<Expr> not_loopback() {
  return nft::match_ipv4(nft::IpField::kDaddr, nft::Ipv4Prefix{0x7f000000, 8}, true);
}

std::vector<Expr> cat(std::initializer_list<std::vector<Expr>> parts) {
  std::vector<Expr> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::vector<Expr> go(VerdictCode code, const char* chain) { return {Verdict{code, chain}}; }

std::vector<Rule> static_rules(std::string_view chain, const std::optional<nft::Ipv4Prefix>& cidr) {
  std::vector<Rule> r;
  auto mark = [] { return nft::set_mark_bits(nft::kMasqueradeMark); };
  auto ct_new = [] { return nft::match_ct_state(nft::kCtStateNew); };
  // Outside traffic (not from a pod, not from this node) to an ETP Local address or node port.
  auto from_outside = [&] {
    std::vector<Expr> e;
    if (cidr) e = nft::match_ipv4(nft::IpField::kSaddr, *cidr, /*negate=*/true);
    return cat({e, nft::match_fib_saddr_local(/*negate=*/true)});
  };
  auto noep_services = [&] {
    return Rule{cat({ct_new(), nft::match_daddr_proto_port_in(kSetNoEndpointServices),
                     go(VerdictCode::kGoto, kChainReject)}),
                {}};
  };
  auto noep_nodeports = [&] {
    return Rule{cat({ct_new(), nft::match_fib_daddr_local(), not_loopback(),
                     nft::match_proto_port_in(kSetNoEndpointNodePorts),
                     go(VerdictCode::kGoto, kChainReject)}),
                {}};
  };
  if (chain == kChainMarkForMasquerade) {
    r.push_back(Rule{mark(), {}});
  } else if (chain == kChainReject) {
    r.push_back(Rule{nft::reject_tcp_reset(), {}});
    r.push_back(Rule{nft::reject_icmp_port_unreachable(), {}});
  } else if (chain == kChainServices) {
    r.push_back(Rule{nft::vmap_daddr_proto_port(kMapServiceIps), {}});
    if (cidr) {
      // Traffic to a ClusterIP from outside the pod network (a node, a host-network pod) is
      // masqueraded so the endpoint's reply comes back through this node.
      r.push_back(Rule{cat({nft::match_daddr_proto_port_in(kSetClusterMasq),
                            nft::match_ipv4(nft::IpField::kSaddr, *cidr, true), mark()}),
                       {}});
    }
    r.push_back(Rule{cat({nft::match_daddr_proto_port_in(kSetExternalMasq), mark()}), {}});
    r.push_back(Rule{cat({nft::match_fib_saddr_local(),
                          nft::match_daddr_proto_port_in(kSetExternalLocal), mark()}),
                     {}});
    r.push_back(Rule{cat({from_outside(), go(VerdictCode::kJump, kChainExternalLocal)}), {}});
    r.push_back(Rule{go(VerdictCode::kGoto, kChainServiceDispatch), {}});
  } else if (chain == kChainNodePorts) {
    r.push_back(Rule{nft::vmap_proto_port(kMapServiceNodePorts), {}});
    r.push_back(Rule{cat({nft::match_proto_port_in(kSetNodePortMasq), mark()}), {}});
    r.push_back(Rule{
        cat({nft::match_fib_saddr_local(), nft::match_proto_port_in(kSetNodePortLocal), mark()}),
        {}});
    r.push_back(
        Rule{cat({from_outside(), go(VerdictCode::kJump, kChainNodePortExternalLocal)}), {}});
    r.push_back(Rule{go(VerdictCode::kGoto, kChainNodePortDispatch), {}});
  } else if (chain == kChainNatPrerouting || chain == kChainNatOutput) {
    r.push_back(Rule{go(VerdictCode::kJump, kChainServices), {}});
    r.push_back(Rule{cat({nft::match_fib_daddr_local(), not_loopback(),
                          go(VerdictCode::kJump, kChainNodePorts)}),
                     {}});
  } else if (chain == kChainNatHairpin) {
    // After DNAT the packet's destination is the endpoint: source == destination is an
    // endpoint reaching itself through its Service, which must see the node as the source or
    // it would answer itself directly and the client would drop the reply.
    // `ct status dnat` keeps it to Service traffic: an endpoint may be a node address (the
    // apiserver behind `kubernetes`), and the node's own connections to itself must not be
    // masqueraded.
    r.push_back(Rule{cat({nft::match_ct_status(nft::kCtStatusDnat),
                          nft::match_saddr_daddr_in(kSetHairpin), mark()}),
                     {}});
  } else if (chain == kChainFilterForward) {
    r.push_back(noep_services());
  } else if (chain == kChainFilterInput || chain == kChainFilterOutput) {
    r.push_back(noep_services());
    r.push_back(noep_nodeports());
  }
  return r;
}

// The dispatch rule of a count set: `<key> @all-5 goto pick-5` (drop for no local endpoints).
Rule dispatch_rule(CountSet c) {
  std::string set = count_set_name(c);
  bool nodeport = is_nodeport_set(c.kind);
  Rule r{nodeport ? nft::match_proto_port_in(set) : nft::match_daddr_proto_port_in(set), {}};
  std::string pick = pick_chain_name(c);
  if (pick.empty()) {
    r.exprs.push_back(Verdict{VerdictCode::kDrop, {}});
    r.comment = "no local endpoints";
  } else {
    r.exprs.push_back(Verdict{VerdictCode::kGoto, pick});
  }
  return r;
}

// The rules of a pick chain: DNAT to a random slot's endpoint, one rule per protocol (nft needs
// the protocol to name the port).
std::vector<Rule> pick_rules(CountSet c) {
  bool nodeport = is_nodeport_set(c.kind);
  bool local =
      c.kind == SetKind::kILocal || c.kind == SetKind::kELocal || c.kind == SetKind::kNpELocal;
  std::vector<Rule> r;
  for (uint8_t proto : {nft::kTcp, nft::kUdp, nft::kSctp}) {
    r.push_back(Rule{nft::dnat_numgen_map(nodeport ? kMapNodePortEndpoints : kMapServiceEndpoints,
                                          !nodeport, proto, c.n, local ? kLocalSlotBase : 0),
                     {}});
  }
  return r;
}

// The conntrack flows of removed UDP endpoints.
void stale_udp(const ServicePort& old, const ServicePort* now, std::vector<StaleUdpFlow>* out) {
  if (old.protocol != Protocol::kUdp) return;
  for (const Endpoint& e : old.endpoints) {
    if (now) {  // same key, so UDP too
      bool kept = std::any_of(now->endpoints.begin(), now->endpoints.end(),
                              [&](const Endpoint& n) { return n.ip == e.ip && n.port == e.port; });
      if (kept) continue;
    }
    out->push_back({old.cluster_ip, old.port, e.ip, e.port});
    for (Ipv4 ip : old.external_ips) out->push_back({ip, old.port, e.ip, e.port});
    for (Ipv4 ip : old.load_balancer_ips) out->push_back({ip, old.port, e.ip, e.port});
    if (old.node_port) out->push_back({0, old.node_port, e.ip, e.port});
  }
}

// Endpoint IPs of a port (hairpin set refcounts), sorted, unique.
std::vector<Ipv4> endpoint_ips(const ServicePort& sp) {
  std::vector<Ipv4> v;
  for (const Endpoint& e : sp.endpoints) v.push_back(e.ip);
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

}  // namespace

std::string service_chain_name(const ServicePort& sp) {
  std::string b = port_base(sp);
  return hashed_name("service-", b, fnv1a(b));
}
std::string external_chain_name(const ServicePort& sp) {
  std::string b = port_base(sp);
  return hashed_name("external-", b, fnv1a(b));
}
std::string endpoint_chain_name(const ServicePort& sp, const Endpoint& ep) {
  std::string b = endpoint_base(sp, ep);
  return hashed_name("endpoint-", b, fnv1a(b));
}
std::string affinity_set_name(const ServicePort& sp, const Endpoint& ep) {
  return affinity_name(sp, ep);
}

// ---- Proxier ----

struct Proxier::State {
  std::optional<nft::Ipv4Prefix> cluster;
  // Which ServicePort owns each address (ClusterIP/external IP . proto . port, or node port):
  // two Services claiming the same external IP and port: the first one keeps it; adding the
  // second's elements would make the kernel refuse the batch.
  std::unordered_map<uint64_t, std::string> owner;
  // How many applied ports have each endpoint IP (its hairpin element exists while > 0).
  std::unordered_map<Ipv4, uint32_t> hairpin;
  // Count sets (with their dispatch rule) and how many elements each holds; a count set and
  // its rule exist exactly while it has elements. The pick chains they need.
  std::map<CountSet, uint32_t> counts;
  std::set<std::string> picks;
};

Proxier::Proxier(nft::NftTables& tables, ProxierOptions opts)
    : tables_(tables), opts_(std::move(opts)), state_(std::make_unique<State>()) {}
Proxier::~Proxier() = default;

Result<std::unique_ptr<Proxier>> Proxier::create(nft::NftTables& tables, ProxierOptions opts) {
  std::unique_ptr<Proxier> p(new Proxier(tables, std::move(opts)));
  if (!p->opts_.cluster_cidr.empty()) {
    auto c = nft::parse_ipv4_prefix(p->opts_.cluster_cidr);
    if (!c) return c.status().with_context("service proxy: --cluster-cidr");
    p->state_->cluster = *c;
  }
  if (!p->opts_.now) p->opts_.now = [] { return std::chrono::steady_clock::now(); };
  return p;
}

namespace {

// Collects the batch of one sync: operations are grouped by phase so that everything a rule or
// element refers to exists before it, and everything a deleted chain was referred to by is gone
// before the delete.
struct BatchBuilder {
  const Renderer& renderer;
  std::vector<nft::Set> new_sets;
  std::vector<std::string> new_chains;
  std::vector<std::string> flush_chains;
  std::vector<std::pair<std::string, std::vector<Rule>>> fill;
  // Elements by set name (std::map: a stable op order).
  std::map<std::string, std::vector<nft::Element>> del_elems, add_elems;
  std::vector<std::string> stale_chains;
  std::vector<std::string> stale_sets;

  void write_chain(const ServicePort& sp, const PortPlan& p, const ChainPlan& c, bool exists) {
    (exists ? flush_chains : new_chains).push_back(c.name);
    fill.emplace_back(c.name, renderer.render(sp, p, c));
  }
};

// Adds the count set with its dispatch rule (and its pick chain unless present) to the batch.
void add_count_set(Batch& batch, CountSet c, std::set<std::string>& picks, bool flush) {
  batch.add_set(plain_set(count_set_name(c), !is_nodeport_set(c.kind)));
  if (flush) batch.flush_set(count_set_name(c));
  std::string pick = pick_chain_name(c);
  if (!pick.empty() && picks.insert(pick).second) {
    batch.add_chain(nft::Chain{pick, std::nullopt});
    if (flush) batch.flush_chain(pick);
    for (Rule& r : pick_rules(c)) batch.add_rule(pick, std::move(r));
  }
}

using PortChanges = std::vector<std::pair<const ServicePort*, const ServicePort*>>;

// The proxier's bookkeeping as it will be after the sync being built (see Proxier::State).
struct Next {
  std::unordered_map<uint64_t, std::string> owner;
  std::unordered_map<Ipv4, uint32_t> hairpin;
  std::map<CountSet, uint32_t> counts;
  std::set<std::string> picks;
  // Incremental: what this batch removes (put back if the commit fails, so the full sync
  // that follows deletes them).
  std::vector<CountSet> removed_counts;
  std::vector<std::string> removed_picks;
};

void full_batch(const ServiceMap& desired, const PortChanges& changes, const Renderer& renderer,
                const std::optional<nft::Ipv4Prefix>& cluster,
                const std::map<CountSet, uint32_t>& old_counts,
                const std::set<std::string>& old_picks, BatchBuilder& bb, Batch& batch,
                SyncResult& res, Next& next);
void incremental_batch(const PortChanges& changes, BatchBuilder& bb, Batch& batch, SyncResult& res,
                       Next& next);

}  // namespace

Result<SyncResult> Proxier::sync(const ServiceMap& desired,
                                 const std::vector<std::string>* changed) {
  return sync_impl(desired, changed, nullptr);
}

Result<SyncResult> Proxier::sync(ServiceMap&& desired, const std::vector<std::string>* changed) {
  return sync_impl(desired, changed, &desired);
}

Result<SyncResult> Proxier::sync_impl(const ServiceMap& desired,
                                      const std::vector<std::string>* changed, ServiceMap* take) {
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  SyncResult res;
  auto now = opts_.now();
  if (!full_due_ && now - last_full_ >= opts_.full_sync_period) full_due_ = true;
  res.full = full_due_;
  Renderer renderer{state_->cluster};
  BatchBuilder bb{renderer};
  Batch batch(nft::kSkiffFamily, nft::kSkiffTable);

  // The changed ports: (old, new), either may be null.
  PortChanges changes;
  auto classify = [&](const ServicePort* o, const ServicePort* n) {
    if (!n) {
      changes.emplace_back(o, nullptr);
      ++res.ports_removed;
    } else if (!o) {
      changes.emplace_back(nullptr, n);
      ++res.ports_added;
    } else if (!(*o == *n)) {
      changes.emplace_back(o, n);
      ++res.ports_changed;
    } else if (res.full) {
      changes.emplace_back(o, n);
    }
  };
  if (changed && !res.full) {
    std::vector<std::string> keys = *changed;
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    for (const std::string& k : keys) {
      auto a = applied_.find(k);
      auto d = desired.find(k);
      if (a == applied_.end() && d == desired.end()) continue;
      classify(a == applied_.end() ? nullptr : &a->second,
               d == desired.end() ? nullptr : &d->second);
    }
  } else {
    auto a = applied_.begin();
    auto d = desired.begin();
    while (a != applied_.end() || d != desired.end()) {
      int c = a == applied_.end() ? 1 : d == desired.end() ? -1 : a->first.compare(d->first);
      if (c < 0) {
        classify(&(a++)->second, nullptr);
      } else if (c > 0) {
        classify(nullptr, &(d++)->second);
      } else {
        classify(&(a++)->second, &(d++)->second);
      }
    }
  }
  for (auto& [o, n] : changes) {
    if (o) stale_udp(*o, n, &res.stale_udp);
  }

  // Bookkeeping as it will be after this sync (kept only when the commit succeeds).
  Next next;
  if (res.full) {
    full_batch(desired, changes, renderer, state_->cluster, state_->counts, state_->picks, bb,
               batch, res, next);
  } else {
    // Updated in place (swapped, not copied: a copy is O(Services)). A failed commit leaves
    // them ahead of the kernel, which is harmless: the next sync is a full one, which rebuilds
    // them, and its stale deletions are safe for names that do not exist.
    next.owner.swap(state_->owner);
    next.hairpin.swap(state_->hairpin);
    next.counts.swap(state_->counts);
    next.picks.swap(state_->picks);
    incremental_batch(changes, bb, batch, res, next);
  }
  auto keep = [&] {
    state_->owner = std::move(next.owner);
    state_->hairpin = std::move(next.hairpin);
    state_->counts = std::move(next.counts);
    state_->picks = std::move(next.picks);
  };
  // Stale chains: flushed first (so no stale chain still jumps to another), then deleted.
  for (const std::string& c : bb.stale_chains) batch.flush_chain(c);
  for (const std::string& c : bb.stale_chains) batch.delete_chain(c);
  for (const std::string& s : bb.stale_sets) batch.delete_set(s);
  res.chains_deleted += bb.stale_chains.size();

  res.batch_ops = batch.ops().size();
  auto t1 = Clock::now();
  res.build_time = t1 - t0;
  if (!batch.empty()) {
    Status st = tables_.commit(batch);
    res.commit_time = Clock::now() - t1;
    if (!st.is_ok()) {
      // The kernel kept the previous ruleset; the next sync rebuilds everything.
      if (!res.full) {
        for (CountSet c : next.removed_counts) next.counts.emplace(c, 0);
        for (const std::string& p : next.removed_picks) next.picks.insert(p);
        keep();
      }
      full_due_ = true;
      return st.with_context("sync service rules (" + std::to_string(res.batch_ops) +
                             " operations)");
    }
  }
  keep();
  if (res.full) {
    if (take) {
      applied_ = std::move(*take);
    } else {
      applied_ = desired;
    }
    full_due_ = false;
    last_full_ = now;
  } else {
    for (auto& [o, n] : changes) {
      if (n) {
        applied_.insert_or_assign(n->key(), *n);
      } else {
        applied_.erase(o->key());
      }
    }
  }
  return res;
}

namespace {

void full_batch(const ServiceMap& desired, const PortChanges& changes, const Renderer& renderer,
                const std::optional<nft::Ipv4Prefix>& cluster,
                const std::map<CountSet, uint32_t>& old_counts,
                const std::set<std::string>& old_picks, BatchBuilder& bb, Batch& batch,
                SyncResult& res, Next& next) {
  auto& owner = next.owner;
  auto& hairpin = next.hairpin;
  auto& counts = next.counts;
  auto& picks = next.picks;
  // Everything of ours, rebuilt in one transaction. Sets and maps are flushed and refilled,
  // chains flushed and refilled, so drift (an element or rule removed or added by hand, a
  // chain deleted) is repaired; conntrack keeps established connections' NAT throughout.
  batch.add_table();
  for (int k = 0; k < kStaticSets; ++k) {
    nft::Set s = static_set(static_cast<SetKind>(k));
    std::string name = s.name;
    batch.add_set(std::move(s));
    batch.flush_set(name);
  }
  batch.add_set(hairpin_set());
  batch.flush_set(kSetHairpin);
  for (const StaticChain& c : static_chains()) {
    if (c.base) {
      // A base chain's hook, type and priority cannot be changed in place: delete and
      // re-add (as sync_masquerade does), adding it as a regular chain first so the delete
      // cannot fail on absence.
      batch.add_chain(nft::Chain{c.name, std::nullopt});
      batch.delete_chain(c.name);
    }
    batch.add_chain(nft::Chain{c.name, c.base});
    if (!c.base) batch.flush_chain(c.name);
  }
  for (const StaticChain& c : static_chains()) {
    for (Rule& r : static_rules(c.name, cluster)) batch.add_rule(c.name, std::move(r));
  }
  // Plans of every port; elements grouped by set; the count sets they need.
  std::unordered_set<std::string> wanted_chains, wanted_sets;
  std::map<std::string, std::vector<nft::Element>> elems;
  for (const auto& [key, sp] : desired) {
    PortPlan p = plan_port(sp);
    for (const SetPlan& s : p.sets) {
      batch.add_set(affinity_set(s));
      wanted_sets.insert(s.name);
    }
    for (const ChainPlan& c : p.chains) {
      batch.add_chain(nft::Chain{c.name, std::nullopt});
      batch.flush_chain(c.name);
      bb.fill.emplace_back(c.name, renderer.render(sp, p, c));
      wanted_chains.insert(c.name);
      ++res.chains_written;
    }
    for (const ElemPlan& e : p.elems) {
      auto [it, inserted] = owner.emplace(e.owner_key(), key);
      if (!inserted && it->second != key) continue;  // claimed by an earlier port
      if (is_count_set(e.set)) ++counts[CountSet{e.set, e.n}];
      elems[set_name(e)].push_back(to_element(e));
      ++res.elements_added;
    }
    if (!sp.endpoints.empty()) {
      for (Ipv4 ip : endpoint_ips(sp)) ++hairpin[ip];
    }
  }
  for (const auto& [c, n] : counts) add_count_set(batch, c, picks, /*flush=*/true);
  for (const auto& [c, n] : counts) batch.add_rule(dispatch_chain(c.kind), dispatch_rule(c));
  res.chains_written += picks.size();
  for (auto& [chain, rules] : bb.fill) {
    for (Rule& r : rules) batch.add_rule(chain, std::move(r));
  }
  bb.fill.clear();
  std::vector<Ipv4> hp_ips;
  hp_ips.reserve(hairpin.size());
  for (const auto& [ip, n] : hairpin) hp_ips.push_back(ip);
  std::sort(hp_ips.begin(), hp_ips.end());
  std::vector<nft::Element> hp;
  hp.reserve(hp_ips.size());
  for (Ipv4 ip : hp_ips) hp.push_back(hairpin_element(ip));
  res.elements_added += hp.size();
  if (!hp.empty()) batch.add_elements(kSetHairpin, std::move(hp));
  for (auto& [set, v] : elems) batch.add_elements(set, std::move(v));
  // Stale: count sets and pick chains no longer used (added first, so their delete cannot fail
  // on absence), affinity chains and sets of the applied ports that the desired ones lack.
  for (const std::string& pick : old_picks) {
    if (picks.count(pick)) continue;
    batch.add_chain(nft::Chain{pick, std::nullopt});
    bb.stale_chains.push_back(pick);
  }
  for (const auto& [c, n] : old_counts) {
    if (counts.count(c)) continue;
    batch.add_set(plain_set(count_set_name(c), !is_nodeport_set(c.kind)));
    bb.stale_sets.push_back(count_set_name(c));
  }
  for (const auto& [o, n] : changes) {
    if (!o || (n && *o == *n)) continue;
    PortPlan p = plan_port(*o);
    for (const ChainPlan& c : p.chains) {
      if (!wanted_chains.count(c.name)) bb.stale_chains.push_back(c.name);
    }
    for (const SetPlan& s : p.sets) {
      if (!wanted_sets.count(s.name)) bb.stale_sets.push_back(s.name);
    }
  }
}

void incremental_batch(const PortChanges& changes, BatchBuilder& bb, Batch& batch, SyncResult& res,
                       Next& next) {
  auto& owner = next.owner;
  auto& hairpin = next.hairpin;
  auto& counts = next.counts;
  auto& picks = next.picks;
  const std::map<CountSet, uint32_t> counts_before = counts;
  std::vector<std::pair<ElemPlan, std::string>> pending_adds;
  std::unordered_map<Ipv4, int> hairpin_delta;
  for (const auto& [o, n] : changes) {
    PortPlan op = o ? plan_port(*o) : PortPlan{};
    PortPlan np = n ? plan_port(*n) : PortPlan{};
    const std::string key = n ? n->key() : o->key();
    // Sets: new ones added; gone ones deleted after the rules using them are flushed.
    {
      auto oi = op.sets.begin();
      for (const SetPlan& s : np.sets) {
        while (oi != op.sets.end() && oi->name < s.name) bb.stale_sets.push_back((oi++)->name);
        if (oi != op.sets.end() && oi->name == s.name) {
          ++oi;
        } else {
          bb.new_sets.push_back(affinity_set(s));
        }
      }
      for (; oi != op.sets.end(); ++oi) bb.stale_sets.push_back(oi->name);
    }
    // Chains (affinity Services only).
    {
      auto oi = op.chains.begin();
      for (const ChainPlan& c : np.chains) {
        while (oi != op.chains.end() && oi->name < c.name) {
          bb.stale_chains.push_back((oi++)->name);
        }
        if (oi != op.chains.end() && oi->name == c.name) {
          if (oi->sig != c.sig) bb.write_chain(*n, np, c, true);
          ++oi;
        } else {
          bb.write_chain(*n, np, c, false);
        }
      }
      for (; oi != op.chains.end(); ++oi) bb.stale_chains.push_back(oi->name);
    }
    // Elements: only those of addresses this port owns.
    {
      std::unordered_set<uint64_t> had;  // addresses the old port owned
      for (const ElemPlan& e : op.elems) {
        auto it = owner.find(e.owner_key());
        if (it != owner.end() && it->second == key) had.insert(e.owner_key());
      }
      auto del = [&](const ElemPlan& e) {
        if (!had.count(e.owner_key())) return;
        if (is_count_set(e.set)) --counts[CountSet{e.set, e.n}];
        bb.del_elems[set_name(e)].push_back(to_element(e));
        ++res.elements_deleted;
      };
      // Adds wait until every port's deletes are done, so a key moving from one port to
      // another in the same sync (a ClusterIP reused) is free when its new owner claims it.
      auto add = [&](const ElemPlan& e) { pending_adds.emplace_back(e, key); };
      auto oi = op.elems.begin();
      for (const ElemPlan& e : np.elems) {
        while (oi != op.elems.end() && key_less(*oi, e)) del(*oi++);
        if (oi != op.elems.end() && oi->key() == e.key()) {
          if (!(*oi == e)) {
            del(*oi);
            add(e);
          }
          ++oi;
        } else {
          add(e);
        }
      }
      while (oi != op.elems.end()) del(*oi++);
      // The old port's addresses are released; those the new port still has elements on
      // (unchanged ones stay in the kernel) are kept, the others are claimed by the adds below.
      for (uint64_t a : had) owner.erase(a);
      for (const ElemPlan& e : np.elems) {
        if (had.count(e.owner_key())) owner.emplace(e.owner_key(), key);
      }
    }
    if (o && !o->endpoints.empty()) {
      for (Ipv4 ip : endpoint_ips(*o)) --hairpin_delta[ip];
    }
    if (n && !n->endpoints.empty()) {
      for (Ipv4 ip : endpoint_ips(*n)) ++hairpin_delta[ip];
    }
  }
  for (auto& [e, key] : pending_adds) {
    auto [it, inserted] = owner.emplace(e.owner_key(), key);
    if (!inserted && it->second != key) continue;  // another port owns it
    if (is_count_set(e.set)) ++counts[CountSet{e.set, e.n}];
    bb.add_elems[set_name(e)].push_back(to_element(e));
    ++res.elements_added;
  }
  // Counts that appear or go: their sets and pick chains, and the dispatch chains holding
  // their rules rewritten (the only incremental change that adds rules; the chain graph the
  // kernel then re-validates is a few dozen chains).
  std::erase_if(counts, [](const auto& kv) { return kv.second == 0; });
  std::set<const char*> refill;
  std::set<std::string> needed_picks;
  for (const auto& [c, n] : counts) {
    if (std::string pick = pick_chain_name(c); !pick.empty()) needed_picks.insert(pick);
    if (counts_before.count(c)) continue;
    size_t had = picks.size();
    add_count_set(batch, c, picks, /*flush=*/false);
    res.chains_written += picks.size() - had;
    refill.insert(dispatch_chain(c.kind));
  }
  for (const auto& [c, n] : counts_before) {
    if (counts.count(c)) continue;
    refill.insert(dispatch_chain(c.kind));
    bb.stale_sets.push_back(count_set_name(c));
    next.removed_counts.push_back(c);
  }
  for (const char* chain : refill) {
    batch.flush_chain(chain);
    for (const auto& [c, n] : counts) {
      if (dispatch_chain(c.kind) == chain) batch.add_rule(chain, dispatch_rule(c));
    }
  }
  for (auto it = picks.begin(); it != picks.end();) {
    if (needed_picks.count(*it)) {
      ++it;
      continue;
    }
    bb.stale_chains.push_back(*it);
    next.removed_picks.push_back(*it);
    it = picks.erase(it);
  }
  for (const auto& [ip, d] : hairpin_delta) {
    if (d == 0) continue;
    uint32_t& count = hairpin[ip];
    uint32_t before = count;
    count = static_cast<uint32_t>(static_cast<int>(count) + d);
    if (before == 0 && count > 0) {
      bb.add_elems[kSetHairpin].push_back(hairpin_element(ip));
      ++res.elements_added;
    } else if (before > 0 && count == 0) {
      bb.del_elems[kSetHairpin].push_back(hairpin_element(ip));
      ++res.elements_deleted;
    }
    if (count == 0) hairpin.erase(ip);
  }
  for (nft::Set& s : bb.new_sets) batch.add_set(std::move(s));
  for (const std::string& c : bb.new_chains) batch.add_chain(nft::Chain{c, std::nullopt});
  for (const std::string& c : bb.flush_chains) batch.flush_chain(c);
  for (auto& [chain, rules] : bb.fill) {
    for (Rule& r : rules) batch.add_rule(chain, std::move(r));
  }
  res.chains_written += bb.fill.size();
  for (auto& [set, v] : bb.del_elems) batch.delete_elements(set, std::move(v));
  for (auto& [set, v] : bb.add_elems) batch.add_elements(set, std::move(v));
}

}  // namespace

}  // namespace skiff::services
