// Image references as docker spells them: `[host[:port]/]path[:tag][@digest]`.
//
// Normalisation follows docker: a first path component that contains '.' or
// ':' or is "localhost" names the registry; otherwise the reference belongs to
// the default registry, and a single-component path on the default registry
// "docker.io" gets the "library/" prefix (`busybox` ->
// `docker.io/library/busybox:latest`). A reference with neither tag nor digest
// gets the tag "latest" when Parse is asked to default it.
//
// Parse returns InvalidArgument naming the reference and what is wrong
// (upper-case path, bad tag, bad digest, empty component, over 255 chars).
// Thread safety: plain value.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/oci/digest.h"

namespace pier::oci {

inline constexpr absl::string_view kDefaultRegistry = "docker.io";

struct Reference {
  std::string registry;    // "localhost:5000", "docker.io".
  std::string repository;  // "library/busybox".
  std::string tag;         // "latest"; empty when only a digest was given.
  std::optional<Digest> digest;

  // Parses `text`. `default_registry` stands in when none is named; with
  // `default_tag`, a reference without tag or digest gets "latest".
  static absl::StatusOr<Reference> Parse(absl::string_view text,
                                         absl::string_view default_registry = kDefaultRegistry,
                                         bool default_tag = true);

  // "registry/repository[:tag][@digest]".
  std::string String() const;
  // "registry/repository".
  std::string Name() const;
  // The tag, or the digest when there is no tag: what a registry's
  // /manifests/<reference> endpoint takes. Digest wins when both are set.
  std::string ManifestReference() const;

  friend bool operator==(const Reference&, const Reference&) = default;
};

// True for a valid repository path ("library/busybox"), per the OCI
// distribution spec's name grammar.
bool IsValidRepository(absl::string_view repository);
// True for a valid tag: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
bool IsValidTag(absl::string_view tag);

}  // namespace pier::oci
