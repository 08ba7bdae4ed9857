#include "services/builder/dockerfile/parser.h"

#include <cctype>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lib/common/status.h"
#include "nlohmann/json.hpp"

namespace pier::builder::dockerfile {
namespace {

constexpr absl::string_view kKnownInstructions[] = {
    "ADD",    "ARG",   "CMD",         "COPY",  "ENTRYPOINT", "ENV",
    "EXPOSE", "FROM",  "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD",
    "RUN",    "SHELL", "STOPSIGNAL",  "USER",  "VOLUME",     "WORKDIR",
};

// Blanks as Go's unicode.IsSpace sees them in ASCII.
bool IsBlank(char c) {
  return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == '\n';
}

absl::string_view TrimLeft(absl::string_view s) {
  size_t i = 0;
  while (i < s.size() && IsBlank(s[i])) ++i;
  return s.substr(i);
}

absl::string_view TrimRight(absl::string_view s) {
  size_t n = s.size();
  while (n > 0 && IsBlank(s[n - 1])) --n;
  return s.substr(0, n);
}

absl::string_view Trim(absl::string_view s) { return TrimRight(TrimLeft(s)); }

absl::Status LineError(int line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("Dockerfile:", line, ": ", what));
}

// Splits the text into lines without their terminators ("\n" or "\r\n").
// A final terminator does not start another line.
std::vector<absl::string_view> SplitLines(absl::string_view text) {
  std::vector<absl::string_view> lines;
  if (absl::StartsWith(text, "\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 BOM
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == absl::string_view::npos) nl = text.size();
    absl::string_view line = text.substr(start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    start = nl + 1;
  }
  return lines;
}

// Matches `#[ \t]*key[ \t]*=[ \t]*value[ \t]*` with key [a-zA-Z][a-zA-Z0-9]*
// and a non-empty value.
bool MatchDirective(absl::string_view line, std::string* key, std::string* value) {
  if (line.empty() || line[0] != '#') return false;
  size_t i = 1;
  auto skip_blanks = [&] {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  };
  skip_blanks();
  size_t key_start = i;
  if (i >= line.size() || !absl::ascii_isalpha(static_cast<unsigned char>(line[i]))) return false;
  while (i < line.size() && absl::ascii_isalnum(static_cast<unsigned char>(line[i]))) ++i;
  absl::string_view k = line.substr(key_start, i - key_start);
  skip_blanks();
  if (i >= line.size() || line[i] != '=') return false;
  ++i;
  skip_blanks();
  absl::string_view v = line.substr(i);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.empty()) return false;
  *key = absl::AsciiStrToLower(k);
  *value = std::string(v);
  return true;
}

// Removes a trailing escape character (and blanks after it). Returns whether
// the line continues on the next one.
bool TrimContinuation(absl::string_view* line, char escape) {
  absl::string_view s = *line;
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  if (s.empty() || s.back() != escape) return false;
  s.remove_suffix(1);
  *line = s;
  return true;
}

bool IsComment(absl::string_view raw_line) {
  absl::string_view t = TrimLeft(raw_line);
  return !t.empty() && t[0] == '#';
}

std::vector<std::string> SplitBlanks(absl::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && IsBlank(s[i])) ++i;
    size_t start = i;
    while (i < s.size() && !IsBlank(s[i])) ++i;
    if (i > start) out.emplace_back(s.substr(start, i - start));
  }
  return out;
}

// Takes the leading `--flag` words off `rest`. Quotes around (parts of) a flag
// are removed and the escape character makes the next character literal; a
// bare `--` ends the flags and is dropped.
absl::string_view ExtractFlags(absl::string_view rest, char escape,
                               std::vector<std::string>* flags) {
  size_t i = 0;
  while (true) {
    while (i < rest.size() && IsBlank(rest[i])) ++i;
    if (i + 1 >= rest.size() || rest[i] != '-' || rest[i + 1] != '-') return rest.substr(i);
    std::string word;
    char quote = 0;
    for (; i < rest.size(); ++i) {
      char c = rest[i];
      if (quote == 0) {
        if (IsBlank(c)) break;
        if (c == '\'' || c == '"') {
          quote = c;
          continue;
        }
        if (c == escape) {
          if (i + 1 < rest.size()) word += rest[++i];
          continue;
        }
        word += c;
      } else {
        if (c == quote) {
          quote = 0;
          continue;
        }
        if (c == escape && quote == '"' && i + 1 < rest.size()) {
          word += rest[++i];
          continue;
        }
        word += c;
      }
    }
    if (word == "--") return TrimLeft(rest.substr(i));
    flags->push_back(std::move(word));
  }
}

// ENV and LABEL: `key value` (legacy: the rest of the line is the value) or
// `k=v k2=v2 ...`.
absl::Status ParseKeyValues(absl::string_view rest, char escape, int line, Node* node) {
  std::vector<std::string> words = SplitRawWords(rest, escape);
  if (words.empty()) return absl::OkStatus();
  if (words[0].find('=') == std::string::npos) {
    // Legacy form: the first blank run separates the key from the value.
    size_t i = 0;
    while (i < rest.size() && !IsBlank(rest[i])) ++i;
    absl::string_view key = rest.substr(0, i);
    absl::string_view value = Trim(rest.substr(i));
    if (value.empty()) {
      return LineError(line,
                       absl::StrCat(node->keyword, " must have two arguments (", node->keyword,
                                    " <key>=<value> or ", node->keyword, " <key> <value>)"));
    }
    node->legacy_key_value = true;
    node->args = {std::string(key), std::string(value)};
    return absl::OkStatus();
  }
  for (const std::string& word : words) {
    size_t eq = word.find('=');
    if (eq == std::string::npos) {
      return LineError(line, absl::StrCat(node->keyword, ": syntax error - can't find = in \"",
                                          word, "\"; must be of the form: name=value"));
    }
    node->args.push_back(word.substr(0, eq));
    node->args.push_back(word.substr(eq + 1));
  }
  return absl::OkStatus();
}

// Parses one logical line (continuations already joined) into a node.
absl::Status ParseLogical(absl::string_view logical, char escape, int line, Node* node) {
  absl::string_view s = Trim(logical);
  size_t k = 0;
  while (k < s.size() && !IsBlank(s[k])) ++k;
  node->keyword_as_written = std::string(s.substr(0, k));
  node->keyword = absl::AsciiStrToUpper(node->keyword_as_written);
  node->original = std::string(s);
  if (!IsKnownInstruction(node->keyword)) {
    return LineError(line, absl::StrCat("unknown instruction: ", node->keyword_as_written));
  }
  absl::string_view rest = ExtractFlags(TrimLeft(s.substr(k)), escape, &node->flags);
  rest = Trim(rest);
  const std::string& kw = node->keyword;

  auto json_or = [&](bool split_words) {
    if (auto arr = ParseJsonStringArray(rest)) {
      node->json = true;
      node->args = std::move(*arr);
    } else if (split_words) {
      node->args = SplitBlanks(rest);
    } else if (!rest.empty()) {
      node->args = {std::string(rest)};
    }
  };

  if (kw == "FROM" || kw == "EXPOSE") {
    node->args = SplitBlanks(rest);
  } else if (kw == "ADD" || kw == "COPY" || kw == "VOLUME") {
    json_or(/*split_words=*/true);
  } else if (kw == "RUN" || kw == "CMD" || kw == "ENTRYPOINT" || kw == "SHELL") {
    json_or(/*split_words=*/false);
  } else if (kw == "HEALTHCHECK") {
    size_t t = 0;
    while (t < rest.size() && !IsBlank(rest[t])) ++t;
    if (t > 0) {
      node->args.emplace_back(rest.substr(0, t));
      absl::string_view cmd = TrimLeft(rest.substr(t));
      if (auto arr = ParseJsonStringArray(cmd)) {
        node->json = true;
        for (std::string& a : *arr) node->args.push_back(std::move(a));
      } else if (!cmd.empty()) {
        node->args.emplace_back(cmd);
      }
    }
  } else if (kw == "ENV" || kw == "LABEL") {
    RETURN_IF_ERROR(ParseKeyValues(rest, escape, line, node));
  } else if (kw == "ARG") {
    node->args = SplitRawWords(rest, escape);
  } else if (kw == "ONBUILD") {
    if (!rest.empty()) {
      node->args = {std::string(rest)};
      Node child;
      RETURN_IF_ERROR(ParseLogical(rest, escape, line, &child));
      node->children.push_back(std::move(child));
    }
  } else {  // MAINTAINER STOPSIGNAL USER WORKDIR
    if (!rest.empty()) node->args = {std::string(rest)};
  }
  return absl::OkStatus();
}

bool CanContainHeredoc(const Node& node) {
  const Node* n = &node;
  if (n->keyword == "ONBUILD") {
    if (n->children.empty()) return false;
    n = &n->children[0];
  }
  if (n->keyword != "RUN" && n->keyword != "COPY" && n->keyword != "ADD") return false;
  return !n->json;
}

}  // namespace

bool IsKnownInstruction(absl::string_view keyword) {
  for (absl::string_view k : kKnownInstructions) {
    if (k == keyword) return true;
  }
  return false;
}

std::vector<std::string> SplitRawWords(absl::string_view text, char escape) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  bool keep_empty = false;  // a quoted empty word ("") is still a word
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quote == 0) {
      if (IsBlank(c)) {
        if (in_word && (keep_empty || !word.empty())) words.push_back(word);
        word.clear();
        in_word = false;
        keep_empty = false;
        continue;
      }
      in_word = true;
      if (c == escape) {
        if (i + 1 == text.size()) continue;  // a trailing lone escape is dropped
        word += c;
        word += text[++i];
        continue;
      }
      if (c == '\'' || c == '"') {
        quote = c;
        keep_empty = true;
      }
      word += c;
    } else {
      if (c == quote) {
        quote = 0;
        word += c;
        continue;
      }
      if (c == escape && quote != '\'') {
        if (i + 1 == text.size()) continue;
        word += c;
        word += text[++i];
        continue;
      }
      word += c;
    }
  }
  if (in_word && (keep_empty || !word.empty())) words.push_back(word);
  return words;
}

std::optional<Heredoc> ParseHeredocWord(absl::string_view word, char escape) {
  size_t i = 0;
  int fd = 0;
  while (i < word.size() && absl::ascii_isdigit(static_cast<unsigned char>(word[i]))) {
    fd = fd * 10 + (word[i] - '0');
    if (fd > 1 << 20) return std::nullopt;
    ++i;
  }
  if (word.substr(i, 2) != "<<") return std::nullopt;
  i += 2;
  Heredoc h;
  h.fd = fd;
  if (i < word.size() && word[i] == '-') {
    h.chomp = true;
    ++i;
  }
  absl::string_view rest = word.substr(i);
  if (rest.empty() || rest.find('<') != absl::string_view::npos) return std::nullopt;
  // Remove quotes and escapes; any of them means "quoted": no expansion.
  std::string name;
  char quote = 0;
  for (size_t j = 0; j < rest.size(); ++j) {
    char c = rest[j];
    if (quote == 0) {
      if (c == '\'' || c == '"') {
        quote = c;
        h.expand = false;
        continue;
      }
      if (c == escape && j + 1 < rest.size()) {
        name += rest[++j];
        h.expand = false;
        continue;
      }
      name += c;
    } else if (c == quote) {
      quote = 0;
    } else {
      name += c;
    }
  }
  if (quote != 0 || name.empty()) return std::nullopt;
  h.name = std::move(name);
  return h;
}

std::optional<std::vector<std::string>> ParseJsonStringArray(absl::string_view text) {
  text = Trim(text);
  if (text.empty() || text.front() != '[' || text.back() != ']') return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), /*cb=*/nullptr,
                                           /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array()) return std::nullopt;
  std::vector<std::string> out;
  out.reserve(j.size());
  for (const auto& e : j) {
    if (!e.is_string()) return std::nullopt;
    out.push_back(e.get_ref<const std::string&>());
  }
  return out;
}

absl::StatusOr<Ast> ParseAst(absl::string_view dockerfile) {
  Ast ast;
  std::vector<absl::string_view> lines = SplitLines(dockerfile);
  const size_t n = lines.size();
  size_t i = 0;

  // Parser directives: only at the very top.
  absl::flat_hash_set<std::string> seen;
  for (; i < n; ++i) {
    std::string key, value;
    if (!MatchDirective(TrimLeft(lines[i]), &key, &value)) break;
    if (key != "syntax" && key != "escape" && key != "check") break;
    int line = static_cast<int>(i) + 1;
    if (!seen.insert(key).second) {
      return LineError(line, absl::StrCat("only one ", key, " parser directive can be used"));
    }
    if (key == "escape") {
      if (value != "\\" && value != "`") {
        return LineError(line,
                         absl::StrCat("invalid escape token '", value, "' does not match ` or \\"));
      }
      ast.escape = value[0];
    }
    ast.directives.push_back(Directive{key, value, line});
  }

  const char escape = ast.escape;
  while (i < n) {
    absl::string_view first = TrimLeft(lines[i]);
    const int start_line = static_cast<int>(++i);
    if (first.empty() || first[0] == '#') continue;

    std::string logical;
    bool more = TrimContinuation(&first, escape);
    logical.append(first.data(), first.size());
    bool empty_continuation = false;
    while (more && i < n) {
      absl::string_view raw = lines[i++];
      if (IsComment(raw)) continue;
      if (TrimLeft(raw).empty()) {
        empty_continuation = true;
        continue;
      }
      more = TrimContinuation(&raw, escape);
      logical.append(raw.data(), raw.size());
    }
    if (Trim(logical).empty()) continue;
    if (empty_continuation) {
      ast.warnings.push_back(Warning{start_line, "empty continuation line"});
    }

    Node node;
    RETURN_IF_ERROR(ParseLogical(logical, escape, start_line, &node));

    if (CanContainHeredoc(node) && logical.find("<<") != std::string::npos) {
      for (const std::string& word : SplitRawWords(logical, escape)) {
        std::optional<Heredoc> h = ParseHeredocWord(word, escape);
        if (!h) continue;
        bool terminated = false;
        while (i < n) {
          absl::string_view body = lines[i++];
          absl::string_view candidate = body;
          if (h->chomp) {
            size_t t = 0;
            while (t < body.size() && body[t] == '\t') ++t;
            candidate = body.substr(t);
            body = candidate;  // <<- strips leading tabs from the body too
          }
          if (candidate == h->name) {
            terminated = true;
            break;
          }
          absl::StrAppend(&h->content, body, "\n");
        }
        if (!terminated) {
          return LineError(start_line,
                           absl::StrCat("unterminated heredoc <<", h->chomp ? "-" : "", h->name));
        }
        Node* target = node.keyword == "ONBUILD" ? &node.children[0] : &node;
        target->heredocs.push_back(std::move(*h));
      }
    }
    node.start_line = start_line;
    node.end_line = static_cast<int>(i);
    for (Node& child : node.children) {
      child.start_line = node.start_line;
      child.end_line = node.end_line;
    }
    ast.nodes.push_back(std::move(node));
  }
  return ast;
}

}  // namespace pier::builder::dockerfile
