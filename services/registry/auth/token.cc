#include "services/registry/auth/token.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "lib/common/fs.h"
#include "lib/common/log.h"
#include "lib/common/status.h"
#include "lib/oci/reference.h"

namespace pier::registry::auth {
namespace {

using Json = nlohmann::json;

// Longest token VerifyToken looks at; real ones are a few hundred bytes.
constexpr size_t kMaxTokenSize = 64 * 1024;

std::string DumpJson(const Json& j) {
  // Replace invalid UTF-8 rather than throw.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string Base64Url(absl::string_view data) {
  std::string out;
  absl::WebSafeBase64Escape(data, &out);  // no padding
  return out;
}

absl::StatusOr<std::string> HmacSha256(absl::string_view key, absl::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac,
           &len) == nullptr) {
    return absl::InternalError("HMAC-SHA256 failed");
  }
  return std::string(reinterpret_cast<const char*>(mac), len);
}

bool IsLowerAlnum(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c)) return false;
  }
  return true;
}

// [a-z0-9]+ optionally followed by "(" [a-z0-9]+ ")".
bool IsValidScopeType(absl::string_view type) {
  size_t open = type.find('(');
  if (open == absl::string_view::npos) return IsLowerAlnum(type);
  if (type.back() != ')') return false;
  return IsLowerAlnum(type.substr(0, open)) &&
         IsLowerAlnum(type.substr(open + 1, type.size() - open - 2));
}

bool IsValidAction(absl::string_view action) {
  if (action == "*") return true;
  if (action.empty()) return false;
  for (char c : action) {
    if (!absl::ascii_islower(c)) return false;
  }
  return true;
}

bool IsValidOtherName(absl::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '"' || c == ',' || c == '\\') return false;
  }
  return true;
}

// A NumericDate: integer or fractional seconds since the epoch.
std::optional<absl::Time> ReadTime(const Json& j) {
  if (j.is_number_unsigned()) {
    uint64_t v = j.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return absl::FromUnixSeconds(static_cast<int64_t>(v));
  }
  if (j.is_number_integer()) return absl::FromUnixSeconds(j.get<int64_t>());
  if (j.is_number_float()) {
    double d = j.get<double>();
    if (!std::isfinite(d) || std::fabs(d) > 1e15) return std::nullopt;
    return absl::FromUnixSeconds(static_cast<int64_t>(std::floor(d)));
  }
  return std::nullopt;
}

std::optional<std::vector<ResourceScope>> ReadAccess(const Json& j) {
  if (!j.is_array()) return std::nullopt;
  std::vector<ResourceScope> access;
  for (const Json& entry : j) {
    if (!entry.is_object()) return std::nullopt;
    auto type = entry.find("type");
    auto name = entry.find("name");
    auto actions = entry.find("actions");
    if (type == entry.end() || !type->is_string() || name == entry.end() || !name->is_string()) {
      return std::nullopt;
    }
    ResourceScope scope;
    scope.type = type->get<std::string>();
    scope.name = name->get<std::string>();
    if (actions != entry.end() && !actions->is_null()) {
      if (!actions->is_array()) return std::nullopt;
      for (const Json& a : *actions) {
        if (!a.is_string()) return std::nullopt;
        scope.actions.push_back(a.get<std::string>());
      }
    }
    access.push_back(std::move(scope));
  }
  return access;
}

absl::StatusOr<std::string> ReadKey(const std::string& path) {
  ASSIGN_OR_RETURN(std::string key, ReadFile(path));
  if (key.size() < kTokenKeySize) {
    return absl::InvalidArgumentError(absl::StrCat("token key ", path, " has ", key.size(),
                                                   " bytes; need at least ", kTokenKeySize));
  }
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    PIER_LOG(WARNING) << "token key " << path << " is readable by group or others (mode "
                      << absl::StrCat(absl::Hex(st.st_mode & 0777)) << "); chmod 600 it";
  }
  return key;
}

}  // namespace

std::string ResourceScope::ToString() const {
  return absl::StrCat(type, ":", name, ":", absl::StrJoin(actions, ","));
}

absl::StatusOr<ResourceScope> ParseScope(absl::string_view scope) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid scope \"", absl::CEscape(scope), "\": ", why));
  };
  size_t first = scope.find(':');
  size_t last = scope.rfind(':');
  if (first == absl::string_view::npos || first == last) {
    return bad("expected type:name:actions");
  }
  ResourceScope out;
  out.type = std::string(scope.substr(0, first));
  out.name = std::string(scope.substr(first + 1, last - first - 1));
  if (!IsValidScopeType(out.type)) return bad("resource type must be [a-z0-9]+ or type(class)");
  bool is_repository = out.type == "repository" || absl::StartsWith(out.type, "repository(");
  if (is_repository ? !oci::IsValidRepository(out.name) : !IsValidOtherName(out.name)) {
    return bad("invalid resource name");
  }
  for (absl::string_view action : absl::StrSplit(scope.substr(last + 1), ',')) {
    if (!IsValidAction(action)) return bad("actions must be [a-z]+ or *, separated by commas");
    if (std::find(out.actions.begin(), out.actions.end(), action) == out.actions.end()) {
      out.actions.emplace_back(action);
    }
  }
  return out;
}

absl::StatusOr<std::vector<ResourceScope>> ParseScopes(const std::vector<std::string>& params) {
  std::vector<ResourceScope> scopes;
  for (const std::string& param : params) {
    for (absl::string_view one : absl::StrSplit(param, ' ', absl::SkipEmpty())) {
      ASSIGN_OR_RETURN(ResourceScope scope, ParseScope(one));
      scopes.push_back(std::move(scope));
    }
  }
  return scopes;
}

absl::StatusOr<std::string> RandomHex(size_t n) {
  std::string bytes(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(n)) != 1) {
    return absl::InternalError("RAND_bytes failed");
  }
  return absl::BytesToHexString(bytes);
}

absl::StatusOr<std::string> LoadOrCreateTokenKey(const std::string& path) {
  absl::StatusOr<std::string> existing = ReadKey(path);
  if (existing.ok() || !absl::IsNotFound(existing.status())) return existing;

  std::string key(kTokenKeySize, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(key.size())) != 1) {
    return absl::InternalError("RAND_bytes failed creating the token key");
  }
  // Write a private temporary file, then link it into place: link fails
  // with EEXIST if another process created the key meanwhile, and then
  // everyone uses that one.
  ASSIGN_OR_RETURN(std::string suffix, RandomHex(8));
  const std::string tmp = absl::StrCat(path, ".tmp-", suffix);
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("create token key ", tmp));
    absl::Status status = WriteAll(fd.get(), key, tmp);
    if (status.ok() && ::fchmod(fd.get(), 0600) != 0) {
      status = ErrnoStatus(errno, absl::StrCat("chmod token key ", tmp));
    }
    if (status.ok() && ::fsync(fd.get()) != 0) {
      status = ErrnoStatus(errno, absl::StrCat("fsync token key ", tmp));
    }
    if (!status.ok()) {
      ::unlink(tmp.c_str());
      return status;
    }
  }
  int rc = ::link(tmp.c_str(), path.c_str());
  int err = errno;
  ::unlink(tmp.c_str());
  if (rc != 0) {
    if (err == EEXIST) return ReadKey(path);
    return ErrnoStatus(err, absl::StrCat("link token key ", path));
  }
  RETURN_IF_ERROR(SyncDir(Dirname(path)));
  PIER_LOG(INFO) << "created token key " << path;
  return key;
}

absl::StatusOr<std::string> SignJws(absl::string_view header_json, absl::string_view payload_json,
                                    absl::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("empty token key");
  std::string signing_input = absl::StrCat(Base64Url(header_json), ".", Base64Url(payload_json));
  ASSIGN_OR_RETURN(std::string mac, HmacSha256(key, signing_input));
  return absl::StrCat(signing_input, ".", Base64Url(mac));
}

absl::StatusOr<std::string> SignToken(const TokenClaims& claims, absl::string_view key) {
  if (claims.expires_at == absl::InfinitePast() || claims.expires_at == absl::InfiniteFuture()) {
    return absl::InvalidArgumentError("token needs a finite expiry");
  }
  Json header = Json::object();
  header["alg"] = "HS256";
  header["typ"] = "JWT";
  Json payload = Json::object();
  payload["iss"] = claims.issuer;
  payload["sub"] = claims.subject;
  payload["aud"] = claims.audience;
  payload["exp"] = absl::ToUnixSeconds(claims.expires_at);
  auto finite = [](absl::Time t) {
    return t != absl::InfinitePast() && t != absl::InfiniteFuture();
  };
  if (finite(claims.not_before)) payload["nbf"] = absl::ToUnixSeconds(claims.not_before);
  if (finite(claims.issued_at)) payload["iat"] = absl::ToUnixSeconds(claims.issued_at);
  if (!claims.id.empty()) payload["jti"] = claims.id;
  Json access = Json::array();
  for (const ResourceScope& scope : claims.access) {
    Json entry = Json::object();
    entry["type"] = scope.type;
    entry["name"] = scope.name;
    entry["actions"] = scope.actions;
    access.push_back(std::move(entry));
  }
  payload["access"] = std::move(access);
  return SignJws(DumpJson(header), DumpJson(payload), key);
}

absl::StatusOr<TokenClaims> VerifyToken(absl::string_view token, absl::string_view key,
                                        const TokenExpectations& expect) {
  auto bad = [](absl::string_view why) {
    return absl::UnauthenticatedError(absl::StrCat("invalid token: ", why));
  };
  if (key.empty()) return absl::InvalidArgumentError("empty token key");
  if (token.size() > kMaxTokenSize) return bad("too long");
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty()) {
    return bad("not a compact JWS (header.payload.signature)");
  }
  for (absl::string_view part : parts) {
    if (part.find('=') != absl::string_view::npos) return bad("padded base64");
  }

  // The header first: only HS256 is accepted, so "none" (with or without a
  // signature) and algorithm confusion are refused before anything else.
  std::string header_text;
  if (!absl::WebSafeBase64Unescape(parts[0], &header_text)) return bad("header is not base64url");
  Json header = Json::parse(header_text, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) return bad("header is not a JSON object");
  auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string()) return bad("no alg in header");
  if (alg->get<std::string>() != "HS256") {
    return bad(absl::StrCat("alg \"", absl::CEscape(alg->get<std::string>().substr(0, 16)),
                            "\" not accepted (HS256 only)"));
  }
  if (header.contains("crit")) return bad("unsupported critical header parameters");

  // The signature covers the exact text of header and payload; comparing
  // the canonical encoding of the expected MAC also rules out alternative
  // encodings of the same bytes.
  absl::string_view signing_input = token.substr(0, parts[0].size() + 1 + parts[1].size());
  ASSIGN_OR_RETURN(std::string mac, HmacSha256(key, signing_input));
  std::string expected = Base64Url(mac);
  if (parts[2].size() != expected.size() ||
      CRYPTO_memcmp(parts[2].data(), expected.data(), expected.size()) != 0) {
    return bad("signature mismatch");
  }

  std::string payload_text;
  if (!absl::WebSafeBase64Unescape(parts[1], &payload_text)) {
    return bad("payload is not base64url");
  }
  Json payload = Json::parse(payload_text, nullptr, /*allow_exceptions=*/false);
  if (payload.is_discarded() || !payload.is_object()) return bad("claims are not a JSON object");

  TokenClaims claims;
  auto read_string = [&](const char* name, std::string* out) {
    auto it = payload.find(name);
    if (it == payload.end() || it->is_null()) return true;
    if (!it->is_string()) return false;
    *out = it->get<std::string>();
    return true;
  };
  if (!read_string("iss", &claims.issuer) || !read_string("sub", &claims.subject) ||
      !read_string("jti", &claims.id)) {
    return bad("iss, sub and jti must be strings");
  }
  if (claims.issuer != expect.issuer) return bad("issuer mismatch");

  bool audience_ok = false;
  if (auto aud = payload.find("aud"); aud != payload.end()) {
    if (aud->is_string()) {
      audience_ok = aud->get<std::string>() == expect.audience;
    } else if (aud->is_array()) {
      for (const Json& a : *aud) {
        if (a.is_string() && a.get<std::string>() == expect.audience) audience_ok = true;
      }
    }
  }
  if (!audience_ok) return bad("audience mismatch");
  claims.audience = expect.audience;

  auto exp = payload.find("exp");
  if (exp == payload.end()) return bad("no exp claim");
  std::optional<absl::Time> expires_at = ReadTime(*exp);
  if (!expires_at) return bad("exp is not a NumericDate");
  claims.expires_at = *expires_at;
  if (expect.now >= claims.expires_at + expect.clock_skew) {
    return absl::UnauthenticatedError("invalid token: expired");
  }
  if (auto nbf = payload.find("nbf"); nbf != payload.end()) {
    std::optional<absl::Time> not_before = ReadTime(*nbf);
    if (!not_before) return bad("nbf is not a NumericDate");
    claims.not_before = *not_before;
    if (expect.now + expect.clock_skew < claims.not_before) return bad("not yet valid");
  }
  if (auto iat = payload.find("iat"); iat != payload.end()) {
    std::optional<absl::Time> issued_at = ReadTime(*iat);
    if (!issued_at) return bad("iat is not a NumericDate");
    claims.issued_at = *issued_at;
  }
  if (auto access = payload.find("access"); access != payload.end() && !access->is_null()) {
    std::optional<std::vector<ResourceScope>> scopes = ReadAccess(*access);
    if (!scopes) return bad("malformed access claim");
    claims.access = std::move(*scopes);
  }
  return claims;
}

}  // namespace pier::registry::auth
