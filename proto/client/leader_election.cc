#include "proto/client/leader_election.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <nlohmann/json.hpp>
#include <thread>

#include "proto/client/api_client.h"
#include "proto/lease.h"
#include "proto/namespace.h"
#include "proto/registry.h"

namespace skiff::client {

namespace {

const proto::ResourceType& lease_type() {
  static const proto::ResourceType t = proto::lease_resource();
  return t;
}

const proto::ResourceType& namespace_type() {
  static const proto::ResourceType t = proto::namespace_resource();
  return t;
}

proto::MicroTime micro(const json& spec, const char* field) {
  auto it = spec.find(field);
  if (it == spec.end() || !it->is_string()) return {};
  auto t = proto::parse_rfc3339(it->get<std::string>());
  return t ? proto::MicroTime::at(*t) : proto::MicroTime{};
}

int32_t int_field(const json& spec, const char* field) {
  auto it = spec.find(field);
  return it != spec.end() && it->is_number_integer() ? it->get<int32_t>() : 0;
}

LeaderElectionRecord record_of(const json& lease) {
  LeaderElectionRecord r;
  auto spec_it = lease.find("spec");
  if (spec_it == lease.end() || !spec_it->is_object()) return r;
  const json& spec = *spec_it;
  if (auto it = spec.find("holderIdentity"); it != spec.end() && it->is_string())
    r.holder_identity = it->get<std::string>();
  r.lease_duration_seconds = int_field(spec, "leaseDurationSeconds");
  r.acquire_time = micro(spec, "acquireTime");
  r.renew_time = micro(spec, "renewTime");
  r.lease_transitions = int_field(spec, "leaseTransitions");
  return r;
}

json spec_of(const LeaderElectionRecord& r) {
  json spec = {{"leaseDurationSeconds", r.lease_duration_seconds},
               {"leaseTransitions", r.lease_transitions}};
  // A released lease has no holder: omit the field rather than write "".
  if (!r.holder_identity.empty()) spec["holderIdentity"] = r.holder_identity;
  if (!r.acquire_time.is_zero()) spec["acquireTime"] = r.acquire_time.to_string();
  if (!r.renew_time.is_zero()) spec["renewTime"] = r.renew_time.to_string();
  return spec;
}

std::string version_of(const json& obj) {
  auto m = obj.find("metadata");
  if (m == obj.end()) return "";
  auto rv = m->find("resourceVersion");
  return rv != m->end() && rv->is_string() ? rv->get<std::string>() : "";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ApiLeaseLock

ApiLeaseLock::ApiLeaseLock(std::shared_ptr<ApiClient> api, std::string ns, std::string name)
    : api_(std::move(api)), ns_(std::move(ns)), name_(std::move(name)) {}

Result<LeaseLock::Versioned> ApiLeaseLock::get() {
  auto r = api_->get(lease_type(), ns_, name_);
  if (!r) return r.status().with_context("reading lease " + describe());
  {
    std::lock_guard lock(mu_);
    last_json_ = r->dump();
  }
  return Versioned{record_of(*r), version_of(*r)};
}

Result<std::string> ApiLeaseLock::create(const LeaderElectionRecord& rec) {
  json obj = {{"apiVersion", "coordination.k8s.io/v1"},
              {"kind", "Lease"},
              {"metadata", {{"name", name_}, {"namespace", ns_}}},
              {"spec", spec_of(rec)}};
  auto r = api_->create(lease_type(), ns_, obj);
  if (!r && r.status().code() == Code::kNotFound) {
    // The namespace does not exist yet: create it (someone else may race us: fine) and retry.
    json ns_obj = {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns_}}}};
    auto nr = api_->create(namespace_type(), "", ns_obj);
    if (!nr && nr.status().code() != Code::kAlreadyExists)
      return nr.status().with_context("creating namespace " + ns_ + " for lease " + name_);
    r = api_->create(lease_type(), ns_, obj);
  }
  if (!r) return r.status().with_context("creating lease " + describe());
  std::lock_guard lock(mu_);
  last_json_ = r->dump();
  return version_of(*r);
}

Result<std::string> ApiLeaseLock::update(const LeaderElectionRecord& rec,
                                         const std::string& version) {
  json obj;
  {
    std::lock_guard lock(mu_);
    if (!last_json_.empty()) obj = json::parse(last_json_, nullptr, false);
  }
  if (!obj.is_object())
    obj = {{"apiVersion", "coordination.k8s.io/v1"},
           {"kind", "Lease"},
           {"metadata", {{"name", name_}, {"namespace", ns_}}}};
  obj["metadata"]["resourceVersion"] = version;
  obj["spec"] = spec_of(rec);
  auto r = api_->update(lease_type(), obj);
  if (!r) return r.status().with_context("updating lease " + describe());
  std::lock_guard lock(mu_);
  last_json_ = r->dump();
  return version_of(*r);
}

// ---------------------------------------------------------------------------------------------
// LeaderElector

Status validate_durations(std::chrono::milliseconds lease_duration,
                          std::chrono::milliseconds renew_deadline,
                          std::chrono::milliseconds retry_period) {
  using std::chrono::milliseconds;
  if (retry_period <= milliseconds(0))
    return Status::invalid("leader election: retry period must be positive");
  if (lease_duration <= renew_deadline)
    return Status::invalid("leader election: lease duration (" +
                           std::to_string(lease_duration.count()) +
                           " ms) must be greater than the renew deadline (" +
                           std::to_string(renew_deadline.count()) + " ms)");
  // client-go's JitterFactor: a renew deadline must leave room for more than one retry.
  if (renew_deadline.count() * 10 <= retry_period.count() * 12)
    return Status::invalid("leader election: renew deadline (" +
                           std::to_string(renew_deadline.count()) +
                           " ms) must be greater than 1.2 x the retry period (" +
                           std::to_string(retry_period.count()) + " ms)");
  if (lease_duration < std::chrono::seconds(1))
    return Status::invalid("leader election: lease duration must be at least 1s");
  return Status::ok();
}

Result<std::unique_ptr<LeaderElector>> LeaderElector::create(LeaderElectionConfig cfg) {
  if (!cfg.lock) return Status::invalid("leader election: no lock");
  if (cfg.identity.empty()) return Status::invalid("leader election: empty identity");
  SKIFF_RETURN_IF_ERROR(
      validate_durations(cfg.lease_duration, cfg.renew_deadline, cfg.retry_period));
  return std::unique_ptr<LeaderElector>(new LeaderElector(std::move(cfg)));
}

LeaderElector::LeaderElector(LeaderElectionConfig config)
    : cfg_(std::move(config)), clock_(cfg_.clock ? *cfg_.clock : Clock::real()) {}

LeaderElector::~LeaderElector() = default;

std::chrono::system_clock::time_point LeaderElector::wall_now() const {
  return cfg_.wall_clock ? cfg_.wall_clock() : std::chrono::system_clock::now();
}

bool LeaderElector::is_leader() const {
  std::lock_guard lock(mu_);
  return have_observed_ && observed_.holder_identity == cfg_.identity;
}

std::string LeaderElector::leader() const {
  std::lock_guard lock(mu_);
  return observed_.holder_identity;
}

void LeaderElector::observe(const LeaderElectionRecord& r, const std::string& version) {
  std::string report;
  {
    std::lock_guard lock(mu_);
    if (!have_observed_ || !(r == observed_)) observed_time_ = clock_.now();
    observed_ = r;
    observed_version_ = version;
    have_observed_ = true;
    if (r.holder_identity != reported_leader_) {
      reported_leader_ = r.holder_identity;
      report = r.holder_identity;
    }
  }
  if (!report.empty() && cfg_.callbacks.on_new_leader) cfg_.callbacks.on_new_leader(report);
}

bool LeaderElector::try_acquire_or_renew() {
  auto now =
      proto::MicroTime::at(std::chrono::time_point_cast<std::chrono::microseconds>(wall_now()));
  LeaderElectionRecord desired;
  desired.holder_identity = cfg_.identity;
  desired.lease_duration_seconds = static_cast<int32_t>(
      std::chrono::duration_cast<std::chrono::seconds>(cfg_.lease_duration).count());
  desired.acquire_time = now;
  desired.renew_time = now;

  // 1. Read the current record; create it when there is none.
  auto cur = cfg_.lock->get();
  if (!cur) {
    if (cur.status().code() != Code::kNotFound) {
      spdlog::warn("leader election: {}", cur.status().to_string());
      return false;
    }
    auto v = cfg_.lock->create(desired);
    if (!v) {
      spdlog::warn("leader election: {}", v.status().to_string());
      return false;
    }
    observe(desired, *v);
    return true;
  }

  // 2. Someone else holds it and we saw it change less than its duration ago: wait.
  observe(cur->record, cur->version);
  bool self;
  {
    std::lock_guard lock(mu_);
    self = observed_.holder_identity == cfg_.identity;
    auto expires =
        observed_time_ + std::chrono::seconds(std::max(observed_.lease_duration_seconds, 0));
    if (!observed_.holder_identity.empty() && !self && clock_.now() < expires) return false;
  }

  // 3. Acquire (a transition) or renew (keep acquireTime), conditional on the version read.
  if (self) {
    desired.acquire_time = cur->record.acquire_time;
    desired.lease_transitions = cur->record.lease_transitions;
  } else {
    desired.lease_transitions = cur->record.lease_transitions + 1;
  }
  auto v = cfg_.lock->update(desired, cur->version);
  if (!v) {
    if (v.status().code() == Code::kConflict)
      spdlog::info("leader election: lease {} changed meanwhile (conflict)", cfg_.lock->describe());
    else
      spdlog::warn("leader election: {}", v.status().to_string());
    return false;
  }
  if (!self)
    spdlog::info("leader election: {} acquired lease {}", cfg_.identity, cfg_.lock->describe());
  observe(desired, *v);
  return true;
}

Status LeaderElector::release() {
  LeaderElectionRecord rec;
  std::string version;
  {
    std::lock_guard lock(mu_);
    if (!have_observed_ || observed_.holder_identity != cfg_.identity) return Status::ok();
    rec.lease_transitions = observed_.lease_transitions;
    version = observed_version_;
  }
  auto now =
      proto::MicroTime::at(std::chrono::time_point_cast<std::chrono::microseconds>(wall_now()));
  rec.lease_duration_seconds = 1;
  rec.acquire_time = now;
  rec.renew_time = now;
  auto v = cfg_.lock->update(rec, version);
  if (!v) return v.status().with_context("releasing leadership");
  observe(rec, *v);
  spdlog::info("leader election: {} released lease {}", cfg_.identity, cfg_.lock->describe());
  return Status::ok();
}

bool LeaderElector::sleep(std::stop_token stop, std::chrono::milliseconds d) {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  cv.wait_for(lock, stop, d, [] { return false; });
  return !stop.stop_requested();
}

bool LeaderElector::acquire(std::stop_token stop) {
  spdlog::info("leader election: {} trying to acquire lease {}", cfg_.identity,
               cfg_.lock->describe());
  while (!stop.stop_requested()) {
    if (try_acquire_or_renew()) return true;
    if (!sleep(stop, cfg_.retry_period)) break;
  }
  return false;
}

void LeaderElector::renew(std::stop_token stop) {
  while (sleep(stop, cfg_.retry_period)) {
    // Retry until renewed or the deadline passes (client-go's renew loop).
    auto deadline = clock_.now() + cfg_.renew_deadline;
    bool ok = false;
    while (!stop.stop_requested()) {
      ok = try_acquire_or_renew();
      // A renewal that only completed after the deadline does not count: a standby may have
      // been entitled to take over meanwhile (client-go cancels such a request instead).
      if (ok && clock_.now() > deadline) ok = false;
      if (ok || clock_.now() + cfg_.retry_period > deadline) break;
      if (!sleep(stop, cfg_.retry_period)) break;
    }
    if (stop.stop_requested()) return;
    if (!ok) {
      spdlog::error("leader election: {} failed to renew lease {} within {} ms: leadership lost",
                    cfg_.identity, cfg_.lock->describe(), cfg_.renew_deadline.count());
      std::lock_guard lock(mu_);
      // We no longer count ourselves as leader even though the record still names us.
      if (observed_.holder_identity == cfg_.identity) observed_.holder_identity.clear();
      return;
    }
  }
}

void LeaderElector::run(std::stop_token stop) {
  if (!acquire(stop)) return;
  std::jthread leading;
  if (cfg_.callbacks.on_started_leading)
    leading =
        std::jthread([cb = cfg_.callbacks.on_started_leading](std::stop_token st) { cb(st); });
  renew(stop);
  leading.request_stop();
  if (leading.joinable()) leading.join();
  if (stop.stop_requested() && cfg_.release_on_cancel)
    if (auto s = release(); !s) spdlog::warn("leader election: {}", s.to_string());
  {
    std::lock_guard lock(mu_);
    if (observed_.holder_identity == cfg_.identity) observed_.holder_identity.clear();
  }
  if (cfg_.callbacks.on_stopped_leading) cfg_.callbacks.on_stopped_leading();
}

}  // namespace skiff::client
