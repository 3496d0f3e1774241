// `skiff-shim exec`: runs a process inside a running container, as the kubelet's exec and exec
// probes need. Joins the container's cgroups and namespaces through /proc/<pid>/ns, forks (so
// the child is inside the PID namespace), applies the container's user, capabilities,
// no_new_privs and seccomp filter, and execs. The helper waits and exits with the command's
// status (128+signal when killed), so the runtime only has to wait for this process.
//
// With --tty the caller passes a terminal (a pty slave) as stdin/stdout/stderr; the command
// gets it as its controlling terminal in a new session.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kubelet/runtime/shim/exec_path.h"
#include "kubelet/runtime/shim/protocol.h"
#include "kubelet/runtime/shim/shim.h"

namespace skiff::runtime::shim {
namespace {

pid_t g_child = 0;

void forward(int sig) {
  if (g_child > 0) kill(g_child, sig);
}

int die(const std::string& msg) {
  fprintf(stderr, "skiff-shim exec: %s\n", msg.c_str());
  return 126;
}

}  // namespace

int cmd_exec(int argc, char** argv) {
  if (argc < 3) return die("usage: skiff-shim exec <container-dir> [--tty] [--env K=V]... -- ARGS");
  std::string dir = argv[2];
  bool tty = false;
  std::vector<std::string> extra_env, args;
  int i = 3;
  for (; i < argc; ++i) {
    if (strcmp(argv[i], "--") == 0) {
      ++i;
      break;
    }
    if (strcmp(argv[i], "--tty") == 0) {
      tty = true;
    } else if (strcmp(argv[i], "--env") == 0 && i + 1 < argc) {
      extra_env.push_back(argv[++i]);
    } else {
      return die(std::string("unknown argument ") + argv[i]);
    }
  }
  for (; i < argc; ++i) args.push_back(argv[i]);
  if (args.empty()) return die("no command given");

  ContainerConfig c;
  std::string text, err;
  if (!read_file(dir + "/" + kConfigFile, &text))
    return die(errno_msg("read " + dir + "/config.json", errno));
  if (!config_from_json(text, &c, &err)) return die(err);
  ShimState st;
  if (!read_file(dir + "/" + kStateFile, &text))
    return die("container is not running (no state.json)");
  if (!state_from_json(text, &st, &err)) return die(err);
  if (st.pid <= 0 || proc_start_time(st.pid) != st.pid_start_time) {
    return die("container is not running (pid " + std::to_string(st.pid) + " is gone)");
  }
  std::string exit_file = dir + "/" + kExitFile;
  if (access(exit_file.c_str(), F_OK) == 0) return die("container is not running (it exited)");

  // Open every namespace before entering any: after setns(mnt) the host's /proc is gone.
  static const struct {
    const char* name;
    int type;
  } kNs[] = {{"cgroup", CLONE_NEWCGROUP}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
             {"net", CLONE_NEWNET},       {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS}};
  int fds[6];
  for (int k = 0; k < 6; ++k) {
    std::string p = "/proc/" + std::to_string(st.pid) + "/ns/" + kNs[k].name;
    fds[k] = open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fds[k] < 0) return die(errno_msg("open " + p, errno));
  }
  int last_cap = read_last_cap();
  for (const auto& d : c.cgroup_dirs) {
    std::string p = d + "/cgroup.procs";
    int fd = open(p.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) return die(errno_msg("join cgroup " + p, errno));
    close(fd);
  }
  for (int k = 0; k < 6; ++k) {
    if (setns(fds[k], kNs[k].type) != 0) {
      return die(
          errno_msg(std::string("join the container's ") + kNs[k].name + " namespace", errno));
    }
    close(fds[k]);
  }
  if (chdir("/") != 0) return die(errno_msg("chdir /", errno));

  std::vector<std::string> env = env_merge(c.env, extra_env);
  pid_t child = fork();
  if (child < 0) return die(errno_msg("fork", errno));
  if (child == 0) {
    if (tty) {
      setsid();
      ioctl(0, TIOCSCTTY, 0);
    }
    std::string cwd = c.cwd.empty() ? "/" : c.cwd;
    if (chdir(cwd.c_str()) != 0) _exit(die(errno_msg("chdir " + cwd, errno)));
    std::string e = apply_security(c, last_cap);
    if (!e.empty()) _exit(die(e));
    // After the credential change (which clears it): die with the helper, so a runtime that
    // kills the helper on timeout also ends the command.
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    e = exec_args(args, env);
    fprintf(stderr, "%s\n", e.c_str());
    _exit(e.find("not found") != std::string::npos ? 127 : 126);
  }
  g_child = child;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward;
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGWINCH}) sigaction(sig, &sa, nullptr);
  int status = 0;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return die(errno_msg("wait", errno));
  }
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

}  // namespace skiff::runtime::shim
