// ApiImpl: the Api behind apiserver/api.h. Private to apiserver/ (and its tests).
//
// api.cc holds routing, bootstrap and discovery; handlers_read.cc get/list/watch;
// handlers_write.cc create/update/patch/delete/deletecollection/binding and the admission
// pipeline (decode, default, validate, metadata rules, namespace lifecycle).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "apiserver/api.h"
#include "apiserver/api_util.h"
#include "apiserver/errors.h"
#include "apiserver/metrics.h"
#include "apiserver/priority.h"
#include "apiserver/reviews.h"
#include "apiserver/service_alloc.h"
#include "apiserver/watch_cache.h"

namespace skiff::proto {
class Registry;
struct ResourceType;
struct Scale;
}  // namespace skiff::proto
namespace skiff::store {
class Store;
}

namespace skiff::apiserver {

// Runs a store call `f` and records its latency in the store histogram under `op`.
template <class F>
auto timed(const char* op, F&& f) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = f();
  metrics::observe_store(
      op, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return r;
}

// How often a write without a resourceVersion precondition (PATCH, a PUT without one, the
// scale subresource, a create drawing a generated name) is re-applied to the newest version
// after losing a race. Kubernetes' GuaranteedUpdate retries without bound; 16 was exhausted
// once in CI by 4 threads patching one object 40 times on a loaded machine.
inline constexpr int kMaxWriteAttempts = 128;

// A resource URL, parsed.
struct Target {
  const proto::ResourceType* rt = nullptr;
  std::string ns;             // "" for cluster-scoped types and all-namespace lists
  std::string name;           // "" for collection URLs
  std::string subresource;    // "status", "binding", "scale", "eviction" or ""
  bool legacy_watch = false;  // /api/v1/watch/... form
};

// The fields of a metav1.DeleteOptions (a DELETE body, an Eviction's deleteOptions).
struct DeleteParams {
  json preconditions;
  int64_t grace = -1;       // -1: not given (pods then use their terminationGracePeriodSeconds)
  std::string propagation;  // "", "Background", "Foreground" or "Orphan"
  bool dry_run = false;     // dryRun: ["All"] (the query parameter is WriteOptions')
};
// Reads DeleteOptions `opts` (a JSON object) strictly: a field of the wrong JSON type is a 400
// with Go's decoder message naming `go_path` + the field ("DeleteOptions.gracePeriodSeconds"),
// an unsupported dryRun or propagationPolicy value a 400 (handlers_write.cc).
ApiResult<DeleteParams> parse_delete_options(const json& opts, const std::string& go_path);

enum class FieldValidation { kIgnore, kWarn, kStrict };

struct WriteOptions {
  bool dry_run = false;
  FieldValidation field_validation = FieldValidation::kWarn;
};

class ApiImpl : public Api {
 public:
  explicit ApiImpl(const ApiOptions& opts);
  ~ApiImpl() override;

  // Starts the watch cache and makes the built-in namespaces.
  bool init(std::string* error);
  Response handle(const Request& req) override;
  void shutdown() override;
  void start_kubernetes_service(const std::string& advertise_ip, int port) override;
  // One pass of the `kubernetes` Service / Endpoints repair. Error text, or "" when fine.
  std::string reconcile_kubernetes_service();

  WatchCache& watch_cache() { return watch_; }
  ServiceAllocator* service_allocator() { return svc_alloc_.get(); }

 private:
  Response route(const Request& req, std::string* verb, std::string* resource);
  Response route_resource(const Request& req, const std::string& group, const std::string& version,
                          std::vector<std::string> segs, std::string* verb, std::string* resource);

  // kubectl auth can-i / whoami: the self-reviews, answered, never stored (handlers_write.cc).
  Response review(const Request& req, const ReviewResource& r);
  // discovery (api.cc)
  Response discovery_core_versions(const Request& req);
  Response discovery_groups();
  Response discovery_group(const std::string& group);
  Response discovery_resources(const std::string& group, const std::string& version);
  Response version_info();

  // reads (handlers_read.cc)
  Response get(const Request& req, const Target& t);
  Response list(const Request& req, const Target& t);
  Response watch(const Request& req, const Target& t);
  ApiResult<ObjectFilter> filter_from(const Request& req, const Target& t);

  // writes (handlers_write.cc)
  Response create(const Request& req, const Target& t);
  Response update(const Request& req, const Target& t);
  Response patch(const Request& req, const Target& t);
  Response remove(const Request& req, const Target& t);
  Response remove_collection(const Request& req, const Target& t);
  Response bind(const Request& req, const Target& t);

  // deployments/scale and replicasets/scale: GET, PUT, PATCH (handlers_scale.cc)
  Response scale(const Request& req, const Target& t);
  // Sets the parent's spec.replicas from a Scale: `put` when given, else `patch_doc` (kind 0
  // merge, 1 JSON patch, 2 strategic) applied to the parent's current Scale. Returns the new
  // Scale.
  ApiResult<json> scale_parent(const proto::ResourceType& rt, const Target& t,
                               const json& patch_doc, int patch_kind, const proto::Scale* put,
                               const WriteOptions& wo, std::vector<std::string>* warnings);

  // pods/eviction: delete a pod unless its PodDisruptionBudget forbids it
  // (handlers_eviction.cc)
  Response evict(const Request& req, const Target& t);

  // pods/log and pods/exec, proxied to the pod's kubelet (handlers_proxy.cc)
  Response pod_proxy(const Request& req, const Target& t);

  // The admission pipeline for a new object; `obj` is already normalized.
  ApiResult<json> create_object(const proto::ResourceType& rt, const std::string& url_ns, json obj,
                                const WriteOptions& wo);
  // Stores `candidate` over `old` (read at old_rev): metadata rules, status handling,
  // defaults, validation, generation, finalizer completion. 409 Conflict when the store's
  // revision moved (callers retry when the client did not ask for a specific revision).
  ApiResult<json> update_object(const proto::ResourceType& rt, const std::string& sub,
                                json candidate, const json& old, int64_t old_rev,
                                const WriteOptions& wo);
  // Deletes one object (finalizers respected). `preconditions` may be null. `propagation`
  // "Foreground" / "Orphan" hold it with the garbage collector's finalizer (foregroundDeletion
  // / orphan), "Background" drops both, "" keeps whichever it has.
  ApiResult<json> delete_object(const proto::ResourceType& rt, const std::string& ns,
                                const std::string& name, const json& preconditions,
                                int64_t grace_seconds, const WriteOptions& wo,
                                const std::string& propagation = "");
  ApiResult<json> delete_namespace(const std::string& name, const json& preconditions,
                                   const WriteOptions& wo);
  // Deletes what is left in a terminating namespace and, once empty, the namespace itself.
  void sweep_namespace(const std::string& ns);
  // 404 / 403 when `ns` is missing or terminating.
  std::optional<ApiError> check_namespace_writable(const std::string& ns);
  // Decodes and normalizes a request body for `rt` (kind/apiVersion checked, unknown fields
  // handled per fieldValidation, warnings collected).
  ApiResult<json> decode_body(const std::string& body, const proto::ResourceType& rt,
                              const WriteOptions& wo, std::vector<std::string>* warnings);
  ApiResult<json> normalize(const json& in, const proto::ResourceType& rt, const WriteOptions& wo,
                            std::vector<std::string>* warnings);

  // Services (handlers_services.cc): allocator set-up and rebuild from the store.
  bool init_services(std::string* error);
  bool is_service(const proto::ResourceType& rt) const { return &rt == services_; }
  // PriorityClasses (priority.cc): the built-in system-node-critical and
  // system-cluster-critical, made when absent.
  bool init_priority_classes(std::string* error);
  // The Priority admission for a pod or PriorityClass create (`old` null) or update; nullopt
  // for other kinds and when admitted.
  std::optional<ApiError> admit_priority(const proto::ResourceType& rt, json& obj, const json* old);

  ApiOptions opts_;
  store::Store* store_;
  const proto::Registry& reg_;
  const proto::ResourceType* namespaces_ = nullptr;
  const proto::ResourceType* services_ = nullptr;
  const proto::ResourceType* endpoints_ = nullptr;
  std::unique_ptr<ServiceAllocator> svc_alloc_;
  // Shared stores (etcd: several API servers): each ClusterIP and node port a Service holds is
  // also a key of its own, created before the Service is written, so two servers can never
  // both hand out a value (handlers_services.cc). reserve(): ok(true) all of `txn` reserved;
  // ok(false) another server holds the value put in `lost` (the keys made so far removed).
  ApiResult<bool> reserve(const AllocTxn& txn, const std::string& owner, AllocTxn* lost);
  void unreserve(const std::vector<std::string>& ips, const std::vector<int>& ports);
  // Runs `allocate` (the allocator on `obj`) and reserves what it took, again while another
  // server holds a picked value; `obj`'s spec is restored before each new try.
  ApiResult<AllocTxn> allocate_reserved(json& obj, const std::string& owner, bool dry_run,
                                        const std::function<ApiResult<AllocTxn>()>& allocate);
  // A Service is gone or stopped holding values: the allocator and the reservations free them.
  void release_service_values(const json& svc);
  // On the reconciler's timer: reservations no stored Service holds, seen so on two passes, are
  // removed (a server died between reserving and writing); held values without one get one.
  void repair_reservations();
  std::map<std::string, int64_t> orphans_seen_;  // reservation key -> its mod_revision (k8s thread)

  // Followers of the store (every API server's writes, when several share etcd): Service
  // writes and reservations feed the allocator, Namespace writes the set of active namespaces
  // that lets a write skip reading its namespace, PriorityClass writes the classes the Priority
  // admission reads. Events up to the revision they were rebuilt at are already in.
  enum class Followed { kNone, kService, kNamespace, kPriorityClass, kReservation };
  Followed followed(const std::string& key) const;
  void follow_store_event(const store::Event& ev);
  // `what`: followed(ev.kv.key), classified once by the caller. REQUIRES: follow_mu_
  void follow_locked(const store::Event& ev, Followed what);
  // True when the namespace is known to exist and not to be terminating; false means "ask the
  // store" (it may also be one created a moment ago through another API server).
  bool namespace_known_active(const std::string& ns);
  std::mutex follow_mu_;
  int64_t follow_after_ = -1;  // -1: rebuilding; events are buffered meanwhile
  std::vector<store::Event> follow_buffer_;
  std::unordered_map<std::string, bool> ns_active_;  // namespace name -> not terminating
  // PriorityClasses as the follower has them, for the Priority admission of pod creates;
  // null before the follower is ready (admission then reads the store).
  std::shared_ptr<const std::map<std::string, PriorityClassInfo>> priority_classes_known();
  std::shared_ptr<const std::map<std::string, PriorityClassInfo>> pc_known_;
  const proto::ResourceType* pcs_ = nullptr;  // scheduling.k8s.io/v1 priorityclasses
  // Key prefixes of what the follower follows ("" = not followed); set before it subscribes.
  std::string svc_prefix_, ns_prefix_, pc_prefix_;
  uint64_t follow_sub_ = 0;
  WatchCache watch_;

  // The `kubernetes` Service reconciler.
  std::mutex k8s_mu_;
  std::condition_variable k8s_cv_;
  std::thread k8s_thread_;
  bool k8s_stop_ = false;
  std::string k8s_ip_;
  int k8s_port_ = 0;
};

// Response helpers.
Response json_response(int status, const json& body);
Response error_response(const ApiError& e);
ApiResult<WriteOptions> write_options(const Request& req);
void add_warnings(Response& r, const std::vector<std::string>& warnings);
// 415 unless the body is JSON (or has no Content-Type, which means JSON).
std::optional<ApiError> check_json_body(const Request& req);

}  // namespace skiff::apiserver
