#include <sys/stat.h>

#include "lib/common/fs.h"
#include "lib/common/testing.h"
#include "lib/distribution/credentials.h"
#include "lib/distribution/registry_client.h"

namespace pier::distribution {
namespace {

using ::pier::testing::StatusIs;

TEST(CredentialsTest, StoreLoadRemove) {
  pier::testing::TempDir dir;
  std::string path = dir.Sub("cfg/config.json");
  ASSERT_OK_AND_ASSIGN(auto none, LoadCredentials(path, "127.0.0.1:5000"));
  EXPECT_FALSE(none.has_value());
  ASSERT_OK(StoreCredentials(path, "127.0.0.1:5000", {"alice", "pa:ss"}));
  ASSERT_OK(StoreCredentials(path, "other:1", {"bob", "x"}));
  ASSERT_OK_AND_ASSIGN(auto got, LoadCredentials(path, "127.0.0.1:5000"));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->username, "alice");
  EXPECT_EQ(got->password, "pa:ss");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_OK(RemoveCredentials(path, "127.0.0.1:5000"));
  EXPECT_THAT(RemoveCredentials(path, "127.0.0.1:5000"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(got, LoadCredentials(path, "other:1"));
  EXPECT_EQ(got->username, "bob");
}

TEST(CredentialsTest, LoadAllAndSameHost) {
  pier::testing::TempDir dir;
  std::string path = dir.Sub("config.json");
  ASSERT_OK_AND_ASSIGN(auto empty, LoadAllCredentials(path));
  EXPECT_TRUE(empty.empty());
  ASSERT_OK(StoreCredentials(path, "127.0.0.1:5000", {"alice", "a"}));
  ASSERT_OK(StoreCredentials(path, "registry.example", {"bob", "b"}));
  ASSERT_OK_AND_ASSIGN(auto all, LoadAllCredentials(path));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all["127.0.0.1:5000"].username, "alice");
  EXPECT_EQ(all["registry.example"].password, "b");
  EXPECT_TRUE(SameRegistryHost("https://index.docker.io/v1/", "docker.io"));
  EXPECT_TRUE(SameRegistryHost("http://127.0.0.1:5000/", "127.0.0.1:5000"));
  EXPECT_FALSE(SameRegistryHost("127.0.0.1:5000", "127.0.0.1:5001"));
  ASSERT_OK(WriteFileAtomic(path, "{\"auths\":{\"h\":{\"auth\":\"bm9jb2xvbg==\"}}}", 0600));
  EXPECT_THAT(LoadAllCredentials(path), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ChallengeTest, ParsesBearerAndBasic) {
  auto [scheme, params] = ParseChallenge(
      "Bearer "
      "realm=\"https://r.example/token\",service=\"reg\",scope=\"repository:a/b:pull,push\"");
  EXPECT_EQ(scheme, "bearer");
  EXPECT_EQ(params["realm"], "https://r.example/token");
  EXPECT_EQ(params["service"], "reg");
  EXPECT_EQ(params["scope"], "repository:a/b:pull,push");
  auto [s2, p2] = ParseChallenge("Basic realm=\"pier-registry\"");
  EXPECT_EQ(s2, "basic");
  EXPECT_EQ(p2["realm"], "pier-registry");
}

TEST(RegistryClientTest, LoopbackIsPlainHttp) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1:5000"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_TRUE(IsLoopbackHost("[::1]:5000"));
  EXPECT_FALSE(IsLoopbackHost("registry.example:5000"));
  ASSERT_OK_AND_ASSIGN(auto c, RegistryClient::Create("127.0.0.1:5000", {}));
  EXPECT_EQ(c->base_url(), "http://127.0.0.1:5000");
  ASSERT_OK_AND_ASSIGN(c, RegistryClient::Create("registry.example", {}));
  EXPECT_EQ(c->base_url(), "https://registry.example");
}

}  // namespace
}  // namespace pier::distribution
