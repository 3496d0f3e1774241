#include "kubelet/pod_workers.h"

namespace skiff::kubelet {

PodWorkers::PodWorkers(int threads, std::function<void(const std::string&)> sync)
    : sync_(std::move(sync)) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

PodWorkers::~PodWorkers() { stop(); }

void PodWorkers::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

void PodWorkers::make_ready_locked(const std::string& key) {
  if (active_.count(key)) {
    dirty_.insert(key);
    return;
  }
  if (queued_.insert(key).second) ready_.push_back(key);
}

void PodWorkers::enqueue(const std::string& key) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    make_ready_locked(key);
  }
  cv_.notify_one();
}

void PodWorkers::enqueue_after(const std::string& key, std::chrono::milliseconds delay) {
  if (delay <= std::chrono::milliseconds(0)) return enqueue(key);
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    auto at = Clock::now() + delay;
    auto it = timers_.find(key);
    if (it == timers_.end() || at < it->second) timers_[key] = at;
  }
  cv_.notify_all();  // a sleeper may need to wake earlier
}

size_t PodWorkers::pending() const {
  std::lock_guard lock(mu_);
  std::set<std::string> all(queued_);
  all.insert(active_.begin(), active_.end());
  for (const auto& [k, t] : timers_) all.insert(k);
  return all.size();
}

void PodWorkers::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    auto now = Clock::now();
    auto next = Clock::time_point::max();
    for (auto it = timers_.begin(); it != timers_.end();) {
      if (it->second <= now) {
        make_ready_locked(it->first);
        it = timers_.erase(it);
      } else {
        next = std::min(next, it->second);
        ++it;
      }
    }
    if (ready_.empty()) {
      if (next == Clock::time_point::max())
        cv_.wait(lock);
      else
        cv_.wait_until(lock, next);
      continue;
    }
    std::string key = std::move(ready_.front());
    ready_.pop_front();
    queued_.erase(key);
    active_.insert(key);
    lock.unlock();
    sync_(key);
    lock.lock();
    active_.erase(key);
    if (dirty_.erase(key) && !stopping_) {
      queued_.insert(key);
      ready_.push_back(key);
      cv_.notify_one();
    }
  }
}

}  // namespace skiff::kubelet
