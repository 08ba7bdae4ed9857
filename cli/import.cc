// `pier import FILE|- [REFERENCE]`: makes an image from a root filesystem
// tarball (plain or gzip).
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <iostream>

#include "cli/runtime_client.h"
#include "lib/common/fs.h"

namespace pier::cli {

int Import(const Globals& g, const std::vector<std::string>& args) {
  std::vector<std::string> changes;
  std::string message;
  FlagSet flags("pier import", "[flags] FILE|- [REFERENCE]");
  flags.StringList("change", "c", &changes, "Dockerfile instruction for the config (CMD, ENV...)");
  flags.String("message", "m", &message, "history message");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.empty() || pos.size() > 2) {
    return Fail(
        absl::InvalidArgumentError("pier import needs FILE (or -) and an optional REFERENCE"), 2);
  }
  UniqueFd fd(pos[0] == "-" ? ::dup(STDIN_FILENO) : ::open(pos[0].c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Fail(absl::NotFoundError("cannot open " + pos[0]));
  auto stub = ImageStub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  rt::ImportImageResponse resp;
  auto writer = (*stub)->ImportImage(&ctx, &resp);
  rt::ImportImageRequest spec;
  if (pos.size() == 2) spec.mutable_spec()->set_reference(pos[1]);
  for (const std::string& c : changes) spec.mutable_spec()->add_changes(c);
  spec.mutable_spec()->set_message(message);
  bool ok = writer->Write(spec);
  std::string buf(1 << 20, '\0');
  while (ok) {
    absl::StatusOr<size_t> n = ReadFull(fd.get(), buf.data(), buf.size(), pos[0]);
    if (!n.ok()) return Fail(n.status());
    if (*n == 0) break;
    rt::ImportImageRequest chunk;
    chunk.set_data(buf.data(), *n);
    ok = writer->Write(chunk);
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return FailRpc(s);
  std::cout << resp.id() << "\n";
  return 0;
}

}  // namespace pier::cli
