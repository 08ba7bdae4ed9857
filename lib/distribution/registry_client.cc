#include "lib/distribution/registry_client.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/common/status.h"
#include "lib/http/url.h"
#include "nlohmann/json.hpp"

namespace pier::distribution {

bool IsLoopbackHost(absl::string_view host) {
  std::string h(host);
  if (absl::StartsWith(h, "[")) {
    size_t close = h.find(']');
    h = h.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    return h == "::1";
  }
  if (size_t colon = h.rfind(':'); colon != std::string::npos) h.resize(colon);
  return h == "localhost" || absl::StartsWith(h, "127.");
}

std::pair<std::string, std::map<std::string, std::string>> ParseChallenge(
    absl::string_view header) {
  std::pair<std::string, std::map<std::string, std::string>> out;
  header = absl::StripLeadingAsciiWhitespace(header);
  size_t space = header.find(' ');
  out.first = absl::AsciiStrToLower(header.substr(0, space));
  if (space == absl::string_view::npos) return out;
  absl::string_view rest = header.substr(space + 1);
  while (!rest.empty()) {
    rest = absl::StripLeadingAsciiWhitespace(rest);
    size_t eq = rest.find('=');
    if (eq == absl::string_view::npos) break;
    std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(rest.substr(0, eq)));
    rest.remove_prefix(eq + 1);
    std::string value;
    if (!rest.empty() && rest[0] == '"') {
      size_t i = 1;
      for (; i < rest.size() && rest[i] != '"'; ++i) {
        if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
        value.push_back(rest[i]);
      }
      rest.remove_prefix(std::min(rest.size(), i + 1));
    } else {
      size_t comma = rest.find(',');
      value = std::string(absl::StripAsciiWhitespace(rest.substr(0, comma)));
      rest.remove_prefix(comma == absl::string_view::npos ? rest.size() : comma);
    }
    out.second[key] = value;
    rest = absl::StripLeadingAsciiWhitespace(rest);
    if (!rest.empty() && rest[0] == ',') rest.remove_prefix(1);
  }
  return out;
}

absl::Status ParseRegistryAliases(const std::vector<std::string>& entries,
                                  std::map<std::string, std::string>* out) {
  for (const std::string& e : entries) {
    size_t eq = e.find('=');
    if (eq == 0 || eq == std::string::npos || eq + 1 == e.size() ||
        e.find_first_of(" /", 0) != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("registry alias \"", e, "\": expected NAME=HOST[:PORT]"));
    }
    (*out)[e.substr(0, eq)] = e.substr(eq + 1);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RegistryClient>> RegistryClient::Create(
    std::string host, RegistryClientOptions options) {
  if (host.empty()) return absl::InvalidArgumentError("empty registry host");
  if (auto it = options.aliases.find(host); it != options.aliases.end()) host = it->second;
  bool tls = options.force_tls || !(options.insecure || IsLoopbackHost(host));
  http::ClientOptions copts;
  copts.tls_verify = options.tls_verify;
  copts.ca_file = options.ca_file;
  copts.cert_file = options.cert_file;
  copts.key_file = options.key_file;
  ASSIGN_OR_RETURN(std::unique_ptr<http::Client> client, http::Client::Create(copts));
  std::string base = absl::StrCat(tls ? "https://" : "http://", host);
  return std::unique_ptr<RegistryClient>(
      new RegistryClient(std::move(host), std::move(base), std::move(options), std::move(client)));
}

absl::StatusOr<std::string> RegistryClient::Answer(absl::string_view challenge) {
  auto [scheme, params] = ParseChallenge(challenge);
  std::string basic;
  if (options_.credentials) {
    basic =
        absl::StrCat("Basic ", absl::Base64Escape(absl::StrCat(options_.credentials->username, ":",
                                                               options_.credentials->password)));
  }
  if (scheme == "basic") {
    if (basic.empty()) {
      return NeedLogin("");
    }
    return basic;
  }
  if (scheme != "bearer") {
    return absl::UnimplementedError(
        absl::StrCat("unsupported authentication scheme \"", scheme, "\" at ", base_url_));
  }
  std::string realm = params["realm"];
  if (realm.empty()) return absl::InvalidArgumentError("Bearer challenge without a realm");
  std::string key = absl::StrCat(realm, " ", params["service"], " ", params["scope"]);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tokens_.find(key);
    if (it != tokens_.end() && it->second.expires > absl::Now() + absl::Seconds(10) &&
        params.count("error") == 0) {
      return absl::StrCat("Bearer ", it->second.value);
    }
  }
  http::QueryParams q;
  if (!params["service"].empty()) q.emplace_back("service", params["service"]);
  if (!params["scope"].empty()) q.emplace_back("scope", params["scope"]);
  if (options_.credentials) q.emplace_back("account", options_.credentials->username);
  http::ClientRequest req;
  req.url = absl::StrCat(realm, q.empty() ? "" : "?", http::EncodeQuery(q));
  if (!basic.empty()) req.headers.Set("Authorization", basic);
  ASSIGN_OR_RETURN(http::ClientResponse resp, client_->Do(req));
  ASSIGN_OR_RETURN(std::string body, resp.ReadAll(1 << 20));
  if (resp.status() == 401) {
    if (!options_.credentials) return NeedLogin("");
    return absl::UnauthenticatedError(absl::StrCat(
        "registry ", host_, ": the token service refused the password of user \"",
        options_.credentials->username, "\": check it and run `pier login ", host_, "` again"));
  }
  if (resp.status() != 200) {
    return absl::UnavailableError(
        absl::StrCat("token request to ", realm, " answered HTTP ", resp.status()));
  }
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  std::string token;
  if (j.is_object()) {
    token = j.value("token", "");
    if (token.empty()) token = j.value("access_token", "");
  }
  if (token.empty()) {
    return absl::UnavailableError(absl::StrCat("token service ", realm, " returned no token"));
  }
  int64_t ttl = j.value("expires_in", int64_t{60});
  std::lock_guard<std::mutex> lock(mu_);
  tokens_[key] = Token{token, absl::Now() + absl::Seconds(ttl)};
  return absl::StrCat("Bearer ", token);
}

absl::StatusOr<http::ClientResponse> RegistryClient::Do(http::ClientRequest request) {
  if (!absl::StartsWith(request.url, "http://") && !absl::StartsWith(request.url, "https://")) {
    request.url = base_url_ + request.url;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!last_authorization_.empty() && !request.headers.Has("Authorization")) {
      request.headers.Set("Authorization", last_authorization_);
    }
  }
  ASSIGN_OR_RETURN(http::ClientResponse resp, client_->Do(request));
  if (resp.status() != 401) return resp;
  std::optional<absl::string_view> challenge = resp.Header("WWW-Authenticate");
  if (!challenge) {
    return absl::UnauthenticatedError(
        absl::StrCat(request.method, " ", request.url, ": 401 without a challenge"));
  }
  ASSIGN_OR_RETURN(std::string authorization, Answer(*challenge));
  (void)resp.ReadAll(1 << 20);
  if (request.body_source) {
    if (!request.rewind_body) {
      return absl::UnauthenticatedError(
          absl::StrCat(request.method, " ", request.url, ": challenged mid-upload"));
    }
    RETURN_IF_ERROR(request.rewind_body());
  }
  request.headers.Set("Authorization", authorization);
  ASSIGN_OR_RETURN(http::ClientResponse again, client_->Do(request));
  if (again.status() == 401) {
    std::string what = absl::StrCat(" for ", request.method, " ", request.url);
    if (!options_.credentials) return NeedLogin(what);
    return absl::UnauthenticatedError(absl::StrCat(
        "registry ", host_, " refused user \"", options_.credentials->username, "\"", what,
        ": the user may not do this, or the stored credentials are stale (run `pier login ", host_,
        "` again)"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  last_authorization_ = authorization;
  return again;
}

absl::Status RegistryClient::NeedLogin(absl::string_view what) const {
  return absl::UnauthenticatedError(absl::StrCat("registry ", host_, " requires authentication",
                                                 what, ": run `pier login ", host_, "` first"));
}

absl::Status RegistryClient::Ping() {
  http::ClientRequest req;
  req.url = "/v2/";
  ASSIGN_OR_RETURN(http::ClientResponse resp, Do(req));
  (void)resp.ReadAll(1 << 20);
  if (resp.status() == 200) return absl::OkStatus();
  if (resp.status() == 403) {
    return absl::PermissionDeniedError(absl::StrCat(base_url_, " denied access"));
  }
  return absl::UnavailableError(
      absl::StrCat(base_url_, "/v2/ answered HTTP ", resp.status(), ": not an OCI registry?"));
}

}  // namespace pier::distribution
