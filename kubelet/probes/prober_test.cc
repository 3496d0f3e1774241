#include "kubelet/probes/prober.h"
#include "test/testing.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <deque>
#include <thread>

using skiff::Code;
using skiff::Status;
namespace proto = skiff::proto;
using namespace skiff::probes;
using namespace std::chrono_literals;

namespace {

int listen_loopback(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(listen(fd, 16) == 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

// A tiny HTTP server on 127.0.0.1 answering by path; records the last request.
class TestServer {
 public:
  TestServer() {
    fd_ = listen_loopback(&port_);
    thread_ = std::thread([this] { loop(); });
  }
  ~TestServer() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  std::string last_request() {
    std::lock_guard<std::mutex> l(mu_);
    return last_;
  }

 private:
  void loop() {
    for (int i = 0; i < 1000 && !stop_; ++i) {
      struct pollfd p = {fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      serve(c);
      close(c);
    }
  }
  void serve(int c) {
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos) {
      struct pollfd p = {c, POLLIN, 0};
      if (poll(&p, 1, 2000) <= 0) return;
      ssize_t n = read(c, buf, sizeof buf);
      if (n <= 0) return;
      req.append(buf, static_cast<size_t>(n));
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      last_ = req;
    }
    std::string path = req.substr(4, req.find(' ', 4) - 4);
    std::string resp;
    if (path == "/ok") {
      resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    } else if (path == "/fail") {
      resp = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
    } else if (path == "/redirect-same") {
      resp = "HTTP/1.1 302 Found\r\nLocation: /fail\r\nContent-Length: 0\r\n\r\n";
    } else if (path == "/redirect-other") {
      resp =
          "HTTP/1.1 302 Found\r\nLocation: "
          "http://192.0.2.1:1/\r\nContent-Length: 0\r\n\r\n";
    } else if (path == "/loop") {
      resp = "HTTP/1.1 301 Moved\r\nlocation: /loop\r\n\r\n";
    } else if (path == "/slow") {
      // Never answers: the client's deadline must end it.
      struct pollfd p = {c, POLLIN, 0};
      poll(&p, 1, 3000);
      return;
    } else {
      resp = "HTTP/1.0 404 Not Found\r\n\r\n";
    }
    (void)!write(c, resp.data(), resp.size());
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::string last_;
};

// 5 s: the whole probe (up to 11 connections for the redirect loop) to a one-thread server must
// finish within it on 2 busy CI cores; only the "timeout" section shortens it.
proto::Probe http_probe(const std::string& path, proto::IntOrString port) {
  proto::Probe p;
  p.timeout_seconds = 5;
  p.handler.http_get.emplace();
  p.handler.http_get->path = path;
  p.handler.http_get->port = port;
  p.handler.http_get->scheme = "HTTP";
  return p;
}

Target loopback() {
  Target t;
  t.pod_ip = "127.0.0.1";
  return t;
}

}  // namespace

TEST_CASE("httpGet probe against a loopback server") {
  TestServer srv;
  proto::Container c;
  c.name = "web";
  auto port = proto::IntOrString::from_int(srv.port());

  auto o = run_once(http_probe("/ok", port), c, loopback());
  CHECK(o.result == Result::kSuccess);
  std::string req = srv.last_request();
  CHECK(req.starts_with("GET /ok HTTP/1.1\r\n"));
  CHECK(req.find("User-Agent: kube-probe/1.32\r\n") != std::string::npos);
  CHECK(req.find("Host: 127.0.0.1:" + std::to_string(srv.port()) + "\r\n") != std::string::npos);

  o = run_once(http_probe("/fail", port), c, loopback());
  CHECK(o.result == Result::kFailure);
  CHECK(o.message == "HTTP probe failed with statuscode: 500");

  o = run_once(http_probe("/missing", port), c, loopback());
  CHECK(o.message == "HTTP probe failed with statuscode: 404");

  SECTION("named port, headers, path without slash, Host override") {
    proto::ContainerPort cp;
    cp.name = "http";
    cp.container_port = srv.port();
    c.ports = {cp};
    auto p = http_probe("ok", proto::IntOrString::from_string("http"));
    p.handler.http_get->http_headers = {{"X-Probe", "yes"}, {"host", "example.test"}};
    o = run_once(p, c, loopback());
    CHECK(o.result == Result::kSuccess);
    req = srv.last_request();
    CHECK(req.find("X-Probe: yes\r\n") != std::string::npos);
    CHECK(req.find("Host: example.test\r\n") != std::string::npos);
    CHECK(req.find("Host: 127.0.0.1") == std::string::npos);
    o = run_once(http_probe("/ok", proto::IntOrString::from_string("nope")), c, loopback());
    CHECK(o.result == Result::kUnknown);
  }
  SECTION("redirects: same host followed, other host ends the probe, loops fail") {
    o = run_once(http_probe("/redirect-same", port), c, loopback());
    CHECK(o.result == Result::kFailure);  // followed to /fail
    CHECK(srv.last_request().starts_with("GET /fail "));
    o = run_once(http_probe("/redirect-other", port), c, loopback());
    CHECK(o.result == Result::kSuccess);
    CHECK(srv.last_request().starts_with("GET /redirect-other "));
    o = run_once(http_probe("/loop", port), c, loopback());
    CHECK(o.result == Result::kFailure);
    CHECK(o.message.find("stopped after 10 redirects") != std::string::npos);
  }
  SECTION("timeout") {
    auto p = http_probe("/slow", port);
    p.timeout_seconds = 1;  // the server holds /slow for 3 s
    o = run_once(p, c, loopback());
    CHECK(o.result == Result::kFailure);
    CHECK(o.message == "Get \"http://127.0.0.1:" + std::to_string(srv.port()) +
                           "/slow\": context deadline exceeded (Client.Timeout exceeded while "
                           "awaiting headers)");
  }
  SECTION("pod IP unset: 127.0.0.1; explicit host") {
    o = run_once(http_probe("/ok", port), c, Target{});
    CHECK(o.result == Result::kSuccess);
    auto p = http_probe("/ok", port);
    p.handler.http_get->host = "127.0.0.1";
    Target t;
    t.pod_ip = "192.0.2.1";  // would time out if used
    CHECK(run_once(p, c, t).result == Result::kSuccess);
  }
}

TEST_CASE("tcpSocket probe: open and closed ports") {
  int port = 0;
  int fd = listen_loopback(&port);
  proto::Container c;
  proto::Probe p;
  p.timeout_seconds = 1;
  p.handler.tcp_socket.emplace();
  p.handler.tcp_socket->port = proto::IntOrString::from_int(port);
  CHECK(run_once(p, c, loopback()).result == Result::kSuccess);
  close(fd);
  auto o = run_once(p, c, loopback());
  CHECK(o.result == Result::kFailure);
  CHECK(o.message ==
        "dial tcp 127.0.0.1:" + std::to_string(port) + ": connect: connection refused");
}

TEST_CASE("network probes open their socket in the target's network namespace") {
  int port = 0;
  int fd = listen_loopback(&port);
  proto::Container c;
  proto::Probe p;
  p.timeout_seconds = 1;
  p.handler.tcp_socket.emplace();
  p.handler.tcp_socket->port = proto::IntOrString::from_int(port);
  Target t = loopback();
  t.netns_path = "/proc/self/ns/net";  // setns into our own namespace: the path works
  if (geteuid() == 0) {
    CHECK(run_once(p, c, t).result == Result::kSuccess);
  } else {
    skiff::testing::skip("skipped the setns half: needs CAP_SYS_ADMIN");
  }
  t.netns_path = "/nonexistent/netns";
  auto o = run_once(p, c, t);
  CHECK(o.result == Result::kUnknown);
  CHECK(o.message.find("/nonexistent/netns") != std::string::npos);
  close(fd);
}

TEST_CASE("exec probe via Target::exec") {
  proto::Container c;
  proto::Probe p;
  p.timeout_seconds = 2;
  p.handler.exec.emplace();
  p.handler.exec->command = {"cat", "/tmp/healthy"};
  Target t;
  std::chrono::milliseconds seen{0};
  skiff::Result<int> next = 0;
  t.exec = [&](const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
    CHECK(argv == std::vector<std::string>{"cat", "/tmp/healthy"});
    seen = timeout;
    return next;
  };
  CHECK(run_once(p, c, t).result == Result::kSuccess);
  CHECK(seen == 2000ms);
  next = 1;
  auto o = run_once(p, c, t);
  CHECK(o.result == Result::kFailure);
  CHECK(o.message == "command \"cat /tmp/healthy\" exited with code 1");
  next = Status::timeout("exec: deadline");
  o = run_once(p, c, t);
  CHECK(o.result == Result::kFailure);
  CHECK(o.message == "command timed out");
  next = Status::not_found("container gone");
  CHECK(run_once(p, c, t).result == Result::kUnknown);
  CHECK(run_once(proto::Probe{}, c, t).result == Result::kUnknown);
}

namespace {

// Scripted checks: per container name and probe kind (told apart by the probe's period), a queue of
// outcomes (the last one repeats), with call counts.
struct Script {
  std::mutex mu;
  std::map<std::string, std::deque<Result>> outcomes;
  std::map<std::string, int> calls;
  static std::string key(const std::string& c, const proto::Probe& p) {
    return c + "/" + std::to_string(p.period_seconds);
  }
  CheckFn fn() {
    return [this](const proto::Probe& p, const proto::Container& c, const Target&) {
      std::lock_guard<std::mutex> l(mu);
      auto k = key(c.name, p);
      ++calls[k];
      auto& q = outcomes[k];
      if (q.empty()) return Outcome{Result::kUnknown, "no script"};
      Result r = q.front();
      if (q.size() > 1) q.pop_front();
      return Outcome{r, r == Result::kFailure ? "boom" : ""};
    };
  }
};

struct Notices {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::tuple<std::string, Kind, Result, std::string>> got;
  Prober::OnChange fn() {
    return
        [this](const std::string&, const std::string& c, Kind k, Result r, const std::string& m) {
          std::lock_guard<std::mutex> l(mu);
          got.emplace_back(c, k, r, m);
          cv.notify_all();
        };
  }
  size_t size() {
    std::lock_guard<std::mutex> l(mu);
    return got.size();
  }
};

proto::Probe sched(int period, int initial_delay = 0, int failure = 3, int success = 1) {
  proto::Probe p;
  p.handler.exec.emplace();
  p.period_seconds = period;
  p.initial_delay_seconds = initial_delay;
  p.failure_threshold = failure;
  p.success_threshold = success;
  p.timeout_seconds = 1;
  return p;
}

}  // namespace

TEST_CASE("Prober: liveness failureThreshold, then on hold until re-added") {
  FakeClock clock;
  Script script;
  Notices notices;
  Prober prober(notices.fn(), {.clock = &clock, .manual = true, .check = script.fn()});
  proto::Container c;
  c.name = "app";
  c.liveness_probe = sched(10, 5, 3);
  script.outcomes["app/10"] = {Result::kSuccess, Result::kFailure, Result::kFailure,
                               Result::kFailure};
  prober.add("pod", "id1", c, Target{});
  CHECK(prober.result("id1", Kind::kLiveness) == Result::kSuccess);
  CHECK(prober.result("id1", Kind::kReadiness) == Result::kSuccess);  // no such probe

  prober.run_due();
  CHECK(script.calls["app/10"] == 0);  // initialDelaySeconds
  clock.advance(5s);
  prober.run_due();  // success
  for (int i = 0; i < 2; ++i) {
    clock.advance(10s);
    prober.run_due();
  }
  CHECK(script.calls["app/10"] == 3);
  CHECK(prober.result("id1", Kind::kLiveness) == Result::kSuccess);  // 2 failures < 3
  CHECK(notices.size() == 0);
  clock.advance(9s);
  prober.run_due();
  CHECK(script.calls["app/10"] == 3);  // not due yet
  clock.advance(1s);
  prober.run_due();
  CHECK(prober.result("id1", Kind::kLiveness) == Result::kFailure);
  REQUIRE(notices.size() == 1);
  CHECK(notices.got[0] == std::make_tuple(std::string("app"), Kind::kLiveness, Result::kFailure,
                                          std::string("boom")));
  // On hold: no more checks for this instance.
  clock.advance(100s);
  prober.run_due();
  CHECK(script.calls["app/10"] == 4);

  // The restarted container is a new instance with fresh state.
  prober.remove_container("id1");
  CHECK(prober.result("id1", Kind::kLiveness) == Result::kSuccess);
  script.outcomes["app/10"] = {Result::kSuccess};
  prober.add("pod", "id2", c, Target{});
  clock.advance(5s);
  prober.run_due();
  CHECK(script.calls["app/10"] == 5);
  CHECK(prober.result("id2", Kind::kLiveness) == Result::kSuccess);
}

TEST_CASE("Prober: readiness starts Failure, successThreshold, Unknown ignored") {
  FakeClock clock;
  Script script;
  Notices notices;
  Prober prober(notices.fn(), {.clock = &clock, .manual = true, .check = script.fn()});
  proto::Container c;
  c.name = "app";
  c.readiness_probe = sched(1, 0, 1, 2);
  script.outcomes["app/1"] = {Result::kSuccess, Result::kUnknown, Result::kSuccess,
                              Result::kFailure, Result::kSuccess};
  prober.add("pod", "id", c, Target{});
  CHECK(prober.result("id", Kind::kReadiness) == Result::kFailure);
  prober.run_due();  // success 1
  CHECK(prober.result("id", Kind::kReadiness) == Result::kFailure);
  clock.advance(1s);
  prober.run_due();  // unknown: thrown away, the run of successes continues
  clock.advance(1s);
  prober.run_due();  // success 2
  CHECK(prober.result("id", Kind::kReadiness) == Result::kSuccess);
  clock.advance(1s);
  prober.run_due();  // failure, threshold 1
  CHECK(prober.result("id", Kind::kReadiness) == Result::kFailure);
  clock.advance(1s);
  prober.run_due();  // one success is not enough again
  CHECK(prober.result("id", Kind::kReadiness) == Result::kFailure);
  REQUIRE(notices.size() == 2);
  CHECK(std::get<2>(notices.got[0]) == Result::kSuccess);
  CHECK(std::get<2>(notices.got[1]) == Result::kFailure);
  // Readiness failures never put the instance on hold.
  clock.advance(1s);
  prober.run_due();
  CHECK(script.calls["app/1"] == 6);
}

TEST_CASE("Prober: startup gates liveness and readiness") {
  FakeClock clock;
  Script script;
  Notices notices;
  Prober prober(notices.fn(), {.clock = &clock, .manual = true, .check = script.fn()});
  proto::Container c;
  c.name = "app";
  c.startup_probe = sched(2, 0, 30);
  c.liveness_probe = sched(10, 0, 1);
  c.readiness_probe = sched(5, 0, 1);
  script.outcomes["app/2"] = {Result::kFailure, Result::kFailure, Result::kSuccess};
  script.outcomes["app/10"] = {Result::kSuccess};
  script.outcomes["app/5"] = {Result::kSuccess};
  prober.add("pod", "id", c, Target{});
  CHECK(prober.result("id", Kind::kStartup) == Result::kUnknown);
  prober.run_due();
  clock.advance(2s);
  prober.run_due();
  CHECK(script.calls["app/2"] == 2);
  CHECK(script.calls["app/10"] == 0);
  CHECK(script.calls["app/5"] == 0);
  CHECK(prober.result("id", Kind::kReadiness) == Result::kFailure);
  clock.advance(2s);
  prober.run_due();  // startup succeeds; liveness and readiness run right away
  CHECK(prober.result("id", Kind::kStartup) == Result::kSuccess);
  CHECK(script.calls["app/10"] == 1);
  CHECK(script.calls["app/5"] == 1);
  CHECK(prober.result("id", Kind::kReadiness) == Result::kSuccess);
  // Startup is done: it is not run again.
  clock.advance(20s);
  prober.run_due();
  CHECK(script.calls["app/2"] == 3);
}

TEST_CASE("Prober: startup failureThreshold reports a Startup failure") {
  FakeClock clock;
  Script script;
  Notices notices;
  Prober prober(notices.fn(), {.clock = &clock, .manual = true, .check = script.fn()});
  proto::Container c;
  c.name = "app";
  c.startup_probe = sched(1, 0, 2);
  script.outcomes["app/1"] = {Result::kFailure};
  prober.add("pod", "id", c, Target{});
  prober.run_due();
  clock.advance(1s);
  prober.run_due();
  REQUIRE(notices.size() == 1);
  CHECK(std::get<1>(notices.got[0]) == Kind::kStartup);
  CHECK(std::get<2>(notices.got[0]) == Result::kFailure);
  prober.remove_pod("pod");
  CHECK(prober.result("id", Kind::kStartup) == Result::kSuccess);
}

TEST_CASE("Prober threads: a blocked check does not delay another container's") {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  Notices notices;
  auto check = [&](const proto::Probe&, const proto::Container& c, const Target&) {
    if (c.name == "slow") {
      std::unique_lock<std::mutex> l(mu);
      cv.wait_for(l, 10s, [&] { return release; });
      return Outcome{Result::kSuccess, ""};
    }
    return Outcome{Result::kFailure, "dead"};
  };
  {
    Prober prober(notices.fn(), {.workers = 2, .check = check});
    proto::Container slow, fast;
    slow.name = "slow";
    slow.liveness_probe = sched(1, 0, 1);
    fast.name = "fast";
    fast.liveness_probe = sched(1, 0, 1);
    prober.add("p1", "slow-id", slow, Target{});
    prober.add("p2", "fast-id", fast, Target{});
    {
      std::unique_lock<std::mutex> l(notices.mu);
      notices.cv.wait_for(l, 5s, [&] { return !notices.got.empty(); });
    }
    REQUIRE(notices.size() == 1);
    CHECK(std::get<0>(notices.got[0]) == "fast");
    CHECK(prober.result("fast-id", Kind::kLiveness) == Result::kFailure);
    CHECK(prober.result("slow-id", Kind::kLiveness) == Result::kSuccess);
    {
      std::lock_guard<std::mutex> l(mu);
      release = true;
    }
    cv.notify_all();
  }  // the destructor joins every thread
}

TEST_CASE(
    "network probes reach a listener that exists only in another network "
    "namespace") {
  if (geteuid() != 0) {
    skiff::testing::skip("skipped: creating a network namespace needs root");
    return;
  }
  // A private netns, made by a helper thread (unshare affects only that thread); it stays alive
  // through the fd we keep and goes away when the fd is closed. Only its loopback is used.
  int ns_fd = -1, listen_fd = -1, port = 0;
  std::thread([&] {
    if (unshare(CLONE_NEWNET) != 0) return;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {};
    snprintf(ifr.ifr_name, IFNAMSIZ, "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
      ifr.ifr_flags |= IFF_UP;
      ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    close(s);
    listen_fd = listen_loopback(&port);
    ns_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  }).join();
  REQUIRE(ns_fd >= 0);
  REQUIRE(listen_fd >= 0);

  proto::Container c;
  proto::Probe p;
  p.timeout_seconds = 1;
  p.handler.tcp_socket.emplace();
  p.handler.tcp_socket->port = proto::IntOrString::from_int(port);
  Target t = loopback();
  t.netns_path = "/proc/self/fd/" + std::to_string(ns_fd);
  CHECK(run_once(p, c, t).result == Result::kSuccess);
  // From our own namespace the port is not there (another loopback).
  t.netns_path.clear();
  CHECK(run_once(p, c, t).result == Result::kFailure);
  close(listen_fd);
  close(ns_fd);
}
