#include "kubelet/volumes/volumes.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>

#include "kubelet/volumes/atomic_writer.h"
#include "kubelet/volumes/fsutil.h"

namespace skiff::volumes {
namespace {

constexpr const char* kEmptyDir = "empty-dir";
constexpr const char* kConfigMap = "configmap";
constexpr const char* kSecret = "secret";

std::string quote(const std::string& s) { return "\"" + s + "\""; }

// A name used as one path element: pod UIDs and volume names come from the API.
Status check_element(const std::string& what, const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos)
    return Status::invalid(what + " " + quote(name) + " cannot be used as a directory name");
  return Status::ok();
}

// Creates a volume directory: its parents (the pod's directory and below) 0750, only the volume
// itself with `mode`, so no world-writable directory sits between the host and it.
Status ensure_volume_dir(const std::string& dir, unsigned mode) {
  SKIFF_RETURN_IF_ERROR(fs::make_dirs(dir.substr(0, dir.rfind('/')), 0750));
  return fs::make_dirs(dir, mode);
}

// Mounts a tmpfs on `dir` unless one is there already (setup is idempotent). nosuid/nodev: a pod's
// scratch space needs neither, and both close escalation paths.
Status ensure_tmpfs(const std::string& dir, const std::string& data) {
  if (fs::is_mount_point(dir)) return Status::ok();
  if (mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
            data.empty() ? nullptr : data.c_str()) != 0)
    return Status::io("mount tmpfs on " + dir + (data.empty() ? "" : " (" + data + ")"));
  return Status::ok();
}

Result<PreparedVolume> setup_empty_dir(const std::string& dir,
                                       const proto::EmptyDirVolumeSource& src) {
  if (!src.medium.empty() && src.medium != "Memory")
    return Status::invalid("emptyDir medium " + quote(src.medium) +
                           " is not supported (use \"\" or \"Memory\")");
  SKIFF_RETURN_IF_ERROR(ensure_volume_dir(dir, 0777));
  if (src.medium == "Memory") {
    std::string data;
    if (src.size_limit && src.size_limit->value() > 0)
      data = "size=" + std::to_string(src.size_limit->value());
    SKIFF_RETURN_IF_ERROR(ensure_tmpfs(dir, data));
  } else if (chmod(dir.c_str(), 0777) != 0) {
    // Kubernetes makes emptyDir world-writable so any container user can use it.
    return Status::io("chmod " + dir);
  }
  return PreparedVolume{dir, false};
}

// hostPath type checks (pkg/volume/hostpath/host_path.go): "" checks nothing, *OrCreate creates,
// the rest require the kind of file named.
Result<PreparedVolume> setup_host_path(const proto::HostPathVolumeSource& src) {
  const std::string& path = src.path;
  if (!path.starts_with("/"))
    return Status::invalid("hostPath " + quote(path) + ": must be absolute");
  std::string type = src.type.value_or("");
  struct stat st;
  bool exists = stat(path.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) return Status::io("hostPath " + path + ": stat");
  auto fail = [&](const std::string& why) {
    return Status::invalid("hostPath " + path + ": " + why);
  };
  if (type.empty()) {
    // Unchecked: whatever is (or is not) there gets bind-mounted.
  } else if (type == "DirectoryOrCreate") {
    if (!exists) {
      SKIFF_RETURN_IF_ERROR(fs::make_dirs(path, 0755));
    } else if (!S_ISDIR(st.st_mode)) {
      return fail("not a directory");
    }
  } else if (type == "Directory") {
    if (!exists) return fail("directory does not exist");
    if (!S_ISDIR(st.st_mode)) return fail("not a directory");
  } else if (type == "FileOrCreate") {
    if (!exists) {
      // As Kubernetes: the parent directory is not created.
      int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) return Status::io("hostPath " + path + ": create file");
      close(fd);
    } else if (!S_ISREG(st.st_mode)) {
      return fail("not a file");
    }
  } else if (type == "File") {
    if (!exists) return fail("file does not exist");
    if (!S_ISREG(st.st_mode)) return fail("not a file");
  } else if (type == "Socket") {
    if (!exists) return fail("socket does not exist");
    if (!S_ISSOCK(st.st_mode)) return fail("not a socket file");
  } else if (type == "CharDevice") {
    if (!exists) return fail("character device does not exist");
    if (!S_ISCHR(st.st_mode)) return fail("not a character device");
  } else if (type == "BlockDevice") {
    if (!exists) return fail("block device does not exist");
    if (!S_ISBLK(st.st_mode)) return fail("not a block device");
  } else {
    return fail("unknown hostPath type " + quote(type));
  }
  return PreparedVolume{path, false};
}

// A persistentVolumeClaim volume: the host directory of the bound PersistentVolume (resolved by
// the caller), checked (and created for DirectoryOrCreate) as a hostPath of the PV's type.
Result<PreparedVolume> setup_claim(const proto::PersistentVolumeClaimVolumeSource& src,
                                   const Sources& sources, const std::string& ns) {
  if (!sources.persistent_volume_claim)
    return Status::unavailable("no source for persistentVolumeClaim volumes");
  if (src.claim_name.empty()) return Status::invalid("persistentVolumeClaim.claimName is empty");
  auto claim = sources.persistent_volume_claim(ns, src.claim_name);
  if (!claim) return claim.status();
  proto::HostPathVolumeSource host;
  host.path = claim->path;
  if (!claim->type.empty()) host.type = claim->type;
  auto r = setup_host_path(host);
  if (!r) return r.status().with_context("persistentvolume " + quote(claim->volume_name));
  r->read_only = src.read_only;
  return r;
}

// Builds the files of a configMap/secret volume (MakePayload in Kubernetes' configmap and secret
// plugins): every key, or only `items` (key -> path, per-item mode).
Result<Payload> make_payload(const std::string& kind,
                             const std::map<std::string, std::string>& data,
                             const std::vector<proto::KeyToPath>& items, int32_t default_mode,
                             bool optional) {
  Payload payload;
  if (items.empty()) {
    for (const auto& [key, value] : data) {
      SKIFF_RETURN_IF_ERROR(validate_payload_path(key).with_context(kind + " key " + quote(key)));
      payload[key] = FileProjection{value, static_cast<uint32_t>(default_mode)};
    }
    return payload;
  }
  for (const auto& item : items) {
    auto it = data.find(item.key);
    if (it == data.end()) {
      if (optional) continue;
      return Status::invalid(kind + " references non-existent " +
                             (kind == "configmap" ? "config" : "secret") + " key: " + item.key);
    }
    SKIFF_RETURN_IF_ERROR(validate_payload_path(item.path).with_context("item " + quote(item.key)));
    payload[item.path] =
        FileProjection{it->second, static_cast<uint32_t>(item.mode.value_or(default_mode))};
  }
  return payload;
}

using Fetch = std::function<Result<std::map<std::string, std::string>>(const std::string&,
                                                                       const std::string&)>;

Result<PreparedVolume> setup_projection(const std::string& kind, const std::string& dir, bool tmpfs,
                                        const Fetch& fetch, const std::string& ns,
                                        const std::string& name,
                                        const std::vector<proto::KeyToPath>& items,
                                        std::optional<int32_t> default_mode,
                                        std::optional<bool> optional_flag) {
  if (!fetch) return Status::unavailable("no source for " + kind + " volumes");
  bool optional = optional_flag.value_or(false);
  auto data = fetch(ns, name);
  std::map<std::string, std::string> contents;
  if (data) {
    contents = std::move(*data);
  } else if (data.status().code() == Code::kNotFound) {
    // An optional volume whose object is missing is mounted empty (Kubernetes does the same).
    if (!optional) return Status::not_found(kind + " " + quote(name) + " not found");
  } else {
    return data.status().with_context("get " + kind + " " + ns + "/" + name);
  }
  auto payload = make_payload(kind, contents, items, default_mode.value_or(0644), optional);
  if (!payload) return payload.status();

  SKIFF_RETURN_IF_ERROR(ensure_volume_dir(dir, 0777));
  if (tmpfs) SKIFF_RETURN_IF_ERROR(ensure_tmpfs(dir, ""));
  auto written = atomic_write(dir, *payload);
  if (!written) return written.status();
  // Kubernetes mounts these read-only whatever the volumeMount says (ReadOnlyAPIDataVolumes).
  return PreparedVolume{dir, true};
}

// $(VAR) expansion of subPathExpr from the container's literal env values; unknown references stay
// as written, "$$" is a literal "$" (Kubernetes' expansion rules).
std::string expand(const std::string& in, const proto::Container& c) {
  std::map<std::string, std::string> env;
  for (const auto& e : c.env)
    if (!e.value_from) env[e.name] = e.value;
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '$' && i + 1 < in.size()) {
      if (in[i + 1] == '$') {
        out += '$';
        ++i;
        continue;
      }
      if (in[i + 1] == '(') {
        size_t close = in.find(')', i + 2);
        if (close != std::string::npos) {
          std::string var = in.substr(i + 2, close - i - 2);
          auto it = env.find(var);
          out += it != env.end() ? it->second : in.substr(i, close - i + 1);
          i = close;
          continue;
        }
      }
    }
    out += in[i];
  }
  return out;
}

Status check_sub_path(const std::string& sub) {
  if (sub.starts_with("/"))
    return Status::invalid("subPath " + quote(sub) + ": must be a relative path");
  size_t start = 0;
  while (start <= sub.size()) {
    size_t end = sub.find('/', start);
    if (end == std::string::npos) end = sub.size();
    if (sub.compare(start, end - start, "..") == 0 && end - start == 2)
      return Status::invalid("subPath " + quote(sub) + ": must not contain '..'");
    start = end + 1;
  }
  return Status::ok();
}

}  // namespace

VolumeManager::VolumeManager(std::string pods_dir) : pods_dir_(std::move(pods_dir)) {}

Result<std::map<std::string, PreparedVolume>> VolumeManager::setup(const proto::Pod& pod,
                                                                   const Sources& sources) {
  const std::string& uid = pod.metadata.uid;
  SKIFF_RETURN_IF_ERROR(check_element("pod uid", uid));
  const std::string base = pods_dir_ + "/" + uid + "/volumes";
  std::map<std::string, PreparedVolume> out;
  for (const auto& v : pod.spec.volumes) {
    SKIFF_RETURN_IF_ERROR(check_element("volume name", v.name));
    Result<PreparedVolume> r = Status::internal("unset");
    if (v.empty_dir) {
      r = setup_empty_dir(base + "/" + kEmptyDir + "/" + v.name, *v.empty_dir);
    } else if (v.host_path) {
      r = setup_host_path(*v.host_path);
    } else if (v.config_map) {
      const auto& s = *v.config_map;
      r = setup_projection(kConfigMap, base + "/" + kConfigMap + "/" + v.name, false,
                           sources.config_map, pod.metadata.namespace_, s.name, s.items,
                           s.default_mode, s.optional);
    } else if (v.secret) {
      const auto& s = *v.secret;
      // Secrets never touch a disk: their directory is a tmpfs.
      r = setup_projection(kSecret, base + "/" + kSecret + "/" + v.name, true, sources.secret,
                           pod.metadata.namespace_, s.secret_name, s.items, s.default_mode,
                           s.optional);
    } else if (v.persistent_volume_claim) {
      r = setup_claim(*v.persistent_volume_claim, sources, pod.metadata.namespace_);
    } else if (!v.projected.is_null()) {
      r = Status::invalid("projected volumes are not supported yet");
    } else if (!v.downward_api.is_null()) {
      r = Status::invalid("downwardAPI volumes are not supported yet");
    } else {
      r = Status::invalid("unsupported or missing volume source");
    }
    if (!r) return r.status().with_context("volume " + quote(v.name));
    out[v.name] = std::move(*r);
  }
  return out;
}

Result<std::vector<runtime::Mount>> VolumeManager::container_mounts(
    const proto::Container& container, const std::map<std::string, PreparedVolume>& volumes) {
  std::vector<runtime::Mount> out;
  for (size_t index = 0; index < container.volume_mounts.size(); ++index) {
    const auto& vm = container.volume_mounts[index];
    auto ctx = "container " + quote(container.name) + " volumeMount " + quote(vm.name);
    auto it = volumes.find(vm.name);
    if (it == volumes.end()) return Status::invalid(ctx + ": no volume of that name in the pod");
    if (!vm.mount_path.starts_with("/"))
      return Status::invalid(ctx + ": mountPath " + quote(vm.mount_path) + " must be absolute");
    std::string source = it->second.host_path;
    std::string sub = !vm.sub_path_expr.empty() ? expand(vm.sub_path_expr, container) : vm.sub_path;
    if (!sub.empty()) {
      SKIFF_RETURN_IF_ERROR(check_sub_path(sub).with_context(ctx));
      // The subpath gets the volume root's mode, as Kubernetes' SafeMakeDir does.
      struct stat st;
      if (stat(source.c_str(), &st) != 0) return Status::io(ctx + ": stat " + source);
      // Symlinks inside the volume are the pod's to set: resolve them as if the volume were the
      // root, so none can point the bind mount at a host path outside it.
      auto resolved = fs::resolve_in_root(source, sub, st.st_mode & 07777);
      if (!resolved) return resolved.status().with_context(ctx + " subPath " + quote(sub));
      // The path is checked now but mounted later by the shim; another container of the pod
      // could swap a directory on it for a symlink in between. So, as Kubernetes does, pin it:
      // bind-mount it, reached without following symlinks, at a place the pod cannot write
      // (<pods-dir>/<uid>/volume-subpaths/<volume>/<container>/<index>), and mount that.
      // Volumes outside the pod's directory (hostPath) keep the checked path.
      const std::string pods_prefix = pods_dir_ + "/";
      if (it->second.host_path.starts_with(pods_prefix)) {
        std::string uid = it->second.host_path.substr(pods_prefix.size());
        uid = uid.substr(0, uid.find('/'));
        std::string pin = pods_dir_ + "/" + uid + "/volume-subpaths/" + vm.name + "/" +
                          container.name + "/" + std::to_string(index);
        Status st = fs::pin_path(source, *resolved, pin);
        if (st.is_ok()) {
          *resolved = pin;
        } else if (st.os_errno() != EPERM) {  // EPERM: not root (unit tests): path as checked
          return st.with_context(ctx + " subPath " + quote(sub));
        }
      }
      source = *resolved;
    }
    runtime::Mount m;
    m.destination = vm.mount_path;
    m.type = "bind";
    m.source = source;
    m.options = {(vm.read_only || it->second.read_only) ? "ro" : "rw"};
    out.push_back(std::move(m));
  }
  return out;
}

Status VolumeManager::teardown(const std::string& pod_uid) {
  SKIFF_RETURN_IF_ERROR(check_element("pod uid", pod_uid));
  const std::string dir = pods_dir_ + "/" + pod_uid;
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::ok();
    return Status::io("stat " + dir);
  }
  // MNT_DETACH: a container that still holds the mount (being killed) must not block us; the kernel
  // frees the tmpfs when the last user goes.
  for (const auto& mp : fs::mounts_below(dir)) {
    if (umount2(mp.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
      return Status::io("unmount " + mp);
  }
  // remove_tree never follows symlinks (a hostPath is never below this directory, and a symlink a
  // pod left in an emptyDir is removed, not its target) and refuses to cross into a mount.
  return fs::remove_tree(dir);
}

std::vector<std::string> VolumeManager::list() const {
  std::vector<std::string> out;
  DIR* d = opendir(pods_dir_.c_str());
  if (!d) return out;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
      out.push_back(name);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace skiff::volumes
