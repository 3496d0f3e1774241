// skiffctl's entry point: parses the command line (CLI11) and runs a command.
#pragma once

#include <iosfwd>

namespace skiff::cli {

// Returns the process exit code: 0 on success, 1 when any part of the command failed.
int run(int argc, char** argv, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace skiff::cli
