// The skiff CNI plugin's commands (CNI SPEC 1.0.0 "Section 2: Execution Protocol"): ADD, DEL,
// CHECK, VERSION, and the 1.1.0 GC and STATUS. main.cc feeds them the environment and stdin and
// prints what they return: the text for stdout on success, a CniError otherwise (printed as the
// spec's error JSON, exit status 1).
//
// ADD on the node's network namespace (the one the plugin runs in): the bridge (created if
// absent, gateway address, up), an address from the pod CIDR (FileIpam), a veth pair with
// CNI_IFNAME in CNI_NETNS and the host end on the bridge (up, hairpin), the address, MTU and a
// default route via the gateway inside. ADD for a container that is already attached returns
// the same result. DEL removes the veth pair and frees the address; it succeeds when any or
// all of it is already gone, and without CNI_NETNS. CHECK verifies interface, address, route,
// host end and bridge. Everything is done through netlink; nothing is exec'd.
#pragma once

#include <map>
#include <string>

#include "cni/plugin/error.h"

namespace skiff::cni::plugin {

// Runs the command named by env["CNI_COMMAND"] with `stdin_data` as the network config.
CniResult<std::string> run(const std::map<std::string, std::string>& env,
                           const std::string& stdin_data);

}  // namespace skiff::cni::plugin
