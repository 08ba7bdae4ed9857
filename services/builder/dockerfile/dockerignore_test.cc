#include "services/builder/dockerfile/dockerignore.h"

#include <sys/stat.h>
#include <unistd.h>

#include "lib/common/fs.h"
#include "lib/common/testing.h"

namespace pier::builder::dockerfile {
namespace {

using ::pier::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

Matcher M(absl::string_view text) {
  absl::StatusOr<Matcher> m = Matcher::Parse(text);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *std::move(m) : Matcher();
}

TEST(MatcherTest, ReferenceExample) {
  Matcher m = M("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
  EXPECT_TRUE(m.Matches("somedir/temporary.txt"));
  EXPECT_TRUE(m.Matches("somedir/temp"));
  EXPECT_TRUE(m.Matches("somedir/subdir/temporary.txt"));
  EXPECT_TRUE(m.Matches("tempa"));
  EXPECT_FALSE(m.Matches("temp"));
  EXPECT_FALSE(m.Matches("tempab"));
  EXPECT_FALSE(m.Matches("temporary.txt"));
  EXPECT_FALSE(m.Matches("a/b/c/temp.txt"));
  EXPECT_FALSE(m.Matches("# comment"));
}

TEST(MatcherTest, CommentsOnlyInColumnOneAndBlankLines) {
  Matcher m = M("\n   \n #notcomment\n#comment\n");
  EXPECT_TRUE(m.Matches("#notcomment"));
  EXPECT_FALSE(m.Matches("#comment"));
  EXPECT_EQ(m.Patterns().size(), 1u);
}

TEST(MatcherTest, CleaningAndSlashes) {
  Matcher m = M("/foo/bar\n./baz/\nqux//x/../y\n");
  EXPECT_THAT(m.Patterns(), ElementsAre("foo/bar", "baz", "qux/y"));
  EXPECT_TRUE(m.Matches("foo/bar"));
  EXPECT_TRUE(m.Matches("/foo/bar"));
  EXPECT_TRUE(m.Matches("./foo/bar/inner.txt"));
  EXPECT_FALSE(m.Matches("x/foo/bar"));
  EXPECT_TRUE(m.Matches("baz/a"));
  EXPECT_TRUE(m.Matches("qux/y"));
}

TEST(MatcherTest, DirectoryExcludesEverythingBelow) {
  Matcher m = M("node_modules\nbuild/out\n");
  EXPECT_TRUE(m.Matches("node_modules"));
  EXPECT_TRUE(m.Matches("node_modules/a/b/c.js"));
  EXPECT_FALSE(m.Matches("src/node_modules/x"));  // patterns are anchored at the root
  EXPECT_TRUE(m.Matches("build/out/x.o"));
  EXPECT_FALSE(m.Matches("build/output"));
}

TEST(MatcherTest, DoubleStar) {
  Matcher m = M("**/*.go\nlogs/**\na/**/z\n**/cache\n");
  EXPECT_TRUE(m.Matches("main.go"));
  EXPECT_TRUE(m.Matches("cmd/x/main.go"));
  EXPECT_FALSE(m.Matches("main.gox"));
  EXPECT_TRUE(m.Matches("logs/a/b.log"));
  EXPECT_FALSE(m.Matches("logs"));  // "logs/**" needs something below logs
  EXPECT_TRUE(m.Matches("a/z"));
  EXPECT_TRUE(m.Matches("a/b/c/z"));
  EXPECT_FALSE(m.Matches("a/bz"));
  EXPECT_TRUE(m.Matches("cache"));
  EXPECT_TRUE(m.Matches("x/y/cache/file"));
  EXPECT_FALSE(m.Matches("x/mycache"));
}

TEST(MatcherTest, StarAndQuestionStopAtSlash) {
  Matcher m = M("*.md\ndocs/?.txt\n");
  EXPECT_TRUE(m.Matches("README.md"));
  EXPECT_FALSE(m.Matches("docs/README.md"));
  EXPECT_TRUE(m.Matches("docs/a.txt"));
  EXPECT_FALSE(m.Matches("docs/ab.txt"));
}

TEST(MatcherTest, ClassesAndEscapes) {
  Matcher m = M("file[0-9].txt\nx[^a-c]\narr[[]0]\nlit\\*\n");
  EXPECT_TRUE(m.Matches("file3.txt"));
  EXPECT_FALSE(m.Matches("filex.txt"));
  EXPECT_TRUE(m.Matches("xd"));
  EXPECT_FALSE(m.Matches("xb"));
  EXPECT_TRUE(m.Matches("arr[0]"));
  EXPECT_TRUE(m.Matches("lit*"));
  EXPECT_FALSE(m.Matches("litx"));
}

TEST(MatcherTest, ExceptionsAndOrdering) {
  Matcher a = M("*.md\n!README*.md\nREADME-secret.md\n");
  EXPECT_TRUE(a.Matches("CHANGES.md"));
  EXPECT_FALSE(a.Matches("README.md"));
  EXPECT_TRUE(a.Matches("README-secret.md"));
  Matcher b = M("*.md\nREADME-secret.md\n!README*.md\n");
  EXPECT_FALSE(b.Matches("README-secret.md"));  // the last matching line wins
  EXPECT_TRUE(b.HasExceptions());
  EXPECT_FALSE(M("*.md\n").HasExceptions());
}

TEST(MatcherTest, ExceptionsReincludeUnderExcludedDirectories) {
  Matcher m = M("vendor\n!vendor/keep\n!vendor/**/*.h\n");
  EXPECT_TRUE(m.Matches("vendor"));
  EXPECT_TRUE(m.Matches("vendor/lib/a.c"));
  EXPECT_FALSE(m.Matches("vendor/keep"));
  EXPECT_FALSE(m.Matches("vendor/keep/deep/file"));
  EXPECT_FALSE(m.Matches("vendor/lib/a.h"));
}

TEST(MatcherTest, IncludeOnlyWhatIsListed) {
  Matcher m = M("*\n!src\n!go.mod\n");
  EXPECT_TRUE(m.Matches("README"));
  EXPECT_TRUE(m.Matches("docs/x"));
  EXPECT_FALSE(m.Matches("src/main.go"));
  EXPECT_FALSE(m.Matches("go.mod"));
}

TEST(MatcherTest, BadPatterns) {
  EXPECT_THAT(Matcher::Parse("ok\n!\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dockerignore:2: illegal")));
  EXPECT_THAT(Matcher::Parse("a[b\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dockerignore:1:")));
  EXPECT_THAT(Matcher::Parse("a[]\n"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Matcher::Parse("a[z-a]\n"), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(Matcher m, Matcher::FromPatterns({"a", "!a/b"}));
  EXPECT_FALSE(m.Matches("a/b"));
}

// ---- Context walk ------------------------------------------------------------------

class WalkTest : public ::testing::Test {
 protected:
  void File(const std::string& rel, absl::string_view data = "x") {
    ASSERT_OK(MakeDirs(Dirname(dir_.Sub(rel))));
    ASSERT_OK(WriteFileAtomic(dir_.Sub(rel), data));
  }
  void Link(const std::string& target, const std::string& rel) {
    ASSERT_OK(MakeDirs(Dirname(dir_.Sub(rel))));
    ASSERT_EQ(::symlink(target.c_str(), dir_.Sub(rel).c_str()), 0);
  }
  std::vector<std::string> Paths(const std::vector<ContextEntry>& entries) {
    std::vector<std::string> out;
    for (const ContextEntry& e : entries) {
      std::string suffix;
      if (e.type == ContextEntry::Type::kDirectory) suffix = "/";
      if (e.type == ContextEntry::Type::kSymlink) suffix = " -> " + e.target;
      out.push_back(e.path + suffix);
    }
    return out;
  }
  pier::testing::TempDir dir_;
  pier::testing::TempDir outside_;
};

TEST_F(WalkTest, ListsIncludedEntriesSortedWithoutFollowingSymlinks) {
  File("Dockerfile", "FROM scratch\n");
  File(".dockerignore", "Dockerfile\n.dockerignore\n*.log\nbuild\nsecret/\n!secret/public.pem\n");
  File("a.log");
  File("src/main.c");
  File("src/z/deep.c");
  File("build/out.o");
  File("secret/key.pem");
  File("secret/public.pem");
  ASSERT_OK(MakeDirs(dir_.Sub("empty")));
  ASSERT_OK(MakeDirs(outside_.Sub("etc")));
  ASSERT_OK(WriteFileAtomic(outside_.Sub("etc/passwd"), "root"));
  Link(outside_.path(), "escape");          // a symlink out of the context: listed, not followed
  Link("../src/main.c", "src/z/rel-link");  // relative link inside
  ASSERT_OK_AND_ASSIGN(std::vector<ContextEntry> entries, ListContext(dir_.path()));
  EXPECT_THAT(Paths(entries),
              ElementsAre(".dockerignore", "Dockerfile", "empty/", "escape -> " + outside_.path(),
                          "secret/", "secret/public.pem", "src/", "src/main.c", "src/z/",
                          "src/z/deep.c", "src/z/rel-link -> ../src/main.c"));
}

TEST_F(WalkTest, SymlinkedDirectoryIsNotDescended) {
  File("Dockerfile");
  File("real/f");
  Link("real", "alias");
  ASSERT_OK_AND_ASSIGN(std::vector<ContextEntry> entries, WalkContext(dir_.path(), Matcher()));
  EXPECT_THAT(Paths(entries), ElementsAre("Dockerfile", "alias -> real", "real/", "real/f"));
}

TEST_F(WalkTest, DockerfileInAnExcludedDirectoryIsStillSent) {
  File("docker/build.Dockerfile");
  File("docker/other");
  File("app.c");
  ASSERT_OK_AND_ASSIGN(Matcher m, Matcher::Parse("docker\n"));
  ASSERT_OK_AND_ASSIGN(std::vector<ContextEntry> entries,
                       WalkContext(dir_.path(), m, "./docker/build.Dockerfile"));
  EXPECT_THAT(Paths(entries), ElementsAre("app.c", "docker/", "docker/build.Dockerfile"));
}

TEST_F(WalkTest, MissingContext) {
  EXPECT_THAT(WalkContext(dir_.Sub("nope"), Matcher()), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(WalkTest, BadDockerignore) {
  File(".dockerignore", "[\n");
  EXPECT_THAT(ListContext(dir_.path()), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace pier::builder::dockerfile

namespace pier::builder::dockerfile {
namespace {

TEST(MatcherTest, RandomPatternsFailCleanly) {
  const char* fragments[] = {"*", "**", "?",  "[", "]", "^",  "-", "a",
                             "b", "/",  "\\", "!", ".", "..", " ", "#"};
  uint32_t seed = 777;
  auto next = [&seed] {
    seed = seed * 1103515245u + 12345u;
    return seed >> 8;
  };
  for (int i = 0; i < 3000; ++i) {
    std::string pattern, path;
    for (int k = 0, n = 1 + next() % 8; k < n; ++k) pattern += fragments[next() % 16];
    for (int k = 0, n = 1 + next() % 8; k < n; ++k) path += fragments[next() % 16];
    absl::StatusOr<Matcher> m = Matcher::Parse(pattern);
    if (m.ok()) (void)m->Matches(path);
  }
}

}  // namespace
}  // namespace pier::builder::dockerfile
