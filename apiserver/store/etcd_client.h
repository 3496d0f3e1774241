// Private to apiserver/store: a small blocking HTTP/1.1 client for etcd's v3 JSON gateway
// (grpc-gateway): keep-alive connections for unary calls (`/v3/kv/range`, `/v3/kv/txn`, ...) and
// one streaming call per WatchStream (`/v3/watch`, newline-delimited JSON messages in a chunked
// body). HTTP or HTTPS (OpenSSL, kept out of this header). Every call has a deadline; nothing here
// blocks without one, except a WatchStream's read, which close() (from any thread) interrupts.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace skiff::store::etcd {

struct Endpoint {
  std::string url;   // as given, for messages
  std::string host;  // without brackets
  std::string port;
  bool tls = false;  // https://
};

// Parses "http(s)://HOST:PORT" (HOST a name, an IPv4 address or a bracketed IPv6 address; no
// path).
Result<Endpoint> parse_endpoint(std::string_view url);

// TLS to etcd (kube-apiserver's --etcd-cafile/--etcd-certfile/--etcd-keyfile): the server is
// verified against `ca_file` (the system's CAs when empty) and its name or IP; a client
// certificate is presented when cert_file and key_file are given.
struct TlsFiles {
  std::string ca_file, cert_file, key_file;
};
using TlsContext = std::shared_ptr<::ssl_ctx_st>;  // OpenSSL's SSL_CTX
Result<TlsContext> make_tls_context(const TlsFiles& files);

class Connection;

// One request/response on a pooled connection to the first endpoint that answers.
class Client {
 public:
  // `tls` is needed when an endpoint is https:// (null otherwise).
  Client(std::vector<Endpoint> endpoints, std::chrono::milliseconds timeout, TlsContext tls);
  ~Client();

  // POSTs `body` (JSON) to `path` and returns the HTTP status; `out` gets the body. Retries on
  // a new connection when a reused one turns out closed before answering. When a member says
  // nothing (refused, reset, silent), later requests go to the next endpoint, and so does this
  // one if it is `idempotent` (a read) or was not sent: with several endpoints a read gets a
  // share of the timeout per member. A write whose answer did not come is not repeated (etcd
  // may have applied it): Unavailable or Timeout.
  Result<int> post(std::string_view path, std::string_view body, std::string* out, bool idempotent);

  // A streaming POST on a new connection (not pooled): the request is sent and the answer's
  // head read (an HTTP status other than 200 is an error with the body's text). A member that
  // fails to answer is passed over for the next one.
  Result<std::unique_ptr<class WatchStream>> stream(std::string_view path, std::string_view body);

  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  Result<std::unique_ptr<Connection>> connect_any(std::chrono::steady_clock::time_point deadline);
  std::unique_ptr<Connection> take();
  void give_back(std::unique_ptr<Connection> c);

  const std::vector<Endpoint> endpoints_;
  const std::chrono::milliseconds timeout_;
  const TlsContext tls_;
  std::atomic<size_t> current_{0};  // index of the endpoint new connections go to
  std::mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

// A streaming POST (etcd's watch): sends the request, then yields the body's lines.
class WatchStream {
 public:
  explicit WatchStream(std::unique_ptr<Connection> conn);
  ~WatchStream();

  Status start(std::string_view path, std::string_view body, std::chrono::milliseconds timeout);

  // The next newline-terminated message (without the newline). Waits up to `timeout`
  // (Timeout), or indefinitely when timeout is zero; Unavailable when the stream ended or
  // close() was called.
  Result<std::string> next(std::chrono::milliseconds timeout);

  // Any thread: makes a blocked or later next() return Unavailable.
  void close();

 private:
  std::unique_ptr<Connection> conn_;
  std::string pending_;  // decoded body bytes not yet returned
};

}  // namespace skiff::store::etcd
