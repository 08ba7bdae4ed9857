// `pier inspect NAME...`: a container's or an image's full record
// (containers are looked up first, as docker does; --type chooses). As
// docker: a JSON array of the records found; --format json prints one record
// per line, a template is applied to each record (field names as in the
// array, e.g. '{{.container.name}}', '{{.image.id}}').
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <iostream>

#include "cli/format.h"
#include "cli/runtime_client.h"

namespace pier::cli {
namespace {

nlohmann::ordered_json ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  return nlohmann::ordered_json::parse(out, nullptr, false);
}

}  // namespace

int Inspect(const Globals& g, const std::vector<std::string>& args) {
  std::string type, format_text;
  FlagSet flags("pier inspect", "[flags] NAME [NAME...]");
  flags.String("type", "", &type, "container or image (default: try both)");
  flags.String("format", "", &format_text, kFormatHelp);
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.empty()) return Fail(absl::InvalidArgumentError("pier inspect needs a NAME"), 2);
  if (!type.empty() && type != "container" && type != "image") {
    return Fail(absl::InvalidArgumentError("--type must be container or image"), 2);
  }
  int rc = 0;
  std::optional<Format> format = ParseFormatFlag("pier inspect", format_text, &rc);
  if (!format) return rc;
  auto containers = ContainerStub(g);
  auto images = ImageStub(g);
  if (!containers.ok()) return Fail(containers.status());
  if (!images.ok()) return Fail(images.status());
  nlohmann::ordered_json found = nlohmann::ordered_json::array();
  auto emit = [&](nlohmann::ordered_json record) {
    if (format->table()) {
      found.push_back(std::move(record));
    } else if (!PrintRow(*format, record)) {
      rc = 1;
    }
  };
  for (const std::string& name : pos) {
    if (type != "image") {
      grpc::ClientContext ctx;
      rt::InspectContainerRequest req;
      req.set_id(name);
      rt::InspectContainerResponse resp;
      grpc::Status s = (*containers)->InspectContainer(&ctx, req, &resp);
      if (s.ok()) {
        emit(ToJson(resp));
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
      if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
        std::cerr << "pier: no such " << (type.empty() ? "container or image" : type) << ": "
                  << name << " (see `pier ps -a` and `pier images`)\n";
        rc = 1;
      } else {
        rc = FailRpc(s);
      }
      continue;
    }
    resp.clear_manifest_content();
    resp.clear_config_content();
    emit(ToJson(resp));
  }
  // As docker: the array of what was found, even when some were not.
  if (format->table()) std::cout << found.dump(4) << "\n";
  return rc;
}

}  // namespace pier::cli
