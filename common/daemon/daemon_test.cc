#include "common/daemon/daemon.h"

#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <catch2/catch.hpp>

#include "test/testing.h"

using namespace skiff;
using namespace skiff::daemon;
using namespace std::chrono_literals;

TEST_CASE("parse_duration: Go-style durations") {
  CHECK(*parse_duration("15s") == 15s);
  CHECK(*parse_duration("1500ms") == 1500ms);
  CHECK(*parse_duration("2m") == 120s);
  CHECK(*parse_duration("1m30s") == 90s);
  CHECK(*parse_duration("1h") == 3600s);
  CHECK(*parse_duration("0.5s") == 500ms);
  CHECK(*parse_duration("1.5s") == 1500ms);
  CHECK(*parse_duration("0s") == 0ms);
  for (const char* bad : {"", "15", "s", "15x", "-1s", "1s2", "abc", "1.2.3s", ".s"}) {
    INFO(bad);
    auto r = parse_duration(bad);
    CHECK_FALSE(r.is_ok());
    if (!r.is_ok()) CHECK(r.status().message().find("duration") != std::string::npos);
  }
  CHECK(parse_duration("3d").status().message() ==
        "duration \"3d\": unit \"d\" is not ms, s, m or h");
  CHECK(parse_duration("30").status().message() ==
        "duration \"30\": want a number with a unit (ms, s, m, h), e.g. 15s");
}

TEST_CASE("parse_positive_duration rejects zero") {
  CHECK(*parse_positive_duration("30s") == 30s);
  CHECK(*parse_positive_duration("1ms") == 1ms);
  auto r = parse_positive_duration("0s");
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message() == "duration \"0s\": must be at least 1ms");
  CHECK_FALSE(parse_positive_duration("0.1ms").is_ok());
  CHECK_FALSE(parse_positive_duration("x").is_ok());
}

TEST_CASE("parse_duration_flags names the failing flag and stops there") {
  std::string a = "15s", b = "10x", c = "2s";
  std::chrono::milliseconds da{1}, db{1}, dc{1};
  auto s = parse_duration_flags({{"--a", &a, &da}, {"--b", &b, &db}, {"--c", &c, &dc}});
  REQUIRE_FALSE(s.is_ok());
  CHECK(s.message().rfind("--b: duration \"10x\"", 0) == 0);
  CHECK(da == 15s);
  CHECK(db == 1ms);
  CHECK(dc == 1ms);
  b = "1m";
  REQUIRE(parse_duration_flags({{"--a", &a, &da}, {"--b", &b, &db}, {"--c", &c, &dc}}).is_ok());
  CHECK(db == 60s);
  CHECK(dc == 2s);
}

TEST_CASE("check_port accepts 0..65535 only") {
  CHECK(check_port(0).is_ok());
  CHECK(check_port(10257).is_ok());
  CHECK(check_port(65535).is_ok());
  CHECK(check_port(65536).message() == "--port 65536: not 0..65535");
  CHECK(check_port(-1).message() == "--port -1: not 0..65535");
}

TEST_CASE("default_identity is <hostname>_<pid>") {
  std::string id = default_identity();
  CHECK(id == hostname() + "_" + std::to_string(getpid()));
}

namespace {

// Runs `fn` in a forked child that reports its result through a pipe ('1' ok, '0' not), then
// either holds what it took until killed (`hold`) or exits. Killed and reaped with the object.
struct Child {
  template <class Fn>
  Child(Fn fn, bool hold) {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      char r = fn();
      (void)::write(p[1], &r, 1);
      if (hold) ::pause();
      ::_exit(0);
    }
    ::close(p[1]);
    if (::read(p[0], &result, 1) != 1) result = 'x';
    ::close(p[0]);
  }
  ~Child() { kill(); }
  void kill() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid = 0;
  }
  pid_t pid = 0;
  char result = 0;
};

}  // namespace

TEST_CASE("lock_netns: one holder per network namespace; freed when it dies, even by kill -9") {
  const std::string name = "skiff-test-netns-lock-" + std::to_string(::getpid());
  Child holder([&] { return lock_netns(name, "test agent").is_ok() ? '1' : '0'; }, true);
  REQUIRE(holder.result == '1');

  // Held by the child: refused, naming the holder's pid and the socket.
  Status st = lock_netns(name, "test agent");
  CHECK(st.code() == Code::kUnavailable);
  CHECK_THAT(st.message(), Catch::Contains("another test agent runs in this network namespace") &&
                               Catch::Contains("(pid " + std::to_string(holder.pid) + ";") &&
                               Catch::Contains("@" + name));

  // Killed without a chance to clean up: the name is free, and ours.
  holder.kill();
  CHECK(lock_netns(name, "test agent").is_ok());
  // Held by this process now: a forked child (it shares the held socket) cannot bind it again.
  Child again([&] { return lock_netns(name, "test agent").is_ok() ? '1' : '0'; }, false);
  CHECK(again.result == '0');

  // Names are per network namespace: in a new one the same name is free.
  Child other(
      [&] {
        if (::unshare(CLONE_NEWNET) != 0) return errno == EPERM ? 'p' : 'e';
        return lock_netns(name, "test agent").is_ok() ? '1' : '0';
      },
      false);
  if (other.result == 'p') {
    skiff::testing::skip("a new network namespace needs root (unshare: EPERM)");
    return;
  }
  CHECK(other.result == '1');
}

TEST_CASE("lock_netns: an empty or too long name is refused") {
  CHECK(lock_netns("", "x").code() == Code::kInvalid);
  CHECK(lock_netns(std::string(200, 'a'), "x").code() == Code::kInvalid);
}
