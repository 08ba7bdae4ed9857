#include "lib/distribution/credentials.h"

#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "nlohmann/json.hpp"

namespace pier::distribution {
namespace {

using Json = nlohmann::json;

absl::StatusOr<Json> Load(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (absl::IsNotFound(text.status())) return Json::object();
  if (!text.ok()) return text.status();
  Json j = Json::parse(*text, nullptr, false);
  if (!j.is_object() || (j.contains("auths") && !j["auths"].is_object())) {
    return absl::InvalidArgumentError(absl::StrCat("credentials file ", path, " is malformed"));
  }
  return j;
}

absl::Status Save(const std::string& path, const Json& j) {
  RETURN_IF_ERROR(MakeDirs(Dirname(path), 0700));
  return WriteFileAtomic(path, j.dump(2) + "\n", 0600);
}

}  // namespace

std::string DefaultCredentialsPath() {
  if (const char* p = std::getenv("PIER_CONFIG"); p != nullptr && *p != '\0') return p;
  const char* home = std::getenv("HOME");
  return absl::StrCat(home != nullptr && *home != '\0' ? home : "/root",
                      "/.config/pier/config.json");
}

namespace {

// Decodes one "auths" entry; nullopt when it has no "auth" string.
absl::StatusOr<std::optional<Credentials>> Decode(const std::string& path, absl::string_view host,
                                                  const Json& entry) {
  if (!entry.is_object() || !entry.contains("auth") || !entry["auth"].is_string()) {
    return std::optional<Credentials>();
  }
  std::string decoded;
  if (!absl::Base64Unescape(entry["auth"].get<std::string>(), &decoded)) {
    return absl::InvalidArgumentError(
        absl::StrCat("credentials file ", path, ": entry for ", host, " is not base64"));
  }
  size_t colon = decoded.find(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("credentials file ", path, ": entry for ", host, " is not user:password"));
  }
  return std::optional<Credentials>(
      Credentials{decoded.substr(0, colon), decoded.substr(colon + 1)});
}

std::string NormalizeHost(absl::string_view h) {
  absl::ConsumePrefix(&h, "https://");
  absl::ConsumePrefix(&h, "http://");
  std::string s(h);
  while (!s.empty() && s.back() == '/') s.pop_back();
  if (absl::StartsWith(s, "index.docker.io") || s == "registry-1.docker.io") s = "docker.io";
  return s;
}

}  // namespace

bool SameRegistryHost(absl::string_view a, absl::string_view b) {
  return NormalizeHost(a) == NormalizeHost(b);
}

absl::StatusOr<std::optional<Credentials>> LoadCredentials(const std::string& path,
                                                           absl::string_view host) {
  ASSIGN_OR_RETURN(Json j, Load(path));
  if (!j.contains("auths")) return std::optional<Credentials>();
  auto it = j["auths"].find(std::string(host));
  if (it == j["auths"].end()) return std::optional<Credentials>();
  return Decode(path, host, *it);
}

absl::StatusOr<std::map<std::string, Credentials>> LoadAllCredentials(const std::string& path) {
  ASSIGN_OR_RETURN(Json j, Load(path));
  std::map<std::string, Credentials> out;
  if (!j.contains("auths")) return out;
  for (auto it = j["auths"].begin(); it != j["auths"].end(); ++it) {
    ASSIGN_OR_RETURN(std::optional<Credentials> c, Decode(path, it.key(), it.value()));
    if (c) out[it.key()] = std::move(*c);
  }
  return out;
}

absl::Status StoreCredentials(const std::string& path, absl::string_view host,
                              const Credentials& credentials) {
  ASSIGN_OR_RETURN(Json j, Load(path));
  j["auths"][std::string(host)] = {
      {"auth", absl::Base64Escape(absl::StrCat(credentials.username, ":", credentials.password))}};
  return Save(path, j);
}

absl::Status RemoveCredentials(const std::string& path, absl::string_view host) {
  ASSIGN_OR_RETURN(Json j, Load(path));
  if (!j.contains("auths") || j["auths"].erase(std::string(host)) == 0) {
    return absl::NotFoundError(absl::StrCat("not logged in to ", host));
  }
  return Save(path, j);
}

}  // namespace pier::distribution
