// `pier commit CONTAINER [REPOSITORY[:TAG]]`: the container's changes as a
// new layer on its image, saved as a local image.
#include <grpcpp/grpcpp.h>

#include <iostream>

#include "cli/runtime_client.h"

namespace pier::cli {

int Commit(const Globals& g, const std::vector<std::string>& args) {
  std::vector<std::string> changes;
  std::string message, author;
  FlagSet flags("pier commit", "[flags] CONTAINER [REPOSITORY[:TAG]]");
  flags.StringList("change", "c", &changes, "Dockerfile instruction for the config");
  flags.String("message", "m", &message, "commit message");
  flags.String("author", "a", &author, "author");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.empty() || pos.size() > 2) {
    return Fail(absl::InvalidArgumentError("pier commit needs CONTAINER [REPOSITORY[:TAG]]"), 2);
  }
  auto stub = ContainerStub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  rt::CommitContainerRequest req;
  req.set_container_id(pos[0]);
  if (pos.size() == 2) req.set_reference(pos[1]);
  req.set_message(message);
  req.set_author(author);
  for (const std::string& c : changes) req.add_changes(c);
  rt::CommitContainerResponse resp;
  grpc::Status s = (*stub)->CommitContainer(&ctx, req, &resp);
  if (!s.ok()) return FailRpc(s);
  std::cout << resp.image_id() << "\n";
  return 0;
}

}  // namespace pier::cli
