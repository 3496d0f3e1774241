// Helpers for Catch2 unit tests.
//
// skip(): a test case that cannot run here (needs root, a kernel feature) calls it and returns.
// The test binary then still runs everything else, but exits 77 — CTest's "skipped" — instead
// of 0 when nothing failed, after printing each reason; a skipped check never passes silently.
//
// eventually(): polls a condition until it holds or a deadline passes.
#pragma once

#include <chrono>
#include <string>
#include <thread>

namespace skiff::testing {

void skip(const std::string& reason);

// Polls `pred` every 10 ms until it is true or `limit` passed; returns its last value.
template <class P>
bool eventually(P pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

}  // namespace skiff::testing
