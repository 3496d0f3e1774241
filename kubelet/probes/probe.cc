// run_once: one exec, httpGet or tcpSocket check, with Kubernetes' results and messages
// (pkg/probe/{exec,http,tcp} and pkg/kubelet/prober/prober.go).
#include <cctype>

#include "kubelet/probes/net.h"
#include "kubelet/probes/prober.h"

namespace skiff::probes {
namespace {

constexpr size_t kMaxHeaderBytes = 16 * 1024;
constexpr int kMaxRedirects = 10;  // Go's http.Client default
constexpr const char* kUserAgent = "kube-probe/1.32";

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Outcome unknown(std::string msg) { return {Result::kUnknown, std::move(msg)}; }

// A port number, or a container port's name (Kubernetes' ResolveContainerPort).
skiff::Result<int> resolve_port(const proto::IntOrString& port, const proto::Container& c) {
  int n = 0;
  if (port.is_string) {
    bool found = false;
    for (const auto& p : c.ports) {
      if (p.name == port.str_val) {
        n = p.container_port;
        found = true;
        break;
      }
    }
    if (!found) return Status::invalid("port \"" + port.str_val + "\" not found in container");
  } else {
    n = port.int_val;
  }
  if (n <= 0 || n > 65535) return Status::invalid("invalid port number: " + std::to_string(n));
  return n;
}

std::string probe_host(const std::string& host, const Target& t) {
  if (!host.empty()) return host;
  return t.pod_ip.empty() ? "127.0.0.1" : t.pod_ip;
}

std::chrono::milliseconds timeout_of(const proto::Probe& p) {
  return std::chrono::seconds(p.timeout_seconds > 0 ? p.timeout_seconds : 1);
}

std::string join_argv(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

Outcome run_exec(const proto::ExecAction& e, const proto::Probe& p, const Target& t) {
  if (!t.exec) return unknown("exec probe: no way to exec in the container");
  if (e.command.empty()) return unknown("exec probe: empty command");
  auto rc = t.exec(e.command, timeout_of(p));
  if (!rc) {
    if (rc.status().code() == Code::kTimeout) return {Result::kFailure, "command timed out"};
    return unknown(rc.status().message());
  }
  if (*rc == 0) return {Result::kSuccess, ""};
  return {Result::kFailure,
          "command \"" + join_argv(e.command) + "\" exited with code " + std::to_string(*rc)};
}

Outcome run_tcp(const proto::TCPSocketAction& a, const proto::Probe& p, const proto::Container& c,
                const Target& t) {
  auto port = resolve_port(a.port, c);
  if (!port) return unknown(port.status().message());
  auto deadline = std::chrono::steady_clock::now() + timeout_of(p);
  auto conn = net::dial(t.netns_path, probe_host(a.host, t), *port, false, deadline);
  if (!conn) {
    if (conn.status().code() == Code::kIo) return unknown(conn.status().message());
    return {Result::kFailure, conn.status().message()};
  }
  return {Result::kSuccess, ""};
}

struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;
  int port = 0;
  std::string path;  // with query
  std::string str() const { return scheme + "://" + net::join_host_port(host, port) + path; }
};

struct Response {
  int status = 0;
  std::string location;
};

// Parses a Location header against the URL it answered. Returns false if it is unusable.
bool resolve_location(const std::string& loc, const Url& base, Url& out) {
  out = base;
  std::string rest;
  if (lower(loc).starts_with("http://") || lower(loc).starts_with("https://")) {
    size_t colon = loc.find("://");
    out.scheme = lower(loc.substr(0, colon));
    rest = loc.substr(colon + 3);
    size_t slash = rest.find('/');
    std::string hostport = rest.substr(0, slash);
    out.path = slash == std::string::npos ? "/" : rest.substr(slash);
    out.port = out.scheme == "https" ? 443 : 80;
    if (hostport.starts_with("[")) {
      size_t close = hostport.find(']');
      if (close == std::string::npos) return false;
      out.host = hostport.substr(1, close - 1);
      if (close + 1 < hostport.size() && hostport[close + 1] == ':')
        out.port = std::atoi(hostport.c_str() + close + 2);
    } else {
      size_t c = hostport.rfind(':');
      out.host = hostport.substr(0, c);
      if (c != std::string::npos) out.port = std::atoi(hostport.c_str() + c + 1);
    }
    return !out.host.empty() && out.port > 0 && out.port <= 65535;
  }
  if (loc.starts_with("/")) {
    out.path = loc;
  } else {  // relative to the current path's directory
    out.path = base.path.substr(0, base.path.rfind('/') + 1) + loc;
  }
  return true;
}

skiff::Result<Response> http_request(const Url& url, const std::vector<proto::HTTPHeader>& headers,
                                     const Target& t, net::Deadline deadline) {
  auto conn = net::dial(t.netns_path, url.host, url.port, url.scheme == "https", deadline);
  if (!conn) return conn.status();

  // Defaults first; a probe's own header of the same name replaces the default (Host too).
  std::vector<std::pair<std::string, std::string>> hdrs = {
      {"Host", net::join_host_port(url.host, url.port)},
      {"User-Agent", kUserAgent},
      {"Accept", "*/*"}};
  for (const auto& h : headers) {
    bool replaced = false;
    for (auto& [name, value] : hdrs) {
      if (lower(name) == lower(h.name)) {
        value = h.value;
        replaced = true;
      }
    }
    if (!replaced) hdrs.emplace_back(h.name, h.value);
  }
  std::string req = "GET " + url.path + " HTTP/1.1\r\n";
  for (const auto& [name, value] : hdrs) {
    if (name.find_first_of("\r\n") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos)
      return Status::invalid("invalid header " + name);
    req += name + ": " + value + "\r\n";
  }
  req += "Connection: close\r\n\r\n";
  SKIFF_RETURN_IF_ERROR(conn->write_all(req, deadline));

  std::string head;
  char buf[4096];
  size_t end;
  while ((end = head.find("\r\n\r\n")) == std::string::npos) {
    if (head.size() > kMaxHeaderBytes) return Status::invalid("response headers too large");
    auto n = conn->read(buf, sizeof buf, deadline);
    if (!n) {
      if (n.status().code() == Code::kTimeout)
        return Status::timeout(
            "context deadline exceeded (Client.Timeout "
            "exceeded while awaiting headers)");
      return n.status();
    }
    if (*n == 0) return Status::unavailable("EOF");
    head.append(buf, *n);
  }
  head.resize(end + 2);

  Response resp;
  // "HTTP/1.1 200 OK"
  if (!head.starts_with("HTTP/1.") || head.size() < 12 || !std::isdigit(head[9]))
    return Status::invalid("malformed HTTP response \"" + head.substr(0, head.find('\r')) + "\"");
  resp.status = std::atoi(head.c_str() + 9);
  size_t pos = head.find("\r\n") + 2;
  while (pos < head.size()) {
    size_t eol = head.find("\r\n", pos);
    std::string line = head.substr(pos, eol - pos);
    pos = eol + 2;
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (lower(line.substr(0, colon)) == "location") {
      size_t v = line.find_first_not_of(" \t", colon + 1);
      resp.location = v == std::string::npos ? "" : line.substr(v);
      while (!resp.location.empty() &&
             std::isspace(static_cast<unsigned char>(resp.location.back())))
        resp.location.pop_back();
    }
  }
  return resp;
}

Outcome run_http(const proto::HTTPGetAction& a, const proto::Probe& p, const proto::Container& c,
                 const Target& t) {
  auto port = resolve_port(a.port, c);
  if (!port) return unknown(port.status().message());
  Url url;
  url.scheme = lower(a.scheme.empty() ? "HTTP" : a.scheme);
  if (url.scheme != "http" && url.scheme != "https")
    return unknown("unsupported scheme \"" + a.scheme + "\"");
  url.host = probe_host(a.host, t);
  url.port = *port;
  url.path = a.path.empty() ? "/" : a.path;
  if (!url.path.starts_with("/")) url.path = "/" + url.path;
  const std::string first_host = url.host;
  auto deadline = std::chrono::steady_clock::now() + timeout_of(p);

  for (int redirects = 0;; ++redirects) {
    auto resp = http_request(url, a.http_headers, t, deadline);
    if (!resp) {
      if (resp.status().code() == Code::kIo) return unknown(resp.status().message());
      return {Result::kFailure, "Get \"" + url.str() + "\": " + resp.status().message()};
    }
    int code = resp->status;
    bool redirect = (code == 301 || code == 302 || code == 303 || code == 307 || code == 308) &&
                    !resp->location.empty();
    if (redirect) {
      Url next;
      if (!resolve_location(resp->location, url, next))
        return {Result::kFailure,
                "Get \"" + url.str() + "\": bad Location \"" + resp->location + "\""};
      // Like Kubernetes: redirects are followed only to the same host; another host ends the probe
      // with the redirect itself, which counts as success (a warning there).
      if (next.host == first_host) {
        if (redirects + 1 >= kMaxRedirects)
          return {Result::kFailure, "Get \"" + next.str() + "\": stopped after 10 redirects"};
        url = next;
        continue;
      }
      return {Result::kSuccess, "Probe terminated redirects"};
    }
    if (code >= 200 && code < 400) return {Result::kSuccess, ""};
    return {Result::kFailure, "HTTP probe failed with statuscode: " + std::to_string(code)};
  }
}

}  // namespace

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kLiveness:
      return "Liveness";
    case Kind::kReadiness:
      return "Readiness";
    case Kind::kStartup:
      return "Startup";
  }
  return "?";
}

Outcome run_once(const proto::Probe& probe, const proto::Container& container,
                 const Target& target) {
  const auto& h = probe.handler;
  if (h.exec) return run_exec(*h.exec, probe, target);
  if (h.http_get) return run_http(*h.http_get, probe, container, target);
  if (h.tcp_socket) return run_tcp(*h.tcp_socket, probe, container, target);
  return unknown("probe has no handler (exec, httpGet or tcpSocket)");
}

}  // namespace skiff::probes
