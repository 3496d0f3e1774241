// Base64 (RFC 4648, standard alphabet, padded), shared by every component that needs it:
// Secret/ConfigMap data, kubeconfig certificate data, list continue tokens. Pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace skiff {

std::string base64_encode(std::string_view raw);

// Lenient decoding for data people paste (kubeconfig fields, tokens): whitespace and padding are
// skipped and the URL-safe alphabet is accepted. Invalid on any other character.
Result<std::string> base64_decode(std::string_view in);

// Strict check as Go's encoding/base64 StdEncoding does it (groups of 4, '=' only as final
// padding): "" when valid, else Go's problem text ("illegal base64 data at input byte 3").
std::string base64_problem(std::string_view s);

}  // namespace skiff
