// skiff-shim: one small supervisor per container (see README.md here for the contract).
//
//   skiff-shim start <container-dir> [--ready-fd N]   detach, start, report, supervise
//   skiff-shim run <container-dir>                    the same in the foreground; exits with
//                                                     the container's status
//   skiff-shim exec <container-dir> [--tty] [--env K=V]... -- ARGS...
//
// It stays a static binary with no logging library and no threads: one poll loop over the
// container's stdout/stderr pipes and a signalfd for SIGCHLD.
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kubelet/runtime/shim/cri_log.h"
#include "kubelet/runtime/shim/protocol.h"
#include "kubelet/runtime/shim/shim.h"

namespace skiff::runtime::shim {

std::string errno_msg(const std::string& what, int err) { return what + ": " + strerror(err); }

bool read_file(const std::string& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out->clear();
  char buf[8192];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      close(fd);
      errno = err;
      return n == 0;
    }
    out->append(buf, static_cast<size_t>(n));
  }
}

bool write_all(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool write_file_atomic(const std::string& path, const std::string& data) {
  // No fsync: these files describe processes, which a reboot ends anyway.
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = write_all(fd, data.data(), data.size());
  close(fd);
  return ok && rename(tmp.c_str(), path.c_str()) == 0;
}

uint64_t proc_start_time(pid_t pid) {
  std::string s;
  if (!read_file("/proc/" + std::to_string(pid) + "/stat", &s)) return 0;
  return parse_stat_start_time(s);
}

int read_last_cap() {
  std::string s;
  if (!read_file("/proc/sys/kernel/cap_last_cap", &s)) return 40;
  return atoi(s.c_str());
}

namespace {

// The OOM-kill counter of the container's memory cgroup (v2 memory.events, v1
// memory.oom_control), -1 when there is none.
int64_t read_oom_kills(const ContainerConfig& c) {
  for (const auto& d : c.cgroup_dirs) {
    std::string s;
    if (!read_file(d + "/memory.events", &s) && !read_file(d + "/memory.oom_control", &s)) continue;
    size_t p = s.find("oom_kill ");
    if (p == std::string::npos) continue;
    return strtoll(s.c_str() + p + 9, nullptr, 10);
  }
  return -1;
}

struct Stream {
  const char* name;
  int fd = -1;
  CriLineSplitter splitter;
};

class Supervisor {
 public:
  Supervisor(ContainerConfig c, std::string dir) : c_(std::move(c)), dir_(std::move(dir)) {}

  // Starts the container. Returns "" on success; else the StartError message (exit.json is
  // written either way). `ready_fd` (-1 for none) gets "started <pid>\n" or "failed <msg>\n".
  std::string start(int ready_fd, bool foreground) {
    last_cap_ = read_last_cap();
    bool logging = !c_.log_path.empty();
    if (logging) {
      std::string parent = c_.log_path.substr(0, c_.log_path.rfind('/'));
      mkdir(parent.c_str(), 0755);
      int err = log_.open(c_.log_path, c_.log_max_bytes, c_.log_max_files);
      if (err != 0) return start_error(ready_fd, errno_msg("open log " + c_.log_path, err));
    }
    int errpipe[2], outpipe[2] = {-1, -1}, errout[2] = {-1, -1};
    if (pipe2(errpipe, O_CLOEXEC) != 0) return start_error(ready_fd, errno_msg("pipe", errno));
    if (logging && (pipe2(outpipe, O_CLOEXEC) != 0 || pipe2(errout, O_CLOEXEC) != 0)) {
      return start_error(ready_fd, errno_msg("pipe", errno));
    }
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    oom_before_ = read_oom_kills(c_);

    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, nullptr);
    sigfd_ = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

    unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | SIGCHLD;
    // Without a sandbox (bench, `run` by hand) the container gets its own net/ipc/uts, as an
    // OCI bundle's default namespaces would give it under crun.
    if (c_.sandbox_dir.empty()) flags |= CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
    // Raw clone with fork semantics (no new stack): the shim is single-threaded, so the child
    // may keep using the heap until it execs.
    pid_t pid = static_cast<pid_t>(syscall(SYS_clone, flags, nullptr, nullptr, nullptr, nullptr));
    if (pid < 0) return start_error(ready_fd, errno_msg("clone the container process", errno));
    if (pid == 0) {
      InitFds fds{devnull, outpipe[1], errout[1], errpipe[1]};
      if (!logging && !foreground) fds.stdout_fd = fds.stderr_fd = devnull;
      container_init(c_, dir_, fds, last_cap_);
    }
    pid_ = pid;
    close(errpipe[1]);
    if (logging) {
      close(outpipe[1]);
      close(errout[1]);
      out_.name = "stdout";
      out_.fd = outpipe[0];
      err_.name = "stderr";
      err_.fd = errout[0];
    }
    if (devnull >= 0) close(devnull);
    // The child's setup errors or exec failure arrive here; EOF alone means execve succeeded.
    std::string msg;
    char buf[1024];
    while (true) {
      ssize_t n = read(errpipe[0], buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      msg.append(buf, static_cast<size_t>(n));
    }
    close(errpipe[0]);
    if (!msg.empty()) {
      int status;
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      pid_ = 0;
      drain(200);
      return start_error(ready_fd, msg);
    }
    ShimState st;
    st.shim_pid = getpid();
    st.shim_start_time = proc_start_time(st.shim_pid);
    st.pid = pid;
    st.pid_start_time = proc_start_time(pid);
    st.started_at = realtime_ns();
    write_file_atomic(dir_ + "/" + kStateFile, state_to_json(st));
    if (ready_fd >= 0) {
      std::string r = "started " + std::to_string(pid) + "\n";
      write_all(ready_fd, r.data(), r.size());
      close(ready_fd);
    }
    return "";
  }

  // Relays output and reaps until the container has exited; writes exit.json. Returns the
  // container's exit code (128+signal when killed).
  int supervise() {
    signal(SIGPIPE, SIG_IGN);
    malloc_trim(0);  // the config and JSON parsing are done: give their pages back
    int status = 0;
    bool exited = false;
    while (!exited) {
      struct pollfd pfd[3] = {{sigfd_, POLLIN, 0}, {out_.fd, POLLIN, 0}, {err_.fd, POLLIN, 0}};
      int n = poll(pfd, 3, -1);
      if (n < 0 && errno != EINTR) break;
      if (pfd[1].revents) pump(out_);
      if (pfd[2].revents) pump(err_);
      if (pfd[0].revents) {
        struct signalfd_siginfo si;
        while (read(sigfd_, &si, sizeof si) > 0) {
        }
        exited = reap(&status);
      }
    }
    int64_t finished = realtime_ns();
    // The PID namespace died with its init, so every writer of the pipes is gone; the timeout
    // only guards against a pipe end passed somewhere else.
    drain(2000);
    ShimExit ex;
    ex.finished_at = finished;
    if (WIFSIGNALED(status)) {
      ex.signal = WTERMSIG(status);
      ex.exit_code = 128 + ex.signal;
    } else {
      ex.exit_code = WEXITSTATUS(status);
    }
    if (ex.signal == SIGKILL && oom_before_ >= 0 && read_oom_kills(c_) > oom_before_) {
      ex.oom_killed = true;
    }
    ex.reason = ex.oom_killed ? "OOMKilled" : ex.exit_code == 0 ? "Completed" : "Error";
    write_file_atomic(dir_ + "/" + kExitFile, exit_to_json(ex));
    return ex.exit_code;
  }

 private:
  std::string start_error(int ready_fd, const std::string& msg) {
    ShimExit ex;
    ex.exit_code = kStartErrorExitCode;
    ex.finished_at = realtime_ns();
    ex.reason = "StartError";
    ex.message = msg;
    write_file_atomic(dir_ + "/" + kExitFile, exit_to_json(ex));
    if (ready_fd >= 0) {
      std::string r = "failed " + msg + "\n";
      write_all(ready_fd, r.data(), r.size());
      close(ready_fd);
    }
    return msg;
  }

  bool reap(int* status) {
    bool exited = false;
    while (true) {
      int st;
      pid_t p = waitpid(-1, &st, WNOHANG);
      if (p <= 0) break;
      if (p == pid_) {
        *status = st;
        exited = true;
      }
    }
    return exited;
  }

  // Reads what is available on one stream into the log; closes it at EOF.
  void pump(Stream& s) {
    char buf[32 * 1024];
    ssize_t n = read(s.fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
      s.splitter.finish([&](bool partial, std::string_view text) { emit(s, partial, text); });
      close(s.fd);
      s.fd = -1;
      return;
    }
    s.splitter.feed(std::string_view(buf, static_cast<size_t>(n)),
                    [&](bool partial, std::string_view text) { emit(s, partial, text); });
  }

  void emit(Stream& s, bool partial, std::string_view text) {
    log_.write_record(format_cri_line(realtime_ns(), s.name, partial, text));
  }

  void drain(int timeout_ms) {
    int64_t deadline = realtime_ns() + int64_t{timeout_ms} * 1000000;
    while (out_.fd >= 0 || err_.fd >= 0) {
      int left = static_cast<int>((deadline - realtime_ns()) / 1000000);
      if (left <= 0) break;
      struct pollfd pfd[2] = {{out_.fd, POLLIN, 0}, {err_.fd, POLLIN, 0}};
      if (poll(pfd, 2, left) <= 0) break;
      if (pfd[0].revents) pump(out_);
      if (pfd[1].revents) pump(err_);
    }
    for (Stream* s : {&out_, &err_}) {
      if (s->fd >= 0) {
        s->splitter.finish([&](bool partial, std::string_view text) { emit(*s, partial, text); });
        close(s->fd);
        s->fd = -1;
      }
    }
  }

  ContainerConfig c_;
  std::string dir_;
  CriLogFile log_;
  Stream out_, err_;
  int sigfd_ = -1;
  int last_cap_ = 40;
  pid_t pid_ = 0;
  int64_t oom_before_ = -1;
};

bool load_config(const std::string& dir, ContainerConfig* c, std::string* err) {
  std::string text;
  if (!read_file(dir + "/" + kConfigFile, &text)) {
    *err = errno_msg("read " + dir + "/" + kConfigFile, errno);
    return false;
  }
  return config_from_json(text, c, err);
}

void report_failure(int ready_fd, const std::string& msg) {
  if (ready_fd >= 0) {
    std::string r = "failed " + msg + "\n";
    write_all(ready_fd, r.data(), r.size());
  } else {
    fprintf(stderr, "skiff-shim: %s\n", msg.c_str());
  }
}

int usage() {
  fprintf(stderr,
          "usage: skiff-shim start <container-dir> [--ready-fd N]\n"
          "       skiff-shim run <container-dir>\n"
          "       skiff-shim exec <container-dir> [--tty] [--env K=V]... -- ARGS...\n");
  return 2;
}

int cmd_start_or_run(int argc, char** argv, bool foreground) {
  if (argc < 3) return usage();
  char abs[4096];
  if (!realpath(argv[2], abs)) {
    fprintf(stderr, "skiff-shim: %s: %s\n", argv[2], strerror(errno));
    return 125;
  }
  std::string dir = abs;
  int ready_fd = -1;
  for (int i = 3; i + 1 < argc; ++i) {
    if (strcmp(argv[i], "--ready-fd") == 0) ready_fd = atoi(argv[++i]);
  }
  ContainerConfig c;
  std::string err;
  if (!load_config(dir, &c, &err)) {
    report_failure(ready_fd, err);
    return 125;
  }
  if (!foreground) {
    // Nothing the kubelet leaked (an fd without CLOEXEC) may live as long as the container.
    if (ready_fd > 3) syscall(SYS_close_range, 3, ready_fd - 1, 0);
    syscall(SYS_close_range, ready_fd >= 3 ? ready_fd + 1 : 3, ~0U, 0);
    // Detach from the kubelet: a new session, then a fork so the shim is neither the process
    // the kubelet spawned nor a session leader (it can never acquire a controlling terminal).
    // A kill -9 of the kubelet, or of its process group, leaves it alone.
    if (setsid() < 0 && errno != EPERM) {
      report_failure(ready_fd, errno_msg("setsid", errno));
      return 125;
    }
    pid_t p = fork();
    if (p < 0) {
      report_failure(ready_fd, errno_msg("fork", errno));
      return 125;
    }
    if (p > 0) _exit(0);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
      close(null);
    }
    if (chdir("/") != 0) {
      // Not fatal: every path the shim uses is absolute.
    }
  }
  Supervisor sup(std::move(c), dir);
  std::string start_err = sup.start(ready_fd, foreground);
  if (!start_err.empty()) {
    if (!foreground) return 0;  // reported through the ready fd and exit.json
    fprintf(stderr, "skiff-shim: %s\n", start_err.c_str());
    return kStartErrorExitCode;
  }
  return sup.supervise();
}

}  // namespace
}  // namespace skiff::runtime::shim

int main(int argc, char** argv) {
  using namespace skiff::runtime::shim;
  if (argc < 2) return usage();
  if (strcmp(argv[1], "start") == 0) return cmd_start_or_run(argc, argv, false);
  if (strcmp(argv[1], "run") == 0) return cmd_start_or_run(argc, argv, true);
  if (strcmp(argv[1], "exec") == 0) return cmd_exec(argc, argv);
  return usage();
}
