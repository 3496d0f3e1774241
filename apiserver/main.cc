// skiff-apiserver: flags, PKI and kubeconfig, store, API and transport; clean exit on
// SIGTERM/SIGINT (stop accepting, end watches, finish requests, flush the store).
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/stat.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "apiserver/api.h"
#include "common/files.h"
#include "common/http/auth.h"
#include "common/http/certs.h"
#include "common/http/http_server.h"
#include "apiserver/pki.h"
#include "apiserver/service_alloc.h"
#include "apiserver/store/store.h"

namespace sa = skiff::apiserver;
namespace sw = skiff::web;

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "skiff-apiserver: %s\n", what.c_str());
  return 1;
}

spdlog::level::level_enum level_for(int v, const std::string& name) {
  if (v >= 4) return spdlog::level::trace;
  if (v >= 2) return spdlog::level::debug;
  if (v >= 0) return spdlog::level::info;
  return spdlog::level::from_str(name);
}

// The URL clients should use: the advertised address, else the listen host, with wildcard
// hosts replaced by loopback (the kubeconfig is written for the local admin).
std::string server_url(const std::string& advertise, const std::string& listen_host, int port) {
  std::string host = advertise.empty() ? listen_host : advertise;
  if (host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]") host = "127.0.0.1";
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  return "https://" + host + ":" + std::to_string(port);
}

// The kubelet client token: read from `path`; when absent and `create`, a new random one is
// written there (0600), like admin.token.
skiff::Result<std::string> ensure_kubelet_token(const std::string& path, bool create) {
  namespace certs = skiff::web::certs;
  if (!certs::exists(path)) {
    if (!create) return skiff::Status::invalid("--kubelet-client-token-file " + path + ": missing");
    SKIFF_RETURN_IF_ERROR(certs::write_file_atomic(path, certs::random_token() + "\n", 0600));
  }
  auto text = certs::read_file(path);
  if (!text) return text.status();
  std::string t = *text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  if (t.empty()) return skiff::Status::invalid("kubelet client token file " + path + " is empty");
  return t;
}

bool is_ip(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// The address the `kubernetes` Endpoints advertise when --advertise-address is not given: the
// listen host unless it is a wildcard, else the first non-loopback IPv4 address that is up.
std::string default_advertise_ip(const std::string& listen_host) {
  if (listen_host == "localhost") return "127.0.0.1";
  if (!listen_host.empty() && listen_host != "0.0.0.0" && listen_host != "::" &&
      listen_host != "[::]" && is_ip(listen_host))
    return listen_host;
  std::string found;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) == 0) {
    for (ifaddrs* i = list; i != nullptr && found.empty(); i = i->ifa_next) {
      if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
      if ((i->ifa_flags & IFF_LOOPBACK) || !(i->ifa_flags & IFF_UP)) continue;
      char buf[INET_ADDRSTRLEN] = {};
      auto* sin = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
      if (inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf)) found = buf;
    }
    freeifaddrs(list);
  }
  return found.empty() ? "127.0.0.1" : found;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"skiff-apiserver: the Kubernetes REST API of skiff, over TLS"};
  std::string listen = "0.0.0.0:6443";
  std::string insecure_listen;
  std::string data_dir = "/var/lib/skiff/apiserver";
  std::string store_kind = "sqlite";
  std::vector<std::string> etcd_servers;
  std::string etcd_ca, etcd_cert, etcd_key;
  std::string token_file;
  std::string kubelet_token_file;
  std::string advertise;
  std::vector<std::string> tls_sans;
  bool anonymous = false;
  int verbosity = -1;
  std::string log_level = "info";
  size_t watch_buffer_bytes = 4 << 20;
  int64_t compact_keep = 10000;
  std::string service_cidr = "10.96.0.0/16";
  std::string node_port_range = "30000-32767";

  app.add_option("--listen", listen, "HTTPS address HOST:PORT")->capture_default_str();
  app.add_option("--insecure-listen", insecure_listen,
                 "also serve plain HTTP on this loopback HOST:PORT (default: off)");
  app.add_option("--data-dir", data_dir, "PKI, admin kubeconfig and the SQLite database")
      ->capture_default_str();
  app.add_option("--store", store_kind, "object store backend")
      ->check(CLI::IsMember({"sqlite", "memory", "etcd"}))
      ->capture_default_str();
  app.add_option("--etcd-servers", etcd_servers,
                 "with --store etcd: etcd client URLs http(s)://HOST:PORT, comma-separated; several "
                 "API servers may share one etcd cluster")
      ->delimiter(',');
  app.add_option("--etcd-cafile", etcd_ca,
                 "CA of etcd's serving certificates, for https:// --etcd-servers (default: the "
                 "system's CAs)")
      ->check(CLI::ExistingFile);
  app.add_option("--etcd-certfile", etcd_cert, "client certificate presented to etcd (PEM)")
      ->check(CLI::ExistingFile);
  app.add_option("--etcd-keyfile", etcd_key, "key of --etcd-certfile (PEM)")
      ->check(CLI::ExistingFile);
  app.add_option("--token-auth-file", token_file,
                 "Kubernetes static token file (CSV: token,user,uid,\"group1,group2\")")
      ->check(CLI::ExistingFile);
  app.add_option("--kubelet-client-token-file", kubelet_token_file,
                 "bearer token presented to kubelets by the pods/log and pods/exec proxy "
                 "(default: <data-dir>/pki/kubelet-client.token, made on first start)");
  app.add_option("--tls-san", tls_sans,
                 "extra DNS name or IP for the serving certificate (repeatable)");
  app.add_option("--advertise-address", advertise,
                 "IP address of this API server for the cluster: the `kubernetes` Endpoints "
                 "and the admin kubeconfig (default: the listen host, or for a wildcard listen "
                 "address the first non-loopback IPv4 address; the kubeconfig then uses "
                 "127.0.0.1)");
  app.add_option("--service-cluster-ip-range", service_cidr,
                 "IPv4 CIDR from which Service ClusterIPs are allocated (its first address is "
                 "the `kubernetes` Service's)")
      ->capture_default_str();
  app.add_option("--service-node-port-range", node_port_range,
                 "port range FIRST-LAST reserved for Services of type NodePort / LoadBalancer")
      ->capture_default_str();
  app.add_flag("--anonymous", anonymous,
               "serve requests without credentials as system:anonymous (default: only "
               "/healthz, /readyz, /livez and /version)");
  app.add_option("-v,--v", verbosity, "verbosity: 0-1 info, 2-3 debug (access log), 4+ trace");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error (overridden by --v)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--watch-buffer-bytes", watch_buffer_bytes,
                 "bytes queued for one watcher before it is cut off")
      ->check(CLI::Range(size_t{4096}, size_t{1} << 30))
      ->capture_default_str();
  app.add_option("--compact-keep", compact_keep, "store revisions of history to keep")
      ->check(CLI::Range(int64_t{100}, int64_t{1} << 40))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  if (auto r = sa::parse_service_cidr(service_cidr); !r.is_ok())
    return fail("--service-cluster-ip-range: " + r.status().message());
  if (auto r = sa::parse_port_range(node_port_range); !r.is_ok())
    return fail("--service-node-port-range: " + r.status().message());
  if (!advertise.empty() && !is_ip(advertise))
    return fail("--advertise-address \"" + advertise + "\": not an IP address");

  auto logger = spdlog::stderr_color_mt("skiff-apiserver");
  spdlog::set_default_logger(logger);
  spdlog::set_level(level_for(verbosity, log_level));

  auto listen_hp = sw::parse_host_port(listen);
  if (!listen_hp) {
    std::fprintf(stderr, "skiff-apiserver: --listen: %s\n", listen_hp.status().message().c_str());
    return 2;
  }
  if (!insecure_listen.empty()) {
    auto hp = sw::parse_host_port(insecure_listen);
    if (!hp) {
      std::fprintf(stderr, "skiff-apiserver: --insecure-listen: %s\n",
                   hp.status().message().c_str());
      return 2;
    }
  }

  // Block the stop signals before any thread starts so that every thread inherits the mask and
  // only sigwait below receives them.
  // A shell starts background jobs with SIGINT ignored, and an ignored signal is discarded
  // even while blocked: restore the default so sigwait can receive it.
  std::signal(SIGTERM, SIG_DFL);
  std::signal(SIGINT, SIG_DFL);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::error_code fec;
  std::filesystem::create_directories(data_dir, fec);
  if (fec) return fail("create data dir " + data_dir + ": " + fec.message());
  ::chmod(data_dir.c_str(), 0700);
  // Two servers on one data dir would hand out the same revisions and miss each other's writes.
  if (auto st = skiff::files::lock_for_process(data_dir + "/apiserver.lock", "skiff-apiserver");
      !st)
    return fail(st.to_string());

  auto pki_files = sa::pki::ensure_pki(data_dir + "/pki", tls_sans);
  if (!pki_files) return fail(pki_files.status().to_string());
  if (pki_files->created_ca) spdlog::info("created a new CA in {}/pki", data_dir);

  auto kubelet_token = ensure_kubelet_token(
      kubelet_token_file.empty() ? data_dir + "/pki/kubelet-client.token" : kubelet_token_file,
      kubelet_token_file.empty());
  if (!kubelet_token) return fail(kubelet_token.status().to_string());

  sw::TokenAuthenticator auth;
  if (!token_file.empty()) {
    if (auto st = auth.load_file(token_file); !st) return fail(st.to_string());
  }
  auth.add(pki_files->admin_token, sw::Identity{"admin", "admin", {"system:masters"}});

  std::unique_ptr<skiff::store::Store> store;
  if ((store_kind == "etcd") != !etcd_servers.empty())
    return fail("--etcd-servers goes with --store etcd, and --store etcd needs --etcd-servers");
  if (store_kind == "etcd") {
    skiff::store::EtcdOptions eo;
    eo.endpoints = etcd_servers;
    eo.ca_file = etcd_ca;
    eo.cert_file = etcd_cert;
    eo.key_file = etcd_key;
    eo.keep_revisions = compact_keep;
    auto s = skiff::store::open_etcd_store(eo);
    if (!s) return fail(s.status().to_string());
    store = std::move(*s);
  } else if (store_kind == "memory") {
    store = skiff::store::make_memory_store(compact_keep);
  } else {
    skiff::store::SqliteOptions so;
    so.path = data_dir + "/state.db";
    so.keep_revisions = compact_keep;
    auto s = skiff::store::open_sqlite_store(so);
    if (!s) return fail("open store " + so.path + ": " + s.status().to_string());
    store = std::move(*s);
  }

  sa::ApiOptions api_opts;
  api_opts.store = store.get();
  api_opts.watch_buffer_bytes = watch_buffer_bytes;
  api_opts.kubelet_token = *kubelet_token;
  api_opts.service_cluster_ip_range = service_cidr;
  api_opts.service_node_port_range = node_port_range;
  std::string api_error;
  auto api = sa::Api::create(api_opts, &api_error);
  if (!api) {
    (void)store->close();
    return fail("start API: " + api_error);
  }

  sw::ServerOptions sopts;
  sopts.listen = listen;
  sopts.insecure_listen = insecure_listen;
  sopts.cert_file = pki_files->cert_file;
  sopts.key_file = pki_files->key_file;
  sopts.auth = &auth;
  sopts.anonymous = anonymous;
  sopts.stream_buffer_bytes = watch_buffer_bytes;
  // A lone client's reads and writes skip two thread hand-offs. Not on etcd: there a handler
  // waits on the network, up to its deadline, and would hold an I/O thread meanwhile.
  if (!store->shared()) sopts.run_inline = sa::handled_quickly;
  auto server = sw::HttpServer::start(sopts, api.get());
  if (!server) {
    api->shutdown();
    (void)store->close();
    return fail(server.status().to_string());
  }

  const std::string advertise_ip =
      advertise.empty() ? default_advertise_ip(listen_hp->first) : advertise;
  api->start_kubernetes_service(advertise_ip, (*server)->port());
  std::string url = server_url(advertise, listen_hp->first, (*server)->port());
  std::string kubeconfig = data_dir + "/admin.kubeconfig";
  if (auto st = sa::pki::write_kubeconfig(kubeconfig, pki_files->ca_pem, url,
                                          pki_files->admin_token);
      !st) {
    (*server)->shutdown();
    api->shutdown();
    (void)store->close();
    return fail(st.to_string());
  }
  std::string insecure_note;
  if ((*server)->insecure_port() > 0) {
    auto hp = sw::parse_host_port(insecure_listen);
    std::string h = hp->first.find(':') != std::string::npos ? "[" + hp->first + "]" : hp->first;
    insecure_note = " and http://" + h + ":" + std::to_string((*server)->insecure_port());
  }
  std::printf("skiff-apiserver: serving on %s%s; admin kubeconfig at %s\n", url.c_str(),
              insecure_note.c_str(), kubeconfig.c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("received {}, shutting down", strsignal(sig));
  (*server)->stop_accepting();
  api->shutdown();
  (*server)->shutdown();
  server->reset();
  api.reset();
  if (auto st = store->close(); !st) {
    spdlog::error("closing the store: {}", st.to_string());
    return 1;
  }
  spdlog::info("stopped");
  return 0;
}
