#include "services/builder/server/builder_service.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "lib/archive/layer_writer.h"
#include "lib/archive/stream.h"
#include "lib/common/fs.h"
#include "lib/common/log.h"
#include "lib/common/status.h"
#include "lib/oci/digest.h"
#include "lib/oci/reference.h"
#include "lib/rpc/status.h"

namespace pier::builder {
namespace {

// Copies regular file `src` to a new file `dst` (in-kernel when possible).
absl::Status CopyFile(const std::string& src, const std::string& dst) {
  UniqueFd in(open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) return ErrnoStatus(errno, "open " + src);
  UniqueFd out(open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!out.valid()) return ErrnoStatus(errno, "create " + dst);
  for (;;) {
    ssize_t n = copy_file_range(in.get(), nullptr, out.get(), nullptr, 1 << 30, 0);
    if (n == 0) return absl::OkStatus();
    if (n > 0) continue;
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != EINVAL && errno != ENOSYS) {
      return ErrnoStatus(errno, "copy " + src);
    }
    break;
  }
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(in.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "read " + src);
    if (n == 0) return absl::OkStatus();
    RETURN_IF_ERROR(WriteAll(out.get(), absl::string_view(buf, static_cast<size_t>(n)), dst));
  }
}

namespace pb = ::pier::builder::v1;

void SetTime(google::protobuf::Timestamp* t, absl::Time when) {
  int64_t ns = absl::ToUnixNanos(when);
  t->set_seconds(ns / 1000000000);
  t->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

bool ValidPath(absl::string_view p) {
  if (p.empty() || absl::StartsWith(p, "/")) return false;
  for (absl::string_view c : absl::StrSplit(p, '/')) {
    if (c.empty() || c == "." || c == "..") return false;
  }
  return true;
}

// Checks BuildSpec.outputs: a known type, and options that type supports.
absl::Status CheckOutputs(const pb::BuildSpec& spec) {
  for (int i = 0; i < spec.outputs_size(); ++i) {
    const pb::Output& o = spec.outputs(i);
    const std::string what = absl::StrCat("outputs[", i, "]");
    switch (o.type()) {
      case pb::Output::TYPE_REGISTRY:
      case pb::Output::TYPE_OCI:
      case pb::Output::TYPE_DOCKER:
      case pb::Output::TYPE_LOCAL:
        break;
      case pb::Output::TYPE_UNSPECIFIED:
        return absl::InvalidArgumentError(what + ": the output type is required (-o type=...)");
      default:
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": unknown output type ", static_cast<int>(o.type())));
    }
    switch (o.compression()) {
      case pb::Output::COMPRESSION_UNSPECIFIED:
      case pb::Output::COMPRESSION_GZIP:
      case pb::Output::COMPRESSION_ZSTD:
      case pb::Output::COMPRESSION_UNCOMPRESSED:
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": unknown compression ", static_cast<int>(o.compression())));
    }
    if (o.type() == pb::Output::TYPE_DOCKER && o.compression() == pb::Output::COMPRESSION_ZSTD) {
      return absl::InvalidArgumentError(
          what +
          ": type docker cannot hold zstd layers (docker schema2 has no media type for them); "
          "use type oci");
    }
    if (o.compression_level() != 0) {
      const bool zstd = o.compression() == pb::Output::COMPRESSION_ZSTD;
      const int max = zstd ? 19 : 9;
      if (o.compression() == pb::Output::COMPRESSION_UNCOMPRESSED) {
        return absl::InvalidArgumentError(what +
                                          ": compression-level needs gzip or zstd compression");
      }
      if (o.compression_level() < 1 || o.compression_level() > max) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": compression-level ", o.compression_level(),
                         " is out of range 1..", max, " for ", zstd ? "zstd" : "gzip"));
      }
    }
    if (o.docker_media_types() && o.type() != pb::Output::TYPE_DOCKER) {
      return absl::InvalidArgumentError(what +
                                        ": docker media types are only written by type docker");
    }
    if (o.type() == pb::Output::TYPE_REGISTRY && o.push() && o.dest().empty() &&
        spec.tags().empty()) {
      return absl::InvalidArgumentError(what + ": a pushed image needs a name (-t or name=)");
    }
    if (o.type() != pb::Output::TYPE_REGISTRY && !o.dest().empty() &&
        !absl::StartsWith(o.dest(), "/")) {
      return absl::InvalidArgumentError(what +
                                        ": dest must be an absolute path on the builder "
                                        "host, or empty to stream the archive back");
    }
    if (o.type() == pb::Output::TYPE_LOCAL && o.dest() == "/") {
      return absl::InvalidArgumentError(what + ": dest must not be the builder host's root");
    }
  }
  for (const auto* list : {&spec.cache_from(), &spec.cache_to()}) {
    const char* name = list == &spec.cache_from() ? "cache_from" : "cache_to";
    for (int i = 0; i < list->size(); ++i) {
      absl::StatusOr<oci::Reference> ref = oci::Reference::Parse((*list)[i]);
      if (!ref.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, "[", i, "]: ", (*list)[i], ": ", ref.status().message()));
      }
    }
  }
  return absl::OkStatus();
}

// The layer compression the outputs ask for (nullopt: as built) and
// whether it is forced on the base image's layers. Outputs that set one
// must agree (InvalidArgument otherwise); type local has no layers.
absl::StatusOr<std::pair<std::optional<archive::CreateOptions>, bool>> OutputCompression(
    const pb::BuildSpec& spec) {
  std::optional<archive::CreateOptions> want;
  bool force = false;
  int first = -1;
  for (int i = 0; i < spec.outputs_size(); ++i) {
    const pb::Output& o = spec.outputs(i);
    if (o.type() == pb::Output::TYPE_LOCAL) continue;
    if (o.compression() == pb::Output::COMPRESSION_UNSPECIFIED && o.compression_level() == 0 &&
        !o.force_compression()) {
      continue;
    }
    archive::CreateOptions c;
    switch (o.compression()) {
      case pb::Output::COMPRESSION_ZSTD:
        c.compression = archive::Compression::kZstd;
        break;
      case pb::Output::COMPRESSION_UNCOMPRESSED:
        c.compression = archive::Compression::kNone;
        break;
      default:
        c.compression = archive::Compression::kGzip;
    }
    c.compression_level = o.compression_level();
    if (want &&
        (want->compression != c.compression || want->compression_level != c.compression_level ||
         force != o.force_compression())) {
      return absl::InvalidArgumentError(
          absl::StrCat("outputs[", first, "] and outputs[", i,
                       "] ask for different layer compressions; one build makes one image"));
    }
    want = c;
    force = o.force_compression();
    first = first < 0 ? i : first;
  }
  return std::make_pair(want, force);
}

// Streams what `write` produces as TarballChunk events of output `index`,
// in pieces of at most 1 MiB; the last one has eof set.
absl::Status StreamArchive(const std::function<absl::Status(const archive::ByteSink&)>& write,
                           int index, const std::function<void(pb::BuildResponse&)>& send) {
  constexpr size_t kPiece = 1 << 20;
  std::string buf;
  int64_t offset = 0;
  auto flush = [&](bool eof) {
    pb::BuildResponse r;
    pb::TarballChunk* c = r.mutable_tarball_chunk();
    c->set_output(index);
    c->set_offset(offset);
    c->set_eof(eof);
    offset += static_cast<int64_t>(buf.size());
    c->set_data(std::move(buf));
    buf.clear();
    send(r);
  };
  RETURN_IF_ERROR(write([&](absl::string_view chunk) {
    while (!chunk.empty()) {
      size_t n = std::min(chunk.size(), kPiece - buf.size());
      buf.append(chunk.data(), n);
      chunk.remove_prefix(n);
      if (buf.size() == kPiece) flush(false);
    }
    return absl::OkStatus();
  }));
  flush(true);
  return absl::OkStatus();
}

// Writes the archive of `out` to `dest` on this host (through a temporary
// file renamed into place, so a failed export leaves no partial archive).
absl::Status WriteArchive(Builder& builder, const BuildOutcome& out, image::ArchiveFormat format,
                          const std::string& dest) {
  const std::string tmp = dest + ".partial";
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoStatus(errno, "create " + tmp);
  absl::Status s = builder.Export(out, format, archive::FdSink(fd.get()));
  if (s.ok() && fsync(fd.get()) != 0) s = ErrnoStatus(errno, "fsync " + tmp);
  if (s.ok() && rename(tmp.c_str(), dest.c_str()) != 0) s = ErrnoStatus(errno, "rename " + tmp);
  if (!s.ok()) (void)unlink(tmp.c_str());
  return s;
}

}  // namespace

grpc::Status BuilderService::Build(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<pb::BuildResponse, pb::BuildRequest>* stream) {
  absl::Time started = absl::Now();
  std::mutex write_mu;
  std::function<void(pb::BuildResponse&)> send = [&](pb::BuildResponse& r) {
    SetTime(r.mutable_time(), absl::Now());
    std::lock_guard<std::mutex> l(write_mu);
    stream->Write(r);
  };
  BuildFailure failure;
  auto fail = [&](const absl::Status& s) {
    pb::BuildResponse r;
    pb::BuildError* e = r.mutable_error();
    e->set_message(std::string(s.message()));
    e->set_line(failure.line);
    e->set_step(failure.step);
    e->set_exit_code(failure.exit_code);
    e->set_code(static_cast<int>(s.code()));
    send(r);
    return rpc::ToGrpcStatus(s);
  };
  std::string build_id = absl::StrCat(absl::ToUnixMillis(absl::Now()), "-", next_id_++);
  std::string ctx_dir = absl::StrCat(root_, "/contexts/", build_id);
  struct Cleanup {
    std::string dir;
    ~Cleanup() { (void)RemoveInBackground(dir, Dirname(dir) + "/.trash"); }
  } cleanup{ctx_dir};

  pb::BuildRequest req;
  if (!stream->Read(&req) || !req.has_spec()) {
    return fail(absl::InvalidArgumentError("the first message of Build must be a spec"));
  }
  pb::BuildSpec spec = req.spec();
  if (absl::Status s = CheckOutputs(spec); !s.ok()) return fail(s);
  absl::StatusOr<std::pair<std::optional<archive::CreateOptions>, bool>> compression =
      OutputCompression(spec);
  if (!compression.ok()) return fail(compression.status());
  if (absl::Status s = MakeDirs(ctx_dir, 0700); !s.ok()) return fail(s);
  // Manifest.
  std::map<std::string, pb::FileEntry> entries;
  std::vector<std::string> order;
  for (bool complete = false; !complete;) {
    if (!stream->Read(&req)) return fail(absl::CancelledError("client went away"));
    if (!req.has_context_manifest()) {
      return fail(absl::InvalidArgumentError("expected a context manifest"));
    }
    for (const pb::FileEntry& e : req.context_manifest().entries()) {
      if (!ValidPath(e.path())) {
        return fail(absl::InvalidArgumentError("invalid context path: " + e.path()));
      }
      std::string p = ctx_dir + "/" + e.path();
      absl::Status s;
      switch (e.type()) {
        case pb::FileEntry::TYPE_DIRECTORY:
          s = MakeDirs(p, 0755);
          break;
        case pb::FileEntry::TYPE_SYMLINK:
          s = MakeDirs(Dirname(p), 0755);
          if (s.ok() && symlink(e.link_target().c_str(), p.c_str()) != 0) {
            s = ErrnoStatus(errno, "symlink " + e.path());
          }
          break;
        case pb::FileEntry::TYPE_REGULAR:
          order.push_back(e.path());
          break;
        case pb::FileEntry::TYPE_UNSPECIFIED:
          s = absl::InvalidArgumentError("context entry without a type: " + e.path());
          break;
        default:
          break;  // hard links and fifos: not materialised yet
      }
      if (!s.ok()) return fail(s);
      entries[e.path()] = e;
    }
    complete = req.context_manifest().complete();
  }
  // Only what the builder lacks crosses the wire: files whose digest the
  // context store already holds (from earlier builds) come from it, and of
  // several files with one digest only the first is asked for. The store
  // keeps each content as <hex> and each (content, mode, mtime) as
  // <hex>.<mode>.<sec>.<nsec>, all hard links of files it received: a file
  // whose exact variant is there is linked into the context (no copy, no
  // metadata to set), otherwise its content is copied and the new variant
  // linked after its metadata is set.
  const std::string store = absl::StrCat(root_, "/context-store");
  std::shared_lock<std::shared_mutex> store_lock(context_store_mu_);
  if (absl::Status s = MakeDirs(store, 0700); !s.ok()) return fail(s);
  auto stored = [&](const pb::FileEntry& e) -> std::string {
    absl::StatusOr<oci::Digest> d = oci::Digest::Parse(e.digest());
    if (!d.ok()) return "";
    return absl::StrCat(store, "/", d->hex());
  };
  auto variant = [&](const pb::FileEntry& e) -> std::string {
    std::string content = stored(e);
    if (content.empty()) return "";
    return absl::StrCat(content, ".", absl::Hex(e.mode() & 07777), ".", e.mtime().seconds(), ".",
                        e.mtime().nanos());
  };
  std::set<std::string> made_dirs;  // parents already created
  auto make_parent = [&](const std::string& path) -> absl::Status {
    std::string dir = Dirname(path);
    if (made_dirs.count(dir)) return absl::OkStatus();
    RETURN_IF_ERROR(MakeDirs(dir, 0755));
    made_dirs.insert(dir);
    return absl::OkStatus();
  };
  std::set<std::string> linked;  // context files that are store variants already
  std::map<std::string, std::vector<std::string>> twins;  // first path -> same digest
  std::map<std::string, std::string> first_by_digest;
  std::vector<std::string> wanted;
  pb::BuildResponse need;
  int64_t total = 0;
  for (const std::string& p : order) {
    const pb::FileEntry& e = entries[p];
    std::string in_store = stored(e);
    struct stat st;
    if (!in_store.empty()) {
      std::string exact = variant(e);
      std::string dst = ctx_dir + "/" + p;
      if (stat(exact.c_str(), &st) == 0 && st.st_size == e.size()) {
        absl::Status s = make_parent(dst);
        if (!s.ok()) return fail(s);
        if (link(exact.c_str(), dst.c_str()) == 0) {  // bumps ctime: last use
          linked.insert(p);
          continue;
        }
      }
      if (stat(in_store.c_str(), &st) == 0 && st.st_size == e.size()) {
        absl::Status s = make_parent(dst);
        if (s.ok()) s = CopyFile(in_store, dst);
        if (!s.ok()) return fail(s);
        (void)chmod(in_store.c_str(), st.st_mode & 07777);  // bumps ctime: last use
        continue;
      }
    }
    if (!e.digest().empty()) {
      auto [it, inserted] = first_by_digest.emplace(e.digest(), p);
      if (!inserted) {
        twins[it->second].push_back(p);
        continue;
      }
    }
    wanted.push_back(p);
    need.mutable_need_files()->add_paths(p);
    total += e.size();
  }
  order = wanted;
  need.mutable_need_files()->set_total_bytes(total);
  send(need);
  // Files, in order.
  size_t next = 0;
  UniqueFd cur;
  oci::Sha256 hash;
  int64_t written = 0;
  int64_t transferred = 0;
  for (;;) {
    if (!stream->Read(&req)) return fail(absl::CancelledError("client went away"));
    if (req.has_context_done()) break;
    if (!req.has_file_chunk()) return fail(absl::InvalidArgumentError("expected a file chunk"));
    const pb::FileChunk& c = req.file_chunk();
    if (next >= order.size() || c.path() != order[next] || c.offset() != written) {
      return fail(absl::InvalidArgumentError("chunk out of order for " + c.path()));
    }
    if (cur.get() < 0) {
      std::string p = ctx_dir + "/" + c.path();
      if (absl::Status s = MakeDirs(Dirname(p), 0755); !s.ok()) return fail(s);
      cur = UniqueFd(open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
      if (cur.get() < 0) return fail(ErrnoStatus(errno, "create context file " + c.path()));
      hash = oci::Sha256();
    }
    if (absl::Status s = WriteAll(cur.get(), c.data(), c.path()); !s.ok()) return fail(s);
    hash.Update(c.data());
    written += static_cast<int64_t>(c.data().size());
    transferred += static_cast<int64_t>(c.data().size());
    if (c.eof()) {
      const pb::FileEntry& e = entries[c.path()];
      std::string d = hash.Finish().str();
      if (written != e.size() || (!e.digest().empty() && d != e.digest())) {
        return fail(absl::DataLossError("context file " + c.path() +
                                        " does not match its manifest digest or size"));
      }
      cur.Reset();
      // Keep it for later builds, and fill in files with the same content.
      std::string src = ctx_dir + "/" + c.path();
      if (std::string in_store = stored(e); !in_store.empty() && !e.digest().empty()) {
        if (link(src.c_str(), in_store.c_str()) != 0 && errno != EEXIST) {
          return fail(ErrnoStatus(errno, "store context file " + c.path()));
        }
      }
      for (const std::string& twin : twins[c.path()]) {
        std::string dst = ctx_dir + "/" + twin;
        absl::Status s = MakeDirs(Dirname(dst), 0755);
        if (s.ok()) s = CopyFile(src, dst);
        if (!s.ok()) return fail(s);
      }
      ++next;
      written = 0;
    }
  }
  if (next != order.size()) {
    return fail(absl::InvalidArgumentError("context_done before every file was sent"));
  }
  // Metadata (modes, times) now that contents are in place; directories last.
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    const pb::FileEntry& e = it->second;
    if (linked.count(e.path())) continue;  // the store's variant has them
    std::string p = ctx_dir + "/" + e.path();
    if (e.type() != pb::FileEntry::TYPE_SYMLINK) (void)chmod(p.c_str(), e.mode() & 07777);
    timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = e.mtime().seconds();
    ts[0].tv_nsec = ts[1].tv_nsec = e.mtime().nanos();
    (void)utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW);
    if (e.type() == pb::FileEntry::TYPE_REGULAR && !e.digest().empty()) {
      std::string exact = variant(e);
      if (!exact.empty() && link(p.c_str(), exact.c_str()) != 0 && errno != EEXIST) {
        PIER_LOG(WARNING) << "context store: link " << exact << ": " << std::strerror(errno);
      }
    }
  }
  store_lock.unlock();
  BuildParams params;
  params.build_id = build_id;
  params.context_dir = ctx_dir;
  // Every regular file's digest was checked as it arrived or came from the
  // content-addressed store.
  for (const auto& [path, e] : entries) {
    if (e.type() == pb::FileEntry::TYPE_REGULAR && !e.digest().empty()) {
      params.context_digests[path] = e.digest();
    }
  }
  if (!spec.dockerfile().empty()) {
    params.dockerfile = spec.dockerfile();
  } else {
    std::string path = spec.dockerfile_path().empty() ? "Dockerfile" : spec.dockerfile_path();
    absl::StatusOr<std::string> text = ReadFile(ctx_dir + "/" + path);
    if (!text.ok())
      return fail(absl::NotFoundError("Dockerfile " + path + " not found in the context"));
    params.dockerfile = *text;
  }
  for (const auto& [k, v] : spec.build_args()) params.build_args[k] = v;
  for (const auto& [k, v] : spec.labels()) params.labels[k] = v;
  params.target = spec.target();
  params.tags.assign(spec.tags().begin(), spec.tags().end());
  params.no_cache = spec.no_cache();
  params.pull = spec.pull();
  if (spec.has_source_date_epoch()) params.source_date_epoch = spec.source_date_epoch();
  params.memory_bytes = spec.memory_bytes();
  for (const auto& [id, value] : spec.secrets()) params.secrets[id] = value;
  params.cache_from.assign(spec.cache_from().begin(), spec.cache_from().end());
  params.cache_to.assign(spec.cache_to().begin(), spec.cache_to().end());
  for (const pier::common::v1::RegistryAuth& a : spec.registry_auth()) {
    params.credentials[a.server_address()] = distribution::Credentials{a.username(), a.password()};
  }
  params.compression = compression->first;
  params.force_compression = compression->second;
  params.push = false;
  for (const pb::Output& o : spec.outputs()) {
    if (o.type() != pb::Output::TYPE_REGISTRY || !o.push()) continue;
    params.push = true;
    if (!o.dest().empty()) params.push_targets.push_back(o.dest());
  }
  auto events = [&](const BuildEvent& e) {
    pb::BuildResponse r;
    switch (e.kind) {
      case BuildEvent::Kind::kStarted: {
        auto* s = r.mutable_started();
        s->set_build_id(e.build_id);
        s->set_total_steps(e.total);
        for (const std::string& n : e.stages) s->add_stages(n);
        break;
      }
      case BuildEvent::Kind::kStepStarted: {
        auto* s = r.mutable_step_started();
        s->set_step(e.step);
        s->set_total(e.total);
        s->set_stage(e.stage);
        s->set_instruction(e.instruction);
        s->set_line(e.line);
        break;
      }
      case BuildEvent::Kind::kStepCached: {
        auto* s = r.mutable_step_cached();
        s->set_step(e.step);
        s->set_total(e.total);
        s->set_stage(e.stage);
        s->set_instruction(e.instruction);
        s->set_line(e.line);
        s->set_cache_key(e.cache_key);
        s->set_layer_digest(e.layer_digest);
        break;
      }
      case BuildEvent::Kind::kStepLog: {
        auto* s = r.mutable_step_log();
        s->set_step(e.step);
        s->set_stream(e.stream == 2 ? common::v1::OUTPUT_STREAM_STDERR
                                    : common::v1::OUTPUT_STREAM_STDOUT);
        s->set_data(e.data);
        break;
      }
      case BuildEvent::Kind::kStepCompleted: {
        auto* s = r.mutable_step_completed();
        s->set_step(e.step);
        s->set_layer_digest(e.layer_digest);
        s->set_size(e.size);
        int64_t ns = absl::ToInt64Nanoseconds(e.duration);
        s->mutable_duration()->set_seconds(ns / 1000000000);
        s->mutable_duration()->set_nanos(static_cast<int32_t>(ns % 1000000000));
        s->set_cache_key(e.cache_key);
        break;
      }
      case BuildEvent::Kind::kWarning:
        r.mutable_warning()->set_message(e.data);
        r.mutable_warning()->set_line(e.line);
        break;
    }
    send(r);
  };
  (void)context;
  absl::StatusOr<BuildOutcome> out = builder_->Build(params, events, &failure);
  if (!out.ok()) return fail(out.status());
  for (int i = 0; i < spec.outputs_size(); ++i) {
    const pb::Output& o = spec.outputs(i);
    absl::Status s;
    if (o.type() == pb::Output::TYPE_LOCAL) {
      s = o.dest().empty() ? StreamArchive(
                                 [&](const archive::ByteSink& sink) {
                                   return builder_->ExportRootfs(*out, sink);
                                 },
                                 i, send)
                           : builder_->UnpackRootfs(*out, o.dest());
    } else if (o.type() == pb::Output::TYPE_OCI || o.type() == pb::Output::TYPE_DOCKER) {
      image::ArchiveFormat format = o.type() == pb::Output::TYPE_OCI
                                        ? image::ArchiveFormat::kOciArchive
                                        : image::ArchiveFormat::kDockerArchive;
      s = o.dest().empty() ? StreamArchive(
                                 [&](const archive::ByteSink& sink) {
                                   return builder_->Export(*out, format, sink);
                                 },
                                 i, send)
                           : WriteArchive(*builder_, *out, format, o.dest());
    }
    if (!s.ok()) return fail(Annotate(s, absl::StrCat("exporting outputs[", i, "]")));
  }
  pb::BuildResponse r;
  pb::BuildResult* res = r.mutable_result();
  res->set_image_digest(out->config_digest);
  res->set_config_digest(out->config_digest);
  res->set_manifest_digest(out->manifest.digest.str());
  res->set_manifest_media_type(out->manifest.media_type);
  for (const std::string& p : out->pushed) res->add_pushed(p);
  auto fill = [](const oci::Descriptor& d, common::v1::Descriptor* pd) {
    pd->set_media_type(d.media_type);
    pd->set_digest(d.digest.str());
    pd->set_size(d.size);
  };
  for (const oci::Descriptor& d : out->layers) fill(d, res->add_layers());
  fill(out->manifest, res->mutable_manifest());
  res->set_cached_steps(out->cached_steps);
  int64_t ns = absl::ToInt64Nanoseconds(absl::Now() - started);
  res->mutable_duration()->set_seconds(ns / 1000000000);
  res->mutable_duration()->set_nanos(static_cast<int32_t>(ns % 1000000000));
  res->set_context_bytes_transferred(transferred);
  send(r);
  return grpc::Status::OK;
}

namespace {

struct StoredFile {
  std::string path;
  int64_t size = 0;      // 0 for the further names of one file (variants)
  int64_t last_use = 0;  // ctime, seconds
};

absl::StatusOr<std::vector<StoredFile>> ListStore(const std::string& dir) {
  std::vector<StoredFile> out;
  std::set<std::pair<dev_t, ino_t>> seen;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return out;
    return ErrnoStatus(errno, "opendir " + dir);
  }
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    std::string p = dir + "/" + name;
    if (lstat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    const bool first = seen.insert({st.st_dev, st.st_ino}).second;
    out.push_back(
        {p, first ? static_cast<int64_t>(st.st_size) : 0, static_cast<int64_t>(st.st_ctim.tv_sec)});
  }
  closedir(d);
  return out;
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

}  // namespace

grpc::Status BuilderService::ListCache(grpc::ServerContext* context,
                                       const pb::ListCacheRequest* request,
                                       pb::ListCacheResponse* response) {
  (void)context;
  size_t offset = 0;
  if (!request->page_token().empty() && !absl::SimpleAtoi(request->page_token(), &offset)) {
    return rpc::ToGrpcStatus(
        absl::InvalidArgumentError("malformed page_token: " + request->page_token()));
  }
  int size = request->page_size() <= 0 ? 100 : std::min(request->page_size(), 1000);
  absl::StatusOr<std::vector<CacheEntryInfo>> entries = builder_->ListCache();
  if (!entries.ok()) return rpc::ToGrpcStatus(entries.status());
  for (size_t i = offset; i < entries->size() && i < offset + size; ++i) {
    const CacheEntryInfo& e = (*entries)[i];
    pb::CacheEntry* out = response->add_entries();
    out->set_key(e.key);
    if (e.record.layer) out->set_layer_digest(e.record.layer->diff_id.str());
    out->set_size(e.size);
    out->mutable_last_used()->set_seconds(e.record.last_used_unix);
    out->mutable_created_at()->set_seconds(e.record.created_unix);
    out->set_usage_count(e.record.usage_count);
    out->set_description(e.record.description);
    out->set_in_use(e.in_use);
  }
  if (offset + size < entries->size()) response->set_next_page_token(absl::StrCat(offset + size));
  return grpc::Status::OK;
}

grpc::Status BuilderService::PruneCache(grpc::ServerContext* context,
                                        const pb::PruneCacheRequest* request,
                                        pb::PruneCacheResponse* response) {
  (void)context;
  PruneOptions o;
  o.all = request->all();
  o.keep_duration = FromProto(request->keep_duration());
  o.keep_bytes = request->keep_bytes();
  o.dry_run = request->dry_run();
  absl::StatusOr<PruneResult> r = builder_->PruneCache(o);
  if (!r.ok()) return rpc::ToGrpcStatus(r.status());
  response->set_entries_deleted(r->entries_deleted);
  int64_t freed = r->bytes_freed;
  // The context store, by the same rules.
  std::unique_lock<std::shared_mutex> l(context_store_mu_);
  absl::StatusOr<std::vector<StoredFile>> files = ListStore(root_ + "/context-store");
  if (!files.ok()) return rpc::ToGrpcStatus(files.status());
  const bool all = o.all || (o.keep_duration == absl::ZeroDuration() && o.keep_bytes == 0);
  const int64_t cutoff = absl::ToUnixSeconds(absl::Now() - o.keep_duration);
  std::sort(files->begin(), files->end(), [](const StoredFile& a, const StoredFile& b) {
    return a.last_use > b.last_use;  // most recent first
  });
  int64_t kept = 0;
  for (const StoredFile& f : *files) {
    bool drop = all || (o.keep_duration > absl::ZeroDuration() && f.last_use < cutoff) ||
                (o.keep_bytes > 0 && kept + f.size > o.keep_bytes);
    if (!drop) {
      kept += f.size;
      continue;
    }
    if (!o.dry_run && unlink(f.path.c_str()) != 0 && errno != ENOENT) {
      return rpc::ToGrpcStatus(ErrnoStatus(errno, "remove " + f.path));
    }
    freed += f.size;
  }
  response->set_bytes_freed(freed);
  return grpc::Status::OK;
}

grpc::Status BuilderService::DiskUsage(grpc::ServerContext* context,
                                       const pb::DiskUsageRequest* request,
                                       pb::DiskUsageResponse* response) {
  (void)context;
  (void)request;
  absl::StatusOr<CacheDiskUsage> u = builder_->DiskUsage();
  if (!u.ok()) return rpc::ToGrpcStatus(u.status());
  int64_t context_bytes = 0;
  {
    std::shared_lock<std::shared_mutex> l(context_store_mu_);
    absl::StatusOr<std::vector<StoredFile>> files = ListStore(root_ + "/context-store");
    if (!files.ok()) return rpc::ToGrpcStatus(files.status());
    for (const StoredFile& f : *files) context_bytes += f.size;
  }
  response->set_cache_bytes(u->cache_bytes);
  response->set_cache_entries(u->cache_entries);
  response->set_context_bytes(context_bytes);
  response->set_content_bytes(u->content_bytes);
  response->set_reclaimable_bytes(u->reclaimable_bytes + context_bytes);
  return grpc::Status::OK;
}

}  // namespace pier::builder
