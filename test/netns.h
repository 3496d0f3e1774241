// Helpers for root-only Catch2 cases that need a network namespace of their own (nftables,
// conntrack, the service proxy's kernel read-back).
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace skiff::testing {

// Moves the calling thread into a fresh network namespace and back when destroyed; the
// namespace and everything in it (links, nftables, conntrack) vanish with the last reference.
class PrivateNetns {
 public:
  PrivateNetns() {
    saved_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (saved_ < 0) {
      error_ = std::string("open /proc/thread-self/ns/net: ") + std::strerror(errno);
    } else if (unshare(CLONE_NEWNET) != 0) {
      error_ = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
    } else {
      entered_ = true;
    }
  }
  ~PrivateNetns() {
    if (entered_ && setns(saved_, CLONE_NEWNET) != 0) {
      std::perror("setns back to the original network namespace");
      std::abort();  // the rest of the tests must not run in the wrong namespace
    }
    if (saved_ >= 0) ::close(saved_);
  }
  PrivateNetns(const PrivateNetns&) = delete;
  PrivateNetns& operator=(const PrivateNetns&) = delete;
  // Empty when the thread is in the new namespace; else why not.
  const std::string& error() const { return error_; }

 private:
  int saved_ = -1;
  bool entered_ = false;
  std::string error_;
};

// A shell command's exit status (-1 if it did not exit normally) and its stdout + stderr.
struct Run {
  int status;
  std::string out;
};
// Runs `cmd` through /bin/sh in the calling thread's network namespace.
inline Run sh(const std::string& cmd) {
  Run r{-1, ""};
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
  int st = pclose(f);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

}  // namespace skiff::testing
