// bench_podstart: how fast skiff starts containers and pods. Not a test: it prints.
//
// (a) container start: one busybox rootfs, `/bin/true`, 100 sequential runs each (interleaved,
//     so machine noise hits all alike) of `crun run` and `runc run` on an OCI bundle made by
//     `crun spec`, and `skiff-shim run <dir>` on the same rootfs: new mount + PID + net + IPC +
//     UTS namespaces and a fresh cgroup for every tool. skiff-shim is also timed joining a pod
//     sandbox made once (the per-container cost inside a pod).
// (b) pod start: skiff-apiserver + skiff-kubelet in a network namespace this program creates
//     (`nsenter --net`), the busybox image imported, N pods created one at a time; for each, the
//     time from the POST to the watch event showing it Running. Per-stage figures come from
//     the kubelet's log (--v 1, see kubelet/README.md). Kubelet RSS with 20 pods running and
//     each shim's RSS (VmRSS).
//
// Needs root. Every loop has a count and a time limit; everything this program creates (temp
// dirs, mounts, cgroups, the netns, processes) is removed at the end, also on SIGINT/SIGTERM.
// Traffic: loopback and the bridge inside the program's own network namespace only.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kubelet/cgroups/cgroups.h"
#include "kubelet/runtime/shim/protocol.h"
#include "kubelet/runtime/spec.h"

#ifndef SKIFF_SOURCE_DIR
#define SKIFF_SOURCE_DIR ""
#endif

namespace skiff::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

std::atomic<bool> g_stop{false};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}
double ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

struct Summary {
  size_t n = 0;
  double mean = 0, p50 = 0, p99 = 0, min = 0, max = 0;
};
Summary summarize(std::vector<int64_t> v) {
  Summary s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (auto x : v) sum += ms(x);
  s.mean = sum / static_cast<double>(v.size());
  auto at = [&](double p) {  // nearest rank: the smallest value with >= p of the samples
    size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
    return ms(v[std::clamp<size_t>(rank, 1, v.size()) - 1]);
  };
  s.p50 = at(0.50);
  s.p99 = at(0.99);
  s.min = ms(v.front());
  s.max = ms(v.back());
  return s;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
bool write_file(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << s;
  return static_cast<bool>(f);
}

long vmrss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

std::string cmdline_of(pid_t pid) {
  std::string s = read_file("/proc/" + std::to_string(pid) + "/cmdline");
  std::replace(s.begin(), s.end(), '\0', ' ');
  return s;
}

// fork + exec with stdout/stderr to `out` (a path; "" = /dev/null), optional working dir.
pid_t spawn(const std::vector<std::string>& args, const std::string& out = "",
            const std::string& cwd = "") {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  int fd = ::open(out.empty() ? "/dev/null" : out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  int in = ::open("/dev/null", O_RDONLY);
  if (in >= 0) ::dup2(in, 0);
  if (fd >= 0) {
    ::dup2(fd, 1);
    ::dup2(fd, 2);
  }
  if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) std::_Exit(126);
  std::vector<char*> av;
  for (const auto& a : args) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  ::execvp(av[0], av.data());
  std::_Exit(127);
}

// Waits for `pid` up to `timeout`; kills it after that. Returns the exit status (128+signal
// when killed), -1 on timeout.
int wait_for(pid_t pid, std::chrono::milliseconds timeout) {
  auto end = Clock::now() + timeout;
  int st = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) break;
    if (Clock::now() > end) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      return -1;
    }
    // Short sleeps: the thing measured is a few ms long.
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -2;
}

// Blocking wait with a time limit, for the thing being timed (no polling granularity): a
// helper thread SIGKILLs the child at the deadline.
int run_timed(const std::vector<std::string>& args, std::chrono::milliseconds timeout,
              int64_t* elapsed_ns, const std::string& out = "") {
  int64_t t0 = now_ns();
  pid_t pid = spawn(args, out);
  if (pid < 0) return -1;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread guard([&] {
    std::unique_lock<std::mutex> l(mu);
    if (!cv.wait_for(l, timeout, [&] { return done; })) ::kill(pid, SIGKILL);
  });
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  *elapsed_ns = now_ns() - t0;
  {
    std::lock_guard<std::mutex> l(mu);
    done = true;
  }
  cv.notify_all();
  guard.join();
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -2;
}

int run_quiet(const std::vector<std::string>& args, int seconds = 60,
              const std::string& out = "") {
  pid_t pid = spawn(args, out);
  return pid < 0 ? -1 : wait_for(pid, std::chrono::seconds(seconds));
}

std::string self_dir() {
  std::error_code ec;
  return fs::read_symlink("/proc/self/exe", ec).parent_path().string();
}

// A binary of this build: next to this program or one directory up (build/bench/..).
std::string find_bin(const std::string& bin_dir, const std::string& name) {
  std::vector<fs::path> cands;
  if (!bin_dir.empty()) cands.push_back(fs::path(bin_dir) / name);
  cands.push_back(fs::path(self_dir()) / name);
  cands.push_back(fs::path(self_dir()).parent_path() / name);
  for (const auto& p : cands) {
    if (::access(p.c_str(), X_OK) == 0) return p.string();
  }
  return "";
}

bool have_tool(const std::string& name) {
  return run_quiet({"sh", "-c", "command -v " + name}, 10) == 0;
}

// ---- cleanup helpers (shared by (a) and (b)) -------------------------------------------------

std::vector<std::string> mounts_under(const std::string& prefix) {
  std::vector<std::string> out;
  std::ifstream f("/proc/self/mountinfo");
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream is(line);
    std::string id, parent, devno, root, mp;
    is >> id >> parent >> devno >> root >> mp;
    if (mp == prefix || mp.rfind(prefix + "/", 0) == 0) out.push_back(mp);
  }
  return out;
}

void umount_under(const std::string& prefix) {
  auto m = mounts_under(prefix);
  std::sort(m.begin(), m.end(), [](const std::string& a, const std::string& b) {
    return std::count(a.begin(), a.end(), '/') > std::count(b.begin(), b.end(), '/');
  });
  for (const auto& p : m) {
    for (int i = 0; i < 8 && ::umount2(p.c_str(), MNT_DETACH) == 0; ++i) {
    }
  }
}

std::vector<std::string> cgroup_hierarchies() {
  std::vector<std::string> out;
  std::ifstream f("/proc/self/mountinfo");
  std::string line;
  while (std::getline(f, line)) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream is(line), rs(line.substr(dash + 3));
    std::string id, parent, devno, root, mp, type;
    is >> id >> parent >> devno >> root >> mp;
    rs >> type;
    if ((type == "cgroup" || type == "cgroup2") && mp.rfind("/sys/fs/cgroup", 0) == 0) {
      out.push_back(mp);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// Kills everything in <hierarchy>/<parent> (every hierarchy), then removes the dirs bottom-up.
void remove_cgroup_parent(const std::string& parent) {
  for (int round = 0; round < 50; ++round) {
    bool any = false;
    for (const auto& h : cgroup_hierarchies()) {
      fs::path base = fs::path(h) / parent;
      std::error_code ec;
      if (!fs::exists(base, ec)) continue;
      for (auto it = fs::recursive_directory_iterator(base, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->path().filename() != "cgroup.procs") continue;
        std::istringstream is(read_file(it->path()));
        pid_t p;
        while (is >> p) {
          ::kill(p, SIGKILL);
          any = true;
        }
      }
    }
    if (!any) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (const auto& h : cgroup_hierarchies()) {
    fs::path base = fs::path(h) / parent;
    std::error_code ec;
    if (!fs::exists(base, ec)) continue;
    std::vector<fs::path> dirs{base};
    for (auto it = fs::recursive_directory_iterator(base, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec)) dirs.push_back(it->path());
    }
    std::sort(dirs.begin(), dirs.end(), [](const fs::path& a, const fs::path& b) {
      return a.string().size() > b.string().size();
    });
    for (const auto& d : dirs) {
      for (int i = 0; i < 20 && ::rmdir(d.c_str()) != 0 && errno == EBUSY; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  }
}

// Processes whose command line names `root` (shims, daemons of this run): never by name.
void kill_processes_under(const std::string& root) {
  for (int round = 0; round < 20; ++round) {
    bool any = false;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc", ec)) {
      std::string n = e.path().filename();
      if (n.empty() || !std::isdigit(static_cast<unsigned char>(n[0]))) continue;
      pid_t p = std::atoi(n.c_str());
      if (p == ::getpid()) continue;
      if (cmdline_of(p).find(root) != std::string::npos) {
        ::kill(p, SIGKILL);
        any = true;
      }
    }
    if (!any) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// ---- (a) container start ------------------------------------------------------------------

// A busybox rootfs: /bin/busybox (copied) and the applets used as symlinks.
bool make_rootfs(const fs::path& root) {
  std::error_code ec;
  for (const char* d : {"bin", "proc", "dev", "sys", "tmp", "etc", "root"}) {
    fs::create_directories(root / d, ec);
  }
  fs::copy_file("/bin/busybox", root / "bin" / "busybox", fs::copy_options::overwrite_existing,
                ec);
  if (ec) {
    std::fprintf(stderr, "bench: copy /bin/busybox: %s (apt-get install busybox-static)\n",
                 ec.message().c_str());
    return false;
  }
  for (const char* a : {"sh", "true", "sleep", "echo"}) {
    fs::create_symlink("busybox", root / "bin" / a, ec);
  }
  write_file(root / "etc" / "passwd", "root:x:0:0:root:/root:/bin/sh\n");
  return true;
}

// `crun spec` in `bundle`, then: no terminal, /bin/true, our rootfs (read-only, as the
// default spec has it), a cgroup path under this run's parent.
bool make_bundle(const fs::path& bundle, const fs::path& rootfs, const std::string& cg_parent) {
  fs::create_directories(bundle);
  // `crun spec` writes config.json into its working directory.
  pid_t p = spawn({"crun", "spec"}, "", bundle.string());
  if (wait_for(p, std::chrono::seconds(30)) != 0) {
    std::fprintf(stderr, "bench: `crun spec` failed in %s\n", bundle.c_str());
    return false;
  }
  json j = json::parse(read_file(bundle / "config.json"), nullptr, false);
  if (j.is_discarded()) return false;
  j["process"]["terminal"] = false;
  j["process"]["args"] = {"/bin/true"};
  j["root"]["path"] = rootfs.string();
  j["root"]["readonly"] = true;
  j["linux"]["cgroupsPath"] = "/" + cg_parent + "/oci";
  return write_file(bundle / "config.json", j.dump(1));
}

// A pod-like sandbox made once: net + IPC + UTS namespaces of a short-lived child, pinned by
// bind mounts on <dir>/ns/{net,ipc,uts} (what kubelet/runtime/sandbox does, without the etc
// files).
bool make_sandbox(const fs::path& dir) {
  fs::create_directories(dir / "ns");
  for (const char* n : {"net", "ipc", "uts"}) write_file(dir / "ns" / n, "");
  int p1[2], p2[2];
  if (::pipe(p1) != 0 || ::pipe(p2) != 0) return false;
  pid_t child = ::fork();
  if (child == 0) {
    char c = 0;
    if (::unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) != 0) std::_Exit(1);
    ::sethostname("bench", 5);
    if (::write(p1[1], &c, 1) != 1) std::_Exit(1);
    if (::read(p2[0], &c, 1) < 0) std::_Exit(1);
    std::_Exit(0);
  }
  char c;
  bool ok = ::read(p1[0], &c, 1) == 1;
  for (const char* n : {"net", "ipc", "uts"}) {
    std::string src = "/proc/" + std::to_string(child) + "/ns/" + n;
    std::string dst = (dir / "ns" / n).string();
    if (ok && ::mount(src.c_str(), dst.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      std::fprintf(stderr, "bench: bind %s on %s: %s\n", src.c_str(), dst.c_str(),
                   std::strerror(errno));
      ok = false;
    }
  }
  if (::write(p2[1], &c, 1) != 1) ok = false;
  ::waitpid(child, nullptr, 0);
  for (int fd : {p1[0], p1[1], p2[0], p2[1]}) ::close(fd);
  return ok;
}

bool g_crun_cgroups = true;

// One `crun run` with cgroups; false when crun refuses them on this machine.
bool crun_cgroups_ok(const fs::path& bundle, const fs::path& tmp) {
  int64_t t = 0;
  std::string log = (tmp / "crun-probe.log").string();
  int rc = run_timed({"crun", "--root", (tmp / "crun-state").string(), "run", "--bundle",
                      bundle.string(), "bench-crun-probe"},
                     std::chrono::seconds(20), &t, log);
  if (rc == 0) return true;
  std::string l = read_file(log);
  while (!l.empty() && (l.back() == '\n' || l.back() == ' ')) l.pop_back();
  std::printf("  crun with cgroups failed (%s): crun runs with --cgroup-manager=disabled\n",
              l.c_str());
  return false;
}

struct StartResult {
  std::string name;
  std::vector<int64_t> times;
  int failures = 0;
  std::string first_error;
};

void print_start(const StartResult& r) {
  Summary s = summarize(r.times);
  std::printf("  %-44s n=%3zu  mean %7.2f ms  p50 %7.2f ms  p99 %7.2f ms  (min %.2f, max %.2f)"
              "%s\n",
              r.name.c_str(), s.n, s.mean, s.p50, s.p99, s.min, s.max,
              r.failures ? ("  FAILED " + std::to_string(r.failures) + "x").c_str() : "");
  if (!r.first_error.empty()) std::printf("      first failure: %s\n", r.first_error.c_str());
}

int bench_container_start(const fs::path& tmp, const std::string& shim, int runs) {
  std::printf("\n(a) container start: /bin/true in a busybox rootfs, %d sequential runs each "
              "(interleaved)\n", runs);
  std::string cg_parent = "skiff-bench-" + std::to_string(::getpid());
  fs::path rootfs = tmp / "rootfs";
  fs::path bundle = tmp / "bundle";
  if (!make_rootfs(rootfs) || !make_bundle(bundle, rootfs, cg_parent)) return 1;
  fs::path sandbox = tmp / "sandbox";
  bool have_sandbox = make_sandbox(sandbox);
  auto drv = cgroups::CgroupDriver::detect(cg_parent);
  if (!drv.is_ok()) {
    std::fprintf(stderr, "bench: cgroups: %s\n", drv.status().to_string().c_str());
    return 1;
  }
  auto& cg = *drv.value();
  bool have_crun = have_tool("crun"), have_runc = have_tool("runc");

  // crun refuses cgroup v1 when the cgroup2 hierarchy also has controllers ("hybrid mode"),
  // as on this kind of machine: it then runs with --cgroup-manager=disabled, and skiff-shim is
  // timed without a cgroup too for the like-for-like ratio.
  g_crun_cgroups = have_crun && crun_cgroups_ok(bundle, tmp);
  StartResult crun{g_crun_cgroups ? "crun run (bundle from `crun spec`)"
                                 : "crun run --cgroup-manager=disabled"},
      runc{"runc run (same bundle, cgroup)"},
      skiff{"skiff-shim run (own net/ipc/uts, cgroup)"},
      skiff_nocg{"skiff-shim run (own net/ipc/uts, no cgroup)"},
      skiff_sb{"skiff-shim run (joins a pod sandbox, cgroup)"};
  auto record = [](StartResult& r, int rc, int64_t t, const std::string& what,
                   const std::string& log) {
    if (rc == 0) {
      r.times.push_back(t);
      return;
    }
    ++r.failures;
    if (r.first_error.empty()) {
      std::string l = read_file(log);
      if (l.size() > 400) l = l.substr(l.size() - 400);
      r.first_error = what + " exited " + std::to_string(rc) + ": " + l;
    }
  };

  // skiff-shim: the runtime's work per container: a cgroup (the kubelet's CgroupDriver), the
  // container dir with config.json, the shim, then the cgroup and dir removed again.
  auto skiff_run = [&](int i, bool join_sandbox, bool cgroup, StartResult& r) {
    std::string id = (join_sandbox ? "sb" : cgroup ? "c" : "n") + std::to_string(i);
    fs::path dir = tmp / "shim" / id;
    std::string log = (tmp / "shim-last.log").string();
    fs::remove(log);
    int64_t t0 = now_ns();
    Status st = cgroup ? cg.ensure(id, {}) : Status::ok();
    runtime::ContainerConfig c;
    c.id = id;
    c.rootfs_path = rootfs.string();
    c.read_only_rootfs = true;
    c.args = {"/bin/true"};
    c.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
    if (join_sandbox) c.sandbox_dir = sandbox.string();
    if (cgroup) c.cgroup_dirs = cg.dirs(id);
    fs::create_directories(dir);
    write_file(dir / "config.json", runtime::shim::config_to_json(c, 0));
    int64_t spawn_ns = 0;
    int rc = st.is_ok() ? run_timed({shim, "run", dir.string()}, std::chrono::seconds(20),
                                 &spawn_ns, log)
                     : -3;
    Status rm = cgroup ? cg.remove(id) : Status::ok();
    std::error_code ec;
    fs::remove_all(dir, ec);
    int64_t t = now_ns() - t0;
    if (!st.is_ok()) r.first_error = "cgroup: " + st.to_string();
    if (!rm.is_ok() && r.first_error.empty()) r.first_error = "cgroup remove: " + rm.to_string();
    record(r, rc, t, "skiff-shim run", log);
  };

  std::string oci_log = (tmp / "oci-last.log").string();
  auto oci_run = [&](const std::string& tool, int i, StartResult& r) {
    fs::remove(oci_log);
    int64_t t = 0;
    std::string id = "bench-" + tool + "-" + std::to_string(i);
    std::vector<std::string> args = {tool, "--root", (tmp / (tool + "-state")).string()};
    if (tool == "crun" && !g_crun_cgroups) args.push_back("--cgroup-manager=disabled");
    for (const std::string& a : {std::string("run"), std::string("--bundle"), bundle.string(), id})
      args.push_back(a);
    int rc = run_timed(args, std::chrono::seconds(20), &t, oci_log);
    record(r, rc, t, tool + " run", oci_log);
  };

  // Warm-up: page cache, binaries, first cgroup creation.
  for (int i = 0; i < 3; ++i) {
    StartResult w;
    if (have_crun) oci_run("crun", 1000 + i, w);
    if (have_runc) oci_run("runc", 1000 + i, w);
    skiff_run(1000 + i, false, true, w);
  }
  auto deadline = Clock::now() + std::chrono::minutes(5);
  int done = 0;
  for (int i = 0; i < runs && !g_stop && Clock::now() < deadline; ++i, ++done) {
    if (have_crun) oci_run("crun", i, crun);
    if (have_runc) oci_run("runc", i, runc);
    skiff_run(i, false, true, skiff);
    skiff_run(i, false, false, skiff_nocg);
    if (have_sandbox) skiff_run(i, true, true, skiff_sb);
  }
  if (done < runs) std::printf("  (stopped after %d rounds: time limit or signal)\n", done);
  if (have_crun) print_start(crun);
  else std::printf("  crun: not installed\n");
  if (have_runc) print_start(runc);
  else std::printf("  runc: not installed\n");
  print_start(skiff);
  print_start(skiff_nocg);
  if (have_sandbox) print_start(skiff_sb);
  Summary s = summarize(skiff.times), sn = summarize(skiff_nocg.times),
          c = summarize(crun.times), r = summarize(runc.times);
  // Like for like: the same cgroup handling on both sides of each ratio.
  const Summary& vs_crun = g_crun_cgroups ? s : sn;
  if (have_crun && c.n && vs_crun.n) {
    std::printf("  ratio skiff-shim / crun (%s): mean %.2fx  p50 %.2fx\n",
                g_crun_cgroups ? "both with a cgroup" : "both without a cgroup",
                vs_crun.mean / c.mean, vs_crun.p50 / c.p50);
  }
  if (have_runc && r.n && s.n) {
    std::printf("  ratio skiff-shim / runc (both with a cgroup): mean %.2fx  p50 %.2fx\n",
                s.mean / r.mean, s.p50 / r.p50);
  }
  std::printf("  notes: every tool gets new mount+pid+net+ipc+uts namespaces; \"cgroup\" = a "
              "fresh cgroup per run (runc/crun: cgroupsPath; skiff: the kubelet's CgroupDriver "
              "ensure/remove, inside the timing); skiff-shim also applies its default seccomp "
              "filter, the `crun spec` bundle has none.\n");

  for (const char* n : {"net", "ipc", "uts"}) {
    ::umount2((sandbox / "ns" / n).c_str(), MNT_DETACH);
  }
  remove_cgroup_parent(cg_parent);
  return 0;
}

// Runs (a) in a child with a private mount namespace in which the cgroup2 mount that sits beside
// the v1 controllers (/sys/fs/cgroup/unified on this kind of machine) is detached: crun refuses
// such "hybrid" hosts outright, even with --cgroup-manager=disabled. All tools of (a) run in that
// same namespace, so they see the same (pure v1) cgroup setup; (b) is not affected.
int container_start_isolated(const fs::path& tmp, const std::string& shim, int runs) {
  std::fflush(stdout);
  pid_t child = ::fork();
  if (child == 0) {
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      std::fprintf(stderr, "bench: private mount namespace: %s\n", std::strerror(errno));
      std::_Exit(1);
    }
    std::ifstream f("/proc/self/mountinfo");
    std::string line;
    std::vector<std::string> v2;
    while (std::getline(f, line)) {
      auto dash = line.find(" - cgroup2 ");
      if (dash == std::string::npos) continue;
      std::istringstream is(line);
      std::string id, parent, devno, root, mp;
      is >> id >> parent >> devno >> root >> mp;
      if (mp != "/sys/fs/cgroup") v2.push_back(mp);  // a pure v2 host keeps its hierarchy
    }
    for (const auto& mp : v2) ::umount2(mp.c_str(), MNT_DETACH);
    int rc = bench_container_start(tmp, shim, runs);
    std::fflush(stdout);
    std::_Exit(rc);
  }
  if (child < 0) return 1;
  int st = 0;
  for (int i = 0; i < 20 * 60 * 10; ++i) {  // at most 20 minutes
    pid_t r = ::waitpid(child, &st, WNOHANG);
    if (r == child) return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
    if (g_stop) ::kill(child, SIGTERM);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, &st, 0);
  return 1;
}

// ---- (b) pod start through the API ---------------------------------------------------------

// A plain HTTP/1.1 request on a fresh loopback connection (the apiserver's insecure port).
int http(int port, const std::string& method, const std::string& path, const std::string& body,
         std::string* out = nullptr) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return 0;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                    "Accept: application/json\r\n";
  if (!body.empty()) {
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n";
  }
  req += "\r\n" + body;
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return 0;
  }
  std::string resp;
  char buf[65536];
  for (int i = 0; i < 100000; ++i) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (resp.size() < 12) return 0;
  int status = std::atoi(resp.c_str() + 9);
  if (out) {
    size_t e = resp.find("\r\n\r\n");
    std::string head = resp.substr(0, e);
    std::string b = e == std::string::npos ? "" : resp.substr(e + 4);
    std::string lower = head;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (lower.find("transfer-encoding: chunked") != std::string::npos) {
      std::string d;
      size_t off = 0;
      for (int i = 0; i < 100000; ++i) {
        size_t eol = b.find("\r\n", off);
        if (eol == std::string::npos) break;
        size_t sz = std::strtoul(b.c_str() + off, nullptr, 16);
        if (sz == 0) break;
        d.append(b, eol + 2, sz);
        off = eol + 2 + sz + 2;
      }
      b = d;
    }
    *out = b;
  }
  return status;
}

// A watch on pods; records when each pod was first seen Running with all containers running.
class PodWatch {
 public:
  bool start(int port, const std::string& rv) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return false;
    timeval tv{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string req = "GET /api/v1/namespaces/default/pods?watch=1&resourceVersion=" + rv +
                      " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n";
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) < 0) return false;
    thread_ = std::thread([this] { loop(); });
    return true;
  }
  ~PodWatch() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  // Waits until `name` was seen Running; returns that time (ns), or 0 at the deadline.
  int64_t wait_running(const std::string& name, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, timeout, [&] { return running_.count(name) > 0 || stop_; });
    auto it = running_.find(name);
    return it == running_.end() ? 0 : it->second;
  }
  std::string last_status(const std::string& name) {
    std::lock_guard<std::mutex> l(mu_);
    return last_[name];
  }

 private:
  void loop() {
    std::string raw, body;
    bool head = false;
    char buf[65536];
    while (!stop_) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) break;
      if (n < 0) continue;  // 1 s receive timeout: check stop_
      int64_t t = now_ns();
      raw.append(buf, static_cast<size_t>(n));
      if (!head) {
        size_t e = raw.find("\r\n\r\n");
        if (e == std::string::npos) continue;
        raw.erase(0, e + 4);
        head = true;
      }
      size_t off = 0;
      for (;;) {
        size_t eol = raw.find("\r\n", off);
        if (eol == std::string::npos) break;
        size_t sz = std::strtoul(raw.c_str() + off, nullptr, 16);
        if (raw.size() < eol + 2 + sz + 2) break;
        body.append(raw, eol + 2, sz);
        off = eol + 2 + sz + 2;
      }
      raw.erase(0, off);
      size_t start = 0;
      for (;;) {
        size_t nl = body.find('\n', start);
        if (nl == std::string::npos) break;
        handle(body.substr(start, nl - start), t);
        start = nl + 1;
      }
      body.erase(0, start);
    }
  }
  void handle(const std::string& line, int64_t t) {
    json ev = json::parse(line, nullptr, false);
    if (ev.is_discarded() || !ev.contains("object")) return;
    const json& p = ev["object"];
    std::string name = p.value("/metadata/name"_json_pointer, std::string());
    const json st = p.value("status", json::object());
    bool running = st.value("phase", "") == "Running";
    const json css = st.value("containerStatuses", json::array());
    if (css.empty()) running = false;
    for (const auto& cs : css) {
      if (!cs.contains("state") || !cs["state"].contains("running")) running = false;
    }
    std::lock_guard<std::mutex> l(mu_);
    last_[name] = st.dump().substr(0, 600);
    if (running && !running_.count(name)) {
      running_[name] = t;
      cv_.notify_all();
    }
  }

  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, int64_t> running_;
  std::map<std::string, std::string> last_;
};

std::string pod_json(const std::string& name) {
  json p = {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"metadata", {{"name", name}, {"namespace", "default"}}},
            {"spec",
             {{"terminationGracePeriodSeconds", 0},
              {"nodeName", "bench-node"},  // no scheduler: the pod names the node
              {"containers",
               {{{"name", "main"}, {"image", "busybox:1.35"},
                 {"command", {"sleep", "3600"}}}}}}}};
  return p.dump();
}

// The kubelet's per-pod stage timings, from its --v 1 log: lines naming the pod
// ("pod-start <ns>/<name>" or "pod=<ns>/<name>") with "<stage>_ms=<float>" fields (or
// "stage=<name> ... ms=<float>"). Whatever stage
// names the kubelet logs are summed per pod and summarized per stage.
std::map<std::string, std::vector<int64_t>> stage_times(const std::string& log,
                                                        const std::set<std::string>& pods) {
  std::map<std::string, std::vector<int64_t>> out;
  std::istringstream is(log);
  std::string line;
  static const std::regex kv(R"(([A-Za-z_][A-Za-z0-9_.-]*)_ms[=:]\s*([0-9]+(?:\.[0-9]+)?))");
  static const std::regex stage(R"(stage[=:]\s*\"?([A-Za-z_][A-Za-z0-9_.-]*)\"?.*?\bms[=:]\s*([0-9]+(?:\.[0-9]+)?))");
  static const std::regex podre(
      R"((?:pod[=:]\s*\"?|pod-start\s+)(?:default/)?(bench-[0-9]+)\b)");
  for (int guard = 0; guard < 10000000 && std::getline(is, line); ++guard) {
    std::smatch pm;
    if (!std::regex_search(line, pm, podre) || !pods.count(pm[1].str())) continue;
    std::smatch m;
    if (std::regex_search(line, m, stage)) {
      out[m[1].str()].push_back(static_cast<int64_t>(std::stod(m[2].str()) * 1e6));
      continue;
    }
    for (auto it = std::sregex_iterator(line.begin(), line.end(), kv);
         it != std::sregex_iterator(); ++it) {
      out[(*it)[1].str()].push_back(static_cast<int64_t>(std::stod((*it)[2].str()) * 1e6));
    }
  }
  return out;
}

struct Daemons {
  std::string netns;
  pid_t apiserver = -1, kubelet = -1;
  int orig_netns = -1;
};

void stop_pid(pid_t& pid, int grace_s) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  if (wait_for(pid, std::chrono::seconds(grace_s)) == -1) {
    // wait_for SIGKILLed it
  }
  pid = -1;
}

int bench_pod_start(const fs::path& tmp, const std::string& bin_dir, const std::string& images,
                    int pods, int rss_at) {
  std::printf("\n(b) pod start through skiff-apiserver + skiff-kubelet: %d pods, one at a time\n",
              pods);
  std::string api = find_bin(bin_dir, "skiff-apiserver");
  std::string kubelet = find_bin(bin_dir, "skiff-kubelet");
  if (api.empty() || kubelet.empty()) {
    std::printf("  skipped: skiff-apiserver or skiff-kubelet not built\n");
    return 0;
  }
  fs::path oci = fs::path(images) / "busybox.oci.tar";
  if (!fs::exists(oci)) {
    std::string script = std::string(SKIFF_SOURCE_DIR) + "/deploy/images/build.sh";
    run_quiet({"bash", script, images}, 300, (tmp / "images.log").string());
  }
  if (!fs::exists(oci)) {
    std::printf("  skipped: %s missing (deploy/images/build.sh)\n", oci.c_str());
    return 0;
  }
  Daemons d;
  d.netns = "skiff-bench-" + std::to_string(::getpid());
  std::string cg_parent = "skiff-bench-" + std::to_string(::getpid());
  std::string ns_path = "/run/netns/" + d.netns;
  fs::path data = tmp / "kubelet", run = tmp / "run", logs = tmp / "log",
           cni = tmp / "cni" / "net.d", ipam = tmp / "cni" / "ipam", apid = tmp / "apiserver";
  for (const auto& p : {data, run, logs, cni, ipam, apid}) fs::create_directories(p);
  int rc = 0;
  auto cleanup = [&] {
    stop_pid(d.kubelet, 15);
    stop_pid(d.apiserver, 10);
    kill_processes_under(tmp.string());
    remove_cgroup_parent(cg_parent);
    umount_under(tmp.string());
    if (d.orig_netns >= 0) {
      ::setns(d.orig_netns, CLONE_NEWNET);
      ::close(d.orig_netns);
      d.orig_netns = -1;
    }
    run_quiet({"ip", "netns", "del", d.netns}, 30);
  };
  if (run_quiet({"ip", "netns", "add", d.netns}, 30) != 0) {
    std::printf("  failed: ip netns add %s\n", d.netns.c_str());
    return 1;
  }
  d.orig_netns = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  int nsfd = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (nsfd < 0 || ::setns(nsfd, CLONE_NEWNET) != 0) {
    std::printf("  failed: setns %s: %s\n", ns_path.c_str(), std::strerror(errno));
    cleanup();
    return 1;
  }
  ::close(nsfd);
  run_quiet({"ip", "link", "set", "lo", "up"}, 10);

  std::string bin_cni = fs::exists("/usr/lib/cni/bridge") ? "/usr/lib/cni" : "/opt/cni/bin";
  json conf = {{"cniVersion", "1.0.0"},
               {"name", "skiff-bench"},
               {"plugins",
                {{{"type", "bridge"}, {"bridge", "skiff0"}, {"isGateway", true},
                  {"ipMasq", false}, {"hairpinMode", true},
                  {"ipam",
                   {{"type", "host-local"}, {"dataDir", ipam.string()},
                    {"ranges", {{{{"subnet", "10.244.0.0/24"}}}}}}}},
                 {{"type", "loopback"}}}}};
  write_file(cni / "10-bench.conflist", conf.dump(1));

  const int port = 8080;
  d.apiserver = spawn({"nsenter", "--net=" + ns_path, api, "--listen", "127.0.0.1:6443",
                       "--insecure-listen", "127.0.0.1:" + std::to_string(port), "--anonymous",
                       "--data-dir", apid.string()},
                      (tmp / "apiserver.log").string());
  bool ready = false;
  for (int i = 0; i < 600 && !ready; ++i) {
    ready = http(port, "GET", "/readyz", "") == 200 && fs::exists(apid / "admin.kubeconfig");
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!ready) {
    std::printf("  failed: apiserver not ready (see %s)\n", (tmp / "apiserver.log").c_str());
    cleanup();
    return 1;
  }
  if (run_quiet({kubelet, "image", "import", oci.string(), "--data-dir", data.string()}, 300,
                (tmp / "import.log").string()) != 0) {
    std::printf("  failed: image import: %s\n", read_file(tmp / "import.log").c_str());
    cleanup();
    return 1;
  }
  std::vector<std::string> kargs = {
      "nsenter", "--net=" + ns_path, kubelet, "--kubeconfig",
      (apid / "admin.kubeconfig").string(), "--node-name", "bench-node", "--node-ip",
      "127.0.0.1", "--data-dir", data.string(), "--run-dir", run.string(), "--log-dir",
      logs.string(), "--cgroup-parent", cg_parent, "--cni-conf-dir", cni.string(),
      "--cni-bin-dir", bin_cni, "--port", "0", "--v", "1"};
  if (fs::exists(apid / "pki" / "kubelet-client.token")) {
    kargs.push_back("--client-token-file");
    kargs.push_back((apid / "pki" / "kubelet-client.token").string());
  }
  std::string klog = (tmp / "kubelet.log").string();
  d.kubelet = spawn(kargs, klog);
  bool node_ready = false;
  for (int i = 0; i < 600 && !node_ready && !g_stop; ++i) {
    std::string out;
    if (http(port, "GET", "/api/v1/nodes/bench-node", "", &out) == 200) {
      json n = json::parse(out, nullptr, false);
      if (!n.is_discarded()) {
        for (const auto& c : n.value("/status/conditions"_json_pointer, json::array())) {
          if (c.value("type", "") == "Ready" && c.value("status", "") == "True") node_ready = true;
        }
      }
    }
    if (::waitpid(d.kubelet, nullptr, WNOHANG) == d.kubelet) {
      d.kubelet = -1;
      break;
    }
    if (!node_ready) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!node_ready) {
    std::string l = read_file(klog);
    std::printf("  failed: node not Ready; kubelet log tail:\n%s\n",
                l.substr(l.size() > 2000 ? l.size() - 2000 : 0).c_str());
    cleanup();
    return 1;
  }

  std::string list;
  http(port, "GET", "/api/v1/namespaces/default/pods", "", &list);
  json lj = json::parse(list, nullptr, false);
  std::string rv = lj.is_discarded() ? "0"
                                     : lj.value("/metadata/resourceVersion"_json_pointer,
                                                std::string("0"));
  PodWatch watch;
  if (!watch.start(port, rv)) {
    std::printf("  failed: watch\n");
    cleanup();
    return 1;
  }
  std::vector<int64_t> lat;
  std::set<std::string> names;
  int failures = 0;
  long kubelet_rss_at = -1, kubelet_rss_end = -1;
  std::vector<long> shim_rss;
  auto deadline = Clock::now() + std::chrono::minutes(10);
  for (int i = 0; i < pods && !g_stop && Clock::now() < deadline; ++i) {
    std::string name = "bench-" + std::to_string(i);
    int64_t t0 = now_ns();
    int s = http(port, "POST", "/api/v1/namespaces/default/pods", pod_json(name));
    if (s != 201) {
      ++failures;
      std::printf("  create %s: HTTP %d\n", name.c_str(), s);
      continue;
    }
    int64_t t1 = watch.wait_running(name, std::chrono::seconds(60));
    if (t1 == 0) {
      ++failures;
      std::printf("  %s not Running within 60 s; last status %s\n", name.c_str(),
                  watch.last_status(name).c_str());
      if (failures >= 3) break;
      continue;
    }
    lat.push_back(t1 - t0);
    names.insert(name);
    if (i + 1 == rss_at) {
      std::this_thread::sleep_for(std::chrono::seconds(2));
      kubelet_rss_at = vmrss_kib(d.kubelet);
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(run / "containers", ec)) {
        json st = json::parse(read_file(e.path() / "state.json"), nullptr, false);
        if (st.is_discarded()) continue;
        long r = vmrss_kib(st.value("shim_pid", 0));
        if (r > 0) shim_rss.push_back(r);
      }
    }
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  kubelet_rss_end = vmrss_kib(d.kubelet);
  Summary s = summarize(lat);
  std::printf("  Pod create -> Running (watch): n=%zu  p50 %.1f ms  p99 %.1f ms  mean %.1f ms  "
              "(min %.1f, max %.1f)%s\n",
              s.n, s.p50, s.p99, s.mean, s.min, s.max,
              failures ? ("  FAILURES " + std::to_string(failures)).c_str() : "");
  auto stages = stage_times(read_file(klog), names);
  if (stages.empty()) {
    std::printf("  per-stage breakdown: the kubelet log (--v 1) has no stage timings for these "
                "pods (expected lines with pod=default/<name> and stage=<s> ms=<x> or "
                "<stage>_ms=<x>)\n");
  } else {
    std::printf("  per-stage breakdown (kubelet log, --v 1):\n");
    for (auto& [k, v] : stages) {
      Summary ss = summarize(v);
      std::printf("    %-22s n=%3zu  p50 %7.2f ms  p99 %7.2f ms  mean %7.2f ms\n", k.c_str(),
                  ss.n, ss.p50, ss.p99, ss.mean);
    }
  }
  if (kubelet_rss_at > 0) {
    std::printf("  kubelet RSS with %d pods running: %.1f MB\n", rss_at, kubelet_rss_at / 1024.0);
  }
  if (kubelet_rss_end > 0) {
    std::printf("  kubelet RSS with %zu pods running: %.1f MB\n", names.size(),
                kubelet_rss_end / 1024.0);
  }
  if (!shim_rss.empty()) {
    std::sort(shim_rss.begin(), shim_rss.end());
    double sum = 0;
    for (long r : shim_rss) sum += static_cast<double>(r);
    std::printf("  skiff-shim RSS (%zu shims): mean %.0f KiB  max %ld KiB\n", shim_rss.size(),
                sum / static_cast<double>(shim_rss.size()), shim_rss.back());
  }
  if (s.n == 0) rc = 1;
  cleanup();
  return rc;
}

void on_signal(int) { g_stop = true; }

void usage() {
  std::printf(
      "usage: bench_podstart [--runs N] [--pods N] [--only a|b] [--quick] [--bin DIR]\n"
      "                      [--images DIR] [--tmp DIR]\n"
      "  --runs N     container starts per tool in (a) (default 100)\n"
      "  --pods N     pods in (b) (default 100); RSS is taken after the 20th\n"
      "  --only a|b   run one part\n"
      "  --quick      10 runs, 20 pods\n"
      "  --bin DIR    where skiff-shim, skiff-kubelet, skiff-apiserver are (default: next to\n"
      "               this program or one directory up)\n"
      "  --images DIR holds busybox.oci.tar (default <bin>/images; built by\n"
      "               deploy/images/build.sh when missing)\n"
      "  --tmp DIR    where the temp dir goes (default /var/tmp; not tmpfs: overlay upper dirs)\n");
}

int run(int argc, char** argv) {
  int runs = 100, pods = 100;
  std::string only, bin_dir, images, tmp_root = "/var/tmp";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--runs") runs = std::atoi(next().c_str());
    else if (a == "--pods") pods = std::atoi(next().c_str());
    else if (a == "--only") only = next();
    else if (a == "--quick") runs = 10, pods = 20;
    else if (a == "--bin") bin_dir = next();
    else if (a == "--images") images = next();
    else if (a == "--tmp") tmp_root = next();
    else {
      usage();
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (::geteuid() != 0) {
    std::printf("bench_podstart needs root (namespaces, mounts, cgroups)\n");
    return 1;
  }
  std::string shim = find_bin(bin_dir, "skiff-shim");
  if (images.empty()) {
    std::string k = find_bin(bin_dir, "skiff-kubelet");
    images = ((k.empty() ? fs::path(self_dir()).parent_path() : fs::path(k).parent_path()) /
              "images").string();
  }
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::string tmpl = (fs::path(tmp_root) / "skiff-podstart.XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) {
    std::perror("mkdtemp");
    return 1;
  }
  fs::path tmp = tmpl;
  std::printf("bench_podstart: %d CPUs, tmp %s\n", static_cast<int>(
      std::thread::hardware_concurrency()), tmp.c_str());
  int rc = 0;
  if (only.empty() || only == "a") {
    if (shim.empty()) {
      std::printf("\n(a) skipped: skiff-shim not built\n");
    } else {
      rc |= container_start_isolated(tmp / "a", shim, runs);
    }
  }
  if ((only.empty() || only == "b") && !g_stop) {
    rc |= bench_pod_start(tmp / "b", bin_dir, images, pods, std::min(20, pods));
  }
  kill_processes_under(tmp.string());
  umount_under(tmp.string());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  return rc;
}

}  // namespace
}  // namespace skiff::bench

int main(int argc, char** argv) { return skiff::bench::run(argc, argv); }
