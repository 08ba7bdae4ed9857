#include "lib/archive/archive_test_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/archive/fs_util.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "lib/oci/digest.h"

namespace pier::archive::testing {

absl::Status WriteFile(const std::string& path, absl::string_view content, mode_t mode) {
  RETURN_IF_ERROR(MakeDirs(Dirname(path)));
  ::unlink(path.c_str());
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("create ", path));
  RETURN_IF_ERROR(WriteAll(fd.get(), content, path));
  if (::fchmod(fd.get(), mode) != 0) return ErrnoStatus(errno, absl::StrCat("chmod ", path));
  return absl::OkStatus();
}

absl::Status MakeDir(const std::string& path, mode_t mode) {
  RETURN_IF_ERROR(MakeDirs(path));
  if (::chmod(path.c_str(), mode) != 0) return ErrnoStatus(errno, absl::StrCat("chmod ", path));
  return absl::OkStatus();
}

absl::Status Symlink(const std::string& target, const std::string& path) {
  RETURN_IF_ERROR(MakeDirs(Dirname(path)));
  if (::symlink(target.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("symlink ", path));
  }
  return absl::OkStatus();
}

absl::Status Chown(const std::string& path, uid_t uid, gid_t gid) {
  if (::lchown(path.c_str(), uid, gid) != 0)
    return ErrnoStatus(errno, absl::StrCat("lchown ", path));
  return absl::OkStatus();
}

absl::Status SetMtime(const std::string& path, int64_t sec, long nsec) {
  struct timespec ts[2];
  ts[0].tv_sec = ts[1].tv_sec = sec;
  ts[0].tv_nsec = ts[1].tv_nsec = nsec;
  if (::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, absl::StrCat("utimensat ", path));
  }
  return absl::OkStatus();
}

absl::Status SetXattr(const std::string& path, const std::string& name, absl::string_view value) {
  if (::lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0) != 0) {
    return ErrnoStatus(errno, absl::StrCat("setxattr ", name, " on ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> GetXattr(const std::string& path, const std::string& name) {
  char buf[4096];
  ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), buf, sizeof(buf));
  if (n < 0) return ErrnoStatus(errno, absl::StrCat("getxattr ", name, " on ", path));
  return std::string(buf, static_cast<size_t>(n));
}

namespace {

struct Describer {
  DescribeOptions options;
  std::map<std::pair<dev_t, ino_t>, std::string> first_link;
  std::map<std::string, std::string> out;

  absl::Status Walk(int dirfd, const std::string& rel) {
    ASSIGN_OR_RETURN(std::vector<std::string> names, internal::ListDir(dirfd, rel));
    for (const std::string& name : names) {
      std::string path = internal::JoinRel(rel, name);
      ASSIGN_OR_RETURN(struct stat st, internal::StatAt(dirfd, name, path));
      std::string d;
      switch (st.st_mode & S_IFMT) {
        case S_IFREG: {
          UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
          if (!fd.valid()) return ErrnoStatus(errno, path);
          oci::Sha256 h;
          char buf[65536];
          while (true) {
            ASSIGN_OR_RETURN(size_t n, ReadFull(fd.get(), buf, sizeof(buf), path));
            h.Update(buf, n);
            if (n < sizeof(buf)) break;
          }
          d = absl::StrCat("reg size=", st.st_size, " ", h.Finish().hex().substr(0, 16));
          break;
        }
        case S_IFDIR:
          d = "dir";
          break;
        case S_IFLNK: {
          ASSIGN_OR_RETURN(std::string target, internal::ReadLinkAt(dirfd, name, path));
          d = absl::StrCat("symlink -> ", target);
          break;
        }
        case S_IFCHR:
          d = absl::StrCat("chr ", major(st.st_rdev), ",", minor(st.st_rdev));
          break;
        case S_IFBLK:
          d = absl::StrCat("blk ", major(st.st_rdev), ",", minor(st.st_rdev));
          break;
        case S_IFIFO:
          d = "fifo";
          break;
        default:
          d = "other";
      }
      absl::StrAppendFormat(&d, " mode=%04o owner=%d:%d", st.st_mode & 07777, st.st_uid, st.st_gid);
      bool is_dir = S_ISDIR(st.st_mode);
      if (is_dir ? options.dir_mtimes : options.mtimes) {
        absl::StrAppend(&d, " mtime=", st.st_mtim.tv_sec);
      }
      ASSIGN_OR_RETURN(std::vector<internal::Xattr> xattrs,
                       internal::ListXattrs(dirfd, name, path));
      for (const internal::Xattr& x : xattrs) {
        if (internal::IsOverlayXattr(x.name)) continue;
        absl::StrAppend(&d, " xattr:", x.name, "=", absl::CHexEscape(x.value));
      }
      if (!is_dir && st.st_nlink > 1) {
        auto [it, inserted] = first_link.try_emplace({st.st_dev, st.st_ino}, path);
        absl::StrAppend(&d, " inode=", it->second);
      }
      out[path] = d;
      if (is_dir) {
        ASSIGN_OR_RETURN(UniqueFd sub, internal::OpenDirAt(dirfd, name, path));
        RETURN_IF_ERROR(Walk(sub.get(), path));
      }
    }
    return absl::OkStatus();
  }
};

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> DescribeTree(const std::string& root,
                                                                DescribeOptions options) {
  UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, root);
  Describer d;
  d.options = options;
  RETURN_IF_ERROR(d.Walk(fd.get(), ""));
  return std::move(d.out);
}

namespace {
la_ssize_t AppendToString(struct archive*, void* opaque, const void* buf, size_t len) {
  static_cast<std::string*>(opaque)->append(static_cast<const char*>(buf), len);
  return static_cast<la_ssize_t>(len);
}
}  // namespace

TarBuilder::TarBuilder() : a_(archive_write_new()) {
  archive_write_set_format_pax_restricted(a_.get());
  archive_write_set_bytes_per_block(a_.get(), 0);
  archive_write_open2(a_.get(), &out_, nullptr, &AppendToString, nullptr, nullptr);
}

void TarBuilder::Add(archive_entry* e, absl::string_view content) {
  archive_entry_set_mtime(e, 1600000000, 0);
  archive_write_header(a_.get(), e);
  if (!content.empty()) archive_write_data(a_.get(), content.data(), content.size());
  archive_entry_free(e);
}

TarBuilder& TarBuilder::File(const std::string& name, absl::string_view content, int mode) {
  archive_entry* e = archive_entry_new();
  archive_entry_copy_pathname(e, name.c_str());
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, mode);
  archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
  Add(e, content);
  return *this;
}

TarBuilder& TarBuilder::Dir(const std::string& name, int mode) {
  archive_entry* e = archive_entry_new();
  archive_entry_copy_pathname(e, name.c_str());
  archive_entry_set_filetype(e, AE_IFDIR);
  archive_entry_set_perm(e, mode);
  Add(e, "");
  return *this;
}

TarBuilder& TarBuilder::Symlink(const std::string& name, const std::string& target) {
  archive_entry* e = archive_entry_new();
  archive_entry_copy_pathname(e, name.c_str());
  archive_entry_set_filetype(e, AE_IFLNK);
  archive_entry_set_perm(e, 0777);
  archive_entry_copy_symlink(e, target.c_str());
  Add(e, "");
  return *this;
}

TarBuilder& TarBuilder::Hardlink(const std::string& name, const std::string& target) {
  archive_entry* e = archive_entry_new();
  archive_entry_copy_pathname(e, name.c_str());
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_copy_hardlink(e, target.c_str());
  archive_entry_set_size(e, 0);
  Add(e, "");
  return *this;
}

TarBuilder& TarBuilder::CharDevice(const std::string& name, int maj, int min) {
  archive_entry* e = archive_entry_new();
  archive_entry_copy_pathname(e, name.c_str());
  archive_entry_set_filetype(e, AE_IFCHR);
  archive_entry_set_perm(e, 0666);
  archive_entry_set_rdevmajor(e, maj);
  archive_entry_set_rdevminor(e, min);
  Add(e, "");
  return *this;
}

TarBuilder& TarBuilder::Fifo(const std::string& name) {
  archive_entry* e = archive_entry_new();
  archive_entry_copy_pathname(e, name.c_str());
  archive_entry_set_filetype(e, AE_IFIFO);
  archive_entry_set_perm(e, 0644);
  Add(e, "");
  return *this;
}

TarBuilder& TarBuilder::Raw(absl::string_view bytes) {
  out_.append(bytes.data(), bytes.size());
  return *this;
}

std::string TarBuilder::Finish() {
  archive_write_close(a_.get());
  return out_;
}

std::string UstarHeader(absl::string_view name, char type, absl::string_view size_field) {
  std::string h(512, '\0');
  std::memcpy(&h[0], name.data(), std::min<size_t>(name.size(), 100));
  std::memcpy(&h[100], "0000644", 7);  // mode
  std::memcpy(&h[108], "0000000", 7);  // uid
  std::memcpy(&h[116], "0000000", 7);  // gid
  std::memcpy(&h[124], size_field.data(), std::min<size_t>(size_field.size(), 12));
  std::memcpy(&h[136], "13000000000", 11);  // mtime
  h[156] = type;
  std::memcpy(&h[257],
              "ustar\0"
              "00",
              8);
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::string chk = absl::StrFormat("%06o", sum);
  std::memcpy(&h[148], chk.data(), 6);
  h[154] = '\0';
  h[155] = ' ';
  return h;
}

namespace {
std::string Compress(absl::string_view data, bool zstd) {
  std::string out;
  internal::WriteArchive a(archive_write_new());
  if (zstd) {
    archive_write_add_filter_zstd(a.get());
  } else {
    archive_write_add_filter_gzip(a.get());
  }
  archive_write_set_format_raw(a.get());
  archive_write_set_bytes_in_last_block(a.get(), 1);
  archive_write_open2(a.get(), &out, nullptr, &AppendToString, nullptr, nullptr);
  internal::Entry e(archive_entry_new());
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_pathname(e.get(), "data");
  archive_write_header(a.get(), e.get());
  archive_write_data(a.get(), data.data(), data.size());
  archive_write_close(a.get());
  return out;
}
}  // namespace

std::string Gzip(absl::string_view data) { return Compress(data, false); }
std::string Zstd(absl::string_view data) { return Compress(data, true); }

absl::StatusOr<std::vector<std::string>> ListLayer(absl::string_view layer) {
  internal::ReadArchive a(archive_read_new());
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_zstd(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_memory(a.get(), layer.data(), layer.size()) != ARCHIVE_OK) {
    return internal::ArchiveError(absl::StatusCode::kDataLoss, a.get(), "open");
  }
  std::vector<std::string> out;
  archive_entry* e;
  while (true) {
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN)
      return internal::ArchiveError(absl::StatusCode::kDataLoss, a.get(), "read");
    std::string line = archive_entry_pathname(e);
    if (archive_entry_hardlink(e) != nullptr) {
      absl::StrAppend(&line, " h -> ", archive_entry_hardlink(e));
    } else {
      switch (archive_entry_filetype(e)) {
        case AE_IFREG:
          absl::StrAppend(&line, " f");
          break;
        case AE_IFDIR:
          absl::StrAppend(&line, " d");
          break;
        case AE_IFLNK:
          absl::StrAppend(&line, " l -> ", archive_entry_symlink(e));
          break;
        case AE_IFCHR:
          absl::StrAppend(&line, " c");
          break;
        case AE_IFBLK:
          absl::StrAppend(&line, " b");
          break;
        case AE_IFIFO:
          absl::StrAppend(&line, " p");
          break;
        default:
          absl::StrAppend(&line, " ?");
      }
    }
    const char* name;
    const void* value;
    size_t size;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
      absl::StrAppend(&line, " xattr=", name);
    }
    out.push_back(line);
  }
  return out;
}

absl::StatusOr<Created> CreateFromDir(const std::string& dir, const CreateOptions& options) {
  Created c;
  ASSIGN_OR_RETURN(c.info, CreateLayerFromDir(dir, StringSink(&c.bytes), options));
  return c;
}

absl::StatusOr<ApplyResult> Apply(absl::string_view layer, const std::string& target,
                                  const ApplyOptions& options) {
  RETURN_IF_ERROR(MakeDirs(target));
  return ApplyLayer(StringSource(layer), target, options);
}

}  // namespace pier::archive::testing
