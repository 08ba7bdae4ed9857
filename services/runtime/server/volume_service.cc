#include "services/runtime/server/volume_service.h"

#include <ftw.h>
#include <sys/stat.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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

// Disk use of the files under `dir` (allocated blocks, not following
// links, staying on its file system); 0 when it cannot be walked.
int64_t DirBytes(const std::string& dir) {
  static thread_local int64_t total;
  total = 0;
  (void)::nftw(
      dir.c_str(),
      [](const char*, const struct stat* st, int, struct FTW*) {
        total += static_cast<int64_t>(st->st_blocks) * 512;
        return 0;
      },
      64, FTW_PHYS | FTW_MOUNT);
  return total;
}

// "key" or "key=value" against `labels`.
bool LabelsMatch(const google::protobuf::RepeatedPtrField<std::string>& conds,
                 const std::map<std::string, std::string>& labels) {
  for (const std::string& cond : conds) {
    std::vector<std::string> kv = absl::StrSplit(cond, absl::MaxSplits('=', 1));
    auto it = labels.find(kv[0]);
    if (it == labels.end() || (kv.size() == 2 && it->second != kv[1])) return false;
  }
  return true;
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

grpc::Status VolumeServiceImpl::PruneVolumes(grpc::ServerContext*,
                                             const v1::PruneVolumesRequest* req,
                                             v1::PruneVolumesResponse* resp) {
  const v1::VolumeFilters& f = req->filters();
  for (const std::string& cond : f.labels()) {
    if (cond.empty() || cond[0] == '=') {
      return rpc::ToGrpcStatus(
          absl::InvalidArgumentError(absl::StrCat("malformed label filter \"", cond, "\"")));
    }
  }
  absl::StatusOr<std::vector<VolumeInfo>> all = ctx_->volumes->List();
  if (!all.ok()) return rpc::ToGrpcStatus(all.status());
  const RuntimeContext* ctx = ctx_;
  auto in_use = [ctx](const std::string& mp) { return ctx->VolumeInUse(mp); };
  int64_t reclaimed = 0;
  for (const VolumeInfo& v : *all) {
    if (!v.anonymous && !req->all()) continue;
    if (!f.names().empty() &&
        std::none_of(f.names().begin(), f.names().end(),
                     [&](const std::string& n) { return absl::StrContains(v.name, n); })) {
      continue;
    }
    if (!LabelsMatch(f.labels(), v.labels) || in_use(v.mountpoint)) continue;
    const int64_t bytes = DirBytes(v.mountpoint);
    absl::Status s = ctx_->volumes->Remove(v.name, in_use);
    if (!s.ok()) continue;  // taken or removed meanwhile
    resp->add_deleted(v.name);
    reclaimed += bytes;
  }
  resp->set_space_reclaimed(reclaimed);
  return grpc::Status::OK;
}

}  // namespace pier::runtime
