#include "kubelet/kubelet.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "common/base64.h"
#include "common/files.h"
#include "kubelet/container_config.h"
#include "proto/configmap.h"
#include "proto/lease.h"
#include "proto/namespace.h"
#include "proto/node.h"
#include "proto/pod.h"
#include "proto/secret.h"
#include "proto/storage.h"
#include "proto/time.h"

namespace fs = std::filesystem;

namespace skiff::kubelet {

using SteadyClock = std::chrono::steady_clock;
using SysClock = std::chrono::system_clock;

namespace {

double ms_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
}

std::string new_container_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string id(64, '0');
  for (int i = 0; i < 64; i += 16) {
    uint64_t v = rng();
    for (int j = 0; j < 16; ++j) id[i + j] = hex[(v >> (j * 4)) & 0xf];
  }
  return id;
}

std::string pod_cgroup(const std::string& uid) { return "pod" + uid; }

// How many times in a row a pod waiting for its claims to be bound is retried every second
// before the usual volume back-off (10 s doubling to 20 s) takes over.
constexpr int kMaxQuickClaimRetries = 30;

// persistentVolumeClaim volumes: claim -> bound PersistentVolume -> its host directory, read
// from the API server on every pod sync (a claim bound later is picked up by the sync's retry).
// Errors are the FailedMount messages; all but a broken PV are retried.
Result<volumes::ClaimVolume> resolve_claim(client::ApiClient& api, const std::string& ns,
                                           const std::string& claim) {
  static const proto::ResourceType pvc_t = proto::persistentvolumeclaim_resource();
  static const proto::ResourceType pv_t = proto::persistentvolume_resource();
  const std::string q = "\"" + claim + "\"";
  auto pvc = api.get(pvc_t, ns, claim);
  if (!pvc) {
    if (pvc.status().code() == Code::kNotFound)
      return Status::not_found("persistentvolumeclaim " + q + " not found");
    return pvc.status().with_context("get persistentvolumeclaim " + ns + "/" + claim);
  }
  const json meta = pvc->value("metadata", json::object());
  if (meta.contains("deletionTimestamp") && !meta["deletionTimestamp"].is_null())
    return Status::unavailable("persistentvolumeclaim " + q + " is being deleted");
  const json spec = pvc->value("spec", json::object());
  const json status = pvc->value("status", json::object());
  std::string volume = spec.value("volumeName", "");
  if (status.value("phase", "") != "Bound" || volume.empty())
    return Status::unavailable("persistentvolumeclaim " + q + " not bound");
  auto pv = api.get(pv_t, "", volume);
  if (!pv) {
    if (pv.status().code() == Code::kNotFound)
      return Status::not_found("persistentvolume \"" + volume + "\" not found (bound to claim " +
                               ns + "/" + claim + ")");
    return pv.status().with_context("get persistentvolume " + volume);
  }
  const json pv_spec = pv->value("spec", json::object());
  // The PV must point back at this claim: a PV re-bound to another claim is not this pod's data.
  const json ref = pv_spec.value("claimRef", json::object());
  if (ref.value("uid", "") != meta.value("uid", "") || ref.value("name", "") != claim ||
      ref.value("namespace", "") != ns)
    return Status::unavailable("persistentvolume \"" + volume +
                               "\" is not bound to persistentvolumeclaim " + ns + "/" + claim);
  volumes::ClaimVolume out;
  out.volume_name = volume;
  if (auto hp = pv_spec.find("hostPath"); hp != pv_spec.end() && hp->is_object()) {
    out.path = hp->value("path", "");
    out.type = hp->value("type", "");
  } else if (auto lp = pv_spec.find("local"); lp != pv_spec.end() && lp->is_object()) {
    out.path = lp->value("path", "");
    out.type = "Directory";  // a local volume must already exist (Kubernetes' local plugin)
  } else {
    return Status::invalid("persistentvolume \"" + volume +
                           "\": only hostPath and local volumes can be mounted by skiff");
  }
  if (out.path.empty())
    return Status::invalid("persistentvolume \"" + volume + "\" has an empty path");
  return out;
}

const proto::Container* find_container(const proto::Pod& pod, const std::string& name,
                                       bool* init = nullptr) {
  for (const auto& c : pod.spec.containers)
    if (c.name == name) {
      if (init) *init = false;
      return &c;
    }
  for (const auto& c : pod.spec.init_containers)
    if (c.name == name) {
      if (init) *init = true;
      return &c;
    }
  return nullptr;
}

bool rv_newer(const json& a, const json& b) {
  // resourceVersions are store revisions (decimal); compare numerically when both are.
  auto rv = [](const json& o) -> long long {
    auto it = o.find("metadata");
    if (it == o.end() || !it->contains("resourceVersion")) return -1;
    try {
      return std::stoll((*it)["resourceVersion"].get<std::string>());
    } catch (...) {
      return -1;
    }
  };
  return rv(a) > rv(b);
}

proto::Pod decode_pod(const json& j) {
  proto::FieldErrors errs;
  return proto::decode<proto::Pod>(j, errs);
}

// Reads a pipe until EOF or the deadline (exec probe output is discarded).
void drain(int fd, SteadyClock::time_point deadline) {
  if (fd < 0) return;
  char buf[4096];
  while (true) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) return;
    struct pollfd p = {fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r <= 0) return;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Per-pod state. Fields marked (worker) are only touched by the pod's worker (serialized by
// PodWorkers); the others are guarded by Kubelet::mu_.
struct Kubelet::Entry {
  std::string uid, ns, name;
  json pod;            // newest object seen (informer or our own status write)
  bool in_api = true;  // false once the informer reported the deletion
  std::set<std::string> container_ids;
  std::map<std::string, std::string> kill_requests;  // container name -> reason (probes)
  SteadyClock::time_point seen_at = SteadyClock::now();
  // (worker)
  std::string pod_ip;
  bool network_done = false;
  std::string pod_message;
  std::map<std::string, Waiting> waiting;
  std::map<std::string, SysClock::time_point> pull_failed_at;  // container name -> last failure
  std::map<std::string, SteadyClock::time_point> stopping;     // container id -> SIGKILL deadline
  std::set<std::string> probed;                                // container ids given to the prober
  std::optional<proto::Time> start_time;
  bool terminating = false;
  SteadyClock::time_point term_deadline;
  bool start_reported = false;
  int claim_waits = 0;  // volume setups in a row that failed on a claim not bound (yet)
};

struct Kubelet::StageTimes {
  double queue = 0, sandbox = 0, cni = 0, volumes = 0, rootfs = 0, start = 0, status = 0;
};

// Prometheus text; the few numbers an operator and the pod-start benchmark want.
struct Kubelet::Metrics {
  std::mutex mu;
  static constexpr std::array<double, 10> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1,
                                                      0.25,  0.5,  1,     2.5,  10};
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> counts{};
    uint64_t count = 0;
    double sum = 0;
    void observe(double seconds) {
      for (size_t i = 0; i < kBuckets.size(); ++i)
        if (seconds <= kBuckets[i]) ++counts[i];
      ++count;
      sum += seconds;
    }
  };
  Histogram sync, pod_start;
  std::map<std::string, Histogram> stages;  // pod start stages
  uint64_t syncs = 0, sync_errors = 0, container_starts = 0, restarts = 0;

  static void write(std::ostringstream& out, const std::string& name, const std::string& labels,
                    const Histogram& h) {
    std::string sep = labels.empty() ? "" : ",";
    for (size_t i = 0; i < kBuckets.size(); ++i)
      out << name << "_bucket{" << labels << sep << "le=\"" << kBuckets[i] << "\"} " << h.counts[i]
          << "\n";
    out << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << h.count << "\n";
    out << name << "_sum" << (labels.empty() ? "" : "{" + labels + "}") << " " << h.sum << "\n";
    out << name << "_count" << (labels.empty() ? "" : "{" + labels + "}") << " " << h.count << "\n";
  }
};

Kubelet::Kubelet(KubeletOptions opts, KubeletDeps deps)
    : opts_(std::move(opts)), deps_(std::move(deps)), metrics_(std::make_unique<Metrics>()) {
  machine_ = gather_machine_info(opts_.node_ip);
  if (opts_.node_name.empty()) opts_.node_name = machine_.hostname;
  auto api = deps_.api;
  auto fetch = [api](const proto::ResourceType& t, const std::string& ns, const std::string& name,
                     bool secret) -> Result<std::map<std::string, std::string>> {
    auto r = api->get(t, ns, name);
    if (!r) return r.status();
    std::map<std::string, std::string> out;
    if (auto it = r->find("data"); it != r->end() && it->is_object())
      for (auto& [k, v] : it->items()) {
        if (!v.is_string()) continue;
        if (secret) {
          auto d = base64_decode(v.get<std::string>());
          if (!d) return Status::invalid("secret \"" + name + "\" key " + k + ": bad base64");
          out[k] = *d;
        } else {
          out[k] = v.get<std::string>();
        }
      }
    if (!secret)
      if (auto it = r->find("binaryData"); it != r->end() && it->is_object())
        for (auto& [k, v] : it->items())
          if (v.is_string())
            if (auto d = base64_decode(v.get<std::string>())) out[k] = *d;
    return out;
  };
  sources_.config_map = [fetch](const std::string& ns, const std::string& name) {
    static const proto::ResourceType t = proto::configmap_resource();
    return fetch(t, ns, name, false);
  };
  sources_.secret = [fetch](const std::string& ns, const std::string& name) {
    static const proto::ResourceType t = proto::secret_resource();
    return fetch(t, ns, name, true);
  };
  sources_.persistent_volume_claim = [api](const std::string& ns, const std::string& claim) {
    return resolve_claim(*api, ns, claim);
  };
}

Kubelet::~Kubelet() { stop(); }

std::string Kubelet::local_path_root() const {
  return opts_.local_path_root.empty() ? opts_.data_dir + "/storage" : opts_.local_path_root;
}

void Kubelet::stop() {
  startup_thread_ = {};  // asks a pending wait for the pod CIDR to stop, and joins it
  if (local_path_) local_path_->stop();
  node_thread_ = {};
  relist_thread_ = {};
  if (informer_) informer_->stop();
  if (workers_) workers_->stop();
  if (events_) events_->stop();
  prober_.reset();
}

// ---------------------------------------------------------------------------------------------
// Node registration, status and lease.

namespace {
const proto::ResourceType& node_type() {
  static const proto::ResourceType t = proto::node_resource();
  return t;
}
const proto::ResourceType& pod_type() {
  static const proto::ResourceType t = proto::pod_resource();
  return t;
}
const proto::ResourceType& lease_type() {
  static const proto::ResourceType t = proto::lease_resource();
  return t;
}
const proto::ResourceType& ns_type() {
  static const proto::ResourceType t = proto::namespace_resource();
  return t;
}

std::vector<proto::ContainerImage> node_images(images::ImageStore* store) {
  std::vector<proto::ContainerImage> out;
  if (!store) return out;
  for (const auto& r : store->list()) {
    proto::ContainerImage ci;
    ci.names = r.repo_digests;
    ci.names.insert(ci.names.end(), r.repo_tags.begin(), r.repo_tags.end());
    ci.size_bytes = r.size;
    if (!ci.names.empty()) out.push_back(std::move(ci));
  }
  return out;
}
}  // namespace

Status Kubelet::register_node() {
  auto& api = *deps_.api;
  auto existing = api.get(node_type(), "", opts_.node_name);
  json node;
  if (existing) {
    node = *existing;
  } else if (existing.status().code() == Code::kNotFound) {
    proto::Node n;
    n.type_meta = {"v1", "Node"};
    n.metadata.name = opts_.node_name;
    n.metadata.labels = {{"kubernetes.io/hostname", opts_.node_name},
                         {"kubernetes.io/os", "linux"},
                         {"kubernetes.io/arch", "amd64"}};
    n.spec.pod_cidr = opts_.pod_cidr;
    if (!opts_.pod_cidr.empty()) n.spec.pod_cidrs = {opts_.pod_cidr};
    auto created = api.create(node_type(), "", proto::encode(n));
    if (!created && created.status().code() != Code::kAlreadyExists)
      return created.status().with_context("registering node " + opts_.node_name);
    if (created) {
      node = *created;
    } else {
      auto again = api.get(node_type(), "", opts_.node_name);
      if (!again) return again.status().with_context("registering node " + opts_.node_name);
      node = *again;
    }
    spdlog::info("registered node {}", opts_.node_name);
  } else {
    return existing.status().with_context("registering node " + opts_.node_name);
  }
  {
    std::lock_guard lock(node_mu_);
    node_ = node;
  }
  // The Lease before the Ready status, so whoever sees the node Ready also finds its Lease.
  if (auto s = renew_lease(); !s) spdlog::warn("{}", s.to_string());
  return update_node_status();
}

Status Kubelet::update_node_status() {
  json node;
  {
    std::lock_guard lock(node_mu_);
    node = node_;
  }
  auto images = node_images(deps_.images);
  for (int attempt = 0; attempt < 5; ++attempt) {
    proto::FieldErrors errs;
    auto n = proto::decode<proto::Node>(node, errs);
    n.status =
        build_node_status(machine_, opts_.max_pods, port_, images, n.status, SysClock::now());
    json obj = node;
    obj["status"] = proto::encode(n.status);
    auto r = deps_.api->update_status(node_type(), obj);
    if (r) {
      std::lock_guard lock(node_mu_);
      node_ = *r;
      return Status::ok();
    }
    if (r.status().code() != Code::kConflict && r.status().code() != Code::kNotFound)
      return r.status().with_context("updating node status");
    if (r.status().code() == Code::kNotFound) return register_node();  // deleted: register again
    auto fresh = deps_.api->get(node_type(), "", opts_.node_name);
    if (!fresh) return fresh.status().with_context("re-reading node");
    node = *fresh;
  }
  return Status::conflict("updating node status: conflicts persisted");
}

Status Kubelet::renew_lease() {
  auto& api = *deps_.api;
  const std::string ns = "kube-node-lease";
  auto now = proto::MicroTime::now();
  auto got = api.get(lease_type(), ns, opts_.node_name);
  if (got) {
    json obj = *got;
    obj["spec"]["holderIdentity"] = opts_.node_name;
    obj["spec"]["leaseDurationSeconds"] = 40;
    obj["spec"]["renewTime"] = now.to_string();
    auto r = api.update(lease_type(), obj);
    return r ? Status::ok() : r.status().with_context("renewing lease");
  }
  if (got.status().code() != Code::kNotFound) return got.status().with_context("reading lease");
  json ns_obj = {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}};
  auto nr = api.create(ns_type(), "", ns_obj);
  if (!nr && nr.status().code() != Code::kAlreadyExists)
    return nr.status().with_context("creating namespace " + ns);
  proto::Lease l;
  l.type_meta = {"coordination.k8s.io/v1", "Lease"};
  l.metadata.name = opts_.node_name;
  l.metadata.namespace_ = ns;
  {
    std::lock_guard lock(node_mu_);
    if (node_.contains("metadata") && node_["metadata"].contains("uid"))
      l.metadata.owner_references.push_back(
          {"v1", "Node", opts_.node_name, node_["metadata"]["uid"].get<std::string>(), {}, {}});
  }
  l.spec.holder_identity = opts_.node_name;
  l.spec.lease_duration_seconds = 40;
  l.spec.renew_time = now;
  auto r = api.create(lease_type(), ns, proto::encode(l));
  if (!r && r.status().code() != Code::kAlreadyExists)
    return r.status().with_context("creating lease");
  return Status::ok();
}

void Kubelet::node_loop(std::stop_token stop) {
  auto next_status = SteadyClock::now() + opts_.node_status_period;
  while (!stop.stop_requested()) {
    if (auto s = renew_lease(); !s) spdlog::warn("{}", s.to_string());
    // Status every period, sooner when the images changed.
    for (int i = 0; i < 100 && !stop.stop_requested(); ++i) {
      if (SteadyClock::now() >= next_status || node_dirty_.exchange(false)) {
        if (auto s = update_node_status(); !s) spdlog::warn("{}", s.to_string());
        follow_pod_cidr();
        next_status = SteadyClock::now() + opts_.node_status_period;
      }
      std::this_thread::sleep_for(
          std::chrono::duration_cast<std::chrono::milliseconds>(opts_.node_status_period) / 100);
    }
  }
}

namespace {
// Marks the conflist the kubelet generates, so it knows it may rewrite it (and only it).
constexpr const char* kGeneratedKey = "skiff.io/generated-by";
constexpr const char* kGeneratedConflist = "10-skiff.conflist";

// The generated conflist's JSON, or nullopt when the file is absent, unreadable or not ours.
std::optional<json> read_generated_conflist(const std::string& conf_dir) {
  auto text = files::read_file(conf_dir + "/" + kGeneratedConflist, 1 << 20);
  if (!text) return std::nullopt;
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains(kGeneratedKey)) return std::nullopt;
  return j;
}
}  // namespace

bool Kubelet::has_foreign_cni_config() const {
  std::error_code ec;
  const bool ours = read_generated_conflist(opts_.cni_conf_dir).has_value();
  if (fs::is_directory(opts_.cni_conf_dir, ec))
    for (const auto& f : fs::directory_iterator(opts_.cni_conf_dir, ec)) {
      auto ext = f.path().extension();
      if (ext != ".conflist" && ext != ".conf" && ext != ".json") continue;
      if (ours && f.path().filename() == kGeneratedConflist) continue;
      return true;
    }
  return false;
}

std::string Kubelet::wait_for_pod_cidr(std::stop_token stop) {
  spdlog::info(
      "node {} has no spec.podCIDR and no --pod-cidr was given: waiting for "
      "skiff-controller-manager to assign one (pods start after that)",
      opts_.node_name);
  auto t0 = SteadyClock::now();
  while (!stop.stop_requested()) {
    auto got = deps_.api->get(node_type(), "", opts_.node_name);
    if (got) {
      std::string cidr;
      if (got->contains("spec") && (*got)["spec"].contains("podCIDR"))
        cidr = (*got)["spec"]["podCIDR"].get<std::string>();
      if (!cidr.empty()) {
        spdlog::info("node {} got pod CIDR {} after {:.1f} s", opts_.node_name, cidr,
                     ms_since(t0) / 1000);
        return cidr;
      }
    } else if (got.status().code() != Code::kNotFound) {
      spdlog::debug("waiting for pod CIDR: {}", got.status().to_string());
    }
    // NotFound: the Node was deleted; the status loop registers it again.
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    cv.wait_for(lock, stop, std::chrono::milliseconds(500), [] { return false; });
  }
  return "";
}

void Kubelet::ensure_cni_config(const std::string& pod_cidr) {
  if (!deps_.cni) return;
  std::lock_guard cni_lock(cni_mu_);
  cni_cidr_ = pod_cidr;
  bool have_skiff = false;
  for (const auto& d : opts_.cni_bin_dirs)
    if (::access((d + "/skiff").c_str(), X_OK) == 0) have_skiff = true;
  json conf;
  if (have_skiff) {
    // skiff's own plugin: bridge skiff0, veth, IPAM from the pod CIDR (cni/plugin/README.md).
    // 1.1.0: the plugin also does GC, which frees addresses of pods gone while the kubelet
    // was not looking (gc_network()).
    conf = {{"cniVersion", "1.1.0"},
            {"name", "skiff"},
            {kGeneratedKey, "skiff-kubelet"},
            {"plugins",
             {{{"type", "skiff"},
               {"bridge", "skiff0"},
               {"subnet", pod_cidr},
               {"mode", opts_.network_backend},
               {"dataDir", opts_.data_dir + "/cni/networks"}}}}};
  } else {
    conf = {{"cniVersion", "1.0.0"},
            {"name", "skiff"},
            {kGeneratedKey, "skiff-kubelet"},
            {"plugins",
             {{{"type", "bridge"},
               {"bridge", "skiff0"},
               {"isGateway", true},
               {"ipMasq", false},
               {"hairpinMode", true},
               {"ipam",
                {{"type", "host-local"},
                 {"ranges", {{{{"subnet", pod_cidr}}}}},
                 {"routes", {{{"dst", "0.0.0.0/0"}}}},
                 {"dataDir", opts_.data_dir + "/cni/networks"}}}},
              {{"type", "loopback"}}}}};
  }
  // Write when there is no config at all, or when ours is stale (another CIDR, mode or plugin);
  // a config written by someone else is never touched.
  auto existing = read_generated_conflist(opts_.cni_conf_dir);
  const bool write =
      !pod_cidr.empty() && (existing ? *existing != conf : !has_foreign_cni_config());
  if (write) {
    std::string path = opts_.cni_conf_dir + "/" + kGeneratedConflist;
    Status s = files::mkdir_p(opts_.cni_conf_dir);
    if (s) s = files::write_file_atomic(path, conf.dump(2) + "\n", 0644);
    if (!s)
      spdlog::warn("writing {}: {}", path, s.to_string());
    else
      spdlog::info("wrote {} ({}) for pod CIDR {}", path,
                   have_skiff ? "skiff plugin" : "bridge + host-local", pod_cidr);
  }
  if (auto s = deps_.cni->load(); !s)
    spdlog::warn("CNI not configured ({}): pods get only loopback and no podIP", s.to_string());
}

void Kubelet::follow_pod_cidr() {
  if (!pods_started_ || !deps_.cni) return;
  std::string cidr;
  {
    std::lock_guard lock(node_mu_);
    if (node_.contains("spec") && node_["spec"].contains("podCIDR"))
      cidr = node_["spec"]["podCIDR"].get<std::string>();
  }
  {
    std::lock_guard cni_lock(cni_mu_);
    if (cidr.empty() || cidr == cni_cidr_) return;
    spdlog::info("node {} pod CIDR changed from {} to {}: new pods get addresses from it",
                 opts_.node_name, cni_cidr_.empty() ? "<none>" : cni_cidr_, cidr);
  }
  ensure_cni_config(cidr);
}

// ---------------------------------------------------------------------------------------------
// Start-up and restart safety.

Status Kubelet::start() {
  events_ = std::make_unique<EventRecorder>(deps_.api, opts_.node_name);
  SKIFF_RETURN_IF_ERROR(register_node());
  // Provisioning needs no pod network: it starts even while the kubelet waits for the pod CIDR.
  if (opts_.local_path_provisioner) {
    localpath::ControllerOptions lo;
    lo.provisioner.node_name = opts_.node_name;
    lo.provisioner.storage_root = local_path_root();
    local_path_ = std::make_unique<localpath::LocalPathController>(deps_.api, lo);
    local_path_->start();
  }
  // The Lease and node status keep going while we may wait for the pod CIDR below, so the
  // node is not taken for dead meanwhile.
  node_thread_ = std::jthread([this](std::stop_token st) { node_loop(st); });
  std::string cidr;
  {
    std::lock_guard lock(node_mu_);
    if (node_.contains("spec") && node_["spec"].contains("podCIDR"))
      cidr = node_["spec"]["podCIDR"].get<std::string>();
  }
  if (cidr.empty()) cidr = opts_.pod_cidr;
  // Our own generated conflist may name a CIDR the Node no longer has (it was deleted and
  // registered again): wait for the Node's CIDR then too, and rewrite the conflist.
  if (cidr.empty() && deps_.cni && !has_foreign_cni_config()) {
    startup_thread_ = std::jthread([this](std::stop_token st) {
      std::string c = wait_for_pod_cidr(st);
      if (!c.empty()) start_pods(c);
    });
    return Status::ok();
  }
  start_pods(cidr);
  return Status::ok();
}

void Kubelet::start_pods(const std::string& cidr) {
  ensure_cni_config(cidr);
  pods_started_ = true;

  prober_ = std::make_unique<probes::Prober>(
      [this](const std::string& uid, const std::string& c, probes::Kind k, probes::Result r,
             const std::string& m) { on_probe(uid, c, k, r, m); });
  workers_ = std::make_unique<PodWorkers>(opts_.workers, [this](const std::string& uid) {
    auto t0 = SteadyClock::now();
    sync(uid);
    std::lock_guard lock(metrics_->mu);
    metrics_->sync.observe(ms_since(t0) / 1000);
    ++metrics_->syncs;
  });
  deps_.runtime->on_exit([this](const std::string& id) { on_container_exit(id); });

  client::InformerOptions io;
  io.field_selector = "spec.nodeName=" + opts_.node_name;
  informer_ = std::make_unique<client::Informer>(deps_.api, pod_type(), io);
  informer_->add_handlers({[this](const json& o) { on_pod(o); },
                           [this](const json&, const json& o) { on_pod(o); },
                           [this](const json& o) { on_pod_delete(o); }});
  // Entries are created by the informer's initial list; adoption needs that list complete so
  // that a container is only called an orphan when its pod is really gone.
  // What already runs, by pod uid: attached to each pod's entry when the informer first
  // reports the pod, before its first sync, so nothing is started twice.
  {
    std::lock_guard lock(mu_);
    for (const auto& s : deps_.runtime->list()) {
      auto it = s.labels.find(runtime::kLabelPodUid);
      if (it != s.labels.end()) preexisting_[it->second].push_back(s.id);
    }
  }
  informer_->start();
  if (!informer_->wait_for_sync(std::chrono::seconds(60)))
    spdlog::warn("pod informer not synced after 60s; adopting with what is known");
  adopt_and_clean();
  gc_network();

  relist_thread_ = std::jthread([this](std::stop_token st) { relist_loop(st); });
  spdlog::info("kubelet {} running: node {} ({}), port {}", kKubeletVersion, opts_.node_name,
               machine_.internal_ip, port_);
}

void Kubelet::adopt_and_clean() {
  std::map<std::string, std::vector<std::string>> by_uid;
  std::set<std::string> orphans;
  size_t adopted = 0;
  {
    std::lock_guard lock(mu_);
    by_uid.swap(preexisting_);
    adopting_ = false;
    for (auto& [uid, ids] : by_uid) {
      if (!pods_.count(uid))
        orphans.insert(uid);
      else
        adopted += ids.size();
    }
    auto known = [&](const std::string& uid) { return pods_.count(uid) > 0; };
    for (const auto& uid : deps_.sandboxes->list())
      if (!known(uid)) orphans.insert(uid);
    for (const auto& uid : deps_.volumes->list())
      if (!known(uid)) orphans.insert(uid);
    if (deps_.cgroups)
      for (const auto& name : deps_.cgroups->children(""))
        if (name.rfind("pod", 0) == 0 && !known(name.substr(3))) orphans.insert(name.substr(3));
    std::error_code ec;
    for (const auto& f : fs::directory_iterator(opts_.run_dir + "/kubelet/pods", ec)) {
      std::string uid = f.path().stem().string();
      if (!known(uid)) orphans.insert(uid);
    }
  }
  for (const auto& uid : orphans) cleanup_orphan(uid, by_uid[uid]);
  if (!by_uid.empty() || !orphans.empty())
    spdlog::info("adopted {} containers of {} pods; cleaned up {} pods gone from the API", adopted,
                 by_uid.size() - orphans.size(), orphans.size());
}

void Kubelet::cleanup_orphan(const std::string& uid, const std::vector<std::string>& ids) {
  spdlog::info("cleaning up pod {}: not in the API any more", uid);
  for (const auto& id : ids)
    if (auto s = deps_.runtime->remove(id, std::chrono::seconds(5)); !s)
      spdlog::warn("removing container {}: {}", id, s.to_string());
  if (deps_.cni && deps_.cni->ready()) {
    cni::RuntimeConf rt;
    rt.container_id = uid;
    rt.netns = deps_.sandboxes->info(uid).netns;
    if (auto s = deps_.cni->del(rt); !s) spdlog::warn("CNI DEL for pod {}: {}", uid, s.to_string());
  }
  if (auto s = deps_.volumes->teardown(uid); !s)
    spdlog::warn("volumes of pod {}: {}", uid, s.to_string());
  if (auto s = deps_.sandboxes->remove(uid); !s)
    spdlog::warn("sandbox of pod {}: {}", uid, s.to_string());
  if (deps_.cgroups)
    if (auto s = deps_.cgroups->remove(pod_cgroup(uid)); !s)
      spdlog::warn("cgroup of pod {}: {}", uid, s.to_string());
  std::error_code ec;
  fs::remove(opts_.run_dir + "/kubelet/pods/" + uid + ".json", ec);
  backoff_.reset_prefix(uid + "/");
  if (prober_) prober_->remove_pod(uid);
  std::lock_guard lock(mu_);
  for (const auto& id : ids) container_owner_.erase(id);
}

void Kubelet::relist_loop(std::stop_token stop) {
  while (!stop.stop_requested()) {
    for (int i = 0; i < 100 && !stop.stop_requested(); ++i)
      std::this_thread::sleep_for(
          std::chrono::duration_cast<std::chrono::milliseconds>(opts_.relist_period) / 100);
    if (stop.stop_requested()) return;
    // New tarballs in the import folder.
    if (deps_.images) {
      auto before = deps_.images->list().size();
      if (auto s = deps_.images->import_dir(opts_.data_dir + "/images/import"); !s)
        spdlog::warn("auto-import: {}", s.to_string());
      if (deps_.images->list().size() != before) node_dirty_ = true;
    }
    // Containers the kubelet does not know about (started by a previous instance that died
    // between start and bookkeeping) and pods whose every trace must go.
    auto states = deps_.runtime->list();
    std::map<std::string, std::vector<std::string>> orphans;
    std::vector<std::string> uids;
    {
      std::lock_guard lock(mu_);
      for (const auto& s : states) {
        auto it = s.labels.find(runtime::kLabelPodUid);
        if (it == s.labels.end()) continue;
        auto e = pods_.find(it->second);
        if (e == pods_.end()) {
          orphans[it->second].push_back(s.id);
        } else if (!e->second->container_ids.count(s.id)) {
          e->second->container_ids.insert(s.id);
          container_owner_[s.id] = it->second;
        }
      }
      for (auto& [uid, e] : pods_) uids.push_back(uid);
    }
    for (const auto& [uid, ids] : orphans) cleanup_orphan(uid, ids);
    gc_network();
    for (const auto& uid : uids) workers_->enqueue(uid);
  }
}

void Kubelet::gc_network() {
  if (!deps_.cni || !deps_.cni->ready() || !informer_ || !informer_->has_synced()) return;
  std::unique_lock gc_lock(cni_gc_mu_);
  std::vector<cni::Attachment> valid;
  {
    std::lock_guard lock(mu_);
    for (const auto& [uid, e] : pods_)
      valid.push_back(cni::Attachment{uid});  // default ifname, as ADD
  }
  if (auto s = deps_.cni->gc(valid); !s) spdlog::warn("{}", s.to_string());
}

// ---------------------------------------------------------------------------------------------
// Events in.

std::shared_ptr<Kubelet::Entry> Kubelet::entry(const std::string& uid) const {
  std::lock_guard lock(mu_);
  auto it = pods_.find(uid);
  return it == pods_.end() ? nullptr : it->second;
}

void Kubelet::on_pod(const json& obj) {
  const auto& md = obj["metadata"];
  std::string uid = md.value("uid", "");
  if (uid.empty()) return;
  bool changed = true;
  {
    std::lock_guard lock(mu_);
    auto& e = pods_[uid];
    if (!e) {
      e = std::make_shared<Entry>();
      e->uid = uid;
      e->ns = md.value("namespace", "");
      e->name = md.value("name", "");
      e->pod = obj;
      if (adopting_) {
        auto pre = preexisting_.find(uid);
        if (pre != preexisting_.end())
          for (const auto& id : pre->second) {
            e->container_ids.insert(id);
            container_owner_[id] = uid;
          }
      }
      // A pod that was already past Pending was started by an earlier kubelet: no pod-start
      // line for it.
      if (obj.contains("status") && obj["status"].value("phase", "Pending") != "Pending")
        e->start_reported = true;
    } else {
      if (rv_newer(e->pod, obj)) return;  // our own status write already holds newer
      // A status-only change (usually our own write echoed back) needs no sync.
      auto strip = [](json o) {
        o.erase("status");
        if (o.contains("metadata")) {
          o["metadata"].erase("resourceVersion");
          o["metadata"].erase("managedFields");
        }
        return o;
      };
      changed = strip(e->pod) != strip(obj);
      e->pod = obj;
    }
  }
  if (changed) workers_->enqueue(uid);
}

void Kubelet::on_pod_delete(const json& obj) {
  std::string uid = obj["metadata"].value("uid", "");
  {
    std::lock_guard lock(mu_);
    auto it = pods_.find(uid);
    if (it == pods_.end()) return;
    it->second->in_api = false;
  }
  workers_->enqueue(uid);
}

void Kubelet::on_container_exit(const std::string& id) {
  std::string uid;
  {
    std::lock_guard lock(mu_);
    auto it = container_owner_.find(id);
    if (it == container_owner_.end()) return;
    uid = it->second;
  }
  if (workers_) workers_->enqueue(uid);
}

void Kubelet::on_probe(const std::string& uid, const std::string& container, probes::Kind kind,
                       probes::Result result, const std::string& message) {
  auto e = entry(uid);
  if (!e) return;
  bool init = false;
  proto::Pod pod;
  {
    std::lock_guard lock(mu_);
    pod = decode_pod(e->pod);
  }
  (void)find_container(pod, container, &init);
  if (result == probes::Result::kFailure) {
    record(*e, container, init, true, "Unhealthy",
           std::string(probes::kind_name(kind)) + " probe failed: " + message);
    if (kind == probes::Kind::kLiveness || kind == probes::Kind::kStartup) {
      // Kill the current instance; the restart policy decides what follows.
      std::lock_guard lock(mu_);
      e->kill_requests[container] = std::string("Container ") + container + " failed " +
                                    (kind == probes::Kind::kLiveness ? "liveness" : "startup") +
                                    " probe, will be restarted";
    }
  }
  workers_->enqueue(uid);
}

void Kubelet::record(const Entry& e, const std::string& container, bool init, bool warning,
                     const std::string& reason, const std::string& message) {
  std::string fp;
  if (!container.empty())
    fp = std::string(init ? "spec.initContainers{" : "spec.containers{") + container + "}";
  events_->record({e.ns, e.name, e.uid}, fp, warning, reason, message);
}

// ---------------------------------------------------------------------------------------------
// The pod sync.

void Kubelet::sync(const std::string& uid) {
  auto e = entry(uid);
  if (!e) return;
  json obj;
  bool in_api;
  {
    std::lock_guard lock(mu_);
    obj = e->pod;
    in_api = e->in_api;
  }
  proto::Pod pod = decode_pod(obj);
  if (!in_api || pod.metadata.deletion_timestamp) {
    terminate(*e, pod, in_api);
    return;
  }
  sync_running(*e, pod);
}

// spec.hostname or the pod name, at most 63 characters (a DNS label).
static std::string pod_hostname(const proto::Pod& pod) {
  std::string h = pod.spec.hostname.empty() ? pod.metadata.name : pod.spec.hostname;
  if (h.size() > 63) h.resize(63);
  return h;
}

runtime::SandboxConfig Kubelet::sandbox_config(const proto::Pod& pod) const {
  runtime::SandboxConfig sc;
  sc.pod_uid = pod.metadata.uid;
  sc.pod_namespace = pod.metadata.namespace_;
  sc.pod_name = pod.metadata.name;
  sc.hostname = pod_hostname(pod);
  sc.subdomain = pod.spec.subdomain;
  bool cluster_first = pod.spec.dns_policy.empty() || pod.spec.dns_policy == "ClusterFirst" ||
                       pod.spec.dns_policy == "ClusterFirstWithHostNet";
  if (cluster_first && !opts_.cluster_dns.empty()) {
    sc.dns.nameservers = opts_.cluster_dns;
    const std::string& d = opts_.cluster_domain;
    sc.dns.searches = {pod.metadata.namespace_ + ".svc." + d, "svc." + d, d};
    sc.dns.options = {"ndots:5"};
  } else if (pod.spec.dns_policy != "None") {
    // Default (or ClusterFirst without a cluster DNS): the node's resolver configuration.
    std::ifstream in("/etc/resolv.conf");
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string key, v;
      ls >> key;
      if (key == "nameserver" && ls >> v) sc.dns.nameservers.push_back(v);
      if (key == "search")
        while (ls >> v) sc.dns.searches.push_back(v);
      if (key == "options")
        while (ls >> v) sc.dns.options.push_back(v);
    }
  }
  if (pod.spec.dns_config.is_object()) {  // dnsConfig adds to (or, for None, is) the config
    const auto& dc = pod.spec.dns_config;
    for (const auto& n : dc.value("nameservers", json::array())) sc.dns.nameservers.push_back(n);
    for (const auto& s : dc.value("searches", json::array())) sc.dns.searches.push_back(s);
    for (const auto& o : dc.value("options", json::array())) {
      std::string opt = o.value("name", "");
      if (o.contains("value")) opt += ":" + o["value"].get<std::string>();
      if (!opt.empty()) sc.dns.options.push_back(opt);
    }
  }
  if (pod.spec.host_aliases.is_array())
    for (const auto& ha : pod.spec.host_aliases) {
      std::vector<std::string> names;
      for (const auto& h : ha.value("hostnames", json::array())) names.push_back(h);
      sc.host_aliases.emplace_back(ha.value("ip", ""), names);
    }
  return sc;
}

void Kubelet::save_network_state(const Entry& e) {
  std::error_code ec;
  std::string dir = opts_.run_dir + "/kubelet/pods";
  fs::create_directories(dir, ec);
  json j = {{"pod_ip", e.pod_ip}, {"network_done", e.network_done}};
  std::string path = dir + "/" + e.uid + ".json";
  std::ofstream(path + ".tmp") << j.dump() << "\n";
  fs::rename(path + ".tmp", path, ec);
}

void Kubelet::load_network_state(Entry& e) {
  std::ifstream in(opts_.run_dir + "/kubelet/pods/" + e.uid + ".json");
  if (!in) return;
  try {
    json j = json::parse(in);
    e.pod_ip = j.value("pod_ip", "");
    e.network_done = j.value("network_done", false);
  } catch (...) {
  }
}

std::vector<Instance> Kubelet::observe(Entry& e) {
  std::set<std::string> ids;
  {
    std::lock_guard lock(mu_);
    ids = e.container_ids;
  }
  std::vector<Instance> out;
  for (const auto& id : ids) {
    auto s = deps_.runtime->inspect(id);
    if (!s) {
      if (s.status().code() == Code::kNotFound) {
        std::lock_guard lock(mu_);
        e.container_ids.erase(id);
        container_owner_.erase(id);
      }
      continue;
    }
    out.push_back(instance_from(*s));
  }
  return out;
}

std::string Kubelet::pod_log_dir(const std::string& ns, const std::string& name,
                                 const std::string& uid) const {
  return opts_.log_dir + "/pods/" + ns + "_" + name + "_" + uid;
}

// One past the highest <attempt>.log in a container's log dir; 0 when there is none.
static int next_attempt_from_logs(const std::string& dir) {
  int next = 0;
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(dir, ec)) {
    const std::string n = f.path().filename().string();
    if (n.size() < 5 || n.compare(n.size() - 4, 4, ".log") != 0) continue;
    const std::string digits = n.substr(0, n.size() - 4);
    if (digits.empty() || digits.size() > 6 ||
        !std::all_of(digits.begin(), digits.end(),
                     [](unsigned char ch) { return std::isdigit(ch) != 0; }))
      continue;
    next = std::max(next, std::stoi(digits) + 1);
  }
  return next;
}

void Kubelet::sync_running(Entry& e, const proto::Pod& pod) {
  // A pod the API records as finished is never run again. After a reboot, which took the
  // records of its containers with the run dir, nothing here would remember that it ran and
  // plan_pod would start it anew (a Job's completed pod, a second time).
  if ((pod.status.phase == "Succeeded" || pod.status.phase == "Failed") && observe(e).empty())
    return;
  auto sync_start = SteadyClock::now();
  StageTimes times;
  bool first = !e.start_reported;
  if (first)
    times.queue = std::chrono::duration<double, std::milli>(sync_start - e.seen_at).count();
  if (!e.start_time) {
    if (pod.status.start_time)
      e.start_time = pod.status.start_time;
    else
      e.start_time = proto::Time::now();
    load_network_state(e);
    if (e.pod_ip.empty() && !pod.status.pod_ip.empty() && e.network_done)
      e.pod_ip = pod.status.pod_ip;
  }
  auto now = SysClock::now();
  std::vector<Instance> instances;
  // What to do with the containers, spec.activeDeadlineSeconds included (a pod past it is
  // stopped and Failed, whichever step it got to).
  auto plan_now = [&] {
    PodPlan plan = plan_pod(pod, instances, backoff_, now);
    apply_active_deadline(plan, pod, instances, e.start_time, now);
    if (plan.deadline_exceeded && pod.status.reason != kDeadlineExceeded)
      record(e, "", false, false, kDeadlineExceeded, kDeadlineMessage);
    return plan;
  };
  auto fail_sandbox = [&](const std::string& reason, const std::string& msg) {
    record(e, "", false, true, reason, msg);
    for (const auto& c : pod.spec.containers) e.waiting[c.name] = {"ContainerCreating", ""};
    instances = observe(e);
    PodPlan plan = plan_now();
    write_status(e, pod, instances, plan, nullptr);
    std::string key = e.uid + "/~sandbox";
    backoff_.next(key, now);
    workers_->enqueue_after(e.uid, backoff_.current(key));
  };

  // 1. Sandbox and pod cgroup.
  auto t = SteadyClock::now();
  auto sc = sandbox_config(pod);
  auto sb = deps_.sandboxes->ensure(sc);
  if (!sb)
    return fail_sandbox("FailedCreatePodSandBox",
                        "Failed to create pod sandbox: " + sb.status().message());
  if (deps_.cgroups) {
    auto res = pod_resources(pod);
    if (opts_.pod_max_pids > 0) res.pids_limit = opts_.pod_max_pids;
    if (auto s = deps_.cgroups->ensure(pod_cgroup(e.uid), res); !s)
      return fail_sandbox("FailedCreatePodSandBox",
                          "Failed to create pod sandbox: pod cgroup: " + s.message());
  }
  times.sandbox = ms_since(t);

  // 2. Network, once per pod (the IP stays the pod's across container restarts).
  t = SteadyClock::now();
  if (!e.network_done) {
    if (deps_.cni && deps_.cni->ready()) {
      cni::RuntimeConf rt;
      rt.container_id = e.uid;
      rt.netns = sb->netns;
      rt.args = {{"IgnoreUnknown", "1"},
                 {"K8S_POD_NAMESPACE", e.ns},
                 {"K8S_POD_NAME", e.name},
                 {"K8S_POD_INFRA_CONTAINER_ID", e.uid},
                 {"K8S_POD_UID", e.uid}};
      std::shared_lock gc_lock(cni_gc_mu_);
      auto r = deps_.cni->add(rt);
      gc_lock.unlock();
      if (!r)
        return fail_sandbox("FailedCreatePodSandBox",
                            "Failed to create pod sandbox: failed to set up network for pod " +
                                e.ns + "/" + e.name + ": " + r.status().message());
      e.pod_ip = r->first_ipv4();
      e.pod_message.clear();
      if (!e.pod_ip.empty())
        if (auto s = deps_.sandboxes->write_hosts(sc, e.pod_ip); !s)
          spdlog::warn("pod {}/{}: /etc/hosts: {}", e.ns, e.name, s.to_string());
    } else {
      e.pod_message = "no CNI network is configured on node " + opts_.node_name +
                      ": the pod has only a loopback interface";
    }
    e.network_done = true;
    save_network_state(e);
  }
  times.cni = ms_since(t);

  // 3. Volumes.
  t = SteadyClock::now();
  auto vols = deps_.volumes->setup(pod, sources_);
  if (!vols) {
    record(e, "", false, true, "FailedMount",
           "MountVolume.SetUp failed: " + vols.status().message());
    instances = observe(e);
    for (const auto& c : pod.spec.containers) {
      bool has = false;
      for (const auto& i : instances) has |= i.name == c.name;
      if (!has) e.waiting[c.name] = {"ContainerCreating", ""};
    }
    PodPlan plan = plan_now();
    write_status(e, pod, instances, plan, nullptr);
    std::string key = e.uid + "/~volumes";
    backoff_.next(key, now);
    auto delay =
        std::min<std::chrono::milliseconds>(backoff_.current(key), std::chrono::seconds(20));
    // A claim of a freshly scheduled pod is usually bound within a second or two (this node's
    // provisioner and the PV controller are at work): look again every second for a while
    // instead of backing off to 10-20 s, so the pod starts as soon as its volume exists.
    bool claim_wait =
        vols.status().code() == Code::kUnavailable || vols.status().code() == Code::kNotFound;
    bool has_claim = false;
    for (const auto& v : pod.spec.volumes) has_claim |= v.persistent_volume_claim.has_value();
    if (claim_wait && has_claim && ++e.claim_waits <= kMaxQuickClaimRetries)
      delay = std::min<std::chrono::milliseconds>(delay, std::chrono::seconds(1));
    workers_->enqueue_after(e.uid, delay);
    return;
  }
  e.claim_waits = 0;
  backoff_.reset(e.uid + "/~volumes");
  backoff_.reset(e.uid + "/~sandbox");
  times.volumes = ms_since(t);

  // 4. Containers: what runs, what should.
  instances = observe(e);
  PodPlan plan = plan_now();
  int64_t grace = pod.spec.termination_grace_period_seconds.value_or(30);

  std::map<std::string, std::string> kills;
  {
    std::lock_guard lock(mu_);
    kills.swap(e.kill_requests);
  }
  Observed obs(instances);
  for (const auto& [name, reason] : kills) {
    auto it = obs.latest.find(name);
    if (it == obs.latest.end() || !it->second->running()) continue;
    const proto::Container* c = find_container(pod, name);
    int64_t g = grace;
    if (c && c->liveness_probe && c->liveness_probe->termination_grace_period_seconds)
      g = *c->liveness_probe->termination_grace_period_seconds;
    stop_container(e, pod, it->second->state.id, name, reason, g);
  }
  for (const auto& k : plan.kill) stop_container(e, pod, k.id, k.name, k.reason, grace);
  // Stops past their grace period get SIGKILL.
  std::optional<SteadyClock::time_point> next_deadline;
  for (auto it = e.stopping.begin(); it != e.stopping.end();) {
    auto s = deps_.runtime->inspect(it->first);
    if (!s || s->status == runtime::ContainerStatus::kExited) {
      it = e.stopping.erase(it);
      continue;
    }
    if (SteadyClock::now() >= it->second) {
      (void)deps_.runtime->signal(it->first, SIGKILL);
    } else if (!next_deadline || it->second < *next_deadline) {
      next_deadline = it->second;
    }
    ++it;
  }

  for (const auto& b : plan.backoff) {
    bool init = false;
    (void)find_container(pod, b.first, &init);
    record(e, b.first, init, true, "BackOff",
           "Back-off restarting failed container " + b.first + " in pod " + e.name + "_" + e.ns +
               "(" + e.uid + ")");
  }

  bool started_any = false, start_failed = false;
  for (auto& a : plan.start) {
    // The first instance the runtime knows of is not always the container's first: a reboot
    // takes the records of its instances with the run dir but leaves their logs, numbered by
    // attempt. Count on from there, as Kubernetes' restartCount does across a reboot.
    if (!a.restart && a.attempt == 0)
      a.attempt = next_attempt_from_logs(pod_log_dir(e.ns, e.name, e.uid) + "/" + a.name);
    bool ok = start_container(e, pod, a, *sb, *vols, times);
    started_any |= ok;
    start_failed |= !ok;
  }
  if (started_any) instances = observe(e);
  // A container that already ended (StartError, or a fast init container) needs another pass.
  for (const auto& a : plan.start)
    for (const auto& i : instances)
      if (i.name == a.name && i.attempt == a.attempt && i.exited()) workers_->enqueue(e.uid);

  // 5. Status.
  write_status(e, pod, instances, plan, first ? &times : nullptr);

  // 6. Keep the two newest instances of each container (lastState, logs --previous); older
  // exited ones go, with their cgroups (their log files stay).
  {
    Observed obs2(instances);
    for (const auto& i : instances) {
      if (!i.exited()) continue;
      auto l = obs2.latest.find(i.name);
      auto p = obs2.previous.find(i.name);
      if ((l != obs2.latest.end() && l->second == &i) ||
          (p != obs2.previous.end() && p->second == &i))
        continue;
      if (auto st = deps_.runtime->remove(i.state.id, std::chrono::seconds(2)); !st) {
        spdlog::warn("removing old container {}: {}", i.state.id, st.to_string());
        continue;
      }
      if (deps_.cgroups) (void)deps_.cgroups->remove(pod_cgroup(e.uid) + "/" + i.state.id);
      std::lock_guard lock(mu_);
      e.container_ids.erase(i.state.id);
      container_owner_.erase(i.state.id);
    }
  }

  // 7. When to look again.
  std::optional<SysClock::time_point> at = plan.resync_at;
  for (const auto& [name, when] : e.pull_failed_at) {
    auto until = backoff_.until(e.uid + "/~pull/" + name, when);
    if (until > now && (!at || until < *at)) at = until;
  }
  if (at)
    workers_->enqueue_after(e.uid, std::chrono::duration_cast<std::chrono::milliseconds>(
                                       *at - SysClock::now() + std::chrono::milliseconds(50)));
  if (next_deadline)
    workers_->enqueue_after(e.uid, std::chrono::duration_cast<std::chrono::milliseconds>(
                                       *next_deadline - SteadyClock::now()) +
                                       std::chrono::milliseconds(10));
  if (start_failed && !at)
    workers_->enqueue_after(e.uid, std::chrono::seconds(10));  // e.g. a configMap appears later
}

void Kubelet::stop_container(Entry& e, const proto::Pod& pod, const std::string& id,
                             const std::string& name, const std::string& reason,
                             int64_t grace_seconds) {
  if (e.stopping.count(id)) return;
  bool init = false;
  (void)find_container(pod, name, &init);
  record(e, name, init, false, "Killing", reason.empty() ? "Stopping container " + name : reason);
  if (prober_) prober_->remove_container(id);
  e.probed.erase(id);
  int sig = grace_seconds <= 0 ? SIGKILL : SIGTERM;
  if (auto s = deps_.runtime->signal(id, sig); !s)
    spdlog::warn("signalling container {}: {}", id, s.to_string());
  // The spec's int64 grace may be any size: capped where it meets the clock (100 years).
  const auto grace = proto::capped_seconds(std::max<int64_t>(grace_seconds, 0));
  e.stopping[id] = SteadyClock::now() + grace;
  workers_->enqueue_after(e.uid, grace + std::chrono::milliseconds(10));
}

Result<images::ImageRecord> Kubelet::ensure_image(Entry& e, const proto::Pod& pod,
                                                  const proto::Container& c) {
  bool init = false;
  (void)find_container(pod, c.name, &init);
  auto warn = [&](const std::string& reason, const std::string& msg) {
    e.waiting[c.name] = {reason, msg};
    return Status::unavailable(msg);
  };
  auto ref = images::normalize_reference(c.image);
  if (!ref) {
    std::string msg = "Failed to apply default image tag \"" + c.image +
                      "\": couldn't parse image name \"" + c.image +
                      "\": " + ref.status().message();
    record(e, c.name, init, true, "InspectFailed", msg);
    return warn("InvalidImageName", msg);
  }
  std::string policy = effective_pull_policy(c);
  auto existing = deps_.images->find(c.image);
  if (existing && policy != "Always") {
    record(e, c.name, init, false, "Pulled",
           "Container image \"" + c.image + "\" already present on machine");
    return *existing;
  }
  if (policy == "Never") {
    std::string msg =
        "Container image \"" + c.image + "\" is not present with pull policy of Never";
    record(e, c.name, init, true, "ErrImageNeverPull", msg);
    return warn("ErrImageNeverPull", msg);
  }
  std::string key = e.uid + "/~pull/" + c.name;
  auto now = SysClock::now();
  if (auto f = e.pull_failed_at.find(c.name);
      f != e.pull_failed_at.end() && backoff_.in_backoff(key, f->second, now)) {
    std::string msg = "Back-off pulling image \"" + c.image + "\"";
    record(e, c.name, init, false, "BackOff", msg);
    return warn("ImagePullBackOff", msg);
  }
  record(e, c.name, init, false, "Pulling", "Pulling image \"" + c.image + "\"");
  images::PullOptions po;
  po.insecure_registries = opts_.insecure_registries;
  po.ca_file = opts_.registry_ca_file;
  auto last_log = std::make_shared<SteadyClock::time_point>();
  std::string who = e.ns + "/" + e.name;
  po.progress = [last_log, who, image = c.image](const images::PullProgress& p) {
    auto n = SteadyClock::now();
    if (n - *last_log < std::chrono::seconds(1) && p.message != "done") return;
    *last_log = n;
    spdlog::info("pod {}: pulling {}: {}", who, image, p.message);
  };
  auto t0 = SteadyClock::now();
  auto r = deps_.images->pull(c.image, po);
  if (!r) {
    backoff_.next(key, now);
    e.pull_failed_at[c.name] = SysClock::now();
    std::string msg = "Failed to pull image \"" + c.image + "\": " + r.status().message();
    record(e, c.name, init, true, "Failed", msg);
    record(e, c.name, init, true, "Failed", "Error: ErrImagePull");
    return warn("ErrImagePull", msg);
  }
  backoff_.reset(key);
  e.pull_failed_at.erase(c.name);
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.3fs", ms_since(t0) / 1000);
  record(e, c.name, init, false, "Pulled",
         "Successfully pulled image \"" + c.image + "\" in " + secs +
             ". Image size: " + std::to_string(r->size) + " bytes.");
  node_dirty_ = true;
  return r;
}

bool Kubelet::start_container(Entry& e, const proto::Pod& pod, const StartAction& a,
                              const runtime::SandboxInfo& sb,
                              const std::map<std::string, volumes::PreparedVolume>& vols,
                              StageTimes& times) {
  bool init = false;
  const proto::Container* cp = find_container(pod, a.name, &init);
  if (!cp) return false;
  const proto::Container& c = *cp;
  auto t = SteadyClock::now();
  auto config_error = [&](const std::string& msg) {
    e.waiting[c.name] = {"CreateContainerConfigError", msg};
    record(e, c.name, init, true, "Failed", "Error: " + msg);
    return false;
  };

  auto img = ensure_image(e, pod, c);
  if (!img) return false;
  auto layers = deps_.images->layer_dirs(*img);
  if (!layers) return config_error("image " + c.image + ": " + layers.status().message());

  EnvContext ctx;
  ctx.node_name = opts_.node_name;
  ctx.pod_ip = e.pod_ip;
  ctx.host_ip = host_ip();
  ctx.node_cpu_millis = machine_.cpus * 1000;
  ctx.node_memory_bytes = machine_.memory_bytes;
  ctx.sources = sources_;
  auto env = container_env(pod, c, ctx);
  if (!env) return config_error(env.status().message());

  runtime::ContainerConfig cfg;
  cfg.id = new_container_id();
  cfg.labels = {{runtime::kLabelPodUid, e.uid},
                {runtime::kLabelPodName, e.name},
                {runtime::kLabelPodNamespace, e.ns},
                {runtime::kLabelContainerName, c.name},
                {runtime::kLabelAttempt, std::to_string(a.attempt)},
                {runtime::kLabelSpecHash, container_hash(c)},
                {runtime::kLabelInit, init ? "true" : "false"},
                {kLabelImageRef, img->repo_tags.empty() ? c.image : img->repo_tags.front()},
                {kLabelImageId, img->id}};
  cfg.sandbox_dir = sb.dir;
  cfg.image_layers = *layers;
  cfg.args = container_argv(c, img->config, *env);
  if (cfg.args.empty()) return config_error("no command specified");
  cfg.env = merge_env(img->config.env, *env);
  bool has_hostname = false;
  for (const auto& kv : cfg.env) has_hostname |= kv.rfind("HOSTNAME=", 0) == 0;
  if (!has_hostname) {
    cfg.env.push_back("HOSTNAME=" + pod_hostname(pod));
  }
  cfg.cwd = !c.working_dir.empty()
                ? c.working_dir
                : (!img->config.working_dir.empty() ? img->config.working_dir : "/");

  // User: the image's, then the pod's, then the container's securityContext.
  if (!img->config.user.empty()) {
    auto u = images::resolve_user(img->config.user, *layers);
    if (!u) return config_error("image user \"" + img->config.user + "\": " + u.status().message());
    cfg.uid = u->uid;
    cfg.gid = u->gid;
    cfg.additional_gids = u->additional_gids;
  }
  const auto& psc = pod.spec.security_context;
  const auto& csc = c.security_context;
  if (psc && psc->run_as_user) cfg.uid = static_cast<uint32_t>(*psc->run_as_user);
  if (psc && psc->run_as_group) cfg.gid = static_cast<uint32_t>(*psc->run_as_group);
  if (csc && csc->run_as_user) cfg.uid = static_cast<uint32_t>(*csc->run_as_user);
  if (csc && csc->run_as_group) cfg.gid = static_cast<uint32_t>(*csc->run_as_group);
  if (psc) {
    for (auto g : psc->supplemental_groups) cfg.additional_gids.push_back(static_cast<uint32_t>(g));
    if (psc->fs_group) cfg.additional_gids.push_back(static_cast<uint32_t>(*psc->fs_group));
  }
  bool non_root = (psc && psc->run_as_non_root.value_or(false)) ||
                  (csc && csc->run_as_non_root.value_or(false));
  if (non_root && cfg.uid == 0)
    return config_error("container has runAsNonRoot and image will run as root (pod: \"" + e.name +
                        "_" + e.ns + "(" + e.uid + ")\", container: " + c.name + ")");
  if (csc) {
    cfg.privileged = csc->privileged.value_or(false);
    if (csc->capabilities) {
      cfg.cap_add = csc->capabilities->add;
      cfg.cap_drop = csc->capabilities->drop;
    }
    cfg.read_only_rootfs = csc->read_only_root_filesystem.value_or(false);
    if (csc->allow_privilege_escalation && *csc->allow_privilege_escalation && !cfg.privileged)
      cfg.no_new_privs = false;
    if (cfg.privileged) {
      cfg.no_new_privs = false;
      cfg.seccomp_default = false;
    }
  }

  // Mounts: the pod's etc files (unless a volume covers them), then the volumes.
  auto mounts = deps_.volumes->container_mounts(c, vols);
  if (!mounts) return config_error(mounts.status().message());
  auto covered = [&](const std::string& dest) {
    for (const auto& m : *mounts)
      if (m.destination == dest) return true;
    return false;
  };
  for (auto [dest, src] : {std::pair<std::string, std::string>{"/etc/hosts", sb.etc_hosts},
                           {"/etc/hostname", sb.etc_hostname},
                           {"/etc/resolv.conf", sb.etc_resolv}})
    if (!covered(dest)) cfg.mounts.push_back({dest, "bind", src, {"rw", "nosuid", "nodev"}});
  cfg.mounts.insert(cfg.mounts.end(), mounts->begin(), mounts->end());

  // cgroup: a child of the pod's cgroup with the container's own limits.
  std::string cg = pod_cgroup(e.uid) + "/" + cfg.id;
  if (deps_.cgroups) {
    if (auto s = deps_.cgroups->ensure(cg, container_resources(c)); !s)
      return config_error("cgroup for container " + c.name + ": " + s.message());
    cfg.cgroup_dirs = deps_.cgroups->dirs(cg);
  }

  std::string log_dir = pod_log_dir(e.ns, e.name, e.uid) + "/" + c.name;
  std::error_code ec;
  fs::create_directories(log_dir, ec);
  cfg.log_path = log_dir + "/" + std::to_string(a.attempt) + ".log";
  times.rootfs += ms_since(t);

  if (a.restart) backoff_.next(e.uid + "/" + c.name, SysClock::now());
  t = SteadyClock::now();
  {
    // Known before it runs, so an exit notification finds its pod.
    std::lock_guard lock(mu_);
    e.container_ids.insert(cfg.id);
    container_owner_[cfg.id] = e.uid;
  }
  auto st = deps_.runtime->start(cfg);
  times.start += ms_since(t);
  if (!st) {
    std::string msg = st.status().message();
    e.waiting[c.name] = {"RunContainerError", msg};
    record(e, c.name, init, true, "Failed", "Error: " + msg);
    (void)deps_.runtime->remove(cfg.id, std::chrono::seconds(2));
    if (deps_.cgroups) (void)deps_.cgroups->remove(cg);
    std::lock_guard lock(mu_);
    e.container_ids.erase(cfg.id);
    container_owner_.erase(cfg.id);
    return false;
  }
  e.waiting.erase(c.name);
  {
    std::lock_guard lock(metrics_->mu);
    ++metrics_->container_starts;
    if (a.restart) ++metrics_->restarts;
  }
  if (st->status == runtime::ContainerStatus::kExited && st->reason == "StartError") {
    record(e, c.name, init, true, "Failed", "Error: " + st->message);
    return true;
  }
  record(e, c.name, init, false, "Created", "Created container " + c.name);
  record(e, c.name, init, false, "Started", "Started container " + c.name);
  add_probes(e, pod, c, cfg.id);
  return true;
}

void Kubelet::add_probes(Entry& e, const proto::Pod& pod, const proto::Container& c,
                         const std::string& id) {
  if (!prober_ || e.probed.count(id)) return;
  if (!c.liveness_probe && !c.readiness_probe && !c.startup_probe) return;
  probes::Target target;
  target.netns_path = deps_.sandboxes->info(e.uid).netns;
  target.pod_ip = e.pod_ip;
  auto* rt = deps_.runtime;
  target.exec = [rt, id](const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout) -> Result<int> {
    runtime::ExecOptions o;
    o.args = argv;
    auto p = rt->exec(id, o);
    if (!p) return p.status();
    auto deadline = SteadyClock::now() + timeout;
    drain(p->stdout_fd, deadline);
    drain(p->stderr_fd, deadline);
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    auto r = rt->wait_exec(*p, std::max(left, std::chrono::milliseconds(1)));
    for (int fd : {p->stdin_fd, p->stdout_fd, p->stderr_fd})
      if (fd >= 0) ::close(fd);
    return r;
  };
  prober_->add(e.uid, id, c, target);
  e.probed.insert(id);
}

void Kubelet::write_status(Entry& e, const proto::Pod& pod, const std::vector<Instance>& instances,
                           const PodPlan& plan, StageTimes* times) {
  // Running containers adopted from a previous kubelet get their probes back.
  for (const auto& i : instances)
    if (i.running() && !e.probed.count(i.state.id) && !e.stopping.count(i.state.id))
      if (const auto* c = find_container(pod, i.name)) add_probes(e, pod, *c, i.state.id);

  StatusInput in;
  in.pod = &pod;
  in.instances = &instances;
  in.plan = &plan;
  in.waiting = e.waiting;
  for (const auto& [name, msg] : plan.backoff) in.waiting.erase(name);
  auto* pr = prober_.get();
  in.ready = [pr](const std::string& id) {
    return !pr || pr->result(id, probes::Kind::kReadiness) == probes::Result::kSuccess;
  };
  in.started = [pr](const std::string& id) {
    return !pr || pr->result(id, probes::Kind::kStartup) == probes::Result::kSuccess;
  };
  in.pod_ip = e.pod_ip;
  in.host_ip = host_ip();
  in.start_time = e.start_time;
  in.pod_message = e.pod_message;
  in.now = SysClock::now();
  proto::PodStatus st = compute_status(in);
  // Containers whose start failed before the runtime (image, config) keep their waiting reason.
  if (!status_changed(pod.status, st)) return;

  auto t = SteadyClock::now();
  json obj;
  {
    std::lock_guard lock(mu_);
    obj = e.pod;
  }
  json status_json = proto::encode(st);
  for (int attempt = 0; attempt < 5; ++attempt) {
    obj["status"] = status_json;
    auto r = deps_.api->update_status(pod_type(), obj);
    if (r) {
      std::lock_guard lock(mu_);
      if (!rv_newer(e.pod, *r)) e.pod = *r;
      break;
    }
    if (r.status().code() == Code::kNotFound) return;
    if (r.status().code() != Code::kConflict) {
      spdlog::warn("pod {}/{}: writing status: {}", e.ns, e.name, r.status().to_string());
      workers_->enqueue_after(e.uid, std::chrono::seconds(1));
      return;
    }
    auto fresh = deps_.api->get(pod_type(), e.ns, e.name);
    if (!fresh) return;
    if ((*fresh)["metadata"].value("uid", "") != e.uid) return;
    obj = *fresh;
  }
  double status_ms = ms_since(t);
  if (times && !e.start_reported && st.phase == "Running") {
    times->status = status_ms;
    e.start_reported = true;
    double total =
        std::chrono::duration<double, std::milli>(SteadyClock::now() - e.seen_at).count();
    if (opts_.verbosity >= 1)
      spdlog::info(
          "pod-start {}/{} uid={} queue_ms={:.1f} sandbox_ms={:.1f} cni_ms={:.1f} "
          "volumes_ms={:.1f} rootfs_ms={:.1f} start_ms={:.1f} status_ms={:.1f} total_ms={:.1f}",
          e.ns, e.name, e.uid, times->queue, times->sandbox, times->cni, times->volumes,
          times->rootfs, times->start, times->status, total);
    std::lock_guard lock(metrics_->mu);
    metrics_->pod_start.observe(total / 1000);
    for (auto [name, v] : {std::pair<const char*, double>{"queue", times->queue},
                           {"sandbox", times->sandbox},
                           {"cni", times->cni},
                           {"volumes", times->volumes},
                           {"rootfs", times->rootfs},
                           {"start", times->start},
                           {"status", times->status}})
      metrics_->stages[name].observe(v / 1000);
  }
}

void Kubelet::terminate(Entry& e, const proto::Pod& pod, bool in_api) {
  int64_t grace = pod.metadata.deletion_grace_period_seconds
                      ? *pod.metadata.deletion_grace_period_seconds
                      : pod.spec.termination_grace_period_seconds.value_or(30);
  // A pod already gone from the API (force deletion, or an API server that deletes at once)
  // still gets its grace period: the containers deserve their SIGTERM either way.
  auto instances = observe(e);
  if (!e.terminating) {
    e.terminating = true;
    e.term_deadline = SteadyClock::now() + proto::capped_seconds(std::max<int64_t>(grace, 0));
    if (prober_) prober_->remove_pod(e.uid);
    for (const auto& i : instances)
      if (i.running()) {
        record(e, i.name, i.init, false, "Killing", "Stopping container " + i.name);
        (void)deps_.runtime->signal(i.state.id, grace > 0 ? SIGTERM : SIGKILL);
      }
  }
  bool running = false;
  for (const auto& i : instances) running |= i.running();
  if (running && SteadyClock::now() < e.term_deadline) {
    // Exits wake us (on_exit); the deadline is the backstop.
    workers_->enqueue_after(e.uid, std::chrono::duration_cast<std::chrono::milliseconds>(
                                       e.term_deadline - SteadyClock::now()) +
                                       std::chrono::milliseconds(10));
    return;
  }
  std::vector<std::string> ids;
  for (const auto& i : instances) ids.push_back(i.state.id);
  cleanup_orphan(e.uid, ids);
  spdlog::info("pod {}/{} terminated and cleaned up", e.ns, e.name);
  if (in_api) {
    proto::DeleteOptions opts;
    opts.type_meta = {"v1", "DeleteOptions"};
    opts.grace_period_seconds = 0;
    opts.preconditions = proto::Preconditions{e.uid, {}};
    auto r = deps_.api->rest().request("DELETE", client::resource_path(pod_type(), e.ns, e.name),
                                       {}, proto::encode(opts).dump(), "application/json");
    if (!r)
      spdlog::warn("pod {}/{}: finishing deletion: {}", e.ns, e.name, r.status().to_string());
    else if (!r->ok() && r->status != 404 && r->status != 409)
      spdlog::warn("pod {}/{}: finishing deletion: {}", e.ns, e.name,
                   client::to_status(*r).to_string());
  }
  std::lock_guard lock(mu_);
  pods_.erase(e.uid);
}

// ---------------------------------------------------------------------------------------------
// Serving.

Result<LocatedContainer> Kubelet::locate(const std::string& ns, const std::string& pod_name,
                                         const std::string& container) {
  std::shared_ptr<Entry> e;
  {
    std::lock_guard lock(mu_);
    for (auto& [uid, x] : pods_)
      if (x->ns == ns && x->name == pod_name) e = x;
  }
  if (!e) return Status::not_found("pod \"" + pod_name + "\" not found on this node");
  proto::Pod pod;
  {
    std::lock_guard lock(mu_);
    pod = decode_pod(e->pod);
  }
  std::string name = container;
  if (name.empty()) {
    if (pod.spec.containers.size() == 1) {
      name = pod.spec.containers[0].name;
    } else {
      std::string names;
      for (const auto& c : pod.spec.containers) names += (names.empty() ? "" : " ") + c.name;
      return Status::invalid("a container name must be specified for pod " + pod_name +
                             ", choose one of: [" + names + "]");
    }
  }
  bool init = false;
  if (!find_container(pod, name, &init))
    return Status::not_found("container " + name + " is not valid for pod " + pod_name);
  auto instances = observe(*e);
  Observed obs(instances);
  LocatedContainer out;
  std::string dir = pod_log_dir(ns, pod_name, e->uid) + "/" + name + "/";
  auto l = obs.latest.find(name);
  if (l == obs.latest.end()) return out;  // never started
  out.container_id = l->second->state.id;
  out.running = l->second->running();
  out.log_path = l->second->state.log_path.empty()
                     ? dir + std::to_string(l->second->attempt) + ".log"
                     : l->second->state.log_path;
  auto p = obs.previous.find(name);
  if (p != obs.previous.end())
    out.previous_log_path = p->second->state.log_path.empty()
                                ? dir + std::to_string(p->second->attempt) + ".log"
                                : p->second->state.log_path;
  else if (l->second->attempt > 0 &&
           fs::exists(dir + std::to_string(l->second->attempt - 1) + ".log"))
    out.previous_log_path = dir + std::to_string(l->second->attempt - 1) + ".log";
  return out;
}

std::string Kubelet::metrics_text() const {
  std::ostringstream out;
  size_t pods = 0, running_pods = 0, containers = 0;
  {
    std::lock_guard lock(mu_);
    pods = pods_.size();
    containers = container_owner_.size();
    for (const auto& [uid, e] : pods_)
      if (e->pod.contains("status") && e->pod["status"].value("phase", "") == "Running")
        ++running_pods;
  }
  out << "# HELP skiff_kubelet_pods Pods bound to this node that the kubelet tracks.\n"
      << "# TYPE skiff_kubelet_pods gauge\nskiff_kubelet_pods " << pods << "\n"
      << "# HELP skiff_kubelet_running_pods Pods whose reported phase is Running.\n"
      << "# TYPE skiff_kubelet_running_pods gauge\nskiff_kubelet_running_pods " << running_pods
      << "\n"
      << "# HELP skiff_kubelet_containers Container instances known (any state).\n"
      << "# TYPE skiff_kubelet_containers gauge\nskiff_kubelet_containers " << containers << "\n";
  std::lock_guard lock(metrics_->mu);
  out << "# TYPE skiff_kubelet_container_starts_total counter\n"
      << "skiff_kubelet_container_starts_total " << metrics_->container_starts << "\n"
      << "# TYPE skiff_kubelet_container_restarts_total counter\n"
      << "skiff_kubelet_container_restarts_total " << metrics_->restarts << "\n"
      << "# TYPE skiff_kubelet_pod_syncs_total counter\n"
      << "skiff_kubelet_pod_syncs_total " << metrics_->syncs << "\n"
      << "# TYPE skiff_kubelet_events_dropped_total counter\n"
      << "skiff_kubelet_events_dropped_total " << (events_ ? events_->dropped() : 0) << "\n";
  out << "# HELP skiff_kubelet_pod_sync_duration_seconds Duration of one pod sync.\n"
      << "# TYPE skiff_kubelet_pod_sync_duration_seconds histogram\n";
  Metrics::write(out, "skiff_kubelet_pod_sync_duration_seconds", "", metrics_->sync);
  out << "# HELP skiff_kubelet_pod_start_duration_seconds From the pod's watch event to its "
         "Running status written.\n"
      << "# TYPE skiff_kubelet_pod_start_duration_seconds histogram\n";
  Metrics::write(out, "skiff_kubelet_pod_start_duration_seconds", "", metrics_->pod_start);
  out << "# HELP skiff_kubelet_pod_start_stage_duration_seconds One stage of a pod's first "
         "start.\n"
      << "# TYPE skiff_kubelet_pod_start_stage_duration_seconds histogram\n";
  for (const auto& [stage, h] : metrics_->stages)
    Metrics::write(out, "skiff_kubelet_pod_start_stage_duration_seconds", "stage=\"" + stage + "\"",
                   h);
  return out.str();
}

}  // namespace skiff::kubelet
