// The API logic sits behind the shared HTTP transport's seam (common/http/http.h); these names
// are used throughout the API server.
#pragma once

#include "common/http/http.h"

namespace skiff::apiserver {

using web::Handler;
using web::Request;
using web::Response;
using web::Stream;

}  // namespace skiff::apiserver
