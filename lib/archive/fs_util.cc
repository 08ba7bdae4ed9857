#include "lib/archive/fs_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/common/status.h"

namespace pier::archive::internal {

std::string ProcFdPath(int dirfd, absl::string_view name) {
  return absl::StrCat("/proc/self/fd/", dirfd, "/", name);
}

std::string JoinRel(absl::string_view dir, absl::string_view name) {
  if (dir.empty()) return std::string(name);
  return absl::StrCat(dir, "/", name);
}

absl::StatusOr<UniqueFd> OpenDirAt(int dirfd, absl::string_view name, absl::string_view shown) {
  std::string n(name.empty() ? "." : name);
  UniqueFd fd(::openat(dirfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open directory ", shown));
  return fd;
}

absl::StatusOr<std::vector<std::string>> ListDir(int dirfd, absl::string_view shown) {
  int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open directory ", shown));
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus(err, absl::StrCat("opendir ", shown));
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* ent = ::readdir(dir)) {
    if (std::strcmp(ent->d_name, ".") != 0 && std::strcmp(ent->d_name, "..") != 0) {
      names.emplace_back(ent->d_name);
    }
    errno = 0;
  }
  int err = errno;
  ::closedir(dir);
  if (err != 0) return ErrnoStatus(err, absl::StrCat("readdir ", shown));
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<struct stat> StatAt(int dirfd, absl::string_view name, absl::string_view shown) {
  struct stat st {};
  std::string n(name);
  if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, absl::StrCat("stat ", shown));
  }
  return st;
}

absl::StatusOr<std::string> ReadLinkAt(int dirfd, absl::string_view name, absl::string_view shown) {
  std::string n(name);
  std::string buf(256, '\0');
  while (true) {
    ssize_t len = ::readlinkat(dirfd, n.c_str(), buf.data(), buf.size());
    if (len < 0) return ErrnoStatus(errno, absl::StrCat("readlink ", shown));
    if (static_cast<size_t>(len) < buf.size()) {
      buf.resize(static_cast<size_t>(len));
      return buf;
    }
    buf.resize(buf.size() * 2);
  }
}

absl::StatusOr<std::vector<Xattr>> ListXattrs(int dirfd, absl::string_view name,
                                              absl::string_view shown) {
  std::string path = ProcFdPath(dirfd, name);
  std::vector<Xattr> out;
  std::string names;
  while (true) {
    ssize_t len = ::llistxattr(path.c_str(), nullptr, 0);
    if (len < 0) {
      if (errno == ENOTSUP) return out;
      return ErrnoStatus(errno, absl::StrCat("list xattrs of ", shown));
    }
    if (len == 0) return out;
    names.resize(static_cast<size_t>(len));
    len = ::llistxattr(path.c_str(), names.data(), names.size());
    if (len < 0 && errno == ERANGE) continue;  // grew meanwhile
    if (len < 0) return ErrnoStatus(errno, absl::StrCat("list xattrs of ", shown));
    names.resize(static_cast<size_t>(len));
    break;
  }
  for (absl::string_view xname : absl::StrSplit(names, '\0', absl::SkipEmpty())) {
    std::string xn(xname);
    std::string value;
    while (true) {
      ssize_t len = ::lgetxattr(path.c_str(), xn.c_str(), nullptr, 0);
      if (len < 0 && errno == ENODATA) break;  // removed meanwhile
      if (len < 0) return ErrnoStatus(errno, absl::StrCat("get xattr ", xn, " of ", shown));
      value.resize(static_cast<size_t>(len));
      len = ::lgetxattr(path.c_str(), xn.c_str(), value.data(), value.size());
      if (len < 0 && errno == ERANGE) continue;
      if (len < 0 && errno == ENODATA) break;
      if (len < 0) return ErrnoStatus(errno, absl::StrCat("get xattr ", xn, " of ", shown));
      value.resize(static_cast<size_t>(len));
      out.push_back(Xattr{std::move(xn), std::move(value)});
      break;
    }
  }
  std::sort(out.begin(), out.end(), [](const Xattr& a, const Xattr& b) { return a.name < b.name; });
  return out;
}

bool IsOverlayXattr(absl::string_view name) {
  return absl::StartsWith(name, "trusted.overlay.") || absl::StartsWith(name, "user.overlay.");
}

absl::Status RemoveAllAt(int dirfd, absl::string_view name, absl::string_view shown) {
  std::string n(name);
  if (::unlinkat(dirfd, n.c_str(), 0) == 0 || errno == ENOENT) return absl::OkStatus();
  if (errno != EISDIR && errno != EPERM) return ErrnoStatus(errno, absl::StrCat("unlink ", shown));
  ASSIGN_OR_RETURN(UniqueFd sub, OpenDirAt(dirfd, name, shown));
  ASSIGN_OR_RETURN(std::vector<std::string> children, ListDir(sub.get(), shown));
  for (const std::string& child : children) {
    RETURN_IF_ERROR(RemoveAllAt(sub.get(), child, absl::StrCat(shown, "/", child)));
  }
  if (::unlinkat(dirfd, n.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("rmdir ", shown));
  }
  return absl::OkStatus();
}

}  // namespace pier::archive::internal
