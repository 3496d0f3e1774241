// Service address allocation: ClusterIPs from --service-cluster-ip-range and NodePorts from
// --service-node-port-range, as kube-apiserver's ipallocator / portallocator and
// pkg/registry/core/service/storage/alloc.go do it (KEP-3070 / KEP-3668 banding: dynamic
// allocation prefers the upper band so that static requests in the lower band rarely
// collide). Private to apiserver/ (and its tests). Thread-safe: one mutex per ServiceAllocator.
//
// The allocator is only a cache of what the stored Services hold: it is rebuilt from them at
// start, marks an address as soon as a write is admitted (so concurrent creates never get the
// same one) and the caller reverts or commits the returned Txn after the store write.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "apiserver/errors.h"
#include "common/status.h"
#include "proto/codec.h"

namespace skiff::proto {
struct ResourceType;
}

namespace skiff::apiserver {

// An IPv4 service range. Only IPv4 (the cluster is single-stack IPv4).
struct Ipv4Cidr {
  uint32_t network = 0;  // host order
  int prefix = 0;
  std::string str() const;  // "10.96.0.0/16"
  uint64_t size() const { return uint64_t{1} << (32 - prefix); }
};
// Parses --service-cluster-ip-range: an IPv4 CIDR with a mask of /12 to /30 (Kubernetes
// refuses ranges larger than /12 for IPv4). The host bits must be zero.
Result<Ipv4Cidr> parse_service_cidr(const std::string& s);
std::string ipv4_string(uint32_t ip);
std::optional<uint32_t> parse_ipv4(const std::string& s);

struct PortRange {
  int base = 0, size = 0;   // base .. base+size-1
  std::string str() const;  // "30000-32767"
};
// Parses --service-node-port-range "A-B" (or a single port "A"), 1 <= A <= B <= 65535.
Result<PortRange> parse_port_range(const std::string& s);

// A bitmap of `size` items where the first `offset` are the static (lower) band: dynamic
// allocation scans the upper band from a random start first, then the lower band.
class BandedBitmap {
 public:
  BandedBitmap(uint64_t size, uint64_t offset);
  bool has(uint64_t i) const { return used_[i]; }
  bool set(uint64_t i);  // false if already set
  void clear(uint64_t i);
  // A free index (not marked), or nullopt when full.
  std::optional<uint64_t> pick_free(std::mt19937_64& rng) const;
  uint64_t size() const { return used_.size(); }
  uint64_t count() const { return count_; }

 private:
  std::vector<bool> used_;
  uint64_t offset_;
  uint64_t count_ = 0;
};

// min(max(16, size/16), 256) for IPs, min(max(16, size/32), 128) for ports; 0 for tiny ranges.
uint64_t ip_band_offset(uint64_t cidr_size);
uint64_t port_band_offset(uint64_t range_size);

// What one admitted write allocated (released again if the write fails) and what it stops
// using (released once the write succeeded).
struct AllocTxn {
  std::vector<std::string> ips;
  std::vector<int> ports;
  std::vector<std::string> release_ips;
  std::vector<int> release_ports;
  bool dry_run = false;
};

class ServiceAllocator {
 public:
  ServiceAllocator(const Ipv4Cidr& cidr, const PortRange& ports, uint64_t seed);

  // The first usable address (network + 1): the `kubernetes` Service's ClusterIP.
  std::string first_ip() const { return ipv4_string(cidr_.network + 1); }

  // Create: fills spec.clusterIP/clusterIPs/ipFamilies/ipFamilyPolicy, the ports' nodePort
  // and spec.healthCheckNodePort of a defaulted, validated Service (JSON), honouring requested
  // values. A dry run checks and picks without recording. Error: Kubernetes' 422/500.
  ApiResult<AllocTxn> allocate_create(const proto::ResourceType& rt, json& svc, bool dry_run);
  // Update, before validation: values the new object omits (clusterIP(s), nodePorts,
  // healthCheckNodePort, ipFamilies/Policy) are kept from `old` when both need them, and
  // type-dependent values the new type no longer needs are dropped (Kubernetes'
  // patchAllocatedValues and dropTypeDependentFields).
  static void prepare_update(json& svc, const json& old);
  // Update, after validation: allocates what the new spec needs and `old` did not have; the
  // txn's release_* are what `old` had and the new object no longer uses.
  ApiResult<AllocTxn> allocate_update(const proto::ResourceType& rt, json& svc, const json& old,
                                      bool dry_run);
  void revert(const AllocTxn& txn);       // the write failed: free what it allocated
  void commit(const AllocTxn& txn);       // the write succeeded: free what it stopped using
  void release_service(const json& svc);  // the Service is gone
  // What a stored Service holds: its ClusterIP ("" for none) and node ports (nodePorts and
  // healthCheckNodePort).
  static std::string held_ip_of(const json& svc);
  static std::set<int> held_ports_of(const json& svc);
  // Marks values another API server holds (seen as taken in the store before its Service).
  void hold(const std::vector<std::string>& ips, const std::vector<int>& ports);
  // Frees values whose reservation is gone (no Service holds them any more).
  void free(const std::vector<std::string>& ips, const std::vector<int>& ports);
  // A Service write seen in the store, made by this or another API server sharing it (`old`:
  // the Service before, null for a create; `now`: after, null for a delete): marks what `now`
  // holds and frees what `old` held that `now` does not. Idempotent, so this server's own
  // writes (marked at admission) pass through unchanged. Two servers that pick the same free
  // value before either sees the other's write both keep it: nothing here can tell them apart.
  void follow(const json* old, const json* now);
  // Marks what stored Services hold. Returns one message per value that could not be marked
  // (outside the ranges, or held twice).
  std::vector<std::string> rebuild(const std::vector<json>& services);

  bool ip_allocated(const std::string& ip) const;
  bool port_allocated(int port) const;
  uint64_t ips_used() const;
  uint64_t ports_used() const;

 private:
  // The bitmap index of an address / port, or nullopt when it is outside the range (or not
  // an IPv4 address). The range check lives only here.
  std::optional<uint64_t> ip_index(const std::string& ip) const;
  std::optional<uint64_t> port_index(int port) const;
  // "" or Kubernetes' allocator error text.
  std::string take_ip(const std::string& ip, bool dry_run, std::vector<std::string>* taken);
  std::optional<std::string> next_ip(bool dry_run, std::vector<std::string>* taken);
  std::string take_port(int port, bool dry_run, std::vector<int>* taken);
  std::optional<int> next_port(bool dry_run, std::vector<int>* taken);
  void free_ip_locked(const std::string& ip);
  void free_port_locked(int port);
  // Both record into `txn` what they took; on error the caller undoes it.
  std::optional<ApiError> alloc_cluster_ips(const proto::ResourceType& rt, json& svc, bool dry_run,
                                            AllocTxn& txn);
  std::optional<ApiError> alloc_node_ports(const proto::ResourceType& rt, json& svc,
                                           const json* old, bool dry_run, AllocTxn& txn);
  void undo_locked(const AllocTxn& txn);

  mutable std::mutex mu_;
  Ipv4Cidr cidr_;
  PortRange ports_;
  BandedBitmap ip_bits_;    // index i = network + 1 + i
  BandedBitmap port_bits_;  // index i = base + i
  std::mt19937_64 rng_;
};

}  // namespace skiff::apiserver
