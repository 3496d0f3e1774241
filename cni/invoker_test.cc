// CniInvoker against fake plugins: small shell scripts written into a temp bin dir that log
// their environment and stdin, print results or CNI errors, or hang.
#include "cni/invoker.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

namespace fsys = std::filesystem;
using namespace skiff::cni;
using skiff::Code;
using skiff::Status;

namespace {

std::string slurp(const fsys::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write(const fsys::path& p, const std::string& s, bool exec = false) {
  std::ofstream(p) << s;
  if (exec) ::chmod(p.c_str(), 0755);
}

struct Env {
  fsys::path dir, conf, bin, cache, log;
  Env() {
    char tmpl[] = "/tmp/skiff-cni-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    conf = dir / "net.d";
    bin = dir / "bin";
    cache = dir / "cache";
    log = dir / "log";
    for (auto& d : {conf, bin, log}) fsys::create_directories(d);
    // Every fake logs "<name> <command>" to calls, and its env and stdin per command.
    std::string prologue = "#!/bin/sh\nn=$(basename \"$0\")\necho \"$n $CNI_COMMAND\" >> " +
                           log.string() + "/calls\nenv | grep '^CNI_' | sort > " + log.string() +
                           "/$n-$CNI_COMMAND.env\ncat > " + log.string() + "/$n-$CNI_COMMAND.in\n";
    write(bin / "fakeip",
          prologue +
              "[ \"$CNI_COMMAND\" = ADD ] && echo '{\"cniVersion\":\"1.0.0\",\"interfaces\":"
              "[{\"name\":\"eth0\"}],\"ips\":[{\"address\":\"10.1.2.3/24\",\"gateway\":"
              "\"10.1.2.1\",\"interface\":0}]}'\nexit 0\n",
          true);
    write(bin / "fakechain",
          prologue +
              "[ \"$CNI_COMMAND\" = ADD ] && echo '{\"cniVersion\":\"1.0.0\",\"ips\":["
              "{\"address\":\"fd00::3/64\"},{\"address\":\"10.1.2.3/24\",\"gateway\":"
              "\"10.1.2.1\",\"interface\":0}],\"dns\":{\"nameservers\":[\"10.96.0.10\"]}}'\n"
              "exit 0\n",
          true);
    write(bin / "fail11",
          prologue +
              "[ \"$CNI_COMMAND\" = DEL ] && exit 0\necho '{\"cniVersion\":\"1.0.0\",\"code\":11,"
              "\"msg\":\"failed to allocate for range 0\",\"details\":\"no IP addresses "
              "available\"}'\nexit 1\n",
          true);
    write(bin / "stderrfail", prologue + "echo 'panic: boom' >&2\nexit 2\n", true);
    // Like fakeip, but its CHECK fails while log/broken exists (the attachment is gone).
    write(bin / "flaky",
          prologue + "[ \"$CNI_COMMAND\" = CHECK ] && [ -e " + log.string() +
              "/broken ] && { echo '{\"code\":103,\"msg\":\"eth0 is missing\"}'; exit 1; }\n"
              "[ \"$CNI_COMMAND\" = ADD ] && echo '{\"cniVersion\":\"1.0.0\",\"ips\":"
              "[{\"address\":\"10.1.2.4/24\"}]}'\nexit 0\n",
          true);
    write(bin / "sleeper", prologue + "exec sleep 30\n", true);
  }
  ~Env() { fsys::remove_all(dir); }

  CniInvoker::Options opts() const {
    CniInvoker::Options o;
    o.conf_dir = conf.string();
    o.bin_dirs = {(dir / "nonexistent").string(), bin.string()};
    o.cache_dir = cache.string();
    o.timeout = std::chrono::seconds(5);
    return o;
  }
  void conflist(const std::string& plugins, const std::string& extra = "") {
    write(conf / "10-test.conflist", "{\"cniVersion\":\"1.0.0\",\"name\":\"testnet\"" + extra +
                                         ",\"plugins\":[" + plugins + "]}");
  }
  std::string calls() const { return slurp(log / "calls"); }
};

RuntimeConf rt(const std::string& netns = "/proc/self/ns/net") {
  RuntimeConf r;
  r.container_id = "abc123";
  r.netns = netns;
  r.args = {{"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", "web-0"}};
  return r;
}

}  // namespace

TEST_CASE("load picks the lexically first usable config") {
  Env e;
  CniInvoker inv(e.opts());
  CHECK(inv.load().code() == Code::kUnavailable);  // empty dir
  CHECK_FALSE(inv.ready());
  write(e.conf / "05-broken.conflist", "{not json");
  write(e.conf / "README", "ignored");
  Status st = inv.load();
  CHECK(st.code() == Code::kInvalid);
  CHECK(st.message().find("05-broken.conflist: not valid JSON") != std::string::npos);
  write(e.conf / "20-b.conflist",
        R"({"cniVersion":"1.0.0","name":"bnet","plugins":[{"type":"fakeip"}]})");
  write(e.conf / "10-a.conf", R"({"cniVersion":"0.4.0","name":"anet","type":"fakeip"})");
  REQUIRE(inv.load().is_ok());
  CHECK(inv.ready());
  CHECK(inv.network_name() == "anet");
  // The single-plugin .conf became a list: ADD runs it with name and version injected.
  auto r = inv.add(rt());
  REQUIRE(r.status().to_string() == "OK");
  std::string in = slurp(e.log / "fakeip-ADD.in");
  CHECK(in.find("\"name\":\"anet\"") != std::string::npos);
  CHECK(in.find("\"cniVersion\":\"0.4.0\"") != std::string::npos);
  write(e.conf / "15-bad.conflist",
        R"({"cniVersion":"9.9.9","name":"x","plugins":[{"type":"a"}]})");
  fsys::remove(e.conf / "10-a.conf");
  REQUIRE(inv.load().is_ok());  // 15-bad is skipped, 20-b is used
  CHECK(inv.network_name() == "bnet");
}

TEST_CASE("ADD chains prevResult, sets the CNI environment and caches the result") {
  Env e;
  e.conflist(R"({"type":"fakeip","ipam":{"type":"host-local"}},{"type":"fakechain"})");
  CniInvoker inv(e.opts());
  REQUIRE(inv.load().is_ok());
  auto r = inv.add(rt());
  REQUIRE(r.status().to_string() == "OK");
  CHECK(r->first_ipv4() == "10.1.2.3");
  CHECK(r->cni_version == "1.0.0");
  REQUIRE(r->ips.size() == 2);
  CHECK(r->ips[1].gateway == "10.1.2.1");
  CHECK(r->ips[1].interface == 0);
  CHECK(r->raw_json.find("10.96.0.10") != std::string::npos);
  CHECK(e.calls() == "fakeip ADD\nfakechain ADD\n");

  std::string env = slurp(e.log / "fakeip-ADD.env");
  CHECK(env.find("CNI_COMMAND=ADD\n") != std::string::npos);
  CHECK(env.find("CNI_CONTAINERID=abc123\n") != std::string::npos);
  CHECK(env.find("CNI_NETNS=/proc/self/ns/net\n") != std::string::npos);
  CHECK(env.find("CNI_IFNAME=eth0\n") != std::string::npos);
  CHECK(env.find("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0\n") !=
        std::string::npos);
  CHECK(env.find("CNI_PATH=" + (e.dir / "nonexistent").string() + ":" + e.bin.string() + "\n") !=
        std::string::npos);
  CHECK(slurp(e.log / "fakeip-ADD.in").find("prevResult") == std::string::npos);
  std::string chain_in = slurp(e.log / "fakechain-ADD.in");
  CHECK(chain_in.find("\"prevResult\":{") != std::string::npos);
  CHECK(chain_in.find("10.1.2.3/24") != std::string::npos);
  CHECK(chain_in.find("\"name\":\"testnet\"") != std::string::npos);

  auto cache = e.cache / "results" / "testnet-abc123-eth0";
  REQUIRE(fsys::exists(cache));
  CHECK(slurp(cache).find("fd00::3/64") != std::string::npos);

  // A second ADD for the same container and netns: CHECK finds the attachment there, so the
  // answer is the cached result.
  auto again = inv.add(rt());
  REQUIRE(again.is_ok());
  CHECK(again->first_ipv4() == "10.1.2.3");
  CHECK(e.calls() == "fakeip ADD\nfakechain ADD\nfakeip CHECK\nfakechain CHECK\n");

  // ... but an ADD into another netns first removes the stale attachment.
  RuntimeConf moved = rt();
  moved.netns = "/proc/1/ns/net";
  REQUIRE(inv.add(moved).is_ok());
  CHECK(e.calls() ==
        "fakeip ADD\nfakechain ADD\nfakeip CHECK\nfakechain CHECK\nfakechain DEL\nfakeip DEL\n"
        "fakeip ADD\nfakechain ADD\n");
  CHECK(slurp(cache).find("/proc/1/ns/net") != std::string::npos);
  REQUIRE(inv.add(rt()).is_ok());  // and back, for the checks below

  // CHECK passes the cached result to every plugin, in order.
  REQUIRE(inv.check(rt()).to_string() == "OK");
  CHECK(e.calls().find("fakeip CHECK\nfakechain CHECK\n") != std::string::npos);
  CHECK(slurp(e.log / "fakeip-CHECK.in").find("fd00::3/64") != std::string::npos);

  // DEL runs the list in reverse with the cached result, then drops the cache.
  REQUIRE(inv.del(rt()).to_string() == "OK");
  std::string calls = e.calls();
  std::string tail = "fakechain CHECK\nfakechain DEL\nfakeip DEL\n";
  REQUIRE(calls.size() > tail.size());
  CHECK(calls.substr(calls.size() - tail.size()) == tail);
  CHECK(slurp(e.log / "fakeip-DEL.in").find("\"prevResult\"") != std::string::npos);
  CHECK_FALSE(fsys::exists(cache));

  // DEL again: no cache, no prevResult, still OK. CHECK without a cache is NotFound.
  REQUIRE(inv.del(rt()).is_ok());
  CHECK(slurp(e.log / "fakeip-DEL.in").find("prevResult") == std::string::npos);
  CHECK(inv.check(rt()).code() == Code::kNotFound);

  // DEL when the netns is gone: CNI_NETNS is left out, as the spec allows for DEL.
  REQUIRE(inv.del(rt(e.dir.string() + "/gone-netns")).is_ok());
  CHECK(slurp(e.log / "fakeip-DEL.env").find("CNI_NETNS") == std::string::npos);
}

TEST_CASE("ADD again into a new namespace at the same path (after a reboot) attaches anew") {
  Env e;
  e.conflist(R"({"type":"flaky"})");
  CniInvoker inv(e.opts());
  REQUIRE(inv.load().is_ok());
  REQUIRE(inv.add(rt()).is_ok());
  write(e.log / "broken", "");  // the namespace at that path no longer has the attachment
  auto r = inv.add(rt());
  REQUIRE(r.status().to_string() == "OK");
  CHECK(r->first_ipv4() == "10.1.2.4");
  CHECK(e.calls() == "flaky ADD\nflaky CHECK\nflaky DEL\nflaky ADD\n");
  // The DEL ran in that namespace: whatever half of the attachment is left there goes too.
  CHECK(slurp(e.log / "flaky-DEL.env").find("CNI_NETNS=/proc/self/ns/net\n") != std::string::npos);

  // Without CHECK (before 0.4.0, or disableCheck) nothing can tell: the attachment is made again.
  e.conflist(R"({"type":"flaky"})", R"(,"disableCheck":true)");
  REQUIRE(inv.load().is_ok());
  REQUIRE(inv.add(rt()).is_ok());  // the cache is replaced by one with disableCheck
  fsys::remove(e.log / "calls");
  REQUIRE(inv.add(rt()).is_ok());
  CHECK(e.calls() == "flaky DEL\nflaky ADD\n");
}

TEST_CASE("DEL uses the config the ADD ran with, even after the conf dir changed") {
  Env e;
  e.conflist(R"({"type":"fakeip"})");
  CniInvoker inv(e.opts());
  REQUIRE(inv.load().is_ok());
  REQUIRE(inv.add(rt()).is_ok());
  e.conflist(R"({"type":"fakechain"})");
  REQUIRE(inv.load().is_ok());
  REQUIRE(inv.del(rt()).is_ok());
  CHECK(e.calls() == "fakeip ADD\nfakeip DEL\n");
}

TEST_CASE("a CNI error becomes a clear Status and ADD undoes the earlier plugins") {
  Env e;
  e.conflist(R"({"type":"fakeip"},{"type":"fail11"})");
  CniInvoker inv(e.opts());
  REQUIRE(inv.load().is_ok());
  auto r = inv.add(rt());
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().code() == Code::kUnavailable);  // code 11: try again later
  CHECK(r.status().message() ==
        "CNI plugin fail11 ADD for container abc123: code 11: failed to allocate for range 0: "
        "no IP addresses available");
  CHECK(e.calls() == "fakeip ADD\nfail11 ADD\nfail11 DEL\nfakeip DEL\n");
  CHECK_FALSE(fsys::exists(e.cache / "results" / "testnet-abc123-eth0"));
}

TEST_CASE("a plugin failing without CNI JSON is reported with its stderr") {
  Env e;
  e.conflist(R"({"type":"stderrfail"})");
  CniInvoker inv(e.opts());
  REQUIRE(inv.load().is_ok());
  auto r = inv.add(rt());
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message() ==
        "CNI plugin stderrfail ADD for container abc123: exit status 2: panic: boom");
}

TEST_CASE("missing plugins, bad IDs, hung plugins, disableCheck") {
  Env e;
  e.conflist(R"({"type":"nosuchplugin"})", R"(,"disableCheck":true)");
  auto o = e.opts();
  o.timeout = std::chrono::seconds(1);
  CniInvoker inv(o);
  REQUIRE(inv.load().is_ok());
  auto r = inv.add(rt());
  CHECK(r.status().code() == Code::kNotFound);
  CHECK(r.status().message().find("CNI plugin nosuchplugin not found in ") != std::string::npos);
  CHECK(inv.check(rt()).is_ok());  // disableCheck: nothing runs

  RuntimeConf bad = rt();
  bad.container_id = "../etc";
  CHECK(inv.add(bad).status().code() == Code::kInvalid);
  bad = rt();
  bad.ifname = "eth0/../x";
  CHECK(inv.del(bad).code() == Code::kInvalid);

  e.conflist(R"({"type":"sleeper"})");
  REQUIRE(inv.load().is_ok());
  auto t = inv.add(rt());
  CHECK(t.status().code() == Code::kTimeout);
  CHECK(t.status().message().find("sleeper") != std::string::npos);
}

namespace {

RuntimeConf rt_for(const std::string& id) {
  RuntimeConf r = rt();
  r.container_id = id;
  return r;
}

void conflist_v11(const Env& e, const std::string& plugins) {
  write(e.conf / "10-test.conflist",
        R"({"cniVersion":"1.1.0","name":"testnet","plugins":[)" + plugins + "]}");
}

}  // namespace

TEST_CASE("GC (1.1.0): stale cached attachments are DELeted, then every plugin runs GC") {
  Env e;
  conflist_v11(e, R"({"type":"fakeip"},{"type":"fakechain"})");
  CniInvoker inv(e.opts());
  REQUIRE(inv.load().is_ok());
  REQUIRE(inv.add(rt_for("keep1")).is_ok());
  REQUIRE(inv.add(rt_for("gone1")).is_ok());
  fsys::remove(e.log / "calls");

  REQUIRE(inv.gc({{"keep1", "eth0"}}).to_string() == "OK");
  CHECK(e.calls() == "fakechain DEL\nfakeip DEL\nfakeip GC\nfakechain GC\n");
  CHECK(slurp(e.log / "fakeip-DEL.env").find("CNI_CONTAINERID=gone1\n") != std::string::npos);
  CHECK(fsys::exists(e.cache / "results" / "testnet-keep1-eth0"));
  CHECK_FALSE(fsys::exists(e.cache / "results" / "testnet-gone1-eth0"));
  // GC is about the network, not one container: no CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME.
  std::string env = slurp(e.log / "fakeip-GC.env");
  CHECK(env.find("CNI_COMMAND=GC\n") != std::string::npos);
  CHECK(env.find("CNI_PATH=") != std::string::npos);
  CHECK(env.find("CNI_CONTAINERID") == std::string::npos);
  CHECK(env.find("CNI_NETNS") == std::string::npos);
  CHECK(env.find("CNI_IFNAME") == std::string::npos);
  std::string in = slurp(e.log / "fakechain-GC.in");
  CHECK(in.find(R"("cni.dev/valid-attachments":[{"containerID":"keep1","ifname":"eth0"}])") !=
        std::string::npos);
  CHECK(in.find(R"("cni.dev/attachments":[{"containerID":"keep1","ifname":"eth0"}])") !=
        std::string::npos);
  CHECK(in.find(R"("cniVersion":"1.1.0")") != std::string::npos);
  CHECK(in.find("prevResult") == std::string::npos);

  fsys::remove(e.log / "calls");
  REQUIRE(inv.gc({{"keep1", "eth0"}}).is_ok());  // nothing stale left: only the plugins' GC
  CHECK(e.calls() == "fakeip GC\nfakechain GC\n");
}

TEST_CASE("GC before 1.1.0 only DELs stale cached ADDs; disableGC; a failure stops nothing") {
  Env e;
  e.conflist(R"({"type":"fakeip"})");
  CniInvoker inv(e.opts());
  REQUIRE(inv.load().is_ok());
  REQUIRE(inv.add(rt_for("a1")).is_ok());
  REQUIRE(inv.add(rt_for("a2")).is_ok());
  fsys::remove(e.log / "calls");
  REQUIRE(inv.gc({}).is_ok());
  CHECK(e.calls() == "fakeip DEL\nfakeip DEL\n");  // no GC verb before 1.1.0
  CHECK(fsys::is_empty(e.cache / "results"));

  e.conflist(R"({"type":"fakeip"})", R"(,"disableGC":true)");
  REQUIRE(inv.load().is_ok());
  REQUIRE(inv.add(rt_for("b1")).is_ok());
  fsys::remove(e.log / "calls");
  REQUIRE(inv.gc({}).is_ok());
  CHECK_FALSE(fsys::exists(e.log / "calls"));  // disableGC: nothing runs, nothing is freed
  CHECK(fsys::exists(e.cache / "results" / "testnet-b1-eth0"));

  conflist_v11(e, R"({"type":"fail11"},{"type":"fakeip"})");
  REQUIRE(inv.load().is_ok());
  fsys::remove(e.log / "calls");
  Status st = inv.gc({});
  CHECK(st.code() == Code::kUnavailable);
  CHECK(st.message() ==
        "CNI GC of network testnet: CNI plugin fail11 GC for network testnet: code 11: failed to "
        "allocate for range 0: no IP addresses available");
  // b1 was added under the disableGC list: its DEL uses that cached config (fakeip only); then
  // both plugins' GC ran although the first failed.
  CHECK(e.calls() == "fakeip DEL\nfail11 GC\nfakeip GC\n");
  CHECK_FALSE(fsys::exists(e.cache / "results" / "testnet-b1-eth0"));
}

TEST_CASE("first_ipv4 skips IPv6 and strips the prefix length") {
  CniResult r;
  CHECK(r.first_ipv4().empty());
  r.ips = {{"fd00::1/64", "", -1}, {"10.244.1.5/24", "10.244.1.1", 0}};
  CHECK(r.first_ipv4() == "10.244.1.5");
}
