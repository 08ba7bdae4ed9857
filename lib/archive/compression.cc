#include "lib/archive/compression.h"

namespace pier::archive {

absl::string_view LayerMediaType(Compression compression) {
  switch (compression) {
    case Compression::kNone:
      return kMediaTypeLayerTar;
    case Compression::kGzip:
      return kMediaTypeLayerTarGzip;
    case Compression::kZstd:
      return kMediaTypeLayerTarZstd;
  }
  return kMediaTypeLayerTar;
}

absl::string_view CompressionName(Compression compression) {
  switch (compression) {
    case Compression::kNone:
      return "none";
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
  }
  return "none";
}

}  // namespace pier::archive
