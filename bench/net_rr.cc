// bench_net_rr: TCP request/response rate, 1 byte each way over one connection (netperf's
// TCP_RR with 1-byte messages). Used by bench/net.sh inside pod and node network namespaces;
// not a test, it prints.
//
//   bench_net_rr server --listen IP:PORT [--timeout-s 60]
//       serves one connection (echoes every byte back), then exits; gives up after the timeout.
//   bench_net_rr client --connect IP:PORT [--count 1000000] [--seconds 5]
//       after 100 warm-up round trips, ping-pongs until COUNT round trips or SECONDS, whichever
//       comes first, and prints one line:
//       `rr transactions=N seconds=S rate=R p50_us=A p90_us=B p99_us=C`
//
// Both ends set TCP_NODELAY so each byte is its own segment. Every blocking call waits at most
// 5 s (poll), so a lost peer ends the program with an error instead of hanging it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kIoTimeoutMs = 5000;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench_net_rr: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}
[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "bench_net_rr: %s\nusage: bench_net_rr server --listen IP:PORT [--timeout-s 60]\n"
               "       bench_net_rr client --connect IP:PORT [--count N] [--seconds S]\n",
               why.c_str());
  std::exit(2);
}

sockaddr_in parse_addr(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) usage("address '" + s + "' is not IP:PORT");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (inet_pton(AF_INET, s.substr(0, colon).c_str(), &a.sin_addr) != 1)
    usage("address '" + s + "': bad IPv4 address");
  long port = std::strtol(s.c_str() + colon + 1, nullptr, 10);
  if (port <= 0 || port > 65535) usage("address '" + s + "': bad port");
  a.sin_port = htons(static_cast<uint16_t>(port));
  return a;
}

void wait_fd(int fd, short events, int timeout_ms, const char* what) {
  pollfd p{fd, events, 0};
  int r;
  do r = ::poll(&p, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  if (r < 0) die(std::string("poll before ") + what);
  if (r == 0) {
    std::fprintf(stderr, "bench_net_rr: %s: no progress in %d ms\n", what, timeout_ms);
    std::exit(1);
  }
}

// One byte out, one byte back (client) or in then out (server). Returns false on EOF.
bool read_byte(int fd, char* c) {
  for (;;) {
    ssize_t n = ::recv(fd, c, 1, MSG_DONTWAIT);
    if (n == 1) return true;
    if (n == 0) return false;
    if (errno != EAGAIN && errno != EINTR) die("recv");
    wait_fd(fd, POLLIN, kIoTimeoutMs, "recv");
  }
}
void write_byte(int fd, char c) {
  for (;;) {
    ssize_t n = ::send(fd, &c, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == 1) return;
    if (n < 0 && errno != EAGAIN && errno != EINTR) die("send");
    wait_fd(fd, POLLOUT, kIoTimeoutMs, "send");
  }
}

void set_nodelay(int fd) {
  int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) die("TCP_NODELAY");
}

int run_server(const std::string& listen, int timeout_s) {
  sockaddr_in a = parse_addr(listen);
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) die("socket");
  int one = 1;
  ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("bind " + listen);
  if (::listen(s, 4) != 0) die("listen " + listen);
  std::printf("listening on %s\n", listen.c_str());
  std::fflush(stdout);
  wait_fd(s, POLLIN, timeout_s * 1000, "accept");
  int c = ::accept4(s, nullptr, nullptr, SOCK_CLOEXEC);
  if (c < 0) die("accept");
  ::close(s);
  set_nodelay(c);
  char b;
  auto end = Clock::now() + std::chrono::seconds(timeout_s);
  while (Clock::now() < end && read_byte(c, &b)) write_byte(c, b);
  ::close(c);
  return 0;
}

int run_client(const std::string& connect_to, long count, double seconds) {
  sockaddr_in a = parse_addr(connect_to);
  int fd = -1;
  // The server may still be starting in its namespace: retry refused connects for 5 s.
  auto give_up = Clock::now() + std::chrono::seconds(5);
  for (;;) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) break;
    if (errno != ECONNREFUSED || Clock::now() > give_up) die("connect " + connect_to);
    ::close(fd);
    ::usleep(50 * 1000);
  }
  set_nodelay(fd);
  char b = 'x';
  for (int i = 0; i < 100; ++i) {
    write_byte(fd, b);
    if (!read_byte(fd, &b)) die("server closed during warm-up");
  }
  std::vector<uint32_t> rtt_ns;
  rtt_ns.reserve(static_cast<size_t>(std::min(count, 20'000'000L)));
  auto start = Clock::now();
  auto end = start + std::chrono::duration<double>(seconds);
  auto t = start;
  long n = 0;
  while (n < count && t < end) {
    write_byte(fd, b);
    if (!read_byte(fd, &b)) die("server closed the connection");
    auto t2 = Clock::now();
    if (rtt_ns.size() < rtt_ns.capacity())
      rtt_ns.push_back(static_cast<uint32_t>(std::min<int64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(t2 - t).count(), UINT32_MAX)));
    t = t2;
    ++n;
  }
  double elapsed = std::chrono::duration<double>(t - start).count();
  ::close(fd);
  std::sort(rtt_ns.begin(), rtt_ns.end());
  auto pct = [&](double p) {  // nearest rank
    if (rtt_ns.empty()) return 0.0;
    size_t r = static_cast<size_t>(std::ceil(p * static_cast<double>(rtt_ns.size())));
    return rtt_ns[std::clamp<size_t>(r, 1, rtt_ns.size()) - 1] / 1000.0;
  };
  std::printf("rr transactions=%ld seconds=%.3f rate=%.0f p50_us=%.1f p90_us=%.1f p99_us=%.1f\n", n,
              elapsed, elapsed > 0 ? static_cast<double>(n) / elapsed : 0.0, pct(0.5), pct(0.9),
              pct(0.99));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage("missing mode");
  std::string_view mode = argv[1];
  std::string listen, connect_to;
  long count = 1'000'000;
  double seconds = 5;
  int timeout_s = 60;
  for (int i = 2; i < argc; ++i) {
    std::string_view f = argv[i];
    if (i + 1 >= argc) usage(std::string(f) + " needs a value");
    std::string v = argv[++i];
    char* e = nullptr;
    if (f == "--listen") {
      listen = v;
    } else if (f == "--connect") {
      connect_to = v;
    } else if (f == "--count") {
      count = std::strtol(v.c_str(), &e, 10);
      if (*e || count <= 0) usage("--count must be a positive integer");
    } else if (f == "--seconds") {
      seconds = std::strtod(v.c_str(), &e);
      if (*e || !(seconds > 0 && seconds <= 3600)) usage("--seconds must be in (0, 3600]");
    } else if (f == "--timeout-s") {
      timeout_s = static_cast<int>(std::strtol(v.c_str(), &e, 10));
      if (*e || timeout_s <= 0 || timeout_s > 3600) usage("--timeout-s must be in [1, 3600]");
    } else {
      usage("unknown flag " + std::string(f));
    }
  }
  if (mode == "server") {
    if (listen.empty()) usage("server needs --listen IP:PORT");
    return run_server(listen, timeout_s);
  }
  if (mode == "client") {
    if (connect_to.empty()) usage("client needs --connect IP:PORT");
    return run_client(connect_to, count, seconds);
  }
  usage("mode must be server or client");
}
