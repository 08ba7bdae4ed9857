#include "services/builder/server/builder_service.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "lib/oci/digest.h"
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

}  // namespace

grpc::Status BuilderService::Build(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<pb::BuildResponse, pb::BuildRequest>* stream) {
  absl::Time started = absl::Now();
  std::mutex write_mu;
  auto send = [&](pb::BuildResponse& r) {
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
    ~Cleanup() { (void)RemoveAll(dir); }
  } cleanup{ctx_dir};

  pb::BuildRequest req;
  if (!stream->Read(&req) || !req.has_spec()) {
    return fail(absl::InvalidArgumentError("the first message of Build must be a spec"));
  }
  pb::BuildSpec spec = req.spec();
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
  // context store already holds (from earlier builds) are copied from it,
  // and of several files with one digest only the first is asked for.
  const std::string store = absl::StrCat(root_, "/context-store");
  if (absl::Status s = MakeDirs(store, 0700); !s.ok()) return fail(s);
  auto stored = [&](const pb::FileEntry& e) -> std::string {
    absl::StatusOr<oci::Digest> d = oci::Digest::Parse(e.digest());
    if (!d.ok()) return "";
    return absl::StrCat(store, "/", d->hex());
  };
  std::map<std::string, std::vector<std::string>> twins;  // first path -> same digest
  std::map<std::string, std::string> first_by_digest;
  std::vector<std::string> wanted;
  pb::BuildResponse need;
  int64_t total = 0;
  for (const std::string& p : order) {
    const pb::FileEntry& e = entries[p];
    std::string in_store = stored(e);
    struct stat st;
    if (!in_store.empty() && stat(in_store.c_str(), &st) == 0 && st.st_size == e.size()) {
      std::string dst = ctx_dir + "/" + p;
      absl::Status s = MakeDirs(Dirname(dst), 0755);
      if (s.ok()) s = CopyFile(in_store, dst);
      if (!s.ok()) return fail(s);
      continue;
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
    std::string p = ctx_dir + "/" + e.path();
    if (e.type() != pb::FileEntry::TYPE_SYMLINK) (void)chmod(p.c_str(), e.mode() & 07777);
    timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = e.mtime().seconds();
    ts[0].tv_nsec = ts[1].tv_nsec = e.mtime().nanos();
    (void)utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW);
  }
  BuildParams params;
  params.build_id = build_id;
  params.context_dir = ctx_dir;
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
  for (const pier::common::v1::RegistryAuth& a : spec.registry_auth()) {
    params.credentials[a.server_address()] = distribution::Credentials{a.username(), a.password()};
  }
  params.push = true;
  for (const pb::Output& o : spec.outputs()) {
    if (o.type() != pb::Output::TYPE_REGISTRY) {
      return fail(absl::UnimplementedError("only registry outputs are supported"));
    }
    params.push = o.push();
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

}  // namespace pier::builder
