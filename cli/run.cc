// `pier run [flags] IMAGE [COMMAND...]`: creates and starts a container.
// Detached (-d) it prints the id; otherwise it streams the container's
// output, waits, and exits with the container's exit code (as docker does),
// removing the container first with --rm.
#include <grpcpp/grpcpp.h>

#include <iostream>

#include "cli/container_flags.h"
#include "cli/logs_stream.h"

namespace pier::cli {

int Run(const Globals& g, const std::vector<std::string>& args) {
  ContainerFlags cf;
  FlagSet flags("pier run", "[flags] IMAGE [COMMAND] [ARG...]");
  cf.Register(flags, /*with_run_flags=*/true);
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos, /*stop_at_first_positional=*/true); rc >= 0) return rc;
  cf.entrypoint_set = flags.IsSet("entrypoint");
  rt::RunContainerRequest req;
  if (absl::Status s = cf.ToSpec(pos, req.mutable_spec()); !s.ok()) return Fail(s, 2);
  if (!cf.detach && (cf.tty || cf.interactive)) {
    return Fail(absl::UnimplementedError(
                    "interactive containers (-i/-t) in the foreground need attach, which this "
                    "pier does not have yet: run with -d and use `pier logs -f`"),
                2);
  }
  auto stub = ContainerStub(g);
  if (!stub.ok()) return Fail(stub.status());
  rt::RunContainerResponse resp;
  {
    grpc::ClientContext ctx;
    grpc::Status s = (*stub)->RunContainer(&ctx, req, &resp);
    if (!s.ok()) return FailRpc(s);
  }
  if (cf.detach) {
    std::cout << resp.id() << "\n";
    return 0;
  }
  LogsOptions lo;
  lo.follow = true;
  grpc::Status ls = StreamLogs(**stub, resp.id(), lo);
  grpc::ClientContext wctx;
  rt::WaitContainerRequest wreq;
  wreq.set_id(resp.id());
  rt::WaitContainerResponse wresp;
  grpc::Status ws = (*stub)->WaitContainer(&wctx, wreq, &wresp);
  if (!ws.ok()) return FailRpc(ws);
  if (!ls.ok()) std::cerr << "pier: logs: " << ls.error_message() << "\n";
  if (cf.rm) {
    grpc::ClientContext rctx;
    rt::RemoveContainerRequest rreq;
    rreq.set_id(resp.id());
    rreq.set_force(true);
    rt::RemoveContainerResponse rresp;
    (void)(*stub)->RemoveContainer(&rctx, rreq, &rresp);
  }
  if (!wresp.error().empty()) std::cerr << "pier: " << wresp.error() << "\n";
  return wresp.exit_code();
}

int Create(const Globals& g, const std::vector<std::string>& args) {
  ContainerFlags cf;
  FlagSet flags("pier create", "[flags] IMAGE [COMMAND] [ARG...]");
  cf.Register(flags, /*with_run_flags=*/false);
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos, true); rc >= 0) return rc;
  cf.entrypoint_set = flags.IsSet("entrypoint");
  rt::CreateContainerRequest req;
  if (absl::Status s = cf.ToSpec(pos, req.mutable_spec()); !s.ok()) return Fail(s, 2);
  auto stub = ContainerStub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  rt::CreateContainerResponse resp;
  grpc::Status s = (*stub)->CreateContainer(&ctx, req, &resp);
  if (!s.ok()) return FailRpc(s);
  for (const std::string& w : resp.warnings()) std::cerr << "WARNING: " << w << "\n";
  std::cout << resp.id() << "\n";
  return 0;
}

}  // namespace pier::cli
