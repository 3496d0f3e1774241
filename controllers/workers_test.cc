#include "controllers/workers.h"

#include <catch2/catch.hpp>
#include <map>
#include <mutex>

using namespace skiff;
using namespace skiff::controllers;

TEST_CASE("run_workers: syncs every key, retries a failure with back-off, stops on request") {
  client::WorkQueueOptions qo;
  qo.base_delay = std::chrono::milliseconds(1);
  client::WorkQueue queue(qo);
  WorkerStats stats;
  std::mutex mu;
  std::map<std::string, int> attempts;
  std::vector<std::string> errors;
  SyncFn sync = [&](const std::string& key) {
    std::lock_guard lock(mu);
    if (++attempts[key] == 1 && key == "b") return Status::conflict("b changed");
    return Status::ok();
  };
  SyncErrorFn on_error = [&](const std::string& key, const Status& st) {
    std::lock_guard lock(mu);
    errors.push_back(key + ": " + st.message());
  };
  for (const char* k : {"a", "b", "c"}) queue.add(k);
  std::stop_source stop;
  std::thread runner([&] { run_workers(queue, 2, stats, sync, on_error, stop.get_token()); });
  // Bounded wait for the retry of b (not a timing assertion: only a cap on a hung test; 30 s,
  // the workers may wait for a CPU on a busy machine).
  for (int i = 0; i < 3000; ++i) {
    {
      std::lock_guard lock(mu);
      if (attempts["b"] == 2 && attempts["a"] == 1 && attempts["c"] == 1) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop.request_stop();
  runner.join();  // returns: the stop shut the queue down and woke the workers
  CHECK(attempts == std::map<std::string, int>{{"a", 1}, {"b", 2}, {"c", 1}});
  CHECK(errors == std::vector<std::string>{"b: b changed"});
  CHECK(stats.syncs == 4);
  CHECK(stats.sync_errors == 1);
  CHECK(stats.retries == 1);
  CHECK(queue.num_requeues("b") == 0);  // forgotten after the good sync
  CHECK(queue.shutting_down());
}
