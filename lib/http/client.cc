#include "lib/http/client.h"

#include <poll.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/common/status.h"
#include "lib/http/internal/conn.h"
#include "lib/http/internal/wire.h"

namespace pier::http {
namespace {

using internal::BodyReader;
using internal::Conn;

constexpr size_t kMaxResponseHeader = 256 * 1024;
constexpr size_t kInputBuffer = kMaxResponseHeader + 4096;
constexpr size_t kUploadBuffer = 256 * 1024;
// Unread response bodies up to this size are drained so the connection can
// be reused (redirects, errors); larger ones close the connection.
constexpr uint64_t kMaxDrain = 64 * 1024;

// One connection with its read state; pooled between requests.
struct ClientConn {
  std::string key;  // "https://host:443"
  std::unique_ptr<Conn> conn;
  internal::InputBuffer in{kInputBuffer};
  internal::MessageParser parser;
  bool reused = false;

  ~ClientConn() {
    if (conn != nullptr) conn->Close();
  }
};

// Idle connections by scheme://host:port.
class Pool {
 public:
  explicit Pool(int max_idle_per_host) : max_idle_(max_idle_per_host) {}

  // An idle connection to `key` that still looks alive, or null.
  std::unique_ptr<ClientConn> Take(const std::string& key) {
    for (;;) {
      std::unique_ptr<ClientConn> c;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = idle_.find(key);
        if (it == idle_.end() || it->second.empty()) return nullptr;
        c = std::move(it->second.back());
        it->second.pop_back();
      }
      if (!c->in.empty() || c->conn->IsStale()) continue;  // dropped here
      c->reused = true;
      return c;
    }
  }

  void Put(std::unique_ptr<ClientConn> c) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::unique_ptr<ClientConn>>& list = idle_[c->key];
    // A connection beyond the limit is closed when `c` goes away.
    if (static_cast<int>(list.size()) < max_idle_) list.push_back(std::move(c));
  }

  void Clear() {
    std::map<std::string, std::vector<std::unique_ptr<ClientConn>>> old;
    {
      std::lock_guard<std::mutex> lock(mu_);
      old.swap(idle_);
    }
  }

 private:
  const int max_idle_;
  std::mutex mu_;  // not absl::Mutex: see server.cc
  std::map<std::string, std::vector<std::unique_ptr<ClientConn>>> idle_;  // guarded by mu_
};

// What a hop sends as its body.
struct BodySpec {
  enum class Kind { kNone, kString, kSource };
  Kind kind = Kind::kNone;
  const std::string* data = nullptr;
  const BodySource* source = nullptr;
  std::optional<uint64_t> length;  // kSource: Content-Length, else chunked
  const std::function<absl::Status()>* rewind = nullptr;

  bool replayable() const { return kind != Kind::kSource || (rewind != nullptr && *rewind); }
};

bool IsIdempotent(absl::string_view method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
         method == "OPTIONS";
}

bool MethodExpectsBody(absl::string_view method) {
  return method == "POST" || method == "PUT" || method == "PATCH";
}

bool IsManagedRequestHeader(absl::string_view name) {
  return absl::EqualsIgnoreCase(name, "Host") || absl::EqualsIgnoreCase(name, "Content-Length") ||
         absl::EqualsIgnoreCase(name, "Transfer-Encoding") ||
         absl::EqualsIgnoreCase(name, "Connection") || absl::EqualsIgnoreCase(name, "Expect");
}

absl::Status CheckField(absl::string_view name, absl::string_view value) {
  bool bad = name.empty();
  for (char c : name) {
    if (c <= ' ' || c == ':' || c == 0x7f) bad = true;
  }
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') bad = true;
  }
  if (bad) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid request header \"", absl::CHexEscape(name), "\""));
  }
  return absl::OkStatus();
}

// Transport-level failures are Unavailable (or DeadlineExceeded) whatever
// layer noticed them: a malformed response is the server's fault, not the
// caller's.
absl::Status Transport(const absl::Status& status, absl::string_view what) {
  if (status.ok()) return status;
  if (absl::IsDeadlineExceeded(status) || absl::IsUnavailable(status)) {
    return Annotate(status, what);
  }
  return absl::UnavailableError(absl::StrCat(what, ": ", status.message()));
}

bool PollReadable(int fd, int timeout_ms) {
  struct pollfd p {
    fd, POLLIN, 0
  };
  for (;;) {
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

}  // namespace

struct ClientResponse::Body {
  std::shared_ptr<Pool> pool;
  std::unique_ptr<ClientConn> conn;
  BodyReader reader;
  bool reusable = false;
  int io_ms = 0;
  std::string what;  // "GET https://..." for error messages
  absl::Status error;

  // Hands the connection back once the body is complete.
  void Release() {
    if (conn == nullptr) return;
    if (reusable && reader.done()) {
      pool->Put(std::move(conn));
    } else {
      conn.reset();
    }
  }

  ~Body() {
    if (conn == nullptr) return;
    if (!reader.done() && !reader.failed() && reusable) {
      // Drain a small remainder so the connection can be reused.
      std::optional<uint64_t> left = reader.remaining();
      if (left.has_value() && *left <= kMaxDrain) {
        char buf[16 * 1024];
        while (!reader.done()) {
          absl::StatusOr<size_t> n = reader.Read(*conn->conn, conn->in, buf, sizeof(buf), io_ms);
          if (!n.ok()) break;
        }
      }
    }
    Release();
  }
};

ClientResponse::ClientResponse() = default;
ClientResponse::ClientResponse(ClientResponse&& other) noexcept = default;
ClientResponse& ClientResponse::operator=(ClientResponse&& other) noexcept = default;
ClientResponse::~ClientResponse() = default;

absl::StatusOr<size_t> ClientResponse::ReadBody(char* buf, size_t len) {
  if (len == 0) return absl::InvalidArgumentError("ReadBody with an empty buffer");
  if (body_ == nullptr) return 0;
  if (!body_->error.ok()) return body_->error;
  if (body_->conn == nullptr) return 0;  // complete, connection released
  ClientConn& cc = *body_->conn;
  absl::StatusOr<size_t> n = body_->reader.Read(*cc.conn, cc.in, buf, len, body_->io_ms);
  if (!n.ok()) {
    body_->error = Transport(n.status(), body_->what);
    body_->conn.reset();
    return body_->error;
  }
  if (body_->reader.done()) body_->Release();
  return n;
}

absl::StatusOr<std::string> ClientResponse::ReadAll(size_t max) {
  // What is left of a Content-Length body (nothing for HEAD, 204, 304).
  std::optional<uint64_t> left = body_ != nullptr ? body_->reader.remaining() : std::nullopt;
  if (left.has_value() && *left > max) {
    return absl::ResourceExhaustedError(
        absl::StrCat("response body of ", *left, " bytes exceeds the limit of ", max));
  }
  std::string out;
  // Room for the whole body when its length is known (plus one byte to see
  // the end), else grow by doubling.
  out.resize(left.has_value() ? static_cast<size_t>(*left) + 1 : 16 * 1024);
  size_t size = 0;
  for (;;) {
    if (out.size() == size) out.resize(out.size() * 2);
    ASSIGN_OR_RETURN(size_t n, ReadBody(out.data() + size, out.size() - size));
    if (n == 0) break;
    size += n;
    if (size > max) {
      return absl::ResourceExhaustedError(
          absl::StrCat("response body exceeds the limit of ", max, " bytes"));
    }
  }
  out.resize(size);
  return out;
}

struct Client::Impl {
  ClientOptions options;
  internal::SslCtxPtr ssl_ctx;
  std::shared_ptr<Pool> pool;

  absl::StatusOr<std::unique_ptr<ClientConn>> Connect(const Url& url);
  absl::StatusOr<ClientResponse> RoundTrip(const Url& url, const std::string& method,
                                           const Headers& headers, const BodySpec& body,
                                           bool expect_continue);
  absl::StatusOr<ClientResponse> Exchange(std::unique_ptr<ClientConn> cc, const Url& url,
                                          const std::string& method, const Headers& headers,
                                          const BodySpec& body, bool expect_continue,
                                          const std::string& what, bool* got_response);
  absl::Status ReadHead(ClientConn& cc, bool head_request, bool return_interim, bool* got_response);
  absl::Status SendBody(Conn& conn, const BodySpec& body, bool* transport_error);
  ClientResponse MakeResponse(std::unique_ptr<ClientConn> cc, const Url& url,
                              const std::string& what, bool reusable);
};

absl::StatusOr<std::unique_ptr<ClientConn>> Client::Impl::Connect(const Url& url) {
  int connect_ms = internal::ToTimeoutMs(options.connect_timeout);
  std::string peer;
  ASSIGN_OR_RETURN(UniqueFd fd, internal::Dial(url.host, url.port, connect_ms, &peer));
  auto cc = std::make_unique<ClientConn>();
  cc->key = absl::StrCat(url.scheme, "://", url.HostPort());
  if (url.tls()) {
    ASSIGN_OR_RETURN(cc->conn,
                     internal::NewTlsClientConn(std::move(fd), peer, ssl_ctx.get(), url.host));
    RETURN_IF_ERROR(cc->conn->Handshake(connect_ms));
  } else {
    cc->conn = internal::NewPlainConn(std::move(fd), peer);
  }
  return cc;
}

absl::Status Client::Impl::ReadHead(ClientConn& cc, bool head_request, bool return_interim,
                                    bool* got_response) {
  int io_ms = internal::ToTimeoutMs(options.io_timeout);
  for (;;) {
    cc.parser.ResetForResponse(kMaxResponseHeader, head_request);
    for (;;) {
      if (!cc.in.empty()) {
        *got_response = true;
        absl::StatusOr<size_t> n = cc.parser.PutHeader(cc.in.data());
        if (!n.ok()) {
          return absl::UnavailableError(absl::StrCat("bad response: ", n.status().message()));
        }
        cc.in.Consume(*n);
        if (cc.parser.header_done()) break;
      }
      absl::StatusOr<size_t> n = cc.in.Fill(*cc.conn, io_ms);
      if (!n.ok()) {
        if (absl::IsResourceExhausted(n.status())) {
          return absl::UnavailableError("bad response: header too large");
        }
        return n.status();
      }
      if (*n == 0) {
        return absl::UnavailableError(*got_response
                                          ? "connection closed in the middle of the response"
                                          : "connection closed before a response");
      }
    }
    int status = cc.parser.head().status;
    if (status == 101) return absl::UnavailableError("unexpected 101 Switching Protocols");
    if (status / 100 != 1 || return_interim) return absl::OkStatus();
    // An interim response (100 Continue, 103 Early Hints): the real one follows.
  }
}

absl::Status Client::Impl::SendBody(Conn& conn, const BodySpec& body, bool* transport_error) {
  int io_ms = internal::ToTimeoutMs(options.io_timeout);
  *transport_error = false;
  if (body.kind == BodySpec::Kind::kString) {
    absl::string_view piece = *body.data;
    absl::Status st = conn.Write({&piece, 1}, io_ms);
    *transport_error = !st.ok();
    return st;
  }
  if (body.kind != BodySpec::Kind::kSource) return absl::OkStatus();
  std::unique_ptr<char[]> buf(new char[kUploadBuffer]);
  uint64_t total = 0;
  bool chunked = !body.length.has_value();
  for (;;) {
    absl::StatusOr<size_t> n = (*body.source)(buf.get(), kUploadBuffer);
    if (!n.ok()) return Annotate(n.status(), "request body");
    if (*n == 0) break;
    if (*n > kUploadBuffer) {
      return absl::InvalidArgumentError("request body source overran its buffer");
    }
    if (body.length.has_value() && total + *n > *body.length) {
      return absl::InvalidArgumentError(absl::StrCat(
          "request body source produced more than its Content-Length of ", *body.length));
    }
    total += *n;
    absl::string_view data(buf.get(), *n);
    absl::Status st;
    if (chunked) {
      char hex[24];
      int len = std::snprintf(hex, sizeof(hex), "%zx\r\n", *n);
      absl::string_view pieces[3] = {absl::string_view(hex, static_cast<size_t>(len)), data,
                                     "\r\n"};
      st = conn.Write(pieces, io_ms);
    } else {
      st = conn.Write({&data, 1}, io_ms);
    }
    if (!st.ok()) {
      *transport_error = true;
      return st;
    }
  }
  if (body.length.has_value() && total != *body.length) {
    return absl::InvalidArgumentError(absl::StrCat("request body source ended after ", total,
                                                   " of its ", *body.length, " bytes"));
  }
  if (chunked) {
    absl::string_view last = "0\r\n\r\n";
    absl::Status st = conn.Write({&last, 1}, io_ms);
    *transport_error = !st.ok();
    return st;
  }
  return absl::OkStatus();
}

ClientResponse Client::Impl::MakeResponse(std::unique_ptr<ClientConn> cc, const Url& url,
                                          const std::string& what, bool reusable) {
  internal::MessageHead& head = cc->parser.head();
  ClientResponse r;
  r.status_ = head.status;
  r.headers_ = std::move(head.headers);
  r.content_length_ = head.content_length;
  r.url_ = url.ToString();
  auto body = std::make_unique<ClientResponse::Body>();
  body->pool = pool;
  body->io_ms = internal::ToTimeoutMs(options.io_timeout);
  body->what = what;
  body->reusable = reusable && head.keep_alive && !head.body_to_eof;
  if (cc->parser.done()) {
    body->reader.Start(BodyReader::Framing::kNone, 0, nullptr);
  } else if (head.chunked) {
    body->reader.Start(BodyReader::Framing::kChunked, 0, &cc->parser);
  } else if (head.content_length.has_value()) {
    body->reader.Start(BodyReader::Framing::kLength, *head.content_length, nullptr);
  } else {
    body->reader.Start(BodyReader::Framing::kUntilEof, 0, nullptr);
  }
  body->conn = std::move(cc);
  if (body->reader.done()) body->Release();
  r.body_ = std::move(body);
  return r;
}

absl::StatusOr<ClientResponse> Client::Impl::Exchange(std::unique_ptr<ClientConn> cc,
                                                      const Url& url, const std::string& method,
                                                      const Headers& headers, const BodySpec& body,
                                                      bool expect_continue, const std::string& what,
                                                      bool* got_response) {
  Conn& conn = *cc->conn;
  int io_ms = internal::ToTimeoutMs(options.io_timeout);
  bool head_request = method == "HEAD";

  std::string head;
  head.reserve(256);
  absl::StrAppend(&head, method, " ", url.target, " HTTP/1.1\r\nHost: ", url.Authority(), "\r\n");
  if (!headers.Has("User-Agent") && !options.user_agent.empty()) {
    absl::StrAppend(&head, "User-Agent: ", options.user_agent, "\r\n");
  }
  for (const auto& [name, value] : headers.entries()) {
    RETURN_IF_ERROR(CheckField(name, value));
    if (IsManagedRequestHeader(name)) continue;
    absl::StrAppend(&head, name, ": ", value, "\r\n");
  }
  bool has_body = false;
  switch (body.kind) {
    case BodySpec::Kind::kNone:
      if (MethodExpectsBody(method)) head.append("Content-Length: 0\r\n");
      break;
    case BodySpec::Kind::kString:
      has_body = !body.data->empty();
      if (has_body || MethodExpectsBody(method)) {
        absl::StrAppend(&head, "Content-Length: ", body.data->size(), "\r\n");
      }
      break;
    case BodySpec::Kind::kSource:
      has_body = body.length.value_or(1) > 0;
      if (body.length.has_value()) {
        absl::StrAppend(&head, "Content-Length: ", *body.length, "\r\n");
      } else {
        head.append("Transfer-Encoding: chunked\r\n");
      }
      break;
  }
  bool expect = expect_continue && has_body;
  if (expect) head.append("Expect: 100-continue\r\n");
  head.append("\r\n");

  bool body_pending = has_body || body.kind == BodySpec::Kind::kSource;
  absl::Status st;
  if (body.kind == BodySpec::Kind::kString && has_body && !expect &&
      body.data->size() <= kUploadBuffer) {
    absl::string_view pieces[2] = {head, *body.data};
    st = conn.Write(pieces, io_ms);
    body_pending = false;
  } else {
    absl::string_view piece = head;
    st = conn.Write({&piece, 1}, io_ms, /*more=*/body_pending && !expect);
  }
  if (!st.ok()) return Transport(st, what);

  if (expect) {
    bool readable = !cc->in.empty() || conn.HasBuffered() ||
                    PollReadable(conn.fd(), internal::ToTimeoutMs(options.expect_continue_timeout));
    if (readable) {
      RETURN_IF_ERROR(
          Transport(ReadHead(*cc, head_request, /*return_interim=*/true, got_response), what));
      if (cc->parser.head().status != 100) {
        // Refused before the upload: the body was never sent, so the
        // connection cannot carry another request.
        return MakeResponse(std::move(cc), url, what, /*reusable=*/false);
      }
    }
  }

  absl::Status write_error;
  if (body_pending) {
    bool transport_error = false;
    absl::Status sent = SendBody(conn, body, &transport_error);
    if (!sent.ok()) {
      if (!transport_error) return sent;  // the source failed or lied about its length
      // The server may have answered and closed early (413, 401): prefer its
      // response to our write error.
      write_error = sent;
    }
  }
  absl::Status read = ReadHead(*cc, head_request, /*return_interim=*/false, got_response);
  if (!read.ok()) {
    return Transport(write_error.ok() ? read : write_error, what);
  }
  return MakeResponse(std::move(cc), url, what, /*reusable=*/write_error.ok());
}

absl::StatusOr<ClientResponse> Client::Impl::RoundTrip(const Url& url, const std::string& method,
                                                       const Headers& headers, const BodySpec& body,
                                                       bool expect_continue) {
  std::string what = absl::StrCat(method, " ", url.ToString());
  std::string key = absl::StrCat(url.scheme, "://", url.HostPort());
  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<ClientConn> cc = pool->Take(key);
    if (cc == nullptr) {
      absl::StatusOr<std::unique_ptr<ClientConn>> fresh = Connect(url);
      if (!fresh.ok()) return Transport(fresh.status(), what);
      cc = *std::move(fresh);
    }
    bool reused = cc->reused;
    bool got_response = false;
    absl::StatusOr<ClientResponse> r =
        Exchange(std::move(cc), url, method, headers, body, expect_continue, what, &got_response);
    if (r.ok() || !reused || attempt > 0 || got_response || !absl::IsUnavailable(r.status()) ||
        !IsIdempotent(method) || !body.replayable()) {
      return r;
    }
    // The server closed the pooled connection as we reused it: once more on
    // a fresh connection.
    if (body.kind == BodySpec::Kind::kSource) RETURN_IF_ERROR((*body.rewind)());
  }
}

Client::Client(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

absl::StatusOr<std::unique_ptr<Client>> Client::Create(const ClientOptions& options) {
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  ASSIGN_OR_RETURN(impl->ssl_ctx, internal::NewClientSslCtx(options.tls_verify, options.ca_file,
                                                            options.cert_file, options.key_file));
  impl->pool = std::make_shared<Pool>(std::max(0, options.max_idle_per_host));
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

void Client::CloseIdle() { impl_->pool->Clear(); }

absl::StatusOr<ClientResponse> Client::Do(const ClientRequest& request) {
  ASSIGN_OR_RETURN(Url url, ParseUrl(request.url));
  const Url original = url;
  std::string method = request.method.empty() ? "GET" : request.method;
  for (char c : method) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid HTTP method \"", absl::CHexEscape(method), "\""));
    }
  }
  Headers headers = request.headers;
  BodySpec body;
  if (request.body_source) {
    body.kind = BodySpec::Kind::kSource;
    body.source = &request.body_source;
    body.length = request.content_length;
    body.rewind = &request.rewind_body;
  } else if (!request.body.empty() || MethodExpectsBody(method)) {
    body.kind = BodySpec::Kind::kString;
    body.data = &request.body;
  }

  for (int hops = 0;; ++hops) {
    ASSIGN_OR_RETURN(ClientResponse resp,
                     impl_->RoundTrip(url, method, headers, body, request.expect_continue));
    int s = resp.status();
    bool redirect = s == 301 || s == 302 || s == 303 || s == 307 || s == 308;
    std::optional<absl::string_view> location = resp.Header("Location");
    if (!request.follow_redirects || !redirect || !location.has_value()) return resp;
    if (hops >= impl_->options.max_redirects) {
      return absl::FailedPreconditionError(
          absl::StrCat(request.method, " ", request.url, ": stopped after ", hops, " redirects"));
    }
    absl::StatusOr<Url> next = ResolveUrl(url, *location);
    if (!next.ok()) {
      return Annotate(next.status(), absl::StrCat(method, " ", url.ToString(), ": redirect"));
    }
    if (s == 307 || s == 308) {
      if (body.kind == BodySpec::Kind::kSource) {
        if (!body.replayable()) return resp;  // cannot re-send: let the caller decide
        RETURN_IF_ERROR((*body.rewind)());
      }
    } else {
      if (method != "HEAD") method = "GET";
      body = BodySpec();
    }
    // Let the connection go back to the pool before the next hop.
    { ClientResponse done = std::move(resp); }
    if (next->scheme != original.scheme || next->HostPort() != original.HostPort()) {
      headers.Remove("Authorization");
      headers.Remove("Cookie");
    }
    url = *std::move(next);
  }
}

}  // namespace pier::http
