// MemoryDriver: a BlobDriver that keeps every file in memory, for tests.
//
// Files live in one map from path to contents; directories are implied by
// the files under them (there are no empty directories). Writers write
// straight into the shared file, as a POSIX file would, so readers opened
// later see the bytes; a file that is moved or deleted while a writer is
// open keeps receiving that writer's bytes under its new name, or nowhere.
// Commit has nothing to sync. TryLock keeps a set of held names; it excludes
// only users of this driver object (there is no other process to exclude).
//
// Ownership: files, readers, writers and locks share the driver's state, so
// any of them may outlive the driver safely (though using them then is
// pointless). Thread safety: every method locks one internal mutex; safe
// from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/content/blob_driver.h"

namespace pier::content {

class MemoryDriver final : public BlobDriver {
 public:
  MemoryDriver();
  ~MemoryDriver() override;

  std::string Name() const override { return "memory"; }
  absl::StatusOr<std::unique_ptr<FileReader>> Reader(absl::string_view path,
                                                     uint64_t offset) override;
  absl::StatusOr<std::unique_ptr<FileWriter>> Writer(absl::string_view path, bool append) override;
  absl::StatusOr<FileInfo> Stat(absl::string_view path) override;
  absl::StatusOr<std::vector<std::string>> List(absl::string_view dir) override;
  absl::Status Move(absl::string_view src, absl::string_view dst) override;
  absl::Status Delete(absl::string_view path) override;
  absl::StatusOr<std::unique_ptr<DriverLock>> TryLock(absl::string_view path) override;

  struct State;  // Shared with readers, writers and locks; defined in the .cc.

 private:
  std::shared_ptr<State> state_;
};

}  // namespace pier::content
