// An HTTP client for one OCI registry (pier-registry or any other): sends
// /v2/ requests and answers the registry's authentication challenges as
// docker does: `WWW-Authenticate: Basic` with the stored credentials, or
// `Bearer realm=...,service=...,scope=...` by fetching a token from the
// realm (with the credentials, or anonymously) and retrying. Tokens are
// cached per scope until they expire.
//
// Scheme: https, except for loopback hosts (127.0.0.0/8, localhost, [::1])
// and hosts the caller marks insecure, which use plain http, as docker does
// for its "insecure registries".
//
// Errors: Unauthenticated when the registry wants credentials that were not
// given, or refuses the ones given (the message names the registry and says
// to run `pier login HOST`), PermissionDenied for a 403, otherwise
// the transport's Unavailable/DeadlineExceeded naming the URL.
// Thread safety: Do() may be called from several threads.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/distribution/credentials.h"
#include "lib/http/client.h"

namespace pier::distribution {

struct RegistryClientOptions {
  std::optional<Credentials> credentials;
  bool insecure = false;   // plain http even for non-loopback hosts
  bool force_tls = false;  // https even for loopback hosts
  bool tls_verify = true;
  std::string ca_file;    // PEM CA bundle trusted besides the system CAs
  std::string cert_file;  // PEM client certificate, for registries that require mTLS
  std::string key_file;   // its private key
  // Registry name -> the host[:port] that serves it, e.g. "localhost" ->
  // "127.0.0.1:5000": references keep their name, requests go to the
  // address (as registries.conf's location does).
  std::map<std::string, std::string> aliases;
};

// True for 127.0.0.0/8, localhost and [::1] (with or without a port).
bool IsLoopbackHost(absl::string_view host);

// Parses "NAME=HOST[:PORT]" entries (--registry-alias) into `out`.
// InvalidArgument naming the entry when one is malformed.
absl::Status ParseRegistryAliases(const std::vector<std::string>& entries,
                                  std::map<std::string, std::string>* out);

class RegistryClient {
 public:
  static absl::StatusOr<std::unique_ptr<RegistryClient>> Create(std::string host,
                                                                RegistryClientOptions options);

  // "http://127.0.0.1:5000" or "https://registry.example".
  const std::string& base_url() const { return base_url_; }

  // Sends `request` (its url is a path such as "/v2/library/busybox/tags/list")
  // and retries once with credentials when challenged. A request with a
  // streamed body must set rewind_body to be retried.
  absl::StatusOr<http::ClientResponse> Do(http::ClientRequest request);

  // GET /v2/ with authentication: OK when the registry accepts us.
  absl::Status Ping();

 private:
  RegistryClient(std::string host, std::string base_url, RegistryClientOptions options,
                 std::unique_ptr<http::Client> client)
      : host_(std::move(host)),
        base_url_(std::move(base_url)),
        options_(std::move(options)),
        client_(std::move(client)) {}

  // Unauthenticated: "registry HOST requires authentication<what>: run
  // `pier login HOST` first".
  absl::Status NeedLogin(absl::string_view what) const;

  // Turns a challenge into an Authorization header value.
  absl::StatusOr<std::string> Answer(absl::string_view challenge);

  std::string host_;  // as given to Create, e.g. "127.0.0.1:5000"
  std::string base_url_;
  RegistryClientOptions options_;
  std::unique_ptr<http::Client> client_;
  std::mutex mu_;
  struct Token {
    std::string value;
    absl::Time expires;
  };
  std::map<std::string, Token> tokens_;  // by "realm service scope"; guarded by mu_
  std::string last_authorization_;       // reused for requests alike; guarded by mu_
};

// Parses `Scheme k="v",k2="v2"` into the scheme (lower-cased) and params.
std::pair<std::string, std::map<std::string, std::string>> ParseChallenge(absl::string_view header);

}  // namespace pier::distribution
