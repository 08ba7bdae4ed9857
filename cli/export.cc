// `pier export -o FILE CONTAINER`: the container's filesystem as a tarball.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include "cli/runtime_client.h"
#include "lib/common/fs.h"

namespace pier::cli {

int Export(const Globals& g, const std::vector<std::string>& args) {
  std::string output;
  FlagSet flags("pier export", "[flags] CONTAINER");
  flags.String("output", "o", &output, "write to FILE instead of standard output");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.size() != 1)
    return Fail(absl::InvalidArgumentError("pier export needs one CONTAINER"), 2);
  if (output.empty() && ::isatty(STDOUT_FILENO)) {
    return Fail(
        absl::InvalidArgumentError("refusing to write a tarball to a terminal: use -o FILE"), 2);
  }
  auto stub = ContainerStub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  rt::ExportContainerRequest req;
  req.set_id(pos[0]);
  auto reader = (*stub)->ExportContainer(&ctx, req);
  std::string tmp = output.empty() ? "" : output + ".partial";
  UniqueFd fd(output.empty() ? ::dup(STDOUT_FILENO)
                             : ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return Fail(absl::PermissionDeniedError("cannot create " + output));
  rt::ExportContainerResponse chunk;
  while (reader->Read(&chunk)) {
    if (absl::Status s = WriteAll(fd.get(), chunk.data(), output); !s.ok()) return Fail(s);
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) {
    if (!tmp.empty()) ::unlink(tmp.c_str());
    return FailRpc(s);
  }
  if (!tmp.empty() && ::rename(tmp.c_str(), output.c_str()) != 0) {
    return Fail(absl::InternalError("cannot rename " + tmp));
  }
  return 0;
}

}  // namespace pier::cli
