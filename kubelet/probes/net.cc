#include "kubelet/probes/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <thread>

namespace skiff::probes::net {
namespace {

int remaining_ms(Deadline d) {
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(d - std::chrono::steady_clock::now())
          .count();
  return ms < 0 ? 0 : static_cast<int>(std::min<int64_t>(ms, 1 << 30));
}

// Go spells errno texts in lower case ("connection refused").
std::string go_errno(int err) {
  std::string s = strerror(err);
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

// Waits until `fd` is ready for `events`; false on timeout.
bool wait_fd(int fd, short events, Deadline deadline) {
  for (;;) {
    struct pollfd p = {fd, events, 0};
    int ms = remaining_ms(deadline);
    int n = poll(&p, 1, ms);
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return true;  // let the following call report the error
  }
}

struct Addr {
  struct sockaddr_storage ss = {};
  socklen_t len = 0;
};

skiff::Result<Addr> resolve(const std::string& host, int port) {
  Addr a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    a.len = sizeof *v4;
    return a;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    a.len = sizeof *v6;
    return a;
  }
  // A name: resolved by the node's resolver, as the kubelet does (it is not in the pod).
  struct addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || !res)
    return Status::unavailable("dial tcp: lookup " + host + ": " + gai_strerror(rc));
  memcpy(&a.ss, res->ai_addr, res->ai_addrlen);
  a.len = res->ai_addrlen;
  freeaddrinfo(res);
  if (a.ss.ss_family == AF_INET) v4->sin_port = htons(static_cast<uint16_t>(port));
  if (a.ss.ss_family == AF_INET6) v6->sin6_port = htons(static_cast<uint16_t>(port));
  return a;
}

// A socket belongs to the network namespace of the thread that created it. setns(CLONE_NEWNET)
// changes only the calling thread, so a short-lived thread enters the pod's namespace, creates the
// socket and ends; no thread of ours is ever left in a pod's namespace.
skiff::Result<int> socket_in_netns(const std::string& netns_path, int family) {
  const int type = SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC;
  if (netns_path.empty()) {
    int fd = socket(family, type, 0);
    if (fd < 0) return Status::io("socket");
    return fd;
  }
  int ns = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns < 0) return Status::io("open network namespace " + netns_path);
  int fd = -1;
  int err = 0;
  const char* what = "";
  std::thread t([&] {
    if (setns(ns, CLONE_NEWNET) != 0) {
      err = errno;
      what = "enter network namespace ";
      return;
    }
    fd = socket(family, type, 0);
    if (fd < 0) {
      err = errno;
      what = "socket in network namespace ";
    }
  });
  t.join();
  close(ns);
  if (fd < 0) return Status::io(what + netns_path, err);
  return fd;
}

}  // namespace

std::string join_host_port(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

struct Conn::State {
  int fd = -1;
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  ~State() {
    if (ssl) SSL_free(ssl);
    if (ctx) SSL_CTX_free(ctx);
    if (fd >= 0) close(fd);
  }
};

Conn::Conn() : state_(std::make_unique<State>()) {}
Conn::~Conn() = default;
Conn::Conn(Conn&&) noexcept = default;
Conn& Conn::operator=(Conn&&) noexcept = default;

Status Conn::write_all(const std::string& data, Deadline deadline) {
  size_t off = 0;
  while (off < data.size()) {
    if (state_->ssl) {
      size_t wrote = 0;
      if (SSL_write_ex(state_->ssl, data.data() + off, data.size() - off, &wrote) == 1) {
        off += wrote;
        continue;
      }
      int e = SSL_get_error(state_->ssl, 0);
      short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
      if (!ev) return Status::unavailable("write: TLS error");
      if (!wait_fd(state_->fd, ev, deadline)) return Status::timeout("write: i/o timeout");
      continue;
    }
    ssize_t n = send(state_->fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n >= 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return Status(Code::kUnavailable, "write: " + go_errno(errno), errno);
    if (!wait_fd(state_->fd, POLLOUT, deadline)) return Status::timeout("write: i/o timeout");
  }
  return Status::ok();
}

skiff::Result<size_t> Conn::read(char* buf, size_t n, Deadline deadline) {
  for (;;) {
    if (state_->ssl) {
      size_t got = 0;
      if (SSL_read_ex(state_->ssl, buf, n, &got) == 1) return got;
      int e = SSL_get_error(state_->ssl, 0);
      if (e == SSL_ERROR_ZERO_RETURN) return size_t{0};
      short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
      // A peer that closes without close_notify: treat as end of stream, like Go does for HTTP/1
      // responses delimited by EOF.
      if (!ev) return size_t{0};
      if (!wait_fd(state_->fd, ev, deadline)) return Status::timeout("read: i/o timeout");
      continue;
    }
    ssize_t got = recv(state_->fd, buf, n, 0);
    if (got >= 0) return static_cast<size_t>(got);
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return Status(Code::kUnavailable, "read: " + go_errno(errno), errno);
    if (!wait_fd(state_->fd, POLLIN, deadline)) return Status::timeout("read: i/o timeout");
  }
}

skiff::Result<Conn> dial(const std::string& netns_path, const std::string& host, int port, bool tls,
                         Deadline deadline) {
  const std::string prefix = "dial tcp " + join_host_port(host, port) + ": ";
  auto addr = resolve(host, port);
  if (!addr) return addr.status();
  auto fd = socket_in_netns(netns_path, addr->ss.ss_family);
  if (!fd) return fd.status();
  Conn conn;
  conn.state_->fd = *fd;
  if (connect(*fd, reinterpret_cast<sockaddr*>(&addr->ss), addr->len) != 0) {
    if (errno != EINPROGRESS)
      return Status(Code::kUnavailable, prefix + "connect: " + go_errno(errno), errno);
    if (!wait_fd(*fd, POLLOUT, deadline)) return Status::timeout(prefix + "i/o timeout");
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(*fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Status(Code::kUnavailable, prefix + "connect: " + go_errno(err), err);
  }
  if (!tls) return conn;

  // Kubernetes' HTTPS probes skip verification (InsecureSkipVerify); so do we.
  auto& st = *conn.state_;
  st.ctx = SSL_CTX_new(TLS_client_method());
  if (!st.ctx) return Status::internal("TLS: cannot create a context");
  SSL_CTX_set_verify(st.ctx, SSL_VERIFY_NONE, nullptr);
  st.ssl = SSL_new(st.ctx);
  if (!st.ssl || SSL_set_fd(st.ssl, st.fd) != 1) return Status::internal("TLS: cannot set up");
  unsigned char probe[16];
  if (inet_pton(AF_INET, host.c_str(), probe) != 1 && inet_pton(AF_INET6, host.c_str(), probe) != 1)
    SSL_set_tlsext_host_name(st.ssl, host.c_str());
  for (;;) {
    int rc = SSL_connect(st.ssl);
    if (rc == 1) break;
    int e = SSL_get_error(st.ssl, rc);
    short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (!ev) {
      char buf[256];
      ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
      ERR_clear_error();
      return Status::unavailable("remote error: tls: handshake failed (" + std::string(buf) + ")");
    }
    if (!wait_fd(st.fd, ev, deadline)) return Status::timeout("net/http: TLS handshake timeout");
  }
  return conn;
}

}  // namespace skiff::probes::net
