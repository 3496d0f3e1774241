// skiff-runtime-tool: a test-only driver of Sandboxes and ContainerRuntime for
// test/integration/runtime_test.py (not installed). Prints JSON; exits 1 on a runtime error.
//
//   skiff-runtime-tool --run-dir D --data-dir D --shim PATH COMMAND ...
//     sandbox-ensure UID NAME [HOSTNAME]     sandbox-hosts UID NAME IP    sandbox-remove UID
//     start CONFIG_JSON_FILE   (ContainerConfig in the config.json shape)
//     inspect ID   list   signal ID SIG   remove ID
//     exec ID [--tty] [--stdin] -- ARGS...  (relays output; exits with the command's code)
//     wait-exit ID TIMEOUT_MS               (through on_exit; exit 0 when it fired)
#include <poll.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "kubelet/runtime/runtime.h"
#include "kubelet/runtime/sandbox.h"
#include "kubelet/runtime/shim/protocol.h"

using namespace skiff;
using namespace skiff::runtime;

namespace {

int fail(const Status& st) {
  fprintf(stderr, "error: %s\n", st.to_string().c_str());
  return 1;
}

const char* status_name(ContainerStatus s) {
  switch (s) {
    case ContainerStatus::kCreated:
      return "Created";
    case ContainerStatus::kRunning:
      return "Running";
    case ContainerStatus::kExited:
      return "Exited";
    default:
      return "Unknown";
  }
}

nlohmann::json to_json(const ContainerState& s) {
  return {{"id", s.id},
          {"labels", s.labels},
          {"status", status_name(s.status)},
          {"pid", s.pid},
          {"shim_pid", s.shim_pid},
          {"created_at", s.created_at_ns},
          {"started_at", s.started_at_ns},
          {"finished_at", s.finished_at_ns},
          {"exit_code", s.exit_code},
          {"signal", s.signal},
          {"oom_killed", s.oom_killed},
          {"reason", s.reason},
          {"message", s.message},
          {"log_path", s.log_path}};
}

}  // namespace

int main(int argc, char** argv) {
  ContainerRuntime::Options o;
  int i = 1;
  for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
    if (!strcmp(argv[i], "--run-dir"))
      o.run_dir = argv[i + 1];
    else if (!strcmp(argv[i], "--data-dir"))
      o.data_dir = argv[i + 1];
    else if (!strcmp(argv[i], "--shim"))
      o.shim_path = argv[i + 1];
  }
  if (i >= argc) {
    fprintf(stderr, "usage: see the comment at the top of kubelet/runtime/tool/main.cc\n");
    return 2;
  }
  std::string cmd = argv[i++];
  std::vector<std::string> a(argv + i, argv + argc);
  Sandboxes sandboxes(o.run_dir);
  auto rt = make_shim_runtime(o);

  if (cmd == "sandbox-ensure" || cmd == "sandbox-hosts") {
    SandboxConfig sc;
    sc.pod_uid = a.at(0);
    sc.pod_name = a.at(1);
    sc.pod_namespace = "default";
    if (cmd == "sandbox-ensure" && a.size() > 2) sc.hostname = a[2];
    sc.dns.nameservers = {"10.96.0.10"};
    sc.dns.searches = {"default.svc.cluster.local", "svc.cluster.local", "cluster.local"};
    sc.dns.options = {"ndots:5"};
    sc.host_aliases = {{"10.1.2.3", {"foo.local", "bar.local"}}};
    if (cmd == "sandbox-hosts") {
      Status st = sandboxes.write_hosts(sc, a.at(2));
      return st ? 0 : fail(st);
    }
    auto r = sandboxes.ensure(sc);
    if (!r) return fail(r.status());
    printf("%s\n", nlohmann::json{{"dir", r->dir},
                                  {"netns", r->netns},
                                  {"ipcns", r->ipcns},
                                  {"utsns", r->utsns},
                                  {"etc_hosts", r->etc_hosts},
                                  {"etc_hostname", r->etc_hostname},
                                  {"etc_resolv", r->etc_resolv}}
                       .dump()
                       .c_str());
    return 0;
  }
  if (cmd == "sandbox-remove") {
    Status st = sandboxes.remove(a.at(0));
    return st ? 0 : fail(st);
  }
  if (cmd == "start") {
    std::ifstream in(a.at(0));
    std::stringstream ss;
    ss << in.rdbuf();
    ContainerConfig c;
    std::string err;
    if (!shim::config_from_json(ss.str(), &c, &err)) return fail(Status::invalid(err));
    auto r = rt->start(c);
    if (!r) return fail(r.status());
    printf("%s\n", to_json(*r).dump().c_str());
    return 0;
  }
  if (cmd == "inspect") {
    auto r = rt->inspect(a.at(0));
    if (!r) return fail(r.status());
    printf("%s\n", to_json(*r).dump().c_str());
    return 0;
  }
  if (cmd == "list") {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& s : rt->list()) arr.push_back(to_json(s));
    printf("%s\n", arr.dump().c_str());
    return 0;
  }
  if (cmd == "signal") {
    Status st = rt->signal(a.at(0), std::stoi(a.at(1)));
    return st ? 0 : fail(st);
  }
  if (cmd == "remove") {
    Status st = rt->remove(a.at(0));
    return st ? 0 : fail(st);
  }
  if (cmd == "wait-exit") {
    std::mutex mu;
    std::condition_variable cv;
    bool fired = false;
    std::string id = a.at(0);
    rt->on_exit([&](const std::string& got) {
      std::lock_guard<std::mutex> l(mu);
      if (got == id) fired = true;
      cv.notify_all();
    });
    printf("watching\n");
    fflush(stdout);
    std::unique_lock<std::mutex> l(mu);
    cv.wait_for(l, std::chrono::milliseconds(std::stoi(a.at(1))), [&] { return fired; });
    return fired ? 0 : 3;
  }
  if (cmd == "exec") {
    ExecOptions eo;
    size_t k = 1;
    for (; k < a.size() && a[k] != "--"; ++k) {
      if (a[k] == "--tty") eo.tty = true;
      if (a[k] == "--stdin") eo.stdin = true;
    }
    eo.args.assign(a.begin() + static_cast<long>(std::min(k + 1, a.size())), a.end());
    auto p = rt->exec(a.at(0), eo);
    if (!p) return fail(p.status());
    if (p->stdin_fd >= 0) {
      // Copy our stdin to the process, then close it (tests feed small inputs).
      char buf[4096];
      ssize_t n;
      while ((n = read(0, buf, sizeof buf)) > 0) {
        if (write(p->stdin_fd, buf, static_cast<size_t>(n)) < 0) break;
      }
      if (!eo.tty) close(p->stdin_fd);
    }
    int fds[2] = {p->stdout_fd, p->stderr_fd};
    while (fds[0] >= 0 || fds[1] >= 0) {
      struct pollfd pfd[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
      if (poll(pfd, 2, 30000) <= 0) break;
      for (int j = 0; j < 2; ++j) {
        if (!pfd[j].revents) continue;
        char buf[4096];
        ssize_t n = read(fds[j], buf, sizeof buf);
        if (n <= 0) {  // EOF, or EIO on a pty master once the command has gone
          close(fds[j]);
          fds[j] = -1;
          continue;
        }
        if (write(j == 0 ? 1 : 2, buf, static_cast<size_t>(n)) < 0) break;
      }
    }
    auto code = rt->wait_exec(*p, std::chrono::seconds(30));
    if (!code) return fail(code.status());
    return *code;
  }
  fprintf(stderr, "unknown command %s\n", cmd.c_str());
  return 2;
}
