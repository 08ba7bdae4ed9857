// `pier attach CONTAINER`: attaches our terminal to a running container's
// main process, and the session code `pier run -i/-t` and `pier start -a`
// share with it. The detach keys (ctrl-p,ctrl-q unless --detach-keys or the
// config file's detach-keys say otherwise) leave the container running; as
// docker, `pier attach` then says "read escape sequence" and exits 1, while
// run and start exit 0 quietly.
#include "cli/attach.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <iostream>

#include "cli/terminal.h"
#include "lib/common/fs.h"

namespace pier::cli {

std::string DetachKeys(const Globals& g, const std::string& flag) {
  return flag.empty() ? g.detach_keys : flag;
}

AttachResult AttachSession(rt::ContainerService::Stub& stub, const std::string& container,
                           const AttachOptions& options,
                           const std::function<grpc::Status()>& on_attached) {
  const bool stdin = options.stdin;
  AttachResult result;
  grpc::ClientContext ctx;
  auto call = stub.Attach(&ctx);
  rt::AttachRequest first;
  first.mutable_spec()->set_container_id(container);
  first.mutable_spec()->set_stdin(stdin);
  first.mutable_spec()->set_stdout(true);
  first.mutable_spec()->set_stderr(true);
  first.mutable_spec()->set_detach_keys(options.detach_keys);
  first.mutable_spec()->set_since_start(options.since_start);
  call->Write(first);
  rt::AttachResponse resp;
  if (!call->Read(&resp) || !resp.has_attached()) {
    result.status = call->Finish();
    if (result.status.ok()) {
      result.status = grpc::Status(grpc::StatusCode::INTERNAL, "the runtime did not attach");
    }
    return result;
  }
  result.attached = true;
  const bool tty = resp.attached().tty();
  if (tty) {
    (void)EnterRawTerminal();
    rt::AttachRequest r;
    if (TerminalSize(r.mutable_resize())) call->Write(r);
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
  // Input (stdin, resizes) on its own thread until the output ends.
  InputPump input;
  if (stdin || tty) {
    input.Start(stdin, tty, SessionSinks<rt::AttachRequest>(call.get(), tty));
  } else {
    call->WritesDone();
  }
  while (call->Read(&resp)) {
    if (resp.has_output()) {
      WriteSessionOutput(resp.output());
    } else if (resp.has_exit()) {
      result.exit_code = resp.exit().exit_code();
      result.error = resp.exit().error();
    } else if (resp.has_detached()) {
      result.detached = true;
    }
  }
  input.Stop();
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
  std::string detach_keys;
  FlagSet flags("pier attach", "[flags] CONTAINER");
  flags.Bool("no-stdin", "", &no_stdin, "do not attach our standard input");
  flags.String("detach-keys", "", &detach_keys,
               "key sequence that detaches, e.g. ctrl-x,y (default ctrl-p,ctrl-q)");
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
  AttachOptions options;
  options.stdin = want_stdin;
  options.detach_keys = DetachKeys(g, detach_keys);
  AttachResult r = AttachSession(**stub, pos[0], options, nullptr);
  if (r.exit_code) {
    if (!r.error.empty()) std::cerr << "pier: " << r.error << "\n";
    return *r.exit_code;
  }
  if (r.detached) {
    std::cerr << "read escape sequence\n";
    return 1;
  }
  return FailRpc(r.status);
}

}  // namespace pier::cli
