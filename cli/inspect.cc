// `pier inspect NAME...`: a container's or an image's full record as JSON
// (containers are looked up first, as docker does; --type chooses).
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <iostream>

#include "cli/runtime_client.h"

namespace pier::cli {
namespace {

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  return out;
}

}  // namespace

int Inspect(const Globals& g, const std::vector<std::string>& args) {
  std::string type;
  FlagSet flags("pier inspect", "[flags] NAME [NAME...]");
  flags.String("type", "", &type, "container or image (default: try both)");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.empty()) return Fail(absl::InvalidArgumentError("pier inspect needs a NAME"), 2);
  if (!type.empty() && type != "container" && type != "image") {
    return Fail(absl::InvalidArgumentError("--type must be container or image"), 2);
  }
  auto containers = ContainerStub(g);
  auto images = ImageStub(g);
  if (!containers.ok()) return Fail(containers.status());
  if (!images.ok()) return Fail(images.status());
  int rc = 0;
  for (const std::string& name : pos) {
    if (type != "image") {
      grpc::ClientContext ctx;
      rt::InspectContainerRequest req;
      req.set_id(name);
      rt::InspectContainerResponse resp;
      grpc::Status s = (*containers)->InspectContainer(&ctx, req, &resp);
      if (s.ok()) {
        std::cout << ToJson(resp);
        continue;
      }
      if (type == "container" || s.error_code() != grpc::StatusCode::NOT_FOUND) {
        rc = FailRpc(s);
        continue;
      }
    }
    grpc::ClientContext ctx;
    rt::InspectImageRequest req;
    req.set_image(name);
    rt::InspectImageResponse resp;
    grpc::Status s = (*images)->InspectImage(&ctx, req, &resp);
    if (!s.ok()) {
      std::cerr << "pier: no such container or image: " << name << "\n";
      rc = 1;
      continue;
    }
    resp.clear_manifest_content();
    resp.clear_config_content();
    std::cout << ToJson(resp);
  }
  return rc;
}

}  // namespace pier::cli
