#include "controllers/loadbalancer/load_balancer.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "common/json_path.h"
#include "controllers/api_util.h"
#include "controllers/workers.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/configmap.h"
#include "proto/registry.h"
#include "proto/service.h"

namespace skiff::controllers::loadbalancer {

namespace {

constexpr auto service_type = &resource_type<proto::service_resource>;

constexpr auto configmap_type = &resource_type<proto::configmap_resource>;

// The ingress list of status.loadBalancer (an empty array when absent or malformed).
json ingress_of(const json& svc) {
  const json* v = find_path(svc, {"status", "loadBalancer", "ingress"});
  return v && v->is_array() ? *v : json::array();
}

// The first ingress entry's ip ("" when none).
std::string current_ip(const json& svc) {
  for (const auto& i : ingress_of(svc))
    if (std::string ip = str_at(i, {"ip"}); !ip.empty()) return ip;
  return "";
}

std::string describe_ranges(const std::vector<AddrRange>& rs) {
  if (rs.empty()) return "(empty)";
  std::string out;
  for (const auto& r : rs) {
    if (!out.empty()) out += ", ";
    out += format_ipv4(r.first);
    if (r.last != r.first) out += "-" + format_ipv4(r.last);
  }
  return out;
}

class ApiLbClient : public LbClient {
 public:
  ApiLbClient(client::Informer& services, client::Informer& configmaps,
              std::shared_ptr<client::ApiClient> api, std::string cm_key)
      : services_(services),
        configmaps_(configmaps),
        api_(std::move(api)),
        cm_key_(std::move(cm_key)) {}
  std::optional<json> get_service(const std::string& key) override { return services_.get(key); }
  std::vector<json> list_services() override { return services_.list(); }
  std::optional<json> get_pool_configmap() override { return configmaps_.get(cm_key_); }
  Status write_status(const json& svc, const json& lb) override {
    json obj = svc;
    if (!obj["status"].is_object()) obj["status"] = json::object();
    obj["status"]["loadBalancer"] = lb;
    auto r = api_->update_status(service_type(), obj);
    return r ? Status::ok()
             : r.status().with_context("writing status.loadBalancer of service " +
                                       client::object_key(svc));
  }

 private:
  client::Informer& services_;
  client::Informer& configmaps_;
  std::shared_ptr<client::ApiClient> api_;
  std::string cm_key_;
};

}  // namespace

bool handles(const json& svc) {
  if (str_at(svc, {"spec", "type"}) != "LoadBalancer") return false;
  const json* cls = find_path(svc, {"spec", "loadBalancerClass"});
  if (!cls || cls->is_null()) return true;
  return cls->is_string() && (cls->get<std::string>().empty() || *cls == kLoadBalancerClass);
}

Result<std::unique_ptr<LoadBalancerController>> LoadBalancerController::create(
    LoadBalancerOptions opts) {
  std::vector<std::string> entries;
  for (const auto& p : opts.pool)
    for (auto& e : split_pool_text(p)) entries.push_back(std::move(e));
  auto parsed = parse_pool(entries);
  if (!parsed.errors.empty()) {
    std::string msg = "--lb-pool: ";
    for (size_t i = 0; i < parsed.errors.size(); ++i) msg += (i ? "; " : "") + parsed.errors[i];
    return Status::invalid(msg);
  }
  if (opts.workers < 1) opts.workers = 1;
  return std::unique_ptr<LoadBalancerController>(
      new LoadBalancerController(std::move(opts), std::move(parsed.ranges)));
}

LoadBalancerController::LoadBalancerController(LoadBalancerOptions opts,
                                               std::vector<AddrRange> flag_ranges)
    : opts_(std::move(opts)),
      flag_ranges_(std::move(flag_ranges)),
      queue_(std::make_unique<client::WorkQueue>(opts_.queue)) {
  stats_.depth = [this] { return queue_->len(); };
  pool_.set_ranges(flag_ranges_);
}

LoadBalancerController::~LoadBalancerController() { queue_->shut_down(); }

void LoadBalancerController::set_clients(LbClient* client, EventSink* events) {
  client_ = client;
  events_ = events;
}

Status LoadBalancerController::init(ControllerContext& ctx) {
  auto& svcs = ctx.informers->informer(service_type());
  auto& cms = ctx.informers->informer(configmap_type());
  owned_client_ = std::make_unique<ApiLbClient>(
      svcs, cms, ctx.api, opts_.configmap_namespace + "/" + opts_.configmap_name);
  set_clients(owned_client_.get(), ctx.events);
  svcs.add_handlers({[this](const json& s) { enqueue_service(s); },
                     [this](const json&, const json& s) { enqueue_service(s); },
                     [this](const json& s) { enqueue_service(s); }});
  cms.add_handlers({[this](const json& c) { enqueue_configmap(c); },
                    [this](const json&, const json& c) { enqueue_configmap(c); },
                    [this](const json& c) { enqueue_configmap(c); }});
  return Status::ok();
}

void LoadBalancerController::enqueue_service(const json& svc) {
  queue_->add(client::object_key(svc));
}

void LoadBalancerController::enqueue_configmap(const json& cm) {
  if (client::object_key(cm) == opts_.configmap_namespace + "/" + opts_.configmap_name)
    queue_->add(kPoolKey);
}

std::string LoadBalancerController::address_of(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto ip = pool_.address_of(key);
  return ip ? format_ipv4(*ip) : "";
}

uint64_t LoadBalancerController::used() const {
  std::lock_guard lock(mu_);
  return pool_.used();
}

uint64_t LoadBalancerController::capacity() const {
  std::lock_guard lock(mu_);
  return pool_.capacity();
}

void LoadBalancerController::reload_pool() {
  auto cm = client_->get_pool_configmap();
  std::string text = cm ? str_at(*cm, {"data", "pool"}) : "";
  auto parsed = parse_pool(split_pool_text(text));
  std::vector<AddrRange> ranges = flag_ranges_;
  ranges.insert(ranges.end(), parsed.ranges.begin(), parsed.ranges.end());
  bool report = false;
  bool changed = false;
  std::string now;
  {
    std::lock_guard lock(mu_);
    if (!parsed.errors.empty()) report = reported_bad_pool_.insert(text).second;
    auto before = pool_.ranges();
    pool_.set_ranges(std::move(ranges));
    changed = pool_.ranges() != before;
    now = describe_ranges(pool_.ranges());
  }
  if (report) {
    std::string msg =
        "ConfigMap " + opts_.configmap_namespace + "/" + opts_.configmap_name + " key pool: ";
    for (size_t i = 0; i < parsed.errors.size(); ++i) msg += (i ? "; " : "") + parsed.errors[i];
    msg += "; the other entries are used";
    spdlog::warn("loadbalancer: {}", msg);
    if (events_ && cm) events_->event(*cm, "ConfigMap", true, "InvalidPool", msg);
  }
  if (!changed) return;
  spdlog::info("loadbalancer: address pool is now {}", now);
  // Waiting Services may fit now; Services whose address left the pool must move.
  for (const auto& s : client_->list_services())
    if (handles(s) || !current_ip(s).empty()) queue_->add(client::object_key(s));
}

void LoadBalancerController::rebuild() {
  size_t kept = 0;
  auto services = client_->list_services();
  // Oldest first, so that when two Services claim one address the older keeps it.
  std::sort(services.begin(), services.end(), [](const json& a, const json& b) {
    auto ta = str_at(a, {"metadata", "creationTimestamp"});
    auto tb = str_at(b, {"metadata", "creationTimestamp"});
    return ta != tb ? ta < tb : client::object_key(a) < client::object_key(b);
  });
  for (const auto& s : services) {
    if (!handles(s)) continue;
    std::string key = client::object_key(s);
    std::string ip_text = current_ip(s);
    if (ip_text.empty()) continue;
    auto ip = parse_ipv4(ip_text);
    if (!ip) continue;  // its sync replaces it
    std::lock_guard lock(mu_);
    if (auto st = pool_.assign(key, *ip); st) {
      ++kept;
    } else {
      spdlog::warn("loadbalancer: service {} has {} in its status, not kept: {}", key, ip_text,
                   st.message());
    }
  }
  std::lock_guard lock(mu_);
  spdlog::info("loadbalancer: {} addresses already assigned ({} of {} in the pool {} in use)", kept,
               pool_.used(), pool_.capacity(), describe_ranges(pool_.ranges()));
}

void LoadBalancerController::wake_waiting() {
  std::vector<std::string> wake;
  {
    std::lock_guard lock(mu_);
    for (const auto& [k, m] : waiting_) wake.push_back(k);
  }
  for (const auto& k : wake) queue_->add(k);
}

void LoadBalancerController::report_failure(const json& svc, const std::string& key,
                                            const std::string& msg) {
  {
    std::lock_guard lock(mu_);
    auto [it, fresh] = waiting_.try_emplace(key, msg);
    if (!fresh && it->second == msg) return;
    it->second = msg;
  }
  spdlog::warn("loadbalancer: service {}: {}", key, msg);
  if (events_) events_->event(svc, "Service", true, "AllocationFailed", msg);
}

Status LoadBalancerController::release_and_clear(const std::string& key, const json* svc,
                                                 bool keep_waiting) {
  std::optional<uint32_t> freed;
  {
    std::lock_guard lock(mu_);
    if (!keep_waiting) waiting_.erase(key);
    freed = pool_.release(key);
  }
  if (freed) {
    spdlog::info("loadbalancer: service {} released {}", key, format_ipv4(*freed));
    wake_waiting();
  }
  if (!svc || ingress_of(*svc).empty()) return Status::ok();
  // Clear only what is ours to clear: a Service of another class keeps what its
  // implementation wrote, unless we had assigned the address.
  if (str_at(*svc, {"spec", "type"}) == "LoadBalancer" && !handles(*svc) && !freed)
    return Status::ok();
  auto st = client_->write_status(*svc, json::object());
  if (st.code() == Code::kNotFound) return Status::ok();
  return st;
}

Status LoadBalancerController::sync(const std::string& key) {
  if (key == kPoolKey) {
    reload_pool();
    return Status::ok();
  }
  auto svc = client_->get_service(key);
  if (!svc) return release_and_clear(key, nullptr);
  if (!handles(*svc)) return release_and_clear(key, &*svc);

  std::string requested = str_at(*svc, {"spec", "loadBalancerIP"});
  std::string have = current_ip(*svc);
  uint32_t ip = 0;
  std::string failure;
  bool retry = false;
  {
    std::lock_guard lock(mu_);
    if (!requested.empty()) {
      auto req = parse_ipv4(requested);
      if (!req) {
        failure = "spec.loadBalancerIP \"" + requested + "\" is not an IPv4 address";
      } else if (auto st = pool_.assign(key, *req); !st) {
        retry = st.code() == Code::kAlreadyExists;
        failure = "requested spec.loadBalancerIP " + requested + ": " + st.message() +
                  (st.code() == Code::kInvalid ? " (" + describe_ranges(pool_.ranges()) + ")" : "");
      } else {
        ip = *req;
      }
    } else {
      auto cur = parse_ipv4(have);
      std::string holder = cur ? pool_.owner_of(*cur) : "";
      if (cur && pool_.in_pool(*cur) && (holder.empty() || holder == key) &&
          pool_.assign(key, *cur)) {
        ip = *cur;
      } else if (auto a = pool_.allocate(key); a) {
        ip = *a;
      } else {
        retry = true;
        failure = "no address for the service: " + a.status().message();
      }
    }
  }
  if (!failure.empty()) {
    report_failure(*svc, key, failure);
    SKIFF_RETURN_IF_ERROR(release_and_clear(key, &*svc, /*keep_waiting=*/true));
    if (retry) return Status::unavailable("service " + key + ": " + failure);
    return Status::ok();  // waits for a change of the Service or the pool
  }

  bool was_waiting;
  {
    std::lock_guard lock(mu_);
    was_waiting = waiting_.erase(key) > 0;
  }
  std::string ip_text = format_ipv4(ip);
  auto ingress = ingress_of(*svc);
  if (ingress.size() == 1 && have == ip_text) return Status::ok();
  auto st = client_->write_status(*svc, json{{"ingress", json::array({json{{"ip", ip_text}}})}});
  if (st.code() == Code::kNotFound) return Status::ok();  // deleted: its delete event frees it
  if (!st) {
    if (was_waiting) {
      std::lock_guard lock(mu_);
      waiting_.try_emplace(key, "");
    }
    return st;
  }
  spdlog::info("loadbalancer: service {} gets {}{}", key, ip_text,
               have.empty() ? "" : " (was " + have + ")");
  if (events_)
    events_->event(*svc, "Service", false, "IPAllocated", "Assigned IP [\"" + ip_text + "\"]");
  return Status::ok();
}

void LoadBalancerController::run(std::stop_token stop) {
  reload_pool();
  rebuild();
  run_workers(
      *queue_, opts_.workers, stats_, [this](const std::string& key) { return sync(key); },
      [](const std::string& key, const Status& st) {
        if (st.code() == Code::kConflict)
          spdlog::info("loadbalancer: {} (retrying)", st.to_string());
        else if (st.code() != Code::kUnavailable)
          spdlog::warn("loadbalancer: syncing {}: {} (retrying)", key, st.to_string());
      },
      stop);
}

}  // namespace skiff::controllers::loadbalancer
