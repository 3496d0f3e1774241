#include "apiserver/store/dispatcher.h"

#include <utility>

namespace skiff::store {
namespace {

// The dispatcher whose callbacks this thread is running, if any: a callback that writes to the
// same store must not wait for the delivery lock its own thread holds.
thread_local const Dispatcher* tl_delivering = nullptr;

}  // namespace

void Dispatcher::publish(Event ev) {
  std::lock_guard lock(mu_);
  last_published_ = ev.revision();
  pending_.push_back(std::move(ev));
}

void Dispatcher::deliver() {
  if (tl_delivering == this) return;
  std::lock_guard dlock(deliver_mu_);
  const Dispatcher* outer = tl_delivering;
  tl_delivering = this;
  std::vector<Event> batch;
  for (;;) {
    std::shared_ptr<const SubList> subs;
    {
      // Taking the batch and the subscriber list together is what makes "events after
      // subscribe()" exact: a subscriber added after this point gets only later batches.
      std::lock_guard lock(mu_);
      if (pending_.empty()) break;
      batch.swap(pending_);
      subs = subs_;
    }
    for (const Event& ev : batch) {
      for (const Sub& s : *subs) {
        if (ev.revision() <= s.start_revision) continue;
        try {
          (*s.cb)(ev);
        } catch (...) {
          // A throwing watcher must not stop delivery to the others; it is its own bug.
        }
      }
    }
    batch.clear();
  }
  tl_delivering = outer;
}

uint64_t Dispatcher::subscribe(WatchCallback cb) {
  std::lock_guard lock(mu_);
  auto next = std::make_shared<SubList>(*subs_);
  uint64_t id = next_id_++;
  next->push_back(Sub{id, last_published_, std::make_shared<WatchCallback>(std::move(cb))});
  subs_ = std::move(next);
  return id;
}

void Dispatcher::unsubscribe(uint64_t id) {
  {
    std::lock_guard lock(mu_);
    auto next = std::make_shared<SubList>();
    next->reserve(subs_->size());
    for (const Sub& s : *subs_) {
      if (s.id != id) next->push_back(s);
    }
    subs_ = std::move(next);
  }
  // Wait out a delivery that may still hold the old list.
  if (tl_delivering != this) {
    deliver_mu_.lock();
    deliver_mu_.unlock();
  }
}

std::optional<std::string> prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto c = static_cast<unsigned char>(end.back());
    if (c != 0xff) {
      end.back() = static_cast<char>(c + 1);
      return end;
    }
    end.pop_back();
  }
  return std::nullopt;
}

std::string quote_key(std::string_view key) {
  std::string s;
  s.reserve(key.size() + 2);
  s += '"';
  s += key;
  s += '"';
  return s;
}

}  // namespace skiff::store
