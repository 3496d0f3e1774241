// Ip4 and Ip4Net: IPv4 addresses and prefixes as plain values in host byte order, shared by the
// CNI plugin and the overlay. Pure; no I/O; value types (not thread-safe to mutate concurrently).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace skiff::netlink {

// An IPv4 address in host byte order.
struct Ip4 {
  uint32_t v = 0;
  std::string str() const;
  bool operator==(const Ip4&) const = default;
  auto operator<=>(const Ip4&) const = default;
};
// Dotted quad only ("10.0.0.1"); nullopt otherwise.
std::optional<Ip4> parse_ip4(const std::string& s);

struct Ip4Net {
  Ip4 addr;  // as written (may have host bits; network() clears them)
  int prefix = 0;
  Ip4 network() const;
  Ip4 broadcast() const;
  uint32_t mask() const;
  bool contains(Ip4 ip) const;
  std::string str() const;  // "10.244.1.0/24" (network address)
  bool operator==(const Ip4Net&) const = default;
  auto operator<=>(const Ip4Net&) const = default;
};
// "A.B.C.D/N" with N in 0..32; nullopt otherwise.
std::optional<Ip4Net> parse_ip4_net(const std::string& s);

}  // namespace skiff::netlink
