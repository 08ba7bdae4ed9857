// Conformance suites for Pier's content layer, in the style of
// distribution's storage driver testsuites and containerd's content
// testsuite: every BlobDriver must pass BlobDriverSuite, and ContentStore
// must pass ContentStoreSuite (content_store_suite.h) on every driver.
//
// A backend joins by instantiating the suites with a factory:
//
//   INSTANTIATE_TEST_SUITE_P(Drivers, BlobDriverSuite,
//                            ::testing::Values(FilesystemDriverFactory(),
//                                              MemoryDriverFactory()),
//                            DriverFactoryName);
//
// and linking the `pier_content_testsuite` object library.
// Thread safety: test fixtures; one test at a time.
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "gtest/gtest.h"
#include "lib/common/testing.h"
#include "lib/content/blob_driver.h"

namespace pier::content::testing {

struct DriverFactory {
  std::string name;  // a valid test name part: letters, digits, '_'
  // Returns a fresh, empty driver. `scratch` is an existing empty directory,
  // removed after the test, that the driver may keep its files in.
  std::function<std::unique_ptr<BlobDriver>(const std::string& scratch)> make;
};

inline std::ostream& operator<<(std::ostream& os, const DriverFactory& f) { return os << f.name; }

// For INSTANTIATE_TEST_SUITE_P's name generator.
std::string DriverFactoryName(const ::testing::TestParamInfo<DriverFactory>& info);

// FilesystemDriver rooted at <scratch>/root; MemoryDriver.
DriverFactory FilesystemDriverFactory();
DriverFactory MemoryDriverFactory();

class BlobDriverSuite : public ::testing::TestWithParam<DriverFactory> {
 protected:
  void SetUp() override;

  pier::testing::TempDir scratch_;
  std::unique_ptr<BlobDriver> driver_;
};

}  // namespace pier::content::testing
