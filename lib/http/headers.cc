#include "lib/http/headers.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace pier::http {

Headers::Headers(std::initializer_list<Entry> entries) {
  for (const Entry& e : entries) Add(e.first, e.second);
}

void Headers::Add(absl::string_view name, absl::string_view value) {
  entries_.emplace_back(std::string(name), std::string(absl::StripAsciiWhitespace(value)));
}

void Headers::Set(absl::string_view name, absl::string_view value) {
  Remove(name);
  Add(name, value);
}

void Headers::Remove(absl::string_view name) {
  entries_.erase(
      std::remove_if(entries_.begin(), entries_.end(),
                     [name](const Entry& e) { return absl::EqualsIgnoreCase(e.first, name); }),
      entries_.end());
}

std::optional<absl::string_view> Headers::Get(absl::string_view name) const {
  for (const Entry& e : entries_) {
    if (absl::EqualsIgnoreCase(e.first, name)) return absl::string_view(e.second);
  }
  return std::nullopt;
}

std::vector<absl::string_view> Headers::GetAll(absl::string_view name) const {
  std::vector<absl::string_view> values;
  for (const Entry& e : entries_) {
    if (absl::EqualsIgnoreCase(e.first, name)) values.push_back(e.second);
  }
  return values;
}

bool HasToken(absl::string_view value, absl::string_view token) {
  for (absl::string_view part : absl::StrSplit(value, ',')) {
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(part), token)) return true;
  }
  return false;
}

absl::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 203:
      return "Non-Authoritative Information";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

}  // namespace pier::http
