// Runs the BlobDriver conformance suite on both drivers, plus the checks
// that only make sense for one of them and for NewBlobDriver.
#include "lib/content/blob_driver.h"

#include <sys/stat.h>

#include <string>

#include "lib/common/fs.h"
#include "lib/common/testing.h"
#include "lib/content/filesystem_driver.h"
#include "lib/content/testsuite/blob_driver_suite.h"

namespace pier::content {
namespace {

using ::pier::testing::StatusIs;
using ::pier::testing::TempDir;
using ::testing::HasSubstr;

using testing::BlobDriverSuite;

INSTANTIATE_TEST_SUITE_P(Drivers, BlobDriverSuite,
                         ::testing::Values(testing::FilesystemDriverFactory(),
                                           testing::MemoryDriverFactory()),
                         testing::DriverFactoryName);

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

TEST(FilesystemDriverTest, FilesLiveUnderTheRoot) {
  TempDir tmp;
  FilesystemDriver driver(tmp.Sub("root/"));
  EXPECT_EQ(driver.root(), tmp.Sub("root"));
  ASSERT_OK(PutContent(driver, "a/b", "bytes"));
  ASSERT_OK_AND_ASSIGN(std::string on_disk, ReadFile(tmp.Sub("root/a/b")));
  EXPECT_EQ(on_disk, "bytes");
  ASSERT_OK(driver.Move("a/b", "c/d"));
  EXPECT_FALSE(Exists(tmp.Sub("root/a/b")));
  EXPECT_TRUE(Exists(tmp.Sub("root/c/d")));
}

TEST(FilesystemDriverTest, RejectedPathsTouchNothingOutsideTheRoot) {
  TempDir tmp;
  FilesystemDriver driver(tmp.Sub("root"));
  ASSERT_OK(PutContent(driver, "inside", "x"));
  EXPECT_THAT(driver.Writer("../escape", false), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(driver.TryLock("../escape-lock"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(driver.Move("inside", "../escape"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(Exists(tmp.Sub("escape")));
  EXPECT_FALSE(Exists(tmp.Sub("escape-lock")));
  EXPECT_TRUE(Exists(tmp.Sub("root/inside")));
}

TEST(FilesystemDriverTest, TryLockCreatesTheDirectoryItLocks) {
  TempDir tmp;
  FilesystemDriver driver(tmp.Sub("root"));
  ASSERT_OK_AND_ASSIGN(auto lock, driver.TryLock("ingest/abc"));
  ASSERT_OK_AND_ASSIGN(FileInfo info, driver.Stat("ingest/abc"));
  EXPECT_TRUE(info.is_dir);
  // A second driver object on the same root (as another process would have)
  // is excluded by the flock, not by any in-memory state.
  FilesystemDriver other(tmp.Sub("root"));
  EXPECT_THAT(other.TryLock("ingest/abc"), StatusIs(absl::StatusCode::kUnavailable));
  lock.reset();
  EXPECT_OK(other.TryLock("ingest/abc"));
}

TEST(NewBlobDriverTest, BuildsDriversFromSpecs) {
  TempDir tmp;
  ASSERT_OK_AND_ASSIGN(auto fs, NewBlobDriver("filesystem:" + tmp.Sub("made/by/factory")));
  EXPECT_EQ(fs->Name(), "filesystem");
  EXPECT_TRUE(Exists(tmp.Sub("made/by/factory")));
  ASSERT_OK_AND_ASSIGN(auto listed, fs->List(""));
  EXPECT_TRUE(listed.empty());

  ASSERT_OK_AND_ASSIGN(auto mem, NewBlobDriver("memory:"));
  EXPECT_EQ(mem->Name(), "memory");

  EXPECT_THAT(NewBlobDriver("filesystem:"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("root")));
  EXPECT_THAT(NewBlobDriver("s3:bucket"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("s3:bucket")));
  EXPECT_THAT(NewBlobDriver(""), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ValidatePathTest, AcceptsCanonicalRelativePaths) {
  EXPECT_OK(ValidatePath("a"));
  EXPECT_OK(ValidatePath("blobs/sha256/abc"));
  EXPECT_OK(ValidatePath("..hidden/x.."));
  EXPECT_OK(ValidatePath("", /*allow_root=*/true));
  EXPECT_THAT(ValidatePath(""), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace pier::content
