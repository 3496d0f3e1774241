#include "kubelet/localpath/provisioner.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

using namespace skiff;
using namespace skiff::localpath;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/skiff-localpath-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

struct Event {
  std::string kind, name;
  bool warning;
  std::string reason, message;
};

class FakeStorage : public StorageApi {
 public:
  std::map<std::string, json> classes, volumes;
  std::vector<Event> events;
  int creates = 0, deletes = 0;
  Status create_error, delete_error;

  Result<json> storage_class(const std::string& name) override {
    auto it = classes.find(name);
    if (it == classes.end())
      return Status::not_found("storageclasses.storage.k8s.io \"" + name + "\" not found");
    return it->second;
  }
  std::optional<json> volume(const std::string& name) override {
    auto it = volumes.find(name);
    if (it == volumes.end()) return std::nullopt;
    return it->second;
  }
  Status create_volume(const json& pv) override {
    ++creates;
    if (!create_error) return create_error;
    std::string name = pv["metadata"]["name"];
    if (volumes.count(name)) return Status::already_exists("persistentvolumes \"" + name + "\"");
    volumes[name] = pv;
    volumes[name]["metadata"]["uid"] = "pv-uid-" + name;
    return Status::ok();
  }
  Status delete_volume(const std::string& name, const std::string&) override {
    ++deletes;
    if (!delete_error) return delete_error;
    if (!volumes.erase(name)) return Status::not_found("persistentvolumes \"" + name + "\"");
    return Status::ok();
  }
  void event(const json& object, bool warning, const std::string& reason,
             const std::string& message) override {
    events.push_back(
        {object.value("kind", ""), object["metadata"].value("name", ""), warning, reason, message});
  }
  bool has_event(const std::string& reason) const {
    for (const auto& e : events)
      if (e.reason == reason) return true;
    return false;
  }
};

json local_path_class(const std::string& policy = "") {
  json sc = {{"apiVersion", "storage.k8s.io/v1"},
             {"kind", "StorageClass"},
             {"metadata", {{"name", "local-path"}}},
             {"provisioner", "skiff.io/local-path"},
             {"volumeBindingMode", "WaitForFirstConsumer"}};
  if (!policy.empty()) sc["reclaimPolicy"] = policy;
  return sc;
}

json claim(const std::string& node = "node-a", const std::string& cls = "local-path") {
  json pvc = {
      {"apiVersion", "v1"},
      {"kind", "PersistentVolumeClaim"},
      {"metadata",
       {{"name", "data"},
        {"namespace", "web"},
        {"uid", "1111-2222"},
        {"resourceVersion", "42"},
        {"annotations",
         {{"volume.kubernetes.io/selected-node", node},
          {"volume.kubernetes.io/storage-provisioner", "skiff.io/local-path"}}}}},
      {"spec",
       {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "1Gi"}}}}}}},
      {"status", {{"phase", "Pending"}}}};
  if (!cls.empty()) pvc["spec"]["storageClassName"] = cls;
  return pvc;
}

bool is_dir(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool exists(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0;
}
void write_file(const std::string& p, const std::string& s) { std::ofstream(p) << s; }

}  // namespace

TEST_CASE("claim_wants_volume: only claims placed on this node for our provisioner") {
  CHECK(claim_wants_volume(claim(), "node-a"));
  CHECK_FALSE(claim_wants_volume(claim(), "node-b"));
  json beta = claim();
  beta["metadata"]["annotations"].erase("volume.kubernetes.io/storage-provisioner");
  CHECK_FALSE(claim_wants_volume(beta, "node-a"));
  beta["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-provisioner"] =
      "skiff.io/local-path";
  CHECK(claim_wants_volume(beta, "node-a"));
  json other = claim();
  other["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"] = "ebs.csi.aws.com";
  CHECK_FALSE(claim_wants_volume(other, "node-a"));
  json bound = claim();
  bound["spec"]["volumeName"] = "pv1";
  CHECK_FALSE(claim_wants_volume(bound, "node-a"));
  json deleting = claim();
  deleting["metadata"]["deletionTimestamp"] = "2026-12-06T08:00:00Z";
  CHECK_FALSE(claim_wants_volume(deleting, "node-a"));
  json unannotated = claim();
  unannotated["metadata"].erase("annotations");
  CHECK_FALSE(claim_wants_volume(unannotated, "node-a"));
  CHECK_FALSE(claim_wants_volume(json("garbage"), "node-a"));
}

TEST_CASE("build_volume writes the PV of the contract") {
  ProvisionerOptions opts{"node-a", "/var/lib/skiff/storage"};
  json sc = local_path_class("Retain");
  auto pv = build_volume(claim(), &sc, opts);
  REQUIRE(pv.is_ok());
  const json& v = *pv;
  CHECK(v["apiVersion"] == "v1");
  CHECK(v["kind"] == "PersistentVolume");
  CHECK(v["metadata"]["name"] == "pvc-1111-2222");
  CHECK(v["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "skiff.io/local-path");
  CHECK_FALSE(v["metadata"].contains("labels"));
  const json& s = v["spec"];
  CHECK(s["capacity"]["storage"] == "1Gi");
  CHECK(s["accessModes"] == json::array({"ReadWriteOnce"}));
  CHECK(s["persistentVolumeReclaimPolicy"] == "Retain");
  CHECK(s["storageClassName"] == "local-path");
  CHECK(s["volumeMode"] == "Filesystem");
  CHECK(s["hostPath"]["path"] == "/var/lib/skiff/storage/pvc-1111-2222");
  CHECK(s["hostPath"]["type"] == "DirectoryOrCreate");
  const json& me = s["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0];
  CHECK(me["key"] == "kubernetes.io/hostname");
  CHECK(me["operator"] == "In");
  CHECK(me["values"] == json::array({"node-a"}));
  const json& ref = s["claimRef"];
  CHECK(ref["kind"] == "PersistentVolumeClaim");
  CHECK(ref["apiVersion"] == "v1");
  CHECK(ref["namespace"] == "web");
  CHECK(ref["name"] == "data");
  CHECK(ref["uid"] == "1111-2222");
  CHECK(ref["resourceVersion"] == "42");

  SECTION("reclaim policy defaults to Delete") {
    json plain = local_path_class();
    CHECK((*build_volume(claim(), &plain, opts))["spec"]["persistentVolumeReclaimPolicy"] ==
          "Delete");
    CHECK((*build_volume(claim("node-a", ""), nullptr,
                         opts))["spec"]["persistentVolumeReclaimPolicy"] == "Delete");
  }
  SECTION("claims that cannot be provisioned here") {
    json block = claim();
    block["spec"]["volumeMode"] = "Block";
    auto r = build_volume(block, &sc, opts);
    REQUIRE_FALSE(r.is_ok());
    CHECK_THAT(r.status().message(), Catch::Contains("volumeMode \"Block\" is not supported"));
    json noreq = claim();
    noreq["spec"].erase("resources");
    CHECK_THAT(build_volume(noreq, &sc, opts).status().message(),
               Catch::Contains("no spec.resources.requests.storage"));
    json nouid = claim();
    nouid["metadata"]["uid"] = "../x";
    CHECK_FALSE(build_volume(nouid, &sc, opts).is_ok());
    json foreign = local_path_class();
    foreign["provisioner"] = "kubernetes.io/no-provisioner";
    CHECK_THAT(build_volume(claim(), &foreign, opts).status().message(),
               Catch::Contains("unknown provisioner \"kubernetes.io/no-provisioner\""));
  }
}

TEST_CASE("sync_claim provisions a directory and a PV, once") {
  TempDir tmp;
  const std::string root = tmp.path + "/storage";
  FakeStorage api;
  api.classes["local-path"] = local_path_class();
  Provisioner p({"node-a", root}, &api);

  REQUIRE(p.sync_claim(claim()).is_ok());
  const std::string dir = root + "/pvc-1111-2222";
  REQUIRE(is_dir(dir));
  struct stat st;
  REQUIRE(stat(dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0777);
  REQUIRE(api.volumes.count("pvc-1111-2222") == 1);
  CHECK(api.volumes["pvc-1111-2222"]["spec"]["hostPath"]["path"] == dir);
  REQUIRE(api.has_event("ProvisioningSucceeded"));
  for (const auto& e : api.events)
    if (e.reason == "ProvisioningSucceeded") {
      CHECK(e.kind == "PersistentVolumeClaim");
      CHECK(e.name == "data");
      CHECK_FALSE(e.warning);
      CHECK(e.message == "Successfully provisioned volume pvc-1111-2222");
    }

  SECTION("a second sync (restart, repeated event) does nothing") {
    api.events.clear();
    REQUIRE(p.sync_claim(claim()).is_ok());
    CHECK(api.creates == 1);
    CHECK(api.events.empty());
  }
  SECTION("claims of other nodes or already bound are left alone") {
    json other = claim("node-b");
    other["metadata"]["uid"] = "3333";
    REQUIRE(p.sync_claim(other).is_ok());
    CHECK_FALSE(exists(root + "/pvc-3333"));
    CHECK(api.creates == 1);
  }
}

TEST_CASE("sync_claim is restart-safe: directory there, PV AlreadyExists") {
  TempDir tmp;
  const std::string root = tmp.path + "/storage";
  REQUIRE(mkdir(root.c_str(), 0755) == 0);
  REQUIRE(mkdir((root + "/pvc-1111-2222").c_str(), 0700) == 0);
  write_file(root + "/pvc-1111-2222/kept", "x");
  FakeStorage api;
  api.classes["local-path"] = local_path_class();
  api.create_error = Status::already_exists("persistentvolumes \"pvc-1111-2222\" already exists");
  Provisioner p({"node-a", root}, &api);
  REQUIRE(p.sync_claim(claim()).is_ok());
  CHECK(exists(root + "/pvc-1111-2222/kept"));
  struct stat st;
  REQUIRE(stat((root + "/pvc-1111-2222").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0777);
  CHECK_FALSE(api.has_event("ProvisioningFailed"));
}

TEST_CASE("sync_claim failures: event ProvisioningFailed and an error to retry") {
  TempDir tmp;
  const std::string root = tmp.path + "/storage";
  FakeStorage api;
  Provisioner p({"node-a", root}, &api);
  SECTION("storage class missing") {
    Status s = p.sync_claim(claim());
    REQUIRE_FALSE(s.is_ok());
    CHECK_THAT(s.message(),
               Catch::Contains("storageclass.storage.k8s.io \"local-path\" not found"));
    REQUIRE(api.events.size() == 1);
    CHECK(api.events[0].reason == "ProvisioningFailed");
    CHECK(api.events[0].warning);
    CHECK_THAT(api.events[0].message,
               Catch::StartsWith("failed to provision volume with StorageClass \"local-path\": "));
    CHECK(api.creates == 0);
  }
  SECTION("API create fails") {
    api.classes["local-path"] = local_path_class();
    api.create_error = Status::unavailable("apiserver down");
    Status s = p.sync_claim(claim());
    REQUIRE_FALSE(s.is_ok());
    CHECK(api.has_event("ProvisioningFailed"));
    CHECK_FALSE(api.has_event("ProvisioningSucceeded"));
  }
  SECTION("a symlink where the directory should be") {
    api.classes["local-path"] = local_path_class();
    REQUIRE(mkdir(root.c_str(), 0755) == 0);
    REQUIRE(symlink(tmp.path.c_str(), (root + "/pvc-1111-2222").c_str()) == 0);
    Status s = p.sync_claim(claim());
    REQUIRE_FALSE(s.is_ok());
    CHECK_THAT(s.message(), Catch::Contains("not a directory"));
    CHECK(api.creates == 0);
  }
  SECTION("a PV of that name belonging to another claim") {
    api.classes["local-path"] = local_path_class();
    api.volumes["pvc-1111-2222"] = {{"metadata", {{"name", "pvc-1111-2222"}}},
                                    {"spec", {{"claimRef", {{"uid", "other"}}}}}};
    CHECK_FALSE(p.sync_claim(claim()).is_ok());
    CHECK(api.creates == 0);
  }
}

TEST_CASE("sync_volume deletes Released+Delete volumes of this node, safely") {
  TempDir tmp;
  const std::string root = tmp.path + "/storage";
  FakeStorage api;
  api.classes["local-path"] = local_path_class();
  Provisioner p({"node-a", root}, &api);
  REQUIRE(p.sync_claim(claim()).is_ok());
  const std::string dir = root + "/pvc-1111-2222";
  // The pod's data, including a symlink out of the volume that must not be followed.
  const std::string outside = tmp.path + "/outside";
  REQUIRE(mkdir(outside.c_str(), 0755) == 0);
  write_file(outside + "/precious", "keep me");
  REQUIRE(mkdir((dir + "/sub").c_str(), 0755) == 0);
  write_file(dir + "/sub/file", "data");
  REQUIRE(symlink(outside.c_str(), (dir + "/link").c_str()) == 0);
  REQUIRE(symlink(outside.c_str(), (dir + "/sub/link2").c_str()) == 0);

  json pv = api.volumes["pvc-1111-2222"];
  SECTION("Bound: kept") {
    pv["status"]["phase"] = "Bound";
    REQUIRE(p.sync_volume(pv).is_ok());
    CHECK(is_dir(dir));
    CHECK(api.deletes == 0);
  }
  SECTION("Released + Retain: kept") {
    pv["status"]["phase"] = "Released";
    pv["spec"]["persistentVolumeReclaimPolicy"] = "Retain";
    REQUIRE(p.sync_volume(pv).is_ok());
    CHECK(is_dir(dir));
    CHECK(api.deletes == 0);
  }
  SECTION("another node's volume: kept") {
    pv["status"]["phase"] = "Released";
    Provisioner other({"node-b", root}, &api);
    REQUIRE(other.sync_volume(pv).is_ok());
    CHECK(is_dir(dir));
    CHECK(api.deletes == 0);
  }
  SECTION("not provisioned by us: kept") {
    pv["status"]["phase"] = "Released";
    pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] = "someone-else";
    REQUIRE(p.sync_volume(pv).is_ok());
    CHECK(is_dir(dir));
  }
  SECTION("Released + Delete: tree removed without following symlinks, PV deleted") {
    pv["status"]["phase"] = "Released";
    REQUIRE(p.sync_volume(pv).is_ok());
    CHECK_FALSE(exists(dir));
    CHECK(is_dir(root));
    CHECK(exists(outside + "/precious"));
    CHECK(api.deletes == 1);
    CHECK(api.volumes.count("pvc-1111-2222") == 0);
    SECTION("again (PV and directory gone): OK") {
      REQUIRE(p.sync_volume(pv).is_ok());
      CHECK(exists(outside + "/precious"));
    }
  }
  SECTION("a path outside the storage root is refused") {
    pv["status"]["phase"] = "Released";
    for (std::string bad : {outside, root, root + "/../outside", root + "/pvc-1111-2222/sub",
                            std::string("relative/pvc-1111-2222")}) {
      pv["spec"]["hostPath"]["path"] = bad;
      Status s = p.sync_volume(pv);
      CHECK_FALSE(s.is_ok());
      CHECK_THAT(s.message(), Catch::Contains("refusing to delete"));
    }
    CHECK(exists(outside + "/precious"));
    CHECK(exists(dir + "/sub/file"));
    CHECK(api.deletes == 0);
    CHECK(api.has_event("VolumeFailedDelete"));
  }
  SECTION("the volume directory replaced by a symlink: only the link goes") {
    pv["status"]["phase"] = "Released";
    REQUIRE(rename(dir.c_str(), (tmp.path + "/moved").c_str()) == 0);
    REQUIRE(symlink((tmp.path + "/moved").c_str(), dir.c_str()) == 0);
    REQUIRE(p.sync_volume(pv).is_ok());
    CHECK_FALSE(exists(dir));
    CHECK(exists(tmp.path + "/moved/sub/file"));
  }
  SECTION("API delete fails: error and event, directory already gone, retried later") {
    pv["status"]["phase"] = "Released";
    api.delete_error = Status::unavailable("apiserver down");
    CHECK_FALSE(p.sync_volume(pv).is_ok());
    CHECK(api.has_event("VolumeFailedDelete"));
    api.delete_error = Status::ok();
    REQUIRE(p.sync_volume(pv).is_ok());
    CHECK(api.volumes.count("pvc-1111-2222") == 0);
  }
}

TEST_CASE("fs helpers refuse names that are not one path element") {
  TempDir tmp;
  for (std::string bad : {"", ".", "..", "a/b", "../x"}) {
    CHECK_FALSE(fs::ensure_volume_dir(tmp.path, bad).is_ok());
    CHECK_FALSE(fs::remove_volume_dir(tmp.path, bad).is_ok());
  }
  CHECK(fs::remove_volume_dir(tmp.path + "/missing-root", "pvc-x").is_ok());
}
