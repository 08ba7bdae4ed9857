// `pier status`: asks each service for its gRPC health.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <iostream>

#include "cli/cli.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "lib/common/flags.h"
#include "lib/rpc/status.h"

namespace pier::cli {

int Status(const Globals& globals, const std::vector<std::string>& args) {
  int64_t timeout_s = 5;
  FlagSet flags("pier status", "[flags]");
  flags.Int("timeout", "", &timeout_s, "seconds to wait for each service (default 5)");
  absl::StatusOr<std::vector<std::string>> rest = flags.Parse(args);
  if (!rest.ok()) {
    if (absl::IsCancelled(rest.status())) {
      std::cout << flags.Usage() << "\nExits 0 when every service is SERVING, 1 otherwise.\n";
      return 0;
    }
    return Fail(rest.status(), 2);
  }
  struct Target {
    const char* name;
    const std::string& address;
  };
  const Target targets[] = {{"pier-registry", globals.registry},
                            {"pier-builder", globals.builder},
                            {"pier-runtime", globals.runtime}};
  int failures = 0;
  for (const Target& t : targets) {
    std::string state;
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        rpc::SharedChannel(t.address, globals.tls);
    if (!channel.ok()) {
      state = std::string(channel.status().message());
    } else {
      auto stub = grpc::health::v1::Health::NewStub(*channel);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
      grpc::health::v1::HealthCheckResponse resp;
      grpc::Status s = stub->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp);
      state = s.ok() ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status())
                     : "UNREACHABLE (" + s.error_message() + ")";
      if (s.ok() && resp.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
        std::cout << t.name << "\t" << t.address << "\tSERVING\n";
        continue;
      }
    }
    ++failures;
    std::cout << t.name << "\t" << t.address << "\t" << state << "\n";
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace pier::cli
