#include "apiserver/proxy.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/http/hijack.h"
#include "common/http/http_server.h"

namespace skiff::apiserver {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using asio::awaitable;
using Clock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

std::string query_escape(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

namespace {

constexpr size_t kSpliceBuffer = 32 << 10;
constexpr size_t kHeaderLimit = 64 << 10;

asio::ssl::context& client_tls() {
  static asio::ssl::context* ctx = [] {
    auto* c = new asio::ssl::context(asio::ssl::context::tls_client);
    c->set_verify_mode(asio::ssl::verify_none);  // see proxy.h: not verified yet
    return c;
  }();
  return *ctx;
}

template <class C>
class ProxySession : public std::enable_shared_from_this<ProxySession<C>> {
 public:
  using Upstream = asio::ssl::stream<tcp::socket>;

  ProxySession(C client, std::string leftover, KubeletRequest kr)
      : client_(std::move(client)),
        up_(client_.get_executor(), client_tls()),
        timer_(client_.get_executor()),
        leftover_(std::move(leftover)),
        kr_(std::move(kr)) {}

  awaitable<void> run() {
    auto self = this->shared_from_this();
    asio::co_spawn(client_.get_executor(), watchdog(self), asio::detached);
    deadline_ = Clock::now() + kr_.connect_timeout;
    std::string where = kr_.host + ":" + std::to_string(kr_.port);
    if (auto err = co_await connect(); !err.empty()) {
      co_await fail(500, "error dialing backend: dial tcp " + where + ": " + err);
      co_return finish();
    }
    std::string head = "GET " + kr_.target + " HTTP/1.1\r\nHost: " + where +
                       "\r\nAuthorization: Bearer " + kr_.token + "\r\n";
    for (auto& [k, v] : kr_.headers) head += k + ": " + v + "\r\n";
    if (!kr_.upgrade) head += "Connection: close\r\n";
    head += "\r\n";
    auto [wec, wn] = co_await asio::async_write(up_, asio::buffer(head), kTuple);
    std::string resp;
    if (!wec) {
      auto [rec, rn] = co_await asio::async_read_until(
          up_, asio::dynamic_buffer(resp, kHeaderLimit), "\r\n\r\n", kTuple);
      wec = rec;
    }
    if (wec) {
      co_await fail(500, "error talking to the kubelet at " + where + ": " + wec.message());
      co_return finish();
    }
    // The answer's head and whatever body bytes came with it go to the client unchanged.
    deadline_ = Clock::time_point::max();
    touch();
    auto [cec, cn] = co_await asio::async_write(client_, asio::buffer(resp), kTuple);
    if (cec) co_return finish();
    bool switched = resp.compare(0, 12, "HTTP/1.1 101") == 0;
    if (switched && !leftover_.empty()) {
      auto [lec, ln] = co_await asio::async_write(up_, asio::buffer(leftover_), kTuple);
      if (lec) co_return finish();
    }
    // Down (kubelet -> client) always; up only for a switched protocol. For a plain answer the
    // client sends nothing more, but a read kept pending notices it going away.
    asio::co_spawn(client_.get_executor(), splice(self, up_, client_, true), asio::detached);
    co_await splice(self, client_, up_, switched);
  }

 private:
  awaitable<std::string> connect() {
    beast_error ec;
    auto addr = asio::ip::make_address(kr_.host, ec);
    const bool is_ip = !ec;
    std::vector<tcp::endpoint> eps;
    if (is_ip) {
      eps.emplace_back(addr, static_cast<unsigned short>(kr_.port));
    } else {
      tcp::resolver res(client_.get_executor());
      auto [rec, results] = co_await res.async_resolve(kr_.host, std::to_string(kr_.port), kTuple);
      if (rec) co_return rec.message();
      for (auto& r : results) eps.push_back(r.endpoint());
    }
    std::string err = "no address";
    for (auto& ep : eps) {
      beast_error ignored;
      up_.next_layer().close(ignored);
      auto [cec] = co_await up_.next_layer().async_connect(ep, kTuple);
      if (!cec) {
        up_.next_layer().set_option(tcp::no_delay(true), ignored);
        err.clear();
        break;
      }
      err = Clock::now() >= deadline_ ? "i/o timeout" : cec.message();
    }
    if (!err.empty()) co_return err;
    if (!is_ip) {
      SSL_set_tlsext_host_name(up_.native_handle(), kr_.host.c_str());
    }
    auto [hec] = co_await up_.async_handshake(asio::ssl::stream_base::client, kTuple);
    if (hec)
      co_return "TLS handshake: " + (Clock::now() >= deadline_ ? "i/o timeout" : hec.message());
    co_return "";
  }

  using beast_error = boost::system::error_code;

  // Copies `from` to `to` until EOF or error, then ends the session. `forward` false: reads
  // and drops (noticing the peer leave).
  template <class From, class To>
  awaitable<void> splice(std::shared_ptr<ProxySession> self, From& from, To& to, bool forward) {
    std::vector<char> buf(kSpliceBuffer);
    for (;;) {
      auto [ec, n] = co_await from.async_read_some(asio::buffer(buf), kTuple);
      if (ec) break;
      touch();
      if (!forward) continue;
      auto [wec, wn] = co_await asio::async_write(to, asio::buffer(buf.data(), n), kTuple);
      if (wec) break;
      touch();
    }
    finish();
  }

  // An answer of our own, before anything from the kubelet reached the client.
  awaitable<void> fail(int code, const std::string& message) {
    spdlog::info("proxy to kubelet {}:{}{}: {}", kr_.host, kr_.port, kr_.target, message);
    std::string body = web::status_json(code, "InternalError", message);
    std::string head = "HTTP/1.1 " + std::to_string(code) +
                       " Internal Server Error\r\nContent-Type: application/json\r\n"
                       "Content-Length: " +
                       std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    deadline_ = Clock::now() + std::chrono::seconds(10);
    std::array<asio::const_buffer, 2> bufs{asio::buffer(head), asio::buffer(body)};
    co_await asio::async_write(client_, bufs, kTuple);
  }

  void touch() { last_ = Clock::now(); }

  // Closes both sides when a connect-phase deadline passes or nothing moved for idle_timeout.
  awaitable<void> watchdog(std::shared_ptr<ProxySession> self) {
    while (!done_) {
      auto until = std::min(deadline_, last_ + kr_.idle_timeout);
      timer_.expires_at(std::min(until, Clock::now() + std::chrono::seconds(30)));
      co_await timer_.async_wait(kTuple);
      if (done_) break;
      auto now = Clock::now();
      if (now >= deadline_ || now >= last_ + kr_.idle_timeout) {
        close_all();
        break;
      }
    }
  }

  void finish() {
    if (done_) return;
    done_ = true;
    timer_.cancel();
    close_all();
  }

  void close_all() {
    beast_error ec;
    auto& c = lowest(client_);
    c.shutdown(tcp::socket::shutdown_both, ec);
    c.close(ec);
    up_.next_layer().shutdown(tcp::socket::shutdown_both, ec);
    up_.next_layer().close(ec);
  }

  static tcp::socket& lowest(tcp::socket& s) { return s; }
  static tcp::socket& lowest(asio::ssl::stream<tcp::socket>& s) { return s.next_layer(); }

  C client_;
  Upstream up_;
  asio::steady_timer timer_;
  std::string leftover_;
  KubeletRequest kr_;
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point last_ = Clock::now();
  bool done_ = false;
};

template <class C>
void start(C&& client, std::string leftover, KubeletRequest kr) {
  using S = std::decay_t<C>;
  auto ex = client.get_executor();
  auto s = std::make_shared<ProxySession<S>>(std::move(client), std::move(leftover), std::move(kr));
  asio::co_spawn(
      ex, [s]() -> awaitable<void> { co_await s->run(); }, asio::detached);
}

}  // namespace

Response proxy_to_kubelet(KubeletRequest kr) {
  Response r;
  auto shared = std::make_shared<KubeletRequest>(std::move(kr));
  r.hijack = [shared](std::unique_ptr<web::HijackedConn> c) {
    std::string leftover(static_cast<const char*>(c->buffer.data().data()), c->buffer.size());
    if (c->tls) {
      start(std::move(*c->tls), std::move(leftover), std::move(*shared));
    } else {
      start(std::move(*c->plain), std::move(leftover), std::move(*shared));
    }
  };
  return r;
}

}  // namespace skiff::apiserver
