// What the kubelet reports about its machine in Node.status: capacity, addresses, nodeInfo.
// Read from /proc, /etc and the interfaces once at start (and the images on every update).
// Pure functions over files; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proto/node.h"

namespace skiff::kubelet {

inline constexpr const char* kKubeletVersion = "v1.32.0-skiff";
inline constexpr const char* kRuntimeVersion = "skiff://0.1.0";

struct MachineInfo {
  int64_t cpus = 1;
  int64_t memory_bytes = 0;
  std::string hostname;
  std::string internal_ip;  // --node-ip, else the first non-loopback IPv4, else 127.0.0.1
  std::string kernel_version, os_image, machine_id, boot_id, system_uuid;
};

// MemTotal from /proc/meminfo text, in bytes (0 when absent).
int64_t parse_meminfo_total(std::string_view meminfo);
// PRETTY_NAME from /etc/os-release text ("Debian GNU/Linux 12 (bookworm)"), or "Linux".
std::string parse_os_release(std::string_view text);
// The first non-loopback IPv4 address of an interface that is up, or "".
std::string first_ipv4();

MachineInfo gather_machine_info(const std::string& node_ip);

// The Node status the kubelet owns (capacity, allocatable, addresses, conditions with
// heartbeats at `now`, daemon endpoint, nodeInfo, images). `old` supplies the
// lastTransitionTime of conditions whose status did not change.
proto::NodeStatus build_node_status(const MachineInfo& m, int max_pods, int port,
                                    const std::vector<proto::ContainerImage>& images,
                                    const proto::NodeStatus& old,
                                    std::chrono::system_clock::time_point now);

}  // namespace skiff::kubelet
