// skiff-kubelet: the node agent (see kubelet/README.md), and `image import|list|pull`.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cni/invoker.h"
#include "common/files.h"
#include "kubelet/cgroups/cgroups.h"
#include "kubelet/images/image_store.h"
#include "kubelet/kubelet.h"
#include "kubelet/runtime/runtime.h"
#include "kubelet/runtime/sandbox.h"
#include "kubelet/server/kubelet_server.h"
#include "kubelet/volumes/volumes.h"
#include "proto/client/kubeconfig.h"

namespace fs = std::filesystem;
using namespace skiff;

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "skiff-kubelet: %s\n", what.c_str());
  return 1;
}

std::string self_dir() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : p.parent_path().string();
}

std::string node_default_name() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return host;
}

int image_command(const std::string& cmd, const std::string& arg, const std::string& data_dir,
                  const std::vector<std::string>& insecure, const std::string& ca_file) {
  auto store = images::ImageStore::open(data_dir + "/images");
  if (!store) return fail(store.status().to_string());
  if (cmd == "import") {
    auto r = (*store)->import_file(arg);
    if (!r) return fail("import " + arg + ": " + r.status().message());
    for (const auto& img : *r)
      std::printf("imported %s %s\n", img.repo_tags.empty() ? "<none>" : img.repo_tags[0].c_str(),
                  img.id.c_str());
    return 0;
  }
  if (cmd == "list") {
    std::printf("%-50s %-20s %s\n", "IMAGE", "ID", "SIZE");
    for (const auto& img : (*store)->list()) {
      std::string id = img.id.substr(0, std::min<size_t>(img.id.size(), 19));
      if (img.repo_tags.empty())
        std::printf("%-50s %-20s %lld\n", "<none>", id.c_str(), static_cast<long long>(img.size));
      for (const auto& t : img.repo_tags)
        std::printf("%-50s %-20s %lld\n", t.c_str(), id.c_str(), static_cast<long long>(img.size));
    }
    return 0;
  }
  images::PullOptions po;
  po.insecure_registries = insecure;
  po.ca_file = ca_file;
  po.progress = [](const images::PullProgress& p) {
    std::fprintf(stderr, "%s\n", p.message.c_str());
  };
  auto r = (*store)->pull(arg, po);
  if (!r) return fail("pull " + arg + ": " + r.status().message());
  std::printf("pulled %s %s\n", r->repo_tags.empty() ? arg.c_str() : r->repo_tags[0].c_str(),
              r->id.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"skiff-kubelet: runs the pods bound to this node"};
  kubelet::KubeletOptions o;
  std::string kubeconfig, cgroup_parent = "skiff", cgroup_root = "/sys/fs/cgroup", shim;
  std::vector<std::string> cni_bin_dirs;
  std::string address = "0.0.0.0", token_file;
  int port = 10250;
  app.add_option("--kubeconfig", kubeconfig, "kubeconfig for the API server");
  app.add_option("--node-name", o.node_name, "node name (default: the hostname)");
  app.add_option("--node-ip", o.node_ip, "InternalIP (default: first non-loopback IPv4)");
  app.add_option("--data-dir", o.data_dir, "images, container layers, volumes, CNI cache")
      ->capture_default_str();
  app.add_option("--run-dir", o.run_dir, "sandboxes and shim state")->capture_default_str();
  app.add_option("--log-dir", o.log_dir, "container logs")->capture_default_str();
  app.add_option("--cgroup-parent", cgroup_parent, "cgroup under which pods go")
      ->capture_default_str();
  app.add_option("--cgroup-root", cgroup_root, "cgroupfs mount point")->capture_default_str();
  app.add_option("--cni-conf-dir", o.cni_conf_dir, "CNI network configuration")
      ->capture_default_str();
  app.add_option("--cni-bin-dir", cni_bin_dirs,
                 "CNI plugin directory (repeatable; default /opt/cni/bin and /usr/lib/cni)");
  app.add_option("--pod-cidr", o.pod_cidr,
                 "pod CIDR when the Node has none; with an empty CNI conf dir, writes "
                 "10-skiff.conflist (the skiff plugin, else bridge skiff0 + host-local). "
                 "Without it, and with neither a Node spec.podCIDR nor a CNI config, the kubelet "
                 "waits for skiff-controller-manager to assign the Node's spec.podCIDR");
  app.add_option("--network-backend", o.network_backend,
                 "pod network between nodes, passed to the skiff CNI plugin as \"mode\": vxlan "
                 "(pod MTU = underlay MTU - 50), host-gw or bridge (one node)")
      ->check(CLI::IsMember({"vxlan", "host-gw", "bridge"}))
      ->capture_default_str();
  app.add_option("--shim", shim, "skiff-shim binary (default: beside skiff-kubelet)");
  app.add_option("--address", address, "kubelet server address")->capture_default_str();
  app.add_option("--port", port, "kubelet server port (0: any)")->capture_default_str();
  app.add_option("--client-token-file", token_file,
                 "bearer token the API server must present to the kubelet port");
  app.add_option("--insecure-registry", o.insecure_registries,
                 "registry HOST:PORT reached over plain HTTP (repeatable)");
  app.add_option("--registry-ca-file", o.registry_ca_file, "extra CA for HTTPS registries");
  app.add_option("--cluster-dns", o.cluster_dns, "cluster DNS server IP (repeatable)");
  app.add_option("--cluster-domain", o.cluster_domain)->capture_default_str();
  app.add_option("--max-pods", o.max_pods)->capture_default_str();
  app.add_option("--pod-max-pids", o.pod_max_pids,
                 "most processes a pod may run (its cgroup's pids.max); -1: no limit")
      ->capture_default_str();
  app.add_option("--local-path-provisioner", o.local_path_provisioner,
                 "run the node's local-path provisioner (storage class provisioner "
                 "skiff.io/local-path): true|false")
      ->default_str("true");
  app.add_option("--local-path-root", o.local_path_root,
                 "directory of the local-path volumes (default <data-dir>/storage)");
  app.add_option("-v,--v", o.verbosity,
                 "verbosity: 1 logs a per-stage line for each pod start, 2+ debug");

  auto* image = app.add_subcommand("image", "manage the node's images");
  image->require_subcommand(1);
  std::string image_arg;
  auto* imp = image->add_subcommand("import", "import an OCI layout or docker-archive tarball");
  imp->add_option("FILE", image_arg)->required();
  image->add_subcommand("list", "list images");
  auto* pull = image->add_subcommand("pull", "pull from a registry");
  pull->add_option("REF", image_arg)->required();
  for (auto* sub : {imp, pull}) sub->add_option("--data-dir", o.data_dir)->capture_default_str();
  image->get_subcommand("list")->add_option("--data-dir", o.data_dir)->capture_default_str();
  pull->add_option("--insecure-registry", o.insecure_registries);
  pull->add_option("--registry-ca-file", o.registry_ca_file);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  spdlog::set_default_logger(spdlog::stderr_color_mt("skiff-kubelet"));
  spdlog::set_level(o.verbosity >= 2 ? spdlog::level::debug : spdlog::level::info);

  if (image->parsed()) {
    std::string cmd = imp->parsed() ? "import" : (pull->parsed() ? "pull" : "list");
    return image_command(cmd, image_arg, o.data_dir, o.insecure_registries, o.registry_ca_file);
  }

  if (o.node_name.empty()) o.node_name = node_default_name();
  if (cni_bin_dirs.empty()) cni_bin_dirs = {"/opt/cni/bin", "/usr/lib/cni"};
  // skiff's own CNI plugin is built beside the kubelet (build/skiff, or /usr/local/bin/skiff).
  cni_bin_dirs.push_back(self_dir());
  o.cni_bin_dirs = cni_bin_dirs;
  if (shim.empty()) shim = self_dir() + "/skiff-shim";

  // Stop signals are taken by sigwait below; every thread inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  std::signal(SIGINT, SIG_DFL);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::string kc_path = client::find_kubeconfig(kubeconfig);
  if (kc_path.empty()) return fail("no kubeconfig: pass --kubeconfig");
  auto kc = client::load_kubeconfig(kc_path);
  if (!kc) return fail(kc.status().to_string());
  auto cc = client::ClientConfig::from_kubeconfig(*kc);
  cc.user_agent = "skiff-kubelet/" + std::string(kubelet::kKubeletVersion);
  auto rest = client::RestClient::create(cc);
  if (!rest) return fail(rest.status().to_string());
  auto api =
      std::make_shared<client::ApiClient>(std::shared_ptr<client::RestClient>(std::move(*rest)));

  std::error_code ec;
  for (const auto& d : {o.data_dir, o.run_dir, o.log_dir, o.data_dir + "/images/import",
                        o.data_dir + "/pods", o.data_dir + "/cni", o.run_dir + "/kubelet/pods"})
    fs::create_directories(d, ec);
  // Two kubelets on one data or run dir would run each other's pods and share their IPs.
  for (const auto& d : {o.data_dir, o.run_dir}) {
    if (auto st = files::lock_for_process(d + "/kubelet.lock", "skiff-kubelet"); !st)
      return fail(st.to_string());
  }

  auto store = images::ImageStore::open(o.data_dir + "/images");
  if (!store) return fail(store.status().to_string());
  if (auto s = (*store)->import_dir(o.data_dir + "/images/import"); !s)
    spdlog::warn("auto-import: {}", s.to_string());
  auto rt = runtime::make_shim_runtime({o.run_dir, o.data_dir, shim});
  std::unique_ptr<cgroups::CgroupDriver> cg;
  if (auto d = cgroups::CgroupDriver::detect(cgroup_parent, cgroup_root); d)
    cg = std::move(*d);
  else
    spdlog::warn("cgroups unavailable, containers run without limits: {}", d.status().to_string());
  runtime::Sandboxes sandboxes(o.run_dir);
  cni::CniInvoker::Options co;
  co.conf_dir = o.cni_conf_dir;
  co.bin_dirs = cni_bin_dirs;
  co.cache_dir = o.data_dir + "/cni";
  cni::CniInvoker cni(co);
  volumes::VolumeManager vols(o.data_dir + "/pods");

  kubelet::KubeletDeps deps;
  deps.api = api;
  deps.runtime = rt.get();
  deps.images = store->get();
  deps.cgroups = cg.get();
  deps.sandboxes = &sandboxes;
  deps.cni = &cni;
  deps.volumes = &vols;
  kubelet::Kubelet k(o, deps);

  kubelet::KubeletServer::Options so;
  so.listen = address + ":" + std::to_string(port);
  so.cert_dir = o.data_dir + "/pki";
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    std::getline(in, so.client_token);
    while (!so.client_token.empty() &&
           std::isspace(static_cast<unsigned char>(so.client_token.back())))
      so.client_token.pop_back();
    if (so.client_token.empty())
      return fail("--client-token-file " + token_file + ": empty or unreadable");
  }
  so.metrics = [&k] { return k.metrics_text(); };
  kubelet::KubeletServer server(so, k, *rt);
  if (auto s = server.start(); !s) return fail("kubelet server: " + s.to_string());
  k.set_port(server.port());
  // The API server may not be reachable yet (machines booting together, a link coming up):
  // retry the registration with back-off, as Kubernetes' kubelet does, instead of exiting. A
  // stop signal ends the wait; other errors (a bad token, a refused Node) end the process.
  for (auto delay = std::chrono::milliseconds(500);;) {
    Status s = k.start();
    if (s) break;
    if (s.code() != Code::kUnavailable && s.code() != Code::kTimeout) return fail(s.to_string());
    spdlog::warn("{} (retrying in {} ms)", s.to_string(), delay.count());
    timespec ts{static_cast<time_t>(delay.count() / 1000),
                static_cast<long>(delay.count() % 1000) * 1'000'000};
    if (int sig = sigtimedwait(&sigs, nullptr, &ts); sig > 0) {
      spdlog::info("signal {} while registering: stopping", sig);
      server.stop();
      return 0;
    }
    delay = std::min(delay * 2, std::chrono::milliseconds(10'000));
  }

  int sig = 0;
  sigwait(&sigs, &sig);
  spdlog::info("signal {}: stopping (containers keep running)", sig);
  server.stop();
  k.stop();
  return 0;
}
