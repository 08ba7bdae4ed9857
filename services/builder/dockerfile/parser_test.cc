#include "services/builder/dockerfile/parser.h"

#include "lib/common/testing.h"

namespace pier::builder::dockerfile {
namespace {

using ::pier::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(ParseAstTest, KeywordsAreCaseInsensitive) {
  ASSERT_OK_AND_ASSIGN(Ast ast, ParseAst("from alpine\nRuN echo hi\n"));
  ASSERT_EQ(ast.nodes.size(), 2u);
  EXPECT_EQ(ast.nodes[0].keyword, "FROM");
  EXPECT_EQ(ast.nodes[0].keyword_as_written, "from");
  EXPECT_EQ(ast.nodes[1].keyword, "RUN");
  EXPECT_THAT(ast.nodes[1].args, ElementsAre("echo hi"));
  EXPECT_EQ(ast.nodes[1].start_line, 2);
}

TEST(ParseAstTest, UnknownInstructionNamesLineAndWord) {
  EXPECT_THAT(ParseAst("FROM a\n\nFORM b\n"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                       "Dockerfile:3: unknown instruction: FORM"));
}

TEST(ParseAstTest, DirectivesOnlyAtTheTop) {
  ASSERT_OK_AND_ASSIGN(Ast ast, ParseAst("#\tSyntax = docker/dockerfile:1\n# escape=`\n"
                                         "# check=skip=all\n\nFROM a\n# escape=\\\n"));
  ASSERT_EQ(ast.directives.size(), 3u);
  EXPECT_EQ(ast.directives[0].name, "syntax");
  EXPECT_EQ(ast.directives[0].value, "docker/dockerfile:1");
  EXPECT_EQ(ast.directives[2].name, "check");
  EXPECT_EQ(ast.escape, '`');
}

TEST(ParseAstTest, CommentEndsDirectives) {
  ASSERT_OK_AND_ASSIGN(Ast ast, ParseAst("# about\n# escape=`\nFROM a\n"));
  EXPECT_THAT(ast.directives, IsEmpty());
  EXPECT_EQ(ast.escape, '\\');
}

TEST(ParseAstTest, UnknownDirectiveEndsDirectives) {
  ASSERT_OK_AND_ASSIGN(Ast ast, ParseAst("# foo=bar\n# escape=`\nFROM a\n"));
  EXPECT_THAT(ast.directives, IsEmpty());
}

TEST(ParseAstTest, RepeatedDirectiveIsAnError) {
  EXPECT_THAT(ParseAst("# escape=`\n# escape=`\nFROM a\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Dockerfile:2: only one escape parser directive can be used"));
}

TEST(ParseAstTest, InvalidEscapeToken) {
  EXPECT_THAT(ParseAst("# escape=x\nFROM a\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid escape token 'x'")));
}

TEST(ParseAstTest, ContinuationSkipsCommentsAndEmptyLines) {
  ASSERT_OK_AND_ASSIGN(Ast ast, ParseAst("FROM a\nRUN echo \\\n  # note\n\n   \n  hello \\\t \n"
                                         "world\nRUN x\n"));
  ASSERT_EQ(ast.nodes.size(), 3u);
  EXPECT_THAT(ast.nodes[1].args, ElementsAre("echo   hello world"));
  EXPECT_EQ(ast.nodes[1].start_line, 2);
  EXPECT_EQ(ast.nodes[1].end_line, 7);
  EXPECT_EQ(ast.nodes[2].start_line, 8);
  ASSERT_EQ(ast.warnings.size(), 1u);
  EXPECT_EQ(ast.warnings[0].line, 2);
}

TEST(ParseAstTest, CrLfAndByteOrderMark) {
  ASSERT_OK_AND_ASSIGN(Ast ast, ParseAst("\xEF\xBB\xBF# escape=`\r\nFROM a\r\nRUN a `\r\n b\r\n"));
  EXPECT_EQ(ast.escape, '`');
  ASSERT_EQ(ast.nodes.size(), 2u);
  EXPECT_THAT(ast.nodes[1].args, ElementsAre("a  b"));
}

TEST(ParseAstTest, JsonAndShellForms) {
  ASSERT_OK_AND_ASSIGN(Ast ast, ParseAst("FROM a\nCMD [\"a\", \"b c\"]\nCMD [\"a\", 'b']\n"
                                         "COPY [\"a b\", \"/c\"]\nCOPY [a b\n"));
  EXPECT_TRUE(ast.nodes[1].json);
  EXPECT_THAT(ast.nodes[1].args, ElementsAre("a", "b c"));
  EXPECT_FALSE(ast.nodes[2].json);
  EXPECT_THAT(ast.nodes[2].args, ElementsAre("[\"a\", 'b']"));
  EXPECT_TRUE(ast.nodes[3].json);
  EXPECT_THAT(ast.nodes[3].args, ElementsAre("a b", "/c"));
  EXPECT_THAT(ast.nodes[4].args, ElementsAre("[a", "b"));
}

TEST(ParseAstTest, FlagsBeforeArguments) {
  ASSERT_OK_AND_ASSIGN(Ast ast,
                       ParseAst("FROM a\nCOPY --from=build --chown=\"a b\" --link src dst\n"
                                "RUN -- --not-a-flag\n"));
  EXPECT_THAT(ast.nodes[1].flags, ElementsAre("--from=build", "--chown=a b", "--link"));
  EXPECT_THAT(ast.nodes[1].args, ElementsAre("src", "dst"));
  EXPECT_THAT(ast.nodes[2].flags, IsEmpty());
  EXPECT_THAT(ast.nodes[2].args, ElementsAre("--not-a-flag"));
}

TEST(ParseAstTest, KeyValueForms) {
  ASSERT_OK_AND_ASSIGN(Ast ast, ParseAst("FROM a\nENV A=1 B=\"x y\" C=z\\ w\nENV D e f\n"
                                         "LABEL k=\n"));
  EXPECT_THAT(ast.nodes[1].args, ElementsAre("A", "1", "B", "\"x y\"", "C", "z\\ w"));
  EXPECT_FALSE(ast.nodes[1].legacy_key_value);
  EXPECT_THAT(ast.nodes[2].args, ElementsAre("D", "e f"));
  EXPECT_TRUE(ast.nodes[2].legacy_key_value);
  EXPECT_THAT(ast.nodes[3].args, ElementsAre("k", ""));
}

TEST(ParseAstTest, KeyValueErrors) {
  EXPECT_THAT(ParseAst("FROM a\nENV X=a Y\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("Dockerfile:2: ENV: syntax error - can't find = in \"Y\"")));
  EXPECT_THAT(ParseAst("FROM a\nLABEL onlykey\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("Dockerfile:2: LABEL must have two arguments")));
}

TEST(ParseAstTest, Heredocs) {
  ASSERT_OK_AND_ASSIGN(Ast ast, ParseAst("FROM a\nRUN <<A cat && 3<<-'B' cat\none\nA\n\t\ttwo\n"
                                         "\tB\nRUN x\n"));
  ASSERT_EQ(ast.nodes.size(), 3u);
  const Node& run = ast.nodes[1];
  ASSERT_EQ(run.heredocs.size(), 2u);
  EXPECT_EQ(run.heredocs[0], (Heredoc{"A", "one\n", true, false, 0}));
  EXPECT_EQ(run.heredocs[1], (Heredoc{"B", "two\n", false, true, 3}));
  EXPECT_EQ(run.start_line, 2);
  EXPECT_EQ(run.end_line, 6);
  EXPECT_EQ(ast.nodes[2].start_line, 7);
}

TEST(ParseAstTest, HeredocsNotInExecFormNorOtherInstructions) {
  ASSERT_OK_AND_ASSIGN(Ast ast, ParseAst("FROM a\nRUN [\"cat\", \"<<EOF\"]\nLABEL a=<<EOF\n"));
  EXPECT_THAT(ast.nodes[1].heredocs, IsEmpty());
  EXPECT_EQ(ast.nodes.size(), 3u);
}

TEST(ParseAstTest, UnterminatedHeredoc) {
  EXPECT_THAT(
      ParseAst("FROM a\nRUN <<-EOF\nx\nEOF \n"),
      StatusIs(absl::StatusCode::kInvalidArgument, "Dockerfile:2: unterminated heredoc <<-EOF"));
}

TEST(ParseAstTest, OnbuildCarriesItsTrigger) {
  ASSERT_OK_AND_ASSIGN(Ast ast, ParseAst("FROM a\nONBUILD copy --from=b <<X /x\nhi\nX\n"));
  const Node& on = ast.nodes[1];
  ASSERT_EQ(on.children.size(), 1u);
  EXPECT_EQ(on.children[0].keyword, "COPY");
  EXPECT_THAT(on.children[0].flags, ElementsAre("--from=b"));
  ASSERT_EQ(on.children[0].heredocs.size(), 1u);
  EXPECT_EQ(on.end_line, 4);
}

TEST(SplitRawWordsTest, KeepsQuotesAndEscapes) {
  EXPECT_THAT(SplitRawWords(R"(a="b c"  d\ e 'f g'h "" x\)", '\\'),
              ElementsAre(R"(a="b c")", R"(d\ e)", "'f g'h", "\"\"", "x"));
  EXPECT_THAT(SplitRawWords("a`  b c", '`'), ElementsAre("a` ", "b", "c"));
}

TEST(ParseHeredocWordTest, Forms) {
  EXPECT_FALSE(ParseHeredocWord("<<", '\\'));
  EXPECT_FALSE(ParseHeredocWord("<<<EOF", '\\'));
  EXPECT_FALSE(ParseHeredocWord("cat<<EOF", '\\'));
  EXPECT_EQ(ParseHeredocWord("<<EOF", '\\'), (Heredoc{"EOF", "", true, false, 0}));
  EXPECT_EQ(ParseHeredocWord("<<-\"E O\"", '\\'), (Heredoc{"E O", "", false, true, 0}));
  EXPECT_EQ(ParseHeredocWord("<<E'O'F", '\\'), (Heredoc{"EOF", "", false, false, 0}));
  EXPECT_EQ(ParseHeredocWord("<<\\EOF", '\\'), (Heredoc{"EOF", "", false, false, 0}));
  EXPECT_EQ(ParseHeredocWord("2<<EOF", '\\'), (Heredoc{"EOF", "", true, false, 2}));
}

TEST(ParseJsonStringArrayTest, OnlyArraysOfStrings) {
  EXPECT_EQ(ParseJsonStringArray(" [ \"a\" , \"\\u00e9\" ] "),
            (std::vector<std::string>{"a", "\xC3\xA9"}));
  EXPECT_EQ(ParseJsonStringArray("[]"), std::vector<std::string>{});
  EXPECT_FALSE(ParseJsonStringArray("[\"a\", 1]"));
  EXPECT_FALSE(ParseJsonStringArray("[\"a\",]"));
  EXPECT_FALSE(ParseJsonStringArray("{\"a\": 1}"));
  EXPECT_FALSE(ParseJsonStringArray("[\"a\"] x"));
  EXPECT_FALSE(ParseJsonStringArray("[\"\xFF\"]"));
}

}  // namespace
}  // namespace pier::builder::dockerfile
