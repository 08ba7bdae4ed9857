#include "lib/http/internal/wire.h"

#include <algorithm>
#include <cstring>
#include <limits>

// GCC 12 reports boost::optional<uint64_t> inside Beast's parser as "maybe
// uninitialized" once inlined here (with sanitizers); a known false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include "absl/strings/str_cat.h"
#include "lib/common/status.h"

namespace pier::http::internal {
namespace {

namespace bhttp = boost::beast::http;
using BeastError = boost::beast::error_code;
using BeastView = boost::beast::string_view;

absl::string_view View(BeastView v) { return absl::string_view(v.data(), v.size()); }

// Bodies smaller than this are read through the InputBuffer (fewer syscalls
// for small reads); larger reads go straight into the caller's buffer.
constexpr size_t kDirectReadMin = 16 * 1024;

// Feeds Beast's callbacks into a MessageHead and, for chunked bodies, into
// the caller's output buffer.
template <bool kRequest>
class BeastParser final : public bhttp::basic_parser<kRequest> {
 public:
  explicit BeastParser(MessageHead* head) : head_(head) {}

  // Output window for decoded chunk data.
  char* out = nullptr;
  size_t out_len = 0;
  size_t produced = 0;

 private:
  void on_request_impl(bhttp::verb, BeastView method, BeastView target, int version,
                       BeastError&) override {
    head_->method = std::string(View(method));
    head_->target = std::string(View(target));
    head_->version = version;
  }
  void on_response_impl(int code, BeastView, int version, BeastError&) override {
    head_->status = code;
    head_->version = version;
  }
  void on_field_impl(bhttp::field, BeastView name, BeastView value, BeastError&) override {
    // Fields after the header are chunked trailers; Pier has no use for them.
    if (!in_trailers_) head_->headers.Add(View(name), View(value));
  }
  void on_header_impl(BeastError&) override { in_trailers_ = true; }
  void on_body_init_impl(const boost::optional<uint64_t>&, BeastError&) override {}
  size_t on_body_impl(BeastView body, BeastError&) override { return Copy(body); }
  void on_chunk_header_impl(uint64_t, BeastView, BeastError&) override {}
  size_t on_chunk_body_impl(uint64_t, BeastView body, BeastError&) override { return Copy(body); }
  void on_finish_impl(BeastError&) override {}

  size_t Copy(BeastView body) {
    size_t n = std::min(body.size(), out_len - produced);
    if (n > 0) std::memcpy(out + produced, body.data(), n);
    produced += n;
    return n;
  }

  MessageHead* head_;
  bool in_trailers_ = false;
};

}  // namespace

struct MessageParser::Impl {
  std::optional<BeastParser<true>> request;
  std::optional<BeastParser<false>> response;

  template <typename F>
  auto Visit(F&& f) {
    return request.has_value() ? f(*request) : f(*response);
  }
};

MessageParser::MessageParser() : impl_(std::make_unique<Impl>()) {}
MessageParser::~MessageParser() = default;

void MessageParser::ResetForRequest(size_t header_limit) {
  head_ = MessageHead();
  impl_->response.reset();
  impl_->request.reset();
  impl_->request.emplace(&head_);
  impl_->request->header_limit(static_cast<uint32_t>(std::min<size_t>(header_limit, UINT32_MAX)));
  impl_->request->body_limit(
      std::numeric_limits<uint64_t>::max());  // not none: 1.74 compares len > none
  impl_->request->eager(false);
}

void MessageParser::ResetForResponse(size_t header_limit, bool head_request) {
  head_ = MessageHead();
  impl_->request.reset();
  impl_->response.reset();
  impl_->response.emplace(&head_);
  impl_->response->header_limit(static_cast<uint32_t>(std::min<size_t>(header_limit, UINT32_MAX)));
  impl_->response->body_limit(
      std::numeric_limits<uint64_t>::max());  // not none: 1.74 compares len > none
  impl_->response->eager(false);
  if (head_request) impl_->response->skip(true);
}

bool MessageParser::header_done() const {
  return impl_->request.has_value() ? impl_->request->is_header_done()
                                    : impl_->response->is_header_done();
}

bool MessageParser::done() const {
  return impl_->request.has_value() ? impl_->request->is_done() : impl_->response->is_done();
}

absl::StatusOr<size_t> MessageParser::PutHeader(absl::string_view data) {
  return impl_->Visit([&](auto& p) -> absl::StatusOr<size_t> {
    BeastError ec;
    size_t n = p.put(boost::asio::const_buffer(data.data(), data.size()), ec);
    if (ec == bhttp::error::need_more) return n;
    if (ec == bhttp::error::header_limit) {
      return absl::ResourceExhaustedError("HTTP header too large");
    }
    if (ec)
      return absl::InvalidArgumentError(absl::StrCat("malformed HTTP message: ", ec.message()));
    if (p.is_header_done()) {
      boost::optional<uint64_t> length = p.content_length();
      if (length) head_.content_length = *length;
      head_.chunked = p.chunked();
      head_.keep_alive = p.keep_alive();
      head_.body_to_eof = !p.is_done() && p.need_eof();
    }
    return n;
  });
}

absl::Status MessageParser::PutChunked(absl::string_view data, char* out, size_t out_len,
                                       size_t* consumed, size_t* produced) {
  return impl_->Visit([&](auto& p) -> absl::Status {
    *consumed = 0;
    *produced = 0;
    p.out = out;
    p.out_len = out_len;
    p.produced = 0;
    while (!p.is_done() && *consumed < data.size() && p.produced < out_len) {
      BeastError ec;
      size_t before = p.produced;
      size_t n =
          p.put(boost::asio::const_buffer(data.data() + *consumed, data.size() - *consumed), ec);
      *consumed += n;
      if (ec == bhttp::error::need_more) break;
      if (ec) {
        *produced = p.produced;
        return absl::InvalidArgumentError(absl::StrCat("malformed chunked body: ", ec.message()));
      }
      if (n == 0 && p.produced == before) break;
    }
    *produced = p.produced;
    return absl::OkStatus();
  });
}

InputBuffer::InputBuffer(size_t capacity) : buf_(new char[capacity]), capacity_(capacity) {}

size_t InputBuffer::Take(char* out, size_t len) {
  size_t n = std::min(len, end_ - begin_);
  std::memcpy(out, buf_.get() + begin_, n);
  begin_ += n;
  return n;
}

absl::StatusOr<size_t> InputBuffer::Fill(Conn& conn, int timeout_ms) {
  if (begin_ == end_) {
    begin_ = end_ = 0;
  } else if (end_ == capacity_ && begin_ > 0) {
    std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == capacity_) return absl::ResourceExhaustedError("input buffer full");
  ASSIGN_OR_RETURN(size_t n, conn.Read(buf_.get() + end_, capacity_ - end_, timeout_ms));
  end_ += n;
  return n;
}

void BodyReader::Start(Framing framing, uint64_t length, MessageParser* parser) {
  framing_ = framing;
  length_ = length;
  remaining_ = framing == Framing::kLength ? length : 0;
  bytes_read_ = 0;
  parser_ = parser;
  done_ = framing == Framing::kNone || (framing == Framing::kLength && length == 0);
  error_ = absl::OkStatus();
}

absl::Status BodyReader::Truncated(const Conn& conn) const {
  if (framing_ == Framing::kLength) {
    return absl::UnavailableError(absl::StrCat("connection with ", conn.peer(), " closed after ",
                                               bytes_read_, " of ", length_, " body bytes"));
  }
  return absl::UnavailableError(absl::StrCat("connection with ", conn.peer(), " closed after ",
                                             bytes_read_, " bytes of a chunked body"));
}

absl::StatusOr<size_t> BodyReader::Read(Conn& conn, InputBuffer& in, char* buf, size_t len,
                                        int timeout_ms) {
  if (!error_.ok()) return error_;
  if (len == 0) return absl::InvalidArgumentError("ReadBody with an empty buffer");
  if (done_) return 0;
  absl::StatusOr<size_t> n = ReadImpl(conn, in, buf, len, timeout_ms);
  if (!n.ok()) {
    error_ = n.status();
    return error_;
  }
  bytes_read_ += *n;
  return n;
}

absl::StatusOr<size_t> BodyReader::ReadImpl(Conn& conn, InputBuffer& in, char* buf, size_t len,
                                            int timeout_ms) {
  switch (framing_) {
    case Framing::kNone:
      return 0;
    case Framing::kLength: {
      size_t want = static_cast<size_t>(std::min<uint64_t>(len, remaining_));
      size_t n = 0;
      if (!in.empty()) {
        n = in.Take(buf, want);
      } else if (want >= kDirectReadMin) {
        ASSIGN_OR_RETURN(n, conn.Read(buf, want, timeout_ms));
        if (n == 0) return Truncated(conn);
      } else {
        ASSIGN_OR_RETURN(size_t got, in.Fill(conn, timeout_ms));
        if (got == 0) return Truncated(conn);
        n = in.Take(buf, want);
      }
      remaining_ -= n;
      if (remaining_ == 0) done_ = true;
      return n;
    }
    case Framing::kUntilEof: {
      size_t n = 0;
      if (!in.empty()) {
        n = in.Take(buf, len);
      } else {
        ASSIGN_OR_RETURN(n, conn.Read(buf, len, timeout_ms));
        if (n == 0) done_ = true;
      }
      return n;
    }
    case Framing::kChunked:
      for (;;) {
        if (!in.empty()) {
          size_t consumed = 0;
          size_t produced = 0;
          RETURN_IF_ERROR(parser_->PutChunked(in.data(), buf, len, &consumed, &produced));
          in.Consume(consumed);
          if (parser_->done()) done_ = true;
          if (produced > 0 || done_) return produced;
          if (consumed > 0) continue;
        }
        absl::StatusOr<size_t> got = in.Fill(conn, timeout_ms);
        if (!got.ok()) {
          if (absl::IsResourceExhausted(got.status())) {
            return absl::InvalidArgumentError("malformed chunked body: chunk header too long");
          }
          return got.status();
        }
        if (*got == 0) return Truncated(conn);
      }
  }
  return 0;
}

}  // namespace pier::http::internal
