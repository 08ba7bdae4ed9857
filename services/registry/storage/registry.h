// The registry's storage engine: the one place that gives blobs, manifests,
// tags, uploads and referrers their meaning. Both front doors (gRPC in
// server/, OCI Distribution HTTP in http/) only parse, call this, and map
// errors.
//
// Content lives in a content::ContentStore (blobs/sha256/<hex>, immutable,
// verified at commit). Metadata lives in a kv::KvStore, every change one
// atomic batch. Keys ('@' cannot occur in a repository name, so a prefix
// scan of one repository never strays into another):
//
//   repo/<repo>                              ""           catalog entry
//   link/<repo>@<digest>                     size         blob visible in repo
//   manifest/<repo>@<digest>                 {mt,size}    manifest revision in repo
//   tag/<repo>@<tag>                         digest
//   child/<repo>@<manifest>@<digest>         ""           what a manifest needs
//   referrer/<repo>@<subject>@<digest>       descriptor   OCI referrers
//   upload/<id>                              {repo,started}
//
// A blob is visible in a repository only once linked there (upload commit,
// mount, or as a manifest's bytes). Uploads are content::ContentStore
// ingests named by the upload id, so they survive a restart and resume;
// open writers are cached between requests so chunked uploads do not
// re-hash.
//
// Garbage collection marks every manifest revision (all, or only tagged
// ones and what they reach with `delete_untagged`) and what it references,
// then deletes unmarked blobs older than `min_age` together with their
// links, and abandoned uploads. It holds `commit_mu_` exclusively, and
// every operation that links content holds it shared, so a push never
// links a blob that GC is deleting.
//
// Errors carry an OCI code (errors.h): NAME_INVALID, TAG_INVALID,
// DIGEST_INVALID, BLOB_UNKNOWN, BLOB_UPLOAD_UNKNOWN, BLOB_UPLOAD_INVALID,
// RANGE_INVALID, MANIFEST_INVALID, MANIFEST_UNKNOWN, MANIFEST_BLOB_UNKNOWN,
// SIZE_INVALID; other failures keep the store's code.
//
// Ownership: borrows the content and metadata stores, which must outlive it.
// Thread safety: every method is safe from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/content/content_store.h"
#include "lib/kv/kv_store.h"
#include "lib/oci/digest.h"
#include "lib/oci/types.h"

namespace pier::registry {

struct RegistryOptions {
  uint64_t max_manifest_size = 4 << 20;
  // An upload not written to for this long is abandoned (collected by GC).
  absl::Duration upload_max_idle = absl::Hours(24);
  // Open upload writers kept between requests.
  size_t max_cached_writers = 256;
};

struct BlobInfo {
  oci::Digest digest;
  uint64_t size = 0;
};

struct ManifestInfo {
  oci::Digest digest;
  std::string media_type;
  uint64_t size = 0;
  std::string bytes;  // Empty for Stat.
};

struct UploadInfo {
  std::string id;
  std::string repository;
  uint64_t offset = 0;
  absl::Time started_at;
};

struct GcOptions {
  bool dry_run = false;
  bool delete_untagged = false;
  // Blobs younger than this are kept even when unreferenced (a push may be
  // between its blob uploads and its manifest).
  absl::Duration min_age = absl::Hours(1);
  // Uploads idle for longer are removed.
  std::optional<absl::Duration> upload_max_idle;
};

struct GcResult {
  int64_t blobs_deleted = 0;
  int64_t bytes_freed = 0;
  int64_t manifests_deleted = 0;
  int64_t uploads_deleted = 0;
  std::vector<oci::Digest> deleted;  // Blob digests (also in dry runs).
};

// Reads a request body piece by piece: returns bytes read, 0 at the end.
using ChunkSource = std::function<absl::StatusOr<size_t>(char* buf, size_t len)>;

class Registry {
 public:
  Registry(content::ContentStore* content, kv::KvStore* meta, RegistryOptions options = {});
  ~Registry();

  // --- Blobs.
  absl::StatusOr<BlobInfo> StatBlob(absl::string_view repo, absl::string_view digest);
  // Opens a linked blob from `offset`. RANGE_INVALID past the end.
  absl::StatusOr<std::unique_ptr<content::FileReader>> OpenBlob(absl::string_view repo,
                                                                absl::string_view digest,
                                                                uint64_t offset = 0);
  // The blob's file on local disk when the content driver has one (for
  // sendfile); nullopt otherwise.
  std::optional<std::string> LocalBlobPath(const oci::Digest& digest);
  // Unlinks a blob from `repo` (the content goes at the next GC).
  absl::Status DeleteBlob(absl::string_view repo, absl::string_view digest);
  // Links `digest` from repository `from` into `repo`. BLOB_UNKNOWN when
  // `from` does not have it.
  absl::StatusOr<BlobInfo> MountBlob(absl::string_view repo, absl::string_view from,
                                     absl::string_view digest);

  // --- Uploads.
  absl::StatusOr<UploadInfo> StartUpload(absl::string_view repo);
  absl::StatusOr<UploadInfo> GetUpload(absl::string_view repo, absl::string_view id);
  // Appends everything `source` yields. With `start`, the upload must be at
  // exactly that offset (RANGE_INVALID otherwise, nothing written). On a
  // source error the bytes received so far stay, and the upload can resume.
  absl::StatusOr<UploadInfo> AppendUpload(absl::string_view repo, absl::string_view id,
                                          std::optional<uint64_t> start, const ChunkSource& source);
  // Verifies and publishes the upload as `digest`, links it into `repo` and
  // ends the session. DIGEST_INVALID on mismatch (the upload is discarded).
  absl::StatusOr<BlobInfo> CommitUpload(absl::string_view repo, absl::string_view id,
                                        absl::string_view digest,
                                        std::optional<uint64_t> expected_size = std::nullopt);
  absl::Status CancelUpload(absl::string_view repo, absl::string_view id);

  // --- Manifests.
  // Stores `bytes` under `reference` (a tag, or the manifest's digest).
  // Validates: size bound, JSON, media type (the body's mediaType must agree
  // with `media_type` when both are given), digest reference matches the
  // body, every referenced blob/manifest linked in `repo`.
  absl::StatusOr<ManifestInfo> PutManifest(absl::string_view repo, absl::string_view reference,
                                           absl::string_view media_type, absl::string_view bytes);
  // `reference` is a tag or a digest. `with_bytes` false gives a Stat.
  absl::StatusOr<ManifestInfo> GetManifest(absl::string_view repo, absl::string_view reference,
                                           bool with_bytes = true);
  // Deletes the revision `digest` and every tag that points to it.
  absl::Status DeleteManifest(absl::string_view repo, absl::string_view digest);
  absl::Status DeleteTag(absl::string_view repo, absl::string_view tag);

  // --- Listing. Pagination: at most `n` (0 = all) entries after `last`.
  // `has_more` (when not null) tells whether entries remain.
  absl::StatusOr<std::vector<std::string>> ListTags(absl::string_view repo, size_t n,
                                                    absl::string_view last,
                                                    bool* has_more = nullptr);
  absl::StatusOr<std::vector<std::string>> ListRepositories(size_t n, absl::string_view last,
                                                            bool* has_more = nullptr);
  // Manifests in `repo` whose subject is `digest`, optionally filtered.
  absl::StatusOr<std::vector<oci::Descriptor>> ListReferrers(absl::string_view repo,
                                                             absl::string_view digest,
                                                             absl::string_view artifact_type);

  absl::StatusOr<GcResult> GarbageCollect(const GcOptions& options);

 private:
  struct OpenUpload;

  absl::StatusOr<oci::Digest> ParseDigest(absl::string_view digest);
  absl::Status CheckRepo(absl::string_view repo);
  absl::StatusOr<std::shared_ptr<OpenUpload>> LookupUpload(absl::string_view repo,
                                                           absl::string_view id);
  void DropUpload(const std::string& id);
  absl::StatusOr<ManifestInfo> ResolveManifest(absl::string_view repo, absl::string_view reference);

  // Up to `n` (0 = all) keys under `prefix` after `last`, without the prefix.
  absl::StatusOr<std::vector<std::string>> ScanPage(const std::string& prefix, size_t n,
                                                    absl::string_view last, bool* has_more);

  content::ContentStore* content_;
  kv::KvStore* meta_;
  RegistryOptions options_;
  // Shared by everything that links content; exclusive for GC.
  std::shared_mutex commit_mu_;
  // std::mutex rather than absl::Mutex: Debian's Abseil is not built for
  // TSan, which then cannot see absl::Mutex's happens-before edges.
  std::mutex uploads_mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<OpenUpload>> uploads_
      ABSL_GUARDED_BY(uploads_mu_);
};

}  // namespace pier::registry
