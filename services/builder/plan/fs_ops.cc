#include "services/builder/plan/fs_ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "lib/archive/layer_apply.h"
#include "lib/archive/stream.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"

namespace pier::builder {
namespace {

int OpenIn(int root, const std::string& rel, uint64_t flags) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  const char* p = rel.empty() ? "." : rel.c_str();
  return static_cast<int>(syscall(SYS_openat2, root, p, &how, sizeof(how)));
}

std::string Join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (a.back() == '/') return a + b;
  return a + "/" + b;
}

bool HasMeta(absl::string_view s) { return s.find_first_of("*?[") != absl::string_view::npos; }

std::string Base(const std::string& rel) {
  size_t p = rel.rfind('/');
  return p == std::string::npos ? rel : rel.substr(p + 1);
}

class Copier {
 public:
  Copier(int src_root, const FsOp& op) : root_(src_root), op_(op) {}

  absl::StatusOr<std::vector<std::string>> Glob(const std::string& pattern) {
    std::vector<std::string> current = {""};
    for (absl::string_view comp : absl::StrSplit(pattern, '/', absl::SkipEmpty())) {
      if (comp == ".") continue;
      std::vector<std::string> next;
      for (const std::string& base : current) {
        if (!HasMeta(comp)) {
          next.push_back(Join(base, std::string(comp)));
          continue;
        }
        UniqueFd dfd(OpenIn(root_, base, O_RDONLY | O_DIRECTORY));
        if (dfd.get() < 0) continue;
        DIR* d = fdopendir(dup(dfd.get()));
        if (d == nullptr) continue;
        std::vector<std::string> names;
        while (dirent* e = readdir(d)) {
          std::string n = e->d_name;
          if (n == "." || n == "..") continue;
          if (fnmatch(std::string(comp).c_str(), n.c_str(), 0) == 0) names.push_back(n);
        }
        closedir(d);
        std::sort(names.begin(), names.end());
        for (const std::string& n : names) next.push_back(Join(base, n));
      }
      current = std::move(next);
    }
    std::vector<std::string> out;
    for (const std::string& rel : current) {
      UniqueFd fd(OpenIn(root_, rel, O_PATH | O_NOFOLLOW));
      if (fd.get() >= 0) out.push_back(rel);
    }
    if (out.empty()) {
      return absl::NotFoundError(
          absl::StrCat(op_.what, " failed: file not found: ", pattern.empty() ? "." : pattern));
    }
    return out;
  }

  absl::Status Run() {
    std::vector<std::string> matches;
    bool wildcard = false;
    for (const std::string& s : op_.sources) {
      wildcard = wildcard || HasMeta(s);
      ASSIGN_OR_RETURN(std::vector<std::string> m, Glob(s));
      matches.insert(matches.end(), m.begin(), m.end());
    }
    bool dest_dir = absl::EndsWith(op_.dest, "/") || matches.size() > 1;
    std::string dest = op_.dest;
    while (dest.size() > 1 && dest.back() == '/') dest.pop_back();
    for (const std::string& m : matches) {
      struct stat st;
      UniqueFd fd(OpenIn(root_, m, O_PATH | O_NOFOLLOW));
      if (fd.get() < 0 || fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "stat " + m);
      if (S_ISDIR(st.st_mode)) {
        RETURN_IF_ERROR(MakeDirP(dest));
        RETURN_IF_ERROR(CopyChildren(m, dest));
        continue;
      }
      std::string target = dest;
      struct stat dst;
      if (dest_dir || (stat(dest.c_str(), &dst) == 0 && S_ISDIR(dst.st_mode))) {
        RETURN_IF_ERROR(MakeDirP(dest));
        target = Join(dest, Base(m));
      } else {
        RETURN_IF_ERROR(MakeDirP(Dirname(dest)));
      }
      if (op_.extract_archives && S_ISREG(st.st_mode) && IsArchiveName(m)) {
        RETURN_IF_ERROR(Extract(m, dest));
        continue;
      }
      RETURN_IF_ERROR(CopyEntry(m, target));
    }
    (void)wildcard;
    return absl::OkStatus();
  }

  static absl::Status MakeDirP(const std::string& path) {
    std::string cur;
    for (absl::string_view comp : absl::StrSplit(path, '/', absl::SkipEmpty())) {
      cur += "/" + std::string(comp);
      if (mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
        return ErrnoStatus(errno, "mkdir " + cur);
    }
    return absl::OkStatus();
  }

 private:
  static bool IsArchiveName(const std::string& n) {
    for (const char* ext : {".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.xz", ".tar.bz2"}) {
      if (absl::EndsWith(n, ext)) return true;
    }
    return false;
  }

  absl::Status Extract(const std::string& rel, const std::string& dest) {
    RETURN_IF_ERROR(MakeDirP(dest));
    UniqueFd fd(OpenIn(root_, rel, O_RDONLY | O_NOFOLLOW));
    if (fd.get() < 0) return ErrnoStatus(errno, "open " + rel);
    archive::ApplyOptions opts;
    auto r = archive::ApplyLayer(archive::FdSource(fd.get()), dest, opts);
    if (!r.ok()) return Annotate(r.status(), "ADD " + rel);
    return absl::OkStatus();
  }

  absl::Status CopyChildren(const std::string& rel, const std::string& dest) {
    UniqueFd dfd(OpenIn(root_, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    if (dfd.get() < 0) return ErrnoStatus(errno, "open " + rel);
    DIR* d = fdopendir(dup(dfd.get()));
    if (d == nullptr) return ErrnoStatus(errno, "opendir " + rel);
    std::vector<std::string> names;
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) {
      RETURN_IF_ERROR(CopyEntry(Join(rel, n), Join(dest, n)));
    }
    return absl::OkStatus();
  }

  void Owner(const struct stat& st, uid_t* uid, gid_t* gid) const {
    *uid = op_.preserve_owner ? st.st_uid : 0;
    *gid = op_.preserve_owner ? st.st_gid : 0;
    if (op_.uid) *uid = *op_.uid;
    if (op_.gid) *gid = *op_.gid;
  }

  absl::Status CopyEntry(const std::string& rel, const std::string& target) {
    UniqueFd fd(OpenIn(root_, rel, O_PATH | O_NOFOLLOW));
    struct stat st;
    if (fd.get() < 0 || fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "stat " + rel);
    uid_t uid;
    gid_t gid;
    Owner(st, &uid, &gid);
    mode_t mode = op_.mode ? *op_.mode : (st.st_mode & 07777);
    struct stat existing;
    bool exists = lstat(target.c_str(), &existing) == 0;
    if (S_ISDIR(st.st_mode)) {
      if (exists && !S_ISDIR(existing.st_mode)) unlink(target.c_str());
      if (mkdir(target.c_str(), 0755) != 0 && errno != EEXIST) {
        return ErrnoStatus(errno, "mkdir " + target);
      }
      RETURN_IF_ERROR(CopyChildren(rel, target));
      if (lchown(target.c_str(), uid, gid) != 0) return ErrnoStatus(errno, "chown " + target);
      if (chmod(target.c_str(), mode) != 0) return ErrnoStatus(errno, "chmod " + target);
    } else if (S_ISREG(st.st_mode)) {
      if (exists && S_ISDIR(existing.st_mode)) {
        RETURN_IF_ERROR(RemoveAll(target));
      } else if (exists) {
        unlink(target.c_str());
      }
      UniqueFd in(OpenIn(root_, rel, O_RDONLY | O_NOFOLLOW));
      if (in.get() < 0) return ErrnoStatus(errno, "open " + rel);
      UniqueFd out(
          open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
      if (out.get() < 0) return ErrnoStatus(errno, "create " + target);
      off_t left = st.st_size;
      while (left > 0) {
        ssize_t n = sendfile(out.get(), in.get(), nullptr, static_cast<size_t>(left));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return ErrnoStatus(n < 0 ? errno : EIO, "copy " + rel);
        left -= n;
      }
      if (fchown(out.get(), uid, gid) != 0) return ErrnoStatus(errno, "chown " + target);
      if (fchmod(out.get(), mode) != 0) return ErrnoStatus(errno, "chmod " + target);
    } else if (S_ISLNK(st.st_mode)) {
      char buf[PATH_MAX + 1];
      ssize_t n = readlinkat(fd.get(), "", buf, PATH_MAX);
      if (n < 0) return ErrnoStatus(errno, "readlink " + rel);
      if (exists && S_ISDIR(existing.st_mode)) {
        RETURN_IF_ERROR(RemoveAll(target));
      } else if (exists) {
        unlink(target.c_str());
      }
      if (symlink(std::string(buf, n).c_str(), target.c_str()) != 0) {
        return ErrnoStatus(errno, "symlink " + target);
      }
      if (lchown(target.c_str(), uid, gid) != 0) return ErrnoStatus(errno, "chown " + target);
    } else if (S_ISFIFO(st.st_mode)) {
      if (exists) unlink(target.c_str());
      if (mkfifo(target.c_str(), mode) != 0) return ErrnoStatus(errno, "mkfifo " + target);
      if (lchown(target.c_str(), uid, gid) != 0) return ErrnoStatus(errno, "chown " + target);
    } else {
      return absl::OkStatus();  // sockets and devices are not copied
    }
    timespec times[2] = {st.st_atim, st.st_mtim};
    utimensat(AT_FDCWD, target.c_str(), times, AT_SYMLINK_NOFOLLOW);
    return absl::OkStatus();
  }

  int root_;
  const FsOp& op_;
};

absl::Status DoMount(const exec::Mount& m, const std::string& target) {
  unsigned long flags = 0;  // NOLINT(runtime/int)
  std::vector<std::string> data;
  for (const std::string& o : m.options) {
    if (o == "ro") {
      flags |= MS_RDONLY;
    } else if (o == "rw") {
    } else if (o == "bind") {
      flags |= MS_BIND;
    } else if (o == "rbind") {
      flags |= MS_BIND | MS_REC;
    } else {
      data.push_back(o);
    }
  }
  if (m.type == "bind") flags |= MS_BIND;
  std::string d = absl::StrJoin(data, ",");
  if (mount(m.source.c_str(), target.c_str(), m.type.c_str(), flags,
            d.empty() ? nullptr : d.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("mount ", m.type, " on ", target));
  }
  return absl::OkStatus();
}

absl::Status Child(const std::vector<exec::Mount>& rootfs, const std::string& mountpoint,
                   const FsSource& source, const FsOp& op) {
  if (unshare(CLONE_NEWNS) != 0) return ErrnoStatus(errno, "unshare(CLONE_NEWNS)");
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return ErrnoStatus(errno, "make / private");
  }
  for (const exec::Mount& m : rootfs) RETURN_IF_ERROR(DoMount(m, mountpoint));
  std::string src = source.dir;
  if (!source.mounts.empty()) {
    for (const exec::Mount& m : source.mounts) RETURN_IF_ERROR(DoMount(m, source.mountpoint));
    src = source.mountpoint;
  }
  UniqueFd sfd;
  if (!src.empty()) {
    sfd = UniqueFd(open(src.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (sfd.get() < 0) return ErrnoStatus(errno, "open " + src);
  }
  if (chroot(mountpoint.c_str()) != 0 || chdir("/") != 0) {
    return ErrnoStatus(errno, "chroot " + mountpoint);
  }
  umask(0);
  if (op.kind == FsOp::Kind::kMkdir) return Copier::MakeDirP(op.dest);
  Copier c(sfd.get(), op);
  return c.Run();
}

}  // namespace

absl::Status RunFsOp(const std::vector<exec::Mount>& rootfs, const std::string& mountpoint,
                     const FsSource& source, const FsOp& op) {
  RETURN_IF_ERROR(MakeDirs(mountpoint, 0700));
  if (!source.mounts.empty()) RETURN_IF_ERROR(MakeDirs(source.mountpoint, 0700));
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  pid_t pid = fork();
  if (pid < 0) {
    close(p[0]);
    close(p[1]);
    return ErrnoStatus(errno, "fork");
  }
  if (pid == 0) {
    close(p[0]);
    absl::Status s = Child(rootfs, mountpoint, source, op);
    if (s.ok()) _exit(0);
    std::string msg = absl::StrCat(static_cast<int>(s.code()), "\t", s.message());
    (void)!write(p[1], msg.data(), msg.size());
    _exit(1);
  }
  close(p[1]);
  std::string msg;
  char buf[4096];
  for (;;) {
    ssize_t n = read(p[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    msg.append(buf, n);
  }
  close(p[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  std::pair<std::string, std::string> parts = absl::StrSplit(msg, absl::MaxSplits('\t', 1));
  int code = 0;
  if (!absl::SimpleAtoi(parts.first, &code) || code <= 0 || code > 16) {
    return absl::InternalError(
        absl::StrCat(op.what, ": helper process failed (status ", status, ")"));
  }
  return absl::Status(static_cast<absl::StatusCode>(code), parts.second);
}

}  // namespace pier::builder
