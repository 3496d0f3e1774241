// RestClient: an HTTP/1.1 client for the Kubernetes-style API server, over TLS (verified with
// the kubeconfig's CA, SNI, optional client certificate) or plain HTTP, with bearer tokens and
// a small keep-alive connection pool.
//
// The client owns one I/O thread. The synchronous methods (request, watch) may be called from
// any number of other threads at once; they MUST NOT be called from the client's own I/O
// thread (that is, not from a request_async callback). Every operation has a deadline:
// connect, TLS handshake and the whole request/response exchange (watches: see watch()).
//
// Beast and Asio stay behind the pimpl: this header is cheap to include.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace skiff::client {

struct KubeConfig;

// Query parameters in order; values are percent-encoded by the client.
using Query = std::vector<std::pair<std::string, std::string>>;

struct ClientConfig {
  std::string server;           // "https://127.0.0.1:6443" (a path prefix is allowed)
  std::string tls_server_name;  // overrides the host for SNI and certificate checks
  std::string ca_pem;           // trusted CAs; empty = the system's
  bool insecure_skip_tls_verify = false;
  std::string token;  // bearer token, sent on every request when set
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string user_agent = "skiff-client/0.1";
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds handshake_timeout{10'000};
  std::chrono::milliseconds request_timeout{60'000};  // write request + read whole response
  size_t max_idle_connections = 4;

  static ClientConfig from_kubeconfig(const KubeConfig& kc);
};

struct Request {
  std::string method = "GET";
  std::string path;  // "/api/v1/namespaces/default/pods"
  Query query;
  std::string body;
  std::string content_type;  // sent only when not empty
  std::string accept = "application/json";
  std::chrono::milliseconds timeout{0};  // 0: ClientConfig::request_timeout
  // Watches: Timeout when nothing arrives for this long (0: a stream may idle for ever).
  std::chrono::milliseconds idle_timeout{0};
};

struct Response {
  int status = 0;
  std::string content_type;
  std::string body;
  bool ok() const { return status >= 200 && status < 300; }
};

// A server's error answer, decoded from its Status JSON (or synthesised from the HTTP status
// when the body is not a Status).
struct ApiError {
  struct Cause {
    std::string reason, message, field;
  };
  int code = 0;
  std::string reason;   // "NotFound", "AlreadyExists", "Invalid", ...
  std::string message;  // `pods "x" not found`
  std::string details_name, details_group, details_kind;
  std::vector<Cause> causes;
};

// Decodes a non-2xx response.
ApiError api_error(const Response& r);
// The Status for a non-2xx response: the code follows the HTTP status (404 NotFound, 409
// AlreadyExists or Conflict by reason, 410 Gone, 422/400 Invalid, ...), the message is the
// server's.
Status to_status(const Response& r);
// Percent-encodes a query value the way Go's url.QueryEscape does (kubectl's spelling).
std::string query_escape(std::string_view s);

class RestClient {
 public:
  // Validates the configuration (URL, CA and client certificate PEM) and starts the I/O
  // thread. No connection is made until the first request.
  [[nodiscard]] static Result<std::unique_ptr<RestClient>> create(ClientConfig config);
  ~RestClient();
  RestClient(const RestClient&) = delete;
  RestClient& operator=(const RestClient&) = delete;

  // Sends one request and reads the whole response. A non-2xx answer is a Response, not an
  // error: the Status is for transport failures (Unavailable: connect/TLS/connection errors;
  // Timeout: a deadline passed). A request on a reused keep-alive connection that the server
  // had already closed is retried once on a fresh connection.
  [[nodiscard]] Result<Response> request(const Request& req);
  [[nodiscard]] Result<Response> request(std::string_view method, std::string_view path,
                                         const Query& query = {}, std::string_view body = "",
                                         std::string_view content_type = "",
                                         std::string_view accept = "application/json");

  // Asynchronous form: `done` runs on the client's I/O thread and must not block or call the
  // synchronous methods.
  void request_async(Request req, std::function<void(Result<Response>)> done);

  // Streams a watch: GET `path` with `query` (add watch=true yourself) and calls `on_event`,
  // on the calling thread, with each newline-delimited JSON event ({"type":..,"object":..}).
  // Returns OK when the server ends the stream, `on_event` returns false, or `stop` is
  // requested; the non-2xx answer's Status when the server refuses; Unavailable/Timeout on
  // transport failure; Invalid when a line is not JSON. Deadline: `timeoutSeconds` in the
  // query plus the request timeout when present, else none. With `idle_timeout`, a stream on
  // which nothing arrives for that long ends in Timeout: a server whose machine lost power or
  // its network never closes the connection, and only silence tells (the caller asks for
  // bookmarks so that a live server is never silent that long).
  [[nodiscard]] Status watch(const std::string& path, const Query& query,
                             const std::function<bool(const nlohmann::json& event)>& on_event,
                             std::stop_token stop = {},
                             const std::string& accept = "application/json",
                             std::chrono::milliseconds idle_timeout = {});

  const ClientConfig& config() const;

 private:
  class Impl;
  explicit RestClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace skiff::client
