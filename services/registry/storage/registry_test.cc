#include "services/registry/storage/registry.h"

#include "absl/strings/str_cat.h"
#include "lib/common/testing.h"
#include "lib/content/memory_driver.h"
#include "services/registry/storage/errors.h"

namespace pier::registry {
namespace {

using ::pier::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

MATCHER_P(HasOciCode, code, "has OCI error " + std::string(ErrorCodeName(code))) {
  const absl::Status& s = ::pier::testing::GetStatus(arg);
  *result_listener << "status is " << s;
  return GetErrorCode(s) == code;
}

ChunkSource FromString(const std::string& data) {
  auto pos = std::make_shared<size_t>(0);
  return [data, pos](char* buf, size_t len) -> absl::StatusOr<size_t> {
    size_t n = std::min(len, data.size() - *pos);
    std::memcpy(buf, data.data() + *pos, n);
    *pos += n;
    return n;
  };
}

class RegistryTest : public ::testing::Test {
 protected:
  RegistryTest()
      : content_(std::make_unique<content::MemoryDriver>()),
        meta_(kv::NewMemoryKvStore()),
        reg_(std::make_unique<Registry>(&content_, meta_.get())) {}

  // Uploads `data` to `repo` in one chunk and commits it.
  oci::Digest Push(absl::string_view repo, const std::string& data) {
    auto up = reg_->StartUpload(repo);
    EXPECT_OK(up);
    EXPECT_OK(reg_->AppendUpload(repo, up->id, 0, FromString(data)));
    oci::Digest d = oci::Digest::Of(data);
    EXPECT_OK(reg_->CommitUpload(repo, up->id, d.str()));
    return d;
  }

  std::string ImageManifest(const oci::Digest& config, size_t config_size, const oci::Digest& layer,
                            size_t layer_size, std::optional<oci::Digest> subject = std::nullopt) {
    oci::Manifest m;
    m.media_type = oci::kOciManifest;
    m.config = {oci::kOciConfig, config, static_cast<int64_t>(config_size)};
    m.layers.push_back({oci::kOciLayerGzip, layer, static_cast<int64_t>(layer_size)});
    if (subject) m.subject = oci::Descriptor{oci::kOciManifest, *subject, 10};
    return m.ToJson();
  }

  content::ContentStore content_;
  std::unique_ptr<kv::KvStore> meta_;
  std::unique_ptr<Registry> reg_;
};

TEST_F(RegistryTest, ChunkedUploadCommitStatRead) {
  ASSERT_OK_AND_ASSIGN(UploadInfo up, reg_->StartUpload("library/busybox"));
  EXPECT_EQ(up.offset, 0u);
  ASSERT_OK(reg_->AppendUpload("library/busybox", up.id, 0, FromString("hello ")).status());
  ASSERT_OK_AND_ASSIGN(UploadInfo mid, reg_->GetUpload("library/busybox", up.id));
  EXPECT_EQ(mid.offset, 6u);
  EXPECT_THAT(reg_->AppendUpload("library/busybox", up.id, 3, FromString("x")),
              HasOciCode(ErrorCode::kUploadOffsetMismatch));
  ASSERT_OK(reg_->AppendUpload("library/busybox", up.id, 6, FromString("world")).status());
  oci::Digest d = oci::Digest::Of("hello world");
  ASSERT_OK_AND_ASSIGN(BlobInfo b, reg_->CommitUpload("library/busybox", up.id, d.str(), 11));
  EXPECT_EQ(b.size, 11u);
  ASSERT_OK_AND_ASSIGN(BlobInfo st, reg_->StatBlob("library/busybox", d.str()));
  EXPECT_EQ(st.size, 11u);
  ASSERT_OK_AND_ASSIGN(auto reader, reg_->OpenBlob("library/busybox", d.str(), 6));
  char buf[16];
  ASSERT_OK_AND_ASSIGN(size_t n, reader->Read(buf, sizeof(buf)));
  EXPECT_EQ(std::string(buf, n), "world");
  EXPECT_THAT(reg_->OpenBlob("library/busybox", d.str(), 12), HasOciCode(ErrorCode::kRangeInvalid));
  // Not visible elsewhere, and the session is gone.
  EXPECT_THAT(reg_->StatBlob("other", d.str()), HasOciCode(ErrorCode::kBlobUnknown));
  EXPECT_THAT(reg_->GetUpload("library/busybox", up.id), HasOciCode(ErrorCode::kBlobUploadUnknown));
}

TEST_F(RegistryTest, DigestMismatchStoresNothing) {
  ASSERT_OK_AND_ASSIGN(UploadInfo up, reg_->StartUpload("r"));
  ASSERT_OK(reg_->AppendUpload("r", up.id, std::nullopt, FromString("abc")).status());
  oci::Digest wrong = oci::Digest::Of("abd");
  EXPECT_THAT(reg_->CommitUpload("r", up.id, wrong.str()), HasOciCode(ErrorCode::kDigestMismatch));
  EXPECT_THAT(reg_->StatBlob("r", wrong.str()), HasOciCode(ErrorCode::kBlobUnknown));
  EXPECT_THAT(reg_->StatBlob("r", oci::Digest::Of("abc").str()),
              HasOciCode(ErrorCode::kBlobUnknown));
  EXPECT_THAT(content_.Info(oci::Digest::Of("abc")), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(reg_->GetUpload("r", up.id), HasOciCode(ErrorCode::kBlobUploadUnknown));
  EXPECT_THAT(reg_->CommitUpload("r", "nope", wrong.str()),
              HasOciCode(ErrorCode::kBlobUploadUnknown));
  EXPECT_THAT(reg_->CommitUpload("r", up.id, "sha256:zz"), HasOciCode(ErrorCode::kDigestInvalid));
}

TEST_F(RegistryTest, UploadResumesAfterRestart) {
  ASSERT_OK_AND_ASSIGN(UploadInfo up, reg_->StartUpload("r"));
  ASSERT_OK(reg_->AppendUpload("r", up.id, 0, FromString("part one,")).status());
  reg_ = std::make_unique<Registry>(&content_, meta_.get());
  ASSERT_OK_AND_ASSIGN(UploadInfo st, reg_->GetUpload("r", up.id));
  EXPECT_EQ(st.offset, 9u);
  ASSERT_OK(reg_->AppendUpload("r", up.id, 9, FromString("part two")).status());
  ASSERT_OK(reg_->CommitUpload("r", up.id, oci::Digest::Of("part one,part two").str()).status());
}

TEST_F(RegistryTest, CancelAndMount) {
  ASSERT_OK_AND_ASSIGN(UploadInfo up, reg_->StartUpload("r"));
  ASSERT_OK(reg_->AppendUpload("r", up.id, 0, FromString("zzz")).status());
  ASSERT_OK(reg_->CancelUpload("r", up.id));
  EXPECT_THAT(reg_->GetUpload("r", up.id), HasOciCode(ErrorCode::kBlobUploadUnknown));
  oci::Digest d = Push("a/src", "layer");
  EXPECT_THAT(reg_->MountBlob("b/dst", "c/none", d.str()), HasOciCode(ErrorCode::kBlobUnknown));
  ASSERT_OK(reg_->MountBlob("b/dst", "a/src", d.str()).status());
  EXPECT_OK(reg_->StatBlob("b/dst", d.str()));
  ASSERT_OK(reg_->DeleteBlob("b/dst", d.str()));
  EXPECT_THAT(reg_->StatBlob("b/dst", d.str()), HasOciCode(ErrorCode::kBlobUnknown));
  EXPECT_OK(reg_->StatBlob("a/src", d.str()));
}

TEST_F(RegistryTest, ManifestValidation) {
  oci::Digest config = Push("app", "{}");
  oci::Digest layer = Push("app", "layer-bytes");
  std::string good = ImageManifest(config, 2, layer, 11);
  oci::Digest missing = oci::Digest::Of("missing");
  EXPECT_THAT(
      reg_->PutManifest("app", "v1", oci::kOciManifest, ImageManifest(config, 2, missing, 7)),
      HasOciCode(ErrorCode::kManifestBlobUnknown));
  EXPECT_THAT(reg_->PutManifest("app", "v1", oci::kOciManifest, "{not json"),
              HasOciCode(ErrorCode::kManifestInvalid));
  EXPECT_THAT(reg_->PutManifest("app", "v1", oci::kDockerManifest, good),
              HasOciCode(ErrorCode::kManifestInvalid));
  EXPECT_THAT(reg_->PutManifest("app", "bad tag", oci::kOciManifest, good),
              HasOciCode(ErrorCode::kTagInvalid));
  EXPECT_THAT(reg_->PutManifest("App", "v1", oci::kOciManifest, good),
              HasOciCode(ErrorCode::kNameInvalid));
  EXPECT_THAT(reg_->PutManifest("app", missing.str(), oci::kOciManifest, good),
              HasOciCode(ErrorCode::kDigestMismatch));
  EXPECT_THAT(reg_->PutManifest("app", "v1", oci::kOciManifest, std::string(5 << 20, ' ')),
              HasOciCode(ErrorCode::kManifestTooLarge));
  EXPECT_THAT(reg_->GetManifest("app", "v1"), HasOciCode(ErrorCode::kManifestUnknown));

  ASSERT_OK_AND_ASSIGN(ManifestInfo put, reg_->PutManifest("app", "v1", oci::kOciManifest, good));
  EXPECT_EQ(put.digest, oci::Digest::Of(good));
  ASSERT_OK_AND_ASSIGN(ManifestInfo got, reg_->GetManifest("app", "v1"));
  EXPECT_EQ(got.bytes, good);
  EXPECT_EQ(got.media_type, oci::kOciManifest);
  ASSERT_OK_AND_ASSIGN(got, reg_->GetManifest("app", put.digest.str()));
  EXPECT_EQ(got.bytes, good);
  // The same manifest in another repository needs its blobs there.
  EXPECT_THAT(reg_->PutManifest("other", "v1", oci::kOciManifest, good),
              HasOciCode(ErrorCode::kManifestBlobUnknown));
}

TEST_F(RegistryTest, TagsCatalogDeletes) {
  oci::Digest config = Push("app", "{}");
  oci::Digest layer = Push("app", "L");
  std::string m = ImageManifest(config, 2, layer, 1);
  for (const char* t : {"v3", "v1", "latest", "v2"}) {
    ASSERT_OK(reg_->PutManifest("app", t, oci::kOciManifest, m).status());
  }
  bool more = false;
  ASSERT_OK_AND_ASSIGN(auto tags, reg_->ListTags("app", 2, "", &more));
  EXPECT_THAT(tags, ElementsAre("latest", "v1"));
  EXPECT_TRUE(more);
  ASSERT_OK_AND_ASSIGN(tags, reg_->ListTags("app", 2, "v1", &more));
  EXPECT_THAT(tags, ElementsAre("v2", "v3"));
  EXPECT_FALSE(more);
  EXPECT_THAT(reg_->ListTags("nope", 0, ""), HasOciCode(ErrorCode::kNameUnknown));
  Push("zeta/x", "z");
  Push("alpha", "a");
  ASSERT_OK_AND_ASSIGN(auto repos, reg_->ListRepositories(2, "", &more));
  EXPECT_THAT(repos, ElementsAre("alpha", "app"));
  ASSERT_OK_AND_ASSIGN(repos, reg_->ListRepositories(0, "app"));
  EXPECT_THAT(repos, ElementsAre("zeta/x"));

  ASSERT_OK(reg_->DeleteTag("app", "v2"));
  EXPECT_THAT(reg_->DeleteTag("app", "v2"), HasOciCode(ErrorCode::kManifestUnknown));
  ASSERT_OK(reg_->DeleteManifest("app", oci::Digest::Of(m).str()));
  ASSERT_OK_AND_ASSIGN(tags, reg_->ListTags("app", 0, ""));
  EXPECT_TRUE(tags.empty());
  EXPECT_THAT(reg_->GetManifest("app", oci::Digest::Of(m).str()),
              HasOciCode(ErrorCode::kManifestUnknown));
}

TEST_F(RegistryTest, Referrers) {
  oci::Digest config = Push("app", "{}");
  oci::Digest layer = Push("app", "L");
  std::string image = ImageManifest(config, 2, layer, 1);
  ASSERT_OK_AND_ASSIGN(ManifestInfo subject,
                       reg_->PutManifest("app", "v1", oci::kOciManifest, image));
  oci::Manifest sig;
  sig.media_type = oci::kOciManifest;
  sig.artifact_type = "application/vnd.example.signature";
  sig.config = {oci::kOciConfig, config, 2};
  sig.subject =
      oci::Descriptor{oci::kOciManifest, subject.digest, static_cast<int64_t>(image.size())};
  std::string sig_bytes = sig.ToJson();
  ASSERT_OK_AND_ASSIGN(ManifestInfo s,
                       reg_->PutManifest("app", oci::Digest::Of(sig_bytes).str(), "", sig_bytes));
  ASSERT_OK_AND_ASSIGN(auto refs, reg_->ListReferrers("app", subject.digest.str(), ""));
  ASSERT_EQ(refs.size(), 1u);
  EXPECT_EQ(refs[0].digest, s.digest);
  EXPECT_EQ(refs[0].artifact_type, "application/vnd.example.signature");
  ASSERT_OK_AND_ASSIGN(refs, reg_->ListReferrers("app", subject.digest.str(), "other/type"));
  EXPECT_TRUE(refs.empty());
}

TEST_F(RegistryTest, GarbageCollectDeletesOnlyUnreferenced) {
  oci::Digest config = Push("app", "{}");
  oci::Digest layer = Push("app", "kept-layer");
  oci::Digest orphan = Push("app", "orphan-layer");
  ASSERT_OK(reg_->PutManifest("app", "v1", oci::kOciManifest, ImageManifest(config, 2, layer, 10))
                .status());
  ASSERT_OK_AND_ASSIGN(UploadInfo stale, reg_->StartUpload("app"));
  ASSERT_OK(reg_->AppendUpload("app", stale.id, 0, FromString("half")).status());

  GcOptions young;  // Default min_age keeps everything this new.
  ASSERT_OK_AND_ASSIGN(GcResult r, reg_->GarbageCollect(young));
  EXPECT_EQ(r.blobs_deleted, 0);

  GcOptions dry{.dry_run = true, .min_age = absl::ZeroDuration()};
  ASSERT_OK_AND_ASSIGN(r, reg_->GarbageCollect(dry));
  EXPECT_THAT(r.deleted, ElementsAre(orphan));
  EXPECT_OK(reg_->StatBlob("app", orphan.str()));

  GcOptions now{.min_age = absl::ZeroDuration(), .upload_max_idle = absl::ZeroDuration()};
  ASSERT_OK_AND_ASSIGN(r, reg_->GarbageCollect(now));
  EXPECT_EQ(r.blobs_deleted, 1);
  EXPECT_EQ(r.bytes_freed, 12);
  EXPECT_GE(r.uploads_deleted, 1);
  EXPECT_THAT(reg_->StatBlob("app", orphan.str()), HasOciCode(ErrorCode::kBlobUnknown));
  EXPECT_THAT(content_.Info(orphan), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_OK(reg_->StatBlob("app", layer.str()));
  EXPECT_OK(reg_->GetManifest("app", "v1"));
  EXPECT_THAT(reg_->GetUpload("app", stale.id), HasOciCode(ErrorCode::kBlobUploadUnknown));

  // Untagged manifests go with delete_untagged, and their blobs with them.
  ASSERT_OK(reg_->DeleteTag("app", "v1"));
  GcOptions untagged{.delete_untagged = true, .min_age = absl::ZeroDuration()};
  ASSERT_OK_AND_ASSIGN(r, reg_->GarbageCollect(untagged));
  EXPECT_EQ(r.manifests_deleted, 1);
  EXPECT_EQ(r.blobs_deleted, 3);  // config, layer, manifest bytes
  EXPECT_THAT(reg_->StatBlob("app", layer.str()), HasOciCode(ErrorCode::kBlobUnknown));
}

}  // namespace
}  // namespace pier::registry
