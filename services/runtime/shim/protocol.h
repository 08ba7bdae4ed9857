// The pier-shim control protocol on `<state dir>/shim.sock` (SOCK_STREAM),
// and the client the runtime uses.
//
// Every message is a frame: a 4-byte big-endian payload length, one type
// byte, then the payload (at most kMaxFramePayload bytes).
//
//   'R' request  client -> shim, the first frame of a connection, JSON
//   'A' answer   shim -> client, JSON {"ok":true,...} or
//                {"ok":false,"code":<absl code>,"message":...}
//   '1' / '2'    shim -> client, container stdout / stderr bytes (attach)
//   'X' exit     shim -> client, exit.json's content, last frame of attach
//   '0'          client -> shim, stdin bytes (attach with "stdin":true)
//   'C'          client -> shim, close the container's stdin
//   'W'          client -> shim, window size {"rows":R,"cols":C} (tty)
//
// Requests ({"op": ...}):
//   state               -> {"ok","pid","shim_pid","running","started_at",
//                           "exit"?}; closes
//   kill {"signal":N}   -> {"ok"} once sent; NotFound when exited; closes
//   resize {"rows","cols"} -> {"ok"}; FailedPrecondition without a tty
//   wait                -> {"ok","exit":{...}} when the container has exited
//                          and exit.json is written; closes
//   attach {"stdin":b}  -> {"ok","since"}, then '1'/'2' frames as output
//                          arrives, 'X' at exit; the client may send '0', 'C'
//                          and 'W'. "since" is when the shim began forwarding:
//                          output logged before it is not forwarded, output
//                          logged at or after it is (a partial line then
//                          being written may be split)
//
// The socket path may be longer than sun_path allows, so clients connect
// through /proc/self/fd/<dir fd>/shim.sock.
//
// Thread safety: the free functions are stateless; a ShimClient may be used
// from many threads; an AttachStream from one thread at a time.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/common/fs.h"
#include "services/runtime/shim/state_dir.h"

namespace pier::runtime::shim {

inline constexpr uint32_t kMaxFramePayload = 1 << 20;

enum class FrameType : char {
  kRequest = 'R',
  kAnswer = 'A',
  kStdout = '1',
  kStderr = '2',
  kExit = 'X',
  kStdin = '0',
  kCloseStdin = 'C',
  kResize = 'W',
};

struct Frame {
  FrameType type;
  std::string payload;
};

std::string EncodeFrame(FrameType type, absl::string_view payload);

// Accumulates bytes from a stream and splits them into frames.
class FrameDecoder {
 public:
  void Feed(absl::string_view bytes) { buf_.append(bytes.data(), bytes.size()); }
  // The next complete frame, nullopt when more bytes are needed.
  // InvalidArgument for a frame over kMaxFramePayload.
  absl::StatusOr<std::optional<Frame>> Next();

 private:
  std::string buf_;
};

// Blocking helpers on a connected socket. Write: the send error. Read:
// nullopt at EOF, DeadlineExceeded after `timeout`, the recv error.
absl::Status WriteFrame(int fd, FrameType type, absl::string_view payload);
absl::StatusOr<std::optional<Frame>> ReadFrame(int fd, FrameDecoder& decoder,
                                               absl::Duration timeout);

// Connects to the shim serving `dir`. Unavailable when no shim listens
// there (socket missing or connection refused).
absl::StatusOr<UniqueFd> ConnectShim(const std::string& dir);

// What the shim reports for `state`.
struct ShimState {
  pid_t pid = 0;       // the container's init
  pid_t shim_pid = 0;  // the shim itself
  bool running = false;
  absl::Time started_at = absl::InfinitePast();  // when the init had exec'd
  std::optional<ExitRecord> exit;
};

// One event read from an attach stream.
struct AttachEvent {
  enum class Kind { kStdout, kStderr, kExit, kEof };
  Kind kind = Kind::kEof;
  std::string data;                // kStdout / kStderr
  std::optional<ExitRecord> exit;  // kExit
};

class AttachStream {
 public:
  explicit AttachStream(UniqueFd fd, absl::Time attached_at = absl::InfinitePast())
      : fd_(std::move(fd)), attached_at_(attached_at) {}
  // The attach answer's "since": log entries stamped before it were not
  // forwarded on this stream, later ones are. InfinitePast when the shim
  // did not say (an older shim).
  absl::Time attached_at() const { return attached_at_; }
  // The next output event; kEof when the shim closed the connection.
  // DeadlineExceeded after `timeout`.
  absl::StatusOr<AttachEvent> Next(absl::Duration timeout = absl::InfiniteDuration());
  absl::Status WriteStdin(absl::string_view data);
  absl::Status CloseStdin();
  absl::Status Resize(uint16_t rows, uint16_t cols);
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  absl::Time attached_at_;
  FrameDecoder decoder_;
};

// A client for one shim. Every call opens its own connection.
class ShimClient {
 public:
  explicit ShimClient(std::string dir, absl::Duration timeout = absl::Seconds(10))
      : dir_(std::move(dir)), timeout_(timeout) {}

  // Unavailable when the shim is gone; the shim's error otherwise.
  absl::StatusOr<ShimState> State();
  // NotFound when the container has exited.
  absl::Status Kill(int signal);
  // FailedPrecondition without a tty.
  absl::Status Resize(uint16_t rows, uint16_t cols);
  // Sends `wait` and returns the connection: the answer (ReadWaitAnswer)
  // arrives once the container has exited. Unavailable when the shim is gone.
  absl::StatusOr<UniqueFd> StartWait();
  // Starts streaming the container's output (and stdin when `stdin`).
  absl::StatusOr<std::unique_ptr<AttachStream>> Attach(bool stdin);

 private:
  absl::StatusOr<std::string> Call(absl::string_view request_json, UniqueFd* keep = nullptr);

  std::string dir_;
  absl::Duration timeout_;
};

// Reads the answer of a `wait` connection: the exit record; Unavailable
// when the shim closed the connection without answering (it died).
absl::StatusOr<ExitRecord> ReadWaitAnswer(int fd, absl::Duration timeout);

// Parses an answer frame's JSON: OK with the JSON text, or the carried error.
absl::StatusOr<std::string> ParseAnswer(absl::string_view answer);

}  // namespace pier::runtime::shim
