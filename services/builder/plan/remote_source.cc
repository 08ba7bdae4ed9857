#include "services/builder/plan/remote_source.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "lib/common/status.h"
#include "lib/http/url.h"
#include "nlohmann/json.hpp"

namespace pier::builder {
namespace {

constexpr char kPrefix[] = "remote/";

struct Validators {
  std::string etag;
  std::string last_modified;
  std::string digest;
  uint64_t size = 0;
};

std::optional<Validators> LoadValidators(kv::KvStore* kv, const std::string& url) {
  absl::StatusOr<std::optional<std::string>> v = kv->Find(kPrefix + url);
  if (!v.ok() || !*v) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(**v, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  Validators out;
  out.etag = j.value("etag", "");
  out.last_modified = j.value("last_modified", "");
  out.digest = j.value("digest", "");
  out.size = j.value("size", uint64_t{0});
  return out;
}

absl::Status StoreValidators(kv::KvStore* kv, const std::string& url, const RemoteFile& f) {
  nlohmann::json j = {{"etag", f.etag},
                      {"last_modified", f.last_modified},
                      {"digest", f.digest.str()},
                      {"size", f.size}};
  kv::Batch b;
  b.Put(kPrefix + url, j.dump());
  b.set_sync(false);  // losing it only costs one download
  return kv->Write(b);
}

}  // namespace

bool IsRemoteUrl(absl::string_view source) {
  return absl::StartsWithIgnoreCase(source, "http://") ||
         absl::StartsWithIgnoreCase(source, "https://");
}

std::string FileNameFromUrl(absl::string_view url) {
  absl::StatusOr<http::Url> u = http::ParseUrl(url);
  if (!u.ok()) return "";
  absl::string_view path = u->target;
  if (size_t q = path.find('?'); q != absl::string_view::npos) path = path.substr(0, q);
  if (path.empty() || path.back() == '/') return "";
  absl::string_view last = path.substr(path.rfind('/') + 1);
  absl::StatusOr<std::string> name = http::PercentDecode(last);
  if (!name.ok() || name->empty() || *name == "." || *name == ".." ||
      name->find('/') != std::string::npos || name->find('\0') != std::string::npos) {
    return "";
  }
  return *name;
}

std::optional<int64_t> ParseHttpDate(absl::string_view text) {
  std::string s(text);
  for (const char* format :
       {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    absl::Time t;
    std::string err;
    if (absl::ParseTime(format, s, absl::UTCTimeZone(), &t, &err)) return absl::ToUnixSeconds(t);
  }
  return std::nullopt;
}

absl::StatusOr<http::Client*> RemoteFetcher::Client() {
  std::lock_guard<std::mutex> l(mu_);
  if (client_ == nullptr) {
    http::ClientOptions options;
    options.user_agent = "pier-builder";
    ASSIGN_OR_RETURN(client_, http::Client::Create(options));
  }
  return client_.get();
}

absl::StatusOr<RemoteFile> RemoteFetcher::Fetch(const std::string& url, const std::string& ref) {
  if (!IsRemoteUrl(url)) return absl::InvalidArgumentError("not an http(s) URL: " + url);
  ASSIGN_OR_RETURN(http::Client * client, Client());
  http::ClientRequest req;
  req.url = url;
  std::optional<Validators> known = LoadValidators(kv_, url);
  std::optional<oci::Digest> known_digest;
  if (known && !known->etag.empty()) {
    absl::StatusOr<oci::Digest> d = oci::Digest::Parse(known->digest);
    if (d.ok() && content_->Info(*d).ok()) {
      known_digest = *d;
      req.headers.Set("If-None-Match", known->etag);
    }
  }
  absl::StatusOr<http::ClientResponse> resp = client->Do(req);
  if (!resp.ok()) return Annotate(resp.status(), "GET " + url);
  RemoteFile f;
  f.url = url;
  if (resp->status() == 304 && known_digest) {
    f.digest = *known_digest;
    f.size = known->size;
    f.etag = known->etag;
    f.last_modified = known->last_modified;
    f.mtime_unix = ParseHttpDate(f.last_modified);
    f.revalidated = true;
    return f;
  }
  if (resp->status() != 200) {
    std::string msg = absl::StrCat("GET ", url, ": the server answered HTTP ", resp->status());
    switch (resp->status()) {
      case 404:
      case 410:
        return absl::NotFoundError(msg);
      case 401:
      case 403:
        return absl::PermissionDeniedError(msg);
      default:
        return absl::UnavailableError(msg);
    }
  }
  f.etag = std::string(resp->Header("ETag").value_or(""));
  f.last_modified = std::string(resp->Header("Last-Modified").value_or(""));
  f.mtime_unix = ParseHttpDate(f.last_modified);
  ASSIGN_OR_RETURN(std::unique_ptr<content::ContentWriter> w, content_->OpenWriter(ref));
  std::string buf(1 << 16, '\0');
  for (;;) {
    absl::StatusOr<size_t> n = resp->ReadBody(buf.data(), buf.size());
    absl::Status s = n.ok() ? absl::OkStatus() : Annotate(n.status(), "GET " + url);
    if (s.ok() && *n == 0) break;
    if (s.ok()) s = w->Write(absl::string_view(buf.data(), *n));
    if (!s.ok()) {
      (void)w->Abort();
      return s;
    }
  }
  f.size = w->Offset();
  f.digest = w->Digest();
  if (resp->content_length() && *resp->content_length() != f.size) {
    (void)w->Abort();
    return absl::UnavailableError(
        absl::StrCat("GET ", url, ": got ", f.size, " bytes of ", *resp->content_length()));
  }
  ASSIGN_OR_RETURN(content::Info info, w->Commit(f.size, f.digest));
  (void)info;
  RETURN_IF_ERROR(StoreValidators(kv_, url, f));
  return f;
}

}  // namespace pier::builder
