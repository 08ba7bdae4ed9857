// `pier exec [-i] [-e K=V] [-u UID[:GID]] [-w DIR] CONTAINER COMMAND...`: runs
// a process in a running container and exits with its exit code. -i copies
// our standard input to it. (A tty, -t, is not supported yet.)
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <iostream>
#include <optional>
#include <thread>

#include "cli/runtime_client.h"
#include "lib/common/fs.h"

namespace pier::cli {

int Exec(const Globals& g, const std::vector<std::string>& args) {
  bool interactive = false, tty = false;
  std::vector<std::string> env;
  std::string user, workdir;
  FlagSet flags("pier exec", "[flags] CONTAINER COMMAND [ARG...]");
  flags.Bool("interactive", "i", &interactive, "send our standard input to the process");
  flags.Bool("tty", "t", &tty, "allocate a pseudo-terminal (not supported yet)");
  flags.StringList("env", "e", &env, "set an environment variable KEY=value");
  flags.String("user", "u", &user, "uid[:gid] to run as");
  flags.String("workdir", "w", &workdir, "working directory");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos, /*stop_at_first_positional=*/true); rc >= 0) {
    return rc;
  }
  if (pos.size() < 2) {
    return Fail(absl::InvalidArgumentError("pier exec needs CONTAINER and COMMAND"), 2);
  }
  if (tty) {
    return Fail(absl::UnimplementedError("pier exec -t is not supported yet; drop -t"), 2);
  }
  auto stub = ContainerStub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  auto call = (*stub)->Exec(&ctx);
  rt::ExecRequest first;
  rt::ExecSpec* spec = first.mutable_spec();
  spec->set_container_id(pos[0]);
  for (size_t i = 1; i < pos.size(); ++i) spec->add_cmd(pos[i]);
  for (const std::string& e : env) spec->add_env(e);
  spec->set_user(user);
  spec->set_working_dir(workdir);
  spec->set_attach_stdin(interactive);
  call->Write(first);
  std::thread input;
  if (interactive) {
    input = std::thread([&] {
      std::string buf(64 << 10, '\0');
      while (true) {
        ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
        if (n <= 0) break;
        rt::ExecRequest req;
        req.set_stdin(buf.data(), static_cast<size_t>(n));
        if (!call->Write(req)) return;
      }
      rt::ExecRequest close;
      close.mutable_close_stdin();
      call->Write(close);
      call->WritesDone();
    });
    input.detach();  // A blocked read of our stdin must not hold up the exit.
  } else {
    call->WritesDone();
  }
  rt::ExecResponse resp;
  std::optional<int> code;
  std::string error;
  while (call->Read(&resp)) {
    if (resp.has_output()) {
      int fd = resp.output().stream() == common::v1::OUTPUT_STREAM_STDERR ? STDERR_FILENO
                                                                          : STDOUT_FILENO;
      (void)WriteAll(fd, resp.output().data(), "output");
    } else if (resp.has_exit()) {
      code = resp.exit().exit_code();
      error = resp.exit().error();
    }
  }
  grpc::Status s = call->Finish();
  if (code) {
    if (!error.empty()) std::cerr << "pier: " << error << "\n";
    std::cout.flush();
    ::_exit(*code < 0 ? 126 : *code);
  }
  return s.ok() ? 1 : FailRpc(s);
}

}  // namespace pier::cli
