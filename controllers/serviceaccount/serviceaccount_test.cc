// ServiceAccountsController on fakes: `default` created in active namespaces only, nothing
// written when it exists, recreated after a delete (the handler queues the namespace), the
// benign create errors (AlreadyExists, NotFound, terminating namespace) are not failures, others
// are and say what was being created.
#include "controllers/serviceaccount/serviceaccount.h"

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

namespace sa = skiff::controllers::serviceaccount;
using skiff::Code;
using skiff::Status;
using skiff::controllers::json;

namespace {

json ns(const std::string& name, const std::string& phase = "Active", bool deleting = false) {
  json n = {{"apiVersion", "v1"},
            {"kind", "Namespace"},
            {"metadata", {{"name", name}}},
            {"status", {{"phase", phase}}}};
  if (deleting) n["metadata"]["deletionTimestamp"] = "2026-12-06T10:00:00Z";
  return n;
}

class FakeClient : public sa::SaClient {
 public:
  std::map<std::string, json> namespaces;
  std::set<std::string> sas;  // "ns/name"
  std::vector<json> created;
  Status next_error;  // returned (once) by the next create

  std::optional<json> get_namespace(const std::string& name) override {
    auto it = namespaces.find(name);
    if (it == namespaces.end()) return std::nullopt;
    return it->second;
  }
  std::vector<json> list_namespaces() override {
    std::vector<json> out;
    for (auto& [k, v] : namespaces) out.push_back(v);
    return out;
  }
  bool has_service_account(const std::string& n, const std::string& name) override {
    return sas.count(n + "/" + name) > 0;
  }
  Status create(const std::string& n, const json& obj) override {
    if (!next_error.is_ok()) {
      Status st = next_error;
      next_error = Status::ok();
      return st;
    }
    created.push_back(obj);
    sas.insert(n + "/" + obj["metadata"]["name"].get<std::string>());
    return Status::ok();
  }
};

// Drains the queue without waiting: the keys queued so far.
std::set<std::string> queued(skiff::client::WorkQueue& q) {
  std::set<std::string> out;
  while (q.len() > 0) {
    auto k = q.get();
    if (!k) break;
    out.insert(*k);
    q.done(*k);
  }
  return out;
}

}  // namespace

TEST_CASE("serviceaccount: default created in an active namespace, once") {
  FakeClient c;
  c.namespaces["team"] = ns("team");
  sa::ServiceAccountsController ctl;
  ctl.set_client(&c);
  REQUIRE(ctl.sync("team").is_ok());
  REQUIRE(c.created.size() == 1);
  CHECK(c.created[0] == json::parse(R"({"apiVersion":"v1","kind":"ServiceAccount",
      "metadata":{"name":"default","namespace":"team"}})"));
  CHECK(ctl.created() == 1);
  // Present in the cache: nothing written.
  REQUIRE(ctl.sync("team").is_ok());
  CHECK(c.created.size() == 1);
  // A phase the API server has not filled in counts as Active.
  c.namespaces["bare"] = {{"metadata", {{"name", "bare"}}}};
  REQUIRE(ctl.sync("bare").is_ok());
  CHECK(c.sas.count("bare/default"));
}

TEST_CASE("serviceaccount: gone and terminating namespaces are left alone") {
  FakeClient c;
  c.namespaces["old"] = ns("old", "Terminating", true);
  c.namespaces["going"] = ns("going", "Active", true);  // marked, phase not yet updated
  c.namespaces["ending"] = ns("ending", "Terminating");
  sa::ServiceAccountsController ctl;
  ctl.set_client(&c);
  for (const char* n : {"old", "going", "ending", "absent"}) REQUIRE(ctl.sync(n).is_ok());
  CHECK(c.created.empty());
  // Handlers do not even queue them.
  ctl.on_namespace(c.namespaces["old"]);
  ctl.on_namespace(c.namespaces["going"]);
  ctl.on_namespace(ns("new"));
  CHECK(queued(ctl.queue()) == std::set<std::string>{"new"});
}

TEST_CASE("serviceaccount: a deleted default is queued and recreated") {
  FakeClient c;
  c.namespaces["team"] = ns("team");
  c.sas = {"team/default", "team/builder"};
  sa::ServiceAccountsController ctl;
  ctl.set_client(&c);
  REQUIRE(ctl.sync("team").is_ok());
  CHECK(c.created.empty());
  // Another ServiceAccount deleted: nothing to do.
  c.sas.erase("team/builder");
  ctl.on_service_account_deleted({{"metadata", {{"name", "builder"}, {"namespace", "team"}}}});
  CHECK(queued(ctl.queue()).empty());
  // `default` deleted: its namespace is queued and sync brings it back.
  c.sas.erase("team/default");
  ctl.on_service_account_deleted({{"metadata", {{"name", "default"}, {"namespace", "team"}}}});
  CHECK(queued(ctl.queue()) == std::set<std::string>{"team"});
  REQUIRE(ctl.sync("team").is_ok());
  CHECK(c.sas.count("team/default"));
  CHECK(c.created.size() == 1);
}

TEST_CASE("serviceaccount: create errors") {
  FakeClient c;
  c.namespaces["team"] = ns("team");
  sa::ServiceAccountsController ctl;
  ctl.set_client(&c);
  // The cache lagging (someone else created it), the namespace deleted meanwhile, or being
  // terminated: not failures, nothing retried.
  for (Status st : {Status(Code::kAlreadyExists, "serviceaccounts \"default\" already exists"),
                    Status(Code::kNotFound, "namespaces \"team\" not found"),
                    Status(Code::kForbidden,
                           "serviceaccounts \"default\" is forbidden: unable to create new "
                           "content in namespace team because it is being terminated")}) {
    c.next_error = st;
    CHECK(ctl.sync("team").is_ok());
  }
  CHECK(c.created.empty());
  // Anything else is an error naming the object, and the retry succeeds.
  c.next_error = Status(Code::kUnavailable, "connection refused");
  Status st = ctl.sync("team");
  REQUIRE_FALSE(st.is_ok());
  CHECK(st.message().find("creating ServiceAccount team/default") != std::string::npos);
  CHECK(st.message().find("connection refused") != std::string::npos);
  CHECK(ctl.sync("team").is_ok());
  CHECK(c.created.size() == 1);
}

TEST_CASE("serviceaccount: configurable names") {
  FakeClient c;
  c.namespaces["team"] = ns("team");
  sa::ServiceAccountsController ctl({.names = {"default", "builder"}});
  ctl.set_client(&c);
  REQUIRE(ctl.sync("team").is_ok());
  CHECK(c.sas == std::set<std::string>{"team/builder", "team/default"});
}
