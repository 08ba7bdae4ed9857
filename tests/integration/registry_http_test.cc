// Drives the real pier-registry daemon through its OCI Distribution HTTP API
// with Pier's HTTP client: monolithic and chunked uploads, resume after a
// client disconnect, range reads, mounts, manifests, pagination with Link
// headers, referrers, delete then GC, auth, metrics, every bad input the
// spec names, and a SIGKILL during 50 concurrent uploads.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <dirent.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "lib/common/fs.h"
#include "lib/common/testing.h"
#include "lib/http/client.h"
#include "lib/oci/digest.h"
#include "lib/oci/types.h"
#include "lib/rpc/credentials.h"
#include "nlohmann/json.hpp"
#include "pier/registry/v1/registry.grpc.pb.h"
#include "tests/integration/daemon_process.h"

namespace pier::testing {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, std::min<size_t>(8, n - i));
  }
  return s;
}

struct Reply {
  int status = 0;
  http::Headers headers;
  std::string body;
  std::string Header(absl::string_view name) const {
    return std::string(headers.Get(name).value_or(""));
  }
  // The OCI error code of an error body, or "".
  std::string ErrorCode() const {
    Json j = Json::parse(body, nullptr, false);
    if (!j.is_object() || !j.contains("errors") || j["errors"].empty()) return "";
    return j["errors"][0].value("code", "");
  }
};

class RegistryHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto client = http::Client::Create();
    ASSERT_OK(client);
    client_ = std::move(*client);
  }

  void Start(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--listen=127.0.0.1:0", "--http-listen=127.0.0.1:0",
                                     "--root=" + dir_.Sub("root")};
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_OK(daemon_.Start("pier-registry", args, {"grpc", "http"}));
    base_ = "http://" + daemon_.Address("http");
  }

  Reply Do(const std::string& method, const std::string& path, const std::string& body = "",
           http::Headers headers = {}) {
    http::ClientRequest req;
    req.method = method;
    req.url = path.rfind("http", 0) == 0 ? path : base_ + path;
    req.headers = std::move(headers);
    req.body = body;
    Reply r;
    absl::StatusOr<http::ClientResponse> resp = client_->Do(req);
    if (!resp.ok()) {
      ADD_FAILURE() << method << " " << path << ": " << resp.status();
      return r;
    }
    r.status = resp->status();
    r.headers = resp->headers();
    absl::StatusOr<std::string> b = resp->ReadAll(64 << 20);
    if (b.ok()) r.body = std::move(*b);
    return r;
  }

  std::string PushBlob(const std::string& repo, const std::string& data) {
    std::string digest = oci::Digest::Of(data).str();
    Reply r = Do("POST", absl::StrCat("/v2/", repo, "/blobs/uploads/?digest=", digest), data);
    EXPECT_EQ(r.status, 201) << r.body;
    return digest;
  }

  std::string ImageManifest(const std::string& repo, std::string* config_digest = nullptr,
                            std::string* layer_digest = nullptr, uint64_t seed = 7) {
    std::string config = "{\"architecture\":\"amd64\",\"os\":\"linux\"}";
    std::string layer = RandomBytes(20000, seed);
    oci::Manifest m;
    m.media_type = oci::kOciManifest;
    m.config = {oci::kOciConfig, *oci::Digest::Parse(PushBlob(repo, config)),
                static_cast<int64_t>(config.size())};
    m.layers.push_back({oci::kOciLayerGzip, *oci::Digest::Parse(PushBlob(repo, layer)),
                        static_cast<int64_t>(layer.size())});
    if (config_digest) *config_digest = m.config.digest.str();
    if (layer_digest) *layer_digest = m.layers[0].digest.str();
    return m.ToJson();
  }

  TempDir dir_;
  DaemonProcess daemon_;
  std::unique_ptr<http::Client> client_;
  std::string base_;
};

TEST_F(RegistryHttpTest, BaseHealthAndMetrics) {
  Start();
  Reply r = Do("GET", "/v2/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("Docker-Distribution-API-Version"), "registry/2.0");
  EXPECT_EQ(Do("GET", "/healthz").status, 200);
  PushBlob("m/x", "metrics");
  Reply m = Do("GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_THAT(m.body,
              HasSubstr("pier_registry_http_requests_total{method=\"POST\",code=\"201\"} 1"));
  EXPECT_THAT(m.body, HasSubstr("pier_registry_http_bytes_received_total 7"));
  EXPECT_THAT(m.body, HasSubstr("pier_registry_uploads_in_flight 0"));
  EXPECT_THAT(m.body, HasSubstr("pier_registry_http_request_duration_seconds_bucket"));
  EXPECT_THAT(daemon_.Stderr(), HasSubstr("access remote=127.0.0.1"));
}

// Both ways of serving a blob, through the buffer (default) and with
// --sendfile, give the same bytes for whole blobs and ranges.
TEST_F(RegistryHttpTest, BlobsServedThroughBufferAndSendfileAlike) {
  for (const char* flag : {"--sendfile=false", "--sendfile=true"}) {
    SCOPED_TRACE(flag);
    Start({flag});
    std::string data = RandomBytes((1 << 20) + 12345, 7);  // over several buffers
    std::string digest = PushBlob("lib/served", data);
    Reply get = Do("GET", "/v2/lib/served/blobs/" + digest);
    EXPECT_EQ(get.status, 200);
    EXPECT_TRUE(get.body == data);
    Reply range =
        Do("GET", "/v2/lib/served/blobs/" + digest, "", {{"Range", "bytes=300000-700000"}});
    EXPECT_EQ(range.status, 206);
    EXPECT_TRUE(range.body == data.substr(300000, 400001));
    Reply tail = Do("GET", "/v2/lib/served/blobs/" + digest, "",
                    {{"Range", absl::StrCat("bytes=", data.size() - 10, "-")}});
    EXPECT_EQ(tail.status, 206);
    EXPECT_EQ(tail.body, data.substr(data.size() - 10));
    ASSERT_OK(daemon_.Stop(SIGTERM, std::chrono::seconds(5)).status());
  }
}

TEST_F(RegistryHttpTest, MonolithicAndChunkedUploadsThenRangeReads) {
  Start();
  std::string data = RandomBytes(3 * 1024 * 1024 + 5, 1);
  std::string digest = oci::Digest::Of(data).str();
  // Chunked: POST, PATCH, PATCH, PUT.
  Reply post = Do("POST", "/v2/lib/app/blobs/uploads/");
  ASSERT_EQ(post.status, 202) << post.body;
  std::string location = post.Header("Location");
  ASSERT_THAT(location, HasSubstr("/v2/lib/app/blobs/uploads/"));
  EXPECT_EQ(post.Header("Range"), "0-0");
  EXPECT_FALSE(post.Header("Docker-Upload-UUID").empty());
  size_t half = data.size() / 2;
  Reply p1 = Do("PATCH", location, data.substr(0, half),
                {{"Content-Range", absl::StrCat("0-", half - 1)},
                 {"Content-Type", "application/octet-stream"}});
  ASSERT_EQ(p1.status, 202) << p1.body;
  EXPECT_EQ(p1.Header("Range"), absl::StrCat("0-", half - 1));
  // A chunk that does not start where the upload stands.
  Reply bad = Do("PATCH", p1.Header("Location"), "x", {{"Content-Range", "5-5"}});
  EXPECT_EQ(bad.status, 416);
  EXPECT_EQ(bad.Header("Range"), absl::StrCat("0-", half - 1));
  Reply p2 = Do("PATCH", p1.Header("Location"), data.substr(half));
  ASSERT_EQ(p2.status, 202) << p2.body;
  Reply put = Do("PUT", p2.Header("Location") + "?digest=" + digest);
  ASSERT_EQ(put.status, 201) << put.body;
  EXPECT_EQ(put.Header("Docker-Content-Digest"), digest);
  EXPECT_EQ(put.Header("Location"), "/v2/lib/app/blobs/" + digest);

  Reply head = Do("HEAD", "/v2/lib/app/blobs/" + digest);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.Header("Content-Length"), std::to_string(data.size()));
  Reply get = Do("GET", "/v2/lib/app/blobs/" + digest);
  EXPECT_EQ(get.status, 200);
  EXPECT_TRUE(get.body == data);
  Reply range = Do("GET", "/v2/lib/app/blobs/" + digest, "", {{"Range", "bytes=100-199"}});
  EXPECT_EQ(range.status, 206);
  EXPECT_EQ(range.body, data.substr(100, 100));
  EXPECT_EQ(range.Header("Content-Range"), absl::StrCat("bytes 100-199/", data.size()));
  Reply beyond = Do("GET", "/v2/lib/app/blobs/" + digest, "",
                    {{"Range", absl::StrCat("bytes=", data.size() + 10, "-")}});
  EXPECT_EQ(beyond.status, 416);
  EXPECT_EQ(beyond.Header("Content-Range"), absl::StrCat("bytes */", data.size()));

  // Monolithic, then a cross-repository mount.
  std::string small = PushBlob("lib/app", "small blob");
  Reply mount = Do("POST", "/v2/other/copy/blobs/uploads/?mount=" + small + "&from=lib/app");
  EXPECT_EQ(mount.status, 201);
  EXPECT_EQ(Do("HEAD", "/v2/other/copy/blobs/" + small).status, 200);
  Reply no_mount = Do("POST", "/v2/other/copy/blobs/uploads/?mount=" + small + "&from=nowhere");
  EXPECT_EQ(no_mount.status, 202);  // Falls back to an upload session.
  // Upload status and cancel.
  Reply st = Do("GET", no_mount.Header("Location"));
  EXPECT_EQ(st.status, 204);
  EXPECT_EQ(Do("DELETE", no_mount.Header("Location")).status, 204);
  Reply gone = Do("GET", no_mount.Header("Location"));
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(gone.ErrorCode(), "BLOB_UPLOAD_UNKNOWN");
}

TEST_F(RegistryHttpTest, UploadResumesAfterClientDisconnect) {
  Start();
  std::string data = RandomBytes(8 * 1024 * 1024, 2);
  std::string digest = oci::Digest::Of(data).str();
  Reply post = Do("POST", "/v2/resume/me/blobs/uploads/");
  ASSERT_EQ(post.status, 202);
  {
    // Promise the whole blob, send 3 MiB, then vanish.
    auto client = http::Client::Create();
    ASSERT_OK(client);
    http::ClientRequest req;
    req.method = "PATCH";
    req.url = base_ + post.Header("Location");
    req.content_length = data.size();
    size_t sent = 0;
    req.body_source = [&](char* buf, size_t len) -> absl::StatusOr<size_t> {
      if (sent >= (3u << 20)) return absl::CancelledError("client goes away");
      size_t n = std::min(len, (3u << 20) - sent);
      std::memcpy(buf, data.data() + sent, n);
      sent += n;
      return n;
    };
    EXPECT_FALSE((*client)->Do(req).ok());
  }
  // The server keeps what arrived; the client asks and goes on from there.
  // Every byte the client wrote reached the server's socket before the
  // connection closed; the server keeps them all. Its handler may still be
  // running, so ask until it has settled (bounded).
  Reply st;
  uint64_t offset = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    st = Do("GET", post.Header("Location"));
    ASSERT_EQ(st.status, 204);
    std::string range = st.Header("Range");
    offset = std::stoull(range.substr(range.find('-') + 1)) + 1;
    if (offset == (3u << 20)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_EQ(offset, 3u << 20) << "the server lost bytes the client sent";
  EXPECT_GT(offset, 0u);
  EXPECT_LE(offset, 3u << 20);
  Reply rest = Do("PATCH", st.Header("Location"), data.substr(offset),
                  {{"Content-Range", absl::StrCat(offset, "-", data.size() - 1)}});
  ASSERT_EQ(rest.status, 202) << rest.body;
  Reply put = Do("PUT", rest.Header("Location") + "?digest=" + digest);
  ASSERT_EQ(put.status, 201) << put.body;
  EXPECT_TRUE(Do("GET", "/v2/resume/me/blobs/" + digest).body == data);
}

TEST_F(RegistryHttpTest, ManifestsTagsPaginationReferrersDeleteAndGc) {
  Start();
  std::string config, layer;
  std::string manifest = ImageManifest("team/web", &config, &layer);
  std::string mdigest = oci::Digest::Of(manifest).str();
  for (const char* tag : {"v1", "v2", "v3", "latest"}) {
    Reply put = Do("PUT", absl::StrCat("/v2/team/web/manifests/", tag), manifest,
                   {{"Content-Type", oci::kOciManifest}});
    ASSERT_EQ(put.status, 201) << put.body;
    EXPECT_EQ(put.Header("Docker-Content-Digest"), mdigest);
  }
  Reply get = Do("GET", "/v2/team/web/manifests/v2", "", {{"Accept", oci::kOciManifest}});
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, manifest);
  EXPECT_EQ(get.Header("Content-Type"), oci::kOciManifest);
  EXPECT_EQ(get.Header("Docker-Content-Digest"), mdigest);
  Reply head = Do("HEAD", "/v2/team/web/manifests/" + mdigest);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.Header("Content-Length"), std::to_string(manifest.size()));

  Reply page1 = Do("GET", "/v2/team/web/tags/list?n=2");
  EXPECT_EQ(page1.status, 200);
  EXPECT_EQ(Json::parse(page1.body)["tags"], Json({"latest", "v1"}));
  EXPECT_EQ(page1.Header("Link"), "</v2/team/web/tags/list?n=2&last=v1>; rel=\"next\"");
  Reply page2 = Do("GET", "/v2/team/web/tags/list?n=2&last=v1");
  EXPECT_EQ(Json::parse(page2.body)["tags"], Json({"v2", "v3"}));
  EXPECT_EQ(page2.Header("Link"), "");
  PushBlob("alpha", "a");
  Reply cat = Do("GET", "/v2/_catalog?n=1");
  EXPECT_EQ(Json::parse(cat.body)["repositories"], Json({"alpha"}));
  EXPECT_THAT(cat.Header("Link"), HasSubstr("last=alpha"));

  // A referrer (a signature-like artifact) of the image.
  oci::Manifest sig;
  sig.media_type = oci::kOciManifest;
  sig.artifact_type = "application/vnd.example.sig";
  sig.config = {oci::kOciEmptyJson, *oci::Digest::Parse(PushBlob("team/web", "{}")), 2};
  sig.subject = oci::Descriptor{oci::kOciManifest, *oci::Digest::Parse(mdigest),
                                static_cast<int64_t>(manifest.size())};
  std::string sig_bytes = sig.ToJson();
  Reply sput = Do("PUT", "/v2/team/web/manifests/" + oci::Digest::Of(sig_bytes).str(), sig_bytes,
                  {{"Content-Type", oci::kOciManifest}});
  ASSERT_EQ(sput.status, 201) << sput.body;
  EXPECT_EQ(sput.Header("OCI-Subject"), mdigest);
  Reply refs = Do("GET", "/v2/team/web/referrers/" + mdigest);
  EXPECT_EQ(refs.status, 200);
  EXPECT_EQ(refs.Header("Content-Type"), oci::kOciIndex);
  Json idx = Json::parse(refs.body);
  ASSERT_EQ(idx["manifests"].size(), 1u);
  EXPECT_EQ(idx["manifests"][0]["artifactType"], "application/vnd.example.sig");
  Reply filtered = Do("GET", "/v2/team/web/referrers/" + mdigest + "?artifactType=other");
  EXPECT_EQ(Json::parse(filtered.body)["manifests"].size(), 0u);
  EXPECT_EQ(filtered.Header("OCI-Filters-Applied"), "artifactType");

  // Delete a tag, then the manifest, then collect.
  EXPECT_EQ(Do("DELETE", "/v2/team/web/manifests/v3").status, 202);
  EXPECT_EQ(Do("GET", "/v2/team/web/manifests/v3").status, 404);
  EXPECT_EQ(Do("DELETE", "/v2/team/web/manifests/" + mdigest).status, 202);
  Reply gone = Do("GET", "/v2/team/web/manifests/v1");
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(gone.ErrorCode(), "MANIFEST_UNKNOWN");
  EXPECT_EQ(Do("DELETE", "/v2/team/web/blobs/" + config).status, 202);
  EXPECT_EQ(Do("HEAD", "/v2/team/web/blobs/" + config).status, 404);
  auto channel = rpc::MakeChannel(daemon_.Address("grpc"));
  ASSERT_OK(channel);
  auto stub = registry::v1::RegistryService::NewStub(*channel);
  grpc::ClientContext ctx;
  registry::v1::GarbageCollectRequest gc;
  gc.set_delete_untagged(true);
  gc.mutable_min_blob_age()->set_seconds(0);
  registry::v1::GarbageCollectResponse gcr;
  ASSERT_TRUE(stub->GarbageCollect(&ctx, gc, &gcr).ok());
  EXPECT_GE(gcr.blobs_deleted(), 3);
  Reply layer_gone = Do("GET", "/v2/team/web/blobs/" + layer);
  EXPECT_EQ(layer_gone.status, 404);
  EXPECT_EQ(layer_gone.ErrorCode(), "BLOB_UNKNOWN");
}

TEST_F(RegistryHttpTest, BadInputsGetTheSpecsCodesAndStoreNothing) {
  Start();
  std::string data = "the real content";
  std::string wrong = oci::Digest::Of("other content").str();
  Reply mismatch = Do("POST", "/v2/bad/x/blobs/uploads/?digest=" + wrong, data);
  EXPECT_EQ(mismatch.status, 400);
  EXPECT_EQ(mismatch.ErrorCode(), "DIGEST_INVALID");
  EXPECT_EQ(Do("HEAD", "/v2/bad/x/blobs/" + oci::Digest::Of(data).str()).status, 404);
  EXPECT_EQ(Do("HEAD", "/v2/bad/x/blobs/" + wrong).status, 404);
  Reply bad_digest = Do("HEAD", "/v2/bad/x/blobs/sha256:1234");
  EXPECT_EQ(bad_digest.status, 400);

  oci::Manifest m;
  m.media_type = oci::kOciManifest;
  m.config = {oci::kOciConfig, oci::Digest::Of("missing"), 7};
  Reply missing =
      Do("PUT", "/v2/bad/x/manifests/v1", m.ToJson(), {{"Content-Type", oci::kOciManifest}});
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(missing.ErrorCode(), "MANIFEST_BLOB_UNKNOWN");
  Reply malformed = Do("PUT", "/v2/bad/x/manifests/v1", "{\"schemaVersion\": 2,",
                       {{"Content-Type", oci::kOciManifest}});
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(malformed.ErrorCode(), "MANIFEST_INVALID");
  Reply huge = Do("PUT", "/v2/bad/x/manifests/v1", std::string(5 << 20, ' '),
                  {{"Content-Type", oci::kOciManifest}});
  EXPECT_EQ(huge.status, 413);
  Reply name = Do("GET", "/v2/Bad/Name/tags/list");
  EXPECT_EQ(name.status, 400);
  EXPECT_EQ(name.ErrorCode(), "NAME_INVALID");
  std::string good = ImageManifest("bad/x");
  Reply tag =
      Do("PUT", "/v2/bad/x/manifests/-bad-tag-", good, {{"Content-Type", oci::kOciManifest}});
  EXPECT_EQ(tag.status, 400);
  EXPECT_EQ(tag.ErrorCode(), "TAG_INVALID");
  Reply unknown_upload = Do("PATCH", "/v2/bad/x/blobs/uploads/no-such-id", "abc");
  EXPECT_EQ(unknown_upload.status, 404);
  EXPECT_EQ(unknown_upload.ErrorCode(), "BLOB_UPLOAD_UNKNOWN");
  Reply unknown_repo = Do("GET", "/v2/never/pushed/tags/list");
  EXPECT_EQ(unknown_repo.status, 404);
  EXPECT_EQ(unknown_repo.ErrorCode(), "NAME_UNKNOWN");
  // Nothing of the bad manifests was stored.
  Reply tags = Do("GET", "/v2/bad/x/tags/list");
  EXPECT_EQ(Json::parse(tags.body)["tags"], Json::array());
}

TEST_F(RegistryHttpTest, BasicAuthRefusesWrongPassword) {
  std::string htpasswd = dir_.Sub("htpasswd");
  ASSERT_EQ(std::system(("htpasswd -cbB " + htpasswd + " alice s3cret 2>/dev/null").c_str()), 0);
  Start({"--auth=basic", "--htpasswd=" + htpasswd});
  Reply anon = Do("GET", "/v2/");
  EXPECT_EQ(anon.status, 401);
  EXPECT_EQ(anon.Header("WWW-Authenticate"), "Basic realm=\"pier-registry\"");
  Reply wrong =
      Do("GET", "/v2/", "", {{"Authorization", "Basic YWxpY2U6d3Jvbmc="}});  // alice:wrong
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.ErrorCode(), "UNAUTHORIZED");
  Reply right =
      Do("GET", "/v2/", "", {{"Authorization", "Basic YWxpY2U6czNjcmV0"}});  // alice:s3cret
  EXPECT_EQ(right.status, 200);
}

TEST_F(RegistryHttpTest, TokenForAnotherRepositoryIsRefused) {
  std::string htpasswd = dir_.Sub("htpasswd");
  ASSERT_EQ(std::system(("htpasswd -cbB " + htpasswd + " alice s3cret 2>/dev/null").c_str()), 0);
  Start({"--auth=token", "--htpasswd=" + htpasswd});
  Reply challenge = Do("GET", "/v2/team/a/tags/list");
  EXPECT_EQ(challenge.status, 401);
  EXPECT_THAT(challenge.Header("WWW-Authenticate"), HasSubstr("Bearer realm=\"" + base_ +
                                                              "/token\",service=\"pier-registry\","
                                                              "scope=\"repository:team/a:pull\""));
  Reply tok = Do("GET", "/token?service=pier-registry&scope=repository:team/a:pull,push", "",
                 {{"Authorization", "Basic YWxpY2U6czNjcmV0"}});
  ASSERT_EQ(tok.status, 200) << tok.body;
  std::string token = Json::parse(tok.body)["token"];
  http::Headers bearer = {{"Authorization", "Bearer " + token}};
  std::string data = "blob for a";
  Reply push =
      Do("POST", "/v2/team/a/blobs/uploads/?digest=" + oci::Digest::Of(data).str(), data, bearer);
  EXPECT_EQ(push.status, 201) << push.body;
  Reply other =
      Do("POST", "/v2/team/b/blobs/uploads/?digest=" + oci::Digest::Of(data).str(), data, bearer);
  EXPECT_EQ(other.status, 401);
  EXPECT_THAT(other.Header("WWW-Authenticate"), HasSubstr("error=\"insufficient_scope\""));
  EXPECT_EQ(Do("HEAD", "/v2/team/b/blobs/" + oci::Digest::Of(data).str(), "", bearer).status, 401);
  Reply bad_pw = Do("GET", "/token?service=pier-registry&scope=repository:team/a:pull", "",
                    {{"Authorization", "Basic YWxpY2U6d3Jvbmc="}});
  EXPECT_EQ(bad_pw.status, 401);
  Reply forged =
      Do("GET", "/v2/team/a/tags/list", "", {{"Authorization", "Bearer " + token + "x"}});
  EXPECT_EQ(forged.status, 401);
}

// SIGKILL during 50 concurrent chunked uploads: every upload that got its
// 201 is intact after a restart, none that did not is visible, and GC
// collects the stale sessions.
TEST_F(RegistryHttpTest, KillDuringConcurrentUploadsLosesNothingCommitted) {
  Start();
  constexpr int kUploads = 50;
  constexpr size_t kSize = 1536 * 1024;
  std::vector<std::string> blobs(kUploads);
  for (int i = 0; i < kUploads; ++i) blobs[i] = RandomBytes(kSize, 1000 + i);
  std::mutex mu;
  std::condition_variable cv;
  int committed = 0;
  std::vector<int> got_201(kUploads, 0);
  std::atomic<bool> killed{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kUploads; ++i) {
    threads.emplace_back([&, i] {
      auto client = http::Client::Create();
      if (!client.ok()) return;
      auto call = [&](const std::string& method, const std::string& url,
                      std::string body) -> std::optional<Reply> {
        http::ClientRequest req;
        req.method = method;
        req.url = url.rfind("http", 0) == 0 ? url : base_ + url;
        req.body = std::move(body);
        absl::StatusOr<http::ClientResponse> resp = (*client)->Do(req);
        if (!resp.ok()) return std::nullopt;
        Reply r;
        r.status = resp->status();
        r.headers = resp->headers();
        (void)resp->ReadAll(1 << 20);
        return r;
      };
      std::optional<Reply> post = call("POST", "/v2/crash/test/blobs/uploads/", "");
      if (!post || post->status != 202) return;
      std::string loc = post->Header("Location");
      for (size_t off = 0; off < kSize && !killed; off += 256 * 1024) {
        std::optional<Reply> p = call("PATCH", loc, blobs[i].substr(off, 256 * 1024));
        if (!p || p->status != 202) return;
        loc = p->Header("Location");
      }
      std::optional<Reply> put =
          call("PUT", loc + "?digest=" + oci::Digest::Of(blobs[i]).str(), "");
      if (put && put->status == 201) {
        std::lock_guard<std::mutex> lock(mu);
        got_201[i] = 1;
        ++committed;
        cv.notify_all();
      }
    });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(60), [&] { return committed >= 15; });
  }
  daemon_.Kill();  // SIGKILL
  killed = true;
  for (auto& t : threads) t.join();
  int acknowledged = 0;
  for (int v : got_201) acknowledged += v;
  ASSERT_GE(acknowledged, 15);

  Start();
  int visible = 0;
  for (int i = 0; i < kUploads; ++i) {
    std::string digest = oci::Digest::Of(blobs[i]).str();
    Reply r = Do("GET", "/v2/crash/test/blobs/" + digest);
    if (got_201[i]) {
      ASSERT_EQ(r.status, 200) << "acknowledged upload " << i << " lost";
      ASSERT_TRUE(r.body == blobs[i]) << "acknowledged upload " << i << " corrupt";
    }
    if (r.status == 200) ++visible;
    // An upload killed before its 201 may have committed just before the
    // kill; if visible, it must be intact.
    if (r.status == 200) {
      ASSERT_TRUE(r.body == blobs[i]);
    }
  }
  EXPECT_GE(visible, acknowledged);
  auto channel = rpc::MakeChannel(daemon_.Address("grpc"));
  ASSERT_OK(channel);
  auto stub = registry::v1::RegistryService::NewStub(*channel);
  grpc::ClientContext ctx;
  registry::v1::GarbageCollectRequest gc;
  gc.mutable_upload_max_age()->set_seconds(0);
  registry::v1::GarbageCollectResponse gcr;
  ASSERT_TRUE(stub->GarbageCollect(&ctx, gc, &gcr).ok());
  EXPECT_GE(gcr.uploads_deleted(), kUploads - visible > 0 ? 1 : 0);
  absl::StatusOr<std::vector<std::string>> ingests =
      [&]() -> absl::StatusOr<std::vector<std::string>> {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir_.Sub("root/content/ingest").c_str());
    if (d == nullptr) return out;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') out.emplace_back(e->d_name);
    }
    ::closedir(d);
    return out;
  }();
  ASSERT_OK(ingests);
  EXPECT_TRUE(ingests->empty()) << ingests->size() << " stale ingests left";
}

}  // namespace
}  // namespace pier::testing
