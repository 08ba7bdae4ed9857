// Authentication and authorization for pier-registry's front doors.
//
// The HTTP (OCI distribution) and gRPC front doors hand the Authorization
// header to Authenticate(), ask Authorize() before each operation, and on
// failure answer 401 with Challenge() as WWW-Authenticate. The token
// endpoint (GET/POST <token_realm>) calls IssueToken(). Nothing here knows
// HTTP or gRPC: requests arrive as plain strings.
//
// Modes (AuthConfig::mode):
//   kNone   everyone may do everything; Authenticate ignores the header,
//           Challenge is "".
//   kBasic  "Authorization: Basic base64(user:password)" checked against an
//           htpasswd file (bcrypt); a valid user may do everything. Bearer
//           tokens are refused.
//   kToken  Docker token authentication: clients get a JWT from IssueToken
//           (authenticating there with Basic, or anonymously) and present
//           "Authorization: Bearer <jwt>"; each operation needs a grant in
//           the token's access claim. Basic is accepted only by IssueToken.
// In kBasic and kToken, a request without credentials is anonymous: it may
// pull when anonymous_pull is set, and nothing else.
//
// Ownership: an Authorizer owns its htpasswd file and token key; it keeps no
// reference to its AuthConfig argument.
// Thread safety: all methods are const and safe to call concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/registry/auth/htpasswd.h"
#include "services/registry/auth/token.h"

namespace pier::registry::auth {

enum class AuthMode { kNone, kBasic, kToken };

// Parses "none", "basic" or "token"; InvalidArgument otherwise.
absl::StatusOr<AuthMode> ParseAuthMode(absl::string_view mode);

// What a request wants to do. kCatalog lists repositories (/v2/_catalog)
// and ignores the repository argument.
enum class Action { kPull, kPush, kDelete, kCatalog };

// "pull", "push", "delete", "catalog".
absl::string_view ActionName(Action action);

// The scope a token needs for `action` on `repository`, as asked for in
// challenges: repository:<repo>:pull, repository:<repo>:pull,push (pushing
// clients also read), repository:<repo>:delete, registry:catalog:*.
ResourceScope RequiredScope(absl::string_view repository, Action action);

struct AuthConfig {
  AuthMode mode = AuthMode::kNone;
  // htpasswd file with bcrypt entries: required for kBasic; optional for
  // kToken (without it only anonymous tokens are issued).
  std::string htpasswd_path;
  // kToken: URL of the token endpoint, e.g. "https://127.0.0.1:5000/token".
  std::string token_realm;
  // kToken: the service name clients pass and tokens carry as aud.
  std::string token_service = "pier-registry";
  // kToken: the iss of issued tokens, required of presented ones.
  std::string token_issuer = "pier-registry";
  // kToken: file holding the HMAC key; created (32 random bytes, mode 0600)
  // when missing, so tokens survive restarts and are shared by instances.
  std::string token_key_path;
  // kToken: lifetime of issued tokens.
  absl::Duration token_ttl = absl::Minutes(5);
  // kBasic, kToken: requests without credentials may pull.
  bool anonymous_pull = false;
  // Time source for token times and the htpasswd reload check; null means
  // absl::Now. Tests inject a fake clock.
  std::function<absl::Time()> clock;
};

// Who made a request, as established by Authenticate().
struct Identity {
  enum class Source { kAnonymous, kPassword, kToken };

  std::string user;  // empty: anonymous (no credentials, or an anonymous token)
  Source source = Source::kAnonymous;
  // A password-authenticated user (kBasic): may do everything.
  bool all = false;
  // A token's access claim (kToken).
  std::vector<ResourceScope> granted;

  bool anonymous() const { return user.empty(); }
};

// The token endpoint's answer; ToJson() is the response body.
struct TokenResponse {
  std::string token;
  std::string access_token;  // the same token, for OAuth2 clients
  int64_t expires_in = 0;    // seconds
  std::string issued_at;     // RFC 3339, UTC
  // What the token grants (also inside the token); not part of the JSON.
  std::vector<ResourceScope> granted;

  // {"token":..., "access_token":..., "expires_in":..., "issued_at":...}
  std::string ToJson() const;
};

class Authorizer {
 public:
  // Checks `config` and loads the htpasswd file and token key it names.
  // InvalidArgument for a missing required field (see AuthConfig) or a
  // non-positive token_ttl, and as HtpasswdFile::Open and
  // LoadOrCreateTokenKey report; their I/O codes (NotFound, PermissionDenied).
  static absl::StatusOr<std::unique_ptr<Authorizer>> Create(AuthConfig config);

  Authorizer(const Authorizer&) = delete;
  Authorizer& operator=(const Authorizer&) = delete;

  // Establishes who sent a request from its Authorization header (nullopt
  // or empty: anonymous). The scheme is case-insensitive.
  // Unauthenticated when:
  //   - Basic credentials are malformed or wrong ("invalid username or
  //     password", whichever half was wrong), or sent in kToken mode;
  //   - a Bearer token is invalid (VerifyToken's reasons), or sent in
  //     kBasic mode;
  //   - the scheme is neither Basic nor Bearer.
  // In kNone mode the header is ignored and the identity is anonymous.
  // The HTTP door answers a failure with 401 and Challenge(); in kToken mode
  // with error "invalid_token" when a Bearer token was refused.
  absl::StatusOr<Identity> Authenticate(
      std::optional<absl::string_view> authorization_header) const;

  // May `identity` do `action` on `repository`? OK, or:
  //   Unauthenticated  the identity is anonymous without a token and the
  //                    action is not an allowed anonymous pull;
  //   PermissionDenied a token lacks the grant ("token does not grant push
  //                    on repository X"); in kToken mode the HTTP door should
  //                    answer 401 with Challenge(..., "insufficient_scope")
  //                    so that clients fetch a wider token;
  //   InvalidArgument  `repository` is not a valid name (except for
  //                    kCatalog, which ignores it).
  // kNone allows everything.
  absl::Status Authorize(const Identity& identity, absl::string_view repository,
                         Action action) const;

  // The WWW-Authenticate value to send with a 401 for `action` on
  // `repository`:
  //   kNone:  "" (send none);
  //   kBasic: Basic realm="pier-registry";
  //   kToken: Bearer realm="<realm>",service="<service>",scope="<scope>"
  //           with RequiredScope(); no scope when `repository` is empty and
  //           the action is not kCatalog; ,error="<error>" appended when
  //           `error` is given ("invalid_token", "insufficient_scope").
  std::string Challenge(absl::string_view repository, Action action,
                        absl::string_view error = "") const;

  // The token endpoint: authenticates `authorization_header` (Basic against
  // htpasswd, or none for anonymous), then issues a token for `service`
  // granting the requested `scopes` (ParseScopes syntax) intersected with
  // what the identity may have: an authenticated user gets pull, push and
  // delete on any repository and registry:catalog:*; an anonymous client
  // pull when anonymous_pull, else nothing (the token is still issued, with
  // empty access, as the spec allows). `account`, when given with
  // credentials, must name the authenticated user. An empty `service`
  // means token_service.
  // FailedPrecondition unless in kToken mode; InvalidArgument for another
  // service, an invalid scope or a mismatched account; Unauthenticated for
  // wrong or malformed credentials or a non-Basic scheme; Internal when
  // signing fails.
  absl::StatusOr<TokenResponse> IssueToken(std::optional<absl::string_view> authorization_header,
                                           absl::string_view service,
                                           const std::vector<std::string>& scopes,
                                           absl::string_view account) const;

  const AuthConfig& config() const { return config_; }

 private:
  Authorizer(AuthConfig config, std::unique_ptr<HtpasswdFile> htpasswd, std::string key);

  absl::Time Now() const;
  // Checks "Basic ..." credentials (the part after the scheme).
  absl::StatusOr<Identity> CheckBasic(absl::string_view credentials) const;
  // Checks a bearer token (the part after the scheme).
  absl::StatusOr<Identity> CheckBearer(absl::string_view token) const;
  // The actions of `requested` that `identity` may be granted.
  std::vector<std::string> Grantable(const Identity& identity,
                                     const ResourceScope& requested) const;

  const AuthConfig config_;
  const std::unique_ptr<HtpasswdFile> htpasswd_;  // null when no htpasswd_path
  const std::string key_;                         // empty unless kToken
};

}  // namespace pier::registry::auth
