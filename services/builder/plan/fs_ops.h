// Filesystem steps of a build (COPY, ADD, WORKDIR) applied to a writable
// overlay snapshot.
//
// RunFsOp() forks a child that unshares its mount namespace (made private, so
// nothing leaks to the host), mounts the step's overlay at `mountpoint` and
// (for COPY --from) a read-only view of the source root, opens the source
// root by descriptor, chroots into the new root and performs the operation.
// Destination paths are therefore resolved inside the image (its symlinks
// cannot point at the host); sources are resolved with
// openat2(RESOLVE_IN_ROOT) below their root. Writes land in the overlay's
// upper directory, which the caller then turns into a layer.
//
// Copy semantics follow docker: sources may hold wildcards (`*`, `?`,
// `[...]`); a directory source copies its contents; a destination ending in
// '/' (or several sources) is a directory; --chown and --chmod apply to
// every copied entry; context files are owned by 0:0 unless --chown; ADD
// extracts local tar archives (plain, gzip, zstd, by name).
//
// Errors: NotFound naming a source pattern that matches nothing; the
// failing syscall's errno code naming the path; InvalidArgument for an
// unsafe archive entry.
// Thread safety: reentrant (each call uses its own child process).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "lib/exec/spec.h"

namespace pier::builder {

struct FsOp {
  enum class Kind { kCopy, kMkdir };
  Kind kind = Kind::kCopy;
  std::string what = "COPY";         // keyword, for messages
  std::vector<std::string> sources;  // kCopy: patterns relative to the source root
  std::string dest;                  // absolute; kCopy: a trailing '/' means a directory
  std::optional<uint32_t> uid;       // --chown
  std::optional<uint32_t> gid;
  bool preserve_owner = false;    // keep the source's owners (COPY --from)
  std::optional<uint32_t> mode;   // --chmod
  bool extract_archives = false;  // ADD
};

// Where the sources come from: a plain host directory (the build context) or
// mounts that assemble one (a stage or image root).
struct FsSource {
  std::string dir;                  // used when mounts is empty
  std::vector<exec::Mount> mounts;  // mounted at `mountpoint`
  std::string mountpoint;
};

absl::Status RunFsOp(const std::vector<exec::Mount>& rootfs, const std::string& mountpoint,
                     const FsSource& source, const FsOp& op);

}  // namespace pier::builder
