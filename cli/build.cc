// `pier build [-t TAG]... [-f Dockerfile] [--build-arg K=V]... [--target T]
// [--no-cache] CONTEXT`: sends the context (after .dockerignore) to
// pier-builder and prints the build's events as plain lines.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/runtime_client.h"
#include "lib/common/fs.h"
#include "lib/distribution/credentials.h"
#include "lib/oci/digest.h"
#include "lib/rpc/credentials.h"
#include "pier/builder/v1/builder.grpc.pb.h"
#include "services/builder/dockerfile/dockerignore.h"

namespace pier::cli {

namespace bpb = ::pier::builder::v1;

int Build(const Globals& g, const std::vector<std::string>& args) {
  std::vector<std::string> tags, build_args;
  std::string file, target;
  bool no_cache = false, pull = false;
  FlagSet flags("pier build", "[flags] CONTEXT");
  flags.StringList("tag", "t", &tags, "name and optionally a tag (repeatable)");
  flags.String("file", "f", &file, "Dockerfile path inside the context (default Dockerfile)");
  flags.StringList("build-arg", "", &build_args, "build-time variable NAME=VALUE (repeatable)");
  flags.String("target", "", &target, "stage to build");
  flags.Bool("no-cache", "", &no_cache, "do not use the layer cache");
  flags.Bool("pull", "", &pull, "always pull base images");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.size() != 1) return Fail(absl::InvalidArgumentError("pier build needs one CONTEXT"), 2);
  const std::string ctx_dir = pos[0];
  bpb::BuildRequest spec_req;
  bpb::BuildSpec* spec = spec_req.mutable_spec();
  std::string dockerfile_name = file.empty() ? "Dockerfile" : file;
  if (file == "-") {
    std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    spec->set_dockerfile(text);
    dockerfile_name = "Dockerfile";
  } else {
    spec->set_dockerfile_path(dockerfile_name);
  }
  for (const std::string& a : build_args) {
    size_t eq = a.find('=');
    if (eq == std::string::npos) {
      const char* v = std::getenv(a.c_str());
      if (v != nullptr) (*spec->mutable_build_args())[a] = v;
    } else {
      (*spec->mutable_build_args())[a.substr(0, eq)] = a.substr(eq + 1);
    }
  }
  spec->set_target(target);
  for (const std::string& t : tags) spec->add_tags(t);
  spec->set_no_cache(no_cache);
  spec->set_pull(pull);
  // Like docker's classic builder, send every stored login: the builder uses
  // the one whose host a FROM or a pushed tag names.
  absl::StatusOr<std::map<std::string, distribution::Credentials>> logins =
      distribution::LoadAllCredentials(distribution::DefaultCredentialsPath());
  if (!logins.ok()) return Fail(logins.status());
  for (const auto& [host, c] : *logins) {
    common::v1::RegistryAuth* a = spec->add_registry_auth();
    a->set_server_address(host);
    a->set_username(c.username);
    a->set_password(c.password);
  }
  if (const char* sde = std::getenv("SOURCE_DATE_EPOCH"); sde != nullptr) {
    int64_t v = 0;
    if (absl::SimpleAtoi(sde, &v)) spec->set_source_date_epoch(v);
  }
  absl::StatusOr<std::vector<builder::dockerfile::ContextEntry>> entries =
      builder::dockerfile::ListContext(ctx_dir, dockerfile_name);
  if (!entries.ok()) return Fail(entries.status());
  bpb::BuildRequest man_req;
  bpb::ContextManifest* man = man_req.mutable_context_manifest();
  for (const auto& e : *entries) {
    struct stat st;
    std::string p = ctx_dir + "/" + e.path;
    if (lstat(p.c_str(), &st) != 0) continue;
    bpb::FileEntry* fe = man->add_entries();
    fe->set_path(e.path);
    fe->set_mode(st.st_mode & 07777);
    fe->mutable_mtime()->set_seconds(st.st_mtim.tv_sec);
    fe->mutable_mtime()->set_nanos(static_cast<int32_t>(st.st_mtim.tv_nsec));
    fe->set_uid(st.st_uid);
    fe->set_gid(st.st_gid);
    switch (e.type) {
      case builder::dockerfile::ContextEntry::Type::kFile: {
        fe->set_type(bpb::FileEntry::TYPE_REGULAR);
        fe->set_size(st.st_size);
        // The digest lets the builder skip content it already has.
        UniqueFd fd(open(p.c_str(), O_RDONLY | O_CLOEXEC));
        if (fd.valid()) {
          oci::Sha256 h;
          char buf[1 << 16];
          ssize_t n;
          while ((n = read(fd.get(), buf, sizeof(buf))) > 0) h.Update(buf, static_cast<size_t>(n));
          if (n == 0) fe->set_digest(h.Finish().str());
        }
        break;
      }
      case builder::dockerfile::ContextEntry::Type::kDirectory:
        fe->set_type(bpb::FileEntry::TYPE_DIRECTORY);
        break;
      case builder::dockerfile::ContextEntry::Type::kSymlink:
        fe->set_type(bpb::FileEntry::TYPE_SYMLINK);
        fe->set_link_target(e.target);
        break;
      default:
        fe->set_type(bpb::FileEntry::TYPE_FIFO);
        break;
    }
  }
  man->set_complete(true);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> ch = rpc::MakeChannel(g.builder, g.tls);
  if (!ch.ok()) return Fail(ch.status());
  auto stub = bpb::BuilderService::NewStub(*ch);
  grpc::ClientContext cctx;
  auto stream = stub->Build(&cctx);
  stream->Write(spec_req);
  stream->Write(man_req);
  bpb::BuildResponse resp;
  std::string error;
  int rc = 0;
  while (stream->Read(&resp)) {
    if (resp.has_need_files()) {
      std::cout << "context: sending " << resp.need_files().paths_size() << " of "
                << man->entries_size() << " entries (" << resp.need_files().total_bytes()
                << " bytes)" << std::endl;
      for (const std::string& path : resp.need_files().paths()) {
        UniqueFd fd(open((ctx_dir + "/" + path).c_str(), O_RDONLY | O_CLOEXEC));
        int64_t off = 0;
        char buf[1 << 20];
        for (;;) {
          ssize_t n = fd.get() < 0 ? 0 : read(fd.get(), buf, sizeof(buf));
          if (n < 0 && errno == EINTR) continue;
          bpb::BuildRequest r;
          auto* c = r.mutable_file_chunk();
          c->set_path(path);
          c->set_offset(off);
          if (n > 0) c->set_data(buf, static_cast<size_t>(n));
          c->set_eof(n <= 0);
          stream->Write(r);
          if (n <= 0) break;
          off += n;
        }
      }
      bpb::BuildRequest done;
      done.mutable_context_done();
      stream->Write(done);
      stream->WritesDone();
    } else if (resp.has_step_started()) {
      const auto& s = resp.step_started();
      std::cout << "#" << s.step() << " [" << s.step() << "/" << s.total() << "] "
                << s.instruction() << std::endl;
    } else if (resp.has_step_cached()) {
      const auto& s = resp.step_cached();
      std::cout << "#" << s.step() << " [" << s.step() << "/" << s.total() << "] "
                << s.instruction() << "\n#" << s.step() << " CACHED" << std::endl;
    } else if (resp.has_step_log()) {
      std::cout << "#" << resp.step_log().step() << " " << resp.step_log().data();
      if (!resp.step_log().data().empty() && resp.step_log().data().back() != '\n')
        std::cout << "\n";
      std::cout.flush();
    } else if (resp.has_step_completed()) {
      const auto& s = resp.step_completed();
      std::cout << "#" << s.step() << " DONE "
                << absl::StrCat(s.duration().seconds() + s.duration().nanos() / 1e9) << "s"
                << (s.layer_digest().empty() ? "" : " " + s.layer_digest()) << std::endl;
    } else if (resp.has_warning()) {
      std::cerr << "WARNING: " << resp.warning().message() << "\n";
    } else if (resp.has_result()) {
      const auto& r = resp.result();
      std::cout << "writing image " << r.image_digest() << "\nmanifest " << r.manifest_digest()
                << "\n";
      for (const std::string& p : r.pushed()) std::cout << "pushed " << p << "\n";
    } else if (resp.has_error()) {
      error = resp.error().message();
      rc = 1;
    }
  }
  grpc::Status s = stream->Finish();
  if (!s.ok()) {
    std::cerr << "pier: build failed: " << (error.empty() ? s.error_message() : error) << "\n";
    return 1;
  }
  return rc;
}

}  // namespace pier::cli
