// The skiff CNI plugin's inputs: the CNI_* environment and the network configuration on stdin
// (CNI SPEC 1.0.0 "Parameters" and "Section 1: Network configuration format"), parsed and
// validated into plain values. Pure functions; no I/O besides what the caller passes in.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cni/plugin/error.h"
#include "common/netlink/ip4.h"

namespace skiff::cni::plugin {

// Versions of the spec this plugin speaks, oldest first. Results for versions before 1.0.0
// carry "version": "4" in each IP (removed in 1.0.0); CHECK exists from 0.4.0, GC/STATUS
// from 1.1.0.
extern const std::vector<std::string> kSupportedVersions;
bool version_supported(const std::string& v);
// -1, 0, 1 comparing dotted versions ("0.4.0" < "1.0.0").
int compare_versions(const std::string& a, const std::string& b);

// Addresses and prefixes are common/netlink's (shared with the overlay).
using netlink::Ip4;
using netlink::Ip4Net;
using netlink::parse_ip4;
using netlink::parse_ip4_net;

enum class Command { kAdd, kDel, kCheck, kVersion, kGc, kStatus };

struct Env {
  Command command = Command::kVersion;
  std::string container_id;
  std::string netns;  // may be empty for DEL
  std::string ifname;
  std::string args;  // CNI_ARGS, unparsed (the plugin ignores it)
  std::string path;  // CNI_PATH
};

// Parses the CNI_* variables (main passes the process environment). Code 4 naming the variable when
// a required one is missing or malformed (container ID and interface name rules of the spec).
CniResult<Env> parse_env(const std::map<std::string, std::string>& env);
bool valid_container_id(const std::string& id);
bool valid_ifname(const std::string& name);

struct DnsConfig {
  std::vector<std::string> nameservers;
  std::string domain;
  std::vector<std::string> search;
  std::vector<std::string> options;
};

// A prevResult's or our own attachment, as far as the plugin needs it.
struct Attachment {
  std::string container_id;
  std::string ifname;
};

struct Config {
  std::string cni_version;
  std::string name;
  std::string type;
  std::string bridge = "skiff0";
  Ip4Net subnet;         // the node's pod CIDR
  Ip4 gateway;           // first address of the subnet, on the bridge
  int mtu = 0;           // 0: derive from the underlay (and "mode")
  std::string mode;      // "", "bridge", "host-gw", "vxlan"
  bool hairpin = true;   // hairpin mode on the bridge port
  std::string data_dir;  // IPAM state; default /var/lib/skiff/cni/networks/<name>
  DnsConfig dns;
  std::string prev_result;  // raw JSON of "prevResult", if any
  // GC (1.1): cni.dev/valid-attachments (or cni.dev/attachments; both keys are merged).
  std::vector<Attachment> valid_attachments;
  bool has_valid_attachments = false;
};

// Parses and validates stdin. Errors: 6 when it is not JSON (or not an object), 1 for an
// unsupported cniVersion, 7 for a missing/invalid field, naming it and the value.
CniResult<Config> parse_config(const std::string& stdin_json);

// The pod MTU: the configured one, else `underlay_mtu` (the interface with the default route;
// 1500 when there is none) minus the 50 bytes of VXLAN encapsulation in "vxlan" mode.
int effective_mtu(const Config& c, int underlay_mtu);

// The host end's name: "veth" + 11 hex digits of a hash of container ID and ifname, so DEL finds
// it without the pod's netns, and a repeated ADD finds the same one.
std::string host_veth_name(const std::string& container_id, const std::string& ifname);

// A locally administered MAC derived from an IPv4 address (0a:58:a.b.c.d, as OVN does): stable
// across a repeated ADD, and the bridge keeps its gateway MAC when ports come and go.
std::string mac_for_ip(Ip4 ip);

}  // namespace skiff::cni::plugin
