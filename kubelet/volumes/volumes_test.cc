#include "kubelet/volumes/volumes.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "kubelet/volumes/atomic_writer.h"
#include "kubelet/volumes/fsutil.h"
#include "test/testing.h"

using namespace skiff;
using namespace skiff::volumes;

namespace {

constexpr long kTmpfsMagic = 0x01021994;

// A temporary directory removed (mounts first) at the end of the test.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/skiff-volumes-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    for (const auto& mp : fs::mounts_below(path)) umount2(mp.c_str(), MNT_DETACH);
    (void)fs::remove_tree(path);
  }
};

bool is_root() { return geteuid() == 0; }

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void put(const std::string& path, const std::string& data) { std::ofstream(path) << data; }

std::string link_of(const std::string& path) {
  char buf[4096];
  ssize_t n = readlink(path.c_str(), buf, sizeof buf);
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

unsigned mode_of(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 0xffff;
  return st.st_mode & 07777;
}

// Same inode: a subPath source is either the path itself or (as root) a bind mount of it.
bool same_file(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  return stat(a.c_str(), &sa) == 0 && stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

bool exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

proto::Pod make_pod(std::vector<proto::Volume> volumes) {
  proto::Pod pod;
  pod.metadata.uid = "uid-1";
  pod.metadata.namespace_ = "ns";
  pod.metadata.name = "p";
  pod.spec.volumes = std::move(volumes);
  return pod;
}

proto::Volume empty_dir(const std::string& name, const std::string& medium = "",
                        const std::string& size = "") {
  proto::Volume v;
  v.name = name;
  v.empty_dir.emplace();
  v.empty_dir->medium = medium;
  if (!size.empty()) v.empty_dir->size_limit = proto::Quantity::parse(size).value();
  return v;
}

proto::Volume host_path(const std::string& name, const std::string& path,
                        std::optional<std::string> type) {
  proto::Volume v;
  v.name = name;
  v.host_path.emplace();
  v.host_path->path = path;
  v.host_path->type = std::move(type);
  return v;
}

struct FakeApi {
  std::map<std::string, std::map<std::string, std::string>> config_maps, secrets;
  Sources sources() {
    Sources s;
    s.config_map = [this](const std::string& ns,
                          const std::string& name) -> Result<std::map<std::string, std::string>> {
      auto it = config_maps.find(ns + "/" + name);
      if (it == config_maps.end())
        return Status::not_found("configmaps \"" + name + "\" not found");
      return it->second;
    };
    s.secret = [this](const std::string& ns,
                      const std::string& name) -> Result<std::map<std::string, std::string>> {
      auto it = secrets.find(ns + "/" + name);
      if (it == secrets.end()) return Status::not_found("secrets \"" + name + "\" not found");
      return it->second;
    };
    return s;
  }
};

}  // namespace

TEST_CASE("emptyDir on disk is a world-writable directory under the pod") {
  TempDir tmp;
  VolumeManager vm(tmp.path + "/pods");
  auto r = vm.setup(make_pod({empty_dir("scratch")}), {});
  REQUIRE(r.is_ok());
  std::string dir = tmp.path + "/pods/uid-1/volumes/empty-dir/scratch";
  CHECK(r->at("scratch").host_path == dir);
  CHECK_FALSE(r->at("scratch").read_only);
  CHECK(mode_of(dir) == 0777);
  CHECK(mode_of(tmp.path + "/pods/uid-1") == 0750);
  CHECK(mode_of(tmp.path + "/pods/uid-1/volumes/empty-dir") == 0750);
  CHECK(vm.list() == std::vector<std::string>{"uid-1"});
  // Idempotent, and contents survive a second setup.
  put(dir + "/f", "x");
  REQUIRE(vm.setup(make_pod({empty_dir("scratch")}), {}).is_ok());
  CHECK(slurp(dir + "/f") == "x");
  REQUIRE(vm.teardown("uid-1").is_ok());
  CHECK_FALSE(exists(tmp.path + "/pods/uid-1"));
  CHECK(vm.list().empty());
  REQUIRE(vm.teardown("uid-1").is_ok());  // idempotent
}

TEST_CASE("emptyDir medium Memory is a tmpfs of sizeLimit, unmounted by teardown") {
  if (!is_root()) {
    skiff::testing::skip("skipped: mounting tmpfs needs root");
    return;
  }
  TempDir tmp;
  VolumeManager vm(tmp.path + "/pods");
  auto pod = make_pod({empty_dir("mem", "Memory", "4Mi")});
  auto r = vm.setup(pod, {});
  REQUIRE(r.is_ok());
  std::string dir = r->at("mem").host_path;
  struct statfs sf;
  REQUIRE(statfs(dir.c_str(), &sf) == 0);
  CHECK(sf.f_type == kTmpfsMagic);
  CHECK(static_cast<long long>(sf.f_blocks) * sf.f_bsize == 4 * 1024 * 1024);
  // A second setup does not stack a second tmpfs.
  REQUIRE(vm.setup(pod, {}).is_ok());
  CHECK(fs::mounts_below(dir).size() == 1);
  REQUIRE(vm.teardown("uid-1").is_ok());
  CHECK(fs::mounts_below(tmp.path).empty());
  CHECK_FALSE(exists(tmp.path + "/pods/uid-1"));
}

TEST_CASE(
    "unsupported emptyDir medium and volume types are Invalid with the "
    "volume named") {
  TempDir tmp;
  VolumeManager vm(tmp.path + "/pods");
  auto r = vm.setup(make_pod({empty_dir("h", "HugePages")}), {});
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().code() == Code::kInvalid);
  proto::Volume projected;
  projected.name = "proj";
  projected.projected = proto::json::object();
  r = vm.setup(make_pod({projected}), {});
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().code() == Code::kInvalid);
  CHECK(r.status().message() == "volume \"proj\": projected volumes are not supported yet");
  proto::Volume bad;
  bad.name = "../x";
  bad.empty_dir.emplace();
  CHECK(vm.setup(make_pod({bad}), {}).status().code() == Code::kInvalid);
}

proto::Volume claim_volume(const std::string& name, const std::string& claim, bool read_only) {
  proto::Volume v;
  v.name = name;
  v.persistent_volume_claim.emplace();
  v.persistent_volume_claim->claim_name = claim;
  v.persistent_volume_claim->read_only = read_only;
  return v;
}

TEST_CASE("persistentVolumeClaim volumes mount the bound volume's host directory") {
  TempDir tmp;
  VolumeManager vm(tmp.path + "/pods");
  const std::string dir = tmp.path + "/storage/pvc-1234";
  std::vector<std::pair<std::string, std::string>> asked;
  Sources src;
  src.persistent_volume_claim = [&](const std::string& ns,
                                    const std::string& claim) -> Result<ClaimVolume> {
    asked.emplace_back(ns, claim);
    if (claim == "data") return ClaimVolume{"pvc-1234", dir, "DirectoryOrCreate"};
    if (claim == "local") return ClaimVolume{"local-pv", tmp.path + "/missing", "Directory"};
    if (claim == "pending")
      return Status::unavailable("persistentvolumeclaim \"pending\" not bound");
    return Status::not_found("persistentvolumeclaim \"" + claim + "\" not found");
  };

  SECTION("DirectoryOrCreate creates the directory; readOnly from the volume or the mount") {
    auto r = vm.setup(
        make_pod({claim_volume("v", "data", false), claim_volume("ro", "data", true)}), src);
    REQUIRE(r.is_ok());
    CHECK(asked.at(0) == std::make_pair(std::string("ns"), std::string("data")));
    CHECK(r->at("v").host_path == dir);
    CHECK_FALSE(r->at("v").read_only);
    CHECK(r->at("ro").read_only);
    struct stat st;
    REQUIRE(stat(dir.c_str(), &st) == 0);
    CHECK(S_ISDIR(st.st_mode));
    // Nothing for it below the pod's directory: teardown must never reach the volume's data.
    CHECK_FALSE(exists(tmp.path + "/pods/uid-1/volumes/persistent-volume-claim"));

    proto::Container c;
    c.name = "c";
    proto::VolumeMount rw_mount, ro_mount, ro_by_mount;
    rw_mount.name = "v";
    rw_mount.mount_path = "/data";
    ro_mount.name = "ro";
    ro_mount.mount_path = "/ro";
    ro_by_mount.name = "v";
    ro_by_mount.mount_path = "/ro2";
    ro_by_mount.read_only = true;
    c.volume_mounts = {rw_mount, ro_mount, ro_by_mount};
    auto mounts = vm.container_mounts(c, *r);
    REQUIRE(mounts.is_ok());
    REQUIRE(mounts->size() == 3);
    CHECK((*mounts)[0].source == dir);
    CHECK((*mounts)[0].type == "bind");
    CHECK((*mounts)[0].options == std::vector<std::string>{"rw"});
    CHECK((*mounts)[1].options == std::vector<std::string>{"ro"});
    CHECK((*mounts)[2].options == std::vector<std::string>{"ro"});

    put(dir + "/kept", "data");
    REQUIRE(vm.teardown("uid-1").is_ok());
    CHECK(exists(dir + "/kept"));
  }
  SECTION("a claim not bound or missing fails with the source's message, retryable") {
    auto r = vm.setup(make_pod({claim_volume("v", "pending", false)}), src);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().code() == Code::kUnavailable);
    CHECK(r.status().message() == "volume \"v\": persistentvolumeclaim \"pending\" not bound");
    r = vm.setup(make_pod({claim_volume("v", "gone", false)}), src);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().message() == "volume \"v\": persistentvolumeclaim \"gone\" not found");
  }
  SECTION("a local volume must exist") {
    auto r = vm.setup(make_pod({claim_volume("v", "local", false)}), src);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().message() == "volume \"v\": persistentvolume \"local-pv\": hostPath " +
                                      tmp.path + "/missing: directory does not exist");
  }
  SECTION("no resolver, empty claim name") {
    CHECK_FALSE(vm.setup(make_pod({claim_volume("v", "data", false)}), {}).is_ok());
    CHECK(vm.setup(make_pod({claim_volume("v", "", false)}), src).status().code() ==
          Code::kInvalid);
  }
}

TEST_CASE("hostPath type checks as Kubernetes") {
  TempDir tmp;
  VolumeManager vm(tmp.path + "/pods");
  auto setup = [&](const std::string& path, std::optional<std::string> type) {
    return vm.setup(make_pod({host_path("h", path, std::move(type))}), {});
  };
  std::string file = tmp.path + "/file";
  put(file, "hello");

  SECTION("unchecked") { CHECK(setup(tmp.path + "/missing", std::nullopt).is_ok()); }
  SECTION("Directory") {
    CHECK(setup(tmp.path, "Directory")->at("h").host_path == tmp.path);
    auto r = setup(tmp.path + "/missing", "Directory");
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().message().find("directory does not exist") != std::string::npos);
    r = setup(file, "Directory");
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().message() == "volume \"h\": hostPath " + file + ": not a directory");
  }
  SECTION("DirectoryOrCreate") {
    REQUIRE(setup(tmp.path + "/a/b", "DirectoryOrCreate").is_ok());
    CHECK(mode_of(tmp.path + "/a/b") == 0755);
    CHECK_FALSE(setup(file, "DirectoryOrCreate").is_ok());
  }
  SECTION("File and FileOrCreate") {
    CHECK(setup(file, "File").is_ok());
    CHECK_FALSE(setup(tmp.path, "File").is_ok());
    CHECK_FALSE(setup(tmp.path + "/nope", "File").is_ok());
    REQUIRE(setup(tmp.path + "/new", "FileOrCreate").is_ok());
    CHECK(mode_of(tmp.path + "/new") == (0644 & ~[] {
            mode_t m = umask(0);
            umask(m);
            return m;
          }()));
    CHECK(setup(file, "FileOrCreate").is_ok());
    CHECK_FALSE(setup(tmp.path, "FileOrCreate").is_ok());
    // The parent is not created.
    CHECK_FALSE(setup(tmp.path + "/nodir/new", "FileOrCreate").is_ok());
  }
  SECTION("Socket, CharDevice, BlockDevice") {
    std::string sock = tmp.path + "/s.sock";
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    CHECK(setup(sock, "Socket").is_ok());
    close(fd);
    CHECK_FALSE(setup(file, "Socket").is_ok());
    CHECK(setup("/dev/null", "CharDevice").is_ok());
    CHECK_FALSE(setup(file, "CharDevice").is_ok());
    auto r = setup("/dev/null", "BlockDevice");
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().message().find("not a block device") != std::string::npos);
  }
  SECTION("unknown type, relative path") {
    CHECK(setup(tmp.path, "Dir").status().code() == Code::kInvalid);
    CHECK(setup("relative", "").status().code() == Code::kInvalid);
  }
}

TEST_CASE("teardown never deletes a hostPath nor follows symlinks out of the pod") {
  TempDir tmp;
  std::string host = tmp.path + "/host";
  REQUIRE(fs::make_dirs(host, 0755).is_ok());
  put(host + "/keep", "precious");
  VolumeManager vm(tmp.path + "/pods");
  auto r = vm.setup(make_pod({host_path("h", host, "Directory"), empty_dir("e")}), {});
  REQUIRE(r.is_ok());
  std::string e = r->at("e").host_path;
  REQUIRE(symlink(host.c_str(), (e + "/link").c_str()) == 0);
  REQUIRE(symlink((host + "/keep").c_str(), (e + "/filelink").c_str()) == 0);
  REQUIRE(vm.teardown("uid-1").is_ok());
  CHECK_FALSE(exists(tmp.path + "/pods/uid-1"));
  CHECK(slurp(host + "/keep") == "precious");
}

TEST_CASE("configMap volume: all keys, defaultMode, ..data layout, read-only") {
  TempDir tmp;
  FakeApi api;
  api.config_maps["ns/cfg"] = {{"a.conf", "A"}, {"b", "B"}};
  VolumeManager vm(tmp.path + "/pods");
  proto::Volume v;
  v.name = "c";
  v.config_map.emplace();
  v.config_map->name = "cfg";
  auto r = vm.setup(make_pod({v}), api.sources());
  REQUIRE(r.is_ok());
  std::string dir = tmp.path + "/pods/uid-1/volumes/configmap/c";
  CHECK(r->at("c").host_path == dir);
  CHECK(r->at("c").read_only);
  CHECK(link_of(dir + "/a.conf") == "..data/a.conf");
  CHECK(link_of(dir + "/..data").starts_with(".."));
  CHECK(slurp(dir + "/a.conf") == "A");
  CHECK(slurp(dir + "/b") == "B");
  CHECK(mode_of(dir + "/a.conf") == 0644);

  std::string version = link_of(dir + "/..data");
  SECTION("unchanged contents keep the version") {
    REQUIRE(vm.setup(make_pod({v}), api.sources()).is_ok());
    CHECK(link_of(dir + "/..data") == version);
  }
  SECTION("an update swaps the version and drops removed keys") {
    api.config_maps["ns/cfg"] = {{"a.conf", "A2"}, {"c", "C"}};
    REQUIRE(vm.setup(make_pod({v}), api.sources()).is_ok());
    CHECK(link_of(dir + "/..data") != version);
    CHECK_FALSE(exists(dir + "/" + version));
    CHECK(slurp(dir + "/a.conf") == "A2");
    CHECK(slurp(dir + "/c") == "C");
    CHECK_FALSE(exists(dir + "/b"));
  }
  SECTION("defaultMode change rewrites") {
    v.config_map->default_mode = 0400;
    REQUIRE(vm.setup(make_pod({v}), api.sources()).is_ok());
    CHECK(mode_of(dir + "/b") == 0400);
  }
}

TEST_CASE("configMap items: nested paths, per-item mode, missing keys, optional") {
  TempDir tmp;
  FakeApi api;
  api.config_maps["ns/cfg"] = {{"k1", "one"}, {"k2", "two"}, {"k3", "three"}};
  VolumeManager vm(tmp.path + "/pods");
  proto::Volume v;
  v.name = "c";
  v.config_map.emplace();
  v.config_map->name = "cfg";
  v.config_map->default_mode = 0600;
  v.config_map->items = {{"k1", "dir/sub/one.txt", 0755}, {"k2", "dir/two", std::nullopt}};
  std::string dir = tmp.path + "/pods/uid-1/volumes/configmap/c";

  auto r = vm.setup(make_pod({v}), api.sources());
  REQUIRE(r.is_ok());
  CHECK(link_of(dir + "/dir") == "..data/dir");
  CHECK(slurp(dir + "/dir/sub/one.txt") == "one");
  CHECK(mode_of(dir + "/dir/sub/one.txt") == 0755);
  CHECK(mode_of(dir + "/dir/two") == 0600);
  CHECK_FALSE(exists(dir + "/k3"));

  v.config_map->items.push_back({"nope", "nope", std::nullopt});
  r = vm.setup(make_pod({v}), api.sources());
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message() == "volume \"c\": configmap references non-existent config key: nope");
  v.config_map->optional = true;
  REQUIRE(vm.setup(make_pod({v}), api.sources()).is_ok());

  v.config_map->items = {{"k1", "../escape", std::nullopt}};
  CHECK(vm.setup(make_pod({v}), api.sources()).status().code() == Code::kInvalid);
  v.config_map->items = {{"k1", "/abs", std::nullopt}};
  CHECK(vm.setup(make_pod({v}), api.sources()).status().code() == Code::kInvalid);
}

TEST_CASE("configMap not found: error unless optional") {
  TempDir tmp;
  FakeApi api;
  VolumeManager vm(tmp.path + "/pods");
  proto::Volume v;
  v.name = "c";
  v.config_map.emplace();
  v.config_map->name = "cfg";
  auto r = vm.setup(make_pod({v}), api.sources());
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().code() == Code::kNotFound);
  CHECK(r.status().message() == "volume \"c\": configmap \"cfg\" not found");
  v.config_map->optional = true;
  r = vm.setup(make_pod({v}), api.sources());
  REQUIRE(r.is_ok());
  CHECK(exists(r->at("c").host_path + "/..data"));
  // Appears later: contents show up on the next setup.
  api.config_maps["ns/cfg"] = {{"k", "v"}};
  REQUIRE(vm.setup(make_pod({v}), api.sources()).is_ok());
  CHECK(slurp(r->at("c").host_path + "/k") == "v");
}

TEST_CASE("secret volume lives on tmpfs") {
  if (!is_root()) {
    skiff::testing::skip("skipped: mounting tmpfs needs root");
    return;
  }
  TempDir tmp;
  FakeApi api;
  api.secrets["ns/s"] = {{"token", std::string("t\0k", 3)}};
  VolumeManager vm(tmp.path + "/pods");
  proto::Volume v;
  v.name = "sec";
  v.secret.emplace();
  v.secret->secret_name = "s";
  v.secret->default_mode = 0400;
  auto pod = make_pod({v});
  auto r = vm.setup(pod, api.sources());
  REQUIRE(r.is_ok());
  std::string dir = r->at("sec").host_path;
  CHECK(dir == tmp.path + "/pods/uid-1/volumes/secret/sec");
  CHECK(r->at("sec").read_only);
  struct statfs sf;
  REQUIRE(statfs(dir.c_str(), &sf) == 0);
  CHECK(sf.f_type == kTmpfsMagic);
  CHECK(slurp(dir + "/token") == std::string("t\0k", 3));
  CHECK(mode_of(dir + "/token") == 0400);
  REQUIRE(vm.setup(pod, api.sources()).is_ok());
  CHECK(fs::mounts_below(dir).size() == 1);
  REQUIRE(vm.teardown("uid-1").is_ok());
  CHECK(fs::mounts_below(tmp.path).empty());
  CHECK_FALSE(exists(tmp.path + "/pods/uid-1"));

  // A missing non-optional secret names the secret.
  v.secret->secret_name = "other";
  auto r2 = vm.setup(make_pod({v}), api.sources());
  REQUIRE_FALSE(r2.is_ok());
  CHECK(r2.status().message() == "volume \"sec\": secret \"other\" not found");
  REQUIRE(vm.teardown("uid-1").is_ok());
}

TEST_CASE(
    "container_mounts: readOnly, subPath created, escapes refused or "
    "confined") {
  TempDir tmp;
  FakeApi api;
  api.config_maps["ns/cfg"] = {{"app.conf", "x"}};
  VolumeManager vm(tmp.path + "/pods");
  proto::Volume cm;
  cm.name = "cfg";
  cm.config_map.emplace();
  cm.config_map->name = "cfg";
  auto vols = vm.setup(make_pod({empty_dir("data"), cm}), api.sources());
  REQUIRE(vols.is_ok());
  std::string data = vols->at("data").host_path;

  proto::Container c;
  c.name = "app";
  auto mount = [&](const std::string& vol, const std::string& path, const std::string& sub,
                   bool ro = false) {
    proto::VolumeMount m;
    m.name = vol;
    m.mount_path = path;
    m.sub_path = sub;
    m.read_only = ro;
    c.volume_mounts = {m};
    return vm.container_mounts(c, *vols);
  };

  auto r = mount("data", "/data", "", true);
  REQUIRE(r.is_ok());
  REQUIRE(r->size() == 1);
  CHECK(r->at(0).destination == "/data");
  CHECK(r->at(0).type == "bind");
  CHECK(r->at(0).source == data);
  CHECK(r->at(0).options == std::vector<std::string>{"ro"});
  CHECK(mount("data", "/data", "")->at(0).options == std::vector<std::string>{"rw"});
  // configMap volumes are read-only whatever the mount says.
  CHECK(mount("cfg", "/etc/app", "")->at(0).options == std::vector<std::string>{"ro"});

  // subPath: created with the volume's mode.
  r = mount("data", "/logs", "a/b");
  REQUIRE(r.is_ok());
  CHECK(same_file(r->at(0).source, data + "/a/b"));
  CHECK(mode_of(data + "/a/b") == 0777);

  // A file subPath through the configMap's symlinks resolves to the real file.
  r = mount("cfg", "/etc/app.conf", "app.conf");
  REQUIRE(r.is_ok());
  CHECK(same_file(r->at(0).source, vols->at("cfg").host_path + "/..data/app.conf"));
  CHECK(slurp(r->at(0).source) == "x");

  CHECK(mount("data", "/x", "../escape").status().code() == Code::kInvalid);
  CHECK(mount("data", "/x", "a/../../escape").status().code() == Code::kInvalid);
  CHECK(mount("data", "/x", "/etc").status().code() == Code::kInvalid);
  CHECK(mount("nosuch", "/x", "").status().code() == Code::kInvalid);
  CHECK(mount("data", "relative", "").status().code() == Code::kInvalid);

  // Symlinks planted by the pod stay inside the volume.
  REQUIRE(symlink("/etc", (data + "/abs").c_str()) == 0);
  REQUIRE(symlink("../../../../../..", (data + "/up").c_str()) == 0);
  r = mount("data", "/x", "abs");
  REQUIRE(r.is_ok());
  CHECK(same_file(r->at(0).source, data + "/etc"));
  r = mount("data", "/x", "up/etc");
  REQUIRE(r.is_ok());
  CHECK(same_file(r->at(0).source, data + "/etc"));
  REQUIRE(symlink("loop", (data + "/loop").c_str()) == 0);
  CHECK_FALSE(mount("data", "/x", "loop").is_ok());

  // subPathExpr expands the container's env.
  proto::EnvVar e;
  e.name = "POD";
  e.value = "p1";
  c.env = {e};
  proto::VolumeMount m;
  m.name = "data";
  m.mount_path = "/x";
  m.sub_path_expr = "logs/$(POD)";
  c.volume_mounts = {m};
  r = vm.container_mounts(c, *vols);
  REQUIRE(r.is_ok());
  CHECK(same_file(r->at(0).source, data + "/logs/p1"));
}

TEST_CASE("atomic_write: payload path validation") {
  CHECK(validate_payload_path("a/b.txt").is_ok());
  CHECK_FALSE(validate_payload_path("").is_ok());
  CHECK_FALSE(validate_payload_path("/a").is_ok());
  CHECK_FALSE(validate_payload_path("..a").is_ok());
  CHECK_FALSE(validate_payload_path("a/../b").is_ok());
  CHECK(validate_payload_path("a/..b").is_ok());
}

TEST_CASE("subPath is pinned by a bind mount the pod cannot redirect") {
  if (!is_root()) {
    skiff::testing::skip("skipped: bind mounts need root");
    return;
  }
  TempDir tmp;
  VolumeManager vm(tmp.path + "/pods");
  auto vols = vm.setup(make_pod({empty_dir("data")}), {});
  REQUIRE(vols.is_ok());
  std::string data = vols->at("data").host_path;
  proto::Container c;
  c.name = "app";
  proto::VolumeMount m;
  m.name = "data";
  m.mount_path = "/x";
  m.sub_path = "a/b";
  c.volume_mounts = {m};
  auto r = vm.container_mounts(c, *vols);
  REQUIRE(r.is_ok());
  std::string pin = tmp.path + "/pods/uid-1/volume-subpaths/data/app/0";
  CHECK(r->at(0).source == pin);
  CHECK(fs::mounts_below(pin).size() == 1);
  put(data + "/a/b/f", "through the pin");
  CHECK(slurp(pin + "/f") == "through the pin");
  // Again (a container restart): the old pin is replaced, not stacked.
  REQUIRE(vm.container_mounts(c, *vols).is_ok());
  CHECK(fs::mounts_below(pin).size() == 1);

  // A directory swapped for a symlink after resolution is refused, not followed.
  std::string resolved = data + "/a/b";
  REQUIRE(rename((data + "/a").c_str(), (data + "/moved").c_str()) == 0);
  REQUIRE(symlink("/etc", (data + "/a").c_str()) == 0);
  auto st = fs::pin_path(data, resolved, tmp.path + "/pods/uid-1/volume-subpaths/data/app/9");
  CHECK_FALSE(st.is_ok());
  CHECK(st.os_errno() == ELOOP);

  REQUIRE(vm.teardown("uid-1").is_ok());
  CHECK(fs::mounts_below(tmp.path).empty());
  CHECK_FALSE(exists(tmp.path + "/pods/uid-1"));
}
