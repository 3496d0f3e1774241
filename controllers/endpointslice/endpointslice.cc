#include "controllers/endpointslice/endpointslice.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "controllers/api_util.h"
#include "controllers/endpointslice/endpointslice_util.h"
#include "controllers/workers.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/endpoints.h"
#include "proto/endpointslice.h"
#include "proto/selector.h"
#include "proto/service.h"

namespace skiff::controllers::endpointslice {

namespace {

constexpr auto ep_type = &resource_type<proto::endpoints_resource>;
constexpr auto svc_type = &resource_type<proto::service_resource>;
constexpr auto slice_type = &resource_type<proto::endpointslice_resource>;

json service_selector(const std::string& service) {
  return {{"matchLabels", {{proto::kLabelServiceName, service}}}};
}

std::string rv_of(const json& o) { return str(at(o, "metadata", "resourceVersion")); }

class InformerListers : public Listers {
 public:
  InformerListers(client::Informer& eps, client::Informer& svcs, client::Informer& slices)
      : eps_(eps), svcs_(svcs), slices_(slices) {}
  std::optional<json> endpoints(const std::string& key) override { return eps_.get(key); }
  std::optional<json> service(const std::string& key) override { return svcs_.get(key); }
  std::vector<json> slices(const std::string& ns, const std::string& service) override {
    auto sel = proto::LabelSelector::from_json(service_selector(service));
    if (!sel) return {};
    std::vector<json> out;
    for (auto& s : slices_.by_label(*sel))
      if (ns_of(s) == ns) out.push_back(std::move(s));
    return out;
  }
  std::string slices_version() override { return slices_.resource_version(); }

 private:
  client::Informer& eps_;
  client::Informer& svcs_;
  client::Informer& slices_;
};

class ApiSliceClient : public SliceClient {
 public:
  explicit ApiSliceClient(std::shared_ptr<client::ApiClient> api) : api_(std::move(api)) {}
  Result<json> create(const std::string& ns, const json& s) override {
    return api_->create(slice_type(), ns, s);
  }
  Result<json> update(const json& s) override { return api_->update(slice_type(), s); }
  Status remove(const std::string& ns, const std::string& name) override {
    return api_->remove(slice_type(), ns, name);
  }
  Result<std::vector<json>> list(const std::string& ns, const std::string& service) override {
    client::ListOptions o;
    o.label_selector = std::string(proto::kLabelServiceName) + "=" + service;
    auto r = api_->list(slice_type(), ns, o);
    if (!r) return r.status();
    std::vector<json> out;
    const json& items = at(*r, "items");
    if (items.is_array())
      for (const auto& i : items) out.push_back(i);
    return out;
  }

 private:
  std::shared_ptr<client::ApiClient> api_;
};

}  // namespace

EndpointSliceController::EndpointSliceController(EndpointSliceOptions opts)
    : opts_(std::move(opts)) {
  if (opts_.workers < 1) opts_.workers = 1;
  if (opts_.max_endpoints_per_slice < 1) opts_.max_endpoints_per_slice = kMaxEndpointsPerSlice;
  queue_ = std::make_unique<client::WorkQueue>(opts_.queue);
  stats_.depth = [this] { return queue_->len(); };
}

EndpointSliceController::~EndpointSliceController() { queue_->shut_down(); }

void EndpointSliceController::set_clients(Listers* listers, SliceClient* client,
                                          EventSink* events) {
  listers_ = listers;
  client_ = client;
  events_ = events;
}

Status EndpointSliceController::init(ControllerContext& ctx) {
  auto& ep_inf = ctx.informers->informer(ep_type());
  auto& svc_inf = ctx.informers->informer(svc_type());
  auto& slice_inf = ctx.informers->informer(slice_type());
  owned_listers_ = std::make_unique<InformerListers>(ep_inf, svc_inf, slice_inf);
  owned_client_ = std::make_unique<ApiSliceClient>(ctx.api);
  set_clients(owned_listers_.get(), owned_client_.get(), ctx.events);
  ep_inf.add_handlers({[this](const json& o) { on_endpoints(o); },
                       [this](const json& a, const json& b) { on_endpoints_update(a, b); },
                       [this](const json& o) { on_endpoints(o); }});
  svc_inf.add_handlers({[this](const json& o) { on_service(o); },
                        [this](const json& a, const json& b) { on_service_update(a, b); },
                        [this](const json& o) { on_service(o); }});
  slice_inf.add_handlers({[this](const json& o) { on_slice(o); },
                          [this](const json&, const json& b) { on_slice(b); },
                          [this](const json& o) { on_slice(o); }});
  return Status::ok();
}

// --- handlers: they only enqueue ---

void EndpointSliceController::on_endpoints(const json& ep) { queue_->add(client::object_key(ep)); }

void EndpointSliceController::on_endpoints_update(const json& old_ep, const json& ep) {
  if (!rv_of(old_ep).empty() && rv_of(old_ep) == rv_of(ep)) return;  // a resync
  queue_->add(client::object_key(ep));
}

void EndpointSliceController::on_service(const json& svc) { queue_->add(client::object_key(svc)); }

void EndpointSliceController::on_service_update(const json& old_svc, const json& svc) {
  if (uid_of(old_svc) != uid_of(svc)) queue_->add(client::object_key(svc));
}

void EndpointSliceController::on_slice(const json& slice) {
  if (!managed_by_us(slice)) return;
  std::string service = str(at(at(slice, "metadata", "labels"), proto::kLabelServiceName));
  if (service.empty()) return;
  queue_->add(ns_of(slice) + "/" + service);
}

// --- our writes standing in for the lagging cache ---

void EndpointSliceController::track(const std::string& key, const std::string& slice_name,
                                    Tracked t) {
  std::lock_guard l(tracked_mu_);
  tracked_[key][slice_name] = std::move(t);
}

void EndpointSliceController::forget(const std::string& key) {
  std::lock_guard l(tracked_mu_);
  tracked_.erase(key);
}

std::vector<json> EndpointSliceController::current_slices(const std::string& key,
                                                          const std::string& ns,
                                                          const std::string& name) {
  std::vector<json> cached = listers_->slices(ns, name);
  std::lock_guard l(tracked_mu_);
  auto kt = tracked_.find(key);
  if (kt == tracked_.end()) return cached;
  const auto cache_rv = rv_number(listers_->slices_version());
  auto& mine = kt->second;
  for (auto it = mine.begin(); it != mine.end();) {
    const std::string& slice_name = it->first;
    const Tracked& t = it->second;
    auto c = std::find_if(cached.begin(), cached.end(),
                          [&](const json& s) { return name_of(s) == slice_name; });
    bool keep;  // the cache has not caught up with our write yet
    if (!t.object) {
      keep = c != cached.end();
      if (keep) cached.erase(c);
    } else if (c == cached.end()) {
      // Created, not yet seen; once the cache is past our write, it was deleted since.
      auto ours = rv_number(t.rv);
      keep = !(cache_rv && ours && *cache_rv >= *ours);
      if (keep) cached.push_back(*t.object);
    } else {
      auto theirs = rv_number(rv_of(*c)), ours = rv_number(t.rv);
      keep = theirs && ours && *theirs < *ours;
      if (keep) *c = *t.object;
    }
    it = keep ? std::next(it) : mine.erase(it);
  }
  if (mine.empty()) tracked_.erase(kt);
  return cached;
}

// --- sync ---

Status EndpointSliceController::apply(const std::string& key, const std::string& ns,
                                      const std::string& name, const std::optional<json>& ep,
                                      const std::optional<json>& svc,
                                      const std::vector<json>& current) {
  SlicePlan plan;
  if (ep) {
    plan = plan_slices(*ep, svc ? &*svc : nullptr, current, opts_.max_endpoints_per_slice);
    if (plan.skipped)
      spdlog::debug(
          "endpointslice: {}: {} address(es) left out (not IPv4, or refused by "
          "EndpointSlice validation)",
          key, plan.skipped);
  } else {
    plan.remove = slices_to_remove(current);
  }
  // Creates and updates before deletes, so that moving endpoints never leaves a gap.
  for (const auto& s : plan.create) {
    auto r = client_->create(ns, s);
    if (!r) {
      if (namespace_terminating(r.status())) return Status::ok();
      return r.status().with_context("creating an endpoint slice for " + key);
    }
    track(key, name_of(*r), Tracked{rv_of(*r), *r});
    spdlog::debug("endpointslice: created {}/{} for {}", ns, name_of(*r), key);
  }
  for (const auto& s : plan.update) {
    auto r = client_->update(s);
    if (!r) return r.status().with_context("updating endpoint slice " + ns + "/" + name_of(s));
    track(key, name_of(*r), Tracked{rv_of(*r), *r});
    spdlog::debug("endpointslice: updated {}/{} for {}", ns, name_of(*r), key);
  }
  for (const auto& n : plan.remove) {
    auto st = client_->remove(ns, n);
    if (!st && st.code() != Code::kNotFound)
      return st.with_context("deleting endpoint slice " + ns + "/" + n);
    track(key, n, Tracked{"", std::nullopt});
    spdlog::debug("endpointslice: deleted {}/{} ({})", ns, n,
                  ep ? "not needed" : "its endpoints are gone");
  }
  return Status::ok();
}

Status EndpointSliceController::sync(const std::string& key) {
  auto slash = key.find('/');
  if (slash == std::string::npos) return Status::ok();  // not a namespaced key: nothing of ours
  const std::string ns = key.substr(0, slash), name = key.substr(slash + 1);
  std::optional<json> ep = listers_->endpoints(key);
  if (ep && !should_mirror(*ep)) ep.reset();
  std::optional<json> svc = listers_->service(key);
  std::vector<json> current = current_slices(key, ns, name);
  for (int attempt = 0;; ++attempt) {
    Status st = apply(key, ns, name, ep, svc, current);
    if (st) return st;
    bool stale = st.code() == Code::kConflict || st.code() == Code::kAlreadyExists ||
                 st.code() == Code::kNotFound;
    if (stale && attempt < 2) {
      // Someone else wrote or deleted a slice since our view: plan again on the API server's.
      forget(key);
      auto fresh = client_->list(ns, name);
      if (fresh) {
        current = std::move(*fresh);
        continue;
      }
      st = fresh.status();
    }
    if (events_ && svc)
      events_->event(*svc, "Service", true, "FailedToUpdateEndpointSlices",
                     "Error updating Endpoint Slices for Service " + key + ": " + st.message());
    return st;
  }
}

// --- workers ---

void EndpointSliceController::run(std::stop_token stop) {
  run_workers(
      *queue_, opts_.workers, stats_, [this](const std::string& key) { return sync(key); },
      [](const std::string& key, const Status& st) {
        if (st.code() == Code::kConflict)
          spdlog::info("endpointslice: {} (retrying)", st.to_string());
        else
          spdlog::warn("endpointslice: syncing {}: {} (retrying)", key, st.to_string());
      },
      stop);
}

}  // namespace skiff::controllers::endpointslice
