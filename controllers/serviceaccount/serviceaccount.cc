#include "controllers/serviceaccount/serviceaccount.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "controllers/api_util.h"
#include "controllers/workers.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/namespace.h"
#include "proto/serviceaccount.h"

namespace skiff::controllers::serviceaccount {

namespace {

const proto::ResourceType& namespace_type() { return resource_type<proto::namespace_resource>(); }
const proto::ResourceType& sa_type() { return resource_type<proto::serviceaccount_resource>(); }

class ApiSaClient : public SaClient {
 public:
  ApiSaClient(client::Informer& namespaces, client::Informer& sas,
              std::shared_ptr<client::ApiClient> api)
      : namespaces_(namespaces), sas_(sas), api_(std::move(api)) {}
  std::optional<json> get_namespace(const std::string& name) override {
    return namespaces_.get(name);
  }
  std::vector<json> list_namespaces() override { return namespaces_.list(); }
  bool has_service_account(const std::string& ns, const std::string& name) override {
    return sas_.get(ns + "/" + name).has_value();
  }
  Status create(const std::string& ns, const json& sa) override {
    auto r = api_->create(sa_type(), ns, sa);
    return r ? Status::ok() : r.status();
  }

 private:
  client::Informer& namespaces_;
  client::Informer& sas_;
  std::shared_ptr<client::ApiClient> api_;
};

}  // namespace

bool namespace_active(const json& ns) {
  if (!str(at(ns, "metadata", "deletionTimestamp")).empty()) return false;
  return str(at(ns, "status", "phase")) != "Terminating";
}

ServiceAccountsController::ServiceAccountsController(ServiceAccountsOptions opts)
    : opts_(std::move(opts)), queue_(std::make_unique<client::WorkQueue>(opts_.queue)) {
  stats_.depth = [this] { return queue_->len(); };
}

ServiceAccountsController::~ServiceAccountsController() { queue_->shut_down(); }

void ServiceAccountsController::on_namespace(const json& ns) {
  std::string name = name_of(ns);
  if (!name.empty() && namespace_active(ns)) queue_->add(name);
}

void ServiceAccountsController::on_service_account_deleted(const json& sa) {
  std::string ns = ns_of(sa);
  if (ns.empty()) return;
  for (const auto& n : opts_.names)
    if (n == name_of(sa)) {
      queue_->add(ns);
      return;
    }
}

Status ServiceAccountsController::init(ControllerContext& ctx) {
  auto& namespaces = ctx.informers->informer(namespace_type());
  auto& sas = ctx.informers->informer(sa_type());
  owned_client_ = std::make_unique<ApiSaClient>(namespaces, sas, ctx.api);
  set_client(owned_client_.get());
  namespaces.add_handlers({[this](const json& n) { on_namespace(n); },
                           [this](const json&, const json& n) { on_namespace(n); }, nullptr});
  sas.add_handlers({nullptr, nullptr, [this](const json& sa) { on_service_account_deleted(sa); }});
  return Status::ok();
}

Status ServiceAccountsController::sync(const std::string& ns) {
  auto nsobj = client_->get_namespace(ns);
  if (!nsobj || !namespace_active(*nsobj)) return Status::ok();
  Status first;
  for (const auto& name : opts_.names) {
    if (client_->has_service_account(ns, name)) continue;
    json sa = {{"apiVersion", "v1"},
               {"kind", "ServiceAccount"},
               {"metadata", {{"name", name}, {"namespace", ns}}}};
    Status st = client_->create(ns, sa);
    if (st) {
      ++created_;
      spdlog::info("serviceaccount: created ServiceAccount {}/{}", ns, name);
      continue;
    }
    // The cache lagging behind, the namespace gone or going: nothing to do (as Kubernetes).
    if (st.code() == Code::kAlreadyExists || st.code() == Code::kNotFound ||
        namespace_terminating(st))
      continue;
    if (first.is_ok()) first = st.with_context("creating ServiceAccount " + ns + "/" + name);
  }
  return first;
}

void ServiceAccountsController::run(std::stop_token stop) {
  for (const auto& n : client_->list_namespaces()) on_namespace(n);
  run_workers(
      *queue_, opts_.workers, stats_, [this](const std::string& key) { return sync(key); },
      [](const std::string&, const Status& st) {
        spdlog::warn("serviceaccount: {} (retrying)", st.to_string());
      },
      stop);
}

}  // namespace skiff::controllers::serviceaccount
