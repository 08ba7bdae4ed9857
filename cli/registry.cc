// `pier registry`: administration of pier-registry over gRPC.
//   pier registry ls [--prefix P]       repositories (the catalog)
//   pier registry tags REPO             tags of a repository with digests
// (both take --format json or a template)
//   pier registry gc [--dry-run] [--delete-untagged] [--min-age SECONDS]
#include <grpcpp/grpcpp.h>

#include <iostream>

#include "absl/strings/str_cat.h"
#include "cli/cli.h"
#include "cli/format.h"
#include "lib/common/flags.h"
#include "lib/rpc/status.h"
#include "pier/registry/v1/registry.grpc.pb.h"

namespace pier::cli {
namespace {

namespace v1 = ::pier::registry::v1;

absl::StatusOr<std::unique_ptr<v1::RegistryService::Stub>> Stub(const Globals& g) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = rpc::SharedChannel(g.registry, g.tls);
  if (!channel.ok()) return channel.status();
  return v1::RegistryService::NewStub(*channel);
}

int Help(std::ostream& out) {
  out << "Usage: pier registry COMMAND\n\n"
         "Administer pier-registry.\n\nCommands:\n"
         "  ls [--prefix P]      List repositories (--format json or a template)\n"
         "  tags REPOSITORY      List a repository's tags and their digests (--format too)\n"
         "  gc [--dry-run] [--delete-untagged] [--min-age SECONDS]\n"
         "                       Delete unreferenced blobs and abandoned uploads\n";
  return 0;
}

// Parses flags for a subcommand; returns -1 to go on, else an exit code.
int ParseOrExit(FlagSet& flags, const std::vector<std::string>& args,
                std::vector<std::string>* positional, const char* extra_help = "") {
  absl::StatusOr<std::vector<std::string>> rest = flags.Parse(args);
  if (!rest.ok()) {
    if (absl::IsCancelled(rest.status())) {
      std::cout << flags.Usage() << extra_help;
      return 0;
    }
    return Fail(rest.status(), 2);
  }
  *positional = std::move(*rest);
  return -1;
}

int Ls(const Globals& g, const std::vector<std::string>& args) {
  std::string prefix, format_text;
  FlagSet flags("pier registry ls", "[--prefix P] [--format F]");
  flags.String("prefix", "", &prefix, "only repositories starting with P");
  flags.String("format", "", &format_text, kFormatHelp);
  std::vector<std::string> pos;
  if (int rc = ParseOrExit(flags, args, &pos); rc >= 0) return rc;
  int rc = 0;
  std::optional<Format> format = ParseFormatFlag("pier registry ls", format_text, &rc);
  if (!format) return rc;
  auto stub = Stub(g);
  if (!stub.ok()) return Fail(stub.status());
  std::string token;
  do {
    grpc::ClientContext ctx;
    v1::ListRepositoriesRequest req;
    req.set_page_size(1000);
    req.set_page_token(token);
    req.set_prefix(prefix);
    v1::ListRepositoriesResponse resp;
    grpc::Status s = (*stub)->ListRepositories(&ctx, req, &resp);
    if (!s.ok()) return Fail(rpc::FromGrpcStatus(s));
    for (const std::string& r : resp.repositories()) {
      if (format->table()) {
        std::cout << r << "\n";
      } else if (!PrintRow(*format, {{"Repository", r}})) {
        return 1;
      }
    }
    token = resp.next_page_token();
  } while (!token.empty());
  return 0;
}

int Tags(const Globals& g, const std::vector<std::string>& args) {
  std::string format_text;
  FlagSet flags("pier registry tags", "[--format F] REPOSITORY");
  flags.String("format", "", &format_text, kFormatHelp);
  std::vector<std::string> pos;
  if (int rc = ParseOrExit(flags, args, &pos); rc >= 0) return rc;
  int rc = 0;
  std::optional<Format> format = ParseFormatFlag("pier registry tags", format_text, &rc);
  if (!format) return rc;
  if (pos.size() != 1) {
    std::cerr << "pier registry tags: needs exactly one REPOSITORY\n";
    return 2;
  }
  auto stub = Stub(g);
  if (!stub.ok()) return Fail(stub.status());
  std::string token;
  if (format->table()) std::cout << "TAG\tDIGEST\n";
  do {
    grpc::ClientContext ctx;
    v1::ListTagsRequest req;
    req.set_repository(pos[0]);
    req.set_page_size(1000);
    req.set_page_token(token);
    v1::ListTagsResponse resp;
    grpc::Status s = (*stub)->ListTags(&ctx, req, &resp);
    if (!s.ok()) return Fail(rpc::FromGrpcStatus(s));
    for (const v1::Tag& t : resp.tags()) {
      if (format->table()) {
        std::cout << t.name() << "\t" << t.digest() << "\n";
        continue;
      }
      nlohmann::ordered_json row = {{"Repository", pos[0]},
                                    {"Tag", t.name()},
                                    {"Digest", t.digest()},
                                    {"MediaType", t.media_type()},
                                    {"UpdatedAt", TimeString(t.updated_at())}};
      if (!PrintRow(*format, row)) return 1;
    }
    token = resp.next_page_token();
  } while (!token.empty());
  return 0;
}

int Gc(const Globals& g, const std::vector<std::string>& args) {
  bool dry_run = false, untagged = false;
  int64_t min_age = -1;
  FlagSet flags("pier registry gc", "[flags]");
  flags.Bool("dry-run", "n", &dry_run, "report what would be deleted, delete nothing");
  flags.Bool("delete-untagged", "", &untagged, "also delete manifests no tag reaches");
  flags.Int("min-age", "", &min_age, "keep unreferenced blobs younger than SECONDS (default 3600)");
  std::vector<std::string> pos;
  if (int rc = ParseOrExit(flags, args, &pos); rc >= 0) return rc;
  auto stub = Stub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  v1::GarbageCollectRequest req;
  req.set_dry_run(dry_run);
  req.set_delete_untagged(untagged);
  if (min_age >= 0) req.mutable_min_blob_age()->set_seconds(min_age);
  v1::GarbageCollectResponse resp;
  grpc::Status s = (*stub)->GarbageCollect(&ctx, req, &resp);
  if (!s.ok()) return Fail(rpc::FromGrpcStatus(s));
  std::cout << (dry_run ? "would delete: " : "deleted: ") << resp.blobs_deleted() << " blobs ("
            << resp.bytes_freed() << " bytes), " << resp.manifests_deleted() << " manifests, "
            << resp.uploads_deleted() << " uploads\n";
  return 0;
}

}  // namespace

int Registry(const Globals& g, const std::vector<std::string>& args) {
  if (args.empty()) {
    Help(std::cerr);
    return 2;
  }
  const std::string& sub = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (sub == "ls") return Ls(g, rest);
  if (sub == "tags") return Tags(g, rest);
  if (sub == "gc") return Gc(g, rest);
  if (sub == "--help" || sub == "-h" || sub == "help") return Help(std::cout);
  std::cerr << "pier registry: unknown command \"" << sub << "\"\n";
  Help(std::cerr);
  return 2;
}

}  // namespace pier::cli
