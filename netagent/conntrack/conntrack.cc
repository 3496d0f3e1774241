#include "netagent/conntrack/conntrack.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace skiff::conntrack {

namespace {

// Room for one request: a few nested tuples.
constexpr size_t kMsgSize = 512;

nlmsghdr* put_header(std::vector<uint8_t>& buf, uint8_t msg, uint16_t flags, uint32_t seq) {
  buf.assign(kMsgSize, 0);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | msg;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  nlh->nlmsg_seq = seq;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_INET;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  return nlh;
}

void put_tuple(nlmsghdr* nlh, uint16_t type, uint8_t proto, const Tuple& t, uint16_t zone) {
  nlattr* tuple = mnl_attr_nest_start(nlh, type);
  nlattr* ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
  mnl_attr_put_u32(nlh, CTA_IP_V4_SRC, htonl(t.src));
  mnl_attr_put_u32(nlh, CTA_IP_V4_DST, htonl(t.dst));
  mnl_attr_nest_end(nlh, ip);
  nlattr* p = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
  mnl_attr_put_u8(nlh, CTA_PROTO_NUM, proto);
  mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(t.sport));
  mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(t.dport));
  mnl_attr_nest_end(nlh, p);
  if (zone != 0) mnl_attr_put_u16(nlh, CTA_TUPLE_ZONE, htons(zone));
  mnl_attr_nest_end(nlh, tuple);
}

void finish(std::vector<uint8_t>& buf, const nlmsghdr* nlh) { buf.resize(nlh->nlmsg_len); }

// Attribute tables of one nesting level, filled by mnl_attr_parse*.
template <int N>
struct Attrs {
  const nlattr* a[N + 1] = {};
  static int cb(const nlattr* attr, void* data) {
    auto* self = static_cast<Attrs*>(data);
    int type = mnl_attr_get_type(attr);
    if (type >= 0 && type <= N) self->a[type] = attr;
    return MNL_CB_OK;
  }
};

bool parse_tuple(const nlattr* nest, uint8_t* proto, Tuple* t) {
  Attrs<CTA_TUPLE_MAX> tup;
  if (mnl_attr_parse_nested(nest, Attrs<CTA_TUPLE_MAX>::cb, &tup) < 0) return false;
  if (!tup.a[CTA_TUPLE_IP] || !tup.a[CTA_TUPLE_PROTO]) return false;
  Attrs<CTA_IP_MAX> ip;
  if (mnl_attr_parse_nested(tup.a[CTA_TUPLE_IP], Attrs<CTA_IP_MAX>::cb, &ip) < 0) return false;
  // IPv6 entries carry CTA_IP_V6_*; they are not ours.
  if (!ip.a[CTA_IP_V4_SRC] || !ip.a[CTA_IP_V4_DST]) return false;
  if (mnl_attr_get_payload_len(ip.a[CTA_IP_V4_SRC]) < 4 ||
      mnl_attr_get_payload_len(ip.a[CTA_IP_V4_DST]) < 4)
    return false;
  t->src = ntohl(mnl_attr_get_u32(ip.a[CTA_IP_V4_SRC]));
  t->dst = ntohl(mnl_attr_get_u32(ip.a[CTA_IP_V4_DST]));
  Attrs<CTA_PROTO_MAX> p;
  if (mnl_attr_parse_nested(tup.a[CTA_TUPLE_PROTO], Attrs<CTA_PROTO_MAX>::cb, &p) < 0) return false;
  if (!p.a[CTA_PROTO_NUM]) return false;
  *proto = mnl_attr_get_u8(p.a[CTA_PROTO_NUM]);
  // ICMP and friends have no ports.
  if (p.a[CTA_PROTO_SRC_PORT] && mnl_attr_get_payload_len(p.a[CTA_PROTO_SRC_PORT]) >= 2)
    t->sport = ntohs(mnl_attr_get_u16(p.a[CTA_PROTO_SRC_PORT]));
  if (p.a[CTA_PROTO_DST_PORT] && mnl_attr_get_payload_len(p.a[CTA_PROTO_DST_PORT]) >= 2)
    t->dport = ntohs(mnl_attr_get_u16(p.a[CTA_PROTO_DST_PORT]));
  return true;
}

}  // namespace

std::string ip_string(uint32_t ip) {
  return std::to_string(ip >> 24) + "." + std::to_string((ip >> 16) & 0xff) + "." +
         std::to_string((ip >> 8) & 0xff) + "." + std::to_string(ip & 0xff);
}

std::optional<uint32_t> parse_ip(const std::string& s) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

std::string to_string(IpPort a) { return ip_string(a.ip) + ":" + std::to_string(a.port); }

std::string to_string(const Entry& e) {
  std::string p = e.proto == kProtoUdp   ? "udp"
                  : e.proto == kProtoTcp ? "tcp"
                                         : "proto " + std::to_string(e.proto);
  return p + " " + to_string(IpPort{e.orig.src, e.orig.sport}) + " -> " +
         to_string(IpPort{e.orig.dst, e.orig.dport}) + " reply " +
         to_string(IpPort{e.reply.src, e.reply.sport}) + " -> " +
         to_string(IpPort{e.reply.dst, e.reply.dport});
}

bool matches(const CleanupSpec& spec, const Entry& e) {
  if (e.proto != spec.proto) return false;
  const IpPort dst{e.orig.dst, e.orig.dport};
  const IpPort from{e.reply.src, e.reply.sport};
  for (const auto& se : spec.service_endpoints)
    if (se.service == dst && se.endpoint == from) return true;
  for (const auto& np : spec.node_port_endpoints)
    if (np.node_port == e.orig.dport && np.endpoint == from) return true;
  for (const auto& s : spec.services)
    if (s == dst) return true;
  for (uint16_t p : spec.node_ports)
    if (p == e.orig.dport) return true;
  return false;
}

std::vector<uint8_t> dump_request(uint32_t seq) {
  std::vector<uint8_t> buf;
  nlmsghdr* nlh = put_header(buf, IPCTNL_MSG_CT_GET, NLM_F_DUMP, seq);
  finish(buf, nlh);
  return buf;
}

std::vector<uint8_t> delete_request(const Entry& e, uint32_t seq) {
  std::vector<uint8_t> buf;
  nlmsghdr* nlh = put_header(buf, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, seq);
  put_tuple(nlh, CTA_TUPLE_ORIG, e.proto, e.orig, 0);
  if (e.zone != 0) mnl_attr_put_u16(nlh, CTA_ZONE, htons(e.zone));
  if (e.id != 0) mnl_attr_put_u32(nlh, CTA_ID, htonl(e.id));
  finish(buf, nlh);
  return buf;
}

std::vector<uint8_t> entry_message(const Entry& e, uint32_t seq) {
  std::vector<uint8_t> buf;
  nlmsghdr* nlh = put_header(buf, IPCTNL_MSG_CT_NEW, NLM_F_MULTI, seq);
  put_tuple(nlh, CTA_TUPLE_ORIG, e.proto, e.orig, 0);
  put_tuple(nlh, CTA_TUPLE_REPLY, e.proto, e.reply, 0);
  if (e.zone != 0) mnl_attr_put_u16(nlh, CTA_ZONE, htons(e.zone));
  if (e.id != 0) mnl_attr_put_u32(nlh, CTA_ID, htonl(e.id));
  finish(buf, nlh);
  return buf;
}

std::optional<Entry> parse_entry(const nlmsghdr* nlh) {
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK) return std::nullopt;
  if (nlh->nlmsg_len < NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg))) return std::nullopt;
  const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  if (nfg->nfgen_family != AF_INET) return std::nullopt;
  Attrs<CTA_MAX> top;
  if (mnl_attr_parse(nlh, sizeof(nfgenmsg), Attrs<CTA_MAX>::cb, &top) < 0) return std::nullopt;
  if (!top.a[CTA_TUPLE_ORIG] || !top.a[CTA_TUPLE_REPLY]) return std::nullopt;
  Entry e;
  uint8_t reply_proto = 0;
  if (!parse_tuple(top.a[CTA_TUPLE_ORIG], &e.proto, &e.orig)) return std::nullopt;
  if (!parse_tuple(top.a[CTA_TUPLE_REPLY], &reply_proto, &e.reply)) return std::nullopt;
  if (top.a[CTA_ZONE] && mnl_attr_get_payload_len(top.a[CTA_ZONE]) >= 2)
    e.zone = ntohs(mnl_attr_get_u16(top.a[CTA_ZONE]));
  if (top.a[CTA_ID] && mnl_attr_get_payload_len(top.a[CTA_ID]) >= 4)
    e.id = ntohl(mnl_attr_get_u32(top.a[CTA_ID]));
  return e;
}

// ---- the kernel ------------------------------------------------------------------------------

Conntrack::Conntrack(mnl_socket* s) : sock_(s), port_(mnl_socket_get_portid(s)) {}

Conntrack::~Conntrack() { mnl_socket_close(sock_); }

Result<std::unique_ptr<Conntrack>> Conntrack::open() {
  mnl_socket* s = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
  if (!s)
    return Status::unavailable(std::string("open a netfilter netlink socket: ") +
                               std::strerror(errno));
  if (mnl_socket_bind(s, 0, MNL_SOCKET_AUTOPID) < 0) {
    int e = errno;
    mnl_socket_close(s);
    return Status::unavailable(std::string("bind a netfilter netlink socket: ") + std::strerror(e));
  }
  // A dump of a big table arrives in many datagrams; a larger buffer avoids ENOBUFS while we
  // parse. Best effort.
  int rcvbuf = 4 << 20;
  setsockopt(mnl_socket_get_fd(s), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  return std::unique_ptr<Conntrack>(new Conntrack(s));
}

namespace {

struct TransactCtx {
  void (*on_entry)(const Entry&, void*);
  void* data;
  int err = 0;
};

int data_cb(const nlmsghdr* nlh, void* data) {
  auto* ctx = static_cast<TransactCtx*>(data);
  if (ctx->on_entry)
    if (auto e = parse_entry(nlh)) ctx->on_entry(*e, ctx->data);
  return MNL_CB_OK;
}

int error_cb(const nlmsghdr* nlh, void* data) {
  auto* ctx = static_cast<TransactCtx*>(data);
  if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nlmsgerr))) {
    ctx->err = EBADMSG;
    return MNL_CB_ERROR;
  }
  const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
  if (e->error == 0) return MNL_CB_STOP;  // the ack
  ctx->err = -e->error;
  return MNL_CB_ERROR;
}

int done_cb(const nlmsghdr*, void*) { return MNL_CB_STOP; }

}  // namespace

int Conntrack::transact(std::vector<uint8_t>& msg, void (*on_entry)(const Entry&, void*),
                        void* data) {
  auto* nlh = reinterpret_cast<nlmsghdr*>(msg.data());
  nlh->nlmsg_seq = ++seq_;
  if (mnl_socket_sendto(sock_, msg.data(), msg.size()) < 0) return errno;
  // Per thread: sockets on different threads must not share it.
  thread_local char buf[1 << 16];
  TransactCtx ctx{on_entry, data};
  mnl_cb_t ctl[NLMSG_MIN_TYPE] = {};
  ctl[NLMSG_ERROR] = error_cb;
  ctl[NLMSG_DONE] = done_cb;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(sock_, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    int rc =
        mnl_cb_run2(buf, static_cast<size_t>(n), seq_, port_, data_cb, &ctx, ctl, NLMSG_MIN_TYPE);
    if (rc == MNL_CB_ERROR) return ctx.err ? ctx.err : (errno ? errno : EIO);
    if (rc == MNL_CB_STOP) return 0;
  }
}

Result<std::vector<Entry>> Conntrack::dump(uint8_t proto) {
  struct Acc {
    uint8_t proto;
    std::vector<Entry> out;
  } acc{proto, {}};
  auto msg = dump_request(0);
  int err = transact(
      msg,
      [](const Entry& e, void* d) {
        auto* a = static_cast<Acc*>(d);
        if (e.proto == a->proto) a->out.push_back(e);
      },
      &acc);
  if (err)
    return Status::unavailable(std::string("dump the conntrack table (ctnetlink): ") +
                               std::strerror(err));
  return std::move(acc.out);
}

Status Conntrack::remove(const Entry& e) {
  auto msg = delete_request(e, 0);
  int err = transact(msg, nullptr, nullptr);
  if (err == 0 || err == ENOENT) return Status();
  return Status::internal("delete conntrack entry " + to_string(e) + ": " + std::strerror(err));
}

Status Conntrack::cleanup(const CleanupSpec& spec, CleanupResult* out) {
  CleanupResult r;
  Status st;
  if (!spec.empty()) {
    auto all = dump(spec.proto);
    if (!all) {
      st = all.status();
    } else {
      r.scanned = static_cast<int>(all->size());
      // Deleted after the dump: a socket carries one request at a time.
      for (const Entry& e : *all) {
        if (!matches(spec, e)) continue;
        ++r.matched;
        Status s = remove(e);
        if (s)
          ++r.deleted;
        else if (st)
          st = std::move(s);
      }
    }
  }
  if (out) *out = r;
  return st;
}

}  // namespace skiff::conntrack
