// ImageService of pier-runtime (pier.runtime.v1.ImageService) over
// image::ImageStore. Pulls and pushes always go over the OCI distribution
// HTTP API, also to a pier-registry (which serves it beside its gRPC API).
//
// Ownership: borrows the RuntimeContext. Thread safety: gRPC calls run
// concurrently; the ImageStore and ContainerManager are thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include "pier/runtime/v1/runtime.grpc.pb.h"
#include "services/runtime/server/runtime_context.h"

namespace pier::runtime {

class ImageServiceImpl final : public v1::ImageService::Service {
 public:
  explicit ImageServiceImpl(const RuntimeContext* ctx) : ctx_(ctx) {}

  grpc::Status PullImage(grpc::ServerContext* context, const v1::PullImageRequest* request,
                         grpc::ServerWriter<v1::PullImageResponse>* writer) override;
  grpc::Status ListImages(grpc::ServerContext* context, const v1::ListImagesRequest* request,
                          v1::ListImagesResponse* response) override;
  grpc::Status InspectImage(grpc::ServerContext* context, const v1::InspectImageRequest* request,
                            v1::InspectImageResponse* response) override;
  grpc::Status RemoveImage(grpc::ServerContext* context, const v1::RemoveImageRequest* request,
                           v1::RemoveImageResponse* response) override;
  grpc::Status TagImage(grpc::ServerContext* context, const v1::TagImageRequest* request,
                        v1::TagImageResponse* response) override;
  grpc::Status PushImage(grpc::ServerContext* context, const v1::PushImageRequest* request,
                         grpc::ServerWriter<v1::PushImageResponse>* writer) override;
  grpc::Status SaveImages(grpc::ServerContext* context, const v1::SaveImagesRequest* request,
                          grpc::ServerWriter<v1::SaveImagesResponse>* writer) override;
  grpc::Status LoadImages(grpc::ServerContext* context,
                          grpc::ServerReader<v1::LoadImagesRequest>* reader,
                          v1::LoadImagesResponse* response) override;
  grpc::Status ImportImage(grpc::ServerContext* context,
                           grpc::ServerReader<v1::ImportImageRequest>* reader,
                           v1::ImportImageResponse* response) override;
  grpc::Status ImageHistory(grpc::ServerContext* context, const v1::ImageHistoryRequest* request,
                            v1::ImageHistoryResponse* response) override;
  // Dangling images (or with all every image) that no container uses and
  // that match the filters (labels, before, since) are removed by id, as
  // RemoveImage with force: their names, then the blobs and snapshots no
  // remaining image needs. space_reclaimed adds the deleted blobs' sizes
  // and the removed snapshots' disk use, measured before removal.
  grpc::Status PruneImages(grpc::ServerContext* context, const v1::PruneImagesRequest* request,
                           v1::PruneImagesResponse* response) override;

 private:
  // Fills the summary of `img` (names of every record with its id).
  absl::Status Summarize(const image::Image& img, const std::vector<image::Image>& all,
                         v1::Image* out);

  // Whether `summary` passes `f`: references, labels, before, since (and
  // dangling when `with_dangling`).
  bool Matches(const v1::Image& summary, const v1::ImageFilters& f, bool with_dangling) const;

  const RuntimeContext* ctx_;
};

}  // namespace pier::runtime
