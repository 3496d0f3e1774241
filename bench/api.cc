// bench_api: throughput and latency of skiff-apiserver, with the disk's fsync rate measured in
// the same run as the floor that SQLite creates are compared against. Not a test: it prints.
//
// It spawns its own servers (`skiff-apiserver --store S --listen 127.0.0.1:P
// --insecure-listen 127.0.0.1:Q --anonymous --data-dir <tmp>`) and talks plain HTTP/1.1 with
// keep-alive over loopback through raw sockets, so the client costs as little as possible.
// Every loop has a count and a time limit. See bench/README.md.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/child.h"
#include "common/base64.h"

namespace skiff::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

double ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double percentile(std::vector<int64_t>& v, double p) {
  if (v.empty()) return 0;
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return ms(v[i]);
}

int connect_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // loopback only, always
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{10, 0};  // no request may hang the benchmark
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

bool send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// The Content-Length of a message head already in lower case (0 when it has none).
size_t content_length(const std::string& lower_head) {
  auto p = lower_head.find("content-length:");
  return p == std::string::npos ? 0 : std::strtoul(lower_head.c_str() + p + 15, nullptr, 10);
}

// One keep-alive HTTP/1.1 connection; enough of the protocol for Content-Length and chunked
// (non-streaming) answers.
class Conn {
 public:
  explicit Conn(int port) : port_(port) {}
  ~Conn() { close(); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buf_.clear();
  }

  // Returns the status code, or 0 on a transport error.
  int request(const std::string& method, const std::string& path, const std::string& body,
              std::string* out = nullptr) {
    if (fd_ < 0 && (fd_ = connect_loopback(port_)) < 0) return 0;
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (!body.empty()) {
      req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
             "\r\n";
    }
    req += "Accept: application/json\r\n\r\n";
    req += body;
    if (!send_all(fd_, req)) return fail();
    size_t head_end;
    while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return fail();
    }
    std::string head = buf_.substr(0, head_end);
    buf_.erase(0, head_end + 4);
    int status = std::atoi(head.c_str() + std::min<size_t>(9, head.size()));
    std::string lower = head;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    std::string payload;
    if (lower.find("transfer-encoding: chunked") != std::string::npos) {
      for (;;) {
        size_t eol;
        while ((eol = buf_.find("\r\n")) == std::string::npos) {
          if (!fill()) return fail();
        }
        size_t size = std::strtoul(buf_.c_str(), nullptr, 16);
        while (buf_.size() < eol + 2 + size + 2) {
          if (!fill()) return fail();
        }
        payload.append(buf_, eol + 2, size);
        buf_.erase(0, eol + 2 + size + 2);
        if (size == 0) break;
      }
    } else {
      size_t len = content_length(lower);
      while (buf_.size() < len) {
        if (!fill()) return fail();
      }
      payload = buf_.substr(0, len);
      buf_.erase(0, len);
    }
    if (lower.find("connection: close") != std::string::npos) close();
    if (out) *out = std::move(payload);
    return status;
  }

 private:
  bool fill() {
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  int fail() {
    close();
    return 0;
  }
  int port_;
  int fd_ = -1;
  std::string buf_;
};

// Polls `probe` every 100 ms until it answers true, the child dies or `limit` passes.
template <class Probe>
bool wait_ready(const Child& child, Probe probe, std::chrono::seconds limit) {
  auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (!child.alive()) return false;
    if (probe()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

// A skiff-apiserver child process with its own data dir.
class Server {
 public:
  // `extra`: more flags (--etcd-servers for --store etcd).
  Server(const std::string& exe, const std::string& store, const fs::path& dir,
         const std::vector<std::string>& extra = {})
      : dir_(dir / ("data-" + store)), port_(free_port()) {
    fs::create_directories(dir_);
    std::string log = (dir / ("apiserver-" + store + ".log")).string();
    std::vector<std::string> args{exe,
                                  "--store",
                                  store,
                                  "--listen",
                                  "127.0.0.1:" + std::to_string(free_port()),
                                  "--insecure-listen",
                                  "127.0.0.1:" + std::to_string(port_),
                                  "--anonymous",
                                  "--data-dir",
                                  dir_.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    child_ = std::make_unique<Child>(args, log);
    ready_ = wait_ready(
        *child_, [&] { return Conn(port_).request("GET", "/readyz", "") == 200; },
        std::chrono::seconds(60));
    if (!ready_)
      std::fprintf(stderr, "bench: server (%s) not ready; see %s\n", store.c_str(), log.c_str());
  }
  bool ready() const { return ready_; }
  int port() const { return port_; }
  pid_t pid() const { return child_->pid(); }
  const fs::path& data_dir() const { return dir_; }
  long rss_kib() const { return child_->status_kib("VmRSS:"); }

 private:
  fs::path dir_;
  int port_;
  std::unique_ptr<Child> child_;
  bool ready_ = false;
};

// The reference store: an etcd child process (one member, its own data dir, loopback only),
// written to through its JSON gateway (grpc-gateway, `/v3/kv/txn`) with the transaction
// kube-apiserver sends for a create: put if the key's mod_revision is 0.
class Etcd {
 public:
  Etcd(const std::string& exe, const fs::path& dir) : port_(free_port()) {
    fs::path data = dir / "data-etcd";
    fs::create_directories(data);
    std::string log = (dir / "etcd.log").string();
    std::string client = "http://127.0.0.1:" + std::to_string(port_);
    std::string peer = "http://127.0.0.1:" + std::to_string(free_port());
    child_ = std::make_unique<Child>(
        std::vector<std::string>{exe, "--name", "bench", "--data-dir", data.string(),
                                 "--listen-client-urls", client, "--advertise-client-urls", client,
                                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                 "--initial-cluster", "bench=" + peer, "--logger", "zap",
                                 "--log-level", "warn"},
        log);
    ready_ = wait_ready(
        *child_,
        [&] {
          std::string body;
          return Conn(port_).request("GET", "/health", "", &body) == 200 &&
                 body.find("\"true\"") != std::string::npos;
        },
        std::chrono::seconds(30));
    if (!ready_) std::fprintf(stderr, "bench: etcd not ready; see %s\n", log.c_str());
  }
  bool ready() const { return ready_; }
  int port() const { return port_; }

 private:
  int port_;
  std::unique_ptr<Child> child_;
  bool ready_ = false;
};

// The body of kube-apiserver's create transaction for a ConfigMap like the ones POSTed to skiff,
// as skiff stores it (with the metadata the server adds).
std::string etcd_create_txn(const std::string& prefix, int64_t i) {
  std::string name = prefix + std::to_string(i);
  std::string key = base64_encode("/registry/configmaps/bench/" + name);
  std::string value =
      base64_encode(R"({"apiVersion":"v1","data":{"k":"v"},"kind":"ConfigMap","metadata":{)"
                    R"("creationTimestamp":"2026-12-06T18:00:00Z","name":")" +
                    name +
                    R"(","namespace":"bench","resourceVersion":"0",)"
                    R"("uid":"8f1c2a3e-5b6d-4e7f-9a0b-1c2d3e4f5a6b"}})");
  return R"({"compare":[{"result":"EQUAL","target":"MOD","key":")" + key +
         R"(","mod_revision":"0"}],"success":[{"request_put":{"key":")" + key + R"(","value":")" +
         value + R"("}}],"failure":[{"request_range":{"key":")" + key + R"("}}]})";
}

// Runs `cmd` through the shell and returns its exit code (-1 if it could not start), its
// standard output in `out` with trailing newlines removed.
int run_command(const std::string& cmd, std::string* out) {
  out->clear();
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return -1;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, f)) *out += buf;
  int st = ::pclose(f);
  while (!out->empty() && (out->back() == '\n' || out->back() == '\r')) out->pop_back();
  return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// etcd to compare against: --etcd PATH, else `etcd` on PATH, else Debian's etcd-server unpacked
// (not installed: that would start a system etcd) by test/tools/deb_unpack.sh. "" if none.
std::string find_etcd(const std::string& flag, std::string* why) {
  if (!flag.empty()) return flag;
  if (const char* path = std::getenv("PATH")) {
    std::string p = path;
    for (size_t b = 0; b <= p.size();) {
      size_t e = p.find(':', b);
      if (e == std::string::npos) e = p.size();
      fs::path cand = fs::path(p.substr(b, e - b)) / "etcd";
      if (e > b && ::access(cand.c_str(), X_OK) == 0) return cand.string();
      b = e + 1;
    }
  }
#ifdef SKIFF_SOURCE_DIR
  std::string cmd = std::string("bash '") + SKIFF_SOURCE_DIR +
                    "/test/tools/deb_unpack.sh' etcd-server usr/bin/etcd 2>&1";
  std::string out;
  if (int st = run_command(cmd, &out); st != -1) {
    if (st == 0 && ::access(out.c_str(), X_OK) == 0) return out;
    *why = out.empty() ? "deb_unpack.sh failed" : out;
    return "";
  }
#endif
  *why = "no etcd on PATH (use --etcd PATH)";
  return "";
}

bool make_namespace(int port, const std::string& ns) {
  Conn c(port);
  int s = c.request("POST", "/api/v1/namespaces",
                    R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":")" + ns + "\"}}");
  return s == 201 || s == 409;
}

// Writes `bytes` of zeros to `fd` and fsyncs it: later writes inside land on allocated, written
// blocks, as commits to a pre-sized WAL do (fdatasync then has no size or allocation to commit).
bool prewrite(int fd, size_t bytes) {
  const std::string zeros(1 << 20, '\0');
  for (size_t done = 0; done < bytes;) {
    size_t n = std::min(zeros.size(), bytes - done);
    if (::write(fd, zeros.data(), n) != static_cast<ssize_t>(n)) return false;
    done += n;
  }
  return ::fsync(fd) == 0;
}

// 4 KiB appends, each followed by fdatasync: what one durable commit costs on this disk. With
// `overwrite`, the file is written and synced first and the 4 KiB writes then land inside it, as
// commits to a pre-sized WAL do (no size or allocation change for fdatasync to commit).
double fsync_floor(const fs::path& dir, int max_ops, double max_seconds, bool overwrite = false) {
  fs::path p = dir / "fsync-probe";
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | (overwrite ? 0 : O_APPEND), 0644);
  if (fd < 0) return 0;
  std::string block(4096, 'x');
  if (overwrite && (!prewrite(fd, static_cast<size_t>(max_ops) * block.size()) ||
                    ::lseek(fd, 0, SEEK_SET) != 0)) {
    ::close(fd);
    fs::remove(p);
    return 0;
  }
  auto t0 = Clock::now();
  int n = 0;
  while (n < max_ops && std::chrono::duration<double>(Clock::now() - t0).count() < max_seconds) {
    if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) break;
    if (::fdatasync(fd) != 0) break;
    ++n;
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  ::close(fd);
  fs::remove(p);
  return secs > 0 ? n / secs : 0;
}

// The reference tool's floor: fio as etcd's documentation has users check a disk for its WAL
// (`fio --rw=write --ioengine=sync --fdatasync=1 --size=22m --bs=2300`), sequential 2,300-byte
// writes each followed by fdatasync into a new file in `dir`. Returns its write IOPS, or 0 with
// `why` set when fio is missing or fails. Bounded by fio's --runtime (2 s quick, else 5 s).
double fio_floor(const fs::path& dir, bool quick, std::string* why) {
  fs::path d = dir / "fio-floor";
  fs::create_directories(d);
  std::string cmd = "fio --name=floor --directory='" + d.string() +
                    "' --rw=write --ioengine=sync --fdatasync=1 --bs=2300 --size=" +
                    (quick ? "2m" : "22m") + " --runtime=" + (quick ? "2" : "5") +
                    " --output-format=terse --terse-version=3 2>&1";
  std::string out;
  int st = run_command(cmd, &out);
  std::error_code ec;
  fs::remove_all(d, ec);
  if (st == 127) {
    *why = "fio not installed (deploy/deps.sh installs it)";
    return 0;
  }
  if (st != 0) out = "fio failed: " + out;
  // Terse v3: field 1 is "3", field 49 the write IOPS.
  std::vector<std::string> fields;
  for (size_t b = 0, e; b <= out.size(); b = e + 1) {
    e = out.find(';', b);
    if (e == std::string::npos) e = out.size();
    fields.push_back(out.substr(b, e - b));
  }
  if (fields.size() < 50 || fields[0] != "3") {
    *why = out.empty() ? "fio printed nothing" : out.substr(0, 200);
    return 0;
  }
  return std::atof(fields[48].c_str());
}

// The least a durable create over HTTP can cost on this machine, measured beside skiff: a
// server thread that reads each request (headers and Content-Length body), makes it durable with
// one 4 KiB overwrite + fdatasync in a pre-written file (a commit to a pre-sized WAL: the
// cheapest durable write, see fsync_floor), and answers a fixed 201. No parsing beyond framing,
// no JSON, no storage engine. One connection at a time, loopback only, bounded by the client.
class MinimalDurableServer {
 public:
  explicit MinimalDurableServer(const fs::path& dir) : path_(dir / "minimal-durable-log") {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd_ >= 0 && prewrite(fd_, kFileBytes);
    listen_fd_ = ok ? ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0) : -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // loopback only, always
    socklen_t len = sizeof a;
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 8) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return;
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~MinimalDurableServer() {
    if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);  // ends accept()
    if (thread_.joinable()) thread_.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (fd_ >= 0) ::close(fd_);
    std::error_code ec;
    fs::remove(path_, ec);
  }
  MinimalDurableServer(const MinimalDurableServer&) = delete;
  MinimalDurableServer& operator=(const MinimalDurableServer&) = delete;

  int port() const { return port_; }  // 0: could not start

 private:
  static constexpr int kFileBytes = 16 << 20;

  void serve() {
    for (;;) {
      int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      int one = 1;
      ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      timeval tv{10, 0};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      serve_connection(c);
      ::close(c);
    }
  }

  void serve_connection(int c) {
    static const std::string kAnswer =
        "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    std::string buf;
    std::string block(4096, '\0');
    char chunk[16384];
    off_t off = 0;
    for (;;) {
      size_t head_end = buf.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        std::string head = buf.substr(0, head_end);
        std::transform(head.begin(), head.end(), head.begin(), ::tolower);
        size_t cl = content_length(head);
        size_t need = head_end + 4 + cl;
        if (buf.size() >= need) {
          block.replace(0, std::min(cl, block.size()), buf, head_end + 4,
                        std::min(cl, block.size()));
          if (::pwrite(fd_, block.data(), block.size(), off) !=
                  static_cast<ssize_t>(block.size()) ||
              ::fdatasync(fd_) != 0 || !send_all(c, kAnswer))
            return;
          off = (off + static_cast<off_t>(block.size())) % kFileBytes;
          buf.erase(0, need);
          continue;
        }
      }
      ssize_t n = ::recv(c, chunk, sizeof chunk, 0);
      if (n <= 0) return;
      buf.append(chunk, static_cast<size_t>(n));
    }
  }

  fs::path path_;
  int fd_ = -1;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

struct CreateResult {
  double per_sec = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  int64_t ok = 0;
  int64_t errors = 0;
};

// `clients` threads, each with its own keep-alive connection, POST objects built by `body(i)`
// until `total` are done or `max_seconds` pass.
template <class BodyFn>
CreateResult run_creates(int port, const std::string& path, int clients, int64_t total,
                         double max_seconds, BodyFn body, int ok_status = 201) {
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> errors{0};
  std::vector<std::vector<int64_t>> lat(static_cast<size_t>(clients));
  auto t0 = Clock::now();
  auto deadline =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(max_seconds));
  std::vector<std::thread> th;
  for (int c = 0; c < clients; ++c) {
    th.emplace_back([&, c] {
      Conn conn(port);
      auto& mine = lat[static_cast<size_t>(c)];
      for (;;) {
        int64_t i = next.fetch_add(1);
        if (i >= total || Clock::now() > deadline) break;
        int64_t s = now_ns();
        int st = conn.request("POST", path, body(i));
        if (st == ok_status) {
          mine.push_back(now_ns() - s);
        } else if (errors.fetch_add(1) > 100) {
          break;  // the server is failing: stop rather than spin
        }
      }
    });
  }
  for (auto& t : th) t.join();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<int64_t> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  CreateResult r;
  r.ok = static_cast<int64_t>(all.size());
  r.errors = errors.load();
  r.per_sec = secs > 0 ? static_cast<double>(r.ok) / secs : 0;
  r.p50_ms = percentile(all, 0.50);
  r.p99_ms = percentile(all, 0.99);
  return r;
}

std::string configmap(const std::string& prefix, int64_t i, const std::string& extra = "") {
  return R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")" + prefix +
         std::to_string(i) + R"("},"data":{"k":"v")" + extra + "}}";
}

std::string pod(int64_t i) {
  return R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"pod-)" + std::to_string(i) +
         R"(","labels":{"app":"bench"}},"spec":{"containers":[{"name":"c","image":"nginx:1.25",)"
         R"("ports":[{"containerPort":80}]}]}})";
}

// Incremental reader of one watch stream: HTTP head, chunked framing, then one event per line.
// For each event it finds the `"ts":"<ns>"` the writer put in the object and records the delay.
struct WatchReader {
  int fd = -1;
  bool head_done = false;
  bool dead = false;
  std::string raw;   // bytes not yet de-chunked
  std::string body;  // de-chunked bytes not yet split into lines
  int64_t events = 0;

  void feed(const char* p, size_t n, std::vector<int64_t>& lat) {
    raw.append(p, n);
    if (!head_done) {
      size_t e = raw.find("\r\n\r\n");
      if (e == std::string::npos) return;
      if (raw.compare(0, 12, "HTTP/1.1 200") != 0) dead = true;
      raw.erase(0, e + 4);
      head_done = true;
    }
    size_t off = 0;
    for (;;) {
      size_t eol = raw.find("\r\n", off);
      if (eol == std::string::npos) break;
      size_t size = std::strtoul(raw.c_str() + off, nullptr, 16);
      if (size == 0) {
        dead = true;
        break;
      }
      if (raw.size() < eol + 2 + size + 2) break;
      body.append(raw, eol + 2, size);
      off = eol + 2 + size + 2;
    }
    raw.erase(0, off);
    size_t start = 0;
    for (;;) {
      size_t nl = body.find('\n', start);
      if (nl == std::string::npos) break;
      std::string_view line(body.data() + start, nl - start);
      size_t ts = line.find("\"ts\":\"");
      if (ts != std::string_view::npos) {
        int64_t sent = std::strtoll(line.data() + ts + 6, nullptr, 10);
        lat.push_back(now_ns() - sent);
        ++events;
      }
      start = nl + 1;
    }
    body.erase(0, start);
  }
};

struct WatchResult {
  int watchers = 0;
  int connected = 0;
  int64_t written = 0;
  int64_t delivered = 0;
  double write_secs = 0;
  double p50_ms = 0;
  double p99_ms = 0;
};

// `watchers` watch streams; a paced writer creates ConfigMaps at `rate`/s for `seconds`
// (bounded); waits (bounded) until every stream has every event.
WatchResult run_watch(int port, int watchers, double rate, double seconds) {
  WatchResult r;
  r.watchers = watchers;
  std::string ns = "watch-" + std::to_string(watchers);
  make_namespace(port, ns);
  std::string base = "/api/v1/namespaces/" + ns + "/configmaps";
  std::string list;
  Conn c(port);
  c.request("GET", base, "", &list);
  std::string rv = "0";
  if (auto p = list.find("\"resourceVersion\":\""); p != std::string::npos) {
    rv = list.substr(p + 19, list.find('"', p + 19) - p - 19);
  }
  std::string req = "GET " + base + "?watch=true&resourceVersion=" + rv +
                    " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n";
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<WatchReader> readers(static_cast<size_t>(watchers));
  for (int i = 0; i < watchers; ++i) {
    int fd = connect_loopback(port);
    if (fd < 0 || !send_all(fd, req)) {
      if (fd >= 0) ::close(fd);
      continue;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    readers[static_cast<size_t>(i)].fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    ++r.connected;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // watches registered

  std::vector<int64_t> lat;
  lat.reserve(static_cast<size_t>(rate * seconds * watchers) + 16);
  std::atomic<bool> writing{true};
  std::atomic<int64_t> written{0};
  int64_t total = static_cast<int64_t>(rate * seconds);
  std::thread writer([&] {
    // A few connections so one slow create does not hold up the pace.
    constexpr int kLanes = 8;
    std::vector<std::thread> lanes;
    auto t0 = Clock::now();
    for (int l = 0; l < kLanes; ++l) {
      lanes.emplace_back([&, l] {
        Conn w(port);
        for (int64_t i = l; i < total; i += kLanes) {
          auto due = t0 + std::chrono::nanoseconds(static_cast<int64_t>(1e9 * i / rate));
          std::this_thread::sleep_until(due);
          if (Clock::now() - t0 > std::chrono::duration<double>(seconds * 3)) break;
          std::string b = configmap("w-", i, ",\"ts\":\"" + std::to_string(now_ns()) + "\"");
          if (w.request("POST", base, b) == 201) written.fetch_add(1);
        }
      });
    }
    for (auto& t : lanes) t.join();
    r.write_secs = std::chrono::duration<double>(Clock::now() - t0).count();
    writing = false;
  });

  std::vector<epoll_event> evs(256);
  std::vector<char> buf(1 << 16);
  Clock::time_point drain_end{};
  for (;;) {
    if (!writing && drain_end == Clock::time_point{}) {
      drain_end = Clock::now() + std::chrono::seconds(20);
    }
    if (drain_end != Clock::time_point{}) {
      int64_t want = written.load();
      bool all = true;
      for (auto& rd : readers) {
        if (rd.fd >= 0 && !rd.dead && rd.events < want) all = false;
      }
      if (all || Clock::now() > drain_end) break;
    }
    int n = ::epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 100);
    for (int k = 0; k < n; ++k) {
      auto& rd = readers[evs[static_cast<size_t>(k)].data.u32];
      for (;;) {
        ssize_t got = ::recv(rd.fd, buf.data(), buf.size(), 0);
        if (got > 0) {
          rd.feed(buf.data(), static_cast<size_t>(got), lat);
          continue;
        }
        if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
          rd.dead = true;
          ::epoll_ctl(ep, EPOLL_CTL_DEL, rd.fd, nullptr);
        }
        break;
      }
    }
  }
  writer.join();
  for (auto& rd : readers) {
    if (rd.fd >= 0) ::close(rd.fd);
  }
  ::close(ep);
  r.written = written.load();
  r.delivered = static_cast<int64_t>(lat.size());
  r.p50_ms = percentile(lat, 0.50);
  r.p99_ms = percentile(lat, 0.99);
  return r;
}

// What holds `dir`: "<source> <fstype>" from the mountinfo line of its device (st_dev), and for
// ext3/ext4 whether it has a journal (jbd2 lists every journal it runs under
// /proc/fs/jbd2/<device>-<inode>). On a filesystem without one an append's fdatasync writes the
// inode in place; with one it commits a transaction, which a commit into a pre-written file (the
// WAL, pre-sized) does not need.
std::string describe_filesystem(const fs::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return "an unknown filesystem";
  const std::string dev = std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev));
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mount-point options [optional...] - fstype source superopts
    std::istringstream fields(line);
    std::string id, parent, majmin, word, type, source;
    fields >> id >> parent >> majmin;
    if (majmin != dev) continue;
    while (fields >> word && word != "-") {
    }
    if (!(fields >> type >> source)) continue;
    std::string out = source + " " + type;
    if (type == "ext4" || type == "ext3") {
      const std::string name = fs::path(source).filename().string() + "-";
      bool journal = false;
      std::error_code ec;
      for (const auto& e : fs::directory_iterator("/proc/fs/jbd2", ec))
        journal |= e.path().filename().string().rfind(name, 0) == 0;
      out += journal ? " with a journal" : " without a journal";
    }
    return out;
  }
  return "an unknown filesystem";
}

std::string find_server(const std::string& flag) {
  if (!flag.empty()) return flag;
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  for (fs::path p : {self.parent_path() / "skiff-apiserver",
                     self.parent_path().parent_path() / "skiff-apiserver"}) {
    if (fs::exists(p)) return p.string();
  }
  return "skiff-apiserver";
}

void usage() {
  std::printf(
      "usage: bench_api [--server PATH] [--quick] [--tmp DIR] [--only creates|watch|rss]\n"
      "                 [--watchers N] [--etcd PATH | --no-etcd]\n"
      "  --server PATH  skiff-apiserver to run (default: next to this program or one dir up)\n"
      "  --quick        smaller counts (a smoke run)\n"
      "  --tmp DIR      where data dirs go (default $TMPDIR or /tmp; the fsync floor is\n"
      "                 measured there, so put it on the disk you care about)\n"
      "  --watchers N   run the watch fan-out with N watchers only (default 1, 100, 1000)\n"
      "  --only PART    run only the floor and creates, only the watch fan-out, or only the\n"
      "                 RSS measurement (to iterate on one of them)\n"
      "  --etcd PATH    the etcd whose creates are measured beside skiff's as the reference\n"
      "                 (default: etcd on PATH, else Debian's etcd-server unpacked by\n"
      "                 test/tools/deb_unpack.sh, never installed)\n"
      "  --no-etcd      skip the etcd reference\n");
}

int run(int argc, char** argv) {
  std::string server_flag;
  std::string tmp_root = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
  bool quick = false;
  std::string only;
  std::vector<int> watcher_counts = {1, 100, 1000};
  std::string etcd_flag;
  bool no_etcd = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--server" && i + 1 < argc) {
      server_flag = argv[++i];
    } else if (a == "--tmp" && i + 1 < argc) {
      tmp_root = argv[++i];
    } else if (a == "--watchers" && i + 1 < argc && std::atoi(argv[i + 1]) > 0) {
      watcher_counts = {std::min(std::atoi(argv[++i]), 5000)};
    } else if (a == "--etcd" && i + 1 < argc) {
      etcd_flag = argv[++i];
    } else if (a == "--no-etcd") {
      no_etcd = true;
    } else if (a == "--quick") {
      quick = true;
    } else if (a == "--only" && i + 1 < argc &&
               (std::string(argv[i + 1]) == "rss" || std::string(argv[i + 1]) == "creates" ||
                std::string(argv[i + 1]) == "watch")) {
      only = argv[++i];
    } else {
      usage();
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  std::string exe = find_server(server_flag);
  if (::access(exe.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "bench: %s not found or not executable (use --server)\n", exe.c_str());
    return 1;
  }
  ::signal(SIGPIPE, SIG_IGN);
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;  // 1,000 watchers; the server inherits it
  ::setrlimit(RLIMIT_NOFILE, &rl);

  std::string tmpl = (fs::path(tmp_root) / "skiff-bench.XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) {
    std::perror("mkdtemp");
    return 1;
  }
  fs::path dir = tmpl;
  const double k = quick ? 0.1 : 1.0;
  std::printf("skiff-apiserver benchmark (%s), server %s, data under %s (%s), %u CPUs\n",
              quick ? "quick" : "full", exe.c_str(), dir.c_str(),
              describe_filesystem(dir).c_str(), std::thread::hardware_concurrency());

  int rc = 0;
  const bool creates = only.empty() || only == "creates";
  const bool watch = only.empty() || only == "watch";
  const bool rss = only.empty() || only == "rss";
  // The floor is probed before the single-client SQLite creates and after each of their rounds,
  // and fio (the reference tool) runs after the last round: on this VM the same fdatasync took
  // 4-6 ms with the CPUs idle and 0.2-2 ms with them busy (likely the I/O completion waking a
  // halted vCPU), so one probe taken at another moment than the creates is not their floor. The
  // target figure divides the median round by the highest of all probes.
  auto probe_floor = [&] { return fsync_floor(dir, quick ? 500 : 5000, quick ? 1.0 : 3.0); };
  double floor_before = creates ? probe_floor() : 0;
  std::vector<double> floor_probes;  // after each single-client round
  const int single_rounds = quick ? 2 : 3;
  double single_ratio_median = 0;
  double fio_rate = 0;
  std::string fio_why;
  double overwrite_rate = 0;

  double sqlite_single = 0;
  double sqlite_64 = 0;
  double minimal_single = 0;  // MinimalDurableServer, 1 client
  if (creates)
    std::printf("\n%-44s %10s %9s %9s %8s\n", "creates (ConfigMap, plain HTTP keep-alive)",
                "creates/s", "p50 ms", "p99 ms", "errors");
  for (std::string store : {"sqlite", "memory"}) {
    if (!creates) break;
    Server s(exe, store, dir);
    if (!s.ready()) {
      rc = 1;
      continue;
    }
    make_namespace(s.port(), "bench");
    std::string path = "/api/v1/namespaces/bench/configmaps";
    for (int clients : {1, 64}) {
      int64_t total = static_cast<int64_t>((clients == 1 ? 3000 : 30000) * k);
      std::string prefix = "c" + std::to_string(clients) + "-";
      if (store == "sqlite" && clients == 1) {
        // Rounds of creates, each followed by a floor probe: each round is compared with the
        // probes on both sides of it, as the disk's rate moves within a run.
        std::vector<double> rates;
        std::vector<double> ratios;
        double before = floor_before;
        for (int round = 1; round <= single_rounds; ++round) {
          std::string pre = prefix + "r" + std::to_string(round) + "-";
          auto r = run_creates(s.port(), path, 1, total, quick ? 5 : 20,
                               [&](int64_t i) { return configmap(pre, i); });
          double after = probe_floor();
          floor_probes.push_back(after);
          double ratio = std::max(before, after) > 0 ? r.per_sec / std::max(before, after) : 0;
          std::printf("  %-42s %10.0f %9.2f %9.2f %8lld   floors %.0f / %.0f: %.0f%%\n",
                      ("sqlite, 1 client, round " + std::to_string(round)).c_str(), r.per_sec,
                      r.p50_ms, r.p99_ms, static_cast<long long>(r.errors), before, after,
                      100.0 * ratio);
          rates.push_back(r.per_sec);
          ratios.push_back(ratio);
          before = after;
        }
        sqlite_single = median(rates);
        single_ratio_median = median(ratios);
        fio_rate = fio_floor(dir, quick, &fio_why);
        overwrite_rate = fsync_floor(dir, quick ? 500 : 5000, quick ? 1.0 : 3.0, true);
        MinimalDurableServer m(dir);
        if (m.port() > 0) {
          minimal_single = run_creates(m.port(), path, 1, total, quick ? 5 : 20, [&](int64_t i) {
                             return configmap("m-", i);
                           }).per_sec;
        }
        continue;
      }
      auto r = run_creates(s.port(), path, clients, total, quick ? 5 : 20,
                           [&](int64_t i) { return configmap(prefix, i); });
      std::printf(
          "  %-42s %10.0f %9.2f %9.2f %8lld\n",
          (store + ", " + std::to_string(clients) + " client" + (clients > 1 ? "s" : "")).c_str(),
          r.per_sec, r.p50_ms, r.p99_ms, static_cast<long long>(r.errors));
      if (store == "sqlite") sqlite_64 = r.per_sec;
    }
  }
  // The reference: etcd, the store kube-apiserver (and k3s with --cluster-init) writes to, doing
  // the same creates on the same disk in the same run.
  double etcd_single = 0;
  double etcd_64 = 0;
  double floor_etcd = 0;
  if (creates && !no_etcd) {
    std::string why;
    std::string etcd = find_etcd(etcd_flag, &why);
    if (etcd.empty()) {
      std::printf("  %-42s skipped: %s\n", "etcd (reference)", why.c_str());
    } else {
      std::string version = "etcd";
      std::string out;  // "etcd Version: 3.4.23\nGit SHA: ..."
      if (run_command("'" + etcd + "' --version 2>/dev/null", &out) == 0) {
        std::string line = out.substr(0, out.find('\n'));
        if (auto p = line.find(": "); p != std::string::npos) version = "etcd " + line.substr(p + 2);
      }
      Etcd e(etcd, dir);
      if (!e.ready()) {
        rc = 1;
      } else {
        for (int clients : {1, 64}) {
          int64_t total = static_cast<int64_t>((clients == 1 ? 3000 : 30000) * k);
          std::string prefix = "e" + std::to_string(clients) + "-";
          auto r = run_creates(
              e.port(), "/v3/kv/txn", clients, total, quick ? 5 : 20,
              [&](int64_t i) { return etcd_create_txn(prefix, i); }, 200);
          std::printf(
              "  %-42s %10.0f %9.2f %9.2f %8lld\n",
              (version + ", " + std::to_string(clients) + " client" + (clients > 1 ? "s" : ""))
                  .c_str(),
              r.per_sec, r.p50_ms, r.p99_ms, static_cast<long long>(r.errors));
          (clients == 1 ? etcd_single : etcd_64) = r.per_sec;
          if (clients == 1) floor_etcd = probe_floor();
        }
        std::printf("  (etcd: kube-apiserver's create transaction through etcd's JSON gateway)\n");
        // skiff itself on that etcd (--store etcd), the same creates through its API.
        Server s(exe, "etcd", dir,
                 {"--etcd-servers", "http://127.0.0.1:" + std::to_string(e.port())});
        if (!s.ready()) {
          rc = 1;
        } else {
          make_namespace(s.port(), "bench");
          for (int clients : {1, 64}) {
            int64_t total = static_cast<int64_t>((clients == 1 ? 3000 : 30000) * k);
            std::string prefix = "s" + std::to_string(clients) + "-";
            auto r = run_creates(s.port(), "/api/v1/namespaces/bench/configmaps", clients, total,
                                 quick ? 5 : 20, [&](int64_t i) { return configmap(prefix, i); });
            std::printf(
                "  %-42s %10.0f %9.2f %9.2f %8lld\n",
                ("skiff on etcd, " + std::to_string(clients) + " client" + (clients > 1 ? "s" : ""))
                    .c_str(),
                r.per_sec, r.p50_ms, r.p99_ms, static_cast<long long>(r.errors));
          }
        }
      }
    }
  }
  double floor = std::max({floor_before, floor_etcd, fio_rate});
  for (double f : floor_probes) floor = std::max(floor, f);
  if (floor > 0) {
    std::printf("\n%-44s %10.0f ops/s before; after each round:", "disk floor: 4 KiB append + fdatasync",
                floor_before);
    for (double f : floor_probes) std::printf(" %.0f", f);
    if (floor_etcd > 0) std::printf("; %.0f after etcd's", floor_etcd);
    std::printf("\n");
    if (fio_rate > 0)
      std::printf("%-44s %10.0f ops/s (the reference tool: 2,300 B writes + fdatasync)\n",
                  "fio floor", fio_rate);
    else if (creates)
      std::printf("%-44s skipped: %s\n", "fio floor", fio_why.c_str());
    std::printf("%-44s %9.0f%%   (target >= 80%%; median round over the highest probe)\n",
                "sqlite single-client creates / highest floor", 100.0 * sqlite_single / floor);
    std::printf("%-44s %9.0f%%   (median of the rounds' ratios to the probes beside them)\n",
                "sqlite single-client creates / floor beside", 100.0 * single_ratio_median);
    if (etcd_single > 0)
      std::printf("%-44s %9.0f%%   (reference)\n", "etcd single-client creates / highest floor",
                  100.0 * etcd_single / floor);
  }
  if (overwrite_rate > 0) {
    std::printf("%-44s %10.0f ops/s (a commit to the pre-sized WAL)\n",
                "disk: 4 KiB overwrite in place + fdatasync", overwrite_rate);
    std::printf("%-44s %9.0f%%\n", "sqlite single-client creates / that rate",
                100.0 * sqlite_single / overwrite_rate);
  }
  if (minimal_single > 0 && floor > 0) {
    std::printf("%-44s %10.0f creates/s, %.0f%% of the highest floor\n",
                "minimal durable HTTP server, 1 client", minimal_single,
                100.0 * minimal_single / floor);
    std::printf("%-44s %9.0f%%   (reference: read, 4 KiB overwrite + fdatasync, fixed 201)\n",
                "sqlite single-client creates / that server",
                100.0 * sqlite_single / minimal_single);
  }
  if (creates)
    std::printf("%-44s %10.0f   (target >= 5000/s)\n", "sqlite creates/s with 64 clients",
                sqlite_64);
  if (etcd_single > 0 && etcd_64 > 0)
    std::printf("%-44s %9.2fx 1 client, %.2fx 64 clients\n", "skiff sqlite / etcd creates/s",
                sqlite_single / etcd_single, sqlite_64 / etcd_64);

  if (watch) {
    Server s(exe, "sqlite", dir / "watch");
    if (s.ready()) {
      std::printf("\n%-30s %8s %10s %12s %9s %9s %7s\n", "watch fan-out (sqlite)", "events",
                  "events/s", "deliveries/s", "p50 ms", "p99 ms", "lost");
      for (int w : watcher_counts) {
        double secs = quick ? 1.0 : 3.0;
        auto r = run_watch(s.port(), w, 1000, secs);
        int64_t want = r.written * r.connected;
        std::printf("  %-28s %8lld %10.0f %12.0f %9.2f %9.2f %7lld\n",
                    (std::to_string(w) + " watcher" + (w > 1 ? "s" : "") +
                     (r.connected != w ? " (" + std::to_string(r.connected) + " connected)" : ""))
                        .c_str(),
                    static_cast<long long>(r.written),
                    r.write_secs > 0 ? static_cast<double>(r.written) / r.write_secs : 0,
                    r.write_secs > 0 ? static_cast<double>(r.delivered) / r.write_secs : 0,
                    r.p50_ms, r.p99_ms, static_cast<long long>(want - r.delivered));
      }
      std::printf("  (target: p99 < 10 ms at 1,000 events/s to 100 watchers)\n");
    } else {
      rc = 1;
    }
  }

  if (rss) {
    Server s(exe, "sqlite", dir / "rss");
    if (s.ready()) {
      make_namespace(s.port(), "pods");
      int64_t n = quick ? 1000 : 10000;
      long before = s.rss_kib();
      auto r = run_creates(s.port(), "/api/v1/namespaces/pods/pods", 64, n, 120,
                           [](int64_t i) { return pod(i); });
      std::this_thread::sleep_for(std::chrono::seconds(1));
      long after = s.rss_kib();
      std::printf("\n%-44s %7.1f MB (%lld pods created, %.1f MB at start; target <= 50 MB)\n",
                  "API server RSS holding the pods (sqlite)", after / 1024.0,
                  static_cast<long long>(r.ok), before / 1024.0);
    } else {
      rc = 1;
    }
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return rc;
}

}  // namespace
}  // namespace skiff::bench

int main(int argc, char** argv) { return skiff::bench::run(argc, argv); }
