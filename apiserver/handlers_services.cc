// Services: the address allocator's set-up (rebuilt from the stored Services at start) and the
// `kubernetes` Service / Endpoints in `default`, created at start and repaired on a timer like
// kube-apiserver's controlplane reconciler. The per-write allocation hooks live in
// handlers_write.cc (create_object, update_object, delete_object).
#include <spdlog/spdlog.h>

#include <functional>
#include <map>
#include <optional>
#include <random>
#include <unordered_map>

#include "apiserver/api_impl.h"
#include "apiserver/store/store.h"
#include "proto/registry.h"

namespace skiff::apiserver {

namespace {

constexpr const char* kReservations = "/registry/skiff.io/allocations/";
constexpr const char* kIpReservations = "/registry/skiff.io/allocations/clusterips/";
constexpr const char* kPortReservations = "/registry/skiff.io/allocations/nodeports/";
std::string ip_reservation(const std::string& ip) { return kIpReservations + ip; }
std::string port_reservation(int port) { return kPortReservations + std::to_string(port); }
// The value a reservation key stands for, into `ips` or `ports`.
void reserved_value(const std::string& key, std::vector<std::string>* ips,
                    std::vector<int>* ports) {
  if (key.starts_with(kIpReservations)) {
    ips->push_back(key.substr(std::string_view(kIpReservations).size()));
  } else if (key.starts_with(kPortReservations)) {
    ports->push_back(std::atoi(key.c_str() + std::string_view(kPortReservations).size()));
  }
}

}  // namespace

bool ApiImpl::init_services(std::string* error) {
  if (services_ == nullptr) return true;
  auto cidr = parse_service_cidr(opts_.service_cluster_ip_range);
  if (!cidr.is_ok()) {
    if (error) *error = "--service-cluster-ip-range: " + cidr.status().message();
    return false;
  }
  auto ports = parse_port_range(opts_.service_node_port_range);
  if (!ports.is_ok()) {
    if (error) *error = "--service-node-port-range: " + ports.status().message();
    return false;
  }
  svc_alloc_ = std::make_unique<ServiceAllocator>(*cidr, *ports, std::random_device{}());
  // The followed prefixes are fixed before subscribing: the callback reads them without a lock.
  pcs_ = reg_.find("scheduling.k8s.io", "v1", "priorityclasses");
  svc_prefix_ = list_prefix(*services_, "");
  if (namespaces_ != nullptr) ns_prefix_ = list_prefix(*namespaces_, "");
  if (pcs_ != nullptr) pc_prefix_ = list_prefix(*pcs_, "");
  // Subscribed before the lists, so no write between them is missed (the buffer keeps them).
  follow_sub_ = store_->subscribe([this](const store::Event& ev) { follow_store_event(ev); });
  // The stored Services are the truth: mark what they hold so a restart never hands out an
  // address twice.
  auto page = store_->list(svc_prefix_, 0, 0, "");
  if (!page.is_ok()) {
    if (error)
      *error = "listing Services to rebuild the address allocator: " + page.status().to_string();
    return false;
  }
  std::vector<json> all;
  for (const auto& kv : page->items) {
    auto obj = read_object(kv);
    if (obj.ok())
      all.push_back(std::move(obj.value()));
    else
      spdlog::warn("rebuilding the service allocator: skipping {}: {}", kv.key,
                   obj.error().message);
  }
  for (const auto& p : svc_alloc_->rebuild(all))
    spdlog::warn("rebuilding the service allocator: {} (left as it is)", p);
  spdlog::info("service allocator: {} Services, {} ClusterIPs of {} and {} node ports of {} in use",
               all.size(), svc_alloc_->ips_used(), cidr->str(), svc_alloc_->ports_used(),
               ports->str());
  // Values other servers reserved for Services not written yet.
  auto reserved = store_->list(kReservations, page->revision, 0, "");
  if (!reserved.is_ok()) {
    if (error) *error = "listing service reservations: " + reserved.status().to_string();
    return false;
  }
  {
    std::vector<std::string> ips;
    std::vector<int> ports;
    for (const auto& kv : reserved->items) reserved_value(kv.key, &ips, &ports);
    svc_alloc_->hold(ips, ports);
  }
  // Namespaces and PriorityClasses at the same revision, through the follower's own code.
  std::vector<store::Event> listed;
  for (const std::string& prefix : {ns_prefix_, pc_prefix_}) {
    if (prefix.empty()) continue;
    auto list = store_->list(prefix, page->revision, 0, "");
    if (!list.is_ok()) {
      if (error) *error = "listing " + prefix + ": " + list.status().to_string();
      return false;
    }
    for (auto& kv : list->items) listed.push_back({store::EventType::kPut, std::move(kv)});
  }
  std::lock_guard<std::mutex> lock(follow_mu_);
  pc_known_ = std::make_shared<const std::map<std::string, PriorityClassInfo>>();
  for (const auto& ev : listed) follow_locked(ev, followed(ev.kv.key));
  follow_after_ = page->revision;
  auto buffered = std::move(follow_buffer_);
  follow_buffer_.clear();
  for (const auto& ev : buffered)
    if (ev.revision() > page->revision) follow_locked(ev, followed(ev.kv.key));
  return true;
}

ApiImpl::Followed ApiImpl::followed(const std::string& key) const {
  auto under = [&](const std::string& prefix) {
    return !prefix.empty() && key.starts_with(prefix);
  };
  if (under(svc_prefix_)) return Followed::kService;
  if (under(ns_prefix_)) return Followed::kNamespace;
  if (under(pc_prefix_)) return Followed::kPriorityClass;
  if (key.starts_with(kReservations)) return Followed::kReservation;
  return Followed::kNone;
}

void ApiImpl::follow_store_event(const store::Event& ev) {
  const Followed what = followed(ev.kv.key);
  if (what == Followed::kNone) return;
  std::lock_guard<std::mutex> lock(follow_mu_);
  if (follow_after_ < 0) {
    follow_buffer_.push_back(ev);
    return;
  }
  if (ev.revision() > follow_after_) follow_locked(ev, what);
}

void ApiImpl::follow_locked(const store::Event& ev, Followed what) {
  if (what == Followed::kReservation) {
    // Another server's reservation: its value is taken until the key goes (with its Service,
    // or removed by the repair), also before this server sees the Service itself.
    std::vector<std::string> ips;
    std::vector<int> ports;
    reserved_value(ev.kv.key, &ips, &ports);
    if (ev.type == store::EventType::kDelete)
      svc_alloc_->free(ips, ports);
    else
      svc_alloc_->hold(ips, ports);
    return;
  }
  // Undecodable values were refused on the way in; one that is there anyway changes nothing.
  auto decode = [&](const store::KeyValue& kv) -> std::optional<json> {
    auto obj = read_object(kv);
    if (obj.ok()) return std::move(obj.value());
    return std::nullopt;
  };
  std::optional<json> old = ev.prev ? decode(*ev.prev) : std::nullopt;
  std::optional<json> now;
  if (ev.type == store::EventType::kDelete) {
    if (!old) old = decode(ev.kv);
  } else {
    now = decode(ev.kv);
  }
  if (what == Followed::kService) {
    svc_alloc_->follow(old ? &*old : nullptr, now ? &*now : nullptr);
  } else if (what == Followed::kPriorityClass) {
    // Copied on write: admissions keep reading the snapshot they took (classes change rarely).
    auto next = std::make_shared<std::map<std::string, PriorityClassInfo>>(*pc_known_);
    if (now)
      (*next)[meta_string(*now, "name")] = priority_class_info(*now);
    else if (old)
      next->erase(meta_string(*old, "name"));
    pc_known_ = std::move(next);
  } else if (now) {
    ns_active_[meta_string(*now, "name")] = !is_terminating(*now);
  } else if (old) {
    ns_active_.erase(meta_string(*old, "name"));
  }
}

std::shared_ptr<const std::map<std::string, PriorityClassInfo>> ApiImpl::priority_classes_known() {
  std::lock_guard<std::mutex> lock(follow_mu_);
  if (follow_after_ < 0 || pcs_ == nullptr) return nullptr;
  return pc_known_;
}

bool ApiImpl::namespace_known_active(const std::string& ns) {
  std::lock_guard<std::mutex> lock(follow_mu_);
  auto it = ns_active_.find(ns);
  return follow_after_ >= 0 && it != ns_active_.end() && it->second;
}

ApiResult<bool> ApiImpl::reserve(const AllocTxn& txn, const std::string& owner, AllocTxn* lost) {
  std::vector<std::string> made_ips;
  std::vector<int> made_ports;
  auto take = [&](const std::string& key) -> ApiResult<bool> {
    auto kv = store_->create(key, owner);
    if (kv.is_ok()) return true;
    if (kv.status().code() == Code::kAlreadyExists) return false;
    return errors::from_store(kv.status(), *services_, owner);
  };
  for (const auto& ip : txn.ips) {
    auto r = take(ip_reservation(ip));
    if (!r.ok() || !r.value()) {
      unreserve(made_ips, made_ports);
      if (r.ok()) lost->ips.push_back(ip);
      return r;
    }
    made_ips.push_back(ip);
  }
  for (int port : txn.ports) {
    auto r = take(port_reservation(port));
    if (!r.ok() || !r.value()) {
      unreserve(made_ips, made_ports);
      if (r.ok()) lost->ports.push_back(port);
      return r;
    }
    made_ports.push_back(port);
  }
  return true;
}

ApiResult<AllocTxn> ApiImpl::allocate_reserved(
    json& obj, const std::string& owner, bool dry_run,
    const std::function<ApiResult<AllocTxn>()>& allocate) {
  const json spec_before = obj.value("spec", json::object());
  // On a shared store another server may have taken a picked value first: it is marked held
  // and the allocation runs again (a requested value then fails as already allocated).
  for (int tries = 0;; ++tries) {
    auto txn = allocate();
    if (!txn.ok() || dry_run || !store_->shared()) return txn;
    AllocTxn lost;
    auto r = reserve(txn.value(), owner, &lost);
    if (r.ok() && r.value()) return txn;
    svc_alloc_->revert(txn.value());
    svc_alloc_->hold(lost.ips, lost.ports);  // after the revert, which would free it again
    obj["spec"] = spec_before;
    if (!r.ok()) return r.error();
    if (tries == 8)
      return errors::internal("allocating addresses for service " + owner +
                              ": other API servers took every value picked");
  }
}

void ApiImpl::unreserve(const std::vector<std::string>& ips, const std::vector<int>& ports) {
  std::vector<std::string> keys;
  for (const auto& ip : ips) keys.push_back(ip_reservation(ip));
  for (int p : ports) keys.push_back(port_reservation(p));
  for (const auto& key : keys) {
    auto rm = store_->remove(key, 0);
    // Left behind, the repair removes it once no Service holds the value.
    if (!rm.is_ok() && rm.status().code() != Code::kNotFound)
      spdlog::warn("removing the reservation {}: {}", key, rm.status().to_string());
  }
}

void ApiImpl::release_service_values(const json& svc) {
  svc_alloc_->release_service(svc);
  if (!store_->shared()) return;
  std::string ip = ServiceAllocator::held_ip_of(svc);
  auto ports = ServiceAllocator::held_ports_of(svc);
  unreserve(ip.empty() ? std::vector<std::string>{} : std::vector<std::string>{ip},
            std::vector<int>(ports.begin(), ports.end()));
}

void ApiImpl::repair_reservations() {
  if (!store_->shared() || svc_alloc_ == nullptr) return;
  auto svcs = store_->list(svc_prefix_, 0, 0, "");
  if (!svcs.is_ok()) return;
  auto res = store_->list(kReservations, svcs->revision, 0, "");
  if (!res.is_ok()) return;
  std::map<std::string, std::string> held;  // reservation key -> the Service holding it
  for (const auto& kv : svcs->items) {
    auto obj = read_object(kv);
    if (!obj.ok()) continue;
    std::string owner = kv.key.substr(svc_prefix_.size());
    if (std::string ip = ServiceAllocator::held_ip_of(obj.value()); !ip.empty())
      held[ip_reservation(ip)] = owner;
    for (int p : ServiceAllocator::held_ports_of(obj.value())) held[port_reservation(p)] = owner;
  }
  std::map<std::string, int64_t> orphans;
  for (const auto& kv : res->items) {
    if (held.erase(kv.key)) continue;
    auto seen = orphans_seen_.find(kv.key);
    if (seen != orphans_seen_.end() && seen->second == kv.mod_revision) {
      auto rm = store_->remove(kv.key, kv.mod_revision);
      if (rm.is_ok()) spdlog::info("removed the reservation {}: no Service holds it", kv.key);
    } else {
      orphans[kv.key] = kv.mod_revision;
    }
  }
  orphans_seen_ = std::move(orphans);
  // Values held without a reservation (Services from before reservations existed).
  for (const auto& [key, owner] : held) {
    auto made = store_->create(key, owner);
    if (made.is_ok()) spdlog::info("reserved {} for service {}", key, owner);
  }
}

namespace {

bool has_label(const json& obj, const char* k, const char* v) {
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return false;
  auto l = m->find("labels");
  return l != m->end() && l->is_object() && l->value(k, json()) == v;
}

}  // namespace

std::string ApiImpl::reconcile_kubernetes_service() {
  if (services_ == nullptr || endpoints_ == nullptr || svc_alloc_ == nullptr) return "";
  std::string ip;
  int port = 0;
  {
    std::lock_guard<std::mutex> lock(k8s_mu_);
    ip = k8s_ip_;
    port = k8s_port_;
  }
  std::string problems;
  auto note = [&](const std::string& what) {
    if (!problems.empty()) problems += "; ";
    problems += what;
  };
  const json want_ports =
      json::array({{{"name", "https"}, {"port", 443}, {"protocol", "TCP"}, {"targetPort", port}}});
  const json labels = {{"component", "apiserver"}, {"provider", "kubernetes"}};

  // The Service.
  const std::string skey = object_key(*services_, "default", "kubernetes");
  for (int attempt = 0; attempt < 4; ++attempt) {
    auto kv = store_->get(skey);
    if (!kv.is_ok() && kv.status().code() == Code::kNotFound) {
      json svc = {
          {"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata", {{"name", "kubernetes"}, {"namespace", "default"}, {"labels", labels}}},
          {"spec",
           {{"type", "ClusterIP"},
            {"clusterIP", svc_alloc_->first_ip()},
            {"sessionAffinity", "None"},
            {"ports", want_ports}}}};
      auto norm = normalize(svc, *services_, WriteOptions{}, nullptr);
      if (!norm.ok()) {
        note("the kubernetes Service: " + norm.error().message);
        break;
      }
      auto made = create_object(*services_, "default", std::move(norm.value()), WriteOptions{});
      if (made.ok()) {
        spdlog::info("created the kubernetes Service (ClusterIP {}, 443/TCP -> {})",
                     svc_alloc_->first_ip(), port);
        break;
      }
      if (made.error().code == 409) continue;
      note("creating the kubernetes Service: " + made.error().message);
      break;
    }
    if (!kv.is_ok()) {
      note("reading the kubernetes Service: " + kv.status().to_string());
      break;
    }
    auto old = read_object(*kv);
    if (!old.ok()) {
      note("reading the kubernetes Service: " + old.error().message);
      break;
    }
    json cur = old.value();
    json& spec = cur["spec"];
    bool ports_ok = spec.value("ports", json()).size() == 1 && [&] {
      const json& p = spec["ports"][0];
      return p.value("name", json()) == "https" && p.value("port", json()) == 443 &&
             p.value("protocol", json()) == "TCP" && p.value("targetPort", json()) == port;
    }();
    if (ports_ok && spec.value("type", json()) == "ClusterIP" &&
        has_label(cur, "component", "apiserver") && has_label(cur, "provider", "kubernetes"))
      break;
    spec["type"] = "ClusterIP";
    spec["ports"] = want_ports;
    cur["metadata"]["labels"]["component"] = "apiserver";
    cur["metadata"]["labels"]["provider"] = "kubernetes";
    auto norm = normalize(cur, *services_, WriteOptions{}, nullptr);
    if (!norm.ok()) {
      note("repairing the kubernetes Service: " + norm.error().message);
      break;
    }
    auto up = update_object(*services_, "", std::move(norm.value()), old.value(), kv->mod_revision,
                            WriteOptions{});
    if (up.ok()) {
      spdlog::info("repaired the kubernetes Service (type, ports, labels)");
      break;
    }
    if (up.error().code == 409) continue;
    note("repairing the kubernetes Service: " + up.error().message);
    break;
  }

  // Its Endpoints: the API server's advertise address and port (no selector: nobody else
  // writes them).
  const json subsets = json::array(
      {{{"addresses", json::array({{{"ip", ip}}})},
        {"ports", json::array({{{"name", "https"}, {"port", port}, {"protocol", "TCP"}}})}}});
  const std::string ekey = object_key(*endpoints_, "default", "kubernetes");
  for (int attempt = 0; attempt < 4; ++attempt) {
    auto kv = store_->get(ekey);
    if (!kv.is_ok() && kv.status().code() == Code::kNotFound) {
      json ep = {{"apiVersion", "v1"},
                 {"kind", "Endpoints"},
                 {"metadata",
                  {{"name", "kubernetes"},
                   {"namespace", "default"},
                   {"labels", {{"endpointslice.kubernetes.io/skip-mirror", "true"}}}}},
                 {"subsets", subsets}};
      auto norm = normalize(ep, *endpoints_, WriteOptions{}, nullptr);
      if (!norm.ok()) {
        note("the kubernetes Endpoints: " + norm.error().message);
        break;
      }
      auto made = create_object(*endpoints_, "default", std::move(norm.value()), WriteOptions{});
      if (made.ok() || made.error().code != 409) {
        if (!made.ok()) note("creating the kubernetes Endpoints: " + made.error().message);
        break;
      }
      continue;
    }
    if (!kv.is_ok()) {
      note("reading the kubernetes Endpoints: " + kv.status().to_string());
      break;
    }
    auto old = read_object(*kv);
    if (!old.ok()) {
      note("reading the kubernetes Endpoints: " + old.error().message);
      break;
    }
    json cur = old.value();
    // Compare in normalized form (defaults filled the same way as ours would be).
    json want = cur;
    want["subsets"] = subsets;
    auto norm = normalize(want, *endpoints_, WriteOptions{}, nullptr);
    if (!norm.ok()) {
      note("repairing the kubernetes Endpoints: " + norm.error().message);
      break;
    }
    if (norm.value().value("subsets", json()) == cur.value("subsets", json())) break;
    auto up = update_object(*endpoints_, "", std::move(norm.value()), old.value(), kv->mod_revision,
                            WriteOptions{});
    if (up.ok()) {
      spdlog::info("repaired the kubernetes Endpoints ({}:{})", ip, port);
      break;
    }
    if (up.error().code == 409) continue;
    note("repairing the kubernetes Endpoints: " + up.error().message);
    break;
  }
  return problems;
}

void ApiImpl::start_kubernetes_service(const std::string& advertise_ip, int port) {
  {
    std::lock_guard<std::mutex> lock(k8s_mu_);
    if (k8s_stop_ || k8s_thread_.joinable()) return;
    k8s_ip_ = advertise_ip;
    k8s_port_ = port;
  }
  if (auto err = reconcile_kubernetes_service(); !err.empty()) spdlog::warn("{}", err);
  k8s_thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(k8s_mu_);
    while (!k8s_stop_) {
      k8s_cv_.wait_for(lock, std::chrono::milliseconds(opts_.kubernetes_service_interval_ms));
      if (k8s_stop_) break;
      lock.unlock();
      if (auto err = reconcile_kubernetes_service(); !err.empty()) spdlog::warn("{}", err);
      repair_reservations();
      lock.lock();
    }
  });
}

}  // namespace skiff::apiserver
