// Pod sandbox: the network, IPC and UTS namespaces a pod's containers share, created once per
// pod and pinned by bind mounts (no pause process), plus the pod's /etc files.
//
// Layout: <run-dir>/pods/<pod-uid>/
//   ns/net, ns/ipc, ns/uts      bind mounts of the namespaces (setns(2) targets)
//   etc/hosts, etc/hostname, etc/resolv.conf   bind-mounted into every container by the kubelet
//   sandbox.json                {"uid","namespace","name","hostname","created_at"}
//
// Thread-safe (no shared state beyond the filesystem; one pod at a time per caller).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace skiff::runtime {

struct DnsConfig {
  std::vector<std::string> nameservers;
  std::vector<std::string> searches;
  std::vector<std::string> options;  // "ndots:5"
};

struct SandboxConfig {
  std::string pod_uid;
  std::string pod_namespace;
  std::string pod_name;
  std::string hostname;   // pod.spec.hostname or the pod name, at most 63 characters
  std::string subdomain;  // pod.spec.subdomain, for the FQDN line of /etc/hosts
  DnsConfig dns;
  std::vector<std::pair<std::string, std::vector<std::string>>> host_aliases;  // ip, hostnames
};

struct SandboxInfo {
  std::string dir;       // <run-dir>/pods/<uid>
  std::string netns;     // <dir>/ns/net
  std::string ipcns;
  std::string utsns;
  std::string etc_hosts;
  std::string etc_hostname;
  std::string etc_resolv;
};

class Sandboxes {
 public:
  explicit Sandboxes(std::string run_dir);

  // Creates the namespaces (hostname set, loopback up) and the etc files; when they already
  // exist and are intact, returns them unchanged (idempotent).
  [[nodiscard]] Result<SandboxInfo> ensure(const SandboxConfig& config);
  // Rewrites etc/hosts with the pod's IP (after CNI ADD).
  [[nodiscard]] Status write_hosts(const SandboxConfig& config, const std::string& pod_ip);
  // Unmounts the namespace files and deletes the directory. Idempotent.
  [[nodiscard]] Status remove(const std::string& pod_uid);
  // Pod UIDs that have a sandbox directory.
  std::vector<std::string> list() const;
  SandboxInfo info(const std::string& pod_uid) const;  // paths only, no checks

 private:
  std::string run_dir_;
};

}  // namespace skiff::runtime
