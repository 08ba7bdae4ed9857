// `pier volume create|ls|inspect|rm|prune`: named volumes on the node.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <iostream>

#include "cli/format.h"
#include "cli/runtime_client.h"
#include "lib/rpc/credentials.h"

namespace pier::cli {
namespace {

absl::StatusOr<std::unique_ptr<rt::VolumeService::Stub>> VolumeStub(const Globals& g) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> ch = rpc::SharedChannel(g.runtime, g.tls);
  if (!ch.ok()) return ch.status();
  return rt::VolumeService::NewStub(*ch);
}

// The JSON of a volume for --format and inspect; docker's field names plus
// Pier's InUse/RefCount/Size (known only to inspect) and Anonymous.
nlohmann::ordered_json VolumeRow(const rt::Volume& v, bool inspected) {
  nlohmann::ordered_json labels = nlohmann::ordered_json::object();
  for (const auto& [k, val] : v.labels()) labels[k] = val;
  nlohmann::ordered_json options = nlohmann::ordered_json::object();
  for (const auto& [k, val] : v.options()) options[k] = val;
  nlohmann::ordered_json row = {
      {"Name", v.name()},
      {"Driver", v.driver()},
      {"Mountpoint", v.mountpoint()},
      {"CreatedAt", TimeString(v.created_at())},
      {"Labels", labels},
      {"Options", options},
      {"Scope", "local"},
      {"Anonymous", v.anonymous()},
  };
  if (inspected) {
    row["InUse"] = v.ref_count() > 0;
    row["RefCount"] = v.ref_count();
    row["Size"] = v.size_bytes();
  }
  return row;
}

int Usage(std::ostream& out, int rc) {
  out << "Usage: pier volume COMMAND\n\nCommands:\n"
         "  create [NAME]                 Create a volume (a random name when none is given)\n"
         "  ls [-q] [--format F]          List volumes\n"
         "  inspect [--format F] NAME...  Show volumes as a JSON array (or by --format)\n"
         "  rm NAME...                    Remove volumes no container uses\n"
         "  prune [-a] [-f] [--filter F]  Remove unused anonymous volumes (-a: named ones too)\n";
  return rc;
}

}  // namespace

int Volume(const Globals& g, const std::vector<std::string>& args) {
  if (args.empty()) return Usage(std::cerr, 2);
  const std::string& sub = args[0];
  if (sub == "--help" || sub == "-h" || sub == "help") return Usage(std::cout, 0);
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (sub == "prune") return VolumePrune(g, rest);
  bool quiet = false;
  std::string format_text;
  FlagSet flags("pier volume " + sub, "[flags] [NAME...]");
  if (sub == "ls") flags.Bool("quiet", "q", &quiet, "print only names");
  if (sub == "ls" || sub == "inspect") flags.String("format", "", &format_text, kFormatHelp);
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, rest, &pos); rc >= 0) return rc;
  int format_rc = 0;
  std::optional<Format> format = ParseFormatFlag("pier volume " + sub, format_text, &format_rc);
  if (!format) return format_rc;
  auto stub = VolumeStub(g);
  if (!stub.ok()) return Fail(stub.status());
  if (sub == "create") {
    grpc::ClientContext ctx;
    rt::CreateVolumeRequest req;
    if (!pos.empty()) req.set_name(pos[0]);
    rt::CreateVolumeResponse resp;
    grpc::Status s = (*stub)->CreateVolume(&ctx, req, &resp);
    if (!s.ok()) return FailRpc(s);
    std::cout << resp.volume().name() << "\n";
    return 0;
  }
  if (sub == "ls") {
    grpc::ClientContext ctx;
    rt::ListVolumesResponse resp;
    grpc::Status s = (*stub)->ListVolumes(&ctx, rt::ListVolumesRequest(), &resp);
    if (!s.ok()) return FailRpc(s);
    if (!quiet && format->table()) std::printf("%-10s %s\n", "DRIVER", "VOLUME NAME");
    for (const rt::Volume& v : resp.volumes()) {
      if (quiet) {
        std::cout << v.name() << "\n";
      } else if (!format->table()) {
        if (!PrintRow(*format, VolumeRow(v, /*inspected=*/false))) return 1;
      } else {
        std::printf("%-10s %s\n", v.driver().c_str(), v.name().c_str());
      }
    }
    return 0;
  }
  if (sub == "inspect" || sub == "rm") {
    if (pos.empty()) return Fail(absl::InvalidArgumentError("a volume NAME is required"), 2);
    int rc = 0;
    nlohmann::ordered_json array = nlohmann::ordered_json::array();
    for (const std::string& name : pos) {
      grpc::ClientContext ctx;
      grpc::Status s;
      if (sub == "rm") {
        rt::RemoveVolumeRequest req;
        req.set_name(name);
        rt::RemoveVolumeResponse resp;
        s = (*stub)->RemoveVolume(&ctx, req, &resp);
        if (s.ok()) std::cout << name << "\n";
      } else {
        rt::InspectVolumeRequest req;
        req.set_name(name);
        rt::InspectVolumeResponse resp;
        s = (*stub)->InspectVolume(&ctx, req, &resp);
        if (s.ok()) {
          nlohmann::ordered_json row = VolumeRow(resp.volume(), /*inspected=*/true);
          if (format->table()) {
            array.push_back(std::move(row));
          } else if (!PrintRow(*format, row)) {
            rc = 1;
          }
        }
      }
      if (!s.ok()) rc = FailRpc(s);
    }
    // As docker: a JSON array of what was found, even when some were not.
    if (sub == "inspect" && format->table()) std::cout << array.dump(4) << "\n";
    return rc;
  }
  std::cerr << "pier volume: unknown command \"" << sub << "\"\n";
  return Usage(std::cerr, 2);
}

}  // namespace pier::cli
