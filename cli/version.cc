// `pier version`: prints the client version.
#include <iostream>

#include "cli/cli.h"

namespace pier::cli {

int Version(const Globals&, const std::vector<std::string>&) {
  std::cout << "pier " << PIER_VERSION << "\n";
  return 0;
}

}  // namespace pier::cli
