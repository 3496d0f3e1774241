// The cluster zone: an immutable snapshot of the records Kubernetes DNS serves, built from the
// Service and Endpoints objects (JSON as the API returns them). Pure, so tests feed it objects
// and compare answers. The server swaps in a new snapshot after informer events; lookups read
// one snapshot without locks.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "netagent/dns/message.h"

namespace skiff::dns {

struct Cidr4 {
  uint32_t net = 0;
  int prefix = 0;
  bool contains(uint32_t ip) const {
    return prefix == 0 || (ip >> (32 - prefix)) == (net >> (32 - prefix));
  }
};
// "10.96.0.0/16"; nullopt when malformed.
std::optional<Cidr4> parse_cidr(std::string_view s);

struct ZoneConfig {
  std::string domain = "cluster.local";  // lower case, no trailing dot
  Cidr4 service_cidr{0x0A600000, 16};
  Cidr4 cluster_cidr{0x0AF40000, 16};
  uint32_t ttl = 5;
  uint32_t dns_ip = 0x0A60000A;  // ns.dns.<domain> A
};

struct Answer {
  uint8_t rcode = kNoError;
  std::vector<Record> answers;
  std::vector<Record> authority;  // the zone's SOA on NXDOMAIN and NODATA
};

class Zone {
 public:
  // Calls its argument once per Service.
  using ServiceWalk = std::function<void(const std::function<void(const nlohmann::json&)>&)>;
  // The Endpoints "namespace/name", if any.
  using EndpointsLookup = std::function<std::optional<nlohmann::json>(const std::string& key)>;
  // One Service decoded at a time (the server walks its compact informer caches: all of them
  // decoded at once were ~60 MB at 10,000 Services); Endpoints are looked up for headless
  // Services only.
  static std::shared_ptr<const Zone> build(const ZoneConfig& cfg, const ServiceWalk& services,
                                           const EndpointsLookup& endpoints);
  // The same from lists.
  static std::shared_ptr<const Zone> build(const ZoneConfig& cfg,
                                           const std::vector<nlohmann::json>& services,
                                           const std::vector<nlohmann::json>& endpoints);

  // True when `name` is ours to answer: the cluster domain, or an in-addr.arpa name inside the
  // service or cluster CIDR. Everything else is forwarded.
  bool authoritative(const std::string& name) const;
  // The answer for an authoritative name. Names compare case-insensitively; the owner names
  // of the answer keep the question's spelling.
  Answer lookup(const Question& q) const;

  size_t record_count() const { return count_; }
  const ZoneConfig& config() const { return cfg_; }

 private:
  explicit Zone(ZoneConfig cfg) : cfg_(std::move(cfg)) {}
  void add(const std::string& lname, Record r);
  // The reverse-zone apex holding `lname` (e.g. "96.10.in-addr.arpa"), or "" if none.
  std::string reverse_apex(const std::string& lname) const;
  Record soa(const std::string& apex) const;

  ZoneConfig cfg_;
  std::map<std::string, std::vector<Record>> names_;  // lower-case owner -> records
  std::set<std::string> exists_;                      // owners and their ancestors (ENTs)
  size_t count_ = 0;
};

}  // namespace skiff::dns
