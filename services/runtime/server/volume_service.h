// pier.runtime.v1.VolumeService over the runtime's VolumeStore.
// Thread safety: called from many gRPC threads; the store is thread-safe.
#pragma once

#include "pier/runtime/v1/runtime.grpc.pb.h"
#include "services/runtime/server/runtime_context.h"

namespace pier::runtime {

namespace v1 = ::pier::runtime::v1;

class VolumeServiceImpl final : public v1::VolumeService::Service {
 public:
  explicit VolumeServiceImpl(const RuntimeContext* ctx) : ctx_(ctx) {}

  grpc::Status CreateVolume(grpc::ServerContext*, const v1::CreateVolumeRequest*,
                            v1::CreateVolumeResponse*) override;
  grpc::Status ListVolumes(grpc::ServerContext*, const v1::ListVolumesRequest*,
                           v1::ListVolumesResponse*) override;
  grpc::Status InspectVolume(grpc::ServerContext*, const v1::InspectVolumeRequest*,
                             v1::InspectVolumeResponse*) override;
  grpc::Status RemoveVolume(grpc::ServerContext*, const v1::RemoveVolumeRequest*,
                            v1::RemoveVolumeResponse*) override;
  // Removes the volumes no container uses (container records count, running
  // or not): anonymous ones, or with all named ones too, matching the
  // filters' names (substrings) and labels. space_reclaimed is their data's
  // disk use (allocated blocks) measured before removal.
  grpc::Status PruneVolumes(grpc::ServerContext*, const v1::PruneVolumesRequest*,
                            v1::PruneVolumesResponse*) override;

 private:
  const RuntimeContext* ctx_;
};

}  // namespace pier::runtime
