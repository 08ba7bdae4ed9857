// Command-line flags for the Pier daemons and the `pier` CLI.
//
// Flags use docker's spelling: `--name=value`, `--name value`, `--bool`,
// `--bool=false`, a one-letter alias (`-p 80:80`, `-p80:80`), grouped one-letter
// booleans (`-it`), repeatable list flags (`-e A=1 -e B=2`), and `--` to end
// flags. `--help` (and `-h`, unless a flag claims it, as `pier run -h` does
// for --hostname) is answered by Parse() with kHelpRequested.
//
// Daemons also read `--config=FILE`: lines of `name = value` (values may be
// quoted, `#` starts a comment). A value from the file applies only when the
// same flag was not given on the command line, so flags win over the file.
//
// Thread safety: a FlagSet is used from one thread while parsing.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pier {

class FlagSet {
 public:
  // Returned (as a kCancelled status with this message) when --help was asked.
  static constexpr absl::string_view kHelpRequested = "help requested";

  FlagSet(std::string program, std::string synopsis);

  // Registers flags. `shorthand` is "" or one letter. Targets must outlive Parse.
  void String(std::string name, std::string shorthand, std::string* target, std::string help);
  void Int(std::string name, std::string shorthand, int64_t* target, std::string help);
  void Bool(std::string name, std::string shorthand, bool* target, std::string help);
  void StringList(std::string name, std::string shorthand, std::vector<std::string>* target,
                  std::string help);

  // Parses args (not including the program name). Returns the positional
  // arguments. With `stop_at_first_positional`, everything from the first
  // positional argument on is returned untouched (for `pier run IMAGE CMD...`).
  // InvalidArgument names the bad flag or value.
  absl::StatusOr<std::vector<std::string>> Parse(const std::vector<std::string>& args,
                                                 bool stop_at_first_positional = false);

  // Applies a `name = value` file for flags not set on the command line.
  // NotFound when the file is missing, InvalidArgument (with line number)
  // for a malformed line or an unknown flag.
  absl::Status ApplyConfigFile(const std::string& path);

  // True when the flag was given on the command line or in a config file.
  bool IsSet(absl::string_view name) const;

  // "Usage: <program> <synopsis>\n\nFlags:\n  -p, --publish list   help\n...".
  std::string Usage() const;

 private:
  enum class Kind { kString, kInt, kBool, kList };
  struct Flag {
    std::string name;
    std::string shorthand;
    Kind kind;
    void* target;
    std::string help;
  };

  Flag* Find(absl::string_view name);
  Flag* FindShort(char c);
  absl::Status Set(Flag& flag, absl::string_view value, absl::string_view origin);
  void Add(std::string name, std::string shorthand, Kind kind, void* target, std::string help);

  std::string program_;
  std::string synopsis_;
  std::vector<Flag> flags_;
  std::set<std::string> set_;
  std::set<std::string> set_on_command_line_;
};

}  // namespace pier
