// ShimRuntime: the ContainerRuntime that spawns skiff-shim and reads the state it leaves on disk.
//
// Everything it knows comes from files under <run-dir>/containers/<id> (see shim/README.md), so
// a restarted kubelet sees exactly what the previous one started. Processes are named by pid
// AND start time (field 22 of /proc/<pid>/stat) so a recycled pid is never signalled.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "common/files.h"
#include "kubelet/runtime/runtime.h"
#include "kubelet/runtime/shim/protocol.h"

extern char** environ;

namespace skiff::runtime {
namespace {

namespace fs = std::filesystem;
using shim::ShimExit;
using shim::ShimState;

constexpr auto kStartTimeout = std::chrono::seconds(60);

bool read_text(const std::string& path, std::string* out) {
  auto r = files::read_file(path);
  if (!r.is_ok()) {
    errno = r.status().os_errno();
    return false;
  }
  *out = std::move(r.value());
  return true;
}

Status write_atomic(const std::string& path, const std::string& data) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::io("create " + tmp);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status st = Status::io("write " + tmp);
      close(fd);
      return st;
    }
    off += static_cast<size_t>(n);
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) return Status::io("rename " + tmp);
  return Status::ok();
}

uint64_t start_time_of(pid_t pid) {
  if (pid <= 0) return 0;
  std::string s;
  if (!read_text("/proc/" + std::to_string(pid) + "/stat", &s)) return 0;
  return shim::parse_stat_start_time(s);
}

bool alive(pid_t pid, uint64_t start_time) {
  return pid > 0 && start_time != 0 && start_time_of(pid) == start_time;
}

int64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

bool valid_id(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  }
  return id != "." && id != "..";
}

std::string random_id() {
  unsigned char b[32];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = getrandom(b + got, sizeof b - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    s += kHex[c >> 4];
    s += kHex[c & 15];
  }
  return s;
}

// True when `path` is the root of a mount (its device differs from its parent's).
bool is_mount_point(const std::string& path) {
  struct stat a, b;
  if (stat(path.c_str(), &a) != 0) return false;
  if (stat((path + "/..").c_str(), &b) != 0) return false;
  return a.st_dev != b.st_dev || a.st_ino == b.st_ino;
}

Status mkdirs(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return Status::io("mkdir " + path, ec.value());
  return Status::ok();
}

// posix_spawn (vfork-like: cheap from a big multi-threaded kubelet) with the given fds as the
// child's 0..n-1, default signal dispositions and an empty signal mask.
Result<pid_t> spawn(const std::vector<std::string>& argv, const std::vector<int>& fds,
                    bool new_session) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  for (size_t i = 0; i < fds.size(); ++i) {
    posix_spawn_file_actions_adddup2(&fa, fds[i], static_cast<int>(i));
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
  if (new_session) flags |= POSIX_SPAWN_SETSID;
  posix_spawnattr_setflags(&attr, flags);
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0].c_str(), &fa, &attr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Status::io("spawn " + argv[0], rc);
  return pid;
}

class ShimRuntime : public ContainerRuntime {
 public:
  explicit ShimRuntime(Options o) : o_(std::move(o)) {}
  ~ShimRuntime() override {
    if (watcher_.joinable()) {
      uint64_t one = 1;
      if (write(stop_fd_, &one, sizeof one) < 0) {
        // The thread still sees the closed fds below at its next wake-up.
      }
      watcher_.join();
    }
    if (stop_fd_ >= 0) close(stop_fd_);
    if (inotify_fd_ >= 0) close(inotify_fd_);
  }

  std::string cdir(const std::string& id) const { return o_.run_dir + "/containers/" + id; }
  std::string ddir(const std::string& id) const { return o_.data_dir + "/containers/" + id; }

  Result<ContainerState> start(const ContainerConfig& in) override {
    ContainerConfig c = in;
    if (c.id.empty()) c.id = random_id();
    if (!valid_id(c.id)) return Status::invalid("container id \"" + c.id + "\" is not valid");
    if (c.args.empty()) return Status::invalid("container " + c.id + ": no command");
    std::string dir = cdir(c.id);
    if (access((dir + "/" + shim::kConfigFile).c_str(), F_OK) == 0) {
      return Status::already_exists("container " + c.id + " already exists");
    }
    SKIFF_RETURN_IF_ERROR(mkdirs(dir));
    if (c.rootfs_path.empty()) {
      if (c.image_layers.empty()) {
        return Status::invalid("container " + c.id + ": neither image layers nor a rootfs path");
      }
      SKIFF_RETURN_IF_ERROR(mount_overlay(c, dir));
    }
    if (!c.log_path.empty()) {
      SKIFF_RETURN_IF_ERROR(mkdirs(fs::path(c.log_path).parent_path().string()));
    }
    SKIFF_RETURN_IF_ERROR(
        write_atomic(dir + "/" + shim::kConfigFile, shim::config_to_json(c, now_ns())));

    int ready[2];
    if (pipe2(ready, O_CLOEXEC) != 0) return Status::io("pipe");
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    auto pid = spawn({o_.shim_path, "start", dir, "--ready-fd", "3"},
                     {devnull, devnull, devnull, ready[1]}, /*new_session=*/false);
    close(ready[1]);
    if (devnull >= 0) close(devnull);
    if (!pid) {
      close(ready[0]);
      return pid.status();
    }
    std::string msg;
    Status st = read_ready(ready[0], &msg);
    close(ready[0]);
    int status;
    while (waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!st) return st.with_context("start container " + c.id);
    auto state = inspect(c.id);
    if (!state) return state.status();
    if (state->status != ContainerStatus::kRunning && state->status != ContainerStatus::kExited) {
      // The shim could not even write exit.json (e.g. an unreadable config).
      return Status::internal("start container " + c.id + ": skiff-shim: " + msg);
    }
    return state;
  }

  Status signal(const std::string& id, int sig) override {
    if (!valid_id(id)) return Status::invalid("container id \"" + id + "\" is not valid");
    std::string dir = cdir(id);
    if (access((dir + "/" + shim::kExitFile).c_str(), F_OK) == 0) return Status::ok();
    ShimState s;
    if (!read_state(dir, &s)) {
      if (access(dir.c_str(), F_OK) != 0)
        return Status::not_found("container " + id + " not found");
      return Status::unavailable("container " + id + " is still starting");
    }
    if (!alive(s.pid, s.pid_start_time)) return Status::ok();
    if (kill(s.pid, sig) != 0 && errno != ESRCH) {
      return Status::io("signal " + std::to_string(sig) + " to container " + id + " (pid " +
                        std::to_string(s.pid) + ")");
    }
    return Status::ok();
  }

  Result<ContainerState> inspect(const std::string& id) const override {
    if (!valid_id(id)) return Status::invalid("container id \"" + id + "\" is not valid");
    std::string dir = cdir(id);
    std::string text, err;
    if (!read_text(dir + "/" + shim::kConfigFile, &text)) {
      return Status::not_found("container " + id + " not found");
    }
    ContainerConfig c;
    ContainerState out;
    if (!shim::config_from_json(text, &c, &err, &out.created_at_ns)) {
      return Status::internal("container " + id + ": " + err);
    }
    out.id = id;
    out.labels = std::move(c.labels);
    out.log_path = c.log_path;
    ShimState s;
    bool have_state = read_state(dir, &s);
    if (have_state) {
      out.pid = s.pid;
      out.shim_pid = s.shim_pid;
      out.started_at_ns = s.started_at;
    }
    ShimExit e;
    if (read_text(dir + "/" + shim::kExitFile, &text) && shim::exit_from_json(text, &e, &err)) {
      out.status = ContainerStatus::kExited;
      out.finished_at_ns = e.finished_at;
      out.exit_code = e.exit_code;
      out.signal = e.signal;
      out.oom_killed = e.oom_killed;
      out.reason = e.reason;
      out.message = e.message;
      return out;
    }
    if (!have_state) {
      out.status = ContainerStatus::kCreated;
      return out;
    }
    // The shim writes exit.json only after the container has gone: while the shim lives, the
    // container counts as running even if its pid just vanished.
    if (alive(s.pid, s.pid_start_time) || alive(s.shim_pid, s.shim_start_time)) {
      out.status = ContainerStatus::kRunning;
      return out;
    }
    out.status = ContainerStatus::kExited;
    out.exit_code = 255;
    out.reason = "Error";
    out.message = "the container and its shim are gone without an exit record";
    return out;
  }

  std::vector<ContainerState> list() const override {
    std::vector<ContainerState> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(o_.run_dir + "/containers", ec)) {
      auto st = inspect(e.path().filename().string());
      if (st) out.push_back(std::move(*st));
    }
    return out;
  }

  Status remove(const std::string& id, std::chrono::milliseconds wait) override {
    if (!valid_id(id)) return Status::invalid("container id \"" + id + "\" is not valid");
    std::string dir = cdir(id);
    ShimState s;
    if (read_state(dir, &s) && access((dir + "/" + shim::kExitFile).c_str(), F_OK) != 0) {
      if (alive(s.pid, s.pid_start_time)) kill(s.pid, SIGKILL);
      auto deadline = std::chrono::steady_clock::now() + wait;
      while (alive(s.shim_pid, s.shim_start_time) &&
             access((dir + "/" + shim::kExitFile).c_str(), F_OK) != 0 &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      if (alive(s.pid, s.pid_start_time)) {
        return Status::timeout("remove container " + id + ": pid " + std::to_string(s.pid) +
                               " survived SIGKILL for " + std::to_string(wait.count()) + " ms");
      }
      // The shim may still be draining the pipes; it has nothing left to supervise.
      if (alive(s.shim_pid, s.shim_start_time) &&
          access((dir + "/" + shim::kExitFile).c_str(), F_OK) != 0) {
        kill(s.shim_pid, SIGKILL);
      }
    }
    std::string rootfs = dir + "/" + shim::kRootfsDir;
    for (int i = 0; i < 8 && is_mount_point(rootfs); ++i) {
      if (umount2(rootfs.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
        return Status::io("unmount " + rootfs);
      }
    }
    if (is_mount_point(rootfs))
      return Status::internal("remove container " + id + ": " + rootfs + " is still mounted");
    for (const std::string& d : {dir, ddir(id)}) {
      std::error_code ec;
      fs::remove_all(d, ec);
      if (ec) return Status::io("remove " + d, ec.value());
    }
    return Status::ok();
  }

  Result<ExecProcess> exec(const std::string& id, const ExecOptions& opts) override {
    auto st = inspect(id);
    if (!st) return st.status();
    if (st->status != ContainerStatus::kRunning) {
      return Status::invalid("container " + id + " is not running");
    }
    if (opts.args.empty()) return Status::invalid("exec in container " + id + ": no command");
    std::vector<std::string> argv = {o_.shim_path, "exec", cdir(id)};
    if (opts.tty) argv.push_back("--tty");
    for (const auto& e : opts.env) {
      argv.push_back("--env");
      argv.push_back(e);
    }
    argv.push_back("--");
    argv.insert(argv.end(), opts.args.begin(), opts.args.end());

    ExecProcess p;
    std::vector<int> child_fds, close_after;
    auto cleanup = [&] {
      for (int fd : close_after) close(fd);
    };
    if (opts.tty) {
      int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
      if (master < 0) return Status::io("open /dev/ptmx");
      char name[128];
      if (grantpt(master) != 0 || unlockpt(master) != 0 ||
          ptsname_r(master, name, sizeof name) != 0) {
        Status e = Status::io("set up a pty");
        close(master);
        return e;
      }
      int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
      if (slave < 0) {
        Status e = Status::io(std::string("open ") + name);
        close(master);
        return e;
      }
      child_fds = {slave, slave, slave};
      close_after = {slave};
      p.stdout_fd = master;
      p.stdin_fd = opts.stdin ? fcntl(master, F_DUPFD_CLOEXEC, 0) : -1;
    } else {
      int in[2] = {-1, -1}, out[2], err[2];
      if (opts.stdin) {
        if (pipe2(in, O_CLOEXEC) != 0) return Status::io("pipe");
      } else {
        in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
      }
      if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return Status::io("pipe");
      child_fds = {in[0], out[1], err[1]};
      close_after = {in[0], out[1], err[1]};
      p.stdin_fd = in[1];
      p.stdout_fd = out[0];
      p.stderr_fd = err[0];
    }
    auto pid = spawn(argv, child_fds, /*new_session=*/!opts.tty);
    cleanup();
    if (!pid) {
      for (int fd : {p.stdin_fd, p.stdout_fd, p.stderr_fd}) {
        if (fd >= 0) close(fd);
      }
      return pid.status();
    }
    p.pid = *pid;
    return p;
  }

  Result<int> wait_exec(const ExecProcess& p, std::chrono::milliseconds timeout) override {
    int pidfd = static_cast<int>(syscall(SYS_pidfd_open, p.pid, 0));
    bool timed_out = false;
    if (pidfd >= 0) {
      struct pollfd pfd = {pidfd, POLLIN, 0};
      int n;
      do {
        n = poll(&pfd, 1, static_cast<int>(timeout.count()));
      } while (n < 0 && errno == EINTR);
      close(pidfd);
      timed_out = n == 0;
    } else {
      auto deadline = std::chrono::steady_clock::now() + timeout;
      int status;
      while (true) {
        pid_t r = waitpid(p.pid, &status, WNOHANG);
        if (r == p.pid) return decode(status);
        if (r < 0) return Status::io("wait for exec pid " + std::to_string(p.pid));
        if (std::chrono::steady_clock::now() >= deadline) {
          timed_out = true;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    if (timed_out) kill(p.pid, SIGKILL);  // the command dies with it (PDEATHSIG)
    int status;
    while (waitpid(p.pid, &status, 0) < 0) {
      if (errno != EINTR) return Status::io("wait for exec pid " + std::to_string(p.pid));
    }
    if (timed_out) {
      return Status::timeout("exec pid " + std::to_string(p.pid) + " did not finish within " +
                             std::to_string(timeout.count()) + " ms");
    }
    return decode(status);
  }

  // The watches are in place when this returns: an exit after it is never missed.
  void on_exit(std::function<void(const std::string& id)> cb) override {
    std::lock_guard<std::mutex> lock(mu_);
    callbacks_.push_back(std::move(cb));
    if (!watcher_.joinable() && start_watching()) {
      watcher_ = std::thread([this] { watch_loop(); });
    }
  }

 private:
  static int decode(int status) {
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  }

  bool read_state(const std::string& dir, ShimState* s) const {
    std::string text, err;
    return read_text(dir + "/" + shim::kStateFile, &text) && shim::state_from_json(text, s, &err);
  }

  Status mount_overlay(const ContainerConfig& c, const std::string& dir) {
    std::string data = ddir(c.id);
    SKIFF_RETURN_IF_ERROR(mkdirs(data + "/upper"));
    SKIFF_RETURN_IF_ERROR(mkdirs(data + "/work"));
    std::string rootfs = dir + "/" + shim::kRootfsDir;
    SKIFF_RETURN_IF_ERROR(mkdirs(rootfs));
    if (is_mount_point(rootfs)) return Status::ok();  // a retried start
    std::string lower;
    for (const auto& l : c.image_layers) {
      if (!lower.empty()) lower += ':';
      lower += l;
    }
    std::string opts =
        "lowerdir=" + lower + ",upperdir=" + data + "/upper,workdir=" + data + "/work";
    if (mount("overlay", rootfs.c_str(), "overlay", 0, opts.c_str()) != 0) {
      return Status::io("mount overlay on " + rootfs + " (" +
                        std::to_string(c.image_layers.size()) + " layers)");
    }
    return Status::ok();
  }

  // Waits for the shim's one line: "started <pid>" or "failed <message>".
  Status read_ready(int fd, std::string* msg) {
    auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
    char buf[4096];
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return Status::timeout("skiff-shim did not report within 60 s");
      struct pollfd pfd = {fd, POLLIN, 0};
      int n = poll(&pfd, 1, static_cast<int>(left.count()));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::io("poll the shim's ready pipe");
      if (n == 0) continue;
      ssize_t r = read(fd, buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Status::io("read the shim's ready pipe");
      if (r == 0) break;
      msg->append(buf, static_cast<size_t>(r));
      if (msg->find('\n') != std::string::npos) break;
    }
    if (msg->empty()) return Status::internal("skiff-shim exited without reporting");
    if (msg->back() == '\n') msg->pop_back();
    if (msg->rfind("failed ", 0) == 0) msg->erase(0, 7);
    return Status::ok();
  }

  void fire(const std::string& id) {
    std::vector<std::function<void(const std::string&)>> cbs;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cbs = callbacks_;
    }
    for (auto& cb : cbs) cb(id);
  }

  // inotify is not recursive: one watch on containers/ for new directories, one per container
  // directory for exit.json (the shim renames it into place: IN_MOVED_TO).
  bool start_watching() {
    root_ = o_.run_dir + "/containers";
    if (!mkdirs(root_)) return false;
    inotify_fd_ = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (inotify_fd_ < 0) return false;
    stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    root_wd_ = inotify_add_watch(inotify_fd_, root_.c_str(), IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(root_, ec)) {
      watch_dir(e.path().filename().string(), false);
    }
    return true;
  }

  void watch_dir(const std::string& id, bool fire_if_exited) {
    int wd = inotify_add_watch(inotify_fd_, (root_ + "/" + id).c_str(), IN_MOVED_TO | IN_ONLYDIR);
    if (wd < 0) return;
    wds_[wd] = id;
    // exit.json may have landed before the watch existed.
    if (fire_if_exited && access((root_ + "/" + id + "/" + shim::kExitFile).c_str(), F_OK) == 0) {
      fire(id);
    }
  }

  void watch_loop() {
    alignas(struct inotify_event) char buf[16384];
    while (true) {
      struct pollfd pfd[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      if (poll(pfd, 2, -1) < 0 && errno != EINTR) break;
      if (pfd[1].revents) break;
      if (!pfd[0].revents) continue;
      ssize_t n = read(inotify_fd_, buf, sizeof buf);
      if (n <= 0) continue;
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<struct inotify_event*>(p);
        p += sizeof(struct inotify_event) + ev->len;
        std::string name = ev->len ? ev->name : "";
        if (ev->wd == root_wd_) {
          if ((ev->mask & IN_ISDIR) && !name.empty()) watch_dir(name, true);
          continue;
        }
        if (ev->mask & IN_IGNORED) {
          wds_.erase(ev->wd);
          continue;
        }
        auto it = wds_.find(ev->wd);
        if (it != wds_.end() && name == shim::kExitFile) fire(it->second);
      }
    }
  }

  Options o_;
  std::mutex mu_;
  std::vector<std::function<void(const std::string&)>> callbacks_;
  std::thread watcher_;
  // Owned by the watcher thread once it runs.
  std::string root_;
  int inotify_fd_ = -1;
  int root_wd_ = -1;
  int stop_fd_ = -1;
  std::map<int, std::string> wds_;
};

}  // namespace

std::unique_ptr<ContainerRuntime> make_shim_runtime(ContainerRuntime::Options opts) {
  return std::make_unique<ShimRuntime>(std::move(opts));
}

}  // namespace skiff::runtime
