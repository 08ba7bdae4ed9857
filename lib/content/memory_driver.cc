#include "lib/content/memory_driver.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/common/status.h"

namespace pier::content {
namespace {

// One file's bytes; guarded by State::mu (not expressible to the analysis).
struct MemFile {
  std::string data;
  absl::Time mtime;
};

std::string ChildPrefix(absl::string_view dir) {
  return dir.empty() ? std::string() : absl::StrCat(dir, "/");
}

}  // namespace

struct MemoryDriver::State {
  // std::shared_mutex rather than absl::Mutex: Debian's prebuilt Abseil is
  // not TSan-instrumented, so TSan cannot see absl::Mutex synchronise.
  std::shared_mutex mu;
  std::map<std::string, std::shared_ptr<MemFile>, std::less<>> files ABSL_GUARDED_BY(mu);
  std::set<std::string, std::less<>> locks ABSL_GUARDED_BY(mu);

  // True when some file lives under `path` (or `path` is the root).
  bool IsDir(absl::string_view path) const ABSL_SHARED_LOCKS_REQUIRED(mu) {
    if (path.empty()) return true;
    std::string prefix = ChildPrefix(path);
    auto it = files.lower_bound(prefix);
    return it != files.end() && absl::StartsWith(it->first, prefix);
  }

  // True when a proper prefix of `path` ("a" of "a/b") is a file.
  bool HasFileAncestor(absl::string_view path) const ABSL_SHARED_LOCKS_REQUIRED(mu) {
    for (size_t slash = path.find('/'); slash != absl::string_view::npos;
         slash = path.find('/', slash + 1)) {
      if (files.find(path.substr(0, slash)) != files.end()) return true;
    }
    return false;
  }

  std::shared_ptr<MemFile> Find(absl::string_view path) const ABSL_SHARED_LOCKS_REQUIRED(mu) {
    auto it = files.find(path);
    return it == files.end() ? nullptr : it->second;
  }
};

namespace {

using State = MemoryDriver::State;

class MemReader final : public FileReader {
 public:
  MemReader(std::shared_ptr<State> state, std::shared_ptr<MemFile> file, uint64_t offset,
            uint64_t size)
      : state_(std::move(state)), file_(std::move(file)), pos_(offset), size_(size) {}

  absl::StatusOr<size_t> Read(char* buf, size_t len) override {
    std::shared_lock lock(state_->mu);
    const std::string& data = file_->data;
    if (pos_ >= data.size()) return 0;
    size_t n = std::min<uint64_t>(len, data.size() - pos_);
    std::copy_n(data.data() + pos_, n, buf);
    pos_ += n;
    return n;
  }
  uint64_t Size() const override { return size_; }

 private:
  std::shared_ptr<State> state_;
  std::shared_ptr<MemFile> file_;
  uint64_t pos_;
  uint64_t size_;
};

class MemWriter final : public FileWriter {
 public:
  MemWriter(std::shared_ptr<State> state, std::shared_ptr<MemFile> file, std::string path,
            uint64_t size)
      : state_(std::move(state)), file_(std::move(file)), path_(std::move(path)), size_(size) {}

  absl::Status Write(absl::string_view data) override {
    RETURN_IF_ERROR(CheckOpen("write"));
    std::lock_guard lock(state_->mu);
    file_->data.append(data.data(), data.size());
    file_->mtime = absl::Now();
    size_ += data.size();
    return absl::OkStatus();
  }

  uint64_t Size() const override { return size_; }

  absl::Status Commit() override {
    RETURN_IF_ERROR(CheckOpen("commit"));
    committed_ = true;
    return absl::OkStatus();
  }

  absl::Status Cancel() override {
    if (committed_ || closed_) {
      return absl::FailedPreconditionError(
          absl::StrCat("cancel ", path_, ": writer already committed or closed"));
    }
    closed_ = true;
    std::lock_guard lock(state_->mu);
    auto it = state_->files.find(path_);
    if (it != state_->files.end() && it->second == file_) state_->files.erase(it);
    return absl::OkStatus();
  }

  absl::Status Close() override {
    closed_ = true;
    return absl::OkStatus();
  }

 private:
  absl::Status CheckOpen(absl::string_view op) const {
    if (closed_ || committed_) {
      return absl::FailedPreconditionError(
          absl::StrCat(op, " ", path_, ": writer already committed, cancelled or closed"));
    }
    return absl::OkStatus();
  }

  std::shared_ptr<State> state_;
  std::shared_ptr<MemFile> file_;
  std::string path_;
  uint64_t size_;
  bool committed_ = false;
  bool closed_ = false;
};

class MemLock final : public DriverLock {
 public:
  MemLock(std::shared_ptr<State> state, std::string name)
      : state_(std::move(state)), name_(std::move(name)) {}
  ~MemLock() override {
    std::lock_guard lock(state_->mu);
    state_->locks.erase(name_);
  }

 private:
  std::shared_ptr<State> state_;
  std::string name_;
};

}  // namespace

MemoryDriver::MemoryDriver() : state_(std::make_shared<State>()) {}
MemoryDriver::~MemoryDriver() = default;

absl::StatusOr<std::unique_ptr<FileReader>> MemoryDriver::Reader(absl::string_view path,
                                                                 uint64_t offset) {
  RETURN_IF_ERROR(ValidatePath(path));
  std::shared_lock lock(state_->mu);
  std::shared_ptr<MemFile> file = state_->Find(path);
  if (file == nullptr) {
    if (state_->IsDir(path)) {
      return absl::FailedPreconditionError(absl::StrCat("read ", path, ": is a directory"));
    }
    return absl::NotFoundError(absl::StrCat("read ", path, ": not found"));
  }
  uint64_t size = file->data.size();
  if (offset > size) {
    return absl::OutOfRangeError(
        absl::StrCat("read ", path, ": offset ", offset, " is past its end (", size, " bytes)"));
  }
  return std::make_unique<MemReader>(state_, std::move(file), offset, size);
}

absl::StatusOr<std::unique_ptr<FileWriter>> MemoryDriver::Writer(absl::string_view path,
                                                                 bool append) {
  RETURN_IF_ERROR(ValidatePath(path));
  std::lock_guard lock(state_->mu);
  if (state_->IsDir(path)) {
    return absl::FailedPreconditionError(absl::StrCat("write ", path, ": is a directory"));
  }
  if (state_->HasFileAncestor(path)) {
    return absl::FailedPreconditionError(absl::StrCat("write ", path, ": a parent is a file"));
  }
  std::shared_ptr<MemFile>& slot = state_->files[std::string(path)];
  if (slot == nullptr) slot = std::make_shared<MemFile>();
  if (!append) slot->data.clear();
  slot->mtime = absl::Now();
  return std::make_unique<MemWriter>(state_, slot, std::string(path), slot->data.size());
}

absl::StatusOr<FileInfo> MemoryDriver::Stat(absl::string_view path) {
  RETURN_IF_ERROR(ValidatePath(path, /*allow_root=*/true));
  std::shared_lock lock(state_->mu);
  FileInfo info;
  info.path = std::string(path);
  if (std::shared_ptr<MemFile> file = state_->Find(path)) {
    info.size = file->data.size();
    info.mtime = file->mtime;
    return info;
  }
  if (!state_->IsDir(path)) return absl::NotFoundError(absl::StrCat("stat ", path, ": not found"));
  info.is_dir = true;
  info.mtime = absl::UnixEpoch();
  std::string prefix = ChildPrefix(path);
  for (auto it = state_->files.lower_bound(prefix);
       it != state_->files.end() && absl::StartsWith(it->first, prefix); ++it) {
    info.mtime = std::max(info.mtime, it->second->mtime);
  }
  return info;
}

absl::StatusOr<std::vector<std::string>> MemoryDriver::List(absl::string_view dir) {
  RETURN_IF_ERROR(ValidatePath(dir, /*allow_root=*/true));
  std::shared_lock lock(state_->mu);
  if (state_->Find(dir) != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("list ", dir, ": not a directory"));
  }
  std::string prefix = ChildPrefix(dir);
  std::set<std::string> children;
  for (auto it = state_->files.lower_bound(prefix);
       it != state_->files.end() && absl::StartsWith(it->first, prefix); ++it) {
    absl::string_view rest = absl::string_view(it->first).substr(prefix.size());
    children.insert(absl::StrCat(prefix, rest.substr(0, rest.find('/'))));
  }
  if (children.empty() && !dir.empty()) {
    return absl::NotFoundError(absl::StrCat("list ", dir, ": not found"));
  }
  return std::vector<std::string>(children.begin(), children.end());
}

absl::Status MemoryDriver::Move(absl::string_view src, absl::string_view dst) {
  RETURN_IF_ERROR(ValidatePath(src));
  RETURN_IF_ERROR(ValidatePath(dst));
  std::lock_guard lock(state_->mu);
  std::shared_ptr<MemFile> file = state_->Find(src);
  if (file == nullptr) {
    if (state_->IsDir(src)) {
      return absl::FailedPreconditionError(absl::StrCat("move ", src, ": is a directory"));
    }
    return absl::NotFoundError(absl::StrCat("move ", src, ": not found"));
  }
  if (state_->IsDir(dst)) {
    return absl::FailedPreconditionError(
        absl::StrCat("move ", src, " to ", dst, ": destination is a directory"));
  }
  if (state_->HasFileAncestor(dst)) {
    return absl::FailedPreconditionError(
        absl::StrCat("move ", src, " to ", dst, ": a parent of the destination is a file"));
  }
  if (src == dst) return absl::OkStatus();
  state_->files.erase(state_->files.find(src));
  state_->files[std::string(dst)] = std::move(file);
  return absl::OkStatus();
}

absl::Status MemoryDriver::Delete(absl::string_view path) {
  RETURN_IF_ERROR(ValidatePath(path));
  std::lock_guard lock(state_->mu);
  auto it = state_->files.find(path);
  if (it != state_->files.end()) {
    state_->files.erase(it);
    return absl::OkStatus();
  }
  std::string prefix = ChildPrefix(path);
  auto first = state_->files.lower_bound(prefix);
  auto last = first;
  while (last != state_->files.end() && absl::StartsWith(last->first, prefix)) ++last;
  if (first == last) return absl::NotFoundError(absl::StrCat("delete ", path, ": not found"));
  state_->files.erase(first, last);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<DriverLock>> MemoryDriver::TryLock(absl::string_view path) {
  RETURN_IF_ERROR(ValidatePath(path));
  std::lock_guard lock(state_->mu);
  if (!state_->locks.emplace(path).second) {
    return absl::UnavailableError(absl::StrCat(path, " is locked"));
  }
  return std::make_unique<MemLock>(state_, std::string(path));
}

}  // namespace pier::content
