#include "lib/http/server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "lib/common/log.h"
#include "lib/common/status.h"
#include "lib/http/internal/conn.h"
#include "lib/http/internal/wire.h"

namespace pier::http {
namespace internal {

// The state of one request/response exchange on a connection, shared by the
// Request and ResponseWriter handed to the handler.
struct Exchange {
  Conn* conn = nullptr;
  InputBuffer* in = nullptr;
  BodyReader* body = nullptr;
  const ServerOptions* options = nullptr;
  const std::atomic<bool>* stopping = nullptr;
  int io_ms = 0;
  int version = 11;
  bool is_head = false;
  bool keep_alive = true;
  bool expect_continue = false;
  bool continue_sent = false;
  // Close the connection after this exchange.
  bool close_after = false;
  // Writing to the client failed or the response is broken.
  bool failed = false;

  Request request;
  ResponseWriter writer{this};

  Exchange() { request.exchange_ = this; }

  absl::StatusOr<size_t> ReadBody(char* buf, size_t len) {
    if (expect_continue && !continue_sent && !body->done()) {
      if (writer.started()) {
        // The client still waits for "100 Continue"; after a final response
        // it must not get one, so the body will never come.
        return absl::FailedPreconditionError(
            "the request body was not sent: the response went out before it was read");
      }
      continue_sent = true;
      static constexpr absl::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      absl::Status st = conn->Write({&kContinue, 1}, io_ms);
      if (!st.ok()) {
        failed = true;
        close_after = true;
        return st;
      }
    }
    return body->Read(*conn, *in, buf, len, io_ms);
  }
};

}  // namespace internal

namespace {

using internal::Conn;
using internal::Exchange;

constexpr std::chrono::seconds kWorkerIdleExit(30);
constexpr size_t kMinInputBuffer = 64 * 1024;
// A connection closed with request bytes unread first reads and discards up
// to this much (for at most kLingerMs per read), so that the close does not
// reset the connection before the client has read our response.
constexpr size_t kLingerBytes = 4 * 1024 * 1024;
constexpr int kLingerMs = 2000;

// "Sun, 06 Nov 1994 08:49:37 GMT", recomputed once a second per thread.
absl::string_view HttpDate() {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  thread_local time_t last = -1;
  thread_local char buf[32];
  time_t now = ::time(nullptr);
  if (now != last) {
    struct tm tm {};
    gmtime_r(&now, &tm);
    std::snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday % 7],
                  tm.tm_mday, kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                  tm.tm_sec);
    last = now;
  }
  return buf;
}

bool IsManagedHeader(absl::string_view name) {
  return absl::EqualsIgnoreCase(name, "Content-Length") ||
         absl::EqualsIgnoreCase(name, "Transfer-Encoding") ||
         absl::EqualsIgnoreCase(name, "Connection");
}

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::string_view("!#$%&'*+-.^_`|~").find(c) != absl::string_view::npos;
}

absl::Status ValidateField(absl::string_view name, absl::string_view value) {
  if (name.empty()) return absl::InvalidArgumentError("empty response header name");
  for (char c : name) {
    if (!IsTokenChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid response header name \"", absl::CHexEscape(name), "\""));
    }
  }
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid value for response header ", name, ": control character"));
    }
  }
  return absl::OkStatus();
}

// "1a2b\r\n" for a chunk of `size` bytes.
std::string ChunkHeader(uint64_t size) {
  char buf[24];
  int n = std::snprintf(buf, sizeof(buf), "%llx\r\n", static_cast<unsigned long long>(size));
  return std::string(buf, static_cast<size_t>(n));
}

struct ListenAddress {
  std::string host;  // without brackets; empty for all interfaces
  std::string port;
};

absl::StatusOr<ListenAddress> ParseListen(absl::string_view listen) {
  auto bad = [listen](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid listen address \"", listen, "\": ", why, " (want host:port)"));
  };
  size_t colon = listen.rfind(':');
  if (colon == absl::string_view::npos) return bad("no port");
  ListenAddress out;
  absl::string_view host = listen.substr(0, colon);
  if (absl::StartsWith(host, "[")) {
    if (!absl::EndsWith(host, "]")) return bad("unterminated IPv6 address");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != absl::string_view::npos) {
    return bad("IPv6 addresses need brackets");
  }
  out.host = std::string(host);
  out.port = std::string(listen.substr(colon + 1));
  uint32_t port = 0;
  if (!absl::SimpleAtoi(out.port, &port) || port > 65535) return bad("bad port");
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------
// Request and ResponseWriter.

std::optional<absl::string_view> Request::Query(absl::string_view key) const {
  for (const auto& [k, v] : query) {
    if (k == key) return absl::string_view(v);
  }
  return std::nullopt;
}

absl::StatusOr<size_t> Request::ReadBody(char* buf, size_t len) {
  if (exchange_ == nullptr) {
    return absl::FailedPreconditionError("the request body is readable only inside the handler");
  }
  return exchange_->ReadBody(buf, len);
}

absl::StatusOr<std::string> Request::ReadAllBody(size_t max) {
  if (content_length.has_value() && *content_length > max) {
    return absl::ResourceExhaustedError(
        absl::StrCat("request body of ", *content_length, " bytes exceeds the limit of ", max));
  }
  std::string out;
  size_t step = 64 * 1024;
  if (content_length.has_value()) {
    out.resize(static_cast<size_t>(*content_length) + 1);
  }
  size_t size = 0;
  for (;;) {
    if (out.size() - size < 1) out.resize(std::max(out.size() * 2, size + step));
    ASSIGN_OR_RETURN(size_t n, ReadBody(out.data() + size, out.size() - size));
    if (n == 0) break;
    size += n;
    if (size > max) {
      return absl::ResourceExhaustedError(
          absl::StrCat("request body exceeds the limit of ", max, " bytes"));
    }
  }
  out.resize(size);
  return out;
}

absl::StatusOr<std::string> ResponseWriter::BuildHead(std::optional<uint64_t> content_length) {
  Exchange& ex = *exchange_;
  if (status_ < 100 || status_ > 999 || status_ == 101) {
    return absl::InvalidArgumentError(absl::StrCat("invalid response status ", status_));
  }
  for (const auto& [name, value] : headers_.entries()) {
    RETURN_IF_ERROR(ValidateField(name, value));
  }
  chunked_ = false;
  if (!bodyless() && !content_length.has_value()) {
    if (ex.version >= 11) {
      chunked_ = true;
    } else {
      ex.close_after = true;  // an HTTP/1.0 body of unknown length ends with the connection
    }
  }
  // Keep the connection only if what remains of the request body can be
  // drained cheaply afterwards.
  internal::BodyReader& body = *ex.body;
  if (body.failed()) {
    ex.close_after = true;
  } else if (!body.done()) {
    if (ex.expect_continue && !ex.continue_sent) {
      ex.close_after = true;  // the client waits for 100 Continue; it will not come
    } else if (body.remaining().has_value() && *body.remaining() > ex.options->max_drain_bytes) {
      ex.close_after = true;
    }
  }
  if (!ex.keep_alive || ex.stopping->load(std::memory_order_relaxed)) ex.close_after = true;

  std::string head;
  head.reserve(256);
  absl::StrAppend(&head, "HTTP/1.1 ", status_, " ", ReasonPhrase(status_), "\r\nDate: ", HttpDate(),
                  "\r\n");
  for (const auto& [name, value] : headers_.entries()) {
    if (IsManagedHeader(name)) continue;
    absl::StrAppend(&head, name, ": ", value, "\r\n");
  }
  if (!bodyless()) {
    if (content_length.has_value()) {
      absl::StrAppend(&head, "Content-Length: ", *content_length, "\r\n");
    } else if (chunked_) {
      head.append("Transfer-Encoding: chunked\r\n");
    }
  }
  if (ex.close_after) {
    head.append("Connection: close\r\n");
  } else if (ex.version == 10) {
    head.append("Connection: keep-alive\r\n");
  }
  head.append("\r\n");
  return head;
}

absl::Status ResponseWriter::Check(absl::Status status) {
  if (!status.ok()) {
    exchange_->failed = true;
    exchange_->close_after = true;
    state_ = State::kDone;
  }
  return status;
}

absl::Status ResponseWriter::Send(absl::string_view body) {
  if (state_ != State::kNone) {
    return absl::FailedPreconditionError("Send: the response was already started");
  }
  if (bodyless() && !body.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Send: a ", status_, " response cannot carry a body"));
  }
  ASSIGN_OR_RETURN(std::string head, BuildHead(body.size()));
  state_ = State::kDone;
  Exchange& ex = *exchange_;
  absl::string_view pieces[2] = {head, ex.is_head ? absl::string_view() : body};
  return Check(ex.conn->Write(pieces, ex.io_ms));
}

absl::Status ResponseWriter::Start(std::optional<uint64_t> content_length) {
  if (state_ != State::kNone) {
    return absl::FailedPreconditionError("Start: the response was already started");
  }
  ASSIGN_OR_RETURN(pending_head_, BuildHead(content_length));
  length_ = bodyless() ? std::optional<uint64_t>(0) : content_length;
  written_ = 0;
  state_ = State::kStreaming;
  return absl::OkStatus();
}

absl::Status ResponseWriter::Write(absl::string_view data) {
  if (state_ != State::kStreaming) {
    return absl::FailedPreconditionError(state_ == State::kNone ? "Write before Start"
                                                                : "Write after the response ended");
  }
  if (data.empty()) return absl::OkStatus();
  if (length_.has_value() && written_ + data.size() > *length_) {
    return absl::InvalidArgumentError(absl::StrCat("Write of ", data.size(),
                                                   " bytes exceeds the declared length ", *length_,
                                                   " (", written_, " written)"));
  }
  written_ += data.size();
  Exchange& ex = *exchange_;
  if (ex.is_head) return absl::OkStatus();
  absl::Status st;
  if (chunked_) {
    std::string chunk_header = ChunkHeader(data.size());
    absl::string_view pieces[4] = {pending_head_, chunk_header, data, "\r\n"};
    st = ex.conn->Write(pieces, ex.io_ms);
  } else {
    absl::string_view pieces[2] = {pending_head_, data};
    st = ex.conn->Write(pieces, ex.io_ms);
  }
  pending_head_.clear();
  return Check(st);
}

absl::Status ResponseWriter::Finish() {
  if (state_ != State::kStreaming) {
    return absl::FailedPreconditionError(state_ == State::kNone ? "Finish before Start"
                                                                : "the response already ended");
  }
  Exchange& ex = *exchange_;
  state_ = State::kDone;
  // A HEAD response declares the length of a body it never sends.
  if (length_.has_value() && written_ != *length_ && !ex.is_head) {
    ex.close_after = true;
    ex.failed = true;
    return absl::FailedPreconditionError(
        absl::StrCat("response finished after ", written_, " of its ", *length_, " bytes"));
  }
  absl::string_view pieces[2] = {pending_head_,
                                 chunked_ && !ex.is_head ? "0\r\n\r\n" : absl::string_view()};
  absl::Status st = ex.conn->Write(pieces, ex.io_ms);
  pending_head_.clear();
  return Check(st);
}

absl::Status ResponseWriter::SendFile(int fd, uint64_t offset, uint64_t length) {
  Exchange& ex = *exchange_;
  if (state_ == State::kDone) {
    return absl::FailedPreconditionError("SendFile after the response ended");
  }
  // Refuse a bad descriptor or a file that is too short before anything is
  // sent, while the handler can still answer with an error.
  struct stat file {};
  if (::fstat(fd, &file) != 0) return ErrnoStatus(errno, "SendFile: fstat");
  if (S_ISREG(file.st_mode) && static_cast<uint64_t>(file.st_size) < offset + length) {
    return absl::OutOfRangeError(absl::StrCat("SendFile: file of ", file.st_size,
                                              " bytes has no range [", offset, ", ",
                                              offset + length, ")"));
  }
  if (state_ == State::kNone) {
    if (bodyless() && length > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("SendFile: a ", status_, " response cannot carry a body"));
    }
    ASSIGN_OR_RETURN(std::string head, BuildHead(length));
    state_ = State::kDone;
    absl::string_view piece = head;
    bool body = !ex.is_head && length > 0;
    RETURN_IF_ERROR(Check(ex.conn->Write({&piece, 1}, ex.io_ms, /*more=*/body)));
    if (!body) return absl::OkStatus();
    return Check(ex.conn->SendFile(fd, offset, length, ex.io_ms));
  }
  // The next piece of a streamed body.
  if (length == 0) return absl::OkStatus();
  if (length_.has_value() && written_ + length > *length_) {
    return absl::InvalidArgumentError(absl::StrCat("SendFile of ", length,
                                                   " bytes exceeds the declared length ", *length_,
                                                   " (", written_, " written)"));
  }
  written_ += length;
  if (ex.is_head) return absl::OkStatus();
  std::string chunk_header = chunked_ ? ChunkHeader(length) : std::string();
  absl::string_view pieces[2] = {pending_head_, chunk_header};
  absl::Status st = ex.conn->Write(pieces, ex.io_ms, /*more=*/true);
  pending_head_.clear();
  RETURN_IF_ERROR(Check(st));
  RETURN_IF_ERROR(Check(ex.conn->SendFile(fd, offset, length, ex.io_ms)));
  if (chunked_) {
    absl::string_view crlf = "\r\n";
    RETURN_IF_ERROR(Check(ex.conn->Write({&crlf, 1}, ex.io_ms)));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Server.

struct Server::Impl {
  struct Pending {
    UniqueFd fd;
    std::string remote;
  };

  ServerOptions options;
  Handler handler;
  UniqueFd listen_fd;
  UniqueFd wake_fd;  // eventfd, readable once Stop() begins
  internal::SslCtxPtr ssl_ctx;
  std::string address;
  uint16_t port = 0;
  std::thread acceptor;
  std::atomic<bool> stopping{false};
  std::once_flag stop_once;

  // std::mutex rather than absl::Mutex: Debian's libabsl is not built for
  // ThreadSanitizer, which then cannot see absl::Mutex's ordering.
  mutable std::mutex mu;
  std::condition_variable work_cv;   // signalled: queue grew, quit
  std::condition_variable state_cv;  // signalled: connections or workers shrank
  // Guarded by mu:
  std::deque<Pending> queue;
  int idle_workers = 0;
  int connections = 0;  // queued or being served
  std::map<std::thread::id, std::thread> workers;
  std::vector<std::thread> exited;  // finished, to be joined
  std::set<int> serving_fds;
  bool quit = false;  // workers must exit

  void AcceptLoop();
  void WorkerMain();
  void Reject(UniqueFd fd);
  // Serves requests on `fd` until the connection ends. Returns the
  // connection so the caller closes it after unregistering its descriptor.
  std::unique_ptr<Conn> Serve(Pending& pending);
  absl::Status ReadHead(Conn& conn, internal::InputBuffer& in, internal::MessageParser& parser,
                        bool* eof);
  bool WaitForRequest(Conn& conn, const internal::InputBuffer& in);
  void SendError(Conn& conn, int status, absl::string_view message);
  void Linger(Conn& conn);
  void StopImpl();
};

void Server::Impl::AcceptLoop() {
  pthread_setname_np(pthread_self(), "pier-http-accept");
  for (;;) {
    struct pollfd fds[2] = {{listen_fd.get(), POLLIN, 0}, {wake_fd.get(), POLLIN, 0}};
    int r = ::poll(fds, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      PIER_LOG(ERROR) << "http server " << address << ": poll: " << ErrnoStatus(errno, "poll");
      return;
    }
    if (fds[1].revents != 0) return;
    struct sockaddr_storage ss {};
    socklen_t len = sizeof(ss);
    UniqueFd fd(::accept4(listen_fd.get(), reinterpret_cast<struct sockaddr*>(&ss), &len,
                          SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED) continue;
      PIER_LOG(WARNING) << "http server " << address << ": " << ErrnoStatus(err, "accept");
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // Out of descriptors or memory: back off rather than spin.
        struct pollfd wake = {wake_fd.get(), POLLIN, 0};
        ::poll(&wake, 1, 100);
      }
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::string remote = internal::FormatSockaddr(reinterpret_cast<struct sockaddr*>(&ss));
    std::vector<std::thread> to_join;
    bool rejected = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (connections >= options.max_connections) {
        rejected = true;
      } else {
        queue.push_back({std::move(fd), std::move(remote)});
        ++connections;
        if (static_cast<int>(queue.size()) > idle_workers) {
          std::thread t(&Impl::WorkerMain, this);
          std::thread::id id = t.get_id();
          workers.emplace(id, std::move(t));
        } else {
          work_cv.notify_one();
        }
        to_join.swap(exited);
      }
    }
    for (std::thread& t : to_join) t.join();
    if (rejected) Reject(std::move(fd));
  }
}

void Server::Impl::Reject(UniqueFd fd) {
  PIER_LOG(WARNING) << "http server " << address << ": " << options.max_connections
                    << " connections open; refusing another";
  if (!ssl_ctx) {
    static constexpr absl::string_view k503 =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n"
        "Connection: close\r\n\r\n";
    (void)!::send(fd.get(), k503.data(), k503.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
}

void Server::Impl::WorkerMain() {
  pthread_setname_np(pthread_self(), "pier-http-conn");
  // Writes to a vanished client must fail with EPIPE, not kill the process.
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  for (;;) {
    Pending pending;
    {
      std::unique_lock<std::mutex> lock(mu);
      ++idle_workers;
      work_cv.wait_for(lock, kWorkerIdleExit, [this] { return quit || !queue.empty(); });
      --idle_workers;
      if (quit || queue.empty()) {
        auto it = workers.find(std::this_thread::get_id());
        exited.push_back(std::move(it->second));
        workers.erase(it);
        state_cv.notify_all();
        return;
      }
      pending = std::move(queue.front());
      queue.pop_front();
      serving_fds.insert(pending.fd.get());
    }
    int fd_number = pending.fd.get();
    std::unique_ptr<Conn> conn = Serve(pending);
    {
      std::lock_guard<std::mutex> lock(mu);
      serving_fds.erase(fd_number);
      --connections;
      state_cv.notify_all();
    }
    // Closed only now, so Stop() never shuts down a recycled descriptor.
    conn.reset();
    pending.fd.Reset();
  }
}

bool Server::Impl::WaitForRequest(Conn& conn, const internal::InputBuffer& in) {
  if (!in.empty() || conn.HasBuffered()) return true;
  struct pollfd fds[2] = {{conn.fd(), POLLIN, 0}, {wake_fd.get(), POLLIN, 0}};
  int timeout = internal::ToTimeoutMs(options.idle_timeout);
  for (;;) {
    int r = ::poll(fds, 2, timeout);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;    // idle timeout
    return fds[0].revents != 0;  // a request (or EOF) beats Stop()
  }
}

absl::Status Server::Impl::ReadHead(Conn& conn, internal::InputBuffer& in,
                                    internal::MessageParser& parser, bool* eof) {
  *eof = false;
  bool started = false;
  int io_ms = internal::ToTimeoutMs(options.io_timeout);
  for (;;) {
    if (!in.empty()) {
      // Tolerate blank lines before a request line (RFC 9112 section 2.2).
      absl::string_view data = in.data();
      while (!started && absl::StartsWith(data, "\r\n")) {
        in.Consume(2);
        data = in.data();
      }
      if (!data.empty()) {
        started = true;
        ASSIGN_OR_RETURN(size_t n, parser.PutHeader(data));
        in.Consume(n);
        if (parser.header_done()) return absl::OkStatus();
      }
    }
    absl::StatusOr<size_t> n = in.Fill(conn, io_ms);
    if (!n.ok()) {
      if (absl::IsResourceExhausted(n.status())) {
        return absl::ResourceExhaustedError("HTTP header too large");
      }
      return n.status();
    }
    if (*n == 0) {
      *eof = !started;
      return absl::UnavailableError("connection closed in the middle of a request header");
    }
  }
}

void Server::Impl::SendError(Conn& conn, int status, absl::string_view message) {
  std::string body = absl::StrCat(message, "\n");
  std::string head =
      absl::StrCat("HTTP/1.1 ", status, " ", ReasonPhrase(status), "\r\nDate: ", HttpDate(),
                   "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ", body.size(),
                   "\r\nConnection: close\r\n\r\n");
  absl::string_view pieces[2] = {head, body};
  (void)conn.Write(pieces, internal::ToTimeoutMs(options.io_timeout));
}

void Server::Impl::Linger(Conn& conn) {
  conn.Close();
  ::shutdown(conn.fd(), SHUT_WR);
  char buf[16 * 1024];
  size_t total = 0;
  while (total < kLingerBytes) {
    struct pollfd fds[2] = {{conn.fd(), POLLIN, 0}, {wake_fd.get(), POLLIN, 0}};
    int r = ::poll(fds, 2, kLingerMs);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || fds[0].revents == 0) return;
    ssize_t n = ::recv(conn.fd(), buf, sizeof(buf), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return;
    total += static_cast<size_t>(n);
  }
}

std::unique_ptr<Conn> Server::Impl::Serve(Pending& pending) {
  int io_ms = internal::ToTimeoutMs(options.io_timeout);
  std::unique_ptr<Conn> conn;
  if (ssl_ctx) {
    absl::StatusOr<std::unique_ptr<Conn>> tls =
        internal::NewTlsServerConn(pending.fd, pending.remote, ssl_ctx.get());
    if (!tls.ok()) {
      PIER_LOG(WARNING) << "http " << pending.remote << ": " << tls.status();
      return nullptr;
    }
    conn = *std::move(tls);
    absl::Status st = conn->Handshake(io_ms);
    if (!st.ok()) {
      PIER_LOG(DEBUG) << "http " << pending.remote << ": " << st;
      return conn;
    }
  } else {
    conn = internal::NewPlainConn(std::move(pending.fd), pending.remote);
  }

  internal::InputBuffer in(std::max(kMinInputBuffer, options.max_header_bytes + 4096));
  internal::MessageParser parser;
  internal::BodyReader body;
  std::unique_ptr<char[]> drain_buf;
  for (;;) {
    if (!WaitForRequest(*conn, in)) return conn;
    parser.ResetForRequest(options.max_header_bytes);
    bool eof = false;
    absl::Status st = ReadHead(*conn, in, parser, &eof);
    if (!st.ok()) {
      if (absl::IsInvalidArgument(st)) {
        SendError(*conn, 400, st.message());
        Linger(*conn);
      } else if (absl::IsResourceExhausted(st)) {
        SendError(*conn, 431, st.message());
        Linger(*conn);
      } else if (!eof) {
        PIER_LOG(DEBUG) << "http " << conn->peer() << ": " << st;
      }
      return conn;
    }

    internal::MessageHead& head = parser.head();
    Exchange ex;
    Request& req = ex.request;
    req.method = head.method;
    req.target = head.target;
    req.version = head.version;
    req.tls = conn->tls();
    req.remote_address = conn->peer();
    req.content_length = head.content_length;
    req.chunked = head.chunked;

    // Request target: origin-form, absolute-form (proxies), or "*".
    int error_status = 0;
    std::string error_message;
    absl::string_view target = req.target;
    if (absl::StartsWithIgnoreCase(target, "http://") ||
        absl::StartsWithIgnoreCase(target, "https://")) {
      size_t slash = target.find('/', target.find("://") + 3);
      target = slash == absl::string_view::npos ? "/" : target.substr(slash);
    }
    if (target == "*" && req.method == "OPTIONS") {
      req.path = "*";
    } else if (!absl::StartsWith(target, "/")) {
      error_status = 400;
      error_message = "malformed request target";
    } else {
      size_t q = target.find('?');
      absl::StatusOr<std::string> path = PercentDecode(target.substr(0, q));
      absl::StatusOr<QueryParams> query =
          q == absl::string_view::npos ? QueryParams() : ParseQuery(target.substr(q + 1));
      if (!path.ok() || !query.ok()) {
        error_status = 400;
        error_message = std::string((!path.ok() ? path.status() : query.status()).message());
      } else {
        req.path = *std::move(path);
        req.query = *std::move(query);
      }
    }
    if (error_status == 0 && head.headers.Has("Transfer-Encoding") && !head.chunked) {
      error_status = 501;
      error_message = "unsupported Transfer-Encoding";
    }
    bool has_body = head.chunked || head.content_length.value_or(0) > 0;
    if (error_status == 0) {
      if (std::optional<absl::string_view> expect = head.headers.Get("Expect")) {
        if (!absl::EqualsIgnoreCase(*expect, "100-continue")) {
          error_status = 417;
          error_message = absl::StrCat("unsupported expectation \"", *expect, "\"");
        } else {
          ex.expect_continue = head.version >= 11 && has_body;
        }
      }
    }
    if (error_status != 0) {
      SendError(*conn, error_status, error_message);
      Linger(*conn);
      return conn;
    }
    req.headers = std::move(head.headers);

    if (head.chunked) {
      body.Start(internal::BodyReader::Framing::kChunked, 0, &parser);
    } else if (head.content_length.value_or(0) > 0) {
      body.Start(internal::BodyReader::Framing::kLength, *head.content_length, &parser);
    } else {
      body.Start(internal::BodyReader::Framing::kNone, 0, &parser);
    }
    ex.conn = conn.get();
    ex.in = &in;
    ex.body = &body;
    ex.options = &options;
    ex.stopping = &stopping;
    ex.io_ms = io_ms;
    ex.version = head.version;
    ex.is_head = req.method == "HEAD";
    ex.keep_alive = head.keep_alive;

    absl::Time begin = absl::Now();
    try {
      handler(req, ex.writer);
    } catch (const std::exception& e) {
      PIER_LOG(ERROR) << "http " << req.method << " " << req.target
                      << ": handler threw: " << e.what();
      ex.close_after = true;
    } catch (...) {
      PIER_LOG(ERROR) << "http " << req.method << " " << req.target
                      << ": handler threw a non-standard exception";
      ex.close_after = true;
    }
    ResponseWriter& w = ex.writer;
    if (!w.started() && !ex.failed) {
      if (!ex.close_after) {
        PIER_LOG(WARNING) << "http " << req.method << " " << req.target
                          << ": handler sent no response";
      }
      w.SetStatus(500);
      w.headers().Clear();
      w.SetHeader("Content-Type", "text/plain; charset=utf-8");
      (void)w.Send("internal server error\n");
    } else if (!w.finished()) {
      // A streamed response the handler never finished: the client cannot
      // tell it is incomplete unless the connection ends.
      ex.close_after = true;
      ex.failed = true;
    }
    PIER_LOG(DEBUG) << "http " << conn->peer() << " " << req.method << " " << req.target << " "
                    << w.status() << " " << absl::ToDoubleMilliseconds(absl::Now() - begin) << "ms";
    if (ex.failed) return conn;

    // Discard what the handler left of the request body, within bounds.
    if (!body.done() && !ex.close_after) {
      if (body.failed() || (ex.expect_continue && !ex.continue_sent)) {
        ex.close_after = true;
      } else {
        if (drain_buf == nullptr) drain_buf.reset(new char[kMinInputBuffer]);
        uint64_t start = body.bytes_read();
        while (!body.done() && body.bytes_read() - start <= options.max_drain_bytes) {
          absl::StatusOr<size_t> n = body.Read(*conn, in, drain_buf.get(), kMinInputBuffer, io_ms);
          if (!n.ok()) break;
        }
        if (!body.done()) ex.close_after = true;
      }
    }
    if (ex.close_after) {
      if (!body.done() && !body.failed()) Linger(*conn);
      return conn;
    }
  }
}

void Server::Impl::StopImpl() {
  stopping.store(true);
  uint64_t one = 1;
  (void)!::write(wake_fd.get(), &one, sizeof(one));
  if (acceptor.joinable()) acceptor.join();
  listen_fd.Reset();

  std::deque<Pending> unserved;
  {
    std::lock_guard<std::mutex> lock(mu);
    unserved.swap(queue);
    connections -= static_cast<int>(unserved.size());
  }
  unserved.clear();  // closes them

  std::vector<std::thread> to_join;
  {
    std::unique_lock<std::mutex> lock(mu);
    auto drained = [this] { return connections == 0; };
    // Durations beyond a day are "forever" (and would overflow the clock).
    bool in_time = true;
    if (options.shutdown_grace > absl::Hours(24)) {
      state_cv.wait(lock, drained);
    } else {
      in_time =
          state_cv.wait_for(lock, absl::ToChronoMilliseconds(options.shutdown_grace), drained);
    }
    if (!in_time) {
      PIER_LOG(WARNING) << "http server " << address << ": " << connections
                        << " connections still busy after the shutdown grace; cutting them off";
      for (int fd : serving_fds) ::shutdown(fd, SHUT_RDWR);
      state_cv.wait(lock, drained);
    }
    quit = true;
    work_cv.notify_all();
    state_cv.wait(lock, [this] { return workers.empty(); });
    to_join.swap(exited);
  }
  for (std::thread& t : to_join) t.join();
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Stop(); }

void Server::Stop() {
  Impl* impl = impl_.get();
  std::call_once(impl->stop_once, [impl] { impl->StopImpl(); });
}

const std::string& Server::address() const { return impl_->address; }

uint16_t Server::port() const { return impl_->port; }

int Server::connection_count() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->connections;
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options,
                                                      Handler handler) {
  if (!handler) return absl::InvalidArgumentError("http server: no handler");
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError("http server: max_connections must be at least 1");
  }
  if (options.max_header_bytes < 1024) {
    return absl::InvalidArgumentError("http server: max_header_bytes must be at least 1024");
  }
  ASSIGN_OR_RETURN(ListenAddress la, ParseListen(options.listen));
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->handler = std::move(handler);

  if (!options.tls_cert_file.empty() || !options.tls_key_file.empty() ||
      !options.tls_client_ca_file.empty()) {
    ASSIGN_OR_RETURN(impl->ssl_ctx,
                     internal::NewServerSslCtx(options.tls_cert_file, options.tls_key_file,
                                               options.tls_client_ca_file));
  }

  struct addrinfo hints {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  struct addrinfo* res = nullptr;
  int gai =
      ::getaddrinfo(la.host.empty() ? nullptr : la.host.c_str(), la.port.c_str(), &hints, &res);
  if (gai != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot listen on ", options.listen, ": ", gai_strerror(gai)));
  }
  std::unique_ptr<struct addrinfo, void (*)(struct addrinfo*)> owner(res, ::freeaddrinfo);
  // With no host, prefer IPv4's 0.0.0.0 as other Pier listeners do.
  struct addrinfo* ai = res;
  for (struct addrinfo* p = res; p != nullptr; p = p->ai_next) {
    if (p->ai_family == AF_INET) {
      ai = p;
      break;
    }
  }
  UniqueFd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("socket for ", options.listen));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
    if (errno == EADDRINUSE) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot listen on ", options.listen, ": address in use"));
    }
    return ErrnoStatus(errno, absl::StrCat("cannot listen on ", options.listen));
  }
  if (::listen(fd.get(), 1024) != 0) {
    return ErrnoStatus(errno, absl::StrCat("cannot listen on ", options.listen));
  }
  struct sockaddr_storage bound {};
  socklen_t bound_len = sizeof(bound);
  ::getsockname(fd.get(), reinterpret_cast<struct sockaddr*>(&bound), &bound_len);
  std::string bound_text = internal::FormatSockaddr(reinterpret_cast<struct sockaddr*>(&bound));
  impl->port = static_cast<uint16_t>(std::stoi(bound_text.substr(bound_text.rfind(':') + 1)));
  std::string host = la.host.empty() ? "0.0.0.0" : la.host;
  impl->address = host.find(':') != std::string::npos ? absl::StrCat("[", host, "]:", impl->port)
                                                      : absl::StrCat(host, ":", impl->port);
  impl->listen_fd = std::move(fd);

  impl->wake_fd.Reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!impl->wake_fd.valid()) return ErrnoStatus(errno, "eventfd");
  Impl* raw = impl.get();
  impl->acceptor = std::thread([raw] { raw->AcceptLoop(); });
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

}  // namespace pier::http
