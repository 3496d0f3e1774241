// What the cluster daemons (skiff-controller-manager, skiff-scheduler, skiff-netagent) share
// around their own work: flag parsing and checks, stop signals, the loopback /healthz and
// /metrics server, the API clients built from --kubeconfig, and the leader-election run loop.
// Each main.cc keeps its flags (names, defaults, help) and wires these pieces; what a daemon
// does stays in its own library.
//
// Pure parts (parse_duration, parse_duration_flags, check_port, default_identity) are
// thread-safe and tested in daemon_test.cc; the rest is described per piece.
#pragma once

#include <atomic>
#include <chrono>
#include <csignal>
#include <functional>
#include <initializer_list>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>

#include "common/status.h"
#include "proto/client/rest_client.h"  // ClientConfig (light: no Asio)

namespace skiff::client {
class ApiClient;
struct LeaderElectionConfig;
}  // namespace skiff::client

namespace skiff::web {
class HttpServer;
}  // namespace skiff::web

namespace skiff::daemon {

// ---- flags -----------------------------------------------------------------------------------

// Go durations: one or more <number><unit> with units ms, s, m, h ("15s", "1500ms", "1m30s",
// "0.5s"). Invalid (message names the text) otherwise. Zero is accepted; callers that need a
// positive value check it (parse_positive_duration).
Result<std::chrono::milliseconds> parse_duration(const std::string& s);
// parse_duration, and Invalid unless at least 1ms.
Result<std::chrono::milliseconds> parse_positive_duration(const std::string& s);

// One duration flag: its name (for the message), its text and where the value goes.
struct DurationFlag {
  std::string_view flag;
  const std::string* text;
  std::chrono::milliseconds* out;
};
// Parses each flag in order; on the first failure Invalid "<flag>: <why>" and later outputs are
// left alone.
[[nodiscard]] Status parse_duration_flags(std::initializer_list<DurationFlag> flags);

// Invalid "--port N: not 0..65535" outside 0..65535 (0 means off).
[[nodiscard]] Status check_port(int port);

// The machine's host name ("" if it has none).
std::string hostname();
// "<hostname>_<pid>": the default identity in a Lease, as Kubernetes daemons use.
std::string default_identity();

// Prints "<program>: <what>" to stderr; returns 1, the exit code of a start-up failure.
int fail(std::string_view program, const std::string& what);

// ---- one per network namespace ---------------------------------------------------------------

// Binds and listens on the abstract unix socket "@<name>" for the rest of this process's life,
// so that two copies of a daemon never program one network namespace (abstract socket names
// are per network namespace). Nothing is ever accepted; the kernel frees the name when the
// process ends, kill -9 included, and children do not inherit it (close-on-exec). When another
// process holds it: Unavailable "another <holder> runs in this network namespace (pid N; it
// holds the abstract socket @<name>)", the pid read with SO_PEERCRED ("unknown" if that fails).
[[nodiscard]] Status lock_netns(const std::string& name, std::string_view holder);

// ---- stop signals ----------------------------------------------------------------------------

class StatusServer;

// SIGTERM and SIGINT ask the daemon to stop. The constructor blocks both in the calling thread
// (construct it in main before any thread starts: every thread inherits the mask, so only
// sigwait sees them) and ignores SIGPIPE (a peer closing a socket must not kill the daemon).
// Not copyable; one per process.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();  // detaches a watcher still waiting (the process is exiting)
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // Blocks until SIGTERM or SIGINT; returns the signal.
  int wait();
  // Starts a thread that waits for a signal, logs "signal N: stopping" and requests `stop`.
  // `stop` must outlive the thread: call finish() (or exit) before it goes.
  void request_stop_on_signal(std::stop_source& stop);
  // Ends the daemon after its run: when no stop was requested (leadership lost, start-up
  // failed) it shuts `http` down and exits the process with `rc` at once (the signal thread is
  // still in sigwait); otherwise it joins the signal thread, shuts `http` down and returns rc.
  int finish(int rc, const std::stop_source& stop, StatusServer* http);

 private:
  sigset_t set_;
  std::thread watcher_;
};

// ---- /healthz and /metrics -------------------------------------------------------------------

struct StatusEndpoints {
  // Prometheus text for /metrics. Called on an HTTP worker thread.
  std::function<std::string()> metrics;
  // /healthz: "" when healthy (200 "ok"); otherwise the reason, served with 503. Unset: always
  // healthy. Called on an HTTP worker thread.
  std::function<std::string()> unhealthy_reason;
};

// The plain-HTTP status server on `bind_address`:`port` (loopback only; common/http refuses
// others): GET/HEAD /healthz and /metrics, 405 for other methods, 404 for other paths. Logs
// "serving /healthz and /metrics on http://ADDR:PORT". Error: "serving /healthz and /metrics
// on ADDR:PORT: why". The endpoints' functions must stay callable until shutdown().
class StatusServer {
 public:
  static Result<std::unique_ptr<StatusServer>> start(const std::string& bind_address, int port,
                                                     StatusEndpoints endpoints);
  ~StatusServer();  // shutdown()
  int port() const;
  // Stops serving (drains in-flight requests). Idempotent.
  void shutdown();

 private:
  class Handler;
  StatusServer() = default;
  std::unique_ptr<Handler> handler_;
  std::unique_ptr<web::HttpServer> http_;
};

// ---- API clients -----------------------------------------------------------------------------

// The client configuration from --kubeconfig (`kubeconfig_flag`, "" = the usual search, see
// proto/client/kubeconfig.h) with `user_agent`. Errors: "no kubeconfig: pass --kubeconfig", or
// the kubeconfig's load error. The errors of these three functions are for the user: their
// message() is the whole text (the underlying Status's code and message).
Result<client::ClientConfig> load_client_config(const std::string& kubeconfig_flag,
                                                const std::string& user_agent);
// An ApiClient on its own connections for `cc`.
Result<std::shared_ptr<client::ApiClient>> make_api_client(const client::ClientConfig& cc);
// A client for Lease requests: `cc` with connect, handshake and request timeouts of
// max(renew_deadline / 2, 1s), so a hung API server cannot hold a renewal past the renew
// deadline, and its own connections so renewals never queue behind the daemon's traffic.
Result<std::shared_ptr<client::ApiClient>> make_lease_client(
    const client::ClientConfig& cc, std::chrono::milliseconds renew_deadline);

// ---- leader election -------------------------------------------------------------------------

struct LeaderLoop {
  // What `lead` does, for the log: "<identity> is the leader: <doing>".
  std::string doing;
  // What a failed `lead` means, for the log when exiting: "leader election lost (or <what>)".
  std::string start_failure;
};

// Runs `lead` while this process holds the Lease of `cfg` (its lock, identity and durations
// set; its callbacks are replaced): `lead(token)` runs on the elector's thread until the token
// is signalled and returns false when it could not start. `leading` follows the leadership.
// A failed start ends the leading like a lost Lease. Returns 0 when `stop` was requested (the
// Lease is released), 1 when leadership was lost or `lead` failed (logged: the daemon exits and
// a restart or another replica takes over, as kube-controller-manager does). Error: the elector
// could not be created (bad config).
Result<int> run_leader_elected(client::LeaderElectionConfig cfg,
                               const std::function<bool(std::stop_token)>& lead,
                               std::atomic<bool>& leading, std::stop_token stop,
                               const LeaderLoop& loop);

}  // namespace skiff::daemon
