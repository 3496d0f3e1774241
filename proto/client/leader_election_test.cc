#include "proto/client/leader_election.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <thread>

using namespace skiff;
using namespace skiff::client;
using namespace std::chrono_literals;

namespace {

// An in-memory Lease with resourceVersion semantics, shared by several electors.
class FakeLeaseLock : public LeaseLock {
 public:
  Result<Versioned> get() override {
    std::lock_guard lock(mu_);
    if (fail_get) return Status::unavailable("fake: get fails");
    if (!exists) return Status::not_found("fake: no lease");
    return Versioned{rec, std::to_string(version)};
  }
  Result<std::string> create(const LeaderElectionRecord& r) override {
    std::lock_guard lock(mu_);
    if (exists) return Status::already_exists("fake: lease exists");
    exists = true;
    rec = r;
    return std::to_string(++version);
  }
  Result<std::string> update(const LeaderElectionRecord& r, const std::string& v) override {
    std::lock_guard lock(mu_);
    ++updates;
    if (fail_update) return Status::unavailable("fake: update fails");
    if (!exists) return Status::not_found("fake: no lease");
    if (v != std::to_string(version)) return Status::conflict("fake: stale version " + v);
    rec = r;
    return std::to_string(++version);
  }
  std::string describe() const override { return "test/lease"; }

  // Someone else writes the lease (bumps the version).
  void set(const LeaderElectionRecord& r) {
    std::lock_guard lock(mu_);
    exists = true;
    rec = r;
    ++version;
  }
  LeaderElectionRecord record() {
    std::lock_guard lock(mu_);
    return rec;
  }

  std::mutex mu_;
  bool exists = false;
  LeaderElectionRecord rec;
  int64_t version = 0;
  int updates = 0;
  bool fail_get = false;
  bool fail_update = false;
};

std::unique_ptr<LeaderElector> make(std::shared_ptr<FakeLeaseLock> lock, const std::string& id,
                                    const Clock* clock, std::vector<std::string>* seen = nullptr) {
  LeaderElectionConfig c;
  c.lock = lock;
  c.identity = id;
  c.lease_duration = 15s;
  c.renew_deadline = 10s;
  c.retry_period = 2s;
  c.clock = clock;
  if (seen) c.callbacks.on_new_leader = [seen](const std::string& who) { seen->push_back(who); };
  auto r = LeaderElector::create(std::move(c));
  REQUIRE(r);
  return std::move(*r);
}

}  // namespace

TEST_CASE("leader election: config is validated") {
  auto lock = std::make_shared<FakeLeaseLock>();
  LeaderElectionConfig c;
  c.lock = lock;
  c.identity = "a";
  c.lease_duration = 10s;
  c.renew_deadline = 10s;
  CHECK_FALSE(LeaderElector::create(c));  // lease must exceed renew deadline
  c.lease_duration = 15s;
  c.renew_deadline = 2s;
  c.retry_period = 2s;
  CHECK_FALSE(LeaderElector::create(c));  // renew deadline must exceed 1.2 x retry
  c.renew_deadline = 10s;
  c.identity = "";
  CHECK_FALSE(LeaderElector::create(c));
  c.identity = "a";
  CHECK(LeaderElector::create(c));
}

TEST_CASE("leader election: acquires a free lease, not a held fresh one, takes over after expiry") {
  FakeClock clock;
  auto lock = std::make_shared<FakeLeaseLock>();
  std::vector<std::string> seen_b;
  auto a = make(lock, "a", &clock);
  auto b = make(lock, "b", &clock, &seen_b);

  // Free (absent): a creates it.
  REQUIRE(a->try_acquire_or_renew());
  CHECK(a->is_leader());
  CHECK(lock->record().holder_identity == "a");
  CHECK(lock->record().lease_duration_seconds == 15);
  CHECK(lock->record().lease_transitions == 0);

  // Held and fresh: b does not take it, and learns who leads.
  CHECK_FALSE(b->try_acquire_or_renew());
  CHECK_FALSE(b->is_leader());
  CHECK(b->leader() == "a");
  CHECK(seen_b == std::vector<std::string>{"a"});

  // a renews at 10s: the record changes, so b's observation restarts.
  clock.advance(10s);
  auto acquired = lock->record().acquire_time;
  REQUIRE(a->try_acquire_or_renew());
  CHECK(lock->record().acquire_time == acquired);  // renewal keeps acquireTime
  clock.advance(10s);
  CHECK_FALSE(b->try_acquire_or_renew());  // b saw the change 0s ago (renewed at 10s)
  clock.advance(14s);
  CHECK_FALSE(b->try_acquire_or_renew());  // 14s since b saw it change: still fresh

  // a stopped renewing: 15s after b last saw a change, b takes over.
  clock.advance(1s);
  REQUIRE(b->try_acquire_or_renew());
  CHECK(b->is_leader());
  CHECK(lock->record().holder_identity == "b");
  CHECK(lock->record().lease_transitions == 1);
  CHECK(seen_b == std::vector<std::string>{"a", "b"});

  // a comes back: it sees b and does not lead.
  CHECK_FALSE(a->try_acquire_or_renew());
  CHECK_FALSE(a->is_leader());
  CHECK(a->leader() == "b");
}

TEST_CASE("leader election: expiry is judged on the candidate's own clock, not renewTime") {
  FakeClock clock;
  auto lock = std::make_shared<FakeLeaseLock>();
  // The holder's clock is an hour behind: its renewTime looks ancient to us, yet it renewed.
  LeaderElectionRecord r;
  r.holder_identity = "skewed";
  r.lease_duration_seconds = 15;
  r.renew_time = proto::MicroTime::at(std::chrono::system_clock::now() - 1h);
  lock->set(r);
  auto b = make(lock, "b", &clock);
  CHECK_FALSE(b->try_acquire_or_renew());
  clock.advance(14s);
  CHECK_FALSE(b->try_acquire_or_renew());
  // The skewed holder renews (record changes): b's 15 s start again.
  r.renew_time = proto::MicroTime::at(r.renew_time.value + 14s);
  lock->set(r);
  clock.advance(2s);
  CHECK_FALSE(b->try_acquire_or_renew());
  clock.advance(14s);
  CHECK_FALSE(b->try_acquire_or_renew());
  clock.advance(1s);
  CHECK(b->try_acquire_or_renew());
}

TEST_CASE("leader election: a conflicting write loses") {
  // Between the candidate's read and its write, another candidate writes: the update conflicts.
  class Racing : public LeaseLock {
   public:
    explicit Racing(std::shared_ptr<FakeLeaseLock> inner) : inner_(std::move(inner)) {}
    Result<Versioned> get() override {
      auto v = inner_->get();
      if (race) {
        LeaderElectionRecord other;
        other.holder_identity = "c";
        other.lease_duration_seconds = 15;
        inner_->set(other);
      }
      return v;
    }
    Result<std::string> create(const LeaderElectionRecord& r) override { return inner_->create(r); }
    Result<std::string> update(const LeaderElectionRecord& r, const std::string& v) override {
      return inner_->update(r, v);
    }
    std::string describe() const override { return "racing"; }
    std::shared_ptr<FakeLeaseLock> inner_;
    bool race = false;
  };
  FakeClock clock;
  auto lock = std::make_shared<FakeLeaseLock>();
  LeaderElectionRecord r;
  r.holder_identity = "old";
  r.lease_duration_seconds = 15;
  lock->set(r);
  auto racing = std::make_shared<Racing>(lock);
  LeaderElectionConfig c;
  c.lock = racing;
  c.identity = "a";
  c.clock = &clock;
  auto a = LeaderElector::create(c).value();
  CHECK_FALSE(a->try_acquire_or_renew());  // first sight of "old"
  clock.advance(16s);
  racing->race = true;
  CHECK_FALSE(a->try_acquire_or_renew());  // expired, but the write conflicts
  CHECK_FALSE(a->is_leader());
  CHECK(lock->record().holder_identity == "c");
}

TEST_CASE("leader election: release clears the holder so a standby takes over at once") {
  FakeClock clock;
  auto lock = std::make_shared<FakeLeaseLock>();
  auto a = make(lock, "a", &clock);
  auto b = make(lock, "b", &clock);
  REQUIRE(a->try_acquire_or_renew());
  CHECK_FALSE(b->try_acquire_or_renew());
  REQUIRE(a->release());
  CHECK_FALSE(a->is_leader());
  CHECK(lock->record().holder_identity.empty());
  CHECK(lock->record().lease_duration_seconds == 1);
  CHECK(b->try_acquire_or_renew());  // no waiting for the old 15 s
  CHECK(lock->record().holder_identity == "b");
  // Releasing what one does not hold writes nothing.
  int before = lock->updates;
  CHECK(a->release());
  CHECK(lock->updates == before);
}

TEST_CASE("leader election: run() leads, loses when renewal fails, releases on stop") {
  // Real clock, short periods; the assertions wait for outcomes, never for durations. The renew
  // deadline is 3 s, not less: a renewal thread not scheduled for the deadline loses leadership
  // by itself, and on 2 busy CI cores a few hundred ms without the CPU do happen.
  auto lock = std::make_shared<FakeLeaseLock>();
  auto run_one = [&](bool fail_renewals) {
    std::atomic<int> started{0}, stopped{0}, leading_ended{0};
    LeaderElectionConfig c;
    c.lock = lock;
    c.identity = "r";
    c.lease_duration = 6000ms;
    c.renew_deadline = 3000ms;
    c.retry_period = 100ms;
    c.callbacks.on_started_leading = [&](std::stop_token st) {
      ++started;
      while (!st.stop_requested()) std::this_thread::sleep_for(5ms);
      ++leading_ended;
    };
    c.callbacks.on_stopped_leading = [&] { ++stopped; };
    auto le = LeaderElector::create(c).value();
    std::stop_source stop;
    std::thread t([&] { le->run(stop.get_token()); });
    for (int i = 0; i < 3000 && !started; ++i) std::this_thread::sleep_for(10ms);
    REQUIRE(started == 1);
    CHECK(le->is_leader());
    if (fail_renewals) {
      std::lock_guard l(lock->mu_);
      lock->fail_update = true;
    } else {
      stop.request_stop();
    }
    t.join();  // run() returns by itself when renewals fail
    CHECK(leading_ended == 1);
    CHECK(stopped == 1);
    CHECK_FALSE(le->is_leader());
    std::lock_guard l(lock->mu_);
    lock->fail_update = false;
  };
  SECTION("renewal failure") {
    run_one(true);
    CHECK(lock->record().holder_identity == "r");  // not released: it could not write
  }
  SECTION("clean stop") {
    run_one(false);
    CHECK(lock->record().holder_identity.empty());
    CHECK(lock->record().lease_duration_seconds == 1);
  }
}

TEST_CASE("leader election: a renewal that completes after the renew deadline loses") {
  // The lock's update "takes" 10 s of the fake clock once `slow` is set, as a hung API server
  // would; the renewal succeeds but too late, so leadership must end.
  class SlowLock : public FakeLeaseLock {
   public:
    explicit SlowLock(FakeClock& c) : clock_(c) {}
    Result<std::string> update(const LeaderElectionRecord& r, const std::string& v) override {
      if (slow) clock_.advance(10s);
      return FakeLeaseLock::update(r, v);
    }
    FakeClock& clock_;
    std::atomic<bool> slow{false};
  };
  FakeClock clock;
  auto lock = std::make_shared<SlowLock>(clock);
  std::atomic<int> started{0}, stopped{0};
  LeaderElectionConfig c;
  c.lock = lock;
  c.identity = "r";
  c.lease_duration = 2000ms;
  c.renew_deadline = 1000ms;
  c.retry_period = 50ms;
  c.clock = &clock;
  c.callbacks.on_started_leading = [&](std::stop_token st) {
    ++started;
    while (!st.stop_requested()) std::this_thread::sleep_for(5ms);
  };
  c.callbacks.on_stopped_leading = [&] { ++stopped; };
  auto le = LeaderElector::create(c).value();
  std::stop_source stop;
  std::thread t([&] { le->run(stop.get_token()); });
  for (int i = 0; i < 3000 && !started; ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(started == 1);
  lock->slow = true;
  t.join();  // returns by itself: leadership lost
  CHECK(stopped == 1);
  CHECK_FALSE(le->is_leader());
}
