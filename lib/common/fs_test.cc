#include "lib/common/fs.h"

#include <sys/stat.h>

#include "lib/common/testing.h"

namespace pier {
namespace {

using ::pier::testing::StatusIs;

TEST(FsTest, AtomicWriteReadAndRemove) {
  pier::testing::TempDir dir;
  ASSERT_OK(MakeDirs(dir.Sub("a/b/c")));
  std::string file = dir.Sub("a/b/c/f");
  ASSERT_OK(WriteFileAtomic(file, "one"));
  ASSERT_OK(WriteFileAtomic(file, "two"));
  ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(file));
  EXPECT_EQ(got, "two");
  ASSERT_OK(RemoveAll(dir.Sub("a")));
  struct stat st {};
  EXPECT_NE(::stat(dir.Sub("a").c_str(), &st), 0);
  EXPECT_THAT(ReadFile(file), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_OK(RemoveAll(dir.Sub("a")));
}

TEST(FsTest, MakeDirsCreatesMissingParentsOnce) {
  pier::testing::TempDir dir;
  ASSERT_OK(MakeDirs(dir.Sub("x/y/z/"), 0750));
  struct stat st {};
  ASSERT_EQ(::stat(dir.Sub("x/y/z").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0750u);
  ASSERT_OK(MakeDirs(dir.Sub("x/y/z")));  // exists: fine
  ASSERT_OK(WriteFileAtomic(dir.Sub("x/file"), "f"));
  EXPECT_THAT(MakeDirs(dir.Sub("x/file")), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_FALSE(MakeDirs(dir.Sub("x/file/sub")).ok());  // a parent is a file
}

TEST(FsTest, JoinAndDirname) {
  EXPECT_EQ(JoinPath("a/", "/b"), "a/b");
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  EXPECT_EQ(Dirname("/x/y"), "/x");
  EXPECT_EQ(Dirname("y"), ".");
  EXPECT_EQ(Dirname("/y"), "/");
}

}  // namespace
}  // namespace pier
