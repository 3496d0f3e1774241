// core/v1 PersistentVolume, PersistentVolumeClaim and storage.k8s.io/v1 StorageClass: codec,
// defaulting, validation (Kubernetes' paths and messages), update rules and Table rows.
#include "proto/storage.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "proto/registry.h"

namespace skiff::proto {
namespace {

const Clock::time_point kNow = *parse_rfc3339("2024-01-01T00:05:00Z");

json fixture(const std::string& name) {
  auto path = std::filesystem::path(__FILE__).parent_path() / "testdata" / (name + ".json");
  std::ifstream in(path);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

const ResourceType& type(const char* name) {
  const ResourceType* t = Registry::builtin().resolve(name);
  REQUIRE(t != nullptr);
  return *t;
}

std::string describe(const FieldErrors& errs) {
  std::string s;
  for (const auto& e : errs) s += e.field + ": " + e.message() + "\n";
  return s;
}

json defaulted(const char* plural, const json& in) {
  FieldErrors errs;
  json out = type(plural).normalize(in, errs, DecodeOptions{});
  INFO(describe(errs));
  REQUIRE(errs.empty());
  type(plural).apply_defaults(out);
  return out;
}

std::string errors_of(const char* plural, const json& obj, const json* old = nullptr) {
  json d = defaulted(plural, obj);
  if (old) {
    json o = defaulted(plural, *old);
    return describe(type(plural).validate(d, &o));
  }
  return describe(type(plural).validate(d, nullptr));
}

template <class T>
void check_round_trip(const char* plural, const char* file) {
  const ResourceType& t = type(plural);
  json in = fixture(file);
  FieldErrors errs;
  json out = t.normalize(in, errs, DecodeOptions{});
  INFO(describe(errs));
  CHECK(errs.empty());
  INFO(json::diff(in, out).dump(1));
  CHECK(out == in);
  T typed = decode<T>(in, errs);
  CHECK(encode(typed) == in);
  json d = out;
  t.apply_defaults(d);
  CHECK(d == in);  // the fixtures are fully defaulted
  FieldErrors verrs = t.validate(d, nullptr);
  INFO(describe(verrs));
  CHECK(verrs.empty());
}

json pv_with(const char* patch) {
  json pv = json::parse(R"({"metadata":{"name":"pv1"},"spec":{"capacity":{"storage":"5Gi"},
      "accessModes":["ReadWriteOnce"],"hostPath":{"path":"/srv/pv1"}}})");
  pv.merge_patch(json::parse(patch));
  return pv;
}

json pvc_with(const char* patch) {
  json pvc = json::parse(R"({"metadata":{"name":"data","namespace":"default"},"spec":{
      "accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}})");
  pvc.merge_patch(json::parse(patch));
  return pvc;
}

TEST_CASE("storage fixtures round-trip, are defaulted and valid") {
  check_round_trip<PersistentVolume>("persistentvolumes", "persistentvolume");
  check_round_trip<PersistentVolumeClaim>("persistentvolumeclaims", "persistentvolumeclaim");
  check_round_trip<StorageClass>("storageclasses", "storageclass");
  CHECK(type("pv").namespaced == false);
  CHECK(type("pvc").namespaced == true);
  CHECK(type("sc").namespaced == false);
  CHECK(type("pv").reset_status_on_create);
  CHECK(type("pvc").reset_status_on_create);
}

TEST_CASE("storage defaults as Kubernetes") {
  json pv = defaulted("pv", pv_with("{}"));
  CHECK(pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain");
  CHECK(pv["spec"]["volumeMode"] == "Filesystem");
  CHECK(pv["spec"]["hostPath"]["type"] == "");
  CHECK(pv["status"]["phase"] == "Pending");
  // The provisioner's explicit Delete is kept.
  CHECK(defaulted("pv", pv_with(R"({"spec":{"persistentVolumeReclaimPolicy":"Delete"}})"))
            ["spec"]["persistentVolumeReclaimPolicy"] == "Delete");

  json pvc = defaulted("pvc", pvc_with("{}"));
  CHECK(pvc["spec"]["volumeMode"] == "Filesystem");
  CHECK(pvc["status"]["phase"] == "Pending");
  CHECK_FALSE(pvc["spec"].contains("storageClassName"));  // nil: the default class decides

  json sc = defaulted("sc", json::parse(R"({"metadata":{"name":"fast"},"provisioner":"x.io/y"})"));
  CHECK(sc["reclaimPolicy"] == "Delete");
  CHECK(sc["volumeBindingMode"] == "Immediate");
  CHECK_FALSE(sc.contains("allowVolumeExpansion"));
}

TEST_CASE("PersistentVolume validation") {
  CHECK(errors_of("pv", pv_with("{}")) == "");
  CHECK(errors_of("pv", pv_with(R"({"spec":{"accessModes":null}})")) ==
        "spec.accessModes: Required value\n");
  CHECK(errors_of("pv", pv_with(R"({"spec":{"accessModes":["ReadWriteSometimes"]}})")) ==
        "spec.accessModes: Unsupported value: \"ReadWriteSometimes\": supported values: "
        "\"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"\n");
  CHECK(errors_of("pv",
                  pv_with(R"({"spec":{"accessModes":["ReadWriteOncePod","ReadWriteOnce"]}})")) ==
        "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes\n");
  CHECK(errors_of("pv", pv_with(R"({"spec":{"capacity":null}})")) ==
        "spec.capacity: Required value\n"
        "spec.capacity: Unsupported value: map[]: supported values: \"storage\"\n");
  CHECK(errors_of("pv", pv_with(R"({"spec":{"capacity":{"storage":"0"}}})")) ==
        "spec.capacity[storage]: Invalid value: \"0\": must be greater than zero\n");
  CHECK(errors_of("pv", pv_with(R"({"spec":{"hostPath":null}})")) ==
        "spec: Required value: must specify a volume type\n");
  CHECK(errors_of("pv", pv_with(R"({"spec":{"local":{"path":"/mnt/a"}}})")) ==
        "spec.local: Forbidden: may not specify more than 1 volume type\n");
  CHECK(errors_of("pv", pv_with(R"({"spec":{"hostPath":null,"local":{"path":"/mnt/a"}}})")) ==
        "spec.nodeAffinity: Required value: Local volume requires node affinity\n");
  CHECK(errors_of("pv", pv_with(R"({"spec":{"hostPath":{"path":"/a/../b"}}})")) ==
        "spec.hostPath.path: Invalid value: \"/a/../b\": must not contain '..'\n");
  CHECK(errors_of("pv", pv_with(R"({"spec":{"persistentVolumeReclaimPolicy":"Keep"}})")) ==
        "spec.persistentVolumeReclaimPolicy: Unsupported value: \"Keep\": supported values: "
        "\"Delete\", \"Recycle\", \"Retain\"\n");
  CHECK(errors_of("pv", pv_with(R"({"spec":{"volumeMode":"Raw"}})")) ==
        "spec.volumeMode: Unsupported value: \"Raw\": supported values: \"Block\", "
        "\"Filesystem\"\n");
  CHECK(errors_of("pv", pv_with(R"({"spec":{"nodeAffinity":{}}})")) ==
        "spec.nodeAffinity.required: Required value: must specify required node constraints\n");
  CHECK(errors_of("pv", pv_with(R"({"spec":{"nodeAffinity":{"required":{"nodeSelectorTerms":[
        {"matchExpressions":[{"key":"kubernetes.io/hostname","operator":"In"}]}]}}}})")) ==
        "spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values: Required "
        "value: must be specified when `operator` is 'In' or 'NotIn'\n");
  CHECK(errors_of("pv", pv_with(R"({"spec":{"storageClassName":"Fast_Disk"}})"))
            .find("spec.storageClassName: Invalid value: \"Fast_Disk\"") == 0);

  // Updates: the source and volumeMode are fixed; claimRef and the class may change.
  json old = pv_with("{}");
  CHECK(errors_of("pv", pv_with(R"({"spec":{"claimRef":{"namespace":"default","name":"x"}}})"),
                  &old) == "");
  CHECK(errors_of("pv", pv_with(R"({"spec":{"hostPath":{"path":"/srv/other"}}})"), &old) ==
        "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after "
        "creation\n");
  CHECK(errors_of("pv", pv_with(R"({"spec":{"volumeMode":"Block"}})"), &old) ==
        "volumeMode: Invalid value: \"Block\": field is immutable\n");
}

TEST_CASE("PersistentVolumeClaim validation and update rules") {
  CHECK(errors_of("pvc", pvc_with("{}")) == "");
  CHECK(errors_of("pvc", pvc_with(R"({"spec":{"accessModes":null}})")) ==
        "spec.accessModes: Required value: at least 1 access mode is required\n");
  CHECK(errors_of("pvc", pvc_with(R"({"spec":{"resources":null}})")) ==
        "spec.resources[storage]: Required value\n");
  CHECK(errors_of("pvc", pvc_with(R"({"spec":{"resources":{"requests":{"storage":"0"}}}})")) ==
        "spec.resources[storage]: Invalid value: \"0\": must be greater than zero\n");
  CHECK(errors_of("pvc", pvc_with(R"({"spec":{"selector":{"matchLabels":{"a b":"c"}}}})"))
            .find("spec.selector.matchLabels") == 0);

  json old = pvc_with("{}");
  // The binder sets volumeName once; the retroactive default sets a nil class once.
  CHECK(errors_of("pvc", pvc_with(R"({"spec":{"volumeName":"pv1"}})"), &old) == "");
  CHECK(errors_of("pvc", pvc_with(R"({"spec":{"storageClassName":"local-path"}})"), &old) == "");
  json bound_old = pvc_with(R"({"spec":{"volumeName":"pv1","storageClassName":"a"}})");
  CHECK(errors_of("pvc", pvc_with(R"({"spec":{"volumeName":"pv2","storageClassName":"a"}})"),
                  &bound_old) ==
        "spec: Forbidden: spec is immutable after creation except resources.requests and "
        "volumeAttributesClassName for bound claims\n");
  CHECK(errors_of("pvc", pvc_with(R"({"spec":{"volumeName":"pv1","storageClassName":"b"}})"),
                  &bound_old) != "");
  // A bound claim may grow, never shrink; an unbound one may not change its request.
  json bound = pvc_with(R"({"spec":{"volumeName":"pv1","storageClassName":"a",
      "resources":{"requests":{"storage":"2Gi"}}},"status":{"phase":"Bound"}})");
  CHECK(errors_of("pvc", bound, &bound_old) == "");
  json shrink_old = bound;
  json shrink = pvc_with(R"({"spec":{"volumeName":"pv1","storageClassName":"a"},
      "status":{"phase":"Bound"}})");
  CHECK(errors_of("pvc", shrink, &shrink_old) ==
        "spec.resources.requests.storage: Forbidden: field can not be less than previous value\n");
  CHECK(errors_of("pvc", pvc_with(R"({"spec":{"resources":{"requests":{"storage":"3Gi"}}}})"), &old)
            .find("spec: Forbidden: spec is immutable") == 0);
  // A claim stored before volumeMode was defaulted is read with the default.
  FieldErrors ignored;
  json raw = type("pvc").normalize(pvc_with("{}"), ignored, DecodeOptions{});
  REQUIRE_FALSE(raw["spec"].contains("volumeMode"));
  json now = defaulted("pvc", pvc_with(R"({"spec":{"volumeName":"pv1"}})"));
  CHECK(describe(type("pvc").validate(now, &raw)) == "");
}

TEST_CASE("StorageClass validation and update rules") {
  json sc = json::parse(R"({"metadata":{"name":"fast"},"provisioner":"skiff.io/local-path"})");
  CHECK(errors_of("sc", sc) == "");
  CHECK(errors_of("sc", json::parse(R"({"metadata":{"name":"fast"}})")) ==
        "provisioner: Required value\n");
  CHECK(errors_of("sc", json::parse(R"({"metadata":{"name":"f"},"provisioner":"a",
        "reclaimPolicy":"Recycle","volumeBindingMode":"Later"})")) ==
        "reclaimPolicy: Unsupported value: \"Recycle\": supported values: \"Delete\", "
        "\"Retain\"\n"
        "volumeBindingMode: Unsupported value: \"Later\": supported values: \"Immediate\", "
        "\"WaitForFirstConsumer\"\n");
  json changed = sc;
  changed["provisioner"] = "other.io/x";
  changed["parameters"] = {{"type", "ssd"}};
  changed["reclaimPolicy"] = "Retain";
  changed["volumeBindingMode"] = "WaitForFirstConsumer";
  CHECK(errors_of("sc", changed, &sc) ==
        "parameters: Forbidden: updates to parameters are forbidden.\n"
        "provisioner: Forbidden: updates to provisioner are forbidden.\n"
        "reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.\n"
        "volumeBindingMode: Invalid value: \"WaitForFirstConsumer\": field is immutable\n");
  json annotated = sc;
  annotated["metadata"]["annotations"] = {{kAnnDefaultClass, "true"}};
  CHECK(errors_of("sc", annotated, &sc) == "");
}

std::vector<std::string> column_names(const ResourceType& t) {
  std::vector<std::string> out;
  for (const auto& c : t.columns) out.push_back(c.name + (c.priority ? "*" : ""));
  return out;
}

TEST_CASE("storage Table columns and rows as kubectl 1.32") {
  using V = std::vector<std::string>;
  CHECK(column_names(type("pv")) == V{"Name", "Capacity", "Access Modes", "Reclaim Policy",
                                      "Status", "Claim", "StorageClass", "VolumeAttributesClass",
                                      "Reason", "Age", "VolumeMode*"});
  CHECK(column_names(type("pvc")) == V{"Name", "Status", "Volume", "Capacity", "Access Modes",
                                       "StorageClass", "VolumeAttributesClass", "Age",
                                       "VolumeMode*"});
  CHECK(column_names(type("sc")) == V{"Name", "Provisioner", "ReclaimPolicy", "VolumeBindingMode",
                                      "AllowVolumeExpansion", "Age"});
  CHECK(type("pv").row_cells(fixture("persistentvolume"), kNow) ==
        json::array({"pvc-0b7c4f0e-3c59-4d2a-9f4e-6b1f2f8f9a11", "1Gi", "RWO", "Delete", "Bound",
                     "default/data-web-0", "local-path", "<unset>", "", "5m", "Filesystem"}));
  CHECK(type("pvc").row_cells(fixture("persistentvolumeclaim"), kNow) ==
        json::array({"data-web-0", "Bound", "pvc-0b7c4f0e-3c59-4d2a-9f4e-6b1f2f8f9a11", "1Gi",
                     "RWO", "local-path", "<unset>", "5m", "Filesystem"}));
  CHECK(type("sc").row_cells(fixture("storageclass"), kNow) ==
        json::array({"local-path (default)", "skiff.io/local-path", "Delete",
                     "WaitForFirstConsumer", false, "5m"}));
  // An unbound claim shows neither capacity nor modes; a deleted one is Terminating.
  json pending = defaulted("pvc", pvc_with(R"({"metadata":{"deletionTimestamp":
      "2024-01-01T00:04:00Z","creationTimestamp":"2024-01-01T00:00:00Z"}})"));
  CHECK(type("pvc").row_cells(pending, kNow) ==
        json::array({"data", "Terminating", "", "", "", "", "<unset>", "5m", "Filesystem"}));
  CHECK(access_modes_string({"ReadWriteOncePod", "ReadWriteMany", "ReadWriteOnce", "ReadOnlyMany",
                             "ReadWriteOnce"}) == "RWO,ROX,RWX,RWOP");
  CHECK(type("pv").field_value(fixture("persistentvolume"), "spec.storageClassName") ==
        std::nullopt);
}

}  // namespace
}  // namespace skiff::proto
