#include "controllers/deployment/deployment.h"

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>

#include "controllers/deployment/util.h"

using namespace skiff;
using namespace skiff::controllers;
using namespace skiff::controllers::deployment;
using json = nlohmann::json;

namespace {

// A fake cluster: the API objects, conditional writes, and a simulated ReplicaSet controller
// plus kubelets (step()): pods exist as counts per RS; a pod created in one step is available
// from the next (unless its image is "broken": then never); scale-down removes unavailable pods
// first, at once.
class World : public DeploymentClient {
 public:
  proto::Clock::time_point now{std::chrono::seconds(1'800'000'000)};
  std::map<std::string, Deployment> deploys;
  std::map<std::string, ReplicaSet> rses;
  std::vector<PodInfo> extra_pods;  // pods beyond the simulated ones
  int writes = 0;
  // A lagging informer cache: while set, reads see this snapshot, writes go to the real state.
  std::optional<std::pair<std::map<std::string, Deployment>, std::map<std::string, ReplicaSet>>>
      cache;
  void freeze() { cache = std::make_pair(deploys, rses); }
  void thaw() { cache.reset(); }
  const std::map<std::string, Deployment>& rd() const { return cache ? cache->first : deploys; }
  const std::map<std::string, ReplicaSet>& rr() const { return cache ? cache->second : rses; }

  std::string next_rv() { return std::to_string(++rv_); }
  std::string next_uid() { return "uid-" + std::to_string(++uid_); }

  std::optional<Deployment> get_deployment(const std::string& ns,
                                           const std::string& name) override {
    auto it = rd().find(ns + "/" + name);
    if (it == rd().end()) return std::nullopt;
    return it->second;
  }
  std::vector<Deployment> list_deployments(const std::string& ns) override {
    std::vector<Deployment> out;
    for (auto& [k, d] : rd())
      if (d.metadata.namespace_ == ns) out.push_back(d);
    return out;
  }
  std::vector<ReplicaSet> list_replicasets(const std::string& ns) override {
    std::vector<ReplicaSet> out;
    for (auto& [k, r] : rr())
      if (r.metadata.namespace_ == ns) out.push_back(r);
    return out;
  }
  std::vector<PodInfo> list_pods(const std::string& ns) override {
    std::vector<PodInfo> out = extra_pods;
    for (auto& [k, r] : rses) {
      if (r.metadata.namespace_ != ns) continue;
      for (int i = 0; i < r.status.replicas; ++i)
        out.push_back(PodInfo{r.metadata.name + "-" + std::to_string(i),
                              r.spec.template_.metadata.labels, r.metadata.uid, "Running"});
    }
    return out;
  }
  Result<Deployment> get_deployment_live(const std::string& ns, const std::string& name) override {
    auto d = get_deployment(ns, name);
    if (!d) return Status::not_found("deployment " + name);
    return *d;
  }
  Result<ReplicaSet> create_replicaset(const ReplicaSet& rs) override {
    std::string k = rs.metadata.namespace_ + "/" + rs.metadata.name;
    if (rses.count(k)) return Status::already_exists("replicasets \"" + rs.metadata.name + "\"");
    ReplicaSet r = rs;
    r.metadata.uid = next_uid();
    r.metadata.resource_version = next_rv();
    r.metadata.generation = 1;
    r.metadata.creation_timestamp = proto::Time::at(now);
    r.status = {};
    ++writes;
    return rses[k] = r;
  }
  Result<ReplicaSet> update_replicaset(const ReplicaSet& rs) override {
    std::string k = rs.metadata.namespace_ + "/" + rs.metadata.name;
    auto it = rses.find(k);
    if (it == rses.end()) return Status::not_found("replicasets \"" + rs.metadata.name + "\"");
    if (it->second.metadata.resource_version != rs.metadata.resource_version)
      return Status::conflict("replica set " + k + " changed");
    ReplicaSet r = rs;
    r.status = it->second.status;
    if (proto::encode(r.spec) != proto::encode(it->second.spec)) ++r.metadata.generation;
    r.metadata.resource_version = next_rv();
    ++writes;
    return it->second = r;
  }
  Status delete_replicaset(const std::string& ns, const std::string& name) override {
    ++writes;
    return rses.erase(ns + "/" + name) ? Status::ok() : Status::not_found(name);
  }
  Result<Deployment> update_status(const Deployment& d) override {
    auto& cur = deploys.at(d.metadata.namespace_ + "/" + d.metadata.name);
    if (cur.metadata.resource_version != d.metadata.resource_version)
      return Status::conflict("deployment changed");
    cur.status = d.status;
    cur.metadata.resource_version = next_rv();
    ++writes;
    return cur;
  }
  Result<Deployment> update_annotations(const Deployment& d) override {
    auto& cur = deploys.at(d.metadata.namespace_ + "/" + d.metadata.name);
    if (cur.metadata.resource_version != d.metadata.resource_version)
      return Status::conflict("deployment changed");
    if (cur.metadata.annotations != d.metadata.annotations) ++cur.metadata.generation;
    cur.metadata.annotations = d.metadata.annotations;
    cur.metadata.resource_version = next_rv();
    ++writes;
    return cur;
  }

  // The user's writes.
  Deployment& add(Deployment d) {
    d.metadata.uid = next_uid();
    d.metadata.resource_version = next_rv();
    d.metadata.generation = 1;
    d.metadata.creation_timestamp = proto::Time::at(now);
    return deploys[d.metadata.namespace_ + "/" + d.metadata.name] = d;
  }
  template <class F>
  void edit(const std::string& key, F f) {
    auto& d = deploys.at(key);
    auto before = proto::encode(d.spec);
    f(d);
    if (proto::encode(d.spec) != before) ++d.metadata.generation;
    d.metadata.resource_version = next_rv();
  }

  // The ReplicaSet controller and kubelets: one step.
  void step() {
    now += std::chrono::seconds(1);
    for (auto& [k, r] : rses) {
      bool broken = !r.spec.template_.spec.containers.empty() &&
                    r.spec.template_.spec.containers[0].image == "broken";
      int32_t& t = r.status.replicas;
      int32_t& a = r.status.available_replicas;
      if (!broken) a = t;  // pods of earlier steps are ready now
      int32_t want = r.spec.replicas.value_or(1);
      if (want < t) {
        int32_t remove = t - want, unavailable = t - a;
        a -= std::max(0, remove - unavailable);
        t = want;
      } else {
        t = want;
      }
      r.status.ready_replicas = a;
      r.status.fully_labeled_replicas = t;
      r.status.observed_generation = r.metadata.generation;
      r.metadata.resource_version = next_rv();
    }
  }

  int32_t total_pods() const {
    int32_t n = 0;
    for (auto& [k, r] : rses) n += r.status.replicas;
    return n;
  }
  int32_t available_pods() const {
    int32_t n = 0;
    for (auto& [k, r] : rses) n += r.status.available_replicas;
    return n;
  }
  std::vector<const ReplicaSet*> owned_by(const std::string& uid) const {
    std::vector<const ReplicaSet*> out;
    for (auto& [k, r] : rses)
      for (auto& o : r.metadata.owner_references)
        if (o.uid == uid) out.push_back(&r);
    return out;
  }
  const ReplicaSet* rs_with_image(const std::string& image) const {
    for (auto& [k, r] : rses)
      if (r.spec.template_.spec.containers[0].image == image) return &r;
    return nullptr;
  }

 private:
  int64_t rv_ = 100;
  int uid_ = 0;
};

struct Events : EventSink {
  std::vector<std::string> reasons, messages;
  void event(const json&, const std::string&, bool, const std::string& reason,
             const std::string& msg) override {
    reasons.push_back(reason);
    messages.push_back(msg);
  }
};

Deployment make_deploy(const std::string& name, int32_t replicas, proto::IntOrString surge,
                       proto::IntOrString unavailable, const std::string& image = "web:1") {
  Deployment d;
  d.type_meta = {"apps/v1", "Deployment"};
  d.metadata.name = name;
  d.metadata.namespace_ = "default";
  d.spec.replicas = replicas;
  d.spec.selector = proto::LabelSelectorSpec{};
  d.spec.selector->match_labels = {{"app", name}};
  d.spec.template_.metadata.labels = {{"app", name}};
  proto::Container c;
  c.name = "web";
  c.image = image;
  d.spec.template_.spec.containers.push_back(c);
  d.spec.strategy.type = "RollingUpdate";
  d.spec.strategy.rolling_update = proto::RollingUpdateDeployment{unavailable, surge};
  d.spec.revision_history_limit = 10;
  d.spec.progress_deadline_seconds = 600;
  return d;
}

struct Harness {
  World w;
  Events ev;
  DeploymentOptions opts;
  std::unique_ptr<DeploymentController> c;
  Harness() {
    opts.now = [this] { return w.now; };
    c = std::make_unique<DeploymentController>(opts);
    c->set_clients(&w, &ev);
  }
  void sync(const std::string& key = "default/web") {
    auto st = c->sync(key);
    INFO(st.to_string());
    REQUIRE(st);
  }
  const Deployment& d(const std::string& key = "default/web") { return w.deploys.at(key); }
  bool complete(const std::string& key = "default/web") {
    const auto& x = d(key);
    const auto* p = get_condition(x.status, kProgressing);
    int32_t n = replicas_of(x);
    return x.status.observed_generation >= x.metadata.generation &&
           x.status.updated_replicas == n && x.status.replicas == n &&
           x.status.available_replicas == n && p && p->reason == kNewRSAvailableReason;
  }
  // Syncs and steps until complete; checks the rolling-update bounds after every sync and step.
  int roll(int32_t replicas, int32_t surge, int32_t unavailable, bool check_bounds,
           int max_steps = 200) {
    for (int i = 0; i < max_steps; ++i) {
      sync();
      sync();  // a second look at the same world changes nothing unsafe
      if (check_bounds) {
        INFO("step " << i << " pods " << w.total_pods() << " available " << w.available_pods());
        REQUIRE(w.total_pods() <= replicas + surge);
        REQUIRE(w.available_pods() >= replicas - unavailable);
        int32_t spec_sum = 0;
        for (auto& [k, r] : w.rses) spec_sum += r.spec.replicas.value_or(1);
        REQUIRE(spec_sum <= replicas + surge);
      }
      if (complete()) return i;
      w.step();
      if (check_bounds) {
        INFO("after step " << i);
        REQUIRE(w.total_pods() <= replicas + surge);
        REQUIRE(w.available_pods() >= replicas - unavailable);
      }
    }
    FAIL("rollout did not complete in " << max_steps << " steps");
    return -1;
  }
};

proto::IntOrString I(int v) { return proto::IntOrString::from_int(v); }
proto::IntOrString P(const std::string& s) { return proto::IntOrString::from_string(s); }

void set_image(Deployment& d, const std::string& image) {
  d.spec.template_.spec.containers[0].image = image;
}

}  // namespace

TEST_CASE("deployment util: hash, fenceposts, percentages") {
  CHECK(safe_encode_string("0123456789") == "456789bcdf");  // byte % 27, as Kubernetes
  auto t = make_deploy("web", 3, I(1), I(0)).spec.template_;
  auto h1 = compute_hash(t, std::nullopt);
  CHECK(h1 == compute_hash(t, std::nullopt));  // stable
  CHECK(h1 != compute_hash(t, 1));             // the collision count changes it
  CHECK(h1.find_first_of("aeiou013") == std::string::npos);
  auto t2 = t;
  t2.spec.containers[0].image = "web:2";
  CHECK(compute_hash(t2, std::nullopt) != h1);
  auto t3 = t;
  t3.metadata.labels[kHashLabel] = "xyz";
  CHECK(equal_ignore_hash(t, t3));
  CHECK_FALSE(equal_ignore_hash(t, t2));

  CHECK(*scaled_value(P("25%"), 10, true) == 3);
  CHECK(*scaled_value(P("25%"), 10, false) == 2);
  CHECK(*scaled_value(I(4), 10, false) == 4);
  CHECK_FALSE(scaled_value(P("abc"), 10, true));
  CHECK_FALSE(scaled_value(P("5"), 10, true));

  auto d = make_deploy("web", 10, P("25%"), P("25%"));
  CHECK(max_surge(d) == 3);        // rounds up
  CHECK(max_unavailable(d) == 2);  // rounds down
  d = make_deploy("web", 3, I(0), I(0));
  CHECK(max_surge(d) == 0);
  CHECK(max_unavailable(d) == 1);  // both zero: one may be unavailable
  d = make_deploy("web", 1, P("25%"), P("25%"));
  CHECK(max_surge(d) == 1);
  CHECK(max_unavailable(d) == 0);
  d = make_deploy("web", 2, I(0), I(5));
  CHECK(max_unavailable(d) == 2);  // capped at replicas
  d.spec.strategy.type = "Recreate";
  CHECK(max_surge(d) == 0);
  CHECK(max_unavailable(d) == 0);
}

TEST_CASE("deployment: first sync creates the RS with hash, owner, revision, annotations") {
  Harness h;
  auto d = make_deploy("web", 3, P("25%"), P("25%"));
  d.metadata.annotations["team"] = "blue";
  d.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"] = "{}";
  h.w.add(d);
  h.sync();
  REQUIRE(h.w.rses.size() == 1);
  const auto& rs = h.w.rses.begin()->second;
  std::string hash = compute_hash(d.spec.template_, std::nullopt);
  CHECK(rs.metadata.name == "web-" + hash);
  CHECK(rs.metadata.labels.at(kHashLabel) == hash);
  CHECK(rs.metadata.labels.at("app") == "web");
  CHECK(rs.spec.selector->match_labels.at(kHashLabel) == hash);
  CHECK(rs.spec.template_.metadata.labels.at(kHashLabel) == hash);
  REQUIRE(rs.metadata.owner_references.size() == 1);
  CHECK(rs.metadata.owner_references[0].kind == "Deployment");
  CHECK(rs.metadata.owner_references[0].uid == h.d().metadata.uid);
  CHECK(*rs.metadata.owner_references[0].controller);
  CHECK(rs.spec.replicas == 3);
  CHECK(rs.metadata.annotations.at(kRevisionAnnotation) == "1");
  CHECK(rs.metadata.annotations.at(kDesiredReplicasAnnotation) == "3");
  CHECK(rs.metadata.annotations.at(kMaxReplicasAnnotation) == "4");
  CHECK(rs.metadata.annotations.at("team") == "blue");
  CHECK_FALSE(rs.metadata.annotations.count("kubectl.kubernetes.io/last-applied-configuration"));
  CHECK(h.d().metadata.annotations.at(kRevisionAnnotation) == "1");
  const auto* p = get_condition(h.d().status, kProgressing);
  REQUIRE(p);
  CHECK(p->reason == kNewRSReason);
  CHECK(h.d().status.observed_generation == h.d().metadata.generation);
  CHECK(h.ev.reasons.size() == 1);
  CHECK(h.ev.messages[0] == "Scaled up replica set web-" + hash + " from 0 to 3");

  // Idempotent once settled.
  h.roll(3, 1, 0, false);
  int writes = h.w.writes;
  h.sync();
  h.sync();
  CHECK(h.w.writes == writes);
  CHECK(get_condition(h.d().status, kAvailable)->reason == kMinAvailableReason);
}

TEST_CASE("deployment: simulated rolling updates stay within maxSurge and maxUnavailable") {
  struct Combo {
    int32_t replicas;
    proto::IntOrString surge, unavailable;
  };
  std::vector<Combo> combos = {
      {3, I(1), I(0)},          {3, I(0), I(1)},         {3, P("25%"), P("25%")},
      {10, P("25%"), P("25%")}, {10, P("30%"), I(0)},    {5, I(0), P("40%")},
      {4, I(2), I(2)},          {1, P("25%"), P("25%")}, {7, P("50%"), P("10%")},
      {6, I(0), I(0)},
  };
  for (const auto& c : combos) {
    DYNAMIC_SECTION("replicas " << c.replicas << " surge " << c.surge.to_string() << " unavailable "
                                << c.unavailable.to_string()) {
      Harness h;
      auto d = make_deploy("web", c.replicas, c.surge, c.unavailable);
      h.w.add(d);
      int32_t surge = max_surge(d), unav = max_unavailable(d);
      h.roll(c.replicas, surge, c.replicas, false);  // the first rollout starts from nothing
      auto v1 = h.w.rs_with_image("web:1");
      REQUIRE(v1);
      std::string v1_name = v1->metadata.name;

      h.w.edit("default/web", [](Deployment& x) { set_image(x, "web:2"); });
      h.roll(c.replicas, surge, unav, true);
      auto v2 = h.w.rs_with_image("web:2");
      REQUIRE(v2);
      CHECK(v2->metadata.annotations.at(kRevisionAnnotation) == "2");
      CHECK(h.w.rses.at("default/" + v1_name).spec.replicas == 0);
      CHECK(h.d().metadata.annotations.at(kRevisionAnnotation) == "2");
      CHECK(h.d().status.updated_replicas == c.replicas);
      CHECK(h.d().status.unavailable_replicas == 0);

      // A third template while settled, then a change in the middle of a rollout.
      h.w.edit("default/web", [](Deployment& x) { set_image(x, "web:3"); });
      h.sync();
      h.w.step();
      h.sync();
      h.w.edit("default/web", [](Deployment& x) { set_image(x, "web:4"); });
      h.roll(c.replicas, surge, unav, true);
      CHECK(h.w.rs_with_image("web:4")->metadata.annotations.at(kRevisionAnnotation) == "4");
    }
  }
}

TEST_CASE("deployment: rollback to an old template reuses its RS as a new revision") {
  Harness h;
  h.w.add(make_deploy("web", 4, I(1), I(1)));
  h.roll(4, 1, 4, false);
  std::string v1 = h.w.rs_with_image("web:1")->metadata.name;
  auto v1_template = h.w.rs_with_image("web:1")->spec.template_;
  h.w.edit("default/web", [](Deployment& x) { set_image(x, "web:2"); });
  h.roll(4, 1, 1, true);
  REQUIRE(h.w.rses.size() == 2);

  // kubectl rollout undo: the RS's template without the hash label becomes the deployment's.
  v1_template.metadata.labels.erase(kHashLabel);
  h.w.edit("default/web", [&](Deployment& x) { x.spec.template_ = v1_template; });
  h.roll(4, 1, 1, true);
  CHECK(h.w.rses.size() == 2);  // no new RS
  const auto& rs = h.w.rses.at("default/" + v1);
  CHECK(rs.spec.replicas == 4);
  CHECK(rs.metadata.annotations.at(kRevisionAnnotation) == "3");
  CHECK(rs.metadata.annotations.at(kRevisionHistoryAnnotation) == "1");
  CHECK(h.w.rs_with_image("web:2")->spec.replicas == 0);
  CHECK(h.d().metadata.annotations.at(kRevisionAnnotation) == "3");

  // And forward again: web:2's RS becomes revision 4, history "2".
  h.w.edit("default/web", [](Deployment& x) { set_image(x, "web:2"); });
  h.roll(4, 1, 1, true);
  auto* v2 = h.w.rs_with_image("web:2");
  CHECK(v2->metadata.annotations.at(kRevisionAnnotation) == "4");
  CHECK(v2->metadata.annotations.at(kRevisionHistoryAnnotation) == "2");
}

TEST_CASE("deployment: an immediate rollback does not count pods a scaled-down RS is deleting") {
  // The ReplicaSet controller computes status from the pods it saw before deleting, so an RS
  // just scaled to 0 can still say availableReplicas 4 with its generation observed. Undoing
  // right then must not count those pods: web:2 may lose at most maxUnavailable (1) of its 4.
  Harness h;
  h.w.add(make_deploy("web", 4, I(1), I(1)));
  h.roll(4, 1, 4, false);
  std::string v1 = h.w.rs_with_image("web:1")->metadata.name;
  auto v1_template = h.w.rs_with_image("web:1")->spec.template_;
  h.w.edit("default/web", [](Deployment& x) { set_image(x, "web:2"); });
  h.roll(4, 1, 1, true);
  std::string v2 = h.w.rs_with_image("web:2")->metadata.name;
  REQUIRE(h.w.rses.at("default/" + v1).spec.replicas == 0);
  auto& stale = h.w.rses.at("default/" + v1).status;
  stale.available_replicas = stale.ready_replicas = stale.replicas = 4;

  v1_template.metadata.labels.erase(kHashLabel);
  h.w.edit("default/web", [&](Deployment& x) { x.spec.template_ = v1_template; });
  for (int i = 0; i < 4; ++i) {
    h.sync();
    INFO("sync " << i);
    CHECK(h.w.rses.at("default/" + v2).spec.replicas.value_or(1) >= 3);
  }
  // Once statuses catch up the rollback completes (the fake's injected stale pods would trip
  // the harness's pod-count bounds, so they are not checked here).
  h.roll(4, 1, 1, false);
  CHECK(h.w.rses.at("default/" + v1).spec.replicas == 4);
  CHECK(h.w.rses.at("default/" + v2).spec.replicas == 0);
}

TEST_CASE("deployment: Recreate scales old to zero and waits for their pods") {
  Harness h;
  auto d = make_deploy("web", 3, I(0), I(0));
  d.spec.strategy = {"Recreate", std::nullopt};
  h.w.add(d);
  h.roll(3, 0, 3, false);
  h.w.edit("default/web", [](Deployment& x) { set_image(x, "web:2"); });
  // An extra pod of the old RS still terminating (e.g. a slow kubelet) also blocks.
  const std::string old_uid = h.w.rs_with_image("web:1")->metadata.uid;
  h.w.extra_pods.push_back(PodInfo{"web-old-x", {{"app", "web"}}, old_uid, "Running"});
  bool saw_gap = false;
  for (int i = 0; i < 50 && !h.complete(); ++i) {
    h.sync();
    auto* o = h.w.rs_with_image("web:1");
    auto* n = h.w.rs_with_image("web:2");
    if (n && n->status.replicas > 0) REQUIRE(o->status.replicas == 0);
    if (n) REQUIRE(h.w.extra_pods.empty());  // new RS only once every old pod is gone
    if (o->status.replicas == 0 && !n) {
      saw_gap = true;
      h.w.extra_pods.clear();  // the old pod finally goes
    }
    h.w.step();
  }
  CHECK(saw_gap);
  REQUIRE(h.complete());
  CHECK(h.w.rs_with_image("web:2")->spec.replicas == 3);
  CHECK(h.w.rs_with_image("web:1")->spec.replicas == 0);
  CHECK(h.w.rs_with_image("web:2")->metadata.annotations.at(kRevisionAnnotation) == "2");
}

TEST_CASE("deployment: revisionHistoryLimit deletes the oldest RSes with no replicas") {
  Harness h;
  auto d = make_deploy("web", 2, I(1), I(0));
  d.spec.revision_history_limit = 1;
  h.w.add(d);
  h.roll(2, 1, 2, false);
  for (int v = 2; v <= 4; ++v) {
    h.w.edit("default/web", [v](Deployment& x) { set_image(x, "web:" + std::to_string(v)); });
    h.roll(2, 1, 0, true);
    h.sync();  // complete: cleanup runs
  }
  REQUIRE(h.w.rses.size() == 2);
  CHECK(h.w.rs_with_image("web:4"));
  CHECK(h.w.rs_with_image("web:3"));  // the newest old one is kept
  CHECK_FALSE(h.w.rs_with_image("web:1"));

  // Limit 0 keeps only the current one.
  h.w.edit("default/web", [](Deployment& x) { x.spec.revision_history_limit = 0; });
  h.sync();  // observes the new generation
  h.sync();  // complete again: cleans up
  CHECK(h.w.rses.size() == 1);
}

TEST_CASE("deployment: pause stops the rollout, scaling still applies, resume continues") {
  Harness h;
  h.w.add(make_deploy("web", 4, I(1), I(1)));
  h.roll(4, 1, 4, false);
  h.w.edit("default/web", [](Deployment& x) {
    x.spec.paused = true;
    set_image(x, "web:2");
  });
  for (int i = 0; i < 5; ++i) {
    h.sync();
    h.w.step();
  }
  CHECK(h.w.rses.size() == 1);  // no new RS while paused
  const auto* p = get_condition(h.d().status, kProgressing);
  REQUIRE(p);
  CHECK(p->reason == kPausedReason);
  CHECK(p->status == "Unknown");
  CHECK(h.d().status.observed_generation == h.d().metadata.generation);

  h.w.edit("default/web", [](Deployment& x) { x.spec.replicas = 6; });
  h.sync();
  CHECK(h.w.rs_with_image("web:1")->spec.replicas == 6);
  h.w.step();
  h.w.step();

  h.w.edit("default/web", [](Deployment& x) { x.spec.paused = false; });
  h.sync();
  CHECK(get_condition(h.d().status, kProgressing)->reason != kPausedReason);
  h.roll(6, 1, 1, true);
  CHECK(h.w.rs_with_image("web:2")->spec.replicas == 6);
}

TEST_CASE("deployment: pause in the middle of a rollout freezes it") {
  Harness h;
  h.w.add(make_deploy("web", 4, I(1), I(0)));
  h.roll(4, 1, 4, false);
  h.w.edit("default/web", [](Deployment& x) { set_image(x, "web:2"); });
  h.sync();
  h.w.step();
  h.w.edit("default/web", [](Deployment& x) { x.spec.paused = true; });
  h.sync();
  auto frozen = std::make_pair(h.w.rs_with_image("web:1")->spec.replicas,
                               h.w.rs_with_image("web:2")->spec.replicas);
  for (int i = 0; i < 5; ++i) {
    h.w.step();
    h.sync();
  }
  CHECK(h.w.rs_with_image("web:1")->spec.replicas == frozen.first);
  CHECK(h.w.rs_with_image("web:2")->spec.replicas == frozen.second);
  h.w.edit("default/web", [](Deployment& x) { x.spec.paused = false; });
  h.roll(4, 1, 0, true);
}

TEST_CASE("deployment: proportional scaling while a rollout is stuck") {
  Harness h;
  h.w.add(make_deploy("web", 10, I(3), I(2)));
  h.roll(10, 3, 10, false);
  h.w.edit("default/web", [](Deployment& x) { set_image(x, "broken"); });
  for (int i = 0; i < 6; ++i) {
    h.sync();
    h.w.step();
  }
  auto* old_rs = h.w.rs_with_image("web:1");
  auto* new_rs = h.w.rs_with_image("broken");
  int32_t o = old_rs->spec.replicas.value(), n = new_rs->spec.replicas.value();
  CHECK(o + n == 13);  // stuck at replicas + surge
  CHECK(o == 8);       // 2 unavailable allowed
  h.w.edit("default/web", [](Deployment& x) { x.spec.replicas = 20; });
  h.sync();
  // 10 more (surge 3 => 23 in all), spread by size: 8*23/13 ~ 14 and 5*23/13 ~ 9.
  int32_t o2 = old_rs->spec.replicas.value(), n2 = new_rs->spec.replicas.value();
  CHECK(o2 == 14);
  CHECK(n2 == 9);
  CHECK(old_rs->metadata.annotations.at(kDesiredReplicasAnnotation) == "20");
  CHECK(new_rs->metadata.annotations.at(kMaxReplicasAnnotation) == "23");
  // Scaling down spreads too, and the rollout resumes from there once fixed.
  h.w.edit("default/web", [](Deployment& x) { x.spec.replicas = 5; });
  h.sync();
  CHECK(old_rs->spec.replicas.value() + new_rs->spec.replicas.value() == 8);
  h.w.edit("default/web", [](Deployment& x) { set_image(x, "web:3"); });
  h.roll(5, 3, 5, false);
  CHECK(h.w.rs_with_image("web:3")->spec.replicas == 5);
}

TEST_CASE("deployment: progress deadline, conditions as kubectl rollout status reads them") {
  Harness h;
  auto d = make_deploy("web", 3, I(1), I(0));
  d.spec.progress_deadline_seconds = 30;
  h.w.add(d);
  h.roll(3, 1, 3, false);
  CHECK(get_condition(h.d().status, kProgressing)->reason == kNewRSAvailableReason);
  h.w.edit("default/web", [](Deployment& x) { set_image(x, "broken"); });
  for (int i = 0; i < 5; ++i) {
    h.sync();
    h.w.step();
  }
  const auto* p = get_condition(h.d().status, kProgressing);
  REQUIRE(p);
  CHECK(p->status == "True");
  CHECK(p->reason == kRSUpdatedReason);
  // The sync that found no progress asked to be woken after the deadline.
  CHECK(h.c->queue().num_waiting() == 1);
  h.w.now += std::chrono::seconds(31);
  h.sync();
  p = get_condition(h.d().status, kProgressing);
  CHECK(p->status == "False");
  CHECK(p->reason == kTimedOutReason);
  CHECK(p->message.find("has timed out progressing") != std::string::npos);
  // Availability: 3 old available, maxUnavailable 0.
  CHECK(get_condition(h.d().status, kAvailable)->status == "True");
  CHECK(h.d().status.updated_replicas == 1);
  CHECK(h.d().status.unavailable_replicas == 1);

  // A fix gets it progressing again, then complete.
  h.w.edit("default/web", [](Deployment& x) { set_image(x, "web:2"); });
  h.roll(3, 1, 0, true);
  CHECK(get_condition(h.d().status, kProgressing)->status == "True");
}

TEST_CASE("deployment: Available condition and unhealthy old replicas go first") {
  Harness h;
  h.w.add(make_deploy("web", 4, I(0), I(1), "broken"));
  for (int i = 0; i < 3; ++i) {
    h.sync();
    h.w.step();
  }
  h.sync();
  CHECK(get_condition(h.d().status, kAvailable)->status == "False");
  CHECK(get_condition(h.d().status, kAvailable)->reason == kMinUnavailableReason);
  // Fix the image: with no surge the new RS can only grow once an old (unhealthy) replica is
  // removed, which costs no availability.
  h.w.edit("default/web", [](Deployment& x) { set_image(x, "web:2"); });
  h.sync();
  CHECK(h.w.rs_with_image("broken")->spec.replicas == 3);
  CHECK(h.ev.messages.back().find("Scaled down replica set") == 0);
  h.roll(4, 0, 4, false);
  CHECK(get_condition(h.d().status, kAvailable)->status == "True");
}

TEST_CASE("deployment: adopts matching orphans and releases RSes that stop matching") {
  Harness h;
  auto d = make_deploy("web", 2, I(1), I(0));
  // An orphan RS with the deployment's template (e.g. its deployment was deleted with
  // --cascade=orphan and re-created).
  ReplicaSet orphan;
  orphan.metadata.name = "web-orphan";
  orphan.metadata.namespace_ = "default";
  orphan.spec.template_ = d.spec.template_;
  orphan.spec.template_.metadata.labels[kHashLabel] = "abc";
  orphan.metadata.labels = orphan.spec.template_.metadata.labels;
  orphan.spec.replicas = 2;
  orphan.spec.selector = proto::LabelSelectorSpec{};
  orphan.spec.selector->match_labels = orphan.metadata.labels;
  REQUIRE(h.w.create_replicaset(orphan));
  // One of another app: not touched.
  ReplicaSet other = orphan;
  other.metadata.name = "db";
  other.metadata.labels = {{"app", "db"}};
  REQUIRE(h.w.create_replicaset(other));
  h.w.add(d);
  h.sync();
  const auto& adopted = h.w.rses.at("default/web-orphan");
  REQUIRE(adopted.metadata.owner_references.size() == 1);
  CHECK(adopted.metadata.owner_references[0].uid == h.d().metadata.uid);
  CHECK(h.w.rses.at("default/db").metadata.owner_references.empty());
  CHECK(h.w.rses.size() == 2);  // the adopted RS is the new one: nothing created
  CHECK(adopted.metadata.annotations.at(kRevisionAnnotation) == "1");

  // Its labels change so the selector no longer matches: released.
  auto rs = h.w.rses.at("default/web-orphan");
  rs.metadata.labels = {{"app", "other"}};
  REQUIRE(h.w.update_replicaset(rs));
  h.sync();
  CHECK(h.w.rses.at("default/web-orphan").metadata.owner_references.empty());
  CHECK(h.w.rses.size() == 3);  // a new RS for the template
}

TEST_CASE("deployment: a hash collision bumps collisionCount and picks another name") {
  Harness h;
  auto d = make_deploy("web", 2, I(1), I(0));
  std::string hash = compute_hash(d.spec.template_, std::nullopt);
  ReplicaSet squatter;
  squatter.metadata.name = "web-" + hash;
  squatter.metadata.namespace_ = "default";
  squatter.metadata.labels = {{"app", "squatter"}};
  squatter.spec.template_ = d.spec.template_;
  squatter.spec.template_.spec.containers[0].image = "other";
  squatter.spec.template_.metadata.labels = squatter.metadata.labels;
  REQUIRE(h.w.create_replicaset(squatter));
  h.w.add(d);
  CHECK_FALSE(h.c->sync("default/web"));
  CHECK(h.d().status.collision_count == 1);
  h.sync();
  std::string hash2 = compute_hash(d.spec.template_, 1);
  REQUIRE(h.w.rses.count("default/web-" + hash2));
  h.roll(2, 1, 2, false);
}

TEST_CASE("deployment: handlers enqueue the owner, or matching deployments for orphans") {
  Harness h;
  h.w.add(make_deploy("web", 2, I(1), I(0)));
  h.w.add(make_deploy("api", 2, I(1), I(0)));
  h.sync();
  json rs = proto::encode(h.w.rses.begin()->second);
  auto drain = [&] {
    std::vector<std::string> keys;
    while (auto k = h.c->queue().get_for(std::chrono::milliseconds(1))) {
      keys.push_back(*k);
      h.c->queue().done(*k);
    }
    return keys;
  };
  drain();
  h.c->on_rs_add(rs);
  CHECK(drain() == std::vector<std::string>{"default/web"});
  json orphan = rs;
  orphan["metadata"].erase("ownerReferences");
  orphan["metadata"]["labels"] = {{"app", "api"}};
  h.c->on_rs_add(orphan);
  CHECK(drain() == std::vector<std::string>{"default/api"});
  json updated = rs;
  updated["metadata"]["resourceVersion"] = "999999";
  h.c->on_rs_update(rs, updated);
  CHECK(drain() == std::vector<std::string>{"default/web"});
  h.c->on_rs_update(rs, rs);  // resync: nothing
  CHECK(drain().empty());
  h.c->on_rs_delete(rs);
  CHECK(drain() == std::vector<std::string>{"default/web"});
  // A pod of a Recreate deployment's RS going away wakes that deployment.
  h.w.edit("default/web", [](Deployment& x) { x.spec.strategy = {"Recreate", std::nullopt}; });
  json pod = {{"metadata",
               {{"name", "p"},
                {"namespace", "default"},
                {"ownerReferences",
                 {{{"kind", "ReplicaSet"},
                   {"uid", rs["metadata"]["uid"]},
                   {"controller", true},
                   {"name", rs["metadata"]["name"]},
                   {"apiVersion", "apps/v1"}}}}}}};
  h.c->on_pod_delete(pod);
  CHECK(drain() == std::vector<std::string>{"default/web"});
}

TEST_CASE("deployment: deleted or selector-less deployments") {
  Harness h;
  CHECK(h.c->sync("default/gone"));
  auto d = make_deploy("web", 2, I(1), I(0));
  d.spec.selector = proto::LabelSelectorSpec{};
  h.w.add(d);
  h.sync();
  CHECK(h.w.rses.empty());
  CHECK(h.ev.reasons == std::vector<std::string>{"SelectingAll"});
  CHECK(h.d().status.observed_generation == 1);
}

TEST_CASE("deployment: a lagging cache costs retries, never the bounds") {
  for (auto [replicas, surge, unav] :
       {std::tuple{5, 2, 1}, std::tuple{4, 1, 0}, std::tuple{6, 0, 2}}) {
    DYNAMIC_SECTION("replicas " << replicas << " surge " << surge << " unavailable " << unav) {
      Harness h;
      h.w.add(make_deploy("web", replicas, I(surge), I(unav)));
      h.roll(replicas, surge, replicas, false);
      h.w.edit("default/web", [](Deployment& x) { set_image(x, "web:2"); });
      int conflicts = 0;
      for (int i = 0; i < 300 && !h.complete(); ++i) {
        // Three syncs on one stale snapshot: every write after the first is based on
        // outdated objects.
        h.w.freeze();
        for (int k = 0; k < 3; ++k) {
          auto st = h.c->sync("default/web");
          if (!st) {
            INFO(st.to_string());
            REQUIRE((st.code() == Code::kConflict || st.code() == Code::kAlreadyExists));
            ++conflicts;
          }
        }
        h.w.thaw();
        int32_t spec_sum = 0;
        for (auto& [k, r] : h.w.rses) spec_sum += r.spec.replicas.value_or(1);
        REQUIRE(spec_sum <= replicas + surge);
        REQUIRE(h.w.available_pods() >= replicas - unav);
        if (i % 2 == 0) h.w.step();  // the world moves at half the controller's pace
        REQUIRE(h.w.total_pods() <= replicas + surge);
        REQUIRE(h.w.available_pods() >= replicas - unav);
      }
      CHECK(h.complete());
      CHECK(conflicts > 0);
      CHECK(h.w.rses.size() == 2);
      CHECK(h.w.rs_with_image("web:2")->metadata.annotations.at(kRevisionAnnotation) == "2");
    }
  }
}

TEST_CASE("deployment: scale to zero, change the template at zero, scale back") {
  Harness h;
  h.w.add(make_deploy("web", 3, P("25%"), P("25%")));
  h.roll(3, 1, 3, false);
  h.w.edit("default/web", [](Deployment& x) { x.spec.replicas = 0; });
  h.roll(0, 0, 3, false);
  CHECK(h.w.rs_with_image("web:1")->spec.replicas == 0);
  h.w.edit("default/web", [](Deployment& x) { set_image(x, "web:2"); });
  h.roll(0, 0, 0, true);
  REQUIRE(h.w.rs_with_image("web:2"));
  CHECK(h.w.rs_with_image("web:2")->spec.replicas == 0);
  CHECK(h.w.rs_with_image("web:2")->metadata.annotations.at(kRevisionAnnotation) == "2");
  h.w.edit("default/web", [](Deployment& x) { x.spec.replicas = 2; });
  h.roll(2, 1, 2, false);
  CHECK(h.w.rs_with_image("web:2")->spec.replicas == 2);
  CHECK(h.w.rs_with_image("web:1")->spec.replicas == 0);
}
