// Small validation and printing helpers shared by the kind files (*.cc in proto/). Private to
// proto/: not part of any contract.
#pragma once

#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "common/base64.h"  // Secret and ConfigMap data
#include "proto/codec.h"
#include "proto/meta.h"

namespace skiff::proto {

// NotSupported unless `v` is one of `allowed`, with Kubernetes' "supported values: ..." detail.
void not_supported(FieldErrors& errs, const Path& p, const std::string& v,
                   std::initializer_list<const char*> allowed);
// Required when empty, else as not_supported.
void required_one_of(FieldErrors& errs, const Path& p, const std::string& v,
                     std::initializer_list<const char*> allowed);
void non_negative(FieldErrors& errs, const Path& p, int64_t v);
// Invalid "field is immutable" when `now` differs from `before`.
void immutable(FieldErrors& errs, const Path& p, const std::string& now, const std::string& before);
// "k1=v1,k2=v2" or "<none>" (labels.FormatLabels).
std::string format_labels(const std::map<std::string, std::string>& m);
// Go's %q of a plain string (quotes and backslashes escaped), as field errors render values.
std::string go_quote(const std::string& s);
// Go's %#v of a []string: `[]string{"a", "b"}`, or `[]string(nil)` when empty.
std::string go_string_slice(const std::vector<std::string>& v);

}  // namespace skiff::proto
