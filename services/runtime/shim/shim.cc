#include "services/runtime/shim/shim.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "lib/common/fs.h"
#include "lib/common/log.h"
#include "lib/common/status.h"
#include "lib/exec/native_executor.h"
#include "nlohmann/json.hpp"
#include "services/runtime/containers/spec_json.h"
#include "services/runtime/shim/log_file.h"
#include "services/runtime/shim/protocol.h"
#include "services/runtime/shim/state_dir.h"

namespace pier::runtime::shim {
namespace {

using Json = nlohmann::json;

constexpr size_t kMaxClientBuffer = 16 << 20;  // a slower attach client is dropped
constexpr size_t kMaxLogLine = 16 << 10;       // longer lines are logged in pieces

absl::Status SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return ErrnoStatus(errno, "fcntl O_NONBLOCK");
  }
  return absl::OkStatus();
}

std::string ErrorAnswer(const absl::Status& s) {
  return Json{{"ok", false}, {"code", static_cast<int>(s.code())}, {"message", s.message()}}.dump(
      -1, ' ', false, Json::error_handler_t::replace);
}

struct Client {
  enum class Mode { kNew, kAttach, kWait, kDone };
  UniqueFd fd;
  FrameDecoder decoder;
  std::string out;
  Mode mode = Mode::kNew;
  bool stdin = false;
  bool close_after_flush = false;
  bool dead = false;

  void Send(FrameType type, absl::string_view payload) { out += EncodeFrame(type, payload); }
};

// One output stream of the container: the fd it is read from and its
// not-yet-logged partial line.
struct Output {
  UniqueFd fd;
  int raw = -1;  // fd to read (fd.get(), or the pty master owned by the Process)
  const char* name = "stdout";
  FrameType frame = FrameType::kStdout;
  std::string partial;
  bool open() const { return raw >= 0; }
};

class Shim {
 public:
  explicit Shim(const ShimOptions& options) : opts_(options) {}

  int Run() {
    absl::Status s = Setup();
    if (!s.ok()) {
      // Everything on disk first: the runtime may remove the directory as
      // soon as it has the report.
      PIER_LOG(ERROR) << "starting container in " << opts_.dir << ": " << s;
      (void)WriteFileReplace(JoinPath(opts_.dir, kErrorFile), StatusToJson(s));
      ::unlink(JoinPath(opts_.dir, kSocketFile).c_str());
      Report(s);
      return 1;
    }
    Report(s);
    Loop();
    ::unlink(JoinPath(opts_.dir, kSocketFile).c_str());
    return 0;
  }

 private:
  absl::Status Setup() {
    std::string sock_path = JoinPath(opts_.dir, kSocketFile);
    ::unlink(sock_path.c_str());
    ::unlink(JoinPath(opts_.dir, kExitFile).c_str());
    ::unlink(JoinPath(opts_.dir, kErrorFile).c_str());
    ::unlink(JoinPath(opts_.dir, kInitPidFile).c_str());
    listen_.Reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!listen_.valid()) return ErrnoStatus(errno, "socket");
    // Bound relative to the state directory (the cwd) so that long paths
    // fit in sun_path.
    if (::chdir(opts_.dir.c_str()) < 0)
      return ErrnoStatus(errno, absl::StrCat("chdir ", opts_.dir));
    struct sockaddr_un addr;
    std::memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, kSocketFile, sizeof(addr.sun_path) - 1);
    if (::bind(listen_.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) < 0) {
      return ErrnoStatus(errno, absl::StrCat("bind ", sock_path));
    }
    if (::listen(listen_.get(), 64) < 0) return ErrnoStatus(errno, "listen");
    RETURN_IF_ERROR(WritePidFile(JoinPath(opts_.dir, kShimPidFile), ::getpid()));

    ASSIGN_OR_RETURN(std::string spec_text, ReadFile(JoinPath(opts_.dir, kSpecFile)));
    ASSIGN_OR_RETURN(exec::ContainerSpec spec, ContainerSpecFromJson(spec_text));
    ASSIGN_OR_RETURN(log_, LogWriter::Open(opts_.log_dir.empty() ? opts_.dir : opts_.log_dir,
                                           opts_.log_max_size, opts_.log_max_files));
    tty_ = spec.process.tty;

    UniqueFd out_w, err_w, in_r;
    if (!tty_) {
      int p[2];
      if (::pipe2(p, O_CLOEXEC) < 0) return ErrnoStatus(errno, "pipe");
      out_.fd.Reset(p[0]);
      out_w.Reset(p[1]);
      if (::pipe2(p, O_CLOEXEC) < 0) return ErrnoStatus(errno, "pipe");
      err_.fd.Reset(p[0]);
      err_w.Reset(p[1]);
      if (opts_.open_stdin) {
        if (::pipe2(p, O_CLOEXEC) < 0) return ErrnoStatus(errno, "pipe");
        in_r.Reset(p[0]);
        stdin_w_.Reset(p[1]);
        RETURN_IF_ERROR(SetNonBlocking(stdin_w_.get()));
      }
      spec.stdio = {in_r.valid() ? in_r.get() : -1, out_w.get(), err_w.get()};
    }
    err_.name = "stderr";
    err_.frame = FrameType::kStderr;

    ASSIGN_OR_RETURN(init_, executor_.Start(spec));
    started_at_ = absl::Now();
    out_w.Reset();
    err_w.Reset();
    in_r.Reset();
    if (tty_) {
      out_.raw = init_->ptm();
      stdin_target_ = init_->ptm();
    } else {
      out_.raw = out_.fd.get();
      err_.raw = err_.fd.get();
      stdin_target_ = stdin_w_.get();
    }
    if (out_.raw >= 0) RETURN_IF_ERROR(SetNonBlocking(out_.raw));
    if (err_.raw >= 0) RETURN_IF_ERROR(SetNonBlocking(err_.raw));
    RETURN_IF_ERROR(WritePidFile(JoinPath(opts_.dir, kInitPidFile), init_->pid()));
    PIER_LOG(INFO) << "container " << spec.id << " started, init pid " << init_->pid();
    return absl::OkStatus();
  }

  void Report(const absl::Status& s) {
    if (opts_.sync_fd < 0) return;
    std::string msg = s.ok() ? Json{{"ok", true},
                                    {"pid", init_->pid()},
                                    {"shim_pid", ::getpid()},
                                    {"started_at", FormatTimestamp(started_at_)}}
                                   .dump()
                             : ErrorAnswer(s);
    (void)WriteAll(opts_.sync_fd, msg, "start report");
    ::close(opts_.sync_fd);
  }

  void Loop() {
    absl::Time drain_deadline = absl::InfiniteFuture();   // output after the init exited
    absl::Time finish_deadline = absl::InfiniteFuture();  // clients after exit.json
    for (;;) {
      if (init_->exit_status() && !finished_ &&
          ((!out_.open() && !err_.open()) || absl::Now() >= drain_deadline)) {
        Finish();
        finish_deadline = absl::Now() + opts_.drain_timeout;
      }
      if (finished_ && (clients_.empty() || absl::Now() >= finish_deadline)) return;

      std::vector<pollfd> pfds;
      pfds.push_back({listen_.get(), POLLIN, 0});
      pfds.push_back({init_->exit_status() ? -1 : init_->pidfd(), POLLIN, 0});
      pfds.push_back({out_.raw, POLLIN, 0});
      pfds.push_back({err_.raw, POLLIN, 0});
      bool want_stdin = stdin_target_ >= 0 && !stdin_buf_.empty();
      pfds.push_back({want_stdin ? stdin_target_ : -1, POLLOUT, 0});
      const size_t first_client = pfds.size();
      for (auto& c : clients_) {
        short ev = POLLIN;
        if (!c->out.empty()) ev |= POLLOUT;
        pfds.push_back({c->fd.get(), ev, 0});
      }
      absl::Time deadline = finished_ ? finish_deadline : drain_deadline;
      int ms = -1;
      if (deadline != absl::InfiniteFuture()) {
        ms = static_cast<int>(std::max<int64_t>(
            0, absl::ToInt64Milliseconds(deadline - absl::Now() + absl::Milliseconds(1))));
      }
      int rc = ::poll(pfds.data(), pfds.size(), ms);
      if (rc < 0) {
        if (errno == EINTR) continue;
        PIER_LOG(ERROR) << "poll: " << std::strerror(errno);
        return;
      }
      if (pfds[1].revents) {
        auto st = init_->WaitFor(absl::ZeroDuration());
        if (st.ok()) {
          PIER_LOG(INFO) << "container init exited: " << st->ToString();
          drain_deadline = absl::Now() + opts_.drain_timeout;
        } else if (!absl::IsDeadlineExceeded(st.status())) {
          PIER_LOG(ERROR) << "wait: " << st.status();
        }
      }
      if (pfds[2].revents) ReadOutput(out_);
      if (pfds[3].revents) ReadOutput(err_);
      if (pfds[4].revents) FlushStdin();
      for (size_t i = 0; i < clients_.size(); ++i) {
        Client& c = *clients_[i];
        short re = pfds[first_client + i].revents;
        if (re & (POLLIN | POLLHUP | POLLERR)) ReadClient(c);
        if (!c.dead && !c.out.empty() && (re & POLLOUT)) WriteClient(c);
      }
      if (pfds[0].revents & POLLIN) Accept();
      std::erase_if(clients_, [](const std::unique_ptr<Client>& c) {
        return c->dead || (c->close_after_flush && c->out.empty());
      });
    }
  }

  void Accept() {
    for (;;) {
      int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) return;
      auto c = std::make_unique<Client>();
      c->fd.Reset(fd);
      clients_.push_back(std::move(c));
    }
  }

  void ReadOutput(Output& o) {
    char buf[32768];
    for (;;) {
      ssize_t n = ::read(o.raw, buf, sizeof(buf));
      if (n > 0) {
        absl::string_view data(buf, static_cast<size_t>(n));
        for (auto& c : clients_) {
          if (c->mode != Client::Mode::kAttach || c->dead) continue;
          c->Send(o.frame, data);
          if (c->out.size() > kMaxClientBuffer) {
            PIER_LOG(WARNING) << "dropping a slow attach client";
            c->dead = true;
          }
        }
        LogOutput(o, data);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      // EOF, or EIO from a pty master whose slave is gone.
      if (!o.partial.empty()) AppendLog(o, o.partial, true);
      o.partial.clear();
      o.fd.Reset();
      o.raw = -1;
      return;
    }
  }

  void LogOutput(Output& o, absl::string_view data) {
    o.partial.append(data.data(), data.size());
    size_t start = 0;
    for (;;) {
      size_t nl = o.partial.find('\n', start);
      if (nl == std::string::npos) break;
      AppendLog(o, absl::string_view(o.partial).substr(start, nl + 1 - start), false);
      start = nl + 1;
    }
    o.partial.erase(0, start);
    while (o.partial.size() >= kMaxLogLine) {
      AppendLog(o, absl::string_view(o.partial).substr(0, kMaxLogLine), true);
      o.partial.erase(0, kMaxLogLine);
    }
  }

  void AppendLog(const Output& o, absl::string_view line, bool partial) {
    LogEntry e{absl::Now(), o.name, std::string(line), partial};
    absl::Status s = log_->Append(e);
    if (!s.ok() && !log_failed_) {
      log_failed_ = true;  // say it once; keep serving the container
      PIER_LOG(ERROR) << "writing the container log: " << s;
    }
  }

  void FlushStdin() {
    while (!stdin_buf_.empty() && stdin_target_ >= 0) {
      ssize_t n = ::write(stdin_target_, stdin_buf_.data(), stdin_buf_.size());
      if (n > 0) {
        stdin_buf_.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      stdin_buf_.clear();  // EPIPE: the container closed its stdin
      CloseStdin();
      return;
    }
    if (stdin_buf_.empty() && stdin_close_pending_) CloseStdin();
  }

  void CloseStdin() {
    stdin_close_pending_ = false;
    if (tty_) return;  // the pty stays; a tty has no separate stdin to close
    stdin_w_.Reset();
    stdin_target_ = -1;
  }

  void ReadClient(Client& c) {
    char buf[16384];
    for (;;) {
      ssize_t n = ::recv(c.fd.get(), buf, sizeof(buf), 0);
      if (n > 0) {
        c.decoder.Feed(absl::string_view(buf, static_cast<size_t>(n)));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      c.dead = true;  // EOF or error: the client went away
      break;
    }
    for (;;) {
      auto f = c.decoder.Next();
      if (!f.ok()) {
        c.dead = true;
        return;
      }
      if (!*f) return;
      HandleFrame(c, **f);
    }
  }

  void WriteClient(Client& c) {
    while (!c.out.empty()) {
      ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n > 0) {
        c.out.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      c.dead = true;
      return;
    }
  }

  void HandleFrame(Client& c, const Frame& f) {
    if (c.mode == Client::Mode::kNew) {
      if (f.type != FrameType::kRequest) {
        c.dead = true;
        return;
      }
      HandleRequest(c, f.payload);
      return;
    }
    if (c.mode != Client::Mode::kAttach) return;
    switch (f.type) {
      case FrameType::kStdin:
        if (c.stdin && stdin_target_ >= 0 && !finished_) {
          stdin_buf_ += f.payload;
          FlushStdin();
        }
        break;
      case FrameType::kCloseStdin:
        if (c.stdin) {
          stdin_close_pending_ = true;
          FlushStdin();
        }
        break;
      case FrameType::kResize: {
        Json j = Json::parse(f.payload, nullptr, false);
        if (j.is_object() && tty_ && !init_->exit_status()) {
          (void)init_->Resize(j.value("rows", 0), j.value("cols", 0));
        }
        break;
      }
      default:
        break;
    }
  }

  void HandleRequest(Client& c, const std::string& payload) {
    Json req = Json::parse(payload, nullptr, false);
    std::string op = req.is_object() ? req.value("op", "") : "";
    auto answer = [&](const std::string& json, bool close) {
      c.Send(FrameType::kAnswer, json);
      if (close) {
        c.mode = Client::Mode::kDone;
        c.close_after_flush = true;
      }
    };
    if (op == "state") {
      Json j{{"ok", true},
             {"pid", init_->pid()},
             {"shim_pid", ::getpid()},
             {"running", !init_->exit_status().has_value()},
             {"started_at", FormatTimestamp(started_at_)}};
      if (exit_) j["exit"] = Json::parse(ExitRecordToJson(*exit_));
      answer(j.dump(), true);
    } else if (op == "kill") {
      int sig = req.value("signal", 0);
      absl::Status s =
          sig <= 0 || sig >= 65 ? absl::InvalidArgumentError(absl::StrCat("bad signal ", sig))
          : init_->exit_status()
              ? absl::NotFoundError(absl::StrCat("container init ", init_->pid(), " has exited"))
              : init_->Signal(sig);
      answer(s.ok() ? R"({"ok":true})" : ErrorAnswer(s), true);
    } else if (op == "resize") {
      absl::Status s = init_->exit_status()
                           ? absl::NotFoundError("the container has exited")
                           : init_->Resize(req.value("rows", 0), req.value("cols", 0));
      answer(s.ok() ? R"({"ok":true})" : ErrorAnswer(s), true);
    } else if (op == "wait") {
      if (exit_) {
        answer(WaitAnswer(), true);
      } else {
        c.mode = Client::Mode::kWait;
      }
    } else if (op == "attach") {
      c.stdin = req.value("stdin", false);
      if (c.stdin && stdin_target_ < 0 && !finished_) {
        answer(ErrorAnswer(absl::FailedPreconditionError(
                   "the container's stdin is not open (create it with open_stdin or a tty)")),
               true);
        return;
      }
      // Output read before this point is in the log with earlier times;
      // from here on it is forwarded (the loop reads output before clients).
      answer(Json{{"ok", true}, {"since", FormatTimestamp(absl::Now())}}.dump(), false);
      c.mode = Client::Mode::kAttach;
      if (exit_) {
        c.Send(FrameType::kExit, ExitRecordToJson(*exit_));
        c.close_after_flush = true;
      }
    } else {
      answer(ErrorAnswer(absl::InvalidArgumentError(absl::StrCat("unknown request \"", op, "\""))),
             true);
    }
  }

  std::string WaitAnswer() const {
    return Json{{"ok", true}, {"exit", Json::parse(ExitRecordToJson(*exit_))}}.dump();
  }

  // The init has exited and its output is drained: log the rest, clean the
  // container up, publish exit.json, tell the clients.
  void Finish() {
    for (Output* o : {&out_, &err_}) {
      if (!o->partial.empty()) AppendLog(*o, o->partial, true);
      o->partial.clear();
    }
    ExitRecord r;
    r.status = *init_->exit_status();
    r.finished_at = absl::Now();
    absl::Status s = init_->Cleanup();
    if (!s.ok()) {
      PIER_LOG(ERROR) << "cleanup: " << s;
    }
    out_.fd.Reset();
    out_.raw = -1;
    err_.fd.Reset();
    err_.raw = -1;
    stdin_w_.Reset();
    stdin_target_ = -1;
    s = WriteFileReplace(JoinPath(opts_.dir, kExitFile), ExitRecordToJson(r));
    if (!s.ok()) {
      PIER_LOG(ERROR) << "writing exit.json: " << s;
    }
    exit_ = r;
    finished_ = true;
    for (auto& c : clients_) {
      if (c->mode == Client::Mode::kWait) {
        c->Send(FrameType::kAnswer, WaitAnswer());
        c->close_after_flush = true;
      } else if (c->mode == Client::Mode::kAttach) {
        c->Send(FrameType::kExit, ExitRecordToJson(r));
        c->close_after_flush = true;
      }
    }
  }

  ShimOptions opts_;
  exec::NativeExecutor executor_;
  std::unique_ptr<exec::Process> init_;
  absl::Time started_at_;
  std::unique_ptr<LogWriter> log_;
  bool log_failed_ = false;
  bool tty_ = false;
  UniqueFd listen_;
  Output out_;
  Output err_;
  UniqueFd stdin_w_;
  int stdin_target_ = -1;  // stdin_w_ or the pty master
  std::string stdin_buf_;
  bool stdin_close_pending_ = false;
  std::vector<std::unique_ptr<Client>> clients_;
  std::optional<ExitRecord> exit_;
  bool finished_ = false;
};

}  // namespace

int RunShim(const ShimOptions& options) {
  Shim shim(options);
  return shim.Run();
}

}  // namespace pier::runtime::shim
