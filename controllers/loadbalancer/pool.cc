#include "controllers/loadbalancer/pool.h"

#include <algorithm>
#include <charconv>

namespace skiff::controllers::loadbalancer {

std::optional<uint32_t> parse_ipv4(std::string_view s) {
  uint32_t ip = 0;
  const char* p = s.data();
  const char* end = s.data() + s.size();
  for (int i = 0; i < 4; ++i) {
    if (i > 0) {
      if (p == end || *p != '.') return std::nullopt;
      ++p;
    }
    if (p == end || *p < '0' || *p > '9') return std::nullopt;
    // No leading zeros ("010" is octal to some parsers): refuse rather than guess.
    if (*p == '0' && p + 1 != end && p[1] >= '0' && p[1] <= '9') return std::nullopt;
    unsigned v = 0;
    auto [next, ec] = std::from_chars(p, end, v);
    if (ec != std::errc() || v > 255) return std::nullopt;
    ip = (ip << 8) | v;
    p = next;
  }
  if (p != end) return std::nullopt;
  return ip;
}

std::string format_ipv4(uint32_t ip) {
  return std::to_string(ip >> 24) + "." + std::to_string((ip >> 16) & 255) + "." +
         std::to_string((ip >> 8) & 255) + "." + std::to_string(ip & 255);
}

std::vector<std::string> split_pool_text(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    if (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

namespace {

Result<AddrRange> parse_entry(const std::string& e) {
  if (auto dash = e.find('-'); dash != std::string::npos) {
    auto a = parse_ipv4(std::string_view(e).substr(0, dash));
    auto b = parse_ipv4(std::string_view(e).substr(dash + 1));
    if (!a || !b)
      return Status::invalid("pool entry \"" + e +
                             "\": not a range of two IPv4 addresses (want A-B, e.g. "
                             "10.250.0.200-10.250.0.250)");
    if (*a > *b)
      return Status::invalid("pool entry \"" + e + "\": the first address is after the last");
    return AddrRange{*a, *b};
  }
  if (auto slash = e.find('/'); slash != std::string::npos) {
    auto a = parse_ipv4(std::string_view(e).substr(0, slash));
    std::string_view len_text = std::string_view(e).substr(slash + 1);
    int len = -1;
    auto [p, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
    if (!a || ec != std::errc() || p != len_text.data() + len_text.size() || len_text.empty() ||
        len < 0 || len > 32)
      return Status::invalid("pool entry \"" + e +
                             "\": not an IPv4 CIDR (want ADDR/LEN with LEN 0..32)");
    uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
    if ((*a & ~mask) != 0)
      return Status::invalid("pool entry \"" + e + "\": host bits set (did you mean " +
                             format_ipv4(*a & mask) + "/" + std::to_string(len) + "?)");
    AddrRange r{*a, *a | ~mask};
    // Network and broadcast addresses are left out: many ARP stacks refuse them.
    if (len <= 30) {
      ++r.first;
      --r.last;
    }
    return r;
  }
  auto a = parse_ipv4(e);
  if (!a)
    return Status::invalid("pool entry \"" + e + "\": not an IPv4 address, A-B range or CIDR");
  return AddrRange{*a, *a};
}

}  // namespace

ParsedPool parse_pool(const std::vector<std::string>& entries) {
  ParsedPool out;
  for (const auto& e : entries) {
    auto r = parse_entry(e);
    if (r)
      out.ranges.push_back(*r);
    else
      out.errors.push_back(r.status().message());
  }
  return out;
}

void AddressPool::set_ranges(std::vector<AddrRange> ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const AddrRange& a, const AddrRange& b) { return a.first < b.first; });
  std::vector<AddrRange> merged;
  for (const auto& r : ranges) {
    if (!merged.empty() && uint64_t{r.first} <= uint64_t{merged.back().last} + 1)
      merged.back().last = std::max(merged.back().last, r.last);
    else
      merged.push_back(r);
  }
  ranges_ = std::move(merged);
}

bool AddressPool::in_pool(uint32_t ip) const {
  for (const auto& r : ranges_)
    if (ip >= r.first && ip <= r.last) return true;
  return false;
}

uint64_t AddressPool::capacity() const {
  uint64_t n = 0;
  for (const auto& r : ranges_) n += uint64_t{r.last} - r.first + 1;
  return n;
}

uint64_t AddressPool::used() const {
  uint64_t n = 0;
  for (const auto& [ip, owner] : by_ip_)
    if (in_pool(ip)) ++n;
  return n;
}

std::optional<uint32_t> AddressPool::address_of(const std::string& owner) const {
  auto it = by_owner_.find(owner);
  if (it == by_owner_.end()) return std::nullopt;
  return it->second;
}

std::string AddressPool::owner_of(uint32_t ip) const {
  auto it = by_ip_.find(ip);
  return it == by_ip_.end() ? "" : it->second;
}

Status AddressPool::assign(const std::string& owner, uint32_t ip) {
  if (!in_pool(ip)) return Status::invalid(format_ipv4(ip) + " is not in the address pool");
  auto it = by_ip_.find(ip);
  if (it != by_ip_.end()) {
    if (it->second == owner) return Status::ok();
    return Status::already_exists(format_ipv4(ip) + " is already assigned to " + it->second);
  }
  release(owner);
  by_ip_[ip] = owner;
  by_owner_[owner] = ip;
  return Status::ok();
}

Result<uint32_t> AddressPool::allocate(const std::string& owner) {
  if (auto have = address_of(owner); have && in_pool(*have)) return *have;
  for (const auto& r : ranges_) {
    for (uint64_t ip = r.first; ip <= r.last; ++ip) {
      if (by_ip_.count(static_cast<uint32_t>(ip))) continue;
      release(owner);
      by_ip_[static_cast<uint32_t>(ip)] = owner;
      by_owner_[owner] = static_cast<uint32_t>(ip);
      return static_cast<uint32_t>(ip);
    }
  }
  if (ranges_.empty()) return Status::unavailable("the address pool is empty");
  return Status::unavailable("no free address in the pool (" + std::to_string(used()) + " of " +
                             std::to_string(capacity()) + " in use)");
}

std::optional<uint32_t> AddressPool::release(const std::string& owner) {
  auto it = by_owner_.find(owner);
  if (it == by_owner_.end()) return std::nullopt;
  uint32_t ip = it->second;
  by_owner_.erase(it);
  by_ip_.erase(ip);
  return ip;
}

}  // namespace skiff::controllers::loadbalancer
