// Internal to pier_http: one byte-stream connection, plain TCP or TLS, with
// blocking-style operations and per-operation inactivity timeouts.
//
// Sockets are non-blocking; every operation tries the syscall first and only
// poll(2)s on EAGAIN, so a keep-alive request costs one recv and one sendmsg.
// Timeouts are in milliseconds (-1 waits forever) and bound each wait for
// progress, not a whole transfer, so a large blob moving steadily never times
// out. TLS is OpenSSL directly on the socket (no Asio: Beast's synchronous
// streams have no timeouts, and sendfile(2) needs the raw descriptor).
//
// Errors: Unavailable for a reset, refused or otherwise failed connection and
// for TLS failures, DeadlineExceeded when a wait times out; both name the peer.
// SIGPIPE is never raised: plain writes use MSG_NOSIGNAL, and TLS writes and
// sendfile block SIGPIPE in the calling thread for their duration.
//
// Ownership: a Conn owns its socket and SSL object.
// Thread safety: a Conn is used by one thread at a time. SslCtx objects are
// immutable after creation and shared by all connections.
#pragma once

#include <openssl/types.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "lib/common/fs.h"

namespace pier::http::internal {

class Conn {
 public:
  virtual ~Conn() = default;

  int fd() const { return fd_.get(); }
  // The remote end, "1.2.3.4:5678" or "[::1]:5678".
  const std::string& peer() const { return peer_; }
  virtual bool tls() const = 0;

  // Reads up to `len` (> 0) bytes, waiting up to `timeout_ms` for some.
  // Returns 0 at an orderly end of stream.
  virtual absl::StatusOr<size_t> Read(char* buf, size_t len, int timeout_ms) = 0;

  // Writes all of `pieces` in order. `more` says more data follows at once
  // (MSG_MORE), so a header is not sent in a segment of its own.
  virtual absl::Status Write(absl::Span<const absl::string_view> pieces, int timeout_ms,
                             bool more = false) = 0;

  // Writes `length` bytes of `file_fd` from `offset`: sendfile(2) on plain TCP,
  // pread + write under TLS. OutOfRange when the file ends early; ErrnoStatus
  // codes for read errors on the file.
  virtual absl::Status SendFile(int file_fd, uint64_t offset, uint64_t length, int timeout_ms) = 0;

  // True when bytes are already received and buffered (decrypted TLS data),
  // so poll(2) on fd() would not see them.
  virtual bool HasBuffered() = 0;

  // True when an idle pooled connection can no longer be used: the peer closed
  // it or sent unexpected bytes.
  virtual bool IsStale() = 0;

  // Runs the TLS handshake (plain connections: nothing). Unavailable when it
  // fails: the client refused our certificate, presented none under mTLS,
  // spoke plain HTTP; for clients, the server is not trusted.
  virtual absl::Status Handshake(int timeout_ms) { return absl::OkStatus(); }

  // Ends the stream politely (TLS close_notify); never blocks.
  virtual void Close() = 0;

 protected:
  Conn(UniqueFd fd, std::string peer) : fd_(std::move(fd)), peer_(std::move(peer)) {}

  // Waits until fd_ has `events` (POLLIN/POLLOUT). DeadlineExceeded after
  // `timeout_ms` naming `what` and the peer.
  absl::Status Wait(short events, int timeout_ms, absl::string_view what);

  UniqueFd fd_;
  std::string peer_;
};

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const;
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// A server context presenting `cert_file`/`key_file`; with `client_ca_file`
// it requires and verifies client certificates (mTLS). TLS 1.2 and newer.
// NotFound naming a missing file; InvalidArgument with OpenSSL's reason for a
// bad PEM or a key that does not match the certificate.
absl::StatusOr<SslCtxPtr> NewServerSslCtx(const std::string& cert_file, const std::string& key_file,
                                          const std::string& client_ca_file);

// A client context trusting the system CAs plus `ca_file` (if set); with
// `verify` false the server is not verified at all. `cert_file`/`key_file`
// present a client certificate. Same errors as NewServerSslCtx.
absl::StatusOr<SslCtxPtr> NewClientSslCtx(bool verify, const std::string& ca_file,
                                          const std::string& cert_file,
                                          const std::string& key_file);

std::unique_ptr<Conn> NewPlainConn(UniqueFd fd, std::string peer);

// A server-side TLS connection; call Handshake() before use. On success the
// connection owns the socket and `fd` is left empty; on failure (Internal,
// out of memory) `fd` is untouched.
absl::StatusOr<std::unique_ptr<Conn>> NewTlsServerConn(UniqueFd& fd, std::string peer,
                                                       SSL_CTX* ctx);

// A client-side TLS connection with SNI and, when the context verifies, a
// check that the certificate names `host` (DNS name or IP). Call Handshake().
absl::StatusOr<std::unique_ptr<Conn>> NewTlsClientConn(UniqueFd fd, std::string peer, SSL_CTX* ctx,
                                                       const std::string& host);

// Connects to `host`:`port`, trying each resolved address. Unavailable when
// resolution or every connect fails, DeadlineExceeded on timeout. The socket is
// non-blocking with TCP_NODELAY; `peer` receives the address connected to.
absl::StatusOr<UniqueFd> Dial(const std::string& host, uint16_t port, int timeout_ms,
                              std::string* peer);

// "1.2.3.4:5678" / "[::1]:5678" for a socket address.
std::string FormatSockaddr(const struct sockaddr* addr);

// Milliseconds for poll(2): -1 for an infinite duration, at least 1 for a
// positive one, clamped to INT_MAX.
int ToTimeoutMs(absl::Duration d);

}  // namespace pier::http::internal
