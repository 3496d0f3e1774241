#include "cni/plugin/plugin.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

#include "cni/plugin/config.h"
#include "cni/plugin/ipam.h"
#include "cni/plugin/result.h"
#include "common/netlink/netlink.h"

namespace skiff::cni::plugin {

using netlink::LinkInfo;
using netlink::Netlink;
using netlink::NlError;

namespace {

CniError nl_error(const std::string& msg, const NlError& e) {
  return CniError{kNetlinkFailure, msg, e.what};
}

// An fd closed at scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// The node's namespace (ours) and the pod's, each with a netlink socket bound in it.
struct Namespaces {
  Fd host_fd;
  std::optional<Netlink> host;
  Fd pod_fd;
  std::optional<Netlink> pod;
};

CniStatus open_host(Namespaces& ns) {
  NlError e;
  int fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return CniError{kNetnsFailure, "cannot open the node network namespace",
                    errno_text("open /proc/thread-self/ns/net", errno)};
  ns.host_fd.reset(fd);
  ns.host = Netlink::open(&e);
  if (!ns.host) return nl_error("cannot talk to the kernel", e);
  return {};
}

// Code 3 (container unknown) when the netns path does not exist.
CniStatus open_pod(Namespaces& ns, const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT)
      return CniError{kUnknownContainer, "the container's network namespace does not exist",
                      errno_text("open CNI_NETNS " + path, e)};
    return CniError{kNetnsFailure, "cannot open the container's network namespace",
                    errno_text("open CNI_NETNS " + path, e)};
  }
  ns.pod_fd.reset(fd);
  NlError ne;
  ns.pod = Netlink::open_in(fd, &ne);
  if (!ns.pod)
    return CniError{kNetnsFailure, "cannot enter the container's network namespace",
                    path + ": " + ne.what};
  return {};
}

// MTU of the interface holding the default route, else 1500.
int underlay_mtu(Netlink& nl) {
  NlError e;
  auto routes = nl.routes(&e);
  if (!routes) return 1500;
  for (const auto& r : *routes) {
    if (r.dst_len != 0 || r.oif == 0) continue;
    if (auto l = nl.link(r.oif, &e); l && l->mtu > 0) return l->mtu;
  }
  return 1500;
}

CniResult<LinkInfo> ensure_bridge(Netlink& nl, const Config& cfg, int mtu) {
  NlError e;
  auto br = nl.link(cfg.bridge, &e);
  if (!br && e.err == ENODEV) {
    // Another ADD may create it at the same moment: EEXIST is fine, we read it back below.
    if (!nl.create_bridge(cfg.bridge, mtu, mac_for_ip(cfg.gateway), &e) && e.err != EEXIST)
      return nl_error("failed to create the bridge", e);
    br = nl.link(cfg.bridge, &e);
  }
  if (!br) return nl_error("failed to look up the bridge", e);
  if (br->kind != "bridge")
    return CniError{kConflict, "the bridge name is taken",
                    cfg.bridge + " exists and is a " + (br->kind.empty() ? "device" : br->kind) +
                        " device, not a bridge; set \"bridge\" to another name or remove it"};
  if (!nl.add_addr(br->index, cfg.gateway, cfg.subnet.prefix, &e))
    return nl_error("failed to put the gateway address on the bridge", e);
  if (!br->up && !nl.set_link(br->index, std::nullopt, true, &e))
    return nl_error("failed to bring the bridge up", e);
  return *br;
}

// Undoes a failed ADD: the veth pair when this call made it, the address when this call
// allocated it. Best effort: the runtime also calls DEL after a failed ADD.
struct AddUndo {
  Netlink* pod = nullptr;
  int pod_index = 0;
  FileIpam* ipam = nullptr;
  const Env* env = nullptr;
  bool done = false;
  ~AddUndo() {
    if (done) return;
    NlError e;
    if (pod && pod_index) (void)pod->delete_link(pod_index, &e);
    if (ipam) (void)ipam->release(env->container_id, env->ifname);
  }
};

CniResult<std::string> cmd_add(const Env& env, const Config& cfg) {
  Namespaces ns;
  CNI_RETURN_IF_ERROR(open_host(ns));
  CNI_RETURN_IF_ERROR(open_pod(ns, env.netns));
  Netlink& host = *ns.host;
  Netlink& pod = *ns.pod;
  const int mtu = effective_mtu(cfg, cfg.mtu > 0 ? 0 : underlay_mtu(host));
  auto br = ensure_bridge(host, cfg, mtu);
  if (!br) return br.error();

  FileIpam ipam(cfg.data_dir, cfg.subnet);
  auto lease = ipam.allocate(env.container_id, env.ifname);
  if (!lease) return lease.error();
  AddUndo undo;
  undo.env = &env;
  if (!lease->reused) undo.ipam = &ipam;

  const std::string host_name = host_veth_name(env.container_id, env.ifname);
  NlError e;
  auto link = pod.link(env.ifname, &e);
  if (link) {
    // A repeated ADD: the pair must be ours (our host end exists) or we would hijack a device.
    if (link->kind != "veth" || !host.link(host_name, &e))
      return CniError{kConflict, "the container interface already exists",
                      env.ifname + " exists in " + env.netns + " and is not a skiff veth (no " +
                          host_name + " on the node)"};
  } else {
    if (e.err != ENODEV) return nl_error("failed to look up the container interface", e);
    bool made =
        pod.create_veth(env.ifname, mac_for_ip(lease->ip), mtu, host_name, ns.host_fd.get(), &e);
    if (!made && e.err == EEXIST) {
      // The host end survived a previous attachment whose pod side is gone: replace it.
      if (auto stale = host.link(host_name, &e)) (void)host.delete_link(stale->index, &e);
      made =
          pod.create_veth(env.ifname, mac_for_ip(lease->ip), mtu, host_name, ns.host_fd.get(), &e);
    }
    if (!made) return nl_error("failed to create the veth pair", e);
    link = pod.link(env.ifname, &e);
    if (!link) return nl_error("failed to read back the container interface", e);
    undo.pod = &pod;
    undo.pod_index = link->index;
  }
  auto hl = host.link(host_name, &e);
  if (!hl) return nl_error("failed to look up the host end of the veth pair", e);
  if ((hl->master != br->index || !hl->up) && !host.set_link(hl->index, br->index, true, &e))
    return nl_error("failed to attach the host end to the bridge", e);
  if (cfg.hairpin && !host.set_hairpin(hl->index, true, &e))
    return nl_error("failed to set hairpin mode", e);

  if (!pod.add_addr(link->index, lease->ip, cfg.subnet.prefix, &e))
    return nl_error("failed to add the container address", e);
  if (!link->up && !pod.set_link(link->index, std::nullopt, true, &e))
    return nl_error("failed to bring the container interface up", e);
  if (!pod.add_route(Ip4{0}, 0, cfg.gateway, link->index, &e))
    return nl_error("failed to add the default route", e);
  if (auto lo = pod.link("lo", &e); lo && !lo->up) (void)pod.set_link(lo->index, {}, true, &e);

  // Read the host end back: its MAC is the kernel's choice.
  hl = host.link(host_name, &e);
  AddOutcome out;
  out.interfaces = {{cfg.bridge, br->mac, ""},
                    {host_name, hl ? hl->mac : "", ""},
                    {env.ifname, link->mac, env.netns}};
  out.container_iface = 2;
  out.ip = lease->ip;
  out.prefix = cfg.subnet.prefix;
  out.gateway = cfg.gateway;
  undo.done = true;
  return add_result_json(cfg, out);
}

CniResult<std::string> cmd_del(const Env& env, const Config& cfg) {
  Namespaces ns;
  CNI_RETURN_IF_ERROR(open_host(ns));
  NlError e;
  // The pod side first: deleting one end of a veth pair deletes both.
  if (!env.netns.empty()) {
    if (open_pod(ns, env.netns).is_ok()) {
      if (auto l = ns.pod->link(env.ifname, &e); l && l->kind == "veth")
        if (!ns.pod->delete_link(l->index, &e) && e.err != ENODEV)
          return nl_error("failed to delete the container interface", e);
    }
    // A netns that is gone or unusable took its end of the pair with it (or will); go on.
  }
  if (auto h = ns.host->link(host_veth_name(env.container_id, env.ifname), &e))
    if (!ns.host->delete_link(h->index, &e) && e.err != ENODEV)
      return nl_error("failed to delete the host end of the veth pair", e);
  // The address last, so it is never handed out while still configured.
  FileIpam ipam(cfg.data_dir, cfg.subnet);
  CNI_RETURN_IF_ERROR(ipam.release(env.container_id, env.ifname));
  return std::string();
}

CniError check_failed(const std::string& details) {
  return CniError{kCheckFailed, "the container's network is not as ADD left it", details};
}

CniResult<std::string> cmd_check(const Env& env, const Config& cfg) {
  if (compare_versions(cfg.cni_version, "0.4.0") < 0)
    return CniError{kIncompatibleVersion, "CHECK is not supported by this cniVersion",
                    "cniVersion " + cfg.cni_version + " predates CHECK (0.4.0)"};
  FileIpam ipam(cfg.data_dir, cfg.subnet);
  auto ip = ipam.find(env.container_id, env.ifname);
  if (!ip) return ip.error();
  if (!*ip)
    return check_failed("no address is recorded for container " + env.container_id + " " +
                        env.ifname + " in " + cfg.data_dir);
  const std::string want = (*ip)->str() + "/" + std::to_string(cfg.subnet.prefix);
  if (!cfg.prev_result.empty()) {
    auto prev = prev_result_ips(cfg.prev_result);
    bool found = false;
    for (const auto& p : prev) found = found || p == want;
    if (!found) return check_failed("prevResult does not hold the recorded address " + want);
  }
  Namespaces ns;
  CNI_RETURN_IF_ERROR(open_host(ns));
  CNI_RETURN_IF_ERROR(open_pod(ns, env.netns));
  NlError e;
  auto link = ns.pod->link(env.ifname, &e);
  if (!link) return check_failed(env.ifname + " in " + env.netns + ": " + e.what);
  if (!link->up) return check_failed(env.ifname + " in " + env.netns + " is down");
  auto addrs = ns.pod->addrs(link->index, &e);
  if (!addrs) return nl_error("failed to list addresses", e);
  bool has_addr = false;
  for (const auto& a : *addrs)
    has_addr = has_addr || (a.ip == **ip && a.prefix == cfg.subnet.prefix);
  if (!has_addr) return check_failed(env.ifname + " does not have " + want);
  auto routes = ns.pod->routes(&e);
  if (!routes) return nl_error("failed to list routes", e);
  bool has_route = false;
  for (const auto& r : *routes)
    has_route = has_route || (r.dst_len == 0 && r.gw == cfg.gateway && r.oif == link->index);
  if (!has_route)
    return check_failed("no default route via " + cfg.gateway.str() + " dev " + env.ifname);
  const std::string host_name = host_veth_name(env.container_id, env.ifname);
  auto br = ns.host->link(cfg.bridge, &e);
  if (!br || br->kind != "bridge") return check_failed("bridge " + cfg.bridge + " is missing");
  auto hl = ns.host->link(host_name, &e);
  if (!hl) return check_failed("host end " + host_name + " is missing");
  if (hl->master != br->index) return check_failed(host_name + " is not on " + cfg.bridge);
  if (!hl->up) return check_failed(host_name + " is down");
  if (cfg.hairpin && hl->hairpin != 1) return check_failed(host_name + " is not in hairpin mode");
  return std::string();
}

CniResult<std::string> cmd_gc(const Config& cfg) {
  if (compare_versions(cfg.cni_version, "1.1.0") < 0)
    return CniError{kIncompatibleVersion, "GC needs cniVersion 1.1.0",
                    "config cniVersion is " + cfg.cni_version};
  if (!cfg.has_valid_attachments) return std::string();  // nothing known to be valid: keep all
  struct stat st;
  if (::stat(cfg.data_dir.c_str(), &st) != 0) return std::string();
  FileIpam ipam(cfg.data_dir, cfg.subnet);
  auto freed = ipam.gc(cfg.valid_attachments);
  if (!freed) return freed.error();
  Namespaces ns;
  if (open_host(ns).is_ok()) {
    NlError e;
    for (const auto& f : *freed)
      if (auto h = ns.host->link(host_veth_name(f.container_id, f.ifname), &e))
        (void)ns.host->delete_link(h->index, &e);
  }
  return std::string();
}

CniResult<std::string> cmd_status(const Config& cfg) {
  if (compare_versions(cfg.cni_version, "1.1.0") < 0)
    return CniError{kIncompatibleVersion, "STATUS needs cniVersion 1.1.0",
                    "config cniVersion is " + cfg.cni_version};
  FileIpam ipam(cfg.data_dir, cfg.subnet);
  if (auto l = ipam.list(); !l)  // creates the dir, takes the lock: we could serve an ADD
    return CniError{50, "the plugin is not available", l.error().details};
  return std::string();
}

}  // namespace

CniResult<std::string> run(const std::map<std::string, std::string>& env_vars,
                           const std::string& stdin_data) {
  auto env = parse_env(env_vars);
  if (!env) return env.error();
  if (env->command == Command::kVersion) return version_json(stdin_data);
  auto cfg = parse_config(stdin_data);
  if (!cfg) return cfg.error();
  switch (env->command) {
    case Command::kAdd:
      return cmd_add(*env, *cfg);
    case Command::kDel:
      return cmd_del(*env, *cfg);
    case Command::kCheck:
      return cmd_check(*env, *cfg);
    case Command::kGc:
      return cmd_gc(*cfg);
    case Command::kStatus:
      return cmd_status(*cfg);
    case Command::kVersion:
      break;
  }
  return version_json(stdin_data);
}

}  // namespace skiff::cni::plugin
