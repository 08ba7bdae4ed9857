// Conformance suite run on every KvStore implementation.
#include "lib/kv/kv_store.h"

#include <thread>

#include "lib/common/testing.h"

namespace pier::kv {
namespace {

using ::pier::testing::StatusIs;

struct Backend {
  const char* name;
  std::function<std::unique_ptr<KvStore>(const std::string& dir)> open;
};

class KvStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    store_ = GetParam().open(dir_.Sub("db"));
    ASSERT_NE(store_, nullptr);
  }
  pier::testing::TempDir dir_;
  std::unique_ptr<KvStore> store_;
};

std::vector<std::string> Keys(KvStore& s, absl::string_view prefix, absl::string_view after,
                              size_t limit) {
  std::vector<std::string> out;
  EXPECT_OK(s.Scan(prefix, after, limit, [&](absl::string_view k, absl::string_view) {
    out.emplace_back(k);
    return true;
  }));
  return out;
}

TEST_P(KvStoreTest, PutGetDeleteFind) {
  EXPECT_THAT(store_->Get("tag/a/latest"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(store_->Put("tag/a/latest", "sha256:1"));
  ASSERT_OK_AND_ASSIGN(std::string v, store_->Get("tag/a/latest"));
  EXPECT_EQ(v, "sha256:1");
  ASSERT_OK_AND_ASSIGN(auto found, store_->Find("tag/a/latest"));
  EXPECT_EQ(found, std::optional<std::string>("sha256:1"));
  ASSERT_OK(store_->Delete("tag/a/latest"));
  ASSERT_OK_AND_ASSIGN(found, store_->Find("tag/a/latest"));
  EXPECT_FALSE(found.has_value());
  std::string binary("a\0b", 3);
  ASSERT_OK(store_->Put(binary, binary));
  ASSERT_OK_AND_ASSIGN(v, store_->Get(binary));
  EXPECT_EQ(v, binary);
}

TEST_P(KvStoreTest, BatchIsAtomicAndOrdered) {
  Batch b;
  b.Put("x/1", "a");
  b.Put("x/2", "b");
  b.Delete("x/1");
  ASSERT_OK(store_->Write(b));
  EXPECT_THAT(Keys(*store_, "x/", "", 0), ::testing::ElementsAre("x/2"));
}

TEST_P(KvStoreTest, ScanPrefixPaginates) {
  for (const char* k : {"tag/r/a", "tag/r/b", "tag/r/c", "tag/r/d", "tag/s/a", "tag/q/z"}) {
    ASSERT_OK(store_->Put(k, "v"));
  }
  EXPECT_THAT(Keys(*store_, "tag/r/", "", 0),
              ::testing::ElementsAre("tag/r/a", "tag/r/b", "tag/r/c", "tag/r/d"));
  EXPECT_THAT(Keys(*store_, "tag/r/", "", 2), ::testing::ElementsAre("tag/r/a", "tag/r/b"));
  EXPECT_THAT(Keys(*store_, "tag/r/", "tag/r/b", 2), ::testing::ElementsAre("tag/r/c", "tag/r/d"));
  EXPECT_THAT(Keys(*store_, "tag/r/", "tag/r/d", 2), ::testing::ElementsAre());
  EXPECT_THAT(Keys(*store_, "none/", "", 0), ::testing::ElementsAre());
}

TEST_P(KvStoreTest, ConcurrentWriters) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        EXPECT_OK(store_->Put("c/" + std::to_string(t) + "/" + std::to_string(1000 + i), "v"));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(Keys(*store_, "c/", "", 0).size(), 200u);
}

INSTANTIATE_TEST_SUITE_P(
    Backends, KvStoreTest,
    ::testing::Values(Backend{"rocksdb",
                              [](const std::string& dir) {
                                auto s = OpenRocksDb(dir);
                                return s.ok() ? std::move(*s) : nullptr;
                              }},
                      Backend{"memory", [](const std::string&) { return NewMemoryKvStore(); }}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(RocksDbStoreTest, SurvivesReopenAndRefusesSecondOpener) {
  pier::testing::TempDir dir;
  {
    ASSERT_OK_AND_ASSIGN(auto s, OpenRocksDb(dir.Sub("db")));
    ASSERT_OK(s->Put("k", "v"));
    EXPECT_THAT(OpenRocksDb(dir.Sub("db")), StatusIs(absl::StatusCode::kFailedPrecondition));
  }
  ASSERT_OK_AND_ASSIGN(auto s, OpenRocksDb(dir.Sub("db")));
  ASSERT_OK_AND_ASSIGN(std::string v, s->Get("k"));
  EXPECT_EQ(v, "v");
}

}  // namespace
}  // namespace pier::kv
