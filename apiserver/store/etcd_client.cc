// The blocking HTTP/1.1 client under the etcd store. Sockets are non-blocking and every wait is
// a poll() bounded by the call's deadline; a WatchStream's close() shuts the socket down, which
// wakes its poll.

#include "apiserver/store/etcd_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

namespace skiff::store::etcd {

using Clock = std::chrono::steady_clock;

Result<Endpoint> parse_endpoint(std::string_view url) {
  auto bad = [&](const std::string& why) {
    return Status::invalid("etcd endpoint \"" + std::string(url) + "\": " + why);
  };
  constexpr std::string_view kScheme = "http://";
  if (url.starts_with("https://"))
    return bad("TLS to etcd is not supported yet; use http:// on a trusted network");
  if (!url.starts_with(kScheme)) return bad("want http://HOST:PORT");
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) return bad("a path is not allowed");
  Endpoint ep;
  ep.url = std::string(url);
  size_t colon;
  if (rest.starts_with("[")) {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("unterminated [IPv6 address]");
    ep.host = std::string(rest.substr(1, close - 1));
    colon = close + 1;
    if (colon >= rest.size() || rest[colon] != ':') return bad("want [ADDRESS]:PORT");
  } else {
    colon = rest.rfind(':');
    if (colon == std::string_view::npos) return bad("missing :PORT");
    ep.host = std::string(rest.substr(0, colon));
  }
  ep.port = std::string(rest.substr(colon + 1));
  if (ep.host.empty()) return bad("missing host");
  if (ep.port.empty() || ep.port.size() > 5 ||
      ep.port.find_first_not_of("0123456789") != std::string::npos || std::stoi(ep.port) == 0 ||
      std::stoi(ep.port) > 65535)
    return bad("port must be 1-65535");
  return ep;
}

// One TCP connection and its read buffer.
class Connection {
 public:
  Connection(int fd, size_t endpoint) : fd_(fd), endpoint_(endpoint) {}
  ~Connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  static Result<std::unique_ptr<Connection>> open(const Endpoint& ep, size_t index,
                                                  Clock::time_point deadline) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (int rc = ::getaddrinfo(ep.host.c_str(), ep.port.c_str(), &hints, &res); rc != 0)
      return Status::unavailable("etcd " + ep.url + ": resolve: " + ::gai_strerror(rc));
    Status last = Status::unavailable("etcd " + ep.url + ": no address");
    for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        last = Status::io("etcd " + ep.url + ": socket");
        continue;
      }
      auto conn = std::make_unique<Connection>(fd, index);
      if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
        last = Status::unavailable("etcd " + ep.url + ": connect: " + std::strerror(errno));
        continue;
      }
      if (auto st = conn->wait(POLLOUT, deadline); !st) {
        last = Status::unavailable("etcd " + ep.url + ": connect: " + st.message());
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        last = Status::unavailable("etcd " + ep.url + ": connect: " + std::strerror(err));
        continue;
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::freeaddrinfo(res);
      return conn;
    }
    ::freeaddrinfo(res);
    return last;
  }

  size_t endpoint() const { return endpoint_; }
  bool reusable() const { return reusable_; }
  bool served() const { return served_; }
  // Bytes of the current answer received so far (0: the server said nothing yet).
  size_t received() const { return received_; }

  void shutdown() { ::shutdown(fd_, SHUT_RDWR); }

  Status send_request(std::string_view host, std::string_view path, std::string_view body,
                      Clock::time_point deadline) {
    received_ = 0;
    std::string req;
    req.reserve(body.size() + 160);
    req.append("POST ").append(path).append(" HTTP/1.1\r\nHost: ").append(host);
    req.append("\r\nContent-Type: application/json\r\nContent-Length: ");
    req.append(std::to_string(body.size())).append("\r\n\r\n").append(body);
    size_t off = 0;
    while (off < req.size()) {
      ssize_t n = ::send(fd_, req.data() + off, req.size() - off, MSG_NOSIGNAL);
      if (n > 0) {
        off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        SKIFF_RETURN_IF_ERROR(wait(POLLOUT, deadline));
        continue;
      }
      return Status::unavailable(std::string("send: ") + std::strerror(errno));
    }
    return Status::ok();
  }

  // Reads the status line and headers. Sets the body framing for read_body()/read_some().
  Result<int> read_head(Clock::time_point deadline) {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (buf_.size() > (64 << 10)) return Status::invalid("response head over 64 KiB");
      SKIFF_RETURN_IF_ERROR(fill(deadline));
    }
    std::string_view head(buf_.data(), end);
    // "HTTP/1.1 200 OK"
    if (!head.starts_with("HTTP/1.") || head.size() < 12)
      return Status::invalid("not an HTTP response: " + std::string(head.substr(0, 40)));
    int status = std::atoi(std::string(head.substr(9, 3)).c_str());
    content_length_.reset();
    chunked_ = false;
    reusable_ = head.substr(0, 8) == "HTTP/1.1";
    size_t pos = head.find("\r\n");
    while (pos != std::string_view::npos && pos < head.size()) {
      size_t next = head.find("\r\n", pos + 2);
      std::string_view line = head.substr(
          pos + 2, next == std::string_view::npos ? std::string_view::npos : next - pos - 2);
      size_t colon = line.find(':');
      if (colon != std::string_view::npos) {
        std::string name(line.substr(0, colon));
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        if (name == "content-length") {
          content_length_ = std::strtoull(std::string(value).c_str(), nullptr, 10);
        } else if (name == "transfer-encoding" && value.find("chunked") != std::string_view::npos) {
          chunked_ = true;
        } else if (name == "connection" && (value == "close" || value == "Close")) {
          reusable_ = false;
        }
      }
      pos = next;
    }
    buf_.erase(0, end + 4);
    if (!chunked_ && !content_length_) reusable_ = false;  // the body runs to the close
    chunk_left_ = 0;
    body_done_ = false;
    return status;
  }

  // The whole body of the current answer.
  Status read_body(std::string* out, Clock::time_point deadline) {
    out->clear();
    while (!body_done_) SKIFF_RETURN_IF_ERROR(read_some(out, deadline));
    served_ = true;
    return Status::ok();
  }

  // Appends at least one byte of body to `out` (or sets the end); Unavailable at an early EOF.
  // deadline == time_point::max(): no deadline.
  Status read_some(std::string* out, Clock::time_point deadline) {
    if (body_done_) return Status::unavailable("end of stream");
    if (content_length_) {
      if (*content_length_ == 0) {
        body_done_ = true;
        return Status::ok();
      }
      if (buf_.empty()) SKIFF_RETURN_IF_ERROR(fill(deadline));
      size_t n = std::min<size_t>(buf_.size(), *content_length_);
      out->append(buf_, 0, n);
      buf_.erase(0, n);
      *content_length_ -= n;
      if (*content_length_ == 0) body_done_ = true;
      return Status::ok();
    }
    if (!chunked_) {  // until the server closes
      if (buf_.empty()) {
        Status st = fill(deadline);
        if (!st && eof_) {
          body_done_ = true;
          return Status::ok();
        }
        SKIFF_RETURN_IF_ERROR(st);
      }
      out->append(buf_);
      buf_.clear();
      return Status::ok();
    }
    for (;;) {
      if (chunk_left_ > 0) {
        if (buf_.empty()) SKIFF_RETURN_IF_ERROR(fill(deadline));
        size_t n = std::min<size_t>(buf_.size(), chunk_left_);
        out->append(buf_, 0, n);
        buf_.erase(0, n);
        chunk_left_ -= n;
        if (chunk_left_ == 0) need_crlf_ = true;
        return Status::ok();
      }
      if (need_crlf_) {
        while (buf_.size() < 2) SKIFF_RETURN_IF_ERROR(fill(deadline));
        if (buf_.compare(0, 2, "\r\n") != 0) return Status::invalid("bad chunk terminator");
        buf_.erase(0, 2);
        need_crlf_ = false;
      }
      size_t eol;
      while ((eol = buf_.find("\r\n")) == std::string::npos) {
        if (buf_.size() > 1024) return Status::invalid("chunk size line too long");
        SKIFF_RETURN_IF_ERROR(fill(deadline));
      }
      std::string size_line = buf_.substr(0, eol);
      buf_.erase(0, eol + 2);
      char* endp = nullptr;
      unsigned long long size = std::strtoull(size_line.c_str(), &endp, 16);
      if (endp == size_line.c_str()) return Status::invalid("bad chunk size: " + size_line);
      if (size == 0) {  // last chunk; skip trailers up to the empty line
        for (;;) {
          while ((eol = buf_.find("\r\n")) == std::string::npos)
            SKIFF_RETURN_IF_ERROR(fill(deadline));
          bool empty = eol == 0;
          buf_.erase(0, eol + 2);
          if (empty) break;
        }
        body_done_ = true;
        return Status::ok();
      }
      chunk_left_ = size;
    }
  }

  bool body_done() const { return body_done_; }

 private:
  Status wait(short events, Clock::time_point deadline) {
    for (;;) {
      int ms = -1;
      if (deadline != Clock::time_point::max()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return Status::timeout("no answer from etcd in time");
        ms = static_cast<int>(std::min<int64_t>(left.count() + 1, 1 << 30));
      }
      pollfd p{fd_, events, 0};
      int rc = ::poll(&p, 1, ms);
      if (rc > 0) return Status::ok();
      if (rc == 0) continue;  // the loop re-checks the deadline
      if (errno != EINTR) return Status::io("poll");
    }
  }

  Status fill(Clock::time_point deadline) {
    char tmp[16384];
    for (;;) {
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n > 0) {
        buf_.append(tmp, static_cast<size_t>(n));
        received_ += static_cast<size_t>(n);
        return Status::ok();
      }
      if (n == 0) {
        eof_ = true;
        reusable_ = false;
        return Status::unavailable("connection closed by etcd");
      }
      if (errno == EAGAIN || errno == EINTR) {
        SKIFF_RETURN_IF_ERROR(wait(POLLIN, deadline));
        continue;
      }
      reusable_ = false;
      return Status::unavailable(std::string("recv: ") + std::strerror(errno));
    }
  }

  int fd_;
  size_t endpoint_;
  std::string buf_;
  size_t received_ = 0;
  bool served_ = false;
  bool reusable_ = true;
  bool eof_ = false;
  std::optional<uint64_t> content_length_;
  bool chunked_ = false;
  uint64_t chunk_left_ = 0;
  bool need_crlf_ = false;
  bool body_done_ = false;
};

Client::Client(std::vector<Endpoint> endpoints, std::chrono::milliseconds timeout)
    : endpoints_(std::move(endpoints)), timeout_(timeout) {}

Client::~Client() = default;

std::unique_ptr<Connection> Client::take() {
  std::lock_guard lock(mu_);
  size_t cur = current_.load();
  while (!idle_.empty()) {
    auto c = std::move(idle_.back());
    idle_.pop_back();
    if (c->endpoint() == cur) return c;  // others belong to an endpoint we moved away from
  }
  return nullptr;
}

void Client::give_back(std::unique_ptr<Connection> c) {
  std::lock_guard lock(mu_);
  if (idle_.size() < 64) idle_.push_back(std::move(c));
}

Result<std::unique_ptr<Connection>> Client::connect_any(Clock::time_point deadline) {
  Status last = Status::unavailable("no etcd endpoint");
  size_t start = current_.load();
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    size_t idx = (start + i) % endpoints_.size();
    auto c = Connection::open(endpoints_[idx], idx, deadline);
    if (c.is_ok()) {
      current_.store(idx);
      return std::move(c).value();
    }
    last = c.status();
  }
  return last;
}

Result<int> Client::post(std::string_view path, std::string_view body, std::string* out,
                         bool idempotent) {
  const auto deadline = Clock::now() + timeout_;
  const size_t n = endpoints_.size();
  // A member that accepts but never answers (stopped, cut off) would hold a request for the
  // whole timeout: with several endpoints, a read gets a share of it per member and moves on.
  const std::chrono::milliseconds slice =
      idempotent && n > 1 ? timeout_ / static_cast<int64_t>(n) : timeout_;
  bool idle_retried = false;
  size_t moved_on = 0;
  for (;;) {
    std::unique_ptr<Connection> c = idle_retried || moved_on > 0 ? nullptr : take();
    const auto attempt_deadline = std::min(deadline, Clock::now() + slice);
    if (!c) {
      auto fresh = connect_any(attempt_deadline);
      if (!fresh) return fresh.status();
      c = std::move(fresh).value();
    }
    const bool reused = c->served();
    const Endpoint& ep = endpoints_[c->endpoint()];
    Status st = c->send_request(ep.host + ":" + ep.port, path, body, attempt_deadline);
    const bool sent = st.is_ok();
    Result<int> status = sent ? c->read_head(attempt_deadline) : Result<int>(st);
    if (status.is_ok()) st = c->read_body(out, attempt_deadline);
    if (status.is_ok() && st.is_ok()) {
      if (c->reusable()) give_back(std::move(c));
      return status;
    }
    Status err = status.is_ok() ? st : status.status();
    const bool silent = c->received() == 0;
    // An idle keep-alive connection the server had closed: nothing was answered, try anew.
    if (reused && silent && !idle_retried && err.code() == Code::kUnavailable) {
      idle_retried = true;
      continue;
    }
    // Nothing came back from this member: later requests go to the next one. This request
    // goes there too if it cannot have been applied here (a read, or not even sent).
    if (silent && n > 1) {
      current_.store((c->endpoint() + 1) % n);
      if ((idempotent || !sent) && ++moved_on < n && Clock::now() < deadline) continue;
    }
    return Status(err.code() == Code::kTimeout ? Code::kTimeout : Code::kUnavailable,
                  "etcd " + ep.url + std::string(path) + ": " + err.message());
  }
}

Result<std::unique_ptr<WatchStream>> Client::stream(std::string_view path, std::string_view body) {
  const size_t n = endpoints_.size();
  Status last = Status::unavailable("no etcd endpoint");
  for (size_t i = 0; i < n; ++i) {
    auto conn = connect_any(Clock::now() + timeout_ / static_cast<int64_t>(n));
    if (!conn) return conn.status();
    size_t idx = (*conn)->endpoint();
    auto ws = std::make_unique<WatchStream>(std::move(conn).value());
    last = ws->start(path, body, timeout_ / static_cast<int64_t>(n));
    if (last.is_ok()) return ws;
    current_.store((idx + 1) % n);  // silent or refusing: the next member
  }
  return last;
}

WatchStream::WatchStream(std::unique_ptr<Connection> conn) : conn_(std::move(conn)) {}
WatchStream::~WatchStream() = default;

Status WatchStream::start(std::string_view path, std::string_view body,
                          std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  SKIFF_RETURN_IF_ERROR(conn_->send_request("etcd", path, body, deadline));
  auto status = conn_->read_head(deadline);
  if (!status) return status.status();
  if (*status != 200) {
    std::string text;
    (void)conn_->read_body(&text, deadline);
    return Status::unavailable("etcd watch: HTTP " + std::to_string(*status) + ": " + text);
  }
  return Status::ok();
}

Result<std::string> WatchStream::next(std::chrono::milliseconds timeout) {
  auto deadline = timeout.count() > 0 ? Clock::now() + timeout : Clock::time_point::max();
  for (;;) {
    size_t nl = pending_.find('\n');
    if (nl != std::string::npos) {
      std::string line = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      if (line.empty() || line == "\r") continue;
      return line;
    }
    if (pending_.size() > (64 << 20)) return Status::invalid("etcd watch message over 64 MiB");
    if (conn_->body_done()) return Status::unavailable("etcd watch stream ended");
    SKIFF_RETURN_IF_ERROR(conn_->read_some(&pending_, deadline));
  }
}

void WatchStream::close() { conn_->shutdown(); }

}  // namespace skiff::store::etcd
