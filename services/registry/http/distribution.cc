#include "services/registry/http/distribution.h"

#include <fcntl.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/common/fs.h"
#include "lib/common/log.h"
#include "lib/oci/types.h"
#include "nlohmann/json.hpp"
#include "services/registry/http/metrics.h"
#include "services/registry/storage/errors.h"

namespace pier::registry {
namespace {

using Json = nlohmann::json;

constexpr size_t kDefaultPage = 1000;

int HttpStatusFor(const absl::Status& s, std::string* code) {
  if (std::optional<ErrorCode> c = GetErrorCode(s)) {
    *code = std::string(ErrorCodeName(*c));
    switch (*c) {
      case ErrorCode::kBlobUnknown:
      case ErrorCode::kBlobUploadUnknown:
      case ErrorCode::kManifestUnknown:
      case ErrorCode::kNameUnknown:
        return 404;
      case ErrorCode::kManifestTooLarge:
        return 413;
      case ErrorCode::kRangeInvalid:
      case ErrorCode::kUploadOffsetMismatch:
        return 416;
      case ErrorCode::kUnauthorized:
        return 401;
      case ErrorCode::kDenied:
        return 403;
      case ErrorCode::kUnsupported:
        return 405;
      default:
        return 400;
    }
  }
  switch (s.code()) {
    case absl::StatusCode::kNotFound:
      *code = "NOT_FOUND";
      return 404;
    case absl::StatusCode::kInvalidArgument:
      *code = "BAD_REQUEST";
      return 400;
    case absl::StatusCode::kResourceExhausted:
      *code = "SIZE_INVALID";
      return 413;
    case absl::StatusCode::kUnavailable:
      *code = "UNAVAILABLE";
      return 503;
    case absl::StatusCode::kUnauthenticated:
      *code = "UNAUTHORIZED";
      return 401;
    case absl::StatusCode::kPermissionDenied:
      *code = "DENIED";
      return 403;
    case absl::StatusCode::kUnimplemented:
      *code = "UNSUPPORTED";
      return 405;
    default:
      *code = "UNKNOWN";
      return 500;
  }
}

void SendJson(http::ResponseWriter& w, int status, const Json& body,
              absl::string_view type = "application/json") {
  w.SetStatus(status);
  w.SetHeader("Content-Type", type);
  (void)w.Send(body.dump());
}

void SendEmpty(http::ResponseWriter& w, int status) {
  w.SetStatus(status);
  (void)w.Send("");
}

std::string UploadLocation(const std::string& repo, const std::string& id) {
  return absl::StrCat("/v2/", repo, "/blobs/uploads/", id);
}

// "0-<offset-1>" as the spec's Range header for an upload's progress.
std::string UploadRange(uint64_t offset) {
  return absl::StrCat("0-", offset == 0 ? 0 : offset - 1);
}

void SetUploadHeaders(http::ResponseWriter& w, const std::string& repo, const UploadInfo& up) {
  w.SetHeader("Location", UploadLocation(repo, up.id));
  w.SetHeader("Range", UploadRange(up.offset));
  w.SetHeader("Docker-Upload-UUID", up.id);
}

ChunkSource BodySource(http::Request& req) {
  return [&req](char* buf, size_t len) -> absl::StatusOr<size_t> {
    absl::StatusOr<size_t> n = req.ReadBody(buf, len);
    if (n.ok()) {
      if (RequestStats* stats = CurrentRequestStats()) stats->bytes_in += *n;
    }
    return n;
  };
}

// Counts an upload request in the in-flight gauge for its lifetime.
class InFlight {
 public:
  explicit InFlight(Metrics* m) : m_(m) {
    if (m_) m_->UploadStarted();
  }
  ~InFlight() {
    if (m_) m_->UploadEnded();
  }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  Metrics* m_;
};

void CountSent(uint64_t n) {
  if (RequestStats* stats = CurrentRequestStats()) stats->bytes_out += n;
}

// Parses a "Range: bytes=a-b" header against a blob of `size` bytes.
// Returns false for a range that cannot be satisfied.
bool ParseRange(absl::string_view header, uint64_t size, uint64_t* start, uint64_t* end) {
  if (!absl::ConsumePrefix(&header, "bytes=")) return false;
  if (header.find(',') != absl::string_view::npos) return false;  // One range only.
  std::pair<absl::string_view, absl::string_view> ab = absl::StrSplit(header, '-');
  uint64_t a = 0, b = 0;
  if (ab.first.empty()) {  // Suffix: the last N bytes.
    if (!absl::SimpleAtoi(ab.second, &b) || b == 0 || size == 0) return false;
    *start = b >= size ? 0 : size - b;
    *end = size - 1;
    return true;
  }
  if (!absl::SimpleAtoi(ab.first, &a) || a >= size) return false;
  if (ab.second.empty()) {
    b = size - 1;
  } else if (!absl::SimpleAtoi(ab.second, &b) || b < a) {
    return false;
  }
  *start = a;
  *end = std::min(b, size - 1);
  return true;
}

std::optional<size_t> PageSize(http::Request& req, absl::Status* error) {
  std::optional<absl::string_view> n = req.Query("n");
  if (!n) return std::nullopt;
  size_t v = 0;
  if (!absl::SimpleAtoi(*n, &v)) {
    *error = absl::InvalidArgumentError(absl::StrCat("invalid n=", *n));
    return std::nullopt;
  }
  return v;
}

}  // namespace

void SendError(http::ResponseWriter& w, const absl::Status& status) {
  std::string code;
  int http_status = HttpStatusFor(status, &code);
  Json body = {{"errors", Json::array({{{"code", code}, {"message", status.message()}}})}};
  SendJson(w, http_status, body);
}

absl::StatusOr<Route> ParseRoute(absl::string_view path) {
  Route r;
  if (path == "/healthz") {
    r.kind = Route::kHealth;
    return r;
  }
  if (path == "/metrics") {
    r.kind = Route::kMetrics;
    return r;
  }
  if (path == "/v2" || path == "/v2/") {
    r.kind = Route::kBase;
    return r;
  }
  auto none = [&] { return absl::NotFoundError(absl::StrCat("no such endpoint: ", path)); };
  if (!absl::ConsumePrefix(&path, "/v2/")) return none();
  if (path == "_catalog") {
    r.kind = Route::kCatalog;
    return r;
  }
  // <name>/tags/list, <name>/manifests/<ref>, <name>/blobs/uploads/[<id>],
  // <name>/blobs/<digest>, <name>/referrers/<digest>. The name may itself
  // contain these words, so match from the right.
  if (absl::EndsWith(path, "/tags/list")) {
    r.kind = Route::kTags;
    r.repo = std::string(path.substr(0, path.size() - 10));
    return r;
  }
  if (absl::EndsWith(path, "/blobs/uploads") || absl::EndsWith(path, "/blobs/uploads/")) {
    r.kind = Route::kStartUpload;
    r.repo = std::string(path.substr(0, path.rfind("/blobs/uploads")));
    return r;
  }
  size_t last_slash = path.rfind('/');
  if (last_slash == absl::string_view::npos || last_slash == 0) return none();
  r.leaf = std::string(path.substr(last_slash + 1));
  absl::string_view head = path.substr(0, last_slash);
  struct Suffix {
    absl::string_view text;
    Route::Kind kind;
  };
  for (const Suffix& sfx :
       {Suffix{"/blobs/uploads", Route::kUpload}, Suffix{"/blobs", Route::kBlob},
        Suffix{"/manifests", Route::kManifest}, Suffix{"/referrers", Route::kReferrers}}) {
    if (absl::EndsWith(head, sfx.text)) {
      r.kind = sfx.kind;
      r.repo = std::string(head.substr(0, head.size() - sfx.text.size()));
      return r;
    }
  }
  return none();
}

void DistributionApi::Handle(http::Request& req, http::ResponseWriter& w) {
  w.SetHeader("Docker-Distribution-API-Version", "registry/2.0");
  absl::StatusOr<Route> route = ParseRoute(req.path);
  if (!route.ok()) return SendError(w, route.status());
  switch (route->kind) {
    case Route::kHealth:
      w.SetHeader("Content-Type", "text/plain");
      (void)w.Send("ok\n");
      return;
    case Route::kMetrics:
      w.SetHeader("Content-Type", "text/plain; version=0.0.4");
      (void)w.Send(metrics_ != nullptr ? metrics_->Render() : "");
      return;
    default:
      break;
  }
  if (authorize_) {
    absl::Status s = authorize_(req, w, *route);
    if (!s.ok()) return SendError(w, s);
  }
  switch (route->kind) {
    case Route::kBase:
      return Base(req, w);
    case Route::kCatalog:
      return Catalog(req, w);
    case Route::kTags:
      return Tags(req, w, route->repo);
    case Route::kStartUpload:
      return StartUpload(req, w, route->repo);
    case Route::kUpload:
      return Upload(req, w, route->repo, route->leaf);
    case Route::kBlob:
      return Blob(req, w, route->repo, route->leaf);
    case Route::kManifest:
      return Manifest(req, w, route->repo, route->leaf);
    case Route::kReferrers:
      return Referrers(req, w, route->repo, route->leaf);
    default:
      return SendError(w, absl::NotFoundError("no such endpoint"));
  }
}

void DistributionApi::Base(http::Request& req, http::ResponseWriter& w) {
  if (req.method != "GET" && req.method != "HEAD") {
    return SendError(w, RegistryError(ErrorCode::kUnsupported, "use GET /v2/"));
  }
  SendJson(w, 200, Json::object());
}

void DistributionApi::Catalog(http::Request& req, http::ResponseWriter& w) {
  absl::Status error;
  std::optional<size_t> n = PageSize(req, &error);
  if (!error.ok()) return SendError(w, error);
  std::string last(req.Query("last").value_or(""));
  bool more = false;
  absl::StatusOr<std::vector<std::string>> repos =
      registry_->ListRepositories(n.value_or(kDefaultPage), last, &more);
  if (!repos.ok()) return SendError(w, repos.status());
  if (more && !repos->empty()) {
    w.SetHeader("Link", absl::StrCat("</v2/_catalog?n=", n.value_or(kDefaultPage), "&last=",
                                     http::PercentEncode(repos->back()), ">; rel=\"next\""));
  }
  SendJson(w, 200, Json{{"repositories", *repos}});
}

void DistributionApi::Tags(http::Request& req, http::ResponseWriter& w, const std::string& repo) {
  if (req.method != "GET" && req.method != "HEAD") {
    return SendError(w, RegistryError(ErrorCode::kUnsupported, "tags/list takes GET"));
  }
  absl::Status error;
  std::optional<size_t> n = PageSize(req, &error);
  if (!error.ok()) return SendError(w, error);
  std::string last(req.Query("last").value_or(""));
  bool more = false;
  // n=0 asks for an empty list, as the spec allows.
  if (n && *n == 0) {
    absl::StatusOr<std::vector<std::string>> probe = registry_->ListTags(repo, 1, last);
    if (!probe.ok()) return SendError(w, probe.status());
    return SendJson(w, 200, Json{{"name", repo}, {"tags", Json::array()}});
  }
  absl::StatusOr<std::vector<std::string>> tags =
      registry_->ListTags(repo, n.value_or(0), last, &more);
  if (!tags.ok()) return SendError(w, tags.status());
  if (more && !tags->empty()) {
    w.SetHeader("Link", absl::StrCat("</v2/", repo, "/tags/list?n=", *n, "&last=",
                                     http::PercentEncode(tags->back()), ">; rel=\"next\""));
  }
  SendJson(w, 200, Json{{"name", repo}, {"tags", *tags}});
}

void DistributionApi::Blob(http::Request& req, http::ResponseWriter& w, const std::string& repo,
                           const std::string& digest) {
  if (req.method == "DELETE") {
    absl::Status s = registry_->DeleteBlob(repo, digest);
    if (!s.ok()) return SendError(w, s);
    return SendEmpty(w, 202);
  }
  if (req.method != "GET" && req.method != "HEAD") {
    return SendError(w, RegistryError(ErrorCode::kUnsupported,
                                      absl::StrCat(req.method, " is not allowed on blobs")));
  }
  absl::StatusOr<BlobInfo> info = registry_->StatBlob(repo, digest);
  if (!info.ok()) return SendError(w, info.status());
  uint64_t start = 0, end = info->size == 0 ? 0 : info->size - 1;
  bool partial = false;
  if (std::optional<absl::string_view> range = req.Header("Range")) {
    if (!ParseRange(*range, info->size, &start, &end)) {
      w.SetHeader("Content-Range", absl::StrCat("bytes */", info->size));
      return SendError(w, RegistryError(ErrorCode::kRangeInvalid,
                                        absl::StrCat("range \"", *range, "\" not satisfiable for ",
                                                     info->size, " bytes")));
    }
    partial = true;
  }
  uint64_t length = info->size == 0 ? 0 : end - start + 1;
  w.SetHeader("Docker-Content-Digest", info->digest.str());
  w.SetHeader("Content-Type", "application/octet-stream");
  w.SetHeader("Accept-Ranges", "bytes");
  w.SetHeader("ETag", absl::StrCat("\"", info->digest.str(), "\""));
  w.SetHeader("Cache-Control", "max-age=31536000");
  if (partial) {
    w.SetStatus(206);
    w.SetHeader("Content-Range", absl::StrCat("bytes ", start, "-", end, "/", info->size));
  }
  if (req.method == "HEAD") {
    (void)w.Start(length);
    (void)w.Finish();
    return;
  }
  std::optional<std::string> local;
  if (use_sendfile_) local = registry_->LocalBlobPath(info->digest);
  if (local) {
    UniqueFd fd(::open(local->c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.valid()) {
      if (w.SendFile(fd.get(), start, length).ok()) CountSent(length);
      return;
    }
  }
  absl::StatusOr<std::unique_ptr<content::FileReader>> reader =
      registry_->OpenBlob(repo, digest, start);
  if (!reader.ok()) return SendError(w, reader.status());
  if (!w.Start(length).ok()) return;
  // 256 KiB: small enough that the pages read stay in cache for the write.
  std::string buf(256 << 10, '\0');
  uint64_t left = length;
  while (left > 0) {
    absl::StatusOr<size_t> n = (*reader)->Read(buf.data(), std::min<uint64_t>(buf.size(), left));
    if (!n.ok() || *n == 0) {
      PIER_LOG(ERROR) << "blob " << digest
                      << " read failed: " << (n.ok() ? "short read" : n.status().ToString());
      return;  // The writer closes the connection on an incomplete body.
    }
    if (!w.Write(absl::string_view(buf.data(), *n)).ok()) return;
    CountSent(*n);
    left -= *n;
  }
  (void)w.Finish();
}

void DistributionApi::StartUpload(http::Request& req, http::ResponseWriter& w,
                                  const std::string& repo) {
  if (req.method != "POST") {
    return SendError(w, RegistryError(ErrorCode::kUnsupported, "start an upload with POST"));
  }
  std::optional<absl::string_view> mount = req.Query("mount");
  std::optional<absl::string_view> from = req.Query("from");
  if (mount && from) {
    absl::StatusOr<BlobInfo> b = registry_->MountBlob(repo, *from, *mount);
    if (b.ok()) {
      w.SetHeader("Location", absl::StrCat("/v2/", repo, "/blobs/", b->digest.str()));
      w.SetHeader("Docker-Content-Digest", b->digest.str());
      return SendEmpty(w, 201);
    }
    if (!absl::IsNotFound(b.status()) && !absl::IsInvalidArgument(b.status())) {
      return SendError(w, b.status());
    }
    // Fall through to a new session, as the spec says.
  }
  absl::StatusOr<UploadInfo> up = registry_->StartUpload(repo);
  if (!up.ok()) return SendError(w, up.status());
  if (std::optional<absl::string_view> digest = req.Query("digest")) {
    // Monolithic upload: the body is the whole blob.
    InFlight in_flight(metrics_);
    absl::StatusOr<UploadInfo> wrote = registry_->AppendUpload(repo, up->id, 0, BodySource(req));
    if (!wrote.ok()) {
      (void)registry_->CancelUpload(repo, up->id);
      return SendError(w, wrote.status());
    }
    absl::StatusOr<BlobInfo> b = registry_->CommitUpload(repo, up->id, *digest);
    if (!b.ok()) {
      (void)registry_->CancelUpload(repo, up->id);
      return SendError(w, b.status());
    }
    w.SetHeader("Location", absl::StrCat("/v2/", repo, "/blobs/", b->digest.str()));
    w.SetHeader("Docker-Content-Digest", b->digest.str());
    return SendEmpty(w, 201);
  }
  SetUploadHeaders(w, repo, *up);
  SendEmpty(w, 202);
}

void DistributionApi::Upload(http::Request& req, http::ResponseWriter& w, const std::string& repo,
                             const std::string& id) {
  if (req.method == "GET") {
    absl::StatusOr<UploadInfo> up = registry_->GetUpload(repo, id);
    if (!up.ok()) return SendError(w, up.status());
    SetUploadHeaders(w, repo, *up);
    return SendEmpty(w, 204);
  }
  if (req.method == "DELETE") {
    absl::Status s = registry_->CancelUpload(repo, id);
    if (!s.ok()) return SendError(w, s);
    return SendEmpty(w, 204);
  }
  if (req.method == "PATCH" || req.method == "PUT") {
    InFlight in_flight(metrics_);
    std::optional<uint64_t> start;
    if (std::optional<absl::string_view> cr = req.Header("Content-Range")) {
      absl::string_view v = *cr;
      absl::ConsumePrefix(&v, "bytes ");
      absl::ConsumePrefix(&v, "bytes=");
      std::pair<absl::string_view, absl::string_view> ab = absl::StrSplit(v, '-');
      uint64_t a = 0;
      if (!absl::SimpleAtoi(ab.first, &a)) {
        return SendError(w, RegistryError(ErrorCode::kBlobUploadInvalid,
                                          absl::StrCat("malformed Content-Range \"", *cr, "\"")));
      }
      start = a;
    }
    bool has_body = (req.content_length && *req.content_length > 0) || req.chunked;
    absl::StatusOr<UploadInfo> up;
    if (has_body || req.method == "PATCH") {
      up = registry_->AppendUpload(repo, id, start, BodySource(req));
    } else {
      up = registry_->GetUpload(repo, id);
    }
    if (!up.ok()) {
      if (GetErrorCode(up.status()) == ErrorCode::kUploadOffsetMismatch) {
        absl::StatusOr<UploadInfo> now = registry_->GetUpload(repo, id);
        if (now.ok()) SetUploadHeaders(w, repo, *now);
      }
      return SendError(w, up.status());
    }
    if (req.method == "PATCH") {
      SetUploadHeaders(w, repo, *up);
      return SendEmpty(w, 202);
    }
    std::optional<absl::string_view> digest = req.Query("digest");
    if (!digest) {
      return SendError(
          w, RegistryError(ErrorCode::kDigestInvalid, "PUT to finish an upload needs ?digest="));
    }
    absl::StatusOr<BlobInfo> b = registry_->CommitUpload(repo, id, *digest);
    if (!b.ok()) return SendError(w, b.status());
    w.SetHeader("Location", absl::StrCat("/v2/", repo, "/blobs/", b->digest.str()));
    w.SetHeader("Docker-Content-Digest", b->digest.str());
    return SendEmpty(w, 201);
  }
  SendError(w, RegistryError(ErrorCode::kUnsupported,
                             absl::StrCat(req.method, " is not allowed on uploads")));
}

void DistributionApi::Manifest(http::Request& req, http::ResponseWriter& w, const std::string& repo,
                               const std::string& reference) {
  if (req.method == "PUT") {
    std::string type(req.Header("Content-Type").value_or(""));
    if (size_t semi = type.find(';'); semi != std::string::npos) type.resize(semi);
    // Read one byte past the bound so an oversized body is told apart.
    absl::StatusOr<std::string> body = req.ReadAllBody((4 << 20) + 1);
    if (body.ok()) {
      if (RequestStats* stats = CurrentRequestStats()) stats->bytes_in += body->size();
    }
    if (!body.ok()) {
      if (absl::IsResourceExhausted(body.status())) {
        return SendError(w, RegistryError(ErrorCode::kManifestTooLarge,
                                          "manifest is over the limit of 4194304 bytes"));
      }
      return SendError(w, body.status());
    }
    absl::StatusOr<ManifestInfo> m = registry_->PutManifest(repo, reference, type, *body);
    if (!m.ok()) return SendError(w, m.status());
    w.SetHeader("Location", absl::StrCat("/v2/", repo, "/manifests/", m->digest.str()));
    w.SetHeader("Docker-Content-Digest", m->digest.str());
    if (absl::StrContains(*body, "\"subject\"")) {
      std::optional<oci::Descriptor> subject;
      if (oci::IsIndexMediaType(m->media_type)) {
        absl::StatusOr<oci::Index> x = oci::Index::Parse(*body);
        if (x.ok()) subject = x->subject;
      } else {
        absl::StatusOr<oci::Manifest> x = oci::Manifest::Parse(*body);
        if (x.ok()) subject = x->subject;
      }
      if (subject) w.SetHeader("OCI-Subject", subject->digest.str());
    }
    return SendEmpty(w, 201);
  }
  if (req.method == "DELETE") {
    absl::Status s = reference.find(':') != std::string::npos
                         ? registry_->DeleteManifest(repo, reference)
                         : registry_->DeleteTag(repo, reference);
    if (!s.ok()) return SendError(w, s);
    return SendEmpty(w, 202);
  }
  if (req.method != "GET" && req.method != "HEAD") {
    return SendError(w, RegistryError(ErrorCode::kUnsupported,
                                      absl::StrCat(req.method, " is not allowed on manifests")));
  }
  absl::StatusOr<ManifestInfo> m =
      registry_->GetManifest(repo, reference, /*with_bytes=*/req.method == "GET");
  if (!m.ok()) return SendError(w, m.status());
  w.SetHeader("Content-Type", m->media_type);
  w.SetHeader("Docker-Content-Digest", m->digest.str());
  w.SetHeader("ETag", absl::StrCat("\"", m->digest.str(), "\""));
  if (req.method == "HEAD") {
    (void)w.Start(m->size);
    (void)w.Finish();
    return;
  }
  if (w.Send(m->bytes).ok()) CountSent(m->bytes.size());
}

void DistributionApi::Referrers(http::Request& req, http::ResponseWriter& w,
                                const std::string& repo, const std::string& digest) {
  if (req.method != "GET") {
    return SendError(w, RegistryError(ErrorCode::kUnsupported, "referrers take GET"));
  }
  std::string artifact_type(req.Query("artifactType").value_or(""));
  absl::StatusOr<std::vector<oci::Descriptor>> refs =
      registry_->ListReferrers(repo, digest, artifact_type);
  if (!refs.ok()) return SendError(w, refs.status());
  oci::Index index;
  index.media_type = oci::kOciIndex;
  index.manifests = std::move(*refs);
  if (!artifact_type.empty()) w.SetHeader("OCI-Filters-Applied", "artifactType");
  w.SetStatus(200);
  w.SetHeader("Content-Type", oci::kOciIndex);
  (void)w.Send(index.ToJson());
}

}  // namespace pier::registry
