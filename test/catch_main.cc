// The main of every unit-test binary: Catch2's session, plus the skip() convention of
// test/testing.h (exit 77 when a test could not run and nothing failed).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "test/testing.h"

namespace {
std::mutex mu;
std::vector<std::string> skipped;
}  // namespace

namespace skiff::testing {
void skip(const std::string& reason) {
  std::lock_guard lock(mu);
  skipped.push_back(Catch::getResultCapture().getCurrentTestName() + ": " + reason);
}
}  // namespace skiff::testing

int main(int argc, char* argv[]) {
  int rc = Catch::Session().run(argc, argv);
  if (rc != 0 || skipped.empty()) return rc;
  for (const auto& s : skipped) std::printf("SKIPPED: %s\n", s.c_str());
  std::printf("%zu test case(s) could not run here; every other one passed\n", skipped.size());
  return 77;
}
