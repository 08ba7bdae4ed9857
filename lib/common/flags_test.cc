#include "lib/common/flags.h"

#include "lib/common/fs.h"
#include "lib/common/testing.h"

namespace pier {
namespace {

using ::pier::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Opts {
  std::string listen = "127.0.0.1:0";
  std::string root;
  int64_t timeout = 10;
  bool detach = false;
  bool interactive = false;
  bool tty = false;
  std::vector<std::string> publish;
};

FlagSet MakeFlags(Opts& o) {
  FlagSet f("pier-test", "[flags] ARGS");
  f.String("listen", "", &o.listen, "gRPC address");
  f.String("root", "", &o.root, "data directory");
  f.Int("time", "t", &o.timeout, "seconds");
  f.Bool("detach", "d", &o.detach, "run in background");
  f.Bool("interactive", "i", &o.interactive, "keep stdin open");
  f.Bool("tty", "", &o.tty, "allocate a tty");
  f.StringList("publish", "p", &o.publish, "publish a port");
  return f;
}

TEST(FlagSetTest, ParsesLongShortGroupedAndLists) {
  Opts o;
  FlagSet f = MakeFlags(o);
  ASSERT_OK_AND_ASSIGN(auto pos, f.Parse({"--listen=unix:///x", "--root", "/r", "-di", "-p",
                                          "80:80", "-p8080:80", "-t", "5", "img", "cmd"}));
  EXPECT_EQ(o.listen, "unix:///x");
  EXPECT_EQ(o.root, "/r");
  EXPECT_TRUE(o.detach);
  EXPECT_TRUE(o.interactive);
  EXPECT_EQ(o.timeout, 5);
  EXPECT_THAT(o.publish, ElementsAre("80:80", "8080:80"));
  EXPECT_THAT(pos, ElementsAre("img", "cmd"));
}

TEST(FlagSetTest, StopsAtFirstPositional) {
  Opts o;
  FlagSet f = MakeFlags(o);
  ASSERT_OK_AND_ASSIGN(auto pos, f.Parse({"-d", "busybox", "ls", "-l", "--tty"}, true));
  EXPECT_THAT(pos, ElementsAre("busybox", "ls", "-l", "--tty"));
  EXPECT_FALSE(o.tty);
}

TEST(FlagSetTest, RejectsUnknownAndBadValues) {
  Opts o;
  FlagSet f = MakeFlags(o);
  EXPECT_THAT(f.Parse({"--nope"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--nope")));
  Opts o2;
  FlagSet f2 = MakeFlags(o2);
  EXPECT_THAT(f2.Parse({"--time=abc"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not an integer")));
  Opts o3;
  FlagSet f3 = MakeFlags(o3);
  EXPECT_THAT(f3.Parse({"--root"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs an argument")));
  Opts o4;
  FlagSet f4 = MakeFlags(o4);
  EXPECT_THAT(f4.Parse({"-h"}), StatusIs(absl::StatusCode::kCancelled));
}

TEST(FlagSetTest, ConfigFileAppliesUnlessFlagGiven) {
  pier::testing::TempDir dir;
  std::string cfg = dir.Sub("pier.conf");
  ASSERT_OK(WriteFileAtomic(
      cfg, "# comment\nlisten = \"127.0.0.1:9000\"\nroot=/from-file\n\ntime = 7\n"));
  Opts o;
  FlagSet f = MakeFlags(o);
  ASSERT_OK(f.Parse({"--root=/from-flag"}).status());
  ASSERT_OK(f.ApplyConfigFile(cfg));
  EXPECT_EQ(o.listen, "127.0.0.1:9000");
  EXPECT_EQ(o.root, "/from-flag");
  EXPECT_EQ(o.timeout, 7);

  ASSERT_OK(WriteFileAtomic(cfg, "listen = a\nbogus = 1\n"));
  Opts o2;
  FlagSet f2 = MakeFlags(o2);
  EXPECT_THAT(f2.ApplyConfigFile(cfg),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(":2: unknown setting")));
  EXPECT_THAT(f2.ApplyConfigFile(dir.Sub("missing")), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace pier
