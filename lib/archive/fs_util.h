// Internal to pier_archive: descriptor-relative file-system helpers shared by
// the layer writer and the layer applier. Nothing here follows a symlink in
// the last component of a name, and nothing uses the working directory.
//
// Every function returns errno's canonical code with a message naming
// `shown` (the path as the user knows it) on failure.
// Thread safety: stateless.
#pragma once

#include <sys/stat.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/common/fs.h"

namespace pier::archive::internal {

// "/proc/self/fd/<dirfd>/<name>": names `name` in the directory `dirfd`
// without resolving the directory's path again. Used for the l*xattr calls,
// which have no *at form.
std::string ProcFdPath(int dirfd, absl::string_view name);

// Joins a relative directory ("" for the root) and a name.
std::string JoinRel(absl::string_view dir, absl::string_view name);

// Opens `name` in `dirfd` as a directory, refusing symlinks (ELOOP/ENOTDIR).
absl::StatusOr<UniqueFd> OpenDirAt(int dirfd, absl::string_view name, absl::string_view shown);

// Names in the directory `dirfd`, without "." and "..", sorted bytewise.
absl::StatusOr<std::vector<std::string>> ListDir(int dirfd, absl::string_view shown);

// lstat of `name` in `dirfd`.
absl::StatusOr<struct stat> StatAt(int dirfd, absl::string_view name, absl::string_view shown);

// Target of the symlink `name` in `dirfd`.
absl::StatusOr<std::string> ReadLinkAt(int dirfd, absl::string_view name, absl::string_view shown);

struct Xattr {
  std::string name;
  std::string value;
  friend bool operator==(const Xattr& a, const Xattr& b) {
    return a.name == b.name && a.value == b.value;
  }
};

// The extended attributes of `name` in `dirfd` (not following a symlink),
// sorted by name. A file system without xattr support yields none.
absl::StatusOr<std::vector<Xattr>> ListXattrs(int dirfd, absl::string_view name,
                                              absl::string_view shown);

// True for the xattrs overlayfs keeps for itself (trusted.overlay.*,
// user.overlay.*): they describe the overlay, never the file, and are neither
// written into layers nor restored from them.
bool IsOverlayXattr(absl::string_view name);

// rm -rf of `name` in `dirfd`: OK when it does not exist. Never follows
// symlinks; a symlink is removed, not its target.
absl::Status RemoveAllAt(int dirfd, absl::string_view name, absl::string_view shown);

}  // namespace pier::archive::internal
