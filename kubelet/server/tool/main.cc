// skiff-kubelet-server-tool: a real KubeletServer over fakes, for test/integration/
// logs_exec_test.py (no containers, no root):
//   - the PodLocator reads a JSON file at every call:
//       {"NS/POD": {"CONTAINER": {"log": PATH, "previous": PATH, "running": true}, ...}, ...}
//     (the first container listed is the default one; ids are "NS_POD_CONTAINER");
//   - the runtime's inspect() reports running from the same file; exec() runs the command on
//     the host (fork/exec, pipes or a pty), wait_exec() reaps it.
// Prints "port N" once serving; runs until SIGTERM/SIGINT.
//   skiff-kubelet-server-tool --pods FILE --cert-dir DIR --token-file FILE [--listen ADDR]
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "kubelet/runtime/runtime.h"
#include "kubelet/server/kubelet_server.h"

namespace sk = skiff::kubelet;
namespace sr = skiff::runtime;
using nlohmann::json;
using skiff::Result;
using skiff::Status;

namespace {

json read_pods(const std::string& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = json::parse(ss.str(), nullptr, false);
  return j.is_object() ? j : json::object();
}

class FileLocator : public sk::PodLocator {
 public:
  explicit FileLocator(std::string file) : file_(std::move(file)) {}
  Result<sk::LocatedContainer> locate(const std::string& ns, const std::string& pod,
                                      const std::string& container) override {
    json pods = read_pods(file_);
    auto it = pods.find(ns + "/" + pod);
    if (it == pods.end() || !it->is_object() || it->empty()) {
      return Status::not_found("pod \"" + pod + "\" not found on this node");
    }
    std::string name = container;
    if (name.empty()) {
      if (it->size() > 1) return Status::invalid("a container name must be specified");
      name = it->begin().key();
    }
    auto c = it->find(name);
    if (c == it->end()) {
      return Status::not_found("container \"" + name + "\" not found in pod \"" + pod + "\"");
    }
    sk::LocatedContainer out;
    out.container_id = ns + "_" + pod + "_" + name;
    out.log_path = c->value("log", "");
    out.previous_log_path = c->value("previous", "");
    out.running = c->value("running", false);
    return out;
  }

 private:
  std::string file_;
};

class HostRuntime : public sr::ContainerRuntime {
 public:
  explicit HostRuntime(std::string file) : file_(std::move(file)) {}
  Result<sr::ContainerState> start(const sr::ContainerConfig&) override {
    return Status::internal("not supported by the test runtime");
  }
  Status signal(const std::string&, int) override { return Status::ok(); }
  Result<sr::ContainerState> inspect(const std::string& id) const override {
    json pods = read_pods(file_);
    for (auto& [key, containers] : pods.items()) {
      std::string prefix = key;
      std::replace(prefix.begin(), prefix.end(), '/', '_');
      for (auto& [name, c] : containers.items()) {
        if (prefix + "_" + name != id) continue;
        sr::ContainerState st;
        st.id = id;
        st.status = c.value("running", false) ? sr::ContainerStatus::kRunning
                                              : sr::ContainerStatus::kExited;
        st.log_path = c.value("log", "");
        return st;
      }
    }
    return Status::not_found("container " + id);
  }
  std::vector<sr::ContainerState> list() const override { return {}; }
  Status remove(const std::string&, std::chrono::milliseconds) override { return Status::ok(); }

  Result<sr::ExecProcess> exec(const std::string& id, const sr::ExecOptions& o) override {
    if (o.args.empty()) return Status::invalid("no command");
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    int master = -1, slave = -1;
    if (o.tty) {
      if (openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) return Status::io("openpty");
      fcntl(master, F_SETFD, FD_CLOEXEC);
    } else {
      if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return Status::io("pipe");
    }
    if (o.stdin && !o.tty && pipe2(in, O_CLOEXEC) != 0) return Status::io("pipe");
    pid_t pid = fork();
    if (pid < 0) return Status::io("fork");
    if (pid == 0) {
      if (o.tty) {
        setsid();
        ioctl(slave, TIOCSCTTY, 0);
        dup2(slave, 1);
        dup2(slave, 2);
        dup2(o.stdin ? slave : open("/dev/null", O_RDONLY), 0);
      } else {
        dup2(o.stdin ? in[0] : open("/dev/null", O_RDONLY), 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
      }
      std::vector<char*> argv;
      for (const auto& a : o.args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execvp(argv[0], argv.data());
      _exit(127);
    }
    sr::ExecProcess p;
    p.pid = pid;
    if (o.tty) {
      close(slave);
      p.stdout_fd = master;
      p.stdin_fd = o.stdin ? dup(master) : -1;
    } else {
      close(out[1]);
      close(err[1]);
      p.stdout_fd = out[0];
      p.stderr_fd = err[0];
      if (o.stdin) {
        close(in[0]);
        p.stdin_fd = in[1];
      }
    }
    return p;
  }

  Result<int> wait_exec(const sr::ExecProcess& p, std::chrono::milliseconds timeout) override {
    auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int st = 0;
      pid_t r = waitpid(p.pid, &st, WNOHANG);
      if (r == p.pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      if (r < 0) return Status::io("waitpid");
      if (std::chrono::steady_clock::now() >= end) {
        kill(p.pid, SIGKILL);
        waitpid(p.pid, &st, 0);
        return Status::timeout("exec'd process killed after the timeout");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  void on_exit(std::function<void(const std::string&)>) override {}

 private:
  std::string file_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string pods, cert_dir, token_file, listen = "127.0.0.1:0";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--pods")
      pods = argv[i + 1];
    else if (k == "--cert-dir")
      cert_dir = argv[i + 1];
    else if (k == "--token-file")
      token_file = argv[i + 1];
    else if (k == "--listen")
      listen = argv[i + 1];
    else {
      fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (pods.empty() || cert_dir.empty() || token_file.empty()) {
    fprintf(stderr, "usage: %s --pods FILE --cert-dir DIR --token-file FILE [--listen ADDR]\n",
            argv[0]);
    return 2;
  }
  std::ifstream tf(token_file);
  std::string token;
  std::getline(tf, token);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  FileLocator locator(pods);
  HostRuntime runtime(pods);
  sk::KubeletServer::Options o;
  o.listen = listen;
  o.cert_dir = cert_dir;
  o.client_token = token;
  o.metrics = [] { return std::string("skiff_kubelet_test_up 1\n"); };
  sk::KubeletServer server(o, locator, runtime);
  if (Status st = server.start(); !st) {
    fprintf(stderr, "start: %s\n", st.message().c_str());
    return 1;
  }
  printf("port %d\n", server.port());
  fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  server.stop();
  return 0;
}
