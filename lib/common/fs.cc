#include "lib/common/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "lib/common/status.h"

namespace pier {

absl::Status WriteAll(int fd, absl::string_view data, absl::string_view what) {
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("write ", what));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> ReadFull(int fd, char* buf, size_t len, absl::string_view what) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = ::read(fd, buf + got, len - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("read ", what));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

std::string Dirname(absl::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == absl::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

std::string JoinPath(absl::string_view a, absl::string_view b) {
  if (a.empty()) return std::string(b);
  if (b.empty()) return std::string(a);
  bool a_slash = a.back() == '/';
  bool b_slash = b.front() == '/';
  if (a_slash && b_slash) return absl::StrCat(a, b.substr(1));
  if (a_slash || b_slash) return absl::StrCat(a, b);
  return absl::StrCat(a, "/", b);
}

absl::Status SyncDir(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open directory ", path));
  if (::fsync(fd.get()) != 0) return ErrnoStatus(errno, absl::StrCat("fsync ", path));
  return absl::OkStatus();
}

namespace {

// Writes `data` to a temporary file beside `path` (fsynced when `durable`)
// and renames it over `path`.
absl::Status ReplaceFile(const std::string& path, absl::string_view data, int mode, bool durable) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string tmp = absl::StrCat(path, ".tmp-", getpid(), "-", rng());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("create ", tmp));
  absl::Status s = WriteAll(fd.get(), data, tmp);
  if (s.ok() && durable && ::fsync(fd.get()) != 0) {
    s = ErrnoStatus(errno, absl::StrCat("fsync ", tmp));
  }
  fd.Reset();
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = ErrnoStatus(errno, absl::StrCat("rename ", tmp, " to ", path));
  }
  if (!s.ok()) ::unlink(tmp.c_str());
  return s;
}

}  // namespace

absl::Status WriteFileAtomic(const std::string& path, absl::string_view data, int mode) {
  RETURN_IF_ERROR(ReplaceFile(path, data, mode, /*durable=*/true));
  return SyncDir(Dirname(path));
}

absl::Status WriteFileReplace(const std::string& path, absl::string_view data, int mode) {
  return ReplaceFile(path, data, mode, /*durable=*/false);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", path));
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("read ", path));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

absl::Status MakeDirs(const std::string& path, int mode) {
  if (path.empty()) return absl::OkStatus();
  // The directory itself first: usually its parent exists, and walking down
  // from the root costs a failed mkdir per component.
  if (::mkdir(path.c_str(), mode) == 0) return absl::OkStatus();
  if (errno == ENOENT) {
    size_t slash = path.find_last_not_of('/');
    slash = slash == std::string::npos ? std::string::npos : path.rfind('/', slash);
    if (slash != std::string::npos && slash > 0) {
      RETURN_IF_ERROR(MakeDirs(path.substr(0, slash), mode));
    }
    if (::mkdir(path.c_str(), mode) == 0) return absl::OkStatus();
  }
  if (errno != EEXIST) return ErrnoStatus(errno, absl::StrCat("mkdir ", path));
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", path));
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " exists and is not a directory"));
  }
  return absl::OkStatus();
}

namespace {

absl::Status RemoveAt(int dirfd, const char* name, const std::string& shown) {
  if (::unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return absl::OkStatus();
  if (errno != EISDIR && errno != EPERM) return ErrnoStatus(errno, absl::StrCat("unlink ", shown));
  UniqueFd fd(::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", shown));
  DIR* dir = ::fdopendir(fd.get());
  if (dir == nullptr) return ErrnoStatus(errno, absl::StrCat("opendir ", shown));
  int dfd = fd.Release();
  absl::Status status;
  while (dirent* ent = ::readdir(dir)) {
    if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
    status = RemoveAt(dfd, ent->d_name, absl::StrCat(shown, "/", ent->d_name));
    if (!status.ok()) break;
  }
  ::closedir(dir);
  if (!status.ok()) return status;
  if (::unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("rmdir ", shown));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RemoveAll(const std::string& path) { return RemoveAt(AT_FDCWD, path.c_str(), path); }

namespace {

// One thread deletes what RemoveInBackground renamed away, in order.
class Reaper {
 public:
  static Reaper& Get() {
    static Reaper* r = new Reaper();  // never destroyed: the thread may run at exit
    return *r;
  }
  void Add(std::string path) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(path));
      if (!started_) {
        started_ = true;
        std::thread([this] { Loop(); }).detach();
      }
    }
    cv_.notify_one();
  }

 private:
  void Loop() {
    for (;;) {
      std::string path;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty(); });
        path = std::move(queue_.front());
        queue_.pop_front();
      }
      (void)RemoveAll(path);
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool started_ = false;
};

}  // namespace

absl::Status RemoveInBackground(const std::string& path, const std::string& trash_dir) {
  static std::atomic<uint64_t> counter{0};
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? absl::OkStatus() : ErrnoStatus(errno, absl::StrCat("stat ", path));
  }
  if (absl::Status s = MakeDirs(trash_dir, 0700); !s.ok()) return RemoveAll(path);
  std::string doomed =
      JoinPath(trash_dir, absl::StrCat(getpid(), "-", counter++, "-", std::random_device{}()));
  if (::rename(path.c_str(), doomed.c_str()) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return RemoveAll(path);  // another file system, or a mount point
  }
  Reaper::Get().Add(std::move(doomed));
  return absl::OkStatus();
}

void EmptyTrash(const std::string& trash_dir) {
  DIR* d = ::opendir(trash_dir.c_str());
  if (d == nullptr) return;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    Reaper::Get().Add(JoinPath(trash_dir, name));
  }
  ::closedir(d);
}

}  // namespace pier
