// Test helpers for pier_archive: building trees by hand, describing a tree so
// two trees compare with one EXPECT_EQ, crafting tar streams with libarchive
// (or byte by byte, for headers libarchive would refuse to write), and
// listing the entries of a layer.
//
// Thread safety: none needed; tests use them from one thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/archive/layer_apply.h"
#include "lib/archive/layer_writer.h"
#include "lib/archive/libarchive_util.h"

namespace pier::archive::testing {

// Creates (or replaces) a regular file with `content` and `mode`, creating
// parent directories.
absl::Status WriteFile(const std::string& path, absl::string_view content, mode_t mode = 0644);
absl::Status MakeDir(const std::string& path, mode_t mode = 0755);
absl::Status Symlink(const std::string& target, const std::string& path);
absl::Status Chown(const std::string& path, uid_t uid, gid_t gid);           // lchown
absl::Status SetMtime(const std::string& path, int64_t sec, long nsec = 0);  // no follow
absl::Status SetXattr(const std::string& path, const std::string& name, absl::string_view value);
absl::StatusOr<std::string> GetXattr(const std::string& path, const std::string& name);

struct DescribeOptions {
  bool mtimes = true;      // include mtimes (seconds) of non-directories
  bool dir_mtimes = true;  // include mtimes of directories
};

// One line per entry below `root` (not root itself), keyed by relative path:
// type, permissions, owner, size, content digest, symlink target, device
// numbers, xattrs (overlay's excepted), mtime, and for an inode with several
// links the first path (in sorted walk order) that shares it.
absl::StatusOr<std::map<std::string, std::string>> DescribeTree(const std::string& root,
                                                                DescribeOptions options = {});

// Builds a tar stream in memory with libarchive's pax writer.
class TarBuilder {
 public:
  TarBuilder();
  TarBuilder& File(const std::string& name, absl::string_view content, int mode = 0644);
  TarBuilder& Dir(const std::string& name, int mode = 0755);
  TarBuilder& Symlink(const std::string& name, const std::string& target);
  TarBuilder& Hardlink(const std::string& name, const std::string& target);
  TarBuilder& CharDevice(const std::string& name, int major, int minor);
  TarBuilder& Fifo(const std::string& name);
  // Appends bytes verbatim (for hand-made headers) after what was written.
  TarBuilder& Raw(absl::string_view bytes);
  // Ends the archive (two zero blocks) and returns its bytes.
  std::string Finish();

 private:
  void Add(archive_entry* e, absl::string_view content);
  std::string out_;
  internal::WriteArchive a_;
};

// A 512-byte ustar header with `name`, `type` ('0' file, '5' dir, ...) and the
// 12 raw bytes of the size field (octal text, or base-256 with the high bit).
std::string UstarHeader(absl::string_view name, char type, absl::string_view size_field);

// Compresses `data` with libarchive's gzip or zstd filter.
std::string Gzip(absl::string_view data);
std::string Zstd(absl::string_view data);

// "<path> <type> ..." for each entry of a (possibly compressed) layer, in
// order: type is one of f d l h c b p; then "-> target" for links, and
// "xattr=<name>" for each xattr.
absl::StatusOr<std::vector<std::string>> ListLayer(absl::string_view layer);

// A layer written to memory, and what the writer said about it.
struct Created {
  std::string bytes;
  LayerInfo info;
};
absl::StatusOr<Created> CreateFromDir(const std::string& dir, const CreateOptions& options = {});

// Creates `target` (and parents) if needed and applies `layer` to it.
absl::StatusOr<ApplyResult> Apply(absl::string_view layer, const std::string& target,
                                  const ApplyOptions& options = {});

}  // namespace pier::archive::testing
