#include "lib/archive/layer_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/archive/entry_path.h"
#include "lib/archive/fs_util.h"
#include "lib/archive/libarchive_util.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"

namespace pier::archive {
namespace {

using internal::Xattr;

constexpr size_t kCopyChunk = 1 << 20;
constexpr int kTarBlock = 128 << 10;
constexpr int kCompressedBlock = 128 << 10;

// The tar stream: libarchive's pax writer whose output is hashed (diff_id) and
// then fed to a second libarchive writer in "raw" format with the gzip or zstd
// filter, whose output is hashed (digest) and handed to the sink. One pass,
// one thread, no temporary file.
class TarStream {
 public:
  TarStream(const ByteSink& sink, const CreateOptions& options) : sink_(sink), options_(options) {}
  TarStream(const TarStream&) = delete;
  TarStream& operator=(const TarStream&) = delete;
  ~TarStream() {
    // Freeing a writer that was not closed flushes it. After a failure that
    // flush must neither reach the sink nor read freed memory: the callbacks
    // turn into no-ops, the compressor thread stops, the compressor goes
    // first (its zlib/zstd state may point into the tar writer's block
    // buffer, or into buffer_, both still alive), then the tar writer.
    abandoned_ = true;
    StopCompressorThread();
    compressor_.reset();
    tar_.reset();
  }

  // Scratch space for file data on its way into the tar; it outlives both
  // libarchive writers, which may hold pointers into it.
  char* buffer() { return buffer_.get(); }

  // Opens the compressor and, unless `raw_tar` (the caller hands in tar
  // bytes with WriteTarBytes), the tar writer.
  absl::Status Open(bool raw_tar = false) {
    if (options_.compression != Compression::kNone) {
      RETURN_IF_ERROR(OpenCompressor());
      compress_thread_ = std::thread([this] { CompressLoop(); });
    }
    if (raw_tar) return absl::OkStatus();
    tar_.reset(archive_write_new());
    if (!tar_) return absl::ResourceExhaustedError("archive_write_new failed");
    struct archive* t = tar_.get();
    if (archive_write_set_format_pax_restricted(t) != ARCHIVE_OK ||
        archive_write_set_format_option(t, "pax", "xattrheader", "SCHILY") != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(t, kTarBlock) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(t, 1) != ARCHIVE_OK) {
      return internal::ArchiveError(absl::StatusCode::kInternal, t, "set up tar writer");
    }
    if (archive_write_open2(t, this, nullptr, &TarStream::OnTar, nullptr, nullptr) != ARCHIVE_OK) {
      return Failure(t, "open tar writer");
    }
    return absl::OkStatus();
  }

  absl::Status WriteHeader(archive_entry* entry) {
    int r = archive_write_header(tar_.get(), entry);
    if (r < ARCHIVE_WARN) {
      return Failure(tar_.get(),
                     absl::StrCat("write tar header for ", archive_entry_pathname(entry)));
    }
    ++entries_;
    return absl::OkStatus();
  }

  absl::Status WriteData(const char* data, size_t len, absl::string_view shown) {
    while (len > 0) {
      la_ssize_t n = archive_write_data(tar_.get(), data, len);
      if (n <= 0) return Failure(tar_.get(), absl::StrCat("write tar data for ", shown));
      data += n;
      len -= static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  // Bytes of a tar stream written elsewhere (Open(true)): hashed as the
  // diff_id, compressed, handed on.
  absl::Status WriteTarBytes(const char* data, size_t len) {
    RETURN_IF_ERROR(error_);
    Consume(data, len);
    return error_;
  }

  absl::StatusOr<LayerInfo> Finish() {
    if (tar_ && archive_write_close(tar_.get()) != ARCHIVE_OK)
      return Failure(tar_.get(), "close tar writer");
    // Everything is queued: let the compressor thread finish, then flush the
    // compressor here (no other thread touches it any more).
    StopCompressorThread();
    if (error_.ok() && !compress_error_.ok()) error_ = compress_error_;
    RETURN_IF_ERROR(error_);
    if (compressor_ && archive_write_close(compressor_.get()) != ARCHIVE_OK) {
      if (error_.ok() && !compress_error_.ok()) error_ = compress_error_;
      return Failure(compressor_.get(), "close compressor");
    }
    if (error_.ok() && !compress_error_.ok()) error_ = compress_error_;
    RETURN_IF_ERROR(error_);
    LayerInfo info;
    info.uncompressed_size = diff_hash_.size();
    info.diff_id = diff_hash_.Finish();
    if (compressor_) {
      info.size = blob_hash_.size();
      info.digest = blob_hash_.Finish();
    } else {
      info.size = info.uncompressed_size;
      info.digest = info.diff_id;
    }
    info.media_type = std::string(LayerMediaType(options_.compression));
    info.entries = entries_;
    return info;
  }

 private:
  absl::Status OpenCompressor() {
    compressor_.reset(archive_write_new());
    if (!compressor_) return absl::ResourceExhaustedError("archive_write_new failed");
    struct archive* c = compressor_.get();
    const char* module = nullptr;
    if (options_.compression == Compression::kGzip) {
      module = "gzip";
      if (archive_write_add_filter_gzip(c) != ARCHIVE_OK ||
          // No time stamp (and libarchive writes no name): same input, same bytes.
          archive_write_set_filter_option(c, module, "timestamp", nullptr) != ARCHIVE_OK) {
        return internal::ArchiveError(absl::StatusCode::kInternal, c, "set up gzip");
      }
    } else {
      module = "zstd";
      if (archive_write_add_filter_zstd(c) != ARCHIVE_OK) {
        return internal::ArchiveError(absl::StatusCode::kInternal, c, "set up zstd");
      }
    }
    if (options_.compression_level != 0) {
      std::string level = absl::StrCat(options_.compression_level);
      if (archive_write_set_filter_option(c, module, "compression-level", level.c_str()) !=
          ARCHIVE_OK) {
        return absl::InvalidArgumentError(
            absl::StrCat("compression level ", level, " is not valid for ", module));
      }
    }
    if (archive_write_set_format_raw(c) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(c, kCompressedBlock) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(c, 1) != ARCHIVE_OK) {
      return internal::ArchiveError(absl::StatusCode::kInternal, c, "set up compressor");
    }
    if (archive_write_open2(c, this, nullptr, &TarStream::OnCompressed, nullptr, nullptr) !=
        ARCHIVE_OK) {
      return Failure(c, "open compressor");
    }
    internal::Entry raw(archive_entry_new());
    archive_entry_set_filetype(raw.get(), AE_IFREG);
    archive_entry_set_pathname(raw.get(), "layer.tar");
    if (archive_write_header(c, raw.get()) != ARCHIVE_OK) return Failure(c, "start compressor");
    return absl::OkStatus();
  }

  // The first failure inside a callback (the sink's own status) wins over
  // libarchive's generic report of it.
  absl::Status Failure(struct archive* a, absl::string_view what) {
    if (!error_.ok()) return error_;
    return internal::ArchiveError(absl::StatusCode::kInternal, a, what);
  }

  // Hashes tar bytes and passes them to the compressor thread (or the
  // sink); failures land in error_. Compression runs on its own thread, so
  // that reading and archiving the tree overlaps with deflate/zstd, which
  // is most of a large layer's time on one core.
  void Consume(const void* buf, size_t len) {
    diff_hash_.Update(buf, len);
    if (!compressor_) {
      error_ = sink_(absl::string_view(static_cast<const char*>(buf), len));
      return;
    }
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return queued_bytes_ < kMaxQueued || !compress_error_.ok(); });
    if (!compress_error_.ok()) {
      error_ = compress_error_;
      return;
    }
    queue_.emplace_back(static_cast<const char*>(buf), len);
    queued_bytes_ += len;
    cv_.notify_all();
  }

  // The compressor thread: feeds queued tar bytes to the compressor, whose
  // output (OnCompressed) is hashed and handed to the sink on this thread.
  void CompressLoop() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return !queue_.empty() || closing_; });
      if (queue_.empty()) return;  // closing, all written
      std::string chunk = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= chunk.size();
      const bool failed = !compress_error_.ok();
      lock.unlock();
      cv_.notify_all();
      absl::Status s;
      // Fed from a member, kept until the next chunk: after a failed write
      // the compressor's zlib/zstd state still points into these bytes when
      // it is flushed or freed (a fully written chunk is no longer read).
      if (!failed) fed_ = std::move(chunk);
      const char* p = fed_.data();
      size_t left = failed ? 0 : fed_.size();
      while (left > 0) {
        la_ssize_t n = archive_write_data(compressor_.get(), p, left);
        if (n <= 0) {
          s = internal::ArchiveError(absl::StatusCode::kInternal, compressor_.get(),
                                     "compress layer");
          break;
        }
        p += n;
        left -= static_cast<size_t>(n);
      }
      lock.lock();
      // A failing sink has already recorded its own status.
      if (!s.ok() && compress_error_.ok()) compress_error_ = s;
      if (!compress_error_.ok()) cv_.notify_all();
    }
  }

  void StopCompressorThread() {
    if (!compress_thread_.joinable()) return;
    {
      std::lock_guard lock(mu_);
      closing_ = true;
    }
    cv_.notify_all();
    compress_thread_.join();
  }

  static la_ssize_t OnTar(struct archive* a, void* opaque, const void* buf, size_t len) {
    auto* self = static_cast<TarStream*>(opaque);
    if (self->abandoned_) return static_cast<la_ssize_t>(len);
    self->Consume(buf, len);
    if (!self->error_.ok()) {
      archive_set_error(a, EIO, "%s", std::string(self->error_.message()).c_str());
      return -1;
    }
    return static_cast<la_ssize_t>(len);
  }

  static la_ssize_t OnCompressed(struct archive* a, void* opaque, const void* buf, size_t len) {
    auto* self = static_cast<TarStream*>(opaque);
    if (self->abandoned_) return static_cast<la_ssize_t>(len);
    self->blob_hash_.Update(buf, len);
    absl::Status s = self->sink_(absl::string_view(static_cast<const char*>(buf), len));
    if (!s.ok()) {
      {
        std::lock_guard lock(self->mu_);
        if (self->compress_error_.ok()) self->compress_error_ = s;
      }
      archive_set_error(a, EIO, "%s", std::string(s.message()).c_str());
      return -1;
    }
    return static_cast<la_ssize_t>(len);
  }

  const ByteSink& sink_;
  CreateOptions options_;
  std::unique_ptr<char[]> buffer_{new char[kCopyChunk]};
  internal::WriteArchive compressor_;  // declared before tar_: destroyed after it
  internal::WriteArchive tar_;
  oci::Sha256 diff_hash_;
  oci::Sha256 blob_hash_;
  uint64_t entries_ = 0;
  absl::Status error_;  // the tar side's first failure
  std::atomic<bool> abandoned_{false};
  // Between the tar side and the compressor thread.
  static constexpr size_t kMaxQueued = 8 << 20;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  bool closing_ = false;
  absl::Status compress_error_;  // the compressor side's first failure
  std::string fed_;              // the chunk the compressor last got
  std::thread compress_thread_;
};

enum class Mode { kDir, kOverlayUpper, kDiff };

// A directory of the upper tree on the path from the root to where the diff
// walk is, not yet written: it is written (with its metadata) as soon as
// something below it changes, so a layer always carries the parents of what
// it holds.
struct PendingDir {
  int parent_fd;  // borrowed: open for as long as the walk is below it
  std::string name;
  std::string rel;
  struct stat st;
  bool written;
};

class TreeWriter {
 public:
  TreeWriter(Mode mode, TarStream* out, const CreateOptions& options)
      : mode_(mode), out_(out), options_(options) {}

  // Writes the children of `dirfd` (relative path `rel`), recursively.
  absl::Status WalkAll(int dirfd, const std::string& rel) {
    ASSIGN_OR_RETURN(std::vector<std::string> names, internal::ListDir(dirfd, Shown(rel)));
    for (const std::string& name : names) {
      std::string child = internal::JoinRel(rel, name);
      ASSIGN_OR_RETURN(struct stat st, internal::StatAt(dirfd, name, Shown(child)));
      RETURN_IF_ERROR(WriteSubtree(dirfd, name, child, st));
    }
    return absl::OkStatus();
  }

  // Writes the changes from the directory `lower_fd` to `upper_fd`.
  absl::Status WalkDiff(int upper_fd, int lower_fd, const std::string& rel) {
    ASSIGN_OR_RETURN(std::vector<std::string> upper, internal::ListDir(upper_fd, Shown(rel)));
    ASSIGN_OR_RETURN(std::vector<std::string> lower,
                     internal::ListDir(lower_fd, absl::StrCat(lower_root_, "/", rel)));
    size_t i = 0, j = 0;
    while (i < upper.size() || j < lower.size()) {
      bool in_upper = i < upper.size() && (j >= lower.size() || upper[i] <= lower[j]);
      bool in_lower = j < lower.size() && (i >= upper.size() || lower[j] <= upper[i]);
      const std::string& name = in_upper ? upper[i] : lower[j];
      std::string child = internal::JoinRel(rel, name);
      if (in_upper && !in_lower) {
        ASSIGN_OR_RETURN(struct stat st, internal::StatAt(upper_fd, name, Shown(child)));
        RETURN_IF_ERROR(WriteSubtree(upper_fd, name, child, st));
      } else if (!in_upper && in_lower) {
        struct stat none {};
        RETURN_IF_ERROR(WriteWhiteout(rel, name, none));
      } else {
        ASSIGN_OR_RETURN(struct stat ust, internal::StatAt(upper_fd, name, Shown(child)));
        ASSIGN_OR_RETURN(struct stat lst,
                         internal::StatAt(lower_fd, name, absl::StrCat(lower_root_, "/", child)));
        if (S_ISDIR(ust.st_mode) && S_ISDIR(lst.st_mode)) {
          ASSIGN_OR_RETURN(bool changed, Changed(upper_fd, lower_fd, name, child, ust, lst));
          if (changed) RETURN_IF_ERROR(Write(upper_fd, name, child, ust));
          ASSIGN_OR_RETURN(UniqueFd usub, internal::OpenDirAt(upper_fd, name, Shown(child)));
          ASSIGN_OR_RETURN(UniqueFd lsub, internal::OpenDirAt(lower_fd, name, child));
          pending_.push_back(PendingDir{upper_fd, name, child, ust, changed});
          absl::Status s = WalkDiff(usub.get(), lsub.get(), child);
          pending_.pop_back();
          RETURN_IF_ERROR(s);
        } else if (S_ISDIR(ust.st_mode)) {
          RETURN_IF_ERROR(WriteSubtree(upper_fd, name, child, ust));
        } else {
          ASSIGN_OR_RETURN(bool changed, Changed(upper_fd, lower_fd, name, child, ust, lst));
          if (changed) RETURN_IF_ERROR(Write(upper_fd, name, child, ust));
        }
      }
      if (in_upper) ++i;
      if (in_lower) ++j;
    }
    return absl::OkStatus();
  }

  void set_roots(std::string upper, std::string lower) {
    upper_root_ = std::move(upper);
    lower_root_ = std::move(lower);
  }

 private:
  std::string Shown(absl::string_view rel) const { return absl::StrCat(upper_root_, "/", rel); }

  int64_t Clamp(int64_t mtime) const {
    if (options_.source_date_epoch && mtime > *options_.source_date_epoch) {
      return *options_.source_date_epoch;
    }
    return mtime;
  }

  // Writes one entry and, for a directory, everything below it.
  absl::Status WriteSubtree(int dirfd, const std::string& name, const std::string& rel,
                            const struct stat& st) {
    if (mode_ == Mode::kOverlayUpper && S_ISCHR(st.st_mode) && st.st_rdev == 0) {
      auto [parent, base] = SplitParent(rel);
      return WriteWhiteout(std::string(parent), std::string(base), st);
    }
    RETURN_IF_ERROR(Write(dirfd, name, rel, st));
    if (!S_ISDIR(st.st_mode)) return absl::OkStatus();
    ASSIGN_OR_RETURN(UniqueFd sub, internal::OpenDirAt(dirfd, name, Shown(rel)));
    return WalkAll(sub.get(), rel);
  }

  absl::Status FlushPending() {
    for (PendingDir& p : pending_) {
      if (p.written) continue;
      RETURN_IF_ERROR(WriteOne(p.parent_fd, p.name, p.rel, p.st));
      p.written = true;
    }
    return absl::OkStatus();
  }

  absl::Status Write(int dirfd, const std::string& name, const std::string& rel,
                     const struct stat& st) {
    RETURN_IF_ERROR(FlushPending());
    return WriteOne(dirfd, name, rel, st);
  }

  // `.wh.<name>` in `parent_rel`. `st` gives owner and time (zero for a
  // deletion found by the diff walk, which has no inode to take them from).
  absl::Status WriteWhiteout(const std::string& parent_rel, const std::string& name,
                             const struct stat& st) {
    RETURN_IF_ERROR(FlushPending());
    internal::Entry e(archive_entry_new());
    std::string path = internal::JoinRel(parent_rel, absl::StrCat(kWhiteoutPrefix, name));
    archive_entry_copy_pathname(e.get(), path.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0600);
    archive_entry_set_uid(e.get(), st.st_uid);
    archive_entry_set_gid(e.get(), st.st_gid);
    archive_entry_set_mtime(e.get(), Clamp(st.st_mtim.tv_sec), 0);
    archive_entry_set_size(e.get(), 0);
    return out_->WriteHeader(e.get());
  }

  absl::StatusOr<std::vector<Xattr>> Xattrs(int dirfd, const std::string& name,
                                            const std::string& rel, bool* opaque) {
    ASSIGN_OR_RETURN(std::vector<Xattr> all, internal::ListXattrs(dirfd, name, Shown(rel)));
    std::vector<Xattr> kept;
    for (Xattr& x : all) {
      if (!internal::IsOverlayXattr(x.name)) {
        kept.push_back(std::move(x));
        continue;
      }
      if (mode_ != Mode::kOverlayUpper) continue;
      absl::string_view key = x.name;
      key.remove_prefix(absl::StartsWith(key, "trusted.") ? 16 : 13);  // "<ns>.overlay."
      if (key == "opaque" && x.value == "y" && opaque != nullptr) *opaque = true;
      if (key == "redirect" || key == "metacopy") {
        return absl::FailedPreconditionError(
            absl::StrCat(Shown(rel), " carries the overlay xattr ", x.name,
                         ": its content lives in the lower layers; mount the overlay with "
                         "redirect_dir=off,metacopy=off"));
      }
    }
    return kept;
  }

  absl::Status WriteOne(int dirfd, const std::string& name, const std::string& rel,
                        const struct stat& st) {
    if (absl::StartsWith(name, kWhiteoutPrefix)) {
      return absl::InvalidArgumentError(absl::StrCat(
          Shown(rel), ": names starting with \".wh.\" are whiteouts and cannot be in a layer"));
    }
    if (S_ISSOCK(st.st_mode)) return absl::OkStatus();  // tar cannot hold sockets
    internal::Entry e(archive_entry_new());
    archive_entry* entry = e.get();
    std::string path = S_ISDIR(st.st_mode) ? absl::StrCat(rel, "/") : rel;
    archive_entry_copy_pathname(entry, path.c_str());
    archive_entry_set_perm(entry, st.st_mode & 07777);
    archive_entry_set_uid(entry, st.st_uid);
    archive_entry_set_gid(entry, st.st_gid);
    archive_entry_set_mtime(entry, Clamp(st.st_mtim.tv_sec), 0);

    bool opaque = false;
    ASSIGN_OR_RETURN(std::vector<Xattr> xattrs, Xattrs(dirfd, name, rel, &opaque));
    for (const Xattr& x : xattrs) {
      archive_entry_xattr_add_entry(entry, x.name.c_str(), x.value.data(), x.value.size());
    }

    bool copy_data = false;
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      auto [it, inserted] = links_.try_emplace({st.st_dev, st.st_ino}, rel);
      if (!inserted) {
        archive_entry_set_filetype(entry, S_IFMT & st.st_mode);
        archive_entry_copy_hardlink(entry, it->second.c_str());
        archive_entry_set_size(entry, 0);
        return out_->WriteHeader(entry);
      }
    }
    switch (st.st_mode & S_IFMT) {
      case S_IFDIR:
        archive_entry_set_filetype(entry, AE_IFDIR);
        break;
      case S_IFREG:
        archive_entry_set_filetype(entry, AE_IFREG);
        archive_entry_set_size(entry, st.st_size);
        copy_data = st.st_size > 0;
        break;
      case S_IFLNK: {
        ASSIGN_OR_RETURN(std::string target, internal::ReadLinkAt(dirfd, name, Shown(rel)));
        archive_entry_set_filetype(entry, AE_IFLNK);
        archive_entry_copy_symlink(entry, target.c_str());
        break;
      }
      case S_IFCHR:
      case S_IFBLK:
        archive_entry_set_filetype(entry, S_ISCHR(st.st_mode) ? AE_IFCHR : AE_IFBLK);
        archive_entry_set_rdevmajor(entry, major(st.st_rdev));
        archive_entry_set_rdevminor(entry, minor(st.st_rdev));
        break;
      case S_IFIFO:
        archive_entry_set_filetype(entry, AE_IFIFO);
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat(Shown(rel), ": unsupported file type ", st.st_mode & S_IFMT));
    }
    UniqueFd fd;
    if (copy_data) {
      // Open before writing the header, so an unreadable file fails cleanly.
      fd.Reset(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", Shown(rel)));
    }
    RETURN_IF_ERROR(out_->WriteHeader(entry));
    if (copy_data) RETURN_IF_ERROR(CopyData(fd.get(), st.st_size, rel));
    if (opaque) {
      internal::Entry m(archive_entry_new());
      std::string mpath = internal::JoinRel(rel, kOpaqueWhiteout);
      archive_entry_copy_pathname(m.get(), mpath.c_str());
      archive_entry_set_filetype(m.get(), AE_IFREG);
      archive_entry_set_perm(m.get(), st.st_mode & 0777);
      archive_entry_set_uid(m.get(), st.st_uid);
      archive_entry_set_gid(m.get(), st.st_gid);
      archive_entry_set_mtime(m.get(), Clamp(st.st_mtim.tv_sec), 0);
      archive_entry_set_size(m.get(), 0);
      RETURN_IF_ERROR(out_->WriteHeader(m.get()));
    }
    return absl::OkStatus();
  }

  absl::Status CopyData(int fd, off_t size, const std::string& rel) {
    off_t left = size;
    while (left > 0) {
      size_t want = static_cast<size_t>(std::min<off_t>(left, kCopyChunk));
      ASSIGN_OR_RETURN(size_t got, ReadFull(fd, out_->buffer(), want, Shown(rel)));
      if (got == 0) {
        return absl::AbortedError(absl::StrCat(Shown(rel), " shrank while it was being archived"));
      }
      RETURN_IF_ERROR(out_->WriteData(out_->buffer(), got, Shown(rel)));
      left -= static_cast<off_t>(got);
    }
    return absl::OkStatus();
  }

  // Whether the entry differs between the trees (its metadata, or for regular
  // files with whole-second mtimes, its bytes).
  absl::StatusOr<bool> Changed(int upper_fd, int lower_fd, const std::string& name,
                               const std::string& rel, const struct stat& u, const struct stat& l) {
    if (u.st_mode != l.st_mode || u.st_uid != l.st_uid || u.st_gid != l.st_gid ||
        u.st_mtim.tv_sec != l.st_mtim.tv_sec || u.st_mtim.tv_nsec != l.st_mtim.tv_nsec) {
      return true;
    }
    if (S_ISREG(u.st_mode) && u.st_size != l.st_size) return true;
    if ((S_ISCHR(u.st_mode) || S_ISBLK(u.st_mode)) && u.st_rdev != l.st_rdev) return true;
    if (S_ISLNK(u.st_mode)) {
      ASSIGN_OR_RETURN(std::string ut, internal::ReadLinkAt(upper_fd, name, Shown(rel)));
      ASSIGN_OR_RETURN(std::string lt, internal::ReadLinkAt(lower_fd, name, rel));
      if (ut != lt) return true;
    }
    ASSIGN_OR_RETURN(std::vector<Xattr> ux, Xattrs(upper_fd, name, rel, nullptr));
    ASSIGN_OR_RETURN(std::vector<Xattr> lx, internal::ListXattrs(lower_fd, name, rel));
    std::erase_if(lx, [](const Xattr& x) { return internal::IsOverlayXattr(x.name); });
    if (ux != lx) return true;
    if (S_ISREG(u.st_mode) && u.st_mtim.tv_nsec == 0 && u.st_size > 0) {
      return ContentDiffers(upper_fd, lower_fd, name, rel, u.st_size);
    }
    return false;
  }

  absl::StatusOr<bool> ContentDiffers(int upper_fd, int lower_fd, const std::string& name,
                                      const std::string& rel, off_t size) {
    UniqueFd a(::openat(upper_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!a.valid()) return ErrnoStatus(errno, absl::StrCat("open ", Shown(rel)));
    UniqueFd b(::openat(lower_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!b.valid()) return ErrnoStatus(errno, absl::StrCat("open ", lower_root_, "/", rel));
    if (!cmp_a_) {
      cmp_a_.reset(new char[kCopyChunk]);
      cmp_b_.reset(new char[kCopyChunk]);
    }
    while (true) {
      ASSIGN_OR_RETURN(size_t na, ReadFull(a.get(), cmp_a_.get(), kCopyChunk, Shown(rel)));
      ASSIGN_OR_RETURN(size_t nb, ReadFull(b.get(), cmp_b_.get(), kCopyChunk, rel));
      if (na != nb || std::memcmp(cmp_a_.get(), cmp_b_.get(), na) != 0) return true;
      if (na < kCopyChunk) return false;
    }
  }

  Mode mode_;
  TarStream* out_;
  const CreateOptions& options_;
  std::unique_ptr<char[]> cmp_a_, cmp_b_;  // ContentDiffers' buffers
  std::string upper_root_;
  std::string lower_root_;
  std::vector<PendingDir> pending_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;  // first path of each inode
};

absl::StatusOr<UniqueFd> OpenRoot(absl::string_view dir) {
  std::string d(dir);
  UniqueFd fd(::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open directory ", dir));
  return fd;
}

absl::StatusOr<LayerInfo> Create(Mode mode, absl::string_view lower_dir,
                                 absl::string_view upper_dir, const ByteSink& output,
                                 const CreateOptions& options) {
  internal::ScopedUtf8Locale utf8;
  ASSIGN_OR_RETURN(UniqueFd upper, OpenRoot(upper_dir));
  UniqueFd lower;
  if (mode == Mode::kDiff) {
    ASSIGN_OR_RETURN(lower, OpenRoot(lower_dir));
  }
  TarStream out(output, options);
  RETURN_IF_ERROR(out.Open());
  TreeWriter writer(mode, &out, options);
  writer.set_roots(std::string(upper_dir), std::string(lower_dir));
  if (mode == Mode::kDiff) {
    RETURN_IF_ERROR(writer.WalkDiff(upper.get(), lower.get(), ""));
  } else {
    RETURN_IF_ERROR(writer.WalkAll(upper.get(), ""));
  }
  return out.Finish();
}

}  // namespace

absl::StatusOr<LayerInfo> CreateLayerFromDir(absl::string_view dir, const ByteSink& output,
                                             const CreateOptions& options) {
  return Create(Mode::kDir, "", dir, output, options);
}

absl::StatusOr<LayerInfo> CreateLayerFromOverlayUpper(absl::string_view upper_dir,
                                                      const ByteSink& output,
                                                      const CreateOptions& options) {
  return Create(Mode::kOverlayUpper, "", upper_dir, output, options);
}

absl::StatusOr<LayerInfo> CreateLayerFromDiff(absl::string_view lower_dir,
                                              absl::string_view upper_dir, const ByteSink& output,
                                              const CreateOptions& options) {
  return Create(Mode::kDiff, lower_dir, upper_dir, output, options);
}

absl::StatusOr<LayerInfo> RecompressLayer(const ByteSource& blob, const ByteSink& output,
                                          const CreateOptions& options) {
  struct Ctx {
    const ByteSource* source;
    std::unique_ptr<char[]> buf{new char[kCopyChunk]};
    absl::Status error;
  } ctx{&blob};
  internal::ReadArchive in(archive_read_new());
  if (!in) return absl::ResourceExhaustedError("archive_read_new failed");
  if (archive_read_support_filter_gzip(in.get()) < ARCHIVE_WARN ||
      archive_read_support_filter_zstd(in.get()) < ARCHIVE_WARN ||
      archive_read_support_format_raw(in.get()) != ARCHIVE_OK) {
    return internal::ArchiveError(absl::StatusCode::kInternal, in.get(), "set up decompressor");
  }
  auto on_read = [](struct archive* a, void* opaque, const void** out) -> la_ssize_t {
    auto* c = static_cast<Ctx*>(opaque);
    absl::StatusOr<size_t> n = (*c->source)(c->buf.get(), kCopyChunk);
    if (!n.ok()) {
      c->error = n.status();
      archive_set_error(a, EIO, "%s", std::string(n.status().message()).c_str());
      return -1;
    }
    *out = c->buf.get();
    return static_cast<la_ssize_t>(*n);
  };
  auto fail = [&](absl::string_view what) -> absl::Status {
    if (!ctx.error.ok()) return ctx.error;
    return internal::ArchiveError(absl::StatusCode::kDataLoss, in.get(), what);
  };
  if (archive_read_open(in.get(), &ctx, nullptr, on_read, nullptr) != ARCHIVE_OK) {
    return fail("open layer");
  }
  TarStream out(output, options);
  RETURN_IF_ERROR(out.Open(/*raw_tar=*/true));
  archive_entry* entry = nullptr;
  int r = archive_read_next_header(in.get(), &entry);
  if (r < ARCHIVE_WARN) return fail("read layer");
  while (r != ARCHIVE_EOF) {
    const void* block = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    r = archive_read_data_block(in.get(), &block, &size, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return fail("decompress layer");
    RETURN_IF_ERROR(out.WriteTarBytes(static_cast<const char*>(block), size));
  }
  return out.Finish();
}

}  // namespace pier::archive
