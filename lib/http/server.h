// Pier's HTTP/1.1 server: the front door of pier-registry's OCI Distribution
// API (/v2/...) and, later, its token endpoint.
//
//   ServerOptions opts;
//   opts.listen = "127.0.0.1:0";
//   ASSIGN_OR_RETURN(auto server, Server::Start(opts, [](Request& req, ResponseWriter& w) {
//     w.SetHeader("Content-Type", "text/plain");
//     (void)w.Send("hello\n");
//   }));
//   PIER_LOG(INFO) << "http listening on " << server->address();
//
// What it does: keep-alive (HTTP/1.1 and 1.0), request bodies streamed to the
// handler with Content-Length or chunked framing (never buffered whole),
// `Expect: 100-continue` (the interim 100 is sent when the handler first reads
// the body, so a request refused before reading is never uploaded), responses
// with a known length, chunked, or from a file with sendfile(2) on plain TCP,
// TLS and mTLS (OpenSSL 3). Pipelined requests are answered in order, one at
// a time; Upgrade and HTTP/2 are not supported. Request parsing is Boost.Beast's
// parser; the rest of the library and this header do not include Beast or
// Asio. Connection threads block SIGPIPE, so a vanished client never kills
// the process.
//
// Concurrency model: one thread per connection, taken from a pool of workers
// that grows on demand up to `max_connections` (a worker idle for 30 s
// exits). Handlers are synchronous and stream blobs to and from storage that
// blocks (disk now, an object store later); a dedicated thread lets a handler
// block without starving anyone, keeps a large transfer in one tight
// read/write or sendfile loop with no hand-offs, and costs a keep-alive
// request only its recv and one sendmsg. Sockets are non-blocking and every
// wait is a poll(2) with a timeout, so slow or stuck peers are bounded by
// `io_timeout`/`idle_timeout`. An idle keep-alive connection parks its thread
// (a few pages of stack); if Pier ever needs thousands of idle connections the
// idle wait can move to one epoll thread without changing this API. Beyond
// `max_connections` new connections are answered 503 and closed.
//
// Handlers: `Handler` runs on the connection's thread, once per request; it may
// block. It must answer through the ResponseWriter: if it returns without
// sending, the server answers 500; if it throws, the server answers 500 (when
// nothing was sent yet) and closes the connection. If it leaves part of the
// request body unread, the server discards up to `max_drain_bytes` to keep the
// connection, else closes it.
//
// Ownership: the Server owns its listener, threads and connections; Request
// and ResponseWriter are owned by the server and valid only during the handler
// call. Thread safety: Server's methods are safe from any thread; the handler
// is called concurrently from many threads; a Request/ResponseWriter pair is
// used by its handler's thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/http/headers.h"
#include "lib/http/url.h"

namespace pier::http {

namespace internal {
struct Exchange;
}

struct ServerOptions {
  // "host:port"; port 0 picks a free port. "0.0.0.0:5000", "[::1]:0",
  // ":5000" (all interfaces).
  std::string listen = "127.0.0.1:0";
  // PEM certificate chain and key: serve HTTPS. Both or neither.
  std::string tls_cert_file;
  std::string tls_key_file;
  // PEM CA bundle: require client certificates signed by it (mTLS).
  std::string tls_client_ca_file;
  // Open connections at most; more are answered 503 and closed.
  int max_connections = 512;
  // How long a keep-alive connection may wait for its next request.
  absl::Duration idle_timeout = absl::Seconds(120);
  // How long any read or write may wait for progress within a request
  // (header, body, response); also bounds the TLS handshake.
  absl::Duration io_timeout = absl::Seconds(60);
  // Largest request header (request line and fields); larger gets 431.
  size_t max_header_bytes = 64 * 1024;
  // Unread request body the server will read and discard after a handler to
  // keep the connection alive; beyond it the connection is closed.
  uint64_t max_drain_bytes = 256 * 1024;
  // How long Stop() lets in-flight requests finish before cutting them off.
  absl::Duration shutdown_grace = absl::Seconds(10);
};

// One request, as the handler sees it.
class Request {
 public:
  std::string method;  // "GET", as sent (methods are case-sensitive)
  std::string target;  // raw request-target: "/v2/a%2Fb/tags/list?n=10"
  std::string path;    // percent-decoded path without the query: "/v2/a/b/tags/list"
  QueryParams query;   // decoded query pairs in order ('+' is a space)
  Headers headers;     // case-insensitive lookup
  std::optional<uint64_t> content_length;  // from Content-Length
  bool chunked = false;                    // Transfer-Encoding: chunked
  int version = 11;                        // 10 for HTTP/1.0, 11 for HTTP/1.1
  bool tls = false;                        // arrived over TLS
  std::string remote_address;              // "127.0.0.1:54321"

  // The first value of header `name` (any case).
  std::optional<absl::string_view> Header(absl::string_view name) const {
    return headers.Get(name);
  }
  // The first value of query parameter `key`.
  std::optional<absl::string_view> Query(absl::string_view key) const;

  // Reads up to `len` bytes of the body into `buf`; returns 0 at its end
  // (at once for a request without a body). Streams: memory use is the
  // caller's buffer. Sends "100 Continue" first when the client asked for it.
  // Errors: InvalidArgument for malformed chunked framing or len == 0;
  // Unavailable when the client disconnects mid-body; DeadlineExceeded when
  // no byte arrives within io_timeout; FailedPrecondition outside the handler,
  // or when the client awaits "100 Continue" but the response already began.
  absl::StatusOr<size_t> ReadBody(char* buf, size_t len);

  // Reads the whole body. ResourceExhausted (HTTP 413) when it exceeds `max`
  // bytes, decided from Content-Length before reading when possible;
  // otherwise ReadBody's errors.
  absl::StatusOr<std::string> ReadAllBody(size_t max);

 private:
  friend struct internal::Exchange;
  internal::Exchange* exchange_ = nullptr;
};

// The response to one request. Either Send() a complete body, or Start() and
// Write() pieces then Finish(), or SendFile(). Content-Length,
// Transfer-Encoding and Connection are managed here: values set for them by
// the handler are ignored. For HEAD requests only the header is sent, with the
// Content-Length the body would have had. 1xx, 204 and 304 responses carry no
// body. Errors of every method: FailedPrecondition when called out of order
// (Send after Start, Write after Finish, ...); InvalidArgument for a bad
// status or header (CR/LF in a value) or more bytes than the declared length;
// Unavailable/DeadlineExceeded when writing to the client fails, after which
// the connection is closed.
class ResponseWriter {
 public:
  ResponseWriter(const ResponseWriter&) = delete;
  ResponseWriter& operator=(const ResponseWriter&) = delete;

  void SetStatus(int status) { status_ = status; }
  int status() const { return status_; }
  // Replaces any field of that name.
  void SetHeader(absl::string_view name, absl::string_view value) { headers_.Set(name, value); }
  // Adds a field, keeping others of the same name.
  void AddHeader(absl::string_view name, absl::string_view value) { headers_.Add(name, value); }
  Headers& headers() { return headers_; }

  // Sends status, headers and `body` with Content-Length in one write.
  absl::Status Send(absl::string_view body);

  // Begins a streamed body of `content_length` bytes, or of unknown length
  // (chunked for HTTP/1.1 clients, close-delimited for HTTP/1.0). The header
  // goes out with the first Write() or Finish().
  absl::Status Start(std::optional<uint64_t> content_length);
  // Sends the next piece of a streamed body; empty pieces are skipped.
  absl::Status Write(absl::string_view data);
  // Ends a streamed body. FailedPrecondition (and the connection is closed)
  // when fewer bytes than the declared Content-Length were written, except
  // for HEAD, where Start(n) then Finish() answers with Content-Length n.
  absl::Status Finish();

  // Sends `length` bytes of open file `fd` from `offset`: the whole response
  // (with Content-Length: length) when nothing was started yet, else the next
  // piece of a streamed body. Uses sendfile(2) on plain TCP and pread+write
  // under TLS. OutOfRange when the file is shorter: checked before anything is
  // sent for a regular file (the handler can still answer with an error);
  // noticed mid-transfer, the connection is closed. ErrnoStatus codes for a
  // bad descriptor. Does not close `fd`.
  absl::Status SendFile(int fd, uint64_t offset, uint64_t length);

  // True once Send/Start/SendFile succeeded in beginning the response.
  bool started() const { return state_ != State::kNone; }
  // True once the response is complete (or has failed).
  bool finished() const { return state_ == State::kDone; }

 private:
  friend struct internal::Exchange;
  enum class State { kNone, kStreaming, kDone };

  explicit ResponseWriter(internal::Exchange* exchange) : exchange_(exchange) {}
  absl::StatusOr<std::string> BuildHead(std::optional<uint64_t> content_length);
  absl::Status Check(absl::Status status);
  bool bodyless() const { return status_ < 200 || status_ == 204 || status_ == 304; }

  internal::Exchange* exchange_;
  int status_ = 200;
  Headers headers_;
  State state_ = State::kNone;
  bool chunked_ = false;
  std::optional<uint64_t> length_;
  uint64_t written_ = 0;
  std::string pending_head_;
};

// Handles one request; see the file comment.
using Handler = std::function<void(Request&, ResponseWriter&)>;

class Server {
 public:
  // Binds, listens and starts serving. InvalidArgument for a malformed
  // `listen` or options; FailedPrecondition "cannot listen on ADDR: address
  // in use" when the port is taken (SO_REUSEPORT is off, so a clash never
  // silently shares a port); NotFound/InvalidArgument for missing or bad TLS
  // files; ErrnoStatus codes for other socket failures.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options,
                                                       Handler handler);
  // Stops (see Stop()).
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound address, "host:port" with the real port: "127.0.0.1:41234".
  const std::string& address() const;
  uint16_t port() const;
  // Open connections (accepted and not yet closed).
  int connection_count() const;

  // Stops accepting, closes idle keep-alive connections at once, lets
  // in-flight requests finish for up to `shutdown_grace` (their responses
  // say "Connection: close"), then shuts the remaining sockets down so
  // blocked reads and writes fail, and joins every thread. Returns once no
  // handler is running (a handler blocked on something other than its
  // connection delays it). Idempotent; concurrent callers all return once
  // the server has stopped. Must not be called from a handler (it would
  // wait for itself).
  void Stop();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pier::http
