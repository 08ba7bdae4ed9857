#include "lib/archive/entry_path.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/common/testing.h"

namespace pier::archive {
namespace {

using ::pier::testing::StatusIs;
using ::testing::HasSubstr;

TEST(CleanEntryPath, KeepsOrdinaryNames) {
  EXPECT_EQ(*CleanEntryPath("etc/passwd"), "etc/passwd");
  EXPECT_EQ(*CleanEntryPath("usr/bin/"), "usr/bin");
  EXPECT_EQ(*CleanEntryPath("./usr//lib/./x"), "usr/lib/x");
  EXPECT_EQ(*CleanEntryPath("a/b/../c"), "a/c");
  EXPECT_EQ(*CleanEntryPath("..foo/...bar"), "..foo/...bar");
}

TEST(CleanEntryPath, StripsLeadingSlash) {
  EXPECT_EQ(*CleanEntryPath("/etc/evil"), "etc/evil");
  EXPECT_EQ(*CleanEntryPath("//etc/evil"), "etc/evil");
}

TEST(CleanEntryPath, RootIsEmpty) {
  EXPECT_EQ(*CleanEntryPath(""), "");
  EXPECT_EQ(*CleanEntryPath("."), "");
  EXPECT_EQ(*CleanEntryPath("./"), "");
  EXPECT_EQ(*CleanEntryPath("/"), "");
  EXPECT_EQ(*CleanEntryPath("a/.."), "");
}

TEST(CleanEntryPath, RefusesEscapes) {
  for (absl::string_view bad :
       {"..", "../evil", "a/../../evil", "./../x", "/../x", "a/b/../../../x"}) {
    EXPECT_THAT(CleanEntryPath(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("escapes the target")))
        << bad;
  }
  EXPECT_THAT(CleanEntryPath(absl::string_view("a\0b", 3)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(SplitParent, Splits) {
  EXPECT_EQ(SplitParent("a"), std::make_pair(absl::string_view(), absl::string_view("a")));
  EXPECT_EQ(SplitParent("a/b/c"), std::make_pair(absl::string_view("a/b"), absl::string_view("c")));
}

TEST(ClassifyWhiteout, Kinds) {
  EXPECT_EQ(ClassifyWhiteout("file")->kind, WhiteoutKind::kNone);
  EXPECT_EQ(ClassifyWhiteout(".whatever")->kind, WhiteoutKind::kNone);
  EXPECT_EQ(ClassifyWhiteout(".wh..wh..opq")->kind, WhiteoutKind::kOpaque);
  EXPECT_EQ(ClassifyWhiteout(".wh..wh.plnk")->kind, WhiteoutKind::kMeta);
  auto w = ClassifyWhiteout(".wh.passwd");
  ASSERT_OK(w);
  EXPECT_EQ(w->kind, WhiteoutKind::kRemove);
  EXPECT_EQ(w->victim, "passwd");
  EXPECT_EQ(ClassifyWhiteout(".wh..hidden")->victim, ".hidden");
}

TEST(ClassifyWhiteout, RefusesSelfAndParent) {
  for (absl::string_view bad : {".wh.", ".wh..", ".wh..."}) {
    EXPECT_THAT(ClassifyWhiteout(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

}  // namespace
}  // namespace pier::archive
