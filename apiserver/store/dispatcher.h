// Private to apiserver/store: delivery of committed events to subscribers, shared by the
// backends, plus small key-range helpers.
//
// Backends call publish() for each committed event in strictly increasing revision order (under
// whatever serializes their commits), then deliver() with no store lock held. deliver() hands
// every pending event to every subscriber in revision order; whichever thread holds the delivery
// lock drains events published by others too, so when deliver() returns, every event published
// before the call has been delivered. A subscriber sees only events with a revision above the
// last one published when it subscribed.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "apiserver/store/store.h"

namespace skiff::store {

class Dispatcher {
 public:
  explicit Dispatcher(int64_t last_published) : last_published_(last_published) {}

  // Queues a committed event. REQUIRES: calls are serialized by the caller, in revision order.
  void publish(Event ev);

  // Delivers everything published so far. Called from a watch callback of this dispatcher it
  // returns at once: the outer delivery loop picks the new events up.
  void deliver();

  uint64_t subscribe(WatchCallback cb);

  // After it returns, `id`'s callback is not running and will not be called again (unless it is
  // called from that very callback, which cannot wait for itself).
  void unsubscribe(uint64_t id);

 private:
  struct Sub {
    uint64_t id;
    int64_t start_revision;  // events at or below this predate the subscription
    std::shared_ptr<WatchCallback> cb;
  };
  using SubList = std::vector<Sub>;

  std::mutex mu_;  // guards the members below
  std::vector<Event> pending_;
  std::shared_ptr<const SubList> subs_ = std::make_shared<SubList>();
  int64_t last_published_;
  uint64_t next_id_ = 1;

  std::mutex deliver_mu_;  // held while calling callbacks: keeps delivery in revision order
};

// The smallest string greater than every string starting with `prefix`, or nullopt when there
// is none ("" or all 0xff bytes): the exclusive upper bound of a prefix range.
// `key` in double quotes, for error messages ("key \"/registry/x\" not found").
std::string quote_key(std::string_view key);

std::optional<std::string> prefix_end(std::string_view prefix);

}  // namespace skiff::store
