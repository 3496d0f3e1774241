// KubeletServer: the shared HTTPS transport (common/http) with a Handler for /healthz, /metrics
// and /containerLogs (a streamer reading the CRI log file on a worker thread), and a hijacked
// connection for /exec (a WebSocket session bridging the exec'd process's pipes, one coroutine
// per direction on the connection's strand).
#include "kubelet/server/kubelet_server.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <thread>

#include "common/http/auth.h"
#include "common/http/certs.h"
#include "common/http/hijack.h"
#include "common/http/http_server.h"
#include "common/http/remotecommand.h"
#include "kubelet/runtime/runtime.h"
#include "kubelet/server/cri_log.h"

namespace skiff::kubelet {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace rc = web::remotecommand;
using asio::awaitable;
using web::Request;
using web::Response;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
using namespace std::chrono_literals;

namespace {

Response error(int code, const std::string& reason, const std::string& message) {
  Response r;
  r.status = code;
  r.body = web::status_json(code, reason, message);
  return r;
}

Response from_status(const Status& s) {
  switch (s.code()) {
    case Code::kNotFound:
      return error(404, "NotFound", s.message());
    case Code::kInvalid:
      return error(400, "BadRequest", s.message());
    default:
      return error(500, "InternalError", s.message());
  }
}

bool query_bool(const Request& req, const std::string& name) {
  std::string v = req.q(name);
  return req.has_q(name) && (v == "1" || v == "true" || v == "True" || v.empty());
}

// An optional non-negative integer query parameter into *out; false when malformed.
bool query_int(const Request& req, const std::string& name, int64_t* out) {
  if (!req.has_q(name)) return true;
  const std::string v = req.q(name);
  if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  *out = std::stoll(v);
  return true;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------------------------------------
// Logs.

constexpr size_t kLogChunk = 64 << 10;
constexpr size_t kLogQueueBytes = 1 << 20;  // wait for the client beyond this much unsent
constexpr auto kFollowPoll = 100ms;

// Reads the open file to its end into the formatter; false on a read error.
bool drain(int fd, logs::LogFormatter& f) {
  std::string buf(kLogChunk, '\0');
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n == 0;
    f.feed(std::string_view(buf.data(), static_cast<size_t>(n)));
    if (f.limit_reached()) return true;
  }
}

bool flush(logs::LogFormatter& f, web::Stream& s) {
  std::string out = f.take();
  if (out.empty()) return !s.closed();
  if (!s.wait_below(kLogQueueBytes, 60s)) return false;
  return s.write(std::make_shared<const std::string>(std::move(out)));
}

ino_t inode_of(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

struct LogJob {
  std::string path;
  std::string container_id;
  logs::LogOptions opts;
  bool follow = false;
};

// Runs on a worker thread: serves the file, then (follow) new records, across rotation
// (the file renamed to path.1 and a new one created), until the container stops and the file
// is read to its end, or the client goes away.
void serve_log(const LogJob& job, runtime::ContainerRuntime& rt, web::Stream& s) {
  logs::LogFormatter f(job.opts);
  int fd = ::open(job.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) drain(fd, f);
  f.end_tail();
  if (!flush(f, s) || !job.follow || f.limit_reached()) {
    if (fd >= 0) ::close(fd);
    s.close();
    return;
  }
  bool last_round = false;
  while (!s.closed()) {
    if (fd >= 0) drain(fd, f);
    if (!flush(f, s) || f.limit_reached()) break;
    // Rotated (or created late): the old file is read to its end, continue with the new one.
    ino_t now = inode_of(job.path);
    struct stat st;
    if (now != 0 && (fd < 0 || (::fstat(fd, &st) == 0 && st.st_ino != now))) {
      if (fd >= 0) ::close(fd);
      fd = ::open(job.path.c_str(), O_RDONLY | O_CLOEXEC);
      continue;
    }
    if (last_round) break;
    auto state = rt.inspect(job.container_id);
    if (!state || state->status != runtime::ContainerStatus::kRunning) {
      last_round = true;  // read what the container wrote before it stopped, then end
      continue;
    }
    std::this_thread::sleep_for(kFollowPoll);
  }
  if (fd >= 0) ::close(fd);
  s.close();
}

// ---------------------------------------------------------------------------------------------
// Exec.

struct ExecRequest {
  std::vector<std::string> command;
  bool stdin = false, stdout = false, stderr = false, tty = false;
  std::string protocol;
  Result<runtime::ExecProcess> proc = Status::internal("not started");
};

// Runs `fn` on its own thread (it blocks) and resumes the coroutine on its executor with the
// result.
template <class T, class F>
awaitable<T> off_strand(F fn) {
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(T)>(
      [](auto handler, F fn) {
        auto ex = asio::get_associated_executor(handler);
        std::thread([ex, fn = std::move(fn), handler = std::move(handler)]() mutable {
          T v = fn();
          asio::post(ex, [handler = std::move(handler), v = std::move(v)]() mutable {
            std::move(handler)(std::move(v));
          });
        }).detach();
      },
      asio::use_awaitable, std::move(fn));
}

// Wakes every coroutine waiting on it (all on one strand). Each waiter has its own timer:
// re-arming one shared timer would cancel the other waiters' waits.
class Signal {
 public:
  awaitable<void> wait(asio::any_io_executor ex) {
    asio::steady_timer t(ex, std::chrono::steady_clock::time_point::max());
    waiters_.push_back(&t);
    co_await t.async_wait(kTuple);
    std::erase(waiters_, &t);
  }
  void notify() {
    for (auto* t : waiters_) t->cancel();
  }

 private:
  std::vector<asio::steady_timer*> waiters_;
};

template <class S>
class ExecSession : public std::enable_shared_from_this<ExecSession<S>> {
 public:
  ExecSession(S stream, runtime::ContainerRuntime& rt, ExecRequest req)
      : ws_(std::move(stream)), rt_(rt), req_(std::move(req)) {}

  awaitable<void> run(beast::http::request<beast::http::string_body> upgrade) {
    auto self = this->shared_from_this();
    std::string proto = req_.protocol;
    ws_.set_option(websocket::stream_base::decorator([proto](websocket::response_type& r) {
      r.set(beast::http::field::sec_websocket_protocol, proto);
    }));
    // Interactive sessions idle for long: no idle timeout, a bounded handshake.
    websocket::stream_base::timeout t{30s, websocket::stream_base::none(), false};
    ws_.set_option(t);
    ws_.binary(true);
    auto [ec] = co_await ws_.async_accept(upgrade, kTuple);
    if (ec) {
      spdlog::debug("exec: WebSocket handshake: {}", ec.message());
      co_await finish_process(/*client_gone=*/true);
      co_return;
    }
    if (!req_.proc) {
      co_await send(rc::kError,
                    rc::failure_status(500, "InternalError", req_.proc.status().message()));
      co_await close();
      co_return;
    }
    const runtime::ExecProcess& p = *req_.proc;
    auto ex = ws_.get_executor();
    if (p.stdin_fd >= 0) in_.emplace(ex, p.stdin_fd);
    if (p.stdout_fd >= 0) out_.emplace(ex, p.stdout_fd);
    if (p.stderr_fd >= 0) err_.emplace(ex, p.stderr_fd);
    int pumps = 0;
    if (out_)
      ++pumps, asio::co_spawn(ex, pump(self, *out_, rc::kStdout, req_.stdout), asio::detached);
    if (err_)
      ++pumps, asio::co_spawn(ex, pump(self, *err_, rc::kStderr, req_.stderr), asio::detached);
    asio::co_spawn(ex, read_client(self), asio::detached);
    // The command's output ends (normally: it exited) or the client goes away.
    while (pumps_done_ < pumps && !client_gone_) {
      co_await wake_.wait(ws_.get_executor());
    }
    int code = co_await finish_process(client_gone_);
    if (client_gone_) co_return;
    if (code == 0) {
      co_await send(rc::kError, rc::success_status());
    } else if (code > 0) {
      co_await send(rc::kError, rc::exit_status(code, req_.command));
    } else {
      co_await send(rc::kError, rc::failure_status(500, "InternalError", wait_error_));
    }
    co_await close();
  }

 private:
  using Fd = asio::posix::stream_descriptor;

  // Copies one output pipe to its channel. A pty master reports EIO once the command is gone.
  awaitable<void> pump(std::shared_ptr<ExecSession> self, Fd& fd, uint8_t channel, bool wanted) {
    std::string buf(32 << 10, '\0');
    for (;;) {
      auto [ec, n] = co_await fd.async_read_some(asio::buffer(buf.data() + 0, buf.size()), kTuple);
      if (ec) break;
      if (wanted && !client_gone_) {
        if (!co_await send(channel, std::string_view(buf.data(), n))) break;
      }
    }
    ++pumps_done_;
    wake_.notify();
  }

  // Client messages: stdin data, resize, v5 close of stdin. Ends when the client goes away or
  // the session closes.
  awaitable<void> read_client(std::shared_ptr<ExecSession> self) {
    beast::flat_buffer buf;
    for (;;) {
      buf.clear();
      auto [ec, n] = co_await ws_.async_read(buf, kTuple);
      if (ec) break;
      std::string_view msg(static_cast<const char*>(buf.data().data()), buf.size());
      if (msg.empty()) continue;
      uint8_t ch = static_cast<uint8_t>(msg[0]);
      msg.remove_prefix(1);
      if (ch == rc::kStdin && in_ && in_->is_open() && !msg.empty()) {
        auto [wec, wn] = co_await asio::async_write(*in_, asio::buffer(msg), kTuple);
        if (wec) close_fd(in_);
      } else if (ch == rc::kResize && req_.tty && out_ && out_->is_open()) {
        if (auto sz = rc::parse_resize(msg)) {
          struct winsize w = {};
          w.ws_col = sz->width;
          w.ws_row = sz->height;
          ::ioctl(out_->native_handle(), TIOCSWINSZ, &w);
        }
      } else if (ch == rc::kClose && !msg.empty() && static_cast<uint8_t>(msg[0]) == rc::kStdin) {
        close_fd(in_);
      }
    }
    if (!closing_) {
      client_gone_ = true;
      close_fd(in_);
      close_fd(out_);
      close_fd(err_);
      wake_.notify();
    }
  }

  static void close_fd(std::optional<Fd>& fd) {
    if (!fd || !fd->is_open()) return;
    beast::error_code ec;
    fd->close(ec);
  }

  // One message at a time on the WebSocket: writers queue behind `writing_` on the strand.
  awaitable<bool> send(uint8_t channel, std::string_view data) {
    while (writing_) {
      co_await wake_.wait(ws_.get_executor());
    }
    if (client_gone_ || closing_) co_return false;
    writing_ = true;
    std::string msg = rc::frame(channel, data);
    auto [ec, n] = co_await ws_.async_write(asio::buffer(msg), kTuple);
    writing_ = false;
    wake_.notify();
    if (ec) {
      client_gone_ = true;
      co_return false;
    }
    co_return true;
  }

  awaitable<void> close() {
    while (writing_) {
      co_await wake_.wait(ws_.get_executor());
    }
    closing_ = true;
    // A failed close only means the client is already gone.
    (void)co_await ws_.async_close(websocket::close_code::normal, kTuple);
  }

  // Reaps the command (killed after a grace period when the client went away) and closes
  // our ends of its pipes. Returns its exit code, or -1 when waiting failed.
  awaitable<int> finish_process(bool client_gone) {
    close_fd(in_);
    close_fd(out_);
    close_fd(err_);
    if (!req_.proc) co_return -1;
    runtime::ExecProcess p = *req_.proc;
    // Pipes never adopted by a descriptor (handshake failed) are closed here.
    if (!in_ && p.stdin_fd >= 0) ::close(p.stdin_fd);
    if (!out_ && p.stdout_fd >= 0) ::close(p.stdout_fd);
    if (!err_ && p.stderr_fd >= 0) ::close(p.stderr_fd);
    req_.proc = Status::internal("already reaped");
    auto timeout =
        client_gone ? std::chrono::milliseconds(2000) : std::chrono::milliseconds(3600'000);
    auto& rt = rt_;
    auto r =
        co_await off_strand<Result<int>>([&rt, p, timeout] { return rt.wait_exec(p, timeout); });
    if (!r) {
      wait_error_ = r.status().message();
      co_return -1;
    }
    co_return *r;
  }

  websocket::stream<S> ws_;
  Signal wake_;  // wakes coroutines waiting on writing_ / pumps_done_
  runtime::ContainerRuntime& rt_;
  ExecRequest req_;
  std::optional<Fd> in_, out_, err_;
  bool writing_ = false, closing_ = false, client_gone_ = false;
  int pumps_done_ = 0;
  std::string wait_error_;
};

template <class S>
void start_exec(S&& stream, beast::http::request<beast::http::string_body> upgrade,
                runtime::ContainerRuntime& rt, ExecRequest req) {
  using Stream = std::decay_t<S>;
  auto ex = stream.get_executor();
  auto session = std::make_shared<ExecSession<Stream>>(std::move(stream), rt, std::move(req));
  asio::co_spawn(
      ex,
      [session, upgrade = std::move(upgrade)]() mutable -> awaitable<void> {
        co_await session->run(std::move(upgrade));
      },
      asio::detached);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct KubeletServer::Impl : web::Handler {
  Impl(Options o, PodLocator& p, runtime::ContainerRuntime& r)
      : opts(std::move(o)), pods(p), rt(r) {}

  Response handle(const Request& req) override {
    if (req.path == "/healthz") {
      Response r;
      r.content_type = "text/plain";
      r.body = "ok";
      return r;
    }
    if (req.path == "/metrics") {
      Response r;
      r.content_type = "text/plain; version=0.0.4";
      r.body = opts.metrics ? opts.metrics() : "";
      return r;
    }
    auto segs = split(req.path);
    if (segs.size() == 4 && segs[0] == "containerLogs") {
      if (req.method != "GET") return error(405, "MethodNotAllowed", "use GET");
      return logs(req, segs[1], segs[2], segs[3]);
    }
    if (segs.size() == 4 && segs[0] == "exec") return exec(req, segs[1], segs[2], segs[3]);
    return error(404, "NotFound", "the server could not find the requested resource");
  }

  static std::vector<std::string> split(const std::string& path) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < path.size()) {
      size_t j = path.find('/', i);
      if (j == std::string::npos) j = path.size();
      if (j > i) out.push_back(path.substr(i, j - i));
      i = j + 1;
    }
    return out;
  }

  Response logs(const Request& req, const std::string& ns, const std::string& pod,
                const std::string& container) {
    LogJob job;
    int64_t since = -1;
    if (!query_int(req, "tailLines", &job.opts.tail_lines) ||
        !query_int(req, "limitBytes", &job.opts.limit_bytes) ||
        !query_int(req, "sinceSeconds", &since)) {
      return error(400, "BadRequest", "tailLines, limitBytes and sinceSeconds must be integers");
    }
    if (since >= 0) job.opts.since_ns = now_ns() - since * 1'000'000'000;
    job.opts.timestamps = query_bool(req, "timestamps");
    job.follow = query_bool(req, "follow");
    bool previous = query_bool(req, "previous");
    auto loc = pods.locate(ns, pod, container);
    if (!loc) return from_status(loc.status());
    if (previous) {
      if (loc->previous_log_path.empty()) {
        return error(
            400, "BadRequest",
            "previous terminated container \"" + container + "\" in pod \"" + pod + "\" not found");
      }
      job.path = loc->previous_log_path;
      job.follow = false;
    } else {
      if (loc->container_id.empty()) {
        return error(400, "BadRequest",
                     "container \"" + container + "\" in pod \"" + pod +
                         "\" is waiting to start: ContainerCreating");
      }
      job.path = loc->log_path;
    }
    job.container_id = loc->container_id;
    if (!loc->running) job.follow = false;
    Response r;
    r.content_type = "text/plain";
    auto& runtime = rt;
    r.streamer = [job, &runtime](std::shared_ptr<web::Stream> s) { serve_log(job, runtime, *s); };
    return r;
  }

  Response exec(const Request& req, const std::string& ns, const std::string& pod,
                const std::string& container) {
    if (req.method != "GET" && req.method != "POST") {
      return error(405, "MethodNotAllowed", "use GET or POST with a WebSocket upgrade");
    }
    ExecRequest e;
    for (auto [it, end] = req.query.equal_range("command"); it != end; ++it) {
      e.command.push_back(it->second);
    }
    if (e.command.empty()) return error(400, "BadRequest", "you must specify at least 1 command");
    e.stdin = query_bool(req, "stdin") || query_bool(req, "input");
    e.stdout = query_bool(req, "stdout") || query_bool(req, "output");
    e.stderr = query_bool(req, "stderr") || query_bool(req, "error");
    e.tty = query_bool(req, "tty");
    if (!e.stdin && !e.stdout && !e.stderr) {
      return error(400, "BadRequest", "you must specify at least 1 of stdin, stdout, stderr");
    }
    std::string upgrade = req.header("upgrade");
    for (auto& c : upgrade) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (upgrade != "websocket") {
      return error(400, "BadRequest",
                   "exec needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io); "
                   "SPDY is not supported");
    }
    e.protocol = rc::negotiate(req.header("sec-websocket-protocol"));
    if (e.protocol.empty()) {
      return error(400, "BadRequest",
                   "no supported WebSocket subprotocol: want v5.channel.k8s.io or "
                   "v4.channel.k8s.io");
    }
    auto loc = pods.locate(ns, pod, container);
    if (!loc) return from_status(loc.status());
    if (!loc->running) {
      return error(400, "BadRequest",
                   "container \"" + container + "\" in pod \"" + pod + "\" is not running");
    }
    runtime::ExecOptions xo;
    xo.args = e.command;
    xo.tty = e.tty;
    xo.stdin = e.stdin;
    e.proc = rt.exec(loc->container_id, xo);
    if (!e.proc) spdlog::warn("exec in {}: {}", loc->container_id, e.proc.status().message());
    Response r;
    auto& runtime = rt;
    auto shared = std::make_shared<ExecRequest>(std::move(e));
    r.hijack = [shared, &runtime](std::unique_ptr<web::HijackedConn> c) {
      if (c->tls) {
        start_exec(std::move(*c->tls), std::move(c->request), runtime, std::move(*shared));
      } else {
        start_exec(std::move(*c->plain), std::move(c->request), runtime, std::move(*shared));
      }
    };
    return r;
  }

  Options opts;
  PodLocator& pods;
  runtime::ContainerRuntime& rt;
  web::TokenAuthenticator auth;
  std::unique_ptr<web::HttpServer> server;
};

KubeletServer::KubeletServer(Options opts, PodLocator& pods, runtime::ContainerRuntime& runtime)
    : impl_(std::make_unique<Impl>(std::move(opts), pods, runtime)) {}

KubeletServer::~KubeletServer() { stop(); }

Status KubeletServer::start() {
  auto& o = impl_->opts;
  std::string cert = o.cert_file, key = o.key_file;
  if (cert.empty() || key.empty()) {
    if (o.cert_dir.empty()) return Status::invalid("kubelet server: no cert_file and no cert_dir");
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    std::vector<std::string> sans = {"localhost", "127.0.0.1", "::1"};
    if (host[0]) sans.emplace_back(host);
    auto pair =
        web::certs::ensure_self_signed(o.cert_dir, "kubelet", host[0] ? host : "kubelet", sans);
    if (!pair) return pair.status().with_context("kubelet serving certificate");
    cert = pair->cert_file;
    key = pair->key_file;
  }
  if (!o.client_token.empty()) {
    impl_->auth.add(o.client_token, web::Identity{"system:apiserver", "", {}});
  }
  web::ServerOptions so;
  so.listen = o.listen;
  so.cert_file = cert;
  so.key_file = key;
  so.auth = &impl_->auth;
  so.public_path = [](std::string_view p) { return p == "/healthz"; };
  so.worker_threads = 64;  // a following log reader holds one
  so.stream_buffer_bytes = 4 << 20;
  auto s = web::HttpServer::start(so, impl_.get());
  if (!s) return s.status().with_context("kubelet server");
  impl_->server = std::move(*s);
  return Status::ok();
}

int KubeletServer::port() const { return impl_->server ? impl_->server->port() : 0; }

void KubeletServer::stop() {
  if (impl_ && impl_->server) {
    impl_->server->shutdown();
    impl_->server.reset();
  }
}

}  // namespace skiff::kubelet
