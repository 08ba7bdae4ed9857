#include "lib/content/filesystem_driver.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"

namespace pier::content {
namespace {

absl::Time MtimeOf(const struct stat& st) { return absl::TimeFromTimespec(st.st_mtim); }

class FsReader final : public FileReader {
 public:
  FsReader(UniqueFd fd, uint64_t size, std::string shown)
      : fd_(std::move(fd)), size_(size), shown_(std::move(shown)) {}

  absl::StatusOr<size_t> Read(char* buf, size_t len) override {
    return ReadFull(fd_.get(), buf, len, shown_);
  }
  uint64_t Size() const override { return size_; }

 private:
  UniqueFd fd_;
  uint64_t size_;
  std::string shown_;
};

class FsWriter final : public FileWriter {
 public:
  FsWriter(UniqueFd fd, uint64_t size, std::string full)
      : fd_(std::move(fd)), size_(size), full_(std::move(full)) {}

  absl::Status Write(absl::string_view data) override {
    RETURN_IF_ERROR(CheckOpen("write"));
    absl::Status s = WriteAll(fd_.get(), data, full_);
    if (!s.ok()) {
      // A short write leaves the size unknown; re-read it from the file.
      struct stat st {};
      if (::fstat(fd_.get(), &st) == 0) size_ = static_cast<uint64_t>(st.st_size);
      return s;
    }
    size_ += data.size();
    return absl::OkStatus();
  }

  uint64_t Size() const override { return size_; }

  absl::Status Commit() override {
    RETURN_IF_ERROR(CheckOpen("commit"));
    committed_ = true;
    if (::fsync(fd_.get()) != 0) return ErrnoStatus(errno, absl::StrCat("fsync ", full_));
    return SyncDir(Dirname(full_));
  }

  absl::Status Cancel() override {
    if (committed_ || !fd_.valid()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cancel ", full_, ": writer already committed or closed"));
    }
    fd_.Reset();
    if (::unlink(full_.c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, absl::StrCat("unlink ", full_));
    }
    return absl::OkStatus();
  }

  absl::Status Close() override {
    if (fd_.valid() && ::close(fd_.Release()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("close ", full_));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status CheckOpen(absl::string_view op) const {
    if (!fd_.valid() || committed_) {
      return absl::FailedPreconditionError(
          absl::StrCat(op, " ", full_, ": writer already committed, cancelled or closed"));
    }
    return absl::OkStatus();
  }

  UniqueFd fd_;
  uint64_t size_;
  std::string full_;
  bool committed_ = false;
};

class FsLock final : public DriverLock {
 public:
  explicit FsLock(UniqueFd fd) : fd_(std::move(fd)) {}
  // Closing the last descriptor of the open file description drops the flock.

 private:
  UniqueFd fd_;
};

}  // namespace

FilesystemDriver::FilesystemDriver(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

std::string FilesystemDriver::FullPath(absl::string_view path) const {
  if (path.empty()) return root_;
  return JoinPath(root_, path);
}

absl::Status FilesystemDriver::MakeParents(const std::string& full) const {
  std::string dir = Dirname(full);
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(dir, " exists and is not a directory"));
  }
  if (errno != ENOENT) return ErrnoStatus(errno, absl::StrCat("stat ", dir));
  RETURN_IF_ERROR(MakeParents(dir));
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, absl::StrCat("mkdir ", dir));
  }
  return SyncDir(Dirname(dir));
}

absl::StatusOr<std::unique_ptr<FileReader>> FilesystemDriver::Reader(absl::string_view path,
                                                                     uint64_t offset) {
  RETURN_IF_ERROR(ValidatePath(path));
  std::string full = FullPath(path);
  UniqueFd fd(::open(full.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", full));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", full));
  if (S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("read ", full, ": is a directory"));
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (offset > size) {
    return absl::OutOfRangeError(
        absl::StrCat("read ", full, ": offset ", offset, " is past its end (", size, " bytes)"));
  }
  if (offset > 0 && ::lseek(fd.get(), static_cast<off_t>(offset), SEEK_SET) < 0) {
    return ErrnoStatus(errno, absl::StrCat("seek ", full));
  }
  return std::make_unique<FsReader>(std::move(fd), size, std::move(full));
}

absl::StatusOr<std::unique_ptr<FileWriter>> FilesystemDriver::Writer(absl::string_view path,
                                                                     bool append) {
  RETURN_IF_ERROR(ValidatePath(path));
  std::string full = FullPath(path);
  RETURN_IF_ERROR(MakeParents(full));
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);
  UniqueFd fd(::open(full.c_str(), flags, 0644));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", full, " for writing"));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", full));
  return std::make_unique<FsWriter>(std::move(fd), static_cast<uint64_t>(st.st_size),
                                    std::move(full));
}

absl::StatusOr<FileInfo> FilesystemDriver::Stat(absl::string_view path) {
  RETURN_IF_ERROR(ValidatePath(path, /*allow_root=*/true));
  std::string full = FullPath(path);
  struct stat st {};
  if (::stat(full.c_str(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", full));
  FileInfo info;
  info.path = std::string(path);
  info.is_dir = S_ISDIR(st.st_mode);
  info.size = info.is_dir ? 0 : static_cast<uint64_t>(st.st_size);
  info.mtime = MtimeOf(st);
  return info;
}

absl::StatusOr<std::vector<std::string>> FilesystemDriver::List(absl::string_view dir) {
  RETURN_IF_ERROR(ValidatePath(dir, /*allow_root=*/true));
  std::string full = FullPath(dir);
  DIR* d = ::opendir(full.c_str());
  if (d == nullptr) return ErrnoStatus(errno, absl::StrCat("list ", full));
  std::vector<std::string> out;
  errno = 0;
  while (dirent* ent = ::readdir(d)) {
    if (std::strcmp(ent->d_name, ".") == 0 || std::strcmp(ent->d_name, "..") == 0) continue;
    out.push_back(dir.empty() ? std::string(ent->d_name) : JoinPath(dir, ent->d_name));
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) return ErrnoStatus(err, absl::StrCat("readdir ", full));
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status FilesystemDriver::Move(absl::string_view src, absl::string_view dst) {
  RETURN_IF_ERROR(ValidatePath(src));
  RETURN_IF_ERROR(ValidatePath(dst));
  std::string from = FullPath(src);
  std::string to = FullPath(dst);
  UniqueFd fd(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", from));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", from));
  if (S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("move ", from, ": is a directory"));
  }
  // The data must be on disk before the new name is, or a crash could leave
  // a complete-looking name over incomplete bytes.
  if (::fsync(fd.get()) != 0) return ErrnoStatus(errno, absl::StrCat("fsync ", from));
  fd.Reset();
  RETURN_IF_ERROR(MakeParents(to));
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename ", from, " to ", to));
  }
  std::string to_dir = Dirname(to);
  std::string from_dir = Dirname(from);
  RETURN_IF_ERROR(SyncDir(to_dir));
  if (from_dir != to_dir) RETURN_IF_ERROR(SyncDir(from_dir));
  return absl::OkStatus();
}

absl::Status FilesystemDriver::Delete(absl::string_view path) {
  RETURN_IF_ERROR(ValidatePath(path));
  std::string full = FullPath(path);
  struct stat st {};
  if (::lstat(full.c_str(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("delete ", full));
  RETURN_IF_ERROR(RemoveAll(full));
  return SyncDir(Dirname(full));
}

absl::StatusOr<std::unique_ptr<DriverLock>> FilesystemDriver::TryLock(absl::string_view path) {
  RETURN_IF_ERROR(ValidatePath(path));
  std::string full = FullPath(path);
  // Whoever deletes a locked directory does so while holding the lock, so a
  // lock won on a directory that has since been unlinked (or replaced) is
  // stale: retry on the current one. A few rounds settle any real race.
  for (int attempt = 0; attempt < 100; ++attempt) {
    RETURN_IF_ERROR(MakeParents(full));
    if (::mkdir(full.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("mkdir ", full));
    }
    UniqueFd fd(::open(full.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) {
      if (errno == ENOENT) continue;
      return ErrnoStatus(errno, absl::StrCat("open ", full));
    }
    while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EINTR) continue;
      if (errno == EWOULDBLOCK) return absl::UnavailableError(absl::StrCat(path, " is locked"));
      return ErrnoStatus(errno, absl::StrCat("flock ", full));
    }
    struct stat held {};
    struct stat now {};
    if (::fstat(fd.get(), &held) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", full));
    if (::stat(full.c_str(), &now) != 0) {
      if (errno == ENOENT) continue;
      return ErrnoStatus(errno, absl::StrCat("stat ", full));
    }
    if (held.st_dev == now.st_dev && held.st_ino == now.st_ino) {
      return std::make_unique<FsLock>(std::move(fd));
    }
  }
  return absl::AbortedError(absl::StrCat("lock ", full, ": directory keeps being replaced"));
}

std::optional<std::string> FilesystemDriver::LocalPath(absl::string_view path) {
  if (!ValidatePath(path).ok()) return std::nullopt;
  return absl::StrCat(root_, "/", path);
}

}  // namespace pier::content
