// .dockerignore: which files of a build context are sent to the builder.
//
// Matcher follows docker's rules for the file:
//   - one pattern per line; a line whose first character is '#' is a comment;
//     blank lines are skipped; surrounding blanks are trimmed;
//   - a leading '!' makes an exception (re-includes what earlier lines excluded);
//   - patterns are cleaned like Go's filepath.Clean and a leading '/' is dropped,
//     so "/foo/bar", "./foo/bar" and "foo/bar/" all mean "foo/bar";
//   - Go filepath.Match syntax: '*' (any run of non-'/' characters), '?' (one
//     non-'/' character), '[...]' classes ('^' negates, ranges a-z), '\' escapes;
//     plus '**': "**/" matches any number of directories (zero included) and a
//     '**' elsewhere matches any run of characters, '/' included;
//   - a pattern excludes a path when it matches the path or one of its parent
//     directories, so excluding a directory excludes everything below it;
//   - the last matching line wins, so an exception can re-include files under
//     an excluded directory.
//
// WalkContext() lists a context directory through a Matcher. It never follows
// symlinks (they are listed as symlinks, whatever they point to), so nothing
// outside the context is read; the Dockerfile and .dockerignore are always
// listed, as docker always sends them.
//
// Ownership: Matcher is a value. Thread safety: a const Matcher may be used
// from several threads; WalkContext is reentrant.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pier::builder::dockerfile {

class Matcher {
 public:
  Matcher() = default;  // matches nothing

  // Parses a .dockerignore file. InvalidArgument "dockerignore:<line>: ..." for
  // a malformed pattern (a lone '!', an unterminated '[' class).
  static absl::StatusOr<Matcher> Parse(absl::string_view dockerignore);

  // Builds from patterns already split into lines ("!x" for exceptions), as
  // given on a command line. Errors as Parse().
  static absl::StatusOr<Matcher> FromPatterns(const std::vector<std::string>& patterns);

  // Whether `path` (relative to the context root, '/'-separated; a leading
  // "./" or "/" is ignored) is excluded.
  bool Matches(absl::string_view path) const;

  // Whether any pattern is an exception ('!').
  bool HasExceptions() const { return has_exceptions_; }

  // The cleaned patterns, exceptions with their '!'.
  std::vector<std::string> Patterns() const;

  // One element of a compiled pattern.
  struct Token {
    enum class Kind {
      kLiteral,   // one character
      kStar,      // '*': any run of non-'/' characters
      kQuestion,  // '?': one non-'/' character
      kClass,     // '[...]'
      kAnyDirs,   // "**/": nothing, or anything ending in '/'
      kAnything,  // "**" elsewhere: any run of characters
    };
    Kind kind = Kind::kLiteral;
    char literal = 0;
    bool negated = false;                       // kClass
    std::vector<std::pair<char, char>> ranges;  // kClass
  };
  struct Pattern {
    std::string text;  // cleaned, without '!'
    bool exception = false;
    std::vector<Token> tokens;
  };

 private:
  absl::Status Add(absl::string_view line, int line_number);

  std::vector<Pattern> patterns_;
  bool has_exceptions_ = false;
};

// One entry of a build context.
struct ContextEntry {
  enum class Type { kFile, kDirectory, kSymlink, kOther };
  std::string path;  // relative to the context root, '/'-separated
  Type type = Type::kFile;
  std::string target;  // kSymlink: the link's target, as stored (never followed)
};

// Lists the entries of `context_dir` that `matcher` does not exclude, sorted
// by path. A directory is listed when it is not excluded or when something
// below it is listed (an exception re-included it). `dockerfile` (relative to
// the context) and ".dockerignore" are always listed when they exist.
// NotFound when context_dir does not exist; other errno-derived codes naming
// the path when a directory cannot be read.
absl::StatusOr<std::vector<ContextEntry>> WalkContext(const std::string& context_dir,
                                                      const Matcher& matcher,
                                                      absl::string_view dockerfile = "Dockerfile");

// Reads `context_dir`/.dockerignore (a missing file excludes nothing) and
// walks the context with it. Errors as Matcher::Parse() and WalkContext().
absl::StatusOr<std::vector<ContextEntry>> ListContext(const std::string& context_dir,
                                                      absl::string_view dockerfile = "Dockerfile");

}  // namespace pier::builder::dockerfile
