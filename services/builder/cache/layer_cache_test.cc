#include "services/builder/cache/layer_cache.h"

#include "gtest/gtest.h"
#include "lib/common/testing.h"
#include "lib/oci/digest.h"

namespace pier::builder {
namespace {

CacheRecord WithLayer(absl::string_view content) {
  CacheRecord r;
  r.description = "RUN make";
  r.created_unix = 100;
  r.last_used_unix = 100;
  archive::LayerInfo l;
  l.digest = oci::Digest::Of(absl::StrCat("gz:", content));
  l.diff_id = oci::Digest::Of(content);
  l.size = 10;
  l.uncompressed_size = 20;
  l.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
  r.layer = l;
  return r;
}

TEST(CacheKeyTest, DependsOnEveryPart) {
  std::string k = CacheKey("p", "RUN x", {"a"});
  EXPECT_EQ(k, CacheKey("p", "RUN x", {"a"}));
  EXPECT_NE(k, CacheKey("q", "RUN x", {"a"}));
  EXPECT_NE(k, CacheKey("p", "RUN y", {"a"}));
  EXPECT_NE(k, CacheKey("p", "RUN x", {"b"}));
  EXPECT_NE(CacheKey("p", "ab", {"c"}), CacheKey("p", "a", {"bc"}));  // length-prefixed
}

TEST(LayerCacheTest, StoreLookupTouchListDelete) {
  auto kv = kv::NewMemoryKvStore();
  LayerCache cache(kv.get());
  ASSERT_OK_AND_ASSIGN(std::optional<CacheRecord> none, cache.Lookup("sha256:missing"));
  EXPECT_FALSE(none.has_value());
  EXPECT_TRUE(absl::IsNotFound(cache.Touch("k1", 5)));
  ASSERT_OK(cache.Store("k1", WithLayer("one")));
  CacheRecord config_only;
  config_only.description = "ENV A=1";
  config_only.created_unix = 50;
  ASSERT_OK(cache.Store("k2", config_only));
  ASSERT_OK(cache.Touch("k1", 200));
  ASSERT_OK(cache.Touch("k1", 300));
  ASSERT_OK_AND_ASSIGN(std::optional<CacheRecord> r, cache.Lookup("k1"));
  ASSERT_TRUE(r && r->layer);
  EXPECT_EQ(r->last_used_unix, 300);
  EXPECT_EQ(r->usage_count, 2);
  EXPECT_EQ(r->layer->diff_id, oci::Digest::Of("one"));
  ASSERT_OK_AND_ASSIGN(auto all, cache.List());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].first, "k1");
  EXPECT_EQ(all[1].first, "k2");
  EXPECT_FALSE(all[1].second.layer.has_value());
  EXPECT_EQ(all[1].second.last_used_unix, 50);  // defaults to created
  ASSERT_OK(cache.Delete("k1"));
  ASSERT_OK(cache.Delete("k1"));
  ASSERT_OK_AND_ASSIGN(all, cache.List());
  EXPECT_EQ(all.size(), 1u);
}

TEST(CacheConfigTest, RoundTripsAndRefusesForeignDocuments) {
  std::vector<std::pair<std::string, CacheRecord>> in = {
      {oci::Digest::Of("k1").str(), WithLayer("one")}, {oci::Digest::Of("k2").str(), {}}};
  ASSERT_OK_AND_ASSIGN(auto out, DecodeCacheConfig(EncodeCacheConfig(in)));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].first, in[0].first);
  ASSERT_TRUE(out[0].second.layer);
  EXPECT_EQ(out[0].second.layer->digest, in[0].second.layer->digest);
  EXPECT_EQ(out[0].second.layer->size, 10u);
  EXPECT_FALSE(out[1].second.layer);
  EXPECT_TRUE(absl::IsInvalidArgument(DecodeCacheConfig("{}").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(DecodeCacheConfig("not json").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      DecodeCacheConfig(R"({"version":1,"records":[{"key":"nope"}]})").status()));
}

}  // namespace
}  // namespace pier::builder
