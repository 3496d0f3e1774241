// Host routing in eBPF (what Cilium calls BPF host routing): pod traffic between nodes skips the
// node's IP forwarding, netfilter and bridge.
//
//  - to_local_pods, at the ingress of the node's uplink: an IPv4 packet from a pod (the cluster
//    CIDR) for a pod of this node (the pods map: address -> host-side veth, pod MAC, gateway
//    MAC) gets its MACs rewritten and TTL decremented and goes straight into the pod's
//    namespace (bpf_redirect_peer). Only from pods: the reply then takes to_remote_pods, and
//    the node's conntrack sees neither way. From a node or the outside, the reply would take
//    the kernel's path, whose conntrack would take it for a new flow and masquerade it.
//  - to_remote_pods, at the ingress of a pod's host-side veth: an IPv4 packet for a pod of
//    another node (in the cluster CIDR, outside this node's) gets its TTL decremented and leaves
//    by the uplink, its next hop and MACs from the node's routes and neighbours
//    (bpf_redirect_neigh).
//
// Both carry TCP and UDP only and leave to the kernel everything else (ICMP, whose errors about
// translated flows need translating too; SCTP; IP options; TTL <= 1; short packets) and every
// packet *from* a service endpoint (the endpoints map: address, protocol, port): replies of
// connections the node's netfilter translated must pass through it to be translated back.
// Requests to endpoints need no translation on the node they arrive at, and pod-to-pod
// traffic none at all.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/bpf/bpf.h"
#include "common/netlink/ip4.h"

namespace skiff::bpf {

// Key: the pod's IPv4 address in network byte order (uint32_t).
struct PodEntry {
  uint32_t ifindex = 0;  // the host-side veth
  uint8_t pod_mac[6] = {};
  uint8_t gw_mac[6] = {};  // the source MAC the pod expects: its gateway's
};
static_assert(sizeof(PodEntry) == 16);

// Key of the endpoints map (value: uint32_t, unused).
struct EndpointKey {
  uint32_t ip = 0;    // network byte order
  uint8_t proto = 0;  // IPPROTO_TCP or IPPROTO_UDP
  uint8_t pad = 0;
  uint16_t port = 0;  // network byte order
};
static_assert(sizeof(EndpointKey) == 8);

// `cluster`: every pod address of the cluster; `local`: this node's pod CIDR.
std::optional<std::vector<Insn>> to_local_pods_program(const netlink::Ip4Net& cluster,
                                                       int pods_map_fd, int endpoints_map_fd,
                                                       std::string* err);

std::optional<std::vector<Insn>> to_remote_pods_program(const netlink::Ip4Net& cluster,
                                                        const netlink::Ip4Net& local,
                                                        int uplink_ifindex, int endpoints_map_fd,
                                                        std::string* err);

}  // namespace skiff::bpf
