// The gRPC front door of pier-builder: BuilderService.Build over the sync
// API. It receives the spec and the context manifest, asks for every
// regular file (NeedFiles lists them all: the incremental "only what
// changed" store of context files is not implemented yet), writes the
// context into <root>/contexts/<build id>/ (removed after the build), runs
// the build (plan/builder.h) and streams its events. ListCache, PruneCache
// and DiskUsage are not implemented yet (UNIMPLEMENTED).
//
// Errors: as described in builder.proto; domain statuses are mapped with
// rpc::ToGrpcStatus. Thread safety: concurrent builds are allowed.
#pragma once

#include <atomic>
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

 private:
  Builder* builder_;
  std::string root_;
  std::atomic<uint64_t> next_id_{1};
};

}  // namespace pier::builder
