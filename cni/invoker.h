// CniInvoker: runs CNI plugins the way the CNI spec (1.0.0) says a runtime must.
//
// Loads the network configuration from `conf_dir` (the lexically first *.conflist, *.conf or
// *.json file), execs each plugin of the list from `bin_dirs` with CNI_COMMAND, CNI_CONTAINERID,
// CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH in the environment and the network config (with
// name, cniVersion, runtimeConfig and prevResult injected) on stdin, parses results and errors.
// ADD chains prevResult through the list; DEL runs the list in reverse, with the cached result
// of ADD as prevResult; CHECK passes the cached result. Results are cached under `cache_dir`
// (one file per network + container + ifname) so DEL and CHECK work after a kubelet restart.
//
// Thread-safe: calls for different containers may run concurrently.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace skiff::cni {

struct RuntimeConf {
  std::string container_id;
  std::string netns;            // path; may be missing on DEL
  std::string ifname = "eth0";
  std::vector<std::pair<std::string, std::string>> args;  // CNI_ARGS: K8S_POD_NAMESPACE, ...
};

struct IpConfig {
  std::string address;  // CIDR "10.244.1.5/24"
  std::string gateway;  // may be empty
  int interface = -1;   // index into the result's interfaces, -1 when absent
};

// One attachment of a container to the network, as GC names the ones still in use.
struct Attachment {
  std::string container_id;
  std::string ifname = "eth0";
};

struct CniResult {
  std::string cni_version;
  std::vector<IpConfig> ips;
  std::string raw_json;  // the final plugin's result, as printed
  // The first IPv4 address without its prefix length ("10.244.1.5"), or "".
  std::string first_ipv4() const;
};

class CniInvoker {
 public:
  struct Options {
    std::string conf_dir = "/etc/cni/net.d";
    std::vector<std::string> bin_dirs = {"/opt/cni/bin", "/usr/lib/cni"};
    std::string cache_dir = "/var/lib/skiff/cni";
    std::chrono::seconds timeout{30};  // per plugin exec; killed after it
  };
  explicit CniInvoker(Options opts);

  // (Re)reads the configuration. Invalid with the file and reason when none is usable.
  [[nodiscard]] Status load();
  bool ready() const;
  std::string network_name() const;

  // Errors carry the plugin's CNI error code and msg/details: "plugin bridge: failed to ...".
  [[nodiscard]] Result<CniResult> add(const RuntimeConf& rt);
  [[nodiscard]] Status check(const RuntimeConf& rt);
  // Idempotent; succeeds when the netns is already gone, as the spec requires of plugins.
  [[nodiscard]] Status del(const RuntimeConf& rt);
  // Frees what the network holds for attachments that are not in `valid` (CNI 1.1 GC, as
  // libcni does it): every cached ADD of this network that is not valid is DELeted, then, for a
  // network of cniVersion 1.1.0 or later, each plugin runs GC with `cni.dev/valid-attachments`
  // (so plugins also free what no cache remembers, e.g. after a crash between ADD and the cache
  // write). Nothing runs when no config is loaded or the list sets `disableGC`. Every step runs
  // even when an earlier one failed; the errors are joined. The caller must make sure no ADD
  // for an attachment missing from `valid` runs meanwhile: GC would undo it.
  [[nodiscard]] Status gc(const std::vector<Attachment>& valid);

 private:
  struct Impl;
  Options opts_;
  std::shared_ptr<Impl> impl_;
};

}  // namespace skiff::cni
