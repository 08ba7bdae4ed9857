// HTTP header fields for Pier's HTTP server and client: an ordered list of
// (name, value) pairs with case-insensitive name lookup, as HTTP/1.1 requires
// (RFC 9110 section 5.1). Names keep the spelling they were given or received
// with; values are stored without surrounding whitespace.
//
// A message carries a handful of fields, so lookups are linear scans over a
// vector: cheaper than hashing for that size, and the order of repeated
// fields is kept.
//
// Ownership: Headers owns copies of all names and values; string_views it
// returns stay valid until the Headers is modified or destroyed.
// Thread safety: a value type; concurrent const access is safe, mutation needs
// external synchronisation.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace pier::http {

class Headers {
 public:
  using Entry = std::pair<std::string, std::string>;

  Headers() = default;
  Headers(std::initializer_list<Entry> entries);

  // Appends a field; earlier fields of the same name are kept.
  void Add(absl::string_view name, absl::string_view value);
  // Replaces every field named `name` (any case) with one field.
  void Set(absl::string_view name, absl::string_view value);
  // Removes every field named `name` (any case).
  void Remove(absl::string_view name);

  // The value of the first field named `name` (any case), or nullopt.
  std::optional<absl::string_view> Get(absl::string_view name) const;
  // The values of all fields named `name`, in order.
  std::vector<absl::string_view> GetAll(absl::string_view name) const;
  bool Has(absl::string_view name) const { return Get(name).has_value(); }

  const std::vector<Entry>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  void Clear() { entries_.clear(); }

 private:
  std::vector<Entry> entries_;
};

// True when the comma-separated list in `value` contains `token` (any case),
// e.g. HasToken("keep-alive, Upgrade", "upgrade").
bool HasToken(absl::string_view value, absl::string_view token);

// The standard reason phrase of an HTTP status code ("Not Found"), or
// "Unknown" for codes without one.
absl::string_view ReasonPhrase(int status);

}  // namespace pier::http
