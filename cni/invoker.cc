#include "cni/invoker.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cni/exec.h"
#include "common/files.h"

extern char** environ;

namespace skiff::cni {

using json = nlohmann::json;

namespace {

const char* kVersions[] = {"1.1.0", "1.0.0", "0.4.0", "0.3.1", "0.3.0", "0.2.0", "0.1.0"};

bool has_suffix(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// "0.4.0" >= "0.4.0": compares dotted numbers.
bool version_at_least(const std::string& v, int major, int minor) {
  int a = 0, b = 0;
  std::sscanf(v.c_str(), "%d.%d", &a, &b);
  return a > major || (a == major && b >= minor);
}

// The CNI spec's rules for a container ID (also makes it safe inside a cache file name).
Status check_ids(const RuntimeConf& rt) {
  const std::string& id = rt.container_id;
  bool ok = !id.empty() && std::isalnum(static_cast<unsigned char>(id[0]));
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      ok = false;
    }
  }
  if (!ok) {
    return Status::invalid("CNI container ID \"" + id +
                           "\" must start with a letter or digit and hold only letters, digits, "
                           "'_', '-', '.'");
  }
  const std::string& ifn = rt.ifname;
  bool ifok = !ifn.empty() && ifn.size() <= 15 && ifn != "." && ifn != "..";
  for (char c : ifn) {
    if (c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c))) ifok = false;
  }
  if (!ifok) return Status::invalid("CNI interface name \"" + ifn + "\" is not a valid name");
  return Status::ok();
}

// CHECK exists from 0.4.0 on; for older configs and with disableCheck there is nothing to ask.
bool can_check(const json& list) {
  return !list.value("disableCheck", false) && version_at_least(list["cniVersion"], 0, 4);
}

// Validates one conflist and fills in what a runtime relies on. `what` names the source file.
Status validate_list(json& list, const std::string& what) {
  if (!list.is_object()) return Status::invalid(what + ": not a JSON object");
  if (!list.contains("name") || !list["name"].is_string() ||
      list["name"].get<std::string>().empty()) {
    return Status::invalid(what + ": missing network \"name\"");
  }
  if (!list.contains("cniVersion") || !list["cniVersion"].is_string()) {
    return Status::invalid(what + ": missing \"cniVersion\"");
  }
  std::string v = list["cniVersion"];
  if (std::find(std::begin(kVersions), std::end(kVersions), v) == std::end(kVersions)) {
    return Status::invalid(what + ": cniVersion \"" + v + "\" is not supported (1.1.0 .. 0.1.0)");
  }
  if (!list.contains("plugins") || !list["plugins"].is_array() || list["plugins"].empty()) {
    return Status::invalid(what + ": \"plugins\" must be a non-empty list");
  }
  for (auto& p : list["plugins"]) {
    if (!p.is_object() || !p.contains("type") || !p["type"].is_string() ||
        p["type"].get<std::string>().empty() ||
        p["type"].get<std::string>().find('/') != std::string::npos) {
      return Status::invalid(what + ": every plugin needs a \"type\" naming a binary");
    }
  }
  return Status::ok();
}

Result<json> parse_conf_file(const std::string& path) {
  auto text = files::read_file(path);
  if (!text) return text.status();
  json j = json::parse(*text, nullptr, false);
  if (j.is_discarded()) return Status::invalid(path + ": not valid JSON");
  if (has_suffix(path, ".conflist")) {
    SKIFF_RETURN_IF_ERROR(validate_list(j, path));
    return j;
  }
  // A single-plugin .conf/.json becomes a list of one, as libcni does.
  if (!j.is_object()) return Status::invalid(path + ": not a JSON object");
  json list = {{"cniVersion", j.value("cniVersion", "")},
               {"name", j.value("name", "")},
               {"plugins", json::array({j})}};
  if (j.contains("disableCheck")) list["disableCheck"] = j["disableCheck"];
  SKIFF_RETURN_IF_ERROR(validate_list(list, path));
  list["plugins"][0].erase("name");
  list["plugins"][0].erase("cniVersion");
  return list;
}

// `head` names the call: "CNI plugin bridge ADD for container <id>".
std::string error_text(const std::string& head, const ExecOutput& o, Code* code) {
  json e = json::parse(o.out, nullptr, false);
  if (e.is_object() && (e.contains("code") || e.contains("msg"))) {
    int c = e.value("code", 0);
    // 11 = "try again later" in the spec; 3 = container unknown; 1/2/4/6/7 = bad config/input.
    *code = c == 11                                            ? Code::kUnavailable
            : c == 3                                           ? Code::kNotFound
            : (c == 1 || c == 2 || c == 4 || c == 6 || c == 7) ? Code::kInvalid
                                                               : Code::kInternal;
    std::string m = head + ": code " + std::to_string(c) + ": " + e.value("msg", "");
    std::string details = e.value("details", "");
    if (!details.empty()) m += ": " + details;
    return m;
  }
  *code = Code::kInternal;
  std::string err = o.err;
  while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  if (err.size() > 1000) err = "..." + err.substr(err.size() - 1000);
  if (err.empty()) err = o.out.substr(0, 1000);
  return head + ": exit status " + std::to_string(o.exit_code) + (err.empty() ? "" : ": " + err);
}

CniResult to_result(const json& r) {
  CniResult out;
  out.cni_version = r.value("cniVersion", "");
  out.raw_json = r.dump();
  if (r.contains("ips") && r["ips"].is_array()) {
    for (const auto& ip : r["ips"]) {
      IpConfig c;
      c.address = ip.value("address", "");
      c.gateway = ip.value("gateway", "");
      if (ip.contains("interface") && ip["interface"].is_number_integer()) {
        c.interface = ip["interface"].get<int>();
      }
      out.ips.push_back(c);
    }
  }
  for (const char* k : {"ip4", "ip6"}) {  // 0.1.0 / 0.2.0 results
    if (r.contains(k) && r[k].is_object()) {
      out.ips.push_back({r[k].value("ip", ""), r[k].value("gateway", ""), -1});
    }
  }
  return out;
}

}  // namespace

std::string CniResult::first_ipv4() const {
  for (const auto& ip : ips) {
    if (ip.address.find(':') != std::string::npos || ip.address.empty()) continue;
    return ip.address.substr(0, ip.address.find('/'));
  }
  return "";
}

struct CniInvoker::Impl {
  std::mutex mu;
  std::shared_ptr<const json> list;  // guarded by mu; replaced whole by load()
  std::string source;

  std::shared_ptr<const json> snapshot() {
    std::lock_guard<std::mutex> l(mu);
    return list;
  }
};

CniInvoker::CniInvoker(Options opts) : opts_(std::move(opts)), impl_(std::make_shared<Impl>()) {}

Status CniInvoker::load() {
  DIR* d = ::opendir(opts_.conf_dir.c_str());
  if (!d) return Status::io("open CNI config dir " + opts_.conf_dir);
  std::vector<std::string> files;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (has_suffix(n, ".conflist") || has_suffix(n, ".conf") || has_suffix(n, ".json")) {
      files.push_back(n);
    }
  }
  ::closedir(d);
  std::sort(files.begin(), files.end());
  std::string why;
  for (const auto& f : files) {
    std::string path = opts_.conf_dir + "/" + f;
    auto list = parse_conf_file(path);
    if (!list) {
      why += (why.empty() ? "" : "; ") + list.status().message();
      continue;
    }
    std::lock_guard<std::mutex> l(impl_->mu);
    impl_->list = std::make_shared<const json>(std::move(*list));
    impl_->source = path;
    return Status::ok();
  }
  std::lock_guard<std::mutex> l(impl_->mu);
  impl_->list.reset();
  if (files.empty())
    return Status::unavailable("no CNI network config (*.conflist, *.conf, *.json) in " +
                               opts_.conf_dir);
  return Status::invalid("no usable CNI network config in " + opts_.conf_dir + ": " + why);
}

bool CniInvoker::ready() const { return impl_->snapshot() != nullptr; }

std::string CniInvoker::network_name() const {
  auto l = impl_->snapshot();
  return l ? l->value("name", "") : "";
}

namespace {

struct Call {
  const CniInvoker::Options& opts;
  const RuntimeConf& rt;
  const json& list;

  std::string cache_path() const {
    return opts.cache_dir + "/results/" + list.value("name", "") + "-" + rt.container_id + "-" +
           rt.ifname;
  }

  std::string cni_args() const {
    std::string s;
    bool ignore = false;
    for (const auto& [k, v] : rt.args) {
      if (k == "IgnoreUnknown") ignore = true;
    }
    // Kubernetes runtimes send IgnoreUnknown=1 so plugins that parse CNI_ARGS strictly
    // (host-local, bridge) accept the K8S_POD_* keys they do not know.
    if (!rt.args.empty() && !ignore) s = "IgnoreUnknown=1";
    for (const auto& [k, v] : rt.args) s += (s.empty() ? "" : ";") + k + "=" + v;
    return s;
  }

  Result<std::string> find_plugin(const std::string& type) const {
    for (const auto& dir : opts.bin_dirs) {
      std::string p = dir + "/" + type;
      if (::access(p.c_str(), X_OK) == 0) return p;
    }
    std::string dirs;
    for (const auto& d : opts.bin_dirs) dirs += (dirs.empty() ? "" : ":") + d;
    return Status::not_found("CNI plugin " + type + " not found in " + dirs);
  }

  // Runs one plugin; on success the parsed stdout (null when it printed nothing). A call for
  // the whole network (GC: rt.container_id empty) passes no container, netns, ifname or args,
  // and `extra`'s keys in the config.
  Result<json> run(const json& plugin, const std::string& cmd, const json* prev, bool with_netns,
                   const json* extra = nullptr) const {
    std::string type = plugin["type"];
    auto path = find_plugin(type);
    if (!path) return path.status();
    json conf = plugin;
    conf["name"] = list["name"];
    conf["cniVersion"] = list["cniVersion"];
    if (prev && !prev->is_null()) conf["prevResult"] = *prev;
    if (extra) conf.update(*extra);
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) {
      if (std::strncmp(*e, "CNI_", 4) != 0) env.emplace_back(*e);
    }
    std::string cni_path;
    for (const auto& d : opts.bin_dirs) cni_path += (cni_path.empty() ? "" : ":") + d;
    env.push_back("CNI_COMMAND=" + cmd);
    const bool attachment = !rt.container_id.empty();
    if (attachment) {
      env.push_back("CNI_CONTAINERID=" + rt.container_id);
      if (with_netns) env.push_back("CNI_NETNS=" + rt.netns);
      env.push_back("CNI_IFNAME=" + rt.ifname);
      std::string args = cni_args();
      if (!args.empty()) env.push_back("CNI_ARGS=" + args);
    }
    env.push_back("CNI_PATH=" + cni_path);
    auto out = exec_plugin(*path, env, conf.dump(), opts.timeout);
    std::string head = "CNI plugin " + type + " " + cmd +
                       (attachment ? " for container " + rt.container_id
                                   : " for network " + list.value("name", ""));
    if (!out) return out.status().with_context(head);
    if (out->exit_code != 0) {
      Code code;
      std::string msg = error_text(head, *out, &code);
      return Status(code, msg);
    }
    if (out->out.find_first_not_of(" \t\r\n") == std::string::npos) return json();
    json r = json::parse(out->out, nullptr, false);
    if (r.is_discarded()) {
      return Status::invalid(head + ": result is not JSON: " + out->out.substr(0, 300));
    }
    return r;
  }

  Result<json> read_cache() const {
    auto text = files::read_file(cache_path());
    if (!text) return text.status();
    json j = json::parse(*text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return Status::invalid("CNI cache " + cache_path() + " is not valid JSON");
    }
    return j;
  }
};

}  // namespace

Result<CniResult> CniInvoker::add(const RuntimeConf& rt) {
  SKIFF_RETURN_IF_ERROR(check_ids(rt));
  auto list = impl_->snapshot();
  if (!list)
    return Status::unavailable("CNI ADD for container " + rt.container_id +
                               ": no network config loaded from " + opts_.conf_dir);
  Call call{opts_, rt, *list};
  // An ADD for this container and interface is cached. The spec forbids a second ADD without a
  // DEL. Same netns path: either a retry after a kubelet restart (the attachment is there:
  // answer with what the first ADD returned), or a new namespace at the same path (a sandbox
  // made again, e.g. after a reboot, which leaves the data dir and this cache but not the
  // namespace): CHECK tells them apart, and where the network has no CHECK the attachment is
  // made again. Another netns: the old attachment is stale. A stale one is undone (in the
  // netns it was made in) before attaching anew.
  if (auto cached = call.read_cache(); cached && cached->contains("result")) {
    RuntimeConf old = rt;
    old.netns = cached->value("netns", "");
    if (old.netns == rt.netns && can_check(*list) && check(rt).is_ok()) {
      return to_result((*cached)["result"]);
    }
    SKIFF_RETURN_IF_ERROR(del(old).with_context("remove the stale attachment before ADD"));
  }
  json prev;
  for (const auto& plugin : (*list)["plugins"]) {
    auto r = call.run(plugin, "ADD", &prev, true);
    if (!r) {
      // Undo what the earlier plugins did (addresses, veths), best effort; the error that
      // matters is the ADD's.
      for (auto it = (*list)["plugins"].rbegin(); it != (*list)["plugins"].rend(); ++it) {
        (void)call.run(*it, "DEL", nullptr, true);
      }
      return r.status();
    }
    if (!r->is_null()) prev = std::move(*r);
  }
  if (prev.is_null()) {
    return Status::invalid("CNI ADD for container " + rt.container_id + ": network " +
                           list->value("name", "") + " returned no result");
  }
  json args = json::array();
  for (const auto& [k, v] : rt.args) args.push_back({k, v});
  json cache = {{"kind", "cniCacheV1"}, {"containerId", rt.container_id},
                {"ifName", rt.ifname},  {"networkName", (*list)["name"]},
                {"netns", rt.netns},    {"cniArgs", args},
                {"config", *list},      {"result", prev}};
  SKIFF_RETURN_IF_ERROR(files::mkdir_p(opts_.cache_dir + "/results"));
  SKIFF_RETURN_IF_ERROR(files::write_file_atomic(call.cache_path(), cache.dump()));
  return to_result(prev);
}

Status CniInvoker::check(const RuntimeConf& rt) {
  SKIFF_RETURN_IF_ERROR(check_ids(rt));
  auto list = impl_->snapshot();
  if (!list)
    return Status::unavailable("CNI CHECK for container " + rt.container_id +
                               ": no network config loaded from " + opts_.conf_dir);
  if (!can_check(*list)) return Status::ok();
  Call call{opts_, rt, *list};
  auto cached = call.read_cache();
  if (!cached) {
    return Status::not_found("CNI CHECK for container " + rt.container_id +
                             ": no cached ADD result (" + cached.status().message() + ")");
  }
  json prev = cached->value("result", json());
  for (const auto& plugin : (*list)["plugins"]) {
    auto r = call.run(plugin, "CHECK", &prev, true);
    if (!r) return r.status();
  }
  return Status::ok();
}

Status CniInvoker::del(const RuntimeConf& rt) {
  SKIFF_RETURN_IF_ERROR(check_ids(rt));
  auto current = impl_->snapshot();
  // Prefer the config the ADD ran with (cached): DEL must undo that, even if the conf dir
  // changed since. Without a cache (ADD never finished, or DEL already done) use the current
  // one; plugins must tolerate deleting what does not exist.
  json list, prev;
  std::string cache_file;
  if (current) {
    Call probe{opts_, rt, *current};
    cache_file = probe.cache_path();
    if (auto c = probe.read_cache(); c && c->contains("config")) {
      list = (*c)["config"];
      prev = c->value("result", json());
    }
  }
  if (list.is_null() && current) list = *current;
  if (list.is_null()) return Status::ok();  // never configured: nothing can have been added
  if (!validate_list(list, "cached CNI config").is_ok()) list = current ? *current : json();
  if (list.is_null()) return Status::ok();
  Call call{opts_, rt, list};
  // The netns may be gone already (pod torn down, node rebooted): DEL then runs without
  // CNI_NETNS, which the spec allows for DEL; plugins release IPAM and skip the interface.
  bool netns_there = !rt.netns.empty() && ::access(rt.netns.c_str(), F_OK) == 0;
  for (auto it = list["plugins"].rbegin(); it != list["plugins"].rend(); ++it) {
    auto r = call.run(*it, "DEL", prev.is_null() ? nullptr : &prev, netns_there);
    if (!r) return r.status();
  }
  std::string path = call.cache_path();
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Status::io("remove CNI cache " + path);
  if (!cache_file.empty() && cache_file != path) ::unlink(cache_file.c_str());
  return Status::ok();
}

Status CniInvoker::gc(const std::vector<Attachment>& valid) {
  auto list = impl_->snapshot();
  if (!list || list->value("disableGC", false)) return Status::ok();
  const std::string network = list->value("name", "");
  auto is_valid = [&](const std::string& id, const std::string& ifname) {
    for (const auto& a : valid)
      if (a.container_id == id && a.ifname == ifname) return true;
    return false;
  };
  std::string errors;
  Code first = Code::kOk;
  auto note = [&](const Status& s) {
    if (s) return;
    if (first == Code::kOk) first = s.code();
    errors += (errors.empty() ? "" : "; ") + s.message();
  };
  // 1. Cached ADDs of this network that are no longer valid: DEL them, as libcni does, so
  // plugins without GC (cniVersion before 1.1.0) release them too.
  const std::string dir = opts_.cache_dir + "/results";
  if (DIR* d = ::opendir(dir.c_str())) {
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.rfind(network + "-", 0) == 0) names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      auto text = files::read_file(dir + "/" + n);
      if (!text) continue;  // removed meanwhile
      json c = json::parse(*text, nullptr, false);
      if (!c.is_object() || c.value("networkName", "") != network) continue;
      RuntimeConf rt;
      rt.container_id = c.value("containerId", "");
      rt.ifname = c.value("ifName", "");
      rt.netns = c.value("netns", "");
      if (rt.container_id.empty() || is_valid(rt.container_id, rt.ifname)) continue;
      note(del(rt).with_context("GC of a stale attachment"));
    }
  }
  // 2. The plugins' own GC, from 1.1.0 on. The spec's field is cni.dev/valid-attachments; an
  // earlier draft said cni.dev/attachments, and libcni sends both.
  if (version_at_least((*list)["cniVersion"], 1, 1)) {
    json att = json::array();
    for (const auto& a : valid)
      att.push_back({{"containerID", a.container_id}, {"ifname", a.ifname}});
    json extra = {{"cni.dev/valid-attachments", att}, {"cni.dev/attachments", att}};
    RuntimeConf none;  // no container: a call for the whole network
    Call call{opts_, none, *list};
    for (const auto& plugin : (*list)["plugins"])
      note(call.run(plugin, "GC", nullptr, false, &extra).status());
  }
  if (first == Code::kOk) return Status::ok();
  return Status(first, "CNI GC of network " + network + ": " + errors);
}

}  // namespace skiff::cni
