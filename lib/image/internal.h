// Internal to pier_image: helpers shared by the store's source files.
//
// Thread safety: stateless.
#pragma once

#include <string>

#include "lib/archive/stream.h"
#include "lib/content/blob_driver.h"

namespace pier::image::internal {

// Now as RFC 3339 in whole seconds, UTC ("2024-01-02T03:04:05Z").
std::string NowRfc3339();

// Reads `reader` (borrowed; it must outlive the source).
archive::ByteSource ReaderSource(content::FileReader* reader);

}  // namespace pier::image::internal
