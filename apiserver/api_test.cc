// In-process tests of the API logic: Api::handle with Request structs over the memory store.
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "apiserver/api.h"
#include "apiserver/api_impl.h"
#include "apiserver/store/store.h"
#include "proto/codec.h"

namespace skiff::apiserver {
namespace {

using proto::json;
using namespace std::chrono_literals;

// A Stream that records what is written; optionally cuts off after `max_chunks` like the
// transport does with a slow reader.
class FakeStream : public Stream {
 public:
  explicit FakeStream(size_t max_chunks = SIZE_MAX) : max_chunks_(max_chunks) {}
  bool write(std::shared_ptr<const std::string> chunk) override {
    std::unique_lock<std::mutex> lk(mu_);
    if (closed_) return false;
    if (chunks_.size() >= max_chunks_) {
      lk.unlock();
      close();
      return false;
    }
    chunks_.push_back(std::move(chunk));
    cv_.notify_all();
    return true;
  }
  void close() override {
    std::vector<std::function<void()>> cbs;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (closed_) return;
      closed_ = true;
      cbs.swap(cbs_);
    }
    cv_.notify_all();
    for (auto& cb : cbs) cb();
  }
  bool closed() const override {
    std::lock_guard<std::mutex> g(mu_);
    return closed_;
  }
  void on_close(std::function<void()> cb) override {
    std::unique_lock<std::mutex> lk(mu_);
    if (closed_) {
      lk.unlock();
      cb();
      return;
    }
    cbs_.push_back(std::move(cb));
  }
  // Waits (bounded) until `n` events arrived; returns them parsed.
  std::vector<json> wait_events(size_t n, std::chrono::seconds limit = 10s) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, limit, [&] { return chunks_.size() >= n; });
    std::vector<json> out;
    for (auto& c : chunks_) {
      REQUIRE(!c->empty());
      CHECK(c->back() == '\n');
      out.push_back(json::parse(*c));
    }
    return out;
  }
  bool wait_closed(std::chrono::seconds limit = 10s) {
    std::unique_lock<std::mutex> lk(mu_);
    return cv_.wait_for(lk, limit, [&] { return closed_; });
  }
  size_t count() {
    std::lock_guard<std::mutex> g(mu_);
    return chunks_.size();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<const std::string>> chunks_;
  std::vector<std::function<void()>> cbs_;
  bool closed_ = false;
  size_t max_chunks_;
};

struct Fixture {
  std::unique_ptr<store::Store> store = store::make_memory_store();
  std::unique_ptr<Api> api;

  explicit Fixture(int64_t window = 10000, int bookmark_ms = 5000) {
    ApiOptions o;
    o.store = store.get();
    o.watch_cache_events = window;
    o.bookmark_interval_ms = bookmark_ms;
    std::string err;
    api = Api::create(o, &err);
    INFO(err);
    REQUIRE(api);
  }
  ~Fixture() { api->shutdown(); }

  Response call(const std::string& method, const std::string& target, const std::string& body = "",
                std::map<std::string, std::string> headers = {}) {
    Request r;
    r.method = method;
    r.raw_target = target;
    auto q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string::npos) {
      std::string qs = target.substr(q + 1);
      size_t i = 0;
      while (i <= qs.size()) {
        size_t amp = qs.find('&', i);
        if (amp == std::string::npos) amp = qs.size();
        std::string kv = qs.substr(i, amp - i);
        auto eq = kv.find('=');
        if (!kv.empty())
          r.query.emplace(kv.substr(0, eq), eq == std::string::npos ? "" : kv.substr(eq + 1));
        i = amp + 1;
      }
    }
    r.headers = std::move(headers);
    if (!body.empty() && !r.headers.count("content-type") && !r.headers.count("x-no-content-type") &&
        method != "PATCH")
      r.headers["content-type"] = "application/json";
    r.body = body;
    r.user = "admin";
    return api->handle(r);
  }
  json call_json(const std::string& method, const std::string& target, const std::string& body = "",
                 std::map<std::string, std::string> headers = {}) {
    Response r = call(method, target, body, std::move(headers));
    INFO(r.body);
    REQUIRE(r.content_type.find("application/json") == 0);
    return json::parse(r.body);
  }
  // Starts a watch and returns its stream (initial events may already be in it).
  std::shared_ptr<FakeStream> watch(const std::string& target,
                                    std::map<std::string, std::string> headers = {},
                                    size_t max_chunks = SIZE_MAX) {
    Response r = call("GET", target, "", std::move(headers));
    INFO(r.body);
    REQUIRE(r.status == 200);
    REQUIRE(r.streamer);
    auto s = std::make_shared<FakeStream>(max_chunks);
    r.streamer(s);
    return s;
  }
  WatchCache& cache() { return dynamic_cast<ApiImpl&>(*api).watch_cache(); }
};

std::string pod(const std::string& name, const std::string& labels = "{}",
                const std::string& image = "nginx") {
  return R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")" + name +
         R"(","labels":)" + labels + R"(},"spec":{"containers":[{"name":"c","image":")" + image +
         R"("}]}})";
}

std::string cm(const std::string& name, const std::string& extra_meta = "") {
  return R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")" + name + "\"" +
         extra_meta + R"(},"data":{"k":"v"}})";
}

const char* kPods = "/api/v1/namespaces/default/pods";
const char* kTableAccept =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
    "g=meta.k8s.io,application/json";

TEST_CASE("discovery, version, openapi and health") {
  Fixture f;
  auto api = f.call_json("GET", "/api");
  CHECK(api["versions"] == json::array({"v1"}));
  auto core = f.call_json("GET", "/api/v1");
  CHECK(core["kind"] == "APIResourceList");
  CHECK(core["groupVersion"] == "v1");
  bool saw_pods = false, saw_status = false, saw_binding = false;
  for (const auto& r : core["resources"]) {
    if (r["name"] == "pods") {
      saw_pods = true;
      CHECK(r["kind"] == "Pod");
      CHECK(r["namespaced"] == true);
      CHECK(r["singularName"] == "pod");
      CHECK(r["shortNames"] == json::array({"po"}));
      CHECK(r["categories"] == json::array({"all"}));
      CHECK(r["verbs"].size() == 8);
    }
    saw_status |= r["name"] == "pods/status";
    saw_binding |= r["name"] == "pods/binding" && r["kind"] == "Binding";
  }
  CHECK(saw_pods);
  CHECK(saw_status);
  CHECK(saw_binding);
  auto groups = f.call_json("GET", "/apis");
  CHECK(groups["kind"] == "APIGroupList");
  for (const auto& g : groups["groups"]) CHECK(g.contains("preferredVersion"));

  auto v = f.call_json("GET", "/version");
  CHECK(v["major"] == "1");
  CHECK(v["minor"] == "32");
  CHECK(v["gitVersion"] == "v1.32.0");
  CHECK(v["platform"] == "linux/amd64");

  Response o = f.call("GET", "/openapi/v2?timeout=32s");
  CHECK(o.status == 200);
  CHECK(o.body.empty());
  CHECK(o.content_type == "application/octet-stream");
  CHECK(f.call("GET", "/openapi/v3").status == 404);
  Response h = f.call("GET", "/healthz");
  CHECK(h.status == 200);
  CHECK(h.body == "ok");
  CHECK(f.call("GET", "/readyz").body == "ok");

  auto nf = f.call_json("GET", "/api/v1/nonsense");
  CHECK(nf["kind"] == "Status");
  CHECK(nf["code"] == 404);
  CHECK(nf["reason"] == "NotFound");
  Response bad_method = f.call("OPTIONS", kPods);
  CHECK(bad_method.status == 405);
  CHECK(json::parse(bad_method.body)["reason"] == "MethodNotAllowed");
}

TEST_CASE("built-in namespaces exist at start") {
  Fixture f;
  auto list = f.call_json("GET", "/api/v1/namespaces");
  std::set<std::string> names;
  for (const auto& ns : list["items"]) {
    names.insert(ns["metadata"]["name"]);
    CHECK(ns["status"]["phase"] == "Active");
  }
  CHECK(names == std::set<std::string>{"default", "kube-public", "kube-system"});
  // A second Api over the same store does not fail or duplicate them.
  ApiOptions o;
  o.store = f.store.get();
  std::string err;
  auto again = Api::create(o, &err);
  REQUIRE(again);
  again->shutdown();
}

TEST_CASE("create, get, update, conflicts and delete") {
  Fixture f;
  Response r = f.call("POST", std::string(kPods) + "?fieldManager=kubectl-create", pod("web"));
  INFO(r.body);
  REQUIRE(r.status == 201);
  json made = json::parse(r.body);
  const auto& m = made["metadata"];
  CHECK(m["namespace"] == "default");
  CHECK(m["uid"].get<std::string>().size() == 36);
  CHECK(m["uid"].get<std::string>()[14] == '4');
  CHECK(m["creationTimestamp"].get<std::string>().back() == 'Z');
  CHECK(m["generation"] == 1);
  std::string rv1 = m["resourceVersion"];
  CHECK(std::stoll(rv1) > 0);

  auto got = f.call_json("GET", std::string(kPods) + "/web");
  CHECK(got == made);

  // Already exists.
  auto dup = f.call_json("POST", kPods, pod("web"));
  CHECK(dup["code"] == 409);
  CHECK(dup["reason"] == "AlreadyExists");
  CHECK(dup["message"] == "pods \"web\" already exists");
  CHECK(dup["details"] == json({{"name", "web"}, {"kind", "pods"}}));

  // Update with the current resourceVersion: labels only, generation unchanged.
  json upd = got;
  upd["metadata"]["labels"] = {{"app", "web"}};
  Response u = f.call("PUT", std::string(kPods) + "/web", upd.dump());
  INFO(u.body);
  REQUIRE(u.status == 200);
  json u1 = json::parse(u.body);
  CHECK(u1["metadata"]["generation"] == 1);
  CHECK(u1["metadata"]["uid"] == m["uid"]);
  CHECK(std::stoll(u1["metadata"]["resourceVersion"].get<std::string>()) > std::stoll(rv1));

  // Stale resourceVersion: Kubernetes' conflict.
  auto stale = f.call_json("PUT", std::string(kPods) + "/web", upd.dump());
  CHECK(stale["code"] == 409);
  CHECK(stale["reason"] == "Conflict");
  CHECK(stale["message"] ==
        "Operation cannot be fulfilled on pods \"web\": the object has been modified; please "
        "apply your changes to the latest version and try again");

  // Spec change without resourceVersion: unconditional, generation bumped; uid immutable.
  json spec = u1;
  spec["metadata"].erase("resourceVersion");
  spec["metadata"]["uid"] = "something-else";
  spec["spec"]["activeDeadlineSeconds"] = 30;
  Response s = f.call("PUT", std::string(kPods) + "/web", spec.dump());
  INFO(s.body);
  REQUIRE(s.status == 200);
  CHECK(json::parse(s.body)["metadata"]["generation"] == 2);
  CHECK(json::parse(s.body)["metadata"]["uid"] == m["uid"]);

  // Delete returns the object; then it is gone.
  Response d = f.call("DELETE", std::string(kPods) + "/web", R"({"propagationPolicy":"Background"})");
  CHECK(d.status == 200);
  CHECK(json::parse(d.body)["metadata"]["name"] == "web");
  auto gone = f.call_json("GET", std::string(kPods) + "/web");
  CHECK(gone["code"] == 404);
  CHECK(gone["message"] == "pods \"web\" not found");
  CHECK(f.call("DELETE", std::string(kPods) + "/web").status == 404);
}

TEST_CASE("admission errors: bad JSON, wrong kind, namespaces, validation") {
  Fixture f;
  auto bad = f.call_json("POST", kPods, "{\"kind\": \"Pod\", ");
  CHECK(bad["code"] == 400);
  CHECK(bad["reason"] == "BadRequest");
  CHECK(bad["message"].get<std::string>().find("at byte") != std::string::npos);

  auto proto_body = f.call_json("POST", kPods, std::string("k8s\0\x0a", 5),
                               {{"content-type", "application/vnd.kubernetes.protobuf"}});
  CHECK(proto_body["code"] == 415);
  CHECK(proto_body["reason"] == "UnsupportedMediaType");
  // No Content-Type means JSON.
  CHECK(f.call("POST", kPods, pod("noct"), {{"x-no-content-type", "1"}}).status == 201);
  auto kind = f.call_json("POST", kPods, R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"x"}})");
  CHECK(kind["code"] == 400);
  auto version = f.call_json("POST", kPods, R"({"apiVersion":"apps/v1","kind":"Pod","metadata":{"name":"x"}})");
  CHECK(version["code"] == 400);

  auto type = f.call_json("POST", kPods,
                          R"({"metadata":{"name":"x"},"spec":{"containers":"nope"}})");
  CHECK(type["code"] == 400);
  CHECK(type["message"].get<std::string>().find("spec.containers") != std::string::npos);

  // A well-formed time the clock cannot hold is refused by name, not stored wrapped (year 3000
  // was stored as 1830).
  const std::string events = "/api/v1/namespaces/default/events";
  auto far = f.call_json("POST", events,
                         R"({"apiVersion":"v1","kind":"Event","metadata":{"name":"far"},
                             "involvedObject":{"kind":"Pod","name":"p","namespace":"default"},
                             "reason":"R","lastTimestamp":"3000-01-01T00:00:00Z"})");
  CHECK(far["code"] == 400);
  CHECK(far["message"].get<std::string>().find(
            "lastTimestamp: Invalid value: \"3000-01-01T00:00:00Z\": time out of the range skiff "
            "stores (years 1678 to 2261)") != std::string::npos);
  CHECK(f.call("GET", events + "/far").status == 404);

  auto missing_ns = f.call_json("POST", "/api/v1/namespaces/nope/pods", pod("x"));
  CHECK(missing_ns["code"] == 404);
  CHECK(missing_ns["message"] == "namespaces \"nope\" not found");

  auto mismatch = f.call_json(
      "POST", kPods, R"({"metadata":{"name":"x","namespace":"kube-system"},"spec":{"containers":[{"name":"c","image":"i"}]}})");
  CHECK(mismatch["code"] == 400);

  auto invalid = f.call_json("POST", kPods, pod("Bad_Name"));
  CHECK(invalid["code"] == 422);
  CHECK(invalid["reason"] == "Invalid");
  CHECK(invalid["details"]["kind"] == "Pod");
  CHECK(invalid["details"]["name"] == "Bad_Name");
  REQUIRE(invalid["details"]["causes"].size() >= 1);
  CHECK(invalid["details"]["causes"][0]["field"] == "metadata.name");
  std::string msg = invalid["message"];
  CHECK(msg.rfind("Pod \"Bad_Name\" is invalid: metadata.name: Invalid value: ", 0) == 0);

  auto two = f.call_json("POST", kPods,
                         R"({"metadata":{"name":"Bad_Name"},"spec":{"containers":[{"name":"c"}]}})");
  CHECK(two["code"] == 422);
  CHECK(two["message"].get<std::string>().find("is invalid: [") != std::string::npos);

  auto noname = f.call_json("POST", kPods, R"({"spec":{"containers":[{"name":"c","image":"i"}]}})");
  CHECK(noname["code"] == 422);

  // Nothing invalid was stored.
  CHECK(f.call_json("GET", kPods)["items"].size() == 1);
}

TEST_CASE("generateName, dry run and strict field validation") {
  Fixture f;
  auto g = f.call_json("POST", kPods,
                       R"({"metadata":{"generateName":"web-"},"spec":{"containers":[{"name":"c","image":"i"}]}})");
  std::string name = g["metadata"]["name"];
  REQUIRE(name.size() == 9);
  CHECK(name.rfind("web-", 0) == 0);
  for (char c : name.substr(4))
    CHECK(std::string("bcdfghjklmnpqrstvwxz2456789").find(c) != std::string::npos);

  Response dry = f.call("POST", std::string(kPods) + "?dryRun=All", pod("dry"));
  CHECK(dry.status == 201);
  CHECK(json::parse(dry.body)["metadata"]["name"] == "dry");
  CHECK(f.call("GET", std::string(kPods) + "/dry").status == 404);

  std::string unknown = R"({"metadata":{"name":"u"},"spec":{"foo":1,"containers":[{"name":"c","image":"i"}]}})";
  auto strict = f.call_json("POST", std::string(kPods) + "?fieldValidation=Strict", unknown);
  CHECK(strict["code"] == 400);
  CHECK(strict["message"] == "strict decoding error: unknown field \"spec.foo\"");

  Response warn = f.call("POST", kPods, unknown);
  CHECK(warn.status == 201);
  bool warned = false;
  for (auto& [k, v] : warn.headers)
    warned |= k == "Warning" && v == "299 - \"unknown field \\\"spec.foo\\\"\"";
  CHECK(warned);
  CHECK(!json::parse(warn.body)["spec"].contains("foo"));

  Response ignore = f.call("POST", std::string(kPods) + "?fieldValidation=Ignore",
                           R"({"metadata":{"name":"i2"},"spec":{"foo":1,"containers":[{"name":"c","image":"i"}]}})");
  CHECK(ignore.status == 201);
  CHECK(ignore.headers.empty());
}

TEST_CASE("label and field selectors") {
  Fixture f;
  REQUIRE(f.call("POST", kPods, pod("a", R"({"app":"web","tier":"fe"})")).status == 201);
  REQUIRE(f.call("POST", kPods, pod("b", R"({"app":"web"})")).status == 201);
  REQUIRE(f.call("POST", kPods, pod("c", R"({"app":"db"})")).status == 201);
  auto names = [&](const std::string& q) {
    auto l = f.call_json("GET", std::string(kPods) + "?" + q);
    INFO(l.dump());
    std::vector<std::string> out;
    for (const auto& i : l["items"]) out.push_back(i["metadata"]["name"]);
    return out;
  };
  CHECK(names("labelSelector=app=web") == std::vector<std::string>{"a", "b"});
  CHECK(names("labelSelector=app in (db),!tier") == std::vector<std::string>{"c"});
  CHECK(names("fieldSelector=metadata.name=b") == std::vector<std::string>{"b"});
  CHECK(names("fieldSelector=metadata.name!=b&labelSelector=app=web") ==
        std::vector<std::string>{"a"});
  auto bad = f.call_json("GET", std::string(kPods) + "?fieldSelector=spec.foo=x");
  CHECK(bad["code"] == 400);
  CHECK(bad["message"] == "field label not supported: spec.foo");
  // All namespaces.
  CHECK(f.call_json("GET", "/api/v1/pods")["items"].size() == 3);
}

TEST_CASE("paging with limit and continue, and 410 once compacted") {
  Fixture f;
  for (int i = 0; i < 7; ++i)
    REQUIRE(f.call("POST", "/api/v1/namespaces/default/configmaps", cm("c" + std::to_string(i)))
                .status == 201);
  std::vector<std::string> seen;
  std::string cont;
  std::string rv;
  for (int page = 0; page < 10; ++page) {
    std::string q = "/api/v1/namespaces/default/configmaps?limit=3";
    if (!cont.empty()) q += "&continue=" + cont;
    auto l = f.call_json("GET", q);
    REQUIRE(l["kind"] == "ConfigMapList");
    CHECK(l["items"].size() <= 3);
    if (rv.empty()) rv = l["metadata"]["resourceVersion"];
    CHECK(l["metadata"]["resourceVersion"] == rv);  // every page at the first page's revision
    for (const auto& i : l["items"]) seen.push_back(i["metadata"]["name"]);
    if (page == 0)  // a write between pages is not seen by the paged list
      REQUIRE(f.call("POST", "/api/v1/namespaces/default/configmaps", cm("late")).status == 201);
    cont = l["metadata"].value("continue", "");
    if (cont.empty()) break;
  }
  CHECK(seen == std::vector<std::string>{"c0", "c1", "c2", "c3", "c4", "c5", "c6"});

  auto first = f.call_json("GET", "/api/v1/namespaces/default/configmaps?limit=2");
  std::string token = first["metadata"]["continue"];
  REQUIRE(f.call("POST", "/api/v1/namespaces/default/configmaps", cm("later")).status == 201);
  REQUIRE(f.store->compact(f.store->current_revision()).is_ok());
  auto expired = f.call_json("GET", "/api/v1/namespaces/default/configmaps?limit=2&continue=" + token);
  CHECK(expired["code"] == 410);
  CHECK(expired["reason"] == "Expired");
  CHECK(f.call_json("GET", "/api/v1/namespaces/default/configmaps?continue=garbage")["code"] == 400);
}

TEST_CASE("tables for lists, single objects and content negotiation") {
  Fixture f;
  REQUIRE(f.call("POST", kPods, pod("web", R"({"app":"web"})")).status == 201);
  auto t = f.call_json("GET", std::string(kPods) + "?limit=500", "", {{"accept", kTableAccept}});
  CHECK(t["kind"] == "Table");
  CHECK(t["apiVersion"] == "meta.k8s.io/v1");
  CHECK(!t["metadata"]["resourceVersion"].get<std::string>().empty());
  REQUIRE(!t["columnDefinitions"].empty());
  const auto& c0 = t["columnDefinitions"][0];
  CHECK(c0["name"] == "Name");
  CHECK(c0["format"] == "name");
  for (const char* k : {"name", "type", "format", "description", "priority"}) CHECK(c0.contains(k));
  bool wide = false;
  for (const auto& c : t["columnDefinitions"]) wide |= c["priority"] == 1;
  CHECK(wide);
  REQUIRE(t["rows"].size() == 1);
  CHECK(t["rows"][0]["cells"][0] == "web");
  CHECK(t["rows"][0]["cells"].size() == t["columnDefinitions"].size());
  const auto& obj = t["rows"][0]["object"];
  CHECK(obj["kind"] == "PartialObjectMetadata");
  CHECK(obj["apiVersion"] == "meta.k8s.io/v1");
  CHECK(obj["metadata"]["labels"]["app"] == "web");
  CHECK(!obj.contains("spec"));

  auto full = f.call_json("GET", std::string(kPods) + "?includeObject=Object", "",
                          {{"accept", kTableAccept}});
  CHECK(full["rows"][0]["object"]["kind"] == "Pod");
  CHECK(full["rows"][0]["object"].contains("spec"));

  auto one = f.call_json("GET", std::string(kPods) + "/web", "", {{"accept", kTableAccept}});
  CHECK(one["kind"] == "Table");
  CHECK(one["rows"].size() == 1);

  auto beta = f.call_json("GET", kPods, "", {{"accept", "application/json;as=Table;v=v1beta1;g=meta.k8s.io"}});
  CHECK(beta["apiVersion"] == "meta.k8s.io/v1beta1");

  // The order of Accept alternatives is respected.
  auto plain = f.call_json("GET", kPods, "",
                           {{"accept", "application/json, application/json;as=Table;v=v1;g=meta.k8s.io"}});
  CHECK(plain["kind"] == "PodList");
  auto proto_first = f.call_json(
      "GET", kPods, "", {{"accept", "application/vnd.kubernetes.protobuf, application/json"}});
  CHECK(proto_first["kind"] == "PodList");
  CHECK(f.call("GET", kPods, "", {{"accept", "application/yaml"}}).status == 406);
}

TEST_CASE("status subresource and binding") {
  Fixture f;
  REQUIRE(f.call("POST", kPods, pod("p")).status == 201);
  // The main resource ignores status changes.
  auto cur = f.call_json("GET", std::string(kPods) + "/p");
  cur["status"]["phase"] = "Running";
  cur["metadata"].erase("resourceVersion");
  auto main = f.call_json("PUT", std::string(kPods) + "/p", cur.dump());
  CHECK(main["status"].value("phase", "") != "Running");
  // /status changes only status.
  cur["spec"]["activeDeadlineSeconds"] = 5;
  auto st = f.call_json("PUT", std::string(kPods) + "/p/status", cur.dump());
  CHECK(st["status"]["phase"] == "Running");
  CHECK(!st["spec"].contains("activeDeadlineSeconds"));
  CHECK(st["metadata"]["generation"] == 1);
  auto sp = f.call_json("PATCH", std::string(kPods) + "/p/status",
                        R"({"status":{"phase":"Succeeded"}})",
                        {{"content-type", "application/merge-patch+json"}});
  CHECK(sp["status"]["phase"] == "Succeeded");
  CHECK(f.call_json("GET", std::string(kPods) + "/p/status")["status"]["phase"] == "Succeeded");

  std::string binding = R"({"apiVersion":"v1","kind":"Binding","metadata":{"name":"p"},"target":{"kind":"Node","name":"n1"}})";
  auto b = f.call_json("POST", std::string(kPods) + "/p/binding", binding);
  CHECK(b["status"] == "Success");
  CHECK(b["code"] == 201);
  CHECK(f.call_json("GET", std::string(kPods) + "/p")["spec"]["nodeName"] == "n1");
  auto again = f.call_json("POST", std::string(kPods) + "/p/binding", binding);
  CHECK(again["code"] == 409);
  CHECK(again["reason"] == "Conflict");
}

TEST_CASE("patches: merge, json, strategic merge, unsupported types") {
  Fixture f;
  std::string two = R"({"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"a:1"},{"name":"b","image":"b:1"}]}})";
  REQUIRE(f.call("POST", kPods, two).status == 201);
  auto smp = f.call_json("PATCH", std::string(kPods) + "/p?fieldManager=kubectl-client-side-apply",
                         R"({"metadata":{"labels":{"x":"y"}},"spec":{"$setElementOrder/containers":[{"name":"a"},{"name":"b"}],"containers":[{"name":"b","image":"b:2"}]}})",
                         {{"content-type", "application/strategic-merge-patch+json"}});
  INFO(smp.dump());
  REQUIRE(smp["spec"]["containers"].size() == 2);
  CHECK(smp["spec"]["containers"][0]["image"] == "a:1");
  CHECK(smp["spec"]["containers"][1]["image"] == "b:2");
  CHECK(smp["metadata"]["labels"]["x"] == "y");
  CHECK(smp["metadata"]["generation"] == 2);

  auto mp = f.call_json("PATCH", std::string(kPods) + "/p", R"({"metadata":{"labels":{"x":null}}})",
                        {{"content-type", "application/merge-patch+json"}});
  CHECK(!mp["metadata"].contains("labels"));
  CHECK(mp["metadata"]["generation"] == 2);

  auto jp = f.call_json("PATCH", std::string(kPods) + "/p",
                        R"([{"op":"replace","path":"/spec/containers/0/image","value":"a:3"}])",
                        {{"content-type", "application/json-patch+json"}});
  CHECK(jp["spec"]["containers"][0]["image"] == "a:3");

  auto stale = f.call_json("PATCH", std::string(kPods) + "/p", R"({"metadata":{"resourceVersion":"1"}})",
                           {{"content-type", "application/merge-patch+json"}});
  CHECK(stale["code"] == 409);

  auto invalid = f.call_json("PATCH", std::string(kPods) + "/p",
                             R"({"spec":{"containers":[{"name":"a","image":""}]}})",
                             {{"content-type", "application/merge-patch+json"}});
  CHECK(invalid["code"] == 422);

  auto apply = f.call_json("PATCH", std::string(kPods) + "/p?fieldManager=kubectl&force=false", "{}",
                           {{"content-type", "application/apply-patch+yaml"}});
  CHECK(apply["code"] == 415);
  CHECK(apply["reason"] == "UnsupportedMediaType");
  CHECK(f.call_json("PATCH", std::string(kPods) + "/p", "{}", {{"content-type", "text/plain"}})["code"] == 415);
  CHECK(f.call_json("PATCH", std::string(kPods) + "/nope", "{}",
                    {{"content-type", "application/merge-patch+json"}})["code"] == 404);
}

TEST_CASE("finalizers hold deletion until the last one is removed") {
  Fixture f;
  const std::string base = "/api/v1/namespaces/default/configmaps";
  REQUIRE(f.call("POST", base, cm("held", R"(,"finalizers":["example.com/hold"])")).status == 201);
  Response d = f.call("DELETE", base + "/held");
  REQUIRE(d.status == 200);
  json marked = json::parse(d.body);
  CHECK(marked["metadata"].contains("deletionTimestamp"));
  CHECK(marked["metadata"]["deletionGracePeriodSeconds"] == 0);
  auto still = f.call_json("GET", base + "/held");
  CHECK(still["metadata"].contains("deletionTimestamp"));
  auto done = f.call_json("PATCH", base + "/held", R"({"metadata":{"finalizers":null}})",
                          {{"content-type", "application/merge-patch+json"}});
  CHECK(done["metadata"]["name"] == "held");
  CHECK(f.call("GET", base + "/held").status == 404);

  // Delete preconditions.
  REQUIRE(f.call("POST", base, cm("pre")).status == 201);
  auto pc = f.call_json("DELETE", base + "/pre", R"({"preconditions":{"uid":"wrong"}})");
  CHECK(pc["code"] == 409);
  CHECK(f.call("GET", base + "/pre").status == 200);
  auto dry = f.call("DELETE", base + "/pre?dryRun=All");
  CHECK(dry.status == 200);
  CHECK(f.call("GET", base + "/pre").status == 200);
  CHECK(f.call("DELETE", base + "/pre", R"({"dryRun":["All"]})").status == 200);
  CHECK(f.call("GET", base + "/pre").status == 200);
  // DeleteOptions fields of the wrong type are a 400 (Go's decoder), never a real delete: a
  // dryRun given as a string, a grace period given as a string (it used to count as 0).
  for (const char* body : {R"({"dryRun":"All"})", R"({"dryRun":["Some"]})",
                           R"({"gracePeriodSeconds":"30"})", R"({"propagationPolicy":1})",
                           R"({"orphanDependents":"yes"})", R"({"preconditions":"x"})"}) {
    auto bad = f.call_json("DELETE", base + "/pre", body);
    INFO(body);
    CHECK(bad["code"] == 400);
  }
  CHECK(f.call_json("DELETE", base + "/pre", R"({"dryRun":"All"})")["message"] ==
        "json: cannot unmarshal string into Go struct field DeleteOptions.dryRun of type "
        "[]string");
  CHECK(f.call("GET", base + "/pre").status == 200);
}

TEST_CASE("propagationPolicy Foreground/Orphan hold the object with the GC's finalizer") {
  Fixture f;
  const std::string base = "/api/v1/namespaces/default/configmaps";
  REQUIRE(f.call("POST", base, cm("fg")).status == 201);
  auto fg = f.call_json("DELETE", base + "/fg", R"({"propagationPolicy":"Foreground"})");
  CHECK(fg["metadata"].contains("deletionTimestamp"));
  CHECK(fg["metadata"]["finalizers"] == json::array({"foregroundDeletion"}));
  CHECK(f.call_json("GET", base + "/fg")["metadata"]["finalizers"] ==
        json::array({"foregroundDeletion"}));
  // Deleting again without a policy keeps it; Orphan swaps the finalizer.
  CHECK(f.call("DELETE", base + "/fg").status == 200);
  auto sw = f.call_json("DELETE", base + "/fg?propagationPolicy=Orphan");
  CHECK(sw["metadata"]["finalizers"] == json::array({"orphan"}));
  // The collector removes its finalizer: the object goes.
  REQUIRE(f.call("PATCH", base + "/fg", R"({"metadata":{"finalizers":null}})",
                 {{"content-type", "application/merge-patch+json"}})
              .status == 200);
  CHECK(f.call("GET", base + "/fg").status == 404);

  // orphanDependents: true is Orphan; other finalizers are kept beside it.
  REQUIRE(f.call("POST", base, cm("or", R"(,"finalizers":["example.com/hold"])")).status == 201);
  auto orph = f.call_json("DELETE", base + "/or", R"({"orphanDependents":true})");
  CHECK(orph["metadata"]["finalizers"] == json::array({"example.com/hold", "orphan"}));
  // Background drops the GC finalizers (the other one still holds it).
  auto bg = f.call_json("DELETE", base + "/or", R"({"propagationPolicy":"Background"})");
  CHECK(bg["metadata"]["finalizers"] == json::array({"example.com/hold"}));
  CHECK(f.call("GET", base + "/or").status == 200);

  // Background or no policy on a plain object deletes it at once.
  REQUIRE(f.call("POST", base, cm("bg")).status == 201);
  CHECK(f.call("DELETE", base + "/bg", R"({"propagationPolicy":"Background"})").status == 200);
  CHECK(f.call("GET", base + "/bg").status == 404);
  CHECK(f.call_json("DELETE", base + "/x?propagationPolicy=Sideways")["code"] == 400);
}

TEST_CASE("deletecollection with a selector") {
  Fixture f;
  for (const char* n : {"a", "b", "c"})
    REQUIRE(f.call("POST", kPods, pod(n, std::string(R"({"app":")") + (n[0] == 'c' ? "x" : "y") + "\"}"))
                .status == 201);
  // dryRun in the DeleteOptions body: the answer lists what would go, nothing goes.
  auto dry = f.call_json("DELETE", std::string(kPods) + "?labelSelector=app=y",
                         R"({"kind":"DeleteOptions","apiVersion":"v1","dryRun":["All"]})");
  CHECK(dry["items"].size() == 2);
  CHECK(f.call_json("GET", kPods)["items"].size() == 3);
  auto d = f.call_json("DELETE", std::string(kPods) + "?labelSelector=app=y");
  CHECK(d["kind"] == "PodList");
  CHECK(d["items"].size() == 2);
  auto left = f.call_json("GET", kPods);
  REQUIRE(left["items"].size() == 1);
  CHECK(left["items"][0]["metadata"]["name"] == "c");
}

TEST_CASE("deleting a namespace empties it and refuses new content") {
  Fixture f;
  REQUIRE(f.call("POST", "/api/v1/namespaces",
                 R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team"}})")
              .status == 201);
  REQUIRE(f.call("POST", "/api/v1/namespaces/team/pods", pod("p")).status == 201);
  REQUIRE(f.call("POST", "/api/v1/namespaces/team/configmaps", cm("plain")).status == 201);
  REQUIRE(f.call("POST", "/api/v1/namespaces/team/configmaps",
                 cm("held", R"(,"finalizers":["example.com/hold"])"))
              .status == 201);
  Response d = f.call("DELETE", "/api/v1/namespaces/team");
  REQUIRE(d.status == 200);
  CHECK(json::parse(d.body)["status"]["phase"] == "Terminating");
  // Held by the finalizer: still there, terminating, and closed to new content.
  auto ns = f.call_json("GET", "/api/v1/namespaces/team");
  CHECK(ns["status"]["phase"] == "Terminating");
  CHECK(f.call("GET", "/api/v1/namespaces/team/pods/p").status == 404);
  CHECK(f.call("GET", "/api/v1/namespaces/team/configmaps/plain").status == 404);
  auto refused = f.call_json("POST", "/api/v1/namespaces/team/configmaps", cm("new"));
  CHECK(refused["code"] == 403);
  CHECK(refused["message"] ==
        "unable to create new content in namespace team because it is being terminated");
  // Releasing the last finalizer finishes the namespace.
  auto rel = f.call("PATCH", "/api/v1/namespaces/team/configmaps/held",
                    R"({"metadata":{"finalizers":[]}})",
                    {{"content-type", "application/merge-patch+json"}});
  CHECK(rel.status == 200);
  CHECK(f.call("GET", "/api/v1/namespaces/team/configmaps/held").status == 404);
  CHECK(f.call("GET", "/api/v1/namespaces/team").status == 404);

  auto prot = f.call_json("DELETE", "/api/v1/namespaces/default");
  CHECK(prot["code"] == 403);
}

// ---- watch.

std::vector<std::string> types_of(const std::vector<json>& evs) {
  std::vector<std::string> out;
  for (const auto& e : evs) out.push_back(e["type"]);
  return out;
}

TEST_CASE("watch: initial state, live events, one per line") {
  Fixture f;
  REQUIRE(f.call("POST", kPods, pod("old")).status == 201);
  auto s = f.watch(std::string(kPods) + "?watch=True");
  REQUIRE(f.call("POST", kPods, pod("new")).status == 201);
  REQUIRE(f.call("PATCH", std::string(kPods) + "/new", R"({"metadata":{"labels":{"a":"b"}}})",
                 {{"content-type", "application/merge-patch+json"}})
              .status == 200);
  REQUIRE(f.call("DELETE", std::string(kPods) + "/new").status == 200);
  auto evs = s->wait_events(4);
  REQUIRE(evs.size() == 4);
  CHECK(types_of(evs) == std::vector<std::string>{"ADDED", "ADDED", "MODIFIED", "DELETED"});
  CHECK(evs[0]["object"]["metadata"]["name"] == "old");
  CHECK(evs[1]["object"]["metadata"]["name"] == "new");
  CHECK(evs[2]["object"]["metadata"]["labels"]["a"] == "b");
  int64_t prev = 0;
  for (size_t i = 1; i < evs.size(); ++i) {
    int64_t rv = std::stoll(evs[i]["object"]["metadata"]["resourceVersion"].get<std::string>());
    CHECK(rv > prev);
    prev = rv;
  }
  // Other namespaces and other resources are not delivered.
  REQUIRE(f.call("POST", "/api/v1/namespaces/kube-system/pods", pod("elsewhere")).status == 201);
  REQUIRE(f.call("POST", "/api/v1/namespaces/default/configmaps", cm("cm")).status == 201);
  REQUIRE(f.call("POST", kPods, pod("last")).status == 201);
  evs = s->wait_events(5);
  REQUIRE(evs.size() == 5);
  CHECK(evs[4]["object"]["metadata"]["name"] == "last");
}

TEST_CASE("watch: resume from a revision, in the window and from the store") {
  for (int64_t window : {10000, 2}) {
    Fixture f(window);
    REQUIRE(f.call("POST", kPods, pod("a")).status == 201);
    auto list = f.call_json("GET", kPods);
    std::string rv = list["metadata"]["resourceVersion"];
    REQUIRE(f.call("POST", kPods, pod("b")).status == 201);
    REQUIRE(f.call("POST", kPods, pod("c")).status == 201);
    REQUIRE(f.call("POST", "/api/v1/namespaces/default/configmaps", cm("x")).status == 201);
    REQUIRE(f.call("POST", "/api/v1/namespaces/default/configmaps", cm("y")).status == 201);
    REQUIRE(f.call("POST", "/api/v1/namespaces/default/configmaps", cm("z")).status == 201);
    REQUIRE(f.call("DELETE", std::string(kPods) + "/a").status == 200);
    // Let the cache take in everything so the small window really has moved on.
    for (int i = 0; i < 500 && f.cache().dispatched_revision() < f.store->current_revision(); ++i)
      std::this_thread::sleep_for(10ms);
    auto s = f.watch(std::string(kPods) + "?watch=1&resourceVersion=" + rv);
    REQUIRE(f.call("POST", kPods, pod("d")).status == 201);
    auto evs = s->wait_events(4);
    INFO("window " << window);

    REQUIRE(evs.size() == 4);
    std::vector<std::string> names;
    for (auto& e : evs) names.push_back(e["object"]["metadata"]["name"]);
    CHECK(types_of(evs) == std::vector<std::string>{"ADDED", "ADDED", "DELETED", "ADDED"});
    CHECK(names == std::vector<std::string>{"b", "c", "a", "d"});
  }
}

TEST_CASE("watch: 410 Expired after compaction") {
  Fixture f(2);
  REQUIRE(f.call("POST", kPods, pod("a")).status == 201);
  for (int i = 0; i < 4; ++i)
    REQUIRE(f.call("POST", "/api/v1/namespaces/default/configmaps", cm("c" + std::to_string(i)))
                .status == 201);
  REQUIRE(f.store->compact(f.store->current_revision() - 1).is_ok());
  auto s = f.watch(std::string(kPods) + "?watch=true&resourceVersion=1");
  auto evs = s->wait_events(1);
  REQUIRE(evs.size() == 1);
  CHECK(evs[0]["type"] == "ERROR");
  CHECK(evs[0]["object"]["kind"] == "Status");
  CHECK(evs[0]["object"]["code"] == 410);
  CHECK(evs[0]["object"]["reason"] == "Expired");
  CHECK(evs[0]["object"]["message"].get<std::string>().rfind("too old resource version: 1 (", 0) ==
        0);
  CHECK(s->wait_closed());
}

TEST_CASE("watch: objects moving in and out of a label selector") {
  Fixture f;
  auto s = f.watch(std::string(kPods) + "?watch=true&labelSelector=app=web");
  auto relabel = [&](const std::string& app) {
    REQUIRE(f.call("PATCH", std::string(kPods) + "/p",
                   R"({"metadata":{"labels":{"app":")" + app + "\"}}}",
                   {{"content-type", "application/merge-patch+json"}})
                .status == 200);
  };
  REQUIRE(f.call("POST", kPods, pod("p", R"({"app":"other"})")).status == 201);
  relabel("web");     // in: ADDED
  relabel("web");     // no change: no event
  REQUIRE(f.call("PATCH", std::string(kPods) + "/p", R"({"metadata":{"annotations":{"n":"1"}}})",
                 {{"content-type", "application/merge-patch+json"}})
              .status == 200);  // MODIFIED
  relabel("other");   // out: DELETED (the previous object)
  relabel("other2");  // still out: nothing
  REQUIRE(f.call("POST", kPods, pod("q", R"({"app":"web"})")).status == 201);  // ADDED
  auto evs = s->wait_events(4);
  REQUIRE(evs.size() == 4);
  CHECK(types_of(evs) == std::vector<std::string>{"ADDED", "MODIFIED", "DELETED", "ADDED"});
  CHECK(evs[2]["object"]["metadata"]["labels"]["app"] == "web");
  CHECK(evs[3]["object"]["metadata"]["name"] == "q");
  // The DELETED carries the revision of the change that moved it out.
  CHECK(std::stoll(evs[2]["object"]["metadata"]["resourceVersion"].get<std::string>()) >
        std::stoll(evs[1]["object"]["metadata"]["resourceVersion"].get<std::string>()));
}

TEST_CASE("watch: field selector on one object, legacy path, Table events") {
  Fixture f;
  REQUIRE(f.call("POST", kPods, pod("one")).status == 201);
  REQUIRE(f.call("POST", kPods, pod("two")).status == 201);
  auto s = f.watch(std::string(kPods) + "?watch=true&fieldSelector=metadata.name=two",
                   {{"accept", kTableAccept}});
  auto legacy = f.watch("/api/v1/watch/namespaces/default/pods/one");
  REQUIRE(f.call("DELETE", std::string(kPods) + "/one").status == 200);
  REQUIRE(f.call("DELETE", std::string(kPods) + "/two").status == 200);
  auto evs = s->wait_events(2);
  REQUIRE(evs.size() == 2);
  CHECK(types_of(evs) == std::vector<std::string>{"ADDED", "DELETED"});
  for (const auto& e : evs) {
    CHECK(e["object"]["kind"] == "Table");
    CHECK(e["object"]["apiVersion"] == "meta.k8s.io/v1");
    REQUIRE(e["object"]["rows"].size() == 1);
    CHECK(e["object"]["rows"][0]["cells"][0] == "two");
    CHECK(!e["object"]["columnDefinitions"].empty());
  }
  auto l = legacy->wait_events(2);
  REQUIRE(l.size() == 2);
  CHECK(types_of(l) == std::vector<std::string>{"ADDED", "DELETED"});
  CHECK(l[1]["object"]["metadata"]["name"] == "one");
}

TEST_CASE("watch: bookmarks, timeout, slow watcher cut off") {
  Fixture f(10000, 20);
  auto s = f.watch(std::string(kPods) + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=1");
  REQUIRE(f.call("POST", kPods, pod("a")).status == 201);
  // Waits for the ADDED and a BOOKMARK after it (bookmarks come every 20 ms).
  std::vector<json> evs;
  size_t added = SIZE_MAX;
  for (int i = 0; i < 500; ++i) {
    evs = s->wait_events(evs.size() + 1, 1s);
    added = SIZE_MAX;
    for (size_t j = 0; j < evs.size(); ++j)
      if (evs[j]["type"] == "ADDED") added = j;
    if (added != SIZE_MAX && evs.back()["type"] == "BOOKMARK" && evs.size() > added + 1) break;
  }
  REQUIRE(added != SIZE_MAX);
  REQUIRE(evs.size() > added + 1);
  for (size_t j = 0; j < evs.size(); ++j)
    if (j != added) CHECK(evs[j]["type"] == "BOOKMARK");
  evs = {evs[added], evs.back()};
  const auto& bm = evs.back();
  CHECK(bm["type"] == "BOOKMARK");
  CHECK(bm["object"]["kind"] == "Pod");
  CHECK(bm["object"]["apiVersion"] == "v1");
  CHECK(std::stoll(bm["object"]["metadata"]["resourceVersion"].get<std::string>()) >=
        std::stoll(evs[0]["object"]["metadata"]["resourceVersion"].get<std::string>()));
  CHECK(s->wait_closed());  // timeoutSeconds=1

  // The largest timeoutSeconds is valid and keeps the watch open (it used to overflow the
  // deadline); one digit more is a 400.
  auto far = f.watch(std::string(kPods) + "?watch=1&timeoutSeconds=9223372036854775807");
  REQUIRE(f.call("POST", kPods, pod("far")).status == 201);
  CHECK(far->wait_events(2).size() == 2);  // ADDED a (initial state), ADDED far
  CHECK_FALSE(far->closed());
  CHECK(f.call("GET", std::string(kPods) + "?watch=1&timeoutSeconds=9223372036854775808").status ==
        400);

  // A watcher whose stream refuses more data is dropped; a healthy one keeps receiving.
  auto slow = f.watch(std::string(kPods) + "?watch=1&resourceVersion=" +
                          std::to_string(f.store->current_revision()),
                      {}, 1);
  auto healthy = f.watch(std::string(kPods) + "?watch=1&resourceVersion=" +
                         std::to_string(f.store->current_revision()));
  for (const char* n : {"b", "c", "d"}) REQUIRE(f.call("POST", kPods, pod(n)).status == 201);
  CHECK(healthy->wait_events(3).size() == 3);
  CHECK(slow->wait_closed());
  CHECK(slow->count() == 1);
}

TEST_CASE("shutdown closes open watches") {
  Fixture f;
  auto s = f.watch(std::string(kPods) + "?watch=1");
  f.api->shutdown();
  CHECK(s->wait_closed());
}


TEST_CASE("pod deletion: graceful for pods on a node, immediate otherwise") {
  Fixture f;
  const std::string p = kPods;
  // Unbound: gone at once.
  REQUIRE(f.call("POST", p, pod("unbound")).status == 201);
  REQUIRE(f.call("DELETE", p + "/unbound").status == 200);
  CHECK(f.call("GET", p + "/unbound").status == 404);

  // Bound: marked with deletionTimestamp and the pod's grace period; the kubelet finishes it.
  json bound = json::parse(pod("bound"));
  bound["spec"]["nodeName"] = "n1";
  bound["spec"]["terminationGracePeriodSeconds"] = 7;
  REQUIRE(f.call("POST", p, bound.dump()).status == 201);
  auto del = f.call_json("DELETE", p + "/bound");
  CHECK(del["metadata"].contains("deletionTimestamp"));
  CHECK(del["metadata"]["deletionGracePeriodSeconds"] == 7);
  auto still = f.call_json("GET", p + "/bound");
  CHECK(still["metadata"]["deletionGracePeriodSeconds"] == 7);
  // The kubelet's status writes keep working and do not delete it.
  still["status"]["phase"] = "Running";
  CHECK(f.call("PUT", p + "/bound/status", still.dump()).status == 200);
  CHECK(f.call("GET", p + "/bound").status == 200);
  // A longer grace period does not extend it; a shorter one shortens it.
  CHECK(f.call_json("DELETE", p + "/bound", R"({"gracePeriodSeconds":60})")["metadata"]
            ["deletionGracePeriodSeconds"] == 7);
  CHECK(f.call_json("DELETE", p + "/bound", R"({"gracePeriodSeconds":3})")["metadata"]
            ["deletionGracePeriodSeconds"] == 3);
  // Grace 0 (the kubelet, or --force) removes it.
  REQUIRE(f.call("DELETE", p + "/bound?gracePeriodSeconds=0").status == 200);
  CHECK(f.call("GET", p + "/bound").status == 404);

  // Any int64 grace is valid; now + grace saturates at a time that still parses (it used to
  // wrap: 4e12 s gave 1933, i.e. a pod already past its grace).
  for (const char* g : {"9223372036854775807", "4000000000000"}) {
    INFO(g);
    json huge = json::parse(pod("huge"));
    huge["spec"]["nodeName"] = "n1";
    REQUIRE(f.call("POST", p, huge.dump()).status == 201);
    auto marked = f.call_json("DELETE", p + "/huge", std::string(R"({"gracePeriodSeconds":)") + g + "}");
    CHECK(marked["metadata"]["deletionTimestamp"] == "2262-04-11T23:47:15Z");
    CHECK(marked["metadata"]["deletionGracePeriodSeconds"] == std::stoll(g));
    REQUIRE(f.call("DELETE", p + "/huge?gracePeriodSeconds=0").status == 200);
  }

  // A finished pod needs no grace.
  json finished = json::parse(pod("done"));
  finished["spec"]["nodeName"] = "n1";
  REQUIRE(f.call("POST", p, finished.dump()).status == 201);
  auto cur = f.call_json("GET", p + "/done");
  cur["status"]["phase"] = "Succeeded";
  REQUIRE(f.call("PUT", p + "/done/status", cur.dump()).status == 200);
  REQUIRE(f.call("DELETE", p + "/done").status == 200);
  CHECK(f.call("GET", p + "/done").status == 404);
}

}  // namespace
TEST_CASE("self reviews: kubectl auth can-i and whoami, answered and never stored") {
  Fixture f;
  // Discovered: listed in /apis and in their group versions, create-only.
  bool authz = false, authn = false;
  const json groups = f.call_json("GET", "/apis");
  for (const auto& g : groups["groups"]) {
    authz |= g["name"] == "authorization.k8s.io";
    authn |= g["name"] == "authentication.k8s.io";
  }
  CHECK(authz);
  CHECK(authn);
  auto list = f.call_json("GET", "/apis/authorization.k8s.io/v1");
  bool ssar = false;
  for (const auto& r : list["resources"])
    if (r["name"] == "selfsubjectaccessreviews") {
      ssar = true;
      CHECK(r["kind"] == "SelfSubjectAccessReview");
      CHECK(r["verbs"] == json::array({"create"}));
    }
  CHECK(ssar);
  CHECK(f.call_json("GET", "/apis/authentication.k8s.io")["versions"].size() == 2);

  Response can = f.call("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                        R"({"kind":"SelfSubjectAccessReview","apiVersion":"authorization.k8s.io/v1",
                            "spec":{"resourceAttributes":{"verb":"delete","resource":"nodes"}}})");
  CHECK(can.status == 201);
  CHECK(json::parse(can.body)["status"]["allowed"] == true);
  auto who = f.call_json("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                         R"({"kind":"SelfSubjectReview","apiVersion":"authentication.k8s.io/v1"})");
  CHECK(who["status"]["userInfo"]["username"] == "admin");
  // Bad requests say what was wrong; only POST.
  CHECK(f.call_json("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                    R"({"spec":{}})")["code"] == 422);
  CHECK(f.call_json("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                    "{not json")["code"] == 400);
  CHECK(f.call("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "").status ==
        400);
  CHECK(f.call("GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews").status == 405);
  CHECK(f.call("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", "{}").status == 404);
}

}  // namespace skiff::apiserver

namespace skiff::apiserver {
namespace {

TEST_CASE("handled_quickly: stored-object reads and writes, not watches or kubelet proxies") {
  auto req = [](std::string method, std::string path, std::string query = "") {
    Request r;
    r.method = std::move(method);
    r.path = std::move(path);
    if (!query.empty()) r.query.emplace(query, "true");
    return r;
  };
  CHECK(handled_quickly(req("POST", "/api/v1/namespaces/default/configmaps")));
  CHECK(handled_quickly(req("GET", "/apis/apps/v1/deployments")));
  CHECK(handled_quickly(req("PATCH", "/api/v1/namespaces/default/pods/p/status")));
  CHECK_FALSE(handled_quickly(req("GET", "/api/v1/pods", "watch")));
  CHECK_FALSE(handled_quickly(req("GET", "/api/v1/watch/pods")));
  CHECK_FALSE(handled_quickly(req("GET", "/api/v1/namespaces/default/pods/p/log")));
  CHECK_FALSE(handled_quickly(req("POST", "/api/v1/namespaces/default/pods/p/exec")));
  CHECK_FALSE(handled_quickly(req("GET", "/api/v1/nodes/n1/proxy/metrics")));
  CHECK_FALSE(handled_quickly(req("GET", "/healthz")));
}

}  // namespace
}  // namespace skiff::apiserver
