#include "cni/plugin/result.h"

#include <nlohmann/json.hpp>

namespace skiff::cni::plugin {

using json = nlohmann::json;

std::string add_result_json(const Config& cfg, const AddOutcome& out) {
  const bool pre_1_0 = compare_versions(cfg.cni_version, "1.0.0") < 0;
  json r = json::object();
  if (!cfg.prev_result.empty()) {
    r = json::parse(cfg.prev_result, nullptr, /*allow_exceptions=*/false);
    if (!r.is_object()) r = json::object();
  }
  json& ifaces = r["interfaces"];
  if (!ifaces.is_array()) ifaces = json::array();
  const size_t base = ifaces.size();
  for (const auto& i : out.interfaces) {
    json o = {{"name", i.name}, {"mac", i.mac}};
    if (!i.sandbox.empty()) o["sandbox"] = i.sandbox;
    ifaces.push_back(std::move(o));
  }
  json ip = {{"address", out.ip.str() + "/" + std::to_string(out.prefix)},
             {"gateway", out.gateway.str()},
             {"interface", base + static_cast<size_t>(out.container_iface)}};
  if (pre_1_0) ip["version"] = "4";
  json& ips = r["ips"];
  if (!ips.is_array()) ips = json::array();
  ips.push_back(std::move(ip));
  json& routes = r["routes"];
  if (!routes.is_array()) routes = json::array();
  routes.push_back({{"dst", "0.0.0.0/0"}, {"gw", out.gateway.str()}});
  json dns = r.contains("dns") && r["dns"].is_object() ? r["dns"] : json::object();
  if (!cfg.dns.nameservers.empty()) dns["nameservers"] = cfg.dns.nameservers;
  if (!cfg.dns.domain.empty()) dns["domain"] = cfg.dns.domain;
  if (!cfg.dns.search.empty()) dns["search"] = cfg.dns.search;
  if (!cfg.dns.options.empty()) dns["options"] = cfg.dns.options;
  r["dns"] = std::move(dns);
  r["cniVersion"] = cfg.cni_version;
  return r.dump();
}

std::string error_json(const std::string& version, const CniError& e) {
  json j = {{"cniVersion", version_supported(version) ? version : std::string("1.0.0")},
            {"code", e.code},
            {"msg", e.msg}};
  if (!e.details.empty()) j["details"] = e.details;
  return j.dump();
}

std::string answer_version(const std::string& stdin_json) {
  json in = json::parse(stdin_json, nullptr, false);
  if (in.is_object() && in.contains("cniVersion") && in["cniVersion"].is_string() &&
      version_supported(in["cniVersion"].get<std::string>()))
    return in["cniVersion"].get<std::string>();
  return "1.0.0";
}

std::string version_json(const std::string& stdin_json) {
  return json{{"cniVersion", answer_version(stdin_json)}, {"supportedVersions", kSupportedVersions}}
      .dump();
}

std::vector<std::string> prev_result_ips(const std::string& prev) {
  std::vector<std::string> out;
  json r = json::parse(prev, nullptr, false);
  if (!r.is_object() || !r.contains("ips") || !r["ips"].is_array()) return out;
  for (const auto& ip : r["ips"])
    if (ip.is_object() && ip.contains("address") && ip["address"].is_string())
      out.push_back(ip["address"].get<std::string>());
  return out;
}

}  // namespace skiff::cni::plugin
