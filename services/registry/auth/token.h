// Bearer tokens for the registry, per the Docker registry token
// authentication spec (distribution's docs/spec/auth/{token,jwt,scope}.md):
// resource scopes ("repository:library/busybox:pull,push") and compact JWS
// tokens ("header.payload.signature", base64url without padding) signed with
// HS256 (HMAC-SHA256) under a secret key kept in a file.
//
// Header:  {"alg":"HS256","typ":"JWT"}
// Claims:  {"iss":..., "sub":<user, "" when anonymous>, "aud":<service>,
//           "exp":<unix s>, "nbf":<unix s>, "iat":<unix s>, "jti":<random hex>,
//           "access":[{"type":"repository","name":"library/busybox",
//                      "actions":["pull","push"]}]}
//
// Verification accepts only alg "HS256" (never "none" or another
// algorithm, whatever the signature), compares the signature in constant
// time, requires iss and aud to match, exp to be present and exp/nbf to hold
// within kTokenClockSkew.
//
// Ownership: plain values and functions; the key is a byte string the caller
// owns. Thread safety: every function is stateless and safe to call
// concurrently.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pier::registry::auth {

// Size of a newly created token key.
inline constexpr size_t kTokenKeySize = 32;
// Tolerated difference between the issuer's and the verifier's clocks.
inline constexpr absl::Duration kTokenClockSkew = absl::Seconds(30);

// One resource scope: what a token grants or a client asks for.
struct ResourceScope {
  std::string type;                  // "repository", "registry", "repository(plugin)"
  std::string name;                  // "library/busybox", "catalog"
  std::vector<std::string> actions;  // "pull", "push", "delete", "*"

  // "type:name:action[,action...]".
  std::string ToString() const;
  bool operator==(const ResourceScope&) const = default;
};

// Parses one scope "type:name:actions". The type is [a-z0-9]+, optionally
// followed by "(" [a-z0-9]+ ")"; the name is everything between the first
// and the last ':'; for a "repository" type it must be a valid repository
// name (oci::IsValidRepository), for others non-empty without spaces,
// quotes or commas; actions are a comma-separated list of [a-z]+ or "*",
// duplicates dropped. InvalidArgument otherwise, quoting the scope.
absl::StatusOr<ResourceScope> ParseScope(absl::string_view scope);

// Parses the `scope` parameters of a token request: each parameter may hold
// several space-separated scopes (the POST form) and the parameter may be
// repeated (the GET form). Empty parameters are skipped. InvalidArgument on
// the first invalid scope.
absl::StatusOr<std::vector<ResourceScope>> ParseScopes(const std::vector<std::string>& params);

// The claims of a token.
struct TokenClaims {
  std::string issuer;                            // iss
  std::string subject;                           // sub: the user; empty for an anonymous token
  std::string audience;                          // aud: the service the token is for
  absl::Time expires_at = absl::InfinitePast();  // exp
  absl::Time not_before = absl::InfinitePast();  // nbf
  absl::Time issued_at = absl::InfinitePast();   // iat
  std::string id;                                // jti
  std::vector<ResourceScope> access;
};

// Loads the HMAC key stored at `path`, creating it with kTokenKeySize random
// bytes and mode 0600 when it does not exist (atomically: concurrent
// creators end up sharing one key). InvalidArgument when an existing key is
// shorter than kTokenKeySize bytes; errno's code (PermissionDenied,
// NotFound for a missing directory, ...) naming the path on I/O failure;
// Internal when the random generator fails.
absl::StatusOr<std::string> LoadOrCreateTokenKey(const std::string& path);

// Returns `n` random bytes as lower-case hex (2n characters), for token ids.
// Internal when the random generator fails.
absl::StatusOr<std::string> RandomHex(size_t n);

// Serializes `claims` and signs them with HS256 under `key`. Times are
// written as whole seconds since the epoch; nbf and iat are left out when
// infinite. InvalidArgument when `key` is empty or expires_at is infinite;
// Internal when HMAC fails.
absl::StatusOr<std::string> SignToken(const TokenClaims& claims, absl::string_view key);

// Signs arbitrary header and payload JSON text as a compact JWS using
// HMAC-SHA256, whatever the header says. SignToken builds on this; tests use
// it to forge tokens with other headers. InvalidArgument when `key` is
// empty; Internal when HMAC fails.
absl::StatusOr<std::string> SignJws(absl::string_view header_json, absl::string_view payload_json,
                                    absl::string_view key);

// What VerifyToken expects of a token.
struct TokenExpectations {
  std::string issuer;    // iss must equal this
  std::string audience;  // aud (a string, or an array containing it) must match
  absl::Time now;        // exp and nbf are checked against this
  absl::Duration clock_skew = kTokenClockSkew;
};

// Verifies `token` (compact JWS) under `key` and returns its claims.
// Unauthenticated, saying why, when the token is malformed, its alg is not
// HS256, its signature does not match, its issuer or audience differ, it has
// expired or is not yet valid, or its access claim is malformed;
// InvalidArgument when `key` is empty; Internal when HMAC fails.
absl::StatusOr<TokenClaims> VerifyToken(absl::string_view token, absl::string_view key,
                                        const TokenExpectations& expect);

}  // namespace pier::registry::auth
