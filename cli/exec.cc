// `pier exec [-d] [-i] [-t] [--privileged] [-e K=V] [-u UID[:GID]] [-w DIR] CONTAINER COMMAND...`:
// runs a process in a running container and exits with its exit code (with
// -d: at once, the process running on in the background). -i
// copies our standard input to it; -t gives it a pseudo-terminal sized as
// ours (raw mode on our terminal with -it, SIGWINCH forwarded as resizes).
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <iostream>
#include <optional>

#include "cli/runtime_client.h"
#include "cli/terminal.h"
#include "lib/common/fs.h"

namespace pier::cli {

int Exec(const Globals& g, const std::vector<std::string>& args) {
  bool interactive = false, tty = false, privileged = false, detach = false;
  std::vector<std::string> env;
  std::string user, workdir;
  FlagSet flags("pier exec", "[flags] CONTAINER COMMAND [ARG...]");
  flags.Bool("interactive", "i", &interactive, "send our standard input to the process");
  flags.Bool("tty", "t", &tty, "allocate a pseudo-terminal");
  flags.StringList("env", "e", &env, "set an environment variable KEY=value");
  flags.String("user", "u", &user, "uid[:gid] to run as");
  flags.String("workdir", "w", &workdir, "working directory");
  flags.Bool("privileged", "", &privileged, "all capabilities and no seccomp filter");
  flags.Bool("detach", "d", &detach, "run the process in the background (its output is dropped)");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos, /*stop_at_first_positional=*/true); rc >= 0) {
    return rc;
  }
  if (pos.size() < 2) {
    return Fail(absl::InvalidArgumentError("pier exec needs CONTAINER and COMMAND"), 2);
  }
  if (detach && interactive) {
    return Fail(absl::InvalidArgumentError("pier exec: -d and -i exclude each other"), 2);
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
  spec->set_tty(tty);
  spec->set_privileged(privileged);
  spec->set_detach(detach);
  if (rt::TtySize size; tty && TerminalSize(&size)) *spec->mutable_tty_size() = size;
  call->Write(first);
  // Raw mode only once the process runs, so an error prints normally.
  rt::ExecResponse resp;
  if (!call->Read(&resp) || !resp.has_started()) return FailRpc(call->Finish());
  if (detach) {
    call->WritesDone();
    grpc::Status s = call->Finish();
    return s.ok() ? 0 : FailRpc(s);
  }
  if (tty && interactive) (void)EnterRawTerminal();
  InputPump input;
  if (interactive || tty) {
    input.Start(interactive, tty, SessionSinks<rt::ExecRequest>(call.get(), tty));
  } else {
    call->WritesDone();
  }
  std::optional<int> code;
  std::string error;
  while (call->Read(&resp)) {
    if (resp.has_output()) {
      WriteSessionOutput(resp.output());
    } else if (resp.has_exit()) {
      code = resp.exit().exit_code();
      error = resp.exit().error();
      ctx.TryCancel();  // the last message: end the call (and our stdin's)
    }
  }
  input.Stop();
  grpc::Status s = call->Finish();
  RestoreTerminal();
  if (code) {
    if (!error.empty()) std::cerr << "pier: " << error << "\n";
    return *code < 0 ? 126 : *code;
  }
  return s.ok() ? 1 : FailRpc(s);
}

}  // namespace pier::cli
