// ContentStore: Pier's content-addressed blob store with resumable ingests.
//
// Content is written under a caller-chosen ref (an upload UUID, "layer-3",
// ...) and becomes visible under its digest only when a ContentWriter
// commits it, after the store has checked the size and sha256 the caller
// expects. Until then the bytes sit in an ingest that survives the writer
// being closed, the process crashing and the machine restarting: opening a
// writer for the same ref resumes where the stored bytes end, with the
// running digest re-hashed from them. Committed content is immutable.
//
// Layout on the BlobDriver (paths relative to the driver's root):
//
//   blobs/sha256/<hex>             committed content, named by its digest
//   tmp/put-<hex>-<pid>-<n>        a Put in progress (written, fsynced, moved)
//   ingest/<sha256(ref) hex>/      one directory per in-progress write
//       ref                        the caller's ref, verbatim
//       startedat                  when the ingest began (RFC 3339, UTC)
//       total                      the expected size, when the writer gave one
//       data                       the bytes written so far
//
// Commit fsyncs data, then Moves it to blobs/sha256/<hex> (rename, atomic and
// durable) and deletes the ingest; a crash at any point leaves either the
// ingest or the complete blob, never a partial blob. The ingest directory is
// named by a hash so any ref is a safe path component.
//
// Locking: one writer per ref at a time. OpenWriter, Abort and
// CleanupIngests take the ref's lock in two layers: an in-process set of
// held refs (so threads exclude each other on any driver) and
// BlobDriver::TryLock on the ingest directory, which on the filesystem
// driver is flock(2) and so excludes other processes sharing the root; the
// kernel drops it when the holder dies, which is what makes a crashed
// writer's ingest resumable. A held ref makes them fail fast with
// Unavailable ("ref X is locked"); nobody waits. Two writers of the same
// content under different refs do not contend: both commit, the second
// Move replaces identical bytes atomically (or the second finds the blob
// present and just drops its ingest).
//
// Ownership: the store owns its driver. ContentWriters and readers borrow
// the store and must not outlive it.
// Thread safety: ContentStore is safe to use from many threads. A
// ContentWriter or FileReader is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/content/blob_driver.h"
#include "lib/oci/digest.h"

namespace pier::content {

// Committed content.
struct Info {
  oci::Digest digest;
  uint64_t size = 0;
  absl::Time created;  // when it was committed (the blob file's mtime)
};

// An in-progress write.
struct IngestStatus {
  std::string ref;
  uint64_t offset = 0;            // bytes stored so far
  std::optional<uint64_t> total;  // expected size, when the writer was given one
  absl::Time started_at;
  absl::Time updated_at;  // last write
};

class ContentStore;

// Writes one ingest. Obtained from ContentStore::OpenWriter; holds the ref's
// lock until Commit, Abort, Close or destruction. Destroying an open writer
// closes it: the ingest stays and can be resumed.
class ContentWriter {
 public:
  ~ContentWriter();
  ContentWriter(const ContentWriter&) = delete;
  ContentWriter& operator=(const ContentWriter&) = delete;

  const std::string& ref() const { return ref_; }

  // Appends `data` to the ingest and to the running digest.
  // FailedPrecondition once committed, aborted, closed or after a failed
  // write (close and reopen to resume from what was stored);
  // InvalidArgument when it would exceed the expected size given to
  // OpenWriter; the driver's code otherwise.
  absl::Status Write(absl::string_view data);

  // Bytes in the ingest, including those found when it was resumed.
  uint64_t Offset() const { return hasher_.size(); }

  // The digest of the bytes so far.
  oci::Digest Digest() const;

  // Discards what was written so far; only `size` == 0 is supported
  // (InvalidArgument otherwise). FailedPrecondition when not open.
  absl::Status Truncate(uint64_t size);

  // Makes the content durable, checks it and publishes it at its digest.
  // `expected_size`/`expected_digest` (and those given to OpenWriter) must
  // match, else InvalidArgument "size mismatch: got N, expected M" or
  // "digest mismatch: got sha256:.., expected sha256:.."; on a mismatch the
  // ingest is removed and nothing becomes visible. If the content is
  // already stored, the ingest is dropped and the existing blob's Info is
  // returned. After a successful or rejected Commit the writer is finished.
  // FailedPrecondition when not open; the driver's code on I/O failure, in
  // which case the ingest is kept: Close the writer and reopen the ref to
  // retry.
  absl::StatusOr<Info> Commit(std::optional<uint64_t> expected_size = std::nullopt,
                              std::optional<oci::Digest> expected_digest = std::nullopt);

  // Removes the ingest and finishes the writer. FailedPrecondition when
  // already finished; the driver's code otherwise.
  absl::Status Abort();

  // Closes the data file and releases the ref, keeping the ingest for a
  // later OpenWriter. Idempotent; the driver's code on a failed close.
  absl::Status Close();

  // The ingest's status as this writer sees it.
  IngestStatus Status() const;

 private:
  friend class ContentStore;
  class RefLock;
  enum class State { kOpen, kFailed, kDone };

  ContentWriter(ContentStore* store, std::string ref, std::string dir,
                std::unique_ptr<RefLock> lock);
  // Drops the data file and the lock; the writer is finished.
  void Finish();
  absl::Status CheckOpen(absl::string_view op) const;

  ContentStore* store_;
  std::string ref_;
  std::string dir_;  // ingest/<hash>
  std::unique_ptr<RefLock> lock_;
  std::unique_ptr<FileWriter> data_;
  oci::Sha256 hasher_;
  std::optional<uint64_t> expected_size_;
  std::optional<oci::Digest> expected_digest_;
  absl::Time started_at_;
  absl::Time updated_at_;
  State state_ = State::kOpen;
};

class ContentStore {
 public:
  explicit ContentStore(std::unique_ptr<BlobDriver> driver);
  ~ContentStore();
  ContentStore(const ContentStore&) = delete;
  ContentStore& operator=(const ContentStore&) = delete;

  BlobDriver& driver() { return *driver_; }

  // Where committed content and ingests live (see the layout above).
  static std::string BlobPath(const oci::Digest& digest);
  static std::string IngestDir(absl::string_view ref);

  // --- Reading committed content.

  // Size and commit time of `digest`. NotFound "content sha256:... not
  // found"; the driver's code otherwise.
  absl::StatusOr<content::Info> Info(const oci::Digest& digest);

  // Streams `digest` from byte `offset`; Size() is the whole blob's size.
  // NotFound as Info; OutOfRange when `offset` is past the end.
  absl::StatusOr<std::unique_ptr<FileReader>> OpenReader(const oci::Digest& digest,
                                                         uint64_t offset = 0);

  // Up to `length` bytes of `digest` from `offset` (fewer at the end).
  // Errors as OpenReader.
  absl::StatusOr<std::string> ReadAt(const oci::Digest& digest, uint64_t offset, size_t length);

  // The whole blob. ResourceExhausted when it is larger than `max_size`;
  // otherwise errors as OpenReader.
  absl::StatusOr<std::string> ReadAll(const oci::Digest& digest, uint64_t max_size);

  // Re-hashes the stored bytes. DataLoss when they do not hash to `digest`
  // (the message names both digests); NotFound as Info.
  absl::Status Verify(const oci::Digest& digest);

  // Calls `fn` for every committed blob, in digest order, until it returns
  // non-OK (which Walk then returns). Files under blobs/sha256 that are not
  // named by a digest are skipped. The driver's code on a failed listing.
  absl::Status Walk(const std::function<absl::Status(const content::Info&)>& fn);

  // Every committed blob. Errors as Walk.
  absl::StatusOr<std::vector<content::Info>> List();

  // Removes committed content. NotFound as Info. Whether anything still
  // refers to it is the caller's business (the registry's GC).
  absl::Status Delete(const oci::Digest& digest);

  // --- Writing.

  // Opens (or resumes) the ingest named `ref`. A resumed writer's Offset()
  // is the bytes already stored and its Digest() covers them.
  // `expected_digest`/`expected_size` are checked again at Commit; the size
  // also bounds Write. InvalidArgument for an empty ref or one longer than
  // 1024 bytes, or when the stored bytes already exceed `expected_size`;
  // Unavailable "ref X is locked" while another writer (thread or process)
  // holds `ref`; the driver's code otherwise.
  absl::StatusOr<std::unique_ptr<ContentWriter>> OpenWriter(
      absl::string_view ref, std::optional<oci::Digest> expected_digest = std::nullopt,
      std::optional<uint64_t> expected_size = std::nullopt);

  // Stores `data` in one go (under a fresh ref) and returns its Info; when
  // the content is already there, returns the existing Info.
  // InvalidArgument "digest mismatch: ..." when `expected` is given and
  // differs, with nothing stored; otherwise errors as OpenWriter/Commit.
  absl::StatusOr<content::Info> Put(absl::string_view data,
                                    std::optional<oci::Digest> expected = std::nullopt);

  // --- Managing ingests.

  // The ingest for `ref`, whether or not a writer holds it. NotFound "no
  // ingest for ref X"; the driver's code otherwise.
  absl::StatusOr<IngestStatus> Status(absl::string_view ref);

  // Every ingest with a readable ref, in no particular order. The driver's
  // code on a failed listing.
  absl::StatusOr<std::vector<IngestStatus>> ListIngests();

  // Removes the ingest for `ref`. Unavailable while a writer holds it;
  // NotFound when there is none.
  absl::Status Abort(absl::string_view ref);

  // Removes every ingest not written to in `older_than` (GC of abandoned
  // uploads), skipping those a writer holds; returns how many went. The
  // driver's code on a failed listing; a failure on one ingest is logged
  // and the rest are still cleaned.
  absl::StatusOr<int> CleanupIngests(absl::Duration older_than);
  // As CleanupIngests, for ingests last written at or before `cutoff`.
  absl::StatusOr<int> CleanupIngestsBefore(absl::Time cutoff);

 private:
  friend class ContentWriter;

  // Takes the lock of ingest directory `dir` (that of `ref`; see the header
  // comment). Unavailable "ref X is locked" when held.
  absl::StatusOr<std::unique_ptr<ContentWriter::RefLock>> LockIngest(const std::string& dir,
                                                                     absl::string_view ref);
  void UnlockIngest(const std::string& dir);
  // Status of the ingest in directory `dir` (ingest/<hash>), read from the
  // driver. NotFound when it has no readable ref.
  absl::StatusOr<IngestStatus> IngestStatusAt(const std::string& dir);

  std::unique_ptr<BlobDriver> driver_;
  // std::mutex rather than absl::Mutex: Debian's prebuilt Abseil is not
  // TSan-instrumented, so TSan cannot see absl::Mutex synchronise.
  std::mutex mu_;
  // Ingest directories whose lock a writer or a cleanup in this process holds.
  absl::flat_hash_set<std::string> locked_ingests_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pier::content
