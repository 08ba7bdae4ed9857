#include "services/builder/plan/run_mounts.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <deque>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "lib/oci/digest.h"
#include "services/builder/dockerfile/expand.h"
#include "services/builder/dockerfile/parser.h"

namespace pier::builder {
namespace {

bool IsWhiteout(const struct stat& st) { return S_ISCHR(st.st_mode) && st.st_rdev == 0; }

bool IsOpaque(const std::string& path) {
  for (const char* name : {"trusted.overlay.opaque", "user.overlay.opaque"}) {
    char v = 0;
    if (lgetxattr(path.c_str(), name, &v, 1) == 1 && v == 'y') return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::string> CacheMounts::Acquire(absl::string_view id, absl::string_view sharing,
                                                 mode_t mode, uid_t uid, gid_t gid) {
  // Ids are free text: the directory is named by their digest.
  const std::string base = JoinPath(root_, oci::Digest::Of(id).hex().substr(0, 32));
  std::string dir;
  {
    std::unique_lock<std::mutex> l(mu_);
    if (sharing == "private") {
      for (int i = 0;; ++i) {
        dir = i == 0 ? base : absl::StrCat(base, "-", i);
        if (holders_[dir] == 0) break;
      }
      holders_[dir] = 1;
    } else if (sharing == "locked") {
      dir = base;
      cv_.wait(l, [&] { return holders_[dir] == 0; });
      holders_[dir] = -1;
    } else {
      dir = base;
      cv_.wait(l, [&] { return holders_[dir] >= 0; });
      ++holders_[dir];
    }
  }
  absl::Status s = MakeDirs(root_, 0700);
  if (s.ok() && mkdir(dir.c_str(), mode) == 0) {
    // mkdir applies the umask; the mode is the one asked for.
    if (chmod(dir.c_str(), mode) != 0 || chown(dir.c_str(), uid, gid) != 0) {
      s = ErrnoStatus(errno, "set up cache directory " + dir);
    }
  } else if (s.ok() && errno != EEXIST) {
    s = ErrnoStatus(errno, "create cache directory " + dir);
  }
  if (!s.ok()) {
    Release(dir);
    return s;
  }
  return dir;
}

void CacheMounts::Release(const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = holders_.find(dir);
  if (it == holders_.end()) return;
  if (it->second <= 1) {
    holders_.erase(it);
  } else {
    --it->second;
  }
  cv_.notify_all();
}

namespace {

// Bytes of the regular files below `path`.
int64_t TreeBytes(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return 0;
  if (S_ISREG(st.st_mode)) return st.st_size;
  if (!S_ISDIR(st.st_mode)) return 0;
  int64_t total = 0;
  DIR* d = opendir(path.c_str());
  if (d == nullptr) return 0;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") total += TreeBytes(path + "/" + n);
  }
  closedir(d);
  return total;
}

}  // namespace

absl::StatusOr<int64_t> CacheMounts::Prune(bool dry_run) {
  std::lock_guard<std::mutex> l(mu_);  // no Acquire() in between
  DIR* d = opendir(root_.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return 0;
    return ErrnoStatus(errno, "open " + root_);
  }
  std::vector<std::string> dirs;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") dirs.push_back(JoinPath(root_, n));
  }
  closedir(d);
  int64_t freed = 0;
  for (const std::string& dir : dirs) {
    if (holders_.count(dir)) continue;
    freed += TreeBytes(dir);
    if (!dry_run) RETURN_IF_ERROR(RemoveAll(dir));
  }
  return freed;
}

LayeredPath LookupLayered(const std::vector<std::string>& layers, absl::string_view rel) {
  std::vector<std::string> comps = absl::StrSplit(rel, '/', absl::SkipEmpty());
  LayeredPath out;
  for (const std::string& layer : layers) {
    std::string cur = layer;
    bool missing = false, stop_after = false;
    struct stat st {};
    if (lstat(cur.c_str(), &st) != 0) continue;
    for (size_t i = 0; i < comps.size(); ++i) {
      cur += "/" + comps[i];
      if (lstat(cur.c_str(), &st) != 0) {
        missing = true;
        break;
      }
      if (IsWhiteout(st)) return out;
      if (i + 1 < comps.size()) {
        if (!S_ISDIR(st.st_mode)) return out;  // a non-directory hides what was below it
        if (IsOpaque(cur)) stop_after = true;
      }
    }
    if (missing) {
      if (stop_after) return out;
      continue;
    }
    if (!out.found) {
      out.found = true;
      out.st = st;
    } else if (!S_ISDIR(st.st_mode)) {
      return out;  // a directory above hides it
    }
    out.paths.push_back(cur);
    if (!S_ISDIR(st.st_mode) || stop_after || (!comps.empty() && IsOpaque(cur))) return out;
  }
  return out;
}

std::string ResolveLayered(const std::vector<std::string>& layers, absl::string_view path) {
  std::deque<std::string> todo = absl::StrSplit(path, '/', absl::SkipEmpty());
  std::string resolved;  // relative; "" is the root
  int links = 0;
  while (!todo.empty()) {
    std::string c = std::move(todo.front());
    todo.pop_front();
    if (c == ".") continue;
    if (c == "..") {
      size_t slash = resolved.rfind('/');
      resolved = slash == std::string::npos ? "" : resolved.substr(0, slash);
      continue;
    }
    std::string next = resolved.empty() ? c : resolved + "/" + c;
    LayeredPath lp = LookupLayered(layers, next);
    if (lp.found && S_ISLNK(lp.st.st_mode) && links < 40) {
      char buf[PATH_MAX];
      ssize_t n = readlink(lp.paths[0].c_str(), buf, sizeof(buf));
      if (n > 0) {
        ++links;
        absl::string_view link(buf, static_cast<size_t>(n));
        if (absl::StartsWith(link, "/")) resolved.clear();
        std::vector<std::string> parts = absl::StrSplit(link, '/', absl::SkipEmpty());
        todo.insert(todo.begin(), parts.begin(), parts.end());
        continue;
      }
    }
    resolved = std::move(next);
  }
  return "/" + resolved;
}

void RemoveMountpointTraces(const std::string& upper, const std::vector<std::string>& lowers,
                            absl::string_view target) {
  // The executor follows the image's symlinks to the mount point.
  std::string rel = ResolveLayered(lowers, target).substr(1);
  while (!rel.empty()) {
    const std::string path = upper + "/" + rel;
    struct stat us {};
    if (lstat(path.c_str(), &us) != 0) return;
    LayeredPath below = LookupLayered(lowers, rel);
    if (!below.found) {
      // Created for the mount: an empty directory or file.
      if (S_ISDIR(us.st_mode)) {
        if (rmdir(path.c_str()) != 0) return;
      } else if (S_ISREG(us.st_mode) && us.st_size == 0) {
        if (unlink(path.c_str()) != 0) return;
      } else {
        return;
      }
    } else {
      // Copied up to hold a created entry: drop it when nothing else changed.
      if (!S_ISDIR(us.st_mode) || !S_ISDIR(below.st.st_mode) ||
          (us.st_mode & 07777) != (below.st.st_mode & 07777) || us.st_uid != below.st.st_uid ||
          us.st_gid != below.st.st_gid || IsOpaque(path) || rmdir(path.c_str()) != 0) {
        return;
      }
    }
    size_t slash = rel.rfind('/');
    rel = slash == std::string::npos ? "" : rel.substr(0, slash);
  }
}

HeredocRun RunWithHeredocs(const dockerfile::Run& run, const std::vector<std::string>& shell,
                           char escape) {
  HeredocRun out;
  out.args = shell;
  std::string command(absl::StripAsciiWhitespace(run.command.shell));
  std::optional<dockerfile::Heredoc> only = dockerfile::ParseHeredocWord(command, escape);
  if (run.heredocs.size() == 1 && only && only->fd == 0 && only->name == run.heredocs[0].name) {
    const std::string& body = run.heredocs[0].content;
    if (absl::StartsWith(body, "#!")) {
      out.script = HeredocRun::Script{run.heredocs[0].name, body};
      out.args = {absl::StrCat(kHeredocDir, "/", run.heredocs[0].name)};
    } else {
      out.args.push_back(body);
    }
    return out;
  }
  std::string full = run.command.shell;
  for (const dockerfile::Heredoc& h : run.heredocs) absl::StrAppend(&full, "\n", h.content, h.name);
  out.args.push_back(full);
  return out;
}

}  // namespace pier::builder
