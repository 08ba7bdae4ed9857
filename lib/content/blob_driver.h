// BlobDriver: the plain path store under Pier's content store.
//
// A driver knows nothing about digests, blobs or ingests; it stores bytes
// under slash-separated relative paths ("blobs/sha256/ab12...") and offers the
// few primitives a content-addressed store needs to be crash safe: streaming
// reads from an offset, appendable writers that can be made durable (Commit)
// or thrown away (Cancel), an atomic and durable Move, recursive Delete, and
// an advisory lock (TryLock) that also excludes other processes when the
// backend can. ContentStore (content_store.h) adds the meaning on top.
//
// Implementations: FilesystemDriver (filesystem_driver.h, the default) and
// MemoryDriver (memory_driver.h, for tests). An object store can follow;
// every driver must pass the conformance suite in testsuite/blob_driver_suite.h.
//
// Paths: relative, '/'-separated, no empty, "." or ".." components, no
// leading or trailing '/', no NUL. "" names the root and is accepted only by
// Stat and List. Anything else fails with InvalidArgument naming the path.
// Directories are implicit: writing "a/b/c" creates "a" and "a/b".
//
// Ownership: the driver is owned by its creator (usually a ContentStore).
// Readers, writers and locks it returns are owned by the caller and must not
// outlive the driver.
//
// Thread safety: a BlobDriver is safe to call from many threads at once.
// A FileReader or FileWriter is used by one thread at a time; a DriverLock
// may be released from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pier::content {

// What Stat returns about a path.
struct FileInfo {
  std::string path;   // the path asked about
  uint64_t size = 0;  // bytes in a file; 0 for a directory
  bool is_dir = false;
  absl::Time mtime;  // last modification
};

// Streams a file from the offset it was opened at.
class FileReader {
 public:
  virtual ~FileReader() = default;

  // Reads up to `len` bytes into `buf`; returns fewer only at end of file and
  // 0 once there. Errors: the backend's code (Internal, Unavailable, ...).
  virtual absl::StatusOr<size_t> Read(char* buf, size_t len) = 0;

  // The file's size when it was opened (not the bytes left to read).
  virtual uint64_t Size() const = 0;
};

// Writes a file by appending. The bytes written are visible to readers as
// they go (as with a POSIX file); Commit makes them durable. Destroying a
// writer closes it without Commit: the data stays but may not be durable.
class FileWriter {
 public:
  virtual ~FileWriter() = default;

  // Appends `data`. FailedPrecondition after Commit, Cancel or Close;
  // otherwise the backend's code (ResourceExhausted for a full disk, ...).
  virtual absl::Status Write(absl::string_view data) = 0;

  // Bytes in the file: what it held when opened for append plus what this
  // writer has written.
  virtual uint64_t Size() const = 0;

  // Flushes and fsyncs the file (and its directory entry) so that its
  // contents survive a crash. No Write may follow. FailedPrecondition after
  // Cancel or Close or a second Commit.
  virtual absl::Status Commit() = 0;

  // Discards the file. FailedPrecondition after Commit or Close.
  virtual absl::Status Cancel() = 0;

  // Releases the writer; idempotent. Data already written stays.
  virtual absl::Status Close() = 0;
};

// An advisory lock taken by BlobDriver::TryLock; released on destruction.
class DriverLock {
 public:
  virtual ~DriverLock() = default;
};

class BlobDriver {
 public:
  virtual ~BlobDriver() = default;

  // A short name for logs and errors: "filesystem", "memory".
  virtual std::string Name() const = 0;

  // Opens `path` for reading at byte `offset`. NotFound when it does not
  // exist, FailedPrecondition when it is a directory, OutOfRange when
  // `offset` is past its end (offset == size is fine and reads nothing),
  // InvalidArgument for a bad path.
  virtual absl::StatusOr<std::unique_ptr<FileReader>> Reader(absl::string_view path,
                                                             uint64_t offset) = 0;

  // Opens `path` for writing, creating it and its parent directories. With
  // `append` the existing contents are kept and writes go after them;
  // without, the file is truncated. FailedPrecondition when `path` is a
  // directory or a parent is a file; InvalidArgument for a bad path.
  virtual absl::StatusOr<std::unique_ptr<FileWriter>> Writer(absl::string_view path,
                                                             bool append) = 0;

  // Describes `path` ("" is the root). NotFound when it does not exist.
  virtual absl::StatusOr<FileInfo> Stat(absl::string_view path) = 0;

  // The paths (relative to the root, e.g. "dir/name") of the direct children
  // of directory `dir` ("" is the root), sorted. NotFound when `dir` does
  // not exist, FailedPrecondition when it is a file.
  virtual absl::StatusOr<std::vector<std::string>> List(absl::string_view dir) = 0;

  // Renames file `src` to `dst`, atomically replacing any file at `dst` and
  // creating `dst`'s parents. Durable when it returns: the file's data and
  // both directory entries are synced. NotFound when `src` does not exist,
  // FailedPrecondition when `src` or `dst` is a directory.
  virtual absl::Status Move(absl::string_view src, absl::string_view dst) = 0;

  // Removes the file or directory tree at `path`. NotFound when it does not
  // exist; InvalidArgument for "" (the root cannot be deleted).
  virtual absl::Status Delete(absl::string_view path) = 0;

  // Takes an exclusive advisory lock named `path` without waiting.
  // Unavailable ("<path> is locked") when the lock is held, by this process
  // or, where the backend can tell, by another one. The filesystem driver
  // creates `path` as a directory and flock(2)s it, so the lock dies with
  // its process; the memory driver keeps a set of held names. The lock does
  // not stop Write/Move/Delete: callers agree to take it.
  virtual absl::StatusOr<std::unique_ptr<DriverLock>> TryLock(absl::string_view path) = 0;

  // The absolute local file behind `path` when the backend keeps files on
  // this machine's disk (lets servers use sendfile(2)); nullopt otherwise or
  // for an invalid path. The file may not exist.
  virtual std::optional<std::string> LocalPath(absl::string_view path) { return std::nullopt; }
};

// Checks a driver path as described above. `allow_root` accepts "".
// InvalidArgument naming the path otherwise.
absl::Status ValidatePath(absl::string_view path, bool allow_root = false);

// Reads the whole file at `path`. Errors as BlobDriver::Reader and Read.
absl::StatusOr<std::string> GetContent(BlobDriver& driver, absl::string_view path);

// Replaces the file at `path` with `data` and commits it (durable, but not
// atomic: use Move from a temporary path for that). Errors as Writer/Commit.
absl::Status PutContent(BlobDriver& driver, absl::string_view path, absl::string_view data);

// Builds a driver from a spec:
//   "filesystem:/var/lib/pier/registry"  FilesystemDriver rooted there (created)
//   "memory:"                            an empty MemoryDriver
// InvalidArgument for an unknown kind or an empty root; the filesystem's
// code when the root cannot be created.
absl::StatusOr<std::unique_ptr<BlobDriver>> NewBlobDriver(absl::string_view spec);

}  // namespace pier::content
