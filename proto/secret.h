// core/v1 Secret: data as base64 strings (as on the wire), stringData as a write-only
// convenience that defaulting folds into data. Validation and Table in secret.cc.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "proto/codec.h"
#include "proto/meta.h"

namespace skiff::proto {

struct ResourceType;

struct Secret {
  TypeMeta type_meta;
  ObjectMeta metadata;
  std::optional<bool> immutable;
  std::map<std::string, std::string> data;         // values base64-encoded
  std::map<std::string, std::string> string_data;  // plain; merged into data, never stored
  std::string type;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("immutable", immutable);
    v("data", data);
    v("stringData", string_data);
    v("type", type);
  }
};

// Folds stringData into data (base64-encoding it; stringData wins) and sets type Opaque.
void default_secret(Secret& s);
ResourceType secret_resource();

}  // namespace skiff::proto
