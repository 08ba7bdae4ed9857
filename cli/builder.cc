// `pier builder`: the build cache of pier-builder, as `docker builder`.
//   pier builder prune [--all] [--keep-storage SIZE] [--filter until=DURATION]
//                      [--dry-run]
//   pier builder du [--verbose]    space used (cache, context store, content)
#include <grpcpp/grpcpp.h>

#include <cstring>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "cli/cli.h"
#include "lib/common/flags.h"
#include "lib/rpc/credentials.h"
#include "lib/rpc/status.h"
#include "pier/builder/v1/builder.grpc.pb.h"

namespace pier::cli {
namespace {

namespace v1 = ::pier::builder::v1;

absl::StatusOr<std::unique_ptr<v1::BuilderService::Stub>> Stub(const Globals& g) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = rpc::SharedChannel(g.builder, g.tls);
  if (!channel.ok()) return channel.status();
  return v1::BuilderService::NewStub(*channel);
}

int Help(std::ostream& out) {
  out << "Usage: pier builder COMMAND\n\n"
         "Manage pier-builder's build cache.\n\nCommands:\n"
         "  prune [--all] [--keep-storage SIZE] [--filter until=DURATION] [--dry-run]\n"
         "                       Remove build cache (and stored context files)\n"
         "  du [--verbose]       Show the space the builder uses\n";
  return 0;
}

int ParseOrExit(FlagSet& flags, const std::vector<std::string>& args,
                std::vector<std::string>* positional) {
  absl::StatusOr<std::vector<std::string>> rest = flags.Parse(args);
  if (!rest.ok()) {
    if (absl::IsCancelled(rest.status())) {
      std::cout << flags.Usage();
      return 0;
    }
    return Fail(rest.status(), 2);
  }
  *positional = std::move(*rest);
  return -1;
}

// "512", "10MB", "1.5GiB" -> bytes (decimal and binary units, as docker).
absl::StatusOr<int64_t> ParseSize(const std::string& text) {
  std::string t = absl::AsciiStrToLower(text);
  static const std::pair<const char*, double> kUnits[] = {{"kib", 1024.0},
                                                          {"mib", 1024.0 * 1024},
                                                          {"gib", 1024.0 * 1024 * 1024},
                                                          {"kb", 1e3},
                                                          {"mb", 1e6},
                                                          {"gb", 1e9},
                                                          {"k", 1024.0},
                                                          {"m", 1024.0 * 1024},
                                                          {"g", 1024.0 * 1024 * 1024},
                                                          {"b", 1.0}};
  double mult = 1;
  for (const auto& [suffix, m] : kUnits) {
    if (absl::EndsWith(t, suffix)) {
      t.resize(t.size() - strlen(suffix));
      mult = m;
      break;
    }
  }
  double v = 0;
  if (!absl::SimpleAtod(t, &v) || v < 0) {
    return absl::InvalidArgumentError("--keep-storage: bad size \"" + text + "\"");
  }
  return static_cast<int64_t>(v * mult);
}

std::string Human(int64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  return u == 0 ? absl::StrCat(bytes, "B") : absl::StrFormat("%.2f%s", v, units[u]);
}

int Prune(const Globals& g, const std::vector<std::string>& args) {
  bool all = false, dry_run = false, force = false;
  std::string keep_storage, filter;
  FlagSet flags("pier builder prune", "[flags]");
  flags.Bool("all", "a", &all, "remove every entry not in use, and the builder's images");
  flags.String("keep-storage", "", &keep_storage, "keep at most SIZE of cache (e.g. 1GB)");
  flags.String("filter", "", &filter, "until=DURATION: remove only what was unused this long");
  flags.Bool("dry-run", "n", &dry_run, "report what would be removed, remove nothing");
  flags.Bool("force", "f", &force, "do not prompt (pier never prompts)");
  std::vector<std::string> pos;
  if (int rc = ParseOrExit(flags, args, &pos); rc >= 0) return rc;
  v1::PruneCacheRequest req;
  req.set_all(all);
  req.set_dry_run(dry_run);
  if (!keep_storage.empty()) {
    absl::StatusOr<int64_t> n = ParseSize(keep_storage);
    if (!n.ok()) return Fail(n.status(), 2);
    req.set_keep_bytes(*n);
  }
  if (!filter.empty()) {
    absl::Duration d;
    if (!absl::StartsWith(filter, "until=") || !absl::ParseDuration(filter.substr(6), &d) ||
        d < absl::ZeroDuration()) {
      return Fail(absl::InvalidArgumentError("--filter: expected until=DURATION (e.g. until=24h), "
                                             "got \"" +
                                             filter + "\""),
                  2);
    }
    req.mutable_keep_duration()->set_seconds(absl::ToInt64Seconds(d));
  }
  auto stub = Stub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  v1::PruneCacheResponse resp;
  grpc::Status s = (*stub)->PruneCache(&ctx, req, &resp);
  if (!s.ok()) return Fail(rpc::FromGrpcStatus(s));
  std::cout << (dry_run ? "Would reclaim: " : "Total reclaimed: ") << Human(resp.bytes_freed())
            << " (" << resp.entries_deleted() << " cache entries)\n";
  return 0;
}

int Du(const Globals& g, const std::vector<std::string>& args) {
  bool verbose = false;
  FlagSet flags("pier builder du", "[flags]");
  flags.Bool("verbose", "v", &verbose, "list every cache entry");
  std::vector<std::string> pos;
  if (int rc = ParseOrExit(flags, args, &pos); rc >= 0) return rc;
  auto stub = Stub(g);
  if (!stub.ok()) return Fail(stub.status());
  if (verbose) {
    std::cout << "KEY\tSIZE\tLAST USED\tUSES\tIN USE\tDESCRIPTION\n";
    std::string token;
    do {
      grpc::ClientContext ctx;
      v1::ListCacheRequest req;
      req.set_page_size(1000);
      req.set_page_token(token);
      v1::ListCacheResponse resp;
      grpc::Status s = (*stub)->ListCache(&ctx, req, &resp);
      if (!s.ok()) return Fail(rpc::FromGrpcStatus(s));
      for (const v1::CacheEntry& e : resp.entries()) {
        std::cout << e.key().substr(0, 19) << "\t" << Human(e.size()) << "\t"
                  << absl::FormatTime("%Y-%m-%d %H:%M:%S",
                                      absl::FromUnixSeconds(e.last_used().seconds()),
                                      absl::LocalTimeZone())
                  << "\t" << e.usage_count() << "\t" << (e.in_use() ? "yes" : "no") << "\t"
                  << e.description() << "\n";
      }
      token = resp.next_page_token();
    } while (!token.empty());
  }
  grpc::ClientContext ctx;
  v1::DiskUsageResponse resp;
  grpc::Status s = (*stub)->DiskUsage(&ctx, v1::DiskUsageRequest(), &resp);
  if (!s.ok()) return Fail(rpc::FromGrpcStatus(s));
  std::cout << "TYPE\tTOTAL\tSIZE\n"
            << "Build cache\t" << resp.cache_entries() << "\t" << Human(resp.cache_bytes()) << "\n"
            << "Context store\t\t" << Human(resp.context_bytes()) << "\n"
            << "Other content\t\t" << Human(resp.content_bytes()) << "\n"
            << "Reclaimable\t\t" << Human(resp.reclaimable_bytes()) << "\n";
  return 0;
}

}  // namespace

int Builder(const Globals& g, const std::vector<std::string>& args) {
  if (args.empty()) {
    Help(std::cerr);
    return 2;
  }
  const std::string& sub = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (sub == "prune") return Prune(g, rest);
  if (sub == "du" || sub == "df") return Du(g, rest);
  if (sub == "--help" || sub == "-h" || sub == "help") return Help(std::cout);
  std::cerr << "pier builder: unknown command \"" << sub << "\"\n";
  return 2;
}

}  // namespace pier::cli
