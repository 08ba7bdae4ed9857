// Pier's blocking HTTP/1.1 client, used by the distribution client to pull
// from and push to any OCI registry (and by tests of Pier's own front door).
//
//   ASSIGN_OR_RETURN(auto client, Client::Create({}));
//   ClientRequest req;
//   req.url = "https://registry.example/v2/library/busybox/blobs/sha256:...";
//   ASSIGN_OR_RETURN(ClientResponse resp, client->Do(req));
//   if (resp.status() != 200) ...
//   char buf[1 << 16];
//   for (;;) {
//     ASSIGN_OR_RETURN(size_t n, resp.ReadBody(buf, sizeof(buf)));
//     if (n == 0) break;
//     ...
//   }
//
// http:// and https:// (TLS 1.2+, verified against the system CAs plus an
// optional CA file, or not verified at all for `--tls-verify=false`; client
// certificates for mTLS). Connections are kept alive and reused per
// scheme://host:port; a pooled connection the server has closed is detected
// before reuse, and an idempotent request that fails on a reused connection
// before any response byte arrives is retried once on a fresh one. Redirects
// (301, 302, 303, 307, 308) are followed up to `max_redirects`: 301, 302 and
// 303 become a GET without body (HEAD stays HEAD); 307/308 keep the method and
// re-send the body (a string body always, a streaming body only when
// `rewind_body` is set, otherwise the redirect response is returned as is). Authorization and
// Cookie headers are dropped when a redirect leaves the original host (a registry redirecting a
// blob GET to a pre-signed object-store URL must not leak its token).
// Request bodies come from a string or stream from a callback, with
// Content-Length when known, else chunked. Responses stream to the caller.
//
// Errors of Do(): InvalidArgument for a bad URL or request (CR/LF in a header);
// Unavailable naming the method and URL when the server cannot be reached, the
// TLS handshake or verification fails, the connection breaks or the server's
// response is malformed; DeadlineExceeded naming the URL when connecting or
// any single read/write waits longer than its timeout; FailedPrecondition
// after too many redirects; a body source's own error, annotated.
//
// Ownership: a ClientResponse holds its connection until its body is read to
// the end (it then goes back to the pool) or the response is destroyed. It may
// outlive the Client. Thread safety: Client::Do may be called from many
// threads at once; a ClientResponse is used by one thread at a time.
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

struct ClientOptions {
  absl::Duration connect_timeout = absl::Seconds(30);  // TCP connect and TLS handshake
  absl::Duration io_timeout = absl::Seconds(120);      // any single wait for progress
  // TLS: verify servers against the system CAs plus `ca_file` (PEM), or not
  // at all with `tls_verify` false.
  bool tls_verify = true;
  std::string ca_file;
  // TLS client certificate and key (PEM) for servers that require mTLS.
  std::string cert_file;
  std::string key_file;
  int max_redirects = 10;
  // Idle connections kept per scheme://host:port.
  int max_idle_per_host = 8;
  // With ClientRequest::expect_continue: how long to wait for "100 Continue"
  // before sending the body anyway.
  absl::Duration expect_continue_timeout = absl::Seconds(1);
  std::string user_agent = "pier";
};

// Produces the next bytes of a streamed request body into `buf` (at most
// `len`); returns 0 at its end.
using BodySource = std::function<absl::StatusOr<size_t>(char* buf, size_t len)>;

struct ClientRequest {
  std::string method = "GET";
  std::string url;  // absolute http:// or https:// URL
  // Host, Content-Length, Transfer-Encoding, Connection and Expect are set by
  // the client; values given here for them are ignored.
  Headers headers;
  // The body, unless `body_source` is set. Sent with Content-Length when not
  // empty, or when the method is POST, PUT or PATCH.
  std::string body;
  // A streamed body: Content-Length when `content_length` is set (the source
  // must produce exactly that many bytes), else chunked.
  BodySource body_source;
  std::optional<uint64_t> content_length;
  // Restarts `body_source` from the beginning, so the body can be re-sent to
  // a redirect target or on a retry. Unset: the body is sent only once.
  std::function<absl::Status()> rewind_body;
  // Send "Expect: 100-continue" and hold the body until the server agrees
  // (or ClientOptions::expect_continue_timeout passes), so a request refused
  // at once (401, 404) is not uploaded.
  bool expect_continue = false;
  bool follow_redirects = true;
};

class ClientResponse {
 public:
  ClientResponse(ClientResponse&& other) noexcept;
  ClientResponse& operator=(ClientResponse&& other) noexcept;
  ~ClientResponse();

  int status() const { return status_; }
  const Headers& headers() const { return headers_; }
  std::optional<absl::string_view> Header(absl::string_view name) const {
    return headers_.Get(name);
  }
  std::optional<uint64_t> content_length() const { return content_length_; }
  // The URL that produced this response (after redirects).
  const std::string& url() const { return url_; }

  // Reads up to `len` (> 0) body bytes; returns 0 at the end of the body.
  // Unavailable when the connection breaks or the body is malformed,
  // DeadlineExceeded on timeout, both naming the URL; InvalidArgument for
  // len == 0.
  absl::StatusOr<size_t> ReadBody(char* buf, size_t len);
  // Reads the rest of the body. ResourceExhausted when it exceeds `max`
  // bytes; ReadBody's errors.
  absl::StatusOr<std::string> ReadAll(size_t max);

 private:
  friend class Client;
  struct Body;
  ClientResponse();

  int status_ = 0;
  Headers headers_;
  std::optional<uint64_t> content_length_;
  std::string url_;
  std::unique_ptr<Body> body_;
};

class Client {
 public:
  // InvalidArgument/NotFound for unusable TLS files.
  static absl::StatusOr<std::unique_ptr<Client>> Create(const ClientOptions& options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends `request` and returns the response once its header has arrived;
  // the body is read from the response. See the file comment for errors.
  absl::StatusOr<ClientResponse> Do(const ClientRequest& request);

  // Closes all idle pooled connections.
  void CloseIdle();

 private:
  struct Impl;
  explicit Client(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace pier::http
