// ApiHistory against a scripted plain-HTTP server on 127.0.0.1:0: the requests it makes
// (paths, methods, bodies, content types) and how it reacts to AlreadyExists and Conflict.
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "controllers/history/history.h"
#include "proto/client/api_client.h"

using namespace skiff;
using namespace skiff::controllers::history;
using json = nlohmann::json;

namespace {

struct Request {
  std::string method, target, content_type;
  json body;
};

// Answers each request from `handler`, one connection at a time (loopback only).
class ScriptServer {
 public:
  using Handler = std::function<std::pair<int, json>(const Request&)>;
  explicit ScriptServer(Handler h) : handler_(std::move(h)), acceptor_(ioc_) {
    namespace net = boost::asio;
    net::ip::tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptServer() {
    stopping_ = true;
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);  // wakes the blocked accept()
    boost::system::error_code ec;
    acceptor_.close(ec);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Request> requests() {
    std::lock_guard lock(mu_);
    return requests_;
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
        Request r{std::string(req.method_string()), std::string(req.target()),
                  std::string(req[http::field::content_type]),
                  json::parse(req.body().empty() ? "null" : req.body(), nullptr, false)};
        {
          std::lock_guard lock(mu_);
          requests_.push_back(r);
        }
        auto [status, body] = handler_(r);
        http::response<http::string_body> res{static_cast<http::status>(status), 11};
        res.set(http::field::content_type, "application/json");
        res.body() = body.dump();
        res.keep_alive(true);
        res.prepare_payload();
        http::write(sock, res, ec);
        if (ec) break;
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
  std::vector<Request> requests_;
};

json status_body(int code, const char* reason, const std::string& msg) {
  return {{"kind", "Status"},
          {"status", "Failure"},
          {"reason", reason},
          {"message", msg},
          {"code", code}};
}

const char kBase[] = "/apis/apps/v1/namespaces/default/controllerrevisions";

Parent parent() { return {"apps/v1", "StatefulSet", "default", "web", "uid-web"}; }
json data_v(int v) { return {{"spec", {{"template", {{"v", v}}}}}}; }

std::unique_ptr<client::ApiClient> client_for(const ScriptServer& s) {
  client::ClientConfig cfg;
  cfg.server = s.url();
  auto rc = client::RestClient::create(cfg);
  REQUIRE(rc.is_ok());
  return std::make_unique<client::ApiClient>(std::shared_ptr<client::RestClient>(std::move(*rc)));
}

}  // namespace

TEST_CASE("ApiHistory create: AlreadyExists with other data bumps the collision count") {
  auto rev = *new_revision(parent(), {{"app", "web"}}, data_v(1), 1, 0);
  std::string name0 = "web-" + hash_controller_revision(rev, 0);
  std::string name1 = "web-" + hash_controller_revision(rev, 1);
  ScriptServer server([&](const Request& r) -> std::pair<int, json> {
    if (r.method == "POST" && r.body["metadata"]["name"] == name0)
      return {409, status_body(409, "AlreadyExists", "already exists")};
    if (r.method == "GET" && r.target == std::string(kBase) + "/" + name0) {
      json other = revision_to_json(rev);
      other["metadata"]["name"] = name0;
      other["data"] = data_v(2);
      return {200, other};
    }
    if (r.method == "POST") {
      json created = r.body;
      created["metadata"]["uid"] = "uid-1";
      return {201, created};
    }
    return {404, status_body(404, "NotFound", "unexpected " + r.method + " " + r.target)};
  });
  auto api = client_for(server);
  ApiHistory h(*api);
  int32_t collisions = 0;
  auto created = h.create_controller_revision(parent(), rev, &collisions);
  REQUIRE(created);
  CHECK(collisions == 1);
  CHECK(created->metadata.name == name1);
  CHECK(created->metadata.uid == "uid-1");
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 3);
  CHECK(reqs[0].method == "POST");
  CHECK(reqs[0].target == kBase);
  CHECK(reqs[0].body["kind"] == "ControllerRevision");
  CHECK(reqs[0].body["revision"] == 1);
  CHECK(reqs[0].body["metadata"]["ownerReferences"][0]["uid"] == "uid-web");
  CHECK(reqs[1].method == "GET");
  CHECK(reqs[2].body["metadata"]["name"] == name1);
}

TEST_CASE("ApiHistory create: AlreadyExists with equal data returns the existing revision") {
  auto rev = *new_revision(parent(), {}, data_v(1), 1, 0);
  ScriptServer server([&](const Request& r) -> std::pair<int, json> {
    if (r.method == "POST") return {409, status_body(409, "AlreadyExists", "already exists")};
    json existing = revision_to_json(rev);
    existing["metadata"]["uid"] = "uid-old";
    return {200, existing};
  });
  auto api = client_for(server);
  ApiHistory h(*api);
  int32_t collisions = 0;
  auto got = h.create_controller_revision(parent(), rev, &collisions);
  REQUIRE(got);
  CHECK(got->metadata.uid == "uid-old");
  CHECK(collisions == 0);
}

TEST_CASE("ApiHistory update retries a Conflict on a fresh read; list, adopt, delete") {
  auto rev = *new_revision(parent(), {{"app", "web"}}, data_v(1), 1, 0);
  rev.metadata.uid = "uid-rev";
  rev.metadata.resource_version = "7";
  int puts = 0;
  ScriptServer server([&](const Request& r) -> std::pair<int, json> {
    json obj = revision_to_json(rev);
    if (r.method == "PUT") {
      if (++puts == 1) return {409, status_body(409, "Conflict", "the object has been modified")};
      return {200, r.body};
    }
    if (r.method == "GET" && r.target.find("labelSelector") != std::string::npos) {
      json orphan = obj;
      orphan["metadata"]["name"] = "web-orphan";
      orphan["metadata"].erase("ownerReferences");
      json foreign = obj;
      foreign["metadata"]["name"] = "web-foreign";
      foreign["metadata"]["ownerReferences"][0]["uid"] = "someone-else";
      return {200,
              {{"kind", "ControllerRevisionList"},
               {"metadata", {{"resourceVersion", "9"}}},
               {"items", {obj, orphan, foreign}}}};
    }
    if (r.method == "GET") {
      obj["metadata"]["resourceVersion"] = "8";
      return {200, obj};
    }
    if (r.method == "PATCH") return {200, obj};
    if (r.method == "DELETE") return {200, status_body(200, "", "")};
    return {404, status_body(404, "NotFound", "unexpected")};
  });
  auto api = client_for(server);
  ApiHistory h(*api);

  auto up = h.update_controller_revision(rev, 4);
  REQUIRE(up);
  CHECK(up->revision == 4);
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 3);  // PUT (conflict), GET, PUT
  CHECK(reqs[2].method == "PUT");
  CHECK(reqs[2].body["metadata"]["resourceVersion"] == "8");
  CHECK(reqs[2].body["revision"] == 4);

  auto listed = h.list_controller_revisions(parent(), *proto::LabelSelector::parse("app=web"));
  REQUIRE(listed);
  CHECK(listed->size() == 2);  // own + orphan, not the foreign one
  reqs = server.requests();
  CHECK(reqs.back().target == std::string(kBase) + "?labelSelector=app%3Dweb");

  auto adopted = h.adopt_controller_revision(parent(), (*listed)[1]);
  REQUIRE(adopted);
  reqs = server.requests();
  CHECK(reqs.back().method == "PATCH");
  CHECK(reqs.back().content_type == "application/strategic-merge-patch+json");
  CHECK(reqs.back().body["metadata"]["ownerReferences"][0]["controller"] == true);

  CHECK(h.delete_controller_revision(rev).is_ok());
  reqs = server.requests();
  CHECK(reqs.back().method == "DELETE");
  CHECK(reqs.back().target == std::string(kBase) + "/" + rev.metadata.name);
}
