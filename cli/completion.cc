// `pier completion bash`: prints a bash completion script generated from the
// CLI itself: the verb table, the global flags, and each verb's flags and
// subcommands as its own `--help` lists them (FlagSet::Usage's "Flags:"
// section and a "Commands:" section). So a new verb or flag completes
// without editing a list here; only flag values the help cannot list (pier
// build -o's output types) are in a table.
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cli/cli.h"
#include "lib/common/flags.h"

namespace pier::cli {
namespace {

struct HelpInfo {
  std::vector<std::string> flags;        // "--name" and "-n"
  std::vector<std::string> value_flags;  // those that take a value
  std::vector<std::string> subcommands;  // from a "Commands:" section
};

// Reads a usage text: flag lines ("  -p, --publish list   help") under
// "Flags:", first words of lines under "Commands:".
HelpInfo ParseHelp(const std::string& text) {
  HelpInfo info;
  std::set<std::string> seen;
  enum { kNone, kFlags, kCommands } section = kNone;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line == "Flags:") {
      section = kFlags;
      continue;
    }
    if (line == "Commands:") {
      section = kCommands;
      continue;
    }
    if (!absl::StartsWith(line, "  ")) {
      if (!line.empty()) section = kNone;
      continue;
    }
    absl::string_view body = absl::StripLeadingAsciiWhitespace(line);
    if (section == kCommands) {
      // Continuation lines of a long entry are indented further.
      if (line.size() - body.size() > 4) continue;
      std::string word(body.substr(0, body.find(' ')));
      if (!word.empty() && word[0] != '-' && seen.insert(word).second) {
        info.subcommands.push_back(word);
      }
    } else if (section == kFlags) {
      std::vector<std::string> names;
      if (body.size() > 3 && body[0] == '-' && body[1] != '-' && body[2] == ',') {
        names.push_back(std::string(body.substr(0, 2)));
        body = absl::StripLeadingAsciiWhitespace(body.substr(3));
      }
      if (!absl::StartsWith(body, "--")) continue;
      size_t end = body.find(' ');
      names.push_back(std::string(body.substr(0, end)));
      absl::string_view rest = end == absl::string_view::npos ? "" : body.substr(end + 1);
      bool takes_value = absl::StartsWith(rest, "string ") || absl::StartsWith(rest, "int ") ||
                         absl::StartsWith(rest, "list ");
      for (const std::string& n : names) {
        if (!seen.insert(n).second) continue;
        info.flags.push_back(n);
        if (takes_value) info.value_flags.push_back(n);
      }
    }
  }
  return info;
}

// Runs a verb with --help and returns what it printed (stdout and stderr).
std::string HelpOf(const Verb& verb) {
  std::ostringstream captured;
  std::streambuf* out = std::cout.rdbuf(captured.rdbuf());
  std::streambuf* err = std::cerr.rdbuf(captured.rdbuf());
  (void)verb.run(Globals(), {"--help"});
  std::cout.rdbuf(out);
  std::cerr.rdbuf(err);
  return captured.str();
}

// Flag values the help text cannot list: the verb, its flag spellings and
// the words offered after them.
struct ValueChoices {
  const char* verb;
  std::vector<std::string> flags;
  const char* values;
};
const std::vector<ValueChoices>& AllValueChoices() {
  static const auto* choices = new std::vector<ValueChoices>{
      {"build",
       {"-o", "--output"},
       "type=registry type=image type=oci type=docker type=local type=tar "
       "compression=gzip compression=zstd compression=uncompressed force-compression=true"},
      {"build", {"--progress"}, "auto tty plain"},
  };
  return *choices;
}

// A bash case pattern of the flags that take a value, or a never-matching one.
std::string CasePattern(const std::vector<std::string>& flags) {
  return flags.empty() ? "--@none@" : absl::StrJoin(flags, "|");
}

void PrintBash(std::ostream& out) {
  HelpInfo globals = ParseHelp(GlobalFlagsUsage());
  std::vector<std::string> verb_names;
  std::ostringstream cases, values;
  for (const ValueChoices& c : AllValueChoices()) {
    std::vector<std::string> patterns;
    for (const std::string& f : c.flags)
      patterns.push_back(absl::StrCat("\"", c.verb, " ", f, "\""));
    values << "    " << absl::StrJoin(patterns, "|") << ") COMPREPLY=($(compgen -W \"" << c.values
           << "\" -- \"$cur\")); return 0 ;;\n";
  }
  for (const Verb& v : AllVerbs()) {
    verb_names.push_back(v.name);
    if (std::string(v.name) == "completion") {
      cases << "    completion) flags=\"-h --help\"; subs=\"bash\" ;;\n";
      continue;
    }
    HelpInfo info = ParseHelp(HelpOf(v));
    cases << "    " << v.name << ") flags=\"" << absl::StrJoin(info.flags, " ") << "\"; subs=\""
          << absl::StrJoin(info.subcommands, " ") << "\" ;;\n";
  }
  out << "# bash completion for pier, generated by `pier completion bash`.\n"
         "# Load it with: source <(pier completion bash)\n"
         "_pier() {\n"
         "  local cur=${COMP_WORDS[COMP_CWORD]}\n"
         "  local i verb='' verb_at=0\n"
         "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
         "    case ${COMP_WORDS[i]} in\n"
         "      "
      << CasePattern(globals.value_flags)
      << ") ((i++)) ;;\n"
         "      -*) ;;\n"
         "      *) verb=${COMP_WORDS[i]}; verb_at=$i; break ;;\n"
         "    esac\n"
         "  done\n"
         "  if [[ -z $verb ]]; then\n"
         "    if [[ $cur == -* ]]; then\n"
         "      COMPREPLY=($(compgen -W \""
      << absl::StrJoin(globals.flags, " ")
      << "\" -- \"$cur\"))\n"
         "    else\n"
         "      COMPREPLY=($(compgen -W \""
      << absl::StrJoin(verb_names, " ")
      << "\" -- \"$cur\"))\n"
         "    fi\n"
         "    return 0\n"
         "  fi\n"
         "  local flags='' subs=''\n"
         "  case $verb in\n"
      << cases.str()
      << "  esac\n"
         "  case \"$verb ${COMP_WORDS[COMP_CWORD-1]}\" in\n"
      << values.str()
      << "  esac\n"
         "  if [[ $cur == -* ]]; then\n"
         "    COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\"))\n"
         "  elif [[ -n $subs && $COMP_CWORD -eq $((verb_at + 1)) ]]; then\n"
         "    COMPREPLY=($(compgen -W \"$subs\" -- \"$cur\"))\n"
         "  else\n"
         "    # A flag's value or an argument: files, as a default.\n"
         "    COMPREPLY=($(compgen -f -- \"$cur\"))\n"
         "  fi\n"
         "  return 0\n"
         "}\n"
         "complete -F _pier pier\n";
}

}  // namespace

int Completion(const Globals&, const std::vector<std::string>& args) {
  FlagSet flags("pier completion", "bash");
  absl::StatusOr<std::vector<std::string>> rest = flags.Parse(args);
  if (!rest.ok()) {
    if (absl::IsCancelled(rest.status())) {
      std::cout << flags.Usage()
                << "\nPrints a bash completion script; load it with\n"
                   "  source <(pier completion bash)\n";
      return 0;
    }
    return Fail(rest.status(), 2);
  }
  if (rest->size() != 1 || (*rest)[0] != "bash") {
    std::cerr << "pier completion: only bash is supported (pier completion bash)\n";
    return 2;
  }
  PrintBash(std::cout);
  return 0;
}

}  // namespace pier::cli
