// The HTTP transport: one coroutine per connection, plus a watchdog coroutine that closes the
// socket when the connection's current deadline passes (the pattern of Asio's cpp20 timeout
// example). Each I/O thread runs its own io_context and owns the connections dealt to it, so a
// connection's work is serialized as on a strand (called "the strand" below) and never hops
// between I/O threads. Handlers run on a worker pool; answers come back to the strand. With
// run_inline, a request that arrives while no handler runs anywhere is handled right on the
// strand (one at a time: running_handlers_ counts pool and inline handlers alike).
//
// Streams: a StreamImpl is a mutex-guarded queue shared between handler threads (write/close)
// and the connection strand (which drains it, one write in flight). Writers post a wake-up to
// the strand; the queue is bounded by bytes, and exceeding the bound ends the stream and the
// connection, so a slow reader never holds memory or other streams hostage.
#include "common/http/http_server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "common/http/auth.h"
#include "common/http/hijack.h"

namespace skiff::web {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// ---------------------------------------------------------------------------------------------
// Free helpers.

Result<std::pair<std::string, int>> parse_host_port(const std::string& s) {
  std::string host, port;
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return Status::invalid("bad address \"" + s + "\": want [IPv6]:PORT");
    }
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    size_t colon = s.rfind(':');
    if (colon == std::string::npos) return Status::invalid("bad address \"" + s + "\": no port");
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (host.find(':') != std::string::npos) {
      return Status::invalid("bad address \"" + s + "\": write IPv6 hosts as [ADDR]:PORT");
    }
  }
  if (host.empty()) host = "0.0.0.0";
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535) {
    return Status::invalid("bad address \"" + s + "\": port must be 0-65535");
  }
  return std::make_pair(host, std::stoi(port));
}

Result<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      int hi = i + 1 < s.size() ? hex(s[i + 1]) : -1;
      int lo = i + 2 < s.size() ? hex(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return Status::invalid("bad percent-encoding in \"" + std::string(s) + "\"");
      }
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

Status parse_target(std::string_view target, Request& req) {
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  if (path.empty() || path.front() != '/') {
    return Status::invalid("request target must start with '/': \"" + std::string(target) + "\"");
  }
  auto p = percent_decode(path, false);
  if (!p) return p.status();
  req.path = std::move(*p);
  req.query.clear();
  if (q == std::string_view::npos) return Status::ok();
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    auto k = percent_decode(pair.substr(0, eq), true);
    if (!k) return k.status();
    auto v = percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
    if (!v) return v.status();
    req.query.emplace(std::move(*k), std::move(*v));
  }
  return Status::ok();
}

static std::string json_escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

std::string status_json(int code, const std::string& reason, const std::string& message) {
  return "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
         "\"message\":\"" + json_escape(message) + "\",\"reason\":\"" + json_escape(reason) +
         "\",\"code\":" + std::to_string(code) + "}";
}

namespace {

// The io_context of the I/O thread this is, or null on any other thread.
thread_local asio::io_context* tl_ioc = nullptr;

Response error_response(int code, const std::string& reason, const std::string& message) {
  Response r;
  r.status = code;
  r.body = status_json(code, reason, message);
  return r;
}

// ---------------------------------------------------------------------------------------------
// StreamImpl.

class StreamImpl : public Stream {
 public:
  explicit StreamImpl(size_t bound) : bound_(bound) {}

  bool write(std::shared_ptr<const std::string> chunk) override {
    std::vector<std::function<void()>> fire;
    bool cut = false;
    {
      std::lock_guard lk(mu_);
      if (ended_) return false;
      if (!chunk || chunk->empty()) return true;  // an empty chunk would end the body early
      if (queued_bytes_ + chunk->size() > bound_) {
        // The reader is too slow: cut it off instead of buffering without bound.
        end_locked(/*graceful=*/false, fire);
        cut_off_ = cut = true;
      } else {
        queued_bytes_ += chunk->size();
        queue_.push_back(std::move(chunk));
        if (!wake_pending_) {
          wake_pending_ = true;
          if (wake_) wake_();
        }
      }
    }
    for (auto& cb : fire) cb();
    return !cut;
  }

  void close() override { end(/*graceful=*/true); }

  bool closed() const override {
    std::lock_guard lk(mu_);
    return ended_;
  }

  bool wait_below(size_t bytes, std::chrono::milliseconds timeout) override {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, timeout, [&] { return ended_ || queued_bytes_ <= bytes; });
    return !ended_;
  }

  void on_close(std::function<void()> cb) override {
    {
      std::lock_guard lk(mu_);
      if (!ended_) {
        callbacks_.push_back(std::move(cb));
        return;
      }
    }
    cb();
  }

  // Ends the stream without the final chunk (client gone, cut off, connection over).
  void abort() { end(/*graceful=*/false); }

  // --- connection side (the strand) ---

  struct Take {
    bool ended = false;     // no more data will come
    bool graceful = false;  // ...and the body should get its terminating chunk
    bool cut_off = false;
  };
  // Moves every queued chunk into `out` (they stay counted against the bound until written()).
  Take take(std::vector<std::shared_ptr<const std::string>>& out) {
    std::lock_guard lk(mu_);
    wake_pending_ = false;
    for (auto& c : queue_) out.push_back(std::move(c));
    queue_.clear();
    return Take{ended_, graceful_ && !aborted_, cut_off_};
  }
  void written(size_t bytes) {
    std::lock_guard lk(mu_);
    queued_bytes_ -= std::min(bytes, queued_bytes_);
    cv_.notify_all();
  }
  void set_wake(std::function<void()> wake) {
    std::lock_guard lk(mu_);
    wake_ = std::move(wake);
  }

 private:
  void end(bool graceful) {
    std::vector<std::function<void()>> fire;
    {
      std::lock_guard lk(mu_);
      if (ended_ && (graceful || aborted_)) return;
      if (ended_) {
        // Already closing gracefully; the connection died before the flush finished.
        aborted_ = true;
        if (wake_) wake_();
        return;
      }
      end_locked(graceful, fire);
    }
    for (auto& cb : fire) cb();
  }

  void end_locked(bool graceful, std::vector<std::function<void()>>& fire) {
    ended_ = true;
    graceful_ = graceful;
    aborted_ = !graceful;
    if (!graceful) {
      queue_.clear();
    }
    fire.swap(callbacks_);
    cv_.notify_all();
    if (wake_) wake_();
  }

  const size_t bound_;
  mutable std::mutex mu_;
  std::condition_variable cv_;  // wait_below
  std::deque<std::shared_ptr<const std::string>> queue_;
  size_t queued_bytes_ = 0;
  bool ended_ = false, graceful_ = false, aborted_ = false, cut_off_ = false;
  bool wake_pending_ = false;
  std::function<void()> wake_;  // posts a wake-up to the connection strand; cleared on detach
  std::vector<std::function<void()>> callbacks_;
};

// ---------------------------------------------------------------------------------------------
// Connections.

class ServerImpl;

class ConnBase {
 public:
  virtual ~ConnBase() = default;
  // Posted to the connection's strand: finish gracefully (see HttpServer::shutdown).
  virtual void begin_shutdown() = 0;
  // Posted to the connection's strand: close the socket now.
  virtual void force_close() = 0;
  // Any thread, after the I/O threads stopped: stop the stream from posting to the strand.
  virtual void detach_stream() = 0;
};

enum class ConnState { kHandshake, kIdle, kReading, kHandling, kWriting, kStreaming, kClosing };

template <class S>
class Session : public ConnBase, public std::enable_shared_from_this<Session<S>> {
  static constexpr bool kTls = !std::is_same_v<S, tcp::socket>;

 public:
  Session(ServerImpl& srv, S stream, std::string remote)
      : srv_(srv),
        stream_(std::move(stream)),
        remote_(std::move(remote)),
        timer_(stream_.get_executor()),
        wake_timer_(stream_.get_executor()) {}

  ~Session() override { detach_stream(); }

  void start();
  void begin_shutdown() override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] { self->on_shutdown(); });
  }
  void force_close() override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] { self->close_socket(); });
  }
  void detach_stream() override {
    if (auto s = std::atomic_load(&stream_obj_)) {
      s->set_wake(nullptr);
      s->abort();
    }
  }

 private:
  awaitable<void> run(std::shared_ptr<Session> self);
  awaitable<void> watchdog(std::shared_ptr<Session> self);
  awaitable<bool> serve(http::request<http::string_body> msg);
  awaitable<void> fail_request(beast::error_code ec);
  awaitable<bool> write_response(Response r, bool keep_alive, const Request* req,
                                 Clock::time_point started);
  awaitable<void> stream_response(Response r, const Request& req, Clock::time_point started);
  awaitable<void> watch_peer(std::shared_ptr<Session> self);
  void hijack(std::function<void(std::unique_ptr<HijackedConn>)> fn,
              http::request<http::string_body> msg, const Request& req);
  awaitable<Response> run_handler(std::shared_ptr<const Request> req);
  awaitable<void> linger();

  // The watchdog's timer is never armed further out than rearm_cap() from when it was armed, so
  // a deadline of at least that much never fires the timer early: a keep-alive request costs no
  // timer cancel, watchdog wake-up or timerfd update (they were most of a request's wake-ups).
  // Only shorter ones (the TLS handshake, lingering after an error) cancel it.
  void set_deadline(std::chrono::milliseconds d) {
    auto nd = Clock::now() + d;
    deadline_ = nd;
    if (nd < armed_) timer_.cancel();
  }
  void clear_deadline() { deadline_ = Clock::time_point::max(); }

  void close_socket() {
    beast::error_code ec;
    auto& sock = beast::get_lowest_layer(stream_);
    if (!sock.is_open()) return;
    sock.shutdown(tcp::socket::shutdown_both, ec);
    sock.close(ec);
  }

  void on_shutdown() {
    shutting_down_ = true;
    switch (state_) {
      case ConnState::kHandshake:
      case ConnState::kIdle:
      case ConnState::kReading:
        close_socket();
        break;
      case ConnState::kStreaming:
        if (auto s = std::atomic_load(&stream_obj_)) s->close();
        break;
      default:
        break;  // in-flight request: answered, then the loop sees shutting_down_
    }
  }

  ServerImpl& srv_;
  S stream_;
  std::string remote_;
  beast::flat_buffer buf_;
  asio::steady_timer timer_;       // the watchdog's
  asio::steady_timer wake_timer_;  // streaming: woken by StreamImpl writers
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point armed_ = Clock::time_point::max();  // the watchdog timer's expiry
  ConnState state_ = ConnState::kHandshake;
  bool done_ = false;
  bool timed_out_ = false;
  bool shutting_down_ = false;
  std::shared_ptr<StreamImpl> stream_obj_;  // atomic_load/store: detach_stream runs off-strand
};

// ---------------------------------------------------------------------------------------------
// The server.

class ServerImpl : public HttpServer {
 public:
  ServerImpl(const ServerOptions& opts, Handler* handler)
      : opts_(opts),
        handler_(handler),
        pool_(static_cast<size_t>(std::max(1, opts.worker_threads))) {
    for (int i = 0; i < std::max(1, opts.io_threads); ++i) {
      // One thread per io_context (concurrency hint 1): a connection's reads, handler and
      // writes stay on one thread, and no I/O thread wakes another to run a ready handler.
      auto& ioc = iocs_.emplace_back(std::make_unique<asio::io_context>(1));
      work_.push_back(asio::make_work_guard(*ioc));
    }
  }

  ~ServerImpl() override { shutdown(); }

  Status init();

  int port() const override { return port_; }
  int insecure_port() const override { return insecure_port_; }
  size_t open_connections() const override {
    std::lock_guard lk(conns_mu_);
    return conns_.size();
  }
  void stop_accepting() override;
  void shutdown() override;

  // --- for sessions ---
  const ServerOptions& opts() const { return opts_; }
  // The longest a connection's watchdog sleeps: the shortest timeout of a keep-alive request's
  // steps (see Session::set_deadline).
  Clock::duration rearm_cap() const {
    return std::min({opts_.header_timeout, opts_.body_timeout, opts_.idle_timeout,
                     opts_.write_timeout});
  }
  Handler* handler() const { return handler_; }
  asio::thread_pool& pool() { return pool_; }
  bool stopping() const { return stopping_.load(); }

  // Counts handlers running; while one is held, no request is handled inline.
  class Busy {
   public:
    explicit Busy(std::atomic<int>* n) : n_(n) {}
    Busy(Busy&& o) noexcept : n_(std::exchange(o.n_, nullptr)) {}
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;
    ~Busy() {
      if (n_ != nullptr) n_->fetch_sub(1);
    }

   private:
    std::atomic<int>* n_;
  };
  Busy mark_busy() {
    running_handlers_.fetch_add(1);
    return Busy(&running_handlers_);
  }
  // A Busy when no handler is running (the caller may then handle inline), else nothing.
  std::optional<Busy> claim_idle() {
    int idle = 0;
    if (!running_handlers_.compare_exchange_strong(idle, 1)) return std::nullopt;
    return Busy(&running_handlers_);
  }

  void add_conn(ConnBase* c, std::weak_ptr<ConnBase> w) {
    std::lock_guard lk(conns_mu_);
    conns_.emplace(c, std::move(w));
  }
  void remove_conn(ConnBase* c) {
    std::lock_guard lk(conns_mu_);
    conns_.erase(c);
    if (conns_.empty()) conns_cv_.notify_all();
  }

 private:
  Status bind(const std::string& addr, bool tls, std::unique_ptr<tcp::acceptor>& acc, int& port);
  awaitable<void> accept_loop(tcp::acceptor* acc, bool tls);
  std::vector<std::shared_ptr<ConnBase>> snapshot() {
    std::vector<std::shared_ptr<ConnBase>> out;
    std::lock_guard lk(conns_mu_);
    for (auto& [p, w] : conns_) {
      if (auto s = w.lock()) out.push_back(std::move(s));
    }
    return out;
  }

  ServerOptions opts_;
  Handler* handler_;
  std::optional<asio::ssl::context> ssl_;  // declared before iocs_: sessions reference it
  // One per I/O thread; the acceptors run on the first, connections are dealt out in turn.
  std::vector<std::unique_ptr<asio::io_context>> iocs_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  size_t next_ioc_ = 0;  // only the accept loops touch it, both on iocs_[0]'s thread
  asio::thread_pool pool_;
  std::vector<std::thread> threads_;
  std::unique_ptr<tcp::acceptor> tls_acc_, plain_acc_;
  int port_ = 0, insecure_port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> running_handlers_{0};
  std::once_flag stop_accepting_once_, shutdown_once_;
  mutable std::mutex conns_mu_;
  std::condition_variable conns_cv_;
  std::unordered_map<ConnBase*, std::weak_ptr<ConnBase>> conns_;
  friend class HttpServer;
};

// ---------------------------------------------------------------------------------------------
// Session implementation.

template <class S>
void Session<S>::start() {
  auto self = this->shared_from_this();
  srv_.add_conn(this, self);
  asio::co_spawn(stream_.get_executor(), run(self), asio::detached);
  asio::co_spawn(stream_.get_executor(), watchdog(self), asio::detached);
}

template <class S>
awaitable<void> Session<S>::watchdog(std::shared_ptr<Session> self) {
  while (!done_) {
    armed_ = std::min(deadline_, Clock::now() + srv_.rearm_cap());
    timer_.expires_at(armed_);
    co_await timer_.async_wait(kTuple);
    if (done_) break;
    if (deadline_ <= Clock::now()) {
      timed_out_ = true;
      deadline_ = Clock::time_point::max();
      spdlog::debug("{}: deadline passed in state {}, closing", remote_, static_cast<int>(state_));
      close_socket();
    }
  }
}

template <class S>
awaitable<void> Session<S>::run(std::shared_ptr<Session> self) {
  const auto& o = srv_.opts();
  try {
    if constexpr (kTls) {
      state_ = ConnState::kHandshake;
      set_deadline(o.handshake_timeout);
      auto [ec] = co_await stream_.async_handshake(asio::ssl::stream_base::server, kTuple);
      if (ec) {
        spdlog::debug("{}: TLS handshake: {}", remote_, ec.message());
        throw beast::system_error(ec);
      }
    }
    bool first = true;
    while (!shutting_down_) {
      if (buf_.size() == 0) {
        // Wait for the first byte of the next request: the keep-alive idle period.
        state_ = ConnState::kIdle;
        set_deadline(first ? o.header_timeout : o.idle_timeout);
        auto [ec, n] = co_await stream_.async_read_some(buf_.prepare(16 << 10), kTuple);
        if (ec) break;
        buf_.commit(n);
      }
      first = false;
      state_ = ConnState::kReading;
      set_deadline(o.header_timeout);
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(o.header_limit));
      parser.body_limit(o.body_limit);
      auto [ec, n] = co_await http::async_read_header(stream_, buf_, parser, kTuple);
      if (ec) {
        co_await fail_request(ec);
        break;
      }
      if (parser.content_length() && *parser.content_length() > o.body_limit) {
        co_await fail_request(http::error::body_limit);
        break;
      }
      if (!parser.is_done()) {
        if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
          http::response<http::empty_body> cont{http::status::continue_, 11};
          set_deadline(o.write_timeout);
          auto [wec, wn] = co_await http::async_write(stream_, cont, kTuple);
          if (wec) break;
        }
        set_deadline(o.body_timeout);
        auto [bec, bn] = co_await http::async_read(stream_, buf_, parser, kTuple);
        if (bec) {
          co_await fail_request(bec);
          break;
        }
      }
      if (!co_await serve(parser.release())) break;
    }
  } catch (const std::exception& e) {
    spdlog::debug("{}: connection ended: {}", remote_, e.what());
  }
  state_ = ConnState::kClosing;
  close_socket();
  done_ = true;
  timer_.cancel();
  if (auto s = std::atomic_load(&stream_obj_)) s->abort();
  srv_.remove_conn(this);
}

template <class S>
awaitable<void> Session<S>::fail_request(beast::error_code ec) {
  if (timed_out_) {
    spdlog::debug("{}: request timed out in state {}", remote_, static_cast<int>(state_));
    co_return;
  }
  if (ec == http::error::end_of_stream || ec == asio::error::eof ||
      ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
      ec == asio::ssl::error::stream_truncated || ec == http::error::partial_message) {
    co_return;  // the peer went away
  }
  Response r;
  if (ec == http::error::header_limit) {
    r = error_response(431, "RequestHeaderFieldsTooLarge",
                       "request headers exceed " + std::to_string(srv_.opts().header_limit) +
                           " bytes");
  } else if (ec == http::error::body_limit) {
    r = error_response(413, "RequestEntityTooLarge",
                       "the request body exceeds the limit of " +
                           std::to_string(srv_.opts().body_limit) + " bytes");
  } else {
    r = error_response(400, "BadRequest", "malformed HTTP request: " + ec.message());
  }
  spdlog::warn("{}: rejected request: {} ({})", remote_, r.status, ec.message());
  if (co_await write_response(std::move(r), false, nullptr, Clock::now())) co_return;
  co_await linger();
}

// After an error answer that leaves request bytes unread, read and drop input for a short while
// before closing: closing a socket with unread data sends a reset, which can destroy the
// answer in flight before the client reads it.
template <class S>
awaitable<void> Session<S>::linger() {
  if constexpr (!kTls) {
    beast::error_code ec;
    stream_.shutdown(tcp::socket::shutdown_send, ec);
  }
  set_deadline(srv_.opts().linger_timeout);
  std::array<char, 16 << 10> scratch;
  for (;;) {
    auto [ec, n] = co_await stream_.async_read_some(asio::buffer(scratch), kTuple);
    if (ec) break;
  }
}

// Calls the handler; an exception becomes a 500.
Response call_handler(Handler* h, const Request& req) {
  try {
    return h->handle(req);
  } catch (const std::exception& e) {
    spdlog::warn("handler for {} {} threw: {}", req.method, req.raw_target, e.what());
    return error_response(500, "InternalError", std::string("internal error: ") + e.what());
  }
}

template <class S>
awaitable<Response> Session<S>::run_handler(std::shared_ptr<const Request> req) {
  Handler* h = srv_.handler();
  const auto& run_inline = srv_.opts().run_inline;
  if (run_inline && run_inline(*req)) {
    if (auto slot = srv_.claim_idle()) co_return call_handler(h, *req);
  }
  asio::thread_pool& pool = srv_.pool();
  ServerImpl* srv = &srv_;
  co_return co_await asio::async_initiate<decltype(use_awaitable), void(Response)>(
      [h, &pool, srv](auto handler, std::shared_ptr<const Request> req) {
        auto ex = asio::get_associated_executor(handler);
        asio::post(pool, [h, ex, srv, req = std::move(req),
                          handler = std::move(handler)]() mutable {
          Response r;
          {
            auto busy = srv->mark_busy();
            r = call_handler(h, *req);
          }
          asio::post(ex, [handler = std::move(handler), r = std::move(r)]() mutable {
            std::move(handler)(std::move(r));
          });
        });
      },
      use_awaitable, std::move(req));
}

template <class S>
awaitable<bool> Session<S>::serve(http::request<http::string_body> msg) {
  auto started = Clock::now();
  const auto& o = srv_.opts();
  bool keep_alive = msg.keep_alive();
  Request req;
  req.method = std::string(msg.method_string());
  req.raw_target = std::string(msg.target());
  req.remote = remote_;
  for (const auto& f : msg) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto [it, fresh] = req.headers.emplace(name, std::string(f.value()));
    if (!fresh) it->second += ", " + std::string(f.value());
  }
  req.body = std::move(msg.body());
  if (Status st = parse_target(req.raw_target, req); !st) {
    co_return co_await write_response(error_response(400, "BadRequest", st.message()), keep_alive,
                                      &req, started);
  }

  // Authentication. A wrong token is refused even on public paths, as Kubernetes does.
  std::string authz = req.header("authorization");
  bool ok = false;
  if (!authz.empty()) {
    const TokenAuthenticator* auth = o.auth;
    if (auto id = auth ? auth->authenticate(authz) : std::nullopt) {
      req.user = std::move(id->user);
      req.groups = std::move(id->groups);
      ok = true;
    }
  } else if (o.anonymous || (o.public_path ? o.public_path(req.path) : is_public_path(req.path))) {
    req.user = kAnonymousUser;
    req.groups = {kUnauthenticatedGroup};
    ok = true;
  }
  if (!ok) {
    co_return co_await write_response(error_response(401, "Unauthorized", "Unauthorized"),
                                      keep_alive, &req, started);
  }

  state_ = ConnState::kHandling;
  clear_deadline();
  // Shared with the worker rather than copied: the body may be megabytes.
  auto shared = std::make_shared<const Request>(std::move(req));
  Response r = co_await run_handler(shared);
  if (r.status < 100 || r.status > 999) r.status = 500;
  if (r.hijack) {
    hijack(std::move(r.hijack), std::move(msg), *shared);
    co_return false;
  }
  if (r.streamer) {
    co_await stream_response(std::move(r), *shared, started);
    co_return false;
  }
  co_return co_await write_response(std::move(r), keep_alive, shared.get(), started);
}

template <class S>
awaitable<bool> Session<S>::write_response(Response r, bool keep_alive, const Request* req,
                                           Clock::time_point started) {
  keep_alive = keep_alive && !shutting_down_ && !srv_.stopping();
  http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
  if (!r.content_type.empty()) res.set(http::field::content_type, r.content_type);
  for (auto& [k, v] : r.headers) res.insert(k, v);
  res.body() = std::move(r.body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  state_ = ConnState::kWriting;
  set_deadline(srv_.opts().write_timeout);
  auto [ec, n] = co_await http::async_write(stream_, res, kTuple);
  if (req) {
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    spdlog::debug("{} {} {} {} {:.1f}ms user={}", remote_, req->method, req->raw_target,
                  r.status, ms, req->user);
  }
  if (ec) co_return false;
  co_return keep_alive;
}

template <class S>
awaitable<void> Session<S>::stream_response(Response r, const Request& req,
                                            Clock::time_point started) {
  const auto& o = srv_.opts();
  auto stream = std::make_shared<StreamImpl>(o.stream_buffer_bytes);
  std::weak_ptr<Session> weak = this->shared_from_this();
  auto ex = stream_.get_executor();
  stream->set_wake([weak, ex] {
    asio::post(ex, [weak] {
      if (auto s = weak.lock()) s->wake_timer_.cancel();
    });
  });
  std::atomic_store(&stream_obj_, stream);

  // Headers first, chunked. The connection closes when the stream ends, so the client does
  // not have to guess whether a long-lived response may be followed by another one.
  http::response<http::empty_body> res{static_cast<http::status>(r.status), 11};
  if (!r.content_type.empty()) res.set(http::field::content_type, r.content_type);
  for (auto& [k, v] : r.headers) res.insert(k, v);
  res.chunked(true);
  res.keep_alive(false);
  http::response_serializer<http::empty_body> sr{res};
  state_ = ConnState::kWriting;
  set_deadline(o.write_timeout);
  auto [hec, hn] = co_await http::async_write_header(stream_, sr, kTuple);
  spdlog::debug("{} {} {} {} stream opened user={}", remote_, req.method, req.raw_target,
                r.status, req.user);
  if (hec) {
    stream->abort();
    co_return;
  }
  state_ = ConnState::kStreaming;
  clear_deadline();
  if (shutting_down_) stream->close();
  asio::post(srv_.pool(), [fn = std::move(r.streamer), stream] {
    try {
      fn(stream);
    } catch (const std::exception& e) {
      spdlog::warn("streamer threw: {}", e.what());
      stream->abort();
    }
  });
  // A read kept pending on the socket notices the client going away while we only write.
  asio::co_spawn(stream_.get_executor(), watch_peer(this->shared_from_this()), asio::detached);

  std::vector<std::shared_ptr<const std::string>> batch;
  std::vector<std::string> frames;
  std::vector<asio::const_buffer> bufs;
  bool clean_end = false;
  for (;;) {
    batch.clear();
    auto t = stream->take(batch);
    if (t.ended && !t.graceful) break;  // cut off, client gone or connection over
    if (!batch.empty()) {
      frames.clear();
      frames.reserve(batch.size());
      bufs.clear();
      size_t bytes = 0;
      for (auto& c : batch) {
        char head[24];
        int hl = snprintf(head, sizeof(head), "%zx\r\n", c->size());
        frames.emplace_back(head, static_cast<size_t>(hl));
        bufs.push_back(asio::buffer(frames.back()));
        bufs.push_back(asio::buffer(*c));
        bufs.push_back(asio::buffer("\r\n", 2));
        bytes += c->size();
      }
      set_deadline(o.write_timeout);
      auto [ec, n] = co_await asio::async_write(stream_, bufs, kTuple);
      clear_deadline();
      stream->written(bytes);
      if (ec) break;
      continue;
    }
    if (t.ended) {  // closed gracefully and everything is flushed
      set_deadline(o.write_timeout);
      auto [ec, n] = co_await asio::async_write(stream_, asio::buffer("0\r\n\r\n", 5), kTuple);
      clear_deadline();
      clean_end = !ec;
      break;
    }
    wake_timer_.expires_at(Clock::time_point::max());
    co_await wake_timer_.async_wait(kTuple);
  }
  stream->abort();  // no-op after a clean end; fires on_close otherwise
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
  auto t = stream->take(batch);
  spdlog::debug("{} {} {} stream ended after {:.1f}ms ({})", remote_, req.method, req.raw_target,
                ms, clean_end ? "closed" : t.cut_off ? "slow reader cut off" : "aborted");
}

template <class S>
void Session<S>::hijack(std::function<void(std::unique_ptr<HijackedConn>)> fn,
                        http::request<http::string_body> msg, const Request& req) {
  auto conn = std::make_unique<HijackedConn>();
  if constexpr (kTls) {
    conn->tls = std::make_unique<HijackedConn::Tls>(std::move(stream_));
  } else {
    conn->plain = std::make_unique<HijackedConn::Tcp>(std::move(stream_));
  }
  conn->buffer = std::move(buf_);
  conn->request = std::move(msg);
  conn->remote = remote_;
  spdlog::debug("{} {} {} hijacked user={}", remote_, req.method, req.raw_target, req.user);
  // run() now ends; closing the moved-from stream is a no-op.
  fn(std::move(conn));
}

template <class S>
awaitable<void> Session<S>::watch_peer(std::shared_ptr<Session> self) {
  std::array<char, 4096> scratch;
  for (;;) {
    auto [ec, n] = co_await stream_.async_read_some(asio::buffer(scratch), kTuple);
    // Bytes sent during a stream (a pipelined request) are dropped: the connection closes when
    // the stream ends.
    if (ec) break;
  }
  if (auto s = std::atomic_load(&stream_obj_)) s->abort();
  wake_timer_.cancel();
}

// ---------------------------------------------------------------------------------------------
// ServerImpl implementation.

bool is_loopback(const asio::ip::address& a) {
  if (a.is_loopback()) return true;
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).is_loopback();
  }
  return false;
}

Status ServerImpl::bind(const std::string& addr, bool tls, std::unique_ptr<tcp::acceptor>& acc,
                        int& port) {
  auto hp = parse_host_port(addr);
  if (!hp) return hp.status();
  std::string host = hp->first == "localhost" ? "127.0.0.1" : hp->first;
  beast::error_code ec;
  auto ip = asio::ip::make_address(host, ec);
  if (ec) return Status::invalid("listen address \"" + addr + "\": host must be an IP address");
  if (!tls && !is_loopback(ip)) {
    return Status::invalid("--insecure-listen " + addr +
                           ": plain HTTP is only served on a loopback address (127.0.0.1, ::1)");
  }
  tcp::endpoint ep(ip, static_cast<unsigned short>(hp->second));
  acc = std::make_unique<tcp::acceptor>(iocs_[0]->get_executor());
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && ip.is_v6()) acc->set_option(asio::ip::v6_only(false), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status(Code::kIo, "listen on " + addr + ": " + ec.message(), ec.value());
  port = acc->local_endpoint().port();
  return Status::ok();
}

Status ServerImpl::init() {
  if (opts_.listen.empty() && opts_.insecure_listen.empty()) {
    return Status::invalid("no listen address: set --listen and/or --insecure-listen");
  }
  if (!opts_.listen.empty()) {
    ssl_.emplace(asio::ssl::context::tls_server);
    ssl_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                      asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                      asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
    SSL_CTX_set_min_proto_version(ssl_->native_handle(), TLS1_2_VERSION);
    beast::error_code ec;
    ssl_->use_certificate_chain_file(opts_.cert_file, ec);
    if (ec) return Status::invalid("load serving certificate " + opts_.cert_file + ": " +
                                   ec.message());
    ssl_->use_private_key_file(opts_.key_file, asio::ssl::context::pem, ec);
    if (ec) return Status::invalid("load serving key " + opts_.key_file + ": " + ec.message());
    SKIFF_RETURN_IF_ERROR(bind(opts_.listen, true, tls_acc_, port_));
  }
  if (!opts_.insecure_listen.empty()) {
    SKIFF_RETURN_IF_ERROR(bind(opts_.insecure_listen, false, plain_acc_, insecure_port_));
  }
  if (tls_acc_) asio::co_spawn(tls_acc_->get_executor(), accept_loop(tls_acc_.get(), true),
                               asio::detached);
  if (plain_acc_) asio::co_spawn(plain_acc_->get_executor(), accept_loop(plain_acc_.get(), false),
                                 asio::detached);
  for (auto& ioc : iocs_) {
    threads_.emplace_back([ioc = ioc.get()] {
      tl_ioc = ioc;
      for (;;) {
        try {
          ioc->run();
          return;
        } catch (const std::exception& e) {
          spdlog::warn("I/O thread: unexpected exception: {}", e.what());
        }
      }
    });
  }
  return Status::ok();
}

awaitable<void> ServerImpl::accept_loop(tcp::acceptor* acc, bool tls) {
  for (;;) {
    // The connection's "strand": its io_context runs on one thread only.
    asio::any_io_executor strand = iocs_[next_ioc_++ % iocs_.size()]->get_executor();
    auto [ec, sock] = co_await acc->async_accept(strand, kTuple);
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted || !acc->is_open()) co_return;
      spdlog::warn("accept: {}", ec.message());
      // Out of descriptors (or similar): back off instead of spinning on the error.
      asio::steady_timer t(acc->get_executor(), std::chrono::milliseconds(100));
      co_await t.async_wait(kTuple);
      continue;
    }
    if (open_connections() >= static_cast<size_t>(opts_.max_connections)) {
      spdlog::warn("connection limit {} reached, refusing a connection", opts_.max_connections);
      beast::error_code ignored;
      sock.close(ignored);
      continue;
    }
    beast::error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);
    if (opts_.socket_send_buffer > 0) {
      sock.set_option(asio::socket_base::send_buffer_size(opts_.socket_send_buffer), ignored);
    }
    auto ep = sock.remote_endpoint(ignored);
    std::string remote = ep.address().is_v6() ? "[" + ep.address().to_string() + "]:" +
                                                    std::to_string(ep.port())
                                              : ep.address().to_string() + ":" +
                                                    std::to_string(ep.port());
    if (tls) {
      using TlsStream = asio::ssl::stream<tcp::socket>;
      std::make_shared<Session<TlsStream>>(*this, TlsStream(std::move(sock), *ssl_), remote)
          ->start();
    } else {
      std::make_shared<Session<tcp::socket>>(*this, std::move(sock), remote)->start();
    }
  }
}

void ServerImpl::stop_accepting() {
  std::call_once(stop_accepting_once_, [this] {
    stopping_ = true;
    std::vector<std::future<void>> done;
    for (auto* acc : {tls_acc_.get(), plain_acc_.get()}) {
      if (!acc) continue;
      auto p = std::make_shared<std::promise<void>>();
      done.push_back(p->get_future());
      asio::post(acc->get_executor(), [acc, p] {
        beast::error_code ec;
        acc->close(ec);
        p->set_value();
      });
    }
    for (auto& f : done) {
      // The I/O threads may already be gone if start() failed half-way; do not wait forever.
      f.wait_for(std::chrono::seconds(5));
    }
  });
}

void ServerImpl::shutdown() {
  std::call_once(shutdown_once_, [this] {
    stop_accepting();
    for (auto& c : snapshot()) c->begin_shutdown();
    {
      std::unique_lock lk(conns_mu_);
      conns_cv_.wait_for(lk, opts_.shutdown_timeout, [this] { return conns_.empty(); });
    }
    auto left = snapshot();
    if (!left.empty()) {
      spdlog::warn("shutdown: cutting {} connection(s) still open after {} ms", left.size(),
                   opts_.shutdown_timeout.count());
      for (auto& c : left) c->force_close();
      left.clear();
      std::unique_lock lk(conns_mu_);
      conns_cv_.wait_for(lk, std::chrono::seconds(2), [this] { return conns_.empty(); });
    }
    work_.clear();
    for (auto& ioc : iocs_) ioc->stop();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    // Streams kept by handlers must stop posting to the stopped io_context.
    for (auto& c : snapshot()) c->detach_stream();
    pool_.join();
  });
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::start(const ServerOptions& opts,
                                                      Handler* handler) {
  auto s = std::make_unique<ServerImpl>(opts, handler);
  try {
    if (Status st = s->init(); !st) {
      s->shutdown();
      return st;
    }
  } catch (const std::exception& e) {
    s->shutdown();
    return Status::internal(std::string("start HTTP server: ") + e.what());
  }
  return std::unique_ptr<HttpServer>(std::move(s));
}

bool on_io_thread() { return tl_ioc != nullptr; }

bool run_after_answer(std::function<void()> fn) {
  if (tl_ioc == nullptr) return false;
  // The inline handler's session writes its answer as soon as the handler returns, and the
  // write's first send happens inside its initiation, before this thread's queue runs again.
  asio::post(*tl_ioc, std::move(fn));
  return true;
}

}  // namespace skiff::web
