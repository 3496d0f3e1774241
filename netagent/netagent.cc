#include "netagent/netagent.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/json_path.h"
#include "netagent/fastpath/fastpath.h"
#include "netagent/nft/masquerade.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/node.h"

namespace skiff::netagent {

using json = nlohmann::json;
using overlay::Backend;

namespace {

const proto::ResourceType& node_type() {
  static const proto::ResourceType t = proto::node_resource();
  return t;
}

}  // namespace

NodeFacts node_facts(const json& node) {
  NodeFacts f;
  f.name = str_at(node, {"metadata", "name"});
  f.pod_cidr = str_at(node, {"spec", "podCIDR"});
  const json* addrs = nullptr;
  if (node.is_object() && node.contains("status") && node["status"].is_object() &&
      node["status"].contains("addresses"))
    addrs = &node["status"]["addresses"];
  if (addrs && addrs->is_array())
    for (const auto& a : *addrs)
      if (str_at(a, {"type"}) == "InternalIP" && f.internal_ip.empty())
        f.internal_ip = str_at(a, {"address"});
  f.backend = str_at(node, {"metadata", "annotations", kAnnotationBackend});
  f.underlay_ip = str_at(node, {"metadata", "annotations", kAnnotationUnderlayIp});
  f.vtep_mac = str_at(node, {"metadata", "annotations", kAnnotationVtepMac});
  return f;
}

Result<overlay::Peer> peer_of(const NodeFacts& n, Backend backend) {
  overlay::Peer p;
  p.node = n.name;
  if (n.pod_cidr.empty()) return Status::unavailable("no spec.podCIDR yet");
  auto cidr = netlink::parse_ip4_net(n.pod_cidr);
  if (!cidr) return Status::invalid("spec.podCIDR \"" + n.pod_cidr + "\" is not an IPv4 CIDR");
  p.pod_cidr = *cidr;
  if (n.underlay_ip.empty())
    return Status::unavailable(std::string("no ") + kAnnotationUnderlayIp +
                               " annotation (is skiff-netagent running there?)");
  auto ip = netlink::parse_ip4(n.underlay_ip);
  if (!ip)
    return Status::invalid(std::string(kAnnotationUnderlayIp) + " \"" + n.underlay_ip +
                           "\" is not an IPv4 address");
  p.underlay = *ip;
  if (backend == Backend::kVxlan) {
    if (n.vtep_mac.empty())
      return Status::unavailable(std::string("no ") + kAnnotationVtepMac + " annotation" +
                                 (n.backend.empty() ? "" : " (its backend is " + n.backend + ")"));
    if (overlay::normalize_mac(n.vtep_mac).empty())
      return Status::invalid(std::string(kAnnotationVtepMac) + " \"" + n.vtep_mac +
                             "\" is not a MAC address");
    p.vtep_mac = n.vtep_mac;
  }
  return p;
}

std::optional<json> annotation_patch(const NodeFacts& self, Backend backend,
                                     const std::string& underlay, const std::string& vtep_mac) {
  json ann = json::object();
  const std::string b = overlay::backend_name(backend);
  if (self.backend != b) ann[kAnnotationBackend] = b;
  if (self.underlay_ip != underlay) ann[kAnnotationUnderlayIp] = underlay;
  if (self.vtep_mac != vtep_mac)
    ann[kAnnotationVtepMac] = vtep_mac.empty() ? json(nullptr) : json(vtep_mac);
  if (ann.empty()) return std::nullopt;
  return json{{"metadata", {{"annotations", ann}}}};
}

NetAgent::NetAgent(Options opts, std::shared_ptr<client::ApiClient> api, overlay::Kernel* kernel)
    : opts_(std::move(opts)), api_(std::move(api)), kernel_(kernel) {}

NetAgent::~NetAgent() { stop(); }

Status NetAgent::start() {
  if (opts_.node_name.empty()) return Status::invalid("--node-name: empty");
  if (!netlink::parse_ip4_net(opts_.cluster_cidr))
    return Status::invalid("--cluster-cidr \"" + opts_.cluster_cidr + "\": not an IPv4 CIDR");
  if (!opts_.node_ip.empty() && !netlink::parse_ip4(opts_.node_ip))
    return Status::invalid("--node-ip \"" + opts_.node_ip + "\": not an IPv4 address");
  if (opts_.vxlan_port < 1 || opts_.vxlan_port > 65535)
    return Status::invalid("--vxlan-port " + std::to_string(opts_.vxlan_port) + ": not 1..65535");
  if (opts_.vni < 1 || opts_.vni > 0xffffff)
    return Status::invalid("--vni " + std::to_string(opts_.vni) + ": not 1..16777215");

  informer_ = std::make_unique<client::Informer>(api_, node_type());
  client::InformerHandlers h;
  h.on_add = [this](const json&) { mark_dirty(); };
  h.on_delete = [this](const json&) { mark_dirty(); };
  // Kubelets update their Node's status every few seconds; only overlay facts matter here.
  h.on_update = [this](const json& o, const json& n) {
    NodeFacts a = node_facts(o), b = node_facts(n);
    if (a.pod_cidr != b.pod_cidr || a.internal_ip != b.internal_ip || a.backend != b.backend ||
        a.underlay_ip != b.underlay_ip || a.vtep_mac != b.vtep_mac)
      mark_dirty();
  };
  informer_->add_handlers(std::move(h));
  informer_->start();
  {
    std::lock_guard l(stats_mu_);
    last_loop_ = std::chrono::steady_clock::now();
  }
  worker_ = std::jthread([this](std::stop_token st) { run(st); });
  return Status();
}

void NetAgent::stop() {
  if (worker_.joinable()) {
    worker_.request_stop();
    cv_.notify_all();
    worker_.join();
  }
  if (informer_) informer_->stop();
}

void NetAgent::mark_dirty() {
  {
    std::lock_guard l(mu_);
    dirty_ = true;
  }
  cv_.notify_all();
}

void NetAgent::run(std::stop_token stop) {
  std::chrono::milliseconds retry{1000};
  std::string last_wait;
  auto last_wait_log = std::chrono::steady_clock::now() - std::chrono::hours(1);
  while (!stop.stop_requested()) {
    {
      std::lock_guard l(mu_);
      dirty_ = false;
    }
    auto t0 = std::chrono::steady_clock::now();
    Status s = sync_once();
    auto t1 = std::chrono::steady_clock::now();
    std::chrono::milliseconds wait = opts_.resync_period;
    if (s.code() == Code::kUnavailable) {
      // Waiting for the Node (podCIDR, InternalIP): say so now and then, poll soon.
      if (s.message() != last_wait || t1 - last_wait_log > std::chrono::seconds(10)) {
        spdlog::info("{}", s.message());
        last_wait = s.message();
        last_wait_log = t1;
      }
      std::lock_guard l(stats_mu_);
      waiting_for_ = s.message();
      last_loop_ = t1;
      wait = std::min(wait, std::chrono::milliseconds(1000));
    } else {
      double secs = std::chrono::duration<double>(t1 - t0).count();
      std::lock_guard l(stats_mu_);
      waiting_for_.clear();
      last_loop_ = t1;
      ++syncs_;
      last_sync_seconds_ = secs;
      sync_seconds_sum_ += secs;
      if (overlay_) peers_ = overlay_->stats().peers;
      if (!s) {
        ++sync_errors_;
        spdlog::warn("sync failed (retrying in {}ms): {}", retry.count(), s.to_string());
        wait = std::min(wait, retry);
        retry = std::min(retry * 2, std::chrono::milliseconds(opts_.resync_period));
      } else {
        retry = std::chrono::milliseconds(1000);
      }
    }
    std::unique_lock l(mu_);
    cv_.wait_for(l, stop, wait, [this] { return dirty_; });
  }
}

Status NetAgent::sync_once() {
  const std::string& name = opts_.node_name;
  if (!informer_->has_synced()) return Status::unavailable("waiting for the first Node list");
  auto self_obj = informer_->get(name);
  if (!self_obj)
    return Status::unavailable("waiting for Node " + name +
                               " to exist (registered by its skiff-kubelet)");
  NodeFacts self = node_facts(*self_obj);
  if (self.pod_cidr.empty())
    return Status::unavailable("waiting for Node " + name +
                               " to have spec.podCIDR (assigned by skiff-controller-manager)");
  auto cidr = netlink::parse_ip4_net(self.pod_cidr);
  if (!cidr)
    return Status::invalid("Node " + name + " spec.podCIDR \"" + self.pod_cidr +
                           "\" is not an IPv4 CIDR");
  std::string underlay = opts_.node_ip.empty() ? self.internal_ip : opts_.node_ip;
  if (underlay.empty())
    return Status::unavailable("waiting for Node " + name +
                               " to report an InternalIP address (or pass --node-ip)");
  auto uip = netlink::parse_ip4(underlay);
  if (!uip)
    return Status::invalid("Node " + name + " InternalIP \"" + underlay +
                           "\" is not an IPv4 address (pass --node-ip)");

  {
    std::lock_guard l(stats_mu_);
    underlay_ip_ = underlay;
  }
  overlay::Config cfg;
  cfg.backend = opts_.backend;
  cfg.vni = opts_.vni;
  cfg.port = opts_.vxlan_port;
  cfg.underlay_ip = *uip;
  cfg.underlay_dev = opts_.iface;
  cfg.pod_cidr = *cidr;
  if (!overlay_ || overlay_->config().pod_cidr != cfg.pod_cidr ||
      overlay_->config().underlay_ip != cfg.underlay_ip) {
    spdlog::info("node {}: pod CIDR {}, underlay {}{}, backend {}", name, cidr->str(), underlay,
                 opts_.iface.empty() ? "" : " dev " + opts_.iface,
                 overlay::backend_name(opts_.backend));
    overlay_ = std::make_unique<overlay::Overlay>(kernel_, cfg);
  }

  // Each part is tried even when another failed (a refused annotation must not stop the
  // routes, a broken device must not stop the masquerade rule); the first error is returned.
  Status st;
  auto note = [&st](Status s) {
    if (!s && st) st = std::move(s);
  };
  // The device first: its MAC is what the other nodes need from us.
  auto dev = overlay_->ensure_device();
  if (!dev) {
    note(dev.status());
  } else if (auto patch = annotation_patch(self, opts_.backend, underlay, dev->mac)) {
    auto r = api_->patch(node_type(), "", name, *patch, client::PatchType::kMerge);
    if (!r)
      note(r.status().with_context("annotate Node " + name));
    else
      spdlog::info("annotated Node {}: {}", name, patch->dump());
  }

  if (dev) {
    std::vector<overlay::Peer> peers;
    std::vector<std::string> skipped;
    for (const auto& n : informer_->list()) {
      NodeFacts f = node_facts(n);
      if (f.name == name) continue;
      auto p = peer_of(f, opts_.backend);
      if (!p) {
        skipped.push_back("node " + f.name + ": " + p.status().message());
        continue;
      }
      peers.push_back(*p);
    }
    note(overlay_->sync(peers));
    for (const auto& why : overlay_->stats().skipped_why) skipped.push_back(why);
    // Log skips when they change, not on every resync.
    std::set<std::string> now(skipped.begin(), skipped.end());
    for (const auto& s : now)
      if (!last_skipped_.count(s)) spdlog::info("not routing {}", s);
    last_skipped_ = std::move(now);
    std::lock_guard l(stats_mu_);
    skipped_total_ = static_cast<int>(skipped.size());
  }
  if (opts_.masquerade) note(nft::sync_masquerade(opts_.cluster_cidr));
  if (opts_.fast_path && dev) sync_fast_path(*dev, *cidr);
  return st;
}

// Not part of the sync's status: without the fast path pod traffic takes the kernel's path,
// which the sync above keeps working. The fast path logs its own failures.
void NetAgent::sync_fast_path(const overlay::Device& dev, const netlink::Ip4Net& pod_cidr) {
  fastpath::Options fo;
  fo.uplink = opts_.backend == overlay::Backend::kHostGw ? dev.underlay_name
                                                         : std::string(overlay::kVxlanDevice);
  fo.cluster_cidr = *netlink::parse_ip4_net(opts_.cluster_cidr);  // validated at start()
  fo.pod_cidr = pod_cidr;
  (void)opts_.fast_path->configure(fo);
}

std::string NetAgent::metrics_text() const {
  std::lock_guard l(stats_mu_);
  std::ostringstream o;
  o << "# HELP skiff_netagent_syncs_total Overlay and masquerade syncs run.\n"
    << "# TYPE skiff_netagent_syncs_total counter\n"
    << "skiff_netagent_syncs_total " << syncs_ << "\n"
    << "# HELP skiff_netagent_sync_errors_total Syncs that ended in an error.\n"
    << "# TYPE skiff_netagent_sync_errors_total counter\n"
    << "skiff_netagent_sync_errors_total " << sync_errors_ << "\n"
    << "# HELP skiff_netagent_sync_duration_seconds Time a sync took.\n"
    << "# TYPE skiff_netagent_sync_duration_seconds summary\n"
    << "skiff_netagent_sync_duration_seconds_sum " << sync_seconds_sum_ << "\n"
    << "skiff_netagent_sync_duration_seconds_count " << syncs_ << "\n"
    << "# HELP skiff_netagent_last_sync_duration_seconds Time the last sync took.\n"
    << "# TYPE skiff_netagent_last_sync_duration_seconds gauge\n"
    << "skiff_netagent_last_sync_duration_seconds " << last_sync_seconds_ << "\n"
    << "# HELP skiff_netagent_peers Nodes routed to.\n"
    << "# TYPE skiff_netagent_peers gauge\n"
    << "skiff_netagent_peers " << peers_ << "\n"
    << "# HELP skiff_netagent_peers_skipped Nodes not routed to (missing or bad data).\n"
    << "# TYPE skiff_netagent_peers_skipped gauge\n"
    << "skiff_netagent_peers_skipped " << skipped_total_ << "\n"
    << "# HELP skiff_netagent_waiting 1 while waiting for this Node's podCIDR or address.\n"
    << "# TYPE skiff_netagent_waiting gauge\n"
    << "skiff_netagent_waiting " << (waiting_for_.empty() ? 0 : 1) << "\n";
  if (opts_.fast_path) {
    auto fs = opts_.fast_path->stats();
    o << "# HELP skiff_netagent_fast_path_attached 1 while the fast path's program is on the "
         "uplink.\n"
      << "# TYPE skiff_netagent_fast_path_attached gauge\n"
      << "skiff_netagent_fast_path_attached " << (fs.attached ? 1 : 0) << "\n"
      << "# HELP skiff_netagent_fast_path_pods Pods the fast path delivers to.\n"
      << "# TYPE skiff_netagent_fast_path_pods gauge\n"
      << "skiff_netagent_fast_path_pods " << fs.pods << "\n"
      << "# HELP skiff_netagent_fast_path_veths Pod veths with the fast path's program.\n"
      << "# TYPE skiff_netagent_fast_path_veths gauge\n"
      << "skiff_netagent_fast_path_veths " << fs.veths << "\n"
      << "# HELP skiff_netagent_fast_path_endpoints Service endpoints whose replies take the "
         "kernel's path.\n"
      << "# TYPE skiff_netagent_fast_path_endpoints gauge\n"
      << "skiff_netagent_fast_path_endpoints " << fs.endpoints << "\n";
  }
  return o.str();
}

std::string NetAgent::underlay_ip() const {
  std::lock_guard l(stats_mu_);
  return underlay_ip_;
}

bool NetAgent::healthy() const {
  std::lock_guard l(stats_mu_);
  auto limit = 2 * opts_.resync_period + std::chrono::seconds(30);
  return std::chrono::steady_clock::now() - last_loop_ < limit;
}

}  // namespace skiff::netagent
