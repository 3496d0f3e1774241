// coordination.k8s.io/v1 Lease: leader election and node heartbeats. Validation and Table in
// lease.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "proto/codec.h"
#include "proto/meta.h"
#include "proto/time.h"

namespace skiff::proto {

struct ResourceType;

struct LeaseSpec {
  std::optional<std::string> holder_identity;
  std::optional<int32_t> lease_duration_seconds;
  std::optional<MicroTime> acquire_time;
  std::optional<MicroTime> renew_time;
  std::optional<int32_t> lease_transitions;
  template <class V>
  void visit(V& v) {
    v("holderIdentity", holder_identity);
    v("leaseDurationSeconds", lease_duration_seconds);
    v("acquireTime", acquire_time);
    v("renewTime", renew_time);
    v("leaseTransitions", lease_transitions);
  }
};

struct Lease {
  TypeMeta type_meta;
  ObjectMeta metadata;
  LeaseSpec spec;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("spec", spec);
  }
};

ResourceType lease_resource();

}  // namespace skiff::proto
