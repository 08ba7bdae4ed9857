#include "services/registry/server/registry_service.h"

#include <google/protobuf/util/time_util.h>

#include "absl/strings/str_cat.h"
#include "lib/rpc/status.h"

namespace pier::registry {
namespace {

using google::protobuf::util::TimeUtil;
using rpc::ToGrpcStatus;

constexpr int kDefaultPage = 100;
constexpr int kMaxPage = 1000;

void SetDescriptor(const BlobInfo& b, common::v1::Descriptor* d) {
  d->set_digest(b.digest.str());
  d->set_size(static_cast<int64_t>(b.size));
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Microseconds(TimeUtil::DurationToMicroseconds(d));
}

absl::StatusOr<std::string> PageStart(const std::string& token, const std::string& last) {
  if (!token.empty() && !last.empty()) {
    return absl::InvalidArgumentError("page_token and last are mutually exclusive");
  }
  return token.empty() ? last : token;
}

// Feeds `data` (which must outlive the source) to the engine in pieces.
ChunkSource FromBytes(const std::string& data) {
  auto pos = std::make_shared<size_t>(0);
  return [&data, pos](char* buf, size_t len) -> absl::StatusOr<size_t> {
    size_t n = std::min(len, data.size() - *pos);
    std::memcpy(buf, data.data() + *pos, n);
    *pos += n;
    return n;
  };
}

size_t PageSize(int32_t requested) {
  if (requested <= 0) return kDefaultPage;
  return static_cast<size_t>(std::min(requested, kMaxPage));
}

}  // namespace

absl::Status RegistryService::Check(grpc::ServerContext* ctx, absl::string_view repo,
                                    auth::Action action) {
  if (authorizer_ == nullptr || authorizer_->config().mode == auth::AuthMode::kNone) {
    return absl::OkStatus();
  }
  // A client certificate the server verified (mTLS) is trusted in full.
  if (ctx->auth_context() != nullptr && ctx->auth_context()->IsPeerAuthenticated()) {
    return absl::OkStatus();
  }
  std::optional<absl::string_view> header;
  auto it = ctx->client_metadata().find("authorization");
  if (it != ctx->client_metadata().end()) {
    header = absl::string_view(it->second.data(), it->second.size());
  }
  absl::StatusOr<auth::Identity> id = authorizer_->Authenticate(header);
  if (!id.ok()) return id.status();
  return authorizer_->Authorize(*id, repo, action);
}

#define PIER_CHECK_ACCESS(repo, action)                        \
  do {                                                         \
    absl::Status pier_access_ = Check(ctx, (repo), (action));  \
    if (!pier_access_.ok()) return ToGrpcStatus(pier_access_); \
  } while (0)

grpc::Status RegistryService::StatBlob(grpc::ServerContext* ctx, const v1::StatBlobRequest* req,
                                       v1::StatBlobResponse* resp) {
  PIER_CHECK_ACCESS(req->repository(), auth::Action::kPull);
  absl::StatusOr<BlobInfo> b = registry_->StatBlob(req->repository(), req->digest());
  if (!b.ok()) return ToGrpcStatus(b.status());
  SetDescriptor(*b, resp->mutable_blob());
  return grpc::Status::OK;
}

grpc::Status RegistryService::ReadBlob(grpc::ServerContext* ctx, const v1::ReadBlobRequest* req,
                                       grpc::ServerWriter<v1::ReadBlobResponse>* writer) {
  PIER_CHECK_ACCESS(req->repository(), auth::Action::kPull);
  if (req->offset() < 0 || req->length() < 0) {
    return ToGrpcStatus(absl::InvalidArgumentError("offset and length must not be negative"));
  }
  absl::StatusOr<std::unique_ptr<content::FileReader>> reader =
      registry_->OpenBlob(req->repository(), req->digest(), static_cast<uint64_t>(req->offset()));
  if (!reader.ok()) return ToGrpcStatus(reader.status());
  uint64_t size = (*reader)->Size();
  uint64_t offset = static_cast<uint64_t>(req->offset());
  uint64_t end = req->length() == 0 ? size : std::min<uint64_t>(size, offset + req->length());
  constexpr size_t kChunk = 1 << 20;
  std::string buf(kChunk, '\0');
  bool first = true;
  while (offset < end || first) {
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, end - offset));
    size_t got = 0;
    if (want > 0) {
      absl::StatusOr<size_t> n = (*reader)->Read(buf.data(), want);
      if (!n.ok()) return ToGrpcStatus(n.status());
      got = *n;
      if (got == 0) {
        return ToGrpcStatus(absl::DataLossError(
            absl::StrCat("blob ", req->digest(), " ended early at ", offset, " of ", size)));
      }
    }
    v1::ReadBlobResponse chunk;
    chunk.set_offset(static_cast<int64_t>(offset));
    chunk.set_data(buf.data(), got);
    if (first) chunk.set_size(static_cast<int64_t>(size));
    if (!writer->Write(chunk)) return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
    offset += got;
    first = false;
  }
  return grpc::Status::OK;
}

grpc::Status RegistryService::StartUpload(grpc::ServerContext* ctx,
                                          const v1::StartUploadRequest* req,
                                          v1::StartUploadResponse* resp) {
  PIER_CHECK_ACCESS(req->repository(), auth::Action::kPush);
  if ((!req->mount_from().empty() || !req->data().empty()) && req->digest().empty()) {
    return ToGrpcStatus(absl::InvalidArgumentError("mount_from and data need a digest"));
  }
  if (!req->mount_from().empty() && Check(ctx, req->mount_from(), auth::Action::kPull).ok()) {
    absl::StatusOr<BlobInfo> b =
        registry_->MountBlob(req->repository(), req->mount_from(), req->digest());
    if (b.ok()) {
      resp->set_committed(true);
      resp->set_mounted(true);
      SetDescriptor(*b, resp->mutable_blob());
      return grpc::Status::OK;
    }
    if (!absl::IsNotFound(b.status())) return ToGrpcStatus(b.status());
    // As the OCI spec does: a failed mount falls back to a session.
  } else if (!req->digest().empty() && req->data().empty()) {
    absl::StatusOr<BlobInfo> b = registry_->StatBlob(req->repository(), req->digest());
    if (b.ok()) {
      resp->set_committed(true);
      SetDescriptor(*b, resp->mutable_blob());
      return grpc::Status::OK;
    }
    if (!absl::IsNotFound(b.status())) return ToGrpcStatus(b.status());
  }
  absl::StatusOr<UploadInfo> up = registry_->StartUpload(req->repository());
  if (!up.ok()) return ToGrpcStatus(up.status());
  if (!req->data().empty()) {
    const std::string& data = req->data();
    absl::StatusOr<UploadInfo> w =
        registry_->AppendUpload(req->repository(), up->id, 0, FromBytes(data));
    if (!w.ok()) return ToGrpcStatus(w.status());
    absl::StatusOr<BlobInfo> b = registry_->CommitUpload(
        req->repository(), up->id, req->digest(),
        req->size() > 0 ? std::optional<uint64_t>(req->size()) : std::nullopt);
    if (!b.ok()) return ToGrpcStatus(b.status());
    resp->set_committed(true);
    SetDescriptor(*b, resp->mutable_blob());
    return grpc::Status::OK;
  }
  resp->set_upload_id(up->id);
  resp->set_offset(0);
  *resp->mutable_expires_at() = ToProto(up->started_at + absl::Hours(24));
  return grpc::Status::OK;
}

grpc::Status RegistryService::WriteUpload(grpc::ServerContext* ctx,
                                          grpc::ServerReader<v1::WriteUploadRequest>* reader,
                                          v1::WriteUploadResponse* resp) {
  v1::WriteUploadRequest msg;
  if (!reader->Read(&msg)) {
    return ToGrpcStatus(absl::InvalidArgumentError("WriteUpload needs at least one message"));
  }
  const std::string repo = msg.repository();
  const std::string id = msg.upload_id();
  PIER_CHECK_ACCESS(repo, auth::Action::kPush);
  if (repo.empty() || id.empty()) {
    return ToGrpcStatus(
        absl::InvalidArgumentError("the first WriteUpload message needs repository and upload_id"));
  }
  // Each message's offset is checked against where the upload stands.
  bool have = true;
  uint64_t offset = 0;
  while (have) {
    if ((!msg.repository().empty() && msg.repository() != repo) ||
        (!msg.upload_id().empty() && msg.upload_id() != id)) {
      return ToGrpcStatus(absl::InvalidArgumentError("repository/upload_id changed mid-stream"));
    }
    const std::string& data = msg.data();
    absl::StatusOr<UploadInfo> w =
        registry_->AppendUpload(repo, id, static_cast<uint64_t>(msg.offset()), FromBytes(data));
    if (!w.ok()) return ToGrpcStatus(w.status());
    offset = w->offset;
    have = reader->Read(&msg);
  }
  resp->set_offset(static_cast<int64_t>(offset));
  *resp->mutable_expires_at() = ToProto(absl::Now() + absl::Hours(24));
  return grpc::Status::OK;
}

grpc::Status RegistryService::GetUploadStatus(grpc::ServerContext* ctx,
                                              const v1::GetUploadStatusRequest* req,
                                              v1::GetUploadStatusResponse* resp) {
  PIER_CHECK_ACCESS(req->repository(), auth::Action::kPush);
  absl::StatusOr<UploadInfo> up = registry_->GetUpload(req->repository(), req->upload_id());
  if (!up.ok()) return ToGrpcStatus(up.status());
  resp->set_offset(static_cast<int64_t>(up->offset));
  *resp->mutable_started_at() = ToProto(up->started_at);
  *resp->mutable_expires_at() = ToProto(absl::Now() + absl::Hours(24));
  return grpc::Status::OK;
}

grpc::Status RegistryService::CommitUpload(grpc::ServerContext* ctx,
                                           const v1::CommitUploadRequest* req,
                                           v1::CommitUploadResponse* resp) {
  PIER_CHECK_ACCESS(req->repository(), auth::Action::kPush);
  if (!req->data().empty()) {
    const std::string& data = req->data();
    absl::StatusOr<UploadInfo> w =
        registry_->AppendUpload(req->repository(), req->upload_id(), std::nullopt, FromBytes(data));
    if (!w.ok()) return ToGrpcStatus(w.status());
  }
  absl::StatusOr<BlobInfo> b = registry_->CommitUpload(
      req->repository(), req->upload_id(), req->digest(),
      req->size() > 0 ? std::optional<uint64_t>(req->size()) : std::nullopt);
  if (!b.ok()) return ToGrpcStatus(b.status());
  SetDescriptor(*b, resp->mutable_blob());
  return grpc::Status::OK;
}

grpc::Status RegistryService::CancelUpload(grpc::ServerContext* ctx,
                                           const v1::CancelUploadRequest* req,
                                           v1::CancelUploadResponse*) {
  PIER_CHECK_ACCESS(req->repository(), auth::Action::kPush);
  return ToGrpcStatus(registry_->CancelUpload(req->repository(), req->upload_id()));
}

grpc::Status RegistryService::DeleteBlob(grpc::ServerContext* ctx, const v1::DeleteBlobRequest* req,
                                         v1::DeleteBlobResponse*) {
  PIER_CHECK_ACCESS(req->repository(), auth::Action::kDelete);
  return ToGrpcStatus(registry_->DeleteBlob(req->repository(), req->digest()));
}

grpc::Status RegistryService::PutManifest(grpc::ServerContext* ctx,
                                          const v1::PutManifestRequest* req,
                                          v1::PutManifestResponse* resp) {
  PIER_CHECK_ACCESS(req->repository(), auth::Action::kPush);
  std::vector<std::string> refs(req->tags().begin(), req->tags().end());
  if (refs.empty()) {
    refs.push_back(req->digest().empty() ? oci::Digest::Of(req->content()).str() : req->digest());
  } else if (!req->digest().empty()) {
    // The digest, when given, must match even if tags are set.
    oci::Digest actual = oci::Digest::Of(req->content());
    if (actual.str() != req->digest()) {
      absl::StatusOr<oci::Digest> parsed = oci::Digest::Parse(req->digest());
      if (!parsed.ok()) return ToGrpcStatus(parsed.status());
      return ToGrpcStatus(absl::DataLossError(absl::StrCat(
          "manifest digest mismatch: body is ", actual.str(), ", request says ", req->digest())));
    }
  }
  absl::StatusOr<ManifestInfo> info;
  for (const std::string& ref : refs) {
    info = registry_->PutManifest(req->repository(), ref, req->media_type(), req->content());
    if (!info.ok()) return ToGrpcStatus(info.status());
  }
  resp->set_digest(info->digest.str());
  resp->set_size(static_cast<int64_t>(info->size));
  return grpc::Status::OK;
}

grpc::Status RegistryService::GetManifest(grpc::ServerContext* ctx,
                                          const v1::GetManifestRequest* req,
                                          v1::GetManifestResponse* resp) {
  PIER_CHECK_ACCESS(req->repository(), auth::Action::kPull);
  absl::StatusOr<ManifestInfo> m = registry_->GetManifest(req->repository(), req->reference());
  if (!m.ok()) return ToGrpcStatus(m.status());
  resp->set_content(std::move(m->bytes));
  resp->set_media_type(m->media_type);
  resp->set_digest(m->digest.str());
  resp->set_size(static_cast<int64_t>(m->size));
  return grpc::Status::OK;
}

grpc::Status RegistryService::StatManifest(grpc::ServerContext* ctx,
                                           const v1::StatManifestRequest* req,
                                           v1::StatManifestResponse* resp) {
  PIER_CHECK_ACCESS(req->repository(), auth::Action::kPull);
  absl::StatusOr<ManifestInfo> m =
      registry_->GetManifest(req->repository(), req->reference(), /*with_bytes=*/false);
  if (!m.ok()) return ToGrpcStatus(m.status());
  resp->mutable_manifest()->set_media_type(m->media_type);
  resp->mutable_manifest()->set_digest(m->digest.str());
  resp->mutable_manifest()->set_size(static_cast<int64_t>(m->size));
  return grpc::Status::OK;
}

grpc::Status RegistryService::DeleteManifest(grpc::ServerContext* ctx,
                                             const v1::DeleteManifestRequest* req,
                                             v1::DeleteManifestResponse* resp) {
  PIER_CHECK_ACCESS(req->repository(), auth::Action::kDelete);
  // Report the tags that go with it.
  absl::StatusOr<std::vector<std::string>> tags = registry_->ListTags(req->repository(), 0, "");
  absl::Status s = registry_->DeleteManifest(req->repository(), req->digest());
  if (!s.ok()) return ToGrpcStatus(s);
  if (tags.ok()) {
    absl::StatusOr<std::vector<std::string>> left = registry_->ListTags(req->repository(), 0, "");
    for (const std::string& t : *tags) {
      if (!left.ok() || std::find(left->begin(), left->end(), t) == left->end()) {
        resp->add_deleted_tags(t);
      }
    }
  }
  return grpc::Status::OK;
}

grpc::Status RegistryService::ListTags(grpc::ServerContext* ctx, const v1::ListTagsRequest* req,
                                       v1::ListTagsResponse* resp) {
  PIER_CHECK_ACCESS(req->repository(), auth::Action::kPull);
  absl::StatusOr<std::string> start = PageStart(req->page_token(), req->last());
  if (!start.ok()) return ToGrpcStatus(start.status());
  bool more = false;
  absl::StatusOr<std::vector<std::string>> tags =
      registry_->ListTags(req->repository(), PageSize(req->page_size()), *start, &more);
  if (!tags.ok()) return ToGrpcStatus(tags.status());
  for (const std::string& t : *tags) {
    v1::Tag* tag = resp->add_tags();
    tag->set_name(t);
    absl::StatusOr<ManifestInfo> m = registry_->GetManifest(req->repository(), t, false);
    if (m.ok()) {
      tag->set_digest(m->digest.str());
      tag->set_media_type(m->media_type);
    }
  }
  if (more && !tags->empty()) resp->set_next_page_token(tags->back());
  return grpc::Status::OK;
}

grpc::Status RegistryService::DeleteTag(grpc::ServerContext* ctx, const v1::DeleteTagRequest* req,
                                        v1::DeleteTagResponse* resp) {
  PIER_CHECK_ACCESS(req->repository(), auth::Action::kDelete);
  absl::StatusOr<ManifestInfo> m = registry_->GetManifest(req->repository(), req->tag(), false);
  if (!m.ok()) return ToGrpcStatus(m.status());
  absl::Status s = registry_->DeleteTag(req->repository(), req->tag());
  if (!s.ok()) return ToGrpcStatus(s);
  resp->set_digest(m->digest.str());
  return grpc::Status::OK;
}

grpc::Status RegistryService::ListRepositories(grpc::ServerContext* ctx,
                                               const v1::ListRepositoriesRequest* req,
                                               v1::ListRepositoriesResponse* resp) {
  PIER_CHECK_ACCESS("", auth::Action::kCatalog);
  absl::StatusOr<std::string> start = PageStart(req->page_token(), req->last());
  if (!start.ok()) return ToGrpcStatus(start.status());
  size_t want = PageSize(req->page_size());
  std::string after = *start;
  // Filter by prefix while paging through the catalog.
  while (true) {
    bool more = false;
    absl::StatusOr<std::vector<std::string>> repos =
        registry_->ListRepositories(want, after, &more);
    if (!repos.ok()) return ToGrpcStatus(repos.status());
    for (const std::string& r : *repos) {
      if (!req->prefix().empty() && r.rfind(req->prefix(), 0) != 0) continue;
      resp->add_repositories(r);
      if (static_cast<size_t>(resp->repositories_size()) == want) break;
    }
    if (static_cast<size_t>(resp->repositories_size()) == want) {
      resp->set_next_page_token(resp->repositories(resp->repositories_size() - 1));
      break;
    }
    if (!more || repos->empty()) break;
    after = repos->back();
  }
  return grpc::Status::OK;
}

grpc::Status RegistryService::ListReferrers(grpc::ServerContext* ctx,
                                            const v1::ListReferrersRequest* req,
                                            v1::ListReferrersResponse* resp) {
  PIER_CHECK_ACCESS(req->repository(), auth::Action::kPull);
  std::vector<oci::Descriptor> all;
  if (req->artifact_types().empty()) {
    absl::StatusOr<std::vector<oci::Descriptor>> r =
        registry_->ListReferrers(req->repository(), req->digest(), "");
    if (!r.ok()) return ToGrpcStatus(r.status());
    all = std::move(*r);
  } else {
    for (const std::string& t : req->artifact_types()) {
      absl::StatusOr<std::vector<oci::Descriptor>> r =
          registry_->ListReferrers(req->repository(), req->digest(), t);
      if (!r.ok()) return ToGrpcStatus(r.status());
      all.insert(all.end(), r->begin(), r->end());
      resp->add_filters_applied("artifactType");
    }
  }
  for (const oci::Descriptor& d : all) {
    common::v1::Descriptor* out = resp->add_referrers();
    out->set_media_type(d.media_type);
    out->set_digest(d.digest.str());
    out->set_size(d.size);
    out->set_artifact_type(d.artifact_type);
    for (const auto& [k, v] : d.annotations) (*out->mutable_annotations())[k] = v;
  }
  return grpc::Status::OK;
}

grpc::Status RegistryService::GarbageCollect(grpc::ServerContext* ctx,
                                             const v1::GarbageCollectRequest* req,
                                             v1::GarbageCollectResponse* resp) {
  PIER_CHECK_ACCESS("", auth::Action::kCatalog);
  GcOptions opts;
  opts.dry_run = req->dry_run();
  opts.delete_untagged = req->delete_untagged();
  if (req->has_upload_max_age()) opts.upload_max_idle = FromProto(req->upload_max_age());
  if (req->has_min_blob_age()) opts.min_age = FromProto(req->min_blob_age());
  absl::StatusOr<GcResult> r = registry_->GarbageCollect(opts);
  if (!r.ok()) return ToGrpcStatus(r.status());
  resp->set_manifests_deleted(r->manifests_deleted);
  resp->set_blobs_deleted(r->blobs_deleted);
  resp->set_bytes_freed(r->bytes_freed);
  resp->set_uploads_deleted(r->uploads_deleted);
  return grpc::Status::OK;
}

}  // namespace pier::registry
