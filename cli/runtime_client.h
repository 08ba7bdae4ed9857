// Shared pieces of the `pier` verbs that talk to pier-runtime: stubs,
// registry credentials for a reference (from `pier login`), flag parsing
// with docker's help behaviour, and small formatting helpers.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/cli.h"
#include "lib/common/flags.h"
#include "pier/runtime/v1/runtime.grpc.pb.h"

namespace pier::cli {

namespace rt = ::pier::runtime::v1;

absl::StatusOr<std::unique_ptr<rt::ImageService::Stub>> ImageStub(const Globals& g);
absl::StatusOr<std::unique_ptr<rt::ContainerService::Stub>> ContainerStub(const Globals& g);
absl::StatusOr<std::unique_ptr<rt::SystemService::Stub>> SystemStub(const Globals& g);

// Credentials stored by `pier login` for the registry `reference` names.
void SetAuth(const std::string& reference, common::v1::RegistryAuth* auth);

// Parses `args`; on --help prints usage (+ `more`) and returns 0, on a bad
// flag prints the error and returns 2; otherwise returns -1 and fills
// `positional`.
int ParseVerb(FlagSet& flags, const std::vector<std::string>& args,
              std::vector<std::string>* positional, bool stop_at_first_positional = false,
              const char* more = "");

// Pulls `reference` into pier-runtime with the credentials of `pier login`,
// progress on stderr (none when `quiet`), for `platform` ("os/arch[/variant]",
// as --platform; empty: the node's). The image id, or the call's error.
absl::StatusOr<std::string> PullImage(const Globals& g, const std::string& reference, bool quiet,
                                      const std::string& platform = "");

// --platform "os[/arch[/variant]]" -> Platform. InvalidArgument naming it.
absl::Status ParsePlatform(const std::string& text, common::v1::Platform* platform);

// Prints a gRPC failure as "pier: <message>" and returns 1.
int FailRpc(const grpc::Status& status);

// "12 seconds ago", "3 minutes ago"...
std::string Ago(const google::protobuf::Timestamp& t);
// "1.2MB" as docker prints sizes.
std::string HumanSize(int64_t bytes);
// Prints one progress line ("<id>: <action> <current>/<total>").
void PrintProgress(const common::v1::Progress& p);

}  // namespace pier::cli
