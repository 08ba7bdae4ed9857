// ContentStoreSuite: ContentStore's behaviour on any BlobDriver (write,
// commit, verify, resume, abort, mismatch handling, locking, GC of
// ingests, concurrency). Instantiate it with the driver factories of
// blob_driver_suite.h:
//
//   INSTANTIATE_TEST_SUITE_P(Drivers, ContentStoreSuite,
//                            ::testing::Values(FilesystemDriverFactory(),
//                                              MemoryDriverFactory()),
//                            DriverFactoryName);
//
// Thread safety: test fixtures; one test at a time.
#pragma once

#include <memory>

#include "gtest/gtest.h"
#include "lib/common/testing.h"
#include "lib/content/content_store.h"
#include "lib/content/testsuite/blob_driver_suite.h"

namespace pier::content::testing {

class ContentStoreSuite : public ::testing::TestWithParam<DriverFactory> {
 protected:
  void SetUp() override;

  pier::testing::TempDir scratch_;
  std::unique_ptr<ContentStore> store_;
};

}  // namespace pier::content::testing
