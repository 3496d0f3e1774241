#include "controllers/endpoints/endpoints.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <set>

#include "controllers/api_util.h"
#include "controllers/workers.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/endpoints.h"
#include "proto/pod.h"
#include "proto/registry.h"
#include "proto/service.h"
#include "proto/time.h"

namespace skiff::controllers::endpoints {

namespace {

constexpr auto svc_type = &resource_type<proto::service_resource>;
constexpr auto pod_type = &resource_type<proto::pod_resource>;
constexpr auto ep_type = &resource_type<proto::endpoints_resource>;

// Go's time.RFC3339Nano: up to 9 fractional digits, trailing zeros (and a bare dot) dropped.
std::string rfc3339_nano(WallTime t) {
  std::string s = proto::format_rfc3339(t, 9);  // ...:05.123000000Z
  auto dot = s.rfind('.');
  if (dot == std::string::npos) return s;
  size_t end = s.size() - 1;  // the 'Z'
  size_t last = end;
  while (last > dot + 1 && s[last - 1] == '0') --last;
  if (last == dot + 1) last = dot;
  return s.substr(0, last) + s.substr(end);
}

json object_or_empty(const json& j) { return j.is_object() ? j : json::object(); }

class InformerListers : public Listers {
 public:
  InformerListers(client::Informer& svc, client::Informer& pods, client::Informer& eps)
      : svc_(svc), pods_(pods), eps_(eps) {}
  std::optional<json> service(const std::string& key) override { return svc_.get(key); }
  std::vector<json> services(const std::string& ns) override { return svc_.by_namespace(ns); }
  std::vector<json> pods(const std::string& ns) override { return pods_.by_namespace(ns); }
  std::optional<json> endpoints(const std::string& key) override { return eps_.get(key); }
  std::vector<json> all_endpoints() override { return eps_.list(); }

 private:
  client::Informer& svc_;
  client::Informer& pods_;
  client::Informer& eps_;
};

class ApiEndpointsClient : public EndpointsClient {
 public:
  explicit ApiEndpointsClient(std::shared_ptr<client::ApiClient> api) : api_(std::move(api)) {}
  Result<json> create(const std::string& ns, const json& ep) override {
    return api_->create(ep_type(), ns, ep);
  }
  Result<json> update(const json& ep) override { return api_->update(ep_type(), ep); }
  Status remove(const std::string& ns, const std::string& name) override {
    return api_->remove(ep_type(), ns, name);
  }
  Result<json> get(const std::string& ns, const std::string& name) override {
    return api_->get(ep_type(), ns, name);
  }

 private:
  std::shared_ptr<client::ApiClient> api_;
};

// The Endpoints' labels for the Service: its own, plus the headless mark without a cluster IP.
json wanted_labels(const json& svc) {
  json labels = object_or_empty(at(svc, "metadata", "labels"));
  if (!has_cluster_ip(svc))
    labels[kHeadlessLabel] = "";
  else
    labels.erase(kHeadlessLabel);
  return labels;
}

}  // namespace

EndpointsController::EndpointsController(EndpointsOptions opts) : opts_(std::move(opts)) {
  if (opts_.workers < 1) opts_.workers = 1;
  if (opts_.max_capacity < 1) opts_.max_capacity = kMaxCapacity;
  queue_ = std::make_unique<client::WorkQueue>(opts_.queue);
  stats_.depth = [this] { return queue_->len(); };
}

EndpointsController::~EndpointsController() { queue_->shut_down(); }

void EndpointsController::set_clients(Listers* listers, EndpointsClient* client,
                                      EventSink* events) {
  listers_ = listers;
  client_ = client;
  events_ = events;
}

Status EndpointsController::init(ControllerContext& ctx) {
  auto& svc_inf = ctx.informers->informer(svc_type());
  auto& pod_inf = ctx.informers->informer(pod_type());
  auto& ep_inf = ctx.informers->informer(ep_type());
  owned_listers_ = std::make_unique<InformerListers>(svc_inf, pod_inf, ep_inf);
  owned_client_ = std::make_unique<ApiEndpointsClient>(ctx.api);
  set_clients(owned_listers_.get(), owned_client_.get(), ctx.events);
  svc_inf.add_handlers({[this](const json& o) { on_service_add(o); },
                        [this](const json& a, const json& b) { on_service_update(a, b); },
                        [this](const json& o) { on_service_delete(o); }});
  pod_inf.add_handlers({[this](const json& o) { on_pod_add(o); },
                        [this](const json& a, const json& b) { on_pod_update(a, b); },
                        [this](const json& o) { on_pod_delete(o); }});
  ep_inf.add_handlers({nullptr, nullptr, [this](const json& o) { on_endpoints_delete(o); }});
  return Status::ok();
}

// --- handlers: they only enqueue ---

void EndpointsController::on_service_add(const json& svc) { queue_->add(client::object_key(svc)); }
void EndpointsController::on_service_update(const json&, const json& svc) {
  queue_->add(client::object_key(svc));
}
void EndpointsController::on_service_delete(const json& svc) {
  queue_->add(client::object_key(svc));
}
void EndpointsController::on_endpoints_delete(const json& ep) {
  queue_->add(client::object_key(ep));
}

std::vector<std::string> EndpointsController::services_of(const json& pod) {
  std::vector<std::string> keys;
  for (const auto& svc : listers_->services(ns_of(pod)))
    if (selects(svc, pod)) keys.push_back(client::object_key(svc));
  return keys;
}

void EndpointsController::on_pod_add(const json& pod) {
  for (const auto& k : services_of(pod)) queue_->add(k);
}

void EndpointsController::on_pod_update(const json& old_pod, const json& pod) {
  const json& old_rv = at(old_pod, "metadata", "resourceVersion");
  if (!old_rv.is_null() && old_rv == at(pod, "metadata", "resourceVersion")) return;
  auto [changed, membership] = pod_endpoints_changed(old_pod, pod);
  if (!changed && !membership) return;
  auto now = services_of(pod);
  if (!membership) {
    for (const auto& k : now) queue_->add(k);
    return;
  }
  auto before = services_of(old_pod);
  std::set<std::string> a(now.begin(), now.end()), b(before.begin(), before.end());
  // Pod changed: every Service that had or has it. Only membership changed: the Services it
  // joined or left (hostname/subdomain changes count here, and touch both sides).
  bool names_changed = at(old_pod, "spec", "hostname") != at(pod, "spec", "hostname") ||
                       at(old_pod, "spec", "subdomain") != at(pod, "spec", "subdomain");
  for (const auto& k : a)
    if (changed || names_changed || !b.count(k)) queue_->add(k);
  for (const auto& k : b)
    if (changed || names_changed || !a.count(k)) queue_->add(k);
}

void EndpointsController::on_pod_delete(const json& pod) {
  for (const auto& k : services_of(pod)) queue_->add(k);
}

void EndpointsController::enqueue_leftovers() {
  for (const auto& ep : listers_->all_endpoints()) {
    if (at(at(ep, "metadata", "annotations"), kLeaderAnnotation).is_string()) continue;
    queue_->add(client::object_key(ep));
  }
}

// --- the written-object stand-in ---

void EndpointsController::remember_write(const std::string& key, std::string replaced_rv,
                                         json written) {
  std::lock_guard l(written_mu_);
  written_[key] = Written{std::move(replaced_rv), std::move(written)};
}

void EndpointsController::forget_write(const std::string& key) {
  std::lock_guard l(written_mu_);
  written_.erase(key);
}

std::optional<json> EndpointsController::current_endpoints(const std::string& key) {
  auto cached = listers_->endpoints(key);
  std::lock_guard l(written_mu_);
  auto it = written_.find(key);
  if (it == written_.end()) return cached;
  const std::string cached_rv = cached ? str(at(*cached, "metadata", "resourceVersion")) : "";
  const std::string written_rv = str(at(it->second.object, "metadata", "resourceVersion"));
  bool lagging;
  auto c = cached ? rv_number(cached_rv) : std::optional<uint64_t>(0);
  auto w = rv_number(written_rv);
  if (c && w) {
    // skiff's resourceVersions grow: an older one in the cache has not seen our write yet.
    lagging = *c < *w;
  } else {
    // Opaque versions: the cache lags while it still shows what our write replaced.
    lagging = cached ? cached_rv == it->second.replaced_rv : it->second.replaced_rv.empty();
  }
  if (lagging) return it->second.object;
  written_.erase(it);  // the cache caught up, or someone wrote since: the cache is the truth
  return cached;
}

// --- sync ---

Status EndpointsController::delete_endpoints(const std::string& key, const std::string& ns,
                                             const std::string& name) {
  forget_write(key);
  auto st = client_->remove(ns, name);
  if (!st && st.code() != Code::kNotFound)
    return st.with_context("deleting endpoints " + key + " of a deleted service");
  if (st) spdlog::info("endpoints: deleted {} (its service is gone)", key);
  return Status::ok();
}

Status EndpointsController::sync(const std::string& key) {
  auto slash = key.find('/');
  if (slash == std::string::npos) return Status::ok();  // not a namespaced key: nothing of ours
  const std::string ns = key.substr(0, slash), name = key.substr(slash + 1);
  auto svc = listers_->service(key);
  if (!svc) {
    triggers_.forget(key);
    return delete_endpoints(key, ns, name);
  }
  if (!manages_endpoints(*svc)) return Status::ok();

  std::vector<json> pods;
  for (auto& p : listers_->pods(ns))
    if (selects(*svc, p)) pods.push_back(std::move(p));
  auto trigger = triggers_.compute(key, *svc, pods);
  auto desired = desired_subsets(*svc, pods);
  bool truncated = truncate_subsets(desired.subsets, opts_.max_capacity);
  json labels = wanted_labels(*svc);

  std::optional<json> current = current_endpoints(key);
  for (int attempt = 0;; ++attempt) {
    if (current) {
      const json& md = at(*current, "metadata");
      bool same = repack_subsets(at(*current, "subsets")) == desired.subsets &&
                  object_or_empty(at(md, "labels")) == labels &&
                  at(at(md, "annotations"), kOverCapacityAnnotation).is_string() == truncated;
      if (same) {
        triggers_.commit(key, std::move(trigger.next));
        return Status::ok();
      }
    }
    json ep = current ? *current : json{{"metadata", {{"name", name}, {"namespace", ns}}}};
    ep["apiVersion"] = "v1";
    ep["kind"] = "Endpoints";
    json& md = ep["metadata"];
    if (labels.empty())
      md.erase("labels");
    else
      md["labels"] = labels;
    json annotations = object_or_empty(at(md, "annotations"));
    if (trigger.time)
      annotations[kTriggerTimeAnnotation] = rfc3339_nano(*trigger.time);
    else
      annotations.erase(kTriggerTimeAnnotation);
    if (truncated)
      annotations[kOverCapacityAnnotation] = "truncated";
    else
      annotations.erase(kOverCapacityAnnotation);
    if (annotations.empty())
      md.erase("annotations");
    else
      md["annotations"] = std::move(annotations);
    if (desired.subsets.empty())
      ep.erase("subsets");
    else
      ep["subsets"] = desired.subsets;

    const bool create = !current;
    const std::string replaced_rv = create ? "" : str(at(md, "resourceVersion"));
    auto r = create ? client_->create(ns, ep) : client_->update(ep);
    if (r) {
      remember_write(key, replaced_rv, std::move(*r));
      triggers_.commit(key, std::move(trigger.next));
      spdlog::debug("endpoints: {} {} (ready {}, not ready {})", create ? "created" : "updated",
                    key, desired.ready, desired.not_ready);
      return Status::ok();
    }
    Status st = r.status();
    if (create && namespace_terminating(st)) return Status::ok();
    bool stale = st.code() == Code::kConflict || st.code() == Code::kAlreadyExists ||
                 (!create && st.code() == Code::kNotFound);
    if (stale && attempt < 2) {
      // Someone else wrote (or deleted) it since our view: look again at the API server's.
      forget_write(key);
      auto fresh = client_->get(ns, name);
      if (fresh) {
        current = std::move(*fresh);
        continue;
      }
      if (fresh.status().code() == Code::kNotFound) {
        current.reset();
        continue;
      }
      st = fresh.status();
    }
    if (events_) {
      json obj = {{"apiVersion", "v1"},
                  {"kind", "Endpoints"},
                  {"metadata", {{"name", name}, {"namespace", ns}}}};
      if (create)
        events_->event(obj, "Endpoints", true, "FailedToCreateEndpoint",
                       "Failed to create endpoint for service " + key + ": " + st.message());
      else
        events_->event(obj, "Endpoints", true, "FailedToUpdateEndpoint",
                       "Failed to update endpoint " + key + ": " + st.message());
    }
    return st.with_context(std::string(create ? "creating" : "updating") + " endpoints " + key);
  }
}

// --- workers ---

void EndpointsController::run(std::stop_token stop) {
  enqueue_leftovers();
  run_workers(
      *queue_, opts_.workers, stats_, [this](const std::string& key) { return sync(key); },
      [](const std::string& key, const Status& st) {
        if (st.code() == Code::kConflict)
          spdlog::info("endpoints: {} (retrying)", st.to_string());
        else
          spdlog::warn("endpoints: syncing {}: {} (retrying)", key, st.to_string());
      },
      stop);
}

}  // namespace skiff::controllers::endpoints
