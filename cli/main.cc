// skiffctl: the command line for skiff (see cli/README.md).
#include <iostream>

#include "cli/cli.h"

int main(int argc, char** argv) {
  return skiff::cli::run(argc, argv, std::cin, std::cout, std::cerr);
}
