// The drivers on a fake cgroupfs: a temp dir of plain files. The real kernel is exercised by
// test/integration/cgroups_test.sh.
#include "kubelet/cgroups/cgroups.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "kubelet/cgroups/cgfs.h"
#include "kubelet/cgroups/drivers.h"

namespace fsys = std::filesystem;
using namespace skiff::cgroups;
using skiff::Status;

namespace {

struct TempDir {
  fsys::path path;
  TempDir() {
    char tmpl[] = "/tmp/skiff-cgroups-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { fsys::remove_all(path); }
};

void put(const fsys::path& p, const std::string& v) {
  fsys::create_directories(p.parent_path());
  std::ofstream(p) << v;
}

std::string get(const fsys::path& p) {
  std::ifstream in(p);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return s;
}

DriverOptions fake() {
  DriverOptions o;
  o.fake_fs = true;
  o.remove_wait_ms = 200;
  o.rmdir_retries = 2;
  return o;
}

}  // namespace

TEST_CASE("Kubernetes cpu conversions") {
  CHECK(millis_to_shares(0) == 2);
  CHECK(millis_to_shares(1) == 2);
  CHECK(millis_to_shares(100) == 102);
  CHECK(millis_to_shares(250) == 256);
  CHECK(millis_to_shares(1000) == 1024);
  CHECK(millis_to_shares(1000000) == 262144);
  CHECK(shares_to_weight(2) == 1);
  CHECK(shares_to_weight(1024) == 39);  // 1 + 1022*9999/262142
  CHECK(shares_to_weight(262144) == 10000);
  CHECK(shares_to_weight(102) == 4);
}

TEST_CASE("parse_v1_mounts finds split and comma-joined hierarchies under the root") {
  std::string mi =
      "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
      "33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children\n"
      "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
      "39 30 0:36 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,release_agent=/x,"
      "name=systemd\n"
      "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
      "41 30 0:31 / /sys/fs/cgroup/memory2 rw,relatime - cgroup cgroup rw,memory\n"
      "50 22 0:40 / /elsewhere/pids rw,relatime - cgroup cgroup rw,pids\n";
  auto hs = parse_v1_mounts(mi, "/sys/fs/cgroup/");
  REQUIRE(hs.size() == 4);
  CHECK(hs[0].mount == "/sys/fs/cgroup/cpu,cpuacct");
  CHECK(hs[0].controllers == std::vector<std::string>{"cpu", "cpuacct"});
  CHECK(hs[1].controllers == std::vector<std::string>{"cpuset"});
  CHECK(hs[2].mount == "/sys/fs/cgroup/memory");
  CHECK(hs[3].controllers == std::vector<std::string>{"name=systemd"});
  CHECK(hs[0].has("cpuacct"));
  CHECK_FALSE(hs[2].has("cpu"));
}

TEST_CASE("v2 driver on a fake root") {
  TempDir t;
  auto root = t.path;
  put(root / "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma\n");
  put(root / "cgroup.subtree_control", "cpu\n");  // cpu already on: only the rest is added
  // What the kernel would show in a non-root cgroup; the driver probes the parent for them.
  put(root / "skiff" / "cgroup.kill", "");
  put(root / "skiff" / "memory.swap.max", "max\n");

  auto d = make_v2_driver(root.string(), "skiff", fake());
  REQUIRE(d.status().to_string() == "OK");
  auto& drv = **d;
  CHECK(drv.version() == 2);
  CHECK(get(root / "cgroup.subtree_control") == "+memory +pids");

  Resources res;
  res.cpu_request_millis = 250;
  res.cpu_limit_millis = 500;
  res.memory_limit_bytes = 64 << 20;
  res.pids_limit = 32;
  REQUIRE(drv.ensure("podA/c1", res).to_string() == "OK");
  auto c1 = root / "skiff" / "podA" / "c1";
  CHECK(get(root / "skiff" / "cgroup.subtree_control") == "+cpu +memory +pids");
  CHECK(get(root / "skiff" / "podA" / "cgroup.subtree_control") == "+cpu +memory +pids");
  CHECK(get(c1 / "cpu.weight") == std::to_string(shares_to_weight(256)));
  CHECK(get(c1 / "cpu.weight") == "10");
  CHECK(get(c1 / "cpu.max") == "50000 100000");
  CHECK(get(c1 / "memory.max") == std::to_string(64 << 20));
  CHECK(get(c1 / "memory.swap.max") == "0");
  CHECK(get(c1 / "pids.max") == "32");
  CHECK(drv.dirs("podA/c1") == std::vector<std::string>{c1.string()});

  // A tiny limit is clamped to the kernel's 1 ms minimum; another period is honoured.
  Resources small;
  small.cpu_limit_millis = 1;
  small.cpu_period_us = 50000;
  REQUIRE(drv.ensure("podA/c1", small).is_ok());
  CHECK(get(c1 / "cpu.max") == "1000 50000");
  CHECK(get(c1 / "memory.max") == std::to_string(64 << 20));  // unset fields are left alone

  REQUIRE(drv.add_process("podA/c1", 4242).is_ok());
  CHECK(get(c1 / "cgroup.procs") == "4242");

  put(c1 / "memory.current", "1048576\n");
  put(c1 / "memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n");
  put(c1 / "cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n");
  put(c1 / "pids.current", "3\n");
  auto st = drv.stats("podA/c1");
  REQUIRE(st.is_ok());
  CHECK(st->memory_usage_bytes == 1048576);
  CHECK(st->memory_limit_bytes == 64 << 20);
  CHECK(st->oom_kills == 2);
  CHECK(st->cpu_usage_ns == 1500000);
  CHECK(st->pids == 3);
  put(c1 / "memory.max", "max\n");
  CHECK(drv.stats("podA/c1")->memory_limit_bytes == -1);

  CHECK(drv.children("") == std::vector<std::string>{"podA"});
  CHECK(drv.children("podA") == std::vector<std::string>{"c1"});

  // Stats of a missing cgroup name the file and keep errno.
  auto missing = drv.stats("nope");
  REQUIRE_FALSE(missing.is_ok());
  CHECK(missing.status().os_errno() == ENOENT);
  CHECK(missing.status().message().find((root / "skiff" / "nope").string()) != std::string::npos);

  put(c1 / "cgroup.procs", "");  // the fake has no processes to kill
  REQUIRE(drv.remove("podA").to_string() == "OK");
  CHECK_FALSE(fsys::exists(root / "skiff" / "podA"));
  CHECK(drv.remove("podA").is_ok());  // idempotent
  CHECK(drv.ensure("../etc", {}).code() == skiff::Code::kInvalid);
  CHECK(drv.ensure("/abs", {}).code() == skiff::Code::kInvalid);
  CHECK(drv.remove("").code() == skiff::Code::kInvalid);
}

TEST_CASE("v2 driver refuses a limit whose controller the root lacks") {
  TempDir t;
  put(t.path / "cgroup.controllers", "cpu pids\n");
  auto d = make_v2_driver(t.path.string(), "skiff", fake());
  REQUIRE(d.is_ok());
  Resources res;
  res.memory_limit_bytes = 1 << 20;
  Status st = (*d)->ensure("p", res);
  CHECK(st.code() == skiff::Code::kUnavailable);
  CHECK(st.message().find("memory controller") != std::string::npos);
  Resources ok;
  ok.pids_limit = 5;
  CHECK((*d)->ensure("p", ok).is_ok());
  CHECK(get(t.path / "skiff" / "p" / "pids.max") == "5");
}

TEST_CASE("v1 driver on a fake root") {
  TempDir t;
  auto root = t.path;
  std::vector<V1Hierarchy> hs = {
      {(root / "cpu,cpuacct").string(), {"cpu", "cpuacct"}},
      {(root / "memory").string(), {"memory"}},
      {(root / "pids").string(), {"pids"}},
      {(root / "cpuset").string(), {"cpuset"}},
      {(root / "freezer").string(), {"freezer"}},
  };
  for (auto& h : hs) fsys::create_directories(h.mount);
  put(root / "cpuset" / "cpuset.cpus", "0-1\n");
  put(root / "cpuset" / "cpuset.mems", "0\n");
  put(root / "memory" / "memory.memsw.limit_in_bytes", "9223372036854771712\n");

  auto d = make_v1_driver(hs, "skiff", fake());
  REQUIRE(d.status().to_string() == "OK");
  auto& drv = **d;
  CHECK(drv.version() == 1);
  CHECK(get(root / "cpuset" / "skiff" / "cpuset.cpus") == "0-1");

  Resources res;
  res.cpu_request_millis = 100;
  res.cpu_limit_millis = 1500;
  res.memory_limit_bytes = 32 << 20;
  res.pids_limit = 10;
  REQUIRE(drv.ensure("pod/c", res).to_string() == "OK");
  auto cpu = root / "cpu,cpuacct" / "skiff" / "pod" / "c";
  auto mem = root / "memory" / "skiff" / "pod" / "c";
  CHECK(get(cpu / "cpu.shares") == "102");
  CHECK(get(cpu / "cpu.cfs_period_us") == "100000");
  CHECK(get(cpu / "cpu.cfs_quota_us") == "150000");
  CHECK(get(mem / "memory.limit_in_bytes") == std::to_string(32 << 20));
  CHECK(get(mem / "memory.memsw.limit_in_bytes") == std::to_string(32 << 20));
  CHECK(get(root / "pids" / "skiff" / "pod" / "c" / "pids.max") == "10");
  // Every level of the cpuset got cpus and mems, or no task could join it.
  CHECK(get(root / "cpuset" / "skiff" / "pod" / "cpuset.mems") == "0");
  CHECK(get(root / "cpuset" / "skiff" / "pod" / "c" / "cpuset.cpus") == "0-1");
  CHECK(fsys::is_directory(root / "freezer" / "skiff" / "pod" / "c"));
  CHECK(drv.dirs("pod/c").size() == 5);

  REQUIRE(drv.add_process("pod/c", 77).is_ok());
  for (auto& dir : drv.dirs("pod/c")) CHECK(get(fsys::path(dir) / "cgroup.procs") == "77");

  put(mem / "memory.usage_in_bytes", "4096\n");
  put(mem / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
  put(cpu / "cpuacct.usage", "123456789\n");
  put(root / "pids" / "skiff" / "pod" / "c" / "pids.current", "2\n");
  auto st = drv.stats("pod/c");
  REQUIRE(st.status().to_string() == "OK");
  CHECK(st->memory_usage_bytes == 4096);
  CHECK(st->memory_limit_bytes == 32 << 20);
  CHECK(st->oom_kills == 3);
  CHECK(st->cpu_usage_ns == 123456789);
  CHECK(st->pids == 2);
  put(mem / "memory.limit_in_bytes", "9223372036854771712\n");
  CHECK(drv.stats("pod/c")->memory_limit_bytes == -1);

  CHECK(drv.children("pod") == std::vector<std::string>{"c"});
  for (auto& dir : drv.dirs("pod/c")) put(fsys::path(dir) / "cgroup.procs", "");
  REQUIRE(drv.remove("pod").to_string() == "OK");
  for (auto& h : hs) CHECK_FALSE(fsys::exists(fsys::path(h.mount) / "skiff" / "pod"));
  CHECK(drv.remove("pod").is_ok());
  CHECK(drv.children("").empty());
}

TEST_CASE("v1 driver without a pids hierarchy reports which limit it cannot apply") {
  TempDir t;
  std::vector<V1Hierarchy> hs = {{(t.path / "memory").string(), {"memory"}}};
  fsys::create_directories(hs[0].mount);
  auto d = make_v1_driver(hs, "skiff", fake());
  REQUIRE(d.is_ok());
  Resources res;
  res.pids_limit = 3;
  Status st = (*d)->ensure("x", res);
  CHECK(st.code() == skiff::Code::kUnavailable);
  CHECK(st.message().find("pids") != std::string::npos);
  // Without memsw only memory.limit_in_bytes is written.
  Resources m;
  m.memory_limit_bytes = 1 << 20;
  REQUIRE((*d)->ensure("x", m).is_ok());
  CHECK_FALSE(fsys::exists(t.path / "memory" / "skiff" / "x" / "memory.memsw.limit_in_bytes"));
}

TEST_CASE("a write error keeps errno and names the file") {
  Status st = skiff::cgroups::fs::write("/nonexistent-dir/cpu.max", "1 2", false);
  CHECK(st.code() == skiff::Code::kIo);
  CHECK(st.os_errno() == ENOENT);
  CHECK(st.message().find("/nonexistent-dir/cpu.max") != std::string::npos);
}
