// The lexical layer of the Dockerfile frontend: Dockerfile text -> AST.
//
// ParseAst() handles what the Dockerfile reference calls the format, before any
// instruction is given a meaning:
//   - parser directives at the very top (`# syntax=`, `# escape=`, `# check=`);
//     keys are case-insensitive, each may appear once; the first line that is
//     not a known directive ends them (later ones are plain comments);
//   - comments (a line whose first non-blank character is '#'), also between
//     the lines of a continued instruction;
//   - line continuations with the escape character (`\` or `` ` ``); empty
//     lines inside a continuation are skipped (with a warning, as BuildKit);
//   - case-insensitive instruction keywords, flags (`--name[=value]`) before
//     the arguments, JSON (exec) form for RUN CMD ENTRYPOINT SHELL (and the
//     JSON forms of ADD COPY VOLUME, and HEALTHCHECK CMD); an invalid JSON
//     array falls back to the shell / whitespace form, as docker does;
//   - here-documents for RUN, COPY and ADD (also behind ONBUILD): `<<EOF`,
//     `<<-EOF` (leading tabs stripped), quoted delimiters (`<<"EOF"`,
//     `<<'EOF'`) which disable expansion, several on one line.
//
// Every node keeps its keyword, flags, arguments, the logical line (continuations
// joined, comments dropped), its here-documents and its first and last line.
// Meaning (typed instructions, validation) is instructions.h; variable
// expansion is expand.h.
//
// Errors are InvalidArgument with the message "Dockerfile:<line>: <what>".
//
// Ownership: results are plain values. Thread safety: stateless functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pier::builder::dockerfile {

// A parser directive from the top of the file, key lowercased.
struct Directive {
  std::string name;   // "syntax", "escape" or "check"
  std::string value;  // as written, surrounding blanks removed
  int line = 0;
};

// A here-document attached to an instruction.
struct Heredoc {
  std::string name;     // the delimiter word with quotes removed: "EOF"
  std::string content;  // body lines, each ending in '\n'; for `<<-` leading tabs are removed
  bool expand = true;   // false when any part of the delimiter was quoted or escaped
  bool chomp = false;   // the `<<-` form
  int fd = 0;           // file descriptor prefix ("3<<EOF"); 0 when absent

  bool operator==(const Heredoc&) const = default;
};

// A non-fatal remark about the input (BuildKit reports the same as warnings).
struct Warning {
  int line = 0;
  std::string message;
};

// One instruction.
//
// `args` by keyword:
//   FROM EXPOSE                  whitespace-separated words
//   ADD COPY VOLUME              the JSON array (json=true) or whitespace-separated words
//   RUN CMD ENTRYPOINT SHELL     the JSON array (json=true) or one string: the rest of the line
//   HEALTHCHECK                  the type word ("CMD"/"NONE") then, as for CMD, the command
//   ENV LABEL                    key, value, key, value ... (raw: quotes and escapes kept);
//                                legacy_key_value for the `ENV key value` form
//   ARG                          words, raw (`NAME` or `NAME=default`)
//   MAINTAINER STOPSIGNAL USER WORKDIR   one string: the rest of the line
//   ONBUILD                      one string: the trigger text; children[0] is its node
// An instruction without arguments has empty `args`; instructions.h reports it.
struct Node {
  std::string keyword;             // uppercase: "RUN"
  std::string keyword_as_written;  // "run"
  std::vector<std::string> flags;  // "--from=build", quotes removed
  std::vector<std::string> args;
  bool json = false;
  bool legacy_key_value = false;
  std::string original;           // the logical line (continuations joined, comments dropped)
  std::vector<Heredoc> heredocs;  // in the order of their `<<` words (ONBUILD: on children[0])
  std::vector<Node> children;     // ONBUILD: the trigger instruction
  int start_line = 0;
  int end_line = 0;  // last line, here-document bodies included
};

// The parse tree of a whole Dockerfile.
struct Ast {
  std::vector<Directive> directives;
  char escape = '\\';
  std::vector<Node> nodes;
  std::vector<Warning> warnings;
};

// Parses Dockerfile text. InvalidArgument "Dockerfile:<line>: <what>" on an
// unknown instruction, a repeated or invalid directive, an unterminated
// here-document or a malformed ENV/LABEL pair.
absl::StatusOr<Ast> ParseAst(absl::string_view dockerfile);

// True for the eighteen instruction keywords (uppercase).
bool IsKnownInstruction(absl::string_view keyword);

// Splits `text` into words at unquoted, unescaped blanks. Quotes and escape
// characters are kept in the words (expansion removes them later), so
// `a="b c" d\ e` gives {`a="b c"`, `d\ e`}. A trailing lone escape is dropped.
std::vector<std::string> SplitRawWords(absl::string_view text, char escape);

// Recognises one here-document word (`<<EOF`, `<<-"EOF"`, `3<<EOF`); nullopt
// when `word` is not one. The returned Heredoc has no content.
std::optional<Heredoc> ParseHeredocWord(absl::string_view word, char escape);

// Parses `text` as a JSON array of strings; nullopt when it is not one.
std::optional<std::vector<std::string>> ParseJsonStringArray(absl::string_view text);

}  // namespace pier::builder::dockerfile
