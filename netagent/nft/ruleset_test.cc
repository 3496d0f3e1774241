// Sets, maps, the service expressions, inline anonymous verdict maps and FakeNftTables: pure
// encoding and validation tests, the fake's kernel semantics, and (as root, in a private
// network namespace) the same batches applied to the kernel and read back with `nft list`,
// which must equal the fake's text.
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "netagent/nft/fake.h"
#include "netagent/nft/nft.h"
#include "netagent/nft/skiff_table.h"
#include "test/netns.h"
#include "test/testing.h"

namespace skiff::nft {
namespace {

uint32_t ip(const char* s) { return parse_ipv4(s).value(); }

Rule rule(std::initializer_list<std::vector<Expr>> parts, std::string comment = "") {
  Rule r;
  for (const auto& p : parts) r.exprs.insert(r.exprs.end(), p.begin(), p.end());
  r.comment = std::move(comment);
  return r;
}
std::vector<Expr> verdict(VerdictCode c, std::string chain = "") {
  return {Verdict{c, std::move(chain)}};
}
// A map element `key : goto chain`, and an element given by its key alone (for deletes).
Element goto_element(std::vector<Bytes> key, std::string chain) {
  return Element{std::move(key), Verdict{VerdictCode::kGoto, std::move(chain)}, 0, {}};
}
Element key_element(std::vector<Bytes> key) { return Element{std::move(key), {}, 0, {}}; }

Set service_ips_map() {
  Set s;
  s.name = "service-ips";
  s.key = {SetType::kIpv4Addr, SetType::kInetProto, SetType::kInetService};
  s.data = SetType::kVerdict;
  s.comment = "ClusterIP, ExternalIP and LoadBalancer IP traffic";
  return s;
}
Set nodeports_map() {
  Set s;
  s.name = "service-nodeports";
  s.key = {SetType::kInetProto, SetType::kInetService};
  s.data = SetType::kVerdict;
  return s;
}
Set affinity_set(const std::string& name) {
  Set s;
  s.name = name;
  s.key = {SetType::kIpv4Addr};
  s.timeout = true;
  s.dynamic = true;
  s.timeout_ms = 10800 * 1000;
  return s;
}

// A kube-proxy-style ruleset: two services (one with two endpoints and affinity, one without
// endpoints), NodePort, masquerade marking, reject, fib, ct.
Batch representative_batch() {
  Batch b(kSkiffFamily, kSkiffTable);
  b.add_table();
  b.add_set(service_ips_map());
  b.add_set(nodeports_map());
  Set noep = service_ips_map();
  noep.name = "no-endpoint-services";
  noep.comment = "";
  b.add_set(noep);
  b.add_set(affinity_set("affinity-ep-a"));
  Set marks;
  marks.name = "marks";
  marks.key = {SetType::kIpv4Addr};
  marks.data = SetType::kMark;
  b.add_set(marks);

  for (const char* c : {"mark-for-masquerade", "reject-chain", "svc-web", "ep-a", "ep-b",
                        "services", "nodeports"}) {
    b.add_chain(Chain{c, std::nullopt});
  }
  b.add_chain(Chain{"nat-prerouting",
                    BaseChain{"nat", Hook::kPrerouting, kPriorityDstNat, VerdictCode::kAccept}});
  b.add_chain(Chain{"filter-input",
                    BaseChain{"filter", Hook::kInput, kPriorityFilter - 10, VerdictCode::kAccept}});

  b.add_rule("mark-for-masquerade", rule({set_mark_bits(kMasqueradeMark)}));
  b.add_rule("reject-chain", rule({reject_icmp_port_unreachable()}));
  b.add_rule("svc-web", rule({match_ipv4(IpField::kSaddr, {ip("10.244.0.0"), 16}, true),
                              verdict(VerdictCode::kJump, "mark-for-masquerade")}));
  b.add_rule("svc-web",
             rule({match_saddr_in_set("affinity-ep-a"), verdict(VerdictCode::kGoto, "ep-a")}));
  b.add_rule("svc-web", rule({numgen_vmap_goto({"ep-a", "ep-b"})}, "web"));
  b.add_rule("ep-a", rule({match_ipv4(IpField::kSaddr, {ip("10.244.1.5"), 32}),
                           verdict(VerdictCode::kJump, "mark-for-masquerade")}));
  b.add_rule("ep-a", rule({update_set_saddr("affinity-ep-a")}));
  b.add_rule("ep-a", rule({dnat_to(ip("10.244.1.5"), 80, kTcp)}));
  b.add_rule("ep-b", rule({match_ipv4(IpField::kSaddr, {ip("10.244.2.7"), 32}),
                           verdict(VerdictCode::kJump, "mark-for-masquerade")}));
  b.add_rule("ep-b", rule({dnat_to(ip("10.244.2.7"), 8080, kTcp)}));
  b.add_rule("services", rule({vmap_daddr_proto_port("service-ips")}));
  b.add_rule("services", rule({match_fib_daddr_local(), vmap_proto_port("service-nodeports")}));
  b.add_rule("nat-prerouting", rule({verdict(VerdictCode::kJump, "services")}));
  b.add_rule("filter-input",
             rule({match_ct_state(kCtStateNew), vmap_daddr_proto_port("no-endpoint-services")}));
  b.add_rule("filter-input", rule({match_ct_state(kCtStateInvalid), verdict(VerdictCode::kDrop)}));
  b.add_rule(
      "filter-input",
      rule({match_l4proto(kUdp), match_th_dport(53), {Counter{}}, verdict(VerdictCode::kAccept)}));
  b.add_rule("filter-input", rule({match_mark_bits(kMasqueradeMark), reject_tcp_reset()}));

  b.add_elements("service-ips", {goto_element(service_key(ip("10.96.0.20"), kTcp, 80), "svc-web"),
                                 Element{service_key(ip("10.96.0.21"), kUdp, 53),
                                         Verdict{VerdictCode::kGoto, "svc-web"}, 0, "dns"}});
  b.add_elements("service-nodeports", {goto_element(proto_port_key(kTcp, 30080), "svc-web")});
  b.add_elements("no-endpoint-services",
                 {goto_element(service_key(ip("10.96.0.30"), kTcp, 443), "reject-chain")});
  b.add_elements("marks", {Element{{ipv4_bytes(ip("1.2.3.4"))}, u32_key(0x10), 0, {}}});
  return b;
}

// The representative ruleset as `nft list table ip skiff` prints it (checked against the
// kernel in "the kernel lists what the fake lists").
const char* const kRepresentativeListing = R"(table ip skiff {
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "ClusterIP, ExternalIP and LoadBalancer IP traffic"
		elements = { 10.96.0.20 . tcp . 80 : goto svc-web,
			     10.96.0.21 . udp . 53 comment "dns" : goto svc-web }
	}

	map service-nodeports {
		type inet_proto . inet_service : verdict
		elements = { tcp . 30080 : goto svc-web }
	}

	map no-endpoint-services {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 10.96.0.30 . tcp . 443 : goto reject-chain }
	}

	set affinity-ep-a {
		type ipv4_addr
		size 65535
		flags dynamic,timeout
		timeout 3h
	}

	map marks {
		type ipv4_addr : mark
		elements = { 1.2.3.4 : 0x00000010 }
	}

	set recent {
		type ipv4_addr
		timeout 10m
		elements = { 10.0.0.1 timeout 1h }
	}

	chain mark-for-masquerade {
		meta mark set meta mark | 0x00004000
	}

	chain reject-chain {
		reject
	}

	chain svc-web {
		ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		ip saddr @affinity-ep-a goto ep-a
		numgen random mod 2 vmap { 0 : goto ep-a, 1 : goto ep-b } comment "web"
	}

	chain ep-a {
		ip saddr 10.244.1.5 jump mark-for-masquerade
		update @affinity-ep-a { ip saddr }
		meta l4proto tcp dnat to 10.244.1.5:80
	}

	chain ep-b {
		ip saddr 10.244.2.7 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.244.2.7:8080
	}

	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
		fib daddr type local meta l4proto . th dport vmap @service-nodeports
	}

	chain nodeports {
	}

	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}

	chain filter-input {
		type filter hook input priority filter - 10; policy accept;
		ct state new ip daddr . meta l4proto . th dport vmap @no-endpoint-services
		ct state invalid drop
		udp dport 53 counter packets 0 bytes 0 accept
		meta mark & 0x00004000 == 0x00004000 reject with tcp reset
		ct state established,related ip daddr != @recent accept
		reject with icmp host-unreachable
	}
}
)";

std::vector<std::string> describe_all(const Batch& b) {
  std::vector<std::string> out;
  for (size_t i = 0; i < b.ops().size(); ++i) out.push_back(b.describe(i));
  return out;
}

// (type, flags, length) of each netlink message.
struct Msg {
  uint16_t type;
  uint16_t flags;
  uint32_t len;
};
std::vector<Msg> messages(const std::vector<uint8_t>& buf) {
  std::vector<Msg> out;
  int left = static_cast<int>(buf.size());
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, left);
       nlh = mnl_nlmsg_next(nlh, &left)) {
    out.push_back(Msg{nlh->nlmsg_type, nlh->nlmsg_flags, nlh->nlmsg_len});
  }
  CHECK(left == 0);
  return out;
}
uint16_t nft_type(int m) { return static_cast<uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | m); }

TEST_CASE("an inline vmap becomes an anonymous set, its elements and the rule", "[nft][sets]") {
  Batch b(kSkiffFamily, kSkiffTable);
  b.add_chain(Chain{"a", std::nullopt});
  b.add_rule("svc", rule({numgen_vmap_goto({"a", "b", "c"})}));
  std::vector<size_t> op_of;
  auto enc = b.encode(100, &op_of);
  REQUIRE(enc.is_ok());
  auto msgs = messages(enc.value());
  REQUIRE(msgs.size() == 6);
  CHECK(msgs[1].type == nft_type(NFT_MSG_NEWCHAIN));
  CHECK(msgs[2].type == nft_type(NFT_MSG_NEWSET));
  CHECK(msgs[3].type == nft_type(NFT_MSG_NEWSETELEM));
  CHECK(msgs[4].type == nft_type(NFT_MSG_NEWRULE));
  CHECK(op_of == std::vector<size_t>{0, 1, 1, 1});  // acks of all three map to the rule
  auto dump = [](const std::vector<Expr>& ex) {
    std::vector<std::string> out;
    for (const Expr& e : ex) out.push_back(to_string(e));
    return out;
  };
  CHECK(dump(numgen_vmap_goto({"a", "b"})) ==
        std::vector<std::string>{"[ numgen reg 1 = random mod 2 ]",
                                 "[ lookup reg 1 set __map%d dreg verdict { 0x00000000 : goto a, "
                                 "0x01000000 : goto b } ]"});
  CHECK(dump(vmap_daddr_proto_port("service-ips")) ==
        std::vector<std::string>{"[ payload load 4b @ network header + 16 => reg 1 ]",
                                 "[ meta load 16 => reg 9 ]",
                                 "[ payload load 2b @ transport header + 2 => reg 10 ]",
                                 "[ lookup reg 1 set service-ips dreg verdict ]"});
  CHECK(dump(dnat_to(ip("10.244.1.5"), 80, kTcp)) ==
        std::vector<std::string>{"[ meta load 16 => reg 1 ]", "[ cmp eq reg 1 0x06 ]",
                                 "[ immediate reg 1 0x0af40105 ]", "[ immediate reg 2 0x0050 ]",
                                 "[ nat dnat ip addr_min reg 1 proto_min reg 2 ]"});
}

TEST_CASE("10,000 elements are one op in several messages under the attribute limit",
          "[nft][sets]") {
  Batch b(kSkiffFamily, kSkiffTable);
  b.add_set(service_ips_map());
  std::vector<Element> elements;
  for (uint32_t i = 0; i < 10000; ++i) {
    elements.push_back(goto_element(service_key(ip("10.96.0.0") + i, kTcp, 80),
                                    "service-chain-with-a-long-name-" + std::to_string(i)));
  }
  b.add_elements("service-ips", elements);
  CHECK(describe_all(b) ==
        std::vector<std::string>{"add map ip skiff service-ips",
                                 "add 10000 elements to set ip skiff service-ips"});
  std::vector<size_t> op_of;
  auto enc = b.encode(1, &op_of);
  REQUIRE(enc.is_ok());
  auto msgs = messages(enc.value());
  REQUIRE(msgs.size() > 4);
  CHECK(msgs.size() == op_of.size() + 2);
  for (size_t i = 1; i + 1 < msgs.size(); ++i) {
    CHECK(msgs[i].len < 60000);
    if (i > 1) {
      CHECK(msgs[i].type == nft_type(NFT_MSG_NEWSETELEM));
      CHECK(op_of[i - 1] == 1);
    }
  }
}

TEST_CASE("sets and elements are validated before anything is sent", "[nft][sets]") {
  auto err = [](const Batch& b) {
    auto r = b.encode(1);
    REQUIRE(!r.is_ok());
    CHECK(r.status().code() == Code::kInvalid);
    return r.status().message();
  };
  Batch b(kSkiffFamily, kSkiffTable);
  b.add_set(service_ips_map());
  Batch bad_key = b;
  bad_key.add_elements("service-ips",
                       {Element{proto_port_key(kTcp, 80), Verdict{VerdictCode::kDrop}, 0, {}}});
  CHECK_THAT(err(bad_key), Catch::Contains("add 1 element to set ip skiff service-ips: element 0: "
                                           "element key has 2 parts; the set's key has 3"));
  Batch bad_part = b;
  bad_part.add_elements(
      "service-ips",
      {Element{
          {ipv4_bytes(1), port_bytes(6), port_bytes(80)}, Verdict{VerdictCode::kDrop}, 0, {}}});
  CHECK_THAT(err(bad_part), Catch::Contains("part 1 is 2 bytes; inet_proto is 1"));
  Batch no_verdict = b;
  no_verdict.add_elements("service-ips", {key_element(service_key(1, kTcp, 80))});
  CHECK_THAT(err(no_verdict), Catch::Contains("without a verdict"));
  Batch no_jump_target = b;
  no_jump_target.add_elements(
      "service-ips", {Element{service_key(1, kTcp, 80), Verdict{VerdictCode::kGoto}, 0, {}}});
  CHECK_THAT(err(no_jump_target), Catch::Contains("jump target chain name is empty"));
  Set timeout_without_flag = affinity_set("a");
  timeout_without_flag.timeout = false;
  CHECK_THAT(err(Batch(kSkiffFamily, kSkiffTable).add_set(timeout_without_flag)),
             Catch::Contains("default timeout without flag timeout"));
  Set interval = affinity_set("i");
  interval.interval = true;
  CHECK_THAT(err(Batch(kSkiffFamily, kSkiffTable).add_set(interval)),
             Catch::Contains("interval sets are not supported"));
  CHECK_THAT(err(Batch(kSkiffFamily, kSkiffTable).add_set(Set{.name = "x"})),
             Catch::Contains("set without a key type"));
  CHECK_THAT(err(Batch(kSkiffFamily, kSkiffTable)
                     .add_rule("c", rule({{Reject{RejectType::kIcmpxUnreach, 1}}}))),
             Catch::Contains("icmpx is not supported in an ip table"));
  CHECK_THAT(err(Batch(kSkiffFamily, kSkiffTable)
                     .add_rule("c", rule({{Lookup{"m", Reg::k1, Reg::kVerdict, true}}}))),
             Catch::Contains("an inverted map lookup"));
  CHECK_THAT(err(Batch(kSkiffFamily, kSkiffTable).add_rule("c", rule({{InlineVmap{}}}))),
             Catch::Contains("inline vmap without entries"));
  CHECK_THAT(err(Batch(Family::kInet, "skiff").add_rule("c", rule({dnat_to(1, 80, kTcp)}))),
             Catch::Contains("nat is only encoded for family ip"));
  CHECK_THAT(err(Batch(kSkiffFamily, kSkiffTable).add_rule("c", rule({{Numgen{0, 0, Reg::k1}}}))),
             Catch::Contains("numgen modulus 0"));
  // A set not defined in the batch: only what needs no definition is checked.
  Batch elsewhere(kSkiffFamily, kSkiffTable);
  elsewhere.add_elements("defined-earlier",
                         {Element{proto_port_key(kTcp, 80), Verdict{VerdictCode::kDrop}, 0, {}}});
  CHECK(elsewhere.encode(1).is_ok());
}

TEST_CASE("rules print in nft syntax", "[nft][fake]") {
  CHECK(rule_to_nft(rule({vmap_daddr_proto_port("service-ips")})) ==
        "ip daddr . meta l4proto . th dport vmap @service-ips");
  CHECK(rule_to_nft(rule({match_fib_daddr_local(), vmap_proto_port("service-nodeports")})) ==
        "fib daddr type local meta l4proto . th dport vmap @service-nodeports");
  CHECK(rule_to_nft(rule({numgen_vmap_goto({"a", "b"})})) ==
        "numgen random mod 2 vmap { 0 : goto a, 1 : goto b }");
  CHECK(rule_to_nft(rule({reject_tcp_reset()})) == "reject with tcp reset");
  CHECK(rule_to_nft(rule({match_l4proto(kTcp), match_th_dport(80),
                          verdict(VerdictCode::kAccept)})) == "tcp dport 80 accept");
  CHECK(rule_to_nft(rule({match_th_dport(80), verdict(VerdictCode::kDrop)})) == "th dport 80 drop");
  CHECK(rule_to_nft(rule({match_ct_state(kCtStateEstablished | kCtStateRelated),
                          verdict(VerdictCode::kAccept)})) ==
        "ct state established,related accept");
  CHECK(rule_to_nft(rule({update_set_saddr("aff", 30000)})) ==
        "update @aff { ip saddr timeout 30s }");
  CHECK(rule_to_nft(rule({dnat_to(ip("10.244.1.5"), 0, 0)}, "c")) ==
        "dnat to 10.244.1.5 comment \"c\"");
  CHECK(rule_to_nft(marked_masquerade_rule()) ==
        "meta mark & 0x00004000 == 0x00004000 meta mark set meta mark ^ 0x00004000 masquerade "
        "fully-random comment \"skiff: masquerade marked packets\"");
  CHECK(rule_to_nft(rule({{Counter{}, MetaLoad{MetaKey::kIifName, Reg::k1}}})) ==
        "counter packets 0 bytes 0 <unknown: [ meta load 6 => reg 1 ]>");
}

void add_recent_set(Batch& b) {
  Set recent;
  recent.name = "recent";
  recent.key = {SetType::kIpv4Addr};
  recent.timeout = true;
  recent.timeout_ms = 600 * 1000;
  b.add_set(recent);
  b.add_elements("recent", {Element{{ipv4_bytes(ip("10.0.0.1"))}, {}, 3600 * 1000, {}}});
  b.add_rule("filter-input",
             rule({match_ct_state(kCtStateEstablished | kCtStateRelated),
                   {load_ipv4(IpField::kDaddr), Lookup{"recent", Reg::k1, std::nullopt, true}},
                   verdict(VerdictCode::kAccept)}));
  b.add_rule("filter-input", rule({{Reject{RejectType::kIcmpUnreach, 1}}}));
}

Batch full_representative_batch() {
  Batch b = representative_batch();
  add_recent_set(b);
  return b;
}

TEST_CASE("the fake lists the representative ruleset as nft does", "[nft][fake]") {
  FakeNftTables fake;
  CHECK(fake.list().empty());
  Status s = fake.commit(full_representative_batch());
  REQUIRE(s.to_string() == "OK");
  CHECK(fake.list() == kRepresentativeListing);
  CHECK(fake.committed().size() == 1);
  CHECK(fake.sets() == std::vector<std::string>{"service-ips", "service-nodeports",
                                                "no-endpoint-services", "affinity-ep-a", "marks",
                                                "recent"});
  CHECK(fake.rules("svc-web").size() == 3);
  CHECK(fake.elements("service-ips").size() == 2);
  CHECK(fake.has_chain("ep-a"));
  CHECK(!fake.has_chain("ep-c"));
}

TEST_CASE("the fake applies the kernel's semantics, all or nothing", "[nft][fake]") {
  FakeNftTables fake;
  REQUIRE(fake.commit(full_representative_batch()).is_ok());
  const std::string before = fake.list();
  auto refused = [&](Batch b, int err, const std::string& op) {
    Status s = fake.commit(b);
    INFO(s.to_string());
    CHECK(s.os_errno() == err);
    CHECK_THAT(s.message(), Catch::StartsWith(op + ": " + std::strerror(err)));
    CHECK(fake.list() == before);  // nothing of the batch applied
  };
  Batch b(kSkiffFamily, kSkiffTable);
  auto fresh = [] { return Batch(kSkiffFamily, kSkiffTable); };

  // A chain a rule or a map element refers to cannot go.
  refused(fresh().delete_chain("mark-for-masquerade"), EBUSY,
          "delete chain ip skiff mark-for-masquerade");
  refused(fresh().delete_chain("reject-chain"), EBUSY, "delete chain ip skiff reject-chain");
  // ... unless the references go first in the same batch.
  {
    FakeNftTables f2;
    REQUIRE(f2.commit(full_representative_batch()).is_ok());
    Batch ok = fresh();
    ok.delete_elements("no-endpoint-services",
                       {key_element(service_key(ip("10.96.0.30"), kTcp, 443))});
    ok.delete_chain("reject-chain");
    CHECK(f2.commit(ok).to_string() == "OK");
    CHECK(!f2.has_chain("reject-chain"));
    CHECK(f2.elements("no-endpoint-services").empty());
  }
  // Missing targets and sets.
  refused(fresh().add_rule("services", rule({verdict(VerdictCode::kGoto, "nowhere")})), ENOENT,
          "add rule ip skiff services");
  refused(fresh().add_rule("nowhere", rule({verdict(VerdictCode::kAccept)})), ENOENT,
          "add rule ip skiff nowhere");
  refused(fresh().add_rule("services", rule({match_saddr_in_set("no-such-set")})), ENOENT,
          "add rule ip skiff services");
  refused(fresh().add_elements("service-ips", {goto_element(service_key(1, kTcp, 1), "nowhere")}),
          ENOENT, "add 1 element to set ip skiff service-ips");
  refused(fresh().add_rule("services", rule({verdict(VerdictCode::kJump, "nat-prerouting")})),
          EOPNOTSUPP, "add rule ip skiff services");
  // A set used by a rule cannot go; a dynset needs a dynamic set.
  refused(fresh().delete_set("service-ips"), EBUSY, "delete set ip skiff service-ips");
  refused(fresh().delete_set("nope"), ENOENT, "delete set ip skiff nope");
  refused(fresh().add_rule("ep-b", rule({update_set_saddr("marks")})), EOPNOTSUPP,
          "add rule ip skiff ep-b");
  // Elements: same key with other data is EEXIST, same data is fine, absent delete is ENOENT.
  Element web{
      service_key(ip("10.96.0.20"), kTcp, 80), Verdict{VerdictCode::kGoto, "svc-web"}, 0, {}};
  Element web_b = web;
  web_b.data = Verdict{VerdictCode::kGoto, "ep-b"};
  refused(fresh().add_elements("service-ips", {web_b}), EEXIST,
          "add 1 element to set ip skiff service-ips");
  refused(fresh().delete_elements("service-ips", {key_element(service_key(9, kTcp, 9))}), ENOENT,
          "delete 1 element from set ip skiff service-ips");
  // Table validation (the kernel's, at commit): dnat reached from a filter chain, a cycle.
  refused(fresh().add_rule("filter-input", rule({verdict(VerdictCode::kJump, "ep-a")})), EOPNOTSUPP,
          "add rule ip skiff filter-input");
  refused(fresh().add_elements("no-endpoint-services",
                               {goto_element(service_key(ip("10.96.0.31"), kTcp, 80), "svc-web")}),
          EOPNOTSUPP, "add 1 element to set ip skiff no-endpoint-services");
  refused(fresh().add_rule("mark-for-masquerade", rule({verdict(VerdictCode::kJump, "svc-web")})),
          EMLINK, "add rule ip skiff mark-for-masquerade");
  // A set redefined differently.
  Set other = service_ips_map();
  other.data = SetType::kMark;
  refused(fresh().add_set(other), EEXIST, "add map ip skiff service-ips");
  // A base chain with another hook.
  refused(fresh().add_chain(Chain{"nat-prerouting", BaseChain{"nat", Hook::kOutput, kPriorityDstNat,
                                                              VerdictCode::kAccept}}),
          EEXIST, "add chain ip skiff nat-prerouting");
  // The later op of a batch fails: the earlier ones are not applied either.
  Batch two = fresh();
  two.add_chain(Chain{"new-chain", std::nullopt});
  two.flush_chain("services");
  two.delete_chain("mark-for-masquerade");
  refused(two, EBUSY, "delete chain ip skiff mark-for-masquerade");
  CHECK(!fake.has_chain("new-chain"));

  size_t committed = fake.committed().size();
  CHECK(fake.commit(fresh().add_elements("service-ips", {web})).is_ok());  // same data: kept
  Batch change = fresh();
  change.delete_elements("service-ips", {web}).add_elements("service-ips", {web_b});
  CHECK(fake.commit(change).is_ok());  // change a verdict: delete + add
  CHECK(std::get<Verdict>(fake.elements("service-ips").back().data).chain == "ep-b");
  CHECK(fake.committed().size() == committed + 2);
  CHECK(fake.commit(fresh()).is_ok());  // empty: not recorded
  CHECK(fake.committed().size() == committed + 2);

  fake.fail_next_commit(kernel_error("add table ip skiff", EPERM, ""));
  CHECK(fake.commit(fresh().add_table()).code() == Code::kForbidden);
  CHECK(fake.commit(fresh().add_table()).is_ok());
  CHECK(fake.commit(Batch(Family::kIp, "other").add_table()).code() == Code::kInvalid);

  FakeNftTables empty;
  Status s = empty.commit(fresh().add_chain(Chain{"c", std::nullopt}));
  CHECK(s.os_errno() == ENOENT);  // no table
  CHECK(empty.commit(fresh().delete_table()).os_errno() == ENOENT);
  CHECK(fake.commit(fresh().delete_table()).is_ok());
  CHECK(!fake.table_exists());
  CHECK(fake.list().empty());
}

TEST_CASE("a batch prints as an nft -f script", "[nft][fake]") {
  Batch b(kSkiffFamily, kSkiffTable);
  b.add_table();
  b.add_set(affinity_set("aff"));
  b.add_set(service_ips_map());
  b.add_chain(Chain{"pre", BaseChain{"nat", Hook::kPrerouting, -100, VerdictCode::kAccept}});
  b.add_chain(Chain{"svc", std::nullopt});
  b.add_rule("svc", rule({reject_tcp_reset()}, "no endpoints"));
  b.add_elements("service-ips", {goto_element(service_key(ip("10.96.0.1"), kTcp, 443), "svc")});
  b.delete_elements("service-ips", {key_element(service_key(ip("10.96.0.1"), kTcp, 443))});
  b.add_elements("service-nodeports",
                 {Element{proto_port_key(kUdp, 30053), Verdict{VerdictCode::kDrop}, 0, {}}});
  b.flush_chain("svc").delete_chain("svc").flush_set("aff").delete_set("aff");
  // Maps are flushed and deleted as `map` (nft refuses `flush set` on a map): one defined in the
  // batch, and one known only from known_sets.
  b.flush_set("service-ips").flush_set("service-nodeports").delete_set("service-ips");
  CHECK(batch_to_nft_script(b, {nodeports_map()}) ==
        "add table ip skiff\n"
        "add set ip skiff aff { type ipv4_addr; flags dynamic,timeout; timeout 3h; }\n"
        "add map ip skiff service-ips { type ipv4_addr . inet_proto . inet_service : verdict; "
        "comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\"; }\n"
        "add chain ip skiff pre { type nat hook prerouting priority -100; policy accept; }\n"
        "add chain ip skiff svc\n"
        "add rule ip skiff svc reject with tcp reset comment \"no endpoints\"\n"
        "add element ip skiff service-ips { 10.96.0.1 . tcp . 443 : goto svc }\n"
        "delete element ip skiff service-ips { 10.96.0.1 . tcp . 443 }\n"
        "add element ip skiff service-nodeports { udp . 30053 : drop }\n"
        "flush chain ip skiff svc\n"
        "delete chain ip skiff svc\n"
        "flush set ip skiff aff\n"
        "delete set ip skiff aff\n"
        "flush map ip skiff service-ips\n"
        "flush map ip skiff service-nodeports\n"
        "delete map ip skiff service-ips\n");
}

// The constructs of the service proxy's set-dispatch layout: typeof maps keyed by a random slot
// with concatenated (address . port) data, `dnat ip to ... map`, concatenated sets, fib saddr.
Batch set_dispatch_batch() {
  Batch b(kSkiffFamily, kSkiffTable);
  b.add_table();
  using T = TypeofExpr;
  b.add_set(typeof_map("service-endpoints", {T::kIpDaddr, T::kMetaL4proto, T::kThDport, T::kNumgen},
                       {T::kIpDaddr, T::kThDport}));
  b.add_set(typeof_map("nodeport-endpoints", {T::kMetaL4proto, T::kThDport, T::kNumgen},
                       {T::kIpDaddr, T::kThDport}));
  Set all2;
  all2.name = "all-2";
  all2.key = {SetType::kIpv4Addr, SetType::kInetProto, SetType::kInetService};
  b.add_set(all2);
  Set hairpin;
  hairpin.name = "hairpin";
  hairpin.key = {SetType::kIpv4Addr, SetType::kIpv4Addr};
  b.add_set(hairpin);
  Set npset;
  npset.name = "np-elocal-1";
  npset.key = {SetType::kInetProto, SetType::kInetService};
  b.add_set(npset);
  b.add_chain(Chain{"nat-prerouting",
                    BaseChain{"nat", Hook::kPrerouting, kPriorityDstNat, VerdictCode::kAccept}});
  b.add_chain(Chain{"nat-hairpin", BaseChain{"nat", Hook::kPostrouting, kPrioritySrcNat - 1,
                                             VerdictCode::kAccept}});
  b.add_chain(Chain{"services", std::nullopt});
  b.add_chain(Chain{"pick-2", std::nullopt});
  b.add_chain(Chain{"np-pick-local-1", std::nullopt});
  for (uint8_t p : {kTcp, kUdp, kSctp}) {
    b.add_rule("pick-2", rule({dnat_numgen_map("service-endpoints", true, p, 2, 0)}));
    b.add_rule("np-pick-local-1",
               rule({dnat_numgen_map("nodeport-endpoints", false, p, 1, 65536)}));
  }
  b.add_rule("services",
             rule({match_daddr_proto_port_in("all-2"), verdict(VerdictCode::kGoto, "pick-2")}));
  b.add_rule("services",
             rule({match_ipv4(IpField::kSaddr, *parse_ipv4_prefix("10.244.0.0/16"), true),
                   match_fib_saddr_local(true), match_proto_port_in("np-elocal-1"),
                   verdict(VerdictCode::kGoto, "np-pick-local-1")}));
  b.add_rule("nat-prerouting", rule({verdict(VerdictCode::kJump, "services")}));
  b.add_rule("nat-hairpin", rule({match_ct_status(kCtStatusDnat), match_saddr_daddr_in("hairpin"),
                                  set_mark_bits(0x4000)}));
  auto ep = [](const char* a, uint16_t port) {
    return concat_bytes({ipv4_bytes(ip(a)), port_bytes(port)});
  };
  std::vector<Element> slots;
  for (uint32_t slot : {0u, 1u, 65536u}) {
    std::vector<Bytes> key = service_key(ip("10.96.0.10"), kTcp, 80);
    key.push_back(u32_key(slot));
    slots.push_back(Element{key, ep(slot == 1 ? "10.244.2.3" : "10.244.1.2", 8080), 0, {}});
  }
  b.add_elements("service-endpoints", slots);
  std::vector<Bytes> np = proto_port_key(kUdp, 30053);
  np.push_back(u32_key(65536));
  b.add_elements("nodeport-endpoints", {Element{np, ep("10.244.1.2", 53), 0, {}}});
  b.add_elements("all-2", {key_element(service_key(ip("10.96.0.10"), kTcp, 80))});
  b.add_elements("hairpin",
                 {key_element({ipv4_bytes(ip("10.244.1.2")), ipv4_bytes(ip("10.244.1.2"))})});
  b.add_elements("np-elocal-1", {key_element(proto_port_key(kUdp, 30053))});
  return b;
}

const char* const kSetDispatchListing = R"(table ip skiff {
	map service-endpoints {
		typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport
		elements = { 10.96.0.10 . tcp . 80 . 0 : 10.244.1.2 . 8080,
			     10.96.0.10 . tcp . 80 . 1 : 10.244.2.3 . 8080,
			     10.96.0.10 . tcp . 80 . 65536 : 10.244.1.2 . 8080 }
	}

	map nodeport-endpoints {
		typeof meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport
		elements = { udp . 30053 . 65536 : 10.244.1.2 . 53 }
	}

	set all-2 {
		type ipv4_addr . inet_proto . inet_service
		elements = { 10.96.0.10 . tcp . 80 }
	}

	set hairpin {
		type ipv4_addr . ipv4_addr
		elements = { 10.244.1.2 . 10.244.1.2 }
	}

	set np-elocal-1 {
		type inet_proto . inet_service
		elements = { udp . 30053 }
	}

	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}

	chain nat-hairpin {
		type nat hook postrouting priority srcnat - 1; policy accept;
		ct status dnat ip saddr . ip daddr @hairpin meta mark set meta mark | 0x00004000
	}

	chain services {
		ip daddr . meta l4proto . th dport @all-2 goto pick-2
		ip saddr != 10.244.0.0/16 fib saddr type != local meta l4proto . th dport @np-elocal-1 goto np-pick-local-1
	}

	chain pick-2 {
		dnat ip to ip daddr . meta l4proto . tcp dport . numgen random mod 2 map @service-endpoints
		dnat ip to ip daddr . meta l4proto . udp dport . numgen random mod 2 map @service-endpoints
		dnat ip to ip daddr . meta l4proto . sctp dport . numgen random mod 2 map @service-endpoints
	}

	chain np-pick-local-1 {
		dnat ip to meta l4proto . tcp dport . numgen random mod 1 offset 65536 map @nodeport-endpoints
		dnat ip to meta l4proto . udp dport . numgen random mod 1 offset 65536 map @nodeport-endpoints
		dnat ip to meta l4proto . sctp dport . numgen random mod 1 offset 65536 map @nodeport-endpoints
	}
}
)";

TEST_CASE("the fake lists the set-dispatch constructs as nft does", "[nft][fake]") {
  FakeNftTables fake;
  REQUIRE(fake.commit(set_dispatch_batch()).to_string() == "OK");
  CHECK(fake.list() == kSetDispatchListing);
  // Element data must be the concatenation's 8 bytes; a key without its slot does not fit.
  Batch bad(kSkiffFamily, kSkiffTable);
  bad.add_elements("service-endpoints",
                   {Element{service_key(ip("10.96.0.11"), kTcp, 80), ipv4_bytes(1), 0, {}}});
  CHECK(fake.commit(bad).os_errno() == EINVAL);
  // Changing a slot's endpoint is delete + add (re-adding the key with other data is EEXIST).
  std::vector<Bytes> key = service_key(ip("10.96.0.10"), kTcp, 80);
  key.push_back(u32_key(1));
  Element moved{key, concat_bytes({ipv4_bytes(ip("10.244.3.4")), port_bytes(8080)}), 0, {}};
  Batch clash(kSkiffFamily, kSkiffTable);
  clash.add_elements("service-endpoints", {moved});
  CHECK(fake.commit(clash).os_errno() == EEXIST);
  Batch change(kSkiffFamily, kSkiffTable);
  change.delete_elements("service-endpoints", {key_element(key)});
  change.add_elements("service-endpoints", {moved});
  REQUIRE(fake.commit(change).to_string() == "OK");
  CHECK(fake.list().find("10.96.0.10 . tcp . 80 . 1 : 10.244.3.4 . 8080") != std::string::npos);
  // A typeof that does not match the key types is refused before sending.
  Set wrong = typeof_map("x", {TypeofExpr::kIpDaddr, TypeofExpr::kThDport}, {});
  wrong.key.pop_back();
  Batch w(kSkiffFamily, kSkiffTable);
  w.add_set(wrong);
  CHECK(fake.commit(w).code() == Code::kInvalid);
  // The nft -f form of the declaration and of an element.
  std::string script = batch_to_nft_script(set_dispatch_batch());
  CHECK_THAT(script, Catch::Contains("add map ip skiff service-endpoints { typeof ip daddr . meta "
                                     "l4proto . th dport . numgen random mod 1 : ip daddr . th "
                                     "dport; }"));
  CHECK_THAT(script, Catch::Contains("add element ip skiff nodeport-endpoints { udp . 30053 . "
                                     "65536 : 10.244.1.2 . 53 }"));
}

TEST_CASE("listings normalise whitespace, element order, counters and expiry", "[nft][fake]") {
  CHECK(normalize_listing("table ip t {\n\tset s {\n\t\telements = { b expires 1s, a,\n\t\t\t c "
                          "expires 2s }\n\t}\n\tchain c {\n\t\tcounter packets 5 bytes 300 "
                          "accept\n\t}\n}\n") ==
        "table ip t { set s { elements = { a, b, c } } chain c { counter accept } }");
}

// ---------------------------------------------------------------- kernel (root)

using skiff::testing::PrivateNetns;
using skiff::testing::Run;
using skiff::testing::sh;

std::string kernel_unavailable() {
  if (geteuid() != 0) return "needs root (network namespaces, nftables)";
  if (sh("command -v nft").status != 0) return "the nft binary (to read back) is missing";
  return "";
}

// Enters a fresh network namespace with nf_tables working, or says why not (then skip).
std::string enter_kernel(PrivateNetns& ns, std::unique_ptr<NftnlTables>& t) {
  if (!ns.error().empty()) return ns.error();
  auto opened = NftnlTables::open();
  if (!opened) return opened.status().to_string();
  Batch probe(kSkiffFamily, "skiff-probe");
  probe.add_table().delete_table();
  if (Status s = opened.value()->commit(probe); !s)
    return "nf_tables unavailable: " + s.to_string();
  t = std::move(opened.value());
  return "";
}

std::string kernel_listing() { return sh("nft list table ip skiff").out; }

// Commits to both and requires the same outcome; returns the kernel's status.
Status commit_both(NftTables& kernel, FakeNftTables& fake, const Batch& b) {
  Status k = kernel.commit(b);
  Status f = fake.commit(b);
  INFO("kernel: " << k.to_string() << "\nfake: " << f.to_string());
  CHECK(k.os_errno() == f.os_errno());
  CHECK(k.is_ok() == f.is_ok());
  if (!k.is_ok()) {
    // The same operation is blamed (the kernel may add its extended-ack text).
    CHECK_THAT(k.message(), Catch::StartsWith(f.message()));
  }
  return k;
}

void check_same(const FakeNftTables& fake) {
  std::string kernel = kernel_listing();
  INFO("kernel:\n" << kernel << "\nfake:\n" << fake.list());
  CHECK(normalize_listing(kernel) == normalize_listing(fake.list()));
}

TEST_CASE("the kernel lists what the fake lists; refused batches change nothing", "[nft][root]") {
  if (std::string why = kernel_unavailable(); !why.empty()) {
    testing::skip(why);
    return;
  }
  PrivateNetns ns;
  std::unique_ptr<NftnlTables> kernel;
  if (std::string why = enter_kernel(ns, kernel); !why.empty()) {
    testing::skip(why);
    return;
  }
  FakeNftTables fake;
  REQUIRE(commit_both(*kernel, fake, full_representative_batch()).to_string() == "OK");
  REQUIRE(commit_both(*kernel, fake, masquerade_batch(*parse_ipv4_prefix("10.244.0.0/16")))
              .to_string() == "OK");
  check_same(fake);
  // The fake's text was pinned above; the kernel's matches it too (before masquerade).
  CHECK_THAT(
      normalize_listing(kernel_listing()),
      Catch::StartsWith(normalize_listing(
          std::string(kRepresentativeListing).substr(0, std::strlen(kRepresentativeListing) - 2))));
  CHECK_THAT(kernel_listing(),
             Catch::Contains("meta mark & 0x00004000 == 0x00004000 meta mark set meta mark ^ "
                             "0x00004000 masquerade fully-random"));

  SECTION("incremental changes") {
    // A new service with one endpoint, svc-web down to one endpoint (ep-b goes), a port gone.
    Batch b(kSkiffFamily, kSkiffTable);
    b.add_chain(Chain{"ep-c", std::nullopt}).add_chain(Chain{"svc-new", std::nullopt});
    b.add_rule("ep-c", rule({dnat_to(ip("10.244.3.9"), 9090, kTcp)}));
    b.add_rule("svc-new", rule({verdict(VerdictCode::kGoto, "ep-c")}));
    b.add_elements("service-ips",
                   {goto_element(service_key(ip("10.96.0.40"), kTcp, 8080), "svc-new")});
    b.flush_chain("svc-web");
    b.add_rule("svc-web", rule({numgen_vmap_goto({"ep-a"})}, "web"));
    b.flush_chain("ep-b").delete_chain("ep-b");
    b.delete_elements("service-ips", {key_element(service_key(ip("10.96.0.21"), kUdp, 53))});
    REQUIRE(commit_both(*kernel, fake, b).to_string() == "OK");
    check_same(fake);
    CHECK_THAT(kernel_listing(), Catch::Contains("numgen random mod 1 vmap { 0 : goto ep-a }"));
    CHECK_THAT(kernel_listing(), !Catch::Contains("ep-b"));
    // Change a verdict in place: delete + add in one batch.
    Batch c(kSkiffFamily, kSkiffTable);
    Element key{service_key(ip("10.96.0.40"), kTcp, 8080), {}, 0, {}};
    c.delete_elements("service-ips", {key});
    key.data = Verdict{VerdictCode::kGoto, "svc-web"};
    c.add_elements("service-ips", {key});
    REQUIRE(commit_both(*kernel, fake, c).to_string() == "OK");
    check_same(fake);
    // Re-adding an element with the same data is accepted and changes nothing.
    REQUIRE(commit_both(*kernel, fake,
                        Batch(kSkiffFamily, kSkiffTable).add_elements("service-ips", {key}))
                .to_string() == "OK");
    check_same(fake);
    // The last three batches are what the fake recorded.
    REQUIRE(fake.committed().size() == 5);
    CHECK(describe_all(fake.committed()[3]) ==
          std::vector<std::string>{"delete 1 element from set ip skiff service-ips",
                                   "add 1 element to set ip skiff service-ips"});
  }

  SECTION("refused batches leave the previous ruleset") {
    // Normalised: the element expiry counts down between listings.
    const std::string before = normalize_listing(kernel_listing());
    auto refused = [&](const Batch& b, int err) {
      Status s = commit_both(*kernel, fake, b);
      CHECK(s.os_errno() == err);
      CHECK(normalize_listing(kernel_listing()) == before);
      check_same(fake);
    };
    Batch missing(kSkiffFamily, kSkiffTable);
    missing.add_chain(Chain{"svc-x", std::nullopt});
    missing.add_elements("service-ips",
                         {goto_element(service_key(ip("10.96.0.50"), kTcp, 80), "svc-x")});
    missing.add_rule("svc-x", rule({verdict(VerdictCode::kGoto, "no-such-endpoint")}));
    refused(missing, ENOENT);
    Batch busy(kSkiffFamily, kSkiffTable);
    busy.flush_chain("services").delete_chain("ep-b");  // svc-web's anonymous map uses it
    refused(busy, EBUSY);
    Batch busy_set(kSkiffFamily, kSkiffTable);
    busy_set.delete_set("service-nodeports");
    refused(busy_set, EBUSY);
    Batch clash(kSkiffFamily, kSkiffTable);
    clash.add_elements("service-ips",
                       {goto_element(service_key(ip("10.96.0.20"), kTcp, 80), "ep-b")});
    refused(clash, EEXIST);
    Batch gone(kSkiffFamily, kSkiffTable);
    gone.delete_elements("service-ips", {key_element(service_key(1, kTcp, 1))});
    refused(gone, ENOENT);
    // Table validation: what a base chain reaches must be allowed in it.
    refused(Batch(kSkiffFamily, kSkiffTable)
                .add_rule("filter-input", rule({verdict(VerdictCode::kJump, "ep-a")})),
            EOPNOTSUPP);  // dnat reached from a filter chain
    refused(Batch(kSkiffFamily, kSkiffTable)
                .add_elements("no-endpoint-services",
                              {goto_element(service_key(ip("10.96.0.31"), kTcp, 80), "svc-web")}),
            EOPNOTSUPP);  // the same through a verdict map element
    refused(Batch(kSkiffFamily, kSkiffTable)
                .add_rule("reject-chain", rule({dnat_to(ip("10.244.9.9"), 80, kTcp)})),
            EOPNOTSUPP);  // a dnat added to a chain the filter chain reaches
    refused(Batch(kSkiffFamily, kSkiffTable).add_rule("nat-prerouting", rule({{Masquerade{}}})),
            EOPNOTSUPP);
    refused(Batch(kSkiffFamily, kSkiffTable)
                .add_rule("postrouting", rule({verdict(VerdictCode::kJump, "reject-chain")})),
            EOPNOTSUPP);  // reject from postrouting
    refused(Batch(kSkiffFamily, kSkiffTable)
                .add_rule("mark-for-masquerade", rule({verdict(VerdictCode::kJump, "svc-web")})),
            EMLINK);  // a jump cycle
    Batch redefine(kSkiffFamily, kSkiffTable);
    Set other = service_ips_map();
    other.key = {SetType::kIpv4Addr};
    redefine.add_set(other);
    refused(redefine, EEXIST);
    // Deleting the references first makes the same deletes work.
    Batch ok(kSkiffFamily, kSkiffTable);
    ok.flush_chain("svc-web").delete_chain("ep-b");
    ok.delete_elements("no-endpoint-services",
                       {key_element(service_key(ip("10.96.0.30"), kTcp, 443))});
    ok.delete_chain("reject-chain");
    REQUIRE(commit_both(*kernel, fake, ok).to_string() == "OK");
    check_same(fake);
  }

  SECTION("the same ruleset through nft -f") {
    std::string script = batch_to_nft_script(full_representative_batch()) +
                         batch_to_nft_script(masquerade_batch(*parse_ipv4_prefix("10.244.0.0/16")));
    std::string path = "/tmp/skiff-nft-test-" + std::to_string(getpid()) + ".nft";
    FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f);
    std::fputs(script.c_str(), f);
    std::fclose(f);
    PrivateNetns inner;  // another empty namespace
    REQUIRE(inner.error().empty());
    Run r = sh("nft -f " + path);
    std::remove(path.c_str());
    INFO(script << r.out);
    REQUIRE(r.status == 0);
    check_same(fake);
  }
}

TEST_CASE("the kernel lists the set-dispatch constructs as the fake does", "[nft][root]") {
  if (std::string why = kernel_unavailable(); !why.empty()) {
    testing::skip(why);
    return;
  }
  PrivateNetns ns;
  std::unique_ptr<NftnlTables> kernel;
  if (std::string why = enter_kernel(ns, kernel); !why.empty()) {
    testing::skip(why);
    return;
  }
  FakeNftTables fake;
  REQUIRE(commit_both(*kernel, fake, set_dispatch_batch()).to_string() == "OK");
  CHECK(normalize_listing(kernel_listing()) == normalize_listing(kSetDispatchListing));
  check_same(fake);

  SECTION("slot changes, a clash and an absent element") {
    std::vector<Bytes> key = service_key(ip("10.96.0.10"), kTcp, 80);
    key.push_back(u32_key(1));
    Element moved{key, concat_bytes({ipv4_bytes(ip("10.244.3.4")), port_bytes(8080)}), 0, {}};
    Batch clash(kSkiffFamily, kSkiffTable);
    clash.add_elements("service-endpoints", {moved});
    CHECK(commit_both(*kernel, fake, clash).os_errno() == EEXIST);
    Batch change(kSkiffFamily, kSkiffTable);
    change.delete_elements("service-endpoints", {key_element(key)});
    change.add_elements("service-endpoints", {moved});
    change.delete_elements(
        "hairpin", {key_element({ipv4_bytes(ip("10.244.1.2")), ipv4_bytes(ip("10.244.1.2"))})});
    REQUIRE(commit_both(*kernel, fake, change).to_string() == "OK");
    check_same(fake);
    Batch absent(kSkiffFamily, kSkiffTable);
    absent.delete_elements("all-2", {key_element(service_key(ip("10.96.9.9"), kTcp, 80))});
    CHECK(commit_both(*kernel, fake, absent).os_errno() == ENOENT);
    check_same(fake);
  }

  SECTION("the same ruleset through nft -f") {
    std::string path = "/tmp/skiff-nft-test-l3-" + std::to_string(getpid()) + ".nft";
    FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f);
    std::fputs(batch_to_nft_script(set_dispatch_batch()).c_str(), f);
    std::fclose(f);
    PrivateNetns inner;
    REQUIRE(inner.error().empty());
    Run r = sh("nft -f " + path);
    std::remove(path.c_str());
    INFO(r.out);
    REQUIRE(r.status == 0);
    check_same(fake);
  }
}

TEST_CASE("10,000 map elements in one batch, then 5,000 deleted in one", "[nft][root]") {
  if (std::string why = kernel_unavailable(); !why.empty()) {
    testing::skip(why);
    return;
  }
  PrivateNetns ns;
  std::unique_ptr<NftnlTables> kernel;
  if (std::string why = enter_kernel(ns, kernel); !why.empty()) {
    testing::skip(why);
    return;
  }
  FakeNftTables fake;
  Batch b(kSkiffFamily, kSkiffTable);
  b.add_table().add_set(service_ips_map()).add_chain(Chain{"svc-0", std::nullopt});
  std::vector<Element> elements;
  for (uint32_t i = 0; i < 10000; ++i) {
    elements.push_back(goto_element(
        service_key(ip("10.96.0.0") + i, i % 2 ? kUdp : kTcp, static_cast<uint16_t>(1 + i % 60000)),
        "svc-0"));
  }
  b.add_elements("service-ips", elements);
  REQUIRE(commit_both(*kernel, fake, b).to_string() == "OK");
  Run count = sh("nft list map ip skiff service-ips | grep -o 'goto svc-0' | wc -l");
  CHECK(count.out == "10000\n");
  check_same(fake);
  Batch d(kSkiffFamily, kSkiffTable);
  d.delete_elements("service-ips", std::vector<Element>(elements.begin(), elements.begin() + 5000));
  REQUIRE(commit_both(*kernel, fake, d).to_string() == "OK");
  count = sh("nft list map ip skiff service-ips | grep -o 'goto svc-0' | wc -l");
  CHECK(count.out == "5000\n");
  check_same(fake);
  // A refused element at the end of a large batch: none of it applied.
  Batch bad(kSkiffFamily, kSkiffTable);
  bad.flush_set("service-ips");
  bad.add_elements("service-ips", {goto_element(service_key(1, kTcp, 1), "nowhere")});
  Status s = commit_both(*kernel, fake, bad);
  CHECK(s.os_errno() == ENOENT);
  CHECK_THAT(s.message(), Catch::StartsWith("add 1 element to set ip skiff service-ips: No such "
                                            "file or directory"));
  count = sh("nft list map ip skiff service-ips | grep -o 'goto svc-0' | wc -l");
  CHECK(count.out == "5000\n");
}

// Not run by default: timings of a kube-proxy-sized ruleset (SKIFF_NFT_PERF_SERVICES services,
// default 10,000, x 5 endpoints) through NftnlTables, the fake, and `nft -f` of the same
// script. Prints figures; asserts only that everything is applied.
TEST_CASE("ruleset programming figures", "[.][perf]") {
  if (std::string why = kernel_unavailable(); !why.empty()) {
    testing::skip(why);
    return;
  }
  const char* env = std::getenv("SKIFF_NFT_PERF_SERVICES");
  const int services = env ? std::atoi(env) : 10000;
  auto now = [] { return std::chrono::steady_clock::now(); };
  auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
  Batch b(kSkiffFamily, kSkiffTable);
  b.add_table().add_set(service_ips_map());
  b.add_chain(Chain{"mark-for-masquerade", std::nullopt});
  b.add_rule("mark-for-masquerade", rule({set_mark_bits(kMasqueradeMark)}));
  std::vector<Element> elements;
  for (int s = 0; s < services; ++s) {
    std::string svc = "service-" + std::to_string(s) + "-default-web-http";
    std::vector<std::string> eps;
    for (int e = 0; e < 5; ++e) {
      std::string ep = "endpoint-" + std::to_string(s) + "-" + std::to_string(e) + "-default-web";
      uint32_t addr = ip("10.244.0.0") + static_cast<uint32_t>(s * 5 + e);
      b.add_chain(Chain{ep, std::nullopt});
      b.add_rule(ep, rule({match_ipv4(IpField::kSaddr, {addr, 32}),
                           verdict(VerdictCode::kJump, "mark-for-masquerade")}));
      b.add_rule(ep, rule({dnat_to(addr, 8080, kTcp)}));
      eps.push_back(ep);
    }
    b.add_chain(Chain{svc, std::nullopt});
    b.add_rule(svc, rule({match_ipv4(IpField::kSaddr, {ip("10.244.0.0"), 16}, true),
                          verdict(VerdictCode::kJump, "mark-for-masquerade")}));
    const char* mode = std::getenv("SKIFF_NFT_PERF_VMAP");  // inline (default), named, none
    if (mode && std::string(mode) == "none") {
      b.add_rule(svc, rule({verdict(VerdictCode::kGoto, eps[0])}));
    } else if (mode && std::string(mode) == "named") {
      Set m;
      m.name = svc + "-endpoints";
      m.key = {SetType::kInteger};
      m.data = SetType::kVerdict;
      b.add_set(m);
      std::vector<Element> el;
      for (size_t e = 0; e < eps.size(); ++e) {
        el.push_back(goto_element({u32_key(static_cast<uint32_t>(e))}, eps[e]));
      }
      b.add_elements(m.name, el);
      b.add_rule(svc,
                 rule({{Numgen{5, 0, Reg::k1}, Lookup{m.name, Reg::k1, Reg::kVerdict, false}}}));
    } else {
      b.add_rule(svc, rule({numgen_vmap_goto(eps)}));
    }
    elements.push_back(
        goto_element(service_key(ip("10.96.0.0") + static_cast<uint32_t>(s), kTcp, 80), svc));
  }
  b.add_elements("service-ips", elements);
  b.add_chain(Chain{"services", std::nullopt});
  b.add_rule("services", rule({vmap_daddr_proto_port("service-ips")}));
  b.add_chain(Chain{"nat-prerouting",
                    BaseChain{"nat", Hook::kPrerouting, kPriorityDstNat, VerdictCode::kAccept}});
  b.add_rule("nat-prerouting", rule({verdict(VerdictCode::kJump, "services")}));

  auto t0 = now();
  auto enc = b.encode(1);
  auto t1 = now();
  REQUIRE(enc.is_ok());
  std::printf("%d services: %zu ops, %zu bytes encoded in %.1f ms\n", services, b.ops().size(),
              enc.value().size(), ms(t1 - t0));
  FakeNftTables fake;
  t0 = now();
  REQUIRE(fake.commit(b).is_ok());
  t1 = now();
  std::printf("fake cold commit: %.1f ms\n", ms(t1 - t0));
  Batch one(kSkiffFamily, kSkiffTable);
  one.flush_chain("endpoint-7-0-default-web");
  one.add_rule("endpoint-7-0-default-web", rule({dnat_to(ip("10.244.200.1"), 8080, kTcp)}));
  t0 = now();
  REQUIRE(fake.commit(one).is_ok());
  t1 = now();
  std::printf("fake one-endpoint change: %.1f ms\n", ms(t1 - t0));
  {
    PrivateNetns ns;
    std::unique_ptr<NftnlTables> kernel;
    REQUIRE(enter_kernel(ns, kernel).empty());
    t0 = now();
    Status st = kernel->commit(b);
    t1 = now();
    REQUIRE(st.to_string() == "OK");
    std::printf("NftnlTables cold commit: %.1f ms\n", ms(t1 - t0));
    t0 = now();
    REQUIRE(kernel->commit(one).is_ok());
    t1 = now();
    std::printf("NftnlTables one-endpoint change: %.1f ms\n", ms(t1 - t0));
    Batch noop(kSkiffFamily, kSkiffTable);
    noop.add_table();
    t0 = now();
    REQUIRE(kernel->commit(noop).is_ok());
    t1 = now();
    std::printf("NftnlTables add table (no-op): %.1f ms\n", ms(t1 - t0));
    Batch elem(kSkiffFamily, kSkiffTable);
    elem.add_elements("service-ips", {goto_element(service_key(ip("10.97.0.1"), kTcp, 80),
                                                   "service-3-default-web-http")});
    t0 = now();
    REQUIRE(kernel->commit(elem).is_ok());
    t1 = now();
    std::printf("NftnlTables one map element: %.1f ms\n", ms(t1 - t0));
    std::string path = "/tmp/skiff-nft-perf1-" + std::to_string(getpid()) + ".nft";
    FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f);
    std::fputs(batch_to_nft_script(one).c_str(), f);
    std::fclose(f);
    t0 = now();
    Run r = sh("nft -f " + path);
    t1 = now();
    std::remove(path.c_str());
    REQUIRE(r.status == 0);
    std::printf("nft -f one-endpoint change: %.1f ms\n", ms(t1 - t0));
  }
  if (const char* nft = std::getenv("SKIFF_NFT_PERF_NFT"); !nft || std::string(nft) != "0") {
    std::string path = "/tmp/skiff-nft-perf-" + std::to_string(getpid()) + ".nft";
    t0 = now();
    std::string script = batch_to_nft_script(b);
    t1 = now();
    std::printf("nft script: %zu bytes in %.1f ms\n", script.size(), ms(t1 - t0));
    FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f);
    std::fputs(script.c_str(), f);
    std::fclose(f);
    PrivateNetns ns;
    t0 = now();
    Run r = sh("nft -f " + path);
    t1 = now();
    std::remove(path.c_str());
    REQUIRE(r.status == 0);
    std::printf("nft -f cold: %.1f ms\n", ms(t1 - t0));
  }
}

}  // namespace
}  // namespace skiff::nft
