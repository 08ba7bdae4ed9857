#include "lib/common/flags.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace pier {

FlagSet::FlagSet(std::string program, std::string synopsis)
    : program_(std::move(program)), synopsis_(std::move(synopsis)) {}

void FlagSet::Add(std::string name, std::string shorthand, Kind kind, void* target,
                  std::string help) {
  flags_.push_back(Flag{std::move(name), std::move(shorthand), kind, target, std::move(help)});
}

void FlagSet::String(std::string name, std::string shorthand, std::string* target,
                     std::string help) {
  Add(std::move(name), std::move(shorthand), Kind::kString, target, std::move(help));
}
void FlagSet::Int(std::string name, std::string shorthand, int64_t* target, std::string help) {
  Add(std::move(name), std::move(shorthand), Kind::kInt, target, std::move(help));
}
void FlagSet::Bool(std::string name, std::string shorthand, bool* target, std::string help) {
  Add(std::move(name), std::move(shorthand), Kind::kBool, target, std::move(help));
}
void FlagSet::StringList(std::string name, std::string shorthand, std::vector<std::string>* target,
                         std::string help) {
  Add(std::move(name), std::move(shorthand), Kind::kList, target, std::move(help));
}

FlagSet::Flag* FlagSet::Find(absl::string_view name) {
  for (Flag& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

FlagSet::Flag* FlagSet::FindShort(char c) {
  for (Flag& f : flags_) {
    if (f.shorthand.size() == 1 && f.shorthand[0] == c) return &f;
  }
  return nullptr;
}

bool FlagSet::IsSet(absl::string_view name) const { return set_.count(std::string(name)) > 0; }

absl::Status FlagSet::Set(Flag& flag, absl::string_view value, absl::string_view origin) {
  switch (flag.kind) {
    case Kind::kString:
      *static_cast<std::string*>(flag.target) = std::string(value);
      break;
    case Kind::kInt: {
      int64_t v = 0;
      if (!absl::SimpleAtoi(value, &v)) {
        return absl::InvalidArgumentError(absl::StrCat(origin, "invalid value \"", value,
                                                       "\" for --", flag.name, ": not an integer"));
      }
      *static_cast<int64_t*>(flag.target) = v;
      break;
    }
    case Kind::kBool: {
      bool v = false;
      if (!absl::SimpleAtob(value, &v)) {
        return absl::InvalidArgumentError(absl::StrCat(origin, "invalid value \"", value,
                                                       "\" for --", flag.name, ": not a boolean"));
      }
      *static_cast<bool*>(flag.target) = v;
      break;
    }
    case Kind::kList:
      static_cast<std::vector<std::string>*>(flag.target)->emplace_back(value);
      break;
  }
  set_.insert(flag.name);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> FlagSet::Parse(const std::vector<std::string>& args,
                                                        bool stop_at_first_positional) {
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      positional.insert(positional.end(), args.begin() + i + 1, args.end());
      break;
    }
    if (arg == "--help" || (arg == "-h" && FindShort('h') == nullptr)) {
      return absl::CancelledError(kHelpRequested);
    }
    if (arg.size() > 2 && arg[0] == '-' && arg[1] == '-') {
      absl::string_view body = absl::string_view(arg).substr(2);
      std::string name(body);
      std::string value;
      bool has_value = false;
      if (size_t eq = body.find('='); eq != absl::string_view::npos) {
        name = std::string(body.substr(0, eq));
        value = std::string(body.substr(eq + 1));
        has_value = true;
      }
      Flag* flag = Find(name);
      if (flag == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("unknown flag: --", name));
      }
      if (!has_value) {
        if (flag->kind == Kind::kBool) {
          value = "true";
        } else if (i + 1 < args.size()) {
          value = args[++i];
        } else {
          return absl::InvalidArgumentError(absl::StrCat("flag needs an argument: --", name));
        }
      }
      if (absl::Status s = Set(*flag, value, ""); !s.ok()) return s;
      set_on_command_line_.insert(flag->name);
      continue;
    }
    if (arg.size() > 1 && arg[0] == '-') {
      // One or more one-letter flags: -it, -p80:80, -p 80:80.
      for (size_t j = 1; j < arg.size(); ++j) {
        Flag* flag = FindShort(arg[j]);
        if (flag == nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat("unknown shorthand flag: '", std::string(1, arg[j]), "' in ", arg));
        }
        if (flag->kind == Kind::kBool) {
          std::string value = "true";
          if (j + 1 < arg.size() && arg[j + 1] == '=') {
            value = arg.substr(j + 2);
            j = arg.size();
          }
          if (absl::Status s = Set(*flag, value, ""); !s.ok()) return s;
          set_on_command_line_.insert(flag->name);
          continue;
        }
        std::string value;
        if (j + 1 < arg.size()) {
          value = arg.substr(j + 1);
          if (!value.empty() && value[0] == '=') value.erase(0, 1);
        } else if (i + 1 < args.size()) {
          value = args[++i];
        } else {
          return absl::InvalidArgumentError(
              absl::StrCat("flag needs an argument: -", std::string(1, arg[j])));
        }
        if (absl::Status s = Set(*flag, value, ""); !s.ok()) return s;
        set_on_command_line_.insert(flag->name);
        break;
      }
      continue;
    }
    positional.push_back(arg);
    if (stop_at_first_positional) {
      positional.insert(positional.end(), args.begin() + i + 1, args.end());
      break;
    }
  }
  return positional;
}

absl::Status FlagSet::ApplyConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("config file ", path, ": cannot open"));
  }
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() || text[0] == '#') continue;
    size_t eq = text.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_no, ": expected `name = value`"));
    }
    std::string name(absl::StripAsciiWhitespace(text.substr(0, eq)));
    absl::string_view value = absl::StripAsciiWhitespace(text.substr(eq + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    Flag* flag = Find(name);
    if (flag == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_no, ": unknown setting \"", name, "\""));
    }
    if (set_on_command_line_.count(flag->name) > 0) continue;  // flags win
    if (absl::Status s = Set(*flag, value, absl::StrCat(path, ":", line_no, ": ")); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

std::string FlagSet::Usage() const {
  std::ostringstream out;
  out << "Usage: " << program_ << " " << synopsis_ << "\n\nFlags:\n";
  for (const Flag& f : flags_) {
    std::string lhs = f.shorthand.empty() ? "    " : absl::StrCat("-", f.shorthand, ", ");
    absl::StrAppend(&lhs, "--", f.name);
    switch (f.kind) {
      case Kind::kString:
        absl::StrAppend(&lhs, " string");
        break;
      case Kind::kInt:
        absl::StrAppend(&lhs, " int");
        break;
      case Kind::kList:
        absl::StrAppend(&lhs, " list");
        break;
      case Kind::kBool:
        break;
    }
    out << "  " << lhs;
    if (lhs.size() < 28)
      out << std::string(28 - lhs.size(), ' ');
    else
      out << "  ";
    out << f.help << "\n";
  }
  out << "  -h, --help                    Print this help\n";
  return out.str();
}

}  // namespace pier
