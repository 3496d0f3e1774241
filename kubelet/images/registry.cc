// pull: an OCI distribution (v2) client on Beast.
//
// Each pull owns an io_context run on the calling thread; every network step
// (resolve, connect, handshake, write, each read) has a deadline, bounded also
// by the whole pull's timeout. One connection per request keeps the state
// simple: a pull makes a handful of requests (manifest, maybe an index, config,
// missing layers), so reuse would save little.
#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <stop_token>

#include "common/base64.h"
#include "kubelet/images/store.h"

namespace skiff::images {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using net::awaitable;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace internal;
constexpr auto kTuple = net::as_tuple(net::use_awaitable);

constexpr size_t kMaxManifest = 4 << 20;
constexpr size_t kMaxErrorBody = 64 << 10;
constexpr int kMaxRedirects = 5;
constexpr auto kOpTimeout = std::chrono::seconds(60);

struct Url {
  bool tls = true;
  std::string host;  // without brackets
  std::string port;
  std::string target;  // "/v2/..."
  std::string hostport() const {
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    bool dflt = (tls && port == "443") || (!tls && port == "80");
    return dflt ? h : h + ":" + port;
  }
  std::string str() const { return (tls ? "https://" : "http://") + hostport() + target; }
};

Result<Url> parse_url(std::string_view s) {
  Url u;
  if (s.starts_with("https://")) {
    s.remove_prefix(8);
  } else if (s.starts_with("http://")) {
    u.tls = false;
    s.remove_prefix(7);
  } else {
    return Status::invalid("URL \"" + std::string(s) + "\" is not http(s)");
  }
  size_t slash = s.find('/');
  std::string_view hp = s.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(s.substr(slash));
  if (!hp.empty() && hp[0] == '[') {
    size_t close = hp.find(']');
    if (close == std::string_view::npos) return Status::invalid("URL has a bad IPv6 host");
    u.host = std::string(hp.substr(1, close - 1));
    if (close + 1 < hp.size() && hp[close + 1] == ':') u.port = std::string(hp.substr(close + 2));
  } else {
    size_t colon = hp.rfind(':');
    u.host = std::string(hp.substr(0, colon));
    if (colon != std::string_view::npos) u.port = std::string(hp.substr(colon + 1));
  }
  if (u.host.empty()) return Status::invalid("URL \"" + std::string(s) + "\" has no host");
  if (u.port.empty()) u.port = u.tls ? "443" : "80";
  return u;
}

std::string url_escape(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

bool is_loopback_host(const std::string& host) {
  return host == "localhost" || host.starts_with("127.") || host == "::1";
}

// WWW-Authenticate: Bearer realm="...",service="...",scope="..."
struct Challenge {
  std::string scheme;  // "bearer" / "basic"
  std::map<std::string, std::string> params;
};

Challenge parse_challenge(std::string_view h) {
  Challenge c;
  size_t sp = h.find(' ');
  std::string scheme(h.substr(0, sp));
  for (char& ch : scheme) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  c.scheme = scheme;
  if (sp == std::string_view::npos) return c;
  std::string_view rest = h.substr(sp + 1);
  size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && (rest[i] == ' ' || rest[i] == ',')) ++i;
    size_t eq = rest.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string key(rest.substr(i, eq - i));
    for (char& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    i = eq + 1;
    std::string val;
    if (i < rest.size() && rest[i] == '"') {
      ++i;
      while (i < rest.size() && rest[i] != '"') {
        if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
        val += rest[i++];
      }
      ++i;
    } else {
      size_t end = rest.find(',', i);
      if (end == std::string_view::npos) end = rest.size();
      val = std::string(rest.substr(i, end - i));
      i = end;
    }
    c.params[key] = val;
  }
  return c;
}

// Where a response body goes: a bounded string, or a file being hashed.
struct Sink {
  std::string* str = nullptr;
  size_t limit = kMaxManifest;
  int fd = -1;
  Sha256* hash = nullptr;
  int64_t written = 0;
  std::function<void(int64_t)> on_bytes;
};

struct Response {
  int status = 0;
  std::string content_type;
  std::string www_authenticate;
  std::string location;
  std::string docker_digest;
  std::string body;  // error bodies and small answers
};

class Puller {
 public:
  Puller(FsImageStore& store, Reference ref, const PullOptions& opts)
      : store_(store), ref_(std::move(ref)), opts_(opts) {
    deadline_ =
        Clock::now() + std::chrono::seconds(opts.timeout_seconds > 0 ? opts.timeout_seconds : 300);
    host_ = ref_.registry == "docker.io" ? "registry-1.docker.io" : ref_.registry;
    bool insecure = std::find(opts.insecure_registries.begin(), opts.insecure_registries.end(),
                              ref_.registry) != opts.insecure_registries.end();
    tls_ = !insecure;
    auto hp = parse_url("https://" + host_ + "/");
    fallback_http_ = tls_ && hp && is_loopback_host(hp->host);
    if (!opts.registry_token.empty()) auth_ = "Bearer " + opts.registry_token;
  }

  Status init_tls() {
    boost::system::error_code ec;
    ssl_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    ssl_.set_verify_mode(ssl::verify_peer);
    ssl_.set_default_verify_paths(ec);
    if (ec) return Status::invalid("load the system's CA certificates: " + ec.message());
    if (!opts_.ca_file.empty()) {
      ssl_.load_verify_file(opts_.ca_file, ec);
      if (ec)
        return Status::invalid("load the registry CA file " + opts_.ca_file + ": " + ec.message());
    }
    return Status::ok();
  }

  Result<ImageRecord> run();

 private:
  std::string repo_url(const std::string& tail) const {
    return std::string(tls_ ? "https://" : "http://") + host_ + "/v2/" + ref_.repository + "/" +
           tail;
  }
  std::string what() const { return ref_.str(); }
  std::string origin() const { return ref_.name(); }

  std::chrono::steady_clock::duration op_timeout() const {
    auto left = deadline_ - Clock::now();
    if (left < std::chrono::milliseconds(1)) left = std::chrono::milliseconds(1);
    return std::min<std::chrono::steady_clock::duration>(left, kOpTimeout);
  }

  // Runs a coroutine to completion on our io_context (the calling thread).
  template <class T>
  Result<T> sync(awaitable<Result<T>> a) {
    if (cancelled_) return Status::unavailable("pull " + what() + ": cancelled");
    std::optional<Result<T>> out;
    auto body = [](awaitable<Result<T>> a, std::optional<Result<T>>* out) -> awaitable<void> {
      out->emplace(co_await std::move(a));
    };
    net::co_spawn(ioc_, body(std::move(a), &out), [&](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        out.emplace(Status::internal(std::string("pull ") + what() + ": " + ex.what()));
      }
    });
    ioc_.restart();
    {
      std::stop_callback cb(opts_.stop, [this] { ioc_.stop(); });
      ioc_.run();
    }
    if (!out) {
      // Stopped: the abandoned operations die with the io_context; never run it again.
      cancelled_ = true;
      return Status::unavailable("pull " + what() + ": cancelled");
    }
    return std::move(*out);
  }

  Status transport(const std::string& op, const beast::error_code& ec) const {
    if (ec == beast::error::timeout || ec == net::error::operation_aborted) {
      return Status::timeout(op + ": timed out");
    }
    return Status::unavailable(op + ": " + ec.message());
  }

  template <class Stream>
  awaitable<Result<Response>> exchange(Stream& s, beast::tcp_stream& low, const Url& u,
                                       const http::request<http::empty_body>& req, Sink* sink) {
    const std::string op = "GET " + u.str();
    low.expires_after(op_timeout());
    auto [wec, wn] = co_await http::async_write(s, req, kTuple);
    if (wec) co_return transport(op, wec);
    beast::flat_buffer buf;
    http::response_parser<http::buffer_body> p;
    p.body_limit(boost::none);
    low.expires_after(op_timeout());
    auto [hec, hn] = co_await http::async_read_header(s, buf, p, kTuple);
    if (hec) co_return transport(op + " (reading the response header)", hec);
    Response r;
    const auto& h = p.get();
    r.status = static_cast<int>(h.result_int());
    r.content_type = std::string(h[http::field::content_type]);
    r.www_authenticate = std::string(h[http::field::www_authenticate]);
    r.location = std::string(h[http::field::location]);
    r.docker_digest = std::string(h["Docker-Content-Digest"]);
    bool ok = r.status >= 200 && r.status < 300;
    bool to_file = ok && sink && sink->fd >= 0;
    size_t limit = !ok ? kMaxErrorBody : (sink ? sink->limit : kMaxManifest);
    std::string* into = ok && sink && sink->str ? sink->str : &r.body;
    std::vector<char> chunk(256 << 10);
    int64_t total = 0;
    while (!p.is_done()) {
      p.get().body().data = chunk.data();
      p.get().body().size = chunk.size();
      low.expires_after(op_timeout());
      auto [rec, rn] = co_await http::async_read(s, buf, p, kTuple);
      if (rec == http::error::need_buffer) rec = {};
      if (rec) co_return transport(op + " (reading the body)", rec);
      size_t n = chunk.size() - p.get().body().size;
      total += static_cast<int64_t>(n);
      if (opts_.stop.stop_requested()) co_return Status::unavailable(op + ": cancelled");
      if (static_cast<size_t>(total) > limit) {
        if (!ok) break;  // an error page: its beginning says enough
        co_return Status::too_large(op + ": the answer is larger than " + std::to_string(limit) +
                                    " bytes");
      }
      if (n == 0) continue;
      if (to_file) {
        sink->hash->update(chunk.data(), n);
        for (size_t off = 0; off < n;) {
          ssize_t w = ::write(sink->fd, chunk.data() + off, n - off);
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) co_return Status::io("write the download of " + u.str());
          off += static_cast<size_t>(w);
        }
        sink->written += static_cast<int64_t>(n);
        if (sink->on_bytes) sink->on_bytes(sink->written);
      } else {
        into->append(chunk.data(), n);
      }
    }
    co_return r;
  }

  awaitable<Result<Response>> once(Url u, std::string accept, bool send_auth, Sink* sink) {
    auto ex = co_await net::this_coro::executor;
    const std::string op = "connect to " + u.hostport();
    if (Clock::now() >= deadline_) co_return Status::timeout("pull " + what() + ": timed out");
    tcp::resolver resolver(ex);
    using namespace net::experimental::awaitable_operators;
    net::steady_timer timer(ex);
    timer.expires_after(op_timeout());
    auto resolved =
        co_await (resolver.async_resolve(u.host, u.port, kTuple) || timer.async_wait(kTuple));
    if (resolved.index() == 1) co_return Status::timeout(op + ": resolving timed out");
    auto [rec, results] = std::get<0>(resolved);
    if (rec) co_return transport(op, rec);
    beast::tcp_stream stream(ex);
    stream.expires_after(op_timeout());
    auto [cec, ep] = co_await stream.async_connect(results, kTuple);
    if (cec) co_return transport(op, cec);

    http::request<http::empty_body> req{http::verb::get, u.target, 11};
    req.set(http::field::host, u.hostport());
    req.set(http::field::user_agent, "skiff-kubelet/0.1");
    req.set(http::field::connection, "close");
    if (!accept.empty()) req.set(http::field::accept, accept);
    if (send_auth && !auth_.empty()) req.set(http::field::authorization, auth_);

    if (!u.tls) co_return co_await exchange(stream, stream, u, req, sink);
    beast::ssl_stream<beast::tcp_stream> tls(std::move(stream), ssl_);
    boost::system::error_code aec;
    net::ip::make_address(u.host, aec);
    if (aec) SSL_set_tlsext_host_name(tls.native_handle(), u.host.c_str());
    tls.set_verify_callback(ssl::host_name_verification(u.host));
    beast::get_lowest_layer(tls).expires_after(op_timeout());
    auto [hec] = co_await tls.async_handshake(ssl::stream_base::client, kTuple);
    if (hec) co_return transport("TLS handshake with " + u.hostport(), hec);
    co_return co_await exchange(tls, beast::get_lowest_layer(tls), u, req, sink);
  }

  // GET with the auth dance, redirects and the loopback http fallback.
  Result<Response> get(const std::string& url, const std::string& accept, Sink* sink) {
    auto u0 = parse_url(url);
    if (!u0) return u0.status();
    Url u = *u0;
    const std::string registry_host = u.host;
    bool tried_auth = false;
    Status tls_error;
    for (int hop = 0; hop <= kMaxRedirects; ++hop) {
      bool same_host = u.host == registry_host;
      auto r = sync(once(u, accept, same_host, sink));
      if (!r && hop == 0 && same_host && tls_ && fallback_http_ &&
          r.status().code() != Code::kTimeout) {
        // Like Docker: a loopback registry without TLS is reached over plain HTTP.
        tls_error = r.status();
        tls_ = false;
        fallback_http_ = false;
        u.tls = false;
        if (u.port == "443") u.port = "80";
        --hop;
        continue;
      }
      if (!tls_error.is_ok() && (!r || r->status == 400)) {
        // Plain HTTP did not work either (an HTTPS server answers 400 to it): the TLS
        // failure (often an unknown CA) is the useful error.
        return Status(tls_error.code(), tls_error.message() + " (plain HTTP failed too)");
      }
      tls_error = Status::ok();
      if (!r) return r.status();
      fallback_http_ = false;
      if (r->status == 401 && same_host && !tried_auth) {
        tried_auth = true;
        SKIFF_RETURN_IF_ERROR(authenticate(r->www_authenticate));
        --hop;
        continue;
      }
      if (r->status == 301 || r->status == 302 || r->status == 303 || r->status == 307 ||
          r->status == 308) {
        if (r->location.empty()) {
          return Status::invalid("GET " + u.str() + ": redirect without a Location");
        }
        if (r->location[0] == '/') {
          u.target = r->location;
        } else {
          auto nu = parse_url(r->location);
          if (!nu)
            return Status::invalid("GET " + u.str() + ": bad redirect: " + nu.status().message());
          u = *nu;
        }
        if (sink && sink->str) sink->str->clear();
        continue;
      }
      return r;
    }
    return Status::invalid("GET " + url + ": more than " + std::to_string(kMaxRedirects) +
                           " redirects");
  }

  Status authenticate(const std::string& header) {
    const std::string ctx = "authenticate to " + ref_.registry;
    if (header.empty()) return Status::unauthorized(ctx + ": 401 without WWW-Authenticate");
    Challenge c = parse_challenge(header);
    std::string basic;
    if (!opts_.username.empty() || !opts_.password.empty()) {
      basic = "Basic " + base64_encode(opts_.username + ":" + opts_.password);
    }
    if (c.scheme == "basic") {
      if (basic.empty())
        return Status::unauthorized(ctx + ": the registry wants a username and password");
      auth_ = basic;
      return Status::ok();
    }
    if (c.scheme != "bearer") {
      return Status::unauthorized(ctx + ": unsupported auth scheme \"" + c.scheme + "\"");
    }
    std::string realm = c.params["realm"];
    if (realm.empty()) return Status::unauthorized(ctx + ": Bearer challenge without realm");
    std::string url = realm;
    char sep = url.find('?') == std::string::npos ? '?' : '&';
    if (!c.params["service"].empty()) {
      url += sep + std::string("service=") + url_escape(c.params["service"]);
      sep = '&';
    }
    std::string scope = c.params["scope"];
    if (scope.empty()) scope = "repository:" + ref_.repository + ":pull";
    url += sep + std::string("scope=") + url_escape(scope);
    auto u = parse_url(url);
    if (!u) return Status::unauthorized(ctx + ": bad token realm: " + u.status().message());
    std::string saved = auth_;
    auth_ = basic;
    Response r;
    // The token service gets the basic credentials (or nothing: anonymous).
    auto res = sync(once(*u, "application/json", !basic.empty(), nullptr));
    auth_ = saved;
    if (!res) return res.status().with_context(ctx + ": token service " + u->hostport());
    if (res->status == 401 || res->status == 403) {
      return Status::unauthorized(ctx + ": the token service refused the credentials (HTTP " +
                                  std::to_string(res->status) + ")");
    }
    if (res->status != 200) {
      return Status::unauthorized(ctx + ": the token service answered HTTP " +
                                  std::to_string(res->status));
    }
    json j = json::parse(res->body, nullptr, false);
    std::string token;
    if (j.is_object()) {
      if (j.contains("token") && j["token"].is_string()) token = j["token"];
      if (token.empty() && j.contains("access_token") && j["access_token"].is_string()) {
        token = j["access_token"];
      }
    }
    if (token.empty()) return Status::unauthorized(ctx + ": the token service gave no token");
    auth_ = "Bearer " + token;
    return Status::ok();
  }

  Status http_error(const Response& r, const std::string& op) const {
    std::string detail;
    json j = json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("errors") && j["errors"].is_array()) {
      for (const auto& e : j["errors"]) {
        if (e.is_object()) {
          detail += (detail.empty() ? "" : "; ") + e.value("code", std::string()) + " " +
                    e.value("message", std::string());
        }
      }
    }
    std::string msg =
        op + ": HTTP " + std::to_string(r.status) + (detail.empty() ? "" : " (" + detail + ")");
    switch (r.status) {
      case 401:
        return Status::unauthorized(msg);
      case 403:
        return Status::forbidden(msg);
      case 404:
        return Status::not_found(msg);
      case 429:
      case 502:
      case 503:
        return Status::unavailable(msg);
      default:
        return Status::invalid(msg);
    }
  }

  Result<std::pair<std::string, Manifest>> fetch_manifest(const std::string& ref_part,
                                                          const std::string& want_digest) {
    const std::string op = "manifest " + origin() + (want_digest.empty() ? ":" : "@") + ref_part;
    progress({"", 0, 0, "pulling manifest " + ref_part});
    std::string body;
    Sink s;
    s.str = &body;
    s.limit = kMaxManifest;
    std::string accept = std::string(kOciIndex) + ", " + std::string(kOciManifest) + ", " +
                         std::string(kDockerList) + ", " + std::string(kDockerManifest);
    auto r = get(repo_url("manifests/" + ref_part), accept, &s);
    if (!r) return r.status().with_context("pull " + what());
    if (r->status == 404) {
      return Status::not_found("pull " + what() + ": " + op + " not found (HTTP 404)");
    }
    if (r->status != 200) return http_error(*r, "pull " + what() + ": " + op);
    std::string ct = r->content_type.substr(0, r->content_type.find(';'));
    if (ct == "text/html" || ct == "text/plain") {
      std::string head = body.substr(0, 40);
      for (char& c : head) {
        if (static_cast<unsigned char>(c) < 0x20) c = ' ';
      }
      return Status::invalid("pull " + what() + ": " + op + ": the registry answered " + ct +
                             ", not a manifest: \"" + head + "\"");
    }
    std::string digest = sha256_digest(body);
    if (!want_digest.empty() && digest != want_digest) {
      return Status::invalid("pull " + what() + ": manifest " + want_digest + " from " + origin() +
                             ": digest mismatch, got " + digest);
    }
    if (valid_digest(r->docker_digest) && r->docker_digest != digest) {
      return Status::invalid("pull " + what() + ": " + op + ": Docker-Content-Digest says " +
                             r->docker_digest + " but the content is " + digest);
    }
    auto m = parse_manifest(body, ct, "pull " + what() + ": " + op);
    if (!m) return m.status();
    manifests_.emplace_back(digest, body);
    return std::make_pair(digest, std::move(*m));
  }

  void progress(PullProgress p) {
    if (opts_.progress) opts_.progress(p);
  }

  // Downloads blob `d` into a temp file under the store; returns its path after
  // checking it.
  Result<std::string> fetch_blob(const Descriptor& d, bool report) {
    const std::string op = "blob " + d.digest + " from " + origin();
    std::string tmp = store_.temp_path("download");
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return Status::io("create " + tmp);
    Sha256 hash;
    Sink s;
    s.fd = fd;
    s.hash = &hash;
    // A blob larger than its descriptor says is wrong whatever it holds: stop
    // reading early.
    s.limit = d.size >= 0 ? static_cast<size_t>(d.size) : (size_t{64} << 30);
    int64_t next_report = 0;
    if (report) {
      s.on_bytes = [&](int64_t n) {
        if (n < next_report && n != d.size) return;
        next_report = n + (1 << 20);
        char msg[128];
        std::snprintf(msg, sizeof(msg), "downloading %.19s %.1f/%.1f MB", d.digest.c_str(), n / 1e6,
                      d.size / 1e6);
        progress({d.digest, n, d.size, msg});
      };
    }
    auto r = get(repo_url("blobs/" + d.digest), "", &s);
    ::close(fd);
    auto fail = [&](Status st) {
      ::unlink(tmp.c_str());
      return st;
    };
    if (!r) return fail(r.status().with_context("pull " + what()));
    if (r->status == 404)
      return fail(Status::not_found("pull " + what() + ": " + op + ": not found (HTTP 404)"));
    if (r->status != 200) return fail(http_error(*r, "pull " + what() + ": " + op));
    std::string got = hash.digest();
    if (got != d.digest) {
      return fail(Status::invalid(op + ": digest mismatch, got " + got));
    }
    if (d.size >= 0 && s.written != d.size) {
      return fail(Status::invalid(op + ": size mismatch, the manifest says " +
                                  std::to_string(d.size) + " bytes, got " +
                                  std::to_string(s.written)));
    }
    return tmp;
  }

  FsImageStore& store_;
  Reference ref_;
  const PullOptions& opts_;
  ssl::context ssl_{ssl::context::tls_client};  // outlives the streams in ioc_'s frames
  net::io_context ioc_;
  bool cancelled_ = false;
  Clock::time_point deadline_;
  std::string host_;
  bool tls_ = true;
  bool fallback_http_ = false;
  std::string auth_;
  std::vector<std::pair<std::string, std::string>> manifests_;  // digest -> bytes
};

Result<ImageRecord> Puller::run() {
  SKIFF_RETURN_IF_ERROR(init_tls());
  const std::string first = ref_.digest.empty() ? ref_.tag : ref_.digest;
  auto top = fetch_manifest(first, ref_.digest);
  if (!top) return top.status();
  std::string manifest_digest = top->first;
  Manifest m = std::move(top->second);
  if (m.is_index) {
    auto pick = pick_platform(m, "pull " + what());
    if (!pick) return pick.status();
    auto inner = fetch_manifest(pick->digest, pick->digest);
    if (!inner) return inner.status();
    if (inner->second.is_index) {
      return Status::invalid("pull " + what() + ": index entry " + pick->digest +
                             " is another index");
    }
    m = std::move(inner->second);
  }
  // Config first: its diff_ids tell which layers this store already has.
  progress({"", 0, 0, "pulling config " + m.config.digest});
  auto cfg_file = fetch_blob(m.config, false);
  if (!cfg_file) return cfg_file.status();
  auto cfg_bytes = read_file(*cfg_file, 16 << 20);
  ::unlink(cfg_file->c_str());
  if (!cfg_bytes) return cfg_bytes.status();
  std::vector<std::string> diff_ids;
  auto cfg = parse_config(*cfg_bytes, "pull " + what() + ": config " + m.config.digest, &diff_ids);
  if (!cfg) return cfg.status();
  if (diff_ids.size() != m.layers.size()) {
    return Status::invalid("pull " + what() + ": the manifest has " +
                           std::to_string(m.layers.size()) + " layers but the config lists " +
                           std::to_string(diff_ids.size()) + " diff_ids");
  }

  Txn txn(&store_);
  StoredImage s;
  SKIFF_RETURN_IF_ERROR(store_.put_blob_bytes(*cfg_bytes, m.config.digest, txn));
  s.blobs.push_back(m.config.digest);
  for (const auto& [dg, bytes] : manifests_) {
    SKIFF_RETURN_IF_ERROR(store_.put_blob_bytes(bytes, dg, txn));
    s.blobs.push_back(dg);
  }
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const Descriptor& l = m.layers[i];
    s.blobs.push_back(l.digest);
    s.rec.size += std::max<int64_t>(l.size, 0);
    if (store_.pin_layer(diff_ids[i], txn)) {
      progress({l.digest, l.size, l.size, "layer " + l.digest.substr(0, 19) + " already present"});
      continue;
    }
    if (!store_.has_blob(l.digest)) {
      auto file = fetch_blob(l, true);
      if (!file) return file.status();
      SKIFF_RETURN_IF_ERROR(store_.put_blob_file(*file, l.digest, l.size, /*move=*/true,
                                                 "pull " + what() + ": layer " + l.digest, txn));
    }
    progress({l.digest, l.size, l.size, "unpacking " + l.digest.substr(0, 19)});
    SKIFF_RETURN_IF_ERROR(store_.ensure_layer(store_.blob_path(l.digest), diff_ids[i],
                                              "pull " + what() + ": layer " + l.digest, txn));
  }
  s.rec.id = m.config.digest;
  if (ref_.digest.empty()) s.rec.repo_tags.push_back(ref_.str());
  s.rec.repo_digests.push_back(ref_.name() + "@" + manifest_digest);
  s.rec.diff_ids = diff_ids;
  s.rec.config = std::move(*cfg);
  ImageRecord out = s.rec;
  std::vector<StoredImage> v;
  v.push_back(std::move(s));
  SKIFF_RETURN_IF_ERROR(store_.commit(std::move(v), txn));
  progress({"", 0, 0, "done"});
  // commit merges tags with an existing record of the same id: return the
  // merged one.
  if (auto rec = store_.find(out.id)) return *rec;
  return out;
}

}  // namespace

Result<ImageRecord> FsImageStore::pull(std::string_view ref, const PullOptions& opts) {
  auto r = parse_reference(ref);
  if (!r) return r.status();
  Puller p(*this, std::move(*r), opts);
  return p.run();
}

}  // namespace skiff::images
