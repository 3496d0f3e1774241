// bench_svc: how fast skiff's service proxy programs rules, how much memory its state takes, and
// what a ClusterIP costs per connection. Not a test: it prints what it measured next to
// references measured in the same run, and the ratios. See bench/README.md.
//
// (1) Rule programming at 1,000 and 10,000 Services x 5 endpoints, each tool in a fresh network
//     namespace: skiff's Proxier over NftnlTables (cold sync, add one Service, change one
//     endpoint, no-op sync) against `nft -f` of the same batches (batch_to_nft_script of what the
//     same Proxier commits on a FakeNftTables) and against `iptables-restore` (nft and legacy
//     backends) of kube-proxy iptables-mode rules for the same Services (full restore, then
//     kube-proxy's partial --noflush restores).
// (2) RSS: a child process holds the largest size's Services and Endpoints as API JSON (what
//     the informers cache), the ServiceMap and a Proxier synced into a fresh netns; VmRSS growth
//     (a proxy for skiff-netagent, labelled so).
// (3) Connect latency and connections/s client -> ClusterIP vs client -> pod IP through a router
//     namespace holding the table, with 0, 1,000 and 10,000 Services loaded.
//
// Bounded: each external tool run by --timeout-s, the whole run by a watchdog (--time-limit-s).
// Needs root, nft and iptables-restore (Debian's nftables and iptables; installed with apt-get
// when missing). Traffic only between the namespaces it creates (skiff-bench-svc-<pid>-*),
// removed at exit (also on SIGINT/TERM).
#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "netagent/nft/fake.h"
#include "netagent/nft/masquerade.h"
#include "netagent/nft/skiff_table.h"
#include "netagent/services/proxier.h"
#include "test/netns.h"

using namespace skiff;
using services::Endpoint;
using services::Ipv4;
using services::ServiceMap;
using services::ServicePort;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string tmp_dir;
std::vector<std::string> named_ns;  // ip netns names we made
int tag = 0;
std::atomic<pid_t> current_child{0};  // the tool being timed, killed on a signal or the watchdog

void cleanup() {
  if (pid_t c = current_child.exchange(0); c > 0) kill(c, SIGKILL);
  for (const std::string& n : named_ns) {
    std::string cmd = "ip netns del " + n + " 2>/dev/null";
    if (std::system(cmd.c_str()) != 0) {
    }
  }
  named_ns.clear();
  if (!tmp_dir.empty()) {
    std::string cmd = "rm -rf " + tmp_dir;
    if (std::system(cmd.c_str()) != 0) {
    }
    tmp_dir.clear();
  }
}

void on_signal(int) {
  cleanup();
  _exit(130);
}

long rss_kb(const char* field = "VmRSS:") {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(field, 0) == 0) return std::atol(line.c_str() + std::strlen(field));
  }
  return -1;
}

// The calling thread in a fresh network namespace until the end of the scope (the namespace
// dies with its last user); the bench exits when the kernel refuses one: every figure needs it.
class FreshNetns {
 public:
  FreshNetns() {
    if (!ns_.error().empty()) {
      std::fprintf(stderr, "bench_svc: %s\n", ns_.error().c_str());
      std::exit(1);
    }
  }

 private:
  skiff::testing::PrivateNetns ns_;
};

// Runs argv (in the calling thread's network namespace) with stdin from `in`, stdout and stderr
// to a log; killed by SIGALRM after timeout_s. Returns the wall time in ms, -2 when the time
// limit killed it, or -1 on another failure (the log's tail on stderr).
double run_timed(const std::vector<std::string>& argv, const std::string& in, int timeout_s) {
  std::string log = tmp_dir + "/cmd.log";
  auto t0 = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    int fd = ::open(in.c_str(), O_RDONLY);
    int lf = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || lf < 0) _exit(126);
    dup2(fd, 0);
    dup2(lf, 1);
    dup2(lf, 2);
    alarm(timeout_s);  // survives exec: bounds the tool
    std::vector<char*> a;
    for (const std::string& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execvp(a[0], a.data());
    _exit(127);
  }
  current_child = pid;
  int st = 0;
  waitpid(pid, &st, 0);
  current_child = 0;
  double t = ms_since(t0);
  if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) {
    std::fprintf(stderr, "bench_svc: %s killed after its time limit (%d s)\n", argv[0].c_str(),
                 timeout_s);
    return -2;
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    std::ifstream f(log);
    std::string text((std::istreambuf_iterator<char>(f)), {});
    if (text.size() > 600) text = text.substr(0, 600) + "...";
    std::fprintf(stderr, "bench_svc: %s failed (%s %d): %s\n", argv[0].c_str(),
                 WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                 text.c_str());
    return -1;
  }
  return t;
}

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
  return static_cast<bool>(f);
}

int sh(const std::string& cmd) {
  int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// ---------------------------------------------------------------------------------------------
// The desired state: Service i = bench/svc-i port http 80/TCP, ClusterIP 10.96.0.16 + i, 5
// endpoints 10.244.x.y:8080 (none local).

Ipv4 ip4(const char* s) {
  Ipv4 a = 0;
  services::parse_ipv4(s, &a);
  return a;
}

Ipv4 endpoint_ip(int i, int e) {
  int n = i * 5 + e;
  return ip4("10.244.0.0") + static_cast<Ipv4>(((1 + n / 250) << 8) | (1 + n % 250));
}

ServicePort make_port(int i) {
  ServicePort sp;
  sp.ns = "bench";
  sp.name = "svc-" + std::to_string(i);
  sp.port_name = "http";
  sp.protocol = services::Protocol::kTcp;
  sp.cluster_ip = ip4("10.96.0.16") + static_cast<Ipv4>(i);
  sp.port = 80;
  for (int e = 0; e < 5; ++e) sp.endpoints.push_back(Endpoint{endpoint_ip(i, e), 8080, false});
  std::sort(sp.endpoints.begin(), sp.endpoints.end());
  return sp;
}

ServiceMap make_map(int n) {
  ServiceMap m;
  for (int i = 0; i < n; ++i) {
    ServicePort sp = make_port(i);
    m.emplace(sp.key(), std::move(sp));
  }
  return m;
}

// The steps every tool performs, in order: cold, then `reps` x (add one Service), `reps` x
// (change one endpoint), `reps` x no-op.
struct Step {
  std::string kind;            // cold, add, change, noop
  ServiceMap map;              // desired state after the step
  std::string added, changed;  // key of the Service added / changed
  Ipv4 old_ip = 0, new_ip = 0;
};

std::vector<Step> make_steps(int n, int reps) {
  std::vector<Step> steps;
  ServiceMap m = make_map(n);
  steps.push_back(Step{"cold", m, "", "", 0, 0});
  for (int r = 0; r < reps; ++r) {
    ServicePort sp = make_port(n + r);
    std::string k = sp.key();
    m.emplace(k, std::move(sp));
    steps.push_back(Step{"add", m, k, "", 0, 0});
  }
  for (int r = 0; r < reps; ++r) {
    ServicePort& sp = m.at(make_port(7 + 13 * r).key());
    Step s{"change", {}, "", sp.key(), sp.endpoints[0].ip, 0};
    sp.endpoints[0].ip = ip4("10.244.250.1") + static_cast<Ipv4>(r);
    std::sort(sp.endpoints.begin(), sp.endpoints.end());
    s.new_ip = ip4("10.244.250.1") + static_cast<Ipv4>(r);
    s.map = m;
    steps.push_back(std::move(s));
  }
  for (int r = 0; r < reps; ++r) steps.push_back(Step{"noop", m, "", "", 0, 0});
  return steps;
}

std::unique_ptr<services::Proxier> make_proxier(nft::NftTables& t) {
  services::ProxierOptions o;
  o.cluster_cidr = "10.244.0.0/16";
  o.full_sync_period = std::chrono::hours(24);  // the bench asks for full syncs explicitly
  auto p = services::Proxier::create(t, o);
  if (!p.is_ok()) {
    std::fprintf(stderr, "bench_svc: Proxier::create: %s\n", p.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(p).value();
}

// ---------------------------------------------------------------------------------------------
// kube-proxy iptables mode (pkg/proxy/iptables/proxier.go) as iptables-restore input.

std::string kp_hash(const std::string& s, const char* salt) {
  // kube-proxy: base32(sha256(...))[:16]; any stable 16-character name of that alphabet does.
  static const char kAlpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  uint64_t h1 = std::hash<std::string>{}(s + salt), h2 = std::hash<std::string>{}(salt + s);
  std::string out;
  for (int i = 0; i < 8; ++i) out += kAlpha[(h1 >> (5 * i)) & 31];
  for (int i = 0; i < 8; ++i) out += kAlpha[(h2 >> (5 * i)) & 31];
  return out;
}
std::string svc_chain(const ServicePort& sp) {
  return "KUBE-SVC-" + kp_hash(sp.ns + "/" + sp.name + ":" + sp.port_name + "tcp", "svc");
}
std::string sep_chain(const ServicePort& sp, const Endpoint& e) {
  return "KUBE-SEP-" + kp_hash(sp.ns + "/" + sp.name + ":" + sp.port_name + "tcp" +
                                   services::ipv4_to_string(e.ip) + ":" + std::to_string(e.port),
                               "sep");
}
std::string svc_name(const ServicePort& sp) { return sp.ns + "/" + sp.name + ":" + sp.port_name; }

void ipt_service_chains(const ServicePort& sp, std::string* decl, std::string* rules) {
  std::string svc = svc_chain(sp), ip = services::ipv4_to_string(sp.cluster_ip);
  std::string name = svc_name(sp);
  *decl += ":" + svc + " - [0:0]\n";
  *rules += "-A " + svc + " -m comment --comment \"" + name + " cluster IP\" -m tcp -p tcp -d " +
            ip + "/32 --dport " + std::to_string(sp.port) +
            " ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ\n";
  size_t n = sp.endpoints.size();
  for (size_t i = 0; i < n; ++i) {
    const Endpoint& e = sp.endpoints[i];
    std::string ep = services::ipv4_to_string(e.ip) + ":" + std::to_string(e.port);
    std::string stat;
    if (i + 1 < n) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.11f", 1.0 / static_cast<double>(n - i));
      stat = std::string(" -m statistic --mode random --probability ") + buf;
    }
    *rules += "-A " + svc + " -m comment --comment \"" + name + " -> " + ep + "\"" + stat + " -j " +
              sep_chain(sp, e) + "\n";
  }
  for (const Endpoint& e : sp.endpoints) {
    std::string sep = sep_chain(sp, e), eip = services::ipv4_to_string(e.ip);
    *decl += ":" + sep + " - [0:0]\n";
    *rules +=
        "-A " + sep + " -m comment --comment " + name + " -s " + eip + "/32 -j KUBE-MARK-MASQ\n";
    *rules += "-A " + sep + " -m comment --comment " + name +
              " -m tcp -p tcp -j DNAT --to-destination " + eip + ":" + std::to_string(e.port) +
              "\n";
  }
}

// The chains kube-proxy rewrites on every sync (full or partial): KUBE-SERVICES etc.
std::string ipt_always(const ServiceMap& m, std::string* nat_decl) {
  *nat_decl +=
      ":KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n"
      ":KUBE-MARK-MASQ - [0:0]\n";
  std::string r;
  r += "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n";
  r += "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n";
  r += "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" "
       "-j MASQUERADE --random-fully\n";
  r += "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n";
  for (const auto& [k, sp] : m) {
    r += "-A KUBE-SERVICES -m comment --comment \"" + svc_name(sp) +
         " cluster IP\" -m tcp -p tcp -d " + services::ipv4_to_string(sp.cluster_ip) +
         "/32 --dport " + std::to_string(sp.port) + " -j " + svc_chain(sp) + "\n";
  }
  r += "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be "
       "the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n";
  return r;
}

const char kIptFilter[] =
    "*filter\n:KUBE-NODEPORTS - [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-EXTERNAL-SERVICES - [0:0]\n"
    ":KUBE-FORWARD - [0:0]\n:KUBE-PROXY-FIREWALL - [0:0]\n"
    "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n"
    "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark "
    "0x4000/0x4000 -j ACCEPT\n"
    "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack "
    "--ctstate RELATED,ESTABLISHED -j ACCEPT\nCOMMIT\n";

// Full restore: everything, plus the jumps from the built-in chains (kube-proxy adds those with
// `iptables -A` once; the namespace is fresh).
std::string ipt_full(const ServiceMap& m) {
  std::string decl, rules = ipt_always(m, &decl);
  for (const auto& [k, sp] : m) ipt_service_chains(sp, &decl, &rules);
  std::string filter = kIptFilter;
  filter.insert(
      filter.size() - 7,  // before COMMIT
      "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n");
  return filter + "*nat\n" + decl + rules +
         "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
         "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
         "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j "
         "KUBE-POSTROUTING\n"
         "COMMIT\n";
}

// kube-proxy's partial sync (MinimizeIPTablesRestore): the always-written chains, the chains of
// changed Services rewritten, the chains no longer used deleted (-X).
std::string ipt_partial(const ServiceMap& m, const std::vector<const ServicePort*>& changed,
                        const std::vector<std::string>& deleted) {
  std::string decl, rules = ipt_always(m, &decl);
  for (const ServicePort* sp : changed) ipt_service_chains(*sp, &decl, &rules);
  for (const std::string& c : deleted) decl += ":" + c + " - [0:0]\n";
  for (const std::string& c : deleted) rules += "-X " + c + "\n";
  return std::string(kIptFilter) + "*nat\n" + decl + rules + "COMMIT\n";
}

// ---------------------------------------------------------------------------------------------
// (1) rule programming

struct Figures {
  std::map<std::string, std::vector<double>> ms;  // step kind -> times
  bool ok = true;
  std::string timed_out;  // the step whose tool run exceeded --timeout-s
};

// The p-quantile of v (nearest rank; p = .5: the lower median); -1 when v is empty.
double pct(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::max<size_t>(1, i) - 1];
}

struct SkiffExtra {
  double cold_build = 0, cold_commit = 0, full_resync = -1;
  size_t cold_ops = 0, change_ops = 0, add_ops = 0, noop_ops = 99;
};

Figures bench_skiff(const std::vector<Step>& steps, bool full_resync, SkiffExtra* x) {
  Figures f;
  FreshNetns ns;
  auto t = nft::NftnlTables::open();
  if (!t.is_ok()) {
    std::fprintf(stderr, "bench_svc: NftnlTables::open: %s\n", t.status().to_string().c_str());
    f.ok = false;
    return f;
  }
  auto& tables = *t.value();
  if (Status s = nft::sync_masquerade(tables, "10.244.0.0/16"); !s.is_ok()) {
    std::fprintf(stderr, "bench_svc: sync_masquerade: %s\n", s.to_string().c_str());
    f.ok = false;
    return f;
  }
  auto p = make_proxier(tables);
  struct Flush {  // on every path: tear the table down before leaving the namespace
    ~Flush() { run_timed({"nft", "flush", "ruleset"}, "/dev/null", 600); }
  } flush;
  for (const Step& s : steps) {
    // The keys the step changed, as the agent passes them from update_service (an incremental
    // sync then costs O(changed), not a walk over every port); none for cold and no-op.
    std::vector<std::string> keys;
    if (!s.added.empty()) keys.push_back(s.added);
    if (!s.changed.empty()) keys.push_back(s.changed);
    auto t0 = Clock::now();
    auto r = s.kind == "cold" ? p->sync(s.map) : p->sync(s.map, &keys);
    double dt = ms_since(t0);
    if (!r.is_ok()) {
      std::fprintf(stderr, "bench_svc: skiff %s sync: %s\n", s.kind.c_str(),
                   r.status().to_string().c_str());
      f.ok = false;
      return f;
    }
    f.ms[s.kind].push_back(dt);
    const services::SyncResult& sr = r.value();
    auto msd = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
    if (s.kind == "cold") {
      x->cold_build = msd(sr.build_time);
      x->cold_commit = msd(sr.commit_time);
      x->cold_ops = sr.batch_ops;
    } else if (s.kind == "add") {
      x->add_ops = sr.batch_ops;
    } else if (s.kind == "change") {
      x->change_ops = sr.batch_ops;
    } else if (s.kind == "noop") {
      x->noop_ops = std::min(x->noop_ops, sr.batch_ops);
    }
  }
  // The periodic full re-assert (every 60 s in the agent) over the same state; minutes at
  // 10,000 Services, so only up to --full-resync-max.
  if (full_resync) {
    p->request_full_sync();
    auto t0 = Clock::now();
    if (p->sync(steps.back().map).is_ok()) x->full_resync = ms_since(t0);
  }
  return f;
}

// The same steps through a Proxier on the fake: the batches, as nft -f scripts.
std::vector<std::string> nft_scripts(const std::vector<Step>& steps, std::string* masq_script) {
  nft::FakeNftTables fake;
  if (!nft::sync_masquerade(fake, "10.244.0.0/16").is_ok()) std::exit(1);
  *masq_script = nft::batch_to_nft_script(fake.committed().back());
  auto p = make_proxier(fake);
  std::vector<std::string> out;
  std::vector<nft::Set> known;
  for (const Step& s : steps) {
    size_t before = fake.committed().size();
    auto r = p->sync(s.map);
    if (!r.is_ok()) {
      std::fprintf(stderr, "bench_svc: fake sync: %s\n", r.status().to_string().c_str());
      std::exit(1);
    }
    if (fake.committed().size() == before) {
      // Nothing committed: what running nft at all costs (kube-proxy's nftables mode still
      // runs `nft -f` for its periodic sync).
      out.push_back("add table ip skiff\n");
      continue;
    }
    const nft::Batch& b = fake.committed().back();
    for (const nft::Batch::Op& op : b.ops()) {
      if (op.kind == nft::Batch::Kind::kAddSet) known.push_back(op.set);
    }
    out.push_back(nft::batch_to_nft_script(b, known));
  }
  return out;
}

Figures bench_nft(const std::vector<Step>& steps, const std::vector<std::string>& scripts,
                  const std::string& masq, int timeout_s, size_t* cold_bytes) {
  Figures f;
  FreshNetns ns;
  struct Flush {
    ~Flush() { run_timed({"nft", "flush", "ruleset"}, "/dev/null", 600); }
  } flush;
  std::string path = tmp_dir + "/nft.nft";
  write_file(path, masq);
  if (run_timed({"nft", "-f", path}, "/dev/null", timeout_s) < 0) {
    f.ok = false;
    return f;
  }
  for (size_t i = 0; i < steps.size(); ++i) {
    write_file(path, scripts[i]);
    if (i == 0) *cold_bytes = scripts[i].size();
    double t = run_timed({"nft", "-f", path}, "/dev/null", timeout_s);
    if (t < 0) {
      if (t == -2) f.timed_out = steps[i].kind;
      f.ok = false;
      return f;
    }
    f.ms[steps[i].kind].push_back(t);
  }
  return f;
}

Figures bench_iptables(const std::string& tool, const std::vector<Step>& steps, int timeout_s,
                       size_t* cold_bytes) {
  Figures f;
  FreshNetns ns;
  struct Flush {  // iptables-nft keeps its tables in nftables; legacy tables go with the netns
    ~Flush() { run_timed({"nft", "flush", "ruleset"}, "/dev/null", 600); }
  } flush;
  std::string path = tmp_dir + "/ipt.txt";
  for (const Step& s : steps) {
    std::string text;
    if (s.kind == "cold") {
      text = ipt_full(s.map);
      *cold_bytes = text.size();
    } else if (s.kind == "add") {
      text = ipt_partial(s.map, {&s.map.at(s.added)}, {});
    } else if (s.kind == "change") {
      const ServicePort& sp = s.map.at(s.changed);
      Endpoint old{s.old_ip, 8080, false};
      text = ipt_partial(s.map, {&sp}, {sep_chain(sp, old)});
    } else {
      text = ipt_partial(s.map, {}, {});  // the periodic partial sync: nothing changed
    }
    write_file(path, text);
    double t = run_timed({tool, "--noflush", "--counters"}, path, timeout_s);
    if (t < 0) {
      if (t == -2) f.timed_out = s.kind;
      f.ok = false;
      return f;
    }
    f.ms[s.kind].push_back(t);
  }
  return f;
}

// ---------------------------------------------------------------------------------------------
// (2) RSS, in a child process: `bench_svc --rss-child N`.

nlohmann::json service_json(const ServicePort& sp, int i) {
  using nlohmann::json;
  std::string ip = services::ipv4_to_string(sp.cluster_ip);
  return json{
      {"apiVersion", "v1"},
      {"kind", "Service"},
      {"metadata",
       {{"name", sp.name},
        {"namespace", sp.ns},
        {"uid", "6c0d5f0e-1a2b-4c3d-8e9f-" + std::to_string(100000000000 + i)},
        {"resourceVersion", std::to_string(1000 + i)},
        {"creationTimestamp", "2026-12-06T05:00:00Z"},
        {"labels", {{"app", sp.name}}}}},
      {"spec",
       {{"type", "ClusterIP"},
        {"clusterIP", ip},
        {"clusterIPs", {ip}},
        {"ipFamilies", {"IPv4"}},
        {"ipFamilyPolicy", "SingleStack"},
        {"internalTrafficPolicy", "Cluster"},
        {"sessionAffinity", "None"},
        {"selector", {{"app", sp.name}}},
        {"ports", {{{"name", "http"}, {"protocol", "TCP"}, {"port", 80}, {"targetPort", 8080}}}}}},
      {"status", {{"loadBalancer", json::object()}}}};
}

nlohmann::json endpoints_json(const ServicePort& sp, int i) {
  using nlohmann::json;
  json addrs = json::array();
  int k = 0;
  for (const Endpoint& e : sp.endpoints) {
    std::string pod = sp.name + "-7d9f8c6b5-" + std::to_string(10000 + k++);
    addrs.push_back(
        json{{"ip", services::ipv4_to_string(e.ip)},
             {"nodeName", "node" + std::to_string(k)},
             {"targetRef",
              {{"kind", "Pod"},
               {"namespace", sp.ns},
               {"name", pod},
               {"uid", "9a8b7c6d-1a2b-4c3d-8e9f-" + std::to_string(200000000000 + i * 5 + k)}}}});
  }
  return json{{"apiVersion", "v1"},
              {"kind", "Endpoints"},
              {"metadata",
               {{"name", sp.name},
                {"namespace", sp.ns},
                {"uid", "1f2e3d4c-1a2b-4c3d-8e9f-" + std::to_string(300000000000 + i)},
                {"resourceVersion", std::to_string(50000 + i)},
                {"creationTimestamp", "2026-12-06T05:00:00Z"},
                {"labels", {{"app", sp.name}}},
                {"annotations",
                 {{"endpoints.kubernetes.io/last-change-trigger-time", "2026-12-06T05:00:01Z"}}}}},
              {"subsets",
               {{{"addresses", addrs},
                 {"ports", {{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}}}}}}};
}

int rss_child(int n, int timeout_s) {
  alarm(timeout_s);  // bounds the child (SIGALRM kills it; the parent prints "failed")
  long base = rss_kb();
  std::vector<nlohmann::json> svcs, eps;
  {
    ServiceMap tmp = make_map(n);
    int i = 0;
    for (const auto& [k, sp] : tmp) {
      svcs.push_back(service_json(sp, i));
      eps.push_back(endpoints_json(sp, i));
      ++i;
    }
  }
  long after_json = rss_kb();
  services::ModelOptions mo;
  mo.node_name = "node-x";
  ServiceMap m = services::build_service_map(svcs, eps, mo, nullptr);
  long after_model = rss_kb();
  long after_proxier = -1;
  {
    FreshNetns ns;
    auto t = nft::NftnlTables::open();
    if (!t.is_ok()) return 1;
    if (!nft::sync_masquerade(*t.value(), "10.244.0.0/16").is_ok()) return 1;
    auto p = make_proxier(*t.value());
    if (!p->sync(m).is_ok()) return 1;
    ServicePort& sp = m.begin()->second;
    sp.endpoints[0].ip += 1000;
    if (!p->sync(m).is_ok()) return 1;
    after_proxier = rss_kb();
    // What is live, without the heap glibc keeps after building the cold batch.
    malloc_trim(0);
    long trimmed = rss_kb();
    std::printf("%zu %ld %ld %ld %ld %ld %ld\n", m.size(), base, after_json, after_model,
                after_proxier, rss_kb("VmHWM:"), trimmed);
    run_timed({"nft", "flush", "ruleset"}, "/dev/null", 600);
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// (3) connect latency

int open_ns(const std::string& name) {
  int fd = ::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::fprintf(stderr, "bench_svc: open /run/netns/%s: %s\n", name.c_str(), std::strerror(errno));
    std::exit(1);
  }
  return fd;
}

void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % std::max(1u, std::thread::hardware_concurrency()), &set);
  sched_setaffinity(0, sizeof set, &set);
}

struct ConnResult {
  std::vector<double> lat_us;  // connect() wall time per connection
  double total_s = 0;          // socket + connect + close, summed
  int failed = 0;
};

// Client (pinned CPU 0): alternating blocks to the ClusterIP and straight to the pod IP, until
// `count` each or `seconds` each.
void client_loop(int ns_fd, sockaddr_in targets[2], int count, double seconds, ConnResult out[2]) {
  if (setns(ns_fd, CLONE_NEWNET) != 0) return;
  pin(0);
  auto one = [&](int w, bool record) {
    auto t0 = Clock::now();
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    // Close with RST: no TIME_WAIT sockets or conntrack entries pile up over the run.
    linger l{1, 0};
    setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    auto t1 = Clock::now();
    int rc = connect(s, reinterpret_cast<sockaddr*>(&targets[w]), sizeof(sockaddr_in));
    auto t2 = Clock::now();
    ::close(s);
    auto t3 = Clock::now();
    if (!record) return;
    if (rc != 0) {
      ++out[w].failed;
      return;
    }
    out[w].lat_us.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count());
    out[w].total_s += std::chrono::duration<double>(t3 - t0).count();
  };
  for (int i = 0; i < 100; ++i) one(i % 2, false);  // warm-up (ARP, caches)
  const int block = 100;
  auto start = Clock::now();
  while (true) {
    bool any = false;
    for (int w = 0; w < 2; ++w) {
      if (static_cast<int>(out[w].lat_us.size()) + out[w].failed >= count) continue;
      if (out[w].total_s >= seconds) continue;
      any = true;
      for (int i = 0; i < block; ++i) one(w, true);
    }
    if (!any || std::chrono::duration<double>(Clock::now() - start).count() > 4 * seconds + 10)
      break;
  }
}

std::atomic<bool> server_stop{false};

void server_loop(int ns_fd, const char* addr, uint16_t port, std::atomic<int>* ready) {
  if (setns(ns_fd, CLONE_NEWNET) != 0) {
    ready->store(-1);
    return;
  }
  pin(1);
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, addr, &a.sin_addr);
  if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(s, 4096) != 0) {
    std::fprintf(stderr, "bench_svc: server bind/listen %s:%u: %s\n", addr, port,
                 std::strerror(errno));
    ready->store(-1);
    return;
  }
  ready->store(1);
  while (!server_stop.load()) {
    pollfd p{s, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    int c = accept4(s, nullptr, nullptr, SOCK_CLOEXEC);
    if (c >= 0) ::close(c);
  }
  ::close(s);
}

// ---------------------------------------------------------------------------------------------

struct Args {
  std::vector<int> sizes{1000, 10000};
  std::vector<int> conn_sizes{0, 1000, 10000};
  int reps = 3;
  int conn_count = 3000;
  double conn_seconds = 5;
  int timeout_s = 300;         // per external tool run and per RSS child
  int time_limit_s = 2400;     // the whole run (watchdog)
  int full_resync_max = 1000;  // measure the full re-assert only up to this many Services
  int rss_services = 0;        // 0 = the largest of sizes
  bool prog = true, rss = true, conn = true, agent_rss = true;
  std::string src;  // source tree (bench/svc_agent_rss.py); --src, $SKIFF_SRC or the cwd
  std::vector<std::string> ipt_tools{"iptables-nft-restore", "iptables-legacy-restore"};
};

std::vector<int> parse_list(const char* s) {
  std::vector<int> v;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ',')) v.push_back(std::atoi(x.c_str()));
  return v;
}

void usage() {
  std::fprintf(
      stderr,
      "usage: bench_svc [--quick] [--services 1000,10000] [--conn-sizes 0,1000,10000]\n"
      "                 [--reps R] [--conn-count N] [--conn-seconds S] [--timeout-s T]\n"
      "                 [--time-limit-s T] [--full-resync-max N] [--rss-services N]\n"
      "                 [--only prog|rss|agent-rss|conn] [--iptables nft|legacy|both|none]\n"
      "                 [--src SOURCE_DIR]\n"
      "  --quick: 1,000 Services only (programming, RSS, connect), under a minute\n");
  std::exit(2);
}

std::string fmt_ms(double v) {
  if (v < 0) return "-";
  char b[32];
  std::snprintf(b, sizeof b, v < 10 ? "%.2f" : v < 1000 ? "%.1f" : "%.0f", v);
  return b;
}
std::string fmt_ratio(double a, double b) {
  if (a < 0 || b <= 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", a / b);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::strcmp(argv[1], "--rss-child") == 0) {
    tmp_dir = argv[4];  // the parent's; it removes it
    int rc = rss_child(std::atoi(argv[2]), std::atoi(argv[3]));
    tmp_dir.clear();
    return rc;
  }
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (f == "--quick") {
      a.sizes = {1000};
      a.conn_sizes = {0, 1000};
      a.time_limit_s = 300;
      a.conn_count = 1000;
      a.conn_seconds = 2;
      a.reps = 1;
    } else if (f == "--sizes" || f == "--services") {
      a.sizes = parse_list(next());
      a.conn_sizes = {0};
      for (int n : a.sizes) a.conn_sizes.push_back(n);
    } else if (f == "--time-limit-s") {
      a.time_limit_s = std::max(10, std::atoi(next()));
    } else if (f == "--full-resync-max") {
      a.full_resync_max = std::atoi(next());
    } else if (f == "--rss-services") {
      a.rss_services = std::max(1, std::atoi(next()));
    } else if (f == "--conn-sizes") {
      a.conn_sizes = parse_list(next());
    } else if (f == "--reps") {
      a.reps = std::max(1, std::atoi(next()));
    } else if (f == "--conn-count") {
      a.conn_count = std::max(10, std::atoi(next()));
    } else if (f == "--conn-seconds") {
      a.conn_seconds = std::max(0.5, std::atof(next()));
    } else if (f == "--timeout-s") {
      a.timeout_s = std::max(5, std::atoi(next()));
    } else if (f == "--only") {
      std::string o = next();
      a.prog = o == "prog";
      a.rss = o == "rss";
      a.agent_rss = o == "agent-rss";
      a.conn = o == "conn";
      if (!a.prog && !a.rss && !a.conn && !a.agent_rss) usage();
    } else if (f == "--src") {
      a.src = next();
    } else if (f == "--iptables") {
      std::string o = next();
      if (o == "nft")
        a.ipt_tools = {"iptables-nft-restore"};
      else if (o == "legacy")
        a.ipt_tools = {"iptables-legacy-restore"};
      else if (o == "none")
        a.ipt_tools = {};
      else if (o != "both")
        usage();
    } else {
      usage();
    }
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "bench_svc: needs root (network namespaces, nftables)\n");
    return 1;
  }
  if (sh("command -v nft >/dev/null && command -v iptables-restore >/dev/null") != 0) {
    std::fprintf(stderr,
                 "bench_svc: installing the references (apt-get install -y nftables iptables)\n");
    sh("DEBIAN_FRONTEND=noninteractive apt-get install -y nftables iptables >&2");
  }
  bool have_nft = sh("command -v nft >/dev/null") == 0;
  std::vector<std::string> ipt;
  for (const std::string& t : a.ipt_tools) {
    if (sh("command -v " + t + " >/dev/null") == 0) ipt.push_back(t);
  }
  tag = getpid();
  char tmpl[] = "/tmp/skiff-bench-svc.XXXXXX";
  if (!mkdtemp(tmpl)) return 1;
  tmp_dir = tmpl;
  std::atexit(cleanup);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGHUP, on_signal);
  // Watchdog: the kernel's cost grows superlinearly with the table (minutes at 10,000 Services);
  // past the limit the run stops, cleans up and says so.
  std::thread([limit = a.time_limit_s] {
    std::this_thread::sleep_for(std::chrono::seconds(limit));
    std::printf("\nstopped: the run exceeded --time-limit-s %d\n", limit);
    std::fflush(stdout);
    cleanup();
    _exit(3);
  }).detach();

  std::string started;
  {
    char b[64];
    time_t now = time(nullptr);
    strftime(b, sizeof b, "%FT%TZ", gmtime(&now));
    started = b;
  }
  auto loadavg = [] {
    std::ifstream f("/proc/loadavg");
    std::string a, b, c;
    f >> a >> b >> c;
    return a + " " + b + " " + c;
  };
  std::printf("bench/svc  (%s; %u CPUs; load average %s)\n", started.c_str(),
              std::thread::hardware_concurrency(), loadavg().c_str());
  std::fflush(stdout);

  // ---- (1) rule programming
  if (a.prog) {
    for (int n : a.sizes) {
      std::fprintf(stderr, "[prog] %d Services: building the steps\n", n);
      std::vector<Step> steps = make_steps(n, a.reps);
      SkiffExtra x;
      std::fprintf(stderr, "[prog] %d: skiff Proxier over NftnlTables\n", n);
      Figures sk = bench_skiff(steps, n <= a.full_resync_max, &x);
      Figures nf;
      size_t nft_bytes = 0;
      if (have_nft) {
        std::fprintf(stderr, "[prog] %d: nft scripts (same Proxier on the fake)\n", n);
        std::string masq;
        std::vector<std::string> scripts = nft_scripts(steps, &masq);
        std::fprintf(stderr, "[prog] %d: nft -f\n", n);
        nf = bench_nft(steps, scripts, masq, a.timeout_s, &nft_bytes);
      } else {
        nf.ok = false;
      }
      std::vector<std::pair<std::string, Figures>> ip;
      size_t ipt_bytes = 0;
      for (const std::string& t : ipt) {
        std::fprintf(stderr, "[prog] %d: %s\n", n, t.c_str());
        ip.emplace_back(t, bench_iptables(t, steps, a.timeout_s, &ipt_bytes));
      }
      std::printf(
          "\nrule programming: %d Services x 5 endpoints (ms wall; median of %d for the small "
          "steps)\n",
          n, a.reps);
      std::printf("  %-34s %10s %10s %10s %10s\n", "", "cold", "add 1 svc", "change 1 ep", "no-op");
      auto row = [&](const std::string& name, const Figures& f) {
        if (!f.ok && f.ms.empty()) {
          if (!f.timed_out.empty()) {
            std::printf("  %-34s %10s  (%s step killed after --timeout-s %d s)\n", name.c_str(),
                        (">" + std::to_string(a.timeout_s * 1000)).c_str(), f.timed_out.c_str(),
                        a.timeout_s);
          } else {
            std::printf("  %-34s %10s\n", name.c_str(), "failed");
          }
          return;
        }
        auto m = [&](const char* k) {
          auto it = f.ms.find(k);
          return it == f.ms.end() ? -1.0 : pct(it->second, .5);
        };
        std::printf("  %-34s %10s %10s %10s %10s%s\n", name.c_str(), fmt_ms(m("cold")).c_str(),
                    fmt_ms(m("add")).c_str(), fmt_ms(m("change")).c_str(),
                    fmt_ms(m("noop")).c_str(), f.ok ? "" : "  (incomplete)");
      };
      auto med = [](const Figures& f, const char* k) {
        auto it = f.ms.find(k);
        return it == f.ms.end() ? -1.0 : pct(it->second, .5);
      };
      row("skiff Proxier (NftnlTables)", sk);
      row("nft -f (same batches)", nf);
      for (auto& [t, f] : ip) row(t + " (kube-proxy)", f);
      std::printf("  %-34s %10s %10s %10s %10s\n", "skiff / nft -f",
                  fmt_ratio(med(sk, "cold"), med(nf, "cold")).c_str(),
                  fmt_ratio(med(sk, "add"), med(nf, "add")).c_str(),
                  fmt_ratio(med(sk, "change"), med(nf, "change")).c_str(),
                  fmt_ratio(med(sk, "noop"), med(nf, "noop")).c_str());
      for (auto& [t, f] : ip) {
        std::printf("  %-34s %10s %10s %10s %10s\n", ("skiff / " + t).c_str(),
                    fmt_ratio(med(sk, "cold"), med(f, "cold")).c_str(),
                    fmt_ratio(med(sk, "add"), med(f, "add")).c_str(),
                    fmt_ratio(med(sk, "change"), med(f, "change")).c_str(),
                    fmt_ratio(med(sk, "noop"), med(f, "noop")).c_str());
      }
      double maxch = -1;
      if (auto it = sk.ms.find("change"); it != sk.ms.end())
        maxch = *std::max_element(it->second.begin(), it->second.end());
      std::printf(
          "  skiff cold: build %s ms + commit %s ms, %zu batch ops; periodic full re-assert %s "
          "ms\n",
          fmt_ms(x.cold_build).c_str(), fmt_ms(x.cold_commit).c_str(), x.cold_ops,
          fmt_ms(x.full_resync).c_str());
      std::printf(
          "  skiff batch ops: add 1 svc %zu, change 1 ep %zu, no-op %zu; change 1 ep max %s ms\n",
          x.add_ops, x.change_ops, x.noop_ops, fmt_ms(maxch).c_str());
      std::printf(
          "  inputs: nft script %zu KB (cold), iptables-restore %zu KB (full); nft no-op = `nft "
          "-f` of `add table`\n",
          nft_bytes / 1024, ipt_bytes / 1024);
      std::fflush(stdout);
    }
  }

  // ---- (2) RSS
  if (a.rss) {
    int n = a.rss_services > 0 ? a.rss_services : *std::max_element(a.sizes.begin(), a.sizes.end());
    std::fprintf(stderr, "[rss] child holding %d Services\n", n);
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    self[len > 0 ? len : 0] = 0;
    std::string cmd = std::string(self) + " --rss-child " + std::to_string(n) + " " +
                      std::to_string(a.timeout_s * 2) + " " + tmp_dir;
    FILE* p = popen(cmd.c_str(), "r");
    long size = 0, base = 0, json = 0, model = 0, prox = 0, hwm = 0, trimmed = 0;
    int got = p ? std::fscanf(p, "%ld %ld %ld %ld %ld %ld %ld", &size, &base, &json, &model, &prox,
                              &hwm, &trimmed)
                : 0;
    if (p) pclose(p);
    std::printf(
        "\nmemory (a proxy for skiff-netagent: a child process of this bench, not the agent): "
        "%d Services x 5 endpoints\n",
        n);
    if (got == 7) {
      std::printf(
          "  VmRSS at start %.1f MB; + API JSON of Services+Endpoints (informer cache) %.1f MB;\n"
          "  + ServiceMap %.1f MB; + Proxier synced (cold + 1 change) %.1f MB\n",
          base / 1024.0, (json - base) / 1024.0, (model - json) / 1024.0, (prox - model) / 1024.0);
      std::printf(
          "  growth: model + Proxier %.1f MB, with the JSON %.1f MB; VmRSS %.1f MB, VmHWM %.1f MB  "
          "(the whole API JSON, glibc malloc: not the agent, whose figure is below)\n",
          (prox - json) / 1024.0, (prox - base) / 1024.0, prox / 1024.0, hwm / 1024.0);
      std::printf(
          "  after malloc_trim(0) (live heap only): VmRSS %.1f MB, growth %.1f MB with the JSON, "
          "%.1f MB without\n",
          trimmed / 1024.0, (trimmed - base) / 1024.0, (trimmed - json) / 1024.0);
    } else {
      std::printf("  failed\n");
    }
    std::fflush(stdout);
  }

  // ---- (2b) the real skiff-netagent's RSS: bench/svc_agent_rss.py runs an apiserver with N
  // Services x 5 endpoints and the agent against it (all in a namespace of its own).
  if (a.agent_rss) {
    int n = a.rss_services > 0 ? a.rss_services : *std::max_element(a.sizes.begin(), a.sizes.end());
    std::string src = a.src;
    if (src.empty() && std::getenv("SKIFF_SRC")) src = std::getenv("SKIFF_SRC");
    if (src.empty()) src = ".";
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    self[len > 0 ? len : 0] = 0;
    std::string bin = self;
    bin = bin.substr(0, bin.rfind('/'));  // build/bench
    bin = bin.substr(0, bin.rfind('/'));  // build
    std::string script = src + "/bench/svc_agent_rss.py";
    std::printf(
        "\nskiff-netagent (the real agent with DNS and the LB announcer; a skiff-apiserver with %d "
        "Services x 5 endpoints):\n",
        n);
    if (access(script.c_str(), R_OK) != 0) {
      std::printf("  not run: %s not found (give --src or $SKIFF_SRC)\n", script.c_str());
    } else {
      std::fprintf(stderr, "[agent-rss] %d Services\n", n);
      // As deployed: the service proxy, cluster DNS and the LoadBalancer announcer.
      std::string cmd = "python3 " + script + " --bin " + bin + " --services " + std::to_string(n) +
                        " --dns --announce --time-limit-s " + std::to_string(a.timeout_s * 3);
      FILE* p = popen(cmd.c_str(), "r");
      std::string out;
      char buf[4096];
      while (p && std::fgets(buf, sizeof buf, p)) out += buf;
      int rc = p ? pclose(p) : -1;
      long rss = -1, hwm = -1, rss5 = -1, rss30 = -1;
      double sync_s = -1, create_s = -1;
      auto num = [&](const char* key) -> double {
        size_t at = out.find(std::string("\"") + key + "\": ");
        return at == std::string::npos ? -1 : std::atof(out.c_str() + at + std::strlen(key) + 4);
      };
      rss = static_cast<long>(num("vmrss_kb_after_sync"));
      hwm = static_cast<long>(num("vmhwm_kb_after_sync"));
      rss5 = static_cast<long>(num("vmrss_kb_5s_later"));
      rss30 = static_cast<long>(num("vmrss_kb_30s_later"));
      sync_s = num("agent_first_sync_s");
      create_s = num("create_s");
      if (rc != 0 || rss < 0) {
        std::printf("  failed (exit %d): %s\n", rc, out.c_str());
      } else {
        std::printf(
            "  objects created through the API in %.1f s; agent start to first services sync %.2f "
            "s\n  VmRSS %.1f MB after the first sync, %.1f MB 5 s later, %.1f MB 30 s later; "
            "VmHWM %.1f MB  (target: <= 40 MB; MB = MiB)\n",
            create_s, sync_s, rss / 1024.0, rss5 / 1024.0, rss30 / 1024.0, hwm / 1024.0);
      }
    }
    std::fflush(stdout);
  }

  // ---- (3) connect latency
  if (a.conn) {
    std::string c = "skiff-bench-svc-" + std::to_string(tag) + "-client";
    std::string r = "skiff-bench-svc-" + std::to_string(tag) + "-node";
    std::string s = "skiff-bench-svc-" + std::to_string(tag) + "-server";
    for (const std::string& n : {c, r, s}) {
      if (sh("ip netns add " + n) != 0) {
        std::fprintf(stderr, "bench_svc: ip netns add %s failed\n", n.c_str());
        return 1;
      }
      named_ns.push_back(n);
    }
    std::string setup =
        "set -e; ip -n " + r + " link add vc type veth peer name eth0 netns " + c + "; ip -n " + r +
        " link add vs type veth peer name eth0 netns " + s + "; ip -n " + c +
        " addr add 10.244.1.2/24 dev eth0; ip -n " + r + " addr add 10.244.1.1/24 dev vc; ip -n " +
        s + " addr add 10.244.2.2/24 dev eth0; ip -n " + r +
        " addr add 10.244.2.1/24 dev vs; for n in " + c + " " + r + " " + s +
        "; do ip -n $n link set lo up; done; ip -n " + c + " link set eth0 up; ip -n " + s +
        " link set eth0 up; ip -n " + r + " link set vc up; ip -n " + r +
        " link set vs up; ip -n " + c + " route add default via 10.244.1.1; ip -n " + s +
        " route add default via 10.244.2.1; ip netns exec " + r +
        " sysctl -qw net.ipv4.ip_forward=1";
    if (sh(setup) != 0) {
      std::fprintf(stderr, "bench_svc: namespace setup failed\n");
      return 1;
    }
    int cfd = open_ns(c), rfd = open_ns(r), sfd = open_ns(s);
    std::atomic<int> ready{0};
    std::thread server(server_loop, sfd, "10.244.2.2", 8080, &ready);
    while (ready.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (ready.load() < 0) {
      server_stop = true;
      server.join();
      return 1;
    }
    // The Proxier in the router namespace (this thread).
    auto stop_server = [&] {
      server_stop = true;
      server.join();
    };
    int home = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (setns(rfd, CLONE_NEWNET) != 0) {
      stop_server();
      return 1;
    }
    auto t = nft::NftnlTables::open();
    if (!t.is_ok() || !nft::sync_masquerade(*t.value(), "10.244.0.0/16").is_ok()) {
      std::fprintf(stderr, "bench_svc: nftables in the router namespace failed\n");
      stop_server();
      return 1;
    }
    auto prox = make_proxier(*t.value());
    ServicePort target;
    target.ns = "bench";
    target.name = "target";
    target.port_name = "http";
    target.cluster_ip = ip4("10.96.255.250");
    target.port = 80;
    target.endpoints.push_back(Endpoint{ip4("10.244.2.2"), 8080, false});
    sockaddr_in tg[2]{};
    for (auto& x : tg) x.sin_family = AF_INET;
    inet_pton(AF_INET, "10.96.255.250", &tg[0].sin_addr);
    tg[0].sin_port = htons(80);
    inet_pton(AF_INET, "10.244.2.2", &tg[1].sin_addr);
    tg[1].sin_port = htons(8080);
    std::printf(
        "\nconnect latency: client netns -> router netns (the table) -> server netns; %d connects\n"
        "per target or %.0f s, alternating blocks of 100; client on CPU 0, server on CPU 1\n",
        a.conn_count, a.conn_seconds);
    std::printf("  %-8s %-10s %8s %8s %10s %10s %10s %6s\n", "Services", "target", "p50 us",
                "p99 us", "conns/s", "p50 ratio", "p99 ratio", "failed");
    double base_p50 = -1;
    for (int n : a.conn_sizes) {
      ServiceMap m = make_map(n);
      m.emplace(target.key(), target);
      auto ts = Clock::now();
      auto res = prox->sync(m);
      double sync_ms = ms_since(ts);
      if (!res.is_ok()) {
        std::fprintf(stderr, "bench_svc: sync %d: %s\n", n, res.status().to_string().c_str());
        break;
      }
      std::fprintf(stderr, "[conn] %d Services loaded (sync %.0f ms)\n", n, sync_ms);
      ConnResult out[2];
      std::thread cl(client_loop, cfd, tg, a.conn_count, a.conn_seconds, out);
      cl.join();
      const char* names[2] = {"ClusterIP", "pod IP"};
      double p50d = pct(out[1].lat_us, .5), p99d = pct(out[1].lat_us, .99);
      for (int w = 0; w < 2; ++w) {
        double p50 = pct(out[w].lat_us, .5), p99 = pct(out[w].lat_us, .99);
        double rate =
            out[w].total_s > 0 ? static_cast<double>(out[w].lat_us.size()) / out[w].total_s : 0;
        std::printf("  %-8d %-10s %8.1f %8.1f %10.0f %10s %10s %6d\n", n, names[w], p50, p99, rate,
                    w == 0 ? fmt_ratio(p50, p50d).c_str() : "",
                    w == 0 ? fmt_ratio(p99, p99d).c_str() : "", out[w].failed);
        if (w == 0 && base_p50 < 0) base_p50 = p50;
      }
      if (base_p50 > 0) {
        std::printf("  %-8s ClusterIP p50 / ClusterIP p50 with %d Services: %s\n", "",
                    a.conn_sizes.front(), fmt_ratio(pct(out[0].lat_us, .5), base_p50).c_str());
      }
      std::fflush(stdout);
    }
    std::printf(
        "  targets: ClusterIP connect latency <= 1.1x direct, flat in the number of Services\n");
    prox.reset();
    run_timed({"nft", "flush", "ruleset"}, "/dev/null", 600);  // still in the router netns
    if (setns(home, CLONE_NEWNET) != 0) std::perror("setns home");
    stop_server();
    ::close(cfd);
    ::close(rfd);
    ::close(sfd);
  }
  std::printf("\nload average at the end: %s\n", loadavg().c_str());
  cleanup();
  return 0;
}
