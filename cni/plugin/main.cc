// skiff: the skiff CNI plugin (see plugin.h, README.md). Executed by a container runtime with
// CNI_* in the environment and the network config on stdin; prints the result or the spec's
// error JSON on stdout; exit status 0 on success, 1 on error.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "cni/plugin/plugin.h"
#include "cni/plugin/result.h"

extern char** environ;

using namespace skiff::cni::plugin;

namespace {

constexpr size_t kMaxStdin = 1 << 20;

bool read_stdin(std::string* out, int* err) {
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *err = errno;
      return false;
    }
    if (n == 0) return true;
    out->append(buf, static_cast<size_t>(n));
    if (out->size() > kMaxStdin) {
      *err = EFBIG;
      return false;
    }
  }
}

void write_stdout(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    if (std::strncmp(*e, "CNI_", 4) != 0) continue;
    const char* eq = std::strchr(*e, '=');
    if (eq) env.emplace(std::string(*e, static_cast<size_t>(eq - *e)), std::string(eq + 1));
  }
  if (env.empty() && argc > 1 && std::strcmp(argv[1], "--help") == 0) {
    std::printf("skiff: CNI plugin (spec 1.0.0); run by a container runtime, not by hand.\n");
    return 0;
  }
  std::string in;
  int err = 0;
  // VERSION may come without stdin; everything else needs the config.
  auto cmd = env.find("CNI_COMMAND");
  const bool version = cmd != env.end() && cmd->second == "VERSION";
  if (!read_stdin(&in, &err) && !version) {
    write_stdout(error_json("1.0.0", CniError{kIoFailure, "failed to read the network config",
                                              std::string("stdin: ") + std::strerror(err)}));
    return 1;
  }
  auto r = run(env, in);
  if (!r) {
    write_stdout(error_json(answer_version(in), r.error()));
    return 1;
  }
  if (!r->empty()) write_stdout(*r);
  return 0;
}
