// `pier history IMAGE`: an image's layers with the instruction that made
// each and its size, newest first, so users can count and weigh layers.
#include <grpcpp/grpcpp.h>

#include <cstdio>

#include "cli/format.h"
#include "cli/runtime_client.h"

namespace pier::cli {

int History(const Globals& g, const std::vector<std::string>& args) {
  bool no_trunc = false;
  std::string format_text;
  FlagSet flags("pier history", "[flags] IMAGE");
  flags.Bool("no-trunc", "", &no_trunc, "do not shorten the CREATED BY column");
  flags.String("format", "", &format_text, kFormatHelp);
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.size() != 1) return Fail(absl::InvalidArgumentError("pier history needs one IMAGE"), 2);
  int rc = 0;
  std::optional<Format> format = ParseFormatFlag("pier history", format_text, &rc);
  if (!format) return rc;
  auto stub = ImageStub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  rt::ImageHistoryRequest req;
  req.set_image(pos[0]);
  rt::ImageHistoryResponse resp;
  grpc::Status s = (*stub)->ImageHistory(&ctx, req, &resp);
  if (!s.ok()) return FailRpc(s);
  if (format->table()) {
    std::printf("%-20s %-50s %-10s %s\n", "CREATED", "CREATED BY", "SIZE", "COMMENT");
  }
  for (int i = resp.history_size() - 1; i >= 0; --i) {
    const rt::HistoryEntry& h = resp.history(i);
    if (!format->table()) {
      nlohmann::ordered_json row = {
          {"CreatedAt", TimeString(h.created_at())},
          {"CreatedSince", Ago(h.created_at())},
          {"CreatedBy", h.created_by()},
          {"Author", h.author()},
          {"Comment", h.comment()},
          {"EmptyLayer", h.empty_layer()},
          {"Size", h.empty_layer() ? 0 : h.size()},
          {"LayerDigest", h.layer_digest()},
      };
      if (!PrintRow(*format, row)) return 1;
      continue;
    }
    std::string by = h.created_by();
    if (!no_trunc && by.size() > 48) by = by.substr(0, 45) + "...";
    std::printf("%-20s %-50s %-10s %s\n", Ago(h.created_at()).c_str(), by.c_str(),
                h.empty_layer() ? "0B" : HumanSize(h.size()).c_str(), h.comment().c_str());
  }
  return 0;
}

}  // namespace pier::cli
