// `pier save -o FILE IMAGE...`: writes images to a docker-archive (default)
// or OCI-layout tarball.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include "cli/runtime_client.h"
#include "lib/common/fs.h"

namespace pier::cli {

int Save(const Globals& g, const std::vector<std::string>& args) {
  std::string output, format = "docker";
  FlagSet flags("pier save", "[flags] IMAGE [IMAGE...]");
  flags.String("output", "o", &output, "write to FILE instead of standard output");
  flags.String("format", "", &format, "docker (docker-archive) or oci (OCI layout)");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.empty()) return Fail(absl::InvalidArgumentError("pier save needs an IMAGE"), 2);
  if (format != "docker" && format != "oci") {
    return Fail(absl::InvalidArgumentError("--format must be docker or oci"), 2);
  }
  if (output.empty() && ::isatty(STDOUT_FILENO)) {
    return Fail(
        absl::InvalidArgumentError("refusing to write a tarball to a terminal: use -o FILE"), 2);
  }
  auto stub = ImageStub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  rt::SaveImagesRequest req;
  for (const std::string& p : pos) req.add_images(p);
  req.set_format(format == "oci" ? rt::ARCHIVE_FORMAT_OCI : rt::ARCHIVE_FORMAT_DOCKER);
  auto reader = (*stub)->SaveImages(&ctx, req);
  std::string tmp = output.empty() ? "" : output + ".partial";
  UniqueFd fd(output.empty() ? ::dup(STDOUT_FILENO)
                             : ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return Fail(absl::PermissionDeniedError("cannot create " + output));
  rt::SaveImagesResponse chunk;
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
