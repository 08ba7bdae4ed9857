// Internal to pier_http: HTTP/1.1 message framing shared by server and client.
//
// MessageParser wraps Boost.Beast's basic_parser (the only place Beast is
// included, so the rest of the library and its users compile without it). It
// parses start line and header fields, and decodes chunked bodies; bodies
// framed by Content-Length or by end of stream are not passed through it:
// BodyReader reads those straight into the caller's buffer, so a large upload
// costs one copy (kernel to caller) and no parser work.
//
// Ownership: InputBuffer owns its bytes; BodyReader borrows the parser.
// Thread safety: all objects here are used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/http/headers.h"
#include "lib/http/internal/conn.h"

namespace pier::http::internal {

// The start line and header of a request or response.
struct MessageHead {
  std::string method;  // requests: "GET"
  std::string target;  // requests: "/v2/?n=1"
  int status = 0;      // responses
  int version = 11;    // 10 or 11
  Headers headers;
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool keep_alive = true;    // from version and Connection
  bool body_to_eof = false;  // responses framed by the end of the connection
};

class MessageParser {
 public:
  MessageParser();
  ~MessageParser();
  MessageParser(const MessageParser&) = delete;
  MessageParser& operator=(const MessageParser&) = delete;

  // Prepares to parse a new request, or a response (`head_request`: the
  // response to a HEAD request, which has no body whatever its header says).
  void ResetForRequest(size_t header_limit);
  void ResetForResponse(size_t header_limit, bool head_request);

  // Parses header bytes from `data`; returns how many were consumed (drop
  // them from the input even when the header is not yet complete).
  // InvalidArgument for a malformed message; ResourceExhausted when the header
  // exceeds the limit.
  absl::StatusOr<size_t> PutHeader(absl::string_view data);
  bool header_done() const;
  // True when the whole message has been parsed (no body, or the last chunk
  // and trailers seen).
  bool done() const;
  MessageHead& head() { return head_; }

  // Decodes chunked body bytes from `data` into `out`. `consumed` is how much
  // of `data` was used, `produced` how much was written to `out`.
  // InvalidArgument for malformed chunk framing.
  absl::Status PutChunked(absl::string_view data, char* out, size_t out_len, size_t* consumed,
                          size_t* produced);

 private:
  struct Impl;
  MessageHead head_;
  std::unique_ptr<Impl> impl_;
};

// Bytes received from a connection but not yet parsed or read.
class InputBuffer {
 public:
  explicit InputBuffer(size_t capacity);
  absl::string_view data() const { return absl::string_view(buf_.get() + begin_, end_ - begin_); }
  bool empty() const { return begin_ == end_; }
  void Consume(size_t n) { begin_ += n; }
  // Moves up to `len` buffered bytes into `out`; returns how many.
  size_t Take(char* out, size_t len);
  // Reads more bytes from `conn` (making room first). Returns 0 at end of
  // stream; ResourceExhausted when the buffer is full; Conn's errors.
  absl::StatusOr<size_t> Fill(Conn& conn, int timeout_ms);

 private:
  std::unique_ptr<char[]> buf_;
  size_t capacity_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

// Reads one message body according to its framing.
class BodyReader {
 public:
  enum class Framing { kNone, kLength, kChunked, kUntilEof };

  // `parser` is used only for kChunked and must outlive the reads.
  void Start(Framing framing, uint64_t length, MessageParser* parser);

  // Reads up to `len` body bytes into `buf`; returns 0 once the body is
  // complete. InvalidArgument for bad chunk framing or len == 0; Unavailable
  // when the connection ends early (naming how much arrived); Conn's errors.
  // An error is sticky.
  absl::StatusOr<size_t> Read(Conn& conn, InputBuffer& in, char* buf, size_t len, int timeout_ms);

  Framing framing() const { return framing_; }
  bool done() const { return done_; }
  bool failed() const { return !error_.ok(); }
  // Bytes left of a Content-Length body; nullopt for other framings.
  std::optional<uint64_t> remaining() const {
    return framing_ == Framing::kLength ? std::optional<uint64_t>(remaining_) : std::nullopt;
  }
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  absl::StatusOr<size_t> ReadImpl(Conn& conn, InputBuffer& in, char* buf, size_t len,
                                  int timeout_ms);
  absl::Status Truncated(const Conn& conn) const;

  Framing framing_ = Framing::kNone;
  uint64_t length_ = 0;
  uint64_t remaining_ = 0;
  uint64_t bytes_read_ = 0;
  bool done_ = true;
  MessageParser* parser_ = nullptr;
  absl::Status error_;
};

}  // namespace pier::http::internal
