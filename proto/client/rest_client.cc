#include "proto/client/rest_client.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "proto/client/kubeconfig.h"

namespace skiff::client {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using net::awaitable;
using nlohmann::json;
constexpr auto kTuple = net::as_tuple(net::use_awaitable);

constexpr uint64_t kMaxBody = 512ull << 20;  // a 10,000-pod list is tens of MiB

struct Url {
  bool tls = true;
  std::string host;  // without brackets
  std::string port;
  std::string base_path;  // "" or "/prefix"
};

Result<Url> parse_url(const std::string& s) {
  Url u;
  std::string rest;
  if (s.rfind("https://", 0) == 0) {
    rest = s.substr(8);
  } else if (s.rfind("http://", 0) == 0) {
    u.tls = false;
    rest = s.substr(7);
  } else {
    return Status::invalid("server URL \"" + s + "\" must start with https:// or http://");
  }
  size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  if (slash != std::string::npos) u.base_path = rest.substr(slash);
  while (!u.base_path.empty() && u.base_path.back() == '/') u.base_path.pop_back();
  if (!hostport.empty() && hostport[0] == '[') {
    size_t close = hostport.find(']');
    if (close == std::string::npos) return Status::invalid("server URL \"" + s + "\": bad IPv6");
    u.host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size() && hostport[close + 1] == ':') {
      u.port = hostport.substr(close + 2);
    }
  } else {
    size_t colon = hostport.rfind(':');
    u.host = hostport.substr(0, colon);
    if (colon != std::string::npos) u.port = hostport.substr(colon + 1);
  }
  if (u.host.empty()) return Status::invalid("server URL \"" + s + "\" has no host");
  if (u.port.empty()) u.port = u.tls ? "443" : "80";
  return u;
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  net::ip::make_address(host, ec);
  return !ec;
}

// One connection: TLS or plain, with its read buffer (which may hold bytes of the next
// response only in theory: we never pipeline).
struct Conn {
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  std::unique_ptr<beast::tcp_stream> plain;
  beast::flat_buffer buf;
  beast::tcp_stream& tcp() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
};

// Calls f(stream) with the connection's top stream.
template <class F>
auto with_stream(Conn& c, F&& f) {
  if (c.tls) return f(*c.tls);
  return f(*c.plain);
}

Status transport_error(const std::string& what, const beast::error_code& ec) {
  if (ec == beast::error::timeout) return Status::timeout(what + ": timed out");
  return Status::unavailable(what + ": " + ec.message());
}

// What the sync watch caller and the I/O coroutine share.
struct WatchChannel {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> lines;
  bool done = false;
  Status final;
  // I/O thread only:
  bool cancelled = false;
  Conn* conn = nullptr;
};

}  // namespace

ClientConfig ClientConfig::from_kubeconfig(const KubeConfig& kc) {
  ClientConfig c;
  c.server = kc.server;
  c.tls_server_name = kc.tls_server_name;
  c.ca_pem = kc.ca_pem;
  c.insecure_skip_tls_verify = kc.insecure_skip_tls_verify;
  c.token = kc.token;
  c.client_cert_pem = kc.client_cert_pem;
  c.client_key_pem = kc.client_key_pem;
  return c;
}

std::string query_escape(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

ApiError api_error(const Response& r) {
  ApiError e;
  e.code = r.status;
  json j = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.value("kind", "") == "Status") {
    e.reason = j.value("reason", "");
    e.message = j.value("message", "");
    if (j.contains("code") && j["code"].is_number_integer()) e.code = j["code"].get<int>();
    if (auto d = j.find("details"); d != j.end() && d->is_object()) {
      e.details_name = d->value("name", "");
      e.details_group = d->value("group", "");
      e.details_kind = d->value("kind", "");
      if (auto cs = d->find("causes"); cs != d->end() && cs->is_array()) {
        for (const auto& c : *cs) {
          if (!c.is_object()) continue;
          e.causes.push_back({c.value("reason", ""), c.value("message", ""), c.value("field", "")});
        }
      }
    }
  }
  if (e.reason.empty()) {
    switch (r.status) {
      case 400:
        e.reason = "BadRequest";
        break;
      case 401:
        e.reason = "Unauthorized";
        break;
      case 403:
        e.reason = "Forbidden";
        break;
      case 404:
        e.reason = "NotFound";
        break;
      case 405:
        e.reason = "MethodNotAllowed";
        break;
      case 409:
        e.reason = "Conflict";
        break;
      case 410:
        e.reason = "Gone";
        break;
      case 413:
        e.reason = "RequestEntityTooLarge";
        break;
      case 415:
        e.reason = "UnsupportedMediaType";
        break;
      case 422:
        e.reason = "Invalid";
        break;
      case 429:
        e.reason = "TooManyRequests";
        break;
      case 503:
        e.reason = "ServiceUnavailable";
        break;
      case 504:
        e.reason = "Timeout";
        break;
      default:
        e.reason = r.status >= 500 ? "InternalError" : "Unknown";
        break;
    }
  }
  if (e.message.empty()) {
    e.message = r.status == 404 ? "the server could not find the requested resource"
                                : "the server responded with HTTP " + std::to_string(r.status);
  }
  return e;
}

Status to_status(const Response& r) {
  ApiError e = api_error(r);
  Code code;
  switch (e.code) {
    case 400:
    case 422:
      code = Code::kInvalid;
      break;
    case 401:
      code = Code::kUnauthorized;
      break;
    case 403:
      code = Code::kForbidden;
      break;
    case 404:
      code = Code::kNotFound;
      break;
    case 409:
      code = e.reason == "AlreadyExists" ? Code::kAlreadyExists : Code::kConflict;
      break;
    case 410:
      code = Code::kGone;
      break;
    case 413:
      code = Code::kTooLarge;
      break;
    case 429:
    case 503:
      code = Code::kUnavailable;
      break;
    case 504:
      code = Code::kTimeout;
      break;
    default:
      code = Code::kInternal;
      break;
  }
  return Status(code, e.message);
}

class RestClient::Impl {
 public:
  explicit Impl(ClientConfig cfg, Url url)
      : cfg_(std::move(cfg)), url_(std::move(url)), work_(net::make_work_guard(ioc_)) {}

  Status init_tls() {
    boost::system::error_code ec;
    ssl_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (cfg_.insecure_skip_tls_verify) {
      ssl_.set_verify_mode(ssl::verify_none);
    } else {
      ssl_.set_verify_mode(ssl::verify_peer);
      if (!cfg_.ca_pem.empty()) {
        ssl_.add_certificate_authority(net::buffer(cfg_.ca_pem), ec);
        if (ec) return Status::invalid("load the certificate authority: " + ec.message());
      } else {
        ssl_.set_default_verify_paths(ec);
        if (ec) return Status::invalid("load the system's CA certificates: " + ec.message());
      }
    }
    if (!cfg_.client_cert_pem.empty()) {
      ssl_.use_certificate_chain(net::buffer(cfg_.client_cert_pem), ec);
      if (ec) return Status::invalid("load the client certificate: " + ec.message());
      ssl_.use_private_key(net::buffer(cfg_.client_key_pem), ssl::context::pem, ec);
      if (ec) return Status::invalid("load the client key: " + ec.message());
    }
    return Status::ok();
  }

  void start() {
    thread_ = std::thread([this] { ioc_.run(); });
  }

  ~Impl() {
    net::post(ioc_, [this] { idle_.clear(); });
    work_.reset();
    // Outstanding operations end at their deadlines; the destructor's contract is that no
    // caller is still using the client, so stopping is safe.
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
  }

  std::string target(const Request& req) const {
    std::string t = url_.base_path + req.path;
    char sep = t.find('?') == std::string::npos ? '?' : '&';
    for (const auto& [k, v] : req.query) {
      t += sep;
      t += query_escape(k);
      t += '=';
      t += query_escape(v);
      sep = '&';
    }
    return t;
  }

  std::string describe(const Request& req) const {
    return req.method + " " + cfg_.server + req.path;
  }

  http::request<http::string_body> make_request(const Request& req) const {
    http::request<http::string_body> h;
    h.method_string(req.method);
    h.target(target(req));
    h.version(11);
    std::string host = url_.host.find(':') != std::string::npos ? "[" + url_.host + "]" : url_.host;
    if (!((url_.tls && url_.port == "443") || (!url_.tls && url_.port == "80"))) {
      host += ":" + url_.port;
    }
    h.set(http::field::host, host);
    h.set(http::field::user_agent, cfg_.user_agent);
    if (!req.accept.empty()) h.set(http::field::accept, req.accept);
    if (!cfg_.token.empty()) h.set(http::field::authorization, "Bearer " + cfg_.token);
    if (!req.content_type.empty()) h.set(http::field::content_type, req.content_type);
    h.keep_alive(true);
    if (!req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
      h.body() = req.body;
      h.prepare_payload();
    }
    return h;
  }

  awaitable<Result<std::unique_ptr<Conn>>> connect() {
    using namespace net::experimental::awaitable_operators;
    auto ex = co_await net::this_coro::executor;
    const std::string what = "connect to " + cfg_.server;
    tcp::resolver resolver(ex);
    net::steady_timer timer(ex);
    timer.expires_after(cfg_.connect_timeout);
    auto resolved =
        co_await (resolver.async_resolve(url_.host, url_.port, kTuple) || timer.async_wait(kTuple));
    if (resolved.index() == 1) co_return Status::timeout(what + ": resolving timed out");
    auto [rec, results] = std::get<0>(resolved);
    if (rec) co_return transport_error(what, rec);

    auto conn = std::make_unique<Conn>();
    beast::tcp_stream stream(ex);
    stream.expires_after(cfg_.connect_timeout);
    auto [cec, ep] = co_await stream.async_connect(results, kTuple);
    if (cec) co_return transport_error(what, cec);
    stream.socket().set_option(tcp::no_delay(true));
    if (!url_.tls) {
      stream.expires_never();
      conn->plain = std::make_unique<beast::tcp_stream>(std::move(stream));
      co_return conn;
    }
    conn->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(stream), ssl_);
    const std::string& name = cfg_.tls_server_name.empty() ? url_.host : cfg_.tls_server_name;
    if (!is_ip_literal(name)) {
      // SNI carries host names only (RFC 6066 forbids IP literals).
      SSL_set_tlsext_host_name(conn->tls->native_handle(), name.c_str());
    }
    if (!cfg_.insecure_skip_tls_verify) {
      conn->tls->set_verify_callback(ssl::host_name_verification(name));
    }
    conn->tcp().expires_after(cfg_.handshake_timeout);
    auto [hec] = co_await conn->tls->async_handshake(ssl::stream_base::client, kTuple);
    if (hec) co_return transport_error("TLS handshake with " + cfg_.server, hec);
    conn->tcp().expires_never();
    co_return conn;
  }

  // A pooled connection if one is idle, else a new one. `reused` tells which.
  awaitable<Result<std::unique_ptr<Conn>>> acquire(bool& reused) {
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      reused = true;
      co_return c;
    }
    reused = false;
    co_return co_await connect();
  }

  void release(std::unique_ptr<Conn> c) {
    c->tcp().expires_never();
    if (idle_.size() < cfg_.max_idle_connections) idle_.push_back(std::move(c));
  }

  awaitable<Result<Response>> do_request(Request req) {
    const std::string what = describe(req);
    auto hreq = make_request(req);
    auto timeout = req.timeout.count() > 0 ? req.timeout : cfg_.request_timeout;
    for (int attempt = 0;; ++attempt) {
      bool reused = false;
      auto conn = co_await acquire(reused);
      if (!conn) co_return conn.status();
      Conn& c = **conn;
      http::response_parser<http::string_body> parser;
      parser.body_limit(kMaxBody);
      c.tcp().expires_after(timeout);
      auto ec = co_await with_stream(c, [&](auto& s) -> awaitable<beast::error_code> {
        auto [wec, wn] = co_await http::async_write(s, hreq, kTuple);
        if (wec) co_return wec;
        auto [rec, rn] = co_await http::async_read(s, c.buf, parser, kTuple);
        co_return rec;
      });
      if (ec) {
        // The server may close an idle keep-alive connection just as we reuse it; nothing was
        // processed then, so one retry on a fresh connection is safe.
        if (reused && attempt == 0 && !parser.got_some() && ec != beast::error::timeout) {
          continue;
        }
        co_return transport_error(what, ec);
      }
      auto msg = parser.release();
      Response r;
      r.status = static_cast<int>(msg.result_int());
      r.content_type = std::string(msg[http::field::content_type]);
      r.body = std::move(msg.body());
      if (msg.keep_alive()) release(std::move(*conn));
      co_return r;
    }
  }

  // Reads a watch stream into `ch` (see RestClient::watch).
  awaitable<void> do_watch(Request req, std::shared_ptr<WatchChannel> ch) {
    Status st = co_await watch_body(std::move(req), ch);
    std::lock_guard lock(ch->mu);
    ch->done = true;
    ch->final = ch->cancelled ? Status::ok() : st;
    ch->cv.notify_all();
  }

  void push_line(WatchChannel& ch, std::string line) {
    if (line.empty() || line == "\r") return;
    std::lock_guard lock(ch.mu);
    ch.lines.push_back(std::move(line));
    ch.cv.notify_all();
  }

  awaitable<Status> watch_body(Request req, std::shared_ptr<WatchChannel> ch) {
    const std::string what = describe(req);
    auto hreq = make_request(req);
    for (int attempt = 0;; ++attempt) {
      bool reused = false;
      auto conn = co_await acquire(reused);
      if (!conn) co_return conn.status();
      if (ch->cancelled) co_return Status::ok();
      Conn& c = **conn;
      ch->conn = &c;
      struct Clear {
        WatchChannel* ch;
        ~Clear() { ch->conn = nullptr; }
      } clear{ch.get()};
      // The whole watch ends by this time point when the request has a timeout.
      const auto deadline = std::chrono::steady_clock::now() + req.timeout;
      if (req.timeout.count() > 0) {
        c.tcp().expires_at(deadline);
      } else {
        // Only the request and the response header are bounded; the stream may idle.
        c.tcp().expires_after(cfg_.request_timeout);
      }
      http::response_parser<http::buffer_body> parser;
      parser.body_limit(boost::none);
      auto ec = co_await with_stream(c, [&](auto& s) -> awaitable<beast::error_code> {
        auto [wec, wn] = co_await http::async_write(s, hreq, kTuple);
        if (wec) co_return wec;
        auto [rec, rn] = co_await http::async_read_header(s, c.buf, parser, kTuple);
        co_return rec;
      });
      if (ec) {
        if (ch->cancelled) co_return Status::ok();
        if (reused && attempt == 0 && !parser.got_some() && ec != beast::error::timeout) {
          continue;
        }
        co_return transport_error(what, ec);
      }
      if (req.timeout.count() == 0) c.tcp().expires_never();
      int status = static_cast<int>(parser.get().result_int());
      if (status < 200 || status >= 300) {
        http::response_parser<http::string_body> full(std::move(parser));
        full.body_limit(1 << 20);
        c.tcp().expires_after(cfg_.request_timeout);
        auto rec = co_await with_stream(c, [&](auto& s) -> awaitable<beast::error_code> {
          auto [e, n] = co_await http::async_read(s, c.buf, full, kTuple);
          co_return e;
        });
        Response r;
        r.status = status;
        if (!rec) r.body = full.get().body();
        co_return to_status(r);
      }
      std::string pending;
      char buf[16384];
      while (!parser.is_done()) {
        // read_some: hand over whatever arrived; async_read would wait for a full buffer.
        parser.get().body().data = buf;
        parser.get().body().size = sizeof(buf);
        if (req.idle_timeout.count() > 0) {
          auto idle_end = std::chrono::steady_clock::now() + req.idle_timeout;
          c.tcp().expires_at(req.timeout.count() > 0 ? std::min(deadline, idle_end) : idle_end);
        }
        auto rec = co_await with_stream(c, [&](auto& s) -> awaitable<beast::error_code> {
          auto [e, n] = co_await http::async_read_some(s, c.buf, parser, kTuple);
          co_return e;
        });
        if (rec == http::error::need_buffer) rec = {};
        size_t n = sizeof(buf) - parser.get().body().size;
        // Events are newline-delimited; chunk boundaries mean nothing.
        size_t start = 0;
        for (size_t i = 0; i < n; ++i) {
          if (buf[i] == '\n') {
            pending.append(buf + start, i - start);
            push_line(*ch, std::move(pending));
            pending.clear();
            start = i + 1;
          }
        }
        pending.append(buf + start, n - start);
        if (rec) {
          if (ch->cancelled) co_return Status::ok();
          if (rec == http::error::end_of_stream || rec == net::error::eof ||
              rec == ssl::error::stream_truncated) {
            break;  // the server closed the stream without a final chunk
          }
          co_return transport_error(what + " (watch stream)", rec);
        }
      }
      push_line(*ch, std::move(pending));
      if (parser.is_done() && parser.get().keep_alive()) release(std::move(*conn));
      co_return Status::ok();
    }
  }

  void cancel_watch(const std::shared_ptr<WatchChannel>& ch) {
    net::post(ioc_, [ch] {
      ch->cancelled = true;
      if (ch->conn) {
        // Closing (not just cancelling) also stops a TLS stream mid-record.
        beast::error_code ignored;
        ch->conn->tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
        ch->conn->tcp().cancel();
      }
    });
  }

  ClientConfig cfg_;
  Url url_;
  net::io_context ioc_{1};
  ssl::context ssl_{ssl::context::tls_client};
  net::executor_work_guard<net::io_context::executor_type> work_;
  std::thread thread_;
  std::vector<std::unique_ptr<Conn>> idle_;  // I/O thread only
};

Result<std::unique_ptr<RestClient>> RestClient::create(ClientConfig config) {
  auto url = parse_url(config.server);
  if (!url) return url.status();
  auto impl = std::make_unique<Impl>(std::move(config), std::move(*url));
  if (impl->url_.tls) SKIFF_RETURN_IF_ERROR(impl->init_tls());
  impl->start();
  return std::unique_ptr<RestClient>(new RestClient(std::move(impl)));
}

RestClient::RestClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RestClient::~RestClient() = default;

const ClientConfig& RestClient::config() const { return impl_->cfg_; }

Result<Response> RestClient::request(const Request& req) {
  // Result<T> has no default constructor, so the answer travels through an optional.
  std::promise<std::optional<Result<Response>>> promise;
  auto fut = promise.get_future();
  request_async(req, [&promise](Result<Response> r) { promise.set_value(std::move(r)); });
  return std::move(*fut.get());
}

Result<Response> RestClient::request(std::string_view method, std::string_view path,
                                     const Query& query, std::string_view body,
                                     std::string_view content_type, std::string_view accept) {
  Request r;
  r.method = std::string(method);
  r.path = std::string(path);
  r.query = query;
  r.body = std::string(body);
  r.content_type = std::string(content_type);
  r.accept = std::string(accept);
  return request(r);
}

void RestClient::request_async(Request req, std::function<void(Result<Response>)> done) {
  net::co_spawn(
      impl_->ioc_,
      [impl = impl_.get(), req = std::move(req),
       done = std::move(done)]() mutable -> awaitable<void> {
        Result<Response> r = Status::internal("request not run");
        try {
          r = co_await impl->do_request(std::move(req));
        } catch (const std::exception& e) {
          r = Status::internal(e.what());
        }
        done(std::move(r));
      },
      net::detached);
}

Status RestClient::watch(const std::string& path, const Query& query,
                         const std::function<bool(const json&)>& on_event, std::stop_token stop,
                         const std::string& accept, std::chrono::milliseconds idle_timeout) {
  Request req;
  req.path = path;
  req.query = query;
  req.accept = accept;
  req.idle_timeout = idle_timeout;
  for (const auto& [k, v] : query) {
    if (k == "timeoutSeconds") {
      try {
        req.timeout = std::chrono::seconds(std::stoll(v)) + impl_->cfg_.request_timeout;
      } catch (const std::exception&) {
        // leave unbounded: the server rejects the bad value anyway
      }
    }
  }
  auto ch = std::make_shared<WatchChannel>();
  net::co_spawn(impl_->ioc_, impl_->do_watch(std::move(req), ch), net::detached);
  std::stop_callback on_stop(stop, [&] {
    impl_->cancel_watch(ch);
    std::lock_guard lock(ch->mu);
    ch->cv.notify_all();
  });
  std::unique_lock lock(ch->mu);
  while (true) {
    ch->cv.wait(lock, [&] { return !ch->lines.empty() || ch->done || stop.stop_requested(); });
    if (stop.stop_requested()) break;
    if (ch->lines.empty() && ch->done) return ch->final;
    std::string line = std::move(ch->lines.front());
    ch->lines.pop_front();
    lock.unlock();
    json ev = json::parse(line, nullptr, false);
    if (ev.is_discarded() || !ev.is_object()) {
      impl_->cancel_watch(ch);
      return Status::invalid("watch " + path +
                             ": the server sent a line that is not a JSON "
                             "object: " +
                             line.substr(0, 200));
    }
    bool more = on_event(ev);
    lock.lock();
    if (!more) break;
  }
  lock.unlock();
  impl_->cancel_watch(ch);
  // Wait for the coroutine to let go of the connection, so the client may be destroyed next.
  std::unique_lock wait(ch->mu);
  ch->cv.wait_for(wait, std::chrono::seconds(5), [&] { return ch->done; });
  return Status::ok();
}

}  // namespace skiff::client
