#include "cli/describe_writer.h"

#include <algorithm>
#include <ctime>
#include <vector>

namespace skiff::cli {

namespace {

constexpr const char* kLastApplied = "kubectl.kubernetes.io/last-applied-configuration";
constexpr size_t kMaxAnnotationLen = 140;  // kubectl's maxAnnotationLen

std::string text_of(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// The (single) key of a volume or probe handler object other than the named fields.
const json& array_or_empty(const json& o, const char* key) {
  static const json kEmpty = json::array();
  const json& v = child(o, key);
  return v.is_array() ? v : kEmpty;
}

}  // namespace

void DescribeWriter::write(int level, const std::string& text) {
  std::string s = std::string(static_cast<size_t>(level) * 2, ' ') + text;
  if (aligned_) {
    tw_.write(s);
  } else {
    raw_ += s;
  }
}

void DescribeWriter::map(int level, const std::string& key, const json& m, const char* sep,
                         bool skip_last_applied) {
  std::vector<std::string> entries;
  if (m.is_object()) {
    for (const auto& [k, v] : m.items()) {
      if (skip_last_applied && k == kLastApplied) continue;
      entries.push_back(k + sep + text_of(v));
    }
  }
  if (entries.empty()) {
    kv(level, key, "<none>");
    return;
  }
  kv(level, key, entries[0]);
  for (size_t i = 1; i < entries.size(); ++i) line(level, "\t" + entries[i]);
}

std::string DescribeWriter::flush() {
  if (aligned_) return tw_.flush();
  std::string out = std::move(raw_);
  raw_.clear();
  return out;
}

std::string str_of(const json& o, const char* key, const std::string& def) {
  if (!o.is_object()) return def;
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return def;
  return text_of(*it);
}

const json& child(const json& o, const char* key) {
  static const json kNull;
  if (!o.is_object()) return kNull;
  auto it = o.find(key);
  return it == o.end() ? kNull : *it;
}

std::optional<std::chrono::system_clock::time_point> parse_rfc3339(const std::string& t) {
  std::tm tm{};
  if (t.size() < 19 || !strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string format_describe_time(const std::string& t) {
  auto tp = parse_rfc3339(t);
  if (!tp) return t.empty() ? "<unknown>" : t;
  std::time_t tt = std::chrono::system_clock::to_time_t(*tp);
  std::tm local{};
  localtime_r(&tt, &local);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S %z", &local);
  return buf;
}

void write_labels(DescribeWriter& w, const std::string& title, const json& labels) {
  w.write(0, title + ":\t");
  if (!labels.is_object() || labels.empty()) {
    w.write(0, "<none>\n");
    return;
  }
  bool first = true;
  for (const auto& [k, v] : labels.items()) {  // nlohmann objects iterate sorted by key
    if (!first) w.write(0, "\t");
    first = false;
    w.write(0, k + "=" + text_of(v) + "\n");
  }
}

void write_annotations(DescribeWriter& w, const std::string& title, const json& annotations) {
  w.write(0, title + ":\t");
  std::vector<std::pair<std::string, std::string>> entries;
  if (annotations.is_object()) {
    for (const auto& [k, v] : annotations.items()) {
      if (k != kLastApplied) entries.emplace_back(k, text_of(v));
    }
  }
  if (entries.empty()) {
    w.write(0, "<none>\n");
    return;
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i) w.write(0, "\t");
    const auto& [key, raw] = entries[i];
    std::string value = raw;
    if (!value.empty() && value.back() == '\n') value.pop_back();
    if (value.size() + key.size() + 2 > kMaxAnnotationLen ||
        value.find('\n') != std::string::npos) {
      w.write(0, key + ":\n");
      size_t pos = 0;
      while (true) {
        size_t nl = value.find('\n', pos);
        std::string part = value.substr(pos, nl == std::string::npos ? nl : nl - pos);
        // kubectl's shorten(): cut at maxAnnotationLen-2 and mark with "...".
        if (part.size() > kMaxAnnotationLen - 2)
          part = part.substr(0, kMaxAnnotationLen - 2) + "...";
        w.write(0, "\t  " + part + "\n");
        if (nl == std::string::npos) break;
        pos = nl + 1;
      }
    } else {
      w.write(0, key + ": " + value + "\n");
    }
  }
}

namespace {

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

// kubectl's DescribeProbe.
std::string probe_text(const json& p) {
  auto num = [&](const char* k, int def) {
    const json& v = child(p, k);
    return v.is_number_integer() ? v.get<int64_t>() : static_cast<int64_t>(def);
  };
  std::string attrs = "delay=" + std::to_string(num("initialDelaySeconds", 0)) +
                      "s timeout=" + std::to_string(num("timeoutSeconds", 1)) +
                      "s period=" + std::to_string(num("periodSeconds", 10)) +
                      "s #success=" + std::to_string(num("successThreshold", 1)) +
                      " #failure=" + std::to_string(num("failureThreshold", 3));
  if (const json& e = child(p, "exec"); e.is_object()) {
    std::vector<std::string> cmd;
    for (const auto& c : array_or_empty(e, "command")) cmd.push_back(text_of(c));
    return "exec [" + join(cmd, " ") + "] " + attrs;
  }
  if (const json& h = child(p, "httpGet"); h.is_object()) {
    std::string scheme = str_of(h, "scheme", "HTTP");
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    std::string host = str_of(h, "host");
    std::string port = str_of(h, "port");
    std::string hostport = port.empty() ? host : host + ":" + port;
    return "http-get " + scheme + "://" + hostport + str_of(h, "path") + " " + attrs;
  }
  if (const json& t = child(p, "tcpSocket"); t.is_object()) {
    return "tcp-socket " + str_of(t, "host") + ":" + str_of(t, "port") + " " + attrs;
  }
  if (const json& g = child(p, "grpc"); g.is_object()) {
    return "grpc <pod>:" + str_of(g, "port") + " " + str_of(g, "service") + " " + attrs;
  }
  return "unknown " + attrs;
}

void describe_template_containers(DescribeWriter& w, const char* label, const json& containers) {
  w.write(0, std::string("  ") + label + ":" + (containers.empty() ? " <none>" : "") + "\n");
  for (const auto& c : containers) {
    w.write(1, " " + str_of(c, "name") + ":\n");
    w.kv(2, "Image", str_of(c, "image"));
    std::vector<std::string> ports, host_ports;
    for (const auto& p : array_or_empty(c, "ports")) {
      std::string proto = str_of(p, "protocol", "TCP");
      ports.push_back(str_of(p, "containerPort") + "/" + proto);
      host_ports.push_back(str_of(p, "hostPort", "0") + "/" + proto);
    }
    std::string port = join(ports, ", "), host_port = join(host_ports, ", ");
    w.kv(2, ports.size() > 1 ? "Ports" : "Port", port.empty() ? "<none>" : port);
    w.kv(2, host_ports.size() > 1 ? "Host Ports" : "Host Port",
         host_port.empty() ? "<none>" : host_port);
    for (const char* key : {"command", "args"}) {
      const json& list = array_or_empty(c, key);
      if (list.empty()) continue;
      w.line(2, std::string(key) == "command" ? "Command:" : "Args:");
      for (const auto& a : list) {
        std::string text = text_of(a);
        size_t pos = 0;
        while (true) {
          size_t nl = text.find('\n', pos);
          w.line(3, text.substr(pos, nl == std::string::npos ? nl : nl - pos));
          if (nl == std::string::npos) break;
          pos = nl + 1;
        }
      }
    }
    const json& res = child(c, "resources");
    for (const char* kind : {"limits", "requests"}) {
      const json& r = child(res, kind);
      if (!r.is_object() || r.empty()) continue;
      w.line(2, std::string(kind) == "limits" ? "Limits:" : "Requests:");
      for (const auto& [rk, rv] : r.items()) w.kv(3, rk, text_of(rv));
    }
    for (const auto& [key, title] :
         {std::pair{"livenessProbe", "Liveness"}, std::pair{"readinessProbe", "Readiness"},
          std::pair{"startupProbe", "Startup"}}) {
      const json& p = child(c, key);
      if (p.is_object()) w.kv(2, title, probe_text(p));
    }
    const json& env = array_or_empty(c, "env");
    w.line(2, std::string("Environment:") + (env.empty() ? "\t<none>" : ""));
    for (const auto& e : env) {
      if (!child(e, "valueFrom").is_object()) {
        std::string v = str_of(e, "value");
        size_t pos = 0;
        bool first = true;
        while (true) {
          size_t nl = v.find('\n', pos);
          std::string part = v.substr(pos, nl == std::string::npos ? nl : nl - pos);
          w.line(3, first ? str_of(e, "name") + ":\t" + part : "\t" + part);
          first = false;
          if (nl == std::string::npos) break;
          pos = nl + 1;
        }
        continue;
      }
      const json& from = child(e, "valueFrom");
      std::string name = str_of(e, "name");
      if (const json& f = child(from, "fieldRef"); f.is_object()) {
        w.line(3, name + ":\t (" + str_of(f, "apiVersion") + ":" + str_of(f, "fieldPath") + ")");
      } else if (const json& r = child(from, "resourceFieldRef"); r.is_object()) {
        w.line(3, name + ":\t" + " (" + str_of(r, "containerName") + ":" + str_of(r, "resource") +
                      ")");
      } else if (const json& s = child(from, "secretKeyRef"); s.is_object()) {
        w.line(3, name + ":\t<set to the key '" + str_of(s, "key") + "' in secret '" +
                      str_of(s, "name") + "'>\tOptional: " + str_of(s, "optional", "false"));
      } else if (const json& m = child(from, "configMapKeyRef"); m.is_object()) {
        w.line(3, name + ":\t<set to the key '" + str_of(m, "key") + "' of config map '" +
                      str_of(m, "name") + "'>\tOptional: " + str_of(m, "optional", "false"));
      }
    }
    std::vector<json> mounts;
    for (const auto& m : array_or_empty(c, "volumeMounts")) mounts.push_back(m);
    std::sort(mounts.begin(), mounts.end(), [](const json& a, const json& b) {
      return str_of(a, "mountPath") < str_of(b, "mountPath");
    });
    w.line(2, std::string("Mounts:") + (mounts.empty() ? "\t<none>" : ""));
    for (const auto& m : mounts) {
      std::vector<std::string> flags{m.value("readOnly", false) ? "ro" : "rw"};
      if (!str_of(m, "subPath").empty()) flags.push_back("path=\"" + str_of(m, "subPath") + "\"");
      w.line(3,
             str_of(m, "mountPath") + " from " + str_of(m, "name") + " (" + join(flags, ",") + ")");
    }
  }
}

void describe_template_volumes(DescribeWriter& w, const json& volumes) {
  if (!volumes.is_array() || volumes.empty()) {
    w.write(0, "  Volumes:\t<none>\n");
    return;
  }
  w.write(0, "  Volumes:\n");
  for (const auto& v : volumes) {
    w.write(1, " " + str_of(v, "name") + ":\n");
    if (const json& e = child(v, "emptyDir"); e.is_object()) {
      std::string limit = str_of(e, "sizeLimit");
      w.write(2,
              "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n"
              "    Medium:\t" +
                  str_of(e, "medium") + "\n    SizeLimit:\t" +
                  (limit.empty() || limit == "0" ? "<unset>" : limit) + "\n");
    } else if (const json& h = child(v, "hostPath"); h.is_object()) {
      w.write(2, "Type:\tHostPath (bare host directory volume)\n    Path:\t" + str_of(h, "path") +
                     "\n    HostPathType:\t" + str_of(h, "type", "<none>") + "\n");
    } else if (const json& c = child(v, "configMap"); c.is_object()) {
      w.write(2, "Type:\tConfigMap (a volume populated by a ConfigMap)\n    Name:\t" +
                     str_of(c, "name") + "\n    Optional:\t" + str_of(c, "optional", "false") +
                     "\n");
    } else if (const json& s = child(v, "secret"); s.is_object()) {
      w.write(2, "Type:\tSecret (a volume populated by a Secret)\n    SecretName:\t" +
                     str_of(s, "secretName") + "\n    Optional:\t" +
                     str_of(s, "optional", "false") + "\n");
    } else {
      for (const auto& [k, src] : v.items()) {
        if (k != "name") w.write(2, "Type:\t" + k + "\n");
      }
    }
  }
}

void write_tolerations(DescribeWriter& w, const std::string& title, const json& tolerations) {
  w.write(0, title + ":\t");
  if (!tolerations.is_array() || tolerations.empty()) {
    w.write(0, "<none>\n");
    return;
  }
  // kubectl prints them sorted by key.
  std::vector<json> sorted(tolerations.begin(), tolerations.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const json& a, const json& b) {
    return str_of(a, "key") < str_of(b, "key");
  });
  bool first = true;
  for (const auto& t : sorted) {
    if (!first) w.write(0, "\t");
    first = false;
    std::string text = str_of(t, "key");
    if (!str_of(t, "value").empty()) text += "=" + str_of(t, "value");
    if (!str_of(t, "effect").empty()) text += ":" + str_of(t, "effect");
    // operator Exists without a value tolerates everything with that key/effect.
    if (str_of(t, "operator") == "Exists" && str_of(t, "value").empty()) {
      text += text.empty() ? "op=Exists" : " op=Exists";
    }
    if (!str_of(t, "tolerationSeconds").empty()) {
      text += " for " + str_of(t, "tolerationSeconds") + "s";
    }
    w.write(0, text + "\n");
  }
}

}  // namespace

void describe_pod_template(DescribeWriter& w, const json& tmpl) {
  w.line(0, "Pod Template:");
  if (!tmpl.is_object()) {
    w.write(1, "<unset>");
    return;
  }
  const json& md = child(tmpl, "metadata");
  const json& spec = child(tmpl, "spec");
  write_labels(w, "  Labels", child(md, "labels"));
  const json& ann = child(md, "annotations");
  if (ann.is_object() && !ann.empty()) write_annotations(w, "  Annotations", ann);
  if (!str_of(spec, "serviceAccountName").empty()) {
    w.kv(1, "Service Account", str_of(spec, "serviceAccountName"));
  }
  const json& init = array_or_empty(spec, "initContainers");
  if (!init.empty()) describe_template_containers(w, "Init Containers", init);
  describe_template_containers(w, "Containers", array_or_empty(spec, "containers"));
  describe_template_volumes(w, child(spec, "volumes"));
  if (!str_of(spec, "priorityClassName").empty()) {
    w.kv(1, "Priority Class Name", str_of(spec, "priorityClassName"));
  }
  write_labels(w, "  Node-Selectors", child(spec, "nodeSelector"));
  write_tolerations(w, "  Tolerations", child(spec, "tolerations"));
}

}  // namespace skiff::cli
