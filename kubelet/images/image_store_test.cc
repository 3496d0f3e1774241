#include "kubelet/images/image_store.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "kubelet/images/internal.h"
#include "test/testing.h"

using namespace skiff;
using namespace skiff::images;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/skiff-images-test.XXXXXX";
    path = ::mkdtemp(t);
  }
  ~TempDir() { fs::remove_all(path); }
};

// One tar entry: type 'f' file, 'd' dir, 'l' symlink, 'h' hard link.
struct E {
  char type;
  std::string name;
  std::string data;  // file content or link target
  int mode = 0644;
  int uid = 0, gid = 0;
};

std::string make_tar(const std::vector<E>& entries, bool gzip) {
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (gzip) archive_write_add_filter_gzip(a);
  std::vector<char> buf(16 << 20);
  size_t used = 0;
  archive_write_open_memory(a, buf.data(), buf.size(), &used);
  for (const auto& e : entries) {
    archive_entry* ae = archive_entry_new();
    archive_entry_set_pathname(ae, e.name.c_str());
    archive_entry_set_uid(ae, e.uid);
    archive_entry_set_gid(ae, e.gid);
    archive_entry_set_mtime(ae, 1000, 0);
    switch (e.type) {
      case 'f':
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_perm(ae, e.mode);
        archive_entry_set_size(ae, e.data.size());
        break;
      case 'd':
        archive_entry_set_filetype(ae, AE_IFDIR);
        archive_entry_set_perm(ae, e.mode);
        break;
      case 'l':
        archive_entry_set_filetype(ae, AE_IFLNK);
        archive_entry_set_perm(ae, 0777);
        archive_entry_set_symlink(ae, e.data.c_str());
        break;
      case 'h':
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_perm(ae, e.mode);
        archive_entry_set_hardlink(ae, e.data.c_str());
        archive_entry_set_size(ae, 0);
        break;
    }
    archive_write_header(a, ae);
    if (e.type == 'f') archive_write_data(a, e.data.data(), e.data.size());
    archive_entry_free(ae);
  }
  archive_write_close(a);
  archive_write_free(a);
  return std::string(buf.data(), used);
}

void write(const std::string& path, const std::string& data) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << data;
}

std::string read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Builds an OCI image layout directory with one image of `layers` (gzip tars), named `ref`.
struct Layout {
  std::string dir;
  std::string config_digest, manifest_digest;
  std::vector<std::string> layer_digests;

  std::string blob(const std::string& data) {
    std::string d = internal::sha256_digest(data);
    write(dir + "/blobs/sha256/" + d.substr(7), data);
    return d;
  }

  Layout(const std::string& d, const std::string& ref, const std::vector<std::string>& tars,
         json cfg_extra = json::object())
      : dir(d) {
    json diff_ids = json::array();
    json layers = json::array();
    for (const auto& t : tars) {
      std::string gz = t;
      // Diff ids are digests of the uncompressed tars: decompress through libarchive.
      archive* a = archive_read_new();
      archive_read_support_filter_all(a);
      archive_read_support_format_raw(a);
      archive_read_open_memory(a, gz.data(), gz.size());
      archive_entry* e;
      archive_read_next_header(a, &e);
      std::string raw;
      char buf[65536];
      la_ssize_t n;
      while ((n = archive_read_data(a, buf, sizeof(buf))) > 0) raw.append(buf, n);
      archive_read_free(a);
      diff_ids.push_back(internal::sha256_digest(raw));
      std::string ld = blob(gz);
      layer_digests.push_back(ld);
      layers.push_back({{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                        {"digest", ld},
                        {"size", gz.size()}});
    }
    json cfg = {{"architecture", internal::host_architecture()},
                {"os", "linux"},
                {"config", {{"Cmd", {"sh"}}, {"Env", {"PATH=/bin"}}}},
                {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
    cfg.merge_patch(cfg_extra);
    std::string cfg_s = cfg.dump();
    config_digest = blob(cfg_s);
    json m = {{"schemaVersion", 2},
              {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
              {"config",
               {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                {"digest", config_digest},
                {"size", cfg_s.size()}}},
              {"layers", layers}};
    std::string ms = m.dump();
    manifest_digest = blob(ms);
    json idx = {{"schemaVersion", 2},
                {"manifests",
                 {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                   {"digest", manifest_digest},
                   {"size", ms.size()},
                   {"annotations", {{"org.opencontainers.image.ref.name", ref}}}}}}};
    write(dir + "/index.json", idx.dump());
    write(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  }

  // The layout as a tar file.
  std::string tar(const std::string& path) const {
    std::vector<E> es;
    for (const auto& p : fs::recursive_directory_iterator(dir)) {
      if (p.is_regular_file()) {
        es.push_back({'f', fs::relative(p.path(), dir).string(), read(p.path().string())});
      }
    }
    write(path, make_tar(es, false));
    return path;
  }
};

std::unique_ptr<ImageStore> open_store(const std::string& root) {
  auto s = ImageStore::open(root);
  REQUIRE(s.is_ok());
  return std::move(s).value();
}

bool store_is_empty(const std::string& root) {
  return fs::is_empty(root + "/blobs/sha256") && fs::is_empty(root + "/layers");
}

bool is_root() { return ::geteuid() == 0; }

}  // namespace

TEST_CASE("normalize_reference follows the Docker rules") {
  auto n = [](const char* r) {
    auto x = normalize_reference(r);
    return x ? *x : "ERR " + x.status().message();
  };
  CHECK(n("busybox") == "docker.io/library/busybox:latest");
  CHECK(n("busybox:1.35") == "docker.io/library/busybox:1.35");
  CHECK(n("library/busybox") == "docker.io/library/busybox:latest");
  CHECK(n("docker.io/busybox") == "docker.io/library/busybox:latest");
  CHECK(n("index.docker.io/library/busybox:1") == "docker.io/library/busybox:1");
  CHECK(n("user/app:v2") == "docker.io/user/app:v2");
  CHECK(n("127.0.0.1:5000/x") == "127.0.0.1:5000/x:latest");
  CHECK(n("localhost/x/y:t") == "localhost/x/y:t");
  CHECK(n("quay.io/a/b-c_d.e:1.0-rc") == "quay.io/a/b-c_d.e:1.0-rc");
  std::string dg = "sha256:" + std::string(64, 'a');
  CHECK(n(("x@" + dg).c_str()) == "docker.io/library/x@" + dg);
  CHECK(n(("127.0.0.1:5000/x:tag@" + dg).c_str()) == "127.0.0.1:5000/x@" + dg);
  CHECK(n("").starts_with("ERR"));
  CHECK(n("Busybox").find("lowercase") != std::string::npos);
  CHECK(n("busybox:").starts_with("ERR"));
  CHECK(n("busybox:bad tag").starts_with("ERR"));
  CHECK(n("x@sha256:123").starts_with("ERR"));
  CHECK(n("a//b").starts_with("ERR"));
  CHECK(n("-a").starts_with("ERR"));
}

TEST_CASE("layers: whiteouts, opaque dirs, ownership, links") {
  if (!is_root()) {
    skiff::testing::skip("not root: whiteout devices and trusted.* xattrs need CAP_MKNOD/CAP_SYS_ADMIN");
    return;
  }
  TempDir t;
  std::string tar = make_tar({{'d', "etc/", "", 0755},
                              {'f', "etc/passwd", "root:x:0:0::/:/bin/sh\n", 0600, 0, 0},
                              {'f', "etc/owned", "x", 04755, 123, 456},
                              {'l', "etc/link", "/etc/passwd"},
                              {'h', "etc/hard", "etc/passwd"},
                              {'f', "gone/.wh.file", ""},
                              {'d', "opaque/", "", 0700},
                              {'f', "opaque/.wh..wh..opq", ""},
                              {'f', "opaque/new", "n"},
                              {'d', "tmp/", "", 01777}},
                             true);
  write(t.path + "/layer.tar.gz", tar);
  fs::create_directories(t.path + "/out");
  std::string diff_id;
  Status st = internal::unpack_layer(t.path + "/layer.tar.gz", t.path + "/out", "test", &diff_id);
  REQUIRE(st.to_string() == "OK");
  CHECK(diff_id.starts_with("sha256:"));
  struct stat s;
  REQUIRE(::lstat((t.path + "/out/gone/file").c_str(), &s) == 0);
  CHECK(S_ISCHR(s.st_mode));
  CHECK(s.st_rdev == makedev(0, 0));
  char v[4] = {};
  CHECK(::lgetxattr((t.path + "/out/opaque").c_str(), "trusted.overlay.opaque", v, sizeof(v)) == 1);
  CHECK(v[0] == 'y');
  CHECK(!fs::exists(t.path + "/out/opaque/.wh..wh..opq"));
  REQUIRE(::lstat((t.path + "/out/etc/owned").c_str(), &s) == 0);
  CHECK(s.st_uid == 123);
  CHECK(s.st_gid == 456);
  CHECK((s.st_mode & 07777) == 04755);
  REQUIRE(::lstat((t.path + "/out/tmp").c_str(), &s) == 0);
  CHECK((s.st_mode & 07777) == 01777);
  CHECK(fs::read_symlink(t.path + "/out/etc/link") == "/etc/passwd");
  struct stat a, b;
  REQUIRE(::lstat((t.path + "/out/etc/passwd").c_str(), &a) == 0);
  REQUIRE(::lstat((t.path + "/out/etc/hard").c_str(), &b) == 0);
  CHECK(a.st_ino == b.st_ino);
  CHECK((a.st_mode & 0777) == 0600);
}

TEST_CASE("layers: entries escaping the layer are refused") {
  TempDir t;
  fs::create_directories(t.path + "/victim");
  auto attempt = [&](std::vector<E> es) {
    write(t.path + "/l.tar", make_tar(es, false));
    fs::remove_all(t.path + "/out");
    fs::create_directories(t.path + "/out");
    std::string d;
    return internal::unpack_layer(t.path + "/l.tar", t.path + "/out", "layer L", &d);
  };
  Status st = attempt({{'f', "../victim/x", "evil"}});
  CHECK(st.code() == Code::kInvalid);
  CHECK(st.message().find("\"..\"") != std::string::npos);
  st = attempt({{'f', "a/../../victim/x", "evil"}});
  CHECK(st.code() == Code::kInvalid);
  st = attempt({{'f', "/victim/x", "evil"}});
  CHECK(st.code() == Code::kInvalid);
  CHECK(st.message().find("absolute") != std::string::npos);
  st = attempt({{'l', "s", t.path + "/victim"}, {'f', "s/x", "evil"}});
  CHECK(st.code() == Code::kInvalid);
  CHECK(st.message().find("symlink") != std::string::npos);
  CHECK(st.message().find("layer L: entry \"s/x\"") != std::string::npos);
  st = attempt({{'l', "s", "../../victim"}, {'h', "s/y", "etc/passwd"}});
  CHECK(st.code() == Code::kInvalid);
  st = attempt({{'h', "h", "../victim/x"}});
  CHECK(st.code() == Code::kInvalid);
  CHECK(fs::is_empty(t.path + "/victim"));
  // A symlink pointing out is fine as a symlink: it is resolved inside the container.
  st = attempt({{'l', "s", "/etc/shadow"}});
  CHECK(st.is_ok());
}

TEST_CASE("layers: corrupt and truncated streams are refused") {
  TempDir t;
  std::string gz = make_tar({{'f', "a", std::string(100000, 'x')}}, true);
  std::string diff;
  write(t.path + "/trunc.gz", gz.substr(0, gz.size() / 2));
  fs::create_directories(t.path + "/o1");
  Status st = internal::unpack_layer(t.path + "/trunc.gz", t.path + "/o1", "L", &diff);
  CHECK(st.code() == Code::kInvalid);
  std::string bad = gz;
  bad[bad.size() / 2] ^= 0x55;
  bad[bad.size() / 2 + 1] ^= 0x55;
  write(t.path + "/bad.gz", bad);
  fs::create_directories(t.path + "/o2");
  st = internal::unpack_layer(t.path + "/bad.gz", t.path + "/o2", "L", &diff);
  CHECK(st.code() == Code::kInvalid);
  write(t.path + "/junk", "this is not a tar archive at all, just some words.");
  fs::create_directories(t.path + "/o3");
  st = internal::unpack_layer(t.path + "/junk", t.path + "/o3", "L", &diff);
  CHECK(st.code() == Code::kInvalid);
}

TEST_CASE("import: OCI layout dir and tar, find by name, id prefix and digest") {
  TempDir t;
  Layout l(t.path + "/layout", "example.com/app:v1",
           {make_tar({{'f', "bin/app", "#!/bin/sh\n", 0755}}, true)});
  auto store = open_store(t.path + "/store");
  auto r = store->import_file(l.dir);
  REQUIRE(r.status().to_string() == "OK");
  REQUIRE(r->size() == 1);
  CHECK((*r)[0].id == l.config_digest);
  CHECK((*r)[0].repo_tags == std::vector<std::string>{"example.com/app:v1"});
  CHECK((*r)[0].config.cmd == std::vector<std::string>{"sh"});
  CHECK(store->find("example.com/app:v1").has_value());
  CHECK(store->find(l.config_digest.substr(7, 12)).has_value());
  CHECK(store->find(l.config_digest).has_value());
  CHECK(store->find("example.com/app@" + l.manifest_digest).has_value());
  CHECK(!store->find("example.com/app:v2").has_value());
  auto dirs = store->layer_dirs(*store->find("example.com/app:v1"));
  REQUIRE(dirs.is_ok());
  CHECK(read((*dirs)[0] + "/bin/app") == "#!/bin/sh\n");
  // Reopening reads images.json back.
  auto again = open_store(t.path + "/store");
  CHECK(again->list().size() == 1);
  // The same layout as a tar: same id, nothing duplicated.
  auto r2 = again->import_file(l.tar(t.path + "/layout.tar"));
  REQUIRE(r2.is_ok());
  CHECK(again->list().size() == 1);
}

TEST_CASE("import: a tampered blob is refused and nothing is stored") {
  TempDir t;
  Layout l(t.path + "/layout", "x:1", {make_tar({{'f', "a", "1"}}, true)});
  std::string path = l.dir + "/blobs/sha256/" + l.layer_digests[0].substr(7);
  std::string data = read(path);
  data[data.size() - 10] ^= 1;
  write(path, data);
  auto store = open_store(t.path + "/store");
  auto r = store->import_file(l.dir);
  REQUIRE(!r.is_ok());
  CHECK(r.status().code() == Code::kInvalid);
  CHECK(r.status().message().find("digest mismatch") != std::string::npos);
  CHECK(r.status().message().find(l.layer_digests[0]) != std::string::npos);
  CHECK(store_is_empty(t.path + "/store"));
  CHECK(store->list().empty());
}

TEST_CASE("import: a truncated archive names the file and the entry, stores nothing") {
  TempDir t;
  Layout l(t.path + "/layout", "x:1", {make_tar({{'f', "a", std::string(50000, 'q')}}, false)});
  std::string tar = read(l.tar(t.path + "/full.tar"));
  write(t.path + "/cut.tar", tar.substr(0, tar.size() / 2));
  auto store = open_store(t.path + "/store");
  auto r = store->import_file(t.path + "/cut.tar");
  REQUIRE(!r.is_ok());
  CHECK(r.status().code() == Code::kInvalid);
  CHECK(r.status().message().find(t.path + "/cut.tar") != std::string::npos);
  CHECK(r.status().message().find("entry") != std::string::npos);
  CHECK(store_is_empty(t.path + "/store"));
  // A second image whose layer is broken: the good first layer is not kept either.
  Layout l2(t.path + "/layout2", "y:1",
            {make_tar({{'f', "ok", "1"}}, true), make_tar({{'f', "b", "2"}}, true)});
  std::string p2 = l2.dir + "/blobs/sha256/" + l2.layer_digests[1].substr(7);
  write(p2, "garbage");
  r = store->import_file(l2.dir);
  CHECK(!r.is_ok());
  CHECK(store_is_empty(t.path + "/store"));
}

TEST_CASE("import: docker-archive") {
  TempDir t;
  std::string layer = make_tar({{'f', "hello", "world"}}, false);
  std::string diff = internal::sha256_digest(layer);
  json cfg = {{"config", {{"Entrypoint", {"/hello"}}, {"User", "1000:1000"}}},
              {"rootfs", {{"type", "layers"}, {"diff_ids", {diff}}}}};
  std::string cfg_s = cfg.dump();
  json man = json::array(
      {{{"Config", "cfg.json"}, {"RepoTags", {"hello:2"}}, {"Layers", {"abc/layer.tar"}}}});
  write(t.path + "/a.tar", make_tar({{'f', "abc/layer.tar", layer},
                                     {'f', "cfg.json", cfg_s},
                                     {'f', "manifest.json", man.dump()}},
                                    false));
  auto store = open_store(t.path + "/store");
  auto r = store->import_file(t.path + "/a.tar");
  REQUIRE(r.status().to_string() == "OK");
  auto img = store->find("hello:2");
  REQUIRE(img);
  CHECK(img->id == internal::sha256_digest(cfg_s));
  CHECK(img->config.entrypoint == std::vector<std::string>{"/hello"});
  CHECK(img->config.user == "1000:1000");
  // A config whose diff_id does not match the layer: refused.
  json bad = cfg;
  bad["rootfs"]["diff_ids"] = {"sha256:" + std::string(64, '0')};
  write(t.path + "/b.tar", make_tar({{'f', "abc/layer.tar", layer},
                                     {'f', "cfg.json", bad.dump()},
                                     {'f', "manifest.json", man.dump()}},
                                    false));
  auto store2 = open_store(t.path + "/store2");
  r = store2->import_file(t.path + "/b.tar");
  CHECK(r.status().code() == Code::kInvalid);
  CHECK(r.status().message().find("diff-id mismatch") != std::string::npos);
  CHECK(store_is_empty(t.path + "/store2"));
}

TEST_CASE("layers are shared between images and unpacked once, also concurrently") {
  TempDir t;
  std::string base = make_tar({{'f', "etc/base", "b"}}, true);
  auto store = open_store(t.path + "/store");
  std::vector<std::unique_ptr<Layout>> ls;
  for (int i = 0; i < 4; ++i) {
    ls.push_back(std::make_unique<Layout>(
        t.path + "/l" + std::to_string(i), "img" + std::to_string(i) + ":1",
        std::vector<std::string>{base, make_tar({{'f', "top", std::to_string(i)}}, true)}));
  }
  std::vector<std::thread> th;
  std::vector<Status> results(ls.size());
  for (size_t i = 0; i < ls.size(); ++i) {
    th.emplace_back([&, i] { results[i] = store->import_file(ls[i]->dir).status(); });
  }
  for (auto& x : th) x.join();
  for (const auto& s : results) CHECK(s.to_string() == "OK");
  CHECK(store->list().size() == 4);
  size_t layers = std::distance(fs::directory_iterator(t.path + "/store/layers"), {});
  CHECK(layers == 5);  // one base + four tops
  auto d0 = store->layer_dirs(*store->find("img0:1"));
  auto d1 = store->layer_dirs(*store->find("img1:1"));
  REQUIRE(d0.is_ok());
  REQUIRE(d1.is_ok());
  CHECK(d0->size() == 2);
  CHECK((*d0)[1] == (*d1)[1]);  // bottom layer shared
  CHECK((*d0)[0] != (*d1)[0]);
  CHECK(read((*d0)[0] + "/top") == "0");
  // Removing one image keeps the shared layer; removing all leaves nothing.
  REQUIRE(store->remove("img0:1").is_ok());
  CHECK(fs::exists((*d1)[1]));
  CHECK(!fs::exists((*d0)[0]));
  for (int i = 1; i < 4; ++i) REQUIRE(store->remove("img" + std::to_string(i) + ":1").is_ok());
  CHECK(store_is_empty(t.path + "/store"));
  CHECK(store->remove("img0:1").code() == Code::kNotFound);
}

TEST_CASE("a tag moves to the newest image; removing one of two tags only untags") {
  TempDir t;
  Layout a(t.path + "/a", "app:1", {make_tar({{'f', "v", "1"}}, true)});
  Layout b(t.path + "/b", "app:1", {make_tar({{'f', "v", "2"}}, true)});
  auto store = open_store(t.path + "/store");
  REQUIRE(store->import_file(a.dir).is_ok());
  REQUIRE(store->import_file(b.dir).is_ok());
  CHECK(store->find("app:1")->id == b.config_digest);
  CHECK(store->find(a.config_digest)->repo_tags.empty());
  Layout c(t.path + "/c", "app:2", {make_tar({{'f', "v", "2"}}, true)});
  REQUIRE(store->import_file(c.dir).is_ok());
  CHECK(store->find("app:2")->id == b.config_digest);  // same content, same id
  REQUIRE(store->remove("app:1").is_ok());
  CHECK(store->find("app:2").has_value());
  CHECK(!store->find("app:1").has_value());
}

TEST_CASE("import_dir moves files to imported/ and failed/ with the error") {
  TempDir t;
  Layout a(t.path + "/a", "app:1", {make_tar({{'f', "v", "1"}}, true)});
  fs::create_directories(t.path + "/drop");
  a.tar(t.path + "/drop/good.tar");
  write(t.path + "/drop/bad.tar", "nonsense");
  write(t.path + "/drop/.partial", "x");
  auto store = open_store(t.path + "/store");
  Status st = store->import_dir(t.path + "/drop");
  CHECK(st.code() == Code::kInvalid);
  CHECK(st.message().find("bad.tar") != std::string::npos);
  CHECK(fs::exists(t.path + "/drop/imported/good.tar"));
  CHECK(fs::exists(t.path + "/drop/failed/bad.tar"));
  CHECK(read(t.path + "/drop/failed/bad.tar.error").find("Invalid") != std::string::npos);
  CHECK(fs::exists(t.path + "/drop/.partial"));
  CHECK(store->find("app:1").has_value());
}

TEST_CASE("resolve_user") {
  TempDir t;
  write(t.path + "/low/etc/passwd", "root:x:0:0::/root:/bin/sh\nold:x:5:5::/:/bin/sh\n");
  write(t.path + "/top/etc/passwd",
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n# c\nbroken\n");
  write(t.path + "/top/etc/group", "root:x:0:\napp:x:1001:\nwheel:x:10:root,app\nvideo:x:44:app\n");
  std::vector<std::string> layers = {t.path + "/top", t.path + "/low"};
  auto u = [&](const char* s) { return resolve_user(s, layers); };
  CHECK(u("")->uid == 0);
  auto app = u("app");
  REQUIRE(app.is_ok());
  CHECK(app->uid == 1000);
  CHECK(app->gid == 1001);
  CHECK(app->additional_gids == std::vector<uint32_t>{10, 44});
  CHECK(u("1000")->gid == 1001);  // numeric uid found in passwd: its primary group
  CHECK(u("4242")->uid == 4242);  // unknown numeric uid: gid 0
  CHECK(u("4242")->gid == 0);
  CHECK(u("4242:7")->gid == 7);
  CHECK(u("app:wheel")->gid == 10);
  CHECK(u("app:wheel")->additional_gids.empty());
  CHECK(u("old").status().code() == Code::kNotFound);  // top layer's passwd hides the lower one
  CHECK(u("nobody").status().code() == Code::kNotFound);
  CHECK(u("nobody").status().message().find("nobody") != std::string::npos);
  CHECK(u("app:nogroup").status().code() == Code::kNotFound);
  CHECK(resolve_user("123:456", {})->gid == 456);  // numeric ids need no files
}
