#include "lib/oci/reference.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace pier::oci {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool IsValidComponent(absl::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    // A separator run.
    size_t j = i;
    while (j < c.size() && !IsLowerAlnum(c[j])) ++j;
    absl::string_view sep = c.substr(i, j - i);
    bool ok = sep == "." || sep == "_" || sep == "__" ||
              sep.find_first_not_of('-') == absl::string_view::npos;
    if (!ok) return false;
    i = j;
  }
  return true;
}

bool IsValidRegistry(absl::string_view host) {
  if (host.empty()) return false;
  for (char c : host) {
    if (!(absl::ascii_isalnum(c) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']')) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool IsValidRepository(absl::string_view repository) {
  if (repository.empty() || repository.size() > 255) return false;
  for (absl::string_view part : absl::StrSplit(repository, '/')) {
    if (!IsValidComponent(part)) return false;
  }
  return true;
}

bool IsValidTag(absl::string_view tag) {
  if (tag.empty() || tag.size() > 128) return false;
  auto word = [](char c) { return absl::ascii_isalnum(c) || c == '_'; };
  if (!word(tag[0])) return false;
  for (char c : tag) {
    if (!(word(c) || c == '.' || c == '-')) return false;
  }
  return true;
}

absl::StatusOr<Reference> Reference::Parse(absl::string_view text,
                                           absl::string_view default_registry, bool default_tag) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("invalid reference \"", text, "\": ", why));
  };
  if (text.empty()) return bad("empty");
  if (text.size() > 512) return bad("too long");
  Reference ref;
  absl::string_view rest = text;
  if (size_t at = rest.find('@'); at != absl::string_view::npos) {
    absl::StatusOr<Digest> d = Digest::Parse(rest.substr(at + 1));
    if (!d.ok()) return bad(d.status().message());
    ref.digest = *d;
    rest = rest.substr(0, at);
  }
  // The tag is after the last ':' that follows the last '/'.
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != absl::string_view::npos && (slash == absl::string_view::npos || colon > slash)) {
    ref.tag = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (!IsValidTag(ref.tag)) return bad(absl::StrCat("invalid tag \"", ref.tag, "\""));
  }
  size_t first = rest.find('/');
  absl::string_view head = rest.substr(0, first);
  if (first != absl::string_view::npos &&
      (head.find('.') != absl::string_view::npos || head.find(':') != absl::string_view::npos ||
       head == "localhost")) {
    if (!IsValidRegistry(head)) return bad(absl::StrCat("invalid registry \"", head, "\""));
    ref.registry = std::string(head);
    rest = rest.substr(first + 1);
  } else {
    ref.registry = std::string(default_registry);
  }
  ref.repository = std::string(rest);
  if (ref.registry == "docker.io" && ref.repository.find('/') == std::string::npos) {
    ref.repository = absl::StrCat("library/", ref.repository);
  }
  if (!IsValidRepository(ref.repository)) {
    return bad(absl::StrCat("invalid repository name \"", ref.repository,
                            "\" (lower-case letters, digits and separators . _ __ -)"));
  }
  if (default_tag && ref.tag.empty() && !ref.digest) ref.tag = "latest";
  return ref;
}

std::string Reference::Name() const { return absl::StrCat(registry, "/", repository); }

std::string Reference::String() const {
  std::string out = Name();
  if (!tag.empty()) absl::StrAppend(&out, ":", tag);
  if (digest) absl::StrAppend(&out, "@", digest->str());
  return out;
}

std::string Reference::ManifestReference() const {
  if (digest) return digest->str();
  return tag;
}

}  // namespace pier::oci
