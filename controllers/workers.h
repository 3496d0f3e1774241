// The worker loop every queue-driven controller runs (Kubernetes' processNextWorkItem): take a
// key, sync it, forget its back-off on success, re-queue it with back-off on failure, mark it
// done. Handlers only enqueue keys; the sync function converges one key idempotently.
//
// Thread-safety: run_workers starts `n` threads that call `sync` and `on_error` concurrently
// (the queue never hands one key to two workers at a time); `stats` is atomic.
#pragma once

#include <chrono>
#include <functional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "controllers/controller.h"
#include "proto/client/workqueue.h"

namespace skiff::controllers {

// Converges one key. An error re-queues it with back-off.
using SyncFn = std::function<Status(const std::string& key)>;
// Says why a sync failed, at the level the error deserves (conflicts are routine).
using SyncErrorFn = std::function<void(const std::string& key, const Status& st)>;

// Runs `f` (returning Status or Result<T>) and counts it in `stats` (syncs, time spent).
template <class F>
auto timed_sync(WorkerStats& stats, F&& f) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = f();
  stats.sync_micros +=
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  ++stats.syncs;
  return r;
}

// One worker: processes keys until the queue shuts down or `stop` is requested. A failed sync
// counts in sync_errors and retries, goes to `on_error` and is re-queued with back-off.
inline void process_queue(client::WorkQueue& queue, WorkerStats& stats, const SyncFn& sync,
                          const SyncErrorFn& on_error, std::stop_token stop) {
  while (!stop.stop_requested()) {
    auto key = queue.get();
    if (!key) return;
    Status st = timed_sync(stats, [&] { return sync(*key); });
    if (st.is_ok()) {
      queue.forget(*key);
    } else {
      ++stats.sync_errors;
      ++stats.retries;
      if (on_error) on_error(*key, st);
      queue.add_rate_limited(*key);
    }
    queue.done(*key);
  }
}

// Runs `n` workers until `stop`: then shuts the queue down (waking every worker) and returns
// once all have ended.
inline void run_workers(client::WorkQueue& queue, int n, WorkerStats& stats, const SyncFn& sync,
                        const SyncErrorFn& on_error, std::stop_token stop) {
  std::vector<std::jthread> workers;
  for (int i = 0; i < n; ++i)
    workers.emplace_back(
        [&](std::stop_token st) { process_queue(queue, stats, sync, on_error, st); });
  std::stop_callback on_stop(stop, [&queue] { queue.shut_down(); });
  for (auto& w : workers) w.join();
}

}  // namespace skiff::controllers
