#include "services/builder/plan/git_source.h"

#include "lib/common/testing.h"

namespace pier::builder {
namespace {

using ::pier::testing::StatusIs;
using ::testing::HasSubstr;

TEST(IsGitUrl, PrefixesAndDotGitPaths) {
  EXPECT_TRUE(IsGitUrl("git@github.com:org/repo.git"));
  EXPECT_TRUE(IsGitUrl("git://127.0.0.1:9418/repo.git#main"));
  EXPECT_TRUE(IsGitUrl("https://example.com/org/repo.git#v1:sub"));
  EXPECT_TRUE(IsGitUrl("http://example.com/repo.git/"));
  EXPECT_TRUE(IsGitUrl("ssh://git@example.com/repo.git"));
  EXPECT_FALSE(IsGitUrl("https://example.com/file.tar.gz"));
  EXPECT_FALSE(IsGitUrl("https://example.com/download#x.git"));
  EXPECT_FALSE(IsGitUrl("file:///srv/repo.git"));  // never the builder's own files
  EXPECT_FALSE(IsGitUrl("repo.git"));              // a context path
}

TEST(ParseGitUrl, RefAndSubdirectory) {
  ASSERT_OK_AND_ASSIGN(GitSource g, ParseGitUrl("git://h/repo.git"));
  EXPECT_EQ(g.url, "git://h/repo.git");
  EXPECT_EQ(g.ref, "");
  EXPECT_EQ(g.subdir, "");
  ASSERT_OK_AND_ASSIGN(g, ParseGitUrl("https://h/repo.git#v1.2:docs/./api/"));
  EXPECT_EQ(g.url, "https://h/repo.git");
  EXPECT_EQ(g.ref, "v1.2");
  EXPECT_EQ(g.subdir, "docs/api");
  ASSERT_OK_AND_ASSIGN(g, ParseGitUrl("git@h:org/repo.git#:sub"));
  EXPECT_EQ(g.url, "git@h:org/repo.git");
  EXPECT_EQ(g.ref, "");
  EXPECT_EQ(g.subdir, "sub");
  EXPECT_THAT(ParseGitUrl("git://h/repo.git#main:../etc"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("leaves the repository")));
  EXPECT_THAT(ParseGitUrl("git://h/repo.git#--upload-pack=x"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ResolveGitRef, FullCommitIdsNeedNoRemote) {
  GitSource g{"git://127.0.0.1:1/none.git", std::string(40, 'a'), ""};
  ASSERT_OK_AND_ASSIGN(GitCommit c, ResolveGitRef(g));
  EXPECT_EQ(c.id, g.ref);
  EXPECT_EQ(c.refname, g.ref);
}

}  // namespace
}  // namespace pier::builder
