// DNS messages (RFC 1035) on the wire: parsing (robust against truncated, looping and garbage
// packets) and building (name compression, EDNS0 OPT, TC truncation). Own code, no DNS library.
//
// Names are dotted text without the trailing dot ("web.default.svc.cluster.local"; "" is the
// root). A label holding '.' or '\' is escaped as "\." / "\\" (presentation format), so any
// wire name round-trips. Case is kept as received; compare with lower().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace skiff::dns {

enum Type : uint16_t {
  kA = 1,
  kNS = 2,
  kCNAME = 5,
  kSOA = 6,
  kPTR = 12,
  kMX = 15,
  kTXT = 16,
  kAAAA = 28,
  kSRV = 33,
  kOPT = 41,
  kAXFR = 252,
  kANY = 255,
};
constexpr uint16_t kClassIN = 1;

enum Rcode : uint8_t {
  kNoError = 0,
  kFormErr = 1,
  kServFail = 2,
  kNxDomain = 3,
  kNotImp = 4,
  kRefused = 5,
};

// "A", "SRV", ... or the number.
std::string type_name(uint16_t t);
std::string rcode_name(uint8_t r);
// ASCII lower case (DNS names compare case-insensitively, RFC 4343).
std::string lower(std::string_view s);

struct Question {
  std::string name;
  uint16_t type = kA;
  uint16_t klass = kClassIN;
  bool operator==(const Question&) const = default;
};

struct Soa {
  std::string mname, rname;
  uint32_t serial = 0, refresh = 0, retry = 0, expire = 0, minimum = 0;
  bool operator==(const Soa&) const = default;
};

struct Record {
  std::string name;
  uint16_t type = kA;
  uint16_t klass = kClassIN;
  uint32_t ttl = 0;
  // rdata, by type:
  uint32_t a = 0;                               // A: host byte order
  std::string target;                           // CNAME, PTR, NS, SRV target
  uint16_t priority = 0, weight = 0, port = 0;  // SRV
  Soa soa;                                      // SOA
  std::string raw;                              // any other type: the rdata bytes as they were
  bool operator==(const Record&) const = default;
};

struct Message {
  uint16_t id = 0;
  bool qr = false;
  uint8_t opcode = 0;
  bool aa = false, tc = false, rd = false, ra = false, ad = false, cd = false;
  uint8_t rcode = 0;  // low 4 bits (extended rcodes are not used)
  std::vector<Question> questions;
  std::vector<Record> answers, authority, additional;  // without the OPT record
  // EDNS0: present when the message carried (or is to carry) an OPT record.
  std::optional<uint16_t> edns_udp_size;
  bool edns_do = false;
};

enum class ParseError {
  kNone,
  kTooShort,   // not even a header: nothing to answer (dropped)
  kMalformed,  // a header but a broken body: answer FORMERR with the header's id
};

struct ParseResult {
  ParseError error = ParseError::kNone;
  std::string why;  // for logs: "name at offset 12: compression pointer loop"
  Message msg;      // the header is filled whenever error != kTooShort
};

// Parses a whole message. Never reads past `wire`; compression pointers must point backwards
// and at most 64 are followed per name; names are at most 255 bytes, labels 63.
ParseResult parse(std::string_view wire);

// Builds the wire form with name compression. When it exceeds `max_size` (UDP: 512, or the
// client's EDNS size), the answer, authority and additional records are dropped and TC is set
// (the client retries over TCP). max_size 0 means no limit (TCP, up to 65535).
std::string build(const Message& m, size_t max_size = 0);

// The response skeleton for a request: id, opcode, RD and question copied, QR set, EDNS echoed
// when the request had it.
Message reply_to(const Message& request);

// Presentation of a record for logs and tests: "web.default.svc.cluster.local. 5 IN A 10.96.0.5".
std::string to_string(const Record& r);

// Dotted quad <-> host-order integer.
std::string ip4_str(uint32_t ip);
std::optional<uint32_t> parse_ip4(std::string_view s);

}  // namespace skiff::dns
