// `pier pull IMAGE`: pier-runtime pulls an image from its registry; progress
// on stderr (cli/progress.h: redrawn in place on a terminal), -q for none.
#include <grpcpp/grpcpp.h>

#include <iostream>

#include "cli/progress.h"
#include "cli/runtime_client.h"

namespace pier::cli {

absl::StatusOr<std::string> PullImage(const Globals& g, const std::string& reference, bool quiet) {
  auto stub = ImageStub(g);
  if (!stub.ok()) return stub.status();
  grpc::ClientContext ctx;
  rt::PullImageRequest req;
  req.set_reference(reference);
  SetAuth(reference, req.mutable_auth());
  auto reader = (*stub)->PullImage(&ctx, req);
  rt::PullImageResponse resp;
  std::string id;
  ProgressDisplay display = ProgressDisplay::ForStream(stderr, ProgressDisplay::Direction::kPull);
  while (reader->Read(&resp)) {
    if (resp.has_progress() && !quiet) display.Update(resp.progress());
    if (resp.has_image()) id = resp.image().id();
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  }
  return id;
}

int Pull(const Globals& g, const std::vector<std::string>& args) {
  bool quiet = false;
  FlagSet flags("pier pull", "[flags] IMAGE");
  flags.Bool("quiet", "q", &quiet, "print only the image id");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.size() != 1) return Fail(absl::InvalidArgumentError("pier pull needs one IMAGE"), 2);
  absl::StatusOr<std::string> id = PullImage(g, pos[0], quiet);
  if (!id.ok()) return Fail(id.status());
  std::cout << (quiet ? *id : "Pulled " + pos[0] + " (" + *id + ")") << "\n";
  return 0;
}

}  // namespace pier::cli
