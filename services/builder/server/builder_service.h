// The gRPC front door of pier-builder: BuilderService.Build over the sync
// API. It receives the spec (outputs checked first), the context manifest,
// asks (NeedFiles) only for content the context store (<root>/context-store)
// lacks, materialises the context in <root>/contexts/<build id>/ (removed
// after the build), runs the build (plan/builder.h), streams its events, and
// then writes the outputs: a registry push happens inside the build; OCI and
// docker archives are written to their dest on this host or streamed back
// as TarballChunk events.
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
