#include "cli/terminal.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string>

#include "lib/common/fs.h"

namespace pier::cli {
namespace {

// Terminal state for the signal handlers.
struct termios g_saved_termios;
std::atomic<bool> g_raw{false};
int g_winch_pipe[2] = {-1, -1};

void OnFatalSignal(int sig) {
  if (g_raw.load()) (void)::tcsetattr(STDIN_FILENO, TCSADRAIN, &g_saved_termios);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void OnWinch(int) {
  int saved = errno;
  if (g_winch_pipe[1] >= 0) (void)!::write(g_winch_pipe[1], "w", 1);
  errno = saved;
}

// The read end of the SIGWINCH pipe (the handler is installed once); -1
// when the pipe cannot be made.
int WinchFd() {
  if (g_winch_pipe[0] < 0) {
    if (::pipe2(g_winch_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
    ::signal(SIGWINCH, OnWinch);
  }
  return g_winch_pipe[0];
}

}  // namespace

bool EnterRawTerminal() {
  if (g_raw.load()) return true;
  if (::isatty(STDIN_FILENO) != 1 || ::tcgetattr(STDIN_FILENO, &g_saved_termios) != 0) {
    return false;
  }
  struct termios raw = g_saved_termios;
  ::cfmakeraw(&raw);
  for (int sig : {SIGTERM, SIGHUP, SIGQUIT}) ::signal(sig, OnFatalSignal);
  if (::tcsetattr(STDIN_FILENO, TCSANOW, &raw) != 0) return false;
  g_raw = true;
  return true;
}

void RestoreTerminal() {
  if (g_raw.exchange(false)) (void)::tcsetattr(STDIN_FILENO, TCSADRAIN, &g_saved_termios);
}

bool TerminalSize(rt::TtySize* size) {
  struct winsize ws {};
  for (int fd : {STDIN_FILENO, STDOUT_FILENO}) {
    if (::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
      size->set_width(ws.ws_col);
      size->set_height(ws.ws_row);
      return true;
    }
  }
  return false;
}

void InputPump::Start(bool stdin, bool tty, Sinks sinks) {
  if (!stdin && !tty) return;
  sinks_ = std::move(sinks);
  if (::pipe2(done_, O_CLOEXEC) != 0) done_[0] = done_[1] = -1;
  thread_ = std::thread([this, stdin, tty] { Run(stdin, tty); });
}

void InputPump::Stop() {
  if (!thread_.joinable()) return;
  if (done_[1] >= 0) {
    (void)!::write(done_[1], "x", 1);
    thread_.join();
    ::close(done_[0]);
    ::close(done_[1]);
    done_[0] = done_[1] = -1;
  } else {
    thread_.detach();  // no way to wake it: let a blocked read die with us
  }
}

void InputPump::Run(bool stdin, bool tty) {
  bool stdin_open = stdin;
  const int winch = tty ? WinchFd() : -1;
  std::string buf(32 << 10, '\0');
  for (;;) {
    pollfd fds[3] = {
        {stdin_open ? STDIN_FILENO : -1, POLLIN, 0}, {winch, POLLIN, 0}, {done_[0], POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[2].revents != 0) return;
    if (fds[1].revents & POLLIN) {
      char c[64];
      while (::read(winch, c, sizeof(c)) > 0) {
      }
      rt::TtySize size;
      if (TerminalSize(&size) && !sinks_.resize(size)) return;
    }
    if (fds[0].revents != 0) {
      ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        sinks_.close();
        stdin_open = false;
        if (!tty) return;
        continue;
      }
      if (!sinks_.data(absl::string_view(buf.data(), static_cast<size_t>(n)))) return;
    }
  }
}

void WriteSessionOutput(const rt::OutputData& output) {
  int fd = output.stream() == common::v1::OUTPUT_STREAM_STDERR ? STDERR_FILENO : STDOUT_FILENO;
  (void)WriteAll(fd, output.data(), "output");
}

}  // namespace pier::cli
