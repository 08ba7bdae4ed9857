#include "lib/oci/types.h"

#include "lib/common/testing.h"

namespace pier::oci {
namespace {

using ::pier::testing::StatusIs;
using ::testing::HasSubstr;

const std::string kD1 = "sha256:" + std::string(64, 'a');
const std::string kD2 = "sha256:" + std::string(64, 'b');
const std::string kD3 = "sha256:" + std::string(64, 'c');

// A manifest as another tool writes it: odd spacing, key order and an unknown
// field. Pier must keep it byte for byte.
std::string ForeignManifest() {
  return "{\n   \"schemaVersion\": 2,\n\t\"mediaType\": \"" + std::string(kDockerManifest) +
         "\",\n \"config\": {\"size\": 7023, \"digest\": \"" + kD1 + "\", \"mediaType\": \"" +
         kDockerConfig + "\"},\n \"layers\": [ {\"mediaType\": \"" + kDockerLayerGzip +
         "\", \"size\": 32654, \"digest\": \"" + kD2 + "\"},{\"mediaType\": \"" + kDockerLayerGzip +
         "\", \"size\": 16724, \"digest\": \"" + kD3 +
         "\", \"urls\": [\"https://example.org/l\"]} ], \"x-extra\": {\"keep\": true}\n}\n";
}

TEST(ManifestTest, ParseKeepsBytesAndDigest) {
  std::string bytes = ForeignManifest();
  ASSERT_OK_AND_ASSIGN(Manifest m, Manifest::Parse(bytes));
  EXPECT_EQ(m.raw, bytes);
  EXPECT_EQ(Digest::Of(m.raw), Digest::Of(bytes));
  EXPECT_EQ(m.media_type, kDockerManifest);
  EXPECT_EQ(m.config.digest.str(), kD1);
  EXPECT_EQ(m.config.size, 7023);
  ASSERT_EQ(m.layers.size(), 2u);
  EXPECT_EQ(m.layers[1].urls.size(), 1u);
  ASSERT_OK_AND_ASSIGN(auto refs, References(kDockerManifest, bytes));
  EXPECT_EQ(refs.size(), 3u);
}

TEST(ManifestTest, EmitIsDeterministicAndRoundTrips) {
  Manifest m;
  m.media_type = kOciManifest;
  m.config = Descriptor{kOciConfig, *Digest::Parse(kD1), 10};
  Descriptor layer{kOciLayerGzip, *Digest::Parse(kD2), 20};
  layer.annotations["org.opencontainers.image.title"] = "a.tar.gz";
  layer.platform = Platform{"amd64", "linux", "", {}, ""};
  m.layers.push_back(layer);
  m.annotations["b"] = "2";
  m.annotations["a"] = "1";
  m.subject = Descriptor{kOciManifest, *Digest::Parse(kD3), 30};
  std::string once = m.ToJson();
  ASSERT_OK_AND_ASSIGN(Manifest back, Manifest::Parse(once));
  EXPECT_EQ(back.ToJson(), once);
  EXPECT_EQ(back.raw, once);
  EXPECT_EQ(back.layers, m.layers);
  EXPECT_EQ(back.subject, m.subject);
  EXPECT_EQ(back.annotations, m.annotations);
  EXPECT_EQ(once.find(' '), std::string::npos);
  EXPECT_EQ(once.rfind("{\"schemaVersion\":2,\"mediaType\":", 0), 0u);
}

TEST(ManifestTest, RejectsMalformed) {
  EXPECT_THAT(Manifest::Parse("{"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed JSON")));
  EXPECT_THAT(Manifest::Parse("[]"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Manifest::Parse(R"({"schemaVersion":1,"config":{}})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("schemaVersion")));
  EXPECT_THAT(Manifest::Parse(R"({"schemaVersion":2})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("config")));
  std::string bad_digest =
      R"({"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:abc","size":1}})";
  EXPECT_THAT(Manifest::Parse(bad_digest),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("config.digest")));
  std::string neg = R"({"schemaVersion":2,"config":{"mediaType":"x","digest":")" + kD1 +
                    R"(","size":1},"layers":[{"mediaType":"x","digest":")" + kD2 +
                    R"(","size":-5}]})";
  EXPECT_THAT(Manifest::Parse(neg),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("layers[0]")));
  std::string wrong_type = R"({"schemaVersion":2,"mediaType":"text/plain","config":{}})";
  EXPECT_THAT(Manifest::Parse(wrong_type),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("text/plain")));
}

TEST(IndexTest, RoundTripAndDetect) {
  Index x;
  x.media_type = kOciIndex;
  Descriptor d{kOciManifest, *Digest::Parse(kD1), 5};
  d.platform = Platform{"arm64", "linux", "", {}, "v8"};
  x.manifests.push_back(d);
  std::string bytes = x.ToJson();
  ASSERT_OK_AND_ASSIGN(Index back, Index::Parse(bytes));
  EXPECT_EQ(back.manifests, x.manifests);
  EXPECT_EQ(back.ToJson(), bytes);
  ASSERT_OK_AND_ASSIGN(std::string mt, DetectManifestMediaType(bytes));
  EXPECT_EQ(mt, kOciIndex);
  ASSERT_OK_AND_ASSIGN(mt, DetectManifestMediaType(ForeignManifest()));
  EXPECT_EQ(mt, kDockerManifest);
  ASSERT_OK_AND_ASSIGN(mt, DetectManifestMediaType(R"({"schemaVersion":2,"config":{}})"));
  EXPECT_EQ(mt, kOciManifest);
  EXPECT_THAT(DetectManifestMediaType(R"({"schemaVersion":2})"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ImageConfigTest, ParseEditEmitKeepsUnknownFields) {
  std::string bytes = R"({"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z",
    "config":{"Env":["PATH=/bin"],"Cmd":["sh"],"ArgsEscaped":true,"ExposedPorts":{"80/tcp":{}},
    "Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":30000000000,"Retries":3}},
    "rootfs":{"type":"layers","diff_ids":[")" +
                      kD1 + R"("]},
    "history":[{"created_by":"ADD rootfs","created":"2024-01-01T00:00:00Z"},
               {"created_by":"CMD [\"sh\"]","empty_layer":true}],
    "x-vendor":{"a":1}})";
  ASSERT_OK_AND_ASSIGN(ImageConfig c, ImageConfig::Parse(bytes));
  EXPECT_EQ(c.architecture, "amd64");
  EXPECT_EQ(c.config.env, std::vector<std::string>{"PATH=/bin"});
  ASSERT_TRUE(c.config.cmd.has_value());
  EXPECT_FALSE(c.config.entrypoint.has_value());
  ASSERT_TRUE(c.config.healthcheck.has_value());
  EXPECT_EQ(c.config.healthcheck->retries, 3);
  EXPECT_EQ(c.diff_ids.size(), 1u);
  EXPECT_TRUE(c.history[1].empty_layer);

  c.config.working_dir = "/app";
  c.config.labels["k"] = "v";
  c.diff_ids.push_back(*Digest::Parse(kD2));
  std::string out = c.ToJson();
  EXPECT_THAT(out, HasSubstr(R"("x-vendor":{"a":1})"));
  EXPECT_THAT(out, HasSubstr(R"("ArgsEscaped":true)"));
  ASSERT_OK_AND_ASSIGN(ImageConfig back, ImageConfig::Parse(out));
  EXPECT_EQ(back.config, c.config);
  EXPECT_EQ(back.diff_ids, c.diff_ids);
  EXPECT_EQ(back.history, c.history);
  EXPECT_EQ(back.ToJson(), out);
}

TEST(ImageConfigTest, RejectsBadRootfs) {
  EXPECT_THAT(ImageConfig::Parse(R"({"rootfs":{"type":"layers","diff_ids":["nope"]}})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("diff_ids[0]")));
  EXPECT_THAT(ImageConfig::Parse(R"({"config":{"Env":"PATH"}})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("Env")));
}

}  // namespace
}  // namespace pier::oci
