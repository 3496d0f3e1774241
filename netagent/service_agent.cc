#include "netagent/service_agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/heap.h"
#include "netagent/fastpath/fastpath.h"
#include "netagent/nft/nft.h"
#include "proto/client/informer.h"
#include "proto/time.h"

namespace skiff::netagent {

using json = nlohmann::json;
using steady = std::chrono::steady_clock;
using wall = std::chrono::system_clock;

namespace {

// Sync durations: 100 µs .. 10 s.
std::vector<double> sync_bounds() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}
// Programming latency: 1 ms .. 5 min (kube-proxy's network programming buckets are coarser).
std::vector<double> latency_bounds() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
}

size_t endpoint_count(const services::ServiceMap& m) {
  size_t n = 0;
  for (const auto& [k, sp] : m) n += sp.endpoints.size();
  return n;
}

// Every endpoint of `m`'s TCP and UDP ports, as the fast path keys them.
std::vector<fastpath::Endpoint> fast_path_endpoints(const services::ServiceMap& m) {
  std::vector<fastpath::Endpoint> out;
  for (const auto& [k, sp] : m) {
    if (sp.protocol != services::Protocol::kTcp && sp.protocol != services::Protocol::kUdp)
      continue;
    for (const auto& ep : sp.endpoints)
      out.push_back({ep.ip, static_cast<uint8_t>(sp.protocol), ep.port});
  }
  return out;
}

// The entries of Service "ns/name" in `m` ("ns/name:port/PROTO" keys are contiguous).
services::ServiceMap subset(const services::ServiceMap& m, const std::string& ns_name) {
  services::ServiceMap out;
  std::string prefix = ns_name + ":";
  for (auto it = m.lower_bound(prefix); it != m.end() && it->first.starts_with(prefix); ++it)
    out.insert(*it);
  return out;
}

double seconds(steady::duration d) { return std::chrono::duration<double>(d).count(); }

template <typename T>
void sort_unique(std::vector<T>* v) {
  std::sort(v->begin(), v->end());
  v->erase(std::unique(v->begin(), v->end()), v->end());
}

}  // namespace

// ---- Histogram -------------------------------------------------------------------------------

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size(), 0) {}

void Histogram::observe(double v) {
  ++count_;
  sum_ += v;
  for (size_t i = 0; i < bounds_.size(); ++i)
    if (v <= bounds_[i]) {
      ++counts_[i];
      break;
    }
}

std::string Histogram::text(const std::string& name, const std::string& help) const {
  std::ostringstream o;
  o << "# HELP " << name << " " << help << "\n# TYPE " << name << " histogram\n";
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    o << name << "_bucket{le=\"" << bounds_[i] << "\"} " << cum << "\n";
  }
  o << name << "_bucket{le=\"+Inf\"} " << count_ << "\n"
    << name << "_sum " << sum_ << "\n"
    << name << "_count " << count_ << "\n";
  return o.str();
}

// ---- ChangeTracker ---------------------------------------------------------------------------

void ChangeTracker::merge(const std::string& key, const PendingChange& c) {
  auto [it, fresh] = pending_.try_emplace(key, c);
  if (fresh) return;
  PendingChange& p = it->second;
  p.seen = std::min(p.seen, c.seen);
  p.measure = p.measure || c.measure;
  for (auto t : c.triggers) p.triggers.push_back(t);
  sort_unique(&p.triggers);
  if (p.triggers.size() > kMaxTriggers) p.triggers.resize(kMaxTriggers);
}

void ChangeTracker::mark(const std::string& key, steady::time_point seen,
                         std::optional<wall::time_point> trigger, bool measure) {
  PendingChange c;
  c.seen = seen;
  c.measure = measure;
  if (trigger) c.triggers.push_back(*trigger);
  merge(key, c);
}

void ChangeTracker::restore(std::map<std::string, PendingChange> changes) {
  for (auto& [k, c] : changes) merge(k, c);
}

std::map<std::string, PendingChange> ChangeTracker::take() {
  std::map<std::string, PendingChange> out;
  out.swap(pending_);
  return out;
}

std::optional<wall::time_point> trigger_time(const json& ep) {
  if (!ep.is_object()) return std::nullopt;
  auto md = ep.find("metadata");
  if (md == ep.end() || !md->is_object()) return std::nullopt;
  auto ann = md->find("annotations");
  if (ann == md->end() || !ann->is_object()) return std::nullopt;
  auto t = ann->find(kTriggerTimeAnnotation);
  if (t == ann->end() || !t->is_string()) return std::nullopt;
  return proto::parse_rfc3339(t->get<std::string>());
}

namespace {

// Keeps only `keys` of object `j` (nothing when j is not an object).
void keep_only(json& j, std::initializer_list<const char*> keys) {
  if (!j.is_object()) return;
  for (auto it = j.begin(); it != j.end();) {
    bool keep = false;
    for (const char* k : keys) keep = keep || it.key() == k;
    it = keep ? std::next(it) : j.erase(it);
  }
}

void slim_metadata(json& obj, bool trigger_annotation) {
  auto md = obj.find("metadata");
  if (md == obj.end()) return;
  keep_only(*md, {"name", "namespace", "resourceVersion", "deletionTimestamp", "annotations"});
  if (!md->is_object()) return;
  if (auto ann = md->find("annotations"); ann != md->end()) {
    if (trigger_annotation) keep_only(*ann, {kTriggerTimeAnnotation});
    if (!trigger_annotation || !ann->is_object() || ann->empty()) md->erase(ann);
  }
}

void slim_each(json* list, std::initializer_list<const char*> keys) {
  if (!list || !list->is_array()) return;
  for (auto& item : *list) keep_only(item, keys);
}

json* member(json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

}  // namespace

void slim_service(json& svc) {
  if (!svc.is_object()) return;
  keep_only(svc, {"metadata", "spec", "status"});
  slim_metadata(svc, false);
  if (json* spec = member(svc, "spec")) {
    keep_only(*spec, {"type", "clusterIP", "clusterIPs", "ports", "externalIPs", "sessionAffinity",
                      "sessionAffinityConfig", "externalTrafficPolicy", "internalTrafficPolicy",
                      "loadBalancerClass", "externalName"});
    slim_each(member(*spec, "ports"), {"name", "protocol", "port", "nodePort"});
    // Single-stack: clusterIPs is [clusterIP], which readers fall back to.
    json* ips = member(*spec, "clusterIPs");
    json* ip = member(*spec, "clusterIP");
    if (ips && ip && ips->is_array() && ips->size() == 1 && (*ips)[0] == *ip)
      spec->erase("clusterIPs");
  }
  if (json* status = member(svc, "status")) keep_only(*status, {"loadBalancer"});
}

void slim_endpoints(json& eps) {
  if (!eps.is_object()) return;
  keep_only(eps, {"metadata", "subsets"});
  slim_metadata(eps, true);
  json* subsets = member(eps, "subsets");
  if (!subsets || !subsets->is_array()) return;
  for (auto& ss : *subsets) {
    keep_only(ss, {"addresses", "ports"});
    slim_each(member(ss, "addresses"), {"ip", "nodeName", "hostname"});
    slim_each(member(ss, "ports"), {"name", "port", "protocol"});
  }
}

std::vector<double> programming_latencies(const std::map<std::string, PendingChange>& applied,
                                          steady::time_point done, wall::time_point done_wall,
                                          wall::time_point not_before) {
  std::vector<double> out;
  for (const auto& [key, c] : applied) {
    if (!c.measure) continue;
    bool any = false;
    for (auto t : c.triggers) {
      if (t < not_before) continue;
      any = true;
      double s = std::chrono::duration<double>(done_wall - t).count();
      if (s >= 0) out.push_back(s);
    }
    if (!any) {
      double s = seconds(done - c.seen);
      if (s >= 0) out.push_back(s);
    }
  }
  return out;
}

// ---- conntrack -------------------------------------------------------------------------------

conntrack::CleanupSpec conntrack_cleanup_spec(const services::ServiceMap& before,
                                              const services::ServiceMap& after,
                                              const std::vector<services::StaleUdpFlow>& stale) {
  conntrack::CleanupSpec spec;
  spec.proto = conntrack::kProtoUdp;
  for (const auto& f : stale) {
    conntrack::IpPort ep{f.endpoint_ip, f.endpoint_port};
    if (f.service_ip == 0)
      spec.node_port_endpoints.push_back({f.service_port, ep});
    else
      spec.service_endpoints.push_back({{f.service_ip, f.service_port}, ep});
  }
  for (const auto& [key, sp] : after) {
    if (sp.protocol != services::Protocol::kUdp || sp.endpoints.empty()) continue;
    auto old = before.find(key);
    // A port new in `after` had no rules before: traffic to it was not NATed either.
    if (old != before.end() && !old->second.endpoints.empty()) continue;
    if (sp.cluster_ip != 0) spec.services.push_back({sp.cluster_ip, sp.port});
    for (auto ip : sp.external_ips) spec.services.push_back({ip, sp.port});
    for (auto ip : sp.load_balancer_ips) spec.services.push_back({ip, sp.port});
    if (sp.node_port != 0) spec.node_ports.push_back(sp.node_port);
  }
  sort_unique(&spec.service_endpoints);
  sort_unique(&spec.node_port_endpoints);
  sort_unique(&spec.services);
  sort_unique(&spec.node_ports);
  return spec;
}

void merge_cleanup(conntrack::CleanupSpec* into, const conntrack::CleanupSpec& more) {
  auto add = [](auto* a, const auto& b) {
    a->insert(a->end(), b.begin(), b.end());
    sort_unique(a);
  };
  add(&into->service_endpoints, more.service_endpoints);
  add(&into->node_port_endpoints, more.node_port_endpoints);
  add(&into->services, more.services);
  add(&into->node_ports, more.node_ports);
}

// ---- SyncSchedule ----------------------------------------------------------------------------

SyncSchedule::SyncSchedule(std::chrono::milliseconds full_period,
                           std::chrono::milliseconds min_interval,
                           std::chrono::milliseconds min_retry, std::chrono::milliseconds max_retry,
                           Clock::time_point start)
    : full_period_(full_period),
      min_interval_(min_interval),
      min_retry_(min_retry),
      max_retry_(max_retry),
      next_full_(start),
      retry_(min_retry) {}

SyncSchedule::Clock::time_point SyncSchedule::due(bool pending) const {
  if (pending && !failed_) return std::min(next_full_, last_start_ + min_interval_);
  return next_full_;
}

std::chrono::milliseconds SyncSchedule::done(bool ok, Clock::time_point start,
                                             Clock::time_point end) {
  const bool was_full = full(start);
  last_start_ = start;
  failed_ = !ok;
  if (ok) {
    retry_ = min_retry_;
    if (was_full) next_full_ = start + full_period_;
    return std::chrono::milliseconds(0);
  }
  auto delay = retry_;
  next_full_ = end + delay;
  retry_ = std::min(retry_ * 2, max_retry_);
  return delay;
}

// ---- ServiceAgent ----------------------------------------------------------------------------

ServiceAgent::ServiceAgent(ServiceOptions opts, nft::NftTables* tables)
    : opts_(std::move(opts)),
      tables_(tables),
      sync_hist_(sync_bounds()),
      latency_hist_(latency_bounds()) {}

ServiceAgent::~ServiceAgent() { stop(); }

Status ServiceAgent::start() {
  if (opts_.node_name.empty()) return Status::invalid("--node-name: empty");
  if (!opts_.services || !opts_.endpoints)
    return Status::invalid("services: no Service or Endpoints informer given");
  if (opts_.full_sync_period <= std::chrono::milliseconds(0))
    return Status::invalid("services: the full sync period must be positive");
  services::ProxierOptions po;
  po.cluster_cidr = opts_.cluster_cidr;
  // The agent's SyncSchedule decides when a sync is full: an incremental sync hands the
  // Proxier only the changed Services' ports, which it must never take for the whole map.
  po.full_sync_period = std::chrono::hours(24 * 365 * 10);
  auto p = services::Proxier::create(*tables_, po);
  if (!p) return p.status().with_context("services");
  proxier_ = std::move(*p);
  started_wall_ = wall::now();

  services_ = opts_.services;
  endpoints_ = opts_.endpoints;
  for (bool is_ep : {false, true}) {
    client::InformerHandlers h;
    h.on_add = [this, is_ep](const json& o) { mark(o, is_ep); };
    h.on_update = [this, is_ep](const json&, const json& n) { mark(n, is_ep); };
    h.on_delete = [this, is_ep](const json& o) { mark(o, is_ep); };
    (is_ep ? endpoints_ : services_)->add_handlers(std::move(h));
  }
  {
    std::lock_guard l(stats_mu_);
    last_loop_ = last_ok_ = steady::now();
  }
  worker_ = std::jthread([this](std::stop_token st) { run(st); });
  return Status();
}

void ServiceAgent::stop() {
  if (worker_.joinable()) {
    worker_.request_stop();
    cv_.notify_all();
    worker_.join();
  }
}

void ServiceAgent::mark(const json& obj, bool is_endpoints) {
  auto seen = steady::now();
  std::string key = client::object_key(obj);
  auto trigger = is_endpoints ? trigger_time(obj) : std::nullopt;
  // Objects of the first lists are the state at start, not changes to measure.
  bool measure = (is_endpoints ? endpoints_ : services_)->has_synced();
  {
    std::lock_guard l(mu_);
    changes_.mark(key, seen, trigger, measure);
  }
  cv_.notify_all();
}

void ServiceAgent::run(std::stop_token stop) {
  // The first sync needs both complete lists: a partial map would delete live rules.
  while (!stop.stop_requested() && !(services_->has_synced() && endpoints_->has_synced())) {
    std::unique_lock l(mu_);
    cv_.wait_for(l, stop, std::chrono::milliseconds(100), [] { return false; });
    std::lock_guard s(stats_mu_);
    last_loop_ = steady::now();
  }
  SyncSchedule schedule(opts_.full_sync_period, opts_.min_sync_interval, opts_.min_retry,
                        opts_.max_retry, steady::now());
  while (!stop.stop_requested()) {
    std::map<std::string, PendingChange> changes;
    steady::time_point now;
    {
      std::unique_lock l(mu_);
      for (;;) {
        if (stop.stop_requested()) return;
        now = steady::now();
        auto due = schedule.due(!changes_.empty());
        if (now >= due) break;
        size_t before = changes_.size();
        cv_.wait_until(l, stop, due, [&] { return changes_.size() != before; });
      }
      changes = changes_.take();
    }
    Status s = sync(changes, schedule.full(now));
    auto end = steady::now();
    {
      std::lock_guard l(stats_mu_);
      last_loop_ = end;
    }
    auto retry = schedule.done(s.is_ok(), now, end);
    if (!s) {
      spdlog::warn("services: sync failed (full re-assert in {}ms): {}", retry.count(),
                   s.to_string());
      std::lock_guard l(mu_);
      changes_.restore(std::move(changes));
    }
  }
}

Status ServiceAgent::sync(std::map<std::string, PendingChange>& changes, bool full) {
  auto t0 = steady::now();
  // A full re-assert the Proxier still owes (its first sync; a failed commit, which the
  // schedule also retries as a full one) needs the whole map.
  if (proxier_->full_due()) full = true;
  services::ModelOptions mo;
  mo.node_name = opts_.node_name;
  std::vector<services::Skipped> skipped;
  conntrack::CleanupSpec first_endpoints;
  size_t changed = 0;
  // The ServiceMap keys an incremental sync touched: the Proxier then looks at those only
  // (O(changed); the walk over 10,000 ports alone was ~9 ms on a loaded machine).
  std::vector<std::string> changed_keys;
  // The ports to program: all of them (full), or those of the changed Services. The Proxier's
  // applied() is the only full map kept between syncs.
  services::ServiceMap desired;
  const services::ServiceMap& applied = proxier_->applied();
  // Endpoints programmed after this sync: counted whole on a full sync, else adjusted by the
  // changed Services' (a walk over every port per event is what `changed_keys` avoids).
  size_t eps;
  {
    std::lock_guard l(stats_mu_);  // only this thread writes it
    eps = endpoints_count_;
  }
  if (full) {
    // One Service decoded at a time, with its Endpoints: the caches are compact (CBOR) and a
    // decoded copy of all of them was ~65 MB at 10,000 Services.
    services_->for_each([&](const json& svc) {
      auto ep = endpoints_->get(client::object_key(svc));
      for (auto& sp : services::service_ports(svc, ep ? &*ep : nullptr, mo, &skipped)) {
        std::string key = sp.key();
        desired.insert_or_assign(std::move(key), std::move(sp));
      }
    });
    // After a restart nothing was applied by us yet, but the kernel has the rules (and the
    // flows) of the previous run: every UDP port would look new, and deleting its entries would
    // move live flows. Only later full syncs compare.
    if (synced_) first_endpoints = conntrack_cleanup_spec(applied, desired, {});
    eps = endpoint_count(desired);
    // Before the rules that translate to them (the fast path logs a failure itself).
    if (opts_.fast_path) (void)opts_.fast_path->replace_endpoints(fast_path_endpoints(desired));
    proxier_->request_full_sync();
    changed = changes.size();
  } else {
    for (const auto& [key, c] : changes) {
      auto slash = key.find('/');
      if (slash == std::string::npos) continue;  // Services and Endpoints are namespaced
      std::string ns = key.substr(0, slash), name = key.substr(slash + 1);
      auto svc = services_->get(key);
      auto ep = endpoints_->get(key);
      services::ServiceMap before = subset(applied, key), after = before;
      if (services::update_service(&after, ns, name, svc ? &*svc : nullptr, ep ? &*ep : nullptr,
                                   mo, &skipped, &changed_keys)) {
        ++changed;
        merge_cleanup(&first_endpoints, conntrack_cleanup_spec(before, after, {}));
        if (opts_.fast_path) {
          (void)opts_.fast_path->update_endpoints(fast_path_endpoints(before),
                                                  fast_path_endpoints(after));
        }
        eps = eps + endpoint_count(after) - endpoint_count(before);
        desired.merge(after);
      }
    }
    if (changed == 0) {
      // Nothing the rules depend on (a status or annotation update): nothing to program, but
      // the change counts as applied.
      for (const auto& sk : skipped)
        spdlog::info("services: skipping {}: {}", sk.object, sk.reason);
      auto lat = programming_latencies(changes, steady::now(), wall::now(), started_wall_);
      std::lock_guard l(stats_mu_);
      for (double v : lat) latency_hist_.observe(v);
      return Status();
    }
  }
  for (const auto& sk : skipped)
    if (!full) spdlog::info("services: skipping {}: {}", sk.object, sk.reason);

  auto r = proxier_->sync(std::move(desired), full ? nullptr : &changed_keys);
  auto t1 = steady::now();
  auto t1_wall = wall::now();
  double secs = seconds(t1 - t0);
  if (!r) {
    std::lock_guard l(stats_mu_);
    ++sync_errors_;
    last_failed_ = true;
    last_error_ = r.status().message();
    sync_hist_.observe(secs);
    last_sync_seconds_ = secs;
    return r.status().with_context(full ? "full services sync" : "services sync");
  }
  if (full && !synced_)
    spdlog::info("services: first sync: {} service ports, {} endpoints, {} ops in {:.1f}ms",
                 applied.size(), eps, r->batch_ops, secs * 1000);
  else
    spdlog::debug(
        "services: {} sync of {} changed services: +{} ~{} -{} ports, {} ops, build {}us, "
        "commit {}us",
        full ? "full" : "partial", changed, r->ports_added, r->ports_changed, r->ports_removed,
        r->batch_ops, r->build_time.count() / 1000, r->commit_time.count() / 1000);
  if (full) {
    std::set<std::string> now;
    for (const auto& sk : skipped) now.insert(sk.object + ": " + sk.reason);
    for (const auto& s : now)
      if (!last_skipped_.count(s)) spdlog::info("services: skipping {}", s);
    last_skipped_ = std::move(now);
  }
  auto lat = programming_latencies(changes, t1, t1_wall, started_wall_);
  {
    std::lock_guard l(stats_mu_);
    (full ? syncs_full_ : syncs_partial_)++;
    sync_hist_.observe(secs);
    last_sync_seconds_ = secs;
    for (double v : lat) latency_hist_.observe(v);
    ports_ = applied.size();
    endpoints_count_ = eps;
    if (full) skipped_ = skipped.size();
    synced_ = true;
    last_failed_ = false;
    last_error_.clear();
    last_ok_ = t1;
  }
  if (full) {
    // A full sync decoded every Service and Endpoints out of the informer caches and built the
    // whole ruleset's batch (at 10,000 Services a ~50 MB peak the agent does not need until the
    // next one). Give those pages back now rather than when the allocator's decay gets to them.
    release_free_heap();
  }
  merge_cleanup(&pending_cleanup_, first_endpoints);
  merge_cleanup(&pending_cleanup_, conntrack_cleanup_spec({}, {}, r->stale_udp));
  if (!pending_cleanup_.empty()) cleanup_conntrack();
  return Status();
}

void ServiceAgent::cleanup_conntrack() {
  conntrack::CleanupResult res;
  Status s;
  if (opts_.conntrack) {
    s = opts_.conntrack(pending_cleanup_, &res);
  } else {
    if (!ct_) {
      auto c = conntrack::Conntrack::open();
      if (c)
        ct_ = std::move(*c);
      else
        s = c.status();
    }
    if (ct_) s = ct_->cleanup(pending_cleanup_, &res);
  }
  std::lock_guard l(stats_mu_);
  conntrack_deleted_ += res.deleted;
  if (!s) {
    ++conntrack_errors_;
    // Kept for the next sync; bounded by the distinct stale flows.
    spdlog::warn("services: conntrack cleanup failed (retried after the next sync): {}",
                 s.to_string());
    return;
  }
  if (res.deleted > 0)
    spdlog::info("services: deleted {} stale UDP conntrack entries", res.deleted);
  pending_cleanup_ = conntrack::CleanupSpec();
}

std::string ServiceAgent::metrics_text() const {
  std::lock_guard l(stats_mu_);
  std::ostringstream o;
  // The heap split into what is allocated and what malloc holds free (bench/svc_agent_rss.py
  // reads them to tell live data from fragmentation).
  HeapStats heap = heap_stats();
  o << "# HELP skiff_netagent_malloc_in_use_bytes Heap bytes allocated (" << heap.allocator
    << ").\n"
    << "# TYPE skiff_netagent_malloc_in_use_bytes gauge\n"
    << "skiff_netagent_malloc_in_use_bytes " << heap.allocated << "\n"
    << "# HELP skiff_netagent_malloc_free_bytes Heap bytes free but kept by malloc.\n"
    << "# TYPE skiff_netagent_malloc_free_bytes gauge\n"
    << "skiff_netagent_malloc_free_bytes " << heap.held_free << "\n";
  o << sync_hist_.text("skiff_netagent_services_sync_duration_seconds",
                       "Time a services sync took (model, batch and commit).")
    << "# HELP skiff_netagent_services_last_sync_duration_seconds Time the last services sync "
       "took.\n"
    << "# TYPE skiff_netagent_services_last_sync_duration_seconds gauge\n"
    << "skiff_netagent_services_last_sync_duration_seconds " << last_sync_seconds_ << "\n"
    << latency_hist_.text("skiff_netagent_network_programming_duration_seconds",
                          "From a Service/Endpoints change (its trigger time, else when the "
                          "agent saw it) to its rules committed in the kernel.")
    << "# HELP skiff_netagent_services_syncs_total Services syncs that succeeded.\n"
    << "# TYPE skiff_netagent_services_syncs_total counter\n"
    << "skiff_netagent_services_syncs_total{mode=\"full\"} " << syncs_full_ << "\n"
    << "skiff_netagent_services_syncs_total{mode=\"partial\"} " << syncs_partial_ << "\n"
    << "# HELP skiff_netagent_services_sync_errors_total Services syncs that failed.\n"
    << "# TYPE skiff_netagent_services_sync_errors_total counter\n"
    << "skiff_netagent_services_sync_errors_total " << sync_errors_ << "\n"
    << "# HELP skiff_netagent_services_programmed Service ports in the kernel's rules.\n"
    << "# TYPE skiff_netagent_services_programmed gauge\n"
    << "skiff_netagent_services_programmed " << ports_ << "\n"
    << "# HELP skiff_netagent_services_endpoints_programmed Endpoints (per service port) in "
       "the kernel's rules.\n"
    << "# TYPE skiff_netagent_services_endpoints_programmed gauge\n"
    << "skiff_netagent_services_endpoints_programmed " << endpoints_count_ << "\n"
    << "# HELP skiff_netagent_services_skipped Services or ports left out (bad fields).\n"
    << "# TYPE skiff_netagent_services_skipped gauge\n"
    << "skiff_netagent_services_skipped " << skipped_ << "\n"
    << "# HELP skiff_netagent_services_synced 1 once the first services sync succeeded.\n"
    << "# TYPE skiff_netagent_services_synced gauge\n"
    << "skiff_netagent_services_synced " << (synced_ ? 1 : 0) << "\n"
    << "# HELP skiff_netagent_conntrack_entries_deleted_total Stale UDP conntrack entries "
       "deleted.\n"
    << "# TYPE skiff_netagent_conntrack_entries_deleted_total counter\n"
    << "skiff_netagent_conntrack_entries_deleted_total " << conntrack_deleted_ << "\n"
    << "# HELP skiff_netagent_conntrack_cleanup_errors_total Conntrack cleanups that failed.\n"
    << "# TYPE skiff_netagent_conntrack_cleanup_errors_total counter\n"
    << "skiff_netagent_conntrack_cleanup_errors_total " << conntrack_errors_ << "\n";
  return o.str();
}

bool ServiceAgent::healthy() const {
  std::lock_guard l(stats_mu_);
  auto now = steady::now();
  auto limit = 2 * opts_.full_sync_period + std::chrono::seconds(30);
  if (now - last_loop_ > limit) return false;
  return !(last_failed_ && now - last_ok_ > limit);
}

}  // namespace skiff::netagent
