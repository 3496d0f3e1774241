#include "kubelet/node_info.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace skiff::kubelet {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  return s.substr(i);
}

}  // namespace

int64_t parse_meminfo_total(std::string_view meminfo) {
  size_t p = meminfo.find("MemTotal:");
  if (p == std::string_view::npos) return 0;
  p += 9;
  while (p < meminfo.size() && meminfo[p] == ' ') ++p;
  int64_t kb = 0;
  while (p < meminfo.size() && meminfo[p] >= '0' && meminfo[p] <= '9')
    kb = kb * 10 + (meminfo[p++] - '0');
  return kb * 1024;
}

std::string parse_os_release(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("PRETTY_NAME=", 0) != 0) continue;
    std::string v = line.substr(12);
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
      v = v.substr(1, v.size() - 2);
    return v;
  }
  return "Linux";
}

std::string first_ipv4() {
  struct ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string found;
  for (auto* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    if ((a->ifa_flags & IFF_LOOPBACK) || !(a->ifa_flags & IFF_UP)) continue;
    char buf[INET_ADDRSTRLEN];
    auto* sin = reinterpret_cast<struct sockaddr_in*>(a->ifa_addr);
    if (inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf)) {
      found = buf;
      break;
    }
  }
  freeifaddrs(list);
  return found;
}

MachineInfo gather_machine_info(const std::string& node_ip) {
  MachineInfo m;
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  m.cpus = n > 0 ? n : 1;
  m.memory_bytes = parse_meminfo_total(read_file("/proc/meminfo"));
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) m.hostname = host;
  m.internal_ip = !node_ip.empty() ? node_ip : first_ipv4();
  if (m.internal_ip.empty()) m.internal_ip = "127.0.0.1";
  struct utsname u;
  if (uname(&u) == 0) m.kernel_version = u.release;
  m.os_image = parse_os_release(read_file("/etc/os-release"));
  m.machine_id = trim(read_file("/etc/machine-id"));
  m.boot_id = trim(read_file("/proc/sys/kernel/random/boot_id"));
  m.system_uuid = trim(read_file("/sys/class/dmi/id/product_uuid"));
  return m;
}

proto::NodeStatus build_node_status(const MachineInfo& m, int max_pods, int port,
                                    const std::vector<proto::ContainerImage>& images,
                                    const proto::NodeStatus& old,
                                    std::chrono::system_clock::time_point now) {
  proto::NodeStatus s;
  s.capacity["cpu"] = proto::Quantity::from_int(m.cpus);
  s.capacity["memory"] =
      proto::Quantity::from_int(m.memory_bytes, proto::Quantity::Format::kBinarySI);
  s.capacity["pods"] = proto::Quantity::from_int(max_pods);
  s.allocatable = s.capacity;
  auto t = proto::Time::at(std::chrono::time_point_cast<std::chrono::seconds>(now));
  auto cond = [&](const char* type, const char* status, const char* reason, const char* msg) {
    proto::NodeCondition c;
    c.type = type;
    c.status = status;
    c.reason = reason;
    c.message = msg;
    c.last_heartbeat_time = t;
    c.last_transition_time = t;
    for (const auto& o : old.conditions)
      if (o.type == c.type && o.status == c.status && !o.last_transition_time.is_zero())
        c.last_transition_time = o.last_transition_time;
    s.conditions.push_back(c);
  };
  cond("MemoryPressure", "False", "KubeletHasSufficientMemory",
       "kubelet has sufficient memory available");
  cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure");
  cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available");
  cond("Ready", "True", "KubeletReady", "kubelet is posting ready status");
  s.addresses.push_back({"InternalIP", m.internal_ip});
  s.addresses.push_back({"Hostname", m.hostname});
  s.daemon_endpoints.kubelet_endpoint.port = port;
  auto& ni = s.node_info;
  ni.machine_id = m.machine_id;
  ni.system_uuid = m.system_uuid;
  ni.boot_id = m.boot_id;
  ni.kernel_version = m.kernel_version;
  ni.os_image = m.os_image;
  ni.container_runtime_version = kRuntimeVersion;
  ni.kubelet_version = kKubeletVersion;
  ni.kube_proxy_version = "";
  ni.operating_system = "linux";
  ni.architecture = "amd64";
  s.images = images;
  return s;
}

}  // namespace skiff::kubelet
