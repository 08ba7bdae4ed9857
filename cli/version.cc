// `pier version`: prints the client version.
#include <iostream>

#include "cli/cli.h"
#include "lib/common/flags.h"

namespace pier::cli {

int Version(const Globals&, const std::vector<std::string>& args) {
  FlagSet flags("pier version", "");
  absl::StatusOr<std::vector<std::string>> rest = flags.Parse(args);
  if (!rest.ok()) {
    if (absl::IsCancelled(rest.status())) {
      std::cout << flags.Usage();
      return 0;
    }
    return Fail(rest.status(), 2);
  }
  if (!rest->empty()) {
    std::cerr << "pier version: takes no arguments\n";
    return 2;
  }
  std::cout << "pier " << PIER_VERSION << "\n";
  return 0;
}

}  // namespace pier::cli
