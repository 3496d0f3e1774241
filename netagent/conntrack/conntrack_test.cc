// Unit tests of the ctnetlink messages and the entry selection (pure), plus a kernel test that
// runs as root in a private network namespace (skipped otherwise): real UDP traffic through a
// DNAT rule makes an entry, cleanup deletes exactly it.
#include "netagent/conntrack/conntrack.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "test/netns.h"
#include "test/testing.h"

namespace skiff::conntrack {
namespace {

uint32_t ip(const char* s) { return *parse_ip(s); }

Entry udp_entry(const char* client, uint16_t cport, const char* svc, uint16_t sport, const char* ep,
                uint16_t eport) {
  Entry e;
  e.proto = kProtoUdp;
  e.orig = {ip(client), ip(svc), cport, sport};
  e.reply = {ip(ep), ip(client), eport, cport};
  return e;
}

const nlmsghdr* hdr(const std::vector<uint8_t>& m) {
  return reinterpret_cast<const nlmsghdr*>(m.data());
}

// The types of the top-level attributes, in order.
std::vector<int> top_types(const nlmsghdr* nlh) {
  std::vector<int> types;
  const auto* attr =
      static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
  const char* end = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
  while (mnl_attr_ok(attr, end - reinterpret_cast<const char*>(attr))) {
    types.push_back(mnl_attr_get_type(attr));
    attr = mnl_attr_next(attr);
  }
  return types;
}

// ---------------------------------------------------------------- pure

TEST_CASE("addresses parse and print in host byte order", "[conntrack]") {
  CHECK(parse_ip("10.96.0.10") == 0x0a60000au);
  CHECK_FALSE(parse_ip("10.96.0"));
  CHECK_FALSE(parse_ip("10.96.0.256"));
  CHECK(ip_string(0x0af40107u) == "10.244.1.7");
  CHECK(to_string(IpPort{0x0a60000au, 53}) == "10.96.0.10:53");
  CHECK(to_string(udp_entry("10.0.0.1", 1234, "10.96.0.5", 53, "10.244.1.7", 5353)) ==
        "udp 10.0.0.1:1234 -> 10.96.0.5:53 reply 10.244.1.7:5353 -> 10.0.0.1:1234");
}

TEST_CASE("the dump request asks ctnetlink for the IPv4 table", "[conntrack]") {
  auto m = dump_request(7);
  const nlmsghdr* nlh = hdr(m);
  CHECK(m.size() == nlh->nlmsg_len);
  CHECK(nlh->nlmsg_type == ((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET));
  CHECK((nlh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP);
  CHECK((nlh->nlmsg_flags & NLM_F_REQUEST) != 0);
  CHECK(nlh->nlmsg_seq == 7u);
  const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  CHECK(nfg->nfgen_family == AF_INET);
  CHECK(nfg->version == NFNETLINK_V0);
  CHECK(nlh->nlmsg_len == NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg)));
}

TEST_CASE("an entry survives the kernel's message layout", "[conntrack]") {
  Entry e = udp_entry("10.244.2.5", 40000, "10.96.0.20", 53, "10.244.1.7", 5353);
  e.id = 0xdeadbeef;
  e.zone = 3;
  auto m = entry_message(e, 1);
  auto back = parse_entry(hdr(m));
  REQUIRE(back);
  CHECK(*back == e);
  // Without zone and id.
  Entry plain = udp_entry("1.2.3.4", 1, "5.6.7.8", 2, "9.10.11.12", 3);
  auto b2 = parse_entry(hdr(entry_message(plain, 2)));
  REQUIRE(b2);
  CHECK(*b2 == plain);
}

TEST_CASE("messages that are not IPv4 ctnetlink entries are ignored", "[conntrack]") {
  Entry e = udp_entry("10.244.2.5", 40000, "10.96.0.20", 53, "10.244.1.7", 5353);
  auto m = entry_message(e, 1);
  auto* nlh = reinterpret_cast<nlmsghdr*>(m.data());
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  nfg->nfgen_family = AF_INET6;
  CHECK_FALSE(parse_entry(nlh));
  nfg->nfgen_family = AF_INET;
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK_EXP << 8) | IPCTNL_MSG_CT_NEW;
  CHECK_FALSE(parse_entry(nlh));
  // A delete request has no reply tuple: not an entry.
  CHECK_FALSE(parse_entry(hdr(delete_request(e, 1))));
}

TEST_CASE("the delete request names the original tuple, zone and id", "[conntrack]") {
  Entry e = udp_entry("10.244.2.5", 40000, "10.96.0.20", 53, "10.244.1.7", 5353);
  e.id = 42;
  e.zone = 9;
  auto m = delete_request(e, 5);
  const nlmsghdr* nlh = hdr(m);
  CHECK(nlh->nlmsg_type == ((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE));
  CHECK((nlh->nlmsg_flags & NLM_F_ACK) != 0);
  CHECK((nlh->nlmsg_flags & NLM_F_DUMP) == 0);
  // Read it back as a one-tuple message: orig + zone + id, nothing else.
  CHECK(top_types(nlh) == std::vector<int>{CTA_TUPLE_ORIG, CTA_ZONE, CTA_ID});
  // The same attributes as a full entry message carries for these fields.
  Entry with_reply = e;
  auto full = entry_message(with_reply, 5);
  auto parsed = parse_entry(hdr(full));
  REQUIRE(parsed);
  CHECK(parsed->orig == e.orig);
  // Byte for byte: the orig tuple nest is the first attribute of both.
  const auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
  const auto* b =
      static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(hdr(full), sizeof(nfgenmsg)));
  REQUIRE(a->nla_len == b->nla_len);
  CHECK(std::memcmp(a, b, a->nla_len) == 0);
  // Zero zone and id are left out (the kernel treats absent as "any id", zone 0).
  Entry bare = e;
  bare.id = 0;
  bare.zone = 0;
  auto mb = delete_request(bare, 6);
  CHECK(top_types(hdr(mb)) == std::vector<int>{CTA_TUPLE_ORIG});
}

TEST_CASE("cleanup selects entries as kube-proxy does", "[conntrack]") {
  Entry to_old = udp_entry("10.244.2.5", 40000, "10.96.0.20", 53, "10.244.1.7", 5353);
  Entry to_new = udp_entry("10.244.2.5", 40001, "10.96.0.20", 53, "10.244.1.8", 5353);
  Entry other_port = udp_entry("10.244.2.5", 40002, "10.96.0.20", 54, "10.244.1.7", 5353);
  Entry node_port = udp_entry("10.250.0.100", 5000, "10.250.0.11", 30053, "10.244.1.7", 5353);
  Entry un_natted = udp_entry("10.244.2.5", 40003, "10.96.0.30", 80, "10.96.0.30", 80);
  Entry tcp = to_old;
  tcp.proto = kProtoTcp;

  CleanupSpec none;
  CHECK(none.empty());
  CHECK_FALSE(matches(none, to_old));

  CleanupSpec gone;
  gone.service_endpoints.push_back({{ip("10.96.0.20"), 53}, {ip("10.244.1.7"), 5353}});
  CHECK(matches(gone, to_old));
  CHECK_FALSE(matches(gone, to_new));      // another endpoint
  CHECK_FALSE(matches(gone, other_port));  // another service port
  CHECK_FALSE(matches(gone, node_port));   // not through the ClusterIP
  CHECK_FALSE(matches(gone, tcp));         // TCP resets end those

  CleanupSpec np;
  np.node_port_endpoints.push_back({30053, {ip("10.244.1.7"), 5353}});
  CHECK(matches(np, node_port));
  CHECK_FALSE(matches(np, to_old));
  np.node_port_endpoints[0].endpoint.port = 5354;
  CHECK_FALSE(matches(np, node_port));

  CleanupSpec first;
  first.services.push_back({ip("10.96.0.30"), 80});
  CHECK(matches(first, un_natted));
  CHECK_FALSE(matches(first, to_old));
  first.node_ports.push_back(30053);
  CHECK(matches(first, node_port));

  CleanupSpec tcp_spec = gone;
  tcp_spec.proto = kProtoTcp;
  CHECK(matches(tcp_spec, tcp));
  CHECK_FALSE(matches(tcp_spec, to_old));
}

// ---------------------------------------------------------------- kernel (root)

using skiff::testing::PrivateNetns;
using skiff::testing::Run;
using skiff::testing::sh;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

sockaddr_in sa(const char* addr, uint16_t port) {
  sockaddr_in s{};
  s.sin_family = AF_INET;
  s.sin_port = htons(port);
  s.sin_addr.s_addr = htonl(ip(addr));
  return s;
}

int udp_bound(const char* addr, uint16_t port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  auto s = sa(addr, port);
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&s), sizeof s) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends one datagram from `from` to addr:port; true when `server` received it within 2 s.
bool udp_round(int from, const char* addr, uint16_t port, int server) {
  auto to = sa(addr, port);
  if (sendto(from, "x", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) != 1) return false;
  if (server < 0) return true;
  pollfd p{server, POLLIN, 0};
  if (poll(&p, 1, 2000) != 1) return false;
  char b[16];
  return recv(server, b, sizeof b, 0) == 1;
}

std::optional<Entry> find(Conntrack& ct, const char* dst, uint16_t dport) {
  auto all = ct.dump(kProtoUdp);
  if (!all) return std::nullopt;
  for (const auto& e : *all)
    if (e.orig.dst == ip(dst) && e.orig.dport == dport) return e;
  return std::nullopt;
}

std::string skip_reason() {
  if (geteuid() != 0) return "needs root (network namespaces, nftables, ctnetlink)";
  if (sh("command -v nft").status != 0) return "nft (nftables) is not installed";
  return "";
}

TEST_CASE("kernel: a UDP entry through a DNAT rule is found and deleted", "[conntrack][root]") {
  if (auto why = skip_reason(); !why.empty()) {
    testing::skip(why);
    return;
  }
  PrivateNetns ns;
  if (!ns.error().empty()) {
    testing::skip(ns.error());
    return;
  }
  REQUIRE(sh("ip link set lo up").status == 0);
  // A "service" 127.0.0.2:5000 DNATed to the "endpoint" 127.0.0.1:6000, as the proxy's rules
  // do for locally sent packets. A nat chain also turns conntrack on in this namespace.
  Run nft =
      sh("nft 'add table ip cttest' && "
         "nft 'add chain ip cttest out { type nat hook output priority -100; policy accept; }' && "
         "nft 'add rule ip cttest out ip daddr 127.0.0.2 udp dport 5000 dnat to 127.0.0.1:6000'");
  if (nft.status != 0) {
    testing::skip("nftables nat unavailable: " + nft.out);
    return;
  }
  auto ct = Conntrack::open();
  if (!ct) {
    testing::skip("ctnetlink unavailable: " + ct.status().to_string());
    return;
  }
  auto first = (*ct)->dump(kProtoUdp);
  if (!first) {
    testing::skip("ctnetlink dump refused: " + first.status().to_string());
    return;
  }
  CHECK(first->empty());  // a fresh namespace

  Fd server(udp_bound("127.0.0.1", 6000));
  Fd client(udp_bound("127.0.0.1", 41000));
  Fd client2(udp_bound("127.0.0.1", 41001));
  REQUIRE(server.get() >= 0);
  REQUIRE(client.get() >= 0);
  REQUIRE(client2.get() >= 0);
  REQUIRE(udp_round(client.get(), "127.0.0.2", 5000, server.get()));
  // An un-NATed flow (no rule for 127.0.0.3:5001): what a Service without endpoints leaves.
  REQUIRE(udp_round(client2.get(), "127.0.0.3", 5001, -1));

  auto e = find(**ct, "127.0.0.2", 5000);
  REQUIRE(e);
  CHECK(e->orig.src == ip("127.0.0.1"));
  CHECK(e->orig.sport == 41000);
  CHECK(e->reply.src == ip("127.0.0.1"));
  CHECK(e->reply.sport == 6000);  // the DNAT target
  CHECK(e->id != 0);
  auto raw = find(**ct, "127.0.0.3", 5001);
  REQUIRE(raw);
  CHECK(raw->reply.src == ip("127.0.0.3"));
  const bool proc = access("/proc/net/nf_conntrack", R_OK) == 0;
  if (proc) CHECK(sh("cat /proc/net/nf_conntrack").out.find("dport=5000") != std::string::npos);

  // Another endpoint of the service was removed: this entry stays.
  CleanupSpec other;
  other.service_endpoints.push_back({{ip("127.0.0.2"), 5000}, {ip("127.0.0.1"), 6001}});
  CleanupResult r;
  REQUIRE((*ct)->cleanup(other, &r));
  CHECK(r.scanned >= 2);
  CHECK(r.matched == 0);
  CHECK(find(**ct, "127.0.0.2", 5000));

  // Its endpoint was removed: deleted, and nothing else.
  CleanupSpec gone;
  gone.service_endpoints.push_back({{ip("127.0.0.2"), 5000}, {ip("127.0.0.1"), 6000}});
  REQUIRE((*ct)->cleanup(gone, &r));
  CHECK(r.matched == 1);
  CHECK(r.deleted == 1);
  CHECK_FALSE(find(**ct, "127.0.0.2", 5000));
  CHECK(find(**ct, "127.0.0.3", 5001));
  if (proc) CHECK(sh("cat /proc/net/nf_conntrack").out.find("dport=5000") == std::string::npos);

  // Deleting an entry that is already gone is not an error.
  CHECK((*ct)->remove(*e));

  // The un-NATed service got its first endpoint: its entries go.
  CleanupSpec fresh;
  fresh.services.push_back({ip("127.0.0.3"), 5001});
  REQUIRE((*ct)->cleanup(fresh, &r));
  CHECK(r.deleted == 1);
  CHECK_FALSE(find(**ct, "127.0.0.3", 5001));

  // The next packet makes a new entry, NATed as the rules now say.
  REQUIRE(udp_round(client.get(), "127.0.0.2", 5000, server.get()));
  CHECK(find(**ct, "127.0.0.2", 5000));
}

}  // namespace
}  // namespace skiff::conntrack
