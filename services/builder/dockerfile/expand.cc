#include "services/builder/dockerfile/expand.h"

#include <type_traits>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "lib/common/status.h"

namespace pier::builder::dockerfile {
namespace {

bool IsBlank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

bool IsNameChar(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; }

bool IsSpecialParam(char c) {
  return c == '@' || c == '*' || c == '#' || c == '?' || c == '-' || c == '$' || c == '!';
}

// Matches a `[...]` class at pat[p] (p at '[') against `c`. Returns false in
// *valid when the class is not terminated (then '[' is an ordinary character).
bool MatchClass(absl::string_view pat, size_t* p, char c, char escape, bool* valid) {
  size_t i = *p + 1;
  bool negate = false;
  if (i < pat.size() && (pat[i] == '!' || pat[i] == '^')) {
    negate = true;
    ++i;
  }
  bool matched = false;
  bool first = true;
  while (i < pat.size() && (pat[i] != ']' || first)) {
    first = false;
    char lo = pat[i];
    if (lo == escape && i + 1 < pat.size()) lo = pat[++i];
    ++i;
    char hi = lo;
    if (i + 1 < pat.size() && pat[i] == '-' && pat[i + 1] != ']') {
      hi = pat[i + 1];
      if (hi == escape && i + 2 < pat.size()) {
        hi = pat[i + 2];
        ++i;
      }
      i += 2;
    }
    if (lo <= c && c <= hi) matched = true;
  }
  if (i >= pat.size()) {
    *valid = false;
    return false;
  }
  *valid = true;
  *p = i + 1;
  return matched != negate;
}

// Shell pattern matching (`*` `?` `[...]`, escape for a literal) of all of `s`.
bool GlobMatch(absl::string_view pat, absl::string_view s, char escape) {
  size_t p = 0, t = 0;
  size_t star_p = absl::string_view::npos, star_t = 0;
  while (t < s.size()) {
    if (p < pat.size()) {
      char c = pat[p];
      if (c == '*') {
        star_p = p++;
        star_t = t;
        continue;
      }
      if (c == '?') {
        ++p;
        ++t;
        continue;
      }
      if (c == '[') {
        size_t q = p;
        bool valid;
        bool m = MatchClass(pat, &q, s[t], escape, &valid);
        if (valid) {
          if (m) {
            p = q;
            ++t;
            continue;
          }
        } else if (s[t] == '[') {
          ++p;
          ++t;
          continue;
        }
      } else if (c == escape && p + 1 < pat.size()) {
        if (pat[p + 1] == s[t]) {
          p += 2;
          ++t;
          continue;
        }
      } else if (c == s[t]) {
        ++p;
        ++t;
        continue;
      }
    }
    if (star_p == absl::string_view::npos) return false;
    p = star_p + 1;
    t = ++star_t;
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

std::string TrimPattern(const std::string& v, absl::string_view pat, bool prefix, bool longest,
                        char escape) {
  const size_t n = v.size();
  absl::string_view s = v;
  if (prefix) {
    for (size_t k = 0; k <= n; ++k) {
      size_t i = longest ? n - k : k;
      if (GlobMatch(pat, s.substr(0, i), escape)) return std::string(s.substr(i));
    }
  } else {
    for (size_t k = 0; k <= n; ++k) {
      size_t i = longest ? k : n - k;
      if (GlobMatch(pat, s.substr(i), escape)) return std::string(s.substr(0, i));
    }
  }
  return v;
}

std::string ReplacePattern(const std::string& v, absl::string_view pat, absl::string_view repl,
                           bool all, char escape) {
  if (pat.empty()) return v;
  std::string out;
  size_t i = 0;
  absl::string_view s = v;
  while (i < s.size()) {
    size_t best = absl::string_view::npos;
    for (size_t j = s.size(); j > i; --j) {
      if (GlobMatch(pat, s.substr(i, j - i), escape)) {
        best = j;
        break;
      }
    }
    if (best == absl::string_view::npos) {
      out += s[i++];
      continue;
    }
    absl::StrAppend(&out, repl);
    i = best;
    if (!all) break;
  }
  absl::StrAppend(&out, s.substr(i));
  return out;
}

absl::Status Error(absl::string_view what) { return absl::InvalidArgumentError(what); }

// A recursive-descent expander over one input.
class Lexer {
 public:
  Lexer(absl::string_view in, VarLookup lookup, char escape, bool heredoc)
      : in_(in), lookup_(lookup), escape_(escape), heredoc_(heredoc) {}

  absl::StatusOr<std::string> Word() {
    std::string out;
    ASSIGN_OR_RETURN(char stop, Until(&out, "", /*keep_escapes=*/false));
    (void)stop;
    return out;
  }

  absl::StatusOr<std::vector<std::string>> Words() {
    std::vector<std::string> words;
    std::string cur;
    bool have = false;
    auto flush = [&] {
      if (have) words.push_back(cur);
      cur.clear();
      have = false;
    };
    while (pos_ < in_.size()) {
      char c = in_[pos_];
      if (IsBlank(c)) {
        flush();
        ++pos_;
      } else if (c == '\'') {
        RETURN_IF_ERROR(SingleQuote(&cur));
        have = true;
      } else if (c == '"') {
        RETURN_IF_ERROR(DoubleQuote(&cur));
        have = true;
      } else if (c == '$') {
        std::string v;
        RETURN_IF_ERROR(Dollar(&v));
        for (char ch : v) {  // unquoted expansions are split too
          if (IsBlank(ch)) {
            flush();
          } else {
            cur += ch;
            have = true;
          }
        }
      } else if (c == escape_) {
        if (++pos_ == in_.size()) break;
        cur += in_[pos_++];
        have = true;
      } else {
        cur += c;
        have = true;
        ++pos_;
      }
    }
    flush();
    return words;
  }

 private:
  // Expands up to (and consuming) an unquoted character of `stops`, or the end
  // of the input; returns that character, or 0 at the end.
  absl::StatusOr<char> Until(std::string* out, absl::string_view stops, bool keep_escapes) {
    while (pos_ < in_.size()) {
      char c = in_[pos_];
      if (stops.find(c) != absl::string_view::npos) {
        ++pos_;
        return c;
      }
      if (heredoc_) {
        if (c == '$') {
          RETURN_IF_ERROR(Dollar(out));
        } else if (c == escape_ && pos_ + 1 < in_.size() &&
                   (in_[pos_ + 1] == '$' || in_[pos_ + 1] == escape_)) {
          out->push_back(in_[pos_ + 1]);
          pos_ += 2;
        } else {
          out->push_back(c);
          ++pos_;
        }
        continue;
      }
      if (c == '\'') {
        RETURN_IF_ERROR(SingleQuote(out));
      } else if (c == '"') {
        RETURN_IF_ERROR(DoubleQuote(out));
      } else if (c == '$') {
        RETURN_IF_ERROR(Dollar(out));
      } else if (c == escape_) {
        if (++pos_ == in_.size()) break;  // a trailing escape is dropped
        if (keep_escapes) out->push_back(escape_);
        out->push_back(in_[pos_++]);
      } else {
        out->push_back(c);
        ++pos_;
      }
    }
    return '\0';
  }

  absl::Status SingleQuote(std::string* out) {
    size_t close = in_.find('\'', pos_ + 1);
    if (close == absl::string_view::npos) {
      return Error("unexpected end of statement while looking for matching single-quote");
    }
    absl::StrAppend(out, in_.substr(pos_ + 1, close - pos_ - 1));
    pos_ = close + 1;
    return absl::OkStatus();
  }

  absl::Status DoubleQuote(std::string* out) {
    ++pos_;
    while (pos_ < in_.size()) {
      char c = in_[pos_];
      if (c == '"') {
        ++pos_;
        return absl::OkStatus();
      }
      if (c == '$') {
        RETURN_IF_ERROR(Dollar(out));
        continue;
      }
      if (c == escape_ && pos_ + 1 < in_.size()) {
        char next = in_[pos_ + 1];
        if (next == '"' || next == '$' || next == escape_) {
          out->push_back(next);
          pos_ += 2;
          continue;
        }
      }
      out->push_back(c);
      ++pos_;
    }
    return Error("unexpected end of statement while looking for matching double-quote");
  }

  std::string Name() {
    size_t start = pos_;
    if (pos_ < in_.size() && absl::ascii_isdigit(static_cast<unsigned char>(in_[pos_]))) {
      while (pos_ < in_.size() && absl::ascii_isdigit(static_cast<unsigned char>(in_[pos_]))) {
        ++pos_;
      }
      return std::string(in_.substr(start, pos_ - start));
    }
    if (pos_ < in_.size() && IsSpecialParam(in_[pos_])) return std::string(1, in_[pos_++]);
    while (pos_ < in_.size() && IsNameChar(in_[pos_])) ++pos_;
    return std::string(in_.substr(start, pos_ - start));
  }

  absl::Status Expect(char got) {
    if (got != '}') return Error("syntax error: missing '}'");
    return absl::OkStatus();
  }

  // pos_ is at '$'.
  absl::Status Dollar(std::string* out) {
    ++pos_;
    if (pos_ >= in_.size() || in_[pos_] != '{') {
      std::string name = Name();
      if (name.empty()) {
        out->push_back('$');
        return absl::OkStatus();
      }
      if (const std::string* v = lookup_(name)) absl::StrAppend(out, *v);
      return absl::OkStatus();
    }
    ++pos_;  // '{'
    if (pos_ >= in_.size()) return Error("syntax error: missing '}'");
    char first = in_[pos_];
    if (first == '{' || first == '}' || first == ':')
      return Error("syntax error: bad substitution");
    std::string name = Name();
    if (name.empty()) return Error("syntax error: bad substitution");
    if (pos_ >= in_.size()) return Error("syntax error: missing '}'");
    char c = in_[pos_++];
    const std::string* value = lookup_(name);
    if (c == '}') {
      if (value != nullptr) absl::StrAppend(out, *value);
      return absl::OkStatus();
    }
    std::string modifier(1, c);
    bool colon = false;
    if (c == ':') {
      colon = true;
      if (pos_ >= in_.size()) return Error("syntax error: missing '}'");
      c = in_[pos_++];
      modifier += c;
    }
    const bool set = value != nullptr;
    const bool empty = !set || value->empty();
    switch (c) {
      case '-':
      case '+':
      case '?': {
        std::string word;
        ASSIGN_OR_RETURN(char stop, Until(&word, "}", /*keep_escapes=*/false));
        RETURN_IF_ERROR(Expect(stop));
        bool unset = !set || (colon && empty);
        if (c == '-') {
          absl::StrAppend(out, unset ? word : *value);
        } else if (c == '+') {
          if (!unset) absl::StrAppend(out, word);
        } else {
          if (!set) {
            return Error(
                absl::StrCat(name, ": ", word.empty() ? "is not allowed to be unset" : word));
          }
          if (colon && empty) {
            return Error(
                absl::StrCat(name, ": ", word.empty() ? "is not allowed to be empty" : word));
          }
          absl::StrAppend(out, *value);
        }
        return absl::OkStatus();
      }
      case '#':
      case '%': {
        if (colon) break;
        bool longest = pos_ < in_.size() && in_[pos_] == c;
        if (longest) ++pos_;
        std::string pattern;
        ASSIGN_OR_RETURN(char stop, Until(&pattern, "}", /*keep_escapes=*/true));
        RETURN_IF_ERROR(Expect(stop));
        absl::StrAppend(out, TrimPattern(set ? *value : "", pattern, c == '#', longest, escape_));
        return absl::OkStatus();
      }
      case '/': {
        if (colon) break;
        bool all = pos_ < in_.size() && in_[pos_] == '/';
        if (all) ++pos_;
        std::string pattern, repl;
        ASSIGN_OR_RETURN(char stop, Until(&pattern, "/}", /*keep_escapes=*/true));
        if (stop == '/') {
          ASSIGN_OR_RETURN(stop, Until(&repl, "}", /*keep_escapes=*/false));
        }
        RETURN_IF_ERROR(Expect(stop));
        absl::StrAppend(out, ReplacePattern(set ? *value : "", pattern, repl, all, escape_));
        return absl::OkStatus();
      }
      default:
        break;
    }
    return Error(absl::StrCat("unsupported modifier (", modifier, ") in substitution"));
  }

  absl::string_view in_;
  size_t pos_ = 0;
  VarLookup lookup_;
  char escape_;
  bool heredoc_;
};

absl::Status StepError(const Instruction& ins, const absl::Status& s) {
  return absl::InvalidArgumentError(
      absl::StrCat("Dockerfile:", ins.start_line, ": ", ins.keyword, ": ", s.message()));
}

constexpr absl::string_view kProxyArgs[] = {
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
    "ftp_proxy",  "NO_PROXY",   "no_proxy",    "ALL_PROXY",   "all_proxy",
};

}  // namespace

// ---- VarSet --------------------------------------------------------------------

VarSet VarSet::FromEnvList(const std::vector<std::string>& env) {
  VarSet vars;
  for (const std::string& e : env) {
    size_t eq = e.find('=');
    if (eq == std::string::npos) {
      vars.Set(e, "");
    } else {
      vars.Set(absl::string_view(e).substr(0, eq), absl::string_view(e).substr(eq + 1));
    }
  }
  return vars;
}

void VarSet::Set(absl::string_view name, absl::string_view value) {
  for (auto& [k, v] : entries_) {
    if (k == name) {
      v = std::string(value);
      return;
    }
  }
  entries_.emplace_back(std::string(name), std::string(value));
}

const std::string* VarSet::Get(absl::string_view name) const {
  for (const auto& [k, v] : entries_) {
    if (k == name) return &v;
  }
  return nullptr;
}

std::vector<std::string> VarSet::ToEnvList() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [k, v] : entries_) out.push_back(absl::StrCat(k, "=", v));
  return out;
}

// ---- Expansion -------------------------------------------------------------------

absl::StatusOr<std::string> ExpandWord(absl::string_view word, VarLookup lookup, char escape) {
  return Lexer(word, lookup, escape, /*heredoc=*/false).Word();
}

absl::StatusOr<std::vector<std::string>> ExpandWords(absl::string_view text, VarLookup lookup,
                                                     char escape) {
  return Lexer(text, lookup, escape, /*heredoc=*/false).Words();
}

absl::StatusOr<std::string> ExpandHeredoc(absl::string_view content, VarLookup lookup,
                                          char escape) {
  return Lexer(content, lookup, escape, /*heredoc=*/true).Word();
}

// ---- Platforms and global ARGs ---------------------------------------------------------

std::string Platform::ToString() const {
  return variant.empty() ? absl::StrCat(os, "/", arch) : absl::StrCat(os, "/", arch, "/", variant);
}

absl::StatusOr<Platform> ParsePlatform(absl::string_view text) {
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  bool ok = parts.size() == 2 || parts.size() == 3;
  for (const std::string& p : parts) ok = ok && !p.empty();
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid platform \"", text, "\" (os/arch or os/arch/variant)"));
  }
  Platform p;
  p.os = absl::AsciiStrToLower(parts[0]);
  p.arch = absl::AsciiStrToLower(parts[1]);
  if (parts.size() == 3) p.variant = absl::AsciiStrToLower(parts[2]);
  return p;
}

bool IsPredefinedProxyArg(absl::string_view name) {
  for (absl::string_view p : kProxyArgs) {
    if (p == name) return true;
  }
  return false;
}

absl::StatusOr<VarSet> ResolveGlobalArgs(const Dockerfile& dockerfile,
                                         const BuildOptions& options) {
  ASSIGN_OR_RETURN(Platform build, ParsePlatform(options.build_platform));
  ASSIGN_OR_RETURN(Platform target,
                   ParsePlatform(options.target_platform.empty() ? options.build_platform
                                                                 : options.target_platform));
  VarSet globals;
  globals.Set("BUILDPLATFORM", build.ToString());
  globals.Set("BUILDOS", build.os);
  globals.Set("BUILDARCH", build.arch);
  globals.Set("BUILDVARIANT", build.variant);
  globals.Set("TARGETPLATFORM", target.ToString());
  globals.Set("TARGETOS", target.os);
  globals.Set("TARGETARCH", target.arch);
  globals.Set("TARGETVARIANT", target.variant);
  for (const Instruction& ins : dockerfile.global_args) {
    const Arg& arg = std::get<Arg>(ins.command);
    const VarSet before = globals;
    auto lookup = [&before](absl::string_view n) { return before.Get(n); };
    for (const ArgDecl& decl : arg.args) {
      if (auto it = options.build_args.find(decl.name); it != options.build_args.end()) {
        globals.Set(decl.name, it->second);
      } else if (decl.default_value) {
        absl::StatusOr<std::string> v = ExpandWord(*decl.default_value, lookup, dockerfile.escape);
        if (!v.ok()) return StepError(ins, v.status());
        globals.Set(decl.name, *v);
      }
    }
  }
  return globals;
}

// ---- Stages ---------------------------------------------------------------------

std::string CleanAbsPath(absl::string_view path) {
  std::vector<absl::string_view> parts;
  for (absl::string_view p : absl::StrSplit(path, '/')) {
    if (p.empty() || p == ".") continue;
    if (p == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(p);
  }
  return absl::StrCat("/", absl::StrJoin(parts, "/"));
}

absl::StatusOr<ResolvedFrom> ResolveFrom(const Dockerfile& dockerfile, size_t stage,
                                         const VarSet& globals) {
  const Stage& st = dockerfile.stages.at(stage);
  const From& from = st.base();
  auto lookup = [&globals](absl::string_view n) { return globals.Get(n); };
  ResolvedFrom out;
  absl::StatusOr<std::string> image = ExpandWord(from.image, lookup, dockerfile.escape);
  if (!image.ok()) return StepError(st.from, image.status());
  if (image->empty()) {
    return StepError(st.from, absl::InvalidArgumentError(absl::StrCat("base name (", from.image,
                                                                      ") should not be blank")));
  }
  out.image = *std::move(image);
  if (!from.platform.empty()) {
    absl::StatusOr<std::string> platform = ExpandWord(from.platform, lookup, dockerfile.escape);
    if (!platform.ok()) return StepError(st.from, platform.status());
    out.platform = *std::move(platform);
  }
  std::string lower = absl::AsciiStrToLower(out.image);
  for (size_t i = 0; i < stage; ++i) {
    if (!dockerfile.stages[i].name.empty() && dockerfile.stages[i].name == lower) {
      out.base_stage = i;
    }
  }
  return out;
}

absl::StatusOr<ResolvedStage> ResolveStage(const Dockerfile& dockerfile, size_t stage,
                                           const VarSet& globals, const BuildOptions& options,
                                           const StageBase& base) {
  const Stage& st = dockerfile.stages.at(stage);
  ResolvedStage rs;
  rs.index = stage;
  rs.name = st.name;
  ASSIGN_OR_RETURN(rs.from, ResolveFrom(dockerfile, stage, globals));
  VarSet env = VarSet::FromEnvList(base.env);
  VarSet args = base.args;
  std::string workdir = base.workdir.empty() ? "/" : CleanAbsPath(base.workdir);
  const char escape = dockerfile.escape;

  for (const Instruction& ins : st.instructions) {
    ResolvedStep step;
    step.instruction = ins;
    // Every word of one instruction sees the variables as they were before it.
    const VarSet env0 = env;
    const VarSet args0 = args;
    auto lookup = [&env0, &args0](absl::string_view n) -> const std::string* {
      if (const std::string* v = env0.Get(n)) return v;
      return args0.Get(n);
    };
    auto expand = [&](std::string* s) -> absl::Status {
      ASSIGN_OR_RETURN(*s, ExpandWord(*s, lookup, escape));
      return absl::OkStatus();
    };
    auto expand_all = [&](std::vector<std::string>* v) -> absl::Status {
      for (std::string& s : *v) RETURN_IF_ERROR(expand(&s));
      return absl::OkStatus();
    };
    auto expand_copy = [&](CopyBase* c) -> absl::Status {
      RETURN_IF_ERROR(expand_all(&c->sources));
      RETURN_IF_ERROR(expand(&c->dest));
      RETURN_IF_ERROR(expand(&c->chown));
      RETURN_IF_ERROR(expand(&c->chmod));
      RETURN_IF_ERROR(expand_all(&c->excludes));
      for (HeredocSource& h : c->heredocs) {
        if (!h.expand) continue;
        ASSIGN_OR_RETURN(h.content, ExpandHeredoc(h.content, lookup, escape));
      }
      return absl::OkStatus();
    };

    absl::Status status = std::visit(
        [&](auto& c) -> absl::Status {
          using T = std::decay_t<decltype(c)>;
          if constexpr (std::is_same_v<T, Arg>) {
            std::vector<std::pair<std::string, std::optional<std::string>>> updates;
            for (ArgDecl& decl : c.args) {
              std::optional<std::string> value;
              if (auto it = options.build_args.find(decl.name); it != options.build_args.end()) {
                value = it->second;
              }
              if (decl.default_value) {
                RETURN_IF_ERROR(expand(&*decl.default_value));
                if (!value) value = *decl.default_value;
              } else if (!value) {
                if (const std::string* g = globals.Get(decl.name)) value = *g;
              }
              updates.emplace_back(decl.name, std::move(value));
            }
            for (auto& [name, value] : updates) {
              if (value) args.Set(name, *value);
            }
          } else if constexpr (std::is_same_v<T, Env>) {
            for (KeyValue& kv : c.vars) {
              RETURN_IF_ERROR(expand(&kv.key));
              RETURN_IF_ERROR(expand(&kv.value));
            }
            for (const KeyValue& kv : c.vars) env.Set(kv.key, kv.value);
          } else if constexpr (std::is_same_v<T, Label>) {
            for (KeyValue& kv : c.labels) {
              RETURN_IF_ERROR(expand(&kv.key));
              RETURN_IF_ERROR(expand(&kv.value));
            }
          } else if constexpr (std::is_same_v<T, Copy>) {
            RETURN_IF_ERROR(expand_copy(&c));
            RETURN_IF_ERROR(expand(&c.from));
            size_t index;
            if (!c.from.empty() && absl::ascii_isdigit(static_cast<unsigned char>(c.from[0])) &&
                absl::SimpleAtoi(c.from, &index) && index >= stage) {
              return absl::InvalidArgumentError(
                  absl::StrCat("--from=", c.from, " does not name an earlier stage (this is stage ",
                               stage, ")"));
            }
          } else if constexpr (std::is_same_v<T, Add>) {
            RETURN_IF_ERROR(expand_copy(&c));
            RETURN_IF_ERROR(expand(&c.checksum));
          } else if constexpr (std::is_same_v<T, Expose>) {
            RETURN_IF_ERROR(expand_all(&c.ports));
            for (const std::string& p : c.ports) RETURN_IF_ERROR(ParsePortSpec(p).status());
          } else if constexpr (std::is_same_v<T, Stopsignal>) {
            RETURN_IF_ERROR(expand(&c.signal));
          } else if constexpr (std::is_same_v<T, User>) {
            RETURN_IF_ERROR(expand(&c.user));
            if (c.group) RETURN_IF_ERROR(expand(&*c.group));
          } else if constexpr (std::is_same_v<T, Volume>) {
            RETURN_IF_ERROR(expand_all(&c.paths));
            for (const std::string& p : c.paths) {
              if (p.empty()) return absl::InvalidArgumentError("a volume path is empty");
            }
          } else if constexpr (std::is_same_v<T, Workdir>) {
            RETURN_IF_ERROR(expand(&c.path));
            if (c.path.empty()) return absl::InvalidArgumentError("empty path");
            workdir = c.path[0] == '/' ? CleanAbsPath(c.path)
                                       : CleanAbsPath(absl::StrCat(workdir, "/", c.path));
          } else if constexpr (std::is_same_v<T, Run>) {
            c.mounts.clear();
            for (const std::string& spec : c.mount_specs) {
              auto expand_value = [&](absl::string_view v) -> absl::StatusOr<std::string> {
                return ExpandWord(v, lookup, escape);
              };
              absl::StatusOr<Mount> m = ParseMountSpec(spec, expand_value);
              if (!m.ok()) {
                return absl::InvalidArgumentError(
                    absl::StrCat("--mount=", spec, ": ", m.status().message()));
              }
              c.mounts.push_back(*std::move(m));
            }
          }
          return absl::OkStatus();
        },
        step.instruction.command);
    if (!status.ok()) return StepError(ins, status);

    step.env = env;
    step.args = args;
    step.workdir = workdir;
    if (ins.keyword == "RUN") {
      VarSet run = env;
      for (const auto& [k, v] : args.entries()) {
        if (!run.Has(k)) run.Set(k, v);
      }
      for (const auto& [k, v] : options.build_args) {
        if (IsPredefinedProxyArg(k) && !run.Has(k)) run.Set(k, v);
      }
      step.run_env = run.ToEnvList();
    }
    rs.steps.push_back(std::move(step));
  }
  rs.env = std::move(env);
  rs.args = std::move(args);
  rs.workdir = std::move(workdir);
  return rs;
}

absl::StatusOr<std::vector<ResolvedStage>> ResolveAll(const Dockerfile& dockerfile,
                                                      const BuildOptions& options,
                                                      ImageBaseFn image_base) {
  ASSIGN_OR_RETURN(VarSet globals, ResolveGlobalArgs(dockerfile, options));
  std::vector<ResolvedStage> out;
  for (size_t i = 0; i < dockerfile.stages.size(); ++i) {
    ASSIGN_OR_RETURN(ResolvedFrom from, ResolveFrom(dockerfile, i, globals));
    StageBase base;
    if (from.base_stage) {
      const ResolvedStage& parent = out[*from.base_stage];
      base.env = parent.env.ToEnvList();
      base.workdir = parent.workdir;
      base.args = parent.args;
    } else if (absl::AsciiStrToLower(from.image) != "scratch") {
      ASSIGN_OR_RETURN(base, image_base(from.image, from.platform));
    }
    ASSIGN_OR_RETURN(ResolvedStage rs, ResolveStage(dockerfile, i, globals, options, base));
    out.push_back(std::move(rs));
  }
  return out;
}

}  // namespace pier::builder::dockerfile
