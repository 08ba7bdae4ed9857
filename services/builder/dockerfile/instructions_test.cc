#include "services/builder/dockerfile/instructions.h"

#include <iterator>

#include "absl/strings/match.h"
#include "lib/common/testing.h"
#include "services/builder/dockerfile/expand.h"

namespace pier::builder::dockerfile {
namespace {

using ::pier::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

template <typename T>
const T& Get(const Dockerfile& df, size_t stage, size_t i) {
  return std::get<T>(df.stages.at(stage).instructions.at(i).command);
}

TEST(ParseTest, StagesAndGlobalArgs) {
  ASSERT_OK_AND_ASSIGN(Dockerfile df, Parse("ARG A=1 B\nFROM x AS Build\nRUN a\nFROM build\n"));
  ASSERT_EQ(df.global_args.size(), 1u);
  const Arg& arg = std::get<Arg>(df.global_args[0].command);
  ASSERT_EQ(arg.args.size(), 2u);
  EXPECT_EQ(arg.args[0].default_value, "1");
  EXPECT_FALSE(arg.args[1].default_value);
  ASSERT_EQ(df.stages.size(), 2u);
  EXPECT_EQ(df.stages[0].name, "build");
  EXPECT_EQ(df.stages[1].base().image, "build");
  EXPECT_EQ(FindStage(df, "BUILD"), 0u);
  EXPECT_EQ(FindStage(df, "1"), 1u);
  EXPECT_FALSE(FindStage(df, "2"));
  EXPECT_FALSE(FindStage(df, "alpine"));
}

TEST(ParseTest, CommandForms) {
  ASSERT_OK_AND_ASSIGN(Dockerfile df,
                       Parse("FROM x\nRUN echo $HOME\nCMD [\"a\", \"$HOME\"]\nENTRYPOINT []\n"));
  const dockerfile::Run& run = Get<dockerfile::Run>(df, 0, 0);
  EXPECT_FALSE(run.command.exec_form);
  EXPECT_EQ(run.command.shell, "echo $HOME");
  const Cmd& cmd = Get<Cmd>(df, 0, 1);
  EXPECT_TRUE(cmd.command.exec_form);
  EXPECT_THAT(cmd.command.exec, ElementsAre("a", "$HOME"));
  EXPECT_TRUE(Get<Entrypoint>(df, 0, 2).command.exec.empty());
}

TEST(ParseTest, CopyHeredocSources) {
  ASSERT_OK_AND_ASSIGN(Dockerfile df, Parse("FROM x\nCOPY a <<-\"EOT\" b /dst/\n\tline\nEOT\n"));
  const Copy& c = Get<Copy>(df, 0, 0);
  EXPECT_THAT(c.sources, ElementsAre("a", "b"));
  ASSERT_EQ(c.heredocs.size(), 1u);
  EXPECT_EQ(c.heredocs[0].path, "EOT");
  EXPECT_EQ(c.heredocs[0].content, "line\n");
  EXPECT_FALSE(c.heredocs[0].expand);
  EXPECT_EQ(c.dest, "/dst/");
}

TEST(ParseTest, HealthcheckDurations) {
  ASSERT_OK_AND_ASSIGN(Dockerfile df,
                       Parse("FROM x\nHEALTHCHECK --interval=1m30s --timeout=500ms --retries=0 "
                             "CMD [\"true\"]\n"));
  const Healthcheck& hc = Get<Healthcheck>(df, 0, 0);
  EXPECT_EQ(hc.interval, absl::Seconds(90));
  EXPECT_EQ(hc.timeout, absl::Milliseconds(500));
  EXPECT_EQ(hc.retries, 0);
  EXPECT_TRUE(hc.command.exec_form);
}

TEST(ParseTest, Errors) {
  struct Case {
    const char* text;
    const char* message;
  } cases[] = {
      {"", "Dockerfile:1: file with no instructions"},
      {"# just a comment\n", "Dockerfile:1: file with no instructions"},
      {"FROM a b\n", "Dockerfile:1: FROM requires either one or three arguments"},
      {"FROM\n", "Dockerfile:1: FROM requires either one or three arguments"},
      {"FROM a\nCOPY --from x y\n", "Dockerfile:2: flag --from for COPY requires a value"},
      {"FROM a\nCOPY --link=maybe x y\n",
       "Dockerfile:2: flag --link for COPY expects a boolean, got \"maybe\""},
      {"FROM a\nCOPY --from=a --from=b x y\n",
       "Dockerfile:2: flag --from for COPY given more than once"},
      {"FROM a\nADD --from=a x y\n", "Dockerfile:2: unknown flag for ADD: --from"},
      {"FROM a\nENV --x=1 A=b\n", "Dockerfile:2: unknown flag for ENV: --x"},
      {"FROM a\nWORKDIR\n", "Dockerfile:2: WORKDIR requires exactly one argument"},
      {"FROM a\nUSER\n", "Dockerfile:2: USER requires exactly one argument"},
      {"FROM a\nEXPOSE\n", "Dockerfile:2: EXPOSE requires at least one argument"},
      {"FROM a\nEXPOSE 70000\n", "Dockerfile:2: EXPOSE: invalid port \"70000\""},
      {"FROM a\nEXPOSE 80/icmp\n", "Dockerfile:2: EXPOSE: invalid protocol in port \"80/icmp\""},
      {"FROM a\nEXPOSE 90-80\n", "Dockerfile:2: EXPOSE: invalid port range \"90-80\""},
      {"FROM a\nVOLUME [\"\"]\n", "Dockerfile:2: VOLUME specified can not be an empty string"},
      {"FROM a\nCMD\n", "Dockerfile:2: CMD requires at least one argument"},
      {"FROM a\nRUN --network=none\n", "Dockerfile:2: RUN requires at least one argument"},
      {"FROM a\nRUN --network=bridge x\n", "Dockerfile:2: RUN: unsupported network mode"},
      {"FROM a\nRUN --mount=type=cache x\n",
       "Dockerfile:2: RUN --mount=type=cache: mount type cache requires a target"},
      {"FROM a\nRUN --mount=type=nfs,target=/x x\n", "unsupported mount type \"nfs\""},
      {"FROM a\nRUN --mount=target=/x,colour=red x\n", "unexpected key 'colour' in 'colour=red'"},
      {"FROM a\nCOPY --chmod=99 a b\n", "Dockerfile:2: COPY: invalid --chmod value \"99\""},
      {"FROM a\nADD --checksum=md5:abc a b\n", "Dockerfile:2: ADD: invalid --checksum"},
      {"FROM a\nHEALTHCHECK --interval=0.1ms CMD x\n",
       "Dockerfile:2: HEALTHCHECK: --interval cannot be less than 1ms"},
      {"FROM a\nHEALTHCHECK --retries=-1 CMD x\n",
       "Dockerfile:2: HEALTHCHECK: --retries cannot be negative (-1)"},
      {"FROM a\nHEALTHCHECK NONE x\n", "Dockerfile:2: HEALTHCHECK NONE takes no arguments"},
      {"FROM a\nHEALTHCHECK CMD\n", "Dockerfile:2: HEALTHCHECK CMD requires a command"},
      {"FROM a\nONBUILD\n", "Dockerfile:2: ONBUILD requires at least one argument"},
      {"FROM a\nONBUILD MAINTAINER me\n",
       "Dockerfile:2: MAINTAINER isn't allowed as an ONBUILD trigger"},
      {"FROM a\nONBUILD COPY x\n", "Dockerfile:2: ONBUILD: COPY requires at least two arguments"},
      {"FROM a\nONBUILD FOO x\n", "Dockerfile:2: unknown instruction: FOO"},
      {"FROM a\nSTOPSIGNAL SIG KILL\n", "Dockerfile:2: STOPSIGNAL: invalid signal \"SIG KILL\""},
      {"FROM a\nARG =x\n", "Dockerfile:2: ARG names can not be blank"},
      {"FROM a\nENV =x\n", "Dockerfile:2: ENV names can not be blank"},
      {"FROM a\nSHELL []\n", "Dockerfile:2: SHELL requires at least one argument"},
      {"FROM a AS x\nFROM b AS X\n", "Dockerfile:2: FROM: duplicate stage name \"x\""},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(Parse(c.text), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.text;
  }
}

TEST(ParsePortSpecTest, Forms) {
  ASSERT_OK_AND_ASSIGN(PortSpec p, ParsePortSpec("8000-8002/UDP"));
  EXPECT_EQ(p.start, 8000);
  EXPECT_EQ(p.end, 8002);
  EXPECT_EQ(p.protocol, "udp");
  ASSERT_OK_AND_ASSIGN(p, ParsePortSpec("80"));
  EXPECT_EQ(p.start, 80);
  EXPECT_EQ(p.end, 80);
  EXPECT_EQ(p.protocol, "tcp");
  for (const char* bad : {"", "0", "-1", "+80", "80-", "a", "80/", "1-2-3", "65536"}) {
    EXPECT_THAT(ParsePortSpec(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

TEST(ParseMountSpecTest, Fields) {
  ASSERT_OK_AND_ASSIGN(Mount m, ParseMountSpec("type=cache,target=/c,sharing=locked,id=x,"
                                               "mode=0700,uid=1,gid=2"));
  EXPECT_EQ(m.type, "cache");
  EXPECT_EQ(m.target, "/c");
  EXPECT_EQ(m.sharing, "locked");
  EXPECT_FALSE(m.readonly);
  ASSERT_OK_AND_ASSIGN(m, ParseMountSpec("target=/src,rw"));
  EXPECT_EQ(m.type, "bind");
  EXPECT_FALSE(m.readonly);
  ASSERT_OK_AND_ASSIGN(m, ParseMountSpec("dst=/src,from=build,source=/out"));
  EXPECT_TRUE(m.readonly);
  EXPECT_EQ(m.from, "build");
  ASSERT_OK_AND_ASSIGN(m, ParseMountSpec("type=secret,id=tok,env=TOKEN,required"));
  EXPECT_TRUE(m.required);
  ASSERT_OK_AND_ASSIGN(m, ParseMountSpec("type=bind,\"target=/a,b\""));
  EXPECT_EQ(m.target, "/a,b");
  EXPECT_THAT(ParseMountSpec("type=cache,target=/c,sharing=wild"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseMountSpec("type=cache,target=/c,uid=x"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseMountSpec("type=cache,target"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ParseDurationTest, GoSyntax) {
  EXPECT_EQ(*ParseDuration("0"), absl::ZeroDuration());
  EXPECT_EQ(*ParseDuration("1h2m3s"), absl::Seconds(3723));
  EXPECT_EQ(*ParseDuration("1.5s"), absl::Milliseconds(1500));
  EXPECT_EQ(*ParseDuration("10\xC2\xB5s"), absl::Microseconds(10));
  for (const char* bad : {"", "10", "abc", "1x", "-1s", "inf", "1s-"}) {
    EXPECT_THAT(ParseDuration(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

}  // namespace
}  // namespace pier::builder::dockerfile

namespace pier::builder::dockerfile {
namespace {

// Fragments that exercise every lexical path; random sequences of them must
// parse or fail cleanly (run under ASan/UBSan in CI).
TEST(ParseTest, RandomInputsFailCleanly) {
  const char* fragments[] = {
      "FROM ",
      "RUN ",
      "COPY ",
      "ADD ",
      "ENV ",
      "LABEL ",
      "ARG ",
      "ONBUILD ",
      "HEALTHCHECK ",
      "EXPOSE ",
      "USER ",
      "WORKDIR ",
      "VOLUME ",
      "SHELL ",
      "CMD ",
      "STOPSIGNAL ",
      "NONE ",
      "--from=",
      "--mount=type=cache,target=",
      "--chmod=",
      "--interval=",
      "--",
      "AS ",
      "x",
      "a=b ",
      "\"",
      "'",
      "\\",
      "`",
      "$",
      "${",
      "}",
      ":-",
      "#",
      "# escape=`\n",
      "<<EOF ",
      "<<-'E' ",
      "EOF\n",
      "E\n",
      "\t",
      " ",
      "\n",
      "\r\n",
      "[",
      "]",
      "\", \"",
      "=",
      "/",
      "\xC3\xA9",
      "\xFF",
  };
  uint32_t seed = 12345;
  auto next = [&seed] {
    seed = seed * 1103515245u + 12345u;
    return seed >> 8;
  };
  auto none = [](const std::string&, const std::string&) -> absl::StatusOr<StageBase> {
    return StageBase{};
  };
  int parsed = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string text = (i % 2 == 0) ? "FROM a\n" : "";
    int n = 1 + next() % 40;
    for (int k = 0; k < n; ++k) text += fragments[next() % std::size(fragments)];
    absl::StatusOr<Dockerfile> df = Parse(text);
    if (!df.ok()) {
      EXPECT_EQ(df.status().code(), absl::StatusCode::kInvalidArgument) << text;
      EXPECT_TRUE(absl::StartsWith(df.status().message(), "Dockerfile:")) << df.status();
      continue;
    }
    ++parsed;
    absl::Status s = ResolveAll(*df, BuildOptions{}, none).status();
    if (!s.ok()) {
      EXPECT_TRUE(absl::StartsWith(s.message(), "Dockerfile:")) << s;
    }
  }
  EXPECT_GT(parsed, 50);  // the corpus is not all errors
}

}  // namespace
}  // namespace pier::builder::dockerfile
