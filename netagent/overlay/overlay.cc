#include "netagent/overlay/overlay.h"

#include <fcntl.h>
#include <linux/neighbour.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>

namespace skiff::overlay {

namespace {

Status nl_status(const netlink::NlError& e) {
  if (e.err == ENODEV || e.err == ESRCH || e.err == ENOENT || e.err == EADDRNOTAVAIL)
    return Status(Code::kNotFound, e.what, e.err);
  return Status(Code::kIo, e.what, e.err);
}

class NetlinkKernel : public Kernel {
 public:
  explicit NetlinkKernel(netlink::Netlink nl) : nl_(std::move(nl)) {}

  Result<netlink::LinkInfo> link(const std::string& name) override {
    netlink::NlError e;
    auto l = nl_.link(name, &e);
    if (!l) return nl_status(e);
    return *l;
  }
  Result<netlink::LinkInfo> link_by_index(int index) override {
    netlink::NlError e;
    auto l = nl_.link(index, &e);
    if (!l) return nl_status(e);
    return *l;
  }
  Status create_vxlan(const std::string& name, const netlink::VxlanInfo& vx, int mtu) override {
    netlink::NlError e;
    return nl_.create_vxlan(name, vx, mtu, &e) ? Status() : nl_status(e);
  }
  Status delete_link(int index) override {
    netlink::NlError e;
    return nl_.delete_link(index, &e) ? Status() : nl_status(e);
  }
  Status set_up(int index) override {
    netlink::NlError e;
    return nl_.set_link(index, std::nullopt, true, &e) ? Status() : nl_status(e);
  }
  Status set_mtu(int index, int mtu) override {
    netlink::NlError e;
    return nl_.set_mtu(index, mtu, &e) ? Status() : nl_status(e);
  }
  Result<std::vector<netlink::AddrInfo>> addrs(int index) override {
    netlink::NlError e;
    auto a = nl_.addrs(index, &e);
    if (!a) return nl_status(e);
    return *a;
  }
  Status add_addr(int index, Ip4 ip, int prefix) override {
    netlink::NlError e;
    return nl_.add_addr(index, ip, prefix, &e) ? Status() : nl_status(e);
  }
  Status delete_addr(int index, Ip4 ip, int prefix) override {
    netlink::NlError e;
    return nl_.delete_addr(index, ip, prefix, &e) ? Status() : nl_status(e);
  }
  Result<std::vector<netlink::RouteInfo>> owned_routes() override {
    netlink::NlError e;
    auto r = nl_.routes_by_protocol(netlink::kRouteProtocolSkiff, &e);
    if (!r) return nl_status(e);
    return *r;
  }
  Status add_route(const netlink::RouteSpec& r) override {
    netlink::NlError e;
    if (nl_.add_route(r, &e)) return Status();
    if (e.err == EEXIST)
      return Status(Code::kAlreadyExists,
                    e.what + ": a route to " + r.dst.str() +
                        " that skiff did not make is in the way; skiff leaves it alone",
                    e.err);
    return nl_status(e);
  }
  Status delete_route(const netlink::RouteSpec& r) override {
    netlink::NlError e;
    return nl_.delete_route(r, &e) ? Status() : nl_status(e);
  }
  Result<std::vector<netlink::NeighInfo>> neighs(int index) override {
    netlink::NlError e;
    auto n = nl_.neighs(index, &e);
    if (!n) return nl_status(e);
    return *n;
  }
  Status set_neigh(int index, Ip4 ip, const std::string& mac) override {
    netlink::NlError e;
    return nl_.set_neigh(index, ip, mac, &e) ? Status() : nl_status(e);
  }
  Status delete_neigh(int index, Ip4 ip) override {
    netlink::NlError e;
    return nl_.delete_neigh(index, ip, &e) ? Status() : nl_status(e);
  }
  Result<std::vector<netlink::FdbInfo>> fdbs(int index) override {
    netlink::NlError e;
    auto f = nl_.fdbs(index, &e);
    if (!f) return nl_status(e);
    return *f;
  }
  Status set_fdb(int index, const std::string& mac, Ip4 dst) override {
    netlink::NlError e;
    return nl_.set_fdb(index, mac, dst, &e) ? Status() : nl_status(e);
  }
  Status delete_fdb(int index, const std::string& mac, Ip4 dst) override {
    netlink::NlError e;
    return nl_.delete_fdb(index, mac, dst, &e) ? Status() : nl_status(e);
  }
  Status write_sysctl(const std::string& path, const std::string& value) override {
    const std::string file = "/proc/sys/" + path;
    int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return Status::io("open " + file);
    ssize_t n = ::write(fd, value.data(), value.size());
    int err = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(value.size())) return Status::io("write " + file, err);
    return Status();
  }

 private:
  netlink::Netlink nl_;
};

netlink::RouteSpec spec_of(const Route& r) {
  netlink::RouteSpec s;
  s.dst = r.dst;
  s.gw = r.gw;
  s.oif = r.oif;
  s.onlink = r.onlink;
  s.protocol = netlink::kRouteProtocolSkiff;
  return s;
}

bool overlaps(const Ip4Net& a, const Ip4Net& b) {
  return a.contains(b.network()) || b.contains(a.network());
}

template <class T>
std::vector<T> minus(const std::vector<T>& a, const std::vector<T>& b) {
  std::set<T> bs(b.begin(), b.end());
  std::vector<T> out;
  for (const auto& x : a)
    if (!bs.count(x)) out.push_back(x);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string route_str(const Route& r) {
  return r.dst.str() + " via " + r.gw.str() + " dev #" + std::to_string(r.oif) +
         (r.onlink ? " onlink" : "");
}

}  // namespace

std::optional<Backend> parse_backend(const std::string& s) {
  if (s == "vxlan") return Backend::kVxlan;
  if (s == "host-gw") return Backend::kHostGw;
  return std::nullopt;
}

const char* backend_name(Backend b) { return b == Backend::kVxlan ? "vxlan" : "host-gw"; }

std::string normalize_mac(const std::string& mac) {
  uint8_t hw[6];
  if (!netlink::parse_mac(mac, hw)) return "";
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", hw[0], hw[1], hw[2], hw[3], hw[4],
                hw[5]);
  return buf;
}

bool Plan::empty() const {
  return del.routes.empty() && del.neighs.empty() && del.fdbs.empty() && add.routes.empty() &&
         add.neighs.empty() && add.fdbs.empty();
}

std::string Plan::str() const {
  std::string s;
  for (const auto& r : del.routes) s += "- route " + route_str(r) + "\n";
  for (const auto& n : del.neighs) s += "- neigh " + n.ip.str() + " lladdr " + n.mac + "\n";
  for (const auto& f : del.fdbs) s += "- fdb " + f.mac + " dst " + f.dst.str() + "\n";
  for (const auto& f : add.fdbs) s += "+ fdb " + f.mac + " dst " + f.dst.str() + "\n";
  for (const auto& n : add.neighs) s += "+ neigh " + n.ip.str() + " lladdr " + n.mac + "\n";
  for (const auto& r : add.routes) s += "+ route " + route_str(r) + "\n";
  return s;
}

State desired_state(const Config& cfg, int vxlan_index, int underlay_index,
                    const std::vector<Peer>& peers, std::vector<std::string>* skipped) {
  State st;
  std::vector<Ip4Net> taken{cfg.pod_cidr};
  std::set<std::string> macs;
  auto skip = [&](const Peer& p, const std::string& why) {
    if (skipped) skipped->push_back("node " + p.node + ": " + why);
  };
  // Sorted by name so that which of two clashing peers wins does not depend on input order.
  std::vector<Peer> sorted = peers;
  std::sort(sorted.begin(), sorted.end(),
            [](const Peer& a, const Peer& b) { return a.node < b.node; });
  for (const auto& p : sorted) {
    if (p.pod_cidr.prefix == 0 && p.pod_cidr.addr.v == 0) {
      skip(p, "no pod CIDR");
      continue;
    }
    if (p.underlay.v == 0) {
      skip(p, "no underlay IP");
      continue;
    }
    bool clash = false;
    for (const auto& t : taken) {
      if (overlaps(t, p.pod_cidr)) {
        skip(p, "pod CIDR " + p.pod_cidr.str() + " overlaps " + t.str() + " (already routed)");
        clash = true;
        break;
      }
    }
    if (clash) continue;
    if (cfg.backend == Backend::kVxlan) {
      std::string mac = normalize_mac(p.vtep_mac);
      if (mac.empty()) {
        skip(p, p.vtep_mac.empty() ? "no VTEP MAC" : "bad VTEP MAC \"" + p.vtep_mac + "\"");
        continue;
      }
      if (!macs.insert(mac).second) {
        skip(p, "VTEP MAC " + mac + " is another peer's");
        continue;
      }
      Ip4 gw = p.pod_cidr.network();
      st.routes.push_back({Ip4Net{gw, p.pod_cidr.prefix}, gw, vxlan_index, true});
      st.neighs.push_back({gw, mac});
      st.fdbs.push_back({mac, p.underlay});
    } else {
      st.routes.push_back(
          {Ip4Net{p.pod_cidr.network(), p.pod_cidr.prefix}, p.underlay, underlay_index, false});
    }
    taken.push_back(p.pod_cidr);
  }
  return st;
}

Plan make_plan(const State& current, const State& desired) {
  Plan p;
  p.del.routes = minus(current.routes, desired.routes);
  p.del.neighs = minus(current.neighs, desired.neighs);
  p.del.fdbs = minus(current.fdbs, desired.fdbs);
  p.add.routes = minus(desired.routes, current.routes);
  p.add.neighs = minus(desired.neighs, current.neighs);
  p.add.fdbs = minus(desired.fdbs, current.fdbs);
  // A neighbour whose MAC changes is replaced in place by the add (NLM_F_REPLACE); deleting it
  // first would only open a window without it.
  std::set<Ip4> re_added;
  for (const auto& n : p.add.neighs) re_added.insert(n.ip);
  std::erase_if(p.del.neighs, [&](const Neigh& n) { return re_added.count(n.ip) > 0; });
  return p;
}

std::string vxlan_incompatibility(const netlink::VxlanInfo& have, const netlink::VxlanInfo& want) {
  std::string s;
  auto add = [&](const std::string& x) { s += (s.empty() ? "" : "; ") + x; };
  if (have.vni != want.vni)
    add("vni " + std::to_string(have.vni) + ", want " + std::to_string(want.vni));
  if (have.local != want.local) add("local " + have.local.str() + ", want " + want.local.str());
  if (have.link != want.link)
    add("underlay device #" + std::to_string(have.link) + ", want #" + std::to_string(want.link));
  if (have.port != want.port)
    add("UDP port " + std::to_string(have.port) + ", want " + std::to_string(want.port));
  if (have.learning != want.learning)
    add(std::string("learning ") + (have.learning ? "on" : "off") + ", want " +
        (want.learning ? "on" : "off"));
  return s;
}

Result<std::unique_ptr<Kernel>> make_netlink_kernel() {
  netlink::NlError e;
  auto nl = netlink::Netlink::open(&e);
  if (!nl) return Status(Code::kIo, e.what, e.err);
  return std::unique_ptr<Kernel>(new NetlinkKernel(std::move(*nl)));
}

Overlay::Overlay(Kernel* kernel, Config cfg) : k_(kernel), cfg_(std::move(cfg)) {}

Result<Device> Overlay::ensure_device() {
  Device d;
  // The underlay: named, or the link holding the underlay IP.
  if (!cfg_.underlay_dev.empty()) {
    auto l = k_->link(cfg_.underlay_dev);
    if (!l) return l.status().with_context("find the underlay device " + cfg_.underlay_dev);
    d.underlay_index = l->index;
    d.underlay_name = l->name;
    d.underlay_mtu = l->mtu;
  } else {
    auto addrs = k_->addrs(0);
    if (!addrs) return addrs.status().with_context("list addresses to find the underlay device");
    for (const auto& a : *addrs)
      if (a.ip == cfg_.underlay_ip) d.underlay_index = a.index;
    if (d.underlay_index == 0)
      return Status::not_found("no link holds the underlay IP " + cfg_.underlay_ip.str() +
                               " (pass --iface, or --node-ip with an address of this node)");
    auto l = k_->link_by_index(d.underlay_index);
    if (!l) return l.status().with_context("read the underlay device");
    d.underlay_name = l->name;
    d.underlay_mtu = l->mtu;
  }
  SKIFF_RETURN_IF_ERROR(k_->write_sysctl("net/ipv4/ip_forward", "1"));

  auto existing = k_->link(cfg_.device);
  if (!existing && existing.status().code() != Code::kNotFound)
    return existing.status().with_context("look up " + cfg_.device);

  if (cfg_.backend == Backend::kHostGw) {
    // vxlan-mode leftovers: the device takes its neighbours, FDB and routes with it.
    if (existing && existing->kind == "vxlan") {
      spdlog::info("host-gw backend: deleting {} left from the vxlan backend", cfg_.device);
      if (auto s = k_->delete_link(existing->index); !s && s.code() != Code::kNotFound)
        return s.with_context("delete " + cfg_.device);
    }
    dev_ = d;
    return d;
  }

  netlink::VxlanInfo want;
  want.vni = cfg_.vni;
  want.local = cfg_.underlay_ip;
  want.link = d.underlay_index;
  want.port = cfg_.port;
  want.learning = false;
  const int mtu = d.underlay_mtu > kVxlanOverhead ? d.underlay_mtu - kVxlanOverhead : 0;
  if (existing) {
    if (existing->kind != "vxlan")
      return Status::conflict(cfg_.device + " exists but is a " +
                              (existing->kind.empty() ? "plain" : existing->kind) +
                              " device, not vxlan; skiff does not delete links it did not make: "
                              "remove it by hand");
    std::string why = vxlan_incompatibility(existing->vxlan.value_or(netlink::VxlanInfo{}), want);
    if (!why.empty()) {
      spdlog::warn("{} exists with an incompatible configuration ({}); re-creating it", cfg_.device,
                   why);
      if (auto s = k_->delete_link(existing->index); !s && s.code() != Code::kNotFound)
        return s.with_context("delete the incompatible " + cfg_.device);
      existing = Status::not_found(cfg_.device);
    }
  }
  if (!existing) {
    spdlog::info("creating {} (vni {}, local {}, dev {}, port {}, mtu {})", cfg_.device, want.vni,
                 want.local.str(), d.underlay_name, want.port, mtu);
    if (auto s = k_->create_vxlan(cfg_.device, want, mtu); !s) return s;
  }
  auto l = k_->link(cfg_.device);
  if (!l) return l.status().with_context("read back " + cfg_.device);
  if (l->kind != "vxlan" || !l->vxlan || !vxlan_incompatibility(*l->vxlan, want).empty())
    return Status::internal(cfg_.device + " read back is not the vxlan link asked for: " +
                            vxlan_incompatibility(l->vxlan.value_or(netlink::VxlanInfo{}), want));
  if (mtu > 0 && l->mtu != mtu) SKIFF_RETURN_IF_ERROR(k_->set_mtu(l->index, mtu));

  // Its one address: the network address of our pod CIDR, /32.
  const Ip4 self = cfg_.pod_cidr.network();
  auto addrs = k_->addrs(l->index);
  if (!addrs) return addrs.status().with_context("list addresses of " + cfg_.device);
  bool have = false;
  for (const auto& a : *addrs) {
    if (a.ip == self && a.prefix == 32) {
      have = true;
      continue;
    }
    spdlog::info("{}: removing stale address {}/{}", cfg_.device, a.ip.str(), a.prefix);
    if (auto s = k_->delete_addr(l->index, a.ip, a.prefix); !s && s.code() != Code::kNotFound)
      return s;
  }
  if (!have) SKIFF_RETURN_IF_ERROR(k_->add_addr(l->index, self, 32));
  if (!l->up) SKIFF_RETURN_IF_ERROR(k_->set_up(l->index));

  d.index = l->index;
  d.mac = l->mac;
  d.mtu = mtu > 0 ? mtu : l->mtu;
  dev_ = d;
  return d;
}

Result<State> Overlay::current_state() {
  State st;
  auto routes = k_->owned_routes();
  if (!routes) return routes.status().with_context("list skiff's routes");
  for (const auto& r : *routes)
    st.routes.push_back({Ip4Net{r.dst, r.dst_len}, r.gw, r.oif, r.onlink});
  if (dev_.index == 0) return st;
  auto neighs = k_->neighs(dev_.index);
  if (!neighs) return neighs.status().with_context("list neighbours of " + cfg_.device);
  for (const auto& n : *neighs)
    if (n.state & NUD_PERMANENT) st.neighs.push_back({n.ip, normalize_mac(n.mac)});
  auto fdbs = k_->fdbs(dev_.index);
  if (!fdbs) return fdbs.status().with_context("list FDB entries of " + cfg_.device);
  for (const auto& f : *fdbs)
    if (f.dst.v != 0 && (f.state & NUD_PERMANENT)) st.fdbs.push_back({normalize_mac(f.mac), f.dst});
  return st;
}

Status Overlay::apply(const Plan& p) {
  Status first;
  int changes = 0;
  auto note = [&](Status s) {
    if (s) {
      ++changes;
    } else {
      spdlog::warn("overlay: {}", s.to_string());
      if (first) first = s;
    }
  };
  // Deletes first: a changed route (new gateway) is a delete and an add of the same prefix.
  for (const auto& r : p.del.routes) {
    Status s = k_->delete_route(spec_of(r));
    note(s.code() == Code::kNotFound ? Status() : s);
  }
  for (const auto& n : p.del.neighs) {
    Status s = k_->delete_neigh(dev_.index, n.ip);
    note(s.code() == Code::kNotFound ? Status() : s);
  }
  for (const auto& f : p.del.fdbs) {
    Status s = k_->delete_fdb(dev_.index, f.mac, f.dst);
    note(s.code() == Code::kNotFound ? Status() : s);
  }
  // Adds in the order packets need them: FDB (where the VTEP is), neighbour (the VTEP's MAC),
  // route (what goes over it).
  for (const auto& f : p.add.fdbs) note(k_->set_fdb(dev_.index, f.mac, f.dst));
  for (const auto& n : p.add.neighs) note(k_->set_neigh(dev_.index, n.ip, n.mac));
  for (const auto& r : p.add.routes) note(k_->add_route(spec_of(r)));
  stats_.changes = changes;
  return first;
}

Status Overlay::sync(const std::vector<Peer>& peers) {
  auto d = ensure_device();
  if (!d) return d.status();
  std::vector<std::string> skipped;
  State want = desired_state(cfg_, dev_.index, dev_.underlay_index, peers, &skipped);
  for (const auto& s : skipped) spdlog::debug("overlay: skipping {}", s);
  auto have = current_state();
  if (!have) return have.status();
  Plan plan = make_plan(*have, want);
  stats_.peers = static_cast<int>(want.routes.size());
  stats_.skipped = static_cast<int>(skipped.size());
  stats_.skipped_why = skipped;
  stats_.changes = 0;
  if (plan.empty()) return Status();
  std::string devs = "#" + std::to_string(dev_.underlay_index) + " = " + dev_.underlay_name;
  if (dev_.index) devs += ", #" + std::to_string(dev_.index) + " = " + cfg_.device;
  spdlog::info("overlay: applying ({})\n{}", devs, plan.str());
  return apply(plan);
}

}  // namespace skiff::overlay
