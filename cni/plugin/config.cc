#include "cni/plugin/config.h"

#include <arpa/inet.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

namespace skiff::cni::plugin {

using json = nlohmann::json;

const std::vector<std::string> kSupportedVersions = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};

std::string errno_text(const std::string& what, int err) {
  return what + ": " + std::strerror(err);
}

bool version_supported(const std::string& v) {
  for (const auto& s : kSupportedVersions)
    if (s == v) return true;
  return false;
}

int compare_versions(const std::string& a, const std::string& b) {
  int x[3] = {0, 0, 0}, y[3] = {0, 0, 0};
  std::sscanf(a.c_str(), "%d.%d.%d", &x[0], &x[1], &x[2]);
  std::sscanf(b.c_str(), "%d.%d.%d", &y[0], &y[1], &y[2]);
  for (int i = 0; i < 3; ++i)
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  return 0;
}

bool valid_container_id(const std::string& id) {
  // SPEC: "must not be empty ... alphanumeric, plus hyphen, underscore and period, starting with
  // an alphanumeric character".
  if (id.empty() || !std::isalnum(static_cast<unsigned char>(id[0]))) return false;
  for (char c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return false;
  return true;
}

bool valid_ifname(const std::string& n) {
  // The kernel's dev_valid_name: 1..15 bytes, not "." or "..", no '/', ':' or whitespace.
  if (n.empty() || n.size() > 15 || n == "." || n == "..") return false;
  for (char c : n)
    if (c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c))) return false;
  return true;
}

CniResult<Env> parse_env(const std::map<std::string, std::string>& env) {
  auto get = [&](const char* k) -> std::optional<std::string> {
    auto it = env.find(k);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  auto bad = [](std::string var, std::string why) {
    return CniError{kInvalidEnv, "invalid " + var, var + ": " + why};
  };
  Env e;
  auto cmd = get("CNI_COMMAND");
  if (!cmd || cmd->empty()) return bad("CNI_COMMAND", "not set");
  static const std::map<std::string, Command> kCmds = {
      {"ADD", Command::kAdd},         {"DEL", Command::kDel}, {"CHECK", Command::kCheck},
      {"VERSION", Command::kVersion}, {"GC", Command::kGc},   {"STATUS", Command::kStatus}};
  auto it = kCmds.find(*cmd);
  if (it == kCmds.end())
    return bad("CNI_COMMAND", "unknown command \"" + *cmd +
                                  "\" (ADD, DEL, CHECK, VERSION, GC, "
                                  "STATUS)");
  e.command = it->second;
  e.path = get("CNI_PATH").value_or("");
  e.args = get("CNI_ARGS").value_or("");
  if (e.command != Command::kAdd && e.command != Command::kDel && e.command != Command::kCheck)
    return e;

  auto id = get("CNI_CONTAINERID");
  if (!id || id->empty()) return bad("CNI_CONTAINERID", "not set");
  if (!valid_container_id(*id))
    return bad("CNI_CONTAINERID", "\"" + *id +
                                      "\" is not alphanumeric plus '-', '_', '.' starting with "
                                      "an alphanumeric character");
  e.container_id = *id;
  auto ifn = get("CNI_IFNAME");
  if (!ifn || ifn->empty()) return bad("CNI_IFNAME", "not set");
  if (!valid_ifname(*ifn))
    return bad("CNI_IFNAME", "\"" + *ifn +
                                 "\" is not a valid interface name (1-15 bytes, no "
                                 "'/', ':' or whitespace)");
  e.ifname = *ifn;
  e.netns = get("CNI_NETNS").value_or("");
  // DEL may come without a netns (it is already gone); ADD and CHECK need one.
  if (e.netns.empty() && e.command != Command::kDel) return bad("CNI_NETNS", "not set");
  return e;
}

namespace {

CniError invalid(const std::string& field, const std::string& why) {
  return CniError{kInvalidConfig, "invalid network config", "\"" + field + "\": " + why};
}

std::vector<std::string> string_list(const json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& x : j)
    if (x.is_string()) out.push_back(x.get<std::string>());
  return out;
}

CniStatus parse_fields(const json& j, Config& c) {
  auto str = [&](const char* k, std::string& out) -> CniStatus {
    if (!j.contains(k)) return {};
    if (!j[k].is_string()) return invalid(k, "must be a string, got " + j[k].dump());
    out = j[k].get<std::string>();
    return {};
  };
  if (!j.contains("name")) return invalid("name", "missing");
  CNI_RETURN_IF_ERROR(str("name", c.name));
  // SPEC: the network name is alphanumeric plus '-', '_', '.', starting alphanumeric; it names
  // our data dir, so it must not hold a '/'.
  if (!valid_container_id(c.name))
    return invalid("name", "\"" + c.name + "\" must be alphanumeric plus '-', '_', '.'");
  CNI_RETURN_IF_ERROR(str("type", c.type));
  if (c.type.empty()) return invalid("type", "missing");
  CNI_RETURN_IF_ERROR(str("bridge", c.bridge));
  if (!valid_ifname(c.bridge))
    return invalid("bridge", "\"" + c.bridge +
                                 "\" is not a valid "
                                 "interface name");
  std::string subnet, pod_cidr;
  CNI_RETURN_IF_ERROR(str("subnet", subnet));
  CNI_RETURN_IF_ERROR(str("podCIDR", pod_cidr));
  if (subnet.empty()) subnet = pod_cidr;
  if (subnet.empty()) return invalid("subnet", "missing (the node's pod CIDR, e.g. 10.244.1.0/24)");
  auto net = parse_ip4_net(subnet);
  if (!net) return invalid("subnet", "\"" + subnet + "\" is not an IPv4 CIDR");
  // A /31 or /32 leaves no address after the network, the gateway and the broadcast address.
  if (net->prefix > 30 || net->prefix < 8)
    return invalid("subnet", "\"" + subnet + "\": the prefix must be /8 to /30");
  c.subnet = *net;
  c.gateway = Ip4{net->network().v + 1};
  if (j.contains("mtu")) {
    if (!j["mtu"].is_number_integer()) return invalid("mtu", "must be an integer");
    c.mtu = j["mtu"].get<int>();
    if (c.mtu < 576 || c.mtu > 65535) return invalid("mtu", "must be 576..65535");
  }
  CNI_RETURN_IF_ERROR(str("mode", c.mode));
  if (!c.mode.empty() && c.mode != "bridge" && c.mode != "host-gw" && c.mode != "vxlan")
    return invalid("mode", "\"" + c.mode + "\" is not one of bridge, host-gw, vxlan");
  if (j.contains("hairpinMode")) {
    if (!j["hairpinMode"].is_boolean()) return invalid("hairpinMode", "must be a boolean");
    c.hairpin = j["hairpinMode"].get<bool>();
  }
  CNI_RETURN_IF_ERROR(str("dataDir", c.data_dir));
  if (c.data_dir.empty()) c.data_dir = "/var/lib/skiff/cni/networks/" + c.name;
  if (c.data_dir[0] != '/') return invalid("dataDir", "must be an absolute path");
  if (j.contains("ipam")) {
    // We do our own IPAM from "subnet"; silently ignoring a delegated one would surprise.
    const json& ipam = j["ipam"];
    const bool delegated = ipam.is_object() && ipam.contains("type") &&
                           !(ipam["type"].is_string() && ipam["type"].get<std::string>().empty());
    if (!ipam.is_object() || delegated)
      return CniError{kUnsupportedField, "unsupported field in network config",
                      "\"ipam\": " + ipam.dump() +
                          ": the skiff plugin allocates from \"subnet\" itself; remove \"ipam\""};
  }
  if (j.contains("dns")) {
    const json& d = j["dns"];
    if (!d.is_object()) return invalid("dns", "must be an object");
    c.dns.nameservers = string_list(d.value("nameservers", json::array()));
    c.dns.domain = d.value("domain", "");
    c.dns.search = string_list(d.value("search", json::array()));
    c.dns.options = string_list(d.value("options", json::array()));
  }
  if (j.contains("prevResult")) {
    if (!j["prevResult"].is_object()) return invalid("prevResult", "must be an object");
    c.prev_result = j["prevResult"].dump();
  }
  // GC's list of attachments still in use. The spec named it both ways before settling on
  // cni.dev/valid-attachments; libcni sends both keys, so either (or both) is accepted.
  for (const char* key : {"cni.dev/valid-attachments", "cni.dev/attachments"}) {
    if (!j.contains(key)) continue;
    const json& va = j[key];
    if (!va.is_array()) return invalid(key, "must be an array");
    c.has_valid_attachments = true;
    for (const auto& a : va) {
      if (!a.is_object() || !a.contains("containerID") || !a["containerID"].is_string())
        return invalid(key, "entry without containerID: " + a.dump());
      c.valid_attachments.push_back(
          {a["containerID"].get<std::string>(), a.value("ifname", std::string())});
    }
  }
  return {};
}

}  // namespace

CniResult<Config> parse_config(const std::string& in) {
  json j;
  try {
    j = json::parse(in);
  } catch (const std::exception& e) {
    return CniError{kDecodeFailure, "failed to decode the network config",
                    std::string("stdin is not JSON: ") + e.what()};
  }
  if (!j.is_object())
    return CniError{kDecodeFailure, "failed to decode the network config",
                    "stdin is not a JSON object"};
  Config c;
  if (!j.contains("cniVersion") || !j["cniVersion"].is_string())
    return invalid("cniVersion", "missing or not a string");
  c.cni_version = j["cniVersion"].get<std::string>();
  if (!version_supported(c.cni_version)) {
    std::string all;
    for (const auto& v : kSupportedVersions) all += (all.empty() ? "" : ", ") + v;
    return CniError{kIncompatibleVersion, "incompatible CNI version",
                    "config version \"" + c.cni_version + "\"; the plugin supports " + all};
  }
  try {
    CNI_RETURN_IF_ERROR(parse_fields(j, c));
  } catch (const std::exception& e) {  // a value of the wrong type deep inside (dns, ...)
    return invalid("config", e.what());
  }
  return c;
}

int effective_mtu(const Config& c, int underlay_mtu) {
  if (c.mtu > 0) return c.mtu;
  int m = underlay_mtu > 0 ? underlay_mtu : 1500;
  // VXLAN over IPv4: outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14 = 50 bytes.
  if (c.mode == "vxlan") m -= 50;
  return m;
}

std::string host_veth_name(const std::string& container_id, const std::string& ifname) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  auto mix = [&](const std::string& s) {
    for (unsigned char ch : s) {
      h ^= ch;
      h *= 1099511628211ull;
    }
  };
  mix(container_id);
  mix("/");
  mix(ifname);
  char buf[16];
  std::snprintf(buf, sizeof buf, "veth%011llx",
                static_cast<unsigned long long>(h & 0xfffffffffffull));
  return buf;
}

std::string mac_for_ip(Ip4 ip) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "0a:58:%02x:%02x:%02x:%02x", (ip.v >> 24) & 0xff,
                (ip.v >> 16) & 0xff, (ip.v >> 8) & 0xff, ip.v & 0xff);
  return buf;
}

}  // namespace skiff::cni::plugin
