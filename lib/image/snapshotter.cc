#include "lib/image/snapshotter.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/common/fs.h"
#include "lib/common/log.h"
#include "lib/common/status.h"
#include "nlohmann/json.hpp"

namespace pier::image {
namespace {

using Json = nlohmann::json;

constexpr absl::string_view kSeqKey = "snap/seq";
constexpr absl::string_view kCommittedPrefix = "snap/c/";
constexpr absl::string_view kActivePrefix = "snap/a/";
constexpr absl::string_view kRefPrefix = "snap/ref/";

std::string CommittedKey(const oci::Digest& chain_id) {
  return absl::StrCat(kCommittedPrefix, chain_id.str());
}
std::string ActiveKey(absl::string_view key) { return absl::StrCat(kActivePrefix, key); }
std::string RefKey(const oci::Digest& parent, absl::string_view kind, absl::string_view name) {
  return absl::StrCat(kRefPrefix, parent.str(), "/", kind, ":", name);
}

std::string TimeString(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
}
absl::Time ParseTime(const std::string& s) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, s, &t, &err)) return absl::UnixEpoch();
  return t;
}

absl::Status ValidateKey(absl::string_view key) {
  bool ok = !key.empty() && key.size() <= 128 && key[0] != '.';
  for (char c : key) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      ok = false;
    }
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid snapshot key \"", key,
                     "\": want 1..128 characters of [A-Za-z0-9_.-], not starting with '.'"));
  }
  return absl::OkStatus();
}

std::string SnapshotToJson(const SnapshotInfo& info) {
  Json j = {
      {"id", info.id}, {"diff_id", info.diff_id.str()}, {"created", TimeString(info.created)}};
  if (info.parent) j["parent"] = info.parent->str();
  return j.dump();
}

absl::StatusOr<SnapshotInfo> SnapshotFromJson(const oci::Digest& chain_id, absl::string_view text) {
  Json j = Json::parse(text, nullptr, false);
  auto bad = [&] {
    return absl::DataLossError(absl::StrCat("snapshot record of ", chain_id.str(), " is corrupt"));
  };
  if (!j.is_object() || !j.contains("id") || !j["id"].is_number_unsigned()) return bad();
  SnapshotInfo info;
  info.chain_id = chain_id;
  info.id = j["id"].get<uint64_t>();
  auto diff = oci::Digest::Parse(j.value("diff_id", ""));
  if (!diff.ok()) return bad();
  info.diff_id = *diff;
  if (j.contains("parent")) {
    auto parent = oci::Digest::Parse(j.value("parent", ""));
    if (!parent.ok()) return bad();
    info.parent = *parent;
  }
  info.created = ParseTime(j.value("created", ""));
  return info;
}

std::string ActiveToJson(const ActiveInfo& info) {
  Json j = {{"readonly", info.readonly}, {"created", TimeString(info.created)}};
  if (info.parent) j["parent"] = info.parent->str();
  return j.dump();
}

absl::StatusOr<ActiveInfo> ActiveFromJson(absl::string_view key, absl::string_view text) {
  Json j = Json::parse(text, nullptr, false);
  if (!j.is_object()) {
    return absl::DataLossError(absl::StrCat("active snapshot record of ", key, " is corrupt"));
  }
  ActiveInfo info;
  info.key = std::string(key);
  info.readonly = j.value("readonly", false);
  info.created = ParseTime(j.value("created", ""));
  if (j.contains("parent")) {
    auto parent = oci::Digest::Parse(j.value("parent", ""));
    if (!parent.ok()) {
      return absl::DataLossError(absl::StrCat("active snapshot record of ", key, " is corrupt"));
    }
    info.parent = *parent;
  }
  return info;
}

absl::Status Rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename ", from, " to ", to));
  }
  return absl::OkStatus();
}

absl::Status MakeDir(const std::string& path, int mode = 0755) {
  if (::mkdir(path.c_str(), mode) != 0) return ErrnoStatus(errno, absl::StrCat("mkdir ", path));
  return absl::OkStatus();
}

// Adds the usage of `dirfd` (already counted itself) to `usage`.
absl::Status WalkUsage(int dirfd, const std::string& shown, Usage* usage,
                       std::set<std::pair<dev_t, ino_t>>* seen) {
  DIR* dir = ::fdopendir(dirfd);
  if (dir == nullptr) {
    int err = errno;
    ::close(dirfd);
    return ErrnoStatus(err, absl::StrCat("opendir ", shown));
  }
  absl::Status status;
  while (struct dirent* e = ::readdir(dir)) {
    absl::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    if (::fstatat(::dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      status = ErrnoStatus(errno, absl::StrCat("stat ", shown, "/", name));
      break;
    }
    if (!seen->insert({st.st_dev, st.st_ino}).second) continue;
    usage->inodes++;
    usage->bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    if (S_ISDIR(st.st_mode)) {
      int fd = ::openat(::dirfd(dir), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        status = ErrnoStatus(errno, absl::StrCat("open ", shown, "/", name));
        break;
      }
      status = WalkUsage(fd, absl::StrCat(shown, "/", name), usage, seen);
      if (!status.ok()) break;
    }
  }
  ::closedir(dir);
  return status;
}

absl::StatusOr<Usage> DirUsage(const std::string& path) {
  Usage usage;
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", path));
  usage.inodes = 1;
  usage.bytes = static_cast<uint64_t>(st.st_blocks) * 512;
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  std::set<std::pair<dev_t, ino_t>> seen;
  RETURN_IF_ERROR(WalkUsage(fd, path, &usage, &seen));
  return usage;
}

}  // namespace

oci::Digest ChainId(const std::optional<oci::Digest>& parent, const oci::Digest& diff_id) {
  if (!parent) return diff_id;
  return oci::Digest::Of(absl::StrCat(parent->str(), " ", diff_id.str()));
}

std::vector<oci::Digest> ChainIds(const std::vector<oci::Digest>& diff_ids) {
  std::vector<oci::Digest> out;
  std::optional<oci::Digest> parent;
  for (const oci::Digest& d : diff_ids) {
    parent = ChainId(parent, d);
    out.push_back(*parent);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Snapshotter>> Snapshotter::Open(std::string root, kv::KvStore* kv,
                                                               SnapshotterOptions options) {
  for (const char* sub : {"snapshots", "active", "empty"}) {
    RETURN_IF_ERROR(MakeDirs(JoinPath(root, sub), 0700));
  }
  // Leftovers of unpacks or removals cut short by a crash.
  RETURN_IF_ERROR(RemoveAll(JoinPath(root, "tmp")));
  RETURN_IF_ERROR(MakeDirs(JoinPath(root, "tmp"), 0700));
  if (::chmod(JoinPath(root, "empty").c_str(), 0755) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chmod ", root, "/empty"));
  }
  auto snapshotter = std::unique_ptr<Snapshotter>(new Snapshotter(std::move(root), kv, options));
  RETURN_IF_ERROR(kv->Find(kSeqKey).status());  // the kv store is readable
  return snapshotter;
}

std::string Snapshotter::SnapshotDir(uint64_t id) const {
  return absl::StrCat(root_, "/snapshots/", id);
}
std::string Snapshotter::ActiveDir(absl::string_view key) const {
  return absl::StrCat(root_, "/active/", key);
}

absl::StatusOr<uint64_t> Snapshotter::NextId() {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(std::optional<std::string> seq, kv_->Find(kSeqKey));
  uint64_t n = 0;
  if (seq && !absl::SimpleAtoi(*seq, &n)) {
    return absl::DataLossError(absl::StrCat("snapshot sequence \"", *seq, "\" is corrupt"));
  }
  n++;
  RETURN_IF_ERROR(kv_->Put(kSeqKey, absl::StrCat(n)));
  return n;
}

absl::StatusOr<std::optional<SnapshotInfo>> Snapshotter::FindCommitted(
    const oci::Digest& chain_id) {
  ASSIGN_OR_RETURN(std::optional<std::string> rec, kv_->Find(CommittedKey(chain_id)));
  if (!rec) return std::optional<SnapshotInfo>();
  ASSIGN_OR_RETURN(SnapshotInfo info, SnapshotFromJson(chain_id, *rec));
  return std::optional<SnapshotInfo>(std::move(info));
}

absl::StatusOr<std::optional<ActiveInfo>> Snapshotter::FindActive(absl::string_view key) {
  ASSIGN_OR_RETURN(std::optional<std::string> rec, kv_->Find(ActiveKey(key)));
  if (!rec) return std::optional<ActiveInfo>();
  ASSIGN_OR_RETURN(ActiveInfo info, ActiveFromJson(key, *rec));
  return std::optional<ActiveInfo>(std::move(info));
}

absl::StatusOr<SnapshotInfo> Snapshotter::Stat(const oci::Digest& chain_id) {
  ASSIGN_OR_RETURN(std::optional<SnapshotInfo> info, FindCommitted(chain_id));
  if (!info) return absl::NotFoundError(absl::StrCat("snapshot ", chain_id.str(), " not found"));
  return *std::move(info);
}

absl::StatusOr<bool> Snapshotter::Exists(const oci::Digest& chain_id) {
  ASSIGN_OR_RETURN(std::optional<std::string> rec, kv_->Find(CommittedKey(chain_id)));
  return rec.has_value();
}

absl::StatusOr<std::vector<SnapshotInfo>> Snapshotter::List() {
  std::vector<SnapshotInfo> out;
  absl::Status status;
  RETURN_IF_ERROR(
      kv_->Scan(kCommittedPrefix, "", 0, [&](absl::string_view key, absl::string_view value) {
        auto chain = oci::Digest::Parse(key.substr(kCommittedPrefix.size()));
        if (!chain.ok()) {
          status = chain.status();
          return false;
        }
        auto info = SnapshotFromJson(*chain, value);
        if (!info.ok()) {
          status = info.status();
          return false;
        }
        out.push_back(*std::move(info));
        return true;
      }));
  RETURN_IF_ERROR(status);
  return out;
}

absl::StatusOr<std::string> Snapshotter::Dir(const oci::Digest& chain_id) {
  ASSIGN_OR_RETURN(SnapshotInfo info, Stat(chain_id));
  return SnapshotDir(info.id) + "/fs";
}

absl::Status Snapshotter::Publish(const std::string& tmp_dir, uint64_t id,
                                  const oci::Digest& chain_id,
                                  const std::optional<oci::Digest>& parent,
                                  const oci::Digest& diff_id, const kv::Batch& extra) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(std::optional<std::string> existing, kv_->Find(CommittedKey(chain_id)));
  if (existing) {
    // Another unpacker won the race; ours is a duplicate.
    RETURN_IF_ERROR(RemoveAll(tmp_dir));
    if (!extra.empty()) RETURN_IF_ERROR(kv_->Write(extra));
    return absl::OkStatus();
  }
  if (parent) {
    ASSIGN_OR_RETURN(std::optional<std::string> p, kv_->Find(CommittedKey(*parent)));
    if (!p) {
      (void)RemoveAll(tmp_dir);
      return absl::NotFoundError(
          absl::StrCat("parent snapshot ", parent->str(), " of ", chain_id.str(), " was removed"));
    }
  }
  const std::string final_dir = SnapshotDir(id);
  RETURN_IF_ERROR(Rename(tmp_dir, final_dir));
  RETURN_IF_ERROR(SyncDir(JoinPath(root_, "snapshots")));
  SnapshotInfo info;
  info.chain_id = chain_id;
  info.parent = parent;
  info.diff_id = diff_id;
  info.id = id;
  info.created = absl::Now();
  kv::Batch batch = extra;
  batch.Put(CommittedKey(chain_id), SnapshotToJson(info));
  if (parent) batch.Put(RefKey(*parent, "c", chain_id.str()), "");
  absl::Status st = kv_->Write(batch);
  if (!st.ok()) (void)RemoveAll(final_dir);
  return st;
}

absl::StatusOr<oci::Digest> Snapshotter::Unpack(const std::optional<oci::Digest>& parent,
                                                const oci::Digest& diff_id,
                                                const archive::ByteSource& layer) {
  const oci::Digest chain_id = ChainId(parent, diff_id);
  ASSIGN_OR_RETURN(bool exists, Exists(chain_id));
  if (exists) return chain_id;
  if (parent) {
    ASSIGN_OR_RETURN(bool parent_exists, Exists(*parent));
    if (!parent_exists) {
      return absl::NotFoundError(absl::StrCat("parent snapshot ", parent->str(), " not found"));
    }
  }
  ASSIGN_OR_RETURN(uint64_t id, NextId());
  const std::string tmp_dir = absl::StrCat(root_, "/tmp/", id);
  RETURN_IF_ERROR(MakeDir(tmp_dir, 0700));
  RETURN_IF_ERROR(MakeDir(tmp_dir + "/fs"));
  archive::ApplyOptions apply;
  apply.whiteout_mode = archive::WhiteoutMode::kOverlay;
  apply.overlay_user_xattr = options_.userxattr;
  apply.devices = options_.devices;
  apply.restore_owners = options_.restore_owners;
  apply.expected_diff_id = diff_id;
  absl::StatusOr<archive::ApplyResult> applied = archive::ApplyLayer(layer, tmp_dir + "/fs", apply);
  if (!applied.ok()) {
    (void)RemoveAll(tmp_dir);
    return Annotate(applied.status(), absl::StrCat("unpack layer ", diff_id.str()));
  }
  RETURN_IF_ERROR(Publish(tmp_dir, id, chain_id, parent, diff_id, kv::Batch()));
  return chain_id;
}

absl::Status Snapshotter::Remove(const oci::Digest& chain_id) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(std::optional<std::string> rec, kv_->Find(CommittedKey(chain_id)));
  if (!rec) return absl::NotFoundError(absl::StrCat("snapshot ", chain_id.str(), " not found"));
  ASSIGN_OR_RETURN(SnapshotInfo info, SnapshotFromJson(chain_id, *rec));
  std::string child;
  const std::string ref_prefix = absl::StrCat(kRefPrefix, chain_id.str(), "/");
  RETURN_IF_ERROR(kv_->Scan(ref_prefix, "", 1, [&](absl::string_view key, absl::string_view) {
    child = std::string(key.substr(ref_prefix.size()));
    return false;
  }));
  if (!child.empty()) {
    bool active = absl::StartsWith(child, "a:");
    return absl::FailedPreconditionError(absl::StrCat("snapshot ", chain_id.str(), " is in use by ",
                                                      active ? "active snapshot " : "snapshot ",
                                                      child.substr(2)));
  }
  // Move the directory out of snapshots/ first, so a crash mid-removal
  // leaves nothing behind that looks committed (tmp/ is emptied on Open).
  const std::string dir = SnapshotDir(info.id);
  const std::string doomed = absl::StrCat(root_, "/tmp/rm-", info.id);
  RETURN_IF_ERROR(Rename(dir, doomed));
  kv::Batch batch;
  batch.Delete(CommittedKey(chain_id));
  if (info.parent) batch.Delete(RefKey(*info.parent, "c", chain_id.str()));
  RETURN_IF_ERROR(kv_->Write(batch));
  return RemoveAll(doomed);
}

absl::StatusOr<std::vector<std::string>> Snapshotter::LowerDirs(const oci::Digest& chain_id) {
  std::vector<std::string> dirs;
  std::optional<oci::Digest> next = chain_id;
  while (next) {
    ASSIGN_OR_RETURN(SnapshotInfo info, Stat(*next));
    dirs.push_back(SnapshotDir(info.id) + "/fs");
    next = info.parent;
    if (dirs.size() > 10000) {
      return absl::DataLossError(absl::StrCat("snapshot chain of ", chain_id.str(), " loops"));
    }
  }
  return dirs;
}

absl::StatusOr<std::vector<exec::Mount>> Snapshotter::MountsFor(const ActiveInfo& info) {
  std::vector<std::string> lowers;
  if (info.parent) {
    ASSIGN_OR_RETURN(lowers, LowerDirs(*info.parent));
  }
  exec::Mount m;
  if (info.readonly && lowers.size() <= 1) {
    m.type = "bind";
    m.source = lowers.empty() ? JoinPath(root_, "empty") : lowers[0];
    m.options = {"ro", "rbind"};
    return std::vector<exec::Mount>{m};
  }
  m.type = "overlay";
  m.source = "overlay";
  if (lowers.empty()) lowers.push_back(JoinPath(root_, "empty"));
  m.options.push_back("lowerdir=" + absl::StrJoin(lowers, ":"));
  if (!info.readonly) {
    m.options.push_back("upperdir=" + ActiveDir(info.key) + "/upper");
    m.options.push_back("workdir=" + ActiveDir(info.key) + "/work");
    if (options_.layer_safe_upper) {
      m.options.push_back("redirect_dir=off");
      m.options.push_back("metacopy=off");
    }
  } else {
    m.options.insert(m.options.begin(), "ro");
  }
  if (options_.index_off) m.options.push_back("index=off");
  if (options_.userxattr) m.options.push_back("userxattr");
  size_t data = 0;
  for (const std::string& o : m.options) {
    if (o != "ro") data += o.size() + 1;
  }
  if (data > options_.max_mount_data) {
    return absl::ResourceExhaustedError(
        absl::StrCat("overlay mount of ", info.key, " needs ", data, " bytes of options for ",
                     lowers.size(), " layers; the kernel takes at most ", options_.max_mount_data,
                     " (use a shorter snapshotter root or fewer layers)"));
  }
  return std::vector<exec::Mount>{m};
}

absl::StatusOr<std::vector<exec::Mount>> Snapshotter::CreateActive(
    absl::string_view key, const std::optional<oci::Digest>& parent, bool readonly) {
  RETURN_IF_ERROR(ValidateKey(key));
  ActiveInfo info;
  info.key = std::string(key);
  info.parent = parent;
  info.readonly = readonly;
  info.created = absl::Now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(std::optional<std::string> existing, kv_->Find(ActiveKey(key)));
    if (existing) {
      return absl::AlreadyExistsError(absl::StrCat("active snapshot ", key, " already exists"));
    }
    if (parent) {
      ASSIGN_OR_RETURN(std::optional<std::string> p, kv_->Find(CommittedKey(*parent)));
      if (!p) {
        return absl::NotFoundError(absl::StrCat("parent snapshot ", parent->str(), " not found"));
      }
    }
    const std::string dir = ActiveDir(key);
    RETURN_IF_ERROR(RemoveAll(dir));  // a leftover of a crash between mkdir and the record
    RETURN_IF_ERROR(MakeDir(dir, 0700));
    if (!readonly) {
      RETURN_IF_ERROR(MakeDir(dir + "/upper"));
      RETURN_IF_ERROR(MakeDir(dir + "/work", 0700));
    }
    kv::Batch batch;
    batch.Put(ActiveKey(key), ActiveToJson(info));
    if (parent) batch.Put(RefKey(*parent, "a", key), "");
    // Not synced: an active snapshot belongs to a container or a build
    // step, whose own records are not either; a machine crash can only
    // leave an orphan directory (emptied with its owner), never a
    // committed snapshot without its record.
    batch.set_sync(false);
    absl::Status st = kv_->Write(batch);
    if (!st.ok()) {
      (void)RemoveAll(dir);
      return st;
    }
  }
  absl::StatusOr<std::vector<exec::Mount>> mounts = MountsFor(info);
  if (!mounts.ok()) (void)RemoveActive(key);
  return mounts;
}

absl::StatusOr<std::vector<exec::Mount>> Snapshotter::Prepare(
    absl::string_view key, const std::optional<oci::Digest>& parent) {
  return CreateActive(key, parent, /*readonly=*/false);
}

absl::StatusOr<std::vector<exec::Mount>> Snapshotter::View(
    absl::string_view key, const std::optional<oci::Digest>& parent) {
  return CreateActive(key, parent, /*readonly=*/true);
}

absl::StatusOr<ActiveInfo> Snapshotter::StatActive(absl::string_view key) {
  ASSIGN_OR_RETURN(std::optional<ActiveInfo> info, FindActive(key));
  if (!info) return absl::NotFoundError(absl::StrCat("active snapshot ", key, " not found"));
  return *std::move(info);
}

absl::StatusOr<std::vector<ActiveInfo>> Snapshotter::ListActive() {
  std::vector<ActiveInfo> out;
  absl::Status status;
  RETURN_IF_ERROR(
      kv_->Scan(kActivePrefix, "", 0, [&](absl::string_view key, absl::string_view value) {
        auto info = ActiveFromJson(key.substr(kActivePrefix.size()), value);
        if (!info.ok()) {
          status = info.status();
          return false;
        }
        out.push_back(*std::move(info));
        return true;
      }));
  RETURN_IF_ERROR(status);
  return out;
}

absl::StatusOr<std::vector<exec::Mount>> Snapshotter::Mounts(absl::string_view key) {
  ASSIGN_OR_RETURN(ActiveInfo info, StatActive(key));
  return MountsFor(info);
}

absl::StatusOr<std::string> Snapshotter::UpperDir(absl::string_view key) {
  ASSIGN_OR_RETURN(ActiveInfo info, StatActive(key));
  if (info.readonly) {
    return absl::FailedPreconditionError(absl::StrCat("snapshot ", key, " is a read-only view"));
  }
  return ActiveDir(key) + "/upper";
}

absl::StatusOr<oci::Digest> Snapshotter::Commit(absl::string_view key, const oci::Digest& diff_id) {
  ASSIGN_OR_RETURN(ActiveInfo info, StatActive(key));
  if (info.readonly) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot ", key, " is a read-only view: nothing to commit"));
  }
  const oci::Digest chain_id = ChainId(info.parent, diff_id);
  ASSIGN_OR_RETURN(uint64_t id, NextId());
  const std::string tmp_dir = absl::StrCat(root_, "/tmp/", id);
  RETURN_IF_ERROR(MakeDir(tmp_dir, 0700));
  RETURN_IF_ERROR(Rename(ActiveDir(key) + "/upper", tmp_dir + "/fs"));
  kv::Batch done;
  done.Delete(ActiveKey(key));
  if (info.parent) done.Delete(RefKey(*info.parent, "a", key));
  RETURN_IF_ERROR(Publish(tmp_dir, id, chain_id, info.parent, diff_id, done));
  RETURN_IF_ERROR(RemoveAll(ActiveDir(key)));
  return chain_id;
}

absl::Status Snapshotter::RemoveActive(absl::string_view key) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(std::optional<ActiveInfo> info, FindActive(key));
  if (!info) return absl::NotFoundError(absl::StrCat("active snapshot ", key, " not found"));
  kv::Batch batch;
  batch.Delete(ActiveKey(key));
  if (info->parent) batch.Delete(RefKey(*info->parent, "a", key));
  batch.set_sync(false);  // as in Prepare
  RETURN_IF_ERROR(kv_->Write(batch));
  // Its files go on a background thread (tmp/ is emptied on Open).
  return RemoveInBackground(ActiveDir(key), JoinPath(root_, "tmp"));
}

absl::StatusOr<Usage> Snapshotter::UsageOf(const oci::Digest& chain_id) {
  ASSIGN_OR_RETURN(std::string dir, Dir(chain_id));
  return DirUsage(dir);
}

absl::StatusOr<Usage> Snapshotter::ActiveUsage(absl::string_view key) {
  ASSIGN_OR_RETURN(ActiveInfo info, StatActive(key));
  if (info.readonly) return Usage();
  return DirUsage(ActiveDir(key) + "/upper");
}

}  // namespace pier::image
