// skiff-cgroups-tool: drives CgroupDriver from the command line for
// test/integration/cgroups_test.sh. Not installed; not a user interface.
//
//   skiff-cgroups-tool [--root DIR] [--parent NAME] version
//   ... ensure PATH [cpu-request=M] [cpu-limit=M] [period=US] [memory=BYTES] [pids=N]
//   ... add PATH PID | stats PATH | pids PATH | dirs PATH | children PATH | remove PATH
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kubelet/cgroups/cgroups.h"

using namespace skiff::cgroups;

static int fail(const skiff::Status& st) {
  std::fprintf(stderr, "skiff-cgroups-tool: %s\n", st.to_string().c_str());
  return 1;
}

int main(int argc, char** argv) {
  std::string root = "/sys/fs/cgroup", parent = "skiff";
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--root" && i + 1 < argc) {
      root = argv[++i];
    } else if (a == "--parent" && i + 1 < argc) {
      parent = argv[++i];
    } else {
      args.push_back(a);
    }
  }
  if (args.empty()) {
    std::fprintf(stderr, "usage: skiff-cgroups-tool [--root DIR] [--parent NAME] CMD [ARGS]\n");
    return 2;
  }
  auto d = CgroupDriver::detect(parent, root);
  if (!d) return fail(d.status());
  CgroupDriver& drv = **d;
  const std::string& cmd = args[0];
  std::string path = args.size() > 1 ? args[1] : "";
  if (cmd == "version") {
    std::printf("%d\n", drv.version());
  } else if (cmd == "ensure") {
    Resources res;
    for (size_t i = 2; i < args.size(); ++i) {
      auto eq = args[i].find('=');
      if (eq == std::string::npos) return fail(skiff::Status::invalid("bad option " + args[i]));
      std::string k = args[i].substr(0, eq);
      int64_t v = std::strtoll(args[i].c_str() + eq + 1, nullptr, 10);
      if (k == "cpu-request")
        res.cpu_request_millis = v;
      else if (k == "cpu-limit")
        res.cpu_limit_millis = v;
      else if (k == "period")
        res.cpu_period_us = v;
      else if (k == "memory")
        res.memory_limit_bytes = v;
      else if (k == "pids")
        res.pids_limit = v;
      else
        return fail(skiff::Status::invalid("unknown option " + k));
    }
    if (auto st = drv.ensure(path, res); !st) return fail(st);
  } else if (cmd == "add" && args.size() == 3) {
    if (auto st = drv.add_process(path, std::atoi(args[2].c_str())); !st) return fail(st);
  } else if (cmd == "stats") {
    auto s = drv.stats(path);
    if (!s) return fail(s.status());
    std::printf(
        "memory_usage_bytes=%lld\nmemory_limit_bytes=%lld\ncpu_usage_ns=%llu\n"
        "oom_kills=%lld\npids=%lld\n",
        (long long)s->memory_usage_bytes, (long long)s->memory_limit_bytes,
        (unsigned long long)s->cpu_usage_ns, (long long)s->oom_kills, (long long)s->pids);
  } else if (cmd == "pids") {
    for (pid_t p : drv.pids(path)) std::printf("%d\n", p);
  } else if (cmd == "dirs") {
    for (auto& x : drv.dirs(path)) std::printf("%s\n", x.c_str());
  } else if (cmd == "children") {
    for (auto& x : drv.children(path)) std::printf("%s\n", x.c_str());
  } else if (cmd == "remove") {
    if (auto st = drv.remove(path); !st) return fail(st);
  } else {
    std::fprintf(stderr, "skiff-cgroups-tool: unknown command %s\n", cmd.c_str());
    return 2;
  }
  return 0;
}
