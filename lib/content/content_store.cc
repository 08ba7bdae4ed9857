#include "lib/content/content_store.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "lib/common/log.h"
#include "lib/common/status.h"

namespace pier::content {
namespace {

constexpr absl::string_view kBlobDir = "blobs/sha256";
constexpr absl::string_view kIngestRoot = "ingest";
constexpr size_t kMaxRefLength = 1024;
constexpr size_t kReadChunk = 1 << 20;

std::string RefFile(absl::string_view dir) { return absl::StrCat(dir, "/ref"); }
std::string DataFile(absl::string_view dir) { return absl::StrCat(dir, "/data"); }
std::string StartedAtFile(absl::string_view dir) { return absl::StrCat(dir, "/startedat"); }
std::string TotalFile(absl::string_view dir) { return absl::StrCat(dir, "/total"); }

absl::Status ValidateRef(absl::string_view ref) {
  if (ref.empty()) return absl::InvalidArgumentError("ingest ref must not be empty");
  if (ref.size() > kMaxRefLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("ingest ref is ", ref.size(), " bytes long; the limit is ", kMaxRefLength));
  }
  return absl::OkStatus();
}

std::string FormatRfc3339(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
}

std::optional<absl::Time> ParseRfc3339(absl::string_view text) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return std::nullopt;
  return t;
}

absl::Status NotFoundContent(const oci::Digest& digest) {
  return absl::NotFoundError(absl::StrCat("content ", digest.str(), " not found"));
}

// Maps a driver NotFound on a blob path to "content X not found".
absl::Status BlobError(const absl::Status& s, const oci::Digest& digest) {
  if (absl::IsNotFound(s)) return NotFoundContent(digest);
  return Annotate(s, absl::StrCat("content ", digest.str()));
}

absl::Status Locked(absl::string_view ref) {
  return absl::UnavailableError(absl::StrCat("ref ", ref, " is locked"));
}

absl::Status NoIngest(absl::string_view ref) {
  return absl::NotFoundError(absl::StrCat("no ingest for ref ", ref));
}

}  // namespace

// Holds an ingest's in-process entry and its driver lock.
class ContentWriter::RefLock {
 public:
  RefLock(ContentStore* store, std::string dir, std::unique_ptr<DriverLock> driver_lock)
      : store_(store), dir_(std::move(dir)), driver_lock_(std::move(driver_lock)) {}
  ~RefLock() {
    // Drop the cross-process lock first so that a thread admitted by the
    // in-process set never finds the driver lock still held by us.
    driver_lock_.reset();
    store_->UnlockIngest(dir_);
  }
  RefLock(const RefLock&) = delete;
  RefLock& operator=(const RefLock&) = delete;

 private:
  ContentStore* store_;
  std::string dir_;
  std::unique_ptr<DriverLock> driver_lock_;
};

// ---------------------------------------------------------------------------
// ContentWriter

ContentWriter::ContentWriter(ContentStore* store, std::string ref, std::string dir,
                             std::unique_ptr<RefLock> lock)
    : store_(store), ref_(std::move(ref)), dir_(std::move(dir)), lock_(std::move(lock)) {}

ContentWriter::~ContentWriter() {
  if (state_ != State::kDone) {
    absl::Status s = Close();
    if (!s.ok()) {
      PIER_LOG(WARNING) << "closing writer for ref " << ref_ << ": " << s;
    }
  }
}

absl::Status ContentWriter::CheckOpen(absl::string_view op) const {
  switch (state_) {
    case State::kOpen:
      return absl::OkStatus();
    case State::kFailed:
      return absl::FailedPreconditionError(absl::StrCat(
          op, " ref ", ref_, ": an earlier write failed; close and reopen the ref to resume"));
    case State::kDone:
      break;
  }
  return absl::FailedPreconditionError(
      absl::StrCat(op, " ref ", ref_, ": writer already committed, aborted or closed"));
}

void ContentWriter::Finish() {
  data_.reset();
  lock_.reset();
  state_ = State::kDone;
}

absl::Status ContentWriter::Write(absl::string_view data) {
  RETURN_IF_ERROR(CheckOpen("write"));
  if (expected_size_.has_value() && hasher_.size() + data.size() > *expected_size_) {
    return absl::InvalidArgumentError(absl::StrCat("write ref ", ref_, ": ", data.size(),
                                                   " bytes at offset ", hasher_.size(),
                                                   " exceed the expected size ", *expected_size_));
  }
  absl::Status s = data_->Write(data);
  if (!s.ok()) {
    // The file may hold part of `data`; only a re-hash on reopen knows.
    state_ = State::kFailed;
    return Annotate(s, absl::StrCat("write ref ", ref_));
  }
  hasher_.Update(data);
  updated_at_ = absl::Now();
  return absl::OkStatus();
}

oci::Digest ContentWriter::Digest() const { return hasher_.Clone().Finish(); }

absl::Status ContentWriter::Truncate(uint64_t size) {
  RETURN_IF_ERROR(CheckOpen("truncate"));
  if (size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("truncate ref ", ref_, " to ", size, ": only truncation to 0 is supported"));
  }
  const std::string context = absl::StrCat("truncate ref ", ref_);
  absl::Status s = data_->Close();
  data_.reset();
  if (!s.ok()) {
    state_ = State::kFailed;
    return Annotate(s, context);
  }
  absl::StatusOr<std::unique_ptr<FileWriter>> fresh =
      store_->driver_->Writer(DataFile(dir_), /*append=*/false);
  if (!fresh.ok()) {
    state_ = State::kFailed;
    return Annotate(fresh.status(), context);
  }
  data_ = *std::move(fresh);
  hasher_ = oci::Sha256();
  updated_at_ = absl::Now();
  return absl::OkStatus();
}

absl::StatusOr<Info> ContentWriter::Commit(std::optional<uint64_t> expected_size,
                                           std::optional<oci::Digest> expected_digest) {
  RETURN_IF_ERROR(CheckOpen("commit"));
  BlobDriver& driver = *store_->driver_;
  const std::string context = absl::StrCat("commit ref ", ref_);
  absl::Status s = data_->Commit();
  if (s.ok()) s = data_->Close();
  if (!s.ok()) {
    state_ = State::kFailed;
    return Annotate(s, context);
  }
  data_.reset();

  const uint64_t size = hasher_.size();
  const oci::Digest got = hasher_.Clone().Finish();
  auto reject = [&](std::string why) -> absl::Status {
    absl::Status removed = driver.Delete(dir_);
    if (!removed.ok() && !absl::IsNotFound(removed)) {
      PIER_LOG(WARNING) << "removing rejected ingest of ref " << ref_ << ": " << removed;
    }
    Finish();
    return absl::InvalidArgumentError(absl::StrCat(context, ": ", why));
  };
  for (const std::optional<uint64_t>& want : {expected_size_, expected_size}) {
    if (want.has_value() && *want != size) {
      return reject(absl::StrCat("size mismatch: got ", size, ", expected ", *want));
    }
  }
  for (const std::optional<oci::Digest>& want : {expected_digest_, expected_digest}) {
    if (want.has_value() && *want != got) {
      return reject(absl::StrCat("digest mismatch: got ", got.str(), ", expected ", want->str()));
    }
  }

  const std::string target = ContentStore::BlobPath(got);
  absl::StatusOr<FileInfo> existing = driver.Stat(target);
  if (!existing.ok() && !absl::IsNotFound(existing.status())) {
    state_ = State::kFailed;
    return Annotate(existing.status(), context);
  }
  if (!existing.ok()) {
    s = driver.Move(DataFile(dir_), target);
    if (!s.ok()) {
      state_ = State::kFailed;
      return Annotate(s, context);
    }
  }
  // The content is published; what is left of the ingest is garbage either
  // way, so failing to remove it is not the caller's problem.
  absl::Status removed = driver.Delete(dir_);
  if (!removed.ok() && !absl::IsNotFound(removed)) {
    PIER_LOG(WARNING) << "removing committed ingest of ref " << ref_ << ": " << removed;
  }
  Finish();
  if (existing.ok()) return Info{got, existing->size, existing->mtime};
  absl::StatusOr<FileInfo> stored = driver.Stat(target);
  if (!stored.ok()) return Annotate(stored.status(), context);
  return Info{got, stored->size, stored->mtime};
}

absl::Status ContentWriter::Abort() {
  if (state_ == State::kDone) return CheckOpen("abort");
  if (data_ != nullptr) {
    absl::Status closed = data_->Close();
    if (!closed.ok()) {
      PIER_LOG(WARNING) << "closing ingest of ref " << ref_ << ": " << closed;
    }
  }
  absl::Status s = store_->driver_->Delete(dir_);
  Finish();
  if (!s.ok() && !absl::IsNotFound(s)) return Annotate(s, absl::StrCat("abort ref ", ref_));
  return absl::OkStatus();
}

absl::Status ContentWriter::Close() {
  if (state_ == State::kDone) return absl::OkStatus();
  absl::Status s = data_ != nullptr ? data_->Close() : absl::OkStatus();
  Finish();
  return Annotate(s, absl::StrCat("close ref ", ref_));
}

IngestStatus ContentWriter::Status() const {
  IngestStatus st;
  st.ref = ref_;
  st.offset = hasher_.size();
  st.total = expected_size_;
  st.started_at = started_at_;
  st.updated_at = updated_at_;
  return st;
}

// ---------------------------------------------------------------------------
// ContentStore

ContentStore::ContentStore(std::unique_ptr<BlobDriver> driver) : driver_(std::move(driver)) {}
ContentStore::~ContentStore() = default;

std::string ContentStore::BlobPath(const oci::Digest& digest) {
  return absl::StrCat(kBlobDir, "/", digest.hex());
}

std::string ContentStore::IngestDir(absl::string_view ref) {
  return absl::StrCat(kIngestRoot, "/", oci::Digest::Of(ref).hex());
}

absl::StatusOr<std::unique_ptr<ContentWriter::RefLock>> ContentStore::LockIngest(
    const std::string& dir, absl::string_view ref) {
  {
    std::lock_guard lock(mu_);
    if (!locked_ingests_.insert(dir).second) return Locked(ref);
  }
  absl::StatusOr<std::unique_ptr<DriverLock>> driver_lock = driver_->TryLock(dir);
  if (!driver_lock.ok()) {
    UnlockIngest(dir);
    if (absl::IsUnavailable(driver_lock.status())) return Locked(ref);
    return Annotate(driver_lock.status(), absl::StrCat("lock ref ", ref));
  }
  return std::make_unique<ContentWriter::RefLock>(this, dir, *std::move(driver_lock));
}

void ContentStore::UnlockIngest(const std::string& dir) {
  std::lock_guard lock(mu_);
  locked_ingests_.erase(dir);
}

absl::StatusOr<Info> ContentStore::Info(const oci::Digest& digest) {
  absl::StatusOr<FileInfo> st = driver_->Stat(BlobPath(digest));
  if (!st.ok()) return BlobError(st.status(), digest);
  if (st->is_dir) return NotFoundContent(digest);
  return content::Info{digest, st->size, st->mtime};
}

absl::StatusOr<std::unique_ptr<FileReader>> ContentStore::OpenReader(const oci::Digest& digest,
                                                                     uint64_t offset) {
  absl::StatusOr<std::unique_ptr<FileReader>> reader = driver_->Reader(BlobPath(digest), offset);
  if (!reader.ok()) return BlobError(reader.status(), digest);
  return reader;
}

absl::StatusOr<std::string> ContentStore::ReadAt(const oci::Digest& digest, uint64_t offset,
                                                 size_t length) {
  ASSIGN_OR_RETURN(std::unique_ptr<FileReader> reader, OpenReader(digest, offset));
  uint64_t left = reader->Size() - offset;
  std::string out(static_cast<size_t>(std::min<uint64_t>(left, length)), '\0');
  size_t got = 0;
  while (got < out.size()) {
    absl::StatusOr<size_t> n = reader->Read(out.data() + got, out.size() - got);
    if (!n.ok()) return BlobError(n.status(), digest);
    if (*n == 0) break;
    got += *n;
  }
  out.resize(got);
  return out;
}

absl::StatusOr<std::string> ContentStore::ReadAll(const oci::Digest& digest, uint64_t max_size) {
  ASSIGN_OR_RETURN(std::unique_ptr<FileReader> reader, OpenReader(digest, 0));
  if (reader->Size() > max_size) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "content ", digest.str(), " is ", reader->Size(), " bytes, over the limit of ", max_size));
  }
  std::string out(static_cast<size_t>(reader->Size()), '\0');
  size_t got = 0;
  while (got < out.size()) {
    absl::StatusOr<size_t> n = reader->Read(out.data() + got, out.size() - got);
    if (!n.ok()) return BlobError(n.status(), digest);
    if (*n == 0) break;
    got += *n;
  }
  out.resize(got);
  return out;
}

absl::Status ContentStore::Verify(const oci::Digest& digest) {
  ASSIGN_OR_RETURN(std::unique_ptr<FileReader> reader, OpenReader(digest, 0));
  oci::Sha256 hasher;
  std::string buf(kReadChunk, '\0');
  while (true) {
    absl::StatusOr<size_t> n = reader->Read(buf.data(), buf.size());
    if (!n.ok()) return BlobError(n.status(), digest);
    if (*n == 0) break;
    hasher.Update(buf.data(), *n);
  }
  oci::Digest actual = hasher.Finish();
  if (actual != digest) {
    return absl::DataLossError(absl::StrCat("content ", digest.str(), " is corrupt: its ",
                                            hasher.size(), " bytes hash to ", actual.str()));
  }
  return absl::OkStatus();
}

absl::Status ContentStore::Walk(const std::function<absl::Status(const content::Info&)>& fn) {
  absl::StatusOr<std::vector<std::string>> paths = driver_->List(kBlobDir);
  if (absl::IsNotFound(paths.status())) return absl::OkStatus();
  if (!paths.ok()) return Annotate(paths.status(), "list content");
  for (const std::string& path : *paths) {
    absl::string_view name = absl::string_view(path).substr(kBlobDir.size() + 1);
    absl::StatusOr<oci::Digest> digest = oci::Digest::Parse(absl::StrCat("sha256:", name));
    if (!digest.ok()) continue;  // a stray file, not ours
    absl::StatusOr<FileInfo> st = driver_->Stat(path);
    if (absl::IsNotFound(st.status())) continue;  // deleted meanwhile
    if (!st.ok()) return Annotate(st.status(), "list content");
    if (st->is_dir) continue;
    RETURN_IF_ERROR(fn(content::Info{*std::move(digest), st->size, st->mtime}));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Info>> ContentStore::List() {
  std::vector<content::Info> out;
  RETURN_IF_ERROR(Walk([&out](const content::Info& info) {
    out.push_back(info);
    return absl::OkStatus();
  }));
  return out;
}

absl::Status ContentStore::Delete(const oci::Digest& digest) {
  absl::Status s = driver_->Delete(BlobPath(digest));
  if (!s.ok()) return BlobError(s, digest);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ContentWriter>> ContentStore::OpenWriter(
    absl::string_view ref, std::optional<oci::Digest> expected_digest,
    std::optional<uint64_t> expected_size) {
  RETURN_IF_ERROR(ValidateRef(ref));
  const std::string dir = IngestDir(ref);
  const std::string context = absl::StrCat("open ref ", ref);
  ASSIGN_OR_RETURN(std::unique_ptr<ContentWriter::RefLock> lock, LockIngest(dir, ref));
  // From here the writer owns the lock; returning early releases it.
  std::unique_ptr<ContentWriter> w(new ContentWriter(this, std::string(ref), dir, std::move(lock)));
  w->expected_digest_ = std::move(expected_digest);
  w->expected_size_ = expected_size;

  absl::StatusOr<std::string> stored_ref = GetContent(*driver_, RefFile(dir));
  if (!stored_ref.ok() && !absl::IsNotFound(stored_ref.status())) {
    return Annotate(stored_ref.status(), context);
  }
  bool resume = stored_ref.ok();
  if (resume) {
    if (*stored_ref != ref) {
      return absl::FailedPreconditionError(
          absl::StrCat(context, ": ingest directory ", dir, " belongs to ref ", *stored_ref));
    }
    absl::StatusOr<std::string> started = GetContent(*driver_, StartedAtFile(dir));
    std::optional<absl::Time> t = started.ok() ? ParseRfc3339(*started) : std::nullopt;
    w->started_at_ = t.value_or(absl::Now());
    if (!expected_size.has_value()) {
      absl::StatusOr<std::string> total = GetContent(*driver_, TotalFile(dir));
      uint64_t n = 0;
      if (total.ok() && absl::SimpleAtoi(*total, &n)) w->expected_size_ = n;
    }
    // Re-hash what is stored: after a crash only the file knows how far the
    // writer got, and the digest must cover exactly those bytes.
    absl::StatusOr<std::unique_ptr<FileReader>> reader = driver_->Reader(DataFile(dir), 0);
    if (reader.ok()) {
      std::string buf(kReadChunk, '\0');
      while (true) {
        absl::StatusOr<size_t> n = (*reader)->Read(buf.data(), buf.size());
        if (!n.ok()) return Annotate(n.status(), context);
        if (*n == 0) break;
        w->hasher_.Update(buf.data(), *n);
      }
    } else if (!absl::IsNotFound(reader.status())) {
      return Annotate(reader.status(), context);
    }
    if (w->expected_size_.has_value() && w->hasher_.size() > *w->expected_size_) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": ingest already holds ", w->hasher_.size(),
                       " bytes, more than the expected size ", *w->expected_size_));
    }
  } else {
    w->started_at_ = absl::Now();
    RETURN_IF_ERROR(Annotate(PutContent(*driver_, RefFile(dir), ref), context));
    RETURN_IF_ERROR(
        Annotate(PutContent(*driver_, StartedAtFile(dir), FormatRfc3339(w->started_at_)), context));
  }
  if (expected_size.has_value()) {
    RETURN_IF_ERROR(
        Annotate(PutContent(*driver_, TotalFile(dir), absl::StrCat(*expected_size)), context));
  }
  absl::StatusOr<std::unique_ptr<FileWriter>> data = driver_->Writer(DataFile(dir), resume);
  if (!data.ok()) return Annotate(data.status(), context);
  if ((*data)->Size() != w->hasher_.size()) {
    return absl::InternalError(absl::StrCat(context, ": data file holds ", (*data)->Size(),
                                            " bytes but ", w->hasher_.size(),
                                            " were hashed; was it written behind our back?"));
  }
  w->data_ = *std::move(data);
  w->updated_at_ = absl::Now();
  return w;
}

absl::StatusOr<Info> ContentStore::Put(absl::string_view data,
                                       std::optional<oci::Digest> expected) {
  oci::Digest got = oci::Digest::Of(data);
  if (expected.has_value() && *expected != got) {
    return absl::InvalidArgumentError(
        absl::StrCat("put: digest mismatch: got ", got.str(), ", expected ", expected->str()));
  }
  absl::StatusOr<content::Info> existing = Info(got);
  if (existing.ok() || !absl::IsNotFound(existing.status())) return existing;
  // Small content in one go needs no resumable ingest: write a private
  // temporary file, fsync it, and move it into place (atomic and durable).
  // Concurrent Puts of one blob each use their own file; the last rename
  // replaces identical bytes.
  static std::atomic<uint64_t> counter{0};
  std::string tmp = absl::StrCat("tmp/put-", got.hex(), "-", ::getpid(), "-", counter++);
  ASSIGN_OR_RETURN(std::unique_ptr<FileWriter> w, driver_->Writer(tmp, /*append=*/false));
  absl::Status s = w->Write(data);
  if (s.ok()) s = w->Commit();
  if (s.ok()) s = driver_->Move(tmp, BlobPath(got));
  if (!s.ok()) {
    (void)w->Cancel();
    (void)driver_->Delete(tmp);
    return s;
  }
  return Info(got);
}

absl::StatusOr<IngestStatus> ContentStore::IngestStatusAt(const std::string& dir) {
  ASSIGN_OR_RETURN(std::string ref, GetContent(*driver_, RefFile(dir)));
  IngestStatus st;
  st.ref = std::move(ref);
  absl::StatusOr<FileInfo> data = driver_->Stat(DataFile(dir));
  if (data.ok()) {
    st.offset = data->size;
    st.updated_at = data->mtime;
  } else if (absl::IsNotFound(data.status())) {
    ASSIGN_OR_RETURN(FileInfo ref_info, driver_->Stat(RefFile(dir)));
    st.updated_at = ref_info.mtime;
  } else {
    return data.status();
  }
  absl::StatusOr<std::string> started = GetContent(*driver_, StartedAtFile(dir));
  std::optional<absl::Time> t = started.ok() ? ParseRfc3339(*started) : std::nullopt;
  st.started_at = t.value_or(st.updated_at);
  absl::StatusOr<std::string> total = GetContent(*driver_, TotalFile(dir));
  uint64_t n = 0;
  if (total.ok() && absl::SimpleAtoi(*total, &n)) st.total = n;
  return st;
}

absl::StatusOr<IngestStatus> ContentStore::Status(absl::string_view ref) {
  RETURN_IF_ERROR(ValidateRef(ref));
  absl::StatusOr<IngestStatus> st = IngestStatusAt(IngestDir(ref));
  if (absl::IsNotFound(st.status())) return NoIngest(ref);
  if (!st.ok()) return Annotate(st.status(), absl::StrCat("status of ref ", ref));
  return st;
}

absl::StatusOr<std::vector<IngestStatus>> ContentStore::ListIngests() {
  std::vector<IngestStatus> out;
  absl::StatusOr<std::vector<std::string>> dirs = driver_->List(kIngestRoot);
  if (absl::IsNotFound(dirs.status())) return out;
  if (!dirs.ok()) return Annotate(dirs.status(), "list ingests");
  for (const std::string& dir : *dirs) {
    absl::StatusOr<IngestStatus> st = IngestStatusAt(dir);
    // No ref: half-created, or committed/aborted while we looked.
    if (absl::IsNotFound(st.status())) continue;
    if (!st.ok()) return Annotate(st.status(), absl::StrCat("list ingests: ", dir));
    out.push_back(*std::move(st));
  }
  return out;
}

absl::Status ContentStore::Abort(absl::string_view ref) {
  RETURN_IF_ERROR(ValidateRef(ref));
  const std::string dir = IngestDir(ref);
  // Check first: the filesystem driver's lock would create the directory.
  absl::StatusOr<FileInfo> st = driver_->Stat(dir);
  if (absl::IsNotFound(st.status())) return NoIngest(ref);
  if (!st.ok()) return Annotate(st.status(), absl::StrCat("abort ref ", ref));
  ASSIGN_OR_RETURN(std::unique_ptr<ContentWriter::RefLock> lock, LockIngest(dir, ref));
  absl::Status s = driver_->Delete(dir);
  if (absl::IsNotFound(s)) return NoIngest(ref);
  return Annotate(s, absl::StrCat("abort ref ", ref));
}

absl::StatusOr<int> ContentStore::CleanupIngests(absl::Duration older_than) {
  return CleanupIngestsBefore(absl::Now() - older_than);
}

absl::StatusOr<int> ContentStore::CleanupIngestsBefore(absl::Time cutoff) {
  absl::StatusOr<std::vector<std::string>> dirs = driver_->List(kIngestRoot);
  if (absl::IsNotFound(dirs.status())) return 0;
  if (!dirs.ok()) return Annotate(dirs.status(), "clean up ingests");
  int removed = 0;
  for (const std::string& dir : *dirs) {
    absl::StatusOr<std::unique_ptr<ContentWriter::RefLock>> lock = LockIngest(dir, dir);
    if (absl::IsUnavailable(lock.status())) continue;  // in use
    if (!lock.ok()) {
      PIER_LOG(WARNING) << "clean up ingest " << dir << ": " << lock.status();
      continue;
    }
    // Last activity: the data file's mtime, else the directory's (an
    // ingest that never got its data file, or a bare lock directory).
    absl::StatusOr<FileInfo> st = driver_->Stat(DataFile(dir));
    if (absl::IsNotFound(st.status())) st = driver_->Stat(dir);
    if (absl::IsNotFound(st.status())) continue;  // gone already
    absl::Status s = st.status();
    if (s.ok() && st->mtime <= cutoff) {
      s = driver_->Delete(dir);
      if (s.ok()) ++removed;
    }
    if (!s.ok() && !absl::IsNotFound(s)) {
      PIER_LOG(WARNING) << "clean up ingest " << dir << ": " << s;
    }
  }
  // Temporary files of Puts that a crash interrupted.
  absl::StatusOr<std::vector<std::string>> tmps = driver_->List("tmp");
  if (tmps.ok()) {
    for (const std::string& tmp : *tmps) {
      absl::StatusOr<FileInfo> st = driver_->Stat(tmp);
      if (st.ok() && st->mtime <= cutoff && driver_->Delete(tmp).ok()) ++removed;
    }
  }
  return removed;
}

}  // namespace pier::content
