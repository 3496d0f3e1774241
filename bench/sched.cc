// bench_sched: scheduling throughput of skiff-scheduler against skiff-apiserver (memory store),
// with fake Nodes (no kubelets). See bench/README.md.
//
// Starts skiff-apiserver (--store memory, --insecure-listen and --listen on 127.0.0.1,
// --anonymous) and skiff-scheduler (--leader-elect=false), creates N Nodes (Ready, allocatable
// cpu 32, memory 64Gi, pods 110), then M pending pods (cpu 100m, memory 128Mi) from C parallel
// clients, and records on a watch when each pod is first seen bound. Prints pods bound per
// second from the first to the last binding, the scheduler's CPU time and RSS (and the API
// server's, for reference). Loopback only; every loop has a count and a time limit; the
// processes and the temp dir are removed at the end.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bench/child.h"
#include "proto/client/api_client.h"
#include "proto/client/rest_client.h"
#include "proto/node.h"
#include "proto/pod.h"
#include "proto/registry.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace skiff;
using skiff::bench::Child;
using skiff::bench::free_port;

namespace {

std::string find_bin(const std::string& flag, const std::string& name) {
  if (!flag.empty()) return flag;
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  for (fs::path p : {self.parent_path() / name, self.parent_path().parent_path() / name})
    if (fs::exists(p)) return p.string();
  return name;
}

json node_object(int i) {
  json res = {{"cpu", "32"}, {"memory", "64Gi"}, {"pods", "110"}};
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata",
           {{"name", "node-" + std::to_string(i)},
            {"labels", {{"kubernetes.io/hostname", "node-" + std::to_string(i)}}}}},
          {"status",
           {{"capacity", res},
            {"allocatable", res},
            {"conditions", json::array({{{"type", "Ready"}, {"status", "True"}}})}}}};
}

json pod_object(int i) {
  return {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata", {{"name", "pod-" + std::to_string(i)}, {"namespace", "default"}}},
      {"spec",
       {{"containers",
         json::array({{{"name", "c"},
                       {"image", "busybox:1.35"},
                       {"resources", {{"requests", {{"cpu", "100m"}, {"memory", "128Mi"}}}}}}})}}}};
}

// Runs fn(i) for i in [0, n) on `clients` threads; stops at `deadline`. Returns how many
// succeeded.
int parallel(int n, int clients, Clock::time_point deadline, const std::function<bool(int)>& fn) {
  std::atomic<int> next{0}, ok{0};
  std::vector<std::thread> ts;
  for (int c = 0; c < clients; ++c)
    ts.emplace_back([&] {
      for (int i = next++; i < n && Clock::now() < deadline; i = next++)
        if (fn(i)) ++ok;
    });
  for (auto& t : ts) t.join();
  return ok;
}

void usage() {
  std::printf(
      "usage: bench_sched [--nodes N] [--pods M] [--clients C] [--quick] [--tmp DIR]\n"
      "                   [--apiserver PATH] [--scheduler PATH] [--keep-logs]\n"
      "                   [--only stream|backlog]\n"
      "  defaults: 1000 nodes, 10000 pods, 16 clients; --quick: 100 nodes, 1000 pods\n");
}

// One run on a fresh API server. stream: the scheduler runs while the pods are created (bounded by
// the creation rate); backlog: every pod is created first, then the scheduler starts (its own
// throughput).
int run_phase(bool backlog, int nodes, int pods, int clients, const std::string& apiserver,
              const std::string& scheduler, const fs::path& root) {
  fs::path dir = root / (backlog ? "backlog" : "stream");
  fs::create_directories(dir);
  std::printf("--- %s: %d nodes, %d pods (%s)\n", backlog ? "backlog" : "stream", nodes, pods,
              backlog ? "all pods pending before the scheduler starts"
                      : "scheduler running while the pods are created");
  const int port = free_port(), tls_port = free_port();
  Child api_proc(
      {apiserver, "--store", "memory", "--listen", "127.0.0.1:" + std::to_string(tls_port),
       "--insecure-listen", "127.0.0.1:" + std::to_string(port), "--anonymous", "--data-dir",
       (dir / "data").string()},
      (dir / "apiserver.log").string());

  client::ClientConfig cc;
  cc.server = "http://127.0.0.1:" + std::to_string(port);
  cc.max_idle_connections = static_cast<size_t>(clients) + 4;
  cc.user_agent = "bench_sched";
  auto rest = client::RestClient::create(cc);
  if (!rest.is_ok()) {
    std::fprintf(stderr, "bench_sched: %s\n", rest.status().to_string().c_str());
    return 1;
  }
  auto api =
      std::make_shared<client::ApiClient>(std::shared_ptr<client::RestClient>(std::move(*rest)));
  {
    auto end = Clock::now() + std::chrono::seconds(60);
    bool ready = false;
    while (Clock::now() < end && api_proc.alive()) {
      auto r = api->rest().request("GET", "/readyz");
      if (r.is_ok() && r->ok()) {
        ready = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!ready) {
      std::fprintf(stderr, "bench_sched: skiff-apiserver not ready; see %s\n",
                   (dir / "apiserver.log").c_str());
      return 1;
    }
  }
  const auto node_type = proto::node_resource();
  const auto pod_type = proto::pod_resource();

  // 1. Nodes.
  auto t0 = Clock::now();
  int made = parallel(nodes, clients, t0 + std::chrono::seconds(120), [&](int i) {
    auto r = api->create(node_type, "", node_object(i));
    if (!r.is_ok() && i == 0)
      std::fprintf(stderr, "create node: %s\n", r.status().to_string().c_str());
    return r.is_ok();
  });
  std::printf("nodes created: %d in %.1f s\n", made,
              std::chrono::duration<double>(Clock::now() - t0).count());
  if (made != nodes) return 1;

  // 2. The scheduler, with a kubeconfig for the plain-HTTP port.
  std::string kc = (dir / "kubeconfig").string();
  {
    std::ofstream f(kc);
    f << "apiVersion: v1\nkind: Config\nclusters:\n- name: bench\n  cluster:\n    server: "
      << cc.server
      << "\ncontexts:\n- name: bench\n  context:\n    cluster: bench\n    user: bench\n"
         "users:\n- name: bench\n  user: {}\ncurrent-context: bench\n";
  }
  const int sched_port = free_port();
  client::ClientConfig mc;
  mc.server = "http://127.0.0.1:" + std::to_string(sched_port);
  auto metrics_client = client::RestClient::create(mc);
  if (!metrics_client.is_ok()) return 1;
  auto metric = [&](const std::string& prefix) -> double {
    auto r = (*metrics_client)->request("GET", "/metrics");
    if (!r.is_ok() || !r->ok()) return -1;
    size_t p = r->body.find("\n" + prefix + " ");
    return p == std::string::npos ? -1 : std::atof(r->body.c_str() + p + prefix.size() + 2);
  };
  std::unique_ptr<Child> sched_proc;
  // Starts the scheduler and waits until its cache holds every Node.
  auto start_scheduler = [&]() {
    sched_proc = std::make_unique<Child>(
        std::vector<std::string>{scheduler, "--kubeconfig", kc, "--leader-elect=false", "--port",
                                 std::to_string(sched_port)},
        (dir / "scheduler.log").string());
    auto end = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < end && sched_proc->alive()) {
      if (metric("scheduler_cache_size{type=\"nodes\"}") == nodes) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::fprintf(stderr, "bench_sched: skiff-scheduler not ready; see %s\n",
                 (dir / "scheduler.log").c_str());
    return false;
  };
  if (!backlog && !start_scheduler()) return 1;

  // 3. A watch that records when each pod is first seen bound.
  auto list = api->list(pod_type, "default", {.limit = 1});
  std::string rv = list.is_ok() ? list->value("/metadata/resourceVersion"_json_pointer, "") : "";
  std::mutex mu;
  std::map<std::string, Clock::time_point> bound;
  std::atomic<int> nbound{0};
  std::stop_source stop_watch;
  std::thread watcher([&] {
    client::ListOptions lo;
    lo.resource_version = rv;
    lo.timeout_seconds = 900;
    auto s = api->watch(
        pod_type, "default", lo,
        [&](const json& ev) {
          const json& obj = ev.value("object", json::object());
          auto spec = obj.find("spec");
          if (spec == obj.end() || !spec->is_object()) return true;
          auto nn = spec->find("nodeName");
          if (nn == spec->end() || !nn->is_string() || nn->get<std::string>().empty()) return true;
          std::string name = obj["metadata"].value("name", "");
          std::lock_guard lock(mu);
          if (bound.emplace(name, Clock::now()).second) ++nbound;
          return true;
        },
        stop_watch.get_token());
    if (!s.is_ok() && !stop_watch.stop_requested())
      std::fprintf(stderr, "bench_sched: watch ended: %s\n", s.to_string().c_str());
  });

  // 4. Pods.
  double cpu0 = backlog ? 0 : sched_proc->cpu_seconds(), api_cpu0 = api_proc.cpu_seconds();
  auto p0 = Clock::now();
  int created = parallel(pods, clients, p0 + std::chrono::seconds(180), [&](int i) {
    auto r = api->create(pod_type, "default", pod_object(i));
    if (!r.is_ok() && i == 0)
      std::fprintf(stderr, "create pod: %s\n", r.status().to_string().c_str());
    return r.is_ok();
  });
  double create_s = std::chrono::duration<double>(Clock::now() - p0).count();
  std::printf("pods created: %d in %.1f s (%.0f/s, %d clients)\n", created, create_s,
              created / create_s, clients);

  if (backlog && !start_scheduler()) return 1;

  // 5. Wait for the bindings (at most 180 s, or 30 s without progress).
  auto wait_end = Clock::now() + std::chrono::seconds(180);
  int last = -1;
  auto last_change = Clock::now();
  while (Clock::now() < wait_end && nbound < created) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (nbound != last) {
      last = nbound;
      last_change = Clock::now();
    } else if (Clock::now() - last_change > std::chrono::seconds(30)) {
      break;
    }
    if (!sched_proc->alive()) {
      std::fprintf(stderr, "bench_sched: skiff-scheduler exited; see %s\n",
                   (dir / "scheduler.log").c_str());
      break;
    }
  }
  double sched_cpu = sched_proc->cpu_seconds() - cpu0, api_cpu = api_proc.cpu_seconds() - api_cpu0;
  long rss = sched_proc->status_kib("VmRSS:"), hwm = sched_proc->status_kib("VmHWM:");
  long api_rss = api_proc.status_kib("VmRSS:");
  double e2e_sum = metric("scheduler_pod_scheduling_duration_seconds_sum");
  double e2e_count = metric("scheduler_pod_scheduling_duration_seconds_count");
  double dropped = metric("scheduler_api_writes_dropped_total");
  stop_watch.request_stop();
  // The watch returns at its next event or deadline; ending the API server ends it now.
  sched_proc->stop();
  api_proc.stop();
  watcher.join();

  std::vector<Clock::time_point> times;
  for (const auto& [k, t] : bound) times.push_back(t);
  std::sort(times.begin(), times.end());
  std::printf("pods bound: %zu of %d\n", times.size(), created);
  if (times.size() >= 2) {
    double span = std::chrono::duration<double>(times.back() - times.front()).count();
    double first_after = std::chrono::duration<double>(times.front() - p0).count();
    double last_after = std::chrono::duration<double>(times.back() - p0).count();
    std::printf(
        "bind throughput: %.0f pods/s (first to last binding: %.2f s; first %.2f s, last "
        "%.2f s after the first create)   target >= 1000/s\n",
        (times.size() - 1) / span, span, first_after, last_after);
  }
  std::printf(
      "skiff-scheduler: CPU %.2f s (user+sys, %s), RSS %ld KiB, peak %ld KiB; mean "
      "queue-to-bound %.3f s; events/status writes dropped %.0f\n",
      sched_cpu, backlog ? "whole run" : "during the pod phase", rss, hwm,
      e2e_count > 0 ? e2e_sum / e2e_count : -1.0, dropped);
  std::printf("skiff-apiserver (reference): CPU %.2f s, RSS %ld KiB\n", api_cpu, api_rss);
  return times.size() == static_cast<size_t>(created) ? 0 : 1;
}

int run(int argc, char** argv) {
  int nodes = 1000, pods = 10000, clients = 16;
  std::string only;
  std::string apiserver_flag, scheduler_flag;
  std::string tmp_root = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
  bool keep_logs = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next_int = [&](int& out) {
      if (i + 1 >= argc) return false;
      out = std::atoi(argv[++i]);
      return out > 0;
    };
    if (a == "--nodes"     ? next_int(nodes)
        : a == "--pods"    ? next_int(pods)
        : a == "--clients" ? next_int(clients)
                           : false) {
    } else if (a == "--quick") {
      nodes = 100;
      pods = 1000;
    } else if (a == "--tmp" && i + 1 < argc) {
      tmp_root = argv[++i];
    } else if (a == "--apiserver" && i + 1 < argc) {
      apiserver_flag = argv[++i];
    } else if (a == "--scheduler" && i + 1 < argc) {
      scheduler_flag = argv[++i];
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (a == "--keep-logs") {
      keep_logs = true;
    } else {
      usage();
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (!only.empty() && only != "stream" && only != "backlog") {
    usage();
    return 2;
  }
  if (nodes > 100000 || pods > 1000000 || clients > 256) {
    std::fprintf(stderr, "bench_sched: counts too large\n");
    return 2;
  }
  std::string apiserver = find_bin(apiserver_flag, "skiff-apiserver");
  std::string scheduler = find_bin(scheduler_flag, "skiff-scheduler");
  for (const auto& b : {apiserver, scheduler})
    if (::access(b.c_str(), X_OK) != 0) {
      std::fprintf(stderr, "bench_sched: %s not found or not executable\n", b.c_str());
      return 2;
    }
  fs::path dir = fs::path(tmp_root) / ("skiff-bench-sched." + std::to_string(::getpid()));
  fs::create_directories(dir);
  struct Cleanup {
    fs::path dir;
    bool keep;
    ~Cleanup() {
      if (keep) {
        std::printf("logs kept in %s\n", dir.c_str());
      } else {
        std::error_code ec;
        fs::remove_all(dir, ec);
      }
    }
  } cleanup{dir, keep_logs};
  int rc = 0;
  for (bool backlog : {false, true})
    if (only.empty() || only == (backlog ? "backlog" : "stream"))
      rc |= run_phase(backlog, nodes, pods, clients, apiserver, scheduler, dir);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  return run(argc, argv);
}
