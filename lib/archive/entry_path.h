// Layer entry names: cleaning tar paths into safe relative paths, and the OCI
// whiteout naming convention (image-spec layer.md, "Whiteouts").
//
// A layer names its entries relative to the root of the file system it
// changes. CleanEntryPath() is the one place that decides which names are
// acceptable: it is purely lexical (it never looks at the disk), so the
// applier must still resolve the cleaned parent directory beneath its target
// (openat2 RESOLVE_BENEATH) to stop escapes through symlinks.
//
// Thread safety: stateless.
#pragma once

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pier::archive {

// `.wh.<name>` deletes <name> from the layers below.
inline constexpr absl::string_view kWhiteoutPrefix = ".wh.";
// Names starting with `.wh..wh.` are AUFS metadata, never real entries.
inline constexpr absl::string_view kWhiteoutMetaPrefix = ".wh..wh.";
// `<dir>/.wh..wh..opq` hides everything the layers below put in <dir>.
inline constexpr absl::string_view kOpaqueWhiteout = ".wh..wh..opq";

// Cleans the name of a tar entry into a path relative to the layer root, with
// no empty, "." or ".." components and no leading or trailing '/'. As docker,
// containerd and GNU tar do, leading '/' is stripped: "/etc/x" is "etc/x"
// inside the target, never the host's /etc. ".." is resolved lexically
// ("a/../b" is "b"). The root itself ("", ".", "./", "/") cleans to "".
//
// Returns InvalidArgument "path escapes the target" when the name climbs
// above the root ("../x", "a/../../x"), and InvalidArgument "path contains a
// NUL byte" for embedded NULs. The message does not repeat the name: callers
// prefix it with the entry they are processing.
absl::StatusOr<std::string> CleanEntryPath(absl::string_view name);

// Splits a cleaned, non-empty path into its parent ("" for the root) and its
// last component.
std::pair<absl::string_view, absl::string_view> SplitParent(absl::string_view clean_path);

enum class WhiteoutKind {
  kNone,    // an ordinary entry
  kRemove,  // `.wh.<victim>`
  kOpaque,  // `.wh..wh..opq`
  kMeta,    // other `.wh..wh.*` AUFS metadata; ignored when applying
};

struct Whiteout {
  WhiteoutKind kind = WhiteoutKind::kNone;
  std::string victim;  // for kRemove: the sibling name to delete
};

// Classifies the last component of an entry name. Returns InvalidArgument for
// whiteouts that would name the directory itself or its parent (".wh.",
// ".wh..", ".wh...").
absl::StatusOr<Whiteout> ClassifyWhiteout(absl::string_view base);

}  // namespace pier::archive
