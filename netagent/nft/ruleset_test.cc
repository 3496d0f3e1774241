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
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "netagent/nft/fake.h"
#include "netagent/nft/nft.h"
#include "netagent/nft/skiff_table.h"
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

  b.add_elements(
      "service-ips",
      {Element{
           service_key(ip("10.96.0.20"), kTcp, 80), Verdict{VerdictCode::kGoto, "svc-web"}, 0, {}},
       Element{service_key(ip("10.96.0.21"), kUdp, 53), Verdict{VerdictCode::kGoto, "svc-web"}, 0,
               "dns"}});
  b.add_elements(
      "service-nodeports",
      {Element{proto_port_key(kTcp, 30080), Verdict{VerdictCode::kGoto, "svc-web"}, 0, {}}});
  b.add_elements("no-endpoint-services", {Element{service_key(ip("10.96.0.30"), kTcp, 443),
                                                  Verdict{VerdictCode::kGoto, "reject-chain"},
                                                  0,
                                                  {}}});
  b.add_elements("marks", {Element{{ipv4_bytes(ip("1.2.3.4"))}, u32_key(0x10), 0, {}}});
  return b;
}

// ---------------------------------------------------------------- kernel (root)

class PrivateNetns {
 public:
  PrivateNetns() {
    saved_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (saved_ < 0) {
      error_ = std::string("open /proc/thread-self/ns/net: ") + std::strerror(errno);
    } else if (unshare(CLONE_NEWNET) != 0) {
      error_ = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
    } else {
      entered_ = true;
    }
  }
  ~PrivateNetns() {
    if (entered_ && setns(saved_, CLONE_NEWNET) != 0) {
      std::perror("setns back to the original network namespace");
      std::abort();  // the rest of the tests must not run in the wrong namespace
    }
    if (saved_ >= 0) ::close(saved_);
  }
  PrivateNetns(const PrivateNetns&) = delete;
  PrivateNetns& operator=(const PrivateNetns&) = delete;
  const std::string& error() const { return error_; }

 private:
  int saved_ = -1;
  bool entered_ = false;
  std::string error_;
};

struct Run {
  int status;
  std::string out;
};
Run sh(const std::string& cmd) {
  Run r{-1, ""};
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
  int st = pclose(f);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

TEST_CASE("print the representative ruleset from the kernel", "[.][ruleset-print]") {
  PrivateNetns ns;
  REQUIRE(ns.error().empty());
  auto t = NftnlTables::open();
  REQUIRE(t.is_ok());
  Status s = t.value()->commit(representative_batch());
  INFO(s.to_string());
  std::printf("commit: %s\n%s\n", s.to_string().c_str(), sh("nft list table ip skiff").out.c_str());
  std::printf("%s\n", sh("nft --debug=netlink list table ip skiff | head -80").out.c_str());
}

}  // namespace
}  // namespace skiff::nft
