// The gRPC front door of pier-builder: BuilderService.Build over the sync
// API. It receives the spec (outputs checked first), the context manifest,
// asks (NeedFiles) only for content the context store (<root>/context-store)
// lacks, materialises the context in <root>/contexts/<build id>/ (removed
// after the build), runs the build (plan/builder.h), streams its events, and
// then writes the outputs: a registry push happens inside the build; OCI and
// docker archives, and the flattened root filesystem of type local (a
// plain tar), are written to their dest on this host or streamed back as
// TarballChunk events. The outputs' layer compression (they must agree)
// becomes the build's (BuildParams::compression).
//
// ListCache / PruneCache / DiskUsage report and prune the layer cache
// (Builder) and the context store. A context file's last use is its ctime
// (set when stored, bumped when a build reuses it); builds hold the context
// store shared while they read it, pruning holds it exclusively.
//
// Errors: as described in builder.proto; domain statuses are mapped with
// rpc::ToGrpcStatus. Thread safety: concurrent builds are allowed.
#pragma once

#include <atomic>
#include <shared_mutex>
#include <string>

#include "pier/builder/v1/builder.grpc.pb.h"
#include "services/builder/plan/builder.h"

namespace pier::builder {

class BuilderService final : public pier::builder::v1::BuilderService::Service {
 public:
  BuilderService(Builder* builder, std::string root) : builder_(builder), root_(std::move(root)) {}

  grpc::Status Build(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::BuildResponse, v1::BuildRequest>* stream) override;
  grpc::Status ListCache(grpc::ServerContext* context, const v1::ListCacheRequest* request,
                         v1::ListCacheResponse* response) override;
  grpc::Status PruneCache(grpc::ServerContext* context, const v1::PruneCacheRequest* request,
                          v1::PruneCacheResponse* response) override;
  grpc::Status DiskUsage(grpc::ServerContext* context, const v1::DiskUsageRequest* request,
                         v1::DiskUsageResponse* response) override;

 private:
  Builder* builder_;
  std::string root_;
  std::atomic<uint64_t> next_id_{1};
  std::shared_mutex context_store_mu_;  // shared: builds reading it; exclusive: prune
};

}  // namespace pier::builder
