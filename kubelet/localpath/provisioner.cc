#include "kubelet/localpath/provisioner.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

namespace skiff::localpath {
namespace {

std::string quote(const std::string& s) { return "\"" + s + "\""; }

// obj[a][b]... as a string, "" when any step is missing or not a string.
std::string str_at(const json& obj, std::initializer_list<const char*> path) {
  const json* cur = &obj;
  for (const char* p : path) {
    if (!cur->is_object()) return "";
    auto it = cur->find(p);
    if (it == cur->end()) return "";
    cur = &*it;
  }
  return cur->is_string() ? cur->get<std::string>() : "";
}

std::string annotation(const json& obj, const char* key) {
  return str_at(obj, {"metadata", "annotations", key});
}

bool is_path_element(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

// True when the PV's required node affinity is exactly the single-node term this provisioner
// writes, naming `node`.
bool affinity_names_node(const json& pv, const std::string& node) {
  auto spec = pv.find("spec");
  if (spec == pv.end() || !spec->is_object()) return false;
  auto na = spec->find("nodeAffinity");
  if (na == spec->end() || !na->is_object()) return false;
  auto req = na->find("required");
  if (req == na->end() || !req->is_object()) return false;
  auto terms = req->find("nodeSelectorTerms");
  if (terms == req->end() || !terms->is_array()) return false;
  for (const auto& term : *terms) {
    if (!term.is_object() || !term.contains("matchExpressions")) continue;
    for (const auto& e : term["matchExpressions"]) {
      if (!e.is_object() || e.value("key", "") != kLabelHostname || e.value("operator", "") != "In")
        continue;
      if (auto v = e.find("values"); v != e.end() && v->is_array())
        for (const auto& x : *v)
          if (x.is_string() && x.get<std::string>() == node) return true;
    }
  }
  return false;
}

std::string normal(const std::string& p) {
  std::string s = std::filesystem::path(p).lexically_normal().string();
  while (s.size() > 1 && s.ends_with("/")) s.pop_back();
  return s;
}

// The one path element below `root` that `path` names, or "" when `path` is not exactly
// <root>/<element> (so a PV pointing anywhere else is never touched).
std::string element_below(const std::string& root, const std::string& path) {
  if (!path.starts_with("/")) return "";
  std::string r = normal(root), p = normal(path);
  if (!p.starts_with(r + "/")) return "";
  std::string rest = p.substr(r.size() + 1);
  return is_path_element(rest) ? rest : "";
}

Status remove_contents(int dirfd, dev_t dev, const std::string& where, int depth) {
  if (depth > 256) return Status::invalid("remove " + where + ": directory tree too deep");
  DIR* d = fdopendir(dirfd);  // owns dirfd from here
  if (!d) {
    Status s = Status::io("read directory " + where);
    close(dirfd);
    return s;
  }
  Status result;
  while (true) {
    errno = 0;
    struct dirent* e = readdir(d);
    if (!e) {
      if (errno != 0) result = Status::io("read directory " + where);
      break;
    }
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string path = where + "/" + name;
    struct stat st;
    if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      result = Status::io("stat " + path);
      break;
    }
    if (S_ISDIR(st.st_mode)) {
      // Another filesystem below the volume is a mount someone left in place: emptying it
      // would destroy data that is not the volume's.
      if (st.st_dev != dev) {
        result = Status::io("remove " + path + ": a mount point", EBUSY);
        break;
      }
      int fd = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        if (errno == ENOENT) continue;
        result = Status::io("open " + path);
        break;
      }
      result = remove_contents(fd, dev, path, depth + 1);
      if (!result) break;
      if (unlinkat(dirfd, e->d_name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
        result = Status::io("remove directory " + path);
        break;
      }
    } else if (unlinkat(dirfd, e->d_name, 0) != 0 && errno != ENOENT) {
      result = Status::io("remove " + path);
      break;
    }
  }
  closedir(d);
  return result;
}

Status fail(StorageApi* api, const json& pvc, const std::string& class_name, const Status& s) {
  api->event(
      pvc, true, "ProvisioningFailed",
      "failed to provision volume with StorageClass " + quote(class_name) + ": " + s.message());
  return s;
}

}  // namespace

namespace fs {

Status ensure_volume_dir(const std::string& root, const std::string& name) {
  if (!is_path_element(name))
    return Status::invalid("volume directory name " + quote(name) + " is not one path element");
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) return Status::io("create storage root " + root, ec.value());
  int rfd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rfd < 0) return Status::io("open storage root " + root);
  const std::string path = root + "/" + name;
  Status result;
  if (mkdirat(rfd, name.c_str(), 0777) != 0 && errno != EEXIST) {
    result = Status::io("create volume directory " + path);
  } else {
    // A restart may find the directory made already; it must be a real directory (a symlink
    // would make the PV point at whatever it names).
    int fd = openat(rfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      result = Status::io("open volume directory " + path +
                          (errno == ELOOP || errno == ENOTDIR ? " (not a directory)" : ""));
    } else {
      // Any container user must be able to write it (as rancher's local-path-provisioner);
      // the umask would have taken bits off mkdir's mode.
      if (fchmod(fd, 0777) != 0) result = Status::io("chmod 0777 " + path);
      close(fd);
    }
  }
  close(rfd);
  return result;
}

Status remove_volume_dir(const std::string& root, const std::string& name) {
  if (!is_path_element(name))
    return Status::invalid("volume directory name " + quote(name) + " is not one path element");
  int rfd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rfd < 0) {
    if (errno == ENOENT) return Status::ok();
    return Status::io("open storage root " + root);
  }
  const std::string path = root + "/" + name;
  Status result;
  struct stat st;
  if (fstatat(rfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno != ENOENT) result = Status::io("stat " + path);
  } else if (!S_ISDIR(st.st_mode)) {
    // A symlink or file in place of the volume: remove the entry itself, never its target.
    if (unlinkat(rfd, name.c_str(), 0) != 0 && errno != ENOENT)
      result = Status::io("remove " + path);
  } else {
    struct stat rst;
    if (fstat(rfd, &rst) != 0) {
      result = Status::io("stat storage root " + root);
    } else if (rst.st_dev != st.st_dev) {
      result = Status::io("remove " + path + ": a mount point", EBUSY);
    } else {
      int fd = openat(rfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        if (errno != ENOENT) result = Status::io("open " + path);
      } else {
        result = remove_contents(fd, st.st_dev, path, 0);
        if (result && unlinkat(rfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
          result = Status::io("remove directory " + path);
      }
    }
  }
  close(rfd);
  return result;
}

}  // namespace fs

bool claim_wants_volume(const json& pvc, const std::string& node) {
  if (!pvc.is_object()) return false;
  if (annotation(pvc, kAnnSelectedNode) != node || node.empty()) return false;
  std::string prov = annotation(pvc, kAnnStorageProvisioner);
  if (prov.empty()) prov = annotation(pvc, kAnnBetaStorageProvisioner);
  if (prov != kProvisionerName) return false;
  if (!str_at(pvc, {"spec", "volumeName"}).empty()) return false;
  if (!str_at(pvc, {"metadata", "deletionTimestamp"}).empty()) return false;
  return true;
}

bool volume_needs_delete(const json& pv, const std::string& node) {
  if (!pv.is_object()) return false;
  if (annotation(pv, kAnnProvisionedBy) != kProvisionerName) return false;
  if (!affinity_names_node(pv, node)) return false;
  if (str_at(pv, {"status", "phase"}) != "Released") return false;
  std::string policy = str_at(pv, {"spec", "persistentVolumeReclaimPolicy"});
  return policy == "Delete";
}

std::string volume_name_for(const json& pvc) { return "pvc-" + str_at(pvc, {"metadata", "uid"}); }

Result<json> build_volume(const json& pvc, const json* storage_class,
                          const ProvisionerOptions& opts) {
  const std::string uid = str_at(pvc, {"metadata", "uid"});
  const std::string ns = str_at(pvc, {"metadata", "namespace"});
  const std::string name = str_at(pvc, {"metadata", "name"});
  if (uid.empty() || !is_path_element(uid))
    return Status::invalid("claim " + ns + "/" + name + " has no usable metadata.uid");
  const json spec = pvc.value("spec", json::object());
  if (spec.value("volumeMode", "Filesystem") != "Filesystem")
    return Status::invalid("volumeMode " + quote(spec.value("volumeMode", "")) +
                           " is not supported by " + kProvisionerName + " (only Filesystem)");
  json request;
  if (auto r = spec.find("resources"); r != spec.end() && r->is_object())
    if (auto q = r->find("requests"); q != r->end() && q->is_object())
      if (auto s = q->find("storage"); s != q->end()) request = *s;
  if (request.is_null())
    return Status::invalid("claim " + ns + "/" + name + " has no spec.resources.requests.storage");
  std::string policy = "Delete";
  std::string class_name = spec.value("storageClassName", "");
  if (storage_class) {
    std::string prov = storage_class->value("provisioner", "");
    if (prov != kProvisionerName)
      return Status::invalid("unknown provisioner " + quote(prov) +
                             " requested in claim's StorageClass");
    policy = storage_class->value("reclaimPolicy", "Delete");
    if (policy.empty()) policy = "Delete";
  }
  json access = spec.value("accessModes", json::array());
  if (!access.is_array() || access.empty()) access = json::array({"ReadWriteOnce"});

  const std::string pv_name = "pvc-" + uid;
  json pv = {
      {"apiVersion", "v1"},
      {"kind", "PersistentVolume"},
      {"metadata", {{"name", pv_name}, {"annotations", {{kAnnProvisionedBy, kProvisionerName}}}}},
      {"spec",
       {{"capacity", {{"storage", request}}},
        {"accessModes", access},
        {"persistentVolumeReclaimPolicy", policy},
        {"volumeMode", "Filesystem"},
        {"hostPath", {{"path", opts.storage_root + "/" + pv_name}, {"type", "DirectoryOrCreate"}}},
        {"nodeAffinity",
         {{"required",
           {{"nodeSelectorTerms",
             json::array({{{"matchExpressions",
                            json::array({{{"key", kLabelHostname},
                                          {"operator", "In"},
                                          {"values", json::array({opts.node_name})}}})}}})}}}}},
        {"claimRef",
         {{"kind", "PersistentVolumeClaim"},
          {"apiVersion", "v1"},
          {"namespace", ns},
          {"name", name},
          {"uid", uid},
          {"resourceVersion", str_at(pvc, {"metadata", "resourceVersion"})}}}}}};
  if (!class_name.empty()) pv["spec"]["storageClassName"] = class_name;
  return pv;
}

Provisioner::Provisioner(ProvisionerOptions opts, StorageApi* api)
    : opts_(std::move(opts)), api_(api) {
  // The PV records an absolute path; a relative --data-dir is taken from our working directory.
  std::error_code ec;
  auto abs = std::filesystem::absolute(opts_.storage_root, ec);
  opts_.storage_root = normal(ec ? opts_.storage_root : abs.string());
}

Status Provisioner::sync_claim(const json& pvc) {
  if (!claim_wants_volume(pvc, opts_.node_name)) return Status::ok();
  const std::string ns = str_at(pvc, {"metadata", "namespace"});
  const std::string name = str_at(pvc, {"metadata", "name"});
  const std::string pv_name = volume_name_for(pvc);
  const std::string class_name = str_at(pvc, {"spec", "storageClassName"});
  // Provisioned before (a restart, or the PV controller has not bound it yet): nothing to do.
  if (auto existing = api_->volume(pv_name)) {
    if (str_at(*existing, {"spec", "claimRef", "uid"}) == str_at(pvc, {"metadata", "uid"}))
      return Status::ok();
    return fail(api_, pvc, class_name,
                Status::conflict("persistentvolume " + quote(pv_name) +
                                 " exists and belongs to another claim"));
  }
  std::optional<json> sc;
  if (!class_name.empty()) {
    auto r = api_->storage_class(class_name);
    if (!r) {
      if (r.status().code() == Code::kNotFound)
        return fail(
            api_, pvc, class_name,
            Status::not_found("storageclass.storage.k8s.io " + quote(class_name) + " not found"));
      return fail(api_, pvc, class_name, r.status().with_context("get StorageClass"));
    }
    sc = std::move(*r);
  }
  auto pv = build_volume(pvc, sc ? &*sc : nullptr, opts_);
  if (!pv) return fail(api_, pvc, class_name, pv.status());
  api_->event(pvc, false, "Provisioning",
              "External provisioner is provisioning volume for claim \"" + ns + "/" + name + "\"");
  if (Status s = fs::ensure_volume_dir(opts_.storage_root, pv_name); !s)
    return fail(api_, pvc, class_name, s);
  Status s = api_->create_volume(*pv);
  if (s.code() == Code::kAlreadyExists) return Status::ok();  // a previous attempt made it
  if (!s) return fail(api_, pvc, class_name, s.with_context("create persistentvolume " + pv_name));
  spdlog::info("local-path: provisioned {} for claim {}/{} at {}", pv_name, ns, name,
               opts_.storage_root + "/" + pv_name);
  api_->event(pvc, false, "ProvisioningSucceeded", "Successfully provisioned volume " + pv_name);
  return Status::ok();
}

Status Provisioner::sync_volume(const json& pv) {
  if (!volume_needs_delete(pv, opts_.node_name)) return Status::ok();
  const std::string name = str_at(pv, {"metadata", "name"});
  // Already being deleted (a protection finalizer holds it): the directory went first.
  if (!str_at(pv, {"metadata", "deletionTimestamp"}).empty()) return Status::ok();
  std::string path = str_at(pv, {"spec", "hostPath", "path"});
  if (path.empty()) path = str_at(pv, {"spec", "local", "path"});
  const std::string element = element_below(opts_.storage_root, path);
  if (element.empty()) {
    Status s = Status::invalid("persistentvolume " + quote(name) + " path " + quote(path) +
                               " is not a directory directly below the storage root " +
                               opts_.storage_root + "; refusing to delete it");
    api_->event(pv, true, "VolumeFailedDelete", s.message());
    return s;
  }
  if (Status s = fs::remove_volume_dir(opts_.storage_root, element); !s) {
    api_->event(pv, true, "VolumeFailedDelete", s.message());
    return s;
  }
  Status s = api_->delete_volume(name, str_at(pv, {"metadata", "uid"}));
  if (s.code() == Code::kNotFound) return Status::ok();
  if (!s) {
    api_->event(pv, true, "VolumeFailedDelete", "delete persistentvolume: " + s.message());
    return s;
  }
  spdlog::info("local-path: deleted {} and its directory {}", name, path);
  return Status::ok();
}

}  // namespace skiff::localpath
