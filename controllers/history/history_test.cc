#include "controllers/history/history.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "controllers/history/fake_history.h"

using namespace skiff;
using namespace skiff::controllers::history;
using json = nlohmann::json;

namespace {

Parent parent(const std::string& name = "web", const std::string& uid = "uid-web") {
  return {"apps/v1", "StatefulSet", "default", name, uid};
}

json data_v(int v) {
  return {{"spec",
           {{"template",
             {{"$patch", "replace"},
              {"spec",
               {{"containers", {{{"name", "c"}, {"image", "nginx:" + std::to_string(v)}}}}}}}}}}};
}

proto::LabelSelector app_web() { return *proto::LabelSelector::parse("app=web"); }

}  // namespace

TEST_CASE("fnv and safe encoding match Go's hash/fnv and rand.SafeEncodeString") {
  CHECK(fnv32("a") == 0x050c5d7eu);   // FNV-1 32 of "a"
  CHECK(fnv32a("a") == 0xe40c292cu);  // FNV-1a 32 of "a"
  CHECK(fnv32("") == 2166136261u);
  CHECK(safe_encode_string("123") == "567");
  CHECK(safe_encode_string("") == "");
  for (char c : safe_encode_string("0123456789abcXYZ"))
    CHECK(std::string("bcdfghjklmnpqrstvwxz2456789").find(c) != std::string::npos);
}

TEST_CASE("hash_controller_revision: data and probe change the hash; stable otherwise") {
  ControllerRevision a, b;
  a.data = data_v(1);
  b.data = data_v(1);
  CHECK(hash_controller_revision(a, std::nullopt) == hash_controller_revision(b, std::nullopt));
  CHECK(hash_controller_revision(a, 0) == hash_controller_revision(b, 0));
  CHECK(hash_controller_revision(a, 0) != hash_controller_revision(a, 1));
  CHECK(hash_controller_revision(a, std::nullopt) != hash_controller_revision(a, 0));
  b.data = data_v(2);
  CHECK(hash_controller_revision(a, 0) != hash_controller_revision(b, 0));
  // The value is FNV-1 over the JSON text then the decimal probe, safe-encoded.
  uint32_t h = fnv32("7", fnv32(a.data.dump()));
  CHECK(hash_controller_revision(a, 7) == safe_encode_string(std::to_string(h)));
  // Revision number and metadata do not enter the hash.
  b = a;
  b.revision = 9;
  b.metadata.labels["x"] = "y";
  CHECK(hash_controller_revision(a, 3) == hash_controller_revision(b, 3));
}

TEST_CASE("compute_template_hash: FNV-1a of the template plus the collision count bytes") {
  json t = {{"metadata", {{"labels", {{"app", "ds"}}}}}, {"spec", {{"containers", json::array()}}}};
  std::string h0 = compute_template_hash(t, std::nullopt);
  CHECK(h0 == safe_encode_string(std::to_string(fnv32a(t.dump()))));
  CHECK(compute_template_hash(t, 0) != h0);  // 8 zero bytes still change the sum
  CHECK(compute_template_hash(t, 1) != compute_template_hash(t, 0));
  CHECK(compute_template_hash(t, 1) == compute_template_hash(t, 1));
}

TEST_CASE("controller_revision_name truncates the prefix at 223 bytes") {
  CHECK(controller_revision_name("web", "abc") == "web-abc");
  std::string long_name(300, 'a');
  CHECK(controller_revision_name(long_name, "h") == std::string(223, 'a') + "-h");
}

TEST_CASE("new_revision: name, labels, owner, data, revision") {
  auto r = new_revision(parent(), {{"app", "web"}}, data_v(1), 3, 0);
  REQUIRE(r);
  std::string hash = hash_controller_revision(*r, 0);
  CHECK(r->metadata.name == "web-" + hash);
  CHECK(r->metadata.namespace_ == "default");
  CHECK(r->metadata.labels.at("app") == "web");
  CHECK(r->metadata.labels.at(kControllerRevisionHashLabel) == hash);
  CHECK(r->revision == 3);
  CHECK(r->data == data_v(1));
  REQUIRE(r->metadata.owner_references.size() == 1);
  const auto& o = r->metadata.owner_references[0];
  CHECK(o.api_version == "apps/v1");
  CHECK(o.kind == "StatefulSet");
  CHECK(o.name == "web");
  CHECK(o.uid == "uid-web");
  CHECK(o.controller == true);
  CHECK(o.block_owner_deletion == true);
  CHECK(controller_uid(*r) == "uid-web");
  json j = revision_to_json(*r);
  CHECK(j["apiVersion"] == "apps/v1");
  CHECK(j["kind"] == "ControllerRevision");
  CHECK(j["revision"] == 3);
  auto back = revision_from_json(j);
  REQUIRE(back);
  CHECK(back->metadata.name == r->metadata.name);

  auto bad = new_revision(parent(), {}, json::array(), 1, 0);
  REQUIRE_FALSE(bad);
  CHECK(bad.status().code() == Code::kInvalid);
  CHECK(bad.status().message().find("data must be a JSON object") != std::string::npos);
}

TEST_CASE("equal_revision, find_equal_revisions, next_revision, sort_revisions") {
  Revisions rs;
  for (int i : {3, 1, 2}) {
    auto r = new_revision(parent(), {{"app", "web"}}, data_v(i == 2 ? 1 : i), i, 0);
    REQUIRE(r);
    r->metadata.name += "-" + std::to_string(i);
    rs.push_back(*r);
  }
  CHECK(next_revision({}) == 1);
  CHECK(next_revision(rs) == 4);
  CHECK(equal_revision(rs[1], rs[2]));
  CHECK_FALSE(equal_revision(rs[0], rs[1]));
  CHECK(find_equal_revisions(rs, rs[1]) == std::vector<size_t>{1, 2});
  sort_revisions(rs);
  CHECK(rs[0].revision == 1);
  CHECK(rs[1].revision == 2);
  CHECK(rs[2].revision == 3);
  // Same revision: older creation first, then name.
  ControllerRevision x = rs[0], y = rs[0];
  x.metadata.name = "b";
  y.metadata.name = "a";
  x.metadata.creation_timestamp = proto::Time{proto::Clock::time_point{} + std::chrono::seconds(1)};
  y.metadata.creation_timestamp = proto::Time{proto::Clock::time_point{} + std::chrono::seconds(2)};
  CHECK(revision_less(x, y));
  y.metadata.creation_timestamp = x.metadata.creation_timestamp;
  CHECK(revision_less(y, x));
}

TEST_CASE("listed_for: selector, namespace, own or orphan") {
  auto own = *new_revision(parent(), {{"app", "web"}}, data_v(1), 1, 0);
  CHECK(listed_for(own, parent(), app_web()));
  CHECK_FALSE(listed_for(own, parent("web", "other-uid"), app_web()));
  CHECK_FALSE(listed_for(own, parent(), *proto::LabelSelector::parse("app=db")));
  ControllerRevision orphan = own;
  orphan.metadata.owner_references.clear();
  CHECK(listed_for(orphan, parent("web", "other-uid"), app_web()));
  ControllerRevision elsewhere = own;
  elsewhere.metadata.namespace_ = "kube-system";
  CHECK_FALSE(listed_for(elsewhere, parent(), app_web()));
}

TEST_CASE("FakeHistory: create, equal existing, collision, update, delete, adopt, release") {
  FakeHistory h;
  int32_t collisions = 0;
  auto rev = *new_revision(parent(), {{"app", "web"}}, data_v(1), 1, collisions);
  auto created = h.create_controller_revision(parent(), rev, &collisions);
  REQUIRE(created);
  CHECK(created->metadata.name == rev.metadata.name);
  CHECK_FALSE(created->metadata.uid.empty());
  CHECK(collisions == 0);

  SECTION("same data again returns the stored revision") {
    auto again = h.create_controller_revision(parent(), rev, &collisions);
    REQUIRE(again);
    CHECK(again->metadata.uid == created->metadata.uid);
    CHECK(collisions == 0);
    CHECK(h.all().size() == 1);
  }
  SECTION("other data under the same name bumps the collision count") {
    ControllerRevision squatter = *created;
    squatter.data = data_v(99);
    h.put(squatter);  // overwrite: same name, other data
    auto next = h.create_controller_revision(parent(), rev, &collisions);
    REQUIRE(next);
    CHECK(collisions == 1);
    CHECK(next->metadata.name == "web-" + hash_controller_revision(rev, 1));
    CHECK(next->data == data_v(1));
    CHECK(h.all().size() == 2);
  }
  SECTION("list: own and orphans matching the selector") {
    auto other = *new_revision(parent("db", "uid-db"), {{"app", "web"}}, data_v(2), 1, 0);
    h.put(other);
    auto orphan = *new_revision(parent(), {{"app", "web"}}, data_v(3), 2, 0);
    orphan.metadata.owner_references.clear();
    h.put(orphan);
    auto listed = h.list_controller_revisions(parent(), app_web());
    REQUIRE(listed);
    CHECK(listed->size() == 2);
    auto adopted = h.adopt_controller_revision(parent(), *h.find("default", orphan.metadata.name));
    REQUIRE(adopted);
    CHECK(controller_uid(*adopted) == "uid-web");
    auto refused = h.adopt_controller_revision(parent(), *h.find("default", other.metadata.name));
    CHECK(refused.status().code() == Code::kConflict);
    auto released = h.release_controller_revision(parent(), *adopted);
    REQUIRE(released);
    CHECK(controller_uid(*released).empty());
  }
  SECTION("update and delete") {
    auto up = h.update_controller_revision(*created, 5);
    REQUIRE(up);
    CHECK(up->revision == 5);
    CHECK(h.find("default", rev.metadata.name)->revision == 5);
    h.fail_next_delete(Status::unavailable("boom"));
    CHECK(h.delete_controller_revision(*up).code() == Code::kUnavailable);
    CHECK(h.delete_controller_revision(*up).is_ok());
    CHECK(h.delete_controller_revision(*up).code() == Code::kNotFound);
    CHECK(h.all().empty());
    CHECK(h.calls().back() == "delete default/" + rev.metadata.name);
  }
  SECTION("injected create failure") {
    h.fail_next_create(Status::forbidden("quota"));
    auto rev2 = *new_revision(parent(), {{"app", "web"}}, data_v(2), 2, 0);
    CHECK(h.create_controller_revision(parent(), rev2, &collisions).status().code() ==
          Code::kForbidden);
    CHECK(h.create_controller_revision(parent(), rev2, &collisions));
  }
}

TEST_CASE("adopt and release patches carry the uid precondition") {
  auto r = *new_revision(parent(), {}, data_v(1), 1, 0);
  r.metadata.uid = "uid-rev";
  json a = adopt_patch(parent(), r);
  CHECK(a["metadata"]["uid"] == "uid-rev");
  CHECK(a["metadata"]["ownerReferences"][0]["controller"] == true);
  CHECK(a["metadata"]["ownerReferences"][0]["uid"] == "uid-web");
  json rel = release_patch(parent(), r);
  CHECK(rel["metadata"]["ownerReferences"][0] == json({{"$patch", "delete"}, {"uid", "uid-web"}}));
}

TEST_CASE("FakeHistory create_exact and get: names kept, AlreadyExists passed through") {
  FakeHistory h;
  auto r = *new_revision(parent(), {}, data_v(1), 1, 0);
  r.metadata.name = "ds-abc";
  auto c = h.create_exact(r);
  REQUIRE(c);
  CHECK(c->metadata.name == "ds-abc");
  CHECK(h.create_exact(r).status().code() == Code::kAlreadyExists);
  auto g = h.get_controller_revision("default", "ds-abc");
  REQUIRE(g);
  CHECK(g->data == data_v(1));
  CHECK(h.get_controller_revision("default", "nope").status().code() == Code::kNotFound);
}
