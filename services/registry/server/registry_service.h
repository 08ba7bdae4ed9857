// The gRPC front door of pier-registry (pier.registry.v1.RegistryService):
// parses requests, calls the storage engine, maps errors with
// ToGrpcStatus (the engine's statuses already carry the canonical codes the
// proto documents).
//
// Ownership: borrows the Registry, which must outlive the service.
// Thread safety: gRPC calls the handlers from many threads; the engine is
// thread-safe and the service keeps no state of its own.
#pragma once

#include "pier/registry/v1/registry.grpc.pb.h"
#include "services/registry/auth/authorizer.h"
#include "services/registry/storage/registry.h"

namespace pier::registry {

class RegistryService final : public pier::registry::v1::RegistryService::Service {
 public:
  // With an `authorizer` (not in kNone mode), callers must present a
  // verified client certificate (mTLS) or an "authorization" metadata entry
  // ("Bearer <token>" from the token endpoint, or "Basic ..." in basic
  // mode); otherwise UNAUTHENTICATED, and PERMISSION_DENIED when the
  // credentials do not cover the repository and action.
  explicit RegistryService(Registry* registry, const auth::Authorizer* authorizer = nullptr)
      : registry_(registry), authorizer_(authorizer) {}

  grpc::Status StatBlob(grpc::ServerContext*, const v1::StatBlobRequest*,
                        v1::StatBlobResponse*) override;
  grpc::Status ReadBlob(grpc::ServerContext*, const v1::ReadBlobRequest*,
                        grpc::ServerWriter<v1::ReadBlobResponse>*) override;
  grpc::Status StartUpload(grpc::ServerContext*, const v1::StartUploadRequest*,
                           v1::StartUploadResponse*) override;
  grpc::Status WriteUpload(grpc::ServerContext*, grpc::ServerReader<v1::WriteUploadRequest>*,
                           v1::WriteUploadResponse*) override;
  grpc::Status GetUploadStatus(grpc::ServerContext*, const v1::GetUploadStatusRequest*,
                               v1::GetUploadStatusResponse*) override;
  grpc::Status CommitUpload(grpc::ServerContext*, const v1::CommitUploadRequest*,
                            v1::CommitUploadResponse*) override;
  grpc::Status CancelUpload(grpc::ServerContext*, const v1::CancelUploadRequest*,
                            v1::CancelUploadResponse*) override;
  grpc::Status DeleteBlob(grpc::ServerContext*, const v1::DeleteBlobRequest*,
                          v1::DeleteBlobResponse*) override;
  grpc::Status PutManifest(grpc::ServerContext*, const v1::PutManifestRequest*,
                           v1::PutManifestResponse*) override;
  grpc::Status GetManifest(grpc::ServerContext*, const v1::GetManifestRequest*,
                           v1::GetManifestResponse*) override;
  grpc::Status StatManifest(grpc::ServerContext*, const v1::StatManifestRequest*,
                            v1::StatManifestResponse*) override;
  grpc::Status DeleteManifest(grpc::ServerContext*, const v1::DeleteManifestRequest*,
                              v1::DeleteManifestResponse*) override;
  grpc::Status ListTags(grpc::ServerContext*, const v1::ListTagsRequest*,
                        v1::ListTagsResponse*) override;
  grpc::Status DeleteTag(grpc::ServerContext*, const v1::DeleteTagRequest*,
                         v1::DeleteTagResponse*) override;
  grpc::Status ListRepositories(grpc::ServerContext*, const v1::ListRepositoriesRequest*,
                                v1::ListRepositoriesResponse*) override;
  grpc::Status ListReferrers(grpc::ServerContext*, const v1::ListReferrersRequest*,
                             v1::ListReferrersResponse*) override;
  grpc::Status GarbageCollect(grpc::ServerContext*, const v1::GarbageCollectRequest*,
                              v1::GarbageCollectResponse*) override;

 private:
  absl::Status Check(grpc::ServerContext* ctx, absl::string_view repo, auth::Action action);

  Registry* registry_;
  const auth::Authorizer* authorizer_;
};

}  // namespace pier::registry
