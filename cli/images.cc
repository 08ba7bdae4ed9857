// `pier images`: lists local images (a table, JSON lines or a template).
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <iostream>

#include "cli/format.h"
#include "cli/runtime_client.h"

namespace pier::cli {

int Images(const Globals& g, const std::vector<std::string>& args) {
  bool quiet = false;
  std::string format_text;
  FlagSet flags("pier images", "[flags]");
  flags.Bool("quiet", "q", &quiet, "print only image ids");
  flags.String("format", "", &format_text, kFormatHelp);
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  int rc = 0;
  std::optional<Format> format = ParseFormatFlag("pier images", format_text, &rc);
  if (!format) return rc;
  auto stub = ImageStub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  rt::ListImagesRequest req;
  rt::ListImagesResponse resp;
  grpc::Status s = (*stub)->ListImages(&ctx, req, &resp);
  if (!s.ok()) return FailRpc(s);
  if (!quiet && format->table()) {
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
      if (colon != std::string::npos && rt.find('/', colon) != std::string::npos) {
        colon = std::string::npos;  // a registry port, not a tag
      }
      std::string repo = colon == std::string::npos ? rt : rt.substr(0, colon);
      std::string tag = colon == std::string::npos ? "" : rt.substr(colon + 1);
      if (!format->table()) {
        nlohmann::ordered_json row = {
            {"Repository", repo},
            {"Tag", tag},
            {"ID", img.id()},
            {"Digest", img.manifest_digest()},
            {"CreatedAt", TimeString(img.created_at())},
            {"CreatedSince", Ago(img.created_at())},
            {"Size", img.size()},
            {"Containers", img.containers()},
        };
        if (!PrintRow(*format, row)) return 1;
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
