// HttpServer over real sockets on 127.0.0.1 (port 0), with a fake Handler. Timeouts are shrunk
// through ServerOptions; every client wait is bounded (TestClient::kWait).
#include "common/http/http_server.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>
#include <sys/resource.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "common/http/auth.h"
#include "common/http/certs.h"
#include "test/testing.h"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace skiff::web;
using namespace std::chrono_literals;

namespace {

constexpr auto kWait = 10s;  // the longest any client operation may take before it fails

// Polls `pred` until true or a deadline; returns its last value.
template <class P>
bool eventually(P pred, std::chrono::milliseconds limit = 10s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

// The fake API: /echo answers with what it saw, /stream/<name> opens a stream the test drives,
// /block waits until released.
class FakeHandler : public Handler {
 public:
  Response handle(const Request& req) override {
    Response r;
    if (req.path == "/echo" || req.path == "/healthz" || req.path == "/api/v1/pods") {
      r.content_type = "text/plain";
      r.body = "method=" + req.method + " user=" + req.user + " body=" +
               std::to_string(req.body.size()) + " a=" + req.q("a") + " b=" + req.q("b") +
               " path=" + req.path;
      return r;
    }
    if (req.path.starts_with("/where")) {
      r.body = on_io_thread() ? "io" : "worker";
      return r;
    }
    if (req.path.starts_with("/after")) {
      // The deferred task waits until the test has read this answer: an answer held back
      // behind it would never arrive.
      bool queued = run_after_answer([this] {
        std::unique_lock lk(mu_);
        after_on_io_ = on_io_thread();
        cv_.wait_for(lk, kWait, [this] { return answer_read_; });
        after_saw_answer_ = answer_read_;
        ++after_runs_;
        cv_.notify_all();
      });
      r.body = queued ? "queued" : "not queued";
      return r;
    }
    if (req.path.starts_with("/stream/")) {
      std::string name = req.path.substr(8);
      r.streamer = [this, name](std::shared_ptr<Stream> s) {
        s->on_close([this, name] {
          std::lock_guard lk(mu_);
          closed_[name] = true;
          cv_.notify_all();
        });
        std::lock_guard lk(mu_);
        streams_[name] = s;
        cv_.notify_all();
      };
      return r;
    }
    if (req.path == "/block") {
      std::unique_lock lk(mu_);
      ++blocked_;
      cv_.notify_all();
      cv_.wait_for(lk, 10s, [this] { return released_; });
      r.body = "released";
      return r;
    }
    r.status = 404;
    r.body = status_json(404, "NotFound", "no such path");
    return r;
  }

  std::shared_ptr<Stream> stream(const std::string& name) {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, kWait, [&] { return streams_.count(name) != 0; });
    return streams_.count(name) ? streams_[name] : nullptr;
  }
  bool wait_closed(const std::string& name) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, kWait, [&] { return closed_[name]; });
  }
  bool is_closed(const std::string& name) {
    std::lock_guard lk(mu_);
    return closed_[name];
  }
  bool wait_blocked() {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, kWait, [&] { return blocked_ > 0; });
  }
  void release() {
    std::lock_guard lk(mu_);
    released_ = true;
    cv_.notify_all();
  }
  void answer_read() {
    std::lock_guard lk(mu_);
    answer_read_ = true;
    cv_.notify_all();
  }
  // The runs of /after's deferred task so far (waiting up to kWait for `n`).
  int after_runs(int n) {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, kWait, [&] { return after_runs_ >= n; });
    return after_runs_;
  }
  bool after_on_io() {
    std::lock_guard lk(mu_);
    return after_on_io_;
  }
  bool after_saw_answer() {
    std::lock_guard lk(mu_);
    return after_saw_answer_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::shared_ptr<Stream>> streams_;
  std::map<std::string, bool> closed_;
  int blocked_ = 0;
  bool released_ = false;
  bool answer_read_ = false;
  int after_runs_ = 0;
  bool after_on_io_ = false;
  bool after_saw_answer_ = false;
};

struct Pki {
  std::string dir;
  certs::CertPair files;
  Pki() {
    char tmpl[] = "/tmp/skiff-http-test-XXXXXX";
    dir = mkdtemp(tmpl);
    auto f = certs::ensure_self_signed(dir + "/pki", "server", "localhost", {"127.0.0.1"});
    REQUIRE(f.is_ok());
    files = *f;
  }
  ~Pki() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

Pki& shared_pki() {
  static Pki p;  // one CA for the whole test binary: key generation is the slow part
  return p;
}

// A blocking-style client whose every operation is bounded by kWait (async ops run with
// io_context::run_for, then cancelled).
class TestClient {
 public:
  TestClient(int port, bool tls, int rcvbuf = 0)
      : ctx_(asio::ssl::context::tls_client), s_(ioc_, ctx_), port_(port), tls_(tls) {
    ctx_.load_verify_file(shared_pki().files.cert_file);
    s_.set_verify_mode(asio::ssl::verify_peer);
    s_.set_verify_callback(asio::ssl::host_name_verification("127.0.0.1"));
    auto& sock = s_.next_layer();
    sock.open(tcp::v4());
    if (rcvbuf) sock.set_option(asio::socket_base::receive_buffer_size(rcvbuf));
  }
  ~TestClient() { close(); }

  beast::error_code connect(bool handshake = true) {
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port_));
    auto ec = run([&](auto cb) { s_.next_layer().async_connect(ep, [cb](auto e) { cb(e, 0); }); });
    if (ec || !tls_ || !handshake) return ec;
    return run([&](auto cb) {
      s_.async_handshake(asio::ssl::stream_base::client, [cb](auto e) { cb(e, 0); });
    });
  }

  beast::error_code write_raw(const std::string& data) {
    return run([&](auto cb) {
      if (tls_)
        asio::async_write(s_, asio::buffer(data), cb);
      else
        asio::async_write(s_.next_layer(), asio::buffer(data), cb);
    });
  }

  beast::error_code send(const std::string& method, const std::string& target,
                         const std::string& body = "", const std::string& token = "") {
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    req.body() = body;
    req.prepare_payload();
    return run([&](auto cb) {
      if (tls_)
        http::async_write(s_, req, cb);
      else
        http::async_write(s_.next_layer(), req, cb);
    });
  }

  // Reads one whole response.
  beast::error_code read(http::response<http::string_body>& res) {
    http::response_parser<http::string_body> p;
    p.body_limit(64 << 20);
    auto ec = run([&](auto cb) {
      if (tls_)
        http::async_read(s_, buf_, p, cb);
      else
        http::async_read(s_.next_layer(), buf_, p, cb);
    });
    if (!ec) res = p.release();
    return ec;
  }

  http::response<http::string_body> request(const std::string& method, const std::string& target,
                                            const std::string& body = "",
                                            const std::string& token = "") {
    http::response<http::string_body> res;
    REQUIRE_FALSE(send(method, target, body, token));
    auto ec = read(res);
    INFO(ec.message());
    REQUIRE_FALSE(ec);
    return res;
  }

  // Streaming: header first, then body bytes as they come.
  beast::error_code read_stream_header() {
    sp_.emplace();
    sp_->body_limit(1ull << 40);
    return run([&](auto cb) {
      if (tls_)
        http::async_read_header(s_, buf_, *sp_, cb);
      else
        http::async_read_header(s_.next_layer(), buf_, *sp_, cb);
    });
  }
  beast::error_code read_stream_some() {
    return run([&](auto cb) {
      if (tls_)
        http::async_read_some(s_, buf_, *sp_, cb);
      else
        http::async_read_some(s_.next_layer(), buf_, *sp_, cb);
    });
  }
  std::string& stream_body() { return sp_->get().body(); }
  bool stream_done() { return sp_->is_done(); }
  http::response_parser<http::string_body>& stream_parser() { return *sp_; }

  // Reads until the peer closes; returns the error that ended the read (timed_out if the peer
  // kept the connection open for kWait).
  beast::error_code read_until_closed() {
    std::array<char, 4096> scratch;
    for (;;) {
      auto ec = run([&](auto cb) {
        if (tls_)
          s_.async_read_some(asio::buffer(scratch), cb);
        else
          s_.next_layer().async_read_some(asio::buffer(scratch), cb);
      });
      if (ec) return ec;
    }
  }

  void close() {
    beast::error_code ec;
    s_.next_layer().close(ec);
  }

 private:
  template <class Start>
  beast::error_code run(Start start) {
    beast::error_code result;
    bool done = false;
    start([&](beast::error_code ec, std::size_t) {
      result = ec;
      done = true;
    });
    ioc_.restart();
    ioc_.run_for(kWait);
    if (!done) {
      beast::error_code ignored;
      s_.next_layer().cancel(ignored);
      ioc_.restart();
      ioc_.run();
      return asio::error::timed_out;
    }
    return result;
  }

  asio::io_context ioc_;
  asio::ssl::context ctx_;
  asio::ssl::stream<tcp::socket> s_;
  beast::flat_buffer buf_;
  std::optional<http::response_parser<http::string_body>> sp_;
  int port_;
  bool tls_;
};

struct Fixture {
  FakeHandler handler;
  TokenAuthenticator auth;
  ServerOptions opts;
  std::unique_ptr<HttpServer> server;

  Fixture() {
    auth.add("secret-token", Identity{"alice", "uid-1", {"dev"}});
    opts.listen = "127.0.0.1:0";
    opts.insecure_listen = "127.0.0.1:0";
    opts.cert_file = shared_pki().files.cert_file;
    opts.key_file = shared_pki().files.key_file;
    opts.auth = &auth;
    opts.worker_threads = 8;
    opts.shutdown_timeout = 5s;
  }
  void start() {
    auto s = HttpServer::start(opts, &handler);
    INFO(s.status().to_string());
    REQUIRE(s.is_ok());
    server = std::move(*s);
  }
  ~Fixture() {
    if (server) server->shutdown();
  }
};

bool closed_error(beast::error_code ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::ssl::error::stream_truncated || ec == http::error::end_of_stream ||
         ec == http::error::partial_message || ec == asio::error::broken_pipe;
}

}  // namespace

TEST_CASE("helpers: host:port, percent-decoding, targets", "[http]") {
  auto a = parse_host_port("0.0.0.0:6443");
  REQUIRE(a.is_ok());
  CHECK(a->first == "0.0.0.0");
  CHECK(a->second == 6443);
  auto b = parse_host_port("[::1]:0");
  REQUIRE(b.is_ok());
  CHECK(b->first == "::1");
  CHECK(parse_host_port(":8080")->first == "0.0.0.0");
  CHECK_FALSE(parse_host_port("127.0.0.1").is_ok());
  CHECK_FALSE(parse_host_port("127.0.0.1:99999").is_ok());
  CHECK_FALSE(parse_host_port("::1:80").is_ok());

  CHECK(*percent_decode("a%20b+c", true) == "a b c");
  CHECK(*percent_decode("a%20b+c", false) == "a b+c");
  CHECK_FALSE(percent_decode("%2", false).is_ok());
  CHECK_FALSE(percent_decode("%zz", false).is_ok());

  Request r;
  REQUIRE(parse_target("/api/v1/pods?labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1&watch=2&x",
                       r)
              .is_ok());
  CHECK(r.path == "/api/v1/pods");
  CHECK(r.q("labelSelector") == "app=web,tier in (a)");
  CHECK(r.query.count("watch") == 2);
  CHECK(r.has_q("x"));
  CHECK_FALSE(parse_target("no-slash", r).is_ok());
}

TEST_CASE("HTTPS with keep-alive, token auth and plain HTTP on loopback", "[http]") {
  Fixture f;
  f.start();
  REQUIRE(f.server->port() > 0);
  REQUIRE(f.server->insecure_port() > 0);

  TestClient c(f.server->port(), true);
  REQUIRE_FALSE(c.connect());
  for (int i = 0; i < 3; ++i) {
    auto res = c.request("POST", "/echo?a=x%20y&b=1+2", "hello", "secret-token");
    CHECK(res.result_int() == 200);
    CHECK(res.body() == "method=POST user=alice body=5 a=x y b=1 2 path=/echo");
    CHECK(res.keep_alive());
  }
  CHECK(f.server->open_connections() == 1);  // all three on one connection

  TestClient plain(f.server->insecure_port(), false);
  REQUIRE_FALSE(plain.connect());
  auto res = plain.request("GET", "/echo", "", "secret-token");
  CHECK(res.result_int() == 200);
  CHECK(res.body().find("user=alice") != std::string::npos);
}

TEST_CASE("401 without or with a wrong token; public paths open", "[http]") {
  Fixture f;
  f.start();
  TestClient c(f.server->port(), true);
  REQUIRE_FALSE(c.connect());
  auto res = c.request("GET", "/api/v1/pods");
  CHECK(res.result_int() == 401);
  CHECK(res[http::field::content_type] == "application/json");
  CHECK(res.body() ==
        R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
        R"("message":"Unauthorized","reason":"Unauthorized","code":401})");
  CHECK(c.request("GET", "/api/v1/pods", "", "wrong-token").result_int() == 401);
  auto hz = c.request("GET", "/healthz");
  CHECK(hz.result_int() == 200);
  CHECK(hz.body().find("user=system:anonymous") != std::string::npos);
  // A wrong token is refused even where no token is needed.
  CHECK(c.request("GET", "/healthz", "", "wrong-token").result_int() == 401);
  CHECK(c.request("GET", "/api/v1/pods", "", "secret-token").result_int() == 200);
}

TEST_CASE("--anonymous lets unauthenticated requests through", "[http]") {
  Fixture f;
  f.opts.anonymous = true;
  f.start();
  TestClient c(f.server->port(), true);
  REQUIRE_FALSE(c.connect());
  auto res = c.request("GET", "/api/v1/pods");
  CHECK(res.result_int() == 200);
  CHECK(res.body().find("user=system:anonymous") != std::string::npos);
}

TEST_CASE("plain HTTP refuses a non-loopback address", "[http]") {
  Fixture f;
  f.opts.insecure_listen = "0.0.0.0:0";
  auto s = HttpServer::start(f.opts, &f.handler);
  REQUIRE_FALSE(s.is_ok());
  CHECK(s.status().message().find("loopback") != std::string::npos);
}

TEST_CASE("bodies over the limit get 413, headers over the limit 431", "[http]") {
  Fixture f;
  f.start();
  SECTION("10 MiB Content-Length") {
    TestClient c(f.server->port(), true);
    REQUIRE_FALSE(c.connect());
    REQUIRE_FALSE(c.write_raw("POST /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                              "secret-token\r\nContent-Length: 10485760\r\n\r\n"));
    http::response<http::string_body> res;
    REQUIRE_FALSE(c.read(res));
    CHECK(res.result_int() == 413);
    CHECK(res.body().find("\"reason\":\"RequestEntityTooLarge\"") != std::string::npos);
    CHECK(res.body().find("\"code\":413") != std::string::npos);
  }
  SECTION("chunked body growing past 3 MiB") {
    TestClient c(f.server->port(), true);
    REQUIRE_FALSE(c.connect());
    std::string chunk(64 << 10, 'x');
    std::string req =
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 64; ++i) req += "10000\r\n" + chunk + "\r\n";  // 4 MiB
    (void)c.write_raw(req);  // the server may stop reading part-way
    http::response<http::string_body> res;
    REQUIRE_FALSE(c.read(res));
    CHECK(res.result_int() == 413);
  }
  SECTION("header flood") {
    TestClient c(f.server->port(), true);
    REQUIRE_FALSE(c.connect());
    std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 2000; ++i) req += "X-Flood-" + std::to_string(i) + ": " +
                                          std::string(60, 'y') + "\r\n";
    req += "\r\n";
    (void)c.write_raw(req);
    http::response<http::string_body> res;
    REQUIRE_FALSE(c.read(res));
    CHECK(res.result_int() == 431);
  }
  // The server keeps serving.
  TestClient ok(f.server->port(), true);
  REQUIRE_FALSE(ok.connect());
  CHECK(ok.request("GET", "/healthz").result_int() == 200);
}

TEST_CASE("stalled clients are timed out without affecting others", "[http]") {
  Fixture f;
  // 2 s, not less: the well-behaved clients here (TLS handshake, then a request) must finish
  // within these too, and on 2 busy CI cores a few hundred ms without the CPU do happen.
  f.opts.handshake_timeout = 2s;
  f.opts.header_timeout = 2s;
  f.opts.body_timeout = 2s;
  f.opts.idle_timeout = 2s;
  f.start();

  SECTION("a body that stops midway") {
    TestClient c(f.server->port(), true);
    REQUIRE_FALSE(c.connect());
    REQUIRE_FALSE(c.write_raw("POST /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                              "secret-token\r\nContent-Length: 100\r\n\r\n0123456789"));
    auto ec = c.read_until_closed();
    INFO(ec.message());
    CHECK(closed_error(ec));
  }
  SECTION("a TLS handshake that never finishes") {
    TestClient c(f.server->port(), false);  // plain TCP to the TLS port, sending nothing
    REQUIRE_FALSE(c.connect());
    auto ec = c.read_until_closed();
    INFO(ec.message());
    CHECK(closed_error(ec));
  }
  SECTION("headers that never finish") {
    TestClient c(f.server->port(), true);
    REQUIRE_FALSE(c.connect());
    REQUIRE_FALSE(c.write_raw("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
    auto ec = c.read_until_closed();
    CHECK(closed_error(ec));
  }
  SECTION("an idle keep-alive connection") {
    TestClient c(f.server->port(), true);
    REQUIRE_FALSE(c.connect());
    CHECK(c.request("GET", "/healthz").result_int() == 200);
    auto ec = c.read_until_closed();
    CHECK(closed_error(ec));
  }
  TestClient ok(f.server->port(), true);
  REQUIRE_FALSE(ok.connect());
  CHECK(ok.request("GET", "/healthz").result_int() == 200);
  CHECK(eventually([&] { return f.server->open_connections() <= 1; }));
}

TEST_CASE("a keep-alive connection that stalls mid-request gets the header timeout, not idle's",
          "[http]") {
  // The watchdog does not re-arm its timer per request: a shorter deadline after a longer one
  // (idle -> reading headers) must still fire on time.
  Fixture f;
  f.opts.header_timeout = 2s;
  f.opts.handshake_timeout = 120s;  // these far beyond kWait: only the header timeout can
  f.opts.idle_timeout = 120s;       // close it in time
  f.start();
  TestClient c(f.server->port(), true);
  REQUIRE_FALSE(c.connect());
  CHECK(c.request("GET", "/healthz").result_int() == 200);
  std::this_thread::sleep_for(500ms);  // idle a while, then start a request and stall
  REQUIRE_FALSE(c.write_raw("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
  auto ec = c.read_until_closed();
  INFO(ec.message());
  CHECK(closed_error(ec));
}
TEST_CASE("streams: close ends the body, a vanished client fires on_close", "[http]") {
  Fixture f;
  f.start();
  TestClient c(f.server->port(), true);
  REQUIRE_FALSE(c.connect());
  REQUIRE_FALSE(c.send("GET", "/stream/a", "", "secret-token"));
  REQUIRE_FALSE(c.read_stream_header());
  CHECK(c.stream_parser().get().result_int() == 200);
  CHECK(c.stream_parser().chunked());
  auto s = f.handler.stream("a");
  REQUIRE(s);
  CHECK(s->write(std::make_shared<const std::string>("{\"type\":\"ADDED\"}\n")));
  CHECK(s->write(std::make_shared<const std::string>("")));  // empty: ignored, not an end
  CHECK(s->write(std::make_shared<const std::string>("{\"type\":\"DELETED\"}\n")));
  s->close();
  CHECK(s->closed());
  CHECK_FALSE(s->write(std::make_shared<const std::string>("late\n")));
  for (int i = 0; i < 100 && !c.stream_done(); ++i) REQUIRE_FALSE(c.read_stream_some());
  REQUIRE(c.stream_done());
  CHECK(c.stream_body() == "{\"type\":\"ADDED\"}\n{\"type\":\"DELETED\"}\n");
  CHECK(f.handler.wait_closed("a"));

  TestClient d(f.server->port(), true);
  REQUIRE_FALSE(d.connect());
  REQUIRE_FALSE(d.send("GET", "/stream/b", "", "secret-token"));
  REQUIRE_FALSE(d.read_stream_header());
  auto sb = f.handler.stream("b");
  REQUIRE(sb);
  CHECK_FALSE(f.handler.is_closed("b"));
  d.close();
  CHECK(f.handler.wait_closed("b"));  // noticed by the pending read, with nothing written
  CHECK(sb->closed());
  CHECK_FALSE(sb->write(std::make_shared<const std::string>("x")));
}

TEST_CASE("a slow stream reader is cut off while others keep receiving", "[http]") {
  Fixture f;
  f.opts.stream_buffer_bytes = 256 << 10;
  f.opts.socket_send_buffer = 16 << 10;
  f.start();

  TestClient slow(f.server->port(), true, 4096);
  REQUIRE_FALSE(slow.connect());
  REQUIRE_FALSE(slow.send("GET", "/stream/slow", "", "secret-token"));
  REQUIRE_FALSE(slow.read_stream_header());
  TestClient fast(f.server->port(), true);
  REQUIRE_FALSE(fast.connect());
  REQUIRE_FALSE(fast.send("GET", "/stream/fast", "", "secret-token"));
  REQUIRE_FALSE(fast.read_stream_header());
  auto ss = f.handler.stream("slow");
  auto fs = f.handler.stream("fast");
  REQUIRE(ss);
  REQUIRE(fs);

  // The fast reader reads in its own thread until its stream ends.
  std::string fast_body;
  bool fast_done = false;
  std::thread reader([&] {
    for (int i = 0; i < 100000 && !fast.stream_done(); ++i) {
      if (fast.read_stream_some()) break;
    }
    fast_done = fast.stream_done();
    fast_body = fast.stream_body();
  });

  auto big = std::make_shared<const std::string>(64 << 10, 's');
  std::string expected;
  int cut_at = -1;
  for (int i = 0; i < 2000; ++i) {
    auto ev = std::make_shared<const std::string>("event " + std::to_string(i) + "\n");
    expected += *ev;
    CHECK(fs->write(ev));
    if (!ss->write(big)) {
      cut_at = i;
      break;
    }
  }
  CHECK(cut_at >= 0);  // the slow reader never reads: it must hit the bound
  CHECK(ss->closed());
  CHECK(f.handler.wait_closed("slow"));
  for (int i = 0; i < 50; ++i) {  // the fast one is unaffected
    auto ev = std::make_shared<const std::string>("after " + std::to_string(i) + "\n");
    expected += *ev;
    CHECK(fs->write(ev));
  }
  fs->close();
  reader.join();
  CHECK(fast_done);
  CHECK(fast_body == expected);
  // The slow client's connection was closed by the server (it finds EOF after its buffer).
  auto ec = slow.read_until_closed();
  INFO(ec.message());
  CHECK(closed_error(ec));
}

TEST_CASE("1,000 idle connections are held without hurting service", "[http]") {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 2200 && rl.rlim_max >= 2200) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 4096);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < 2200) {
    skiff::testing::skip("RLIMIT_NOFILE too low for 1,000 connections");
    return;
  }
  Fixture f;
  f.start();
  asio::io_context ioc;
  std::vector<tcp::socket> idle;
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"),
                   static_cast<unsigned short>(f.server->insecure_port()));
  for (int i = 0; i < 1000; ++i) {
    idle.emplace_back(ioc);
    beast::error_code ec;
    idle.back().connect(ep, ec);  // loopback connect completes at once (or fails at once)
    REQUIRE_FALSE(ec);
  }
  CHECK(eventually([&] { return f.server->open_connections() == 1000; }));
  TestClient c(f.server->port(), true);
  REQUIRE_FALSE(c.connect());
  CHECK(c.request("GET", "/echo", "", "secret-token").result_int() == 200);
  for (auto& s : idle) s.close();
  CHECK(eventually([&] { return f.server->open_connections() == 1; }));
}

TEST_CASE("graceful shutdown: in-flight answered, streams ended, idle closed", "[http]") {
  Fixture f;
  f.start();
  TestClient idle(f.server->port(), true);
  REQUIRE_FALSE(idle.connect());
  CHECK(idle.request("GET", "/healthz").result_int() == 200);

  TestClient st(f.server->port(), true);
  REQUIRE_FALSE(st.connect());
  REQUIRE_FALSE(st.send("GET", "/stream/w", "", "secret-token"));
  REQUIRE_FALSE(st.read_stream_header());
  auto w = f.handler.stream("w");
  REQUIRE(w);
  REQUIRE(w->write(std::make_shared<const std::string>("one\n")));

  TestClient busy(f.server->port(), true);
  REQUIRE_FALSE(busy.connect());
  REQUIRE_FALSE(busy.send("GET", "/block", "", "secret-token"));
  REQUIRE(f.handler.wait_blocked());

  std::thread stopper([&] { f.server->shutdown(); });
  CHECK(f.handler.wait_closed("w"));  // the stream was closed by the shutdown
  // New connections are refused once the listener is closed.
  CHECK(eventually([&] {
    TestClient late(f.server->port(), true);
    return static_cast<bool>(late.connect(false));
  }));
  f.handler.release();
  http::response<http::string_body> res;
  REQUIRE_FALSE(busy.read(res));
  CHECK(res.result_int() == 200);
  CHECK(res.body() == "released");
  CHECK_FALSE(res.keep_alive());
  for (int i = 0; i < 100 && !st.stream_done(); ++i) REQUIRE_FALSE(st.read_stream_some());
  CHECK(st.stream_done());
  CHECK(st.stream_body() == "one\n");
  CHECK(closed_error(idle.read_until_closed()));
  stopper.join();
  CHECK(f.server->open_connections() == 0);
}

TEST_CASE("run_inline: a lone request is handled on the I/O thread, never beside another",
          "[http]") {
  Fixture f;
  f.opts.run_inline = [](const Request& req) { return req.path == "/where/inline"; };
  f.start();
  TestClient c(f.server->port(), true);
  REQUIRE_FALSE(c.connect());
  // Nothing else running: handled on the I/O thread that read it, request after request.
  for (int i = 0; i < 3; ++i)
    CHECK(c.request("GET", "/where/inline", "", "secret-token").body() == "io");
  CHECK(c.request("GET", "/where/pool", "", "secret-token").body() == "worker");

  // While another handler runs (blocked on a worker), the same request goes to a worker.
  TestClient busy(f.server->port(), true);
  REQUIRE_FALSE(busy.connect());
  REQUIRE_FALSE(busy.send("GET", "/block", "", "secret-token"));
  REQUIRE(f.handler.wait_blocked());
  CHECK(c.request("GET", "/where/inline", "", "secret-token").body() == "worker");
  f.handler.release();
  http::response<http::string_body> res;
  REQUIRE_FALSE(busy.read(res));
  CHECK(res.body() == "released");
  // The blocked handler finished: inline again.
  CHECK(eventually(
      [&] { return c.request("GET", "/where/inline", "", "secret-token").body() == "io"; }));
}

TEST_CASE("run_after_answer: runs on the I/O thread once the answer is out; not from a worker",
          "[http]") {
  Fixture f;
  f.opts.run_inline = [](const Request& req) { return req.path.ends_with("/inline"); };
  f.start();
  TestClient c(f.server->port(), true);
  REQUIRE_FALSE(c.connect());
  // From a worker: refused, nothing runs.
  CHECK(c.request("GET", "/after/pool", "", "secret-token").body() == "not queued");
  // Inline: queued; the answer arrives while the task is still waiting for it to be read.
  CHECK(c.request("GET", "/after/inline", "", "secret-token").body() == "queued");
  f.handler.answer_read();
  CHECK(f.handler.after_runs(1) == 1);
  CHECK(f.handler.after_saw_answer());
  CHECK(f.handler.after_on_io());
  // The connection goes on serving afterwards.
  CHECK(c.request("GET", "/where/inline", "", "secret-token").body() == "io");
  CHECK(f.handler.after_runs(1) == 1);
}
