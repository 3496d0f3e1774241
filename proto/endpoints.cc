#include "proto/endpoints.h"

#include <set>

#include "proto/kind_util.h"
#include "proto/resource.h"

namespace skiff::proto {
namespace {

void default_endpoints(Endpoints& ep) {
  for (auto& s : ep.subsets)
    for (auto& p : s.ports)
      if (p.protocol.empty()) p.protocol = "TCP";
}

void validate_addresses(const std::vector<EndpointAddress>& as, const Path& p, FieldErrors& errs) {
  for (size_t i = 0; i < as.size(); ++i) {
    Path ap = p.index(i);
    add_errors(errs, ap.field("ip"), as[i].ip, is_valid_ip(as[i].ip));
    if (!as[i].hostname.empty())
      add_errors(errs, ap.field("hostname"), as[i].hostname, is_dns1123_label(as[i].hostname));
    if (as[i].node_name && !as[i].node_name->empty())
      add_errors(errs, ap.field("nodeName"), *as[i].node_name,
                 is_dns1123_subdomain(*as[i].node_name));
  }
}

void validate_endpoints(const Endpoints& ep, const Endpoints*, FieldErrors& errs) {
  for (size_t i = 0; i < ep.subsets.size(); ++i) {
    const auto& s = ep.subsets[i];
    Path sp = Path("subsets").index(i);
    if (s.addresses.empty() && s.not_ready_addresses.empty())
      errs.push_back(
          {ErrorType::kRequired, sp.str(), "must specify `addresses` or `notReadyAddresses`", ""});
    validate_addresses(s.addresses, sp.field("addresses"), errs);
    validate_addresses(s.not_ready_addresses, sp.field("notReadyAddresses"), errs);
    std::set<std::string> names;
    for (size_t j = 0; j < s.ports.size(); ++j) {
      const auto& p = s.ports[j];
      Path pp = sp.field("ports").index(j);
      if (s.ports.size() > 1 && p.name.empty())
        errs.push_back({ErrorType::kRequired, pp.field("name").str(), "", ""});
      if (!p.name.empty()) {
        add_errors(errs, pp.field("name"), p.name, is_dns1123_label(p.name));
        if (!names.insert(p.name).second)
          errs.push_back({ErrorType::kDuplicate, pp.field("name").str(), "", quote_value(p.name)});
      }
      for (const auto& m : is_valid_port_num(p.port))
        errs.push_back({ErrorType::kInvalid, pp.field("port").str(), m, std::to_string(p.port)});
      required_one_of(errs, pp.field("protocol"), p.protocol, {"SCTP", "TCP", "UDP"});
    }
  }
}

std::string join_host_port(const std::string& ip, int32_t port) {
  if (ip.find(':') != std::string::npos) return "[" + ip + "]:" + std::to_string(port);
  return ip + ":" + std::to_string(port);
}

json endpoints_row(const Endpoints& ep, Clock::time_point now) {
  return json::array({ep.metadata.name, format_endpoints(ep),
                      since(ep.metadata.creation_timestamp.value_or(Time{}).value, now)});
}

}  // namespace

std::string format_endpoints(const Endpoints& ep) {
  if (ep.subsets.empty()) return "<none>";
  const size_t kMax = 3;
  std::vector<std::string> list;
  size_t count = 0;
  auto add = [&](std::string s) {
    if (list.size() < kMax) list.push_back(std::move(s));
    ++count;
  };
  for (const auto& s : ep.subsets) {
    if (s.ports.empty()) {
      for (const auto& a : s.addresses) add(a.ip);  // headless services may have no ports
    } else {
      for (const auto& p : s.ports)
        for (const auto& a : s.addresses) add(join_host_port(a.ip, p.port));
    }
  }
  std::string out;
  for (const auto& s : list) out += (out.empty() ? "" : ",") + s;
  if (count > kMax) out += " + " + std::to_string(count - kMax) + " more...";
  return out;
}

ResourceType endpoints_resource() {
  KindSpec<Endpoints> k;
  k.type.version = "v1";
  k.type.kind = "Endpoints";
  k.type.list_kind = "EndpointsList";
  k.type.plural = "endpoints";
  k.type.singular = "endpoints";
  k.type.short_names = {"ep"};
  k.type.has_spec = false;
  k.type.columns = {name_column(), column("Endpoints", "string", "Endpoints of the service"),
                    age_column()};
  k.defaults = default_endpoints;
  k.validate = validate_endpoints;
  k.row = endpoints_row;
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
