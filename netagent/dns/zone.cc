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

void Zone::add(const std::string& lname, Record r) {
  r.name = lname;
  auto& v = names_[lname];
  for (const auto& have : v)
    if (have == r) return;  // the same record twice (an IP in two subsets)
  v.push_back(std::move(r));
  ++count_;
  // The owner and every ancestor exist: a query for an empty non-terminal such as
  // "default.svc.cluster.local" is NODATA, not NXDOMAIN (RFC 8020).
  std::string n = lname;
  while (exists_.insert(n).second) {
    size_t dot = n.find('.');
    if (dot == std::string::npos) break;
    n = n.substr(dot + 1);
  }
}

std::shared_ptr<const Zone> Zone::build(const ZoneConfig& cfg, const std::vector<json>& services,
                                        const std::vector<json>& endpoints) {
  std::map<std::string, const json*> eps;
  for (const auto& e : endpoints) {
    const json& md = sub(e, "metadata");
    eps[str(md, "namespace") + "/" + str(md, "name")] = &e;
  }
  return build(
      cfg,
      [&](const std::function<void(const json&)>& fn) {
        for (const auto& svc : services) fn(svc);
      },
      [&](const std::string& key) -> std::optional<json> {
        auto it = eps.find(key);
        if (it == eps.end()) return std::nullopt;
        return *it->second;
      });
}

std::shared_ptr<const Zone> Zone::build(const ZoneConfig& cfg, const ServiceWalk& services,
                                        const EndpointsLookup& endpoints) {
  std::shared_ptr<Zone> z(new Zone(cfg));
  const std::string& d = z->cfg_.domain;
  const uint32_t ttl = cfg.ttl;

  // The apex: SOA and NS, and the name server's own address.
  z->add(d, [&] {
    Record r = z->soa(d);
    return r;
  }());
  z->add(d, target_rec(kNS, "ns.dns." + d, ttl));
  z->add("ns.dns." + d, a_rec(cfg.dns_ip, ttl));
  for (const Cidr4& c : {cfg.service_cidr, cfg.cluster_cidr}) {
    std::string apex = z->reverse_apex(reverse_name(c.net));
    if (apex.empty()) continue;
    z->add(apex, z->soa(apex));
    z->add(apex, target_rec(kNS, "ns.dns." + d, ttl));
  }

  services([&](const json& svc) {
    const json& md = sub(svc, "metadata");
    const json& spec = sub(svc, "spec");
    std::string ns = lower(str(md, "namespace")), name = lower(str(md, "name"));
    if (!valid_label(ns) || !valid_label(name)) return;  // the API validates; stay safe
    const std::string base = name + "." + ns + ".svc." + d;
    z->exists_.insert(base);
    for (std::string n = ns + ".svc." + d; !n.empty();) {  // ENTs up to the apex
      z->exists_.insert(n);
      if (n == d) break;
      n = n.substr(n.find('.') + 1);
    }

    if (str(spec, "type") == "ExternalName") {
      std::string target = lower(strip_dot(str(spec, "externalName")));
      if (!target.empty()) z->add(base, target_rec(kCNAME, target, ttl));
      return;
    }

    const std::string cluster_ip = str(spec, "clusterIP");
    if (cluster_ip != "None") {
      std::vector<std::string> ips;
      if (sub(spec, "clusterIPs").is_array())
        for (const auto& ip : sub(spec, "clusterIPs"))
          if (ip.is_string()) ips.push_back(ip.get<std::string>());
      if (ips.empty() && !cluster_ip.empty()) ips.push_back(cluster_ip);
      for (const auto& s : ips) {
        auto ip = parse_ip4(s);
        if (!ip) continue;  // IPv6 or garbage
        z->add(base, a_rec(*ip, ttl));
        z->add(reverse_name(*ip), target_rec(kPTR, base, ttl));
      }
      if (sub(spec, "ports").is_array()) {
        for (const auto& p : sub(spec, "ports")) {
          std::string pname = lower(str(p, "name"));
          std::string proto = lower(str(p, "protocol"));
          if (proto.empty()) proto = "tcp";
          const json& port = sub(p, "port");
          if (pname.empty() || !port.is_number_integer()) continue;
          int pn = port.get<int>();
          if (pn < 1 || pn > 65535) continue;
          Record r = target_rec(kSRV, base, ttl);
          r.priority = 0;
          r.weight = 100;
          r.port = static_cast<uint16_t>(pn);
          z->add("_" + pname + "._" + proto + "." + base, r);
        }
      }
      return;
    }

    // Headless: the ready endpoint addresses.
    auto ep = endpoints(str(md, "namespace") + "/" + str(md, "name"));
    if (!ep) return;
    const json& subsets = sub(*ep, "subsets");
    if (!subsets.is_array()) return;
    std::map<std::string, std::vector<Record>> srv;  // owner -> records, weights set below
    for (const auto& ss : subsets) {
      const json& addrs = sub(ss, "addresses");
      if (!addrs.is_array()) continue;
      for (const auto& a : addrs) {
        auto ip = parse_ip4(str(a, "ip"));
        if (!ip) continue;
        std::string host = lower(str(a, "hostname"));
        std::string epname = (valid_label(host) ? host : dashed(*ip)) + "." + base;
        z->add(base, a_rec(*ip, ttl));
        z->add(epname, a_rec(*ip, ttl));
        z->add(reverse_name(*ip), target_rec(kPTR, epname, ttl));
        if (!sub(ss, "ports").is_array()) continue;
        for (const auto& p : sub(ss, "ports")) {
          std::string pname = lower(str(p, "name"));
          std::string proto = lower(str(p, "protocol"));
          if (proto.empty()) proto = "tcp";
          const json& port = sub(p, "port");
          if (pname.empty() || !port.is_number_integer()) continue;
          int pn = port.get<int>();
          if (pn < 1 || pn > 65535) continue;
          Record r = target_rec(kSRV, epname, ttl);
          r.port = static_cast<uint16_t>(pn);
          srv["_" + pname + "._" + proto + "." + base].push_back(r);
        }
      }
    }
    for (auto& [owner, recs] : srv) {
      // CoreDNS spreads weight 100 over the targets of one name.
      uint16_t w = static_cast<uint16_t>(std::max<size_t>(1, 100 / recs.size()));
      for (auto& r : recs) {
        r.weight = w;
        z->add(owner, r);
      }
    }
  });
  return z;
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
    auto it = names_.find(apex);
    if (it != names_.end())
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

  auto it = names_.find(l);
  if (it == names_.end()) return negative(exists_.count(l) ? kNoError : kNxDomain);
  const auto& recs = it->second;
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
