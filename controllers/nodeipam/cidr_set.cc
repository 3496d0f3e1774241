#include "controllers/nodeipam/cidr_set.h"

#include <arpa/inet.h>

#include <charconv>

namespace skiff::controllers::nodeipam {

namespace {
uint32_t mask_of(int prefix) { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
}  // namespace

std::string Ipv4Cidr::to_string() const {
  char buf[INET_ADDRSTRLEN] = {};
  uint32_t n = htonl(addr);
  inet_ntop(AF_INET, &n, buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(prefix);
}

bool Ipv4Cidr::contains(const Ipv4Cidr& o) const {
  return o.prefix >= prefix && (o.addr & mask_of(prefix)) == addr;
}

Result<Ipv4Cidr> parse_ipv4_cidr(std::string_view s) {
  auto bad = [&](const std::string& why) {
    return Status::invalid("CIDR \"" + std::string(s) + "\": " + why);
  };
  auto slash = s.find('/');
  if (slash == std::string_view::npos) return bad("missing /prefix");
  std::string ip(s.substr(0, slash));
  auto plen = s.substr(slash + 1);
  int prefix = -1;
  auto [p, ec] = std::from_chars(plen.data(), plen.data() + plen.size(), prefix);
  if (ec != std::errc() || p != plen.data() + plen.size() || plen.empty() || prefix < 0 ||
      prefix > 32)
    return bad("prefix length must be 0..32");
  in_addr a{};
  if (inet_pton(AF_INET, ip.c_str(), &a) != 1) return bad("not an IPv4 address");
  Ipv4Cidr c{ntohl(a.s_addr), prefix};
  if ((c.addr & mask_of(prefix)) != c.addr)
    return bad("host bits are set (did you mean " +
               Ipv4Cidr{c.addr & mask_of(prefix), prefix}.to_string() + "?)");
  return c;
}

Result<CidrSet> CidrSet::create(std::string_view cluster_cidr, int mask_size) {
  auto c = parse_ipv4_cidr(cluster_cidr);
  if (!c) return c.status().with_context("cluster CIDR");
  if (mask_size < c->prefix || mask_size > 32)
    return Status::invalid("node CIDR mask size " + std::to_string(mask_size) +
                           " must be between the cluster CIDR's prefix (" +
                           std::to_string(c->prefix) + ") and 32");
  if (mask_size - c->prefix > 16)
    return Status::invalid("node CIDR mask size " + std::to_string(mask_size) + " cuts " +
                           c->to_string() + " into more than 65536 subnets");
  return CidrSet(*c, mask_size);
}

CidrSet::CidrSet(Ipv4Cidr cluster, int mask_size)
    : cluster_(cluster), mask_size_(mask_size), taken_(size_t{1} << (mask_size - cluster.prefix)) {}

Result<size_t> CidrSet::index_of(std::string_view cidr) const {
  auto c = parse_ipv4_cidr(cidr);
  if (!c) return c.status();
  if (c->prefix != mask_size_)
    return Status::invalid("CIDR " + c->to_string() + " is not a /" + std::to_string(mask_size_) +
                           " (the node CIDR mask size)");
  if (!cluster_.contains(*c))
    return Status::invalid("CIDR " + c->to_string() + " is outside the cluster CIDR " +
                           cluster_.to_string());
  return static_cast<size_t>((c->addr - cluster_.addr) >> (32 - mask_size_));
}

Status CidrSet::check(std::string_view cidr) const { return index_of(cidr).status(); }

Status CidrSet::occupy(std::string_view cidr) {
  auto i = index_of(cidr);
  if (!i) return i.status();
  if (!taken_[*i]) {
    taken_[*i] = true;
    ++used_;
  }
  return Status::ok();
}

Status CidrSet::release(std::string_view cidr) {
  auto i = index_of(cidr);
  if (!i) return i.status();
  if (taken_[*i]) {
    taken_[*i] = false;
    --used_;
  }
  return Status::ok();
}

bool CidrSet::in_use(std::string_view cidr) const {
  auto i = index_of(cidr);
  return i && taken_[*i];
}

Result<std::string> CidrSet::allocate_next() {
  size_t n = taken_.size();
  for (size_t k = 0; k < n; ++k) {
    size_t i = (next_ + k) % n;
    if (taken_[i]) continue;
    taken_[i] = true;
    ++used_;
    next_ = (i + 1) % n;
    uint32_t addr = cluster_.addr + (static_cast<uint32_t>(i) << (32 - mask_size_));
    return Ipv4Cidr{addr, mask_size_}.to_string();
  }
  return Status::unavailable("no free /" + std::to_string(mask_size_) + " left: cluster CIDR " +
                             cluster_.to_string() + " is full (" + std::to_string(n) +
                             " node CIDRs in use)");
}

}  // namespace skiff::controllers::nodeipam
