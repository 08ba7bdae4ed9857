// Layer compressions Pier reads and writes, and the OCI media types that name
// them.
//
// Thread safety: stateless.
#pragma once

#include "absl/strings/string_view.h"

namespace pier::archive {

enum class Compression {
  kNone,  // plain tar
  kGzip,  // RFC 1952, one member, no file name and no time stamp when Pier writes it
  kZstd,  // RFC 8878 frame
};

inline constexpr absl::string_view kMediaTypeLayerTar = "application/vnd.oci.image.layer.v1.tar";
inline constexpr absl::string_view kMediaTypeLayerTarGzip =
    "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr absl::string_view kMediaTypeLayerTarZstd =
    "application/vnd.oci.image.layer.v1.tar+zstd";

// The OCI layer media type for `compression`.
absl::string_view LayerMediaType(Compression compression);

// "none", "gzip" or "zstd".
absl::string_view CompressionName(Compression compression);

}  // namespace pier::archive
