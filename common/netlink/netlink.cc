#include "common/netlink/netlink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace skiff::netlink {

namespace {

// libmnl's mnl_attr_for_each* macros assign a void* and so are C only.
#define SKIFF_FOR_ATTR(a, nlh, off)                                                          \
  for (const nlattr* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, off)); \
       mnl_attr_ok(a, static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh)) -            \
                          reinterpret_cast<const char*>(a));                                 \
       a = mnl_attr_next(a))
#define SKIFF_FOR_NESTED(a, nest)                                                             \
  for (const nlattr* a = static_cast<const nlattr*>(mnl_attr_get_payload(nest));              \
       mnl_attr_ok(a, reinterpret_cast<const char*>(mnl_attr_get_payload(nest)) +             \
                          mnl_attr_get_payload_len(nest) - reinterpret_cast<const char*>(a)); \
       a = mnl_attr_next(a))

std::string errno_text(const std::string& what, int err) {
  return what + ": " + std::strerror(err);
}

void set_err(NlError* e, int err, const std::string& what, const std::string& ext = "") {
  if (e) *e = NlError{err, errno_text(what, err) + (ext.empty() ? "" : " (kernel: " + ext + ")")};
}

// The data callback and the error details of one request: libmnl hands both callbacks the
// same pointer.
struct RequestCtx {
  int (*cb)(const nlmsghdr*, void*);
  void* data;
  int err = 0;
  std::string ext;  // NLMSGERR_ATTR_MSG of an extended ACK
};

int data_trampoline(const nlmsghdr* nlh, void* p) {
  auto* ctx = static_cast<RequestCtx*>(p);
  return ctx->cb ? ctx->cb(nlh, ctx->data) : MNL_CB_OK;
}

// NLMSG_ERROR: an ACK (error 0) ends the request; an error keeps the kernel's explanation,
// which follows the echoed request (absent when capped) as NLMSGERR_ATTR_* attributes.
int error_cb(const nlmsghdr* nlh, void* p) {
  auto* ctx = static_cast<RequestCtx*>(p);
  if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nlmsgerr))) {
    ctx->err = EBADMSG;
    return MNL_CB_ERROR;
  }
  auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
  if (e->error == 0) return MNL_CB_STOP;
  ctx->err = -e->error;
  if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
    size_t off = sizeof(nlmsgerr);
    if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - sizeof(nlmsghdr);
    if (mnl_nlmsg_size(off) <= nlh->nlmsg_len) {
      SKIFF_FOR_ATTR(a, nlh, off) {
        if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG) ctx->ext = mnl_attr_get_str(a);
      }
    }
  }
  return MNL_CB_ERROR;
}

std::string mac_str(const uint8_t* m, size_t n) {
  std::string s;
  char b[4];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, i ? ":%02x" : "%02x", m[i]);
    s += b;
  }
  return s;
}

uint32_t be(Ip4 ip) { return htonl(ip.v); }

// Request buffers: rtnetlink messages we build are far below a page.
struct Msg {
  alignas(nlmsghdr) char buf[4096];
  nlmsghdr* nlh;
  Msg(uint16_t type, uint16_t flags) {
    nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  }
};

LinkInfo parse_link(const nlmsghdr* nlh) {
  auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  LinkInfo li;
  const nlattr* info_data = nullptr;
  li.index = ifi->ifi_index;
  li.up = (ifi->ifi_flags & IFF_UP) != 0;
  SKIFF_FOR_ATTR(attr, nlh, sizeof(*ifi)) {
    switch (mnl_attr_get_type(attr)) {
      case IFLA_IFNAME:
        li.name = mnl_attr_get_str(attr);
        break;
      case IFLA_MTU:
        li.mtu = static_cast<int>(mnl_attr_get_u32(attr));
        break;
      case IFLA_MASTER:
        li.master = static_cast<int>(mnl_attr_get_u32(attr));
        break;
      case IFLA_LINK:
        li.peer = static_cast<int>(mnl_attr_get_u32(attr));
        break;
      case IFLA_LINK_NETNSID:
        li.peer_netnsid = static_cast<int>(mnl_attr_get_u32(attr));
        break;
      case IFLA_ADDRESS:
        li.mac = mac_str(static_cast<const uint8_t*>(mnl_attr_get_payload(attr)),
                         mnl_attr_get_payload_len(attr));
        break;
      case IFLA_LINKINFO: {
        SKIFF_FOR_NESTED(in, attr) {
          if (mnl_attr_get_type(in) == IFLA_INFO_KIND) {
            li.kind = mnl_attr_get_str(in);
          } else if (mnl_attr_get_type(in) == IFLA_INFO_DATA) {
            info_data = in;
          } else if (mnl_attr_get_type(in) == IFLA_INFO_SLAVE_DATA) {
            SKIFF_FOR_NESTED(p, in) {
              if (mnl_attr_get_type(p) == IFLA_BRPORT_MODE) li.hairpin = mnl_attr_get_u8(p);
            }
          }
        }
        break;
      }
    }
  }
  // IFLA_INFO_DATA may come before IFLA_INFO_KIND; read it once the kind is known.
  if (li.kind == "vxlan" && info_data) {
    VxlanInfo vx;
    SKIFF_FOR_NESTED(v, info_data) {
      switch (mnl_attr_get_type(v)) {
        case IFLA_VXLAN_ID:
          vx.vni = mnl_attr_get_u32(v);
          break;
        case IFLA_VXLAN_LOCAL:
          vx.local = Ip4{ntohl(mnl_attr_get_u32(v))};
          break;
        case IFLA_VXLAN_LINK:
          vx.link = static_cast<int>(mnl_attr_get_u32(v));
          break;
        case IFLA_VXLAN_PORT:
          vx.port = ntohs(mnl_attr_get_u16(v));
          break;
        case IFLA_VXLAN_LEARNING:
          vx.learning = mnl_attr_get_u8(v) != 0;
          break;
      }
    }
    li.vxlan = vx;
  }
  return li;
}

int link_cb(const nlmsghdr* nlh, void* data) {
  *static_cast<LinkInfo*>(data) = parse_link(nlh);
  return MNL_CB_OK;
}

int links_cb(const nlmsghdr* nlh, void* data) {
  static_cast<std::vector<LinkInfo>*>(data)->push_back(parse_link(nlh));
  return MNL_CB_OK;
}

struct AddrDump {
  int index;
  std::vector<AddrInfo> out;
};

int addr_cb(const nlmsghdr* nlh, void* data) {
  auto* d = static_cast<AddrDump*>(data);
  auto* ifa = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
  if (ifa->ifa_family != AF_INET) return MNL_CB_OK;
  if (d->index != 0 && static_cast<int>(ifa->ifa_index) != d->index) return MNL_CB_OK;
  std::optional<uint32_t> local, address;
  SKIFF_FOR_ATTR(attr, nlh, sizeof(*ifa)) {
    if (mnl_attr_get_type(attr) == IFA_LOCAL) local = mnl_attr_get_u32(attr);
    if (mnl_attr_get_type(attr) == IFA_ADDRESS) address = mnl_attr_get_u32(attr);
  }
  if (auto a = local ? local : address)
    d->out.push_back({Ip4{ntohl(*a)}, ifa->ifa_prefixlen, static_cast<int>(ifa->ifa_index)});
  return MNL_CB_OK;
}

int route_cb(const nlmsghdr* nlh, void* data) {
  auto* out = static_cast<std::vector<RouteInfo>*>(data);
  auto* rtm = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(nlh));
  if (rtm->rtm_family != AF_INET) return MNL_CB_OK;
  RouteInfo r;
  r.dst_len = rtm->rtm_dst_len;
  r.table = rtm->rtm_table;
  r.protocol = rtm->rtm_protocol;
  r.onlink = (rtm->rtm_flags & RTNH_F_ONLINK) != 0;
  SKIFF_FOR_ATTR(attr, nlh, sizeof(*rtm)) {
    switch (mnl_attr_get_type(attr)) {
      case RTA_DST:
        r.dst = Ip4{ntohl(mnl_attr_get_u32(attr))};
        break;
      case RTA_GATEWAY:
        r.gw = Ip4{ntohl(mnl_attr_get_u32(attr))};
        break;
      case RTA_OIF:
        r.oif = static_cast<int>(mnl_attr_get_u32(attr));
        break;
      case RTA_TABLE:
        r.table = static_cast<int>(mnl_attr_get_u32(attr));
        break;
    }
  }
  if (r.table == RT_TABLE_MAIN) out->push_back(r);
  return MNL_CB_OK;
}

}  // namespace

bool parse_mac(const std::string& s, uint8_t out[6]) {
  unsigned v[6];
  char tail;
  if (s.size() != 17 || std::sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2],
                                    &v[3], &v[4], &v[5], &tail) != 6)
    return false;
  for (int i = 0; i < 6; ++i) out[i] = static_cast<uint8_t>(v[i]);
  return true;
}

Netlink::Netlink(mnl_socket* s) : sock_(s), port_(mnl_socket_get_portid(s)) {}
Netlink::Netlink(Netlink&& o) noexcept : sock_(o.sock_), port_(o.port_), seq_(o.seq_) {
  o.sock_ = nullptr;
}
Netlink& Netlink::operator=(Netlink&& o) noexcept {
  if (this != &o) {
    if (sock_) mnl_socket_close(sock_);
    sock_ = o.sock_;
    port_ = o.port_;
    seq_ = o.seq_;
    o.sock_ = nullptr;
  }
  return *this;
}
Netlink::~Netlink() {
  if (sock_) mnl_socket_close(sock_);
}

std::optional<Netlink> Netlink::open(NlError* err) {
  mnl_socket* s = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (!s) {
    set_err(err, errno, "open a netlink socket");
    return std::nullopt;
  }
  if (mnl_socket_bind(s, 0, MNL_SOCKET_AUTOPID) < 0) {
    int e = errno;
    mnl_socket_close(s);
    set_err(err, e, "bind a netlink socket");
    return std::nullopt;
  }
  // Extended ACKs make the kernel explain EINVAL and friends; harmless where unsupported.
  int one = 1;
  mnl_socket_setsockopt(s, NETLINK_EXT_ACK, &one, sizeof one);
  return Netlink(s);
}

std::optional<Netlink> Netlink::open_in(int netns_fd, NlError* err) {
  int self = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    set_err(err, errno, "open /proc/thread-self/ns/net");
    return std::nullopt;
  }
  if (::setns(netns_fd, CLONE_NEWNET) != 0) {
    int e = errno;
    ::close(self);
    set_err(err, e, "setns into the pod network namespace");
    return std::nullopt;
  }
  auto nl = open(err);
  // Going back cannot fail short of a kernel bug; if it did, every later step would act on the
  // wrong namespace, so stop here.
  if (::setns(self, CLONE_NEWNET) != 0) {
    std::perror("skiff: setns back to the node network namespace");
    std::abort();
  }
  ::close(self);
  return nl;
}

int Netlink::request(nlmsghdr* nlh, int (*cb)(const nlmsghdr*, void*), void* data) {
  const bool dump = (nlh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  if (!dump) nlh->nlmsg_flags |= NLM_F_ACK;
  nlh->nlmsg_seq = ++seq_;
  if (mnl_socket_sendto(sock_, nlh, nlh->nlmsg_len) < 0) return errno;
  // Per thread: sockets on different threads must not share it.
  thread_local char buf[65536];
  RequestCtx ctx{cb, data};
  // With a control array libmnl no longer applies its defaults, so DONE must end a dump here.
  mnl_cb_t ctl[NLMSG_MIN_TYPE] = {};
  ctl[NLMSG_ERROR] = error_cb;
  ctl[NLMSG_DONE] = [](const nlmsghdr*, void*) { return static_cast<int>(MNL_CB_STOP); };
  last_ext_.clear();
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(sock_, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    int rc = mnl_cb_run2(buf, static_cast<size_t>(n), seq_, port_, data_trampoline, &ctx, ctl,
                         NLMSG_MIN_TYPE);
    if (rc == MNL_CB_ERROR) {
      last_ext_ = ctx.ext;
      return ctx.err ? ctx.err : (errno ? errno : EIO);
    }
    if (rc == MNL_CB_STOP) return 0;
  }
}

std::optional<LinkInfo> Netlink::link(const std::string& name, NlError* err) {
  Msg m(RTM_GETLINK, 0);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(m.nlh, IFLA_IFNAME, name.c_str());
  LinkInfo li;
  if (int e = request(m.nlh, link_cb, &li)) {
    set_err(err, e, "look up link " + name, last_ext_);
    return std::nullopt;
  }
  if (li.index == 0) {
    set_err(err, ENODEV, "look up link " + name);
    return std::nullopt;
  }
  return li;
}

std::optional<LinkInfo> Netlink::link(int index, NlError* err) {
  Msg m(RTM_GETLINK, 0);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  LinkInfo li;
  if (int e = request(m.nlh, link_cb, &li)) {
    set_err(err, e, "look up link #" + std::to_string(index), last_ext_);
    return std::nullopt;
  }
  return li;
}

std::optional<std::vector<LinkInfo>> Netlink::links(NlError* err, int netnsid) {
  Msg m(RTM_GETLINK, NLM_F_DUMP);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  if (netnsid >= 0) mnl_attr_put_u32(m.nlh, IFLA_TARGET_NETNSID, static_cast<uint32_t>(netnsid));
  std::vector<LinkInfo> out;
  if (int e = request(m.nlh, links_cb, &out)) {
    set_err(err, e,
            "list links" + (netnsid >= 0 ? " of netns id " + std::to_string(netnsid) : ""),
            last_ext_);
    return std::nullopt;
  }
  return out;
}

bool Netlink::create_bridge(const std::string& name, int mtu, const std::string& mac,
                            NlError* err) {
  Msg m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(m.nlh, IFLA_IFNAME, name.c_str());
  if (mtu > 0) mnl_attr_put_u32(m.nlh, IFLA_MTU, static_cast<uint32_t>(mtu));
  uint8_t hw[6];
  if (parse_mac(mac, hw)) mnl_attr_put(m.nlh, IFLA_ADDRESS, 6, hw);
  nlattr* info = mnl_attr_nest_start(m.nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(m.nlh, IFLA_INFO_KIND, "bridge");
  mnl_attr_nest_end(m.nlh, info);
  if (int e = request(m.nlh, nullptr, nullptr)) {
    set_err(err, e, "create bridge " + name, last_ext_);
    return false;
  }
  return true;
}

bool Netlink::create_veth(const std::string& name, const std::string& mac, int mtu,
                          const std::string& peer_name, int peer_netns_fd, NlError* err) {
  Msg m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(m.nlh, IFLA_IFNAME, name.c_str());
  mnl_attr_put_u32(m.nlh, IFLA_MTU, static_cast<uint32_t>(mtu));
  uint8_t hw[6];
  if (parse_mac(mac, hw)) mnl_attr_put(m.nlh, IFLA_ADDRESS, 6, hw);
  nlattr* info = mnl_attr_nest_start(m.nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(m.nlh, IFLA_INFO_KIND, "veth");
  nlattr* data = mnl_attr_nest_start(m.nlh, IFLA_INFO_DATA);
  nlattr* peer = mnl_attr_nest_start(m.nlh, VETH_INFO_PEER);
  // The peer's attributes follow its own ifinfomsg header inside the nest.
  auto* pifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifinfomsg)));
  pifi->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(m.nlh, IFLA_IFNAME, peer_name.c_str());
  mnl_attr_put_u32(m.nlh, IFLA_MTU, static_cast<uint32_t>(mtu));
  mnl_attr_put_u32(m.nlh, IFLA_NET_NS_FD, static_cast<uint32_t>(peer_netns_fd));
  mnl_attr_nest_end(m.nlh, peer);
  mnl_attr_nest_end(m.nlh, data);
  mnl_attr_nest_end(m.nlh, info);
  if (int e = request(m.nlh, nullptr, nullptr)) {
    set_err(err, e, "create veth pair " + name + " / " + peer_name, last_ext_);
    return false;
  }
  return true;
}

bool Netlink::set_link(int index, std::optional<int> master, std::optional<bool> up, NlError* err) {
  Msg m(RTM_NEWLINK, 0);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  if (up) {
    ifi->ifi_change = IFF_UP;
    ifi->ifi_flags = *up ? IFF_UP : 0;
  }
  if (master) mnl_attr_put_u32(m.nlh, IFLA_MASTER, static_cast<uint32_t>(*master));
  if (int e = request(m.nlh, nullptr, nullptr)) {
    set_err(err, e,
            "set link #" + std::to_string(index) + (master ? " master" : "") +
                (up ? (*up ? " up" : " down") : ""),
            last_ext_);
    return false;
  }
  return true;
}

bool Netlink::set_mtu(int index, int mtu, NlError* err) {
  Msg m(RTM_NEWLINK, 0);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  mnl_attr_put_u32(m.nlh, IFLA_MTU, static_cast<uint32_t>(mtu));
  if (int e = request(m.nlh, nullptr, nullptr)) {
    set_err(err, e, "set mtu " + std::to_string(mtu) + " on link #" + std::to_string(index),
            last_ext_);
    return false;
  }
  return true;
}

bool Netlink::set_hairpin(int index, bool on, NlError* err) {
  Msg m(RTM_SETLINK, 0);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_BRIDGE;
  ifi->ifi_index = index;
  nlattr* p = mnl_attr_nest_start(m.nlh, IFLA_PROTINFO);  // sets NLA_F_NESTED
  mnl_attr_put_u8(m.nlh, IFLA_BRPORT_MODE, on ? 1 : 0);
  mnl_attr_nest_end(m.nlh, p);
  if (int e = request(m.nlh, nullptr, nullptr)) {
    set_err(err, e,
            std::string("set hairpin ") + (on ? "on" : "off") + " on bridge port #" +
                std::to_string(index),
            last_ext_);
    return false;
  }
  return true;
}

bool Netlink::delete_link(int index, NlError* err) {
  Msg m(RTM_DELLINK, 0);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  if (int e = request(m.nlh, nullptr, nullptr)) {
    set_err(err, e, "delete link #" + std::to_string(index), last_ext_);
    return false;
  }
  return true;
}

bool Netlink::add_addr(int index, Ip4 ip, int prefix, NlError* err) {
  Msg m(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = static_cast<uint8_t>(prefix);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<uint32_t>(index);
  mnl_attr_put_u32(m.nlh, IFA_LOCAL, be(ip));
  mnl_attr_put_u32(m.nlh, IFA_ADDRESS, be(ip));
  Ip4Net net{ip, prefix};
  mnl_attr_put_u32(m.nlh, IFA_BROADCAST, be(net.broadcast()));
  int e = request(m.nlh, nullptr, nullptr);
  if (e && e != EEXIST) {
    set_err(err, e,
            "add address " + ip.str() + "/" + std::to_string(prefix) + " to link #" +
                std::to_string(index),
            last_ext_);
    return false;
  }
  return true;
}

std::optional<std::vector<AddrInfo>> Netlink::addrs(int index, NlError* err) {
  Msg m(RTM_GETADDR, NLM_F_DUMP);
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET;
  AddrDump d{index, {}};
  if (int e = request(m.nlh, addr_cb, &d)) {
    set_err(err, e, "list addresses", last_ext_);
    return std::nullopt;
  }
  return d.out;
}

std::optional<std::vector<AddrInfo>> Netlink::addrs_in(int netnsid, NlError* err) {
  Msg m(RTM_GETADDR, NLM_F_DUMP);
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET;
  mnl_attr_put_u32(m.nlh, IFA_TARGET_NETNSID, static_cast<uint32_t>(netnsid));
  AddrDump d{0, {}};
  // The kernel reads IFA_TARGET_NETNSID of an address dump only with strict checking (else it
  // silently dumps this namespace's addresses); on for this request only.
  int on = 1, off = 0;
  int fd = mnl_socket_get_fd(sock_);
  if (setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &on, sizeof on) != 0) {
    set_err(err, errno, "list addresses of netns id " + std::to_string(netnsid) +
                            ": strict netlink checking");
    return std::nullopt;
  }
  int e = request(m.nlh, addr_cb, &d);
  setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &off, sizeof off);
  if (e) {
    set_err(err, e, "list addresses of netns id " + std::to_string(netnsid), last_ext_);
    return std::nullopt;
  }
  return d.out;
}

bool Netlink::add_route(Ip4 dst, int dst_len, Ip4 gw, int oif, NlError* err) {
  Msg m(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  rtm->rtm_dst_len = static_cast<uint8_t>(dst_len);
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_BOOT;
  rtm->rtm_scope = gw.v ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  rtm->rtm_type = RTN_UNICAST;
  if (dst_len > 0) mnl_attr_put_u32(m.nlh, RTA_DST, be(dst));
  if (gw.v) mnl_attr_put_u32(m.nlh, RTA_GATEWAY, be(gw));
  mnl_attr_put_u32(m.nlh, RTA_OIF, static_cast<uint32_t>(oif));
  int e = request(m.nlh, nullptr, nullptr);
  if (e && e != EEXIST) {
    set_err(err, e,
            "add route " + dst.str() + "/" + std::to_string(dst_len) +
                (gw.v ? " via " + gw.str() : "") + " dev #" + std::to_string(oif),
            last_ext_);
    return false;
  }
  return true;
}

std::optional<std::vector<RouteInfo>> Netlink::routes(NlError* err) {
  Msg m(RTM_GETROUTE, NLM_F_DUMP);
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  std::vector<RouteInfo> out;
  if (int e = request(m.nlh, route_cb, &out)) {
    set_err(err, e, "list routes", last_ext_);
    return std::nullopt;
  }
  return out;
}

bool Netlink::create_vxlan(const std::string& name, const VxlanInfo& vx, int mtu, NlError* err) {
  Msg m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(m.nlh, IFLA_IFNAME, name.c_str());
  if (mtu > 0) mnl_attr_put_u32(m.nlh, IFLA_MTU, static_cast<uint32_t>(mtu));
  nlattr* info = mnl_attr_nest_start(m.nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(m.nlh, IFLA_INFO_KIND, "vxlan");
  nlattr* data = mnl_attr_nest_start(m.nlh, IFLA_INFO_DATA);
  mnl_attr_put_u32(m.nlh, IFLA_VXLAN_ID, vx.vni);
  if (vx.local.v) mnl_attr_put_u32(m.nlh, IFLA_VXLAN_LOCAL, be(vx.local));
  if (vx.link) mnl_attr_put_u32(m.nlh, IFLA_VXLAN_LINK, static_cast<uint32_t>(vx.link));
  // The port is big-endian on the wire (nla_get_be16 in the kernel).
  if (vx.port) mnl_attr_put_u16(m.nlh, IFLA_VXLAN_PORT, htons(static_cast<uint16_t>(vx.port)));
  mnl_attr_put_u8(m.nlh, IFLA_VXLAN_LEARNING, vx.learning ? 1 : 0);
  mnl_attr_nest_end(m.nlh, data);
  mnl_attr_nest_end(m.nlh, info);
  if (int e = request(m.nlh, nullptr, nullptr)) {
    set_err(err, e,
            "create vxlan " + name + " (vni " + std::to_string(vx.vni) + ", local " +
                vx.local.str() + ", dev #" + std::to_string(vx.link) + ", port " +
                std::to_string(vx.port) + ")",
            last_ext_);
    return false;
  }
  return true;
}

bool Netlink::create_dummy(const std::string& name, NlError* err) {
  Msg m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(m.nlh, IFLA_IFNAME, name.c_str());
  nlattr* info = mnl_attr_nest_start(m.nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(m.nlh, IFLA_INFO_KIND, "dummy");
  mnl_attr_nest_end(m.nlh, info);
  if (int e = request(m.nlh, nullptr, nullptr)) {
    set_err(err, e, "create dummy " + name, last_ext_);
    return false;
  }
  return true;
}

bool Netlink::delete_addr(int index, Ip4 ip, int prefix, NlError* err) {
  Msg m(RTM_DELADDR, 0);
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = static_cast<uint8_t>(prefix);
  ifa->ifa_index = static_cast<uint32_t>(index);
  mnl_attr_put_u32(m.nlh, IFA_LOCAL, be(ip));
  if (int e = request(m.nlh, nullptr, nullptr)) {
    set_err(err, e,
            "delete address " + ip.str() + "/" + std::to_string(prefix) + " from link #" +
                std::to_string(index),
            last_ext_);
    return false;
  }
  return true;
}

namespace {

std::string route_text(const RouteSpec& r) {
  return r.dst.str() + (r.gw.v ? " via " + r.gw.str() : "") + " dev #" + std::to_string(r.oif) +
         (r.onlink ? " onlink" : "") + " proto " + std::to_string(r.protocol);
}

void put_route(Msg& m, const RouteSpec& r, bool del) {
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  rtm->rtm_dst_len = static_cast<uint8_t>(r.dst.prefix);
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = r.protocol;
  // Deletes match any scope (as `ip route del`); adds say what the route is.
  rtm->rtm_scope = del ? RT_SCOPE_NOWHERE : (r.gw.v ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
  rtm->rtm_type = RTN_UNICAST;
  if (r.onlink) rtm->rtm_flags |= RTNH_F_ONLINK;
  if (r.dst.prefix > 0) mnl_attr_put_u32(m.nlh, RTA_DST, be(r.dst.network()));
  if (r.gw.v) mnl_attr_put_u32(m.nlh, RTA_GATEWAY, be(r.gw));
  if (r.oif) mnl_attr_put_u32(m.nlh, RTA_OIF, static_cast<uint32_t>(r.oif));
}

struct ProtoRoutes {
  uint8_t protocol;
  std::vector<RouteInfo> out;
};

int proto_route_cb(const nlmsghdr* nlh, void* data) {
  auto* d = static_cast<ProtoRoutes*>(data);
  std::vector<RouteInfo> one;
  route_cb(nlh, &one);
  for (auto& r : one)
    if (r.protocol == d->protocol) d->out.push_back(r);
  return MNL_CB_OK;
}

struct NeighDump {
  int family;
  int index;
  std::vector<NeighInfo> neighs;
  std::vector<FdbInfo> fdbs;
};

int neigh_cb(const nlmsghdr* nlh, void* data) {
  auto* d = static_cast<NeighDump*>(data);
  auto* ndm = static_cast<const ndmsg*>(mnl_nlmsg_get_payload(nlh));
  if (ndm->ndm_family != d->family || ndm->ndm_ifindex != d->index) return MNL_CB_OK;
  Ip4 dst;
  std::string mac;
  SKIFF_FOR_ATTR(attr, nlh, sizeof(*ndm)) {
    switch (mnl_attr_get_type(attr)) {
      case NDA_DST:
        if (mnl_attr_get_payload_len(attr) == 4) dst = Ip4{ntohl(mnl_attr_get_u32(attr))};
        break;
      case NDA_LLADDR:
        mac = mac_str(static_cast<const uint8_t*>(mnl_attr_get_payload(attr)),
                      mnl_attr_get_payload_len(attr));
        break;
    }
  }
  if (d->family == AF_BRIDGE)
    d->fdbs.push_back({ndm->ndm_ifindex, mac, dst, ndm->ndm_state, ndm->ndm_flags});
  else
    d->neighs.push_back({ndm->ndm_ifindex, dst, mac, ndm->ndm_state});
  return MNL_CB_OK;
}

ndmsg* put_ndmsg(Msg& m, int family, int index, uint16_t state, uint8_t flags) {
  auto* ndm = static_cast<ndmsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ndmsg)));
  ndm->ndm_family = static_cast<uint8_t>(family);
  ndm->ndm_ifindex = index;
  ndm->ndm_state = state;
  ndm->ndm_flags = flags;
  return ndm;
}

}  // namespace

bool Netlink::add_route(const RouteSpec& r, NlError* err) {
  Msg m(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  put_route(m, r, false);
  if (int e = request(m.nlh, nullptr, nullptr)) {
    set_err(err, e, "add route " + route_text(r), last_ext_);
    return false;
  }
  return true;
}

bool Netlink::delete_route(const RouteSpec& r, NlError* err) {
  Msg m(RTM_DELROUTE, 0);
  put_route(m, r, true);
  if (int e = request(m.nlh, nullptr, nullptr)) {
    set_err(err, e, "delete route " + route_text(r), last_ext_);
    return false;
  }
  return true;
}

std::optional<std::vector<RouteInfo>> Netlink::routes_by_protocol(uint8_t protocol, NlError* err) {
  Msg m(RTM_GETROUTE, NLM_F_DUMP);
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  ProtoRoutes d{protocol, {}};
  if (int e = request(m.nlh, proto_route_cb, &d)) {
    set_err(err, e, "list routes of protocol " + std::to_string(protocol), last_ext_);
    return std::nullopt;
  }
  return d.out;
}

bool Netlink::set_neigh(int index, Ip4 ip, const std::string& mac, NlError* err) {
  uint8_t hw[6];
  if (!parse_mac(mac, hw)) {
    set_err(err, EINVAL, "set neighbour " + ip.str() + ": bad MAC \"" + mac + "\"");
    return false;
  }
  Msg m(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE);
  put_ndmsg(m, AF_INET, index, NUD_PERMANENT, 0);
  mnl_attr_put_u32(m.nlh, NDA_DST, be(ip));
  mnl_attr_put(m.nlh, NDA_LLADDR, 6, hw);
  if (int e = request(m.nlh, nullptr, nullptr)) {
    set_err(err, e,
            "set neighbour " + ip.str() + " lladdr " + mac + " on link #" + std::to_string(index),
            last_ext_);
    return false;
  }
  return true;
}

bool Netlink::delete_neigh(int index, Ip4 ip, NlError* err) {
  Msg m(RTM_DELNEIGH, 0);
  put_ndmsg(m, AF_INET, index, 0, 0);
  mnl_attr_put_u32(m.nlh, NDA_DST, be(ip));
  if (int e = request(m.nlh, nullptr, nullptr)) {
    set_err(err, e, "delete neighbour " + ip.str() + " on link #" + std::to_string(index),
            last_ext_);
    return false;
  }
  return true;
}

std::optional<std::vector<NeighInfo>> Netlink::neighs(int index, NlError* err) {
  Msg m(RTM_GETNEIGH, NLM_F_DUMP);
  put_ndmsg(m, AF_INET, 0, 0, 0);
  NeighDump d{AF_INET, index, {}, {}};
  if (int e = request(m.nlh, neigh_cb, &d)) {
    set_err(err, e, "list neighbours", last_ext_);
    return std::nullopt;
  }
  return d.neighs;
}

bool Netlink::set_fdb(int index, const std::string& mac, Ip4 dst, NlError* err) {
  uint8_t hw[6];
  if (!parse_mac(mac, hw)) {
    set_err(err, EINVAL, "set fdb entry: bad MAC \"" + mac + "\"");
    return false;
  }
  Msg m(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE);
  put_ndmsg(m, AF_BRIDGE, index, NUD_PERMANENT, NTF_SELF);
  mnl_attr_put(m.nlh, NDA_LLADDR, 6, hw);
  mnl_attr_put_u32(m.nlh, NDA_DST, be(dst));
  if (int e = request(m.nlh, nullptr, nullptr)) {
    set_err(err, e,
            "set fdb entry " + mac + " dst " + dst.str() + " on link #" + std::to_string(index),
            last_ext_);
    return false;
  }
  return true;
}

bool Netlink::delete_fdb(int index, const std::string& mac, Ip4 dst, NlError* err) {
  uint8_t hw[6];
  if (!parse_mac(mac, hw)) {
    set_err(err, EINVAL, "delete fdb entry: bad MAC \"" + mac + "\"");
    return false;
  }
  Msg m(RTM_DELNEIGH, 0);
  put_ndmsg(m, AF_BRIDGE, index, 0, NTF_SELF);
  mnl_attr_put(m.nlh, NDA_LLADDR, 6, hw);
  if (dst.v) mnl_attr_put_u32(m.nlh, NDA_DST, be(dst));
  if (int e = request(m.nlh, nullptr, nullptr)) {
    set_err(err, e,
            "delete fdb entry " + mac + " dst " + dst.str() + " on link #" + std::to_string(index),
            last_ext_);
    return false;
  }
  return true;
}

std::optional<std::vector<FdbInfo>> Netlink::fdbs(int index, NlError* err) {
  Msg m(RTM_GETNEIGH, NLM_F_DUMP);
  put_ndmsg(m, AF_BRIDGE, 0, 0, 0);
  NeighDump d{AF_BRIDGE, index, {}, {}};
  if (int e = request(m.nlh, neigh_cb, &d)) {
    set_err(err, e, "list fdb entries", last_ext_);
    return std::nullopt;
  }
  return d.fdbs;
}

}  // namespace skiff::netlink
