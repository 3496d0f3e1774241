#include "common/netlink/ip4.h"

#include <arpa/inet.h>

namespace skiff::netlink {

std::string Ip4::str() const {
  char buf[INET_ADDRSTRLEN];
  uint32_t n = htonl(v);
  inet_ntop(AF_INET, &n, buf, sizeof buf);
  return buf;
}

std::optional<Ip4> parse_ip4(const std::string& s) {
  in_addr a;
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
  return Ip4{ntohl(a.s_addr)};
}

uint32_t Ip4Net::mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
Ip4 Ip4Net::network() const { return Ip4{addr.v & mask()}; }
Ip4 Ip4Net::broadcast() const { return Ip4{network().v | ~mask()}; }
bool Ip4Net::contains(Ip4 ip) const { return (ip.v & mask()) == network().v; }
std::string Ip4Net::str() const { return network().str() + "/" + std::to_string(prefix); }

std::optional<Ip4Net> parse_ip4_net(const std::string& s) {
  auto slash = s.find('/');
  if (slash == std::string::npos || slash + 1 >= s.size()) return std::nullopt;
  auto ip = parse_ip4(s.substr(0, slash));
  if (!ip) return std::nullopt;
  const std::string p = s.substr(slash + 1);
  if (p.size() > 2 || p.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  int prefix = std::stoi(p);
  if (prefix > 32) return std::nullopt;
  return Ip4Net{*ip, prefix};
}

}  // namespace skiff::netlink
