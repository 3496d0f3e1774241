// Helpers for Catch2 unit tests.
//
// skip(): a test case that cannot run here (needs root, a kernel feature) calls it and returns.
// The test binary then still runs everything else, but exits 77 — CTest's "skipped" — instead
// of 0 when nothing failed, after printing each reason; a skipped check never passes silently.
#pragma once

#include <string>

namespace skiff::testing {

void skip(const std::string& reason);

}  // namespace skiff::testing
