#include "cli/runtime_client.h"

#include <grpcpp/grpcpp.h>

#include <iostream>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "lib/distribution/credentials.h"
#include "lib/oci/reference.h"
#include "lib/rpc/credentials.h"
#include "lib/rpc/status.h"

namespace pier::cli {

absl::StatusOr<std::unique_ptr<rt::ImageService::Stub>> ImageStub(const Globals& g) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> ch = rpc::SharedChannel(g.runtime, g.tls);
  if (!ch.ok()) return ch.status();
  return rt::ImageService::NewStub(*ch);
}

absl::StatusOr<std::unique_ptr<rt::ContainerService::Stub>> ContainerStub(const Globals& g) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> ch = rpc::SharedChannel(g.runtime, g.tls);
  if (!ch.ok()) return ch.status();
  return rt::ContainerService::NewStub(*ch);
}

absl::StatusOr<std::unique_ptr<rt::SystemService::Stub>> SystemStub(const Globals& g) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> ch = rpc::SharedChannel(g.runtime, g.tls);
  if (!ch.ok()) return ch.status();
  return rt::SystemService::NewStub(*ch);
}

void SetAuth(const std::string& reference, common::v1::RegistryAuth* auth) {
  absl::StatusOr<oci::Reference> ref = oci::Reference::Parse(reference);
  if (!ref.ok()) return;
  absl::StatusOr<std::optional<distribution::Credentials>> creds =
      distribution::LoadCredentials(distribution::DefaultCredentialsPath(), ref->registry);
  if (!creds.ok() || !creds->has_value()) return;
  auth->set_server_address(ref->registry);
  auth->set_username((*creds)->username);
  auth->set_password((*creds)->password);
}

int ParseVerb(FlagSet& flags, const std::vector<std::string>& args,
              std::vector<std::string>* positional, bool stop_at_first_positional,
              const char* more) {
  absl::StatusOr<std::vector<std::string>> rest = flags.Parse(args, stop_at_first_positional);
  if (!rest.ok()) {
    if (absl::IsCancelled(rest.status())) {
      std::cout << flags.Usage() << more;
      return 0;
    }
    std::cerr << "pier: " << rest.status().message() << "\n";
    return 2;
  }
  *positional = std::move(*rest);
  return -1;
}

int FailRpc(const grpc::Status& status) {
  std::cerr << "pier: " << status.error_message() << "\n";
  return 1;
}

std::string Ago(const google::protobuf::Timestamp& t) {
  int64_t s = absl::ToUnixSeconds(absl::Now()) - t.seconds();
  if (t.seconds() == 0) return "";
  if (s < 60) return absl::StrFormat("%d seconds ago", s);
  if (s < 3600) return absl::StrFormat("%d minutes ago", s / 60);
  if (s < 86400) return absl::StrFormat("%d hours ago", s / 3600);
  return absl::StrFormat("%d days ago", s / 86400);
}

std::string HumanSize(int64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  return u == 0 ? absl::StrFormat("%dB", bytes) : absl::StrFormat("%.3g%s", v, units[u]);
}

void PrintProgress(const common::v1::Progress& p) {
  std::string action = common::v1::Progress::Action_Name(p.action());
  if (action.rfind("ACTION_", 0) == 0) action = action.substr(7);
  std::cerr << p.id() << ": " << action;
  if (p.total() > 0) std::cerr << " " << HumanSize(p.current()) << "/" << HumanSize(p.total());
  if (!p.message().empty()) std::cerr << " " << p.message();
  std::cerr << "\n";
}

}  // namespace pier::cli
