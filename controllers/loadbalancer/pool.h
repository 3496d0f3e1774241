// AddressPool: the LoadBalancer address pool (IPv4), a pure allocator the controller keeps under
// its mutex. Entries are "A-B" ranges ("10.250.0.200-10.250.0.250"), CIDRs ("10.250.0.0/28";
// for prefixes up to /30 the network and broadcast addresses are left out, as many ARP stacks
// refuse them), or single addresses. Allocation hands out the lowest free address.
//
// Allocations are keyed by owner ("namespace/name" of the Service). An owner holds at most one
// address. When the ranges change, allocations outside the new ranges stay recorded (so the
// controller can see and move them) but are no longer in_pool().
//
// Thread-safety: none (the caller locks).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace skiff::controllers::loadbalancer {

// An inclusive range of IPv4 addresses in host byte order.
struct AddrRange {
  uint32_t first = 0, last = 0;
  bool operator==(const AddrRange&) const = default;
};

// "10.250.0.7" -> host-order address; nullopt when not a dotted-quad IPv4 address.
std::optional<uint32_t> parse_ipv4(std::string_view s);
std::string format_ipv4(uint32_t ip);

// Splits pool text ("a-b, c/28 d") on commas and white space; empty pieces dropped.
std::vector<std::string> split_pool_text(std::string_view text);

struct ParsedPool {
  std::vector<AddrRange> ranges;    // the good entries, in input order
  std::vector<std::string> errors;  // one message per bad entry, naming it and why
};
// Parses every entry; a bad one is reported in `errors` and the others are still used.
ParsedPool parse_pool(const std::vector<std::string>& entries);

class AddressPool {
 public:
  // Replaces the ranges; allocations are kept (see in_pool()).
  void set_ranges(std::vector<AddrRange> ranges);
  const std::vector<AddrRange>& ranges() const { return ranges_; }

  bool in_pool(uint32_t ip) const;
  // Addresses in the ranges (overlaps counted once).
  uint64_t capacity() const;
  // Allocations that are inside the ranges.
  uint64_t used() const;

  // The address `owner` holds, if any.
  std::optional<uint32_t> address_of(const std::string& owner) const;
  // Who holds `ip` ("" when nobody).
  std::string owner_of(uint32_t ip) const;

  // Records that `owner` holds `ip` (rebuild from existing statuses, or a requested address).
  // Invalid when `ip` is not in the pool, AlreadyExists (naming the holder) when another owner
  // holds it. An owner that held another address releases it.
  [[nodiscard]] Status assign(const std::string& owner, uint32_t ip);
  // The address `owner` already holds when it is in the pool, else the lowest free address.
  // Unavailable "no free address in the pool (N of N in use)" when exhausted.
  [[nodiscard]] Result<uint32_t> allocate(const std::string& owner);
  // Frees what `owner` holds; returns the address it held.
  std::optional<uint32_t> release(const std::string& owner);

 private:
  std::vector<AddrRange> ranges_;  // sorted, merged
  std::map<uint32_t, std::string> by_ip_;
  std::map<std::string, uint32_t> by_owner_;
};

}  // namespace skiff::controllers::loadbalancer
