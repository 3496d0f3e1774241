// HttpServer: the HTTP/1.1 transport of the API server and the kubelet (HTTPS, and optionally
// plain HTTP on loopback).
//
// It owns the sockets, TLS, per-connection deadlines and size limits, authentication, and the
// hand-off to the Handler: every request is parsed and authenticated on an I/O thread, handled on
// a worker thread (handlers may block; or on the I/O thread, see run_inline), and answered on
// the connection's strand. Streaming
// responses (Response::streamer) are sent chunked through a Stream with a bounded queue. No Asio
// or Beast type appears here; see http_server.cc for the machinery.
//
// Thread-safety: all public methods may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string_view>
#include <memory>
#include <string>
#include <vector>

#include "common/http/http.h"
#include "common/status.h"

namespace skiff::web {

class TokenAuthenticator;

struct ServerOptions {
  // HTTPS listen address "HOST:PORT" ("0.0.0.0:6443", "127.0.0.1:0", "[::1]:6443"); "" = none.
  std::string listen = "0.0.0.0:6443";
  // Plain-HTTP listen address; must be a loopback address. "" = off.
  std::string insecure_listen;
  std::string cert_file;  // PEM serving certificate (chain); required when `listen` is set
  std::string key_file;   // PEM private key

  const TokenAuthenticator* auth = nullptr;  // not owned; null = no token is valid
  // Let requests without credentials through as system:anonymous. Without it only the public
  // paths (is_public_path) are open to them.
  bool anonymous = false;
  // The paths open without credentials; unset = is_public_path (auth.h).
  std::function<bool(std::string_view path)> public_path;

  int io_threads = 2;
  int worker_threads = 64;  // handlers run here and may block on the store
  // Requests for which this returns true are handled on the I/O thread that read them when no
  // other handler is running anywhere in the server (a lone client): that saves the two thread
  // hand-offs (to a worker and back), a wake-up of a sleeping thread each. Only for handlers
  // that finish without waiting on other requests or on the network. Unset = never.
  std::function<bool(const Request&)> run_inline;

  std::chrono::milliseconds handshake_timeout{10'000};  // TLS handshake
  std::chrono::milliseconds header_timeout{30'000};     // first byte to end of request headers
  std::chrono::milliseconds body_timeout{60'000};       // end of headers to end of body
  std::chrono::milliseconds idle_timeout{120'000};      // keep-alive wait for the next request
  std::chrono::milliseconds write_timeout{60'000};      // one response write (or stream batch)
  std::chrono::milliseconds linger_timeout{1'000};      // draining input before an error close
  std::chrono::milliseconds shutdown_timeout{10'000};   // in-flight requests drain at shutdown
  size_t header_limit = 64 << 10;  // request line + headers; over it: 431
  size_t body_limit = 3 << 20;     // over it: 413
  size_t stream_buffer_bytes = 4 << 20;  // queued-but-unsent bytes before a stream is cut off
  int max_connections = 20000;           // further accepted connections are closed at once
  int socket_send_buffer = 0;            // SO_SNDBUF for accepted sockets; 0 = system default
};

// True on an HttpServer's I/O threads (where a handler runs when run_inline allowed it).
bool on_io_thread();

// On an I/O thread: queues `fn` to run on this thread once the handler running here has returned
// and its answer has gone to the socket (work that need not delay the answer, such as waking
// another thread), and returns true. If the server stops first, `fn` is destroyed unrun.
// Elsewhere: returns false, and `fn` is destroyed unrun.
bool run_after_answer(std::function<void()> fn);

class HttpServer {
 public:
  // Binds the listeners and starts serving. `handler` is not owned and must outlive the server.
  // Errors: a bad or non-loopback insecure address, unreadable certificate/key, bind failures.
  static Result<std::unique_ptr<HttpServer>> start(const ServerOptions& opts, Handler* handler);
  virtual ~HttpServer() = default;

  // The bound ports (useful with port 0); 0 when that listener is off.
  virtual int port() const = 0;
  virtual int insecure_port() const = 0;
  // Connections currently open (accepted and not yet closed).
  virtual size_t open_connections() const = 0;

  // Closes the listeners; idempotent, does not wait.
  virtual void stop_accepting() = 0;
  // Graceful shutdown: stops accepting, closes idle connections, closes open streams (their
  // on_close callbacks fire), lets in-flight requests finish and be answered, then stops the
  // I/O and worker threads. Whatever is still open after shutdown_timeout is cut. Blocks until
  // done; idempotent. Must not be called from a handler or a stream callback.
  virtual void shutdown() = 0;
};

// Splits "HOST:PORT" / "[V6]:PORT" into host and port. Invalid on a missing or bad port.
Result<std::pair<std::string, int>> parse_host_port(const std::string& s);

// Percent-decodes `s`; in a query, '+' means a space. Invalid on a malformed escape.
Result<std::string> percent_decode(std::string_view s, bool plus_is_space);

// Fills req.path and req.query from a request target ("/api/v1/pods?watch=1&limit=5").
[[nodiscard]] Status parse_target(std::string_view target, Request& req);

// A Kubernetes Status JSON body: {"kind":"Status",...,"reason":reason,"code":code}.
std::string status_json(int code, const std::string& reason, const std::string& message);

}  // namespace skiff::web
