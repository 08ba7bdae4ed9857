// `pier load -i FILE`: loads images from a docker-archive or OCI-layout
// tarball (standard input by default).
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <iostream>

#include "cli/runtime_client.h"
#include "lib/common/fs.h"

namespace pier::cli {

int Load(const Globals& g, const std::vector<std::string>& args) {
  std::string input;
  FlagSet flags("pier load", "[flags]");
  flags.String("input", "i", &input, "read from FILE instead of standard input");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  UniqueFd fd(input.empty() ? ::dup(STDIN_FILENO) : ::open(input.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Fail(absl::NotFoundError("cannot open " + input));
  auto stub = ImageStub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  rt::LoadImagesResponse resp;
  auto writer = (*stub)->LoadImages(&ctx, &resp);
  std::string buf(1 << 20, '\0');
  bool ok = true;
  while (ok) {
    absl::StatusOr<size_t> n = ReadFull(fd.get(), buf.data(), buf.size(), input);
    if (!n.ok()) return Fail(n.status());
    if (*n == 0) break;
    rt::LoadImagesRequest chunk;
    chunk.set_data(buf.data(), *n);
    ok = writer->Write(chunk);
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return FailRpc(s);
  for (const rt::LoadedImage& img : resp.images()) {
    for (const std::string& r : img.references()) std::cout << "Loaded image: " << r << "\n";
    if (img.references().empty()) std::cout << "Loaded image ID: " << img.id() << "\n";
  }
  return 0;
}

}  // namespace pier::cli
