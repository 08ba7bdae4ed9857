#include "services/registry/http/auth_hook.h"

#include "absl/strings/str_cat.h"
#include "services/registry/http/metrics.h"
#include "services/registry/storage/errors.h"

namespace pier::registry {
namespace {

using auth::Action;
using auth::AuthMode;

Action ActionFor(const http::Request& req, const Route& route) {
  const std::string& m = req.method;
  switch (route.kind) {
    case Route::kCatalog:
      return Action::kCatalog;
    case Route::kStartUpload:
    case Route::kUpload:
      return Action::kPush;
    case Route::kBlob:
    case Route::kManifest:
      if (m == "DELETE") return Action::kDelete;
      if (m == "PUT" || m == "POST" || m == "PATCH") return Action::kPush;
      return Action::kPull;
    default:
      return Action::kPull;
  }
}

}  // namespace

AuthorizeFn MakeHttpAuthorizer(const auth::Authorizer* authorizer) {
  return [authorizer](http::Request& req, http::ResponseWriter& w,
                      const Route& route) -> absl::Status {
    const auth::AuthConfig& cfg = authorizer->config();
    if (cfg.mode == AuthMode::kNone) return absl::OkStatus();
    Action action = ActionFor(req, route);
    auto challenge = [&](absl::string_view error) {
      std::string c = authorizer->Challenge(route.repo, action, error);
      if (!c.empty()) w.SetHeader("WWW-Authenticate", c);
    };
    absl::StatusOr<auth::Identity> id = authorizer->Authenticate(req.Header("Authorization"));
    if (!id.ok()) {
      challenge(cfg.mode == AuthMode::kToken ? "invalid_token" : "");
      return RegistryError(ErrorCode::kUnauthorized, id.status().message());
    }
    if (RequestStats* stats = CurrentRequestStats()) stats->user = id->user;
    if (route.kind == Route::kBase) {
      // GET /v2/ only asks "who are you?".
      if (id->anonymous() && id->source == auth::Identity::Source::kAnonymous &&
          !cfg.anonymous_pull) {
        w.SetHeader("WWW-Authenticate", authorizer->Challenge("", Action::kPull));
        return RegistryError(ErrorCode::kUnauthorized, "authentication required");
      }
      return absl::OkStatus();
    }
    absl::Status s = authorizer->Authorize(*id, route.repo, action);
    if (s.ok()) {
      // A mount needs pull on its source; without it, upload instead.
      if (route.kind == Route::kStartUpload) {
        std::optional<absl::string_view> from = req.Query("from");
        if (from && !authorizer->Authorize(*id, *from, Action::kPull).ok()) {
          std::erase_if(req.query, [](const auto& kv) { return kv.first == "mount"; });
        }
      }
      return absl::OkStatus();
    }
    if (absl::IsInvalidArgument(s)) return RegistryError(ErrorCode::kNameInvalid, s.message());
    if (absl::IsUnauthenticated(s)) {
      challenge("");
      return RegistryError(ErrorCode::kUnauthorized, s.message());
    }
    if (cfg.mode == AuthMode::kToken) {
      challenge("insufficient_scope");
      return RegistryError(ErrorCode::kUnauthorized, s.message());
    }
    return RegistryError(ErrorCode::kDenied, s.message());
  };
}

void ServeToken(const auth::Authorizer& authorizer, http::Request& req, http::ResponseWriter& w) {
  if (req.method != "GET") {
    return SendError(w, RegistryError(ErrorCode::kUnsupported, "the token endpoint takes GET"));
  }
  std::vector<std::string> scopes;
  for (const auto& [k, v] : req.query) {
    if (k == "scope") scopes.push_back(v);
  }
  absl::StatusOr<auth::TokenResponse> token =
      authorizer.IssueToken(req.Header("Authorization"), req.Query("service").value_or(""), scopes,
                            req.Query("account").value_or(""));
  if (!token.ok()) {
    if (absl::IsUnauthenticated(token.status())) {
      w.SetHeader("WWW-Authenticate", "Basic realm=\"pier-registry\"");
      return SendError(w, RegistryError(ErrorCode::kUnauthorized, token.status().message()));
    }
    return SendError(w, token.status());
  }
  w.SetHeader("Content-Type", "application/json");
  w.SetHeader("Cache-Control", "no-store");
  (void)w.Send(token->ToJson());
}

}  // namespace pier::registry
