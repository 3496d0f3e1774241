// VolumeController on fakes: default class, retroactive default, WaitForFirstConsumer, the
// provisioning hand-off, completing a provisioner's pre-bound volume, static binding,
// Released/Failed, Lost, and both protection finalizers.
#include "controllers/volume/volume.h"

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <stop_token>
#include <thread>

namespace skiff::controllers::volume {
namespace {

// One store serves as API server and cache (no lag): writes bump resourceVersion and PUTs are
// conditional on it, as the API server's.
class FakeCluster : public Listers, public VolumeClient {
 public:
  std::map<std::string, json> pvcs, pvs, scs, pod_map;
  int writes = 0, rv = 100;

  json& put_pvc(json o) {
    o["metadata"]["resourceVersion"] = std::to_string(++rv);
    if (!o["metadata"].contains("uid")) o["metadata"]["uid"] = "uid-" + name(o);
    if (!o.contains("status")) o["status"] = {{"phase", "Pending"}};
    return pvcs[ns(o) + "/" + name(o)] = o;
  }
  json& put_pv(json o) {
    o["metadata"]["resourceVersion"] = std::to_string(++rv);
    if (!o["metadata"].contains("uid")) o["metadata"]["uid"] = "uid-" + name(o);
    if (!o.contains("status")) o["status"] = {{"phase", "Pending"}};
    return pvs[name(o)] = o;
  }
  void put_sc(json o) { scs[name(o)] = o; }
  void put_pod(json o) { pod_map[name(o)] = o; }

  std::optional<json> claim(const std::string& key) override { return find(pvcs, key); }
  std::vector<json> claims() override { return values(pvcs); }
  std::optional<json> volume(const std::string& n) override { return find(pvs, n); }
  std::vector<json> volumes() override { return values(pvs); }
  std::optional<json> storage_class(const std::string& n) override { return find(scs, n); }
  std::vector<json> storage_classes() override { return values(scs); }
  std::vector<json> pods(const std::string& n) override {
    std::vector<json> out;
    for (const auto& [k, p] : pod_map)
      if (p["metadata"]["namespace"] == n) out.push_back(p);
    return out;
  }

  Result<json> update_claim(const json& o) override {
    return write(pvcs, ns(o) + "/" + name(o), o, false);
  }
  Result<json> update_claim_status(const json& o) override {
    return write(pvcs, ns(o) + "/" + name(o), o, true);
  }
  Result<json> update_volume(const json& o) override { return write(pvs, name(o), o, false); }
  Result<json> update_volume_status(const json& o) override { return write(pvs, name(o), o, true); }
  Result<json> get_claim(const std::string& n, const std::string& nm) override {
    auto o = find(pvcs, n + "/" + nm);
    if (!o) return Status(Code::kNotFound, "persistentvolumeclaims \"" + nm + "\" not found");
    return *o;
  }
  Result<json> create_storage_class(const json& o) override {
    if (scs.count(name(o))) return Status(Code::kAlreadyExists, "exists");
    ++writes;
    scs[name(o)] = o;
    return o;
  }

 private:
  static std::string name(const json& o) { return o["metadata"]["name"]; }
  static std::string ns(const json& o) { return o["metadata"].value("namespace", ""); }
  static std::optional<json> find(const std::map<std::string, json>& m, const std::string& k) {
    auto it = m.find(k);
    if (it == m.end()) return std::nullopt;
    return it->second;
  }
  static std::vector<json> values(const std::map<std::string, json>& m) {
    std::vector<json> out;
    for (const auto& [k, v] : m) out.push_back(v);
    return out;
  }
  // Main resource writes keep the stored status; status writes keep everything else.
  Result<json> write(std::map<std::string, json>& m, const std::string& key, const json& o,
                     bool status) {
    auto it = m.find(key);
    if (it == m.end()) return Status(Code::kNotFound, key + " not found");
    if (it->second["metadata"]["resourceVersion"] != o["metadata"]["resourceVersion"])
      return Status(Code::kConflict, "the object has been modified");
    json next = it->second;
    if (status) {
      next["status"] = o.value("status", json::object());
    } else {
      next = o;
      next["status"] = it->second.value("status", json::object());
    }
    next["metadata"]["resourceVersion"] = std::to_string(++rv);
    ++writes;
    // Finalizers gone on an object being deleted: it goes away.
    if (next["metadata"].contains("deletionTimestamp") &&
        next["metadata"].value("finalizers", json::array()).empty()) {
      m.erase(it);
      return next;
    }
    return it->second = next;
  }
};

struct Event {
  std::string kind, reason, message;
  bool warning;
};
class RecordingEvents : public EventSink {
 public:
  std::vector<Event> events;
  void event(const json&, const std::string& kind, bool warning, const std::string& reason,
             const std::string& message) override {
    events.push_back({kind, reason, message, warning});
  }
  bool has(const std::string& reason) const {
    for (const auto& e : events)
      if (e.reason == reason) return true;
    return false;
  }
};

struct Fixture {
  FakeCluster c;
  RecordingEvents ev;
  VolumeController ctl{VolumeOptions{.workers = 1}};
  Fixture() { ctl.set_clients(&c, &c, &ev); }

  // Syncs every queued key until the queue is empty (bounded).
  void drain() {
    for (int i = 0; i < 200 && ctl.queue().len() > 0; ++i) {
      auto k = ctl.queue().get();
      REQUIRE(k);
      Status st = ctl.sync(*k);
      INFO(*k << ": " << st.message());
      CHECK(st.is_ok());
      ctl.queue().forget(*k);
      ctl.queue().done(*k);
    }
  }
  void sync_all() {
    ctl.enqueue_all();
    drain();
  }
  json& pvc(const std::string& n = "data") { return c.pvcs.at("default/" + n); }
  json& pv(const std::string& n) { return c.pvs.at(n); }
};

json claim(const char* name, std::optional<std::string> cls) {
  json o = {{"metadata", {{"name", name}, {"namespace", "default"}}},
            {"spec",
             {{"accessModes", {"ReadWriteOnce"}},
              {"resources", {{"requests", {{"storage", "1Gi"}}}}},
              {"volumeMode", "Filesystem"}}}};
  if (cls) o["spec"]["storageClassName"] = *cls;
  return o;
}

json volume(const char* name, const char* size, const char* cls) {
  return {{"metadata", {{"name", name}}},
          {"spec",
           {{"capacity", {{"storage", size}}},
            {"accessModes", {"ReadWriteOnce"}},
            {"persistentVolumeReclaimPolicy", "Retain"},
            {"storageClassName", cls},
            {"volumeMode", "Filesystem"},
            {"hostPath", {{"path", std::string("/srv/") + name}}}}},
          {"status", {{"phase", "Available"}}}};
}

// What the node provisioner (kubelet/localpath) creates for a claim.
json provisioned(const json& pvc, const char* node) {
  std::string uid = pvc["metadata"]["uid"];
  json pv = volume(("pvc-" + uid).c_str(), "1Gi", "local-path");
  pv["metadata"]["annotations"] = {{"pv.kubernetes.io/provisioned-by", "skiff.io/local-path"}};
  pv["spec"]["persistentVolumeReclaimPolicy"] = "Delete";
  pv["spec"]["nodeAffinity"] = {
      {"required",
       {{"nodeSelectorTerms",
         {{{"matchExpressions",
            {{{"key", "kubernetes.io/hostname"}, {"operator", "In"}, {"values", {node}}}}}}}}}}};
  pv["spec"]["claimRef"] = {{"kind", "PersistentVolumeClaim"},
                            {"apiVersion", "v1"},
                            {"namespace", "default"},
                            {"name", pvc["metadata"]["name"]},
                            {"uid", uid},
                            {"resourceVersion", pvc["metadata"]["resourceVersion"]}};
  pv["status"] = {{"phase", "Pending"}};
  return pv;
}

TEST_CASE("the default StorageClass local-path is created once, never overwritten") {
  Fixture f;
  REQUIRE(f.ctl.ensure_default_class().is_ok());
  const json& sc = f.c.scs.at("local-path");
  CHECK(sc["provisioner"] == "skiff.io/local-path");
  CHECK(sc["volumeBindingMode"] == "WaitForFirstConsumer");
  CHECK(sc["reclaimPolicy"] == "Delete");
  CHECK(sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true");
  f.c.scs["local-path"]["reclaimPolicy"] = "Retain";  // the administrator's choice
  REQUIRE(f.ctl.ensure_default_class().is_ok());
  CHECK(f.c.scs.at("local-path")["reclaimPolicy"] == "Retain");
  CHECK(f.c.writes == 1);
}

TEST_CASE("WaitForFirstConsumer: default class, wait, provisioner hand-off, bind") {
  Fixture f;
  REQUIRE(f.ctl.ensure_default_class().is_ok());
  f.c.put_pvc(claim("data", std::nullopt));
  f.sync_all();
  // Retroactive default class, protection finalizer, still pending.
  CHECK(f.pvc()["spec"]["storageClassName"] == "local-path");
  CHECK(f.pvc()["metadata"]["finalizers"] == json::array({"kubernetes.io/pvc-protection"}));
  CHECK(f.pvc()["status"]["phase"] == "Pending");
  CHECK_FALSE(f.pvc()["metadata"].contains("annotations"));
  REQUIRE(f.ev.has("WaitForFirstConsumer"));
  CHECK(f.ev.events.back().message == "waiting for first consumer to be created before binding");
  size_t n = f.ev.events.size();
  f.sync_all();
  CHECK(f.ev.events.size() == n);  // not repeated on every resync

  // The scheduler picked a node.
  f.pvc()["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] = "node-a";
  f.sync_all();
  CHECK(f.pvc()["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"] ==
        "skiff.io/local-path");
  CHECK(f.pvc()["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-provisioner"] ==
        "skiff.io/local-path");
  REQUIRE(f.ev.has("ExternalProvisioning"));
  CHECK(f.ev.events.back().message ==
        "Waiting for a volume to be created either by the external provisioner "
        "'skiff.io/local-path' or manually by the system administrator. If volume creation is "
        "delayed, please verify that the provisioner is running and correctly registered.");

  // The node provisioner creates the PV with a claimRef: both become Bound.
  json pv = f.c.put_pv(provisioned(f.pvc(), "node-a"));
  std::string pv_name = pv["metadata"]["name"];
  f.ctl.on_volume(pv);
  f.drain();
  CHECK(f.pv(pv_name)["status"]["phase"] == "Bound");
  CHECK(f.pv(pv_name)["metadata"]["finalizers"] == json::array({"kubernetes.io/pv-protection"}));
  CHECK_FALSE(
      f.pv(pv_name)["metadata"]["annotations"].contains("pv.kubernetes.io/bound-by-controller"));
  CHECK(f.pvc()["spec"]["volumeName"] == pv_name);
  CHECK(f.pvc()["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes");
  CHECK(f.pvc()["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes");
  CHECK(f.pvc()["status"]["phase"] == "Bound");
  CHECK(f.pvc()["status"]["capacity"]["storage"] == "1Gi");
  CHECK(f.pvc()["status"]["accessModes"] == json::array({"ReadWriteOnce"}));
  int writes = f.c.writes;
  f.sync_all();
  CHECK(f.c.writes == writes);  // converged: no more writes

  // A running pod keeps the claim; the deletion waits for it.
  f.c.put_pod(
      {{"metadata", {{"name", "web"}, {"namespace", "default"}}},
       {"spec",
        {{"nodeName", "node-a"},
         {"volumes", {{{"name", "d"}, {"persistentVolumeClaim", {{"claimName", "data"}}}}}}}},
       {"status", {{"phase", "Running"}}}});
  f.pvc()["metadata"]["deletionTimestamp"] = "2026-12-06T08:00:00Z";
  f.sync_all();
  REQUIRE(f.c.pvcs.count("default/data"));
  CHECK(f.pvc()["metadata"]["finalizers"] == json::array({"kubernetes.io/pvc-protection"}));
  // The pod finished: the finalizer goes, the claim is gone, the volume Released and kept for
  // the node provisioner (reclaim policy Delete, provisioned by skiff.io/local-path).
  f.c.pod_map["web"]["status"]["phase"] = "Succeeded";
  f.sync_all();
  CHECK_FALSE(f.c.pvcs.count("default/data"));
  CHECK(f.pv(pv_name)["status"]["phase"] == "Released");
  CHECK(f.pv(pv_name)["spec"]["claimRef"]["name"] == "data");
  CHECK_FALSE(f.ev.has("VolumeFailedDelete"));

  // pv-protection: deleting a Released volume drops the finalizer.
  f.pv(pv_name)["metadata"]["deletionTimestamp"] = "2026-12-06T08:01:00Z";
  f.sync_all();
  CHECK_FALSE(f.c.pvs.count(pv_name));
}

TEST_CASE("Immediate class: static binding picks the smallest fitting Available volume") {
  Fixture f;
  f.c.put_sc({{"metadata", {{"name", "manual"}}},
              {"provisioner", "kubernetes.io/no-provisioner"},
              {"volumeBindingMode", "Immediate"}});
  f.c.put_pv(volume("big", "10Gi", "manual"));
  f.c.put_pv(volume("small", "2Gi", "manual"));
  f.c.put_pv(volume("tiny", "500Mi", "manual"));
  f.c.put_pv(volume("other", "1Gi", "fast"));
  json rwx = volume("rwx", "1Gi", "manual");
  rwx["spec"]["accessModes"] = {"ReadWriteMany"};
  f.c.put_pv(rwx);
  f.c.put_pvc(claim("data", "manual"));
  f.sync_all();
  CHECK(f.pvc()["spec"]["volumeName"] == "small");
  CHECK(f.pvc()["status"]["phase"] == "Bound");
  CHECK(f.pvc()["status"]["capacity"]["storage"] == "2Gi");
  CHECK(f.pv("small")["status"]["phase"] == "Bound");
  CHECK(f.pv("small")["spec"]["claimRef"]["uid"] == "uid-data");
  CHECK(f.pv("small")["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes");
  for (const char* n : {"big", "tiny", "other", "rwx"}) {
    INFO(n);
    CHECK(f.pv(n)["status"]["phase"] == "Available");
    CHECK_FALSE(f.pv(n)["spec"].contains("claimRef"));
  }

  // The claim is deleted: Retain keeps the volume Released with its claimRef.
  f.c.pvcs.erase("default/data");
  f.sync_all();
  CHECK(f.pv("small")["status"]["phase"] == "Released");
  CHECK(f.pv("small")["spec"]["claimRef"]["name"] == "data");
  // A new claim of the same name does not get the released volume.
  f.c.put_pvc(claim("data", "manual"));
  f.c.pvcs["default/data"]["metadata"]["uid"] = "uid-data-2";
  f.sync_all();
  CHECK(f.pvc()["spec"]["volumeName"] == "big");
  CHECK(f.pv("small")["status"]["phase"] == "Released");
}

TEST_CASE("claims and volumes pre-bound by name, missing classes, Delete without a plugin") {
  Fixture f;
  // spec.volumeName set by the user: that volume, even for a WaitForFirstConsumer class.
  REQUIRE(f.ctl.ensure_default_class().is_ok());
  f.c.put_pv(volume("mine", "5Gi", "local-path"));
  json c = claim("data", "local-path");
  c["spec"]["volumeName"] = "mine";
  f.c.put_pvc(c);
  f.sync_all();
  CHECK(f.pvc()["status"]["phase"] == "Bound");
  CHECK(f.pv("mine")["status"]["phase"] == "Bound");
  CHECK(f.pv("mine")["spec"]["claimRef"]["name"] == "data");
  CHECK_FALSE(f.pvc()["metadata"]["annotations"].contains("pv.kubernetes.io/bound-by-controller"));

  // The volume disappears under a bound claim: Lost.
  f.c.pvs.erase("mine");
  f.sync_all();
  CHECK(f.pvc()["status"]["phase"] == "Lost");
  CHECK(f.ev.has("ClaimLost"));

  // A class-less claim bound by name to a class-less volume keeps no class.
  f.c.put_pv(volume("plain-pv", "1Gi", ""));
  json named = claim("named", std::nullopt);
  named["spec"]["volumeName"] = "plain-pv";
  f.c.put_pvc(named);
  f.sync_all();
  CHECK(f.pvc("named")["status"]["phase"] == "Bound");
  CHECK_FALSE(f.pvc("named")["spec"].contains("storageClassName"));

  // A class that does not exist; no class at all.
  f.c.put_pvc(claim("ghost", "nope"));
  f.c.put_pvc(claim("plain", ""));
  f.sync_all();
  CHECK(f.pvc("ghost")["status"]["phase"] == "Pending");
  CHECK(f.ev.has("ProvisioningFailed"));
  CHECK(f.ev.has("FailedBinding"));

  // A hand-made volume with reclaim policy Delete whose claim went away: Failed (no plugin).
  json pv = volume("manual-del", "1Gi", "");
  pv["spec"]["persistentVolumeReclaimPolicy"] = "Delete";
  pv["spec"]["claimRef"] = {{"namespace", "default"}, {"name", "gone"}, {"uid", "uid-gone"}};
  f.c.put_pv(pv);
  f.sync_all();
  CHECK(f.pv("manual-del")["status"]["phase"] == "Failed");
  CHECK(f.ev.has("VolumeFailedDelete"));
  // A Bound volume being deleted keeps its finalizer.
  f.c.put_pvc(claim("keep", ""));
  json kept = volume("kept", "1Gi", "");
  f.c.put_pv(kept);
  f.c.pvcs["default/keep"]["spec"]["volumeName"] = "kept";
  f.sync_all();
  REQUIRE(f.pv("kept")["status"]["phase"] == "Bound");
  f.pv("kept")["metadata"]["deletionTimestamp"] = "2026-12-06T08:01:00Z";
  f.sync_all();
  REQUIRE(f.c.pvs.count("kept"));
  CHECK(f.pv("kept")["metadata"]["finalizers"] == json::array({"kubernetes.io/pv-protection"}));
}

TEST_CASE("handlers queue the related keys") {
  Fixture f;
  json pvc = claim("data", "x");
  pvc["spec"]["volumeName"] = "v1";
  f.ctl.on_claim(pvc);
  json pv = volume("v2", "1Gi", "x");
  pv["spec"]["claimRef"] = {{"namespace", "ns2"}, {"name", "c2"}};
  f.ctl.on_volume(pv);
  std::set<std::string> keys;
  while (f.ctl.queue().len() > 0) {
    auto k = f.ctl.queue().get();
    keys.insert(*k);
    f.ctl.queue().done(*k);
  }
  CHECK(keys == std::set<std::string>{"pvc:default/data", "pv:v1", "pv:v2", "pvc:ns2/c2"});
  CHECK(f.ctl.sync("bogus").is_ok());
}

}  // namespace
}  // namespace skiff::controllers::volume

namespace skiff::controllers::volume {
namespace {

TEST_CASE("run() creates the default class, then returns once stopped") {
  Fixture f;
  // A stop requested before and one during the run: both must end it (a hang fails the test
  // by its CTest timeout).
  for (int i = 0; i < 2; ++i) {
    VolumeController ctl{VolumeOptions{.workers = 2, .resync = std::chrono::milliseconds(1)}};
    ctl.set_clients(&f.c, &f.c, &f.ev);
    std::stop_source src;
    if (i == 0) src.request_stop();
    std::thread runner([&] { ctl.run(src.get_token()); });
    if (i == 1) {
      // Let the workers and the 1 ms resync loop spin a while (the fake is not thread-safe,
      // so it is only read after the join).
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      src.request_stop();
    }
    runner.join();
  }
  CHECK(f.c.scs.count("local-path") == 1);
}

}  // namespace
}  // namespace skiff::controllers::volume
