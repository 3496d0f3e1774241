// The reflection-based JSON codec for API types.
//
// Every API type is a plain struct with a `visit` member template that names its fields in
// Kubernetes JSON spelling:
//
//   struct ContainerPort {
//     std::string name;
//     int32_t container_port = 0;
//     template <class V> void visit(V& v) {
//       v("name", name);
//       v("containerPort", container_port, kAlways);
//     }
//   };
//
// From that one list the codec derives: decoding with per-field errors and unknown-field
// detection (fieldValidation=Strict), encoding with Go's omission rules, and the schema the
// strategic merge patch uses (merge keys, patch strategies).
//
// Go's rules, which we mirror so output matches Kubernetes byte for byte where it matters:
// - omitempty (our default): "", 0, false, empty vector or map, and an unset std::optional are
//   left out. Nested structs are never left out (Go does not omit structs), unless wrapped in
//   std::optional (a Go pointer).
// - kAlways (no omitempty in Go): the field is always written.
// - std::optional<T> is a pointer: written whenever set, even when it holds 0 or "".
//
// Decoding is lenient about JSON null (treated as absent, as Go does) and strict about types
// (a string where a number belongs is an error with the field's path).
//
// Thread-safety: all functions are pure; schema_of<T>() builds its schema once, thread-safely.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/status.h"

namespace skiff::proto {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Field options.

// How a strategic merge patch treats a list or map field (Kubernetes patchStrategy tags).
enum class PatchStrategy { kReplace, kMerge, kRetainKeys, kMergeRetainKeys };

struct FieldOpts {
  bool always = false;             // no omitempty: always encoded
  std::string_view merge_key;      // patchMergeKey for lists of objects (e.g. "name")
  PatchStrategy strategy = PatchStrategy::kReplace;  // for lists; objects always merge
};

inline constexpr FieldOpts kAlways{.always = true};
// A list of objects merged by `key` (patchStrategy:"merge" patchMergeKey:key).
constexpr FieldOpts merge_by(std::string_view key, bool always = false) {
  return FieldOpts{.always = always, .merge_key = key, .strategy = PatchStrategy::kMerge};
}
// A list of scalars merged as a set (patchStrategy:"merge" on []string, e.g. finalizers).
inline constexpr FieldOpts kMergeSet{.strategy = PatchStrategy::kMerge};
// A struct with patchStrategy:"retainKeys" (e.g. deployment strategy, volumes' sources).
inline constexpr FieldOpts kRetainKeys{.strategy = PatchStrategy::kRetainKeys};

// ---------------------------------------------------------------------------------------------
// Errors found while decoding or validating, each with the path of the field
// ("spec.containers[0].image") in Kubernetes' field.Error style.

enum class ErrorType {
  kRequired,      // "Required value"
  kInvalid,       // "Invalid value"
  kNotSupported,  // "Unsupported value"
  kDuplicate,     // "Duplicate value"
  kTooLong,       // "Too long"
  kTooMany,       // "Too many"
  kForbidden,     // "Forbidden"
  kTypeInvalid,   // wrong JSON type
  kUnknownField,  // a field the type does not have
};

struct FieldError {
  ErrorType type = ErrorType::kInvalid;
  std::string field;   // "metadata.name"
  std::string detail;  // human explanation
  std::string value;   // the bad value, rendered, or empty

  // Kubernetes' cause reason: "FieldValueRequired", "FieldValueInvalid", ...
  std::string reason() const;
  // Kubernetes' message: `Invalid value: "Foo": a lowercase RFC 1123 ...`
  std::string message() const;
};
using FieldErrors = std::vector<FieldError>;

// Builds child paths: Path("spec").field("containers").index(0).field("image").
class Path {
 public:
  Path() = default;
  explicit Path(std::string p) : p_(std::move(p)) {}
  Path field(std::string_view name) const {
    return Path(p_.empty() ? std::string(name) : p_ + "." + std::string(name));
  }
  Path index(size_t i) const { return Path(p_ + "[" + std::to_string(i) + "]"); }
  Path key(std::string_view k) const { return Path(p_ + "[" + std::string(k) + "]"); }
  const std::string& str() const { return p_; }

 private:
  std::string p_;
};

// ---------------------------------------------------------------------------------------------
// Custom scalar types (Quantity, IntOrString, Time, ...) specialise Scalar<T>:
//   static bool decode(const json& j, T& out, std::string& err);  // false + err on bad input
//   static json encode(const T& v);
//   static bool empty(const T& v);                                // for omitempty
template <class T>
struct Scalar;  // primary template left undefined on purpose

template <class T, class = void>
struct is_custom_scalar : std::false_type {};
template <class T>
struct is_custom_scalar<T, std::void_t<decltype(sizeof(Scalar<T>))>> : std::true_type {};

struct SchemaProbe;  // forward
template <class T, class = void>
struct is_codable : std::false_type {};
template <class T>
struct is_codable<T, std::void_t<decltype(std::declval<T&>().visit(std::declval<SchemaProbe&>()))>>
    : std::true_type {};

template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_string_map : std::false_type {};
template <class T>
struct is_string_map<std::map<std::string, T>> : std::true_type {};

// ---------------------------------------------------------------------------------------------
// Schema: what the strategic merge patch needs to know about a type, built from `visit`.

struct Schema;
struct FieldSchema {
  enum class Kind { kScalar, kObject, kList, kMap };
  Kind kind = Kind::kScalar;
  FieldOpts opts;
  // For kObject: the struct's schema; for kList/kMap: the element's schema when the element is
  // a struct (nullptr for scalar elements).
  const Schema* elem = nullptr;
};
struct Schema {
  std::map<std::string, FieldSchema, std::less<>> fields;
  const FieldSchema* find(std::string_view name) const {
    auto it = fields.find(name);
    return it == fields.end() ? nullptr : &it->second;
  }
};

template <class T>
const Schema& schema_of();

namespace detail {
template <class T>
constexpr FieldSchema::Kind kind_of() {
  if constexpr (is_optional<T>::value) return kind_of<typename T::value_type>();
  else if constexpr (is_custom_scalar<T>::value) return FieldSchema::Kind::kScalar;
  else if constexpr (is_vector<T>::value) return FieldSchema::Kind::kList;
  else if constexpr (is_string_map<T>::value) return FieldSchema::Kind::kMap;
  else if constexpr (is_codable<T>::value) return FieldSchema::Kind::kObject;
  else return FieldSchema::Kind::kScalar;
}
}  // namespace detail

struct SchemaProbe {
  Schema* schema;
  template <class T>
  void operator()(std::string_view name, T&, FieldOpts opts = {}) {
    FieldSchema fs;
    fs.kind = detail::kind_of<T>();
    fs.opts = opts;
    fs.elem = elem<T>();
    schema->fields.emplace(std::string(name), fs);
  }

 private:
  template <class T>
  static const Schema* elem() {
    if constexpr (is_optional<T>::value) return elem<typename T::value_type>();
    else if constexpr (is_custom_scalar<T>::value) return nullptr;
    else if constexpr (is_vector<T>::value) return elem<typename T::value_type>();
    else if constexpr (is_string_map<T>::value) return elem<typename T::mapped_type>();
    else if constexpr (is_codable<T>::value) return &schema_of<T>();
    else return nullptr;
  }
};

template <class T>
const Schema& schema_of() {
  static const Schema* s = [] {
    auto* sc = new Schema();
    SchemaProbe probe{sc};
    T tmp{};
    tmp.visit(probe);
    return sc;
  }();
  return *s;
}

// ---------------------------------------------------------------------------------------------
// Encoding.

template <class T>
json encode(const T& v);

namespace detail {

template <class T>
bool is_empty(const T& v) {
  if constexpr (is_optional<T>::value) return !v.has_value();
  else if constexpr (is_custom_scalar<T>::value) return Scalar<T>::empty(v);
  else if constexpr (std::is_same_v<T, std::string>) return v.empty();
  else if constexpr (std::is_same_v<T, bool>) return !v;
  else if constexpr (std::is_arithmetic_v<T>) return v == 0;
  else if constexpr (is_vector<T>::value || is_string_map<T>::value) return v.empty();
  else if constexpr (std::is_same_v<T, json>) return v.is_null();
  else return false;  // structs are never empty (Go semantics)
}

template <class T>
json encode_value(const T& v) {
  if constexpr (is_optional<T>::value) return v ? encode_value(*v) : json(nullptr);
  else if constexpr (is_custom_scalar<T>::value) return Scalar<T>::encode(v);
  else if constexpr (std::is_same_v<T, std::string> || std::is_arithmetic_v<T>) return json(v);
  else if constexpr (std::is_same_v<T, json>) return v;
  else if constexpr (is_vector<T>::value) {
    json a = json::array();
    for (const auto& e : v) a.push_back(encode_value(e));
    return a;
  } else if constexpr (is_string_map<T>::value) {
    json o = json::object();
    for (const auto& [k, e] : v) o[k] = encode_value(e);
    return o;
  } else {
    static_assert(is_codable<T>::value, "type has no visit() and no Scalar<> specialisation");
    return encode(v);
  }
}

struct Encoder {
  json* out;
  template <class T>
  void operator()(std::string_view name, const T& v, FieldOpts opts = {}) {
    if (!opts.always && is_empty(v)) return;
    (*out)[std::string(name)] = encode_value(v);
  }
};

}  // namespace detail

// Encodes a codable struct as a JSON object.
template <class T>
json encode(const T& v) {
  json o = json::object();
  detail::Encoder enc{&o};
  const_cast<T&>(v).visit(enc);  // visit only reads through the Encoder
  return o;
}

// ---------------------------------------------------------------------------------------------
// Decoding.

struct DecodeOptions {
  bool report_unknown = true;  // add kUnknownField errors for fields the type lacks
};

template <class T>
void decode_into(const json& j, T& out, const Path& path, FieldErrors& errs,
                 const DecodeOptions& opts);

namespace detail {

std::string json_type_name(const json& j);
void type_error(FieldErrors& errs, const Path& path, const char* want, const json& got);

template <class T>
void decode_value(const json& j, T& out, const Path& path, FieldErrors& errs,
                  const DecodeOptions& opts) {
  if constexpr (is_optional<T>::value) {
    if (j.is_null()) {
      out.reset();
      return;
    }
    typename T::value_type inner{};
    decode_value(j, inner, path, errs, opts);
    out = std::move(inner);
  } else if constexpr (is_custom_scalar<T>::value) {
    if (j.is_null()) return;
    std::string err;
    if (!Scalar<T>::decode(j, out, err))
      errs.push_back({ErrorType::kTypeInvalid, path.str(), err, j.dump()});
  } else if constexpr (std::is_same_v<T, json>) {
    out = j;
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (j.is_null()) return;
    if (!j.is_string()) return type_error(errs, path, "string", j);
    out = j.get<std::string>();
  } else if constexpr (std::is_same_v<T, bool>) {
    if (j.is_null()) return;
    if (!j.is_boolean()) return type_error(errs, path, "boolean", j);
    out = j.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (j.is_null()) return;
    if (j.is_number_integer()) {
      if (j.is_number_unsigned()) {
        auto u = j.get<uint64_t>();
        if (u > static_cast<uint64_t>(std::numeric_limits<T>::max()))
          return type_error(errs, path, sizeof(T) == 4 ? "int32" : "int64", j);
        out = static_cast<T>(u);
        return;
      }
      auto x = j.get<int64_t>();
      if (x < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          x > static_cast<int64_t>(std::numeric_limits<T>::max()))
        return type_error(errs, path, sizeof(T) == 4 ? "int32" : "int64", j);
      out = static_cast<T>(x);
    } else if (j.is_number_float()) {
      double d = j.get<double>();
      if (d != static_cast<double>(static_cast<int64_t>(d)) ||
          d < static_cast<double>(std::numeric_limits<T>::min()) ||
          d > static_cast<double>(std::numeric_limits<T>::max()))
        return type_error(errs, path, "integer", j);
      out = static_cast<T>(d);
    } else {
      return type_error(errs, path, "integer", j);
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    if (j.is_null()) return;
    if (!j.is_number()) return type_error(errs, path, "number", j);
    out = j.get<T>();
  } else if constexpr (is_vector<T>::value) {
    if (j.is_null()) return;
    if (!j.is_array()) return type_error(errs, path, "array", j);
    out.clear();
    out.reserve(j.size());
    for (size_t i = 0; i < j.size(); ++i) {
      typename T::value_type e{};
      decode_value(j[i], e, path.index(i), errs, opts);
      out.push_back(std::move(e));
    }
  } else if constexpr (is_string_map<T>::value) {
    if (j.is_null()) return;
    if (!j.is_object()) return type_error(errs, path, "object", j);
    out.clear();
    for (auto it = j.begin(); it != j.end(); ++it) {
      typename T::mapped_type e{};
      decode_value(it.value(), e, path.key(it.key()), errs, opts);
      out.emplace(it.key(), std::move(e));
    }
  } else {
    static_assert(is_codable<T>::value, "type has no visit() and no Scalar<> specialisation");
    if (j.is_null()) return;
    decode_into(j, out, path, errs, opts);
  }
}

struct Decoder {
  const json* in;
  Path path;
  FieldErrors* errs;
  const DecodeOptions* opts;
  size_t seen = 0;  // how many of the object's keys matched a field
  template <class T>
  void operator()(std::string_view name, T& v, FieldOpts = {}) {
    auto it = in->find(name);
    if (it == in->end()) return;
    ++seen;
    decode_value(*it, v, path.field(name), *errs, *opts);
  }
};

void report_unknown_fields(const json& j, const Schema& schema, const Path& path,
                           FieldErrors& errs);

}  // namespace detail

// Decodes a JSON object into `out` (fields absent from the JSON keep their current value).
template <class T>
void decode_into(const json& j, T& out, const Path& path, FieldErrors& errs,
                 const DecodeOptions& opts) {
  if (!j.is_object()) return detail::type_error(errs, path, "object", j);
  detail::Decoder dec{&j, path, &errs, &opts};
  out.visit(dec);
  if (opts.report_unknown && dec.seen != j.size())
    detail::report_unknown_fields(j, schema_of<T>(), path, errs);
}

// Decodes a whole object. Type errors and (with report_unknown) unknown fields go to `errs`;
// the returned value holds everything that did decode.
template <class T>
T decode(const json& j, FieldErrors& errs, const DecodeOptions& opts = {}) {
  T out{};
  decode_into(j, out, Path(), errs, opts);
  return out;
}

}  // namespace skiff::proto
