// ApiWriter: API writes that nobody waits for (Events, status patches), done in order on one
// background thread so a controller's sync or the scheduling loop never waits on the API
// server. Event objects for it come from make_event (pure).
//
// Thread-safe; push() never blocks. A full queue (API server slow or gone) drops the write and
// counts it, as client-go's event broadcaster does.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <thread>

namespace skiff::client {
class ApiClient;
}

namespace skiff::daemon {

class ApiWriter {
 public:
  // One write; returns false when it failed (and logs why itself).
  using Task = std::function<bool(client::ApiClient&)>;

  ApiWriter(std::shared_ptr<client::ApiClient> api, size_t max_queued);
  ~ApiWriter();  // stop()
  ApiWriter(const ApiWriter&) = delete;
  ApiWriter& operator=(const ApiWriter&) = delete;

  // Queues `t`; dropped (and counted) when the queue is full, ignored after stop().
  void push(Task t);
  // Queues the posting of the core/v1 Event `ev` (from make_event); a failure is logged.
  void post_event(nlohmann::json ev);
  // Runs what is queued (at most 10: a few writes are worth delaying the shutdown for, not
  // thousands; the rest count as dropped), then ends the thread. Idempotent.
  void stop();
  int64_t dropped() const;
  int64_t failed() const;

 private:
  void run();

  std::shared_ptr<client::ApiClient> api_;
  const size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  bool stopping_ = false;
  int64_t dropped_ = 0, failed_ = 0;
  std::thread thread_;
};

// Who reports an Event: source.component / reportingComponent and reportingInstance.
struct EventSource {
  std::string component;
  std::string instance;
};

// A core/v1 Event (count 1, first = last timestamp = `now`) about `obj` of `kind`:
// involvedObject takes obj's apiVersion (default "v1"), name, namespace and uid. Events about
// cluster-scoped objects (Nodes) go to the "default" namespace, as Kubernetes does. The name
// is "<object name>.<hex nanoseconds><3 hex digits of seq>", unique per process when each
// event gets its own `seq`.
nlohmann::json make_event(const nlohmann::json& obj, const std::string& kind, bool warning,
                          const std::string& reason, const std::string& message,
                          const EventSource& source, std::chrono::system_clock::time_point now,
                          uint64_t seq);

}  // namespace skiff::daemon
