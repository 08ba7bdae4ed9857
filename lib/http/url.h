// URLs and percent-encoding for Pier's HTTP server and client.
//
// Url is the parsed form of an absolute http:// or https:// URL as the client
// needs it (scheme, host, port, request target). ResolveUrl turns a Location
// header (absolute, scheme-relative, absolute-path or relative) into the URL to
// follow, per RFC 3986 section 5.2. The percent-encoding helpers are what the
// server uses to decode request paths and queries, and what callers use to
// build targets (`?digest=sha256%3A...`).
//
// Thread safety: stateless functions and value types.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pier::http {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

struct Url {
  std::string scheme;  // "http" or "https", lower case
  std::string host;    // "registry.example" or "::1" (no brackets)
  uint16_t port = 0;   // explicit port, else 80 or 443
  std::string target;  // path and query as sent on the wire: "/v2/?n=1"; at least "/"

  bool tls() const { return scheme == "https"; }
  // "host:port" with IPv6 brackets, always with the port; identifies a server.
  std::string HostPort() const;
  // The Host header value: like HostPort() but without the default port.
  std::string Authority() const;
  // "scheme://authority/target".
  std::string ToString() const;
};

// Parses an absolute http(s) URL. The fragment is dropped; user information
// ("user:pass@") is refused. InvalidArgument naming the URL when it is not an
// absolute http or https URL, has an empty host or a bad port, or contains a
// space or control character (those must be percent-encoded).
absl::StatusOr<Url> ParseUrl(absl::string_view url);

// Resolves `ref` (a Location header value) against `base`. InvalidArgument
// when `ref` contains a space or control character or is an absolute URL
// that ParseUrl refuses.
absl::StatusOr<Url> ResolveUrl(const Url& base, absl::string_view ref);

// Decodes %XX escapes; with `plus_is_space` also '+' as ' ' (query strings).
// InvalidArgument for a '%' not followed by two hex digits.
absl::StatusOr<std::string> PercentDecode(absl::string_view in, bool plus_is_space = false);

// Escapes every byte outside RFC 3986's unreserved set (ALPHA DIGIT - . _ ~),
// plus '/' unless `keep_slash` is true. Suitable for path segments and query
// keys and values.
std::string PercentEncode(absl::string_view in, bool keep_slash = false);

// Parses "a=1&b=x%20y&c" into decoded pairs, order kept ("c" maps to "").
// InvalidArgument for a bad escape.
absl::StatusOr<QueryParams> ParseQuery(absl::string_view raw);

// The inverse of ParseQuery: "a=1&b=x%20y".
std::string EncodeQuery(const QueryParams& params);

}  // namespace pier::http
