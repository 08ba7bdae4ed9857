#include "services/builder/dockerfile/expand.h"

#include <map>

#include "lib/common/status.h"
#include "lib/common/testing.h"

namespace pier::builder::dockerfile {
namespace {

using ::pier::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ExpandTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::string> X(absl::string_view word, char escape = '\\') {
    return ExpandWord(
        word, [this](absl::string_view n) { return Find(n); }, escape);
  }
  absl::StatusOr<std::vector<std::string>> Words(absl::string_view text) {
    return ExpandWords(text, [this](absl::string_view n) { return Find(n); });
  }
  const std::string* Find(absl::string_view n) {
    auto it = vars_.find(std::string(n));
    return it == vars_.end() ? nullptr : &it->second;
  }
  std::map<std::string, std::string> vars_ = {
      {"A", "alpha"}, {"E", ""}, {"SP", "a  b"}, {"P", "/usr/local/bin"}, {"F", "foobarbaz"}};
};

TEST_F(ExpandTest, PlainVariables) {
  EXPECT_EQ(*X("$A"), "alpha");
  EXPECT_EQ(*X("${A}_x"), "alpha_x");
  EXPECT_EQ(*X("$A_x"), "");  // the name is A_x
  EXPECT_EQ(*X("x$UNSET.y"), "x.y");
  EXPECT_EQ(*X("cost $ 5 $"), "cost $ 5 $");
  EXPECT_EQ(*X("$1"), "");
  EXPECT_EQ(*X("a b  c"), "a b  c");
}

TEST_F(ExpandTest, DefaultAndAlternative) {
  EXPECT_EQ(*X("${UNSET:-d}"), "d");
  EXPECT_EQ(*X("${E:-d}"), "d");
  EXPECT_EQ(*X("${A:-d}"), "alpha");
  EXPECT_EQ(*X("${UNSET-d}"), "d");
  EXPECT_EQ(*X("${E-d}"), "");
  EXPECT_EQ(*X("${A:+alt}"), "alt");
  EXPECT_EQ(*X("${E:+alt}"), "");
  EXPECT_EQ(*X("${UNSET:+alt}"), "");
  EXPECT_EQ(*X("${E+alt}"), "alt");
  EXPECT_EQ(*X("${UNSET+alt}"), "");
  EXPECT_EQ(*X("${UNSET:-}"), "");
}

TEST_F(ExpandTest, NestedDefaults) {
  EXPECT_EQ(*X("${UNSET:-${A}}"), "alpha");
  EXPECT_EQ(*X("${UNSET:-${ALSO_UNSET:-deep}}/x"), "deep/x");
  EXPECT_EQ(*X("${A:+[${A}]}"), "[alpha]");
  EXPECT_EQ(*X("${UNSET:-\"quoted } brace\"}"), "quoted } brace");
}

TEST_F(ExpandTest, Required) {
  EXPECT_EQ(*X("${A:?must be set}"), "alpha");
  EXPECT_EQ(*X("${E?x}"), "");
  EXPECT_THAT(X("${UNSET?}"),
              StatusIs(absl::StatusCode::kInvalidArgument, "UNSET: is not allowed to be unset"));
  EXPECT_THAT(X("${E:?}"),
              StatusIs(absl::StatusCode::kInvalidArgument, "E: is not allowed to be empty"));
  EXPECT_THAT(X("${UNSET:?set it please}"),
              StatusIs(absl::StatusCode::kInvalidArgument, "UNSET: set it please"));
}

TEST_F(ExpandTest, PatternRemovalAndReplacement) {
  EXPECT_EQ(*X("${F#f*b}"), "arbaz");
  EXPECT_EQ(*X("${F##f*b}"), "az");
  EXPECT_EQ(*X("${F%b*}"), "foobar");
  EXPECT_EQ(*X("${F%%b*}"), "foo");
  EXPECT_EQ(*X("${F/ba/fo}"), "fooforbaz");
  EXPECT_EQ(*X("${F//ba/fo}"), "fooforfoz");
  EXPECT_EQ(*X("${F//ba}"), "foorz");
  EXPECT_EQ(*X("${P##*/}"), "bin");
  EXPECT_EQ(*X("${P%/*}"), "/usr/local");
  EXPECT_EQ(*X("${F#x}"), "foobarbaz");
  EXPECT_EQ(*X("${F#fo?}"), "barbaz");
  EXPECT_EQ(*X("${F#[a-f]}"), "oobarbaz");
  EXPECT_EQ(*X("${UNSET#x}"), "");
}

TEST_F(ExpandTest, Quotes) {
  EXPECT_EQ(*X("'$A'"), "$A");
  EXPECT_EQ(*X("\"$A\""), "alpha");
  EXPECT_EQ(*X("\"a 'b' $A\""), "a 'b' alpha");
  EXPECT_EQ(*X("'a \"b\"'"), "a \"b\"");
  EXPECT_EQ(*X("x\"\"y''z"), "xyz");
  EXPECT_EQ(*X("\"${A}\"_'${A}'"), "alpha_${A}");
  EXPECT_THAT(X("'open"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("single-quote")));
  EXPECT_THAT(X("\"open"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("double-quote")));
}

TEST_F(ExpandTest, Escapes) {
  EXPECT_EQ(*X("\\$A"), "$A");
  EXPECT_EQ(*X("\\${A}"), "${A}");
  EXPECT_EQ(*X("a\\ b"), "a b");
  EXPECT_EQ(*X("\\\\$A"), "\\alpha");
  EXPECT_EQ(*X("\"\\$A \\\" \\\\ \\n\""), "$A \" \\ \\n");
  EXPECT_EQ(*X("'\\$A'"), "\\$A");
  EXPECT_EQ(*X("trailing\\"), "trailing");
  // With `# escape=`` a backslash is an ordinary character.
  EXPECT_EQ(*X("c:\\dir\\$A", '`'), "c:\\dir\\alpha");
  EXPECT_EQ(*X("`$A", '`'), "$A");
}

TEST_F(ExpandTest, Errors) {
  EXPECT_THAT(X("${A"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("missing '}'")));
  EXPECT_THAT(X("${A:-x"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("missing '}'")));
  EXPECT_THAT(X("${"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("missing '}'")));
  EXPECT_THAT(X("${}"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad substitution")));
  EXPECT_THAT(X("${:-x}"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad substitution")));
  EXPECT_THAT(X("${A:=x}"), StatusIs(absl::StatusCode::kInvalidArgument,
                                     "unsupported modifier (:=) in substitution"));
  EXPECT_THAT(X("${A^^}"), StatusIs(absl::StatusCode::kInvalidArgument,
                                    "unsupported modifier (^) in substitution"));
  EXPECT_THAT(X("${A:#x}"), StatusIs(absl::StatusCode::kInvalidArgument,
                                     "unsupported modifier (:#) in substitution"));
}

TEST_F(ExpandTest, WordSplitting) {
  EXPECT_THAT(*Words("a  'b c' \"d $SP\" e\\ f"), ElementsAre("a", "b c", "d a  b", "e f"));
  EXPECT_THAT(*Words("x$SP"), ElementsAre("xa", "b"));
  EXPECT_THAT(*Words("$UNSET '' z"), ElementsAre("", "z"));
  EXPECT_THAT(*Words("   "), ElementsAre());
}

TEST_F(ExpandTest, Heredoc) {
  auto lookup = [this](absl::string_view n) { return Find(n); };
  EXPECT_EQ(*ExpandHeredoc("echo \"hello ${A}\" '$A'\n\\$A \\\\ \\n\n", lookup),
            "echo \"hello alpha\" 'alpha'\n$A \\ \\n\n");
}

TEST(KeyValueWordsTest, SplitThenExpand) {
  // The parser splits ENV/LABEL/ARG into raw words; expansion removes quotes.
  std::vector<std::string> words = SplitRawWords(R"(k="v 2" k2=a\ b k3='$x' k4=)", '\\');
  ASSERT_THAT(words, ElementsAre(R"(k="v 2")", R"(k2=a\ b)", "k3='$x'", "k4="));
  auto none = [](absl::string_view) -> const std::string* { return nullptr; };
  std::vector<std::string> got;
  for (const std::string& w : words) got.push_back(*ExpandWord(w, none));
  EXPECT_THAT(got, ElementsAre("k=v 2", "k2=a b", "k3=$x", "k4="));
}

TEST(VarSetTest, KeepsOrderAndReplaces) {
  VarSet v = VarSet::FromEnvList({"PATH=/bin", "A=1=2", "EMPTY"});
  v.Set("A", "3");
  v.Set("B", "4");
  EXPECT_THAT(v.ToEnvList(), ElementsAre("PATH=/bin", "A=3", "EMPTY=", "B=4"));
  EXPECT_EQ(*v.Get("EMPTY"), "");
  EXPECT_EQ(v.Get("NOPE"), nullptr);
}

TEST(PlatformTest, Parse) {
  ASSERT_OK_AND_ASSIGN(Platform p, ParsePlatform("linux/arm/v7"));
  EXPECT_EQ(p.os, "linux");
  EXPECT_EQ(p.arch, "arm");
  EXPECT_EQ(p.variant, "v7");
  EXPECT_EQ(p.ToString(), "linux/arm/v7");
  EXPECT_THAT(ParsePlatform("linux"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParsePlatform("linux//x"), StatusIs(absl::StatusCode::kInvalidArgument));
}

// ---- Stage resolution ----------------------------------------------------------

absl::StatusOr<StageBase> NoBase(const std::string&, const std::string&) { return StageBase{}; }

absl::StatusOr<std::vector<ResolvedStage>> ResolveText(absl::string_view text,
                                                       const BuildOptions& options) {
  ASSIGN_OR_RETURN(Dockerfile df, Parse(text));
  return ResolveAll(df, options, NoBase);
}

template <typename T>
const T& At(const ResolvedStage& s, size_t step) {
  return std::get<T>(s.steps.at(step).instruction.command);
}

TEST(ResolveTest, GlobalArgsOnlyInFrom) {
  BuildOptions opts;
  opts.build_args = {{"TAG", "3.19"}};
  ASSERT_OK_AND_ASSIGN(auto stages, ResolveText("ARG BASE=alpine\nARG TAG=latest\n"
                                                "FROM ${BASE}:${TAG} AS one\n"
                                                "WORKDIR /${BASE:-none}\n"
                                                "ARG BASE\n"
                                                "WORKDIR $BASE/$TAG\n",
                                                opts));
  ASSERT_EQ(stages.size(), 1u);
  EXPECT_EQ(stages[0].from.image, "alpine:3.19");
  EXPECT_EQ(At<Workdir>(stages[0], 0).path, "/none");         // globals are not visible here
  EXPECT_EQ(*stages[0].steps[1].args.Get("BASE"), "alpine");  // re-declared: global value
  EXPECT_EQ(At<Workdir>(stages[0], 2).path, "alpine/");       // TAG not re-declared
  EXPECT_EQ(stages[0].workdir, "/none/alpine");
}

TEST(ResolveTest, BuildArgsOverrideDefaultsFromTheirLineOn) {
  BuildOptions opts;
  opts.build_args = {{"username", "what_user"}};
  ASSERT_OK_AND_ASSIGN(auto stages, ResolveText("FROM busybox\nUSER ${username:-some_user}\n"
                                                "ARG username=x\nUSER $username\n",
                                                opts));
  EXPECT_EQ(At<User>(stages[0], 0).user, "some_user");
  EXPECT_EQ(At<User>(stages[0], 2).user, "what_user");
}

TEST(ResolveTest, EnvWinsOverArgAndOneInstructionSeesTheOldValues) {
  BuildOptions opts;
  opts.build_args = {{"V", "v2.0.1"}};
  ASSERT_OK_AND_ASSIGN(auto stages, ResolveText("FROM ubuntu\nARG V\nENV V=v1.0.0\n"
                                                "ENV abc=hello\nENV abc=bye def=$abc\n"
                                                "ENV ghi=$abc\nLABEL v=$V\n",
                                                opts));
  const ResolvedStage& s = stages[0];
  EXPECT_EQ(*s.env.Get("V"), "v1.0.0");
  EXPECT_EQ(*s.args.Get("V"), "v2.0.1");
  EXPECT_EQ(*s.env.Get("def"), "hello");
  EXPECT_EQ(*s.env.Get("ghi"), "bye");
  EXPECT_EQ(At<Label>(s, 5).labels[0].value, "v1.0.0");
}

TEST(ResolveTest, EnvFormsAndQuotes) {
  ASSERT_OK_AND_ASSIGN(auto stages,
                       ResolveText("FROM x\nENV MY_NAME=\"John Doe\" MY_DOG=Rex\\ The\\ Dog\n"
                                   "ENV ONE TWO= THREE=world\nENV Q='$MY_NAME' R=\"$MY_DOG\"\n",
                                   BuildOptions{}));
  const VarSet& env = stages[0].env;
  EXPECT_EQ(*env.Get("MY_NAME"), "John Doe");
  EXPECT_EQ(*env.Get("MY_DOG"), "Rex The Dog");
  EXPECT_EQ(*env.Get("ONE"), "TWO= THREE=world");
  EXPECT_EQ(*env.Get("Q"), "$MY_NAME");
  EXPECT_EQ(*env.Get("R"), "Rex The Dog");
}

TEST(ResolveTest, PlatformArgs) {
  BuildOptions opts;
  opts.build_platform = "linux/amd64";
  opts.target_platform = "linux/arm64/v8";
  ASSERT_OK_AND_ASSIGN(auto stages,
                       ResolveText("FROM --platform=$BUILDPLATFORM golang AS build\n"
                                   "RUN echo $TARGETARCH\nARG TARGETARCH TARGETVARIANT\n"
                                   "RUN make\n",
                                   opts));
  EXPECT_EQ(stages[0].from.platform, "linux/amd64");
  EXPECT_FALSE(stages[0].steps[0].args.Has("TARGETARCH"));
  EXPECT_EQ(*stages[0].steps[1].args.Get("TARGETARCH"), "arm64");
  EXPECT_THAT(stages[0].steps[2].run_env, ElementsAre("TARGETARCH=arm64", "TARGETVARIANT=v8"));
}

TEST(ResolveTest, ProxyArgsReachRunWithoutDeclaration) {
  BuildOptions opts;
  opts.build_args = {{"HTTP_PROXY", "http://proxy:3128"}, {"OTHER", "x"}};
  ASSERT_OK_AND_ASSIGN(auto stages,
                       ResolveText("FROM x\nENV A=1\nRUN env\nWORKDIR /$HTTP_PROXY\n", opts));
  EXPECT_THAT(stages[0].steps[1].run_env, ElementsAre("A=1", "HTTP_PROXY=http://proxy:3128"));
  EXPECT_EQ(At<Workdir>(stages[0], 2).path, "/");  // not expanded unless declared
}

TEST(ResolveTest, StagesInheritFromTheirParentStage) {
  auto base = [](const std::string& image, const std::string&) -> absl::StatusOr<StageBase> {
    StageBase b;
    if (image == "ubuntu") {
      b.env = {"PATH=/usr/bin", "HOME=/root"};
      b.workdir = "/srv";
    }
    return b;
  };
  ASSERT_OK_AND_ASSIGN(Dockerfile df, Parse("FROM ubuntu AS base\nARG LEVEL=1\nENV X=$HOME\n"
                                            "WORKDIR app\nFROM base\nWORKDIR ../lib/./x\n"
                                            "RUN true\nFROM scratch\nENV Y=${X:-none}\n"));
  ASSERT_OK_AND_ASSIGN(auto stages, ResolveAll(df, BuildOptions{}, base));
  ASSERT_EQ(stages.size(), 3u);
  EXPECT_EQ(stages[0].workdir, "/srv/app");
  EXPECT_EQ(stages[1].from.base_stage, 0u);
  EXPECT_EQ(stages[1].workdir, "/srv/lib/x");
  EXPECT_THAT(stages[1].steps[1].run_env,
              ElementsAre("PATH=/usr/bin", "HOME=/root", "X=/root", "LEVEL=1"));
  EXPECT_EQ(*stages[2].env.Get("Y"), "none");
}

TEST(ResolveTest, CopyAndAddWords) {
  ASSERT_OK_AND_ASSIGN(auto stages,
                       ResolveText("FROM x AS b\nFROM y\nARG U=1000 MODE=0640 SRC=app\n"
                                   "ENV FOO=/bar\n"
                                   "COPY --from=${SRC:+b} --chown=$U:$U --chmod=$MODE "
                                   "--exclude=*.$SRC $SRC \\$FOO $FOO/\n"
                                   "COPY <<EOF <<'RAW' /x/\n${FOO}\nEOF\n${FOO}\nRAW\n"
                                   "ADD --checksum=$NOPE https://e.com/$SRC.tgz /\n",
                                   BuildOptions{}));
  const ResolvedStage& s = stages[1];
  const Copy& c = At<Copy>(s, 2);
  EXPECT_EQ(c.from, "b");
  EXPECT_EQ(c.chown, "1000:1000");
  EXPECT_EQ(c.chmod, "0640");
  EXPECT_THAT(c.excludes, ElementsAre("*.app"));
  EXPECT_THAT(c.sources, ElementsAre("app", "$FOO"));
  EXPECT_EQ(c.dest, "/bar/");
  const Copy& h = At<Copy>(s, 3);
  ASSERT_EQ(h.heredocs.size(), 2u);
  EXPECT_EQ(h.heredocs[0].content, "/bar\n");
  EXPECT_EQ(h.heredocs[1].content, "${FOO}\n");
  EXPECT_THAT(At<Add>(s, 4).sources, ElementsAre("https://e.com/app.tgz"));
}

TEST(ResolveTest, NotExpandedWhereTheShellExpands) {
  ASSERT_OK_AND_ASSIGN(auto stages,
                       ResolveText("FROM x\nENV A=1\nRUN echo $A\nCMD echo $A\n"
                                   "ENTRYPOINT [\"echo\", \"$A\"]\nONBUILD RUN echo $A\n"
                                   "HEALTHCHECK CMD echo $A\nSHELL [\"/bin/$A\"]\n",
                                   BuildOptions{}));
  const ResolvedStage& s = stages[0];
  EXPECT_EQ(At<dockerfile::Run>(s, 1).command.shell, "echo $A");
  EXPECT_EQ(At<Cmd>(s, 2).command.shell, "echo $A");
  EXPECT_THAT(At<Entrypoint>(s, 3).command.exec, ElementsAre("echo", "$A"));
  EXPECT_EQ(At<Onbuild>(s, 4).expression, "RUN echo $A");
  EXPECT_EQ(At<Healthcheck>(s, 5).command.shell, "echo $A");
  EXPECT_THAT(At<Shell>(s, 6).shell, ElementsAre("/bin/$A"));
}

TEST(ResolveTest, ExposeVolumeUserStopsignalAndMounts) {
  ASSERT_OK_AND_ASSIGN(auto stages,
                       ResolveText("FROM x\nARG P=8080 SIG=SIGQUIT U=app G=staff C=/cache\n"
                                   "EXPOSE $P/udp ${P}-8090\nVOLUME [\"/data/$U\"] \n"
                                   "USER ${U:-nobody}:$G\nSTOPSIGNAL $SIG\n"
                                   "RUN --mount=type=cache,target=$C,id=$U true\n",
                                   BuildOptions{}));
  const ResolvedStage& s = stages[0];
  EXPECT_THAT(At<Expose>(s, 1).ports, ElementsAre("8080/udp", "8080-8090"));
  EXPECT_THAT(At<Volume>(s, 2).paths, ElementsAre("/data/app"));
  EXPECT_EQ(At<User>(s, 3).user, "app");
  EXPECT_EQ(At<User>(s, 3).group, "staff");
  EXPECT_EQ(At<Stopsignal>(s, 4).signal, "SIGQUIT");
  const dockerfile::Run& run = At<dockerfile::Run>(s, 5);
  ASSERT_EQ(run.mounts.size(), 1u);
  EXPECT_EQ(run.mounts[0].target, "/cache");
  EXPECT_EQ(run.mounts[0].id, "app");
}

TEST(ResolveTest, ErrorsNameTheLine) {
  EXPECT_THAT(ResolveText("FROM x\n\nWORKDIR ${A:?need A}\n", BuildOptions{}),
              StatusIs(absl::StatusCode::kInvalidArgument, "Dockerfile:3: WORKDIR: A: need A"));
  EXPECT_THAT(
      ResolveText("FROM x\nENV A=${B\n", BuildOptions{}),
      StatusIs(absl::StatusCode::kInvalidArgument, "Dockerfile:2: ENV: syntax error: missing '}'"));
  EXPECT_THAT(ResolveText("ARG V=${X:=1}\nFROM x\n", BuildOptions{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Dockerfile:1: ARG: unsupported modifier (:=) in substitution"));
  EXPECT_THAT(
      ResolveText("ARG IMG\nFROM $IMG\n", BuildOptions{}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("Dockerfile:2: FROM: base name")));
  EXPECT_THAT(ResolveText("FROM x\nARG P=abc\nEXPOSE $P\n", BuildOptions{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("Dockerfile:3: EXPOSE: invalid port")));
  EXPECT_THAT(ResolveText("FROM x\nFROM y\nCOPY --from=1 a b\n", BuildOptions{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("Dockerfile:3: COPY: --from=1 does not name an earlier stage")));
  EXPECT_THAT(
      ResolveText("FROM x\nARG T=nfs\nRUN --mount=type=$T,target=/x true\n", BuildOptions{}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("Dockerfile:3: RUN: --mount=type=$T,target=/x: unsupported mount")));
}

TEST(CleanAbsPathTest, Cleans) {
  EXPECT_EQ(CleanAbsPath("/a/./b/../c/"), "/a/c");
  EXPECT_EQ(CleanAbsPath("/../.."), "/");
  EXPECT_EQ(CleanAbsPath("//x//y"), "/x/y");
}

}  // namespace
}  // namespace pier::builder::dockerfile

namespace pier::builder::dockerfile {
namespace {

TEST(ExpandFuzzTest, RandomWordsFailCleanly) {
  const char* fragments[] = {"$",  "{",  "}", ":", "-", "+", "?", "#", "%", "/",   "'",
                             "\"", "\\", "A", "B", "*", "[", "]", " ", "x", "${A", "${B:-"};
  uint32_t seed = 99;
  auto next = [&seed] {
    seed = seed * 1103515245u + 12345u;
    return seed >> 8;
  };
  std::string a = "a*b", b = "";
  auto lookup = [&](absl::string_view n) -> const std::string* {
    return n == "A" ? &a : n == "B" ? &b : nullptr;
  };
  for (int i = 0; i < 5000; ++i) {
    std::string word;
    for (int k = 0, n = 1 + next() % 12; k < n; ++k) word += fragments[next() % 22];
    absl::StatusOr<std::string> w = ExpandWord(word, lookup);
    if (!w.ok()) {
      EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
    }
    (void)ExpandWords(word, lookup).ok();
    (void)ExpandHeredoc(word, lookup).ok();
  }
}

}  // namespace
}  // namespace pier::builder::dockerfile
