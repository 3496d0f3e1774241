// The container's first process: namespaces, cgroups, root filesystem, privileges, exec.
//
// Mount targets live in a root filesystem the image controls, so every target is resolved with
// openat2(RESOLVE_IN_ROOT): a symlink in the image ("/proc -> /") cannot make us mount on the
// host. The mount then goes onto /proc/self/fd/N of that O_PATH fd, as crun does.
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "kubelet/runtime/shim/caps.h"
#include "kubelet/runtime/shim/exec_path.h"
#include "kubelet/runtime/shim/shim.h"

namespace skiff::runtime::shim {
namespace {

[[noreturn]] void fail(const InitFds& fds, const std::string& msg) {
  write_all(fds.error_fd, msg.data(), msg.size());
  _exit(1);
}

std::string fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

int openat2_in_root(int rootfd, const std::string& rel, int flags) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(
      syscall(SYS_openat2, rootfd, rel.empty() ? "." : rel.c_str(), &how, sizeof how));
}

// Opens `path` (absolute, inside the root) as O_PATH, creating missing directories (and, when
// `dir` is false, the last component as an empty file). Returns the fd or -1 with errno set.
int open_in_root(int rootfd, const std::string& path, bool create, bool dir) {
  int fd = openat2_in_root(rootfd, path, O_PATH);
  if (fd >= 0 || errno != ENOENT || !create) return fd;
  std::vector<std::string> comps;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) comps.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  std::string prefix;
  for (size_t k = 0; k < comps.size(); ++k) {
    std::string parent = prefix;
    prefix += "/" + comps[k];
    int f = openat2_in_root(rootfd, prefix, O_PATH);
    if (f >= 0) {
      if (k + 1 < comps.size())
        close(f);
      else
        return f;
      continue;
    }
    if (errno != ENOENT) return -1;
    int pfd = openat2_in_root(rootfd, parent, O_PATH | O_DIRECTORY);
    if (pfd < 0) return -1;
    bool last = k + 1 == comps.size();
    int rc;
    if (!last || dir) {
      rc = mkdirat(pfd, comps[k].c_str(), 0755);
    } else {
      rc = openat(pfd, comps[k].c_str(), O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
      if (rc >= 0) rc = close(rc);
    }
    int err = errno;
    close(pfd);
    if (rc < 0 && err != EEXIST) {
      errno = err;
      return -1;
    }
  }
  return openat2_in_root(rootfd, path, O_PATH);
}

struct MountFlags {
  unsigned long flags = 0;
  std::string data;
};

MountFlags parse_options(const std::vector<std::string>& options) {
  MountFlags out;
  for (const auto& o : options) {
    if (o == "ro")
      out.flags |= MS_RDONLY;
    else if (o == "rw")
      out.flags &= ~static_cast<unsigned long>(MS_RDONLY);
    else if (o == "nosuid")
      out.flags |= MS_NOSUID;
    else if (o == "nodev")
      out.flags |= MS_NODEV;
    else if (o == "noexec")
      out.flags |= MS_NOEXEC;
    else if (o == "noatime")
      out.flags |= MS_NOATIME;
    else if (o == "relatime")
      out.flags |= MS_RELATIME;
    else if (o == "strictatime")
      out.flags |= MS_STRICTATIME;
    else if (o == "bind" || o == "rbind" || o == "private" || o == "rprivate" || o == "suid" ||
             o == "dev" || o == "exec") {
      // bind is the type already; propagation is private for the whole tree.
    } else {
      if (!out.data.empty()) out.data += ',';
      out.data += o;
    }
  }
  return out;
}

std::string mount_one(int rootfd, const Mount& m) {
  std::string where = "mount " + m.type + " " + m.source + " on " + m.destination;
  bool bind = m.type == "bind" || m.type == "rbind";
  bool dir = true;
  if (bind) {
    struct stat st;
    if (stat(m.source.c_str(), &st) != 0) return errno_msg(where + ": stat " + m.source, errno);
    dir = S_ISDIR(st.st_mode);
  }
  int fd = open_in_root(rootfd, m.destination, true, dir);
  if (fd < 0) return errno_msg(where + ": create mount point", errno);
  MountFlags mf = parse_options(m.options);
  std::string target = fd_path(fd);
  int rc;
  if (bind) {
    rc = mount(m.source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr);
    if (rc == 0 && mf.flags != 0) {
      // Remount flags apply to the new mount: reach it through a fresh lookup, not the fd of
      // the directory underneath it.
      int nfd = open_in_root(rootfd, m.destination, false, dir);
      if (nfd < 0) {
        close(fd);
        return errno_msg(where + ": reopen", errno);
      }
      rc = mount(nullptr, fd_path(nfd).c_str(), nullptr, MS_REMOUNT | MS_BIND | mf.flags, nullptr);
      close(nfd);
      if (rc != 0) where += " (remount with options)";
    }
  } else {
    std::string src = m.source.empty() ? m.type : m.source;
    rc = mount(src.c_str(), target.c_str(), m.type.c_str(), mf.flags,
               mf.data.empty() ? nullptr : mf.data.c_str());
  }
  int err = errno;
  close(fd);
  return rc == 0 ? "" : errno_msg(where, err);
}

std::string mount_fs(int rootfd, const char* dest, const char* type, unsigned long flags,
                     const char* data) {
  int fd = open_in_root(rootfd, dest, true, true);
  if (fd < 0) return errno_msg(std::string("create mount point ") + dest, errno);
  int rc = mount(type, fd_path(fd).c_str(), type, flags, data);
  int err = errno;
  close(fd);
  return rc == 0 ? "" : errno_msg(std::string("mount ") + type + " on " + dest, err);
}

// A fresh tmpfs /dev with the devices a container expects, devpts (its own instance), shm and
// mqueue. The tmpfs is ours, so plain paths under it are safe.
std::string setup_dev(int rootfd, bool ipc_private) {
  std::string err =
      mount_fs(rootfd, "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
  if (!err.empty()) return err;
  int devfd = openat2_in_root(rootfd, "/dev", O_PATH | O_DIRECTORY);
  if (devfd < 0) return errno_msg("open /dev", errno);
  std::string dev = fd_path(devfd);
  struct Node {
    const char* name;
    unsigned maj, min;
  };
  static const Node kNodes[] = {{"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
                                {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
  for (const auto& n : kNodes) {
    if (mknodat(devfd, n.name, S_IFCHR | 0666, makedev(n.maj, n.min)) != 0) {
      return errno_msg(std::string("mknod /dev/") + n.name, errno);
    }
  }
  mkdirat(devfd, "pts", 0755);
  if (mount("devpts", (dev + "/pts").c_str(), "devpts", MS_NOSUID | MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5") != 0) {
    return errno_msg("mount devpts on /dev/pts", errno);
  }
  symlinkat("pts/ptmx", devfd, "ptmx");
  mkdirat(devfd, "shm", 01777);
  if (mount("shm", (dev + "/shm").c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
            "mode=1777,size=65536k") != 0) {
    return errno_msg("mount tmpfs on /dev/shm", errno);
  }
  mkdirat(devfd, "mqueue", 01777);
  // The mqueue filesystem shows the IPC namespace of whoever mounts it: we are in the pod's.
  if (mount("mqueue", (dev + "/mqueue").c_str(), "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC,
            nullptr) != 0) {
    return errno_msg("mount mqueue on /dev/mqueue", errno);
  }
  (void)ipc_private;
  symlinkat("/proc/self/fd", devfd, "fd");
  symlinkat("/proc/self/fd/0", devfd, "stdin");
  symlinkat("/proc/self/fd/1", devfd, "stdout");
  symlinkat("/proc/self/fd/2", devfd, "stderr");
  close(devfd);
  return "";
}

// Docker's masked and read-only /proc paths, so a container cannot reconfigure the host kernel
// through /proc/sys or read kernel memory. Runs after pivot_root: /proc is the container's.
void protect_proc() {
  static const char* kReadOnly[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                    "/proc/sysrq-trigger"};
  for (const char* p : kReadOnly) {
    if (mount(p, p, nullptr, MS_BIND | MS_REC, nullptr) == 0) {
      mount(nullptr, p, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr);
    }
  }
  static const char* kMasked[] = {"/proc/kcore", "/proc/keys", "/proc/timer_list",
                                  "/proc/sched_debug", "/proc/latency_stats"};
  for (const char* p : kMasked) mount("/dev/null", p, nullptr, MS_BIND, nullptr);
}

std::string mkdir_p(const std::string& path) {
  std::string cur;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    cur = path.substr(0, j);
    if (!cur.empty() && mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) {
      return errno_msg("mkdir " + cur, errno);
    }
    i = j + 1;
  }
  return "";
}

// Docker's default profile, reduced to its outright refusals: the syscalls that reach the
// host kernel's global state (modules, kexec, swap, clock, keyring), mount and namespace
// changes, and the debugging/introspection ones that cross process boundaries.
const char* const kDeniedSyscalls[] = {
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "reboot",
    "swapon",
    "swapoff",
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "mount_setattr",
    "open_by_handle_at",
    "name_to_handle_at",
    "bpf",
    "perf_event_open",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "keyctl",
    "add_key",
    "request_key",
    "userfaultfd",
    "unshare",
    "setns",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "stime",
    "iopl",
    "ioperm",
    "lookup_dcookie",
    "nfsservctl",
    "quotactl",
    "sysfs",
    "_sysctl",
    "uselib",
    "ustat",
    "vm86",
    "vm86old",
    "fanotify_init",
    "get_kernel_syms",
    "query_module",
    "syslog",
};

std::string load_seccomp(bool no_new_privs) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) return "seccomp_init failed";
  seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, no_new_privs ? 1 : 0);
  for (const char* name : kDeniedSyscalls) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;
    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
  }
  // New namespaces through clone: refused as unshare is. clone3 passes its flags in memory the
  // filter cannot read, so it answers ENOSYS and libc falls back to clone (Docker does this).
  static const unsigned long kNsFlags[] = {CLONE_NEWNS,    CLONE_NEWUTS, CLONE_NEWIPC,
                                           CLONE_NEWUSER,  CLONE_NEWPID, CLONE_NEWNET,
                                           CLONE_NEWCGROUP};
  for (unsigned long f : kNsFlags) {
    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                     SCMP_A0(SCMP_CMP_MASKED_EQ, f, f));
  }
  seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  int rc = seccomp_load(ctx);
  seccomp_release(ctx);
  return rc == 0 ? "" : errno_msg("load the seccomp filter", -rc);
}

}  // namespace

std::string apply_security(const ContainerConfig& c, int last_cap) {
  std::string unknown;
  uint64_t caps = compute_caps(c.privileged, c.cap_add, c.cap_drop, last_cap, &unknown);
  if (!unknown.empty()) return "unknown capability \"" + unknown + "\"";

  // Keep the permitted set across the uid change; effective comes back with capset below.
  prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
  std::vector<gid_t> groups(c.additional_gids.begin(), c.additional_gids.end());
  if (setgroups(groups.size(), groups.data()) != 0) return errno_msg("setgroups", errno);
  if (setresgid(c.gid, c.gid, c.gid) != 0)
    return errno_msg("setgid " + std::to_string(c.gid), errno);
  if (setresuid(c.uid, c.uid, c.uid) != 0)
    return errno_msg("setuid " + std::to_string(c.uid), errno);
  prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);

  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &hdr, data) != 0) return errno_msg("capget", errno);
  data[0].effective = data[0].permitted;
  data[1].effective = data[1].permitted;
  if (syscall(SYS_capset, &hdr, data) != 0) return errno_msg("capset (raise effective)", errno);

  for (int cap = 0; cap <= last_cap; ++cap) {
    if (!(caps & (uint64_t{1} << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 &&
        errno != EINVAL) {
      return errno_msg("drop capability " + std::to_string(cap) + " from the bounding set", errno);
    }
  }
  bool seccomp = c.seccomp_default && !c.privileged;
  // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it while we still have it.
  if (seccomp && !c.no_new_privs) {
    std::string err = load_seccomp(false);
    if (!err.empty()) return err;
  }
  data[0].effective = data[0].permitted = data[0].inheritable = static_cast<uint32_t>(caps);
  data[1].effective = data[1].permitted = data[1].inheritable = static_cast<uint32_t>(caps >> 32);
  if (syscall(SYS_capset, &hdr, data) != 0) return errno_msg("capset", errno);
  if (c.no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return errno_msg("prctl(PR_SET_NO_NEW_PRIVS)", errno);
  }
  if (seccomp && c.no_new_privs) return load_seccomp(true);
  return "";
}

std::string exec_args(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  if (args.empty()) return "exec: no command given";
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  std::string path = env_get(env, "PATH", kDefaultPath);
  return exec_search(args[0], path, [&](const std::string& cand) {
    execve(cand.c_str(), argv.data(), envp.data());
  });
}

void container_init(const ContainerConfig& c, const std::string& dir, const InitFds& fds,
                    int last_cap) {
  umask(0);
  if (fds.stdin_fd >= 0) dup2(fds.stdin_fd, 0);
  if (fds.stdout_fd >= 0) dup2(fds.stdout_fd, 1);
  if (fds.stderr_fd >= 0) dup2(fds.stderr_fd, 2);

  if (!c.sandbox_dir.empty()) {
    static const struct {
      const char* name;
      int type;
    } kNs[] = {{"net", CLONE_NEWNET}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}};
    for (const auto& ns : kNs) {
      std::string p = c.sandbox_dir + "/ns/" + ns.name;
      int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || setns(fd, ns.type) != 0)
        fail(fds, errno_msg("join sandbox namespace " + p, errno));
      close(fd);
    }
  }
  // Enter the cgroups before the cgroup namespace, so the container sees its own cgroup as /.
  for (const auto& d : c.cgroup_dirs) {
    std::string p = d + "/cgroup.procs";
    int fd = open(p.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) fail(fds, errno_msg("join cgroup " + p, errno));
    close(fd);
  }
  if (unshare(CLONE_NEWCGROUP) != 0) fail(fds, errno_msg("unshare the cgroup namespace", errno));
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    fail(fds, errno_msg("make / private", errno));
  }
  if (c.oom_score_adj != 0) {
    std::string v = std::to_string(c.oom_score_adj);
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, v.data(), v.size()) < 0)
      fail(fds, errno_msg("set oom_score_adj", errno));
    close(fd);
  }

  std::string rootfs = c.rootfs_path.empty() ? dir + "/rootfs" : c.rootfs_path;
  if (!c.rootfs_path.empty() &&
      mount(rootfs.c_str(), rootfs.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    fail(fds, errno_msg("bind mount the rootfs " + rootfs, errno));
  }
  int rootfd = open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) fail(fds, errno_msg("open the rootfs " + rootfs, errno));

  std::string err = mount_fs(rootfd, "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  if (err.empty()) err = setup_dev(rootfd, c.sandbox_dir.empty());
  if (err.empty()) {
    unsigned long ro = c.privileged ? 0 : MS_RDONLY;
    err = mount_fs(rootfd, "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | ro, nullptr);
  }
  for (size_t i = 0; err.empty() && i < c.mounts.size(); ++i) err = mount_one(rootfd, c.mounts[i]);
  if (!err.empty()) fail(fds, err);

  if (fchdir(rootfd) != 0) fail(fds, errno_msg("chdir to the rootfs", errno));
  // pivot_root(".", "."): the old root ends up on top of the new one and is detached at once,
  // with no directory needed inside the image (runc's trick).
  if (syscall(SYS_pivot_root, ".", ".") != 0) fail(fds, errno_msg("pivot_root " + rootfs, errno));
  if (umount2(".", MNT_DETACH) != 0) fail(fds, errno_msg("detach the old root", errno));
  if (chdir("/") != 0) fail(fds, errno_msg("chdir /", errno));
  close(rootfd);
  if (!c.privileged) protect_proc();
  if (c.read_only_rootfs &&
      mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) {
    fail(fds, errno_msg("remount / read-only", errno));
  }
  std::string cwd = c.cwd.empty() ? "/" : c.cwd;
  if (chdir(cwd.c_str()) != 0) {
    // Kubernetes creates a missing workingDir (runc does it before dropping privileges).
    if (!c.read_only_rootfs) mkdir_p(cwd);
    if (chdir(cwd.c_str()) != 0)
      fail(fds, errno_msg("chdir to the working directory " + cwd, errno));
  }
  umask(022);
  // The kubelet may ignore SIGPIPE or block signals; a container starts with defaults.
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
  }
  err = apply_security(c, last_cap);
  if (!err.empty()) fail(fds, err);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  fail(fds, exec_args(c.args, c.env));
}

}  // namespace skiff::runtime::shim
