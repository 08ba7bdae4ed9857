// PruneImages and PruneVolumes against the real pier-runtime: dangling
// images go first, all takes every image no container uses, filters
// (labels, created before) narrow it, and the freed blobs and snapshots are
// counted; volumes: anonymous unused ones, then named ones with all.
// Needs root, overlayfs and busybox-static.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "lib/common/testing.h"
#include "pier/runtime/v1/runtime.grpc.pb.h"
#include "tests/integration/runtime_helpers.h"

namespace pier::testing {
namespace {

namespace v1 = ::pier::runtime::v1;
using ::testing::Contains;
using ::testing::IsEmpty;
using ::testing::Not;

class PruneTest : public RuntimeFixture {
 protected:
  // Imports a busybox image with `applets` (so each has a layer of its own).
  std::string Import(const std::string& reference, const std::vector<std::string>& applets,
                     const std::vector<std::string>& changes = {}) {
    absl::StatusOr<std::string> tar = BusyboxTar(dir_.Sub("rootfs-" + applets.back()), applets);
    EXPECT_TRUE(tar.ok()) << tar.status();
    absl::StatusOr<std::string> id = ImportImageTar(*images_, tar.value_or(""), reference, changes);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.value_or("");
  }

  grpc::Status Prune(const v1::PruneImagesRequest& req, v1::PruneImagesResponse* resp) {
    grpc::ClientContext c;
    return images_->PruneImages(&c, req, resp);
  }

  grpc::StatusCode InspectCode(const std::string& image) {
    grpc::ClientContext c;
    v1::InspectImageRequest req;
    req.set_image(image);
    v1::InspectImageResponse resp;
    return images_->InspectImage(&c, req, &resp).error_code();
  }

  std::string Create(const v1::ContainerSpec& spec) {
    grpc::ClientContext c;
    v1::CreateContainerRequest req;
    *req.mutable_spec() = spec;
    v1::CreateContainerResponse resp;
    grpc::Status s = containers_->CreateContainer(&c, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.id();
  }
};

TEST_F(PruneTest, DanglingThenAllKeepsImagesInUse) {
  const std::string dangling = Import("", {"sh", "a1"});
  const std::string labelled = Import("prune/labelled:1", {"sh", "b1"}, {"LABEL purpose=test"});
  const std::string used = Import("prune/used:1", {"sh", "c1"});
  const std::string ctr = Create(Spec({"true"}, "prune/used:1"));

  // Nothing was created an hour ago.
  v1::PruneImagesRequest req;
  req.set_all(true);
  req.mutable_filters()->mutable_before()->set_seconds(absl::ToUnixSeconds(absl::Now()) - 3600);
  v1::PruneImagesResponse resp;
  grpc::Status s = Prune(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(resp.deleted(), IsEmpty());
  EXPECT_EQ(resp.space_reclaimed(), 0);

  // Default: the dangling image only, with its own layer (busybox, > 1 MB).
  resp.Clear();
  s = Prune(v1::PruneImagesRequest(), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(resp.deleted(), Contains(dangling));
  EXPECT_THAT(resp.deleted(), Not(Contains(labelled)));
  EXPECT_THAT(resp.deleted(), Not(Contains(image_id_)));
  EXPECT_GE(resp.deleted_size(), 3) << "config, manifest and layer";
  EXPECT_THAT(resp.untagged(), IsEmpty());
  EXPECT_GT(resp.space_reclaimed(), 1 << 20);
  EXPECT_EQ(InspectCode(dangling), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(InspectCode(labelled), grpc::StatusCode::OK);

  // all with a label filter: only the labelled image, names untagged.
  req.Clear();
  req.set_all(true);
  req.mutable_filters()->add_labels("purpose=other");
  resp.Clear();
  ASSERT_TRUE(Prune(req, &resp).ok());
  EXPECT_THAT(resp.deleted(), IsEmpty());
  req.mutable_filters()->clear_labels();
  req.mutable_filters()->add_labels("purpose=test");
  resp.Clear();
  ASSERT_TRUE(Prune(req, &resp).ok());
  EXPECT_THAT(resp.deleted(), Contains(labelled));
  ASSERT_EQ(resp.untagged_size(), 1);
  EXPECT_TRUE(absl::EndsWith(resp.untagged(0), "prune/labelled:1")) << resp.untagged(0);
  EXPECT_EQ(InspectCode("prune/labelled:1"), grpc::StatusCode::NOT_FOUND);

  // all: every image no container uses; the created container keeps its.
  req.Clear();
  req.set_all(true);
  resp.Clear();
  ASSERT_TRUE(Prune(req, &resp).ok());
  EXPECT_THAT(resp.deleted(), Contains(image_id_));
  EXPECT_THAT(resp.deleted(), Not(Contains(used)));
  EXPECT_EQ(InspectCode("prune/used:1"), grpc::StatusCode::OK);

  // Once the container is gone, its image goes too; the store is empty.
  RemoveAllContainers(*containers_);
  resp.Clear();
  ASSERT_TRUE(Prune(req, &resp).ok());
  EXPECT_THAT(resp.deleted(), Contains(used));
  grpc::ClientContext lc;
  v1::ListImagesResponse list;
  ASSERT_TRUE(images_->ListImages(&lc, v1::ListImagesRequest(), &list).ok());
  EXPECT_EQ(list.images_size(), 0);
  (void)ctr;

  req.mutable_filters()->add_labels("=x");
  s = Prune(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
}

TEST_F(PruneTest, VolumesAnonymousThenNamedKeepsUsedOnes) {
  auto create = [&](const std::string& name) {
    grpc::ClientContext c;
    v1::CreateVolumeRequest req;
    req.set_name(name);
    v1::CreateVolumeResponse resp;
    grpc::Status s = volumes_->CreateVolume(&c, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.volume();
  };
  const v1::Volume named = create("prune-named");
  const v1::Volume anonymous = create("");
  ASSERT_TRUE(anonymous.anonymous());
  ASSERT_OK(WriteFileAtomic(anonymous.mountpoint() + "/data", std::string(256 << 10, 'x'), 0644));
  // A container using a named and an anonymous volume keeps both.
  v1::ContainerSpec spec = Spec({"true"});
  v1::Mount* m = spec.add_mounts();
  m->set_type(v1::Mount::TYPE_VOLUME);
  m->set_source("prune-used");
  m->set_target("/used");
  m = spec.add_mounts();
  m->set_type(v1::Mount::TYPE_VOLUME);
  m->set_target("/anon");
  grpc::ClientContext cc;
  v1::CreateContainerRequest creq;
  *creq.mutable_spec() = spec;
  v1::CreateContainerResponse cresp;
  ASSERT_TRUE(containers_->CreateContainer(&cc, creq, &cresp).ok());

  auto prune = [&](bool all) {
    grpc::ClientContext c;
    v1::PruneVolumesRequest req;
    req.set_all(all);
    v1::PruneVolumesResponse resp;
    grpc::Status s = volumes_->PruneVolumes(&c, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  };
  v1::PruneVolumesResponse resp = prune(false);
  EXPECT_THAT(resp.deleted(), ::testing::ElementsAre(anonymous.name()));
  EXPECT_GE(resp.space_reclaimed(), 256 << 10);
  resp = prune(true);
  EXPECT_THAT(resp.deleted(), ::testing::ElementsAre("prune-named"));

  grpc::ClientContext lc;
  v1::ListVolumesResponse list;
  ASSERT_TRUE(volumes_->ListVolumes(&lc, v1::ListVolumesRequest(), &list).ok());
  EXPECT_EQ(list.volumes_size(), 2) << "the container's two volumes stay";
  (void)named;
}

}  // namespace
}  // namespace pier::testing
