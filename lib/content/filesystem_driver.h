// FilesystemDriver: a BlobDriver over a local directory tree.
//
// Path "a/b" is the file <root>/a/b. Writers write(2) straight to the file
// (no user-space buffering, so bytes a writer has accepted survive the
// process being killed); Commit fsyncs the file and its directory. Move is
// rename(2) after fsyncing the source, followed by fsyncs of the directories
// involved, so a moved file is durable and never seen half-written. TryLock
// creates the directory named by the path and takes flock(LOCK_EX|LOCK_NB) on
// it; the kernel drops the lock when the holder exits or is killed. Because
// flock locks belong to open file descriptions, two TryLock calls from the
// same process also exclude each other.
//
// The root is created on first write (NewBlobDriver creates it up front).
// Ownership and thread safety: see blob_driver.h. The driver holds no
// mutable state; concurrent calls are safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/content/blob_driver.h"

namespace pier::content {

class FilesystemDriver final : public BlobDriver {
 public:
  // `root` is the directory that holds every path; it need not exist yet.
  explicit FilesystemDriver(std::string root);

  const std::string& root() const { return root_; }

  std::string Name() const override { return "filesystem"; }
  absl::StatusOr<std::unique_ptr<FileReader>> Reader(absl::string_view path,
                                                     uint64_t offset) override;
  absl::StatusOr<std::unique_ptr<FileWriter>> Writer(absl::string_view path, bool append) override;
  absl::StatusOr<FileInfo> Stat(absl::string_view path) override;
  absl::StatusOr<std::vector<std::string>> List(absl::string_view dir) override;
  absl::Status Move(absl::string_view src, absl::string_view dst) override;
  absl::Status Delete(absl::string_view path) override;
  absl::StatusOr<std::unique_ptr<DriverLock>> TryLock(absl::string_view path) override;
  std::optional<std::string> LocalPath(absl::string_view path) override;

 private:
  // <root>/<path>, or <root> for "".
  std::string FullPath(absl::string_view path) const;
  // mkdir -p of the directory holding `full`, fsyncing the parent of every
  // directory it creates so that the new entries are durable.
  absl::Status MakeParents(const std::string& full) const;

  std::string root_;
};

}  // namespace pier::content
