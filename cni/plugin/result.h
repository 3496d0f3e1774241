// The plugin's outputs on stdout: the ADD result, the error object and the VERSION answer, in
// the JSON shapes of the CNI spec (SPEC "Section 5: Result Types") for the requested version.
#pragma once

#include <string>
#include <vector>

#include "cni/plugin/config.h"
#include "cni/plugin/error.h"

namespace skiff::cni::plugin {

struct IfaceOut {
  std::string name;
  std::string mac;
  std::string sandbox;  // netns path for the container's interface, else empty
};

struct AddOutcome {
  std::vector<IfaceOut> interfaces;  // bridge, host veth, container interface
  int container_iface = 2;           // index of the container interface in `interfaces`
  Ip4 ip;
  int prefix = 0;
  Ip4 gateway;
};

// The ADD result for `cfg.cni_version`, merged after `cfg.prev_result` when there is one (the
// spec: a plugin in a chain passes on what it received, adding its own). Versions before 1.0.0
// carry "version": "4" in each IP.
std::string add_result_json(const Config& cfg, const AddOutcome& out);

// {"cniVersion", "code", "msg", "details"}; `version` falls back to 1.0.0 when empty/unknown.
std::string error_json(const std::string& version, const CniError& e);

// The cniVersion named in `stdin_json` when it is one we support, else "1.0.0": the version to
// answer errors in.
std::string answer_version(const std::string& stdin_json);

// {"cniVersion", "supportedVersions"} for VERSION; `stdin_json` may name a cniVersion.
std::string version_json(const std::string& stdin_json);

// The container's address recorded in a prevResult (CHECK), as "a.b.c.d/len" strings.
std::vector<std::string> prev_result_ips(const std::string& prev_result_json);

}  // namespace skiff::cni::plugin
