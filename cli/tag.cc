// `pier tag SOURCE TARGET`: gives a local image another name.
#include <grpcpp/grpcpp.h>

#include "cli/runtime_client.h"

namespace pier::cli {

int Tag(const Globals& g, const std::vector<std::string>& args) {
  FlagSet flags("pier tag", "SOURCE_IMAGE TARGET_IMAGE");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.size() != 2) {
    return Fail(absl::InvalidArgumentError("pier tag needs SOURCE_IMAGE and TARGET_IMAGE"), 2);
  }
  auto stub = ImageStub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  rt::TagImageRequest req;
  req.set_source(pos[0]);
  req.set_target(pos[1]);
  rt::TagImageResponse resp;
  grpc::Status s = (*stub)->TagImage(&ctx, req, &resp);
  return s.ok() ? 0 : FailRpc(s);
}

}  // namespace pier::cli
