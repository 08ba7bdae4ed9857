// OCI image-spec v1.1 and Docker Image Manifest V2 Schema 2 types for Pier:
// media types, Platform, Descriptor, Manifest, Index and ImageConfig.
//
// Parsing keeps the exact bytes it was given (`raw`), so a manifest's digest
// never changes by being re-serialised: stores and registries hand out `raw`,
// never ToJson(). ToJson() is for documents Pier creates; its output is
// deterministic (fixed key order, no insignificant white space), so equal
// values give equal bytes and equal digests. ImageConfig::ToJson() also keeps
// every field of `raw` that Pier does not model, so editing a base image's
// config loses nothing.
//
// Parse functions return InvalidArgument with the offending field named
// ("manifest: layers[2].digest: invalid digest ...") for malformed JSON,
// wrong schemaVersion, bad digests, negative sizes or unknown media types.
//
// Thread safety: plain values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/oci/digest.h"

namespace pier::oci {

// Media types.
inline constexpr char kOciManifest[] = "application/vnd.oci.image.manifest.v1+json";
inline constexpr char kOciIndex[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char kOciConfig[] = "application/vnd.oci.image.config.v1+json";
inline constexpr char kOciLayerTar[] = "application/vnd.oci.image.layer.v1.tar";
inline constexpr char kOciLayerGzip[] = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr char kOciLayerZstd[] = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr char kOciEmptyJson[] = "application/vnd.oci.empty.v1+json";
inline constexpr char kDockerManifest[] = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr char kDockerManifestList[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr char kDockerConfig[] = "application/vnd.docker.container.image.v1+json";
inline constexpr char kDockerLayerGzip[] = "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr char kDockerForeignLayerGzip[] =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

// True for the image manifest types (OCI and Docker schema2).
bool IsManifestMediaType(absl::string_view media_type);
// True for the index types (OCI index and Docker manifest list).
bool IsIndexMediaType(absl::string_view media_type);
// True for any layer media type Pier can unpack.
bool IsLayerMediaType(absl::string_view media_type);

struct Platform {
  std::string architecture;
  std::string os;
  std::string os_version;
  std::vector<std::string> os_features;
  std::string variant;
  friend bool operator==(const Platform&, const Platform&) = default;
};

struct Descriptor {
  std::string media_type;
  Digest digest;
  int64_t size = 0;
  std::vector<std::string> urls;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;
  std::string artifact_type;
  friend bool operator==(const Descriptor&, const Descriptor&) = default;
};

// An image manifest (OCI or Docker schema2).
struct Manifest {
  int schema_version = 2;
  std::string media_type;  // May be empty in OCI manifests.
  std::string artifact_type;
  Descriptor config;
  std::vector<Descriptor> layers;
  std::optional<Descriptor> subject;
  std::map<std::string, std::string> annotations;
  std::string raw;  // Exact bytes parsed; empty for a manifest built in code.

  static absl::StatusOr<Manifest> Parse(absl::string_view bytes);
  std::string ToJson() const;
};

// An image index (OCI) or manifest list (Docker).
struct Index {
  int schema_version = 2;
  std::string media_type;
  std::string artifact_type;
  std::vector<Descriptor> manifests;
  std::optional<Descriptor> subject;
  std::map<std::string, std::string> annotations;
  std::string raw;

  static absl::StatusOr<Index> Parse(absl::string_view bytes);
  std::string ToJson() const;
};

struct HealthConfig {
  std::vector<std::string> test;  // ["CMD", ...], ["CMD-SHELL", "..."] or ["NONE"].
  int64_t interval_ns = 0;
  int64_t timeout_ns = 0;
  int64_t start_period_ns = 0;
  int64_t start_interval_ns = 0;
  int retries = 0;
  friend bool operator==(const HealthConfig&, const HealthConfig&) = default;
};

// The runtime part of an image config ("config" in the JSON).
struct ContainerConfig {
  std::string user;
  std::vector<std::string> exposed_ports;  // "80/tcp", sorted.
  std::vector<std::string> env;            // "KEY=value", in order.
  std::optional<std::vector<std::string>> entrypoint;
  std::optional<std::vector<std::string>> cmd;
  std::vector<std::string> volumes;  // Paths, sorted.
  std::string working_dir;
  std::map<std::string, std::string> labels;
  std::string stop_signal;
  std::optional<HealthConfig> healthcheck;
  std::vector<std::string> on_build;
  std::vector<std::string> shell;
  friend bool operator==(const ContainerConfig&, const ContainerConfig&) = default;
};

struct History {
  std::string created;  // RFC 3339.
  std::string created_by;
  std::string author;
  std::string comment;
  bool empty_layer = false;
  friend bool operator==(const History&, const History&) = default;
};

// An image configuration (OCI config or Docker container image v1).
struct ImageConfig {
  std::string created;  // RFC 3339, may be empty.
  std::string author;
  std::string architecture;
  std::string os;
  std::string variant;
  ContainerConfig config;
  std::vector<Digest> diff_ids;  // rootfs.diff_ids, bottom layer first.
  std::vector<History> history;
  std::string raw;  // Exact bytes parsed; unknown fields survive ToJson().

  static absl::StatusOr<ImageConfig> Parse(absl::string_view bytes);
  std::string ToJson() const;
};

// Returns the media type of a manifest or index document: its mediaType field
// when present, else inferred from its shape (manifests/config keys).
// InvalidArgument for JSON that is neither.
absl::StatusOr<std::string> DetectManifestMediaType(absl::string_view bytes);

// The descriptors a manifest or index needs (config and layers, or child
// manifests), for validation and garbage collection. The subject is not among
// them: a referrer may be pushed before, or outlive, its subject.
absl::StatusOr<std::vector<Descriptor>> References(absl::string_view media_type,
                                                   absl::string_view bytes);

}  // namespace pier::oci
