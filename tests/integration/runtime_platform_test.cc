// Pulling one platform of a multi-platform image: a pier-registry started
// here holds two single-layer images whose configs say linux/amd64 and
// linux/arm64/v8, and an OCI index and a Docker manifest list over them;
// pier-runtime pulls each platform (variant defaults, the node's by
// default, NOT_FOUND for a platform the index lacks) and refuses to create
// a container from an image for another platform unless asked for it.
// Needs root, overlayfs and busybox-static (for the fixture).
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/archive/layer_writer.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "lib/common/testing.h"
#include "lib/http/client.h"
#include "lib/image/store.h"
#include "lib/oci/types.h"
#include "pier/runtime/v1/runtime.grpc.pb.h"
#include "tests/integration/daemon_process.h"
#include "tests/integration/runtime_helpers.h"

namespace pier::testing {
namespace {

namespace v1 = ::pier::runtime::v1;

class PlatformTest : public RuntimeFixture {
 protected:
  void SetUp() override {
    RuntimeFixture::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_OK(registry_.Start(
        "pier-registry",
        {"--listen=127.0.0.1:0", "--http-listen=127.0.0.1:0", "--root=" + dir_.Sub("registry")},
        {"grpc", "http"}));
    reg_ = registry_.Address("http");
    ASSERT_OK_AND_ASSIGN(client_, http::Client::Create());
  }

  // Sends `body` to the registry; the status code (0 when the call failed).
  int Do(const std::string& method, const std::string& path, const std::string& body,
         http::Headers headers = {}) {
    http::ClientRequest req;
    req.method = method;
    req.url = "http://" + reg_ + path;
    req.headers = std::move(headers);
    req.body = body;
    absl::StatusOr<http::ClientResponse> resp = client_->Do(req);
    if (!resp.ok()) {
      ADD_FAILURE() << method << " " << path << ": " << resp.status();
      return 0;
    }
    (void)resp->ReadAll(1 << 20);
    return resp->status();
  }

  oci::Descriptor PushBlob(const std::string& media_type, const std::string& data) {
    oci::Descriptor d{media_type, oci::Digest::Of(data), static_cast<int64_t>(data.size())};
    EXPECT_EQ(
        Do("POST", absl::StrCat("/v2/multi/app/blobs/uploads/?digest=", d.digest.str()), data),
        201);
    return d;
  }

  // Pushes a one-layer image (a file naming the platform) whose config
  // says linux/<architecture>[/<variant>]; its manifest's descriptor.
  oci::Descriptor PushImage(const std::string& architecture, const std::string& variant) {
    const std::string dir = dir_.Sub("layer-" + architecture);
    EXPECT_OK(MakeDirs(dir + "/etc"));
    EXPECT_OK(WriteFileAtomic(dir + "/etc/platform", architecture + "\n", 0644));
    std::string layer;
    absl::StatusOr<archive::LayerInfo> info =
        archive::CreateLayerFromDir(dir, archive::StringSink(&layer));
    EXPECT_TRUE(info.ok()) << info.status();
    oci::ImageConfig config;
    config.os = "linux";
    config.architecture = architecture;
    config.variant = variant;
    config.created = "2024-01-02T03:04:05Z";
    config.config.cmd = std::vector<std::string>{"/bin/sh"};
    config.diff_ids.push_back(info->diff_id);
    oci::Manifest m;
    m.media_type = oci::kOciManifest;
    m.config = PushBlob(oci::kOciConfig, config.ToJson());
    m.layers.push_back(PushBlob(oci::kOciLayerGzip, layer));
    const std::string bytes = m.ToJson();
    oci::Descriptor d{oci::kOciManifest, oci::Digest::Of(bytes),
                      static_cast<int64_t>(bytes.size())};
    EXPECT_EQ(Do("PUT", "/v2/multi/app/manifests/" + architecture, bytes,
                 {{"Content-Type", oci::kOciManifest}}),
              201);
    d.platform = oci::Platform{.architecture = architecture, .os = "linux"};
    return d;
  }

  // Pulls `tag` for `platform` ("" for none); the image, or the error.
  grpc::Status Pull(const std::string& tag, const std::string& os, const std::string& arch,
                    const std::string& variant, v1::Image* image) {
    grpc::ClientContext c;
    v1::PullImageRequest req;
    req.set_reference(reg_ + "/multi/app:" + tag);
    if (!os.empty() || !arch.empty()) {
      req.mutable_platform()->set_os(os);
      req.mutable_platform()->set_architecture(arch);
      req.mutable_platform()->set_variant(variant);
    }
    auto reader = images_->PullImage(&c, req);
    v1::PullImageResponse resp;
    while (reader->Read(&resp)) {
      if (resp.has_image()) *image = resp.image();
    }
    return reader->Finish();
  }

  std::string ConfigOf(const std::string& image) {
    grpc::ClientContext c;
    v1::InspectImageRequest req;
    req.set_image(image);
    v1::InspectImageResponse resp;
    grpc::Status s = images_->InspectImage(&c, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.config_content();
  }

  grpc::Status CreateFrom(const std::string& image, const std::string& arch) {
    grpc::ClientContext c;
    v1::CreateContainerRequest req;
    *req.mutable_spec() = Spec({"true"}, image);
    if (!arch.empty()) {
      req.mutable_spec()->mutable_platform()->set_os("linux");
      req.mutable_spec()->mutable_platform()->set_architecture(arch);
    }
    v1::CreateContainerResponse resp;
    return containers_->CreateContainer(&c, req, &resp);
  }

  DaemonProcess registry_;
  std::string reg_;
  std::unique_ptr<http::Client> client_;
};

TEST_F(PlatformTest, PullsThePlatformAskedForFromAnIndex) {
  oci::Index index;
  index.media_type = oci::kOciIndex;
  index.manifests.push_back(PushImage("amd64", ""));
  index.manifests.push_back(PushImage("arm64", "v8"));  // listed without its variant
  const std::string oci_bytes = index.ToJson();
  ASSERT_EQ(
      Do("PUT", "/v2/multi/app/manifests/latest", oci_bytes, {{"Content-Type", oci::kOciIndex}}),
      201);
  index.media_type = oci::kDockerManifestList;
  const std::string list_bytes = index.ToJson();
  ASSERT_EQ(Do("PUT", "/v2/multi/app/manifests/list", list_bytes,
               {{"Content-Type", oci::kDockerManifestList}}),
            201);

  v1::Image arm;
  grpc::Status s = Pull("latest", "linux", "arm64", "", &arm);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(arm.platform().architecture(), "arm64");
  EXPECT_EQ(arm.platform().variant(), "v8");
  EXPECT_THAT(ConfigOf(arm.id()), ::testing::HasSubstr("\"architecture\":\"arm64\""));
  EXPECT_THAT(arm.repo_tags(), ::testing::Contains(::testing::EndsWith("/multi/app:latest")));
  {
    grpc::ClientContext c;
    v1::ListImagesResponse list;
    ASSERT_TRUE(images_->ListImages(&c, v1::ListImagesRequest(), &list).ok());
    bool listed = false;
    for (const v1::Image& i : list.images()) listed = listed || i.id() == arm.id();
    EXPECT_TRUE(listed);
  }
  // The Docker manifest list, with the variant spelled out: the same image.
  v1::Image arm_again;
  s = Pull("list", "linux", "arm64", "v8", &arm_again);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(arm_again.id(), arm.id());

  v1::Image amd;
  s = Pull("latest", "linux", "amd64", "", &amd);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(amd.platform().architecture(), "amd64");
  EXPECT_NE(amd.id(), arm.id());
  EXPECT_THAT(ConfigOf(amd.id()), ::testing::HasSubstr("\"architecture\":\"amd64\""));

  // No platform: the node's.
  const oci::Platform node = image::HostPlatform();
  v1::Image mine;
  s = Pull("latest", "", "", "", &mine);
  if (node.architecture == "amd64" || node.architecture == "arm64") {
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(mine.id(), node.architecture == "amd64" ? amd.id() : arm.id());
  } else {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
  }

  v1::Image none;
  s = Pull("latest", "linux", "s390x", "", &none);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("linux/s390x"));
  s = Pull("latest", "linux", "arm 64", "", &none);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();

  // A container from the image of the other platform: refused, naming the
  // image and both platforms, unless that platform is asked for.
  const bool node_is_amd = node.architecture == "amd64";
  const v1::Image& foreign = node_is_amd ? arm : amd;
  const std::string foreign_arch = node_is_amd ? "arm64" : "amd64";
  s = CreateFrom(foreign.id(), "");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr(foreign.id()));
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("linux/" + foreign_arch));
  EXPECT_THAT(s.error_message(),
              ::testing::HasSubstr(absl::StrCat("node is ", node.os, "/", node.architecture)));
  s = CreateFrom(foreign.id(), foreign_arch);
  EXPECT_TRUE(s.ok()) << s.error_message();
  s = CreateFrom(foreign.id(), node.architecture);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("requested"));
  // The node's own image needs no platform.
  s = CreateFrom(kFixtureImage, "");
  EXPECT_TRUE(s.ok()) << s.error_message();
}

}  // namespace
}  // namespace pier::testing
