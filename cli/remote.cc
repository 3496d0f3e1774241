// skiffctl logs and exec: streaming requests the RestClient does not make (a chunked body
// printed as it arrives; a WebSocket in Kubernetes' v5/v4 channel protocol), on their own
// connection built from the same ClientConfig. One io_context on the calling thread; for
// exec -i a thread reads stdin and posts what it reads to it.
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <deque>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "common/http/remotecommand.h"

namespace skiff::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace rc = web::remotecommand;
using tcp = asio::ip::tcp;
using asio::awaitable;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

namespace {

struct Endpoint {
  bool tls = true;
  std::string host;
  std::string port;
  std::string prefix;  // path prefix of the server URL
};

Result<Endpoint> parse_server(const std::string& url) {
  Endpoint e;
  std::string rest;
  if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    e.tls = false;
    rest = url.substr(7);
  } else {
    return Status::invalid("server URL \"" + url + "\" must start with https:// or http://");
  }
  size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  if (slash != std::string::npos) e.prefix = rest.substr(slash);
  while (!e.prefix.empty() && e.prefix.back() == '/') e.prefix.pop_back();
  size_t colon = hostport.rfind(':');
  if (!hostport.empty() && hostport.front() == '[') {
    size_t close = hostport.find(']');
    e.host = hostport.substr(1, close - 1);
    e.port = close + 1 < hostport.size() ? hostport.substr(close + 2) : "";
  } else if (colon != std::string::npos) {
    e.host = hostport.substr(0, colon);
    e.port = hostport.substr(colon + 1);
  } else {
    e.host = hostport;
  }
  if (e.port.empty()) e.port = e.tls ? "443" : "80";
  return e;
}

// A connected (and, for https, handshaken) stream to the API server. Plain HTTP uses the same
// ssl::stream type with TLS never started, so one code path serves both.
struct Conn {
  asio::io_context ioc;
  asio::ssl::context ssl{asio::ssl::context::tls_client};
  std::unique_ptr<asio::ssl::stream<tcp::socket>> stream;
  Endpoint ep;
  std::string token;
};

Status setup(Context& ctx, Conn& c) {
  const client::ClientConfig& cfg = ctx.rest->config();
  auto ep = parse_server(cfg.server);
  if (!ep) return ep.status();
  c.ep = *ep;
  c.token = cfg.token;
  beast::error_code ec;
  if (cfg.insecure_skip_tls_verify) {
    c.ssl.set_verify_mode(asio::ssl::verify_none);
  } else {
    c.ssl.set_verify_mode(asio::ssl::verify_peer);
    if (cfg.ca_pem.empty()) {
      c.ssl.set_default_verify_paths(ec);
    } else {
      c.ssl.add_certificate_authority(asio::buffer(cfg.ca_pem), ec);
    }
    if (ec) return Status::invalid("load the server's CA: " + ec.message());
  }
  if (!cfg.client_cert_pem.empty()) {
    c.ssl.use_certificate_chain(asio::buffer(cfg.client_cert_pem), ec);
    if (!ec) c.ssl.use_private_key(asio::buffer(cfg.client_key_pem), asio::ssl::context::pem, ec);
    if (ec) return Status::invalid("load the client certificate: " + ec.message());
  }
  c.stream = std::make_unique<asio::ssl::stream<tcp::socket>>(c.ioc, c.ssl);
  std::string name = cfg.tls_server_name.empty() ? c.ep.host : cfg.tls_server_name;
  if (!cfg.insecure_skip_tls_verify) {
    c.stream->set_verify_callback(asio::ssl::host_name_verification(name));
  }
  SSL_set_tlsext_host_name(c.stream->native_handle(), name.c_str());
  tcp::resolver res(c.ioc);
  auto results = res.resolve(c.ep.host, c.ep.port, ec);
  if (ec) return Status::unavailable("resolve " + c.ep.host + ": " + ec.message());
  asio::connect(c.stream->next_layer(), results, ec);
  if (ec) return Status::unavailable("dial " + c.ep.host + ":" + c.ep.port + ": " + ec.message());
  if (c.ep.tls) {
    c.stream->handshake(asio::ssl::stream_base::client, ec);
    if (ec) return Status::unavailable("TLS handshake with " + c.ep.host + ": " + ec.message());
  }
  return Status::ok();
}

std::string query_string(const std::vector<std::pair<std::string, std::string>>& q) {
  std::string s;
  for (const auto& [k, v] : q) s += (s.empty() ? "?" : "&") + k + "=" + client::query_escape(v);
  return s;
}

template <class S>
void write_out(std::ostream& os, std::string_view data) {
  os.write(data.data(), static_cast<std::streamsize>(data.size()));
  os.flush();
}

// --- logs ---

template <class S>
awaitable<int> do_logs(Context& ctx, S& s, Conn& c, std::string target) {
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, c.ep.host);
  req.set(http::field::user_agent, std::string("skiffctl/") + kClientVersion);
  if (!c.token.empty()) req.set(http::field::authorization, "Bearer " + c.token);
  auto [wec, wn] = co_await http::async_write(s, req, kTuple);
  if (wec) {
    ctx.print_error(Status::unavailable("send the log request: " + wec.message()));
    co_return 1;
  }
  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> p;
  p.body_limit(boost::none);
  auto [hec, hn] = co_await http::async_read_header(s, buf, p, kTuple);
  if (hec) {
    ctx.print_error(Status::unavailable("read the log response: " + hec.message()));
    co_return 1;
  }
  int status = p.get().result_int();
  std::string error_body;
  char chunk[16 << 10];
  while (!p.is_done()) {
    p.get().body().data = chunk;
    p.get().body().size = sizeof(chunk);
    auto [ec, n] = co_await http::async_read_some(s, buf, p, kTuple);
    if (ec == http::error::need_buffer) ec = {};
    size_t got = sizeof(chunk) - p.get().body().size;
    if (status / 100 == 2) {
      write_out<S>(*ctx.out, std::string_view(chunk, got));
    } else {
      error_body.append(chunk, got);
    }
    if (ec) break;
  }
  if (status / 100 != 2) {
    client::Response r;
    r.status = status;
    r.body = error_body;
    ctx.print_error(r);
    co_return 1;
  }
  co_return 0;
}

// --- exec ---

// Puts the terminal in raw mode for the life of the object.
class RawTerminal {
 public:
  explicit RawTerminal(bool on) {
    if (!on || !isatty(0) || tcgetattr(0, &saved_) != 0) return;
    struct termios raw = saved_;
    cfmakeraw(&raw);
    active_ = tcsetattr(0, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) tcsetattr(0, TCSANOW, &saved_);
  }

 private:
  struct termios saved_ = {};
  bool active_ = false;
};

template <class WS>
class ExecClient {
 public:
  ExecClient(Context& ctx, WS& ws, bool v5) : ctx_(ctx), ws_(ws), v5_(v5) {}

  // Queues a message; the writer coroutine sends them one at a time.
  void send(std::string msg) {
    if (done_) return;
    queue_.push_back(std::move(msg));
    if (!writing_) {
      writing_ = true;
      asio::co_spawn(ws_.get_executor(), writer(), asio::detached);
    }
  }
  void stdin_eof() {
    if (v5_) send(rc::frame(rc::kClose, std::string(1, static_cast<char>(rc::kStdin))));
  }

  awaitable<int> read_all() {
    beast::flat_buffer buf;
    std::optional<rc::Outcome> outcome;
    for (;;) {
      buf.clear();
      auto [ec, n] = co_await ws_.async_read(buf, kTuple);
      if (ec) break;
      std::string_view m(static_cast<const char*>(buf.data().data()), buf.size());
      if (m.empty()) continue;
      uint8_t ch = static_cast<uint8_t>(m[0]);
      m.remove_prefix(1);
      if (ch == rc::kStdout) write_out<WS>(*ctx_.out, m);
      if (ch == rc::kStderr) write_out<WS>(*ctx_.err, m);
      if (ch == rc::kError) outcome = rc::parse_status(m);
    }
    done_ = true;
    if (!outcome) {
      *ctx_.err << "error: the connection ended without the command's exit status\n";
      co_return 1;
    }
    if (outcome->success) co_return 0;
    if (outcome->exit_code > 0 &&
        outcome->message.find("non-zero exit code") != std::string::npos) {
      *ctx_.err << "command terminated with exit code " << outcome->exit_code << "\n";
      co_return outcome->exit_code;
    }
    *ctx_.err << "error: " << outcome->message << "\n";
    co_return 1;
  }

 private:
  awaitable<void> writer() {
    while (!queue_.empty()) {
      std::string m = std::move(queue_.front());
      queue_.pop_front();
      auto [ec, n] = co_await ws_.async_write(asio::buffer(m), kTuple);
      if (ec) {
        queue_.clear();
        break;
      }
    }
    writing_ = false;
  }

  Context& ctx_;
  WS& ws_;
  bool v5_;
  std::deque<std::string> queue_;
  bool writing_ = false;
  bool done_ = false;  // the session is over: ws_ may be gone, later sends are dropped
};

template <class S>
awaitable<int> do_exec(Context& ctx, S& s, Conn& c, std::string target, const ExecOptions& o) {
  websocket::stream<S&> ws(s);
  std::string token = c.token;
  ws.set_option(websocket::stream_base::decorator([token](websocket::request_type& r) {
    r.set(http::field::sec_websocket_protocol, std::string(rc::kV5) + ", " + std::string(rc::kV4));
    r.set(http::field::user_agent, std::string("skiffctl/") + kClientVersion);
    if (!token.empty()) r.set(http::field::authorization, "Bearer " + token);
  }));
  websocket::response_type res;
  auto [hec] = co_await ws.async_handshake(res, c.ep.host, target, kTuple);
  if (hec) {
    if (res.result_int() != 0 && res.result_int() != 101) {
      client::Response r;
      r.status = res.result_int();
      r.body = res.body();
      ctx.print_error(r);
    } else {
      ctx.print_error(Status::unavailable("WebSocket handshake: " + hec.message()));
    }
    co_return 1;
  }
  ws.binary(true);
  bool v5 = std::string(res[http::field::sec_websocket_protocol]) == rc::kV5;
  auto client = std::make_shared<ExecClient<websocket::stream<S&>>>(ctx, ws, v5);
  auto& ec = *client;
  RawTerminal raw(o.tty && o.stdin);
  if (o.tty) {
    struct winsize w = {};
    if (ioctl(1, TIOCGWINSZ, &w) == 0 && w.ws_col > 0) {
      ec.send(rc::frame(rc::kResize, rc::resize_json({w.ws_col, w.ws_row})));
    }
  }
  if (o.stdin) {
    // Blocking reads on their own thread; each piece is handed to the I/O thread. The thread
    // may outlive the command (stuck in read) and dies with the process.
    auto ex = ws.get_executor();
    std::istream* in = ctx.in;
    std::thread([ex, in, client] {
      char buf[16 << 10];
      for (;;) {
        ssize_t n;
        if (in == &std::cin) {
          n = ::read(0, buf, sizeof(buf));
          if (n < 0 && errno == EINTR) continue;
        } else {
          in->read(buf, sizeof(buf));
          n = in->gcount();
        }
        if (n <= 0) {
          asio::post(ex, [client] { client->stdin_eof(); });
          return;
        }
        std::string data(buf, static_cast<size_t>(n));
        asio::post(ex,
                   [client, data = std::move(data)] { client->send(rc::frame(rc::kStdin, data)); });
      }
    }).detach();
  }
  int code = co_await ec.read_all();
  co_return code;
}

template <class Fn>
int run_on(Context& ctx, Conn& c, Fn fn) {
  int rc = 1;
  asio::co_spawn(c.ioc, fn(), [&rc](std::exception_ptr e, int r) {
    if (!e) rc = r;
  });
  c.ioc.run();
  return rc;
}

}  // namespace

int run_logs(Context& ctx, const LogsOptions& o) {
  Conn c;
  if (Status st = setup(ctx, c); !st) {
    ctx.print_error(st);
    return 1;
  }
  std::vector<std::pair<std::string, std::string>> q;
  if (!o.container.empty()) q.emplace_back("container", o.container);
  if (o.follow) q.emplace_back("follow", "true");
  if (o.previous) q.emplace_back("previous", "true");
  if (o.timestamps) q.emplace_back("timestamps", "true");
  if (o.tail >= 0) q.emplace_back("tailLines", std::to_string(o.tail));
  std::string target = c.ep.prefix + "/api/v1/namespaces/" + client::query_escape(ctx.namespace_) +
                       "/pods/" + client::query_escape(o.pod) + "/log" + query_string(q);
  if (c.ep.tls) {
    return run_on(ctx, c, [&]() { return do_logs(ctx, *c.stream, c, target); });
  }
  return run_on(ctx, c, [&]() { return do_logs(ctx, c.stream->next_layer(), c, target); });
}

int run_exec(Context& ctx, const ExecOptions& o) {
  if (o.command.empty()) {
    *ctx.err << "error: you must specify at least one command for the container\n";
    return 1;
  }
  Conn c;
  if (Status st = setup(ctx, c); !st) {
    ctx.print_error(st);
    return 1;
  }
  std::vector<std::pair<std::string, std::string>> q;
  if (!o.container.empty()) q.emplace_back("container", o.container);
  for (const auto& a : o.command) q.emplace_back("command", a);
  q.emplace_back("stdin", o.stdin ? "true" : "false");
  q.emplace_back("stdout", "true");
  q.emplace_back("stderr", o.tty ? "false" : "true");
  q.emplace_back("tty", o.tty ? "true" : "false");
  std::string target = c.ep.prefix + "/api/v1/namespaces/" + client::query_escape(ctx.namespace_) +
                       "/pods/" + client::query_escape(o.pod) + "/exec" + query_string(q);
  if (c.ep.tls) {
    return run_on(ctx, c, [&]() { return do_exec(ctx, *c.stream, c, target, o); });
  }
  return run_on(ctx, c, [&]() { return do_exec(ctx, c.stream->next_layer(), c, target, o); });
}

}  // namespace skiff::cli
