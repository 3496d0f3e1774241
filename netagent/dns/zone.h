// The cluster zone: the records Kubernetes DNS serves, answered from the Service and Endpoints
// objects (JSON as the API returns them). Tests feed it lists of objects and compare answers;
// the server answers from its informers' caches and swaps in a new zone (a new PTR index)
// after informer events.
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
  // The Service or Endpoints "namespace/name", if any.
  using ObjectLookup = std::function<std::optional<nlohmann::json>(const std::string& key)>;

  // The zone over live Services and Endpoints: like CoreDNS's kubernetes plugin, names under
  // <domain> are answered from the objects at query time (`services`/`endpoints` look them up,
  // e.g. in the informers' compact caches), so the zone holds no records per Service. What
  // cannot be found by name is indexed once here from `walk` (one Service at a time): the
  // namespaces that have Services (empty non-terminals) and the address -> name map of PTR
  // records. The lookups must stay valid while the zone is used.
  static std::shared_ptr<const Zone> build(const ZoneConfig& cfg, const ServiceWalk& walk,
                                           ObjectLookup services, ObjectLookup endpoints);
  // The same over lists (copied into the zone).
  static std::shared_ptr<const Zone> build(const ZoneConfig& cfg,
                                           const std::vector<nlohmann::json>& services,
                                           const std::vector<nlohmann::json>& endpoints);

  // True when `name` is ours to answer: the cluster domain, or an in-addr.arpa name inside the
  // service or cluster CIDR. Everything else is forwarded.
  bool authoritative(const std::string& name) const;
  // The answer for an authoritative name. Names compare case-insensitively; the owner names
  // of the answer keep the question's spelling.
  Answer lookup(const Question& q) const;

  // The records the zone would hold if written out (counted when it was built).
  size_t record_count() const { return count_; }
  const ZoneConfig& config() const { return cfg_; }

 private:
  explicit Zone(ZoneConfig cfg) : cfg_(std::move(cfg)) {}
  // The apexes' SOA and NS records and ns.dns.<domain>'s A.
  void add_fixed(const std::string& lname, Record r);
  // The reverse-zone apex holding `lname` (e.g. "96.10.in-addr.arpa"), or "" if none.
  std::string reverse_apex(const std::string& lname) const;
  Record soa(const std::string& apex) const;
  // The records of lower-case `l` under the cluster domain (`rel`: l without ".<domain>");
  // false when the name does not exist.
  bool service_records(const std::string& rel, std::vector<Record>* out) const;
  bool reverse_records(const std::string& l, std::vector<Record>* out) const;

  ZoneConfig cfg_;
  ObjectLookup services_, endpoints_;
  std::map<std::string, std::vector<Record>> fixed_;  // lower-case owner -> records
  std::set<std::string> fixed_ents_;                   // ancestors of fixed_'s owners
  std::set<std::string> namespaces_;                   // lower-case, with a valid Service
  std::multimap<uint32_t, std::string> ptr_;           // address -> PTR target (lower case)
  size_t count_ = 0;
};

}  // namespace skiff::dns
