// `pier build [-t TAG]... [-f Dockerfile] [--build-arg K=V]... [--target T]
// [--no-cache] [-o type=...]... CONTEXT`: sends the context (after
// .dockerignore) to pier-builder and shows the build's events
// (build_progress.h: a live display on a terminal, plain lines otherwise,
// --progress=auto|tty|plain). Outputs as `docker buildx build -o`: type=registry (the default
// when no -o is given: push every tag), type=image[,push=true],
// type=oci|docker,dest=FILE (dest=- for standard output; the archive is
// streamed back by the builder and written here), type=local,dest=DIR (the
// image's root filesystem, streamed back as a tar and unpacked into DIR
// here by pier-unpack, lib/archive's safe extraction; `-o DIR` is short for it),
// type=tar,dest=FILE|- (that tar as it is). Image outputs take
// compression=gzip|zstd|uncompressed, compression-level=N and
// force-compression=true (type=docker refuses zstd).
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cli/build_progress.h"
#include "cli/runtime_client.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "lib/distribution/credentials.h"
#include "lib/oci/digest.h"
#include "lib/rpc/credentials.h"
#include "pier/builder/v1/builder.grpc.pb.h"
#include "services/builder/dockerfile/dockerignore.h"

namespace pier::cli {

namespace bpb = ::pier::builder::v1;

namespace {

// One -o flag on the client side: the proto output plus where a streamed
// archive goes ("" when the builder does not stream one).
struct OutputFlag {
  bpb::Output output;
  std::string file;       // "-" for standard output
  std::string local_dir;  // type=local: the streamed tar is unpacked here
};

// Reads compression=, compression-level= and force-compression= of an
// image output from `kv` (removing them). InvalidArgument names the flag.
absl::Status ParseCompression(const std::string& text, std::map<std::string, std::string>* kv,
                              bpb::Output* out) {
  if (auto it = kv->find("compression"); it != kv->end()) {
    if (it->second == "gzip") {
      out->set_compression(bpb::Output::COMPRESSION_GZIP);
    } else if (it->second == "zstd") {
      out->set_compression(bpb::Output::COMPRESSION_ZSTD);
    } else if (it->second == "uncompressed") {
      out->set_compression(bpb::Output::COMPRESSION_UNCOMPRESSED);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "-o ", text, ": unknown compression \"", it->second, "\" (gzip, zstd or uncompressed)"));
    }
    kv->erase(it);
  }
  if (auto it = kv->find("compression-level"); it != kv->end()) {
    int level = 0;
    if (!absl::SimpleAtoi(it->second, &level) || level < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("-o ", text, ": compression-level must be a number"));
    }
    out->set_compression_level(level);
    kv->erase(it);
  }
  if (auto it = kv->find("force-compression"); it != kv->end()) {
    if (it->second != "true" && it->second != "false") {
      return absl::InvalidArgumentError(
          absl::StrCat("-o ", text, ": force-compression must be true or false"));
    }
    out->set_force_compression(it->second == "true");
    kv->erase(it);
  }
  return absl::OkStatus();
}

// Parses "type=oci,dest=out.tar" (docker's -o syntax). InvalidArgument names
// the flag and the bad part.
absl::StatusOr<OutputFlag> ParseOutput(const std::string& text) {
  OutputFlag f;
  if (!text.empty() && !absl::StrContains(text, "=")) {  // -o DIR, -o -
    f.output.set_type(bpb::Output::TYPE_LOCAL);
    if (text == "-") {
      f.file = "-";
    } else {
      f.local_dir = text;
    }
    return f;
  }
  std::map<std::string, std::string> kv;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> p = absl::StrSplit(part, absl::MaxSplits('=', 1));
    if (!absl::StrContains(part, "=")) {
      return absl::InvalidArgumentError(
          absl::StrCat("-o ", text, ": expected KEY=VALUE pairs (type=oci,dest=out.tar)"));
    }
    kv[p.first] = p.second;
  }
  std::string type = kv.count("type") ? kv["type"] : "";
  kv.erase("type");
  auto flag = [&](const std::string& key, bool* out) -> absl::Status {
    auto it = kv.find(key);
    if (it == kv.end()) return absl::OkStatus();
    if (it->second != "true" && it->second != "false") {
      return absl::InvalidArgumentError(
          absl::StrCat("-o ", text, ": ", key, " must be true or false"));
    }
    *out = it->second == "true";
    kv.erase(it);
    return absl::OkStatus();
  };
  if (type == "registry" || type == "image") {
    f.output.set_type(bpb::Output::TYPE_REGISTRY);
    bool push = type == "registry";
    RETURN_IF_ERROR(flag("push", &push));
    f.output.set_push(push);
    if (kv.count("name")) {
      f.output.set_dest(kv["name"]);
      kv.erase("name");
    }
    RETURN_IF_ERROR(ParseCompression(text, &kv, &f.output));
  } else if (type == "oci" || type == "docker" || type == "tar") {
    f.output.set_type(type == "oci"      ? bpb::Output::TYPE_OCI
                      : type == "docker" ? bpb::Output::TYPE_DOCKER
                                         : bpb::Output::TYPE_LOCAL);
    auto it = kv.find("dest");
    if (it == kv.end() || it->second.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("-o ", text, ": dest= is required for type=",
                                                     type, " (a file, or - for standard output)"));
    }
    f.file = it->second;
    kv.erase(it);
    if (type != "tar") RETURN_IF_ERROR(ParseCompression(text, &kv, &f.output));
  } else if (type == "local") {
    f.output.set_type(bpb::Output::TYPE_LOCAL);
    auto it = kv.find("dest");
    if (it == kv.end() || it->second.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("-o ", text, ": dest= is required for type=local (a directory)"));
    }
    f.local_dir = it->second;
    kv.erase(it);
  } else if (type.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "-o ", text, ": type= is required (registry, image, oci, docker, local or tar)"));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("-o ", text, ": unknown output type \"", type,
                     "\" (registry, image, oci, docker, local or tar)"));
  }
  if (!kv.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("-o ", text, ": unknown key \"", kv.begin()->first, "\" for type=", type));
  }
  return f;
}

// Parses a --cache-to/--cache-from value: "type=registry,ref=REF" or a
// bare REF. InvalidArgument names the flag.
absl::StatusOr<std::string> ParseCacheRef(const std::string& flag, const std::string& text) {
  if (!absl::StrContains(text, "=")) return text;
  std::string type = "registry", ref;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> p = absl::StrSplit(part, absl::MaxSplits('=', 1));
    if (p.first == "type") {
      type = p.second;
    } else if (p.first == "ref") {
      ref = p.second;
    } else if (p.first != "mode") {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " ", text, ": unknown key \"", p.first, "\""));
    }
  }
  if (type != "registry") {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", text, ": unsupported cache type \"", type, "\" (only registry)"));
  }
  if (ref.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", text, ": ref= is required"));
  }
  return ref;
}

// Parses a --secret value, "id=ID[,src=FILE][,env=VAR][,type=file|env]",
// and reads the secret: from FILE (src= or source=), from the environment
// variable VAR (env=, or src= with type=env), or, with neither, from the
// environment variable named ID. Returns the id and the bytes;
// InvalidArgument for a malformed value, the read's error for a file.
absl::StatusOr<std::pair<std::string, std::string>> ParseSecret(const std::string& text) {
  std::string id, src, env, type;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> p = absl::StrSplit(part, absl::MaxSplits('=', 1));
    if (p.first == "id") {
      id = p.second;
    } else if (p.first == "src" || p.first == "source") {
      src = p.second;
    } else if (p.first == "env") {
      env = p.second;
    } else if (p.first == "type") {
      type = p.second;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--secret ", text, ": unknown key \"", p.first, "\" (id, src, env, type)"));
    }
  }
  if (type != "" && type != "file" && type != "env") {
    return absl::InvalidArgumentError(
        absl::StrCat("--secret ", text, ": unknown type \"", type, "\" (file or env)"));
  }
  if (type == "env" && env.empty()) std::swap(env, src);
  if (id.empty()) id = !src.empty() ? src.substr(src.rfind('/') + 1) : env;
  if (id.empty())
    return absl::InvalidArgumentError(absl::StrCat("--secret ", text, ": id= is required"));
  if (!src.empty() && !env.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--secret ", text, ": give either src= or env=, not both"));
  }
  if (!src.empty()) {
    absl::StatusOr<std::string> data = ReadFile(src);
    if (!data.ok()) return Annotate(data.status(), "--secret id=" + id);
    return std::make_pair(id, *std::move(data));
  }
  if (env.empty()) env = id;
  const char* v = std::getenv(env.c_str());
  if (v == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("--secret ", text, ": environment variable ",
                                                   env, " is not set (use src=FILE for a file)"));
  }
  return std::make_pair(id, std::string(v));
}

// pier-unpack beside this executable (where the suite installs it), else
// the one on PATH.
std::string UnpackHelper() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n > 0) {
    std::string beside = JoinPath(Dirname(std::string(buf, static_cast<size_t>(n))), "pier-unpack");
    if (::access(beside.c_str(), X_OK) == 0) return beside;
  }
  return "pier-unpack";
}

// Unpacks the root filesystem tar in `fd` (read from its start) into `dir`,
// created when missing, through pier-unpack (lib/archive's safe extraction:
// nothing lands outside `dir`; as root owners and devices are restored).
// A helper process keeps libarchive out of the CLI, which starts for every
// command. Its error message, naming `dir`, on failure.
absl::Status UnpackLocal(int fd, const std::string& dir) {
  if (::lseek(fd, 0, SEEK_SET) != 0)
    return ErrnoStatus(errno, "rewind the streamed root filesystem");
  int err[2];
  if (::pipe2(err, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  UniqueFd err_r(err[0]), err_w(err[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fd, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_w.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_w.get(), STDERR_FILENO);
  const std::string helper = UnpackHelper();
  std::vector<char*> argv = {const_cast<char*>(helper.c_str()), const_cast<char*>(dir.c_str()),
                             nullptr};
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, helper.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  err_w.Reset();
  if (rc != 0) {
    return ErrnoStatus(
        rc, absl::StrCat("run ", helper, " (installed beside pier) to unpack into ", dir));
  }
  std::string message;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(err_r.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    message.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  message = std::string(absl::StripAsciiWhitespace(message));
  if (message.empty()) message = absl::StrCat(helper, " failed unpacking into ", dir);
  return absl::InternalError(message);
}

}  // namespace

int Build(const Globals& g, const std::vector<std::string>& args) {
  std::vector<std::string> tags, build_args;
  std::string file, target;
  std::vector<std::string> output_flags, cache_to, cache_from, secret_flags;
  bool no_cache = false, pull = false;
  std::string progress_flag = "auto";
  FlagSet flags("pier build", "[flags] CONTEXT");
  flags.StringList("tag", "t", &tags, "name and optionally a tag (repeatable)");
  flags.String("file", "f", &file, "Dockerfile path inside the context (default Dockerfile)");
  flags.StringList("build-arg", "", &build_args, "build-time variable NAME=VALUE (repeatable)");
  flags.String("target", "", &target, "stage to build");
  flags.Bool("no-cache", "", &no_cache, "do not use the layer cache");
  flags.Bool("pull", "", &pull, "always pull base images");
  flags.StringList("output", "o", &output_flags,
                   "output: type=registry (default), type=image[,push=true], "
                   "type=oci|docker,dest=FILE|-, type=local,dest=DIR (or just DIR), "
                   "type=tar,dest=FILE|-; image outputs take compression=gzip|zstd|uncompressed"
                   "[,compression-level=N][,force-compression=true] (repeatable)");
  flags.StringList("cache-to", "", &cache_to,
                   "export the build cache: type=registry,ref=REF (repeatable)");
  flags.StringList("cache-from", "", &cache_from,
                   "import a build cache: type=registry,ref=REF or REF (repeatable)");
  flags.StringList("secret", "", &secret_flags,
                   "secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR "
                   "(repeatable; never stored in the image or the cache)");
  flags.String("progress", "", &progress_flag,
               "progress output: auto (tty on a terminal, else plain), tty or plain");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  absl::StatusOr<ProgressMode> progress_mode = ParseProgressMode(progress_flag);
  if (!progress_mode.ok()) return Fail(progress_mode.status(), 2);
  if (pos.size() != 1) return Fail(absl::InvalidArgumentError("pier build needs one CONTEXT"), 2);
  std::vector<std::string> cache_to_refs, cache_from_refs;
  for (const auto& [flag, in, out] : {std::tuple("--cache-to", &cache_to, &cache_to_refs),
                                      std::tuple("--cache-from", &cache_from, &cache_from_refs)}) {
    for (const std::string& v : *in) {
      absl::StatusOr<std::string> ref = ParseCacheRef(flag, v);
      if (!ref.ok()) return Fail(ref.status(), 2);
      out->push_back(*ref);
    }
  }
  std::vector<OutputFlag> outputs;
  for (const std::string& o : output_flags) {
    absl::StatusOr<OutputFlag> f = ParseOutput(o);
    if (!f.ok()) return Fail(f.status(), 2);
    outputs.push_back(*std::move(f));
  }
  if (outputs.empty()) {  // push the tags, if any; else keep the image in the builder
    OutputFlag f;
    f.output.set_type(bpb::Output::TYPE_REGISTRY);
    f.output.set_push(!tags.empty());
    outputs.push_back(f);
  }
  // Progress goes to stderr when an archive goes to stdout.
  bool archive_to_stdout = false;
  for (const OutputFlag& f : outputs) archive_to_stdout |= f.file == "-";
  if (archive_to_stdout && ::isatty(STDOUT_FILENO)) {
    return Fail(absl::InvalidArgumentError(
                    "-o ...,dest=-: refusing to write a tarball to a terminal: use dest=FILE"),
                2);
  }
  std::ostream& out = archive_to_stdout ? std::cerr : std::cout;
  // Streamed archives are written to FILE.partial and renamed at the end.
  struct Sink {
    std::string file, tmp;
    std::string local_dir;  // unpack the tar in fd here
    UniqueFd fd;
  };
  std::vector<Sink> sinks(outputs.size());
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
  for (const std::string& v : secret_flags) {
    absl::StatusOr<std::pair<std::string, std::string>> secret = ParseSecret(v);
    if (!secret.ok()) return Fail(secret.status(), 2);
    (*spec->mutable_secrets())[secret->first] = secret->second;
  }
  spec->set_target(target);
  for (const std::string& t : tags) spec->add_tags(t);
  spec->set_no_cache(no_cache);
  for (const std::string& r : cache_to_refs) spec->add_cache_to(r);
  for (const std::string& r : cache_from_refs) spec->add_cache_from(r);
  for (size_t i = 0; i < outputs.size(); ++i) {
    *spec->add_outputs() = outputs[i].output;
    Sink& k = sinks[i];
    if (!outputs[i].local_dir.empty()) {
      k.local_dir = outputs[i].local_dir;
      const char* tmpdir = std::getenv("TMPDIR");
      // The streamed tar waits in an unlinked temporary file.
      k.file = absl::StrCat(tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp",
                            "/pier-build-local-XXXXXX");
      k.fd = UniqueFd(::mkostemp(k.file.data(), O_CLOEXEC));
      if (!k.fd.valid()) return Fail(ErrnoStatus(errno, "create " + k.file));
      ::unlink(k.file.c_str());
      continue;
    }
    if (outputs[i].file.empty()) continue;
    k.file = outputs[i].file;
    if (k.file == "-") {
      k.fd = UniqueFd(::dup(STDOUT_FILENO));
    } else {
      k.tmp = k.file + ".partial";
      k.fd = UniqueFd(::open(k.tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    }
    if (!k.fd.valid())
      return Fail(ErrnoStatus(errno, "create " + (k.tmp.empty() ? k.file : k.tmp)));
  }
  auto drop_partials = [&] {
    for (const Sink& k : sinks) {
      if (!k.tmp.empty()) ::unlink(k.tmp.c_str());
    }
  };
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
  absl::StatusOr<std::shared_ptr<grpc::Channel>> ch = rpc::SharedChannel(g.builder, g.tls);
  if (!ch.ok()) return Fail(ch.status());
  std::unique_ptr<BuildProgress> progress = MakeBuildProgress(
      *progress_mode, archive_to_stdout ? STDERR_FILENO : STDOUT_FILENO, out, man->entries_size());
  auto stub = bpb::BuilderService::NewStub(*ch);
  grpc::ClientContext cctx;
  auto stream = stub->Build(&cctx);
  stream->Write(spec_req);
  stream->Write(man_req);
  bpb::BuildResponse resp;
  std::string error;
  int rc = 0;
  while (stream->Read(&resp)) {
    if (!resp.has_tarball_chunk()) progress->Event(resp);
    if (resp.has_need_files()) {
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
    } else if (resp.has_tarball_chunk()) {
      const auto& c = resp.tarball_chunk();
      if (c.output() < 0 || static_cast<size_t>(c.output()) >= sinks.size() ||
          !sinks[c.output()].fd.valid()) {
        error = absl::StrCat("the builder streamed an archive for output ", c.output(),
                             ", which does not stream one");
        rc = 1;
        cctx.TryCancel();
        continue;
      }
      Sink& k = sinks[c.output()];
      if (absl::Status ws = WriteAll(k.fd.get(), c.data(), k.file); !ws.ok()) {
        error = std::string(ws.message());
        rc = 1;
        cctx.TryCancel();
      }
    } else if (resp.has_error()) {
      error = resp.error().message();
      rc = 1;
    }
  }
  grpc::Status s = stream->Finish();
  progress->Finish();
  if (!s.ok() || rc != 0) {
    drop_partials();
    std::cerr << "pier: build failed: " << (error.empty() ? s.error_message() : error) << "\n";
    return 1;
  }
  for (Sink& k : sinks) {
    if (!k.local_dir.empty()) {
      absl::Status us = UnpackLocal(k.fd.get(), k.local_dir);
      if (!us.ok()) {
        drop_partials();
        return Fail(us);
      }
      progress->Line("wrote " + k.local_dir);
      continue;
    }
    if (k.tmp.empty()) continue;
    if (::fsync(k.fd.get()) != 0 || ::rename(k.tmp.c_str(), k.file.c_str()) != 0) {
      drop_partials();
      return Fail(ErrnoStatus(errno, "write " + k.file));
    }
    progress->Line("wrote " + k.file);
  }
  return 0;
}

}  // namespace pier::cli
