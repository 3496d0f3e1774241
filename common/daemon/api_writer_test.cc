#include "common/daemon/api_writer.h"

#include <catch2/catch.hpp>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>

#include "proto/client/api_client.h"

using namespace skiff::daemon;
using nlohmann::json;

namespace {
const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000)) +
                  std::chrono::nanoseconds(42);
}  // namespace

TEST_CASE("make_event: an Event about a namespaced object") {
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", "web-1"}, {"namespace", "prod"}, {"uid", "u-1"}}}};
  json ev = make_event(pod, "Pod", true, "FailedScheduling", "0/1 nodes", {"sched", "me"}, kNow, 7);
  CHECK(ev["kind"] == "Event");
  CHECK(ev["metadata"]["namespace"] == "prod");
  std::string name = ev["metadata"]["name"].get<std::string>();
  CHECK(name.rfind("web-1.", 0) == 0);
  CHECK(name.substr(name.size() - 3) == "007");  // the sequence number's last 3 hex digits
  CHECK(ev["involvedObject"] == json({{"kind", "Pod"},
                                      {"apiVersion", "v1"},
                                      {"name", "web-1"},
                                      {"namespace", "prod"},
                                      {"uid", "u-1"}}));
  CHECK(ev["type"] == "Warning");
  CHECK(ev["reason"] == "FailedScheduling");
  CHECK(ev["message"] == "0/1 nodes");
  CHECK(ev["source"]["component"] == "sched");
  CHECK(ev["reportingComponent"] == "sched");
  CHECK(ev["reportingInstance"] == "me");
  CHECK(ev["count"] == 1);
  CHECK(ev["firstTimestamp"] == "2023-11-14T22:13:20Z");
  CHECK(ev["lastTimestamp"] == ev["firstTimestamp"]);
}

TEST_CASE("make_event: cluster-scoped objects' Events go to default; garbage does not throw") {
  json node = {{"apiVersion", "v1"}, {"metadata", {{"name", "n1"}}}};
  json ev = make_event(node, "Node", false, "CIDRNotAvailable", "full", {"cm", "x"}, kNow, 1);
  CHECK(ev["metadata"]["namespace"] == "default");
  CHECK_FALSE(ev["involvedObject"].contains("namespace"));
  CHECK(ev["type"] == "Normal");
  // apiVersion defaults to v1; a non-object does not throw.
  json rs = {{"metadata", {{"name", "r"}, {"namespace", "a"}}}};
  CHECK(make_event(rs, "ReplicaSet", false, "x", "y", {"cm", "x"}, kNow,
                   2)["involvedObject"]["apiVersion"] == "v1");
  CHECK(make_event(json(3), "Pod", false, "x", "y", {"cm", "x"}, kNow,
                   3)["metadata"]["namespace"] == "default");
  // Two events in one nanosecond still get different names.
  CHECK(make_event(node, "Node", false, "a", "b", {}, kNow, 1)["metadata"]["name"] !=
        make_event(node, "Node", false, "a", "b", {}, kNow, 2)["metadata"]["name"]);
}

TEST_CASE("ApiWriter: runs tasks in order, counts failures, stops idempotently") {
  // The tasks never send anything: a client without a transport is enough.
  ApiWriter w(std::make_shared<skiff::client::ApiClient>(nullptr), 1000);
  std::vector<int> seen;
  std::mutex mu;
  for (int i = 0; i < 5; ++i)
    w.push([&, i](skiff::client::ApiClient&) {
      std::lock_guard lock(mu);
      seen.push_back(i);
      return i % 2 == 0;
    });
  w.stop();
  w.stop();
  CHECK(seen == std::vector<int>{0, 1, 2, 3, 4});
  CHECK(w.failed() == 2);
  CHECK(w.dropped() == 0);
  w.push([](skiff::client::ApiClient&) { return true; });  // after stop: ignored
  CHECK(w.dropped() == 0);
}

TEST_CASE("ApiWriter: a full queue drops and counts; stop keeps at most 10") {
  ApiWriter w(std::make_shared<skiff::client::ApiClient>(nullptr), 2);
  std::promise<void> started, release;
  auto release_f = release.get_future().share();
  w.push([&](skiff::client::ApiClient&) {
    started.set_value();
    release_f.wait();
    return true;
  });
  started.get_future().wait();  // the first task is running: the queue is empty again
  for (int i = 0; i < 5; ++i) w.push([](skiff::client::ApiClient&) { return true; });
  CHECK(w.dropped() == 3);
  release.set_value();
  w.stop();
  CHECK(w.failed() == 0);
  CHECK(w.dropped() == 3);
}
