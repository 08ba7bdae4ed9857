#include "lib/http/url.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace pier::http {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsUnreserved(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

// Bytes that must be percent-encoded before they can appear in a URL; a raw
// CR or LF would otherwise split the request line.
bool HasSpaceOrControl(absl::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return true;
  }
  return false;
}

uint16_t DefaultPort(absl::string_view scheme) { return scheme == "https" ? 443 : 80; }

std::string BracketHost(const std::string& host) {
  return host.find(':') != std::string::npos ? absl::StrCat("[", host, "]") : host;
}

// RFC 3986 section 5.2.4: removes "." and ".." segments from a path.
std::string RemoveDotSegments(absl::string_view path) {
  std::vector<absl::string_view> out;
  std::vector<absl::string_view> segments = absl::StrSplit(path, '/');
  // A leading "/" yields an empty first segment; keep it as the root marker.
  for (size_t i = 1; i < segments.size(); ++i) {
    absl::string_view seg = segments[i];
    bool last = i + 1 == segments.size();
    if (seg == ".") {
      if (last) out.push_back("");
    } else if (seg == "..") {
      if (!out.empty()) out.pop_back();
      if (last) out.push_back("");
    } else {
      out.push_back(seg);
    }
  }
  return absl::StrCat("/", absl::StrJoin(out, "/"));
}

}  // namespace

std::string Url::HostPort() const { return absl::StrCat(BracketHost(host), ":", port); }

std::string Url::Authority() const {
  if (port == DefaultPort(scheme)) return BracketHost(host);
  return HostPort();
}

std::string Url::ToString() const { return absl::StrCat(scheme, "://", Authority(), target); }

absl::StatusOr<Url> ParseUrl(absl::string_view url) {
  auto bad = [url](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid URL \"", absl::CHexEscape(url), "\": ", why));
  };
  if (HasSpaceOrControl(url)) return bad("space or control character");
  Url out;
  size_t colon = url.find("://");
  if (colon == absl::string_view::npos) return bad("not an absolute http(s) URL");
  out.scheme = absl::AsciiStrToLower(url.substr(0, colon));
  if (out.scheme != "http" && out.scheme != "https") return bad("scheme must be http or https");
  absl::string_view rest = url.substr(colon + 3);
  size_t hash = rest.find('#');
  if (hash != absl::string_view::npos) rest = rest.substr(0, hash);
  size_t auth_end = rest.find_first_of("/?");
  absl::string_view authority = rest.substr(0, auth_end);
  absl::string_view target =
      auth_end == absl::string_view::npos ? absl::string_view() : rest.substr(auth_end);
  if (authority.find('@') != absl::string_view::npos) return bad("user information not supported");
  absl::string_view port_text;
  if (absl::StartsWith(authority, "[")) {
    size_t close = authority.find(']');
    if (close == absl::string_view::npos) return bad("unterminated IPv6 address");
    out.host = std::string(authority.substr(1, close - 1));
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("junk after IPv6 address");
      port_text = after.substr(1);
    }
  } else {
    size_t pc = authority.rfind(':');
    out.host = std::string(authority.substr(0, pc));
    if (pc != absl::string_view::npos) port_text = authority.substr(pc + 1);
  }
  if (out.host.empty()) return bad("empty host");
  out.host = absl::AsciiStrToLower(out.host);
  out.port = DefaultPort(out.scheme);
  if (!port_text.empty()) {
    uint32_t port = 0;
    if (!absl::SimpleAtoi(port_text, &port) || port == 0 || port > 65535) return bad("bad port");
    out.port = static_cast<uint16_t>(port);
  }
  if (target.empty()) {
    out.target.assign(1, '/');  // not = "/": GCC 12 -Wrestrict false positive
  } else if (target[0] == '?') {
    out.target = absl::StrCat("/", target);
  } else {
    out.target = std::string(target);
  }
  return out;
}

absl::StatusOr<Url> ResolveUrl(const Url& base, absl::string_view ref) {
  ref = absl::StripAsciiWhitespace(ref);
  if (HasSpaceOrControl(ref)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid URL reference \"", absl::CHexEscape(ref), "\": space or control character"));
  }
  size_t hash = ref.find('#');
  if (hash != absl::string_view::npos) ref = ref.substr(0, hash);
  // An absolute URL: anything with a scheme before the first '/', '?'.
  size_t colon = ref.find(':');
  size_t delim = ref.find_first_of("/?");
  if (colon != absl::string_view::npos && (delim == absl::string_view::npos || colon < delim)) {
    return ParseUrl(ref);
  }
  if (absl::StartsWith(ref, "//")) return ParseUrl(absl::StrCat(base.scheme, ":", ref));
  Url out = base;
  if (ref.empty()) return out;
  absl::string_view base_path = absl::string_view(base.target).substr(0, base.target.find('?'));
  if (ref[0] == '?') {
    out.target = absl::StrCat(base_path, ref);
    return out;
  }
  absl::string_view ref_path = ref.substr(0, ref.find('?'));
  absl::string_view ref_query =
      ref.find('?') == absl::string_view::npos ? absl::string_view() : ref.substr(ref.find('?'));
  std::string merged;
  if (ref[0] == '/') {
    merged = std::string(ref_path);
  } else {
    merged = absl::StrCat(base_path.substr(0, base_path.rfind('/') + 1), ref_path);
  }
  out.target = absl::StrCat(RemoveDotSegments(merged), ref_query);
  return out;
}

absl::StatusOr<std::string> PercentDecode(absl::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      bool complete = i + 2 < in.size();
      int hi = complete ? HexValue(in[i + 1]) : -1;
      int lo = complete ? HexValue(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("bad percent-escape in \"", absl::CHexEscape(in), "\""));
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string PercentEncode(absl::string_view in, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (char c : in) {
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(c);
    } else {
      auto b = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 15]);
    }
  }
  return out;
}

absl::StatusOr<QueryParams> ParseQuery(absl::string_view raw) {
  QueryParams params;
  for (absl::string_view part : absl::StrSplit(raw, '&', absl::SkipEmpty())) {
    size_t eq = part.find('=');
    absl::string_view key = part.substr(0, eq);
    absl::string_view value = eq == absl::string_view::npos ? "" : part.substr(eq + 1);
    auto k = PercentDecode(key, /*plus_is_space=*/true);
    if (!k.ok()) return k.status();
    auto v = PercentDecode(value, /*plus_is_space=*/true);
    if (!v.ok()) return v.status();
    params.emplace_back(*std::move(k), *std::move(v));
  }
  return params;
}

std::string EncodeQuery(const QueryParams& params) {
  std::string out;
  for (const auto& [key, value] : params) {
    if (!out.empty()) out.push_back('&');
    absl::StrAppend(&out, PercentEncode(key), "=", PercentEncode(value));
  }
  return out;
}

}  // namespace pier::http
