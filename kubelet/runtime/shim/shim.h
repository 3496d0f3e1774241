// Internals of the skiff-shim binary (not a library API): the pieces main.cc, container.cc and
// exec.cc share. Everything reports failure as a message string ("" = success) that already
// says what was done to what and why, because the shim cannot use skiff_common's Status (it must
// stay a tiny static binary).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kubelet/runtime/spec.h"

namespace skiff::runtime::shim {

// "what: strerror(err)".
std::string errno_msg(const std::string& what, int err);

bool read_file(const std::string& path, std::string* out);
// Writes `data` to path.tmp and renames it over `path` (readers never see half a file).
bool write_file_atomic(const std::string& path, const std::string& data);
// Writes all of `data` to fd, retrying short writes and EINTR.
bool write_all(int fd, const char* data, size_t len);
// Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), 0 if there is no such pid.
uint64_t proc_start_time(pid_t pid);
// The kernel's highest capability number (/proc/sys/kernel/cap_last_cap), 40 if unreadable.
int read_last_cap();

// The fds the container's first process starts with.
struct InitFds {
  int stdin_fd = -1;   // /dev/null
  int stdout_fd = -1;  // -1: keep the shim's
  int stderr_fd = -1;
  int error_fd = -1;  // CLOEXEC pipe: a message here means the start failed
};

// Runs in the child created with new mount + PID namespaces: joins the sandbox namespaces and
// cgroups, builds the root filesystem, drops privileges and execs args. Never returns: on
// failure the reason goes to fds.error_fd and the process exits 1.
[[noreturn]] void container_init(const ContainerConfig& c, const std::string& dir,
                                 const InitFds& fds, int last_cap);

// Sets uid/gid/groups, the capability set, no_new_privs and the seccomp filter as `c` says.
// Call it last, just before execve.
std::string apply_security(const ContainerConfig& c, int last_cap);

// execs c.args (PATH from `env`); returns only on failure, with the message.
std::string exec_args(const std::vector<std::string>& args, const std::vector<std::string>& env);

// `skiff-shim exec <dir> [--tty] [--env K=V]... -- ARGS...`
int cmd_exec(int argc, char** argv);

}  // namespace skiff::runtime::shim
