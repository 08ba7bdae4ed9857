// Remote sources of ADD: files named by http:// and https:// URLs.
//
// RemoteFetcher::Fetch() makes the content of a URL available in the
// content store and describes it (digest, size, ETag, Last-Modified). The
// validators of the last fetch of each URL are kept in the kv store (key
// "remote/<url>", JSON); when that fetch had an ETag and its content is
// still stored, the GET carries If-None-Match and a 304 answer costs no
// transfer. Without an ETag the file is downloaded again and identified by
// its digest: Last-Modified alone has a one-second resolution and cannot
// tell a same-second change apart. The caller puts the URL, validators and
// digest into the step's cache key, so a changed remote file rebuilds from
// its step and an unchanged one hits the cache.
//
// Errors of Fetch: InvalidArgument for a URL that is not http(s); the HTTP
// client's codes (Unavailable when the server cannot be reached,
// DeadlineExceeded); NotFound for a 404 or 410 answer, PermissionDenied for
// 401/403, Unavailable for any other non-200 answer, each naming the URL
// and the status; the content store's codes.
// Ownership: borrows the content and kv stores. Thread safety: Fetch may be
// called from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/content/content_store.h"
#include "lib/http/client.h"
#include "lib/kv/kv_store.h"
#include "lib/oci/digest.h"

namespace pier::builder {

struct RemoteFile {
  std::string url;
  oci::Digest digest;  // of the content, which is in the content store
  uint64_t size = 0;
  std::string etag;                   // the ETag header, as sent ("" when none)
  std::string last_modified;          // the Last-Modified header, as sent
  std::optional<int64_t> mtime_unix;  // Last-Modified, when it parses
  bool revalidated = false;           // the server answered 304 Not Modified
};

class RemoteFetcher {
 public:
  RemoteFetcher(content::ContentStore* content, kv::KvStore* kv) : content_(content), kv_(kv) {}

  // Fetches `url` (see the file comment). `ref` names the content store
  // ingest and must be unique among concurrent fetches.
  absl::StatusOr<RemoteFile> Fetch(const std::string& url, const std::string& ref);

 private:
  absl::StatusOr<http::Client*> Client();

  content::ContentStore* content_;
  kv::KvStore* kv_;
  std::mutex mu_;
  std::unique_ptr<http::Client> client_;  // guarded by mu_ while created
};

// Whether ADD treats `source` as a URL (http:// or https://).
bool IsRemoteUrl(absl::string_view source);

// The file name a URL names: the last segment of its path, percent-decoded;
// "" when the path is empty or ends in '/', or the segment is "." or "..",
// or decodes to something containing '/' or NUL.
std::string FileNameFromUrl(absl::string_view url);

// Parses an HTTP date (RFC 9110 IMF-fixdate, "Sun, 06 Nov 1994 08:49:37
// GMT", and the obsolete RFC 850 and asctime forms) to Unix seconds;
// nullopt when it does not parse.
std::optional<int64_t> ParseHttpDate(absl::string_view text);

}  // namespace pier::builder
