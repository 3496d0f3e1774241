#include "common/daemon/daemon.h"

#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "common/http/http_server.h"
#include "proto/client/api_client.h"
#include "proto/client/kubeconfig.h"
#include "proto/client/leader_election.h"
#include "proto/client/rest_client.h"

namespace skiff::daemon {

// ---- flags -----------------------------------------------------------------------------------

Result<std::chrono::milliseconds> parse_duration(const std::string& s) {
  auto bad = [&] {
    return Status::invalid("duration \"" + s +
                           "\": want a number with a unit (ms, s, m, h), e.g. 15s");
  };
  if (s.empty()) return bad();
  double total_ms = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i == start) return bad();
    const std::string num = s.substr(start, i - start);
    double v = 0;
    try {
      size_t used = 0;
      v = std::stod(num, &used);
      if (used != num.size()) return bad();
    } catch (const std::exception&) {
      return bad();
    }
    size_t ustart = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    const std::string unit = s.substr(ustart, i - ustart);
    if (unit == "ms")
      total_ms += v;
    else if (unit == "s")
      total_ms += v * 1e3;
    else if (unit == "m")
      total_ms += v * 60e3;
    else if (unit == "h")
      total_ms += v * 3600e3;
    else if (unit.empty())
      return bad();
    else
      return Status::invalid("duration \"" + s + "\": unit \"" + unit + "\" is not ms, s, m or h");
  }
  return std::chrono::milliseconds(static_cast<int64_t>(total_ms));
}

Result<std::chrono::milliseconds> parse_positive_duration(const std::string& s) {
  auto d = parse_duration(s);
  if (d.is_ok() && d->count() < 1)
    return Status::invalid("duration \"" + s + "\": must be at least 1ms");
  return d;
}

Status parse_duration_flags(std::initializer_list<DurationFlag> flags) {
  for (const auto& f : flags) {
    auto d = parse_duration(*f.text);
    if (!d.is_ok()) return Status::invalid(std::string(f.flag) + ": " + d.status().message());
    *f.out = *d;
  }
  return Status::ok();
}

Status check_port(int port) {
  if (port < 0 || port > 65535)
    return Status::invalid("--port " + std::to_string(port) + ": not 0..65535");
  return Status::ok();
}

std::string hostname() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) return "";
  return host;
}

std::string default_identity() { return hostname() + "_" + std::to_string(getpid()); }

Status lock_netns(const std::string& name, std::string_view holder) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (name.empty() || name.size() + 1 > sizeof addr.sun_path)
    return Status::invalid("abstract socket name \"" + name + "\": empty or too long");
  std::memcpy(addr.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::io("socket(AF_UNIX)", errno);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0) {
    // Listening only lets a refused second copy ask who holds it (SO_PEERCRED below); the
    // backlog bounds what such questions leave queued. Ours until the process ends.
    if (::listen(fd, 16) == 0) return Status::ok();
    int err = errno;
    ::close(fd);
    return Status::io("listen on @" + name, err);
  }
  int err = errno;
  ::close(fd);
  if (err != EADDRINUSE) return Status::io("bind @" + name, err);
  std::string pid = "unknown";
  int c = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (c >= 0) {
    ucred cred{};
    socklen_t n = sizeof cred;
    if (::connect(c, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
        ::getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &n) == 0 && cred.pid > 0)
      pid = std::to_string(cred.pid);
    ::close(c);
  }
  return Status::unavailable("another " + std::string(holder) +
                             " runs in this network namespace (pid " + pid +
                             "; it holds the abstract socket @" + name + ")");
}

int fail(std::string_view program, const std::string& what) {
  std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(program.size()), program.data(),
               what.c_str());
  return 1;
}

// ---- stop signals ----------------------------------------------------------------------------

StopSignals::StopSignals() {
  sigemptyset(&set_);
  sigaddset(&set_, SIGTERM);
  sigaddset(&set_, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

StopSignals::~StopSignals() {
  if (watcher_.joinable()) watcher_.detach();
}

int StopSignals::wait() {
  int sig = 0;
  sigwait(&set_, &sig);
  return sig;
}

void StopSignals::request_stop_on_signal(std::stop_source& stop) {
  watcher_ = std::thread([this, &stop] {
    int sig = wait();
    spdlog::info("signal {}: stopping", sig);
    stop.request_stop();
  });
}

int StopSignals::finish(int rc, const std::stop_source& stop, StatusServer* http) {
  if (!stop.stop_requested()) {
    // Leadership lost or start-up failed: exit without waiting for a signal.
    if (http) http->shutdown();
    spdlog::shutdown();
    std::_Exit(rc);
  }
  if (watcher_.joinable()) watcher_.join();
  if (http) http->shutdown();
  return rc;
}

// ---- /healthz and /metrics -------------------------------------------------------------------

class StatusServer::Handler : public web::Handler {
 public:
  explicit Handler(StatusEndpoints e) : e_(std::move(e)) {}
  web::Response handle(const web::Request& req) override {
    web::Response r;
    r.content_type = "text/plain; charset=utf-8";
    if (req.method != "GET" && req.method != "HEAD") {
      r.status = 405;
      r.body = "method not allowed\n";
    } else if (req.path == "/healthz") {
      std::string why = e_.unhealthy_reason ? e_.unhealthy_reason() : "";
      r.status = why.empty() ? 200 : 503;
      r.body = why.empty() ? "ok" : why;
    } else if (req.path == "/metrics") {
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      r.body = e_.metrics ? e_.metrics() : "";
    } else {
      r.status = 404;
      r.body = "not found: /healthz and /metrics only\n";
    }
    return r;
  }

 private:
  StatusEndpoints e_;
};

Result<std::unique_ptr<StatusServer>> StatusServer::start(const std::string& bind_address, int port,
                                                          StatusEndpoints endpoints) {
  std::unique_ptr<StatusServer> s(new StatusServer());
  s->handler_ = std::make_unique<Handler>(std::move(endpoints));
  web::ServerOptions so;
  so.listen = "";
  so.insecure_listen = bind_address + ":" + std::to_string(port);
  so.anonymous = true;
  so.public_path = [](std::string_view) { return true; };
  so.io_threads = 1;
  so.worker_threads = 2;
  auto http = web::HttpServer::start(so, s->handler_.get());
  if (!http.is_ok())
    return Status::invalid("serving /healthz and /metrics on " + so.insecure_listen + ": " +
                           http.status().message());
  s->http_ = std::move(*http);
  spdlog::info("serving /healthz and /metrics on http://{}:{}", bind_address,
               s->http_->insecure_port());
  return s;
}

StatusServer::~StatusServer() { shutdown(); }

int StatusServer::port() const { return http_ ? http_->insecure_port() : 0; }

void StatusServer::shutdown() {
  if (!http_) return;
  http_->shutdown();
  http_.reset();
}

// ---- API clients -----------------------------------------------------------------------------

Result<client::ClientConfig> load_client_config(const std::string& kubeconfig_flag,
                                                const std::string& user_agent) {
  std::string path = client::find_kubeconfig(kubeconfig_flag);
  if (path.empty()) return Status::invalid("no kubeconfig: pass --kubeconfig");
  auto kc = client::load_kubeconfig(path);
  if (!kc.is_ok()) return Status::invalid(kc.status().to_string());
  auto cc = client::ClientConfig::from_kubeconfig(*kc);
  cc.user_agent = user_agent;
  return cc;
}

Result<std::shared_ptr<client::ApiClient>> make_api_client(const client::ClientConfig& cc) {
  auto rest = client::RestClient::create(cc);
  if (!rest.is_ok()) return Status::invalid(rest.status().to_string());
  return std::make_shared<client::ApiClient>(std::shared_ptr<client::RestClient>(std::move(*rest)));
}

Result<std::shared_ptr<client::ApiClient>> make_lease_client(
    const client::ClientConfig& cc, std::chrono::milliseconds renew_deadline) {
  auto lc = cc;
  auto per_request =
      std::max<std::chrono::milliseconds>(renew_deadline / 2, std::chrono::milliseconds(1000));
  lc.request_timeout = lc.connect_timeout = lc.handshake_timeout = per_request;
  return make_api_client(lc);
}

// ---- leader election -------------------------------------------------------------------------

Result<int> run_leader_elected(client::LeaderElectionConfig cfg,
                               const std::function<bool(std::stop_token)>& lead,
                               std::atomic<bool>& leading, std::stop_token stop,
                               const LeaderLoop& loop) {
  std::atomic<bool> start_failed{false};
  const std::string id = cfg.identity;
  cfg.callbacks.on_started_leading = [&](std::stop_token st) {
    leading = true;
    spdlog::info("{} is the leader: {}", id, loop.doing);
    if (!lead(st)) start_failed = true;
  };
  cfg.callbacks.on_stopped_leading = [&] {
    leading = false;
    spdlog::info("{} stopped leading", id);
  };
  cfg.callbacks.on_new_leader = [id](const std::string& who) {
    if (who != id) spdlog::info("new leader elected: {}", who);
  };
  auto elector = client::LeaderElector::create(std::move(cfg));
  if (!elector.is_ok()) return elector.status();
  // A failed start must end the leading too: watch for it beside the elector.
  std::stop_source inner;
  std::stop_callback forward(stop, [&] { inner.request_stop(); });
  std::jthread watchdog([&](std::stop_token st) {
    while (!st.stop_requested() && !start_failed)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (start_failed) inner.request_stop();
  });
  (*elector)->run(inner.get_token());
  watchdog.request_stop();
  watchdog.join();
  if (stop.stop_requested() && !start_failed) return 0;
  spdlog::error("leader election lost (or {}): exiting", loop.start_failure);
  return 1;
}

}  // namespace skiff::daemon
