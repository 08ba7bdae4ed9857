#include <iostream>

#include "cli/cli.h"

namespace pier::cli {

int Fail(const absl::Status& status, int code) {
  std::cerr << "pier: " << status.message() << "\n";
  return code;
}

}  // namespace pier::cli
