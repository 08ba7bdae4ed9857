// `pier volume create|ls|inspect|rm`: named volumes on the node.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <iostream>

#include "cli/runtime_client.h"
#include "lib/rpc/credentials.h"

namespace pier::cli {
namespace {

absl::StatusOr<std::unique_ptr<rt::VolumeService::Stub>> VolumeStub(const Globals& g) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> ch = rpc::MakeChannel(g.runtime, g.tls);
  if (!ch.ok()) return ch.status();
  return rt::VolumeService::NewStub(*ch);
}

int Usage(std::ostream& out, int rc) {
  out << "Usage: pier volume COMMAND\n\nCommands:\n"
         "  create [NAME]      Create a volume (a random name when none is given)\n"
         "  ls [-q]            List volumes\n"
         "  inspect NAME...    Show volumes as JSON\n"
         "  rm NAME...         Remove volumes no container uses\n";
  return rc;
}

}  // namespace

int Volume(const Globals& g, const std::vector<std::string>& args) {
  if (args.empty()) return Usage(std::cerr, 2);
  const std::string& sub = args[0];
  if (sub == "--help" || sub == "-h" || sub == "help") return Usage(std::cout, 0);
  std::vector<std::string> rest(args.begin() + 1, args.end());
  bool quiet = false;
  FlagSet flags("pier volume " + sub, "[flags] [NAME...]");
  if (sub == "ls") flags.Bool("quiet", "q", &quiet, "print only names");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, rest, &pos); rc >= 0) return rc;
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
    if (!quiet) std::printf("%-10s %s\n", "DRIVER", "VOLUME NAME");
    for (const rt::Volume& v : resp.volumes()) {
      if (quiet) {
        std::cout << v.name() << "\n";
      } else {
        std::printf("%-10s %s\n", v.driver().c_str(), v.name().c_str());
      }
    }
    return 0;
  }
  if (sub == "inspect" || sub == "rm") {
    if (pos.empty()) return Fail(absl::InvalidArgumentError("a volume NAME is required"), 2);
    int rc = 0;
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
          std::printf("{\"Name\":\"%s\",\"Driver\":\"%s\",\"Mountpoint\":\"%s\",\"InUse\":%s}\n",
                      resp.volume().name().c_str(), resp.volume().driver().c_str(),
                      resp.volume().mountpoint().c_str(),
                      resp.volume().ref_count() > 0 ? "true" : "false");
        }
      }
      if (!s.ok()) rc = FailRpc(s);
    }
    return rc;
  }
  std::cerr << "pier volume: unknown command \"" << sub << "\"\n";
  return Usage(std::cerr, 2);
}

}  // namespace pier::cli
