// The blocking HTTP/1.1 client under the etcd store. Sockets are non-blocking and every wait is
// a poll() bounded by the call's deadline; a WatchStream's close() shuts the socket down, which
// wakes its poll.

#include "apiserver/store/etcd_client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
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
  Endpoint ep;
  std::string_view rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    rest = url.substr(8);
    ep.tls = true;
  } else {
    return bad("want http://HOST:PORT or https://HOST:PORT");
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) return bad("a path is not allowed");
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

std::string tls_error(const char* what) {
  std::string msg = what;
  unsigned long e = ERR_get_error();
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    msg += std::string(": ") + buf;
  }
  ERR_clear_error();
  return msg;
}

Result<TlsContext> make_tls_context(const TlsFiles& files) {
  TlsContext ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx) return Status::internal(tls_error("TLS to etcd: cannot make a context"));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (files.ca_file.empty()) {
    SSL_CTX_set_default_verify_paths(ctx.get());
  } else if (SSL_CTX_load_verify_locations(ctx.get(), files.ca_file.c_str(), nullptr) != 1) {
    return Status::invalid(tls_error(("--etcd-cafile " + files.ca_file).c_str()));
  }
  if (files.cert_file.empty() != files.key_file.empty())
    return Status::invalid("--etcd-certfile and --etcd-keyfile go together");
  if (!files.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), files.cert_file.c_str()) != 1)
      return Status::invalid(tls_error(("--etcd-certfile " + files.cert_file).c_str()));
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), files.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      return Status::invalid(tls_error(("--etcd-keyfile " + files.key_file).c_str()));
    if (SSL_CTX_check_private_key(ctx.get()) != 1)
      return Status::invalid(tls_error("--etcd-keyfile does not match --etcd-certfile"));
  }
  return ctx;
}

// One TCP (or TLS) connection and its read buffer.
class Connection {
 public:
  Connection(int fd, size_t endpoint) : fd_(fd), endpoint_(endpoint) {}
  ~Connection() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  static Result<std::unique_ptr<Connection>> open(const Endpoint& ep, size_t index,
                                                  Clock::time_point deadline,
                                                  const TlsContext& tls) {
    auto conn = open_tcp(ep, index, deadline);
    if (!conn || !ep.tls) return conn;
    if (!tls) return Status::internal("etcd " + ep.url + ": no TLS context");
    if (auto st = (*conn)->handshake(ep, tls, deadline); !st)
      return Status(st.code(), "etcd " + ep.url + ": " + st.message());
    return conn;
  }

  static Result<std::unique_ptr<Connection>> open_tcp(const Endpoint& ep, size_t index,
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

  // TLS client handshake, verifying the certificate against the endpoint's name or IP.
  Status handshake(const Endpoint& ep, const TlsContext& tls, Clock::time_point deadline) {
    ssl_ = SSL_new(tls.get());
    if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1)
      return Status::internal(tls_error("TLS: cannot set up"));
    unsigned char addr[16];
    const bool is_ip = inet_pton(AF_INET, ep.host.c_str(), addr) == 1 ||
                       inet_pton(AF_INET6, ep.host.c_str(), addr) == 1;
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    if (is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(param, ep.host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl_, ep.host.c_str());
      X509_VERIFY_PARAM_set1_host(param, ep.host.c_str(), 0);
    }
    for (;;) {
      int rc = SSL_connect(ssl_);
      if (rc == 1) return Status::ok();
      int e = SSL_get_error(ssl_, rc);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (auto st = wait(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline); !st)
          return Status::timeout("TLS handshake: " + st.message());
        continue;
      }
      long verify = SSL_get_verify_result(ssl_);
      if (verify != X509_V_OK)
        return Status::unavailable(std::string("TLS handshake: certificate verify failed: ") +
                                   X509_verify_cert_error_string(verify));
      return Status::unavailable(tls_error("TLS handshake failed"));
    }
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
      short want = 0;
      ssize_t n = io(true, req.data() + off, req.size() - off, &want);
      if (n > 0) {
        off += static_cast<size_t>(n);
        continue;
      }
      if (want != 0) {
        SKIFF_RETURN_IF_ERROR(wait(want, deadline));
        continue;
      }
      return Status::unavailable(ssl_ ? tls_error("send")
                                      : std::string("send: ") + std::strerror(errno));
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
      short want = 0;
      ssize_t n = io(false, tmp, sizeof tmp, &want);
      if (n > 0) {
        buf_.append(tmp, static_cast<size_t>(n));
        received_ += static_cast<size_t>(n);
        return Status::ok();
      }
      if (want != 0) {
        SKIFF_RETURN_IF_ERROR(wait(want, deadline));
        continue;
      }
      reusable_ = false;
      if (n == 0) {
        eof_ = true;
        return Status::unavailable("connection closed by etcd");
      }
      return Status::unavailable(ssl_ ? tls_error("recv")
                                      : std::string("recv: ") + std::strerror(errno));
    }
  }

  // One send or recv, plain or through TLS: > 0 bytes moved; else `want` is the poll event to
  // wait for (0: the connection is done: 0 = closed, < 0 = failed).
  ssize_t io(bool write, char* data, size_t len, short* want) {
    *want = 0;
    if (ssl_ == nullptr) {
      ssize_t n = write ? ::send(fd_, data, len, MSG_NOSIGNAL) : ::recv(fd_, data, len, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) *want = write ? POLLOUT : POLLIN;
      return n;
    }
    int n = write ? SSL_write(ssl_, data, static_cast<int>(len))
                  : SSL_read(ssl_, data, static_cast<int>(len));
    if (n > 0) return n;
    int e = SSL_get_error(ssl_, n);
    if (e == SSL_ERROR_WANT_READ) *want = POLLIN;
    if (e == SSL_ERROR_WANT_WRITE) *want = POLLOUT;
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    if (e == SSL_ERROR_SYSCALL && n == 0) return 0;  // EOF without close_notify
    return -1;
  }

  int fd_;
  SSL* ssl_ = nullptr;
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

Client::Client(std::vector<Endpoint> endpoints, std::chrono::milliseconds timeout, TlsContext tls)
    : endpoints_(std::move(endpoints)), timeout_(timeout), tls_(std::move(tls)) {}

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
    auto c = Connection::open(endpoints_[idx], idx, deadline, tls_);
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
