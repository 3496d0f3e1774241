#include "controllers/manager.h"

#include <catch2/catch.hpp>

using namespace skiff;
using namespace skiff::controllers;
using namespace std::chrono_literals;

namespace {
class StubController : public Controller {
 public:
  std::string name() const override { return "stub"; }
  Status init(ControllerContext&) override { return Status::ok(); }
  void run(std::stop_token) override {}
  const WorkerStats& stats() const override { return stats_; }
  WorkerStats stats_;
};
}  // namespace

TEST_CASE("metrics text names every controller's queue, retries and sync time") {
  ManagerOptions o;
  o.identity = "me";
  ControllerManager m(nullptr, o);
  auto c = std::make_unique<StubController>();
  c->stats_.depth = [] { return size_t{3}; };
  c->stats_.retries = 2;
  c->stats_.syncs = 5;
  c->stats_.sync_micros = 1'500'000;
  m.add(std::move(c));
  auto text = m.metrics_text();
  CHECK(text.find("leader_election_master_status{name=\"skiff-controller-manager\"} 0\n") !=
        std::string::npos);
  CHECK(text.find("workqueue_depth{name=\"stub\"} 3\n") != std::string::npos);
  CHECK(text.find("workqueue_retries_total{name=\"stub\"} 2\n") != std::string::npos);
  CHECK(text.find("skiff_controller_sync_duration_seconds_sum{controller=\"stub\"} 1.5\n") !=
        std::string::npos);
  CHECK(text.find("skiff_controller_sync_duration_seconds_count{controller=\"stub\"} 5\n") !=
        std::string::npos);
}
