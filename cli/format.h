// `--format` of the listing and inspect verbs, as docker spells it:
//   "" or "table"  the verb's own table (the caller prints it);
//   "json"         each row as one line of compact JSON;
//   a template     text in which {{.Field}} (or {{.A.B}} into nested objects)
//                  is replaced by the row's field, {{json .Field}} by its
//                  JSON and {{json .}} by the whole row; "\t" and "\n" are
//                  tab and newline, as in docker's Go templates. Strings print
//                  without quotes, other values as JSON. One line per row.
// A row is a JSON object whose keys are the verb's column names (docker's:
// ID, Repository, Tag, CreatedAt, Size, ...), or for inspect the record.
// Thread safety: a Format is immutable after Parse.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <google/protobuf/timestamp.pb.h>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace pier::cli {

class Format {
 public:
  // InvalidArgument for a template with an unclosed "{{", an action other
  // than ".Path", "json .Path" or "json .", naming the action.
  static absl::StatusOr<Format> Parse(const std::string& text);

  // The caller prints its table (no --format, or "table").
  bool table() const { return kind_ == Kind::kTable; }

  // One output line for `row` (without the newline). InvalidArgument for a
  // template field the row lacks, naming it and the fields there are.
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& row) const;

 private:
  enum class Kind { kTable, kJson, kTemplate };
  struct Piece {
    std::string text;               // literal text, or the action's path
    bool action = false;            // {{...}}
    bool json = false;              // {{json ...}}
    std::vector<std::string> path;  // ".A.B" -> {"A", "B"}; empty: "."
  };
  Kind kind_ = Kind::kTable;
  std::vector<Piece> pieces_;
};

// Parses --format for `verb`; on error prints it and sets *rc to 2.
std::optional<Format> ParseFormatFlag(const std::string& verb, const std::string& text, int* rc);

// Prints Render(row) and a newline on stdout. On error prints it on stderr
// and returns false.
bool PrintRow(const Format& format, const nlohmann::ordered_json& row);

// "2024-05-01T12:00:00Z" (RFC 3339, UTC); "" for an unset time.
std::string TimeString(const google::protobuf::Timestamp& t);

// Help text for a verb's --format flag.
inline constexpr const char* kFormatHelp =
    "\"json\" (one JSON object per line) or a template such as '{{.ID}}\\t{{.Size}}'";

}  // namespace pier::cli
