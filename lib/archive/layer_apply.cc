#include "lib/archive/layer_apply.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/archive/entry_path.h"
#include "lib/archive/fs_util.h"
#include "lib/archive/libarchive_util.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"

namespace pier::archive {
namespace {

constexpr size_t kReadChunk = 1 << 20;

// The read pipeline: a libarchive reader in "raw" format with the gzip and
// zstd filters turns the source into the uncompressed tar stream, which is
// hashed (diff_id) on its way into a second libarchive reader that parses the
// tar. Everything is pulled: one pass, one thread.
class LayerReader {
 public:
  explicit LayerReader(const ByteSource& source) : source_(source), buf_(new char[kReadChunk]) {}
  LayerReader(const LayerReader&) = delete;
  LayerReader& operator=(const LayerReader&) = delete;

  absl::Status Open() {
    decomp_.reset(archive_read_new());
    tar_.reset(archive_read_new());
    if (!decomp_ || !tar_) return absl::ResourceExhaustedError("archive_read_new failed");
    struct archive* d = decomp_.get();
    if (archive_read_support_filter_gzip(d) < ARCHIVE_WARN ||
        archive_read_support_filter_zstd(d) < ARCHIVE_WARN ||
        archive_read_support_format_raw(d) != ARCHIVE_OK) {
      return internal::ArchiveError(absl::StatusCode::kInternal, d, "set up decompressor");
    }
    if (archive_read_open2(d, this, nullptr, &LayerReader::OnSource, nullptr, nullptr) !=
        ARCHIVE_OK) {
      return Error(d, "open layer");
    }
    archive_entry* raw = nullptr;
    int r = archive_read_next_header(d, &raw);
    if (r < ARCHIVE_WARN) return Error(d, "open layer");
    decomp_eof_ = r == ARCHIVE_EOF;
    switch (archive_filter_code(d, 0)) {
      case ARCHIVE_FILTER_GZIP:
        compression_ = Compression::kGzip;
        break;
      case ARCHIVE_FILTER_ZSTD:
        compression_ = Compression::kZstd;
        break;
      default:
        compression_ = Compression::kNone;
    }
    struct archive* t = tar_.get();
    if (archive_read_support_format_tar(t) != ARCHIVE_OK) {
      return internal::ArchiveError(absl::StatusCode::kInternal, t, "set up tar reader");
    }
    if (archive_read_open2(t, this, nullptr, &LayerReader::OnTar, nullptr, nullptr) != ARCHIVE_OK) {
      return Error(t, "read tar");
    }
    return absl::OkStatus();
  }

  struct archive* tar() const {
    return tar_.get();
  }
  Compression compression() const { return compression_; }

  // The status for a libarchive failure on `a`: the source's own failure if
  // that is what stopped it, else DataLoss with libarchive's explanation.
  absl::Status Error(struct archive* a, absl::string_view what) {
    if (!error_.ok()) return error_;
    return internal::ArchiveError(absl::StatusCode::kDataLoss, a, what);
  }

  // Reads the rest of the uncompressed stream (what follows the tar's end
  // marker still counts for the diff_id) and returns its digest and length.
  absl::StatusOr<std::pair<oci::Digest, uint64_t>> Finish() {
    const void* block;
    while (true) {
      la_ssize_t n = OnTar(tar_.get(), this, &block);
      if (n < 0) return Error(decomp_.get(), "read layer");
      if (n == 0) break;
    }
    uint64_t size = hash_.size();
    return std::make_pair(hash_.Finish(), size);
  }

 private:
  static la_ssize_t OnSource(struct archive* a, void* opaque, const void** out) {
    auto* self = static_cast<LayerReader*>(opaque);
    absl::StatusOr<size_t> n = self->source_(self->buf_.get(), kReadChunk);
    if (!n.ok()) {
      self->error_ = n.status();
      archive_set_error(a, EIO, "%s", std::string(n.status().message()).c_str());
      return -1;
    }
    *out = self->buf_.get();
    return static_cast<la_ssize_t>(*n);
  }

  static la_ssize_t OnTar(struct archive* a, void* opaque, const void** out) {
    auto* self = static_cast<LayerReader*>(opaque);
    while (!self->decomp_eof_) {
      const void* block = nullptr;
      size_t size = 0;
      la_int64_t offset = 0;
      int r = archive_read_data_block(self->decomp_.get(), &block, &size, &offset);
      if (r == ARCHIVE_EOF) {
        self->decomp_eof_ = true;
        break;
      }
      if (r < ARCHIVE_WARN) {
        if (self->error_.ok()) {
          self->error_ = internal::ArchiveError(absl::StatusCode::kDataLoss, self->decomp_.get(),
                                                "decompress layer");
        }
        archive_set_error(a, EIO, "%s", std::string(self->error_.message()).c_str());
        return -1;
      }
      if (size == 0) continue;
      self->hash_.Update(block, size);
      *out = block;
      return static_cast<la_ssize_t>(size);
    }
    return 0;
  }

  const ByteSource& source_;
  std::unique_ptr<char[]> buf_;
  internal::ReadArchive decomp_;
  internal::ReadArchive tar_;  // reads through decomp_: declared after it, freed first
  bool decomp_eof_ = false;
  Compression compression_ = Compression::kNone;
  oci::Sha256 hash_;
  absl::Status error_;
};

struct DirTimes {
  std::string path;
  struct timespec times[2];
};

class Applier {
 public:
  Applier(int root_fd, const ApplyOptions& options, LayerReader* reader)
      : root_(root_fd), options_(options), reader_(reader) {}

  absl::Status Apply(archive_entry* e) {
    const char* raw = archive_entry_pathname(e);
    if (raw == nullptr) raw = archive_entry_pathname_utf8(e);
    if (raw == nullptr) return absl::InvalidArgumentError("layer entry without a name");
    entry_name_ = raw;
    absl::Status s = ApplyEntry(e);
    if (s.ok()) return s;
    return Annotate(s, absl::StrCat("layer entry \"", absl::CHexEscape(entry_name_), "\""));
  }

  // Sets the times of the directories this layer wrote, now that nothing
  // more will be created in them. A directory that a later entry removed or
  // replaced (even by a symlink leading out) is skipped: its path is resolved
  // beneath the target again and must still end in a directory.
  absl::Status Finish() {
    for (const DirTimes& d : dir_times_) {
      auto [parent, base] = SplitParent(d.path);
      absl::StatusOr<UniqueFd> dir = ResolveDir(parent, /*create=*/false);
      if (absl::IsNotFound(dir.status()) || absl::IsInvalidArgument(dir.status())) continue;
      if (!dir.ok()) return Annotate(dir.status(), absl::StrCat("set times of ", d.path));
      std::string name(base);
      struct stat st {};
      if (::fstatat(dir->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
          !S_ISDIR(st.st_mode)) {
        continue;
      }
      if (::utimensat(dir->get(), name.c_str(), d.times, AT_SYMLINK_NOFOLLOW) != 0) {
        return ErrnoStatus(errno, absl::StrCat("set times of ", d.path));
      }
    }
    return absl::OkStatus();
  }

 private:
  absl::Status ApplyEntry(archive_entry* e) {
    ASSIGN_OR_RETURN(std::string path, CleanEntryPath(entry_name_));
    if (path.empty()) return absl::OkStatus();  // the root: the target keeps its own
    auto [parent, base] = SplitParent(path);
    ASSIGN_OR_RETURN(Whiteout wh, ClassifyWhiteout(base));
    switch (wh.kind) {
      case WhiteoutKind::kMeta:
        return absl::OkStatus();
      case WhiteoutKind::kOpaque:
        return Opaque(std::string(parent));
      case WhiteoutKind::kRemove:
        return Remove(std::string(parent), wh.victim);
      case WhiteoutKind::kNone:
        break;
    }
    std::string name(base);
    if (const char* link = archive_entry_hardlink(e); link != nullptr) {
      return HardLink(path, parent, name, link);
    }
    const mode_t type = archive_entry_filetype(e);
    if (type == AE_IFCHR || type == AE_IFBLK) {
      if (options_.devices == DevicePolicy::kSkip) return absl::OkStatus();
      if (options_.devices == DevicePolicy::kRefuse) {
        return absl::PermissionDeniedError("device nodes are not allowed in this layer");
      }
    }
    if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK && type != AE_IFCHR &&
        type != AE_IFBLK && type != AE_IFIFO) {
      return absl::InvalidArgumentError(absl::StrCat("unsupported entry type ", type));
    }
    ASSIGN_OR_RETURN(UniqueFd dir, ResolveDir(parent, /*create=*/true));
    ASSIGN_OR_RETURN(bool keep_dir, ClearSlot(dir.get(), name, type == AE_IFDIR));
    switch (type) {
      case AE_IFREG:
        RETURN_IF_ERROR(WriteFile(e, dir.get(), name));
        break;
      case AE_IFDIR:
        RETURN_IF_ERROR(MakeDir(e, dir.get(), name, path, keep_dir));
        break;
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(e);
        if (target == nullptr) target = archive_entry_symlink_utf8(e);
        if (target == nullptr) return absl::InvalidArgumentError("symlink without a target");
        if (::symlinkat(target, dir.get(), name.c_str()) != 0) {
          return ErrnoStatus(errno, "create symlink");
        }
        RETURN_IF_ERROR(SetMetadata(e, dir.get(), name, -1, /*is_symlink=*/true));
        break;
      }
      default: {
        dev_t rdev = 0;
        if (type != AE_IFIFO) {
          rdev = makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
        }
        if (::mknodat(dir.get(), name.c_str(), type | 0600, rdev) != 0) {
          return ErrnoStatus(errno, "mknod");
        }
        RETURN_IF_ERROR(SetMetadata(e, dir.get(), name, -1, /*is_symlink=*/false));
      }
    }
    created_.insert(path);
    return absl::OkStatus();
  }

  int OpenBeneath(absl::string_view path) {
    std::string p = path.empty() ? std::string(".") : std::string(path);
    struct open_how how {};
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    for (int attempt = 0;; ++attempt) {
      long fd = ::syscall(SYS_openat2, root_, p.c_str(), &how, sizeof(how));
      if (fd >= 0) return static_cast<int>(fd);
      if (errno == EINTR || (errno == EAGAIN && attempt < 32)) continue;
      return -1;
    }
  }

  static absl::Status ResolveError(int err, absl::string_view path) {
    switch (err) {
      case EXDEV:
        return absl::InvalidArgumentError(absl::StrCat("path escapes the target: \"",
                                                       absl::CHexEscape(path),
                                                       "\" leads outside through a symlink"));
      case ELOOP:
        return absl::InvalidArgumentError(absl::StrCat("path \"", absl::CHexEscape(path),
                                                       "\" has too many levels of symbolic links"));
      case ENOTDIR:
        return absl::InvalidArgumentError(
            absl::StrCat("parent \"", absl::CHexEscape(path), "\" is not a directory"));
      case ENOSYS:
        return absl::UnimplementedError("openat2(2) is not available (Linux >= 5.6 needed)");
      default:
        return ErrnoStatus(err, absl::StrCat("resolve \"", absl::CHexEscape(path), "\""));
    }
  }

  // Opens the directory at the cleaned relative `path` (O_PATH), resolving it
  // beneath the target. With `create`, missing components are made (0755).
  // NotFound when it is missing and !create.
  absl::StatusOr<UniqueFd> ResolveDir(absl::string_view path, bool create) {
    int fd = OpenBeneath(path);
    if (fd >= 0) return UniqueFd(fd);
    if (errno != ENOENT || !create) return ResolveError(errno, path);
    UniqueFd cur(OpenBeneath(""));
    if (!cur.valid()) return ResolveError(errno, "");
    std::string prefix;
    for (absl::string_view comp : absl::StrSplit(path, '/')) {
      prefix = internal::JoinRel(prefix, comp);
      fd = OpenBeneath(prefix);
      if (fd < 0 && errno == ENOENT) {
        std::string c(comp);
        if (::mkdirat(cur.get(), c.c_str(), 0755) == 0) {
          ::fchmodat(cur.get(), c.c_str(), 0755, AT_SYMLINK_NOFOLLOW);
          created_.insert(prefix);
        } else if (errno != EEXIST) {
          return ErrnoStatus(errno, absl::StrCat("mkdir \"", absl::CHexEscape(prefix), "\""));
        }
        fd = OpenBeneath(prefix);
        if (fd < 0 && errno == ENOENT) {
          return absl::InvalidArgumentError(
              absl::StrCat("parent \"", absl::CHexEscape(prefix), "\" is a dangling symlink"));
        }
      }
      if (fd < 0) return ResolveError(errno, prefix);
      cur.Reset(fd);
    }
    return cur;
  }

  // Makes room for a new entry `name` in `dir`: removes whatever is there
  // without following it, except that a directory entry merges into an
  // existing directory. Returns whether such a directory was kept.
  absl::StatusOr<bool> ClearSlot(int dir, const std::string& name, bool is_dir) {
    struct stat st {};
    if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return false;
      return ErrnoStatus(errno, "stat existing entry");
    }
    if (S_ISDIR(st.st_mode)) {
      if (is_dir) return true;
      RETURN_IF_ERROR(internal::RemoveAllAt(dir, name, "existing directory"));
      return false;
    }
    if (::unlinkat(dir, name.c_str(), 0) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, "remove existing entry");
    }
    return false;
  }

  absl::Status WriteFile(archive_entry* e, int dir, const std::string& name) {
    UniqueFd fd(
        ::openat(dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid()) return ErrnoStatus(errno, "create file");
    int64_t end = 0;
    while (true) {
      const void* block = nullptr;
      size_t size = 0;
      la_int64_t offset = 0;
      int r = archive_read_data_block(reader_->tar(), &block, &size, &offset);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) return reader_->Error(reader_->tar(), "read file data");
      const char* p = static_cast<const char*>(block);
      while (size > 0) {
        ssize_t n = ::pwrite(fd.get(), p, size, offset);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoStatus(errno, "write file");
        p += n;
        offset += n;
        size -= static_cast<size_t>(n);
      }
      end = std::max<int64_t>(end, offset);
    }
    if (archive_entry_size_is_set(e) && archive_entry_size(e) > end) {
      // A sparse file ends in a hole.
      if (::ftruncate(fd.get(), archive_entry_size(e)) != 0) return ErrnoStatus(errno, "truncate");
    }
    return SetMetadata(e, dir, name, fd.get(), /*is_symlink=*/false);
  }

  absl::Status MakeDir(archive_entry* e, int dir, const std::string& name, const std::string& path,
                       bool exists) {
    if (!exists && ::mkdirat(dir, name.c_str(), 0700) != 0) return ErrnoStatus(errno, "mkdir");
    ASSIGN_OR_RETURN(UniqueFd fd, internal::OpenDirAt(dir, name, "directory"));
    RETURN_IF_ERROR(SetMetadata(e, dir, name, fd.get(), /*is_symlink=*/false));
    DirTimes t;
    t.path = path;
    EntryTimes(e, t.times);
    dir_times_.push_back(std::move(t));
    return absl::OkStatus();
  }

  static void EntryTimes(archive_entry* e, struct timespec times[2]) {
    times[1].tv_sec = archive_entry_mtime(e);
    times[1].tv_nsec = archive_entry_mtime_nsec(e);
    if (archive_entry_atime_is_set(e)) {
      times[0].tv_sec = archive_entry_atime(e);
      times[0].tv_nsec = archive_entry_atime_nsec(e);
    } else {
      times[0] = times[1];
    }
  }

  // Owner, then mode (chown clears setuid), then xattrs (chown clears
  // security.capability), then times (not for directories: see Finish).
  // Through `fd` when there is one, else on `name` in `dir` without
  // following it.
  absl::Status SetMetadata(archive_entry* e, int dir, const std::string& name, int fd,
                           bool is_symlink) {
    const mode_t type = archive_entry_filetype(e);
    if (options_.restore_owners) {
      int64_t uid = archive_entry_uid(e);
      int64_t gid = archive_entry_gid(e);
      if (uid < 0 || gid < 0 || uid >= 0xffffffffLL || gid >= 0xffffffffLL) {
        return absl::InvalidArgumentError(absl::StrCat("invalid owner ", uid, ":", gid));
      }
      int r = fd >= 0 ? ::fchown(fd, static_cast<uid_t>(uid), static_cast<gid_t>(gid))
                      : ::fchownat(dir, name.c_str(), static_cast<uid_t>(uid),
                                   static_cast<gid_t>(gid), AT_SYMLINK_NOFOLLOW);
      if (r != 0) return ErrnoStatus(errno, "chown");
    }
    if (!is_symlink) {
      mode_t perm = archive_entry_perm(e) & 07777;
      int r =
          fd >= 0 ? ::fchmod(fd, perm) : ::fchmodat(dir, name.c_str(), perm, AT_SYMLINK_NOFOLLOW);
      if (r != 0) return ErrnoStatus(errno, "chmod");
    }
    if (options_.restore_xattrs && archive_entry_xattr_reset(e) > 0) {
      std::string path = fd >= 0 ? std::string() : internal::ProcFdPath(dir, name);
      const char* xname = nullptr;
      const void* value = nullptr;
      size_t size = 0;
      while (archive_entry_xattr_next(e, &xname, &value, &size) == ARCHIVE_OK) {
        if (internal::IsOverlayXattr(xname)) continue;
        int r = fd >= 0 ? ::fsetxattr(fd, xname, value, size, 0)
                        : ::lsetxattr(path.c_str(), xname, value, size, 0);
        // Like docker: a file system without xattrs (ENOTSUP), or user.* on a
        // symlink or device, which the kernel does not allow (EPERM), is
        // not an error.
        if (r != 0 && errno != ENOTSUP && errno != EPERM) {
          return ErrnoStatus(errno, absl::StrCat("set xattr ", xname));
        }
      }
    }
    if (type != AE_IFDIR) {
      struct timespec times[2];
      EntryTimes(e, times);
      int r = fd >= 0 ? ::futimens(fd, times)
                      : ::utimensat(dir, name.c_str(), times, AT_SYMLINK_NOFOLLOW);
      if (r != 0) return ErrnoStatus(errno, "set times");
    }
    return absl::OkStatus();
  }

  absl::Status HardLink(const std::string& path, absl::string_view parent, const std::string& name,
                        absl::string_view raw_target) {
    std::string shown = absl::StrCat("hard link target \"", absl::CHexEscape(raw_target), "\"");
    absl::StatusOr<std::string> target = CleanEntryPath(raw_target);
    if (!target.ok()) return Annotate(target.status(), shown);
    if (target->empty()) return absl::InvalidArgumentError(absl::StrCat(shown, ": is the root"));
    if (*target == path)
      return absl::InvalidArgumentError(absl::StrCat(shown, ": is the entry itself"));
    auto [tparent, tbase] = SplitParent(*target);
    absl::StatusOr<UniqueFd> tdir = ResolveDir(tparent, /*create=*/false);
    if (absl::IsNotFound(tdir.status())) {
      return absl::InvalidArgumentError(absl::StrCat(shown, ": does not exist"));
    }
    if (!tdir.ok()) return Annotate(tdir.status(), shown);
    std::string tname(tbase);
    struct stat st {};
    if (::fstatat(tdir->get(), tname.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT)
        return absl::InvalidArgumentError(absl::StrCat(shown, ": does not exist"));
      return ErrnoStatus(errno, shown);
    }
    if (S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(absl::StrCat(shown, ": is a directory"));
    }
    ASSIGN_OR_RETURN(UniqueFd dir, ResolveDir(parent, /*create=*/true));
    RETURN_IF_ERROR(ClearSlot(dir.get(), name, /*is_dir=*/false).status());
    // Flags 0: a symlink target is linked itself, never followed.
    if (::linkat(tdir->get(), tname.c_str(), dir.get(), name.c_str(), 0) != 0) {
      return ErrnoStatus(errno, absl::StrCat("link to ", *target));
    }
    created_.insert(path);
    return absl::OkStatus();
  }

  absl::Status Remove(const std::string& parent, const std::string& victim) {
    std::string path = internal::JoinRel(parent, victim);
    if (options_.whiteout_mode == WhiteoutMode::kOverlay) {
      ASSIGN_OR_RETURN(UniqueFd dir, ResolveDir(parent, /*create=*/true));
      RETURN_IF_ERROR(internal::RemoveAllAt(dir.get(), victim, path));
      if (::mknodat(dir.get(), victim.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
        return ErrnoStatus(errno, absl::StrCat("mknod whiteout ", path));
      }
      return absl::OkStatus();
    }
    // A whiteout hides what lower layers hold, not what this layer wrote.
    if (created_.contains(path)) return absl::OkStatus();
    absl::StatusOr<UniqueFd> dir = ResolveDir(parent, /*create=*/false);
    if (absl::IsNotFound(dir.status())) return absl::OkStatus();  // nothing to delete
    if (!dir.ok()) return dir.status();
    return internal::RemoveAllAt(dir->get(), victim, path);
  }

  absl::Status Opaque(const std::string& path) {
    if (options_.whiteout_mode == WhiteoutMode::kOverlay) {
      ASSIGN_OR_RETURN(UniqueFd dir, ResolveDir(path, /*create=*/true));
      ASSIGN_OR_RETURN(UniqueFd real, internal::OpenDirAt(dir.get(), ".", path));
      const char* xname =
          options_.overlay_user_xattr ? "user.overlay.opaque" : "trusted.overlay.opaque";
      if (::fsetxattr(real.get(), xname, "y", 1, 0) != 0) {
        return ErrnoStatus(errno, absl::StrCat("set ", xname, " on ", path));
      }
      return absl::OkStatus();
    }
    absl::StatusOr<UniqueFd> dir = ResolveDir(path, /*create=*/false);
    if (absl::IsNotFound(dir.status())) return absl::OkStatus();
    if (!dir.ok()) return dir.status();
    ASSIGN_OR_RETURN(UniqueFd real, internal::OpenDirAt(dir->get(), ".", path));
    return Prune(real.get(), path);
  }

  // Deletes everything in `dirfd` (at `path`) that this layer did not write.
  absl::Status Prune(int dirfd, const std::string& path) {
    ASSIGN_OR_RETURN(std::vector<std::string> names, internal::ListDir(dirfd, path));
    for (const std::string& name : names) {
      std::string child = internal::JoinRel(path, name);
      if (!created_.contains(child)) {
        RETURN_IF_ERROR(internal::RemoveAllAt(dirfd, name, child));
        continue;
      }
      ASSIGN_OR_RETURN(struct stat st, internal::StatAt(dirfd, name, child));
      if (S_ISDIR(st.st_mode)) {
        ASSIGN_OR_RETURN(UniqueFd sub, internal::OpenDirAt(dirfd, name, child));
        RETURN_IF_ERROR(Prune(sub.get(), child));
      }
    }
    return absl::OkStatus();
  }

  const int root_;
  const ApplyOptions& options_;
  LayerReader* reader_;
  std::string entry_name_;
  std::unordered_set<std::string> created_;  // cleaned paths this layer wrote
  std::vector<DirTimes> dir_times_;
};

}  // namespace

absl::StatusOr<ApplyResult> ApplyLayer(const ByteSource& input, absl::string_view target_dir,
                                       const ApplyOptions& options) {
  internal::ScopedUtf8Locale utf8;
  std::string target(target_dir);
  UniqueFd root(::open(target.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) {
    if (errno == ENOTDIR) {
      return absl::FailedPreconditionError(absl::StrCat(target, " is not a directory"));
    }
    return ErrnoStatus(errno, absl::StrCat("open target ", target));
  }
  LayerReader reader(input);
  RETURN_IF_ERROR(reader.Open());
  Applier applier(root.get(), options, &reader);
  ApplyResult result;
  result.compression = reader.compression();
  while (true) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(reader.tar(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return reader.Error(reader.tar(), "read tar header");
    ++result.entries;
    RETURN_IF_ERROR(applier.Apply(e));
  }
  RETURN_IF_ERROR(applier.Finish());
  ASSIGN_OR_RETURN(auto digest, reader.Finish());
  result.diff_id = digest.first;
  result.bytes = digest.second;
  if (options.expected_diff_id && *options.expected_diff_id != result.diff_id) {
    return absl::DataLossError(absl::StrCat("layer diff_id is ", result.diff_id.str(),
                                            ", expected ", options.expected_diff_id->str()));
  }
  return result;
}

}  // namespace pier::archive
