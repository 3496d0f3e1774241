// Kubelet: the node agent's core. Registers the Node and heartbeats its Lease, watches the pods
// bound to the node, and runs one serialized, idempotent sync per pod:
//   sandbox (net/IPC/UTS) -> pod cgroup -> CNI ADD -> volumes -> init containers in order ->
//   containers (image, config, cgroup, start) -> probes -> status (written only when changed)
// and, when the pod is deleted, graceful termination (SIGTERM, grace period, SIGKILL) and full
// cleanup before it finishes the API deletion. On start it adopts what already runs (matched
// by the labels on every container) and removes what belongs to pods that are gone; a periodic
// relist catches drift. Decisions are pure functions (pod_state.h, container_config.h); this
// class does the I/O around them.
//
// Thread-safe: informer handlers, pod workers, the prober and the HTTP server call in from
// their own threads.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "cni/invoker.h"
#include "kubelet/backoff.h"
#include "kubelet/cgroups/cgroups.h"
#include "kubelet/events.h"
#include "kubelet/images/image_store.h"
#include "kubelet/localpath/controller.h"
#include "kubelet/node_info.h"
#include "kubelet/pod_state.h"
#include "kubelet/pod_workers.h"
#include "kubelet/probes/prober.h"
#include "kubelet/runtime/runtime.h"
#include "kubelet/runtime/sandbox.h"
#include "kubelet/server/kubelet_server.h"
#include "kubelet/volumes/volumes.h"
#include "proto/client/informer.h"

namespace skiff::kubelet {

using json = nlohmann::json;

struct KubeletOptions {
  std::string node_name;
  std::string node_ip;
  std::string data_dir = "/var/lib/skiff";
  std::string run_dir = "/run/skiff";
  std::string log_dir = "/var/log/skiff";
  std::string cni_conf_dir = "/etc/cni/net.d";
  // Used when the Node has no spec.podCIDR. When neither is set and the CNI conf dir holds no
  // network config, start() waits (in the background) for skiff-controller-manager to assign
  // spec.podCIDR before it writes the conflist and runs pods.
  std::string pod_cidr;
  // The pod network between nodes: "vxlan" (default), "host-gw" or "bridge" (one node); passed
  // to the skiff CNI plugin as "mode" (vxlan => pod MTU = underlay MTU - 50).
  std::string network_backend = "vxlan";
  // Where CNI plugins live; with the pod CIDR, the kubelet writes a conflist for the `skiff`
  // plugin when one is found here, else for Debian's bridge + host-local.
  std::vector<std::string> cni_bin_dirs;
  std::vector<std::string> cluster_dns;
  std::string cluster_domain = "cluster.local";
  int max_pods = 110;
  int64_t pod_max_pids = -1;  // pids.max of every pod cgroup (Kubernetes' --pod-max-pids); -1: none
  int verbosity = 0;
  std::vector<std::string> insecure_registries;
  std::string registry_ca_file;
  int workers = 8;
  // The node's local-path provisioner (kubelet/localpath): PVs for claims scheduled here with
  // storage provisioner skiff.io/local-path, as directories below `local_path_root`
  // (default <data_dir>/storage).
  bool local_path_provisioner = true;
  std::string local_path_root;
  std::chrono::seconds node_status_period{10};
  std::chrono::seconds relist_period{10};
};

// Everything the kubelet drives. `cgroups` and `cni` may be null (no cgroup support; no CNI:
// pods then get only loopback and no podIP).
struct KubeletDeps {
  std::shared_ptr<client::ApiClient> api;
  runtime::ContainerRuntime* runtime = nullptr;
  images::ImageStore* images = nullptr;
  cgroups::CgroupDriver* cgroups = nullptr;
  runtime::Sandboxes* sandboxes = nullptr;
  cni::CniInvoker* cni = nullptr;
  volumes::VolumeManager* volumes = nullptr;
};

class Kubelet : public PodLocator {
 public:
  Kubelet(KubeletOptions opts, KubeletDeps deps);
  ~Kubelet() override;

  // The port written to Node.status.daemonEndpoints (call before start()).
  void set_port(int port) { port_ = port; }
  // Registers the node, starts the Lease/status loop, writes the CNI config when asked to,
  // adopts what runs, starts the informer, the pod workers and the relist loop. Fails only when
  // the API server cannot be reached for the registration. When the pod CIDR must come from the
  // Node (see KubeletOptions::pod_cidr), everything after the Lease/status loop happens on a
  // background thread once spec.podCIDR is set, and start() returns at once.
  [[nodiscard]] Status start();
  // Stops the loops and workers; containers keep running (restart safety).
  void stop();

  Result<LocatedContainer> locate(const std::string& ns, const std::string& pod,
                                  const std::string& container) override;
  std::string metrics_text() const;

 private:
  struct Entry;
  struct StageTimes;

  // --- node
  Status register_node();
  void node_loop(std::stop_token stop);
  Status update_node_status();
  Status renew_lease();
  // Writes the kubelet's own conflist (10-skiff.conflist, marked as generated) for `pod_cidr`
  // when the conf dir has no config, or rewrites it when it is ours and names another subnet or
  // mode (the Node was deleted and registered again with a new CIDR); then reloads CNI.
  void ensure_cni_config(const std::string& pod_cidr);
  // True when the conf dir holds a config that the kubelet did not generate itself.
  bool has_foreign_cni_config() const;
  // The Node's spec.podCIDR changed while running (re-registration): rewrite our conflist.
  void follow_pod_cidr();
  // Re-reads the Node every 500 ms until it has spec.podCIDR; "" when stopped first.
  std::string wait_for_pod_cidr(std::stop_token stop);
  // The part of start() that needs the pod CIDR.
  void start_pods(const std::string& pod_cidr);
  std::mutex cni_mu_;
  std::string cni_cidr_;  // the pod CIDR the CNI config was last ensured for (cni_mu_)
  std::atomic<bool> pods_started_{false};

  // --- pods
  void on_pod(const json& obj);
  void on_pod_delete(const json& obj);
  void on_container_exit(const std::string& id);
  void on_probe(const std::string& uid, const std::string& container, probes::Kind kind,
                probes::Result result, const std::string& message);
  std::shared_ptr<Entry> entry(const std::string& uid) const;
  void sync(const std::string& uid);
  void sync_running(Entry& e, const proto::Pod& pod);
  void terminate(Entry& e, const proto::Pod& pod, bool in_api);
  std::vector<Instance> observe(Entry& e);
  bool start_container(Entry& e, const proto::Pod& pod, const StartAction& a,
                       const runtime::SandboxInfo& sb,
                       const std::map<std::string, volumes::PreparedVolume>& vols,
                       StageTimes& times);
  Result<images::ImageRecord> ensure_image(Entry& e, const proto::Pod& pod,
                                           const proto::Container& c);
  void stop_container(Entry& e, const proto::Pod& pod, const std::string& id,
                      const std::string& name, const std::string& reason, int64_t grace_seconds);
  void write_status(Entry& e, const proto::Pod& pod, const std::vector<Instance>& instances,
                    const PodPlan& plan, StageTimes* times);
  void add_probes(Entry& e, const proto::Pod& pod, const proto::Container& c,
                  const std::string& id);
  runtime::SandboxConfig sandbox_config(const proto::Pod& pod) const;
  void record(const Entry& e, const std::string& container, bool init, bool warning,
              const std::string& reason, const std::string& message);
  void save_network_state(const Entry& e);
  void load_network_state(Entry& e);

  // --- restart safety
  void adopt_and_clean();
  void cleanup_orphan(const std::string& uid, const std::vector<std::string>& container_ids);
  void relist_loop(std::stop_token stop);
  // CNI GC: frees what the network still holds for pods this node no longer has (addresses
  // allocated before a reboot wiped the run dir, an ADD whose result was never recorded).
  // Valid = every pod the kubelet knows; skipped until the pod informer has synced once, since
  // before that a pod of the previous kubelet would look gone.
  void gc_network();
  // ADDs hold it shared, gc_network() exclusively: GC must not run between an ADD and the
  // moment its pod counts as valid (it is in pods_ before its first sync, so that cannot
  // happen while ADD and GC are apart).
  std::shared_mutex cni_gc_mu_;

  std::string host_ip() const { return machine_.internal_ip; }
  std::string local_path_root() const;
  std::string pod_log_dir(const std::string& ns, const std::string& name,
                          const std::string& uid) const;

  KubeletOptions opts_;
  KubeletDeps deps_;
  MachineInfo machine_;
  int port_ = 0;
  volumes::Sources sources_;
  std::unique_ptr<EventRecorder> events_;
  std::unique_ptr<probes::Prober> prober_;
  std::unique_ptr<client::Informer> informer_;
  std::unique_ptr<PodWorkers> workers_;
  std::unique_ptr<localpath::LocalPathController> local_path_;
  Backoff backoff_;

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> pods_;  // by uid
  std::map<std::string, std::string> container_owner_;  // container id -> pod uid
  // Containers found at start-up, by pod uid, until adopt_and_clean() has run.
  std::map<std::string, std::vector<std::string>> preexisting_;
  bool adopting_ = true;

  mutable std::mutex node_mu_;
  json node_;  // the Node as last written
  std::atomic<bool> node_dirty_{false};

  struct Metrics;
  std::unique_ptr<Metrics> metrics_;
  std::jthread node_thread_, relist_thread_, startup_thread_;
};

}  // namespace skiff::kubelet
