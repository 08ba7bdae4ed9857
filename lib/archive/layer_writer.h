// Layer creation: writes an OCI image layer (a tar stream, optionally gzip or
// zstd compressed) from a directory tree, from an overlayfs upper directory,
// or from the difference between two directory trees; rewrites a layer blob
// with another compression.
//
// The tar is what docker and containerd write: ustar headers, with PAX
// extended headers only where ustar cannot hold a value (long names, large
// ids or sizes, xattrs as SCHILY.xattr.<name>). Entries come in a fixed order
// (each directory, then its children sorted bytewise, depth first); the root
// itself is not an entry; directories are named with a trailing '/'; regular
// files that share an inode are written once and then as tar hard links;
// uname/gname are left empty and mtimes are whole seconds. Sockets are
// skipped, as tar cannot hold them. Names starting with ".wh." cannot be
// represented (they are whiteouts) and are refused.
//
// The output is streamed once: the tar bytes are hashed (diff_id) on their
// way into the compressor, whose output is hashed (digest) on its way to the
// sink. With a fixed gzip header (no name, no time) and `source_date_epoch`,
// identical trees give identical bytes.
//
// Ownership: the functions read the trees and write only to `output`.
// Thread safety: the functions are reentrant; concurrent calls are safe. They
// never chdir; every directory is opened by descriptor without following
// symlinks.
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

struct CreateOptions {
  Compression compression = Compression::kGzip;
  // 0 picks the compressor's default (gzip 6, zstd 3); otherwise gzip 1..9,
  // zstd 1..19.
  int compression_level = 0;
  // SOURCE_DATE_EPOCH (reproducible-builds.org): every mtime later than this
  // many seconds since 1970 is clamped to it, so a rebuild from the same
  // content gives the same layer digest whatever the files' times.
  std::optional<int64_t> source_date_epoch;
};

// What was written: enough for an OCI descriptor and the image config's
// rootfs.diff_ids.
struct LayerInfo {
  oci::Digest digest;   // sha256 of the bytes given to the sink
  uint64_t size = 0;    // number of those bytes
  oci::Digest diff_id;  // sha256 of the uncompressed tar
  uint64_t uncompressed_size = 0;
  std::string media_type;  // application/vnd.oci.image.layer.v1.tar[+gzip|+zstd]
  uint64_t entries = 0;    // tar entries written, whiteouts included
};

// Writes every entry below `dir` (not `dir` itself).
// Errors: NotFound / PermissionDenied / ... (errno's code) naming the path
// that could not be read; InvalidArgument for a name starting with ".wh.";
// Aborted when a file shrinks while it is being read; Internal when libarchive
// fails; the sink's own status when it fails.
absl::StatusOr<LayerInfo> CreateLayerFromDir(absl::string_view dir, const ByteSink& output,
                                             const CreateOptions& options = {});

// Writes the layer an overlayfs upper directory stands for: a 0/0 character
// device becomes the whiteout `.wh.<name>`; a directory whose
// trusted.overlay.opaque (or user.overlay.opaque) is "y" is written followed
// by `<dir>/.wh..wh..opq`; overlay-private xattrs (trusted.overlay.*,
// user.overlay.*) are not copied. The overlay must have been unmounted (or
// frozen) by the caller.
// Errors: as CreateLayerFromDir, plus FailedPrecondition for entries that
// carry overlay redirect or metacopy xattrs (their data lives in the lower
// layers; mount with redirect_dir=off,metacopy=off).
absl::StatusOr<LayerInfo> CreateLayerFromOverlayUpper(absl::string_view upper_dir,
                                                      const ByteSink& output,
                                                      const CreateOptions& options = {});

// Writes the changes that turn `lower_dir` into `upper_dir`: entries added or
// changed in upper (with their parent directories, so the layer applies on its
// own), and `.wh.<name>` for every entry of lower missing from upper (once per
// deleted subtree). An entry is changed when its type, mode, owner, size,
// mtime (to the nanosecond), symlink target, device number or xattrs differ;
// regular files whose metadata all agree are compared byte by byte only when
// their mtime has no sub-second part (timestamps that came out of a tar, where
// a rewrite within the same second would otherwise go unseen).
// Errors: as CreateLayerFromDir, for either tree.
absl::StatusOr<LayerInfo> CreateLayerFromDiff(absl::string_view lower_dir,
                                              absl::string_view upper_dir, const ByteSink& output,
                                              const CreateOptions& options = {});

// Rewrites the layer blob read from `blob` (tar, gzip or zstd, detected from
// the bytes) with `options.compression` and level: the tar stream is copied
// as it is, so diff_id and uncompressed_size match the original's. `entries`
// is 0 (the tar is not parsed).
// Errors: DataLoss for a corrupt or truncated compressed stream;
// InvalidArgument for a compression level the compressor refuses; the
// source's and the sink's own statuses.
absl::StatusOr<LayerInfo> RecompressLayer(const ByteSource& blob, const ByteSink& output,
                                          const CreateOptions& options = {});

}  // namespace pier::archive
