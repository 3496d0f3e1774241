#include "proto/endpointslice.h"

#include <arpa/inet.h>

#include <array>
#include <set>

#include "proto/kind_util.h"
#include "proto/resource.h"

namespace skiff::proto {
namespace {

// pkg/apis/discovery/validation's limits.
constexpr size_t kMaxEndpoints = 1000;
constexpr size_t kMaxAddresses = 100;
constexpr size_t kMaxPorts = 20000;  // the API docs still say 100; the validation allows 20000
constexpr size_t kMaxTopologyLabels = 16;
constexpr size_t kMaxZoneHints = 8;
constexpr size_t kMaxNodeHints = 8;

// SetDefaults_EndpointPort: a port's name defaults to "" and its protocol to TCP.
void default_endpointslice(EndpointSlice& s) {
  for (auto& p : s.ports) {
    if (!p.name) p.name = "";
    if (!p.protocol) p.protocol = "TCP";
  }
}

// netutils.ParseIPSloppy: 4 bytes for dotted IPv4 (leading zeros allowed), 16 for IPv6.
std::optional<std::vector<uint8_t>> parse_ip_bytes(const std::string& v) {
  if (v.find(':') == std::string::npos) {
    std::vector<uint8_t> out;
    size_t i = 0;
    while (out.size() < 4) {
      size_t j = i;
      int val = 0;
      while (j < v.size() && v[j] >= '0' && v[j] <= '9' && j - i < 4)
        val = val * 10 + (v[j++] - '0');
      if (j == i || val > 255) return std::nullopt;
      out.push_back(static_cast<uint8_t>(val));
      if (out.size() < 4) {
        if (j >= v.size() || v[j] != '.') return std::nullopt;
        ++j;
      }
      i = j;
    }
    if (i != v.size()) return std::nullopt;
    return out;
  }
  in6_addr a{};
  if (inet_pton(AF_INET6, v.c_str(), &a) != 1) return std::nullopt;
  return std::vector<uint8_t>(a.s6_addr, a.s6_addr + 16);
}

// core validation's ValidateNonSpecialIP: endpoints may not be unspecified, loopback or
// link-local addresses (nonsensical, or node-centric like a metadata service).
void validate_non_special_ip(const std::string& ip, const Path& p, FieldErrors& errs) {
  auto b = parse_ip_bytes(ip);
  auto invalid = [&](std::string msg) {
    errs.push_back({ErrorType::kInvalid, p.str(), std::move(msg), quote_value(ip)});
  };
  if (!b) return invalid("must be a valid IP address");
  // IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry (Go's To4).
  std::vector<uint8_t> v4;
  if (b->size() == 4) {
    v4 = *b;
  } else {
    static const std::array<uint8_t, 12> kMapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(kMapped.begin(), kMapped.end(), b->begin()))
      v4.assign(b->begin() + 12, b->end());
  }
  bool zero = true;
  for (uint8_t x : v4.empty() ? *b : v4) zero = zero && x == 0;
  if (zero) invalid("may not be unspecified (" + ip + ")");
  if (!v4.empty()) {
    if (v4[0] == 127) invalid("may not be in the loopback range (127.0.0.0/8, ::1/128)");
    if (v4[0] == 169 && v4[1] == 254)
      invalid("may not be in the link-local range (169.254.0.0/16, fe80::/10)");
    if (v4[0] == 224 && v4[1] == 0 && v4[2] == 0)
      invalid("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)");
    return;
  }
  const auto& a = *b;
  bool loopback = a[15] == 1;
  for (int i = 0; i < 15; ++i) loopback = loopback && a[i] == 0;
  if (loopback) invalid("may not be in the loopback range (127.0.0.0/8, ::1/128)");
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
    invalid("may not be in the link-local range (169.254.0.0/16, fe80::/10)");
  if (a[0] == 0xff && (a[1] & 0x0f) == 0x02)
    invalid("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)");
}

// apimachinery's IsFullyQualifiedDomainName.
void validate_fqdn(std::string name, const Path& p, FieldErrors& errs) {
  if (name.empty()) {
    errs.push_back({ErrorType::kRequired, p.str(), "", ""});
    return;
  }
  if (name.back() == '.') name.pop_back();
  auto problems = is_dns1123_subdomain(name);
  if (!problems.empty()) {
    std::string joined;
    for (const auto& m : problems) joined += (joined.empty() ? "" : ",") + m;
    errs.push_back({ErrorType::kInvalid, p.str(), joined, quote_value(name)});
    return;
  }
  if (name.find('.') == std::string::npos)
    errs.push_back({ErrorType::kInvalid, p.str(),
                    "should be a domain with at least two segments separated by dots",
                    quote_value(name)});
}

void too_many(FieldErrors& errs, const Path& p, size_t n, size_t max) {
  errs.push_back({ErrorType::kTooMany, p.str(),
                  "must have at most " + std::to_string(max) + " items", std::to_string(n)});
}

// forZones: label values, forNodes: DNS subdomains; each list bounded and its names unique.
void validate_hints(const EndpointHints& h, const Path& p, FieldErrors& errs) {
  auto names = [&](const auto& hints, const char* field, size_t max, auto rule) {
    const Path hp = p.field(field);
    if (hints.size() > max) return too_many(errs, hp, hints.size(), max);
    std::set<std::string> seen;
    for (size_t i = 0; i < hints.size(); ++i) {
      const std::string& n = hints[i].name;
      const Path np = hp.index(i).field("name");
      if (!seen.insert(n).second)
        errs.push_back({ErrorType::kDuplicate, np.str(), "", quote_value(n)});
      add_errors(errs, np, n, rule(n));
    }
  };
  names(h.for_zones, "forZones", kMaxZoneHints, is_valid_label_value);
  names(h.for_nodes, "forNodes", kMaxNodeHints, is_dns1123_subdomain);
}

void validate_slice_endpoints(const EndpointSlice& s, FieldErrors& errs) {
  const Path ep("endpoints");
  if (s.endpoints.size() > kMaxEndpoints)
    return too_many(errs, ep, s.endpoints.size(), kMaxEndpoints);
  for (size_t i = 0; i < s.endpoints.size(); ++i) {
    const SliceEndpoint& e = s.endpoints[i];
    const Path ip = ep.index(i), ap = ip.field("addresses");
    if (e.addresses.empty())
      errs.push_back({ErrorType::kRequired, ap.str(), "must contain at least 1 address", ""});
    else if (e.addresses.size() > kMaxAddresses)
      too_many(errs, ap, e.addresses.size(), kMaxAddresses);
    for (size_t j = 0; j < e.addresses.size(); ++j) {
      const std::string& a = e.addresses[j];
      const Path p = ap.index(j);
      // Unknown address types are reported once, at addressType; their addresses are not checked.
      if (s.address_type == "IPv4" || s.address_type == "IPv6") {
        auto b = parse_ip_bytes(a);
        const bool v4 = s.address_type == "IPv4";
        if (!b || b->size() != (v4 ? 4u : 16u))
          errs.push_back({ErrorType::kInvalid, p.str(),
                          v4 ? "must be a valid IPv4 address" : "must be a valid IPv6 address",
                          quote_value(a)});
        validate_non_special_ip(a, p, errs);
      } else if (s.address_type == "FQDN") {
        validate_fqdn(a, p, errs);
      }
    }
    if (e.node_name)
      add_errors(errs, ip.field("nodeName"), *e.node_name, is_dns1123_subdomain(*e.node_name));
    const Path tp = ip.field("deprecatedTopology");
    if (e.deprecated_topology.size() > kMaxTopologyLabels)
      too_many(errs, tp, e.deprecated_topology.size(), kMaxTopologyLabels);
    validate_labels(e.deprecated_topology, tp, errs);
    if (e.hostname)
      add_errors(errs, ip.field("hostname"), *e.hostname, is_dns1123_label(*e.hostname));
    if (e.hints) validate_hints(*e.hints, ip.field("hints"), errs);
  }
}

void validate_slice_ports(const EndpointSlice& s, FieldErrors& errs) {
  const Path pp("ports");
  if (s.ports.size() > kMaxPorts) return too_many(errs, pp, s.ports.size(), kMaxPorts);
  std::set<std::string> names;
  for (size_t i = 0; i < s.ports.size(); ++i) {
    const SlicePort& p = s.ports[i];
    const Path ip = pp.index(i);
    const std::string name = p.name.value_or("");
    if (!name.empty()) add_errors(errs, ip.field("name"), name, is_dns1123_label(name));
    if (!names.insert(name).second)
      errs.push_back({ErrorType::kDuplicate, ip.field("name").str(), "", quote_value(name)});
    if (!p.protocol)
      errs.push_back({ErrorType::kRequired, ip.field("protocol").str(), "", ""});
    else
      not_supported(errs, ip.field("protocol"), *p.protocol, {"SCTP", "TCP", "UDP"});
    if (p.app_protocol)
      add_errors(errs, ip.field("appProtocol"), *p.app_protocol,
                 is_qualified_name(*p.app_protocol));
  }
}

// ValidateEndpointSlice(Create|Update).
void validate_endpointslice(const EndpointSlice& s, const EndpointSlice* old, FieldErrors& errs) {
  if (s.address_type.empty())
    errs.push_back({ErrorType::kRequired, "addressType", "", ""});
  else
    not_supported(errs, Path("addressType"), s.address_type, {"FQDN", "IPv4", "IPv6"});
  validate_slice_ports(s, errs);
  // Unchanged endpoints are not validated again on update (Kubernetes: they may hold addresses
  // accepted under older, looser IP rules).
  if (!old || detail::encode_value(old->endpoints) != detail::encode_value(s.endpoints))
    validate_slice_endpoints(s, errs);
  if (old) immutable(errs, Path("addressType"), s.address_type, old->address_type);
}

// kubectl's listWithMoreString.
std::string list_with_more(const std::vector<std::string>& list, size_t count, size_t max) {
  std::string out;
  for (const auto& s : list) out += (out.empty() ? "" : ",") + s;
  if (count > max) return out + " + " + std::to_string(count - max) + " more...";
  return out.empty() ? "<unset>" : out;
}

json endpointslice_row(const EndpointSlice& s, Clock::time_point now) {
  return json::array({s.metadata.name, s.address_type, format_slice_ports(s),
                      format_slice_endpoints(s),
                      since(s.metadata.creation_timestamp.value_or(Time{}).value, now)});
}

}  // namespace

std::string format_slice_ports(const EndpointSlice& s) {
  constexpr size_t kMax = 3;
  std::vector<std::string> list;
  for (const auto& p : s.ports) {
    if (list.size() == kMax) break;
    list.push_back(p.port ? std::to_string(*p.port) : p.name ? *p.name : "*");
  }
  return list_with_more(list, s.ports.size(), kMax);
}

std::string format_slice_endpoints(const EndpointSlice& s) {
  constexpr size_t kMax = 3;
  std::vector<std::string> list;
  size_t count = 0;
  for (const auto& e : s.endpoints)
    for (const auto& a : e.addresses) {
      if (list.size() < kMax) list.push_back(a);
      ++count;
    }
  return list_with_more(list, count, kMax);
}

ResourceType endpointslice_resource() {
  KindSpec<EndpointSlice> k;
  k.type.group = "discovery.k8s.io";
  k.type.version = "v1";
  k.type.kind = "EndpointSlice";
  k.type.list_kind = "EndpointSliceList";
  k.type.plural = "endpointslices";
  k.type.singular = "endpointslice";
  k.type.has_spec = false;
  k.type.columns = {
      name_column(),
      column("AddressType", "string",
             "addressType specifies the type of address carried by this EndpointSlice. All "
             "addresses in this slice must be the same type. This field is immutable after "
             "creation."),
      column("Ports", "string",
             "ports specifies the list of network ports exposed by each endpoint in this slice."),
      column("Endpoints", "string",
             "endpoints is a list of unique endpoints in this slice. Each slice may include a "
             "maximum of 1000 endpoints."),
      age_column()};
  k.defaults = default_endpointslice;
  k.validate = validate_endpointslice;
  k.row = endpointslice_row;
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
