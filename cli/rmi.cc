// `pier rmi IMAGE...`: removes local images.
#include <grpcpp/grpcpp.h>

#include <iostream>

#include "cli/runtime_client.h"

namespace pier::cli {

int Rmi(const Globals& g, const std::vector<std::string>& args) {
  bool force = false;
  FlagSet flags("pier rmi", "[flags] IMAGE [IMAGE...]");
  flags.Bool("force", "f", &force, "remove even if a container uses it");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.empty()) return Fail(absl::InvalidArgumentError("pier rmi needs an IMAGE"), 2);
  auto stub = ImageStub(g);
  if (!stub.ok()) return Fail(stub.status());
  int rc = 0;
  for (const std::string& image : pos) {
    grpc::ClientContext ctx;
    rt::RemoveImageRequest req;
    req.set_image(image);
    req.set_force(force);
    rt::RemoveImageResponse resp;
    grpc::Status s = (*stub)->RemoveImage(&ctx, req, &resp);
    if (!s.ok()) {
      rc = FailRpc(s);
      continue;
    }
    for (const std::string& u : resp.untagged()) std::cout << "Untagged: " << u << "\n";
    for (const std::string& d : resp.deleted()) std::cout << "Deleted: " << d << "\n";
  }
  return rc;
}

}  // namespace pier::cli
