#include "netagent/dns/message.h"

#include <catch2/catch.hpp>
#include <random>

namespace skiff::dns {
namespace {

std::string query_wire(const std::string& name, uint16_t type, uint16_t id = 0x1234,
                       std::optional<uint16_t> edns = std::nullopt) {
  Message m;
  m.id = id;
  m.rd = true;
  m.questions.push_back({name, type, kClassIN});
  m.edns_udp_size = edns;
  return build(m);
}

TEST_CASE("a query round-trips through build and parse") {
  std::string w = query_wire("Web.Default.svc.cluster.local", kSRV, 77, 1232);
  ParseResult r = parse(w);
  REQUIRE(r.error == ParseError::kNone);
  CHECK(r.msg.id == 77);
  CHECK(r.msg.rd);
  CHECK_FALSE(r.msg.qr);
  REQUIRE(r.msg.questions.size() == 1);
  CHECK(r.msg.questions[0].name == "Web.Default.svc.cluster.local");
  CHECK(r.msg.questions[0].type == kSRV);
  REQUIRE(r.msg.edns_udp_size);
  CHECK(*r.msg.edns_udp_size == 1232);
}

TEST_CASE("every record kind round-trips, with compression") {
  Message m;
  m.id = 9;
  m.qr = m.aa = m.ra = true;
  m.rcode = kNxDomain;
  m.questions.push_back({"a.b.svc.cluster.local", kA, kClassIN});
  Record a{.name = "a.b.svc.cluster.local", .type = kA, .ttl = 5, .a = 0x0A60000A};
  Record c{.name = "x.b.svc.cluster.local", .type = kCNAME, .ttl = 5, .target = "example.com"};
  Record p{
      .name = "10.0.96.10.in-addr.arpa", .type = kPTR, .ttl = 5, .target = "a.b.svc.cluster.local"};
  Record s{.name = "_http._tcp.a.b.svc.cluster.local",
           .type = kSRV,
           .ttl = 5,
           .target = "a.b.svc.cluster.local",
           .priority = 0,
           .weight = 100,
           .port = 80};
  Record soa{.name = "cluster.local", .type = kSOA, .ttl = 5};
  soa.soa = {"ns.dns.cluster.local", "hostmaster.cluster.local", 1, 7200, 1800, 86400, 5};
  Record txt{.name = "t.cluster.local", .type = kTXT, .ttl = 5, .raw = std::string("\x02hi", 3)};
  m.answers = {a, c, p, s, txt};
  m.authority = {soa};
  std::string w = build(m);
  ParseResult r = parse(w);
  REQUIRE(r.error == ParseError::kNone);
  CHECK(r.msg.rcode == kNxDomain);
  CHECK(r.msg.aa);
  CHECK(r.msg.answers == m.answers);
  CHECK(r.msg.authority == m.authority);
  // Compression: the answer's owner is a 2-byte pointer to the question's name.
  size_t q_end = 12 + std::string("a.b.svc.cluster.local").size() + 2 + 4;
  CHECK(static_cast<uint8_t>(w[q_end]) == 0xC0);
  CHECK(static_cast<uint8_t>(w[q_end + 1]) == 12);
  CHECK(w.size() < 250);
  CHECK(to_string(s) ==
        "_http._tcp.a.b.svc.cluster.local. 5 IN SRV 0 100 80 a.b.svc.cluster.local.");
}

TEST_CASE("labels holding dots and backslashes round-trip escaped") {
  std::string w = query_wire("a\\.b.c\\\\d.example", kA);
  ParseResult r = parse(w);
  REQUIRE(r.error == ParseError::kNone);
  CHECK(r.msg.questions[0].name == "a\\.b.c\\\\d.example");
  CHECK(w.substr(12, 5) == std::string{3, 'a', '.', 'b', 3});
}

TEST_CASE("truncated, looping and garbage messages never crash") {
  CHECK(parse("").error == ParseError::kTooShort);
  CHECK(parse("abc").error == ParseError::kTooShort);
  std::string good = query_wire("web.default.svc.cluster.local", kA, 1, 4096);
  // Every prefix of a good message: too short or malformed, never a crash.
  for (size_t n = 0; n < good.size(); ++n) {
    ParseResult r = parse(good.substr(0, n));
    CHECK(r.error != ParseError::kNone);
  }
  // A pointer to itself, and two pointing at each other.
  std::string self("\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xC0\x0C\x00\x01\x00\x01", 18);
  ParseResult r = parse(self);
  CHECK(r.error == ParseError::kMalformed);
  CHECK(r.why.find("loop") != std::string::npos);
  CHECK(r.msg.id == 1);
  std::string fwd(
      "\x00\x02\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xC0\x0E\xC0\x0C\x00\x01\x00\x01", 20);
  CHECK(parse(fwd).error == ParseError::kMalformed);
  // Counts far beyond the packet.
  std::string counts("\x00\x03\x01\x00\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF", 12);
  CHECK(parse(counts).error == ParseError::kMalformed);
  // A label type 0x40/0x80 (reserved).
  std::string ext("\x00\x04\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x41\x00\x00\x01\x00\x01", 18);
  CHECK(parse(ext).error == ParseError::kMalformed);
  // A name over 255 bytes.
  std::string longname("\x00\x05\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 12);
  for (int i = 0; i < 5; ++i) longname += "\x3F" + std::string(63, 'a');
  longname += std::string("\x00\x00\x01\x00\x01", 5);
  CHECK(parse(longname).error == ParseError::kMalformed);
  // An A record whose rdlength lies.
  Message m;
  m.qr = true;
  m.answers.push_back({.name = "x", .type = kA, .ttl = 1, .a = 1});
  std::string a = build(m);
  a[a.size() - 5] = 3;  // rdlength 4 -> 3
  CHECK(parse(a).error == ParseError::kMalformed);
  // Random bytes: no crash (and ASan/UBSan builds would catch overreads).
  std::mt19937 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::string g(rng() % 80, '\0');
    for (auto& c : g) c = static_cast<char>(rng());
    (void)parse(g);
    // Mutations of a good message.
    std::string mut = good;
    for (int k = 0; k < 3; ++k) mut[rng() % mut.size()] = static_cast<char>(rng());
    (void)parse(mut);
  }
}

TEST_CASE("an answer too large for the limit is truncated with TC") {
  Message m;
  m.id = 5;
  m.qr = true;
  m.questions.push_back({"big.default.svc.cluster.local", kA, kClassIN});
  for (uint32_t i = 0; i < 100; ++i)
    m.answers.push_back({.name = "big.default.svc.cluster.local", .type = kA, .ttl = 5, .a = i});
  std::string full = build(m, 0);
  CHECK(full.size() > 512);
  ParseResult fr = parse(full);
  CHECK_FALSE(fr.msg.tc);
  CHECK(fr.msg.answers.size() == 100);
  std::string cut = build(m, 512);
  CHECK(cut.size() <= 512);
  ParseResult cr = parse(cut);
  REQUIRE(cr.error == ParseError::kNone);
  CHECK(cr.msg.tc);
  CHECK(cr.msg.answers.empty());
  CHECK(cr.msg.questions.size() == 1);
  // With EDNS 4096 it fits (100 x 16 bytes).
  m.edns_udp_size = 4096;
  ParseResult er = parse(build(m, 4096));
  CHECK_FALSE(er.msg.tc);
  CHECK(er.msg.answers.size() == 100);
  CHECK(er.msg.edns_udp_size == 4096);
}

TEST_CASE("reply_to copies id, question and RD and echoes EDNS") {
  ParseResult r = parse(query_wire("x.cluster.local", kAAAA, 4242, 1400));
  Message resp = reply_to(r.msg);
  CHECK(resp.qr);
  CHECK(resp.id == 4242);
  CHECK(resp.rd);
  CHECK(resp.questions == r.msg.questions);
  CHECK(resp.edns_udp_size == 1400);
  r = parse(query_wire("x.cluster.local", kA, 1, 100));
  CHECK(reply_to(r.msg).edns_udp_size == 512);
  r = parse(query_wire("x.cluster.local", kA, 1));
  CHECK_FALSE(reply_to(r.msg).edns_udp_size);
}

TEST_CASE("addresses") {
  CHECK(parse_ip4("10.96.0.10") == 0x0A60000A);
  CHECK_FALSE(parse_ip4("10.96.0"));
  CHECK_FALSE(parse_ip4("10.96.0.256"));
  CHECK_FALSE(parse_ip4("10.96.0.1x"));
  CHECK_FALSE(parse_ip4("1.2.3.0001"));
  CHECK(ip4_str(0x0A60000A) == "10.96.0.10");
  CHECK(lower("WeB.CLUSTER") == "web.cluster");
}

}  // namespace
}  // namespace skiff::dns
