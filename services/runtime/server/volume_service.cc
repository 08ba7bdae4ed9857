#include "services/runtime/server/volume_service.h"

#include "absl/strings/str_cat.h"
#include "lib/rpc/status.h"

namespace pier::runtime {
namespace {

void ToProto(const RuntimeContext* ctx, const VolumeInfo& v, v1::Volume* out) {
  out->set_name(v.name);
  out->set_driver("local");
  out->set_mountpoint(v.mountpoint);
  ToTimestamp(v.created_at, out->mutable_created_at());
  for (const auto& [k, val] : v.labels) (*out->mutable_labels())[k] = val;
  out->set_anonymous(v.anonymous);
  out->set_ref_count(ctx->VolumeInUse(v.mountpoint) ? 1 : 0);
}

}  // namespace

grpc::Status VolumeServiceImpl::CreateVolume(grpc::ServerContext*,
                                             const v1::CreateVolumeRequest* req,
                                             v1::CreateVolumeResponse* resp) {
  if (!req->driver().empty() && req->driver() != "local") {
    return rpc::ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("volume driver \"", req->driver(), "\" is not available (only local)")));
  }
  std::map<std::string, std::string> labels(req->labels().begin(), req->labels().end());
  absl::StatusOr<VolumeInfo> v = req->name().empty() ? ctx_->volumes->CreateAnonymous()
                                                     : ctx_->volumes->Create(req->name(), labels);
  if (!v.ok()) return rpc::ToGrpcStatus(v.status());
  ToProto(ctx_, *v, resp->mutable_volume());
  return grpc::Status::OK;
}

grpc::Status VolumeServiceImpl::ListVolumes(grpc::ServerContext*, const v1::ListVolumesRequest* req,
                                            v1::ListVolumesResponse* resp) {
  absl::StatusOr<std::vector<VolumeInfo>> all = ctx_->volumes->List();
  if (!all.ok()) return rpc::ToGrpcStatus(all.status());
  for (const VolumeInfo& v : *all) {
    if (req->filters().has_dangling() &&
        req->filters().dangling() == ctx_->VolumeInUse(v.mountpoint)) {
      continue;
    }
    ToProto(ctx_, v, resp->add_volumes());
  }
  return grpc::Status::OK;
}

grpc::Status VolumeServiceImpl::InspectVolume(grpc::ServerContext*,
                                              const v1::InspectVolumeRequest* req,
                                              v1::InspectVolumeResponse* resp) {
  absl::StatusOr<VolumeInfo> v = ctx_->volumes->Get(req->name());
  if (!v.ok()) return rpc::ToGrpcStatus(v.status());
  ToProto(ctx_, *v, resp->mutable_volume());
  return grpc::Status::OK;
}

grpc::Status VolumeServiceImpl::RemoveVolume(grpc::ServerContext*,
                                             const v1::RemoveVolumeRequest* req,
                                             v1::RemoveVolumeResponse*) {
  const RuntimeContext* ctx = ctx_;
  return rpc::ToGrpcStatus(ctx_->volumes->Remove(
      req->name(), [ctx](const std::string& mp) { return ctx->VolumeInUse(mp); }));
}

}  // namespace pier::runtime
