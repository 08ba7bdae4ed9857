// Byte streams for Pier's archive library: where layer bytes come from and go.
//
// A ByteSink receives the bytes of a layer blob in order, in chunks of any
// size; returning a non-OK status stops the writer, which returns that status
// unchanged. A ByteSource fills `buf` with up to `len` bytes and returns how
// many it wrote; 0 means end of stream. A non-OK status stops the reader,
// which returns that status unchanged.
//
// Ownership: the adapters below borrow their fd or string; the caller keeps it
// open (alive) for as long as the returned function is used.
// Thread safety: a sink or source is used by one thread at a time.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pier::archive {

using ByteSink = std::function<absl::Status(absl::string_view chunk)>;
using ByteSource = std::function<absl::StatusOr<size_t>(char* buf, size_t len)>;

// Writes every chunk to `fd` (retrying short writes and EINTR). Errors carry
// errno's canonical code.
ByteSink FdSink(int fd);

// Appends every chunk to `*out`. Never fails.
ByteSink StringSink(std::string* out);

// Reads from `fd` (retrying EINTR). Errors carry errno's canonical code.
ByteSource FdSource(int fd);

// Serves the bytes of `data`, which must outlive the source.
ByteSource StringSource(absl::string_view data);

}  // namespace pier::archive
