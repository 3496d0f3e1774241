// CidrSet: the pod CIDRs of a cluster CIDR cut into equal subnets (one per node), and which of
// them are taken. A pure data structure (no I/O), as Kubernetes' cidrset.
//
// allocate_next() hands out the first free subnet after the one handed out last (wrapping),
// like Kubernetes' range allocator, so a just-freed CIDR is not reused at once while others
// are free. IPv4 only. Thread-compatible: the controller serializes access.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace skiff::controllers::nodeipam {

struct Ipv4Cidr {
  uint32_t addr = 0;  // host order, host bits zero
  int prefix = 0;
  std::string to_string() const;
  bool contains(const Ipv4Cidr& other) const;
  bool operator==(const Ipv4Cidr&) const = default;
};

// "10.244.0.0/16". Invalid when malformed, not IPv4, or host bits are set ("10.244.1.5/24").
Result<Ipv4Cidr> parse_ipv4_cidr(std::string_view s);

class CidrSet {
 public:
  // Invalid unless cluster_cidr parses and cluster prefix <= mask_size <= 32 with at most 2^16
  // subnets (Kubernetes' limit).
  static Result<CidrSet> create(std::string_view cluster_cidr, int mask_size);

  // Marks `cidr` taken. Idempotent. Invalid when it is malformed, of another size than
  // mask_size, or outside the cluster CIDR.
  [[nodiscard]] Status occupy(std::string_view cidr);
  // The next free subnet. Unavailable ("... is full") when every subnet is taken.
  [[nodiscard]] Result<std::string> allocate_next();
  // Marks `cidr` free. Idempotent. Invalid as for occupy().
  [[nodiscard]] Status release(std::string_view cidr);
  // Whether `cidr` is a valid subnet of this set (the checks of occupy()).
  [[nodiscard]] Status check(std::string_view cidr) const;

  bool in_use(std::string_view cidr) const;
  size_t used() const { return used_; }
  size_t capacity() const { return taken_.size(); }
  const Ipv4Cidr& cluster() const { return cluster_; }
  int mask_size() const { return mask_size_; }

 private:
  CidrSet(Ipv4Cidr cluster, int mask_size);
  Result<size_t> index_of(std::string_view cidr) const;

  Ipv4Cidr cluster_;
  int mask_size_;
  std::vector<bool> taken_;
  size_t used_ = 0;
  size_t next_ = 0;  // where the search for a free subnet starts
};

}  // namespace skiff::controllers::nodeipam
