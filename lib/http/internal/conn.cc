#include "lib/http/internal/conn.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "lib/common/status.h"

namespace pier::http::internal {
namespace {

constexpr size_t kFileCopyBuffer = 256 * 1024;
// TLS records carry at most 16 KiB; smaller writes are coalesced into one.
constexpr size_t kTlsCoalesce = 16 * 1024;

// Blocks SIGPIPE in the calling thread while alive and swallows a SIGPIPE
// raised meanwhile, so a write to a closed peer yields EPIPE rather than
// killing the process (the technique libpq uses). Costs one syscall when the
// thread already blocks SIGPIPE, as the server's threads do.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    active_ = sigismember(&old_, SIGPIPE) == 0;
    if (active_) {
      sigset_t pending;
      sigpending(&pending);
      was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    }
  }
  ~SigpipeGuard() {
    if (!active_) return;
    int saved_errno = errno;
    if (!was_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        struct timespec zero {};
        sigtimedwait(&pipe_, nullptr, &zero);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    errno = saved_errno;
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool active_ = false;
  bool was_pending_ = false;
};

absl::Status IoError(int err, absl::string_view what) {
  return absl::UnavailableError(ErrnoStatus(err, what).message());
}

// Drains OpenSSL's error queue of this thread into one line.
std::string SslErrors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

absl::Status CheckReadable(const std::string& path, absl::string_view what) {
  if (::access(path.c_str(), R_OK) != 0) {
    return ErrnoStatus(errno, absl::StrCat(what, " ", path));
  }
  return absl::OkStatus();
}

absl::Status LoadKeyPair(SSL_CTX* ctx, const std::string& cert_file, const std::string& key_file) {
  RETURN_IF_ERROR(CheckReadable(cert_file, "TLS certificate"));
  RETURN_IF_ERROR(CheckReadable(key_file, "TLS key"));
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS certificate ", cert_file, ": ", SslErrors()));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("TLS key ", key_file, ": ", SslErrors()));
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS key ", key_file, " does not match ", cert_file, ": ", SslErrors()));
  }
  return absl::OkStatus();
}

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

class PlainConn final : public Conn {
 public:
  PlainConn(UniqueFd fd, std::string peer) : Conn(std::move(fd), std::move(peer)) {}

  bool tls() const override { return false; }

  absl::StatusOr<size_t> Read(char* buf, size_t len, int timeout_ms) override {
    for (;;) {
      ssize_t n = ::recv(fd_.get(), buf, len, 0);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        RETURN_IF_ERROR(Wait(POLLIN, timeout_ms, "reading from"));
        continue;
      }
      return IoError(errno, absl::StrCat("read from ", peer_));
    }
  }

  absl::Status Write(absl::Span<const absl::string_view> pieces, int timeout_ms,
                     bool more) override {
    absl::InlinedVector<struct iovec, 8> iov;
    for (absl::string_view p : pieces) {
      if (!p.empty()) iov.push_back({const_cast<char*>(p.data()), p.size()});
    }
    size_t first = 0;
    int flags = MSG_NOSIGNAL | (more ? MSG_MORE : 0);
    while (first < iov.size()) {
      struct msghdr msg {};
      msg.msg_iov = &iov[first];
      msg.msg_iovlen = std::min<size_t>(iov.size() - first, IOV_MAX);
      ssize_t n = ::sendmsg(fd_.get(), &msg, flags);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          RETURN_IF_ERROR(Wait(POLLOUT, timeout_ms, "writing to"));
          continue;
        }
        return IoError(errno, absl::StrCat("write to ", peer_));
      }
      auto left = static_cast<size_t>(n);
      while (first < iov.size() && left >= iov[first].iov_len) {
        left -= iov[first].iov_len;
        ++first;
      }
      if (left > 0) {
        iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
        iov[first].iov_len -= left;
      }
    }
    return absl::OkStatus();
  }

  absl::Status SendFile(int file_fd, uint64_t offset, uint64_t length, int timeout_ms) override {
    SigpipeGuard guard;
    auto off = static_cast<off_t>(offset);
    uint64_t left = length;
    while (left > 0) {
      ssize_t n = ::sendfile(fd_.get(), file_fd, &off, std::min<uint64_t>(left, 1ULL << 30));
      if (n > 0) {
        left -= static_cast<uint64_t>(n);
        continue;
      }
      if (n == 0) {
        return absl::OutOfRangeError(absl::StrCat("file ended at offset ", off, " before ",
                                                  offset + length, " sending to ", peer_));
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        RETURN_IF_ERROR(Wait(POLLOUT, timeout_ms, "writing to"));
        continue;
      }
      if (errno == EINVAL || errno == ENOSYS) break;  // not a sendfile-able file: copy instead
      if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN) {
        return IoError(errno, absl::StrCat("write to ", peer_));
      }
      return ErrnoStatus(errno, absl::StrCat("sendfile to ", peer_));
    }
    if (left == 0) return absl::OkStatus();
    return CopyFile(file_fd, static_cast<uint64_t>(off), left, timeout_ms);
  }

  bool HasBuffered() override { return false; }

  bool IsStale() override {
    struct pollfd p {
      fd_.get(), POLLIN, 0
    };
    // Readable means EOF, an error, or bytes nobody asked for: all unusable.
    return ::poll(&p, 1, 0) != 0;
  }

  void Close() override {}

 private:
  absl::Status CopyFile(int file_fd, uint64_t offset, uint64_t length, int timeout_ms) {
    std::unique_ptr<char[]> buf(new char[kFileCopyBuffer]);
    while (length > 0) {
      ssize_t n = ::pread(file_fd, buf.get(), std::min<uint64_t>(length, kFileCopyBuffer),
                          static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "read file for sending");
      }
      if (n == 0) {
        return absl::OutOfRangeError(
            absl::StrCat("file ended at offset ", offset, " sending to ", peer_));
      }
      absl::string_view piece(buf.get(), static_cast<size_t>(n));
      RETURN_IF_ERROR(Write({&piece, 1}, timeout_ms, false));
      offset += static_cast<uint64_t>(n);
      length -= static_cast<uint64_t>(n);
    }
    return absl::OkStatus();
  }
};

class TlsConn final : public Conn {
 public:
  TlsConn(UniqueFd fd, std::string peer, SSL* ssl)
      : Conn(std::move(fd), std::move(peer)), ssl_(ssl) {}
  ~TlsConn() override { SSL_free(ssl_); }

  bool tls() const override { return true; }

  absl::Status Handshake(int timeout_ms) override {
    bool server = SSL_is_server(ssl_) == 1;
    SigpipeGuard guard;
    for (;;) {
      ERR_clear_error();
      int r = server ? SSL_accept(ssl_) : SSL_connect(ssl_);
      if (r == 1) return absl::OkStatus();
      int err = SSL_get_error(ssl_, r);
      int saved_errno = errno;
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        RETURN_IF_ERROR(Wait(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, timeout_ms,
                             "in TLS handshake with"));
        continue;
      }
      std::string detail = SslErrors();
      long verify = SSL_get_verify_result(ssl_);
      if (!server && verify != X509_V_OK) {
        detail = absl::StrCat("certificate verify failed: ", X509_verify_cert_error_string(verify));
      }
      if (detail.empty()) {
        detail = err == SSL_ERROR_SYSCALL && saved_errno != 0
                     ? std::string(ErrnoStatus(saved_errno, "socket").message())
                     : "connection closed during handshake";
      }
      return absl::UnavailableError(absl::StrCat("TLS handshake with ", peer_, ": ", detail));
    }
  }

  absl::StatusOr<size_t> Read(char* buf, size_t len, int timeout_ms) override {
    SigpipeGuard guard;
    for (;;) {
      ERR_clear_error();
      size_t n = 0;
      int r = SSL_read_ex(ssl_, buf, len, &n);
      if (r == 1) return n;
      int err = SSL_get_error(ssl_, r);
      switch (err) {
        case SSL_ERROR_ZERO_RETURN:
          return 0;
        case SSL_ERROR_WANT_READ:
          RETURN_IF_ERROR(Wait(POLLIN, timeout_ms, "reading from"));
          continue;
        case SSL_ERROR_WANT_WRITE:
          RETURN_IF_ERROR(Wait(POLLOUT, timeout_ms, "reading from"));
          continue;
        default:
          return Failure(err, "read from");
      }
    }
  }

  absl::Status Write(absl::Span<const absl::string_view> pieces, int timeout_ms,
                     bool more) override {
    // Small pieces (a header, a chunk size line) are staged and sent with
    // the start of the next piece, so they do not cost a TLS record each;
    // large stretches go to SSL_write directly.
    stage_.clear();
    for (absl::string_view p : pieces) {
      while (!p.empty()) {
        if (stage_.empty() && p.size() >= kTlsCoalesce) {
          RETURN_IF_ERROR(WriteOne(p, timeout_ms));
          break;
        }
        size_t n = std::min(p.size(), kTlsCoalesce - stage_.size());
        stage_.append(p.data(), n);
        p.remove_prefix(n);
        if (stage_.size() == kTlsCoalesce) {
          RETURN_IF_ERROR(WriteOne(stage_, timeout_ms));
          stage_.clear();
        }
      }
    }
    if (!stage_.empty()) RETURN_IF_ERROR(WriteOne(stage_, timeout_ms));
    return absl::OkStatus();
  }

  absl::Status SendFile(int file_fd, uint64_t offset, uint64_t length, int timeout_ms) override {
    if (file_buf_ == nullptr) file_buf_.reset(new char[kFileCopyBuffer]);
    while (length > 0) {
      ssize_t n = ::pread(file_fd, file_buf_.get(), std::min<uint64_t>(length, kFileCopyBuffer),
                          static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "read file for sending");
      }
      if (n == 0) {
        return absl::OutOfRangeError(
            absl::StrCat("file ended at offset ", offset, " sending to ", peer_));
      }
      RETURN_IF_ERROR(
          WriteOne(absl::string_view(file_buf_.get(), static_cast<size_t>(n)), timeout_ms));
      offset += static_cast<uint64_t>(n);
      length -= static_cast<uint64_t>(n);
    }
    return absl::OkStatus();
  }

  bool HasBuffered() override { return SSL_has_pending(ssl_) == 1; }

  bool IsStale() override {
    struct pollfd p {
      fd_.get(), POLLIN, 0
    };
    if (::poll(&p, 1, 0) == 0 && SSL_has_pending(ssl_) != 1) return false;
    // Something arrived. Session tickets (TLS 1.3) are harmless; application
    // data, an alert or EOF make the connection unusable.
    SigpipeGuard guard;
    ERR_clear_error();
    char c;
    size_t n = 0;
    int r = SSL_peek_ex(ssl_, &c, 1, &n);
    if (r == 1) return true;
    bool stale = SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ;
    ERR_clear_error();
    return stale;
  }

  void Close() override {
    SigpipeGuard guard;
    ERR_clear_error();
    SSL_shutdown(ssl_);
    ERR_clear_error();
  }

 private:
  absl::Status WriteOne(absl::string_view data, int timeout_ms) {
    SigpipeGuard guard;
    while (!data.empty()) {
      ERR_clear_error();
      size_t n = 0;
      int r = SSL_write_ex(ssl_, data.data(), data.size(), &n);
      if (r == 1) {
        data.remove_prefix(n);
        continue;
      }
      int err = SSL_get_error(ssl_, r);
      if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
        RETURN_IF_ERROR(
            Wait(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, timeout_ms, "writing to"));
        continue;
      }
      return Failure(err, "write to");
    }
    return absl::OkStatus();
  }

  absl::Status Failure(int err, absl::string_view op) {
    int saved_errno = errno;
    std::string detail = SslErrors();
    if (err == SSL_ERROR_SYSCALL && detail.empty()) {
      if (saved_errno == 0) {
        return absl::UnavailableError(absl::StrCat(op, " ", peer_, ": connection closed"));
      }
      return IoError(saved_errno, absl::StrCat(op, " ", peer_));
    }
    if (err == SSL_ERROR_ZERO_RETURN) detail = "connection closed";
    return absl::UnavailableError(absl::StrCat("TLS ", op, " ", peer_, ": ", detail));
  }

  SSL* ssl_;
  std::unique_ptr<char[]> file_buf_;
  std::string stage_;  // Write()'s coalescing buffer
};

}  // namespace

absl::Status Conn::Wait(short events, int timeout_ms, absl::string_view what) {
  struct pollfd p {
    fd_.get(), events, 0
  };
  for (;;) {
    int r = ::poll(&p, 1, timeout_ms);
    if (r > 0) return absl::OkStatus();
    if (r == 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("timed out after ", timeout_ms, " ms ", what, " ", peer_));
    }
    if (errno != EINTR) return IoError(errno, absl::StrCat("poll ", peer_));
  }
}

void SslCtxDeleter::operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }

absl::StatusOr<SslCtxPtr> NewServerSslCtx(const std::string& cert_file, const std::string& key_file,
                                          const std::string& client_ca_file) {
  if (cert_file.empty() || key_file.empty()) {
    return absl::InvalidArgumentError("TLS needs both a certificate and a key file");
  }
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (ctx == nullptr) return absl::InternalError(absl::StrCat("SSL_CTX_new: ", SslErrors()));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
  static constexpr unsigned char kSessionContext[] = "pier-http";
  SSL_CTX_set_session_id_context(ctx.get(), kSessionContext, sizeof(kSessionContext) - 1);
  RETURN_IF_ERROR(LoadKeyPair(ctx.get(), cert_file, key_file));
  if (!client_ca_file.empty()) {
    RETURN_IF_ERROR(CheckReadable(client_ca_file, "TLS client CA"));
    if (SSL_CTX_load_verify_locations(ctx.get(), client_ca_file.c_str(), nullptr) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("TLS client CA ", client_ca_file, ": ", SslErrors()));
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(client_ca_file.c_str());
    if (names == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("TLS client CA ", client_ca_file, ": ", SslErrors()));
    }
    SSL_CTX_set_client_CA_list(ctx.get(), names);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return ctx;
}

absl::StatusOr<SslCtxPtr> NewClientSslCtx(bool verify, const std::string& ca_file,
                                          const std::string& cert_file,
                                          const std::string& key_file) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (ctx == nullptr) return absl::InternalError(absl::StrCat("SSL_CTX_new: ", SslErrors()));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (verify) {
    // A host without a system CA bundle still works with an explicit ca_file.
    SSL_CTX_set_default_verify_paths(ctx.get());
    ERR_clear_error();
    if (!ca_file.empty()) {
      RETURN_IF_ERROR(CheckReadable(ca_file, "TLS CA"));
      if (SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr) != 1) {
        return absl::InvalidArgumentError(absl::StrCat("TLS CA ", ca_file, ": ", SslErrors()));
      }
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  }
  if (!cert_file.empty() || !key_file.empty()) {
    if (cert_file.empty() || key_file.empty()) {
      return absl::InvalidArgumentError("a TLS client certificate needs both cert and key files");
    }
    RETURN_IF_ERROR(LoadKeyPair(ctx.get(), cert_file, key_file));
  }
  return ctx;
}

std::unique_ptr<Conn> NewPlainConn(UniqueFd fd, std::string peer) {
  return std::make_unique<PlainConn>(std::move(fd), std::move(peer));
}

absl::StatusOr<std::unique_ptr<Conn>> NewTlsServerConn(UniqueFd& fd, std::string peer,
                                                       SSL_CTX* ctx) {
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return absl::InternalError(absl::StrCat("SSL_new: ", SslErrors()));
  SSL_set_fd(ssl, fd.get());
  SSL_set_accept_state(ssl);
  return std::unique_ptr<Conn>(std::make_unique<TlsConn>(std::move(fd), std::move(peer), ssl));
}

absl::StatusOr<std::unique_ptr<Conn>> NewTlsClientConn(UniqueFd fd, std::string peer, SSL_CTX* ctx,
                                                       const std::string& host) {
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return absl::InternalError(absl::StrCat("SSL_new: ", SslErrors()));
  SSL_set_fd(ssl, fd.get());
  SSL_set_connect_state(ssl);
  auto conn = std::make_unique<TlsConn>(std::move(fd), std::move(peer), ssl);
  bool ip = IsIpLiteral(host);
  if (!ip) SSL_set_tlsext_host_name(ssl, host.c_str());
  if ((SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER) != 0) {
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str())
                : SSL_set1_host(ssl, host.c_str());
    if (ok != 1) {
      return absl::InvalidArgumentError(absl::StrCat("TLS: cannot verify host \"", host, "\""));
    }
  }
  return std::unique_ptr<Conn>(std::move(conn));
}

absl::StatusOr<UniqueFd> Dial(const std::string& host, uint16_t port, int timeout_ms,
                              std::string* peer) {
  struct addrinfo hints {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  struct addrinfo* res = nullptr;
  std::string port_text = absl::StrCat(port);
  int gai = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &res);
  if (gai != 0) {
    return absl::UnavailableError(absl::StrCat("resolve ", host, ": ", gai_strerror(gai)));
  }
  std::unique_ptr<struct addrinfo, void (*)(struct addrinfo*)> owner(res, ::freeaddrinfo);
  absl::Status last = absl::UnavailableError(absl::StrCat("resolve ", host, ": no addresses"));
  for (struct addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    std::string addr = FormatSockaddr(ai->ai_addr);
    UniqueFd fd(
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) {
      last = IoError(errno, "socket");
      continue;
    }
    int r = ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
    if (r != 0 && errno == EINPROGRESS) {
      struct pollfd p {
        fd.get(), POLLOUT, 0
      };
      do {
        r = ::poll(&p, 1, timeout_ms);
      } while (r < 0 && errno == EINTR);
      if (r == 0) {
        last = absl::DeadlineExceededError(
            absl::StrCat("connect to ", addr, ": timed out after ", timeout_ms, " ms"));
        continue;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        last = IoError(err, absl::StrCat("connect to ", addr));
        continue;
      }
    } else if (r != 0) {
      last = IoError(errno, absl::StrCat("connect to ", addr));
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *peer = std::move(addr);
    return fd;
  }
  return last;
}

std::string FormatSockaddr(const struct sockaddr* addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const struct sockaddr_in*>(addr);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
    return absl::StrCat(buf, ":", ntohs(in->sin_port));
  }
  if (addr->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const struct sockaddr_in6*>(addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
    return absl::StrCat("[", buf, "]:", ntohs(in6->sin6_port));
  }
  return "unknown";
}

int ToTimeoutMs(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return -1;
  if (d <= absl::ZeroDuration()) return 0;
  int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(d, absl::Milliseconds(1)));
  return static_cast<int>(std::min<int64_t>(std::max<int64_t>(ms, 1), INT_MAX));
}

}  // namespace pier::http::internal
