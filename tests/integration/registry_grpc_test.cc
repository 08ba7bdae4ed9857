// Drives the real pier-registry daemon through its gRPC API: chunked and
// single-shot uploads, resume after the client went away and after a daemon
// restart, ranged reads, mounts, manifests, pagination, delete then GC, and
// the bad inputs the API documents.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "lib/common/fs.h"
#include "lib/common/testing.h"
#include "lib/oci/digest.h"
#include "lib/oci/types.h"
#include "lib/rpc/credentials.h"
#include "pier/registry/v1/registry.grpc.pb.h"
#include "tests/integration/daemon_process.h"

namespace pier::testing {
namespace {

namespace v1 = ::pier::registry::v1;
using ::testing::HasSubstr;

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, std::min<size_t>(8, n - i));
  }
  return s;
}

class RegistryGrpcTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(StartDaemon()); }

  void StartDaemon() {
    ASSERT_OK(
        daemon_.Start("pier-registry", {"--listen=127.0.0.1:0", "--root=" + dir_.Sub("root")}));
    auto channel = rpc::MakeChannel(daemon_.Address());
    ASSERT_OK(channel);
    stub_ = v1::RegistryService::NewStub(*channel);
  }

  grpc::Status Upload(const std::string& repo, const std::string& data, std::string* digest,
                      size_t chunk = 1 << 20) {
    grpc::ClientContext c1;
    v1::StartUploadRequest start;
    start.set_repository(repo);
    v1::StartUploadResponse started;
    grpc::Status s = stub_->StartUpload(&c1, start, &started);
    if (!s.ok()) return s;
    grpc::ClientContext c2;
    v1::WriteUploadResponse wrote;
    auto writer = stub_->WriteUpload(&c2, &wrote);
    for (size_t off = 0; off < data.size(); off += chunk) {
      v1::WriteUploadRequest w;
      w.set_repository(repo);
      w.set_upload_id(started.upload_id());
      w.set_offset(static_cast<int64_t>(off));
      w.set_data(data.substr(off, chunk));
      if (!writer->Write(w)) break;
    }
    writer->WritesDone();
    s = writer->Finish();
    if (!s.ok()) return s;
    grpc::ClientContext c3;
    v1::CommitUploadRequest commit;
    commit.set_repository(repo);
    commit.set_upload_id(started.upload_id());
    *digest = oci::Digest::Of(data).str();
    commit.set_digest(*digest);
    commit.set_size(static_cast<int64_t>(data.size()));
    v1::CommitUploadResponse committed;
    return stub_->CommitUpload(&c3, commit, &committed);
  }

  std::string Read(const std::string& repo, const std::string& digest, int64_t offset,
                   int64_t length, grpc::Status* status) {
    grpc::ClientContext ctx;
    v1::ReadBlobRequest req;
    req.set_repository(repo);
    req.set_digest(digest);
    req.set_offset(offset);
    req.set_length(length);
    auto reader = stub_->ReadBlob(&ctx, req);
    std::string out;
    v1::ReadBlobResponse chunk;
    while (reader->Read(&chunk)) out += chunk.data();
    *status = reader->Finish();
    return out;
  }

  TempDir dir_;
  DaemonProcess daemon_;
  std::unique_ptr<v1::RegistryService::Stub> stub_;
};

TEST_F(RegistryGrpcTest, ChunkedUploadThenRangedReads) {
  std::string data = RandomBytes(5 * 1024 * 1024 + 17, 1);
  std::string digest;
  ASSERT_TRUE(Upload("library/busybox", data, &digest, 1 << 20).ok());
  grpc::ClientContext ctx;
  v1::StatBlobRequest st;
  st.set_repository("library/busybox");
  st.set_digest(digest);
  v1::StatBlobResponse info;
  ASSERT_TRUE(stub_->StatBlob(&ctx, st, &info).ok());
  EXPECT_EQ(info.blob().size(), static_cast<int64_t>(data.size()));
  grpc::Status s;
  EXPECT_EQ(Read("library/busybox", digest, 0, 0, &s), data);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(Read("library/busybox", digest, 1000, 4096, &s), data.substr(1000, 4096));
  EXPECT_EQ(Read("library/busybox", digest, static_cast<int64_t>(data.size()) + 1, 0, &s), "");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  Read("other/repo", digest, 0, 0, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr(digest));
}

TEST_F(RegistryGrpcTest, UploadResumesAfterClientAndDaemonGoAway) {
  std::string data = RandomBytes(3 * 1024 * 1024, 2);
  grpc::ClientContext c1;
  v1::StartUploadRequest start;
  start.set_repository("app");
  v1::StartUploadResponse started;
  ASSERT_TRUE(stub_->StartUpload(&c1, start, &started).ok());
  {
    // The client writes the first MiB, then vanishes mid-stream.
    grpc::ClientContext c2;
    v1::WriteUploadResponse wrote;
    auto writer = stub_->WriteUpload(&c2, &wrote);
    v1::WriteUploadRequest w;
    w.set_repository("app");
    w.set_upload_id(started.upload_id());
    w.set_offset(0);
    w.set_data(data.substr(0, 1 << 20));
    ASSERT_TRUE(writer->Write(w));
    writer->WritesDone();
    ASSERT_TRUE(writer->Finish().ok());
  }
  // The daemon restarts.
  stub_.reset();
  ASSERT_OK(daemon_.Stop(SIGTERM, std::chrono::seconds(5)).status());
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  grpc::ClientContext c3;
  v1::GetUploadStatusRequest sreq;
  sreq.set_repository("app");
  sreq.set_upload_id(started.upload_id());
  v1::GetUploadStatusResponse status;
  grpc::Status gs = stub_->GetUploadStatus(&c3, sreq, &status);
  ASSERT_TRUE(gs.ok()) << gs.error_message();
  EXPECT_EQ(status.offset(), 1 << 20);
  // A chunk at the wrong offset is refused; the right one goes on.
  {
    grpc::ClientContext c4;
    v1::WriteUploadResponse wrote;
    auto writer = stub_->WriteUpload(&c4, &wrote);
    v1::WriteUploadRequest w;
    w.set_repository("app");
    w.set_upload_id(started.upload_id());
    w.set_offset(5);
    w.set_data("x");
    writer->Write(w);
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(s.error_message(), HasSubstr("offset 1048576"));
  }
  grpc::ClientContext c5;
  v1::CommitUploadRequest commit;
  commit.set_repository("app");
  commit.set_upload_id(started.upload_id());
  commit.set_digest(oci::Digest::Of(data).str());
  commit.set_data(data.substr(1 << 20));
  v1::CommitUploadResponse committed;
  grpc::Status s = stub_->CommitUpload(&c5, commit, &committed);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(committed.blob().size(), static_cast<int64_t>(data.size()));
  grpc::Status rs;
  EXPECT_EQ(Read("app", oci::Digest::Of(data).str(), 0, 0, &rs), data);
}

TEST_F(RegistryGrpcTest, BadInputsAreRefusedAndStoreNothing) {
  // Digest mismatch: DATA_LOSS, nothing visible.
  grpc::ClientContext c1;
  v1::StartUploadRequest start;
  start.set_repository("app");
  start.set_digest(oci::Digest::Of("other").str());
  start.set_data("payload");
  v1::StartUploadResponse resp;
  grpc::Status s = stub_->StartUpload(&c1, start, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();
  grpc::ClientContext c2;
  v1::StatBlobRequest st;
  st.set_repository("app");
  st.set_digest(oci::Digest::Of("payload").str());
  v1::StatBlobResponse info;
  EXPECT_EQ(stub_->StatBlob(&c2, st, &info).error_code(), grpc::StatusCode::NOT_FOUND);
  // Malformed digest and repository name.
  grpc::ClientContext c3;
  st.set_digest("sha256:nothex");
  EXPECT_EQ(stub_->StatBlob(&c3, st, &info).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext c4;
  st.set_repository("Bad/Name");
  st.set_digest(oci::Digest::Of("payload").str());
  EXPECT_EQ(stub_->StatBlob(&c4, st, &info).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Unknown upload id.
  grpc::ClientContext c5;
  v1::GetUploadStatusRequest sreq;
  sreq.set_repository("app");
  sreq.set_upload_id("no-such-upload");
  v1::GetUploadStatusResponse sresp;
  EXPECT_EQ(stub_->GetUploadStatus(&c5, sreq, &sresp).error_code(), grpc::StatusCode::NOT_FOUND);
  // A manifest referencing a missing blob, and malformed JSON.
  oci::Manifest m;
  m.media_type = oci::kOciManifest;
  m.config = {oci::kOciConfig, oci::Digest::Of("missing"), 7};
  grpc::ClientContext c6;
  v1::PutManifestRequest put;
  put.set_repository("app");
  put.add_tags("v1");
  put.set_media_type(oci::kOciManifest);
  put.set_content(m.ToJson());
  v1::PutManifestResponse presp;
  s = stub_->PutManifest(&c6, put, &presp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr(oci::Digest::Of("missing").str()));
  grpc::ClientContext c7;
  put.set_content("{\"schemaVersion\": 2, ");
  EXPECT_EQ(stub_->PutManifest(&c7, put, &presp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext c8;
  v1::ListTagsRequest lt;
  lt.set_repository("app");
  v1::ListTagsResponse ltr;
  // Nothing was ever stored in "app", so the repository does not exist.
  EXPECT_EQ(stub_->ListTags(&c8, lt, &ltr).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(RegistryGrpcTest, ManifestsTagsMountDeleteAndGc) {
  std::string config = "{\"architecture\":\"amd64\",\"os\":\"linux\"}";
  std::string layer = RandomBytes(100000, 3);
  std::string orphan = RandomBytes(5000, 4);
  std::string cd, ld, od;
  ASSERT_TRUE(Upload("team/app", config, &cd).ok());
  ASSERT_TRUE(Upload("team/app", layer, &ld).ok());
  ASSERT_TRUE(Upload("team/app", orphan, &od).ok());
  oci::Manifest m;
  m.media_type = oci::kOciManifest;
  m.config = {oci::kOciConfig, *oci::Digest::Parse(cd), static_cast<int64_t>(config.size())};
  m.layers.push_back(
      {oci::kOciLayerGzip, *oci::Digest::Parse(ld), static_cast<int64_t>(layer.size())});
  std::string bytes = m.ToJson();
  grpc::ClientContext c1;
  v1::PutManifestRequest put;
  put.set_repository("team/app");
  for (const char* t : {"v1", "v2", "v3", "latest"}) put.add_tags(t);
  put.set_media_type(oci::kOciManifest);
  put.set_content(bytes);
  v1::PutManifestResponse presp;
  ASSERT_TRUE(stub_->PutManifest(&c1, put, &presp).ok());
  EXPECT_EQ(presp.digest(), oci::Digest::Of(bytes).str());

  grpc::ClientContext c2;
  v1::GetManifestRequest get;
  get.set_repository("team/app");
  get.set_reference("v2");
  v1::GetManifestResponse gresp;
  ASSERT_TRUE(stub_->GetManifest(&c2, get, &gresp).ok());
  EXPECT_EQ(gresp.content(), bytes);
  EXPECT_EQ(gresp.media_type(), oci::kOciManifest);

  // Tag pagination with page tokens.
  std::vector<std::string> seen;
  std::string token;
  do {
    grpc::ClientContext c;
    v1::ListTagsRequest lt;
    lt.set_repository("team/app");
    lt.set_page_size(3);
    lt.set_page_token(token);
    v1::ListTagsResponse ltr;
    ASSERT_TRUE(stub_->ListTags(&c, lt, &ltr).ok());
    for (const auto& t : ltr.tags()) {
      seen.push_back(t.name());
      EXPECT_EQ(t.digest(), presp.digest());
    }
    token = ltr.next_page_token();
  } while (!token.empty());
  EXPECT_THAT(seen, ::testing::ElementsAre("latest", "v1", "v2", "v3"));

  // Mount into another repository.
  grpc::ClientContext c3;
  v1::StartUploadRequest mount;
  mount.set_repository("team/copy");
  mount.set_mount_from("team/app");
  mount.set_digest(ld);
  v1::StartUploadResponse mresp;
  ASSERT_TRUE(stub_->StartUpload(&c3, mount, &mresp).ok());
  EXPECT_TRUE(mresp.mounted());

  // The CLI sees the same.
  std::vector<std::string> env = {"PIER_REGISTRY=" + daemon_.Address()};
  CommandResult ls = RunPier({"registry", "ls"}, env);
  EXPECT_EQ(ls.exit_code, 0) << ls.output;
  EXPECT_EQ(ls.output, "team/app\nteam/copy\n");
  CommandResult tags = RunPier({"registry", "tags", "team/app"}, env);
  EXPECT_EQ(tags.exit_code, 0) << tags.output;
  EXPECT_THAT(tags.output, HasSubstr("v3\t" + presp.digest()));
  CommandResult dry = RunPier({"registry", "gc", "--dry-run", "--min-age=0"}, env);
  EXPECT_EQ(dry.exit_code, 0) << dry.output;
  EXPECT_THAT(dry.output, HasSubstr("would delete: 1 blobs (5000 bytes)"));
  CommandResult missing = RunPier({"registry", "tags", "no/such"}, env);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.output, HasSubstr("repository no/such not found"));

  // Delete the manifest (its tags go with it), then GC with no grace.
  grpc::ClientContext c4;
  v1::DeleteManifestRequest del;
  del.set_repository("team/app");
  del.set_digest(presp.digest());
  v1::DeleteManifestResponse dresp;
  ASSERT_TRUE(stub_->DeleteManifest(&c4, del, &dresp).ok());
  EXPECT_EQ(dresp.deleted_tags_size(), 4);
  grpc::ClientContext c5;
  v1::GarbageCollectRequest gc;
  gc.mutable_min_blob_age()->set_seconds(0);
  v1::GarbageCollectResponse gcr;
  ASSERT_TRUE(stub_->GarbageCollect(&c5, gc, &gcr).ok());
  // config, layer, orphan and the manifest's own bytes.
  EXPECT_EQ(gcr.blobs_deleted(), 4);
  grpc::Status s;
  Read("team/app", ld, 0, 0, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  Read("team/copy", ld, 0, 0, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
}

// In token mode, gRPC callers present the HTTP token endpoint's tokens as
// "authorization" metadata, or a client certificate the server verified.
TEST(RegistryGrpcAuthTest, TokensAndClientCertificates) {
  TempDir dir;
  std::string htpasswd = dir.Sub("htpasswd");
  ASSERT_EQ(std::system(("htpasswd -cbB " + htpasswd + " alice s3cret 2>/dev/null").c_str()), 0);
  std::string certs = dir.Sub("certs");
  std::string script = absl::StrCat(
      "set -e; mkdir -p ", certs, "; cd ", certs, "; exec >/dev/null 2>&1;",
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=ca;",
      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1;",
      "printf 'subjectAltName=IP:127.0.0.1' > san.ext;",
      "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt "
      "-days 1 -extfile san.ext;",
      "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=runtime;",
      "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt "
      "-days 1;");
  ASSERT_EQ(std::system(script.c_str()), 0);
  DaemonProcess d;
  ASSERT_OK(d.Start("pier-registry",
                    {"--listen=127.0.0.1:0", "--http-listen=127.0.0.1:0", "--root=" + dir.Sub("r"),
                     "--auth=token", "--htpasswd=" + htpasswd,
                     "--tls-cert=" + certs + "/server.crt", "--tls-key=" + certs + "/server.key"},
                    {"grpc", "http"}));
  // A token for team/a, from the HTTP token endpoint (over TLS).
  std::string token_json = dir.Sub("token.json");
  std::string curl = absl::StrCat(
      "curl -fsS --cacert ", certs, "/ca.crt -u alice:s3cret 'https://", d.Address("http"),
      "/token?service=pier-registry&scope=repository:team/a:pull,push' > ", token_json);
  ASSERT_EQ(std::system(curl.c_str()), 0);
  ASSERT_OK_AND_ASSIGN(std::string body, ReadFile(token_json));
  size_t at = body.find("\"token\":\"");
  ASSERT_NE(at, std::string::npos) << body;
  std::string token = body.substr(at + 9, body.find('"', at + 9) - at - 9);

  auto stat = [&](const rpc::TlsFiles& tls, const std::string& repo,
                  const std::string& authorization) {
    auto channel = rpc::MakeChannel(d.Address(), tls);
    EXPECT_OK(channel);
    auto stub = v1::RegistryService::NewStub(*channel);
    grpc::ClientContext ctx;
    if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
    v1::ListTagsRequest req;
    req.set_repository(repo);
    v1::ListTagsResponse resp;
    return stub->ListTags(&ctx, req, &resp).error_code();
  };
  rpc::TlsFiles server_only{"", "", certs + "/ca.crt"};
  // No credentials: refused. A token for team/a: allowed there (the
  // repository does not exist yet: NOT_FOUND), refused on team/b.
  EXPECT_EQ(stat(server_only, "team/a", ""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(stat(server_only, "team/a", "Bearer " + token), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(stat(server_only, "team/b", "Bearer " + token), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(stat(server_only, "team/a", "Bearer " + token + "x"),
            grpc::StatusCode::UNAUTHENTICATED);
  // A client certificate signed by the CA the server trusts... which this
  // server was not given (no --tls-client-ca): still refused.
  rpc::TlsFiles client{certs + "/client.crt", certs + "/client.key", certs + "/ca.crt"};
  EXPECT_EQ(stat(client, "team/b", ""), grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_OK(d.Stop(SIGTERM, std::chrono::seconds(5)).status());
  // With --tls-client-ca the verified certificate is the credential.
  ASSERT_OK(
      d.Start("pier-registry",
              {"--listen=127.0.0.1:0", "--http-listen=127.0.0.1:0", "--root=" + dir.Sub("r"),
               "--auth=token", "--htpasswd=" + htpasswd, "--tls-cert=" + certs + "/server.crt",
               "--tls-key=" + certs + "/server.key", "--tls-client-ca=" + certs + "/ca.crt"},
              {"grpc", "http"}));
  EXPECT_EQ(stat(client, "team/b", ""), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(stat(server_only, "team/b", ""), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace pier::testing
