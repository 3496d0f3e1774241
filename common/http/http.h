// The seam between an HTTP transport (http_server.cc: TLS, connections, limits, authentication)
// and the logic behind it (the API server's Api, the kubelet's KubeletServer).
//
// The transport parses a request, authenticates it, and calls Handler::handle on a worker
// thread (handlers may block on the store). For a streaming answer (watch, log follow) the
// handler returns a Response with `streamer` set: the transport sends the headers with chunked
// transfer encoding and then calls streamer(stream) on a worker thread; the handler may keep
// the Stream and write to it from any thread until it closes it. For a protocol switch (WebSocket,
// a proxied connection) the handler returns a Response with `hijack` set and gets the connection
// itself (hijack.h, the only place where Asio types meet this seam).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace skiff::web {

struct HijackedConn;  // hijack.h

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // percent-decoded path, no query ("/api/v1/namespaces/default/pods")
  std::string raw_target;  // as received, for logs
  std::multimap<std::string, std::string> query;  // percent-decoded
  std::map<std::string, std::string> headers;     // names lower-cased
  std::string body;
  std::string user;                 // authenticated user; "system:anonymous" when anonymous
  std::vector<std::string> groups;  // from the token file
  std::string remote;               // peer address, for logs

  // First value of a query parameter, or `def`.
  std::string q(const std::string& name, const std::string& def = "") const {
    auto it = query.find(name);
    return it == query.end() ? def : it->second;
  }
  bool has_q(const std::string& name) const { return query.count(name) != 0; }
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
};

// A chunked response body written over time. Thread-safe.
class Stream {
 public:
  virtual ~Stream() = default;
  // Queues `chunk` for sending (the same bytes may be shared by many streams). Never blocks.
  // Returns false, and closes the stream, when the client is gone or when more than the
  // transport's bound (bytes) is already queued: a slow reader is cut off, not waited for.
  virtual bool write(std::shared_ptr<const std::string> chunk) = 0;
  // Ends the response (terminating chunk) once queued data is sent. Idempotent.
  virtual void close() = 0;
  virtual bool closed() const = 0;
  // Called once, from any thread, when the stream ends for any reason (close, client gone,
  // cut off, server shutdown). If already ended, called at once.
  virtual void on_close(std::function<void()> cb) = 0;
  // Blocks until at most `bytes` are queued unsent, the stream ends or `timeout` passes; false
  // once the stream has ended. Lets a producer that can wait (a log file reader) go at the
  // client's pace instead of being cut off.
  virtual bool wait_below(size_t bytes, std::chrono::milliseconds timeout) { return !closed(); }
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When set, the response is streamed (chunked) and `body` is ignored.
  std::function<void(std::shared_ptr<Stream>)> streamer;
  // When set, the transport writes nothing: it hands the connection, with the parsed request and
  // any bytes read past it, to hijack() on the connection's I/O strand (it must not block; start
  // coroutines on the connection's executor instead). The connection is then the callee's: the
  // transport forgets it (no deadlines, not drained at shutdown; it ends with the I/O threads).
  // status/body are ignored.
  std::function<void(std::unique_ptr<HijackedConn>)> hijack;
};

class Handler {
 public:
  virtual ~Handler() = default;
  // Called on a worker thread for every authenticated request (and for unauthenticated ones
  // only on paths the transport lets through: /healthz, /readyz, /livez, /version).
  virtual Response handle(const Request& req) = 0;
};

}  // namespace skiff::web
