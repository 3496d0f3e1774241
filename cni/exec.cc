#include "cni/exec.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

namespace skiff::cni {
namespace {

struct Fd {
  int fd = -1;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

// Blocks SIGPIPE in this thread while we write to a plugin's stdin (a plugin may exit without
// reading it), then drops a SIGPIPE that became pending so it never reaches the process.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE);
  }
  ~SigpipeGuard() {
    if (!was_pending_) {
      struct timespec zero = {0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) == SIGPIPE) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t pipe_, old_;
  bool was_pending_ = false;
};

void kill_and_reap(pid_t pid) {
  ::kill(-pid, SIGKILL);  // its own process group: helpers it spawned (iptables...) die too
  ::kill(pid, SIGKILL);
  int st;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

Result<ExecOutput> exec_plugin(const std::string& path, const std::vector<std::string>& env,
                               const std::string& stdin_data, std::chrono::milliseconds timeout) {
  SigpipeGuard guard;
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return Status::io("pipe for " + path);
  Fd in_r{in[0]}, in_w{in[1]};
  if (::pipe2(out, O_CLOEXEC) != 0) return Status::io("pipe for " + path);
  Fd out_r{out[0]}, out_w{out[1]};
  if (::pipe2(err, O_CLOEXEC) != 0) return Status::io("pipe for " + path);
  Fd err_r{err[0]}, err_w{err[1]};

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The kubelet blocks SIGTERM/SIGINT for sigwait and may ignore SIGPIPE: a plugin starts with
  // an empty mask and default dispositions, in its own process group (killed as a whole).
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> argv = {const_cast<char*>(path.c_str()), nullptr};
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, path.c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Status::io("exec " + path, rc);
  in_r.reset();
  out_w.reset();
  err_w.reset();
  for (int fd : {in_w.fd, out_r.fd, err_r.fd}) ::fcntl(fd, F_SETFL, O_NONBLOCK);

  auto deadline = std::chrono::steady_clock::now() + timeout;
  ExecOutput res;
  size_t written = 0;
  if (stdin_data.empty()) in_w.reset();
  char buf[16384];
  while (out_r.fd >= 0 || err_r.fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      kill_and_reap(pid);
      return Status::timeout("exec " + path + ": no answer within " +
                             std::to_string(timeout.count()) + " ms; killed");
    }
    struct pollfd p[3] = {{in_w.fd, POLLOUT, 0}, {out_r.fd, POLLIN, 0}, {err_r.fd, POLLIN, 0}};
    int n = ::poll(p, 3, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (n < 0 && errno != EINTR) {
      Status st = Status::io("poll plugin " + path);
      kill_and_reap(pid);
      return st;
    }
    if (n <= 0) continue;
    if (in_w.fd >= 0 && (p[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = ::write(in_w.fd, stdin_data.data() + written, stdin_data.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      // EPIPE: the plugin does not read its config (fine, e.g. VERSION); stop writing.
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == stdin_data.size()) {
        in_w.reset();
      }
    }
    for (int i = 1; i <= 2; ++i) {
      Fd& fd = i == 1 ? out_r : err_r;
      if (fd.fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = ::read(fd.fd, buf, sizeof buf);
      if (r > 0) {
        (i == 1 ? res.out : res.err).append(buf, static_cast<size_t>(r));
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        fd.reset();
      }
    }
  }
  in_w.reset();
  // Both pipes closed; the plugin is exiting. Still bounded: a plugin that closed its output
  // and hangs is killed at the same deadline.
  for (;;) {
    int st = 0;
    pid_t w = ::waitpid(pid, &st, WNOHANG);
    if (w == pid) {
      res.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      if (WIFSIGNALED(st)) res.err += "\n(killed by signal " + std::to_string(WTERMSIG(st)) + ")";
      return res;
    }
    if (w < 0 && errno != EINTR) return Status::io("waitpid plugin " + path);
    if (std::chrono::steady_clock::now() >= deadline) {
      kill_and_reap(pid);
      return Status::timeout("exec " + path + ": did not exit within " +
                             std::to_string(timeout.count()) + " ms; killed");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace skiff::cni
