#include "controllers/manager.h"

#include <catch2/catch.hpp>

using namespace skiff;
using namespace skiff::controllers;
using namespace std::chrono_literals;

TEST_CASE("parse_duration: Go-style durations") {
  CHECK(*parse_duration("15s") == 15s);
  CHECK(*parse_duration("1500ms") == 1500ms);
  CHECK(*parse_duration("2m") == 120s);
  CHECK(*parse_duration("1m30s") == 90s);
  CHECK(*parse_duration("1h") == 3600s);
  CHECK(*parse_duration("0.5s") == 500ms);
  for (const char* bad : {"", "15", "s", "15x", "-1s", "1s2", "abc"}) {
    INFO(bad);
    auto r = parse_duration(bad);
    CHECK_FALSE(r);
    if (!r) CHECK(r.status().message().find("duration") != std::string::npos);
  }
}

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
