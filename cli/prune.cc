// `pier image prune`, `pier container prune` and `pier volume prune`
// (docker's): remove what nothing uses, after a confirmation unless
// --force, and print what went and the space freed. `pier image` and
// `pier container` also take ls and rm as the top-level verbs do.
#include <grpcpp/grpcpp.h>

#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/runtime_client.h"
#include "lib/common/status.h"
#include "lib/rpc/credentials.h"

namespace pier::cli {
namespace {

// Asks on stderr and reads the answer from stdin: true for "y" or "yes".
bool Confirm(const std::string& warning) {
  std::cerr << "WARNING! " << warning << "\nAre you sure you want to continue? [y/N] "
            << std::flush;
  std::string answer;
  if (!std::getline(std::cin, answer)) return false;
  answer = absl::AsciiStrToLower(absl::StripAsciiWhitespace(answer));
  return answer == "y" || answer == "yes";
}

void SetTimestamp(absl::Time t, google::protobuf::Timestamp* ts) {
  const int64_t nanos = absl::ToUnixNanos(t);
  ts->set_seconds(nanos / 1000000000);
  ts->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

// until=<RFC 3339 time | Unix seconds | duration before now>.
absl::StatusOr<absl::Time> ParseUntil(const std::string& text) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return t;
  int64_t secs = 0;
  if (absl::SimpleAtoi(text, &secs)) return absl::FromUnixSeconds(secs);
  absl::Duration d;
  if (absl::ParseDuration(text, &d) && d >= absl::ZeroDuration()) return absl::Now() - d;
  return absl::InvalidArgumentError(absl::StrCat(
      "--filter until=", text, ": want an RFC 3339 time, Unix seconds or a duration like 24h"));
}

// Docker's prune filters: until=..., label=key[=value].
absl::Status ParsePruneFilters(const std::vector<std::string>& filters, bool with_until,
                               std::vector<std::string>* labels,
                               google::protobuf::Timestamp* before, bool* has_before) {
  for (const std::string& f : filters) {
    const size_t eq = f.find('=');
    const std::string key = f.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : f.substr(eq + 1);
    if (key == "label" && !value.empty() && value[0] != '=') {
      labels->push_back(value);
    } else if (key == "until" && with_until && !value.empty()) {
      ASSIGN_OR_RETURN(absl::Time t, ParseUntil(value));
      SetTimestamp(t, before);
      *has_before = true;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--filter \"", f, "\": want ",
                                                     with_until ? "until=<time> or " : "",
                                                     "label=<key>[=<value>]"));
    }
  }
  return absl::OkStatus();
}

int ImagePrune(const Globals& g, const std::vector<std::string>& args) {
  bool all = false, force = false;
  std::vector<std::string> filters;
  FlagSet flags("pier image prune", "[flags]");
  flags.Bool("all", "a", &all, "remove every image no container uses, not only dangling ones");
  flags.Bool("force", "f", &force, "do not ask for confirmation");
  flags.StringList("filter", "", &filters, "until=<time> or label=<key>[=<value>]");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (!pos.empty())
    return Fail(absl::InvalidArgumentError("pier image prune takes no arguments"), 2);
  rt::PruneImagesRequest req;
  req.set_all(all);
  std::vector<std::string> labels;
  bool has_before = false;
  google::protobuf::Timestamp before;
  if (absl::Status s = ParsePruneFilters(filters, true, &labels, &before, &has_before); !s.ok()) {
    return Fail(s, 2);
  }
  for (const std::string& l : labels) req.mutable_filters()->add_labels(l);
  if (has_before) *req.mutable_filters()->mutable_before() = before;
  if (!force && !Confirm(all ? "This will remove all images without at least one container "
                               "associated to them."
                             : "This will remove all dangling images.")) {
    return 0;
  }
  auto stub = ImageStub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  rt::PruneImagesResponse resp;
  grpc::Status s = (*stub)->PruneImages(&ctx, req, &resp);
  if (!s.ok()) return FailRpc(s);
  if (resp.untagged_size() + resp.deleted_size() > 0) {
    std::cout << "Deleted Images:\n";
    for (const std::string& u : resp.untagged()) std::cout << "untagged: " << u << "\n";
    for (const std::string& d : resp.deleted()) std::cout << "deleted: " << d << "\n";
    std::cout << "\n";
  }
  std::cout << "Total reclaimed space: " << HumanSize(resp.space_reclaimed()) << "\n";
  return 0;
}

int ContainerPrune(const Globals& g, const std::vector<std::string>& args) {
  bool force = false;
  FlagSet flags("pier container prune", "[flags]");
  flags.Bool("force", "f", &force, "do not ask for confirmation");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (!pos.empty()) {
    return Fail(absl::InvalidArgumentError("pier container prune takes no arguments"), 2);
  }
  if (!force && !Confirm("This will remove all stopped containers.")) return 0;
  auto stub = ContainerStub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  rt::PruneContainersResponse resp;
  grpc::Status s = (*stub)->PruneContainers(&ctx, rt::PruneContainersRequest(), &resp);
  if (!s.ok()) return FailRpc(s);
  if (resp.deleted_size() > 0) {
    std::cout << "Deleted Containers:\n";
    for (const std::string& id : resp.deleted()) std::cout << id << "\n";
    std::cout << "\n";
  }
  std::cout << "Total reclaimed space: " << HumanSize(resp.space_reclaimed()) << "\n";
  return 0;
}

// `pier image` / `pier container`: prune, or ls/rm through the top-level
// verbs.
int Group(const Globals& g, const std::vector<std::string>& args, const char* noun,
          const char* usage, VerbFn prune, VerbFn ls, VerbFn rm) {
  auto print_usage = [&](std::ostream& out, int rc) {
    out << "Usage: pier " << noun << " COMMAND\n\nCommands:\n" << usage;
    return rc;
  };
  if (args.empty()) return print_usage(std::cerr, 2);
  const std::string& sub = args[0];
  if (sub == "--help" || sub == "-h" || sub == "help") return print_usage(std::cout, 0);
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (sub == "prune") return prune(g, rest);
  if (sub == "ls" || sub == "list") return ls(g, rest);
  if (sub == "rm") return rm(g, rest);
  std::cerr << "pier " << noun << ": unknown command \"" << sub << "\"\n";
  return print_usage(std::cerr, 2);
}

}  // namespace

int Image(const Globals& g, const std::vector<std::string>& args) {
  return Group(g, args, "image",
               "  ls       List images (as pier images)\n"
               "  prune    Remove dangling images, or with -a every image no container uses\n"
               "  rm       Remove images (as pier rmi)\n",
               ImagePrune, Images, Rmi);
}

int Container(const Globals& g, const std::vector<std::string>& args) {
  return Group(g, args, "container",
               "  ls       List containers (as pier ps)\n"
               "  prune    Remove every stopped container\n"
               "  rm       Remove containers (as pier rm)\n",
               ContainerPrune, Ps, Rm);
}

int VolumePrune(const Globals& g, const std::vector<std::string>& args) {
  bool all = false, force = false;
  std::vector<std::string> filters;
  FlagSet flags("pier volume prune", "[flags]");
  flags.Bool("all", "a", &all, "also remove unused named volumes, not only anonymous ones");
  flags.Bool("force", "f", &force, "do not ask for confirmation");
  flags.StringList("filter", "", &filters, "label=<key>[=<value>]");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (!pos.empty()) {
    return Fail(absl::InvalidArgumentError("pier volume prune takes no arguments"), 2);
  }
  rt::PruneVolumesRequest req;
  req.set_all(all);
  std::vector<std::string> labels;
  bool unused = false;
  google::protobuf::Timestamp unused_ts;
  if (absl::Status s = ParsePruneFilters(filters, false, &labels, &unused_ts, &unused); !s.ok()) {
    return Fail(s, 2);
  }
  for (const std::string& l : labels) req.mutable_filters()->add_labels(l);
  if (!force && !Confirm(all ? "This will remove all local volumes not used by at least one "
                               "container."
                             : "This will remove anonymous local volumes not used by at least "
                               "one container.")) {
    return 0;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> ch = rpc::MakeChannel(g.runtime, g.tls);
  if (!ch.ok()) return Fail(ch.status());
  auto stub = rt::VolumeService::NewStub(*ch);
  grpc::ClientContext ctx;
  rt::PruneVolumesResponse resp;
  grpc::Status s = stub->PruneVolumes(&ctx, req, &resp);
  if (!s.ok()) return FailRpc(s);
  if (resp.deleted_size() > 0) {
    std::cout << "Deleted Volumes:\n";
    for (const std::string& name : resp.deleted()) std::cout << name << "\n";
    std::cout << "\n";
  }
  std::cout << "Total reclaimed space: " << HumanSize(resp.space_reclaimed()) << "\n";
  return 0;
}

}  // namespace pier::cli
