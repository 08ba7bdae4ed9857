#include "services/registry/storage/registry.h"

#include <deque>
#include <mutex>
#include <random>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/common/log.h"
#include "lib/common/status.h"
#include "lib/oci/reference.h"
#include "nlohmann/json.hpp"
#include "services/registry/storage/errors.h"

namespace pier::registry {
namespace {

using Json = nlohmann::json;

std::string RepoKey(absl::string_view repo) { return absl::StrCat("repo/", repo); }
std::string LinkPrefix(absl::string_view repo) { return absl::StrCat("link/", repo, "@"); }
std::string LinkKey(absl::string_view repo, const oci::Digest& d) {
  return absl::StrCat(LinkPrefix(repo), d.str());
}
std::string ManifestPrefix(absl::string_view repo) { return absl::StrCat("manifest/", repo, "@"); }
std::string ManifestKey(absl::string_view repo, const oci::Digest& d) {
  return absl::StrCat(ManifestPrefix(repo), d.str());
}
std::string TagPrefix(absl::string_view repo) { return absl::StrCat("tag/", repo, "@"); }
std::string TagKey(absl::string_view repo, absl::string_view tag) {
  return absl::StrCat(TagPrefix(repo), tag);
}
std::string ChildPrefix(absl::string_view repo, const oci::Digest& m) {
  return absl::StrCat("child/", repo, "@", m.str(), "@");
}
std::string ReferrerPrefix(absl::string_view repo, const oci::Digest& subject) {
  return absl::StrCat("referrer/", repo, "@", subject.str(), "@");
}
std::string UploadKey(absl::string_view id) { return absl::StrCat("upload/", id); }

std::string NewUploadId() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t a = rng(), b = rng();
  // RFC 4122 version 4 layout.
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", a >> 32, (a >> 16) & 0xffff, a & 0xffff,
                         b >> 48, b & 0xffffffffffffULL);
}

// Splits "<prefix><repo>@<rest>" keys.
bool SplitRepoKey(absl::string_view key, absl::string_view prefix, std::string* repo,
                  std::string* rest) {
  if (!absl::StartsWith(key, prefix)) return false;
  key.remove_prefix(prefix.size());
  size_t at = key.find('@');
  if (at == absl::string_view::npos) return false;
  *repo = std::string(key.substr(0, at));
  *rest = std::string(key.substr(at + 1));
  return true;
}

absl::Status Scan(kv::KvStore* meta, absl::string_view prefix,
                  const std::function<void(absl::string_view, absl::string_view)>& fn) {
  return meta->Scan(prefix, "", 0, [&](absl::string_view k, absl::string_view v) {
    fn(k, v);
    return true;
  });
}

bool IsDigestReference(absl::string_view reference) {
  return reference.find(':') != absl::string_view::npos;
}

}  // namespace

struct Registry::OpenUpload {
  std::mutex mu;
  std::string id;
  std::string repo;
  absl::Time started_at;
  std::unique_ptr<content::ContentWriter> writer;  // Guarded by mu; opened lazily.
  bool finished = false;                           // Guarded by mu.
};

Registry::Registry(content::ContentStore* content, kv::KvStore* meta, RegistryOptions options)
    : content_(content), meta_(meta), options_(options) {}

Registry::~Registry() {
  std::lock_guard<std::mutex> lock(uploads_mu_);
  for (auto& [id, u] : uploads_) {
    std::lock_guard<std::mutex> ul(u->mu);
    if (u->writer) (void)u->writer->Close();
  }
}

absl::Status Registry::CheckRepo(absl::string_view repo) {
  if (!oci::IsValidRepository(repo)) {
    return RegistryError(ErrorCode::kNameInvalid,
                         absl::StrCat("invalid repository name \"", repo, "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<oci::Digest> Registry::ParseDigest(absl::string_view digest) {
  absl::StatusOr<oci::Digest> d = oci::Digest::Parse(digest);
  if (!d.ok()) return RegistryError(ErrorCode::kDigestInvalid, d.status().message());
  return *d;
}

// --- Blobs.

absl::StatusOr<BlobInfo> Registry::StatBlob(absl::string_view repo, absl::string_view digest) {
  RETURN_IF_ERROR(CheckRepo(repo));
  ASSIGN_OR_RETURN(oci::Digest d, ParseDigest(digest));
  ASSIGN_OR_RETURN(std::optional<std::string> link, meta_->Find(LinkKey(repo, d)));
  auto unknown = [&] {
    return RegistryError(ErrorCode::kBlobUnknown,
                         absl::StrCat("blob ", d.str(), " unknown to repository ", repo));
  };
  if (!link) return unknown();
  absl::StatusOr<content::Info> info = content_->Info(d);
  if (absl::IsNotFound(info.status())) return unknown();
  if (!info.ok()) return info.status();
  return BlobInfo{d, info->size};
}

absl::StatusOr<std::unique_ptr<content::FileReader>> Registry::OpenBlob(absl::string_view repo,
                                                                        absl::string_view digest,
                                                                        uint64_t offset) {
  ASSIGN_OR_RETURN(BlobInfo info, StatBlob(repo, digest));
  if (offset > info.size) {
    return RegistryError(ErrorCode::kRangeInvalid,
                         absl::StrCat("offset ", offset, " is past the end of blob ",
                                      info.digest.str(), " (", info.size, " bytes)"));
  }
  return content_->OpenReader(info.digest, offset);
}

std::optional<std::string> Registry::LocalBlobPath(const oci::Digest& digest) {
  return content_->driver().LocalPath(content::ContentStore::BlobPath(digest));
}

absl::Status Registry::DeleteBlob(absl::string_view repo, absl::string_view digest) {
  ASSIGN_OR_RETURN(BlobInfo info, StatBlob(repo, digest));
  std::shared_lock<std::shared_mutex> lock(commit_mu_);
  return meta_->Delete(LinkKey(repo, info.digest));
}

absl::StatusOr<BlobInfo> Registry::MountBlob(absl::string_view repo, absl::string_view from,
                                             absl::string_view digest) {
  RETURN_IF_ERROR(CheckRepo(repo));
  std::shared_lock<std::shared_mutex> lock(commit_mu_);
  ASSIGN_OR_RETURN(BlobInfo info, StatBlob(from, digest));
  kv::Batch b;
  b.Put(RepoKey(repo), "");
  b.Put(LinkKey(repo, info.digest), std::to_string(info.size));
  RETURN_IF_ERROR(meta_->Write(b));
  return info;
}

// --- Uploads.

absl::StatusOr<UploadInfo> Registry::StartUpload(absl::string_view repo) {
  RETURN_IF_ERROR(CheckRepo(repo));
  UploadInfo info{NewUploadId(), std::string(repo), 0, absl::Now()};
  Json j = {{"repo", info.repository}, {"started", absl::ToUnixMicros(info.started_at)}};
  // A session lost with the machine is only an upload to start again.
  kv::Batch b;
  b.Put(UploadKey(info.id), j.dump());
  b.set_sync(false);
  RETURN_IF_ERROR(meta_->Write(b));
  return info;
}

absl::StatusOr<std::shared_ptr<Registry::OpenUpload>> Registry::LookupUpload(absl::string_view repo,
                                                                             absl::string_view id) {
  RETURN_IF_ERROR(CheckRepo(repo));
  auto unknown = [&] {
    return RegistryError(ErrorCode::kBlobUploadUnknown,
                         absl::StrCat("upload ", id, " unknown to repository ", repo));
  };
  {
    std::lock_guard<std::mutex> lock(uploads_mu_);
    auto it = uploads_.find(id);
    if (it != uploads_.end()) {
      if (it->second->repo != repo) return unknown();
      return it->second;
    }
  }
  if (id.empty() || id.size() > 64 || id.find('/') != absl::string_view::npos) return unknown();
  ASSIGN_OR_RETURN(std::optional<std::string> rec, meta_->Find(UploadKey(id)));
  if (!rec) return unknown();
  Json j = Json::parse(*rec, nullptr, false);
  if (!j.is_object() || !j.contains("repo") || j["repo"] != std::string(repo)) return unknown();
  auto u = std::make_shared<OpenUpload>();
  u->id = std::string(id);
  u->repo = std::string(repo);
  u->started_at = absl::FromUnixMicros(j.value("started", int64_t{0}));
  std::lock_guard<std::mutex> lock(uploads_mu_);
  if (uploads_.size() >= options_.max_cached_writers) {
    // Close idle writers; their ingests stay on disk and resume on demand.
    for (auto it = uploads_.begin(); it != uploads_.end();) {
      if (it->second.use_count() == 1) {
        std::lock_guard<std::mutex> ul(it->second->mu);
        if (it->second->writer) (void)it->second->writer->Close();
        uploads_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  auto [it, inserted] = uploads_.emplace(u->id, u);
  return it->second;
}

void Registry::DropUpload(const std::string& id) {
  std::lock_guard<std::mutex> lock(uploads_mu_);
  uploads_.erase(id);
}

namespace {

absl::Status EnsureWriter(content::ContentStore* content, Registry* self,
                          std::unique_ptr<content::ContentWriter>& writer, const std::string& id) {
  if (writer) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<content::ContentWriter>> w = content->OpenWriter(id);
  if (!w.ok()) return w.status();
  writer = std::move(*w);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<UploadInfo> Registry::GetUpload(absl::string_view repo, absl::string_view id) {
  ASSIGN_OR_RETURN(std::shared_ptr<OpenUpload> u, LookupUpload(repo, id));
  std::lock_guard<std::mutex> lock(u->mu);
  UploadInfo info{u->id, u->repo, 0, u->started_at};
  if (u->writer) {
    info.offset = u->writer->Offset();
  } else {
    absl::StatusOr<content::IngestStatus> st = content_->Status(u->id);
    if (st.ok()) {
      info.offset = st->offset;
    } else if (!absl::IsNotFound(st.status())) {
      return st.status();
    }
  }
  return info;
}

absl::StatusOr<UploadInfo> Registry::AppendUpload(absl::string_view repo, absl::string_view id,
                                                  std::optional<uint64_t> start,
                                                  const ChunkSource& source) {
  ASSIGN_OR_RETURN(std::shared_ptr<OpenUpload> u, LookupUpload(repo, id));
  std::lock_guard<std::mutex> lock(u->mu);
  if (u->finished) {
    return RegistryError(ErrorCode::kBlobUploadUnknown, absl::StrCat("upload ", id, " ended"));
  }
  RETURN_IF_ERROR(EnsureWriter(content_, this, u->writer, u->id));
  if (start && *start != u->writer->Offset()) {
    return RegistryError(ErrorCode::kUploadOffsetMismatch,
                         absl::StrCat("upload ", id, " is at offset ", u->writer->Offset(),
                                      ", but the chunk starts at ", *start));
  }
  // 256 KiB: the piece is hashed and written while still in cache.
  constexpr size_t kBuf = 256 << 10;
  std::unique_ptr<char[]> buf(new char[kBuf]);
  while (true) {
    absl::StatusOr<size_t> n = source(buf.get(), kBuf);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    absl::Status s = u->writer->Write(absl::string_view(buf.get(), *n));
    if (!s.ok()) {
      // The writer is unusable after a failed write; reopen (resume) later.
      (void)u->writer->Close();
      u->writer.reset();
      return s;
    }
  }
  return UploadInfo{u->id, u->repo, u->writer->Offset(), u->started_at};
}

absl::StatusOr<BlobInfo> Registry::CommitUpload(absl::string_view repo, absl::string_view id,
                                                absl::string_view digest,
                                                std::optional<uint64_t> expected_size) {
  ASSIGN_OR_RETURN(oci::Digest d, ParseDigest(digest));
  ASSIGN_OR_RETURN(std::shared_ptr<OpenUpload> u, LookupUpload(repo, id));
  std::lock_guard<std::mutex> lock(u->mu);
  if (u->finished) {
    return RegistryError(ErrorCode::kBlobUploadUnknown, absl::StrCat("upload ", id, " ended"));
  }
  RETURN_IF_ERROR(EnsureWriter(content_, this, u->writer, u->id));
  std::shared_lock<std::shared_mutex> commit(commit_mu_);
  absl::StatusOr<content::Info> info = u->writer->Commit(expected_size, d);
  if (!info.ok()) {
    if (absl::IsInvalidArgument(info.status())) {
      // A mismatch: the content store discarded the ingest; end the session.
      u->finished = true;
      u->writer.reset();
      (void)meta_->Delete(UploadKey(u->id));
      DropUpload(u->id);
      bool size = absl::StrContains(info.status().message(), "size");
      return RegistryError(size ? ErrorCode::kSizeInvalid : ErrorCode::kDigestMismatch,
                           absl::StrCat("upload ", id, ": ", info.status().message()));
    }
    (void)u->writer->Close();
    u->writer.reset();
    return info.status();
  }
  u->finished = true;
  u->writer.reset();
  kv::Batch b;
  b.Put(RepoKey(repo), "");
  b.Put(LinkKey(repo, d), std::to_string(info->size));
  b.Delete(UploadKey(u->id));
  absl::Status s = meta_->Write(b);
  DropUpload(u->id);
  RETURN_IF_ERROR(s);
  return BlobInfo{d, info->size};
}

absl::Status Registry::CancelUpload(absl::string_view repo, absl::string_view id) {
  ASSIGN_OR_RETURN(std::shared_ptr<OpenUpload> u, LookupUpload(repo, id));
  std::lock_guard<std::mutex> lock(u->mu);
  if (u->writer) {
    RETURN_IF_ERROR(u->writer->Abort());
    u->writer.reset();
  } else {
    absl::Status s = content_->Abort(u->id);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
  }
  u->finished = true;
  RETURN_IF_ERROR(meta_->Delete(UploadKey(u->id)));
  DropUpload(u->id);
  return absl::OkStatus();
}

// --- Manifests.

absl::StatusOr<ManifestInfo> Registry::PutManifest(absl::string_view repo,
                                                   absl::string_view reference,
                                                   absl::string_view media_type,
                                                   absl::string_view bytes) {
  RETURN_IF_ERROR(CheckRepo(repo));
  if (bytes.size() > options_.max_manifest_size) {
    return RegistryError(ErrorCode::kManifestTooLarge,
                         absl::StrCat("manifest is ", bytes.size(), " bytes, over the limit of ",
                                      options_.max_manifest_size));
  }
  std::optional<oci::Digest> by_digest;
  if (IsDigestReference(reference)) {
    ASSIGN_OR_RETURN(by_digest, ParseDigest(reference));
  } else if (!oci::IsValidTag(reference)) {
    return RegistryError(ErrorCode::kTagInvalid, absl::StrCat("invalid tag \"", reference, "\""));
  }
  absl::StatusOr<std::string> detected = oci::DetectManifestMediaType(bytes);
  if (!detected.ok()) {
    return RegistryError(ErrorCode::kManifestInvalid, detected.status().message());
  }
  std::string type = *detected;
  bool header_known = oci::IsManifestMediaType(media_type) || oci::IsIndexMediaType(media_type);
  std::optional<oci::Descriptor> subject;
  std::string artifact_type;
  std::map<std::string, std::string> annotations;
  if (oci::IsIndexMediaType(type) ||
      (header_known && oci::IsIndexMediaType(media_type) && !oci::IsManifestMediaType(type))) {
    absl::StatusOr<oci::Index> x = oci::Index::Parse(bytes);
    if (!x.ok()) return RegistryError(ErrorCode::kManifestInvalid, x.status().message());
    if (!x->media_type.empty() && header_known && x->media_type != media_type) {
      return RegistryError(
          ErrorCode::kManifestInvalid,
          absl::StrCat("Content-Type ", media_type, " does not match mediaType ", x->media_type));
    }
    if (x->media_type.empty() && header_known) type = std::string(media_type);
    subject = x->subject;
    artifact_type = x->artifact_type;
    annotations = x->annotations;
  } else {
    absl::StatusOr<oci::Manifest> m = oci::Manifest::Parse(bytes);
    if (!m.ok()) return RegistryError(ErrorCode::kManifestInvalid, m.status().message());
    if (!m->media_type.empty() && header_known && m->media_type != media_type) {
      return RegistryError(
          ErrorCode::kManifestInvalid,
          absl::StrCat("Content-Type ", media_type, " does not match mediaType ", m->media_type));
    }
    if (m->media_type.empty() && header_known) type = std::string(media_type);
    subject = m->subject;
    artifact_type = m->artifact_type.empty() ? m->config.media_type : m->artifact_type;
    annotations = m->annotations;
  }
  absl::StatusOr<std::vector<oci::Descriptor>> refs = oci::References(type, bytes);
  if (!refs.ok()) return RegistryError(ErrorCode::kManifestInvalid, refs.status().message());
  oci::Digest digest = oci::Digest::Of(bytes);
  if (by_digest && *by_digest != digest) {
    return RegistryError(ErrorCode::kDigestMismatch,
                         absl::StrCat("manifest digest mismatch: body is ", digest.str(),
                                      ", reference is ", by_digest->str()));
  }

  std::shared_lock<std::shared_mutex> commit(commit_mu_);
  for (const oci::Descriptor& d : *refs) {
    bool is_manifest =
        oci::IsManifestMediaType(d.media_type) || oci::IsIndexMediaType(d.media_type);
    std::string key = is_manifest ? ManifestKey(repo, d.digest) : LinkKey(repo, d.digest);
    ASSIGN_OR_RETURN(std::optional<std::string> found, meta_->Find(key));
    if (!found) {
      return RegistryError(ErrorCode::kManifestBlobUnknown,
                           absl::StrCat(is_manifest ? "manifest " : "blob ", d.digest.str(),
                                        " is not in repository ", repo));
    }
  }
  ASSIGN_OR_RETURN(content::Info stored, content_->Put(bytes, digest));
  kv::Batch b;
  b.Put(RepoKey(repo), "");
  b.Put(LinkKey(repo, digest), std::to_string(stored.size));
  b.Put(ManifestKey(repo, digest), Json({{"mt", type}, {"size", bytes.size()}}).dump());
  for (const oci::Descriptor& d : *refs) b.Put(ChildPrefix(repo, digest) + d.digest.str(), "");
  if (!by_digest) b.Put(TagKey(repo, reference), digest.str());
  if (subject) {
    Json desc = {{"mediaType", type}, {"digest", digest.str()}, {"size", bytes.size()}};
    if (!artifact_type.empty()) desc["artifactType"] = artifact_type;
    if (!annotations.empty()) desc["annotations"] = annotations;
    b.Put(ReferrerPrefix(repo, subject->digest) + digest.str(), desc.dump());
  }
  RETURN_IF_ERROR(meta_->Write(b));
  return ManifestInfo{digest, type, bytes.size(), ""};
}

absl::StatusOr<ManifestInfo> Registry::ResolveManifest(absl::string_view repo,
                                                       absl::string_view reference) {
  RETURN_IF_ERROR(CheckRepo(repo));
  oci::Digest digest;
  if (IsDigestReference(reference)) {
    ASSIGN_OR_RETURN(digest, ParseDigest(reference));
  } else {
    if (!oci::IsValidTag(reference)) {
      return RegistryError(ErrorCode::kTagInvalid, absl::StrCat("invalid tag \"", reference, "\""));
    }
    ASSIGN_OR_RETURN(std::optional<std::string> tagged, meta_->Find(TagKey(repo, reference)));
    if (!tagged) {
      return RegistryError(ErrorCode::kManifestUnknown,
                           absl::StrCat("manifest ", repo, ":", reference, " not found"));
    }
    ASSIGN_OR_RETURN(digest, ParseDigest(*tagged));
  }
  ASSIGN_OR_RETURN(std::optional<std::string> rec, meta_->Find(ManifestKey(repo, digest)));
  if (!rec) {
    return RegistryError(ErrorCode::kManifestUnknown,
                         absl::StrCat("manifest ", repo, "@", digest.str(), " not found"));
  }
  Json j = Json::parse(*rec, nullptr, false);
  ManifestInfo info;
  info.digest = digest;
  info.media_type = j.is_object() ? j.value("mt", "") : "";
  info.size = j.is_object() ? j.value("size", uint64_t{0}) : 0;
  return info;
}

absl::StatusOr<ManifestInfo> Registry::GetManifest(absl::string_view repo,
                                                   absl::string_view reference, bool with_bytes) {
  ASSIGN_OR_RETURN(ManifestInfo info, ResolveManifest(repo, reference));
  if (with_bytes) {
    absl::StatusOr<std::string> bytes = content_->ReadAll(info.digest, options_.max_manifest_size);
    if (absl::IsNotFound(bytes.status())) {
      return RegistryError(ErrorCode::kManifestUnknown,
                           absl::StrCat("manifest ", info.digest.str(), " content is missing"));
    }
    if (!bytes.ok()) return bytes.status();
    info.bytes = std::move(*bytes);
  }
  return info;
}

absl::Status Registry::DeleteManifest(absl::string_view repo, absl::string_view digest) {
  RETURN_IF_ERROR(CheckRepo(repo));
  ASSIGN_OR_RETURN(oci::Digest d, ParseDigest(digest));
  std::shared_lock<std::shared_mutex> commit(commit_mu_);
  ASSIGN_OR_RETURN(std::optional<std::string> rec, meta_->Find(ManifestKey(repo, d)));
  if (!rec) {
    return RegistryError(ErrorCode::kManifestUnknown,
                         absl::StrCat("manifest ", repo, "@", d.str(), " not found"));
  }
  kv::Batch b;
  b.Delete(ManifestKey(repo, d));
  b.Delete(LinkKey(repo, d));
  RETURN_IF_ERROR(Scan(meta_, ChildPrefix(repo, d),
                       [&](absl::string_view k, absl::string_view) { b.Delete(k); }));
  RETURN_IF_ERROR(Scan(meta_, TagPrefix(repo), [&](absl::string_view k, absl::string_view v) {
    if (v == d.str()) b.Delete(k);
  }));
  std::string suffix = absl::StrCat("@", d.str());
  RETURN_IF_ERROR(Scan(meta_, absl::StrCat("referrer/", repo, "@"),
                       [&](absl::string_view k, absl::string_view) {
                         if (absl::EndsWith(k, suffix)) b.Delete(k);
                       }));
  return meta_->Write(b);
}

absl::Status Registry::DeleteTag(absl::string_view repo, absl::string_view tag) {
  RETURN_IF_ERROR(CheckRepo(repo));
  if (!oci::IsValidTag(tag)) {
    return RegistryError(ErrorCode::kTagInvalid, absl::StrCat("invalid tag \"", tag, "\""));
  }
  ASSIGN_OR_RETURN(std::optional<std::string> tagged, meta_->Find(TagKey(repo, tag)));
  if (!tagged) {
    return RegistryError(ErrorCode::kManifestUnknown,
                         absl::StrCat("tag ", repo, ":", tag, " not found"));
  }
  return meta_->Delete(TagKey(repo, tag));
}

// --- Listing.

absl::StatusOr<std::vector<std::string>> Registry::ScanPage(const std::string& prefix, size_t n,
                                                            absl::string_view last,
                                                            bool* has_more) {
  std::vector<std::string> out;
  bool more = false;
  RETURN_IF_ERROR(meta_->Scan(prefix, last.empty() ? "" : prefix + std::string(last),
                              n == 0 ? 0 : n + 1, [&](absl::string_view k, absl::string_view) {
                                if (n != 0 && out.size() == n) {
                                  more = true;
                                  return false;
                                }
                                out.emplace_back(k.substr(prefix.size()));
                                return true;
                              }));
  if (has_more) *has_more = more;
  return out;
}

absl::StatusOr<std::vector<std::string>> Registry::ListTags(absl::string_view repo, size_t n,
                                                            absl::string_view last,
                                                            bool* has_more) {
  RETURN_IF_ERROR(CheckRepo(repo));
  ASSIGN_OR_RETURN(std::optional<std::string> exists, meta_->Find(RepoKey(repo)));
  if (!exists) {
    return RegistryError(ErrorCode::kNameUnknown, absl::StrCat("repository ", repo, " not found"));
  }
  return ScanPage(TagPrefix(repo), n, last, has_more);
}

absl::StatusOr<std::vector<std::string>> Registry::ListRepositories(size_t n,
                                                                    absl::string_view last,
                                                                    bool* has_more) {
  return ScanPage("repo/", n, last, has_more);
}

absl::StatusOr<std::vector<oci::Descriptor>> Registry::ListReferrers(
    absl::string_view repo, absl::string_view digest, absl::string_view artifact_type) {
  RETURN_IF_ERROR(CheckRepo(repo));
  ASSIGN_OR_RETURN(oci::Digest d, ParseDigest(digest));
  std::vector<oci::Descriptor> out;
  absl::Status parse_error;
  RETURN_IF_ERROR(Scan(meta_, ReferrerPrefix(repo, d), [&](absl::string_view, absl::string_view v) {
    Json j = Json::parse(v, nullptr, false);
    if (!j.is_object()) return;
    oci::Descriptor desc;
    desc.media_type = j.value("mediaType", "");
    absl::StatusOr<oci::Digest> dd = oci::Digest::Parse(j.value("digest", ""));
    if (!dd.ok()) return;
    desc.digest = *dd;
    desc.size = j.value("size", int64_t{0});
    desc.artifact_type = j.value("artifactType", "");
    if (j.contains("annotations") && j["annotations"].is_object()) {
      for (auto& [k, val] : j["annotations"].items()) {
        if (val.is_string()) desc.annotations[k] = val.get<std::string>();
      }
    }
    if (!artifact_type.empty() && desc.artifact_type != artifact_type) return;
    out.push_back(std::move(desc));
  }));
  return out;
}

// --- Garbage collection.

absl::StatusOr<GcResult> Registry::GarbageCollect(const GcOptions& options) {
  std::unique_lock<std::shared_mutex> commit(commit_mu_);
  GcResult result;
  const absl::Time now = absl::Now();

  // Every manifest revision, and which are tagged.
  std::map<std::string, std::set<std::string>> manifests;  // repo -> digests
  RETURN_IF_ERROR(Scan(meta_, "manifest/", [&](absl::string_view k, absl::string_view) {
    std::string repo, d;
    if (SplitRepoKey(k, "manifest/", &repo, &d)) manifests[repo].insert(d);
  }));
  std::set<std::pair<std::string, std::string>> tagged;
  RETURN_IF_ERROR(Scan(meta_, "tag/", [&](absl::string_view k, absl::string_view v) {
    std::string repo, tag;
    if (SplitRepoKey(k, "tag/", &repo, &tag)) tagged.insert({repo, std::string(v)});
  }));

  // Mark: roots, then what they reference, repository by repository.
  std::set<std::string> marked;  // blob digests
  std::set<std::pair<std::string, std::string>> live_manifests;
  for (const auto& [repo, digests] : manifests) {
    std::deque<std::string> queue;
    for (const std::string& d : digests) {
      if (!options.delete_untagged || tagged.count({repo, d})) queue.push_back(d);
    }
    while (!queue.empty()) {
      std::string d = queue.front();
      queue.pop_front();
      if (!live_manifests.insert({repo, d}).second) continue;
      marked.insert(d);
      absl::StatusOr<oci::Digest> md = oci::Digest::Parse(d);
      if (!md.ok()) continue;
      RETURN_IF_ERROR(
          Scan(meta_, ChildPrefix(repo, *md), [&](absl::string_view k, absl::string_view) {
            std::string child(k.substr(ChildPrefix(repo, *md).size()));
            marked.insert(child);
            if (digests.count(child)) queue.push_back(child);
          }));
      // Referrers of a live manifest stay alive.
      RETURN_IF_ERROR(
          Scan(meta_, ReferrerPrefix(repo, *md), [&](absl::string_view k, absl::string_view) {
            std::string referrer(k.substr(ReferrerPrefix(repo, *md).size()));
            if (digests.count(referrer)) queue.push_back(referrer);
          }));
    }
  }

  kv::Batch batch;
  // Untagged manifests that nothing live reaches.
  if (options.delete_untagged) {
    for (const auto& [repo, digests] : manifests) {
      for (const std::string& d : digests) {
        if (live_manifests.count({repo, d})) continue;
        ++result.manifests_deleted;
        absl::StatusOr<oci::Digest> md = oci::Digest::Parse(d);
        if (!md.ok()) continue;
        batch.Delete(ManifestKey(repo, *md));
        RETURN_IF_ERROR(Scan(meta_, ChildPrefix(repo, *md),
                             [&](absl::string_view k, absl::string_view) { batch.Delete(k); }));
      }
    }
  }

  // Links by blob, to remove with the blob.
  std::map<std::string, std::vector<std::string>> links;
  RETURN_IF_ERROR(Scan(meta_, "link/", [&](absl::string_view k, absl::string_view) {
    std::string repo, d;
    if (SplitRepoKey(k, "link/", &repo, &d)) links[d].emplace_back(k);
  }));

  // Sweep.
  std::vector<content::Info> doomed;
  RETURN_IF_ERROR(content_->Walk([&](const content::Info& info) {
    if (marked.count(info.digest.str())) return absl::OkStatus();
    if (now - info.created < options.min_age) return absl::OkStatus();
    doomed.push_back(info);
    return absl::OkStatus();
  }));
  for (const content::Info& info : doomed) {
    result.deleted.push_back(info.digest);
    result.bytes_freed += static_cast<int64_t>(info.size);
    ++result.blobs_deleted;
    for (const std::string& k : links[info.digest.str()]) batch.Delete(k);
  }

  // Abandoned uploads.
  absl::Duration idle = options.upload_max_idle.value_or(options_.upload_max_idle);
  std::vector<std::string> stale_uploads;
  RETURN_IF_ERROR(Scan(meta_, "upload/", [&](absl::string_view k, absl::string_view v) {
    std::string id(k.substr(7));
    {
      std::lock_guard<std::mutex> lock(uploads_mu_);
      auto it = uploads_.find(id);
      if (it != uploads_.end() && it->second.use_count() > 1) return;  // In use now.
    }
    absl::Time last = absl::InfinitePast();
    Json j = Json::parse(v, nullptr, false);
    if (j.is_object()) last = absl::FromUnixMicros(j.value("started", int64_t{0}));
    absl::StatusOr<content::IngestStatus> st = content_->Status(id);
    if (st.ok()) last = std::max(last, st->updated_at);
    if (now - last >= idle) stale_uploads.push_back(id);
  }));
  result.uploads_deleted = static_cast<int64_t>(stale_uploads.size());

  if (options.dry_run) return result;

  for (const std::string& id : stale_uploads) {
    {
      std::lock_guard<std::mutex> lock(uploads_mu_);
      auto it = uploads_.find(id);
      if (it != uploads_.end()) {
        std::lock_guard<std::mutex> ul(it->second->mu);
        if (it->second->writer) (void)it->second->writer->Close();
        it->second->finished = true;
        uploads_.erase(it);
      }
    }
    absl::Status s = content_->Abort(id);
    if (!s.ok() && !absl::IsNotFound(s)) {
      PIER_LOG(WARNING) << "gc: cannot remove upload " << id << ": " << s;
    }
    batch.Delete(UploadKey(id));
  }
  RETURN_IF_ERROR(meta_->Write(batch));
  for (const content::Info& info : doomed) {
    absl::Status s = content_->Delete(info.digest);
    if (!s.ok() && !absl::IsNotFound(s)) {
      PIER_LOG(WARNING) << "gc: cannot delete blob " << info.digest << ": " << s;
    }
  }
  // Ingests with no upload record (e.g. the record was lost in a crash).
  absl::StatusOr<int> orphans = content_->CleanupIngestsBefore(now - idle);
  if (orphans.ok()) result.uploads_deleted += *orphans;
  PIER_LOG(INFO) << "gc: deleted " << result.blobs_deleted << " blobs (" << result.bytes_freed
                 << " bytes), " << result.manifests_deleted << " manifests, "
                 << result.uploads_deleted << " uploads";
  return result;
}

}  // namespace pier::registry
