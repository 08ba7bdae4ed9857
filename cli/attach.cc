// `pier attach CONTAINER`: attaches our terminal to a running container's
// main process, and the session code `pier run -i/-t` shares with it.
// Detach keys are not supported yet (kill the client to detach; the
// container keeps running).
#include "cli/attach.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <thread>

#include "lib/common/fs.h"

namespace pier::cli {
namespace {

// Terminal state for the signal handlers.
struct termios g_saved_termios;
std::atomic<bool> g_raw{false};
int g_winch_pipe[2] = {-1, -1};

void RestoreTerminal() {
  if (g_raw.exchange(false)) (void)::tcsetattr(STDIN_FILENO, TCSADRAIN, &g_saved_termios);
}

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

bool WindowSize(rt::TtySize* size) {
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

}  // namespace

AttachResult AttachSession(rt::ContainerService::Stub& stub, const std::string& container,
                           bool stdin, const std::function<grpc::Status()>& on_attached) {
  AttachResult result;
  grpc::ClientContext ctx;
  auto call = stub.Attach(&ctx);
  rt::AttachRequest first;
  first.mutable_spec()->set_container_id(container);
  first.mutable_spec()->set_stdin(stdin);
  first.mutable_spec()->set_stdout(true);
  first.mutable_spec()->set_stderr(true);
  call->Write(first);
  rt::AttachResponse resp;
  if (!call->Read(&resp) || !resp.has_attached()) {
    result.status = call->Finish();
    if (result.status.ok()) {
      result.status = grpc::Status(grpc::StatusCode::INTERNAL, "the runtime did not attach");
    }
    return result;
  }
  const bool tty = resp.attached().tty();
  const bool local_tty = ::isatty(STDIN_FILENO) == 1;
  if (tty && local_tty) {
    if (::tcgetattr(STDIN_FILENO, &g_saved_termios) == 0) {
      struct termios raw = g_saved_termios;
      ::cfmakeraw(&raw);
      for (int sig : {SIGTERM, SIGHUP, SIGQUIT}) ::signal(sig, OnFatalSignal);
      if (::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) g_raw = true;
    }
  }
  if (tty) {
    rt::AttachRequest r;
    if (WindowSize(r.mutable_resize())) call->Write(r);
    if (::pipe2(g_winch_pipe, O_CLOEXEC | O_NONBLOCK) == 0) ::signal(SIGWINCH, OnWinch);
  }
  if (on_attached) {
    grpc::Status s = on_attached();
    if (!s.ok()) {
      RestoreTerminal();
      ctx.TryCancel();
      (void)call->Finish();
      result.status = s;
      return result;
    }
  }
  // Input (stdin, resizes) on its own thread; `done` ends it.
  int done[2];
  if (::pipe2(done, O_CLOEXEC) != 0) done[0] = done[1] = -1;
  std::thread input;
  if (stdin || tty) {
    input = std::thread([&] {
      bool stdin_open = stdin;
      std::string buf(32 << 10, '\0');
      for (;;) {
        pollfd fds[3] = {{stdin_open ? STDIN_FILENO : -1, POLLIN, 0},
                         {g_winch_pipe[0], POLLIN, 0},
                         {done[0], POLLIN, 0}};
        if (::poll(fds, 3, -1) < 0) {
          if (errno == EINTR) continue;
          return;
        }
        if (fds[2].revents != 0) return;
        if (fds[1].revents & POLLIN) {
          char c[64];
          while (::read(g_winch_pipe[0], c, sizeof(c)) > 0) {
          }
          rt::AttachRequest r;
          if (WindowSize(r.mutable_resize()) && !call->Write(r)) return;
        }
        if (fds[0].revents != 0) {
          ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) {
            rt::AttachRequest r;
            r.mutable_close_stdin();
            call->Write(r);
            stdin_open = false;
            if (!tty) {
              call->WritesDone();
              return;
            }
            continue;
          }
          rt::AttachRequest r;
          r.set_stdin(buf.data(), static_cast<size_t>(n));
          if (!call->Write(r)) return;
        }
      }
    });
  } else {
    call->WritesDone();
  }
  while (call->Read(&resp)) {
    if (resp.has_output()) {
      int fd = resp.output().stream() == common::v1::OUTPUT_STREAM_STDERR ? STDERR_FILENO
                                                                          : STDOUT_FILENO;
      (void)WriteAll(fd, resp.output().data(), "output");
    } else if (resp.has_exit()) {
      result.exit_code = resp.exit().exit_code();
      result.error = resp.exit().error();
    } else if (resp.has_detached()) {
      result.detached = true;
    }
  }
  if (done[1] >= 0) {
    (void)!::write(done[1], "x", 1);
    if (input.joinable()) input.join();
    ::close(done[0]);
    ::close(done[1]);
  } else if (input.joinable()) {
    input.detach();
  }
  grpc::Status s = call->Finish();
  RestoreTerminal();
  if (!result.exit_code && !result.detached) {
    result.status = s.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                          "the attachment ended without an exit status")
                           : s;
  }
  return result;
}

int Attach(const Globals& g, const std::vector<std::string>& args) {
  bool no_stdin = false;
  FlagSet flags("pier attach", "[flags] CONTAINER");
  flags.Bool("no-stdin", "", &no_stdin, "do not attach our standard input");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.size() != 1) return Fail(absl::InvalidArgumentError("pier attach needs CONTAINER"), 2);
  auto stub = ContainerStub(g);
  if (!stub.ok()) return Fail(stub.status());
  // stdin only when the container keeps it open (or has a tty).
  bool want_stdin = !no_stdin;
  if (want_stdin) {
    grpc::ClientContext ictx;
    rt::InspectContainerRequest ireq;
    ireq.set_id(pos[0]);
    rt::InspectContainerResponse iresp;
    grpc::Status s = (*stub)->InspectContainer(&ictx, ireq, &iresp);
    if (!s.ok()) return FailRpc(s);
    want_stdin = iresp.container().spec().open_stdin() || iresp.container().spec().tty();
  }
  AttachResult r = AttachSession(**stub, pos[0], want_stdin, nullptr);
  if (r.exit_code) {
    if (!r.error.empty()) std::cerr << "pier: " << r.error << "\n";
    return *r.exit_code;
  }
  if (r.detached) return 0;
  return FailRpc(r.status);
}

}  // namespace pier::cli
