// Unit tests for the pure parts the runtime and skiff-shim share: the CRI log format and its
// rotation, the config/state/exit JSON, capability sets, args/env/PATH handling and the
// /proc/<pid>/stat parser. The kernel-facing parts are in test/integration/runtime_test.py.
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "kubelet/runtime/shim/caps.h"
#include "kubelet/runtime/shim/cri_log.h"
#include "kubelet/runtime/shim/exec_path.h"
#include "kubelet/runtime/shim/protocol.h"

using namespace skiff::runtime;
using namespace skiff::runtime::shim;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/skiff-runtime-test.XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

}  // namespace

TEST_CASE("CRI timestamps are RFC 3339 UTC with nanoseconds") {
  // 2026-01-02T03:04:05Z = 1767323045
  CHECK(format_cri_time(int64_t{1767323045} * 1000000000 + 123456789) ==
        "2026-01-02T03:04:05.123456789Z");
  CHECK(format_cri_time(int64_t{1767323045} * 1000000000 + 7) == "2026-01-02T03:04:05.000000007Z");
  CHECK(format_cri_line(int64_t{1767323045} * 1000000000, "stdout", false, "hello world") ==
        "2026-01-02T03:04:05.000000000Z stdout F hello world\n");
  CHECK(format_cri_line(0, "stderr", true, "x") == "1970-01-01T00:00:00.000000000Z stderr P x\n");
}

TEST_CASE("the line splitter emits full lines, 16 KiB partials and a final unterminated line") {
  CriLineSplitter s;
  std::vector<std::pair<bool, std::string>> got;
  auto emit = [&](bool partial, std::string_view t) { got.emplace_back(partial, std::string(t)); };
  s.feed("a\nbb\nccc", emit);
  REQUIRE(got.size() == 2);
  CHECK(got[0] == std::make_pair(false, std::string("a")));
  CHECK(got[1] == std::make_pair(false, std::string("bb")));
  s.feed("c\n\n", emit);
  REQUIRE(got.size() == 4);
  CHECK(got[2].second == "cccc");
  CHECK(got[3] == std::make_pair(false, std::string("")));  // an empty line is a record too

  got.clear();
  std::string big(kMaxLineBytes * 2 + 10, 'x');
  s.feed(big, emit);
  s.feed("y\n", emit);
  REQUIRE(got.size() == 3);
  CHECK(got[0].first);
  CHECK(got[0].second.size() == kMaxLineBytes);
  CHECK(got[1].first);
  CHECK(got[1].second.size() == kMaxLineBytes);
  CHECK_FALSE(got[2].first);
  CHECK(got[2].second == std::string(10, 'x') + "y");

  got.clear();
  s.feed("tail without newline", emit);
  CHECK(got.empty());
  s.finish(emit);
  REQUIRE(got.size() == 1);
  CHECK(got[0] == std::make_pair(false, std::string("tail without newline")));
  s.finish(emit);
  CHECK(got.size() == 1);
}

TEST_CASE("the log file rotates by size and keeps log_max_files files") {
  TempDir d;
  std::string log = (d.path / "0.log").string();
  CriLogFile f;
  REQUIRE(f.open(log, 100, 3) == 0);
  std::string rec(40, 'a');
  rec.back() = '\n';
  for (int i = 0; i < 2; ++i) REQUIRE(f.write_record(rec) == 0);  // 80 bytes
  CHECK(fs::file_size(log) == 80);
  CHECK_FALSE(fs::exists(log + ".1"));
  REQUIRE(f.write_record(rec) == 0);  // would be 120: rotate first
  CHECK(fs::file_size(log) == 40);
  CHECK(fs::file_size(log + ".1") == 80);
  for (int i = 0; i < 10; ++i) REQUIRE(f.write_record(rec) == 0);
  CHECK(fs::exists(log + ".1"));
  CHECK(fs::exists(log + ".2"));
  CHECK_FALSE(fs::exists(log + ".3"));  // 3 files at most: log, log.1, log.2
  CHECK(fs::file_size(log) <= 100);

  // Reopening appends (a restarted writer continues the same file).
  CriLogFile g;
  REQUIRE(g.open(log, 1000, 3) == 0);
  auto before = fs::file_size(log);
  REQUIRE(g.write_record("x\n") == 0);
  CHECK(fs::file_size(log) == before + 2);

  // One file only: the file starts over instead of rotating.
  std::string one = (d.path / "one.log").string();
  CriLogFile h;
  REQUIRE(h.open(one, 50, 1) == 0);
  REQUIRE(h.write_record(rec) == 0);
  REQUIRE(h.write_record(rec) == 0);
  CHECK(fs::file_size(one) == 40);
  CHECK_FALSE(fs::exists(one + ".1"));
}

TEST_CASE("config.json round-trips every field and keeps defaults for missing keys") {
  ContainerConfig c;
  c.id = std::string(64, 'a');
  c.labels = {{kLabelPodUid, "u1"}, {kLabelContainerName, "web"}};
  c.sandbox_dir = "/run/skiff/pods/u1";
  c.image_layers = {"/l/top", "/l/bottom"};
  c.read_only_rootfs = true;
  c.args = {"sh", "-c", "echo \"quoted\" \\ back"};
  c.env = {"PATH=/bin", "A=b=c"};
  c.cwd = "/work";
  c.uid = 1000;
  c.gid = 2000;
  c.additional_gids = {3, 4};
  c.mounts = {{"/data", "bind", "/host/data", {"ro", "nosuid"}},
              {"/tmp", "tmpfs", "tmpfs", {"size=64m", "mode=1777"}}};
  c.cgroup_dirs = {"/sys/fs/cgroup/memory/skiff/pod/c"};
  c.privileged = false;
  c.cap_add = {"NET_ADMIN"};
  c.cap_drop = {"ALL"};
  c.no_new_privs = false;
  c.seccomp_default = false;
  c.log_path = "/var/log/skiff/pods/x/web/0.log";
  c.log_max_bytes = 1234;
  c.log_max_files = 2;
  c.oom_score_adj = -997;

  std::string text = config_to_json(c, 42);
  ContainerConfig back;
  std::string err;
  int64_t created = 0;
  REQUIRE(config_from_json(text, &back, &err, &created));
  CHECK(created == 42);
  CHECK(back.id == c.id);
  CHECK(back.labels == c.labels);
  CHECK(back.sandbox_dir == c.sandbox_dir);
  CHECK(back.image_layers == c.image_layers);
  CHECK(back.read_only_rootfs);
  CHECK(back.args == c.args);
  CHECK(back.env == c.env);
  CHECK(back.cwd == "/work");
  CHECK(back.uid == 1000);
  CHECK(back.gid == 2000);
  CHECK(back.additional_gids == c.additional_gids);
  REQUIRE(back.mounts.size() == 2);
  CHECK(back.mounts[0].destination == "/data");
  CHECK(back.mounts[0].source == "/host/data");
  CHECK(back.mounts[0].options == std::vector<std::string>{"ro", "nosuid"});
  CHECK(back.mounts[1].type == "tmpfs");
  CHECK(back.cgroup_dirs == c.cgroup_dirs);
  CHECK(back.cap_add == c.cap_add);
  CHECK(back.cap_drop == c.cap_drop);
  CHECK_FALSE(back.no_new_privs);
  CHECK_FALSE(back.seccomp_default);
  CHECK(back.log_path == c.log_path);
  CHECK(back.log_max_bytes == 1234);
  CHECK(back.log_max_files == 2);
  CHECK(back.oom_score_adj == -997);

  ContainerConfig minimal;
  REQUIRE(config_from_json(R"({"args":["true"],"unknown":1})", &minimal, &err));
  CHECK(minimal.cwd == "/");
  CHECK(minimal.no_new_privs);
  CHECK(minimal.seccomp_default);
  CHECK(minimal.log_max_files == 5);

  CHECK_FALSE(config_from_json("not json", &minimal, &err));
  CHECK_FALSE(err.empty());
  err.clear();
  CHECK_FALSE(config_from_json(R"({"uid":"root"})", &minimal, &err));
  CHECK(err.find("config.json") != std::string::npos);
}

TEST_CASE("state.json and exit.json round-trip") {
  ShimState s{10, 111, 11, 222, 123456789012345};
  ShimState s2;
  std::string err;
  REQUIRE(state_from_json(state_to_json(s), &s2, &err));
  CHECK(s2.shim_pid == 10);
  CHECK(s2.shim_start_time == 111);
  CHECK(s2.pid == 11);
  CHECK(s2.pid_start_time == 222);
  CHECK(s2.started_at == 123456789012345);

  ShimExit e{137, 9, 99, true, "OOMKilled", "msg \"x\""};
  ShimExit e2;
  REQUIRE(exit_from_json(exit_to_json(e), &e2, &err));
  CHECK(e2.exit_code == 137);
  CHECK(e2.signal == 9);
  CHECK(e2.finished_at == 99);
  CHECK(e2.oom_killed);
  CHECK(e2.reason == "OOMKilled");
  CHECK(e2.message == "msg \"x\"");
  CHECK_FALSE(exit_from_json("[]", &e2, &err));
}

TEST_CASE("capability names and the container's capability set") {
  CHECK(cap_from_name("NET_ADMIN") == CAP_NET_ADMIN);
  CHECK(cap_from_name("CAP_NET_ADMIN") == CAP_NET_ADMIN);
  CHECK(cap_from_name("cap_sys_admin") == CAP_SYS_ADMIN);
  CHECK(cap_from_name("sys_ptrace") == CAP_SYS_PTRACE);
  CHECK(cap_from_name("CHECKPOINT_RESTORE") == 40);
  CHECK(cap_from_name("NOPE") == -1);
  for (const auto& c : kCapNames) CHECK(cap_from_name(c.name) == c.value);

  std::string unknown;
  // Docker/containerd's default set, the mask /proc/<pid>/status shows for it.
  CHECK(compute_caps(false, {}, {}, 40, &unknown) == 0xa80425fbULL);
  CHECK(unknown.empty());
  uint64_t all = (uint64_t{1} << 41) - 1;
  CHECK(compute_caps(true, {}, {"ALL"}, 40, &unknown) == all);
  CHECK(compute_caps(false, {"NET_ADMIN"}, {"ALL"}, 40, &unknown) ==
        (uint64_t{1} << CAP_NET_ADMIN));
  CHECK(compute_caps(false, {}, {"all"}, 40, &unknown) == 0);
  CHECK(compute_caps(false, {"ALL"}, {}, 40, &unknown) == all);
  CHECK(compute_caps(false, {}, {"NET_RAW", "CAP_MKNOD"}, 40, &unknown) ==
        (0xa80425fbULL & ~((uint64_t{1} << CAP_NET_RAW) | (uint64_t{1} << CAP_MKNOD))));
  // A kernel that knows fewer capabilities than we do.
  CHECK(compute_caps(false, {"ALL"}, {}, 37, &unknown) == (uint64_t{1} << 38) - 1);
  compute_caps(false, {"FLY"}, {}, 40, &unknown);
  CHECK(unknown == "FLY");
}

TEST_CASE("env lookup and merge, PATH candidates, exec failure messages") {
  std::vector<std::string> env = {"PATH=/a:/b", "HOME=/root", "PATH=/c"};
  CHECK(env_get(env, "PATH", "x") == "/c");
  CHECK(env_get(env, "PAT", "x") == "x");
  CHECK(env_get({}, "PATH", kDefaultPath) == kDefaultPath);

  auto merged = env_merge({"A=1", "B=2"}, {"B=3", "C=4", "A="});
  CHECK(merged == std::vector<std::string>{"A=", "B=3", "C=4"});

  CHECK(exec_candidates("sh", "/bin:/usr/bin") ==
        std::vector<std::string>{"/bin/sh", "/usr/bin/sh"});
  CHECK(exec_candidates("sh", "/bin::/x") == std::vector<std::string>{"/bin/sh", "./sh", "/x/sh"});
  CHECK(exec_candidates("./run", "/bin") == std::vector<std::string>{"./run"});
  CHECK(exec_candidates("/bin/sh", "/usr/bin") == std::vector<std::string>{"/bin/sh"});

  std::vector<std::string> tried;
  auto enoent = [&](const std::string& p) {
    tried.push_back(p);
    errno = ENOENT;
  };
  CHECK(exec_search("nope", "/a:/b", enoent) ==
        "exec: \"nope\": executable file not found in $PATH");
  CHECK(tried == std::vector<std::string>{"/a/nope", "/b/nope"});
  CHECK(exec_search("/x/nope", "/a", enoent) == "exec: \"/x/nope\": No such file or directory");
  // EACCES is remembered while the search goes on, and reported if nothing else works.
  int calls = 0;
  auto eacces_then_enoent = [&](const std::string&) { errno = calls++ == 0 ? EACCES : ENOENT; };
  CHECK(exec_search("tool", "/a:/b", eacces_then_enoent) == "exec: \"tool\": Permission denied");
  // Other errors stop the search at once.
  calls = 0;
  auto enoexec = [&](const std::string&) {
    ++calls;
    errno = ENOEXEC;
  };
  CHECK(exec_search("bin", "/a:/b", enoexec) == "exec: \"bin\": Exec format error");
  CHECK(calls == 1);
  CHECK(exec_search("", "/a", enoent) == "exec: no command given");
}

TEST_CASE("the start time comes from field 22 of /proc/<pid>/stat, whatever comm holds") {
  std::string stat =
      "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
  CHECK(parse_stat_start_time(stat) == 987654);
  CHECK(parse_stat_start_time("garbage") == 0);
  std::ifstream in("/proc/self/stat");
  std::string self((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(parse_stat_start_time(self) > 0);
}
