#include "services/builder/plan/remote_source.h"

#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "lib/common/testing.h"
#include "lib/content/memory_driver.h"
#include "lib/http/server.h"

namespace pier::builder {
namespace {

using ::pier::testing::StatusIs;
using ::testing::HasSubstr;

TEST(FileNameFromUrl, LastPathSegmentDecoded) {
  EXPECT_EQ(FileNameFromUrl("http://h/a/b/tool.tar.gz"), "tool.tar.gz");
  EXPECT_EQ(FileNameFromUrl("https://h:8443/dl/my%20file.txt?x=1#frag"), "my file.txt");
  EXPECT_EQ(FileNameFromUrl("http://h/dir/"), "");
  EXPECT_EQ(FileNameFromUrl("http://h"), "");
  EXPECT_EQ(FileNameFromUrl("http://h/.."), "");
  EXPECT_EQ(FileNameFromUrl("http://h/a%2Fb"), "");
  EXPECT_EQ(FileNameFromUrl("not a url"), "");
}

TEST(ParseHttpDate, TheThreeForms) {
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  EXPECT_EQ(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
  EXPECT_EQ(ParseHttpDate("Sun Nov  6 08:49:37 1994"), 784111777);
  EXPECT_EQ(ParseHttpDate("yesterday"), std::nullopt);
}

TEST(IsRemoteUrl, SchemesOnly) {
  EXPECT_TRUE(IsRemoteUrl("http://h/x"));
  EXPECT_TRUE(IsRemoteUrl("HTTPS://h/x"));
  EXPECT_FALSE(IsRemoteUrl("git@github.com:a/b.git"));
  EXPECT_FALSE(IsRemoteUrl("http.txt"));
}

// A loopback server with files that may carry an ETag; counts requests and
// 304 answers.
class Remote : public ::testing::Test {
 protected:
  struct File {
    std::string body;
    std::string etag;
    std::string last_modified;
    int status = 200;
  };
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(
        server_, http::Server::Start({}, [this](http::Request& req, http::ResponseWriter& w) {
          std::lock_guard<std::mutex> l(mu_);
          ++requests_;
          auto it = files_.find(req.path);
          if (it == files_.end()) {
            w.SetStatus(404);
            (void)w.Send("no such file\n");
            return;
          }
          const File& f = it->second;
          if (!f.etag.empty()) w.SetHeader("ETag", f.etag);
          if (!f.last_modified.empty()) w.SetHeader("Last-Modified", f.last_modified);
          if (!f.etag.empty() && req.Header("If-None-Match").value_or("") == f.etag) {
            ++not_modified_;
            w.SetStatus(304);
            (void)w.Send("");
            return;
          }
          w.SetStatus(f.status);
          (void)w.Send(f.body);
        }));
    base_ = absl::StrCat("http://", server_->address());
  }
  void Set(const std::string& path, File f) {
    std::lock_guard<std::mutex> l(mu_);
    files_[path] = std::move(f);
  }

  std::mutex mu_;
  std::map<std::string, File> files_;
  int requests_ = 0;
  int not_modified_ = 0;
  std::unique_ptr<http::Server> server_;
  std::string base_;
  content::ContentStore content_{std::make_unique<content::MemoryDriver>()};
  std::unique_ptr<kv::KvStore> kv_ = kv::NewMemoryKvStore();
  RemoteFetcher fetcher_{&content_, kv_.get()};
};

TEST_F(Remote, ETagRevalidatesWithoutTransferAndAChangeIsSeen) {
  Set("/a.txt", {"hello\n", "\"v1\"", "Sun, 06 Nov 1994 08:49:37 GMT"});
  ASSERT_OK_AND_ASSIGN(RemoteFile f, fetcher_.Fetch(base_ + "/a.txt", "t1"));
  EXPECT_EQ(f.digest, oci::Digest::Of("hello\n"));
  EXPECT_EQ(f.size, 6u);
  EXPECT_EQ(f.etag, "\"v1\"");
  EXPECT_EQ(f.mtime_unix, 784111777);
  EXPECT_FALSE(f.revalidated);
  ASSERT_OK_AND_ASSIGN(std::string stored, content_.ReadAll(f.digest, 100));
  EXPECT_EQ(stored, "hello\n");

  ASSERT_OK_AND_ASSIGN(RemoteFile again, fetcher_.Fetch(base_ + "/a.txt", "t2"));
  EXPECT_TRUE(again.revalidated);
  EXPECT_EQ(again.digest, f.digest);
  EXPECT_EQ(again.mtime_unix, 784111777);
  EXPECT_EQ(not_modified_, 1);

  Set("/a.txt", {"changed\n", "\"v2\"", ""});
  ASSERT_OK_AND_ASSIGN(RemoteFile changed, fetcher_.Fetch(base_ + "/a.txt", "t3"));
  EXPECT_FALSE(changed.revalidated);
  EXPECT_EQ(changed.digest, oci::Digest::Of("changed\n"));
  EXPECT_EQ(changed.mtime_unix, std::nullopt);
}

TEST_F(Remote, WithoutETagTheContentIsFetchedAgain) {
  Set("/b", {"one", "", "Sun, 06 Nov 1994 08:49:37 GMT"});
  ASSERT_OK_AND_ASSIGN(RemoteFile f, fetcher_.Fetch(base_ + "/b", "t1"));
  Set("/b", {"two", "", "Sun, 06 Nov 1994 08:49:37 GMT"});  // same second
  ASSERT_OK_AND_ASSIGN(RemoteFile g, fetcher_.Fetch(base_ + "/b", "t2"));
  EXPECT_NE(f.digest, g.digest);
  EXPECT_EQ(g.digest, oci::Digest::Of("two"));
  EXPECT_EQ(not_modified_, 0);
  EXPECT_EQ(requests_, 2);
}

TEST_F(Remote, ErrorsNameTheUrlAndStatus) {
  EXPECT_THAT(fetcher_.Fetch(base_ + "/missing", "t1"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/missing")));
  Set("/secret", {"x", "", "", 403});
  EXPECT_THAT(fetcher_.Fetch(base_ + "/secret", "t2"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("HTTP 403")));
  Set("/broken", {"x", "", "", 500});
  EXPECT_THAT(fetcher_.Fetch(base_ + "/broken", "t3"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("HTTP 500")));
  EXPECT_THAT(fetcher_.Fetch("ftp://h/x", "t4"), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace pier::builder
