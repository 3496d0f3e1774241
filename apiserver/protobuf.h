// Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`:
// "k8s\0" + runtime.Unknown{typeMeta, raw}) into the JSON the admission pipeline takes.
// client-go typed clients send them: `kubectl create service ...` does. Only the kinds listed
// in protobuf_decodable() are understood; the others keep getting 415. Private to apiserver/.
#pragma once

#include <string>

#include "apiserver/errors.h"

namespace skiff::apiserver {

constexpr const char* kProtobufMediaType = "application/vnd.kubernetes.protobuf";

// Whether a protobuf body of this kind (core/v1) can be decoded.
bool protobuf_decodable(const std::string& kind);
// Decodes the envelope and the object into JSON (apiVersion and kind from the envelope).
// 400 on malformed input.
ApiResult<json> decode_protobuf_object(const std::string& body);

}  // namespace skiff::apiserver
