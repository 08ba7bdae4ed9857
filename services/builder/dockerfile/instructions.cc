#include "services/builder/dockerfile/instructions.h"

#include <initializer_list>
#include <map>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "lib/common/status.h"

namespace pier::builder::dockerfile {
namespace {

absl::Status LineError(int line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("Dockerfile:", line, ": ", what));
}

bool HasVariable(absl::string_view s) { return s.find('$') != absl::string_view::npos; }

// ---- Flags -----------------------------------------------------------------

enum class FlagKind { kString, kBool, kList };

struct FlagSpec {
  absl::string_view name;
  FlagKind kind;
};

// The flags of one instruction, checked against the flags it accepts.
class Flags {
 public:
  static absl::StatusOr<Flags> Parse(const Node& node, std::initializer_list<FlagSpec> specs) {
    Flags flags;
    for (const std::string& raw : node.flags) {
      absl::string_view word = raw;
      if (!absl::ConsumePrefix(&word, "--") || word.empty()) {
        return LineError(node.start_line,
                         absl::StrCat("malformed flag for ", node.keyword, ": ", raw));
      }
      size_t eq = word.find('=');
      absl::string_view name = word.substr(0, eq);
      std::optional<std::string> value;
      if (eq != absl::string_view::npos) value = std::string(word.substr(eq + 1));
      const FlagSpec* spec = nullptr;
      for (const FlagSpec& s : specs) {
        if (s.name == name) spec = &s;
      }
      if (spec == nullptr) {
        return LineError(node.start_line,
                         absl::StrCat("unknown flag for ", node.keyword, ": --", name));
      }
      std::vector<std::string>& slot = flags.values_[std::string(name)];
      if (!slot.empty() && spec->kind != FlagKind::kList) {
        return LineError(node.start_line, absl::StrCat("flag --", name, " for ", node.keyword,
                                                       " given more than once"));
      }
      switch (spec->kind) {
        case FlagKind::kString:
        case FlagKind::kList:
          if (!value) {
            return LineError(node.start_line,
                             absl::StrCat("flag --", name, " for ", node.keyword,
                                          " requires a value (--", name, "=<value>)"));
          }
          slot.push_back(*value);
          break;
        case FlagKind::kBool: {
          std::string v = absl::AsciiStrToLower(value.value_or("true"));
          if (v.empty()) v = "true";
          if (v != "true" && v != "false") {
            return LineError(node.start_line,
                             absl::StrCat("flag --", name, " for ", node.keyword,
                                          " expects a boolean, got \"", *value, "\""));
          }
          slot.push_back(v);
          break;
        }
      }
    }
    return flags;
  }

  std::string String(absl::string_view name) const {
    auto it = values_.find(std::string(name));
    return it == values_.end() || it->second.empty() ? "" : it->second.back();
  }
  std::optional<bool> Bool(absl::string_view name) const {
    auto it = values_.find(std::string(name));
    if (it == values_.end() || it->second.empty()) return std::nullopt;
    return it->second.back() == "true";
  }
  std::vector<std::string> List(absl::string_view name) const {
    auto it = values_.find(std::string(name));
    return it == values_.end() ? std::vector<std::string>{} : it->second;
  }
  bool Has(absl::string_view name) const { return values_.count(std::string(name)) > 0; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
};

// ---- Argument checks ---------------------------------------------------------

absl::Status AtLeastOne(const Node& node) {
  if (node.args.empty()) {
    return LineError(node.start_line,
                     absl::StrCat(node.keyword, " requires at least one argument"));
  }
  return absl::OkStatus();
}

absl::Status ExactlyOne(const Node& node) {
  if (node.args.size() != 1 || node.args[0].empty()) {
    return LineError(node.start_line, absl::StrCat(node.keyword, " requires exactly one argument"));
  }
  return absl::OkStatus();
}

absl::Status NoFlags(const Node& node) { return Flags::Parse(node, {}).status(); }

absl::StatusOr<CommandLine> ParseCommandLine(const Node& node, const std::vector<std::string>& args,
                                             bool json) {
  CommandLine cmd;
  if (json) {
    cmd.exec_form = true;
    cmd.exec = args;
    return cmd;
  }
  if (args.empty()) {
    return LineError(node.start_line,
                     absl::StrCat(node.keyword, " requires at least one argument"));
  }
  cmd.shell = args[0];
  return cmd;
}

// ---- Literal value checks ----------------------------------------------------

bool IsOctalMode(absl::string_view s) {
  if (s.empty() || s.size() > 4) return false;
  for (char c : s) {
    if (c < '0' || c > '7') return false;
  }
  return true;
}

// chmod(1) symbolic modes: clause[,clause...], clause = [ugoa]*([-+=]([rwxXst]*|[ugo]))+
bool IsSymbolicMode(absl::string_view s) {
  if (s.empty()) return false;
  for (absl::string_view clause : absl::StrSplit(s, ',')) {
    size_t i = 0;
    while (i < clause.size() &&
           absl::string_view("ugoa").find(clause[i]) != absl::string_view::npos) {
      ++i;
    }
    if (i == clause.size()) return false;
    while (i < clause.size()) {
      if (absl::string_view("+-=").find(clause[i]) == absl::string_view::npos) return false;
      ++i;
      if (i < clause.size() &&
          absl::string_view("ugo").find(clause[i]) != absl::string_view::npos) {
        ++i;
        continue;
      }
      while (i < clause.size() &&
             absl::string_view("rwxXst").find(clause[i]) != absl::string_view::npos) {
        ++i;
      }
    }
  }
  return true;
}

bool IsHex(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool IsValidStageName(absl::string_view s) {
  if (s.empty() || !absl::ascii_islower(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!absl::ascii_islower(static_cast<unsigned char>(c)) &&
        !absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

bool IsValidSignal(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-') return false;
  }
  return true;
}

// Splits USER's "user:group" at the first ':' outside ${...}.
void SplitUserGroup(absl::string_view s, User* user) {
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
      ++depth;
      ++i;
    } else if (s[i] == '}' && depth > 0) {
      --depth;
    } else if (s[i] == ':' && depth == 0) {
      user->user = std::string(s.substr(0, i));
      user->group = std::string(s.substr(i + 1));
      return;
    }
  }
  user->user = std::string(s);
}

// Splits a --mount value into its comma-separated fields; a field may be
// double-quoted, with "" standing for one quote (CSV).
std::vector<std::string> SplitCsv(absl::string_view s) {
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < s.size() && s[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.push_back(std::move(field));
      field.clear();
    } else {
      field += c;
    }
  }
  fields.push_back(std::move(field));
  return fields;
}

// Parses a --mount value; with `literal_only`, values holding a `$` are not
// checked (they are checked again after expansion).
using ValueExpander = absl::FunctionRef<absl::StatusOr<std::string>(absl::string_view)>;

absl::StatusOr<Mount> ParseMount(absl::string_view spec, bool literal_only,
                                 const ValueExpander* expand) {
  Mount m;
  std::optional<bool> readonly;
  auto check = [&](absl::string_view v) { return !(literal_only && HasVariable(v)); };
  auto parse_bool = [&](absl::string_view key, const std::optional<std::string>& v,
                        bool* out) -> absl::Status {
    if (!v) {
      *out = true;
      return absl::OkStatus();
    }
    std::string lv = absl::AsciiStrToLower(*v);
    if (lv == "true" || lv == "1") {
      *out = true;
    } else if (lv == "false" || lv == "0") {
      *out = false;
    } else if (check(*v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid value for mount option ", key, ": \"", *v, "\""));
    }
    return absl::OkStatus();
  };
  for (const std::string& field : SplitCsv(spec)) {
    if (field.empty()) continue;
    size_t eq = field.find('=');
    std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(field.substr(0, eq)));
    std::optional<std::string> value;
    if (eq != std::string::npos) {
      value = field.substr(eq + 1);
      if (expand != nullptr) {
        ASSIGN_OR_RETURN(*value, (*expand)(*value));
      }
    }
    if (key == "ro" || key == "readonly" || key == "rw" || key == "readwrite") {
      bool b = true;
      RETURN_IF_ERROR(parse_bool(key, value, &b));
      readonly = (key == "ro" || key == "readonly") ? b : !b;
      continue;
    }
    if (key == "required") {
      RETURN_IF_ERROR(parse_bool(key, value, &m.required));
      continue;
    }
    if (!value) {
      return absl::InvalidArgumentError(
          absl::StrCat("mount option \"", key, "\" requires a value (", key, "=<value>)"));
    }
    std::string& v = *value;
    if (key == "type") {
      if (check(v) && v != "bind" && v != "cache" && v != "tmpfs" && v != "secret" && v != "ssh") {
        return absl::InvalidArgumentError(absl::StrCat("unsupported mount type \"", v, "\""));
      }
      m.type = v;
    } else if (key == "target" || key == "dst" || key == "destination") {
      m.target = v;
    } else if (key == "source" || key == "src") {
      m.source = v;
    } else if (key == "from") {
      m.from = v;
    } else if (key == "id") {
      m.id = v;
    } else if (key == "sharing") {
      if (check(v) && v != "shared" && v != "private" && v != "locked") {
        return absl::InvalidArgumentError(
            absl::StrCat("unsupported sharing value \"", v, "\" (shared, private or locked)"));
      }
      m.sharing = v;
    } else if (key == "mode") {
      if (check(v) && !IsOctalMode(v)) {
        return absl::InvalidArgumentError(absl::StrCat("invalid mount mode \"", v, "\" (octal)"));
      }
      m.mode = v;
    } else if (key == "uid" || key == "gid") {
      uint32_t id;
      if (check(v) && !absl::SimpleAtoi(v, &id)) {
        return absl::InvalidArgumentError(absl::StrCat("invalid mount ", key, " \"", v, "\""));
      }
      (key == "uid" ? m.uid : m.gid) = v;
    } else if (key == "size") {
      m.size = v;
    } else if (key == "env") {
      m.env = v;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected key '", key, "' in '", field, "'"));
    }
  }
  m.readonly = readonly.value_or(m.type == "bind");
  bool needs_target = m.type == "bind" || m.type == "cache" || m.type == "tmpfs";
  if (needs_target && m.target.empty() && check(m.type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("mount type ", m.type, " requires a target (target=<path>)"));
  }
  return m;
}

// ---- Instructions ------------------------------------------------------------

absl::StatusOr<From> ParseFrom(const Node& node) {
  ASSIGN_OR_RETURN(Flags flags, Flags::Parse(node, {{"platform", FlagKind::kString}}));
  From from;
  from.platform = flags.String("platform");
  const auto& a = node.args;
  if (a.size() == 3 && !absl::EqualsIgnoreCase(a[1], "AS")) {
    return LineError(
        node.start_line,
        absl::StrCat("FROM: expected AS between the image and the stage name, got \"", a[1], "\""));
  }
  if (a.size() != 1 && a.size() != 3) {
    return LineError(node.start_line,
                     "FROM requires either one or three arguments (FROM <image> [AS <name>])");
  }
  from.image = a[0];
  if (a.size() == 3) {
    from.name = absl::AsciiStrToLower(a[2]);
    if (!IsValidStageName(from.name)) {
      return LineError(node.start_line,
                       absl::StrCat("FROM: invalid stage name \"", a[2],
                                    "\": it must start with a letter and contain only letters, "
                                    "digits, '-', '_' and '.'"));
    }
  }
  return from;
}

absl::StatusOr<Run> ParseRun(const Node& node) {
  ASSIGN_OR_RETURN(Flags flags, Flags::Parse(node, {{"mount", FlagKind::kList},
                                                    {"network", FlagKind::kString},
                                                    {"security", FlagKind::kString},
                                                    {"device", FlagKind::kList}}));
  Run run;
  ASSIGN_OR_RETURN(run.command, ParseCommandLine(node, node.args, node.json));
  run.heredocs = node.heredocs;
  run.mount_specs = flags.List("mount");
  for (const std::string& spec : run.mount_specs) {
    absl::StatusOr<Mount> m = ParseMount(spec, /*literal_only=*/true, /*expand=*/nullptr);
    if (!m.ok()) {
      return LineError(node.start_line,
                       absl::StrCat("RUN --mount=", spec, ": ", m.status().message()));
    }
    run.mounts.push_back(*std::move(m));
  }
  run.network = flags.String("network");
  if (!run.network.empty() && !HasVariable(run.network) && run.network != "default" &&
      run.network != "none" && run.network != "host") {
    return LineError(node.start_line, absl::StrCat("RUN: unsupported network mode \"", run.network,
                                                   "\" (default, none or host)"));
  }
  run.security = flags.String("security");
  if (!run.security.empty() && !HasVariable(run.security) && run.security != "sandbox" &&
      run.security != "insecure") {
    return LineError(node.start_line, absl::StrCat("RUN: unsupported security mode \"",
                                                   run.security, "\" (sandbox or insecure)"));
  }
  run.devices = flags.List("device");
  return run;
}

absl::StatusOr<std::vector<KeyValue>> ParsePairs(const Node& node) {
  RETURN_IF_ERROR(AtLeastOne(node));
  if (node.args.size() % 2 != 0) {
    return LineError(node.start_line,
                     absl::StrCat("Bad input to ", node.keyword, ", too many arguments"));
  }
  std::vector<KeyValue> out;
  for (size_t i = 0; i < node.args.size(); i += 2) {
    if (node.args[i].empty()) {
      return LineError(node.start_line, absl::StrCat(node.keyword, " names can not be blank"));
    }
    out.push_back(KeyValue{node.args[i], node.args[i + 1]});
  }
  return out;
}

template <typename T>
absl::Status ParseCopyBase(const Node& node, const Flags& flags, char escape, T* c) {
  if (node.args.size() < 2) {
    return LineError(node.start_line,
                     absl::StrCat(node.keyword,
                                  " requires at least two arguments: one or more sources and a "
                                  "destination"));
  }
  c->json_form = node.json;
  c->dest = node.args.back();
  if (!node.json && ParseHeredocWord(c->dest, escape)) {
    return LineError(node.start_line,
                     absl::StrCat(node.keyword, ": a here-document cannot be the destination"));
  }
  for (size_t i = 0; i + 1 < node.args.size(); ++i) {
    const std::string& src = node.args[i];
    std::optional<Heredoc> h;
    if (!node.json) h = ParseHeredocWord(src, escape);
    if (!h) {
      c->sources.push_back(src);
      continue;
    }
    const Heredoc* body = nullptr;
    for (const Heredoc& d : node.heredocs) {
      if (d.name == h->name) body = &d;
    }
    if (body == nullptr) {
      return LineError(node.start_line,
                       absl::StrCat(node.keyword, ": no body for here-document <<", h->name));
    }
    c->heredocs.push_back(HeredocSource{body->name, body->content, body->expand});
  }
  c->chown = flags.String("chown");
  c->chmod = flags.String("chmod");
  if (!c->chmod.empty() && !HasVariable(c->chmod) && !IsOctalMode(c->chmod) &&
      !IsSymbolicMode(c->chmod)) {
    return LineError(node.start_line,
                     absl::StrCat(node.keyword, ": invalid --chmod value \"", c->chmod,
                                  "\" (octal like 755 or symbolic like u=rwX,go=rX)"));
  }
  c->link = flags.Bool("link").value_or(false);
  c->excludes = flags.List("exclude");
  return absl::OkStatus();
}

absl::StatusOr<Copy> ParseCopy(const Node& node, char escape) {
  ASSIGN_OR_RETURN(Flags flags, Flags::Parse(node, {{"from", FlagKind::kString},
                                                    {"chown", FlagKind::kString},
                                                    {"chmod", FlagKind::kString},
                                                    {"link", FlagKind::kBool},
                                                    {"parents", FlagKind::kBool},
                                                    {"exclude", FlagKind::kList}}));
  Copy c;
  RETURN_IF_ERROR(ParseCopyBase(node, flags, escape, &c));
  c.from = flags.String("from");
  if (flags.Has("from") && c.from.empty()) {
    return LineError(node.start_line, "flag --from for COPY requires a value (--from=<value>)");
  }
  c.parents = flags.Bool("parents").value_or(false);
  return c;
}

absl::StatusOr<Add> ParseAdd(const Node& node, char escape) {
  ASSIGN_OR_RETURN(Flags flags, Flags::Parse(node, {{"chown", FlagKind::kString},
                                                    {"chmod", FlagKind::kString},
                                                    {"link", FlagKind::kBool},
                                                    {"checksum", FlagKind::kString},
                                                    {"keep-git-dir", FlagKind::kBool},
                                                    {"unpack", FlagKind::kBool},
                                                    {"exclude", FlagKind::kList}}));
  Add a;
  RETURN_IF_ERROR(ParseCopyBase(node, flags, escape, &a));
  a.checksum = flags.String("checksum");
  if (!a.checksum.empty() && !HasVariable(a.checksum)) {
    absl::string_view sum = a.checksum;
    bool ok = absl::ConsumePrefix(&sum, "sha256:") ? sum.size() == 64 && IsHex(sum)
                                                   : IsHex(sum) && sum.size() <= 64;
    if (!ok) {
      return LineError(node.start_line,
                       absl::StrCat("ADD: invalid --checksum \"", a.checksum,
                                    "\" (sha256:<64 hex digits>, or a git commit prefix)"));
    }
  }
  a.keep_git_dir = flags.Bool("keep-git-dir");
  a.unpack = flags.Bool("unpack");
  return a;
}

absl::StatusOr<Healthcheck> ParseHealthcheck(const Node& node) {
  RETURN_IF_ERROR(AtLeastOne(node));
  Healthcheck hc;
  std::string type = absl::AsciiStrToUpper(node.args[0]);
  if (type == "NONE") {
    if (node.args.size() != 1) {
      return LineError(node.start_line, "HEALTHCHECK NONE takes no arguments");
    }
    if (!node.flags.empty()) return LineError(node.start_line, "HEALTHCHECK NONE takes no flags");
    hc.none = true;
    return hc;
  }
  if (type != "CMD") {
    return LineError(node.start_line, absl::StrCat("HEALTHCHECK: unknown type \"", node.args[0],
                                                   "\" (CMD or NONE)"));
  }
  ASSIGN_OR_RETURN(Flags flags, Flags::Parse(node, {{"interval", FlagKind::kString},
                                                    {"timeout", FlagKind::kString},
                                                    {"start-period", FlagKind::kString},
                                                    {"start-interval", FlagKind::kString},
                                                    {"retries", FlagKind::kString}}));
  std::vector<std::string> cmd(node.args.begin() + 1, node.args.end());
  if (cmd.empty()) {
    return LineError(node.start_line, "HEALTHCHECK CMD requires a command");
  }
  ASSIGN_OR_RETURN(hc.command, ParseCommandLine(node, cmd, node.json));
  struct {
    absl::string_view flag;
    std::optional<absl::Duration>* out;
  } durations[] = {{"interval", &hc.interval},
                   {"timeout", &hc.timeout},
                   {"start-period", &hc.start_period},
                   {"start-interval", &hc.start_interval}};
  for (auto& d : durations) {
    if (!flags.Has(d.flag)) continue;
    std::string text = flags.String(d.flag);
    absl::StatusOr<absl::Duration> v = ParseDuration(text);
    if (!v.ok()) {
      return LineError(node.start_line, absl::StrCat("HEALTHCHECK: invalid --", d.flag, " \"", text,
                                                     "\": ", v.status().message()));
    }
    if (*v != absl::ZeroDuration() && *v < absl::Milliseconds(1)) {
      return LineError(node.start_line,
                       absl::StrCat("HEALTHCHECK: --", d.flag, " cannot be less than 1ms"));
    }
    *d.out = *v;
  }
  if (flags.Has("retries")) {
    std::string text = flags.String("retries");
    int retries;
    if (!absl::SimpleAtoi(text, &retries)) {
      return LineError(node.start_line,
                       absl::StrCat("HEALTHCHECK: invalid --retries \"", text, "\""));
    }
    if (retries < 0) {
      return LineError(node.start_line,
                       absl::StrCat("HEALTHCHECK: --retries cannot be negative (", retries, ")"));
    }
    hc.retries = retries;
  }
  return hc;
}

absl::StatusOr<Command> ParseCommand(const Node& node, char escape) {
  const std::string& kw = node.keyword;
  if (kw == "FROM") return ParseFrom(node);
  if (kw == "RUN") return ParseRun(node);
  if (kw == "COPY") return ParseCopy(node, escape);
  if (kw == "ADD") return ParseAdd(node, escape);
  if (kw == "HEALTHCHECK") return ParseHealthcheck(node);

  RETURN_IF_ERROR(NoFlags(node));
  if (kw == "CMD" || kw == "ENTRYPOINT") {
    ASSIGN_OR_RETURN(CommandLine cmd, ParseCommandLine(node, node.args, node.json));
    if (kw == "CMD") return Cmd{std::move(cmd)};
    return Entrypoint{std::move(cmd)};
  }
  if (kw == "SHELL") {
    if (!node.json) {
      return LineError(node.start_line, "SHELL requires the arguments to be in JSON form");
    }
    RETURN_IF_ERROR(AtLeastOne(node));
    return Shell{node.args};
  }
  if (kw == "LABEL") {
    ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, ParsePairs(node));
    return Label{std::move(kvs), node.legacy_key_value};
  }
  if (kw == "ENV") {
    ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, ParsePairs(node));
    return Env{std::move(kvs), node.legacy_key_value};
  }
  if (kw == "MAINTAINER") {
    RETURN_IF_ERROR(ExactlyOne(node));
    return Maintainer{node.args[0]};
  }
  if (kw == "EXPOSE") {
    RETURN_IF_ERROR(AtLeastOne(node));
    for (const std::string& port : node.args) {
      if (HasVariable(port)) continue;
      absl::Status s = ParsePortSpec(port).status();
      if (!s.ok()) return LineError(node.start_line, absl::StrCat("EXPOSE: ", s.message()));
    }
    return Expose{node.args};
  }
  if (kw == "VOLUME") {
    RETURN_IF_ERROR(AtLeastOne(node));
    for (const std::string& v : node.args) {
      if (v.empty()) {
        return LineError(node.start_line, "VOLUME specified can not be an empty string");
      }
    }
    return Volume{node.args};
  }
  if (kw == "USER") {
    RETURN_IF_ERROR(ExactlyOne(node));
    User user;
    SplitUserGroup(node.args[0], &user);
    return user;
  }
  if (kw == "WORKDIR") {
    RETURN_IF_ERROR(ExactlyOne(node));
    return Workdir{node.args[0]};
  }
  if (kw == "ARG") {
    RETURN_IF_ERROR(AtLeastOne(node));
    Arg arg;
    for (const std::string& word : node.args) {
      ArgDecl decl;
      size_t eq = word.find('=');
      decl.name = word.substr(0, eq);
      if (eq != std::string::npos) decl.default_value = word.substr(eq + 1);
      if (decl.name.empty()) return LineError(node.start_line, "ARG names can not be blank");
      arg.args.push_back(std::move(decl));
    }
    return arg;
  }
  if (kw == "STOPSIGNAL") {
    RETURN_IF_ERROR(ExactlyOne(node));
    const std::string& sig = node.args[0];
    if (!HasVariable(sig) && !IsValidSignal(sig)) {
      return LineError(node.start_line, absl::StrCat("STOPSIGNAL: invalid signal \"", sig, "\""));
    }
    return Stopsignal{sig};
  }
  if (kw == "ONBUILD") {
    RETURN_IF_ERROR(AtLeastOne(node));
    const Node& child = node.children.at(0);
    if (child.keyword == "ONBUILD") {
      return LineError(node.start_line, "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
    }
    if (child.keyword == "FROM" || child.keyword == "MAINTAINER") {
      return LineError(node.start_line,
                       absl::StrCat(child.keyword, " isn't allowed as an ONBUILD trigger"));
    }
    absl::Status s = ParseCommand(child, escape).status();
    if (!s.ok()) {
      absl::string_view msg = s.message();
      absl::ConsumePrefix(&msg, absl::StrCat("Dockerfile:", node.start_line, ": "));
      return LineError(node.start_line, absl::StrCat("ONBUILD: ", msg));
    }
    return Onbuild{child.keyword, child.original, child.heredocs};
  }
  return LineError(node.start_line, absl::StrCat("unknown instruction: ", node.keyword_as_written));
}

}  // namespace

absl::StatusOr<PortSpec> ParsePortSpec(absl::string_view spec) {
  PortSpec p;
  absl::string_view ports = spec;
  size_t slash = spec.find('/');
  if (slash != absl::string_view::npos) {
    ports = spec.substr(0, slash);
    p.protocol = absl::AsciiStrToLower(spec.substr(slash + 1));
    if (p.protocol != "tcp" && p.protocol != "udp" && p.protocol != "sctp") {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid protocol in port \"", spec, "\" (tcp, udp or sctp)"));
    }
  }
  auto parse = [&](absl::string_view s, uint16_t* out) {
    uint32_t v;
    if (s.empty() || !absl::ascii_isdigit(static_cast<unsigned char>(s[0])) ||
        !absl::SimpleAtoi(s, &v) || v == 0 || v > 65535) {
      return false;
    }
    *out = static_cast<uint16_t>(v);
    return true;
  };
  size_t dash = ports.find('-');
  bool ok = dash == absl::string_view::npos
                ? parse(ports, &p.start) && parse(ports, &p.end)
                : parse(ports.substr(0, dash), &p.start) && parse(ports.substr(dash + 1), &p.end);
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid port \"", spec, "\" (<port>[-<port>][/<protocol>], 1-65535)"));
  }
  if (p.start > p.end) {
    return absl::InvalidArgumentError(absl::StrCat("invalid port range \"", spec, "\""));
  }
  return p;
}

absl::StatusOr<Mount> ParseMountSpec(absl::string_view spec) {
  return ParseMount(spec, /*literal_only=*/false, /*expand=*/nullptr);
}

absl::StatusOr<Mount> ParseMountSpec(absl::string_view spec, ValueExpander expand) {
  return ParseMount(spec, /*literal_only=*/false, &expand);
}

absl::StatusOr<absl::Duration> ParseDuration(absl::string_view text) {
  std::string t = absl::StrReplaceAll(text, {{"\xC2\xB5s", "us"}, {"\xCE\xBCs", "us"}});
  absl::Duration d;
  if (t.empty() || t == "inf" || t == "-inf" || t == "+inf" || !absl::ParseDuration(t, &d)) {
    return absl::InvalidArgumentError("not a duration (like 30s, 1m30s or 500ms)");
  }
  if (d < absl::ZeroDuration()) return absl::InvalidArgumentError("negative duration");
  return d;
}

std::optional<size_t> FindStage(const Dockerfile& dockerfile, absl::string_view name_or_index) {
  size_t index;
  if (!name_or_index.empty() && absl::ascii_isdigit(static_cast<unsigned char>(name_or_index[0])) &&
      absl::SimpleAtoi(name_or_index, &index)) {
    if (index < dockerfile.stages.size()) return index;
    return std::nullopt;
  }
  std::string lower = absl::AsciiStrToLower(name_or_index);
  for (const Stage& s : dockerfile.stages) {
    if (!s.name.empty() && s.name == lower) return static_cast<size_t>(s.index);
  }
  return std::nullopt;
}

absl::StatusOr<Instruction> ParseInstruction(const Node& node, char escape) {
  Instruction ins;
  ins.keyword = node.keyword;
  ins.start_line = node.start_line;
  ins.end_line = node.end_line;
  ins.original = node.original;
  ASSIGN_OR_RETURN(ins.command, ParseCommand(node, escape));
  return ins;
}

absl::StatusOr<Dockerfile> Parse(absl::string_view text) {
  ASSIGN_OR_RETURN(Ast ast, ParseAst(text));
  Dockerfile df;
  df.directives = std::move(ast.directives);
  df.escape = ast.escape;
  df.warnings = std::move(ast.warnings);
  absl::flat_hash_set<std::string> names;
  for (const Node& node : ast.nodes) {
    ASSIGN_OR_RETURN(Instruction ins, ParseInstruction(node, df.escape));
    if (ins.keyword == "FROM") {
      Stage stage;
      stage.index = static_cast<int>(df.stages.size());
      stage.name = std::get<From>(ins.command).name;
      if (!stage.name.empty() && !names.insert(stage.name).second) {
        return LineError(ins.start_line,
                         absl::StrCat("FROM: duplicate stage name \"", stage.name, "\""));
      }
      stage.from = std::move(ins);
      df.stages.push_back(std::move(stage));
    } else if (!df.stages.empty()) {
      df.stages.back().instructions.push_back(std::move(ins));
    } else if (ins.keyword == "ARG") {
      df.global_args.push_back(std::move(ins));
    } else {
      return LineError(ins.start_line, absl::StrCat(ins.keyword,
                                                    " before the first FROM: only ARG may "
                                                    "precede FROM"));
    }
  }
  if (df.stages.empty()) {
    if (ast.nodes.empty()) return LineError(1, "file with no instructions");
    return LineError(ast.nodes.back().end_line,
                     "no FROM instruction: a Dockerfile needs at least one build stage");
  }
  return df;
}

}  // namespace pier::builder::dockerfile
