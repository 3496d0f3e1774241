// core/v1 ConfigMap: configuration data as string (data) and base64 (binaryData) values.
// Validation (keys, sizes, immutability) and Table in configmap.cc.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "proto/codec.h"
#include "proto/meta.h"

namespace skiff::proto {

struct ResourceType;

struct ConfigMap {
  TypeMeta type_meta;
  ObjectMeta metadata;
  std::optional<bool> immutable;
  std::map<std::string, std::string> data;
  std::map<std::string, std::string> binary_data;  // base64, as on the wire
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("immutable", immutable);
    v("data", data);
    v("binaryData", binary_data);
  }
};

ResourceType configmap_resource();

}  // namespace skiff::proto
