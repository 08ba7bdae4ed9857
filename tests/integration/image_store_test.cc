// lib/image against the real pier-registry over the OCI distribution API:
// an imported busybox image is pushed, removed locally and pulled back by tag
// and by digest (identical digests, identical unpacked files); an index is
// resolved to this platform; unknown tags, corrupted blobs, escaping layers
// and invalid references fail with the right codes. Needs root (unpacking
// with owners and overlay whiteouts) and busybox-static.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "lib/archive/archive_test_util.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "lib/common/testing.h"
#include "lib/content/filesystem_driver.h"
#include "lib/distribution/registry_client.h"
#include "lib/http/url.h"
#include "lib/image/store.h"
#include "lib/kv/kv_store.h"
#include "tests/integration/daemon_process.h"

namespace pier::testing {
namespace {

using ::testing::HasSubstr;

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

class ImageStoreRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) FAIL() << "required: needs root";
    if (!Exists("/bin/busybox")) FAIL() << "required: needs busybox-static";
    ASSERT_OK(registry_.Start(
        "pier-registry",
        {"--listen=127.0.0.1:0", "--http-listen=127.0.0.1:0", "--root=" + dir_.Sub("registry")},
        {"grpc", "http"}));
    host_ = registry_.Address("http");
    kv_ = kv::NewMemoryKvStore();
    content_ = std::make_unique<content::ContentStore>(
        std::make_unique<content::FilesystemDriver>(dir_.Sub("content")));
    ASSERT_OK_AND_ASSIGN(store_,
                         image::ImageStore::Open(dir_.Sub("images"), kv_.get(), content_.get()));
    const std::string rootfs = dir_.Sub("rootfs");
    ASSERT_EQ(
        std::system(absl::StrCat("mkdir -p ", rootfs, "/bin ", rootfs, "/etc && cp /bin/busybox ",
                                 rootfs, "/bin/busybox && ln -s busybox ", rootfs,
                                 "/bin/sh && echo hi > ", rootfs, "/etc/motd && tar -C ", rootfs,
                                 " -cf ", dir_.Sub("rootfs.tar"), " .")
                        .c_str()),
        0);
  }

  absl::StatusOr<image::Image> Import(absl::string_view name, absl::string_view message = "") {
    UniqueFd fd(::open(dir_.Sub("rootfs.tar").c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoStatus(errno, "open rootfs.tar");
    image::ImportOptions options;
    options.message = std::string(message);
    options.config.cmd = std::vector<std::string>{"/bin/sh"};
    return store_->Import(archive::FdSource(fd.get()), name, options);
  }

  std::string Ref(absl::string_view rest) { return absl::StrCat(host_, "/", rest); }

  std::string TopDir(const image::Image& image) {
    auto top = store_->Unpack(image);
    EXPECT_OK(top);
    if (!top.ok() || !top->has_value()) return "";
    return *store_->snapshotter().Dir(**top);
  }

  // Uploads `bytes` as a blob of `repo` with a raw POST + PUT.
  void UploadBlob(distribution::RegistryClient& client, const std::string& repo,
                  const std::string& bytes) {
    http::ClientRequest post;
    post.method = "POST";
    post.url = absl::StrCat("/v2/", repo, "/blobs/uploads/");
    ASSERT_OK_AND_ASSIGN(http::ClientResponse started, client.Do(post));
    ASSERT_EQ(started.status(), 202);
    std::string location(started.Header("Location").value_or(""));
    ASSERT_OK(started.ReadAll(1 << 16).status());
    http::ClientRequest put;
    put.method = "PUT";
    put.url = absl::StrCat(location, location.find('?') == std::string::npos ? "?" : "&",
                           "digest=", http::PercentEncode(oci::Digest::Of(bytes).str()));
    put.body = bytes;
    ASSERT_OK_AND_ASSIGN(http::ClientResponse done, client.Do(put));
    ASSERT_EQ(done.status(), 201);
    ASSERT_OK(done.ReadAll(1 << 16).status());
  }

  void PutManifest(distribution::RegistryClient& client, const std::string& repo,
                   const std::string& tag, const std::string& media_type,
                   const std::string& bytes) {
    http::ClientRequest put;
    put.method = "PUT";
    put.url = absl::StrCat("/v2/", repo, "/manifests/", tag);
    put.headers.Set("Content-Type", media_type);
    put.body = bytes;
    ASSERT_OK_AND_ASSIGN(http::ClientResponse resp, client.Do(put));
    ASSERT_EQ(resp.status(), 201) << *resp.ReadAll(1 << 16);
    ASSERT_OK(resp.ReadAll(1 << 16).status());
  }

  TempDir dir_;
  DaemonProcess registry_;
  std::string host_;
  std::unique_ptr<kv::KvStore> kv_;
  std::unique_ptr<content::ContentStore> content_;
  std::unique_ptr<image::ImageStore> store_;
  distribution::RegistryClientOptions options_;
};

TEST_F(ImageStoreRegistryTest, PushRemovePullByTagAndDigest) {
  const std::string name = Ref("test/busybox:v1");
  ASSERT_OK_AND_ASSIGN(image::Image local, Import(name));
  const std::string top_before = TopDir(local);
  ASSERT_OK_AND_ASSIGN(std::string busybox_before, ReadFile(top_before + "/bin/busybox"));

  std::vector<image::Progress::Phase> phases;
  ASSERT_OK_AND_ASSIGN(oci::Descriptor pushed,
                       store_->Push(name, "", options_,
                                    [&](const image::Progress& p) { phases.push_back(p.phase); }));
  EXPECT_EQ(pushed.digest, local.target.digest);
  EXPECT_THAT(phases, ::testing::Contains(image::Progress::Phase::kUploaded));
  EXPECT_THAT(phases, ::testing::Contains(image::Progress::Phase::kManifest));
  // A second push to another tag finds every blob in place.
  phases.clear();
  ASSERT_OK(store_
                ->Push(name, Ref("test/busybox:v2"), options_,
                       [&](const image::Progress& p) { phases.push_back(p.phase); })
                .status());
  EXPECT_THAT(phases, ::testing::Not(::testing::Contains(image::Progress::Phase::kUploaded)));

  // Gone locally: content and snapshots deleted.
  ASSERT_OK_AND_ASSIGN(image::RemoveResult removed, store_->Remove(name, false));
  EXPECT_EQ(removed.deleted.size(), 3u);
  EXPECT_EQ(removed.removed_snapshots.size(), 1u);
  EXPECT_THAT(store_->Get(name), StatusIs(absl::StatusCode::kNotFound));

  // Back by tag.
  phases.clear();
  ASSERT_OK_AND_ASSIGN(
      image::Image by_tag,
      store_->Pull(name, options_, [&](const image::Progress& p) { phases.push_back(p.phase); }));
  EXPECT_EQ(by_tag.name, name);
  EXPECT_EQ(by_tag.target.digest, local.target.digest);
  EXPECT_EQ(by_tag.id, local.id);
  EXPECT_EQ(by_tag.repo_digest, local.target.digest);
  EXPECT_THAT(phases, ::testing::Contains(image::Progress::Phase::kFetched));
  EXPECT_THAT(phases, ::testing::Contains(image::Progress::Phase::kUnpacked));
  const std::string top = TopDir(by_tag);
  EXPECT_EQ(*ReadFile(top + "/bin/busybox"), busybox_before);
  EXPECT_EQ(*ReadFile(top + "/etc/motd"), "hi\n");
  char link[64] = {};
  ASSERT_GT(::readlink((top + "/bin/sh").c_str(), link, sizeof(link) - 1), 0);
  EXPECT_STREQ(link, "busybox");

  // Pulling again fetches nothing.
  phases.clear();
  ASSERT_OK(
      store_->Pull(name, options_, [&](const image::Progress& p) { phases.push_back(p.phase); })
          .status());
  EXPECT_THAT(phases, ::testing::Not(::testing::Contains(image::Progress::Phase::kFetched)));

  // By digest.
  ASSERT_OK(store_->Remove(name, false).status());
  const std::string by_digest_ref = Ref("test/busybox@" + local.target.digest.str());
  ASSERT_OK_AND_ASSIGN(image::Image by_digest, store_->Pull(by_digest_ref, options_));
  EXPECT_EQ(by_digest.name, by_digest_ref);
  EXPECT_EQ(by_digest.target.digest, local.target.digest);
  EXPECT_EQ(by_digest.id, local.id);
  EXPECT_EQ(*ReadFile(TopDir(by_digest) + "/etc/motd"), "hi\n");
  EXPECT_EQ(store_->Get(by_digest_ref)->id, local.id);
}

TEST_F(ImageStoreRegistryTest, IndexResolvesToThisPlatform) {
  ASSERT_OK_AND_ASSIGN(image::Image ours, Import(Ref("multi/img:ours"), "ours"));
  ASSERT_OK_AND_ASSIGN(image::Image other, Import(Ref("multi/img:other"), "other"));
  ASSERT_NE(ours.id, other.id);
  ASSERT_OK(store_->Push(Ref("multi/img:ours"), "", options_).status());
  ASSERT_OK(store_->Push(Ref("multi/img:other"), "", options_).status());

  oci::Index index;
  index.media_type = oci::kOciIndex;
  oci::Descriptor a = other.target, b = ours.target;
  a.platform = oci::Platform{"s390x", "linux"};
  b.platform = oci::Platform{image::HostPlatform().architecture, "linux"};
  index.manifests = {a, b};
  ASSERT_OK_AND_ASSIGN(auto client, distribution::RegistryClient::Create(host_, options_));
  const std::string index_json = index.ToJson();
  PutManifest(*client, "multi/img", "all", oci::kOciIndex, index_json);

  ASSERT_OK(store_->Remove(Ref("multi/img:ours"), false).status());
  ASSERT_OK_AND_ASSIGN(image::Image pulled, store_->Pull(Ref("multi/img:all"), options_));
  EXPECT_EQ(pulled.id, ours.id);
  EXPECT_EQ(pulled.target.digest, ours.target.digest);
  EXPECT_EQ(pulled.repo_digest, oci::Digest::Of(index_json));

  // An index without this platform.
  index.manifests = {a};
  PutManifest(*client, "multi/img", "foreign", oci::kOciIndex, index.ToJson());
  EXPECT_THAT(store_->Pull(Ref("multi/img:foreign"), options_),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("linux/s390x")));
}

TEST_F(ImageStoreRegistryTest, BadInput) {
  // Unknown tag and repository: NotFound naming the reference.
  ASSERT_OK_AND_ASSIGN(image::Image local, Import(Ref("bad/img:v1")));
  ASSERT_OK(store_->Push(Ref("bad/img:v1"), "", options_).status());
  EXPECT_THAT(store_->Pull(Ref("bad/img:nope"), options_),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("bad/img:nope")));
  EXPECT_THAT(store_->Pull(Ref("no/such:tag"), options_),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no/such:tag")));
  // Invalid references.
  EXPECT_THAT(store_->Pull("UPPER/Case", options_), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->Pull(Ref("x:bad tag"), options_),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->Push(Ref("bad/img:v1"), "Not/Valid", options_),
              StatusIs(absl::StatusCode::kInvalidArgument));

  // A blob corrupted on the registry's disk: DataLoss, nothing recorded.
  ASSERT_OK_AND_ASSIGN(oci::Manifest manifest, store_->GetManifest(local));
  ASSERT_OK(store_->Remove(Ref("bad/img:v1"), false).status());
  const std::string blob =
      dir_.Sub("registry/content/blobs/sha256/" + std::string(manifest.layers[0].digest.hex()));
  ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFile(blob));
  bytes[bytes.size() / 2] ^= 0x55;
  ASSERT_OK(WriteFileAtomic(blob, bytes));
  EXPECT_THAT(store_->Pull(Ref("bad/img:v1"), options_),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(manifest.layers[0].digest.str())));
  EXPECT_THAT(store_->Get(Ref("bad/img:v1")), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(content_->Info(manifest.layers[0].digest), StatusIs(absl::StatusCode::kNotFound));

  // A layer that escapes its root: InvalidArgument from ApplyLayer.
  ASSERT_OK_AND_ASSIGN(auto client, distribution::RegistryClient::Create(host_, options_));
  const std::string evil = archive::testing::TarBuilder().File("../../escape", "x").Finish();
  oci::ImageConfig config;
  config.architecture = image::HostPlatform().architecture;
  config.os = "linux";
  config.diff_ids = {oci::Digest::Of(evil)};
  const std::string config_json = config.ToJson();
  oci::Manifest m;
  m.media_type = oci::kOciManifest;
  m.config = {oci::kOciConfig, oci::Digest::Of(config_json),
              static_cast<int64_t>(config_json.size())};
  m.layers = {{oci::kOciLayerTar, oci::Digest::Of(evil), static_cast<int64_t>(evil.size())}};
  UploadBlob(*client, "evil/img", evil);
  UploadBlob(*client, "evil/img", config_json);
  PutManifest(*client, "evil/img", "v1", oci::kOciManifest, m.ToJson());
  EXPECT_THAT(store_->Pull(Ref("evil/img:v1"), options_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("escape")));
  EXPECT_FALSE(Exists(dir_.Sub("escape")));
  EXPECT_THAT(store_->Get(Ref("evil/img:v1")), StatusIs(absl::StatusCode::kNotFound));

  // A config whose diff_ids lie: DataLoss at unpack.
  config.diff_ids = {oci::Digest::Of("not the layer")};
  const std::string lying = config.ToJson();
  const std::string good = archive::testing::TarBuilder().File("ok", "ok").Finish();
  m.config = {oci::kOciConfig, oci::Digest::Of(lying), static_cast<int64_t>(lying.size())};
  m.layers = {{oci::kOciLayerTar, oci::Digest::Of(good), static_cast<int64_t>(good.size())}};
  UploadBlob(*client, "lying/img", good);
  UploadBlob(*client, "lying/img", lying);
  PutManifest(*client, "lying/img", "v1", oci::kOciManifest, m.ToJson());
  EXPECT_THAT(store_->Pull(Ref("lying/img:v1"), options_), StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace pier::testing
