// The in-memory Store: a live map plus a bounded event history (kine's log, without a disk).
//
// A list at a past revision R starts from the live map and, for each key written after R,
// substitutes the value it had at R: the `prev` of the first event on that key after R.

#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "apiserver/store/dispatcher.h"
#include "apiserver/store/store.h"

namespace skiff::store {
namespace {


class MemoryStore final : public Store {
 public:
  explicit MemoryStore(int64_t keep_revisions)
      : keep_(keep_revisions < 0 ? 0 : keep_revisions), dispatch_(0) {}

  Result<KeyValue> get(std::string_view key) override {
    std::lock_guard lock(mu_);
    auto it = live_.find(key);
    if (it == live_.end()) return Status::not_found("get " + quote_key(key) + ": not found");
    return it->second;
  }

  Result<ListResult> list(std::string_view prefix, int64_t revision, int64_t limit,
                          std::string_view start_after) override {
    std::lock_guard lock(mu_);
    if (revision < 0 || revision > current_) {
      return Status::invalid("list at revision " + std::to_string(revision) +
                             ": the current revision is " + std::to_string(current_));
    }
    const int64_t at = revision == 0 ? current_ : revision;
    if (at != current_ && at <= compacted_) {
      return Status::gone("list at revision " + std::to_string(at) +
                          ": compacted (history starts after " + std::to_string(compacted_) + ")");
    }
    auto in_range = [&](std::string_view k) {
      return k.starts_with(prefix) && (start_after.empty() || k > start_after);
    };

    // Keys written after `at`, with their value as of `at` (nullopt: absent then).
    std::map<std::string_view, const std::optional<KeyValue>*> past;
    for (size_t i = static_cast<size_t>(at - compacted_); i < history_.size(); ++i) {
      const Event& ev = history_[i];
      if (in_range(ev.kv.key)) past.emplace(ev.kv.key, &ev.prev);
    }

    ListResult out;
    out.revision = at;
    auto live_it = start_after.empty() || start_after < prefix ? live_.lower_bound(prefix)
                                                               : live_.upper_bound(start_after);
    auto past_it = past.begin();
    auto full = [&] { return limit > 0 && static_cast<int64_t>(out.items.size()) >= limit; };
    // Merge the live keys and the rewritten ones, both in key order.
    for (;;) {
      bool live_ok = live_it != live_.end() && live_it->first.starts_with(prefix);
      bool past_ok = past_it != past.end();
      if (!live_ok && !past_ok) break;
      const KeyValue* kv = nullptr;
      if (past_ok && (!live_ok || past_it->first <= std::string_view(live_it->first))) {
        if (live_ok && past_it->first == std::string_view(live_it->first)) ++live_it;
        if (past_it->second->has_value()) kv = &**past_it->second;
        ++past_it;
      } else {
        kv = &live_it->second;
        ++live_it;
      }
      if (kv == nullptr) continue;
      if (full()) {
        out.more = true;
        break;
      }
      out.items.push_back(*kv);
    }
    return out;
  }

  Result<KeyValue> create(std::string_view key, std::string_view value) override {
    return write(Kind::kCreate, key, value, 0);
  }
  Result<KeyValue> update(std::string_view key, std::string_view value,
                          int64_t expected_revision) override {
    return write(Kind::kUpdate, key, value, expected_revision);
  }
  Result<KeyValue> remove(std::string_view key, int64_t expected_revision) override {
    return write(Kind::kDelete, key, {}, expected_revision);
  }

  int64_t current_revision() override {
    std::lock_guard lock(mu_);
    return current_;
  }
  int64_t compacted_revision() override {
    std::lock_guard lock(mu_);
    return compacted_;
  }

  Status compact(int64_t revision) override {
    std::lock_guard lock(mu_);
    if (revision > current_) {
      return Status::invalid("compact to " + std::to_string(revision) +
                             ": beyond the current revision " + std::to_string(current_));
    }
    while (!history_.empty() && history_.front().revision() <= revision) history_.pop_front();
    if (revision > compacted_) compacted_ = revision;
    return Status::ok();
  }

  Result<std::vector<Event>> events_since(std::string_view prefix, int64_t from_revision) override {
    std::lock_guard lock(mu_);
    if (from_revision < compacted_) {
      return Status::gone("events since " + std::to_string(from_revision) +
                          ": compacted (history starts after " + std::to_string(compacted_) + ")");
    }
    std::vector<Event> out;
    for (size_t i = static_cast<size_t>(from_revision - compacted_); i < history_.size(); ++i) {
      if (history_[i].kv.key.starts_with(prefix)) out.push_back(history_[i]);
    }
    return out;
  }

  uint64_t subscribe(WatchCallback cb) override { return dispatch_.subscribe(std::move(cb)); }
  void unsubscribe(uint64_t id) override { dispatch_.unsubscribe(id); }
  Status close() override { return Status::ok(); }

 private:
  enum class Kind { kCreate, kUpdate, kDelete };

  Result<KeyValue> write(Kind kind, std::string_view key, std::string_view value,
                         int64_t expected) {
    KeyValue result;
    {
      std::lock_guard lock(mu_);
      auto it = live_.find(key);
      Event ev;
      const int64_t rev = current_ + 1;
      if (kind == Kind::kCreate) {
        if (it != live_.end()) {
          return Status::already_exists("create " + quote_key(key) + ": already exists");
        }
        it =
            live_
                .emplace(std::string(key), KeyValue{std::string(key), std::string(value), rev, rev})
                .first;
        ev.type = EventType::kPut;
        ev.is_create = true;
        ev.kv = it->second;
        result = it->second;
      } else {
        const char* verb = kind == Kind::kUpdate ? "update " : "delete ";
        if (it == live_.end()) return Status::not_found(verb + quote_key(key) + ": not found");
        if (expected != 0 && expected != it->second.mod_revision) {
          return Status::conflict(verb + quote_key(key) + ": expected revision " +
                                  std::to_string(expected) + ", current is " +
                                  std::to_string(it->second.mod_revision));
        }
        ev.prev = it->second;
        if (kind == Kind::kUpdate) {
          it->second.value.assign(value);
          it->second.mod_revision = rev;
          ev.type = EventType::kPut;
          ev.kv = it->second;
          result = it->second;
        } else {
          ev.type = EventType::kDelete;
          ev.kv = std::move(it->second);
          ev.kv.mod_revision = rev;
          live_.erase(it);
          result = ev.kv;
        }
      }
      current_ = rev;
      history_.push_back(ev);
      while (static_cast<int64_t>(history_.size()) > keep_) {
        compacted_ = history_.front().revision();
        history_.pop_front();
      }
      dispatch_.publish(std::move(ev));
    }
    dispatch_.deliver();
    return result;
  }

  const int64_t keep_;
  std::mutex mu_;  // guards everything below; never held while calling watchers
  std::map<std::string, KeyValue, std::less<>> live_;
  std::deque<Event> history_;  // the events with revisions compacted_+1 .. current_
  int64_t current_ = 0;
  int64_t compacted_ = 0;
  Dispatcher dispatch_;
};

}  // namespace

std::unique_ptr<Store> make_memory_store(int64_t keep_revisions) {
  return std::make_unique<MemoryStore>(keep_revisions);
}

}  // namespace skiff::store
