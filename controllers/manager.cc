#include "controllers/manager.h"

#include <spdlog/spdlog.h>

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/daemon/daemon.h"
#include "controllers/events.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/client/leader_election.h"
#include "proto/registry.h"

namespace skiff::controllers {

class ControllerManager::Informers : public InformerFactory {
 public:
  explicit Informers(std::shared_ptr<client::ApiClient> api) : api_(std::move(api)) {}
  client::Informer& informer(const proto::ResourceType& type) override {
    std::string key = type.api_version() + "/" + type.plural;
    auto it = by_type_.find(key);
    if (it != by_type_.end()) return *it->second;
    // The Informer keeps a reference to the type: keep a copy that lives as long as it does.
    types_.push_back(std::make_unique<proto::ResourceType>(type));
    auto inf = std::make_unique<client::Informer>(api_, *types_.back());
    auto& ref = *inf;
    by_type_[key] = std::move(inf);
    return ref;
  }
  void start() {
    for (auto& [k, inf] : by_type_) inf->start();
  }
  // Waits for every informer; false when `stop` came first or the timeout passed.
  bool wait_for_sync(std::stop_token stop, std::chrono::milliseconds timeout) {
    auto end = std::chrono::steady_clock::now() + timeout;
    for (auto& [k, inf] : by_type_) {
      while (!inf->wait_for_sync(std::chrono::milliseconds(200))) {
        if (stop.stop_requested()) return false;
        if (std::chrono::steady_clock::now() > end) {
          spdlog::error("informer for {} not synced after {} ms", k, timeout.count());
          return false;
        }
      }
    }
    return true;
  }
  void stop() {
    for (auto& [k, inf] : by_type_) inf->stop();
  }

 private:
  std::shared_ptr<client::ApiClient> api_;
  std::vector<std::unique_ptr<proto::ResourceType>> types_;
  std::map<std::string, std::unique_ptr<client::Informer>> by_type_;
};

ControllerManager::ControllerManager(std::shared_ptr<client::ApiClient> api, ManagerOptions opts)
    : api_(std::move(api)), opts_(std::move(opts)) {}

ControllerManager::~ControllerManager() = default;

void ControllerManager::add(std::unique_ptr<Controller> c) { controllers_.push_back(std::move(c)); }

bool ControllerManager::is_leader() const { return leading_.load(); }

bool ControllerManager::run_controllers(std::stop_token stop) {
  Informers informers(api_);
  ControllerContext ctx{api_, &informers, events_.get()};
  for (auto& c : controllers_) {
    if (auto s = c->init(ctx); !s) {
      spdlog::error("controller {}: {}", c->name(), s.to_string());
      return false;
    }
  }
  informers.start();
  if (!informers.wait_for_sync(stop, opts_.informer_sync_timeout)) {
    informers.stop();
    return stop.stop_requested();
  }
  std::vector<std::jthread> threads;
  for (auto& c : controllers_) {
    spdlog::info("starting controller {}", c->name());
    threads.emplace_back([&c](std::stop_token st) { c->run(st); });
  }
  {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    cv.wait(lock, stop, [] { return false; });
  }
  for (auto& t : threads) t.request_stop();
  for (auto& t : threads) t.join();
  informers.stop();
  spdlog::info("controllers stopped");
  return true;
}

int ControllerManager::run(std::stop_token stop) {
  events_ = std::make_unique<ApiEventSink>(api_, "skiff-controller-manager", opts_.identity);
  if (!opts_.leader_elect) {
    leading_ = true;
    bool ok = run_controllers(stop);
    leading_ = false;
    return ok ? 0 : 1;
  }

  client::LeaderElectionConfig cfg;
  cfg.lock = std::make_shared<client::ApiLeaseLock>(lease_api_ ? lease_api_ : api_,
                                                    opts_.lease_namespace, opts_.lease_name);
  cfg.identity = opts_.identity;
  cfg.lease_duration = opts_.lease_duration;
  cfg.renew_deadline = opts_.renew_deadline;
  cfg.retry_period = opts_.retry_period;
  cfg.release_on_cancel = true;
  // The controllers run while we lead. A failed start is treated as lost leadership: the
  // process exits and a restart (or another replica) tries again.
  auto rc = daemon::run_leader_elected(
      std::move(cfg), [this](std::stop_token st) { return run_controllers(st); }, leading_, stop,
      {.doing = "starting controllers", .start_failure = "the controllers failed to start"});
  events_.reset();
  if (!rc.is_ok()) {
    spdlog::error("{}", rc.status().to_string());
    return 1;
  }
  return *rc;
}

std::string ControllerManager::metrics_text() const {
  std::ostringstream o;
  o << "# HELP leader_election_master_status 1 when this process holds the leader lease.\n"
       "# TYPE leader_election_master_status gauge\n"
    << "leader_election_master_status{name=\"" << opts_.lease_name << "\"} " << (leading_ ? 1 : 0)
    << "\n";
  o << "# HELP workqueue_depth Keys waiting in a controller's work queue.\n"
       "# TYPE workqueue_depth gauge\n";
  for (const auto& c : controllers_)
    o << "workqueue_depth{name=\"" << c->name() << "\"} "
      << (c->stats().depth ? c->stats().depth() : 0) << "\n";
  o << "# HELP workqueue_retries_total Keys re-queued with back-off after a failed sync.\n"
       "# TYPE workqueue_retries_total counter\n";
  for (const auto& c : controllers_)
    o << "workqueue_retries_total{name=\"" << c->name() << "\"} " << c->stats().retries << "\n";
  o << "# HELP skiff_controller_sync_errors_total Syncs that returned an error.\n"
       "# TYPE skiff_controller_sync_errors_total counter\n";
  for (const auto& c : controllers_)
    o << "skiff_controller_sync_errors_total{controller=\"" << c->name() << "\"} "
      << c->stats().sync_errors << "\n";
  o << "# HELP skiff_controller_sync_duration_seconds Time spent in sync.\n"
       "# TYPE skiff_controller_sync_duration_seconds summary\n";
  for (const auto& c : controllers_) {
    o << "skiff_controller_sync_duration_seconds_sum{controller=\"" << c->name() << "\"} "
      << static_cast<double>(c->stats().sync_micros.load()) / 1e6 << "\n";
    o << "skiff_controller_sync_duration_seconds_count{controller=\"" << c->name() << "\"} "
      << c->stats().syncs << "\n";
  }
  return o.str();
}

}  // namespace skiff::controllers
