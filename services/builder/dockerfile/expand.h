// Word expansion for Dockerfiles (the reference's "environment replacement")
// and the resolution of a build stage's variables, step by step.
//
// Word expansion (ExpandWord):
//   $VAR  ${VAR}                 value, or "" when unset
//   ${VAR:-word} ${VAR-word}     word when VAR is unset or empty (":") / unset
//   ${VAR:+word} ${VAR+word}     word when VAR is set and non-empty (":") / set
//   ${VAR:?msg}  ${VAR?msg}      error "VAR: msg" when unset or empty (":") / unset
//   ${VAR#pat} ${VAR##pat} ${VAR%pat} ${VAR%%pat}   remove shortest/longest prefix/suffix
//   ${VAR/pat/repl} ${VAR//pat/repl}                replace first/all matches
//   'single quotes' keep everything literal; "double quotes" allow $ expansion;
//   the escape character (`\` or the `# escape=` one) makes the next character
//   literal (inside double quotes only before `"`, `$` and itself).
// `word` may itself hold expansions: ${A:-${B:-x}}. Patterns are shell globs
// (`*`, `?`, `[...]`; escape for a literal). Anything else after ${NAME is an
// error ("unsupported modifier (:=) in substitution"), as are an unterminated
// `${` ("missing '}'"), `${}` and unterminated quotes.
//
// Where it applies (the reference's list): ADD COPY (sources, dest and the
// --chown --chmod --from --exclude --checksum flags, here-document bodies
// whose delimiter is unquoted) ENV LABEL (keys and values) EXPOSE FROM (image
// and --platform, with the global scope only) STOPSIGNAL USER VOLUME WORKDIR,
// ARG defaults and RUN --mount values. Never RUN/CMD/ENTRYPOINT/SHELL/
// HEALTHCHECK commands (the shell expands those) nor ONBUILD (stored raw).
//
// Variable resolution (ResolveStage / ResolveAll) follows docker's scoping:
// global ARGs (before the first FROM) and the automatic platform ARGs are seen
// by FROM only; inside a stage an ARG is visible from its line on, takes the
// --build-arg value when one is given, else its default, else (for `ARG NAME`)
// the global value of NAME; ENV wins over ARG of the same name; a stage built
// FROM another stage inherits its ENV, ARGs and WORKDIR; every value of one
// instruction is expanded with the variables as they were before it. The
// predefined proxy ARGs (HTTP_PROXY ...) reach RUN's environment when given as
// --build-arg even without an ARG, but are not expanded unless declared.
//
// Errors: InvalidArgument; the resolvers prefix "Dockerfile:<line>: <KEYWORD>: ".
// Ownership: plain values. Thread safety: stateless functions; VarSet is a
// value type (not synchronised).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/builder/dockerfile/instructions.h"

namespace pier::builder::dockerfile {

// Returns the value of a variable, or nullptr when it is unset.
using VarLookup = absl::FunctionRef<const std::string*(absl::string_view name)>;

// Variables in order of first definition; setting one again replaces its
// value in place.
class VarSet {
 public:
  VarSet() = default;
  // From "NAME=value" entries (an image config's Env); entries without '=' are
  // set to "".
  static VarSet FromEnvList(const std::vector<std::string>& env);

  void Set(absl::string_view name, absl::string_view value);
  // nullptr when unset.
  const std::string* Get(absl::string_view name) const;
  bool Has(absl::string_view name) const { return Get(name) != nullptr; }
  size_t size() const { return entries_.size(); }
  const std::vector<std::pair<std::string, std::string>>& entries() const { return entries_; }
  // "NAME=value" entries, in order.
  std::vector<std::string> ToEnvList() const;

  bool operator==(const VarSet&) const = default;

 private:
  std::vector<std::pair<std::string, std::string>> entries_;
};

// Expands `word` as one word (blanks are kept). InvalidArgument on a syntax
// error or a ${VAR?msg} whose VAR is unset.
absl::StatusOr<std::string> ExpandWord(absl::string_view word, VarLookup lookup,
                                       char escape = '\\');

// Expands `text` and splits it into words at unquoted blanks, as a shell
// would: unquoted expansions are split too, quoted ones are not.
absl::StatusOr<std::vector<std::string>> ExpandWords(absl::string_view text, VarLookup lookup,
                                                     char escape = '\\');

// Expands a here-document body: `$` expansions and escapes before `$` and the
// escape character; quotes are ordinary characters.
absl::StatusOr<std::string> ExpandHeredoc(absl::string_view content, VarLookup lookup,
                                          char escape = '\\');

// A platform "os/arch[/variant]".
struct Platform {
  std::string os;
  std::string arch;
  std::string variant;
  std::string ToString() const;
};
// InvalidArgument unless `text` is "os/arch" or "os/arch/variant".
absl::StatusOr<Platform> ParsePlatform(absl::string_view text);

// True for HTTP_PROXY, http_proxy, HTTPS_PROXY, https_proxy, FTP_PROXY,
// ftp_proxy, NO_PROXY, no_proxy, ALL_PROXY, all_proxy.
bool IsPredefinedProxyArg(absl::string_view name);

// What the caller of a build supplies.
struct BuildOptions {
  std::map<std::string, std::string> build_args;  // --build-arg NAME=value
  std::string build_platform = "linux/amd64";     // the builder's platform
  std::string target_platform;                    // empty: build_platform
};

// The global scope: the automatic platform ARGs (BUILDPLATFORM BUILDOS
// BUILDARCH BUILDVARIANT TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT)
// and the ARGs before the first FROM. InvalidArgument for a malformed
// platform or a failed expansion of a default.
absl::StatusOr<VarSet> ResolveGlobalArgs(const Dockerfile& dockerfile, const BuildOptions& options);

// A stage's FROM with its words expanded in the global scope.
struct ResolvedFrom {
  std::string image;                 // expanded image reference (or stage name)
  std::string platform;              // expanded --platform; empty when absent
  std::optional<size_t> base_stage;  // set when `image` names an earlier stage
};
absl::StatusOr<ResolvedFrom> ResolveFrom(const Dockerfile& dockerfile, size_t stage,
                                         const VarSet& globals);

// What a stage starts from: its base image's config, or the final state of
// the stage it is built FROM.
struct StageBase {
  std::vector<std::string> env;  // "NAME=value"
  std::string workdir;           // empty means "/"
  VarSet args;                   // ARGs inherited from a parent stage
};

// One instruction of a stage after resolution.
struct ResolvedStep {
  Instruction instruction;           // words expanded where the reference allows
  VarSet env;                        // ENV after this instruction
  VarSet args;                       // ARGs in scope (with a value) after this instruction
  std::string workdir;               // working directory after this instruction
  std::vector<std::string> run_env;  // RUN only: the environment its command gets
};

struct ResolvedStage {
  size_t index = 0;
  std::string name;
  ResolvedFrom from;
  std::vector<ResolvedStep> steps;
  VarSet env;  // final
  VarSet args;
  std::string workdir;
};

// Resolves one stage from `base`. InvalidArgument "Dockerfile:<line>: ..." on
// an expansion error, an invalid port after expansion, an empty VOLUME, a
// malformed --mount after expansion, or COPY --from=<index> not naming an
// earlier stage.
absl::StatusOr<ResolvedStage> ResolveStage(const Dockerfile& dockerfile, size_t stage,
                                           const VarSet& globals, const BuildOptions& options,
                                           const StageBase& base);

// Returns the base of an image by reference and platform (its config's Env
// and WorkingDir), e.g. by pulling its config. Not called for "scratch".
using ImageBaseFn = absl::FunctionRef<absl::StatusOr<StageBase>(const std::string& image,
                                                                const std::string& platform)>;

// Resolves every stage, in order: a stage FROM an earlier stage starts from
// that stage's final ENV, ARGs and WORKDIR, otherwise from image_base().
// Errors of image_base() are returned as they are.
absl::StatusOr<std::vector<ResolvedStage>> ResolveAll(const Dockerfile& dockerfile,
                                                      const BuildOptions& options,
                                                      ImageBaseFn image_base);

// Cleans a slash-separated absolute path ("/a/./b/../c/" -> "/a/c").
std::string CleanAbsPath(absl::string_view path);

}  // namespace pier::builder::dockerfile
