// File-system helpers shared by Pier's stores: owned file descriptors,
// durable atomic writes (write, fsync, rename, fsync directory), whole-file
// reads, recursive mkdir and remove.
//
// Every function returns a status naming the path on failure, with errno's
// canonical code (NotFound for ENOENT, PermissionDenied for EACCES, ...).
// Thread safety: stateless; concurrent calls on different paths are safe.
#pragma once

#include <unistd.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pier {

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Writes all of `data` to `fd`, retrying on EINTR and short writes.
absl::Status WriteAll(int fd, absl::string_view data, absl::string_view what);

// Reads up to `len` bytes; returns fewer only at end of file.
absl::StatusOr<size_t> ReadFull(int fd, char* buf, size_t len, absl::string_view what);

// Replaces `path` with `data` durably: writes a temporary file beside it,
// fsyncs it, renames it over `path` and fsyncs the directory.
absl::Status WriteFileAtomic(const std::string& path, absl::string_view data, int mode = 0644);

// Replaces `path` with `data` atomically but not durably: a temporary file
// renamed over `path`, no fsync. Readers never see a partial file, and the
// content survives the writer's crash, not the machine's. For state that a
// machine crash makes moot anyway (the pid or exit status of a process).
absl::Status WriteFileReplace(const std::string& path, absl::string_view data, int mode = 0644);

// Reads a whole file. NotFound when it does not exist.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// mkdir -p with `mode` for the directories it creates.
absl::Status MakeDirs(const std::string& path, int mode = 0755);

// rm -rf; OK when `path` does not exist. Does not follow symlinks and does
// not cross into other mounts' contents beyond unlinking entries.
absl::Status RemoveAll(const std::string& path);

// fsyncs the directory at `path` so a rename or create inside it is durable.
absl::Status SyncDir(const std::string& path);

// Returns the directory part of `path` ("." when there is none).
std::string Dirname(absl::string_view path);

// Joins two path pieces with exactly one '/'.
std::string JoinPath(absl::string_view a, absl::string_view b);

}  // namespace pier
