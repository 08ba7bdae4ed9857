// `pier push IMAGE`: pier-runtime pushes a local image to its registry;
// progress on stderr (cli/progress.h: redrawn in place on a terminal), -q for
// none.
#include <grpcpp/grpcpp.h>

#include <iostream>

#include "cli/progress.h"
#include "cli/runtime_client.h"

namespace pier::cli {

int Push(const Globals& g, const std::vector<std::string>& args) {
  bool quiet = false;
  FlagSet flags("pier push", "[flags] IMAGE");
  flags.Bool("quiet", "q", &quiet, "print only the digest");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.size() != 1) return Fail(absl::InvalidArgumentError("pier push needs one IMAGE"), 2);
  auto stub = ImageStub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  rt::PushImageRequest req;
  req.set_reference(pos[0]);
  SetAuth(pos[0], req.mutable_auth());
  auto reader = (*stub)->PushImage(&ctx, req);
  rt::PushImageResponse resp;
  std::string digest;
  ProgressDisplay display = ProgressDisplay::ForStream(stderr, ProgressDisplay::Direction::kPush);
  while (reader->Read(&resp)) {
    if (resp.has_progress() && !quiet) display.Update(resp.progress());
    if (resp.has_result()) digest = resp.result().digest();
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FailRpc(s);
  std::cout << (quiet ? digest : pos[0] + ": digest: " + digest) << "\n";
  return 0;
}

}  // namespace pier::cli
