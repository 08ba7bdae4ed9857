#include "lib/archive/entry_path.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace pier::archive {

absl::StatusOr<std::string> CleanEntryPath(absl::string_view name) {
  if (name.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("path contains a NUL byte");
  }
  std::vector<absl::string_view> parts;
  for (absl::string_view part : absl::StrSplit(name, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (parts.empty()) return absl::InvalidArgumentError("path escapes the target");
      parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  return absl::StrJoin(parts, "/");
}

std::pair<absl::string_view, absl::string_view> SplitParent(absl::string_view clean_path) {
  size_t slash = clean_path.rfind('/');
  if (slash == absl::string_view::npos) return {absl::string_view(), clean_path};
  return {clean_path.substr(0, slash), clean_path.substr(slash + 1)};
}

absl::StatusOr<Whiteout> ClassifyWhiteout(absl::string_view base) {
  Whiteout w;
  if (!absl::StartsWith(base, kWhiteoutPrefix)) return w;
  if (base == kOpaqueWhiteout) {
    w.kind = WhiteoutKind::kOpaque;
    return w;
  }
  if (absl::StartsWith(base, kWhiteoutMetaPrefix)) {
    w.kind = WhiteoutKind::kMeta;
    return w;
  }
  absl::string_view victim = base.substr(kWhiteoutPrefix.size());
  if (victim.empty() || victim == "." || victim == "..") {
    return absl::InvalidArgumentError("whiteout names its own directory or its parent");
  }
  w.kind = WhiteoutKind::kRemove;
  w.victim = std::string(victim);
  return w;
}

}  // namespace pier::archive
