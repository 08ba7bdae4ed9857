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

TEST(FsTest, JoinAndDirname) {
  EXPECT_EQ(JoinPath("a/", "/b"), "a/b");
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  EXPECT_EQ(Dirname("/x/y"), "/x");
  EXPECT_EQ(Dirname("y"), ".");
  EXPECT_EQ(Dirname("/y"), "/");
}

}  // namespace
}  // namespace pier
