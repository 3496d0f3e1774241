#include <sys/socket.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/client/kubeconfig.h"
#include "proto/client/workqueue.h"
#include "proto/client/yaml.h"

namespace skiff::client {
namespace {

using namespace std::chrono_literals;

TEST_CASE("kubeconfig: current context, CA data, token, namespace") {
  std::string ca = "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n";
  std::string yaml = R"(apiVersion: v1
kind: Config
current-context: admin@skiff
clusters:
- name: skiff
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: )" +
                     base64_encode(ca) + R"(
- name: other
  cluster:
    server: http://127.0.0.1:8080
    insecure-skip-tls-verify: true
contexts:
- name: admin@skiff
  context: {cluster: skiff, user: admin, namespace: team-a}
- name: other
  context: {cluster: other, user: nobody}
users:
- name: admin
  user: {token: s3cret}
- name: nobody
  user: {}
)";
  auto kc = parse_kubeconfig(yaml);
  REQUIRE(kc.is_ok());
  CHECK(kc->server == "https://127.0.0.1:6443");
  CHECK(kc->ca_pem == ca);
  CHECK(kc->token == "s3cret");
  CHECK(kc->namespace_ == "team-a");
  CHECK_FALSE(kc->insecure_skip_tls_verify);

  auto other = parse_kubeconfig(yaml, "other");
  REQUIRE(other.is_ok());
  CHECK(other->server == "http://127.0.0.1:8080");
  CHECK(other->insecure_skip_tls_verify);
  CHECK(other->token.empty());
  CHECK(other->namespace_.empty());

  auto missing = parse_kubeconfig(yaml, "prod");
  REQUIRE_FALSE(missing.is_ok());
  CHECK(missing.status().message().find("\"prod\"") != std::string::npos);
}

TEST_CASE("kubeconfig: tokenFile and certificate-authority relative to the file") {
  char dir_template[] = "/tmp/skiff-kc-XXXXXX";
  std::string dir = mkdtemp(dir_template);
  struct Cleanup {
    std::string d;
    ~Cleanup() { std::filesystem::remove_all(d); }
  } cleanup{dir};
  std::ofstream(dir + "/token") << "tok-123\n";
  std::ofstream(dir + "/ca.crt") << "PEM";
  std::ofstream(dir + "/config") << R"(current-context: c
clusters: [{name: k, cluster: {server: "https://[::1]:6443", certificate-authority: ca.crt}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
users: [{name: u, user: {tokenFile: token}}]
)";
  auto kc = load_kubeconfig(dir + "/config");
  REQUIRE(kc.is_ok());
  CHECK(kc->token == "tok-123");
  CHECK(kc->ca_pem == "PEM");
  CHECK(kc->source == dir + "/config");
  CHECK(find_kubeconfig(dir + "/config") == dir + "/config");
}

TEST_CASE("yaml: core schema scalars, multi-document, List output style") {
  auto docs = parse_yaml_documents("a: 1\nb: '1'\nc: true\nd: null\ne: 1.5\nf: x\n---\n---\n[1]\n");
  REQUIRE(docs.is_ok());
  REQUIRE(docs->size() == 2);
  const auto& d = (*docs)[0];
  CHECK(d["a"] == 1);
  CHECK(d["b"] == "1");
  CHECK(d["c"] == true);
  CHECK(d["d"].is_null());
  CHECK(d["e"] == 1.5);
  CHECK(d["f"] == "x");

  nlohmann::json v = {{"items", {{{"name", "a"}, {"port", 80}}}},
                      {"empty", nlohmann::json::object()},
                      {"s", "80"},
                      {"multi", "{\"a\":1}\n"}};
  std::string y = to_yaml(v);
  CHECK(y ==
        "empty: {}\n"
        "items:\n"
        "- name: a\n"
        "  port: 80\n"
        "multi: |\n"
        "  {\"a\":1}\n"
        "s: '80'\n");
  auto back = parse_yaml_documents(y);
  REQUIRE(back.is_ok());
  CHECK((*back)[0] == v);

  CHECK_FALSE(parse_yaml_documents("a: [1, 2\n").is_ok());
}

TEST_CASE("api_error: decodes a Status, falls back to the HTTP status") {
  Response r;
  r.status = 404;
  r.body = R"({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound",
               "message":"pods \"x\" not found","code":404,"details":{"name":"x","kind":"pods"}})";
  ApiError e = api_error(r);
  CHECK(e.reason == "NotFound");
  CHECK(e.message == "pods \"x\" not found");
  CHECK(to_status(r).code() == Code::kNotFound);
  r.status = 409;
  r.body = R"({"kind":"Status","reason":"AlreadyExists","message":"exists","code":409})";
  CHECK(to_status(r).code() == Code::kAlreadyExists);
  r.body = "<html>";
  r.status = 503;
  CHECK(api_error(r).reason == "ServiceUnavailable");
  CHECK(query_escape("app=web,tier in (a)") == "app%3Dweb%2Ctier+in+%28a%29");
}

TEST_CASE("workqueue: de-duplicates, and re-queues a key added while processing") {
  WorkQueue q;
  q.add("a");
  q.add("a");
  q.add("b");
  CHECK(q.len() == 2);
  auto k = q.get();
  REQUIRE(k == "a");
  q.add("a");  // while processing: not handed to another worker
  CHECK(q.len() == 1);
  auto k2 = q.get();
  REQUIRE(k2 == "b");
  CHECK(q.len() == 0);
  q.done("a");
  CHECK(q.len() == 1);
  CHECK(q.get() == "a");
  q.done("a");
  q.done("b");
  CHECK(q.len() == 0);
  CHECK_FALSE(q.get_for(10ms).has_value());
}

TEST_CASE("workqueue: per-key exponential back-off and forget") {
  FakeClock clock;
  WorkQueue q({.base_delay = 10ms, .max_delay = 1s, .qps = 1000, .burst = 1000, .clock = &clock});
  auto ready_after = [&](std::chrono::milliseconds step, int max_steps) {
    for (int i = 1; i <= max_steps; ++i) {
      clock.advance(step);
      if (q.len() == 1) return i;
    }
    return -1;
  };
  q.add_rate_limited("k");
  CHECK(q.len() == 0);
  CHECK(ready_after(1ms, 100) == 10);
  REQUIRE(q.get() == "k");
  q.done("k");
  q.add_rate_limited("k");
  CHECK(ready_after(1ms, 100) == 20);
  q.get();
  q.done("k");
  q.add_rate_limited("k");
  CHECK(ready_after(1ms, 100) == 40);
  CHECK(q.num_requeues("k") == 3);
  q.get();
  q.done("k");
  // The cap: after many failures the delay stays at max_delay.
  for (int i = 0; i < 20; ++i) {
    q.add_rate_limited("capped");
    clock.advance(2000s);
    REQUIRE(q.get() == "capped");
    q.done("capped");
  }
  q.add_rate_limited("capped");
  CHECK(ready_after(100ms, 20) == 10);
  q.get();
  q.done("capped");

  q.forget("k");
  CHECK(q.num_requeues("k") == 0);
  q.add_rate_limited("k");
  CHECK(ready_after(1ms, 100) == 10);
}

TEST_CASE("workqueue: the token bucket limits overall retries") {
  FakeClock clock;
  WorkQueue q({.base_delay = 1ms, .max_delay = 1ms, .qps = 10, .burst = 2, .clock = &clock});
  q.add_rate_limited("a");
  q.add_rate_limited("b");
  q.add_rate_limited("c");  // bucket empty: waits 100ms
  clock.advance(1ms);
  CHECK(q.len() == 2);
  clock.advance(98ms);
  CHECK(q.len() == 2);
  clock.advance(1ms);
  CHECK(q.len() == 3);
}

TEST_CASE("workqueue: shut_down wakes a blocked get") {
  WorkQueue q;
  std::optional<std::string> got = "x";
  std::thread t([&] { got = q.get(); });
  q.shut_down();
  t.join();
  CHECK_FALSE(got.has_value());
  q.add("a");
  CHECK(q.len() == 0);
}

// A plain-HTTP server on 127.0.0.1:0 that answers from a script, one connection at a time.
class FakeServer {
 public:
  using Handler = std::function<std::pair<int, std::string>(const std::string& target)>;
  explicit FakeServer(Handler h) : handler_(std::move(h)), acceptor_(ioc_) {
    namespace net = boost::asio;
    net::ip::tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeServer() {
    stopping_ = true;
    // close() alone does not wake a thread blocked in accept(); shutdown() does.
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    boost::system::error_code ec;
    acceptor_.close(ec);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> targets() {
    std::lock_guard lock(mu_);
    return targets_;
  }

 private:
  void serve() {
    namespace http = boost::beast::http;
    while (!stopping_) {
      boost::system::error_code ec;
      auto sock = acceptor_.accept(ec);
      if (ec) return;
      boost::beast::flat_buffer buf;
      while (!stopping_) {
        http::request<http::string_body> req;
        http::read(sock, buf, req, ec);
        if (ec) break;
        std::string target(req.target());
        {
          std::lock_guard lock(mu_);
          targets_.push_back(target);
        }
        auto [status, body] = handler_(target);
        http::response<http::string_body> res{static_cast<http::status>(status), 11};
        res.set(http::field::content_type, "application/json");
        res.body() = body;
        bool watch = target.find("watch=true") != std::string::npos;
        res.keep_alive(!watch);
        if (watch) res.chunked(true);
        res.prepare_payload();
        http::write(sock, res, ec);
        if (ec || watch) break;
      }
      sock.close(ec);
    }
  }
  Handler handler_;
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::vector<std::string> targets_;
};

nlohmann::json pod(const std::string& name, const std::string& rv, const std::string& owner = "") {
  nlohmann::json p = {{"metadata",
                       {{"name", name},
                        {"namespace", "default"},
                        {"resourceVersion", rv},
                        {"labels", {{"app", name == "c" ? "other" : "web"}}}}}};
  if (!owner.empty()) p["metadata"]["ownerReferences"] = {{{"uid", owner}, {"name", "rs"}}};
  return p;
}

std::string event(const std::string& type, const nlohmann::json& obj) {
  return nlohmann::json{{"type", type}, {"object", obj}}.dump() + "\n";
}

proto::ResourceType pod_type() {
  proto::ResourceType t;
  t.version = "v1";
  t.kind = "Pod";
  t.plural = "pods";
  t.namespaced = true;
  return t;
}

template <class F>
bool eventually(F f) {
  for (int i = 0; i < 1000; ++i) {  // up to ~10 s: a deadline, not a timing assertion
    if (f()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

TEST_CASE("rest client: watch reads newline-delimited events and stops on request") {
  FakeServer server([](const std::string& target) -> std::pair<int, std::string> {
    if (target.find("watch=true") != std::string::npos) {
      return {200, event("ADDED", pod("a", "1")) + event("MODIFIED", pod("a", "2"))};
    }
    if (target.find("/pods/missing") != std::string::npos) {
      return {
          404,
          R"({"kind":"Status","reason":"NotFound","message":"pods \"missing\" not found","code":404})"};
    }
    return {200, R"({"kind":"PodList","metadata":{"resourceVersion":"2"},"items":[]})"};
  });
  ClientConfig cfg;
  cfg.server = server.url();
  auto rc = RestClient::create(cfg);
  REQUIRE(rc.is_ok());
  std::shared_ptr<RestClient> rest(std::move(*rc));
  ApiClient api(rest);
  auto t = pod_type();
  auto missing = api.get(t, "default", "missing");
  REQUIRE_FALSE(missing.is_ok());
  CHECK(missing.status().code() == Code::kNotFound);
  CHECK(missing.status().message() == "pods \"missing\" not found");
  auto list = api.list(t, "default");
  REQUIRE(list.is_ok());
  CHECK((*list)["items"].empty());

  std::vector<std::string> types;
  Status st = api.watch(t, "default", {}, [&](const json& ev) {
    types.push_back(ev.value("type", ""));
    return true;
  });
  CHECK(st.is_ok());
  CHECK(types == std::vector<std::string>{"ADDED", "MODIFIED"});
  types.clear();
  st = api.watch(t, "default", {}, [&](const json& ev) {
    types.push_back(ev.value("type", ""));
    return false;
  });
  CHECK(st.is_ok());
  CHECK(types.size() == 1);
}

TEST_CASE("rest client: a watch on which nothing arrives for idle_timeout ends in Timeout") {
  // A server that answers the watch, sends one event and then says nothing more without
  // closing: what a client sees of an API server whose machine lost power.
  namespace net = boost::asio;
  net::io_context ioc;
  net::ip::tcp::acceptor acc(ioc, {net::ip::make_address("127.0.0.1"), 0});
  const auto port = acc.local_endpoint().port();
  std::atomic<bool> done{false};
  std::thread srv([&] {
    boost::system::error_code ec;
    auto sock = acc.accept(ec);
    if (ec) return;
    boost::beast::flat_buffer buf;
    boost::beast::http::request<boost::beast::http::string_body> req;
    boost::beast::http::read(sock, buf, req, ec);
    std::string line = event("ADDED", pod("a", "1"));
    std::ostringstream out;
    out << "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
        << "\r\n\r\n"
        << std::hex << line.size() << "\r\n"
        << line << "\r\n";
    net::write(sock, net::buffer(out.str()), ec);
    while (!done) std::this_thread::sleep_for(10ms);  // silent, connection open
  });
  ClientConfig cfg;
  cfg.server = "http://127.0.0.1:" + std::to_string(port);
  auto rc = RestClient::create(cfg);
  REQUIRE(rc.is_ok());
  std::vector<std::string> types;
  std::stop_source guard;  // a backstop: without the idle timeout the watch would wait for ever
  std::thread backstop([&] {
    for (int i = 0; i < 1000 && !done; ++i) std::this_thread::sleep_for(10ms);
    guard.request_stop();
  });
  Status st = (*rc)->watch(
      "/api/v1/namespaces/default/pods", {{"watch", "true"}},
      [&](const json& ev) {
        types.push_back(ev.value("type", ""));
        return true;
      },
      guard.get_token(), "application/json", 300ms);
  const bool stopped_by_backstop = guard.stop_requested();
  done = true;
  backstop.join();
  srv.join();
  CHECK(types == std::vector<std::string>{"ADDED"});
  CHECK_FALSE(stopped_by_backstop);
  CHECK(st.code() == Code::kTimeout);
}

// A client of `server` and the options the informer tests share (namespace default, quick
// back-off).
std::shared_ptr<ApiClient> informer_api(const FakeServer& server) {
  ClientConfig cfg;
  cfg.server = server.url();
  auto rc = RestClient::create(cfg);
  REQUIRE(rc.is_ok());
  return std::make_shared<ApiClient>(std::shared_ptr<RestClient>(std::move(*rc)));
}

InformerOptions informer_options() {
  InformerOptions opts;
  opts.namespace_ = "default";
  opts.min_backoff = 10ms;
  opts.max_backoff = 50ms;
  return opts;
}

TEST_CASE("informer: list, watch from the list's revision, resume, relist on 410") {
  std::atomic<int> watches{0};
  FakeServer server([&](const std::string& target) -> std::pair<int, std::string> {
    bool watch = target.find("watch=true") != std::string::npos;
    if (!watch) {
      if (watches == 0) {
        nlohmann::json l = {{"kind", "PodList"},
                            {"metadata", {{"resourceVersion", "10"}}},
                            {"items", {pod("a", "5", "rs-1"), pod("b", "6")}}};
        return {200, l.dump()};
      }
      nlohmann::json l = {{"kind", "PodList"},
                          {"metadata", {{"resourceVersion", "13"}}},
                          {"items", {pod("a", "11", "rs-1"), pod("c", "13")}}};
      return {200, l.dump()};
    }
    int n = watches++;
    if (n == 0) return {200, event("MODIFIED", pod("a", "11", "rs-1"))};  // then drops
    if (n == 1) return {200, event("DELETED", pod("b", "12"))};
    if (n == 2) {
      return {200, event("ERROR", {{"kind", "Status"}, {"code", 410}, {"reason", "Expired"}})};
    }
    return {200, ""};
  });
  auto api = informer_api(server);
  auto t = pod_type();
  InformerOptions opts = informer_options();
  opts.indexes = GENERATE(true, false);  // by_* from the indexes, or by walking the cache
  CAPTURE(opts.indexes);
  Informer inf(api, t, opts);
  std::mutex mu;
  std::vector<std::string> log;
  inf.add_handlers({[&](const json& o) {
                      std::lock_guard l(mu);
                      log.push_back("add " + object_key(o));
                    },
                    [&](const json&, const json& o) {
                      std::lock_guard l(mu);
                      log.push_back("update " + object_key(o));
                    },
                    [&](const json& o) {
                      std::lock_guard l(mu);
                      log.push_back("delete " + object_key(o));
                    }});
  inf.start();
  REQUIRE(inf.wait_for_sync(10s));
  REQUIRE(eventually([&] { return inf.list_count() >= 2 && inf.get("default/c").has_value(); }));
  inf.stop();

  std::vector<std::string> expected = {"add default/a", "add default/b", "update default/a",
                                       "delete default/b", "add default/c"};
  {
    std::lock_guard l(mu);
    CHECK(log == expected);
  }
  auto targets = server.targets();
  std::vector<std::string> watch_targets;
  for (const auto& tg : targets) {
    if (tg.find("watch=true") != std::string::npos) watch_targets.push_back(tg);
  }
  REQUIRE(watch_targets.size() >= 4);
  CHECK(watch_targets[0].find("resourceVersion=10") != std::string::npos);
  CHECK(watch_targets[1].find("resourceVersion=11") != std::string::npos);  // resumed
  CHECK(watch_targets[2].find("resourceVersion=12") != std::string::npos);
  CHECK(watch_targets[3].find("resourceVersion=13") != std::string::npos);  // after relist

  CHECK(inf.by_namespace("default").size() == 2);
  CHECK(inf.by_owner("rs-1").size() == 1);
  auto sel = proto::LabelSelector::parse("app=web");
  REQUIRE(sel.is_ok());
  auto web = inf.by_label(*sel);
  REQUIRE(web.size() == 1);
  CHECK(object_key(web[0]) == "default/a");
}

TEST_CASE("informer: a relist reads the list in pages and resumes from the first page's revision") {
  // Five pods in pages of two: limit=2, then continue=p2 and continue=p3. Later pages report a
  // newer revision (a server may): the watch must start from the snapshot's, the first page's.
  FakeServer server([&](const std::string& target) -> std::pair<int, std::string> {
    if (target.find("watch=true") != std::string::npos) return {200, ""};
    if (target.find("limit=2") == std::string::npos) return {400, "no limit"};
    int page = target.find("continue=p3") != std::string::npos   ? 3
               : target.find("continue=p2") != std::string::npos ? 2
                                                                 : 1;
    nlohmann::json items = nlohmann::json::array();
    for (int i = (page - 1) * 2; i < std::min(page * 2, 5); ++i)
      items.push_back(pod("p" + std::to_string(i), std::to_string(i + 1)));
    nlohmann::json md = {{"resourceVersion", page == 1 ? "7" : "9"}};
    if (page < 3) md["continue"] = "p" + std::to_string(page + 1);
    return {200, nlohmann::json{{"kind", "PodList"}, {"metadata", md}, {"items", items}}.dump()};
  });
  auto api = informer_api(server);
  auto t = pod_type();
  InformerOptions opts = informer_options();
  opts.page_size = 2;
  Informer inf(api, t, opts);
  inf.start();
  REQUIRE(inf.wait_for_sync(10s));
  REQUIRE(eventually([&] {
    for (const auto& tg : server.targets())
      if (tg.find("watch=true") != std::string::npos) return true;
    return false;
  }));
  inf.stop();
  CHECK(inf.snapshot().size() == 5);
  for (int i = 0; i < 5; ++i) CHECK(inf.get("default/p" + std::to_string(i)).has_value());
  std::vector<std::string> lists, watches;
  for (const auto& tg : server.targets())
    (tg.find("watch=true") != std::string::npos ? watches : lists).push_back(tg);
  REQUIRE(lists.size() >= 3);
  CHECK(lists[0].find("continue=") == std::string::npos);
  CHECK(lists[1].find("continue=p2") != std::string::npos);
  CHECK(lists[2].find("continue=p3") != std::string::npos);
  REQUIRE(!watches.empty());
  CHECK(watches[0].find("resourceVersion=7") != std::string::npos);
}

TEST_CASE("informer: a transform slims cached objects; resourceVersions still drive the watch") {
  const bool compact = GENERATE(false, true);  // the cache as json, or serialized (CBOR)
  CAPTURE(compact);
  std::atomic<int> watches{0};
  FakeServer server([&](const std::string& target) -> std::pair<int, std::string> {
    bool watch = target.find("watch=true") != std::string::npos;
    if (!watch) {
      // The second list (after the 410) has a unchanged and b gone.
      nlohmann::json items = watches == 0 ? nlohmann::json{pod("a", "5", "rs-1"), pod("b", "6")}
                                          : nlohmann::json{pod("a", "11", "rs-1")};
      nlohmann::json l = {{"kind", "PodList"},
                          {"metadata", {{"resourceVersion", watches == 0 ? "10" : "13"}}},
                          {"items", items}};
      return {200, l.dump()};
    }
    int n = watches++;
    if (n == 0) return {200, event("MODIFIED", pod("a", "11", "rs-1"))};
    if (n == 1) {
      return {200, event("ERROR", {{"kind", "Status"}, {"code", 410}, {"reason", "Expired"}})};
    }
    return {200, ""};
  });
  auto api = informer_api(server);
  auto t = pod_type();
  InformerOptions opts = informer_options();
  opts.compact_cache = compact;
  // Keeps name, namespace and resourceVersion only; drops apiVersion/kind too.
  opts.transform = [](json& o) {
    json md = json::object();
    for (const char* k : {"name", "namespace", "resourceVersion"})
      if (o["metadata"].contains(k)) md[k] = o["metadata"][k];
    o = json{{"metadata", md}, {"slim", true}};
  };
  Informer inf(api, t, opts);
  std::mutex mu;
  std::vector<std::string> log;
  bool all_slim = true;
  auto note = [&](const std::string& what, const json& o) {
    std::lock_guard l(mu);
    log.push_back(what + " " + object_key(o));
    all_slim = all_slim && o.value("slim", false) && !o.contains("spec") && !o.contains("kind");
  };
  inf.add_handlers({[&](const json& o) { note("add", o); },
                    [&](const json&, const json& o) { note("update", o); },
                    [&](const json& o) { note("delete", o); }});
  inf.start();
  REQUIRE(inf.wait_for_sync(10s));
  REQUIRE(eventually([&] { return inf.list_count() >= 2 && !inf.get("default/b"); }));
  auto targets = server.targets();
  inf.stop();
  {
    std::lock_guard l(mu);
    // The relist after the 410 finds a as cached (same slim object): no update reported.
    CHECK(log == std::vector<std::string>{"add default/a", "add default/b", "update default/a",
                                          "delete default/b"});
    CHECK(all_slim);
  }
  std::vector<std::string> watch_targets;
  for (const auto& tg : targets)
    if (tg.find("watch=true") != std::string::npos) watch_targets.push_back(tg);
  REQUIRE(watch_targets.size() >= 3);
  CHECK(watch_targets[0].find("resourceVersion=10") != std::string::npos);
  CHECK(watch_targets[1].find("resourceVersion=11") != std::string::npos);
  CHECK(watch_targets[2].find("resourceVersion=13") != std::string::npos);
  auto snap = inf.snapshot();
  REQUIRE(snap.size() == 1);
  CHECK(*snap[0] ==
        json{{"metadata", {{"name", "a"}, {"namespace", "default"}, {"resourceVersion", "11"}}},
             {"slim", true}});
  if (!compact) CHECK(snap[0].get() == inf.snapshot()[0].get());  // shared, not copied
  std::vector<json> each;
  inf.for_each([&](const json& o) { each.push_back(o); });
  CHECK(each == std::vector<json>{*snap[0]});
  CHECK(inf.get("default/a") == *snap[0]);
  CHECK(inf.by_owner("rs-1").empty());  // indexes see the slim object
}

}  // namespace
}  // namespace skiff::client
