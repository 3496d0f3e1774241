#include "netagent/dns/zone.h"

#include <chrono>

namespace skiff::dns {

using nlohmann::json;

std::optional<Cidr4> parse_cidr(std::string_view s) {
  size_t slash = s.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto ip = parse_ip4(s.substr(0, slash));
  std::string_view p = s.substr(slash + 1);
  if (!ip || p.empty() || p.size() > 2) return std::nullopt;
  int prefix = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return std::nullopt;
    prefix = prefix * 10 + (c - '0');
  }
  if (prefix > 32) return std::nullopt;
  uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  return Cidr4{*ip & mask, prefix};
}

namespace {

std::string str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

const json& sub(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it != j.end() ? *it : kNull;
}

bool valid_label(const std::string& s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

std::string dashed(uint32_t ip) {
  std::string s = ip4_str(ip);
  for (char& c : s)
    if (c == '.') c = '-';
  return s;
}

std::optional<uint32_t> undashed(const std::string& s) {
  std::string d = s;
  for (char& c : d)
    if (c == '-') c = '.';
  return parse_ip4(d);
}

std::string reverse_name(uint32_t ip) {
  return std::to_string(ip & 255) + "." + std::to_string((ip >> 8) & 255) + "." +
         std::to_string((ip >> 16) & 255) + "." + std::to_string(ip >> 24) + ".in-addr.arpa";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string strip_dot(std::string s) {
  while (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

Record a_rec(uint32_t ip, uint32_t ttl) {
  Record r;
  r.type = kA;
  r.ttl = ttl;
  r.a = ip;
  return r;
}

Record target_rec(uint16_t type, std::string target, uint32_t ttl) {
  Record r;
  r.type = type;
  r.ttl = ttl;
  r.target = std::move(target);
  return r;
}

}  // namespace

void Zone::add_fixed(const std::string& lname, Record r) {
  r.name = lname;
  fixed_[lname].push_back(std::move(r));
  ++count_;
  // Every ancestor exists: a query for an empty non-terminal such as "dns.cluster.local" is
  // NODATA, not NXDOMAIN (RFC 8020).
  for (size_t dot = lname.find('.'); dot != std::string::npos; dot = lname.find('.', dot + 1))
    fixed_ents_.insert(lname.substr(dot + 1));
}

namespace {

// A named port: the SRV owner prefix and the number.
struct Port {
  std::string owner;  // "_<name>._<proto>" (lower case)
  uint16_t port = 0;
};

// Named ports with a valid number ("_http._tcp"), in order, from a Service's spec.ports or an
// Endpoints subset's ports.
std::vector<Port> named_ports(const json& ports) {
  std::vector<Port> out;
  if (!ports.is_array()) return out;
  for (const auto& p : ports) {
    std::string pname = lower(str(p, "name"));
    std::string proto = lower(str(p, "protocol"));
    if (proto.empty()) proto = "tcp";
    const json& port = sub(p, "port");
    if (pname.empty() || !port.is_number_integer()) continue;
    int pn = port.get<int>();
    if (pn < 1 || pn > 65535) continue;
    out.push_back({"_" + pname + "._" + proto, static_cast<uint16_t>(pn)});
  }
  return out;
}

// A ClusterIP Service's IPv4 addresses (clusterIPs, else clusterIP).
std::vector<uint32_t> cluster_ips(const json& spec) {
  std::vector<std::string> ips;
  if (sub(spec, "clusterIPs").is_array())
    for (const auto& ip : sub(spec, "clusterIPs"))
      if (ip.is_string()) ips.push_back(ip.get<std::string>());
  const std::string cluster_ip = str(spec, "clusterIP");
  if (ips.empty() && !cluster_ip.empty()) ips.push_back(cluster_ip);
  std::vector<uint32_t> out;
  for (const auto& s : ips)
    if (auto ip = parse_ip4(s)) out.push_back(*ip);  // IPv6 and garbage are skipped
  return out;
}

// One ready address of a headless Service: its name label and the subset's named ports.
struct Member {
  uint32_t ip = 0;
  std::string label;  // hostname, else a-b-c-d
  const json* ports = nullptr;
};

std::vector<Member> members(const json& endpoints) {
  std::vector<Member> out;
  const json& subsets = sub(endpoints, "subsets");
  if (!subsets.is_array()) return out;
  for (const auto& ss : subsets) {
    const json& addrs = sub(ss, "addresses");
    if (!addrs.is_array()) continue;
    for (const auto& a : addrs) {
      auto ip = parse_ip4(str(a, "ip"));
      if (!ip) continue;
      std::string host = lower(str(a, "hostname"));
      out.push_back({*ip, valid_label(host) ? host : dashed(*ip), &sub(ss, "ports")});
    }
  }
  return out;
}

void push_unique(std::vector<Record>* v, Record r) {
  for (const auto& have : *v)
    if (have == r) return;  // the same record twice (an IP in two subsets)
  v->push_back(std::move(r));
}

}  // namespace

std::shared_ptr<const Zone> Zone::build(const ZoneConfig& cfg, const std::vector<json>& services,
                                        const std::vector<json>& endpoints) {
  auto index = [](const std::vector<json>& objs) {
    auto m = std::make_shared<std::map<std::string, json>>();
    for (const auto& o : objs) {
      const json& md = sub(o, "metadata");
      (*m)[str(md, "namespace") + "/" + str(md, "name")] = o;
    }
    return m;
  };
  auto lookup = [](std::shared_ptr<std::map<std::string, json>> m) {
    return [m](const std::string& key) -> std::optional<json> {
      auto it = m->find(key);
      if (it == m->end()) return std::nullopt;
      return it->second;
    };
  };
  auto svcs = index(services);
  return build(
      cfg,
      [&](const std::function<void(const json&)>& fn) {
        for (const auto& svc : services) fn(svc);
      },
      lookup(svcs), lookup(index(endpoints)));
}

std::shared_ptr<const Zone> Zone::build(const ZoneConfig& cfg, const ServiceWalk& walk,
                                        ObjectLookup services, ObjectLookup endpoints) {
  std::shared_ptr<Zone> z(new Zone(cfg));
  z->services_ = std::move(services);
  z->endpoints_ = std::move(endpoints);
  const std::string& d = z->cfg_.domain;
  const uint32_t ttl = cfg.ttl;

  // The apex: SOA and NS, and the name server's own address.
  z->add_fixed(d, z->soa(d));
  z->add_fixed(d, target_rec(kNS, "ns.dns." + d, ttl));
  z->add_fixed("ns.dns." + d, a_rec(cfg.dns_ip, ttl));
  for (const Cidr4& c : {cfg.service_cidr, cfg.cluster_cidr}) {
    std::string apex = z->reverse_apex(reverse_name(c.net));
    if (apex.empty()) continue;
    z->add_fixed(apex, z->soa(apex));
    z->add_fixed(apex, target_rec(kNS, "ns.dns." + d, ttl));
  }

  // What is not found by name: namespaces and PTR targets. The rest is counted only.
  auto add_ptr = [&](uint32_t ip, const std::string& target) {
    auto [lo, hi] = z->ptr_.equal_range(ip);
    for (auto it = lo; it != hi; ++it)
      if (it->second == target) return;
    z->ptr_.emplace(ip, target);
    ++z->count_;
  };
  walk([&](const json& svc) {
    const json& md = sub(svc, "metadata");
    const json& spec = sub(svc, "spec");
    std::string ns = lower(str(md, "namespace")), name = lower(str(md, "name"));
    if (!valid_label(ns) || !valid_label(name)) return;  // the API validates; stay safe
    z->namespaces_.insert(ns);
    const std::string base = name + "." + ns + ".svc." + d;
    if (str(spec, "type") == "ExternalName") {
      if (!strip_dot(str(spec, "externalName")).empty()) ++z->count_;
      return;
    }
    if (str(spec, "clusterIP") != "None") {
      for (uint32_t ip : cluster_ips(spec)) {
        ++z->count_;
        add_ptr(ip, base);
      }
      z->count_ += named_ports(sub(spec, "ports")).size();
      return;
    }
    // Headless: the ready endpoint addresses.
    auto ep = z->endpoints_(str(md, "namespace") + "/" + str(md, "name"));
    if (!ep) return;
    for (const Member& m : members(*ep)) {
      z->count_ += 2 + named_ports(*m.ports).size();  // A of the Service and of the name, SRV
      add_ptr(m.ip, m.label + "." + base);
    }
  });
  return z;
}

bool Zone::service_records(const std::string& rel, std::vector<Record>* out) const {
  // rel: "svc", "<ns>.svc", "<name>.<ns>.svc", "<label>.<name>.<ns>.svc" or
  // "_<port>._<proto>.<name>.<ns>.svc".
  std::vector<std::string> labels;
  for (size_t start = 0;;) {
    size_t dot = rel.find('.', start);
    labels.push_back(rel.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  const size_t n = labels.size();
  if (labels.back() != "svc" || n > 5) return false;
  if (n == 1) return !namespaces_.empty();
  if (n == 2) return namespaces_.count(labels[0]) > 0;
  const std::string& ns = labels[n - 2];
  const std::string& name = labels[n - 3];
  if (!valid_label(ns) || !valid_label(name)) return false;
  auto svc = services_(ns + "/" + name);
  if (!svc) return false;
  const json& spec = sub(*svc, "spec");
  const std::string& d = cfg_.domain;
  const std::string base = name + "." + ns + ".svc." + d;
  const uint32_t ttl = cfg_.ttl;
  const std::string owner = n == 5 ? labels[0] + "." + labels[1] : n == 4 ? labels[0] : "";

  if (str(spec, "type") == "ExternalName") {
    if (n != 3) return false;
    std::string target = lower(strip_dot(str(spec, "externalName")));
    if (!target.empty()) out->push_back(target_rec(kCNAME, target, ttl));
    return true;
  }
  if (str(spec, "clusterIP") != "None") {
    if (n == 3) {
      for (uint32_t ip : cluster_ips(spec)) push_unique(out, a_rec(ip, ttl));
      return true;
    }
    bool found = false;
    for (const Port& p : named_ports(sub(spec, "ports"))) {
      // "_<proto>.<base>" is an empty non-terminal when an SRV name lies under it.
      if (n == 4 ? !ends_with(p.owner, "." + owner) : p.owner != owner) continue;
      found = true;
      if (n == 4) continue;
      Record r = target_rec(kSRV, base, ttl);
      r.priority = 0;
      r.weight = 100;
      r.port = p.port;
      push_unique(out, r);
    }
    return found;
  }

  // Headless: the ready endpoint addresses.
  auto ep = endpoints_(ns + "/" + name);
  std::vector<Member> ms = ep ? members(*ep) : std::vector<Member>{};
  if (n == 3) {
    for (const Member& m : ms) push_unique(out, a_rec(m.ip, ttl));
    return true;
  }
  bool found = false;
  for (const Member& m : ms) {
    if (n == 4 && m.label == owner) {  // <hostname>.<base>
      found = true;
      push_unique(out, a_rec(m.ip, ttl));
    }
    for (const Port& p : named_ports(*m.ports)) {
      if (n == 4 ? !ends_with(p.owner, "." + owner) : p.owner != owner) continue;
      found = true;
      if (n == 4) continue;
      Record r = target_rec(kSRV, m.label + "." + base, ttl);
      r.port = p.port;
      push_unique(out, r);
    }
  }
  if (n == 5) {
    // CoreDNS spreads weight 100 over the targets of one name.
    uint16_t w = static_cast<uint16_t>(std::max<size_t>(1, 100 / std::max<size_t>(1, out->size())));
    for (auto& r : *out) r.weight = w;
  }
  return found;
}

bool Zone::reverse_records(const std::string& l, std::vector<Record>* out) const {
  static const std::string kArpa = ".in-addr.arpa";
  if (!ends_with(l, kArpa)) return false;
  // Octets right to left, strictly decimal (no leading zeros: "010" is another name).
  std::vector<std::string> labels;
  std::string rest = l.substr(0, l.size() - kArpa.size());
  for (size_t start = 0;;) {
    size_t dot = rest.find('.', start);
    labels.push_back(rest.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  std::vector<int> octets;  // most significant first
  for (auto it = labels.rbegin(); it != labels.rend(); ++it) {
    const std::string& o = *it;
    if (o.empty() || o.size() > 3 || (o.size() > 1 && o[0] == '0')) return false;
    int v = 0;
    for (char c : o) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    if (v > 255) return false;
    octets.push_back(v);
  }
  if (octets.empty() || octets.size() > 4) return false;
  uint32_t ip = 0;
  for (size_t i = 0; i < octets.size(); ++i) ip |= static_cast<uint32_t>(octets[i]) << (24 - 8 * i);
  if (octets.size() < 4) {
    // An empty non-terminal when some PTR name lies under it.
    uint32_t span = 32 - 8 * static_cast<uint32_t>(octets.size());
    uint64_t last = static_cast<uint64_t>(ip) + ((uint64_t{1} << span) - 1);
    auto it = ptr_.lower_bound(ip);
    return it != ptr_.end() && it->first <= last;
  }
  auto [lo, hi] = ptr_.equal_range(ip);
  for (auto it = lo; it != hi; ++it) out->push_back(target_rec(kPTR, it->second, cfg_.ttl));
  return lo != hi;
}

std::string Zone::reverse_apex(const std::string& lname) const {
  static const std::string kArpa = ".in-addr.arpa";
  if (!ends_with(lname, kArpa)) return "";
  std::string rest = lname.substr(0, lname.size() - kArpa.size());
  // Labels right to left are the octets from the most significant.
  std::vector<std::string> labels;
  for (size_t start = 0;;) {
    size_t dot = rest.find('.', start);
    labels.push_back(
        rest.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  uint32_t ip = 0;
  int n = 0;
  for (auto it = labels.rbegin(); it != labels.rend() && n < 4; ++it, ++n) {
    if (it->empty() || it->size() > 3) return "";
    int v = 0;
    for (char c : *it) {
      if (c < '0' || c > '9') return "";
      v = v * 10 + (c - '0');
    }
    if (v > 255) return "";
    ip |= static_cast<uint32_t>(v) << (24 - 8 * n);
  }
  for (const Cidr4& c : {cfg_.service_cidr, cfg_.cluster_cidr}) {
    if (c.prefix == 0) continue;
    // The name covers a range inside the CIDR: enough octets, and they match.
    if (n * 8 < c.prefix || !c.contains(ip)) continue;
    int k = (c.prefix + 7) / 8;
    std::string apex = "in-addr.arpa";
    for (int i = 0; i < k; ++i) apex = std::to_string((ip >> (24 - 8 * i)) & 255) + "." + apex;
    return apex;
  }
  return "";
}

Record Zone::soa(const std::string& apex) const {
  Record r;
  r.name = apex;
  r.type = kSOA;
  r.ttl = cfg_.ttl;
  r.soa.mname = "ns.dns." + cfg_.domain;
  r.soa.rname = "hostmaster." + cfg_.domain;
  r.soa.serial = static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count());
  r.soa.refresh = 7200;
  r.soa.retry = 1800;
  r.soa.expire = 86400;
  r.soa.minimum = cfg_.ttl;  // negative answers are cached this long (RFC 2308)
  return r;
}

bool Zone::authoritative(const std::string& name) const {
  std::string l = lower(strip_dot(name));
  const std::string& d = cfg_.domain;
  return l == d || ends_with(l, "." + d) || !reverse_apex(l).empty();
}

Answer Zone::lookup(const Question& q) const {
  Answer ans;
  const std::string qname = strip_dot(q.name);
  const std::string l = lower(qname);
  const std::string& d = cfg_.domain;
  const std::string apex = (l == d || ends_with(l, "." + d)) ? d : reverse_apex(l);
  auto negative = [&](uint8_t rcode) {
    ans.rcode = rcode;
    auto it = fixed_.find(apex);
    if (it != fixed_.end())
      for (const auto& r : it->second)
        if (r.type == kSOA) ans.authority.push_back(r);
    return ans;
  };
  if (q.klass != kClassIN && q.klass != kANY) {
    ans.rcode = kRefused;
    return ans;
  }
  if (q.type == kAXFR || q.type == 251 /* IXFR */) {
    ans.rcode = kRefused;
    return ans;
  }

  // <a-b-c-d>.<ns>.pod.<domain>: answered for any well-formed address (CoreDNS "pods
  // insecure"), so no Pod informer is needed.
  const std::string pod_zone = "pod." + d;
  if (l == pod_zone) return negative(kNoError);
  if (ends_with(l, "." + pod_zone)) {
    std::string rest = l.substr(0, l.size() - pod_zone.size() - 1);
    size_t dot = rest.find('.');
    if (dot == std::string::npos) return negative(kNoError);  // <ns>.pod.<domain>
    std::string ns = rest.substr(dot + 1);
    auto ip = undashed(rest.substr(0, dot));
    if (!ip || ns.find('.') != std::string::npos) return negative(kNxDomain);
    if (q.type != kA && q.type != kANY) return negative(kNoError);
    Record r = a_rec(*ip, cfg_.ttl);
    r.name = qname;
    ans.answers.push_back(r);
    return ans;
  }

  std::vector<Record> recs;
  bool exists = false;
  if (auto it = fixed_.find(l); it != fixed_.end()) {
    recs = it->second;
    exists = true;
  } else if (fixed_ents_.count(l)) {
    exists = true;
  } else if (apex == d) {
    exists = l != d && service_records(l.substr(0, l.size() - d.size() - 1), &recs);
  } else {
    exists = reverse_records(l, &recs);
  }
  if (!exists) return negative(kNxDomain);
  for (const auto& r : recs) {
    if (r.type == kCNAME && q.type != kCNAME) {
      // An alias answers every type with itself; the client follows it (the target is
      // outside the cluster, ExternalName).
      Record c = r;
      c.name = qname;
      ans.answers.push_back(c);
      return ans;
    }
  }
  for (const auto& r : recs) {
    if (r.type == q.type || q.type == kANY) {
      Record c = r;
      c.name = qname;
      ans.answers.push_back(std::move(c));
    }
  }
  if (ans.answers.empty()) return negative(kNoError);
  return ans;
}

}  // namespace skiff::dns
