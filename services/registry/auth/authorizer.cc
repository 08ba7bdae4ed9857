#include "services/registry/auth/authorizer.h"

#include <algorithm>
#include <utility>

#include <openssl/crypto.h>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/common/status.h"
#include "lib/oci/reference.h"

namespace pier::registry::auth {
namespace {

// The realm of Basic challenges.
constexpr char kBasicRealm[] = "pier-registry";
// Longest Basic credentials (base64) looked at.
constexpr size_t kMaxBasicCredentials = 4096;

struct SchemeAndValue {
  absl::string_view scheme;
  absl::string_view value;
};

// Splits "Scheme value" at the first space; surrounding spaces dropped.
SchemeAndValue SplitAuthorization(absl::string_view header) {
  header = absl::StripAsciiWhitespace(header);
  size_t space = header.find(' ');
  if (space == absl::string_view::npos) return {header, ""};
  return {header.substr(0, space), absl::StripAsciiWhitespace(header.substr(space + 1))};
}

// Escapes '\' and '"' for an HTTP quoted-string.
std::string Quote(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\' || c == '"') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

void AddUnique(std::vector<std::string>* list, absl::string_view item) {
  if (std::find(list->begin(), list->end(), item) == list->end()) list->emplace_back(item);
}

bool Contains(const std::vector<std::string>& list, absl::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// Does `granted` allow `action` on `repository`?
bool Covers(const std::vector<ResourceScope>& granted, absl::string_view repository,
            Action action) {
  for (const ResourceScope& scope : granted) {
    if (action == Action::kCatalog) {
      if (scope.type == "registry" && scope.name == "catalog" && Contains(scope.actions, "*")) {
        return true;
      }
      continue;
    }
    if (scope.type == "repository" && scope.name == repository &&
        (Contains(scope.actions, ActionName(action)) || Contains(scope.actions, "*"))) {
      return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<AuthMode> ParseAuthMode(absl::string_view mode) {
  if (mode == "none") return AuthMode::kNone;
  if (mode == "basic") return AuthMode::kBasic;
  if (mode == "token") return AuthMode::kToken;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown auth mode \"", absl::CEscape(mode), "\" (none, basic or token)"));
}

absl::string_view ActionName(Action action) {
  switch (action) {
    case Action::kPull:
      return "pull";
    case Action::kPush:
      return "push";
    case Action::kDelete:
      return "delete";
    case Action::kCatalog:
      return "catalog";
  }
  return "unknown";
}

ResourceScope RequiredScope(absl::string_view repository, Action action) {
  switch (action) {
    case Action::kPull:
      return {"repository", std::string(repository), {"pull"}};
    case Action::kPush:
      return {"repository", std::string(repository), {"pull", "push"}};
    case Action::kDelete:
      return {"repository", std::string(repository), {"delete"}};
    case Action::kCatalog:
      return {"registry", "catalog", {"*"}};
  }
  return {};
}

std::string TokenResponse::ToJson() const {
  nlohmann::json j = nlohmann::json::object();
  j["token"] = token;
  j["access_token"] = access_token;
  j["expires_in"] = expires_in;
  j["issued_at"] = issued_at;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Authorizer::Authorizer(AuthConfig config, std::unique_ptr<HtpasswdFile> htpasswd, std::string key)
    : config_(std::move(config)), htpasswd_(std::move(htpasswd)), key_(std::move(key)) {}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::Create(AuthConfig config) {
  auto bad = [](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("auth config: ", why));
  };
  switch (config.mode) {
    case AuthMode::kNone:
      break;
    case AuthMode::kBasic:
      if (config.htpasswd_path.empty()) return bad("basic mode needs an htpasswd file");
      break;
    case AuthMode::kToken:
      if (config.token_realm.empty()) return bad("token mode needs a token realm (endpoint URL)");
      if (config.token_service.empty()) return bad("token mode needs a service name");
      if (config.token_issuer.empty()) return bad("token mode needs an issuer name");
      if (config.token_key_path.empty()) return bad("token mode needs a token key path");
      if (config.token_ttl <= absl::ZeroDuration()) return bad("token ttl must be positive");
      break;
  }
  std::unique_ptr<HtpasswdFile> htpasswd;
  if (config.mode != AuthMode::kNone && !config.htpasswd_path.empty()) {
    HtpasswdFile::Options options;
    options.clock = config.clock;
    ASSIGN_OR_RETURN(htpasswd, HtpasswdFile::Open(config.htpasswd_path, std::move(options)));
  }
  std::string key;
  if (config.mode == AuthMode::kToken) {
    ASSIGN_OR_RETURN(key, LoadOrCreateTokenKey(config.token_key_path));
  }
  return std::unique_ptr<Authorizer>(
      new Authorizer(std::move(config), std::move(htpasswd), std::move(key)));
}

absl::Time Authorizer::Now() const { return config_.clock ? config_.clock() : absl::Now(); }

absl::StatusOr<Identity> Authorizer::CheckBasic(absl::string_view credentials) const {
  std::string decoded;
  if (credentials.empty() || credentials.size() > kMaxBasicCredentials ||
      !absl::Base64Unescape(credentials, &decoded)) {
    return absl::UnauthenticatedError("malformed Basic credentials");
  }
  size_t colon = decoded.find(':');
  if (colon == std::string::npos) {
    OPENSSL_cleanse(decoded.data(), decoded.size());
    return absl::UnauthenticatedError("malformed Basic credentials (no ':')");
  }
  Identity identity;
  identity.user = decoded.substr(0, colon);
  absl::Status status = absl::UnauthenticatedError(kInvalidCredentials);
  if (!identity.user.empty() && htpasswd_ != nullptr) {
    status = htpasswd_->Verify(identity.user, absl::string_view(decoded).substr(colon + 1));
  }
  OPENSSL_cleanse(decoded.data(), decoded.size());
  RETURN_IF_ERROR(status);
  identity.source = Identity::Source::kPassword;
  identity.all = true;
  return identity;
}

absl::StatusOr<Identity> Authorizer::CheckBearer(absl::string_view token) const {
  TokenExpectations expect;
  expect.issuer = config_.token_issuer;
  expect.audience = config_.token_service;
  expect.now = Now();
  ASSIGN_OR_RETURN(TokenClaims claims, VerifyToken(token, key_, expect));
  Identity identity;
  identity.user = std::move(claims.subject);
  identity.source = Identity::Source::kToken;
  identity.granted = std::move(claims.access);
  return identity;
}

absl::StatusOr<Identity> Authorizer::Authenticate(
    std::optional<absl::string_view> authorization_header) const {
  if (config_.mode == AuthMode::kNone || !authorization_header.has_value() ||
      absl::StripAsciiWhitespace(*authorization_header).empty()) {
    return Identity();
  }
  SchemeAndValue auth = SplitAuthorization(*authorization_header);
  if (absl::EqualsIgnoreCase(auth.scheme, "Basic")) {
    if (config_.mode == AuthMode::kToken) {
      return absl::UnauthenticatedError(
          "Basic credentials are accepted only by the token endpoint; present a Bearer token");
    }
    return CheckBasic(auth.value);
  }
  if (absl::EqualsIgnoreCase(auth.scheme, "Bearer")) {
    if (config_.mode == AuthMode::kBasic) {
      return absl::UnauthenticatedError("Bearer tokens are not accepted; use Basic credentials");
    }
    return CheckBearer(auth.value);
  }
  return absl::UnauthenticatedError(absl::StrCat("unsupported authorization scheme \"",
                                                 absl::CEscape(auth.scheme.substr(0, 32)), "\""));
}

absl::Status Authorizer::Authorize(const Identity& identity, absl::string_view repository,
                                   Action action) const {
  if (config_.mode == AuthMode::kNone) return absl::OkStatus();
  if (action != Action::kCatalog && !oci::IsValidRepository(repository)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid repository name \"", absl::CEscape(repository), "\""));
  }
  if (identity.all) return absl::OkStatus();
  if (identity.source == Identity::Source::kToken) {
    // An anonymous token never exceeds what anonymous requests may do now,
    // even if it was issued under a wider policy.
    bool anonymous_ok = action == Action::kPull && config_.anonymous_pull;
    if (Covers(identity.granted, repository, action) && (!identity.anonymous() || anonymous_ok)) {
      return absl::OkStatus();
    }
    if (action == Action::kCatalog) {
      return absl::PermissionDeniedError("token does not grant access to the catalog");
    }
    return absl::PermissionDeniedError(
        absl::StrCat("token does not grant ", ActionName(action), " on repository ", repository));
  }
  if (action == Action::kPull && config_.anonymous_pull) return absl::OkStatus();
  if (action == Action::kCatalog) {
    return absl::UnauthenticatedError("authentication required to list the catalog");
  }
  return absl::UnauthenticatedError(
      absl::StrCat("authentication required to ", ActionName(action), " repository ", repository));
}

std::string Authorizer::Challenge(absl::string_view repository, Action action,
                                  absl::string_view error) const {
  switch (config_.mode) {
    case AuthMode::kNone:
      return "";
    case AuthMode::kBasic:
      return absl::StrCat("Basic realm=\"", kBasicRealm, "\"");
    case AuthMode::kToken:
      break;
  }
  std::string out = absl::StrCat("Bearer realm=\"", Quote(config_.token_realm), "\",service=\"",
                                 Quote(config_.token_service), "\"");
  if (action == Action::kCatalog || !repository.empty()) {
    absl::StrAppend(&out, ",scope=\"", Quote(RequiredScope(repository, action).ToString()), "\"");
  }
  if (!error.empty()) absl::StrAppend(&out, ",error=\"", Quote(error), "\"");
  return out;
}

std::vector<std::string> Authorizer::Grantable(const Identity& identity,
                                               const ResourceScope& requested) const {
  std::vector<std::string> allowed;
  if (requested.type == "repository") {
    if (!identity.anonymous()) {
      allowed = {"pull", "push", "delete"};
    } else if (config_.anonymous_pull) {
      allowed = {"pull"};
    }
  } else if (requested.type == "registry" && requested.name == "catalog") {
    if (!identity.anonymous()) allowed = {"*"};
  }
  std::vector<std::string> granted;
  for (const std::string& action : requested.actions) {
    if (action == "*") {
      for (const std::string& a : allowed) AddUnique(&granted, a);
    } else if (Contains(allowed, action)) {
      AddUnique(&granted, action);
    }
  }
  return granted;
}

absl::StatusOr<TokenResponse> Authorizer::IssueToken(
    std::optional<absl::string_view> authorization_header, absl::string_view service,
    const std::vector<std::string>& scopes, absl::string_view account) const {
  if (config_.mode != AuthMode::kToken) {
    return absl::FailedPreconditionError("the token endpoint is served only in token auth mode");
  }
  if (!service.empty() && service != config_.token_service) {
    return absl::InvalidArgumentError(absl::StrCat("unknown service \"", absl::CEscape(service),
                                                   "\"; this is \"", config_.token_service, "\""));
  }
  Identity identity;
  if (authorization_header.has_value() &&
      !absl::StripAsciiWhitespace(*authorization_header).empty()) {
    SchemeAndValue auth = SplitAuthorization(*authorization_header);
    if (!absl::EqualsIgnoreCase(auth.scheme, "Basic")) {
      return absl::UnauthenticatedError("the token endpoint accepts Basic credentials only");
    }
    ASSIGN_OR_RETURN(identity, CheckBasic(auth.value));
  }
  if (!account.empty() && !identity.anonymous() && account != identity.user) {
    return absl::InvalidArgumentError(absl::StrCat("account \"", absl::CEscape(account),
                                                   "\" does not match the authenticated user"));
  }
  ASSIGN_OR_RETURN(std::vector<ResourceScope> requested, ParseScopes(scopes));

  std::vector<ResourceScope> granted;
  for (const ResourceScope& want : requested) {
    std::vector<std::string> actions = Grantable(identity, want);
    if (actions.empty()) continue;
    auto same = std::find_if(granted.begin(), granted.end(), [&](const ResourceScope& s) {
      return s.type == want.type && s.name == want.name;
    });
    if (same == granted.end()) {
      granted.push_back({want.type, want.name, std::move(actions)});
    } else {
      for (const std::string& a : actions) AddUnique(&same->actions, a);
    }
  }

  absl::Time now = absl::FromUnixSeconds(absl::ToUnixSeconds(Now()));  // whole seconds
  TokenClaims claims;
  claims.issuer = config_.token_issuer;
  claims.subject = identity.user;
  claims.audience = config_.token_service;
  claims.issued_at = now;
  claims.not_before = now;
  claims.expires_at = now + config_.token_ttl;
  ASSIGN_OR_RETURN(claims.id, RandomHex(16));
  claims.access = granted;

  TokenResponse response;
  ASSIGN_OR_RETURN(response.token, SignToken(claims, key_));
  response.access_token = response.token;
  response.expires_in = absl::ToInt64Seconds(config_.token_ttl);
  response.issued_at = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", now, absl::UTCTimeZone());
  response.granted = std::move(granted);
  return response;
}

}  // namespace pier::registry::auth
