// The local terminal of an interactive session (`pier attach`, `pier run
// -it`, `pier exec -it`): raw mode, the window size and its changes, and the
// thread that copies our stdin and window-size changes to an RPC stream.
//
// Thread safety: raw mode and the SIGWINCH pipe are process-wide state; one
// session at a time. InputPump's callbacks run on its own thread.
#pragma once

#include <functional>
#include <thread>

#include "absl/strings/string_view.h"
#include "cli/runtime_client.h"

namespace pier::cli {

// Puts the terminal on our stdin in raw mode when stdin is a terminal
// (restored by RestoreTerminal(), and on SIGTERM/SIGHUP/SIGQUIT). Returns
// whether raw mode is on.
bool EnterRawTerminal();
void RestoreTerminal();

// The size of the terminal on our stdin or stdout; false when neither is a
// terminal.
bool TerminalSize(rt::TtySize* size);

// Copies our stdin (when `stdin`) and, when `tty`, each SIGWINCH's new
// window size to the callbacks on a thread of its own, until Stop() or a
// callback returns false. At end of input it calls `close`; without a tty
// the pump then ends (nothing else to forward).
class InputPump {
 public:
  struct Sinks {
    std::function<bool(absl::string_view)> data;     // bytes typed
    std::function<bool(const rt::TtySize&)> resize;  // the window changed
    std::function<void()> close;                     // end of our stdin
  };

  InputPump() = default;
  ~InputPump() { Stop(); }
  InputPump(const InputPump&) = delete;
  InputPump& operator=(const InputPump&) = delete;

  void Start(bool stdin, bool tty, Sinks sinks);
  // Ends the thread (a blocked read of our stdin does not hold it up) and
  // joins it. Idempotent.
  void Stop();

 private:
  void Run(bool stdin, bool tty);

  Sinks sinks_;
  int done_[2] = {-1, -1};
  std::thread thread_;
};

// The sinks that forward to a bidirectional session call whose request
// (AttachRequest, ExecRequest) has stdin, resize and close_stdin: stdin
// bytes and resizes become requests; end of input sends close_stdin and,
// without a tty, ends our writes.
template <typename Request, typename Call>
InputPump::Sinks SessionSinks(Call* call, bool tty) {
  return {.data =
              [call](absl::string_view data) {
                Request r;
                r.set_stdin(data.data(), data.size());
                return call->Write(r);
              },
          .resize =
              [call](const rt::TtySize& size) {
                Request r;
                *r.mutable_resize() = size;
                return call->Write(r);
              },
          .close =
              [call, tty] {
                Request r;
                r.mutable_close_stdin();
                call->Write(r);
                if (!tty) call->WritesDone();
              }};
}

// Writes a session's output to our stdout or stderr, as its stream says.
void WriteSessionOutput(const rt::OutputData& output);

}  // namespace pier::cli
