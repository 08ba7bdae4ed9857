#include "cli/format.h"

#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"

namespace pier::cli {
namespace {

// "\t" and "\n" as written on a command line become tab and newline.
std::string Unescape(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == 't' || s[i + 1] == 'n')) {
      out.push_back(s[i + 1] == 't' ? '\t' : '\n');
      ++i;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<Format> Format::Parse(const std::string& text) {
  Format f;
  if (text.empty() || text == "table") return f;
  if (text == "json") {
    f.kind_ = Kind::kJson;
    return f;
  }
  f.kind_ = Kind::kTemplate;
  absl::string_view rest = text;
  while (!rest.empty()) {
    size_t open = rest.find("{{");
    if (open == absl::string_view::npos) {
      f.pieces_.push_back({Unescape(rest)});
      break;
    }
    if (open > 0) f.pieces_.push_back({Unescape(rest.substr(0, open))});
    size_t close = rest.find("}}", open);
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--format ", text, ": unclosed \"{{\" (write {{.Field}})"));
    }
    std::string action(absl::StripAsciiWhitespace(rest.substr(open + 2, close - open - 2)));
    Piece p;
    p.action = true;
    p.text = action;
    absl::string_view expr = action;
    if (absl::ConsumePrefix(&expr, "json ")) {
      p.json = true;
      expr = absl::StripLeadingAsciiWhitespace(expr);
    }
    if (!absl::StartsWith(expr, ".")) {
      return absl::InvalidArgumentError(
          absl::StrCat("--format ", text, ": unsupported action {{", action,
                       "}} (use {{.Field}}, {{.Field.Sub}}, {{json .Field}} or {{json .}})"));
    }
    if (expr != ".") {
      for (absl::string_view part : absl::StrSplit(expr.substr(1), '.')) {
        if (part.empty()) {
          return absl::InvalidArgumentError(
              absl::StrCat("--format ", text, ": empty field name in {{", action, "}}"));
        }
        p.path.emplace_back(part);
      }
    }
    f.pieces_.push_back(std::move(p));
    rest.remove_prefix(close + 2);
  }
  return f;
}

absl::StatusOr<std::string> Format::Render(const nlohmann::ordered_json& row) const {
  if (kind_ == Kind::kJson) return row.dump();
  std::string out;
  for (const Piece& p : pieces_) {
    if (!p.action) {
      out += p.text;
      continue;
    }
    const nlohmann::ordered_json* v = &row;
    for (const std::string& key : p.path) {
      if (!v->is_object() || !v->contains(key)) {
        std::vector<std::string> keys;
        if (v->is_object()) {
          for (auto it = v->begin(); it != v->end(); ++it) keys.push_back(it.key());
        }
        return absl::InvalidArgumentError(absl::StrCat(
            "--format: no field \"", key, "\" in {{", p.text, "}}",
            keys.empty() ? "" : absl::StrCat(" (fields: ", absl::StrJoin(keys, ", "), ")")));
      }
      v = &(*v)[key];
    }
    if (!p.json && v->is_string()) {
      out += v->get<std::string>();
    } else {
      out += v->dump();
    }
  }
  return out;
}

std::optional<Format> ParseFormatFlag(const std::string& verb, const std::string& text, int* rc) {
  absl::StatusOr<Format> f = Format::Parse(text);
  if (!f.ok()) {
    std::cerr << verb << ": " << f.status().message() << "\n";
    *rc = 2;
    return std::nullopt;
  }
  return *std::move(f);
}

bool PrintRow(const Format& format, const nlohmann::ordered_json& row) {
  absl::StatusOr<std::string> line = format.Render(row);
  if (!line.ok()) {
    std::cerr << "pier: " << line.status().message() << "\n";
    return false;
  }
  std::cout << *line << "\n";
  return true;
}

std::string TimeString(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

}  // namespace pier::cli
