#include "lib/common/testing.h"

#include <cstdlib>
#include <stdexcept>

#include "lib/common/fs.h"

namespace pier::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/pier-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() { (void)RemoveAll(path_); }

}  // namespace pier::testing
