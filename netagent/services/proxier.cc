// Proxier: the desired chains, sets and map elements of each ServicePort (a PortPlan), the
// difference between two plans, and the batch that applies it.
//
// Only the ServicePorts that differ from the last applied ones are planned on an incremental
// sync (O(changed) plans, strings and batch operations; the walk that finds them compares
// structs, no strings are built for unchanged ports). Which chain must be rewritten is decided by
// a small signature of the inputs its rules depend on, so rules are only rendered for chains
// that are new or changed.
#include "netagent/services/proxier.h"

#include <algorithm>
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

// ---- Plans ----

enum class MapId : uint8_t { kServiceIps, kNodePorts, kNoEpServices, kNoEpNodePorts };
const char* map_name(MapId m) {
  switch (m) {
    case MapId::kServiceIps:
      return kMapServiceIps;
    case MapId::kNodePorts:
      return kMapServiceNodePorts;
    case MapId::kNoEpServices:
      return kMapNoEndpointServices;
    case MapId::kNoEpNodePorts:
      return kMapNoEndpointNodePorts;
  }
  return "?";
}
constexpr int kMaps = 4;

// A map element packed in 64 bits: map (2) | ip (32) | proto (8) | port (16). NodePort maps
// have ip 0.
uint64_t elem_key(MapId m, Ipv4 ip, Protocol p, uint16_t port) {
  return (uint64_t(m) << 56) | (uint64_t(ip) << 24) | (uint64_t(p) << 16) | port;
}
MapId key_map(uint64_t k) { return static_cast<MapId>(k >> 56); }

struct ElemPlan {
  uint64_t key;
  VerdictCode code;  // kGoto (chain) or kDrop
  std::string chain;
  bool operator==(const ElemPlan&) const = default;
};

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
  std::vector<ChainPlan> chains;  // sorted by name
  std::vector<ElemPlan> elems;    // sorted by key
  std::vector<SetPlan> sets;      // sorted by name
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

PortPlan plan_port(const ServicePort& sp) {
  PortPlan p;
  const std::string base = port_base(sp);
  const uint64_t h = fnv1a(base);
  p.svc_chain = hashed_name("service-", base, h);
  const std::string& svc_chain = p.svc_chain;
  const bool has_eps = !sp.endpoints.empty();
  const bool local_chain = has_eps && uses_local_chain(sp);
  if (local_chain) p.loc_chain = hashed_name("local-", base, h);
  const std::string& loc_chain = p.loc_chain;
  const std::string ext_chain =
      has_eps && sp.has_external() ? hashed_name("external-", base, h) : std::string();

  if (has_eps) {
    ChainPlan c{svc_chain, ChainKind::kService, {}, 0};
    append_u32(&c.sig, sp.cluster_ip);
    append_u32(&c.sig, sp.affinity_timeout_seconds);
    for (const Endpoint& e : sp.endpoints) {
      append_u32(&c.sig, e.ip);
      append_u32(&c.sig, e.port);
    }
    p.chains.push_back(std::move(c));
    if (local_chain) {
      ChainPlan l{loc_chain, ChainKind::kLocal, {}, 0};
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
      ChainPlan c{hashed_name("endpoint-", eb, fnv1a(eb)), ChainKind::kEndpoint, {}, i};
      append_u32(&c.sig, sp.affinity_timeout_seconds);
      p.ep_chains.push_back(c.name);
      p.chains.push_back(std::move(c));
      if (sp.affinity_timeout_seconds) {
        p.ep_sets.push_back(affinity_name(sp, e));
        p.sets.push_back({p.ep_sets.back(), sp.affinity_timeout_seconds});
      }
    }
  }

  // Elements. With endpoints: the ClusterIP goes to the internal-policy chain, external
  // addresses and the node port to the external chain. Without: the reject maps.
  auto add = [&](MapId m, Ipv4 ip, uint16_t port, VerdictCode code, const std::string& chain) {
    p.elems.push_back({elem_key(m, ip, sp.protocol, port), code, chain});
  };
  if (has_eps) {
    add(MapId::kServiceIps, sp.cluster_ip, sp.port, VerdictCode::kGoto,
        sp.internal_policy_local ? loc_chain : svc_chain);
    for (Ipv4 ip : sp.external_ips)
      add(MapId::kServiceIps, ip, sp.port, VerdictCode::kGoto, ext_chain);
    for (Ipv4 ip : sp.load_balancer_ips) {
      add(MapId::kServiceIps, ip, sp.port, VerdictCode::kGoto, ext_chain);
    }
    if (sp.node_port) add(MapId::kNodePorts, 0, sp.node_port, VerdictCode::kGoto, ext_chain);
  } else {
    add(MapId::kNoEpServices, sp.cluster_ip, sp.port, VerdictCode::kGoto, kChainReject);
    for (Ipv4 ip : sp.external_ips) {
      add(MapId::kNoEpServices, ip, sp.port, VerdictCode::kGoto, kChainReject);
    }
    for (Ipv4 ip : sp.load_balancer_ips) {
      add(MapId::kNoEpServices, ip, sp.port, VerdictCode::kGoto, kChainReject);
    }
    if (sp.node_port) {
      add(MapId::kNoEpNodePorts, 0, sp.node_port, VerdictCode::kGoto, kChainReject);
    }
  }
  std::sort(p.chains.begin(), p.chains.end(),
            [](const ChainPlan& a, const ChainPlan& b) { return a.name < b.name; });
  std::sort(p.elems.begin(), p.elems.end(),
            [](const ElemPlan& a, const ElemPlan& b) { return a.key < b.key; });
  // The same address twice (an external IP that is also an LB IP): keep one.
  p.elems.erase(std::unique(p.elems.begin(), p.elems.end(),
                            [](const ElemPlan& a, const ElemPlan& b) { return a.key == b.key; }),
                p.elems.end());
  std::sort(p.sets.begin(), p.sets.end(),
            [](const SetPlan& a, const SetPlan& b) { return a.name < b.name; });
  return p;
}

// ---- Rules ----

void append(std::vector<Expr>* to, std::vector<Expr> from) {
  for (Expr& e : from) to->push_back(std::move(e));
}

Rule jump(const char* chain, std::vector<Expr> prefix = {}, std::string comment = {}) {
  Rule r{std::move(prefix), std::move(comment)};
  r.exprs.push_back(Verdict{VerdictCode::kJump, chain});
  return r;
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
  Ipv4 ip = static_cast<Ipv4>(p.key >> 24);
  uint8_t proto = static_cast<uint8_t>(p.key >> 16);
  uint16_t port = static_cast<uint16_t>(p.key);
  MapId m = key_map(p.key);
  if (m == MapId::kServiceIps || m == MapId::kNoEpServices) {
    e.key = nft::service_key(ip, proto, port);
  } else {
    e.key = nft::proto_port_key(proto, port);
  }
  e.data = Verdict{p.code, p.chain};
  return e;
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

nft::Set static_map(const char* name, bool with_addr) {
  nft::Set m;
  m.name = name;
  if (with_addr) m.key.push_back(nft::SetType::kIpv4Addr);
  m.key.push_back(nft::SetType::kInetProto);
  m.key.push_back(nft::SetType::kInetService);
  m.data = nft::SetType::kVerdict;
  return m;
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
      {kChainServices, std::nullopt},
      {kChainServiceEndpointsCheck, std::nullopt},
      {kChainNodePortEndpointsCheck, std::nullopt},
      {kChainNatPrerouting,
       BaseChain{"nat", Hook::kPrerouting, nft::kPriorityDstNat, VerdictCode::kAccept}},
      {kChainNatOutput,
       BaseChain{"nat", Hook::kOutput, nft::kPriorityDstNat, VerdictCode::kAccept}},
      {kChainFilterInput,
       BaseChain{"filter", Hook::kInput, nft::kPriorityFilter, VerdictCode::kAccept}},
      {kChainFilterForward,
       BaseChain{"filter", Hook::kForward, nft::kPriorityFilter, VerdictCode::kAccept}},
      {kChainFilterOutput,
       BaseChain{"filter", Hook::kOutput, nft::kPriorityFilter, VerdictCode::kAccept}},
  };
}

std::vector<Rule> static_rules(std::string_view chain) {
  std::vector<Rule> r;
  auto not_loopback = [] {
    return nft::match_ipv4(nft::IpField::kDaddr, nft::Ipv4Prefix{0x7f000000, 8}, true);
  };
  auto ct_new = [] { return nft::match_ct_state(nft::kCtStateNew); };
  if (chain == kChainMarkForMasquerade) {
    r.push_back(Rule{nft::set_mark_bits(nft::kMasqueradeMark), {}});
  } else if (chain == kChainReject) {
    r.push_back(Rule{nft::reject_tcp_reset(), {}});
    r.push_back(Rule{nft::reject_icmp_port_unreachable(), {}});
  } else if (chain == kChainServices) {
    r.push_back(Rule{nft::vmap_daddr_proto_port(kMapServiceIps), {}});
    std::vector<Expr> e = nft::match_fib_daddr_local();
    append(&e, not_loopback());
    append(&e, nft::vmap_proto_port(kMapServiceNodePorts));
    r.push_back(Rule{std::move(e), {}});
  } else if (chain == kChainServiceEndpointsCheck) {
    r.push_back(Rule{nft::vmap_daddr_proto_port(kMapNoEndpointServices), {}});
  } else if (chain == kChainNodePortEndpointsCheck) {
    std::vector<Expr> e = nft::match_fib_daddr_local();
    append(&e, not_loopback());
    append(&e, nft::vmap_proto_port(kMapNoEndpointNodePorts));
    r.push_back(Rule{std::move(e), {}});
  } else if (chain == kChainNatPrerouting || chain == kChainNatOutput) {
    r.push_back(jump(kChainServices));
  } else if (chain == kChainFilterForward) {
    r.push_back(jump(kChainServiceEndpointsCheck, ct_new()));
  } else if (chain == kChainFilterInput || chain == kChainFilterOutput) {
    r.push_back(jump(kChainServiceEndpointsCheck, ct_new()));
    r.push_back(jump(kChainNodePortEndpointsCheck, ct_new()));
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
  // Which ServicePort owns each map element (two Services claiming the same external IP and
  // port: the first one keeps it; adding the second would make the kernel refuse the batch).
  std::unordered_map<uint64_t, std::string> owner;
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
  std::vector<nft::Element> del_elems[kMaps];
  std::vector<nft::Element> add_elems[kMaps];
  std::vector<std::string> stale_chains;
  std::vector<std::string> stale_sets;

  void write_chain(const ServicePort& sp, const PortPlan& p, const ChainPlan& c, bool exists) {
    (exists ? flush_chains : new_chains).push_back(c.name);
    fill.emplace_back(c.name, renderer.render(sp, p, c));
  }
};

}  // namespace

Result<SyncResult> Proxier::sync(const ServiceMap& desired,
                                 const std::vector<std::string>* changed) {
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  SyncResult res;
  auto now = opts_.now();
  if (!full_due_ && now - last_full_ >= opts_.full_sync_period) full_due_ = true;
  res.full = full_due_;
  Renderer renderer{state_->cluster};
  BatchBuilder bb{renderer};
  Batch batch(nft::kSkiffFamily, nft::kSkiffTable);
  std::unordered_map<uint64_t, std::string> owner;  // full: rebuilt from scratch

  // The changed ports: (old, new), either may be null.
  std::vector<std::pair<const ServicePort*, const ServicePort*>> changes;
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

  if (res.full) {
    // Everything of ours, rebuilt in one transaction. Maps are flushed and refilled, chains
    // flushed and refilled, so drift (an element or rule removed or added by hand, a chain
    // deleted) is repaired; conntrack keeps established connections' NAT throughout.
    batch.add_table();
    for (MapId m :
         {MapId::kServiceIps, MapId::kNodePorts, MapId::kNoEpServices, MapId::kNoEpNodePorts}) {
      bool with_addr = m == MapId::kServiceIps || m == MapId::kNoEpServices;
      batch.add_set(static_map(map_name(m), with_addr));
      batch.flush_set(map_name(m));
    }
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
      for (Rule& r : static_rules(c.name)) batch.add_rule(c.name, std::move(r));
    }
    // Stale: chains and sets of the applied ports that the desired ones do not have.
    std::unordered_set<std::string> wanted_chains, wanted_sets;
    std::vector<PortPlan> plans;
    plans.reserve(desired.size());
    for (const auto& [key, sp] : desired) {
      PortPlan p = plan_port(sp);
      for (const SetPlan& s : p.sets) {
        batch.add_set(affinity_set(s));
        wanted_sets.insert(s.name);
      }
      for (const ChainPlan& c : p.chains) {
        batch.add_chain(nft::Chain{c.name, std::nullopt});
        batch.flush_chain(c.name);
        wanted_chains.insert(c.name);
      }
      plans.push_back(std::move(p));
    }
    size_t i = 0;
    for (const auto& [key, sp] : desired) {
      for (const ChainPlan& c : plans[i].chains) {
        for (Rule& r : renderer.render(sp, plans[i], c)) batch.add_rule(c.name, std::move(r));
        ++res.chains_written;
      }
      for (const ElemPlan& e : plans[i].elems) {
        if (!owner.emplace(e.key, key).second) continue;  // claimed by an earlier port
        bb.add_elems[static_cast<int>(key_map(e.key))].push_back(to_element(e));
        ++res.elements_added;
      }
      ++i;
    }
    for (int m = 0; m < kMaps; ++m) {
      if (!bb.add_elems[m].empty()) {
        batch.add_elements(map_name(static_cast<MapId>(m)), std::move(bb.add_elems[m]));
      }
    }
    // A full sync's changes pair every applied port with its desired one (or none); an
    // unchanged port plans to the same names, all wanted, so only the others are planned again.
    for (auto& [o, n] : changes) {
      if (!o || (n && *o == *n)) continue;
      PortPlan p = plan_port(*o);
      for (const ChainPlan& c : p.chains) {
        if (!wanted_chains.count(c.name)) bb.stale_chains.push_back(c.name);
      }
      for (const SetPlan& s : p.sets) {
        if (!wanted_sets.count(s.name)) bb.stale_sets.push_back(s.name);
      }
    }
  } else {
    std::vector<std::pair<ElemPlan, std::string>> pending_adds;
    for (auto& [o, n] : changes) {
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
      // Chains.
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
      // Elements.
      {
        auto del = [&](const ElemPlan& e) {
          auto it = state_->owner.find(e.key);
          if (it == state_->owner.end() || it->second != key) return;
          state_->owner.erase(it);
          bb.del_elems[static_cast<int>(key_map(e.key))].push_back(to_element(e));
          ++res.elements_deleted;
        };
        // Adds wait until every port's deletes are done, so a key moving from one port to
        // another in the same sync (a ClusterIP reused) is free when its new owner claims it.
        auto add = [&](const ElemPlan& e) { pending_adds.emplace_back(e, key); };
        auto oi = op.elems.begin();
        for (const ElemPlan& e : np.elems) {
          while (oi != op.elems.end() && oi->key < e.key) del(*oi++);
          if (oi != op.elems.end() && oi->key == e.key) {
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
      }
    }
    for (auto& [e, key] : pending_adds) {
      auto [it, inserted] = state_->owner.emplace(e.key, key);
      if (!inserted && it->second != key) continue;  // another port owns it
      bb.add_elems[static_cast<int>(key_map(e.key))].push_back(to_element(e));
      ++res.elements_added;
    }
    for (nft::Set& s : bb.new_sets) batch.add_set(std::move(s));
    for (const std::string& c : bb.new_chains) batch.add_chain(nft::Chain{c, std::nullopt});
    for (const std::string& c : bb.flush_chains) batch.flush_chain(c);
    for (auto& [chain, rules] : bb.fill) {
      for (Rule& r : rules) batch.add_rule(chain, std::move(r));
    }
    res.chains_written = bb.fill.size();
    for (int m = 0; m < kMaps; ++m) {
      if (!bb.del_elems[m].empty()) {
        batch.delete_elements(map_name(static_cast<MapId>(m)), std::move(bb.del_elems[m]));
      }
    }
    for (int m = 0; m < kMaps; ++m) {
      if (!bb.add_elems[m].empty()) {
        batch.add_elements(map_name(static_cast<MapId>(m)), std::move(bb.add_elems[m]));
      }
    }
  }
  // Stale chains: flushed first (so no stale chain still jumps to another), then deleted.
  for (const std::string& c : bb.stale_chains) batch.flush_chain(c);
  for (const std::string& c : bb.stale_chains) batch.delete_chain(c);
  for (const std::string& s : bb.stale_sets) batch.delete_set(s);
  res.chains_deleted = bb.stale_chains.size();

  res.batch_ops = batch.ops().size();
  auto t1 = Clock::now();
  res.build_time = t1 - t0;
  if (!batch.empty()) {
    Status st = tables_.commit(batch);
    res.commit_time = Clock::now() - t1;
    if (!st.is_ok()) {
      // The kernel kept the previous ruleset; our owner bookkeeping may now be ahead of it, so
      // the next sync rebuilds everything from applied_.
      full_due_ = true;
      return st.with_context("sync service rules (" + std::to_string(res.batch_ops) +
                             " operations)");
    }
  }
  if (res.full) {
    state_->owner = std::move(owner);
    applied_ = desired;
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

}  // namespace skiff::services
