#include "controllers/namespace/namespace_controller.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "controllers/workers.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/client/rest_client.h"
#include "proto/namespace.h"
#include "proto/registry.h"

namespace skiff::controllers::ns {

namespace {

const proto::ResourceType& namespace_type() {
  static const proto::ResourceType t = proto::namespace_resource();
  return t;
}

std::string meta_str(const json& obj, const char* field) {
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return "";
  auto f = m->find(field);
  return f != m->end() && f->is_string() ? f->get<std::string>() : "";
}

bool terminating(const json& ns) {
  if (!meta_str(ns, "deletionTimestamp").empty()) return true;
  auto s = ns.find("status");
  return s != ns.end() && s->is_object() && s->value("phase", "") == "Terminating";
}

class ApiNamespaceClient : public NamespaceClient {
 public:
  ApiNamespaceClient(client::Informer& inf, std::shared_ptr<client::ApiClient> api)
      : inf_(inf), api_(std::move(api)) {}
  std::optional<json> get(const std::string& name) override { return inf_.get(name); }
  std::vector<json> list_namespaces() override { return inf_.list(); }
  Result<std::vector<json>> list(const proto::ResourceType& t, const std::string& ns) override {
    auto r = api_->list(t, ns);
    if (!r) return r.status().with_context("listing " + t.plural + " in namespace " + ns);
    std::vector<json> out;
    if (auto it = r->find("items"); it != r->end() && it->is_array())
      for (auto& o : *it) out.push_back(std::move(o));
    return out;
  }
  Status remove(const proto::ResourceType& t, const std::string& ns, const std::string& name,
                const std::string& uid) override {
    client::Request req;
    req.method = "DELETE";
    req.path = client::resource_path(t, ns, name);
    req.body = json{{"kind", "DeleteOptions"},
                    {"apiVersion", "v1"},
                    {"propagationPolicy", "Background"},
                    {"preconditions", {{"uid", uid}}}}
                   .dump();
    req.content_type = "application/json";
    auto resp = api_->rest().request(req);
    if (!resp) return resp.status();
    return resp->ok() ? Status::ok() : client::to_status(*resp);
  }
  Status finish(const std::string& name) override {
    return api_->remove(namespace_type(), "", name, "");
  }

 private:
  client::Informer& inf_;
  std::shared_ptr<client::ApiClient> api_;
};

}  // namespace

NamespaceController::NamespaceController(NamespaceOptions opts)
    : opts_(std::move(opts)), queue_(std::make_unique<client::WorkQueue>(opts_.queue)) {
  if (opts_.types.empty())
    for (const auto& t : proto::Registry::builtin().all())
      if (t.namespaced) opts_.types.push_back(&t);
  stats_.depth = [this] { return queue_->len(); };
}

NamespaceController::~NamespaceController() { queue_->shut_down(); }

Status NamespaceController::init(ControllerContext& ctx) {
  auto& inf = ctx.informers->informer(namespace_type());
  owned_client_ = std::make_unique<ApiNamespaceClient>(inf, ctx.api);
  set_client(owned_client_.get());
  auto maybe = [this](const json& n) {
    if (terminating(n)) queue_->add_after(meta_str(n, "name"), opts_.first_delay);
  };
  inf.add_handlers({maybe, [maybe](const json&, const json& n) { maybe(n); }, nullptr});
  return Status::ok();
}

Result<bool> NamespaceController::sync(const std::string& name) {
  auto nsobj = client_->get(name);
  if (!nsobj || !terminating(*nsobj)) return true;
  size_t left = 0, deleted = 0;
  Status first;
  for (const auto* t : opts_.types) {
    auto items = client_->list(*t, name);
    if (!items) {
      if (first.is_ok()) first = items.status();
      ++left;
      continue;
    }
    for (const auto& o : *items) {
      ++left;  // gone only once a later list no longer shows it
      if (!meta_str(o, "deletionTimestamp").empty()) continue;  // held by its finalizers
      auto st = client_->remove(*t, name, meta_str(o, "name"), meta_str(o, "uid"));
      if (st)
        ++deleted;
      else if (st.code() != Code::kNotFound && st.code() != Code::kConflict && first.is_ok())
        first = st.with_context("deleting " + t->plural + " " + name + "/" + meta_str(o, "name"));
    }
  }
  if (deleted > 0)
    spdlog::info("namespace: {} is Terminating: deleted {} object(s) left in it", name, deleted);
  if (!first) return first.with_context("emptying terminating namespace " + name);
  if (left > 0) return false;
  // Empty: the API server removes it (unless its own metadata.finalizers still hold it).
  auto st = client_->finish(name);
  if (!st && st.code() != Code::kNotFound)
    return st.with_context("finishing terminating namespace " + name);
  if (st) spdlog::info("namespace: {} is empty: asked the API server to remove it", name);
  return false;  // look again: it should be gone by then
}

void NamespaceController::run(std::stop_token stop) {
  for (const auto& n : client_->list_namespaces())
    if (terminating(n)) queue_->add(meta_str(n, "name"));
  run_workers(
      *queue_, 1, stats_,
      [this](const std::string& key) -> Status {
        auto done = sync(key);
        if (!done) return done.status();
        if (!*done) queue_->add_after(key, opts_.recheck_period);  // still Terminating
        return Status::ok();
      },
      [](const std::string&, const Status& st) {
        spdlog::warn("namespace: {} (retrying)", st.to_string());
      },
      stop);
}

}  // namespace skiff::controllers::ns
