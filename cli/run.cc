// `pier run [flags] IMAGE [COMMAND...]`: creates and starts a container.
// Detached (-d) it prints the id; otherwise it streams the container's
// output, waits, and exits with the container's exit code (as docker does),
// removing the container first with --rm. A missing image is pulled first
// (--pull=missing, docker's default). With -i and/or -t in the
// foreground it creates the container, attaches (Attach RPC), starts it once
// attached, and copies stdin/output (raw terminal mode with -t).
#include <grpcpp/grpcpp.h>

#include <functional>
#include <iostream>

#include "cli/attach.h"
#include "cli/container_flags.h"
#include "cli/logs_stream.h"

namespace pier::cli {
namespace {

// Whether pier-runtime lacks `image` (InspectImage answers NotFound).
bool ImageMissing(const Globals& g, const std::string& image) {
  auto stub = ImageStub(g);
  if (!stub.ok()) return false;
  grpc::ClientContext ctx;
  rt::InspectImageRequest req;
  req.set_image(image);
  rt::InspectImageResponse resp;
  return (*stub)->InspectImage(&ctx, req, &resp).error_code() == grpc::StatusCode::NOT_FOUND;
}

// Runs `call` (a create or run RPC) with docker's --pull policy: "always"
// pulls first; "missing" pulls and retries once when the call fails because
// the node lacks the image.
grpc::Status WithPull(const Globals& g, const ContainerFlags& cf, const std::string& image,
                      const std::function<grpc::Status()>& call) {
  auto pull = [&]() -> grpc::Status {
    absl::StatusOr<std::string> id = PullImage(g, image, /*quiet=*/false, cf.platform);
    if (id.ok()) return grpc::Status::OK;
    return grpc::Status(static_cast<grpc::StatusCode>(id.status().code()),
                        std::string(id.status().message()));
  };
  if (cf.pull == "always") {
    if (grpc::Status s = pull(); !s.ok()) return s;
  }
  grpc::Status s = call();
  if (s.error_code() != grpc::StatusCode::NOT_FOUND || cf.pull != "missing" ||
      !ImageMissing(g, image)) {
    return s;
  }
  std::cerr << "Unable to find image '" << image << "' locally\n";
  if (grpc::Status p = pull(); !p.ok()) return p;
  return call();
}

void RemoveQuietly(rt::ContainerService::Stub& stub, const std::string& id) {
  grpc::ClientContext rctx;
  rt::RemoveContainerRequest rreq;
  rreq.set_id(id);
  rreq.set_force(true);
  rt::RemoveContainerResponse rresp;
  (void)stub.RemoveContainer(&rctx, rreq, &rresp);
}

// create → attach → (attached) start → copy until the exit.
int RunAttached(const Globals& g, rt::ContainerService::Stub& stub, const ContainerFlags& cf,
                const rt::ContainerSpec& spec) {
  rt::CreateContainerRequest creq;
  *creq.mutable_spec() = spec;
  rt::CreateContainerResponse cresp;
  {
    grpc::Status s = WithPull(g, cf, spec.image(), [&] {
      grpc::ClientContext ctx;
      return stub.CreateContainer(&ctx, creq, &cresp);
    });
    if (!s.ok()) return FailRpc(s);
  }
  for (const std::string& w : cresp.warnings()) std::cerr << "WARNING: " << w << "\n";
  const std::string id = cresp.id();
  AttachOptions options;
  options.stdin = cf.interactive;
  options.detach_keys = DetachKeys(g, cf.detach_keys);
  AttachResult r = AttachSession(stub, id, options, [&] {
    grpc::ClientContext ctx;
    rt::StartContainerRequest sreq;
    sreq.set_id(id);
    rt::StartContainerResponse sresp;
    return stub.StartContainer(&ctx, sreq, &sresp);
  });
  // The attachment failed (e.g. malformed detach keys): nothing of this run
  // is left. Detached: the container keeps running, --rm or not.
  if ((cf.rm && !r.detached) || !r.attached) RemoveQuietly(stub, id);
  if (r.exit_code) {
    if (!r.error.empty()) std::cerr << "pier: " << r.error << "\n";
    return *r.exit_code;
  }
  if (r.detached) return 0;
  return FailRpc(r.status);
}

}  // namespace

int Run(const Globals& g, const std::vector<std::string>& args) {
  ContainerFlags cf;
  FlagSet flags("pier run", "[flags] IMAGE [COMMAND] [ARG...]");
  cf.Register(flags, /*with_run_flags=*/true);
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos, /*stop_at_first_positional=*/true); rc >= 0) return rc;
  cf.entrypoint_set = flags.IsSet("entrypoint");
  rt::RunContainerRequest req;
  if (absl::Status s = cf.ToSpec(pos, req.mutable_spec()); !s.ok()) return Fail(s, 2);
  auto stub = ContainerStub(g);
  if (!stub.ok()) return Fail(stub.status());
  if (!cf.detach && (cf.tty || cf.interactive)) return RunAttached(g, **stub, cf, req.spec());
  rt::RunContainerResponse resp;
  {
    grpc::Status s = WithPull(g, cf, req.spec().image(), [&] {
      grpc::ClientContext ctx;
      return (*stub)->RunContainer(&ctx, req, &resp);
    });
    if (!s.ok()) return FailRpc(s);
  }
  if (cf.detach) {
    std::cout << resp.id() << "\n";
    return 0;
  }
  // The followed logs end with the exit (and, for --rm, after the removal);
  // an older runtime that sends no exit is asked with WaitContainer and
  // RemoveContainer.
  rt::WaitContainerResponse wresp;
  bool got_exit = false;
  LogsOptions lo;
  lo.follow = true;
  lo.exit = &wresp;
  lo.got_exit = &got_exit;
  lo.remove = cf.rm;
  grpc::Status ls = StreamLogs(**stub, resp.id(), lo);
  if (!got_exit) {
    grpc::ClientContext wctx;
    rt::WaitContainerRequest wreq;
    wreq.set_id(resp.id());
    grpc::Status ws = (*stub)->WaitContainer(&wctx, wreq, &wresp);
    if (!ws.ok()) return FailRpc(ws);
  }
  if (!ls.ok()) std::cerr << "pier: logs: " << ls.error_message() << "\n";
  if (cf.rm && !got_exit) RemoveQuietly(**stub, resp.id());
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
  rt::CreateContainerResponse resp;
  grpc::Status s = WithPull(g, cf, req.spec().image(), [&] {
    grpc::ClientContext ctx;
    return (*stub)->CreateContainer(&ctx, req, &resp);
  });
  if (!s.ok()) return FailRpc(s);
  for (const std::string& w : resp.warnings()) std::cerr << "WARNING: " << w << "\n";
  std::cout << resp.id() << "\n";
  return 0;
}

}  // namespace pier::cli
