// Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`:
// "k8s\0" + runtime.Unknown{typeMeta, raw}) into the JSON the admission pipeline takes.
// client-go typed clients send them: `kubectl create service|deployment|job|cronjob|configmap|
// secret|namespace|serviceaccount` do. Each kind is a table of its messages (field number ->
// JSON name, wire kind, nested message) taken from k8s.io/api's generated.proto; fields not in a
// table are skipped as protobuf does. Kinds without a table keep getting 415. Private to
// apiserver/. Thread-safe (the tables are immutable after first use).
#pragma once

#include <string>

#include "apiserver/errors.h"

namespace skiff::apiserver {

constexpr const char* kProtobufMediaType = "application/vnd.kubernetes.protobuf";

// Whether a protobuf body of this kind ("v1"/"Service", "apps/v1"/"Deployment", ...) can be
// decoded.
bool protobuf_decodable(const std::string& api_version, const std::string& kind);
// Decodes the envelope and the object into JSON (apiVersion and kind from the envelope). 400
// with the field and the problem on malformed input; 415 for a kind without a table.
ApiResult<json> decode_protobuf_object(const std::string& body);
// A DeleteOptions body (`kubectl drain` deletes pods through a typed client), under any
// apiVersion, as the JSON DeleteOptions; 415 for another kind, 400 when malformed.
ApiResult<json> decode_protobuf_delete_options(const std::string& body);
// A pods/eviction body: policy/v1 (or v1beta1, kubectl 1.20) Eviction {metadata,
// deleteOptions}; 415 for another kind, 400 when malformed.
ApiResult<json> decode_protobuf_eviction(const std::string& body);

}  // namespace skiff::apiserver
