// `pier images`: lists local images.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <iostream>

#include "cli/runtime_client.h"

namespace pier::cli {

int Images(const Globals& g, const std::vector<std::string>& args) {
  bool quiet = false;
  std::string format;
  FlagSet flags("pier images", "[flags]");
  flags.Bool("quiet", "q", &quiet, "print only image ids");
  flags.String("format", "", &format, "\"json\" for one JSON object per line");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  auto stub = ImageStub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  rt::ListImagesRequest req;
  rt::ListImagesResponse resp;
  grpc::Status s = (*stub)->ListImages(&ctx, req, &resp);
  if (!s.ok()) return FailRpc(s);
  if (!quiet && format.empty()) {
    std::printf("%-40s %-12s %-14s %-18s %s\n", "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE");
  }
  for (const rt::Image& img : resp.images()) {
    std::string id = img.id();
    if (id.rfind("sha256:", 0) == 0) id = id.substr(7);
    if (quiet) {
      std::cout << id.substr(0, 12) << "\n";
      continue;
    }
    std::vector<std::string> tags(img.repo_tags().begin(), img.repo_tags().end());
    if (tags.empty()) tags.push_back("<none>:<none>");
    for (const std::string& rt : tags) {
      size_t colon = rt.rfind(':');
      std::string repo = colon == std::string::npos ? rt : rt.substr(0, colon);
      std::string tag = colon == std::string::npos ? "" : rt.substr(colon + 1);
      if (format == "json") {
        std::printf("{\"Repository\":\"%s\",\"Tag\":\"%s\",\"ID\":\"%s\",\"Size\":%lld}\n",
                    repo.c_str(), tag.c_str(), img.id().c_str(),
                    static_cast<long long>(img.size()));
      } else {
        std::printf("%-40s %-12s %-14s %-18s %s\n", repo.c_str(), tag.c_str(),
                    id.substr(0, 12).c_str(), Ago(img.created_at()).c_str(),
                    HumanSize(img.size()).c_str());
      }
    }
  }
  return 0;
}

}  // namespace pier::cli
