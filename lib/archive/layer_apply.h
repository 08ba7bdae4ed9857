// Layer application: unpacks an OCI image layer (tar, gzip+tar or zstd+tar,
// detected from the bytes) onto a directory, safely.
//
// Safety. A layer is untrusted input; nothing it says may touch anything
// outside `target_dir`, whatever it holds and whatever the target already
// holds:
//  - Each entry name is cleaned lexically (CleanEntryPath): a leading '/' is
//    stripped (as docker and containerd do), and a name that climbs above the
//    root ("../x", "a/../../x") is refused.
//  - The parent directory of each entry is resolved with openat2(2)
//    RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS relative to a descriptor of the
//    target: a symlink on the way may lead anywhere inside the target, but
//    one that leads out (absolute, or ".." past the root) makes the kernel
//    fail with EXDEV, and the entry is refused. RESOLVE_BENEATH treats every
//    absolute symlink as leading out, so an entry below one (var/run/x with
//    var/run -> /run) is refused too, even though a container would see it
//    inside: writers record real paths, and refusing is the safe reading.
//  - The last component is never followed: whatever non-directory is there
//    (a symlink planted by a lower layer or earlier in this one) is unlinked
//    first and the new entry created with O_CREAT|O_EXCL|O_NOFOLLOW, mknodat,
//    symlinkat or linkat; metadata is set on the new descriptor or with
//    AT_SYMLINK_NOFOLLOW. A directory entry over a symlink replaces the
//    symlink by a real directory.
//  - Hard links must name an entry that already exists inside the target
//    (resolved the same way); the link target itself is never followed.
//  - Whiteouts are resolved like any other entry, and ".wh.", ".wh..",
//    ".wh..." (which would name the directory itself or its parent) are
//    refused.
//  - The process never chdirs: every operation is relative to descriptors,
//    so concurrent calls and other threads are unaffected.
// A refused entry fails the whole call with InvalidArgument naming it, e.g.
//   layer entry "../x": path escapes the target
// Entries applied before the refused one stay: the caller applies into a
// fresh snapshot and discards it on error.
//
// Whiteouts. With WhiteoutMode::kDelete, `.wh.<name>` deletes <name>
// (recursively) and `<dir>/.wh..wh..opq` deletes what lower layers put in
// <dir>, keeping what this layer itself wrote there (before or after the
// marker); a `.wh.<name>` for an entry this layer itself wrote is ignored.
// With kOverlay (for an overlayfs snapshotter, where each layer is
// its own directory) they become a 0/0 character device and the xattr
// trusted.overlay.opaque=y (user.overlay.opaque with overlay_user_xattr).
//
// Metadata. Owners (lchown), modes (setuid/setgid/sticky kept: chown comes
// first), xattrs (after chown, which clears security.capability; a file
// system without xattrs, or user.* on a symlink or device, is not an error),
// mtimes (utimensat, directories last, since creating entries changes them).
// Overlay-private xattrs (trusted.overlay.*, user.overlay.*) in a layer are
// ignored: they would change how overlayfs reads the snapshot.
//
// Thread safety: reentrant; concurrent calls on different targets are safe.
// Requires Linux >= 5.6 (openat2).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/archive/compression.h"
#include "lib/archive/stream.h"
#include "lib/oci/digest.h"

namespace pier::archive {

enum class WhiteoutMode {
  kDelete,   // apply whiteouts by deleting from the target (a flattened rootfs)
  kOverlay,  // record them as overlayfs whiteouts (a layer directory of an overlay)
};

enum class DevicePolicy {
  kCreate,  // mknod character and block devices (needs CAP_MKNOD)
  kSkip,    // leave them out silently (rootless unpacking)
  kRefuse,  // fail with PermissionDenied naming the entry
};

struct ApplyOptions {
  WhiteoutMode whiteout_mode = WhiteoutMode::kDelete;
  DevicePolicy devices = DevicePolicy::kCreate;
  // lchown entries to the layer's uid/gid (needs CAP_CHOWN for others' ids).
  bool restore_owners = true;
  // Set the layer's xattrs (security.capability, user.*, ...).
  bool restore_xattrs = true;
  // kOverlay: mark opaque directories with user.overlay.opaque (overlayfs
  // mounted with "userxattr", as in a user namespace) instead of trusted.*.
  bool overlay_user_xattr = false;
  // When set, the uncompressed stream must hash to this (the image config's
  // rootfs.diff_ids entry), else DataLoss once the layer is read. libarchive
  // does not check gzip's CRC, so the digests are what prove integrity: the
  // compressed blob's when it is fetched, this one when it is unpacked.
  std::optional<oci::Digest> expected_diff_id;
};

struct ApplyResult {
  oci::Digest diff_id;                           // sha256 of the uncompressed tar stream
  uint64_t bytes = 0;                            // length of the uncompressed tar stream
  Compression compression = Compression::kNone;  // as detected
  uint64_t entries = 0;                          // tar entries read
};

// Applies the layer read from `input` to the directory `target_dir`, which
// must exist. The whole input is read, so `diff_id` covers every byte.
// Errors: InvalidArgument naming the entry for an unsafe or malformed entry
// (escaping path, hard link to a missing or outside target, invalid
// whiteout, impossible parent); DataLoss for a corrupt, truncated or
// unreadable tar or compressed stream; PermissionDenied for a device under
// DevicePolicy::kRefuse; errno's code, annotated with the entry, when the
// file system refuses an operation; the source's own status when it fails;
// NotFound / FailedPrecondition when `target_dir` is missing or not a
// directory; Unimplemented when the kernel lacks openat2; DataLoss when
// `expected_diff_id` is set and differs (the target then holds what was
// read: discard it).
absl::StatusOr<ApplyResult> ApplyLayer(const ByteSource& input, absl::string_view target_dir,
                                       const ApplyOptions& options = {});

}  // namespace pier::archive
