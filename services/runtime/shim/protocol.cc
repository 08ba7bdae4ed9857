#include "services/runtime/shim/protocol.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "lib/common/status.h"
#include "nlohmann/json.hpp"

namespace pier::runtime::shim {
namespace {

using Json = nlohmann::json;

bool KnownType(char c) {
  switch (static_cast<FrameType>(c)) {
    case FrameType::kRequest:
    case FrameType::kAnswer:
    case FrameType::kStdout:
    case FrameType::kStderr:
    case FrameType::kExit:
    case FrameType::kStdin:
    case FrameType::kCloseStdin:
    case FrameType::kResize:
      return true;
  }
  return false;
}

}  // namespace

std::string EncodeFrame(FrameType type, absl::string_view payload) {
  std::string out;
  out.reserve(5 + payload.size());
  uint32_t n = static_cast<uint32_t>(payload.size());
  out.push_back(static_cast<char>((n >> 24) & 0xff));
  out.push_back(static_cast<char>((n >> 16) & 0xff));
  out.push_back(static_cast<char>((n >> 8) & 0xff));
  out.push_back(static_cast<char>(n & 0xff));
  out.push_back(static_cast<char>(type));
  out.append(payload.data(), payload.size());
  return out;
}

absl::StatusOr<std::optional<Frame>> FrameDecoder::Next() {
  if (buf_.size() < 5) return std::optional<Frame>();
  const auto* p = reinterpret_cast<const unsigned char*>(buf_.data());
  uint32_t n = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  if (n > kMaxFramePayload) {
    return absl::InvalidArgumentError(absl::StrCat("shim frame of ", n, " bytes is too large"));
  }
  if (!KnownType(buf_[4])) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown shim frame type ", static_cast<int>(buf_[4])));
  }
  if (buf_.size() < 5 + static_cast<size_t>(n)) return std::optional<Frame>();
  Frame f{static_cast<FrameType>(buf_[4]), buf_.substr(5, n)};
  buf_.erase(0, 5 + static_cast<size_t>(n));
  return std::optional<Frame>(std::move(f));
}

absl::Status WriteFrame(int fd, FrameType type, absl::string_view payload) {
  if (payload.size() > kMaxFramePayload) {
    return absl::InvalidArgumentError("shim frame payload too large");
  }
  std::string frame = EncodeFrame(type, payload);
  size_t off = 0;
  while (off < frame.size()) {
    ssize_t n = ::send(fd, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        (void)::poll(&pfd, 1, 1000);
        continue;
      }
      return ErrnoStatus(errno, "send to shim");
    }
    off += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Frame>> ReadFrame(int fd, FrameDecoder& decoder,
                                               absl::Duration timeout) {
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  for (;;) {
    ASSIGN_OR_RETURN(std::optional<Frame> f, decoder.Next());
    if (f) return f;
    int ms = -1;
    if (deadline != absl::InfiniteFuture()) {
      ms = static_cast<int>(std::max<int64_t>(
          0, absl::ToInt64Milliseconds(deadline - absl::Now() + absl::Milliseconds(1))));
    }
    struct pollfd pfd = {fd, POLLIN, 0};
    int rc = ::poll(&pfd, 1, ms);
    if (rc < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "poll shim connection");
    }
    if (rc == 0) return absl::DeadlineExceededError("no answer from the shim in time");
    char buf[16384];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno == ECONNRESET) return std::optional<Frame>();
      return ErrnoStatus(errno, "recv from shim");
    }
    if (n == 0) return std::optional<Frame>();
    decoder.Feed(absl::string_view(buf, static_cast<size_t>(n)));
  }
}

absl::StatusOr<UniqueFd> ConnectShim(const std::string& dir) {
  UniqueFd dfd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dfd.valid()) return ErrnoStatus(errno, absl::StrCat("open state dir ", dir));
  UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return ErrnoStatus(errno, "socket");
  struct sockaddr_un addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  std::string path = absl::StrCat("/proc/self/fd/", dfd.get(), "/", kSocketFile);
  std::memcpy(addr.sun_path, path.data(), path.size());
  int rc;
  do {
    rc = ::connect(sock.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr));
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    if (errno == ENOENT || errno == ECONNREFUSED) {
      return absl::UnavailableError(absl::StrCat("no shim listening in ", dir));
    }
    return ErrnoStatus(errno, absl::StrCat("connect to the shim in ", dir));
  }
  return sock;
}

absl::StatusOr<std::string> ParseAnswer(absl::string_view answer) {
  Json j = Json::parse(answer.begin(), answer.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InternalError(absl::StrCat("malformed shim answer: ", answer));
  }
  if (!j.value("ok", false)) return StatusFromJson(answer);
  return std::string(answer);
}

absl::StatusOr<std::string> ShimClient::Call(absl::string_view request_json, UniqueFd* keep) {
  ASSIGN_OR_RETURN(UniqueFd sock, ConnectShim(dir_));
  RETURN_IF_ERROR(WriteFrame(sock.get(), FrameType::kRequest, request_json));
  FrameDecoder decoder;
  ASSIGN_OR_RETURN(std::optional<Frame> f, ReadFrame(sock.get(), decoder, timeout_));
  if (!f) return absl::UnavailableError(absl::StrCat("the shim in ", dir_, " hung up"));
  if (f->type != FrameType::kAnswer) return absl::InternalError("shim answered with a bad frame");
  ASSIGN_OR_RETURN(std::string answer, ParseAnswer(f->payload));
  if (keep) *keep = std::move(sock);
  return answer;
}

absl::StatusOr<ShimState> ShimClient::State() {
  ASSIGN_OR_RETURN(std::string answer, Call(R"({"op":"state"})"));
  Json j = Json::parse(answer, nullptr, false);
  ShimState st;
  st.pid = j.value("pid", 0);
  st.shim_pid = j.value("shim_pid", 0);
  st.running = j.value("running", false);
  if (auto t = ParseTimestamp(j.value("started_at", "")); t.ok()) st.started_at = *t;
  if (j.contains("exit")) {
    ASSIGN_OR_RETURN(ExitRecord r, ExitRecordFromJson(j["exit"].dump()));
    st.exit = r;
  }
  return st;
}

absl::Status ShimClient::Kill(int signal) {
  return Call(Json{{"op", "kill"}, {"signal", signal}}.dump()).status();
}

absl::Status ShimClient::Resize(uint16_t rows, uint16_t cols) {
  return Call(Json{{"op", "resize"}, {"rows", rows}, {"cols", cols}}.dump()).status();
}

absl::StatusOr<UniqueFd> ShimClient::StartWait() {
  ASSIGN_OR_RETURN(UniqueFd sock, ConnectShim(dir_));
  RETURN_IF_ERROR(WriteFrame(sock.get(), FrameType::kRequest, R"({"op":"wait"})"));
  return sock;
}

absl::StatusOr<ExitRecord> ReadWaitAnswer(int fd, absl::Duration timeout) {
  FrameDecoder decoder;
  ASSIGN_OR_RETURN(std::optional<Frame> f, ReadFrame(fd, decoder, timeout));
  if (!f) return absl::UnavailableError("the shim hung up without an exit status");
  if (f->type != FrameType::kAnswer) return absl::InternalError("shim answered with a bad frame");
  ASSIGN_OR_RETURN(std::string answer, ParseAnswer(f->payload));
  Json j = Json::parse(answer, nullptr, false);
  if (!j.contains("exit")) return absl::InternalError("shim's wait answer has no exit");
  return ExitRecordFromJson(j["exit"].dump());
}

absl::StatusOr<std::unique_ptr<AttachStream>> ShimClient::Attach(bool stdin) {
  UniqueFd sock;
  ASSIGN_OR_RETURN(std::string answer,
                   Call(Json{{"op", "attach"}, {"stdin", stdin}}.dump(), &sock));
  Json j = Json::parse(answer, nullptr, false);
  absl::Time since = absl::InfinitePast();
  if (j.is_object()) {
    if (auto t = ParseTimestamp(j.value("since", "")); t.ok()) since = *t;
  }
  return std::make_unique<AttachStream>(std::move(sock), since);
}

absl::StatusOr<AttachEvent> AttachStream::Next(absl::Duration timeout) {
  ASSIGN_OR_RETURN(std::optional<Frame> f, ReadFrame(fd_.get(), decoder_, timeout));
  AttachEvent ev;
  if (!f) return ev;
  switch (f->type) {
    case FrameType::kStdout:
      ev.kind = AttachEvent::Kind::kStdout;
      ev.data = std::move(f->payload);
      return ev;
    case FrameType::kStderr:
      ev.kind = AttachEvent::Kind::kStderr;
      ev.data = std::move(f->payload);
      return ev;
    case FrameType::kExit: {
      ev.kind = AttachEvent::Kind::kExit;
      ASSIGN_OR_RETURN(ExitRecord r, ExitRecordFromJson(f->payload));
      ev.exit = r;
      return ev;
    }
    default:
      return absl::InternalError(
          absl::StrCat("unexpected shim frame '", std::string(1, static_cast<char>(f->type)), "'"));
  }
}

absl::Status AttachStream::WriteStdin(absl::string_view data) {
  while (!data.empty()) {
    size_t n = std::min<size_t>(data.size(), kMaxFramePayload);
    RETURN_IF_ERROR(WriteFrame(fd_.get(), FrameType::kStdin, data.substr(0, n)));
    data.remove_prefix(n);
  }
  return absl::OkStatus();
}

absl::Status AttachStream::CloseStdin() {
  return WriteFrame(fd_.get(), FrameType::kCloseStdin, "");
}

absl::Status AttachStream::Resize(uint16_t rows, uint16_t cols) {
  return WriteFrame(fd_.get(), FrameType::kResize, Json{{"rows", rows}, {"cols", cols}}.dump());
}

}  // namespace pier::runtime::shim
