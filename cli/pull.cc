// `pier pull [--platform P] IMAGE`: pier-runtime pulls an image from its
// registry (P's entry of a multi-platform image); progress
// on stderr (cli/progress.h: redrawn in place on a terminal), -q for none.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

#include "cli/progress.h"
#include "cli/runtime_client.h"
#include "lib/common/status.h"

namespace pier::cli {

absl::Status ParsePlatform(const std::string& text, common::v1::Platform* platform) {
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  if (text.empty() || parts.size() > 3 ||
      std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); })) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid --platform \"", text, "\": want os[/arch[/variant]]"));
  }
  platform->set_os(parts[0]);
  if (parts.size() > 1) platform->set_architecture(parts[1]);
  if (parts.size() > 2) platform->set_variant(parts[2]);
  return absl::OkStatus();
}

absl::StatusOr<std::string> PullImage(const Globals& g, const std::string& reference, bool quiet,
                                      const std::string& platform) {
  auto stub = ImageStub(g);
  if (!stub.ok()) return stub.status();
  grpc::ClientContext ctx;
  rt::PullImageRequest req;
  req.set_reference(reference);
  if (!platform.empty()) RETURN_IF_ERROR(ParsePlatform(platform, req.mutable_platform()));
  SetAuth(reference, req.mutable_auth());
  auto reader = (*stub)->PullImage(&ctx, req);
  rt::PullImageResponse resp;
  std::string id;
  ProgressDisplay display = ProgressDisplay::ForStream(stderr, ProgressDisplay::Direction::kPull);
  while (reader->Read(&resp)) {
    if (resp.has_progress() && !quiet) display.Update(resp.progress());
    if (resp.has_image()) id = resp.image().id();
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  }
  return id;
}

int Pull(const Globals& g, const std::vector<std::string>& args) {
  bool quiet = false;
  std::string platform;
  FlagSet flags("pier pull", "[flags] IMAGE");
  flags.Bool("quiet", "q", &quiet, "print only the image id");
  flags.String("platform", "", &platform,
               "pick this platform from a multi-platform image, e.g. linux/arm64 (default: the "
               "node's)");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.size() != 1) return Fail(absl::InvalidArgumentError("pier pull needs one IMAGE"), 2);
  absl::StatusOr<std::string> id = PullImage(g, pos[0], quiet, platform);
  if (!id.ok()) return Fail(id.status());
  std::cout << (quiet ? *id : "Pulled " + pos[0] + " (" + *id + ")") << "\n";
  return 0;
}

}  // namespace pier::cli
