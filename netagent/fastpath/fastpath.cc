#include "netagent/fastpath/fastpath.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/netlink/netlink.h"
#include "netagent/conntrack/conntrack.h"

namespace skiff::fastpath {
namespace {

using Clock = std::chrono::steady_clock;

Status bpf_status(const bpf::BpfError& e) { return Status(Code::kIo, e.what); }
Status nl_status(const netlink::NlError& e) { return Status(Code::kIo, e.what); }

bpf::EndpointKey key_of(const Endpoint& e) {
  bpf::EndpointKey k;
  k.ip = htonl(e.ip);
  k.proto = e.proto;
  k.port = htons(e.port);
  return k;
}

// The endpoints some conntrack entry of this node translated a flow to: replies from them must
// still go through netfilter.
Result<std::set<Endpoint>> translating(const std::set<Endpoint>& candidates) {
  auto ct = conntrack::Conntrack::open();
  if (!ct) return ct.status();
  std::set<Endpoint> out;
  for (uint8_t proto : {conntrack::kProtoTcp, conntrack::kProtoUdp}) {
    auto entries = (*ct)->dump(proto);
    if (!entries) return entries.status();
    for (const auto& e : *entries) {
      bool translated = e.orig.dst != e.reply.src || e.orig.dport != e.reply.sport;
      Endpoint ep{e.reply.src, proto, e.reply.sport};
      if (translated && candidates.count(ep)) out.insert(ep);
    }
  }
  return out;
}

}  // namespace

FastPath::FastPath(bool wait_for_endpoints) : endpoints_known_(!wait_for_endpoints) {}

FastPath::~FastPath() { stop(); }

void FastPath::stop() {
  if (watcher_.joinable()) {
    watcher_.request_stop();
    watcher_.join();
  }
  std::lock_guard l(mu_);
  detach_locked();
  opts_.reset();
}

void FastPath::detach_locked() {
  veth_links_.clear();
  uplink_link_.reset();
  uplink_index_ = 0;
}

Status FastPath::configure(const Options& o) {
  Status st;
  bool configured;
  {
    std::lock_guard l(mu_);
    st = note_locked(configure_locked(o));
    configured = opts_.has_value();
  }
  // Also after a failed first sync (a pod namespace that went away while it looked): the
  // watcher's next syncs converge.
  if (configured && !watcher_.joinable()) {
    watcher_ = std::jthread([this](std::stop_token stop) { watch_links(stop); });
  }
  return st;
}

Status FastPath::configure_locked(const Options& o) {
  if (opts_ && *opts_ == o) return sync_locked();
  bpf::BpfError e;
  if (!pods_map_) {
    pods_map_ = bpf::create_hash_map(4, sizeof(bpf::PodEntry), 4096, "skiff_pods", &e);
    if (!pods_map_) return bpf_status(e);
    endpoints_map_ =
        bpf::create_hash_map(sizeof(bpf::EndpointKey), 4, 65536, "skiff_endpoints", &e);
    if (!endpoints_map_) return bpf_status(e);
  }
  // A new configuration: everything attached goes and is made again by the sync.
  detach_locked();
  out_prog_.reset();
  opts_.reset();
  std::string err;
  auto in = bpf::to_local_pods_program(o.cluster_cidr, pods_map_->get(), endpoints_map_->get(),
                                       &err);
  if (!in) return Status::internal(err);
  in_prog_ = bpf::load_sched_cls(*in, "skiff_to_pods", &e);
  if (!in_prog_) return bpf_status(e);
  opts_ = o;
  Status st = apply_endpoints_locked();
  if (Status s = sync_locked(); !s && st) st = s;
  return st;
}

// The one place failures are logged: once per reason, and once when it works again. Not an
// error of the callers' own work: pod traffic then takes the kernel's path.
Status FastPath::note_locked(Status s) {
  std::string why = s ? "" : s.message();
  if (why != last_error_) {
    if (why.empty()) {
      spdlog::info("fast path: working again");
    } else {
      spdlog::warn("fast path: {} (pod traffic it would carry takes the kernel's path)", why);
    }
  }
  last_error_ = why;
  return s;
}

Status FastPath::sync() {
  std::lock_guard l(mu_);
  return note_locked(sync_locked());
}

Status FastPath::sync_locked() {
  if (!opts_ || !endpoints_known_) return Status();
  const Options& o = *opts_;
  netlink::NlError ne;
  auto nl = netlink::Netlink::open(&ne);
  if (!nl) return nl_status(ne);
  auto links = nl->links(&ne);
  if (!links) return nl_status(ne);
  const netlink::LinkInfo* bridge = nullptr;
  const netlink::LinkInfo* uplink = nullptr;
  for (const auto& li : *links) {
    if (li.name == o.bridge) bridge = &li;
    if (li.name == o.uplink) uplink = &li;
  }
  bpf::BpfError be;
  if (uplink == nullptr) {
    detach_locked();
    return Status::unavailable("fast path: no uplink device " + o.uplink);
  }
  if (uplink->index != uplink_index_) {
    // The outbound program names the uplink: a new device (a re-created skiff.vxlan) needs a
    // new program on every veth.
    detach_locked();
    std::string err;
    auto out = bpf::to_remote_pods_program(o.cluster_cidr, o.pod_cidr, uplink->index,
                                           endpoints_map_->get(), &err);
    if (!out) return Status::internal(err);
    out_prog_ = bpf::load_sched_cls(*out, "skiff_to_nodes", &be);
    if (!out_prog_) return bpf_status(be);
    uplink_link_ = bpf::attach_tcx_ingress(in_prog_->get(), uplink->index, &be);
    if (!uplink_link_) return bpf_status(be);
    uplink_index_ = uplink->index;
    spdlog::info("fast path: attached to {} (pods {} of cluster {})", o.uplink, o.pod_cidr.str(),
                 o.cluster_cidr.str());
  }

  // The pods: veths on the bridge, their peers' address and MAC in the pods' namespaces.
  std::map<uint32_t, bpf::PodEntry> want;
  std::set<int> veths;
  Status first;
  if (bridge != nullptr) {
    uint8_t gw_mac[6] = {};
    netlink::parse_mac(bridge->mac, gw_mac);
    std::map<int, std::vector<const netlink::LinkInfo*>> by_netns;
    for (const auto& li : *links) {
      if (li.master != bridge->index || li.kind != "veth" || li.peer_netnsid < 0) continue;
      veths.insert(li.index);
      by_netns[li.peer_netnsid].push_back(&li);
    }
    for (const auto& [nsid, ports] : by_netns) {
      auto addrs = nl->addrs_in(nsid, &ne);
      auto peers = addrs ? nl->links(&ne, nsid) : std::nullopt;
      if (!addrs || !peers) {
        // A pod namespace going away while we look: its veth goes next.
        if (first) first = nl_status(ne);
        continue;
      }
      for (const auto* port : ports) {
        std::optional<netlink::Ip4> ip;
        for (const auto& a : *addrs)
          if (a.index == port->peer && o.pod_cidr.contains(a.ip)) ip = a.ip;
        const netlink::LinkInfo* peer = nullptr;
        for (const auto& p : *peers)
          if (p.index == port->peer) peer = &p;
        if (!ip || peer == nullptr) continue;  // no address yet: the next sync
        bpf::PodEntry e;
        e.ifindex = static_cast<uint32_t>(port->index);
        netlink::parse_mac(peer->mac, e.pod_mac);
        std::copy(gw_mac, gw_mac + 6, e.gw_mac);
        want[htonl(ip->v)] = e;
      }
    }
  }
  for (auto it = pods_.begin(); it != pods_.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    uint32_t k = it->first;
    if (!bpf::map_delete(pods_map_->get(), &k, &be)) {
      if (first) first = bpf_status(be);
      ++it;
      continue;
    }
    it = pods_.erase(it);
  }
  for (const auto& [k, e] : want) {
    auto it = pods_.find(k);
    if (it != pods_.end() && std::memcmp(&it->second, &e, sizeof e) == 0) continue;
    if (!bpf::map_update(pods_map_->get(), &k, &e, &be)) {
      if (first) first = bpf_status(be);
      continue;
    }
    pods_[k] = e;
  }
  // The outbound program on every veth of the bridge; links of vanished veths close.
  for (auto it = veth_links_.begin(); it != veth_links_.end();) {
    it = veths.count(it->first) ? std::next(it) : veth_links_.erase(it);
  }
  for (int v : veths) {
    if (veth_links_.count(v)) continue;
    auto link = bpf::attach_tcx_ingress(out_prog_->get(), v, &be);
    if (!link) {
      if (first) first = bpf_status(be);
      continue;
    }
    veth_links_.emplace(v, std::move(*link));
  }

  // Endpoints no Service has any more leave the map once no flow of this node translates to them.
  if (!lingering_.empty() && Clock::now() >= next_linger_check_) {
    next_linger_check_ = Clock::now() + std::chrono::seconds(10);
    auto still = translating(lingering_);
    if (!still) {
      if (first) first = still.status().with_context("fast path: read conntrack");
    } else {
      lingering_ = std::move(*still);
      if (Status s = apply_endpoints_locked(); !s && first) first = s;
    }
  }
  return first;
}

Status FastPath::replace_endpoints(const std::vector<Endpoint>& all) {
  std::lock_guard l(mu_);
  std::map<Endpoint, int> refs;
  for (const auto& e : all) ++refs[e];
  for (const auto& [e, n] : endpoint_refs_)
    if (!refs.count(e)) lingering_.insert(e);
  for (const auto& [e, n] : refs) lingering_.erase(e);
  endpoint_refs_ = std::move(refs);
  Status s = apply_endpoints_locked();
  if (s && !endpoints_known_) {
    endpoints_known_ = true;
    s = sync_locked();
  }
  return note_locked(s);
}

Status FastPath::update_endpoints(const std::vector<Endpoint>& removed,
                                  const std::vector<Endpoint>& added) {
  std::lock_guard l(mu_);
  for (const auto& e : added) {
    ++endpoint_refs_[e];
    lingering_.erase(e);
  }
  for (const auto& e : removed) {
    auto it = endpoint_refs_.find(e);
    if (it == endpoint_refs_.end()) continue;
    if (--it->second <= 0) {
      endpoint_refs_.erase(it);
      lingering_.insert(e);
    }
  }
  // Only the changed keys: an endpoint dropped now lingers (it leaves at a conntrack check).
  return note_locked(apply_endpoints_locked(&added));
}

Status FastPath::apply_endpoints_locked(const std::vector<Endpoint>* keys) {
  if (!endpoints_map_) return Status();  // not configured yet: applied when it is
  bpf::BpfError be;
  Status first;
  // One key: in the map exactly when it is a current or lingering endpoint.
  auto reconcile = [&](const Endpoint& e) {
    bool want = endpoint_refs_.count(e) || lingering_.count(e);
    if (want == (in_map_.count(e) > 0)) return;
    auto k = key_of(e);
    uint32_t one = 1;
    bool ok = want ? bpf::map_update(endpoints_map_->get(), &k, &one, &be)
                   : bpf::map_delete(endpoints_map_->get(), &k, &be);
    if (!ok) {
      if (first) first = bpf_status(be);
    } else if (want) {
      in_map_.insert(e);
    } else {
      in_map_.erase(e);
    }
  };
  if (keys != nullptr) {
    for (const auto& e : *keys) reconcile(e);
    return first;
  }
  std::set<Endpoint> all(in_map_);
  all.insert(lingering_.begin(), lingering_.end());
  for (const auto& [e, n] : endpoint_refs_) all.insert(e);
  for (const auto& e : all) reconcile(e);
  return first;
}

Stats FastPath::stats() const {
  std::lock_guard l(mu_);
  Stats s;
  s.pods = pods_.size();
  s.veths = veth_links_.size();
  s.endpoints = in_map_.size();
  s.attached = uplink_link_.has_value();
  return s;
}

// Link changes (a pod's veth made or gone) trigger a sync after 100 ms, and again after 1, 3
// and 10 s: the pod's address comes after its veth (in the pod's namespace, whose changes this
// socket does not see), late on a loaded machine.
void FastPath::watch_links(std::stop_token stop) {
  mnl_socket* s = mnl_socket_open(NETLINK_ROUTE);
  if (s == nullptr || mnl_socket_bind(s, RTMGRP_LINK, MNL_SOCKET_AUTOPID) < 0) {
    spdlog::warn(
        "fast path: cannot listen to link changes ({}); syncing on the resync period "
        "only",
        std::strerror(errno));
    if (s) mnl_socket_close(s);
    return;
  }
  std::vector<Clock::time_point> due;
  char buf[8192];
  while (!stop.stop_requested()) {
    pollfd p{mnl_socket_get_fd(s), POLLIN, 0};
    int timeout = 200;
    if (!due.empty()) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(due.front() - Clock::now());
      timeout = static_cast<int>(std::clamp<long>(ms.count(), 0, 200));
    }
    if (::poll(&p, 1, timeout) > 0) {
      while (::recv(mnl_socket_get_fd(s), buf, sizeof buf, MSG_DONTWAIT) > 0) {
      }
      auto now = Clock::now();
      due = {now + std::chrono::milliseconds(100), now + std::chrono::seconds(1),
             now + std::chrono::seconds(3), now + std::chrono::seconds(10)};
    }
    if (!due.empty() && Clock::now() >= due.front()) {
      due.erase(due.begin());
      std::lock_guard l(mu_);
      (void)note_locked(sync_locked());
    }
  }
  mnl_socket_close(s);
}

}  // namespace skiff::fastpath
