#include "services/builder/plan/builder.h"

#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "lib/archive/layer_apply.h"
#include "lib/archive/layer_writer.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "lib/oci/reference.h"
#include "nlohmann/json.hpp"
#include "services/builder/cache/layer_cache.h"
#include "services/builder/dockerfile/expand.h"
#include "services/builder/dockerfile/instructions.h"
#include "services/builder/plan/fs_ops.h"
#include "services/builder/plan/git_source.h"
#include "services/builder/plan/run_mounts.h"

namespace pier::builder {
namespace {

namespace df = ::pier::builder::dockerfile;

std::string Quote(const std::vector<std::string>& v) { return nlohmann::json(v).dump(); }

// Per stage of a running build: its step counter and, on failure, where.
struct StageRun {
  int step_no = 0;
  BuildFailure failure;
};

// The state of a stage being built.
struct StageState {
  std::string base_image;  // image id in the store; "" for scratch
  std::optional<oci::Digest> chain;
  std::vector<archive::LayerInfo> layers;
  std::vector<oci::History> history;
  oci::ContainerConfig config;
  std::string author;
  std::string key;  // cache key of the last step
  bool cmd_set = false;
  int64_t last_created_unix = 0;  // latest history time of the stage's own steps
  std::string base_created;       // the base image's config time
};

struct BaseImage {
  image::Image image;
  oci::ImageConfig config;
  std::optional<oci::Digest> chain;
};

std::string TimeString(const std::optional<int64_t>& epoch) {
  absl::Time t = epoch ? absl::FromUnixSeconds(*epoch) : absl::Now();
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::vector<std::string> CommandArgs(const df::CommandLine& c,
                                     const std::vector<std::string>& shell) {
  if (c.exec_form) return c.exec;
  std::vector<std::string> a = shell;
  a.push_back(c.shell);
  return a;
}

std::string CommandText(const df::CommandLine& c) { return c.exec_form ? Quote(c.exec) : c.shell; }

// The instruction as shown in events and history, after expansion.
std::string Describe(const df::Instruction& ins) {
  return std::visit(
      [&](const auto& c) -> std::string {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, df::Copy> || std::is_same_v<T, df::Add>) {
          std::string s = ins.keyword;
          if constexpr (std::is_same_v<T, df::Copy>) {
            if (!c.from.empty()) absl::StrAppend(&s, " --from=", c.from);
          }
          if (!c.chown.empty()) absl::StrAppend(&s, " --chown=", c.chown);
          if (!c.chmod.empty()) absl::StrAppend(&s, " --chmod=", c.chmod);
          for (const std::string& src : c.sources) absl::StrAppend(&s, " ", src);
          for (const df::HeredocSource& h : c.heredocs) absl::StrAppend(&s, " <<", h.path);
          absl::StrAppend(&s, " ", c.dest);
          return s;
        } else if constexpr (std::is_same_v<T, df::Env>) {
          std::vector<std::string> kv;
          for (const df::KeyValue& v : c.vars) kv.push_back(v.key + "=" + v.value);
          return "ENV " + absl::StrJoin(kv, " ");
        } else if constexpr (std::is_same_v<T, df::Label>) {
          std::vector<std::string> kv;
          for (const df::KeyValue& v : c.labels) kv.push_back(v.key + "=" + v.value);
          return "LABEL " + absl::StrJoin(kv, " ");
        } else if constexpr (std::is_same_v<T, df::Workdir>) {
          return "WORKDIR " + c.path;
        } else if constexpr (std::is_same_v<T, df::User>) {
          return "USER " + c.user + (c.group ? ":" + *c.group : "");
        } else if constexpr (std::is_same_v<T, df::Expose>) {
          return "EXPOSE " + absl::StrJoin(c.ports, " ");
        } else if constexpr (std::is_same_v<T, df::Volume>) {
          return "VOLUME " + Quote(c.paths);
        } else if constexpr (std::is_same_v<T, df::Cmd> || std::is_same_v<T, df::Entrypoint>) {
          return ins.keyword + " " +
                 (c.command.exec_form ? Quote(c.command.exec) : c.command.shell);
        } else {
          return ins.original;
        }
      },
      ins.command);
}

// Reads /etc/passwd or /etc/group from the top-most layer of `chain` that has it.
std::string ReadFromChain(image::Snapshotter& snap, std::optional<oci::Digest> chain,
                          const std::string& rel) {
  while (chain) {
    auto dir = snap.Dir(*chain);
    if (!dir.ok()) return "";
    auto data = ReadFile(*dir + "/" + rel);
    if (data.ok()) return *data;
    auto info = snap.Stat(*chain);
    if (!info.ok()) return "";
    chain = info->parent;
  }
  return "";
}

absl::StatusOr<uint32_t> LookupId(image::Snapshotter& snap, const std::optional<oci::Digest>& chain,
                                  const std::string& name, bool group, int* primary_gid) {
  uint32_t id = 0;
  if (absl::SimpleAtoi(name, &id)) {
    if (!group && primary_gid != nullptr) *primary_gid = static_cast<int>(id);
    return id;
  }
  std::string file = ReadFromChain(snap, chain, group ? "etc/group" : "etc/passwd");
  for (absl::string_view line : absl::StrSplit(file, '\n')) {
    std::vector<std::string> f = absl::StrSplit(line, ':');
    if (f.size() >= 3 && f[0] == name && absl::SimpleAtoi(f[2], &id)) {
      if (!group && primary_gid != nullptr && f.size() >= 4) {
        uint32_t g = 0;
        if (absl::SimpleAtoi(f[3], &g)) *primary_gid = static_cast<int>(g);
      }
      return id;
    }
  }
  return absl::NotFoundError(
      absl::StrCat("unable to find ", group ? "group " : "user ", name, " in the image"));
}

// "user[:group]" → uid, gid.
absl::Status ResolveUser(image::Snapshotter& snap, const std::optional<oci::Digest>& chain,
                         const std::string& spec, uint32_t* uid, uint32_t* gid) {
  *uid = 0;
  *gid = 0;
  if (spec.empty()) return absl::OkStatus();
  std::pair<std::string, std::string> p = absl::StrSplit(spec, absl::MaxSplits(':', 1));
  int primary = 0;
  ASSIGN_OR_RETURN(*uid, LookupId(snap, chain, p.first, false, &primary));
  *gid = static_cast<uint32_t>(primary);
  if (!p.second.empty()) {
    ASSIGN_OR_RETURN(*gid, LookupId(snap, chain, p.second, true, nullptr));
  }
  return absl::OkStatus();
}

// Hashes a tree of the context (paths, types, modes, link targets, content).
// A regular file's content digest comes from `known` (context path without
// the leading '/' -> "sha256:...") when it is there, else from reading it.
absl::Status HashTree(const std::string& path, const std::string& rel,
                      const std::map<std::string, std::string>& known, oci::Sha256* h) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "stat " + rel);
  h->Update(absl::StrCat(rel, "\n", st.st_mode, "\n"));
  if (S_ISLNK(st.st_mode)) {
    char buf[PATH_MAX];
    ssize_t n = readlink(path.c_str(), buf, sizeof(buf));
    if (n > 0) h->Update(absl::string_view(buf, n));
  } else if (S_ISREG(st.st_mode)) {
    auto it = known.find(rel.substr(rel.find_first_not_of('/')));
    if (it != known.end()) {
      h->Update(it->second);
    } else {
      ASSIGN_OR_RETURN(std::string data, ReadFile(path));
      h->Update(oci::Digest::Of(data).str());
    }
  } else if (S_ISDIR(st.st_mode)) {
    DIR* d = opendir(path.c_str());
    if (d == nullptr) return ErrnoStatus(errno, "opendir " + rel);
    std::vector<std::string> names;
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) {
      RETURN_IF_ERROR(HashTree(path + "/" + n, rel + "/" + n, known, h));
    }
  }
  return absl::OkStatus();
}

// Cleans COPY sources relative to the context; InvalidArgument for one that
// leaves it, NotFound for one that matches nothing.
absl::StatusOr<std::string> HashContextSources(const std::string& ctx, absl::string_view keyword,
                                               const std::map<std::string, std::string>& known,
                                               std::vector<std::string>* sources) {
  oci::Sha256 h;
  for (std::string& s : *sources) {
    int depth = 0;
    for (absl::string_view c : absl::StrSplit(s, '/', absl::SkipEmpty())) {
      if (c == "..") {
        if (--depth < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(keyword, " failed: forbidden path outside the build context: ", s));
        }
      } else if (c != ".") {
        ++depth;
      }
    }
    std::string clean = df::CleanAbsPath("/" + s);
    s = clean == "/" ? "" : clean.substr(1);
    std::string pattern = s.empty() ? ctx : ctx + "/" + s;
    glob_t g{};
    int rc = glob(pattern.c_str(), GLOB_NOSORT, nullptr, &g);
    std::vector<std::string> matches;
    if (rc == 0) {
      for (size_t i = 0; i < g.gl_pathc; ++i) matches.push_back(g.gl_pathv[i]);
    }
    globfree(&g);
    if (matches.empty()) {
      return absl::NotFoundError(
          absl::StrCat(keyword, " failed: file not found in build context: ", s.empty() ? "." : s));
    }
    std::sort(matches.begin(), matches.end());
    for (const std::string& m : matches) {
      RETURN_IF_ERROR(HashTree(m, m.substr(ctx.size()), known, &h));
    }
  }
  return h.Finish().str();
}

absl::Status Err(absl::StatusCode code, const df::Instruction& ins, absl::string_view msg) {
  return absl::Status(code, absl::StrCat("Dockerfile:", ins.start_line, ": ", msg));
}

bool NamesRegistry(absl::string_view ref) {
  size_t slash = ref.find('/');
  if (slash == absl::string_view::npos) return false;
  absl::string_view host = ref.substr(0, slash);
  return absl::StrContains(host, ".") || absl::StrContains(host, ":") || host == "localhost";
}

// What a stage's COPY --from and RUN --mount=...,from= name (raw).
std::vector<std::string> StagesUsed(const df::Stage& stage) {
  std::vector<std::string> out;
  for (const df::Instruction& ins : stage.instructions) {
    if (auto* c = std::get_if<df::Copy>(&ins.command); c && !c->from.empty()) {
      out.push_back(c->from);
    } else if (auto* r = std::get_if<df::Run>(&ins.command)) {
      for (const df::Mount& m : r->mounts) {
        if (m.type == "bind" && !m.from.empty()) out.push_back(m.from);
      }
    }
  }
  return out;
}

// Writes COPY/ADD here-document bodies as files below `dir` (mode 0644).
absl::Status WriteHeredocFiles(const std::string& dir,
                               const std::vector<std::pair<std::string, std::string>>& files) {
  for (const auto& [name, body] : files) {
    const std::string path = dir + "/" + name;
    RETURN_IF_ERROR(MakeDirs(Dirname(path), 0755));
    UniqueFd out(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!out.valid()) return ErrnoStatus(errno, "create " + path);
    RETURN_IF_ERROR(WriteAll(out.get(), body, path));
    if (fchmod(out.get(), 0644) != 0) return ErrnoStatus(errno, "chmod " + path);
  }
  return absl::OkStatus();
}

class Run {
 public:
  Run(Builder* b, image::ImageStore* store, kv::KvStore* kv, exec::Executor* executor,
      const std::string& root, const BuildParams& params, const EventFn& events,
      BuildFailure* failure)
      : store_(store),
        executor_(executor),
        root_(root),
        p_(params),
        events_(events),
        failure_(failure),
        cache_(kv),
        registry_options_(b->registry_options()),
        max_parallel_(std::max(1, b->max_parallel_stages())),
        builder_(b) {
    builder_->BuildStarted();
  }
  ~Run() {
    builder_->Release(used_keys_);
    builder_->BuildFinished();
  }

  absl::StatusOr<BuildOutcome> Go();

 private:
  absl::StatusOr<BaseImage> GetImage(const std::string& ref);
  // The builder's registry options with the client's credentials for the
  // registry `ref` names, if it sent any.
  distribution::RegistryClientOptions OptionsFor(const std::string& ref) const;
  absl::Status RunStep(const df::ResolvedStep& step, const std::string& stage_name, StageState* st,
                       StageRun* sr);
  absl::Status ExecRun(const df::ResolvedStep& step, const std::string& key, StageState* st,
                       StageRun* sr);
  // Checks RUN's --mount options and adds what each contributes to the
  // cache key to `inputs` (a bind's source content or stage, a secret's
  // presence, never its value). Errors unprefixed, for Err().
  absl::Status RunMountInputs(const df::Run& run, const std::string& workdir,
                              std::vector<std::string>* inputs);
  // The layers (chain) and cache-key part of a bind mount's from=.
  absl::StatusOr<std::pair<std::optional<oci::Digest>, std::string>> MountFrom(
      const std::string& from);
  // Turns RUN's --mount options into the container's mounts (and secret
  // environment variables), recording what to release afterwards in `held`.
  struct HeldMounts {
    std::vector<std::string> caches;   // CacheMounts directories
    std::vector<std::string> views;    // snapshot view keys
    std::vector<std::string> scratch;  // host directories to remove
    std::vector<std::string> targets;  // mount points inside the container
  };
  absl::Status PrepareRunMounts(const df::Run& run, const df::ResolvedStep& step,
                                const std::string& key, const exec::Mount& rootfs,
                                exec::ContainerSpec* spec, HeldMounts* held);
  void ReleaseRunMounts(const HeldMounts& held);
  // Runs stage i (FROM, then its steps) and records its state in built_.
  absl::Status BuildStage(size_t i, const df::ResolvedFrom& from, const df::ResolvedStage& rs,
                          StageRun* sr);
  // A copy of a built stage's state; nullopt when it is not built.
  std::optional<StageState> Built(size_t i) {
    std::lock_guard<std::mutex> l(built_mu_);
    auto it = built_.find(i);
    if (it == built_.end()) return std::nullopt;
    return it->second;
  }
  // Writes ADD's fetched files below `dir` (mode 0600 as docker, mtime
  // from Last-Modified when given).
  absl::Status WriteDownloads(const std::string& dir,
                              const std::vector<std::pair<std::string, RemoteFile>>& files);
  absl::Status ExecFs(const df::ResolvedStep& step, const std::string& key, StageState* st,
                      const FsSource& source, const FsOp& op);
  // ADD of a git repository (git_source.h): resolves the ref to a commit
  // now (its id goes into `inputs`, the cache key) and points `op` and
  // `source` at a checkout below root_/git/; returns what makes that
  // checkout, run only on a cache miss. Errors name the Dockerfile line and
  // the repository.
  absl::StatusOr<std::function<absl::Status()>> PrepareGitSource(const df::Instruction& ins,
                                                                 const std::string& url,
                                                                 const std::string& key_prefix,
                                                                 FsOp* op, FsSource* source,
                                                                 std::vector<std::string>* inputs);
  // Turns the active snapshot `key` into a layer on top of st->chain.
  absl::StatusOr<std::optional<archive::LayerInfo>> CommitLayer(const std::string& key,
                                                                StageState* st);
  // `created_unix`: when the step's cache record was made, so that an
  // unchanged rebuild reproduces the image (same config and manifest
  // digests) unless SOURCE_DATE_EPOCH fixes every time anyway.
  void AddHistory(StageState* st, const std::string& created_by, bool empty, int64_t created_unix) {
    oci::History h;
    h.created = TimeString(p_.source_date_epoch ? p_.source_date_epoch
                                                : std::optional<int64_t>(created_unix));
    st->last_created_unix = std::max(st->last_created_unix, created_unix);
    h.created_by = created_by;
    h.comment = "buildkit.dockerfile.v0";
    h.empty_layer = empty;
    st->history.push_back(h);
  }
  void ApplyConfig(const df::ResolvedStep& step, StageState* st);
  // Fetches each cache_from cache into the local cache (warnings for missing
  // or foreign ones).
  absl::Status ImportCaches();
  // Pushes the records of used_keys_ (and their layers) to each cache_to.
  absl::Status ExportCaches();
  void UseKey(const std::string& key) {
    std::lock_guard<std::mutex> l(keys_mu_);
    if (used_set_.insert(key).second) {
      used_keys_.push_back(key);
      builder_->Hold(key);
    }
  }
  void Emit(BuildEvent e) {
    if (events_) events_(e);
  }

  image::ImageStore* store_;
  exec::Executor* executor_;
  const std::string& root_;
  const BuildParams& p_;
  const EventFn& events_;
  BuildFailure* failure_;
  LayerCache cache_;
  distribution::RegistryClientOptions registry_options_;
  df::Dockerfile df_;
  std::mutex images_mu_;                     // held across GetImage: one pull of a base at a time
  std::map<std::string, BaseImage> images_;  // guarded by images_mu_ once stages run
  std::mutex built_mu_;
  std::map<size_t, StageState> built_;  // guarded by built_mu_
  int total_ = 0;
  std::atomic<int> cached_{0};
  int max_parallel_;
  Builder* builder_;
  std::mutex keys_mu_;
  std::vector<std::string> used_keys_;  // guarded by keys_mu_, in first-use order
  std::set<std::string> used_set_;      // guarded by keys_mu_
};

absl::Status Run::ImportCaches() {
  for (const std::string& ref : p_.cache_from) {
    absl::StatusOr<oci::Manifest> m = store_->FetchManifestAndBlobs(ref, OptionsFor(ref));
    auto warn = [&](absl::string_view why) {
      BuildEvent w;
      w.kind = BuildEvent::Kind::kWarning;
      w.data = absl::StrCat("cache-from ", ref, ": ", why);
      Emit(w);
    };
    if (absl::IsNotFound(m.status())) {
      warn(m.status().message());
      continue;
    }
    if (!m.ok()) return Annotate(m.status(), "importing cache " + ref);
    if (m->config.media_type != kCacheConfigMediaType) {
      warn("not a Pier build cache (config media type " + m->config.media_type + ")");
      continue;
    }
    ASSIGN_OR_RETURN(std::string bytes, store_->content().ReadAll(m->config.digest, 64 << 20));
    absl::StatusOr<std::vector<std::pair<std::string, CacheRecord>>> records =
        DecodeCacheConfig(bytes);
    if (!records.ok()) return Annotate(records.status(), "importing cache " + ref);
    std::set<oci::Digest> fetched;
    for (const oci::Descriptor& d : m->layers) fetched.insert(d.digest);
    for (const auto& [key, record] : *records) {
      if (record.layer && !fetched.count(record.layer->digest)) {
        return absl::InvalidArgumentError(absl::StrCat("importing cache ", ref, ": record ", key,
                                                       " names layer ", record.layer->digest.str(),
                                                       " that the cache manifest lacks"));
      }
      ASSIGN_OR_RETURN(std::optional<CacheRecord> have, cache_.Lookup(key));
      if (have && (!have->layer || store_->content().Info(have->layer->digest).ok())) continue;
      CacheRecord imported = record;
      imported.last_used_unix = absl::ToUnixSeconds(absl::Now());
      imported.usage_count = 0;
      RETURN_IF_ERROR(cache_.Store(key, imported));
    }
  }
  return absl::OkStatus();
}

absl::Status Run::ExportCaches() {
  if (p_.cache_to.empty()) return absl::OkStatus();
  std::vector<std::pair<std::string, CacheRecord>> records;
  std::vector<oci::Descriptor> layers;
  std::set<oci::Digest> seen;
  for (const std::string& key : used_keys_) {
    ASSIGN_OR_RETURN(std::optional<CacheRecord> r, cache_.Lookup(key));
    if (!r) continue;
    if (r->layer && seen.insert(r->layer->digest).second) {
      oci::Descriptor d;
      d.media_type = r->layer->media_type;
      d.digest = r->layer->digest;
      d.size = static_cast<int64_t>(r->layer->size);
      layers.push_back(d);
    }
    records.emplace_back(key, *std::move(r));
  }
  const std::string config = EncodeCacheConfig(records);
  ASSIGN_OR_RETURN(content::Info info, store_->content().Put(config, oci::Digest::Of(config)));
  (void)info;
  oci::Manifest m;
  m.media_type = oci::kOciManifest;
  m.artifact_type = kCacheArtifactType;
  m.config.media_type = kCacheConfigMediaType;
  m.config.digest = oci::Digest::Of(config);
  m.config.size = static_cast<int64_t>(config.size());
  m.layers = layers;
  const std::string manifest = m.ToJson();
  std::vector<oci::Descriptor> blobs = layers;
  blobs.push_back(m.config);
  for (const std::string& ref : p_.cache_to) {
    absl::StatusOr<oci::Descriptor> d =
        store_->PushManifest(ref, blobs, manifest, oci::kOciManifest, OptionsFor(ref));
    if (!d.ok()) return Annotate(d.status(), "exporting cache to " + ref);
  }
  return absl::OkStatus();
}

distribution::RegistryClientOptions Run::OptionsFor(const std::string& ref) const {
  distribution::RegistryClientOptions opts = registry_options_;
  absl::StatusOr<oci::Reference> parsed = oci::Reference::Parse(ref);
  if (!parsed.ok()) return opts;
  for (const auto& [host, creds] : p_.credentials) {
    if (distribution::SameRegistryHost(host, parsed->registry)) opts.credentials = creds;
  }
  return opts;
}

absl::StatusOr<BaseImage> Run::GetImage(const std::string& ref) {
  std::lock_guard<std::mutex> l(images_mu_);
  auto it = images_.find(ref);
  if (it != images_.end()) return it->second;
  BaseImage b;
  absl::StatusOr<image::Image> img = absl::NotFoundError("");
  if (!p_.pull) img = store_->Get(ref);
  if (!img.ok()) {
    img = store_->Pull(ref, OptionsFor(ref));
    if (!img.ok()) return Annotate(img.status(), "pulling " + ref);
  }
  b.image = *img;
  ASSIGN_OR_RETURN(b.config, store_->GetConfig(b.image));
  ASSIGN_OR_RETURN(b.chain, store_->Unpack(b.image));
  images_[ref] = b;
  return b;
}

void Run::ApplyConfig(const df::ResolvedStep& step, StageState* st) {
  const df::Instruction& ins = step.instruction;
  oci::ContainerConfig& c = st->config;
  if (auto* env = std::get_if<df::Env>(&ins.command)) {
    (void)env;
    c.env = step.env.ToEnvList();
  } else if (std::holds_alternative<df::Workdir>(ins.command)) {
    c.working_dir = step.workdir;
  } else if (auto* u = std::get_if<df::User>(&ins.command)) {
    c.user = u->user + (u->group ? ":" + *u->group : "");
  } else if (auto* e = std::get_if<df::Expose>(&ins.command)) {
    std::set<std::string> ports(c.exposed_ports.begin(), c.exposed_ports.end());
    for (const std::string& w : e->ports) {
      auto ps = df::ParsePortSpec(w);
      if (!ps.ok()) continue;
      for (uint32_t port = ps->start; port <= ps->end; ++port) {
        ports.insert(absl::StrCat(port, "/", ps->protocol));
      }
    }
    c.exposed_ports.assign(ports.begin(), ports.end());
  } else if (auto* v = std::get_if<df::Volume>(&ins.command)) {
    std::set<std::string> vols(c.volumes.begin(), c.volumes.end());
    vols.insert(v->paths.begin(), v->paths.end());
    c.volumes.assign(vols.begin(), vols.end());
  } else if (auto* l = std::get_if<df::Label>(&ins.command)) {
    for (const df::KeyValue& kv : l->labels) c.labels[kv.key] = kv.value;
  } else if (auto* cmd = std::get_if<df::Cmd>(&ins.command)) {
    c.cmd = CommandArgs(cmd->command,
                        c.shell.empty() ? std::vector<std::string>{"/bin/sh", "-c"} : c.shell);
    st->cmd_set = true;
  } else if (auto* ep = std::get_if<df::Entrypoint>(&ins.command)) {
    c.entrypoint = CommandArgs(
        ep->command, c.shell.empty() ? std::vector<std::string>{"/bin/sh", "-c"} : c.shell);
    if (!st->cmd_set) c.cmd.reset();
  } else if (auto* sh = std::get_if<df::Shell>(&ins.command)) {
    c.shell = sh->shell;
  } else if (auto* ss = std::get_if<df::Stopsignal>(&ins.command)) {
    c.stop_signal = ss->signal;
  } else if (auto* m = std::get_if<df::Maintainer>(&ins.command)) {
    st->author = m->name;
  } else if (auto* ob = std::get_if<df::Onbuild>(&ins.command)) {
    c.on_build.push_back(ob->expression);
  } else if (auto* hc = std::get_if<df::Healthcheck>(&ins.command)) {
    oci::HealthConfig h;
    if (hc->none) {
      h.test = {"NONE"};
    } else if (hc->command.exec_form) {
      h.test = {"CMD"};
      h.test.insert(h.test.end(), hc->command.exec.begin(), hc->command.exec.end());
    } else {
      h.test = {"CMD-SHELL", hc->command.shell};
    }
    auto ns = [](const std::optional<absl::Duration>& d) {
      return d ? absl::ToInt64Nanoseconds(*d) : int64_t{0};
    };
    h.interval_ns = ns(hc->interval);
    h.timeout_ns = ns(hc->timeout);
    h.start_period_ns = ns(hc->start_period);
    h.start_interval_ns = ns(hc->start_interval);
    h.retries = hc->retries.value_or(0);
    c.healthcheck = h;
  }
}

absl::StatusOr<std::optional<archive::LayerInfo>> Run::CommitLayer(const std::string& key,
                                                                   StageState* st) {
  image::Snapshotter& snap = store_->snapshotter();
  ASSIGN_OR_RETURN(std::string upper, snap.UpperDir(key));
  ASSIGN_OR_RETURN(std::unique_ptr<content::ContentWriter> w,
                   store_->content().OpenWriter("build-" + key));
  archive::CreateOptions opts;
  opts.source_date_epoch = p_.source_date_epoch;
  absl::StatusOr<archive::LayerInfo> info = archive::CreateLayerFromOverlayUpper(
      upper, [&](absl::string_view chunk) { return w->Write(chunk); }, opts);
  if (!info.ok() || info->entries == 0) {
    (void)w->Abort();
    (void)snap.RemoveActive(key);
    if (!info.ok()) return info.status();
    return std::nullopt;
  }
  absl::StatusOr<content::Info> committed = w->Commit(info->size, info->digest);
  if (!committed.ok()) {
    (void)snap.RemoveActive(key);
    return committed.status();
  }
  ASSIGN_OR_RETURN(oci::Digest chain, snap.Commit(key, info->diff_id));
  st->chain = chain;
  return *info;
}

absl::Status Run::WriteDownloads(const std::string& dir,
                                 const std::vector<std::pair<std::string, RemoteFile>>& files) {
  for (const auto& [rel, f] : files) {
    const std::string path = dir + "/" + rel;
    RETURN_IF_ERROR(MakeDirs(Dirname(path), 0700));
    ASSIGN_OR_RETURN(std::unique_ptr<content::FileReader> r,
                     store_->content().OpenReader(f.digest));
    UniqueFd out(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!out.valid()) return ErrnoStatus(errno, "create " + path);
    std::string buf(1 << 16, '\0');
    for (;;) {
      ASSIGN_OR_RETURN(size_t n, r->Read(buf.data(), buf.size()));
      if (n == 0) break;
      RETURN_IF_ERROR(WriteAll(out.get(), absl::string_view(buf.data(), n), path));
    }
    if (f.mtime_unix) {
      timespec ts[2] = {{*f.mtime_unix, 0}, {*f.mtime_unix, 0}};
      if (futimens(out.get(), ts) != 0) return ErrnoStatus(errno, "set the time of " + path);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::function<absl::Status()>> Run::PrepareGitSource(
    const df::Instruction& ins, const std::string& url, const std::string& key_prefix, FsOp* op,
    FsSource* source, std::vector<std::string>* inputs) {
  absl::StatusOr<GitSource> git = ParseGitUrl(url);
  if (!git.ok()) {
    return Err(git.status().code(), ins, absl::StrCat("ADD ", url, ": ", git.status().message()));
  }
  absl::StatusOr<GitCommit> commit = ResolveGitRef(*git);
  if (!commit.ok()) {
    return Err(commit.status().code(), ins,
               absl::StrCat("ADD ", url, ": ", commit.status().message()));
  }
  const bool keep = std::get<df::Add>(ins.command).keep_git_dir.value_or(false);
  inputs->push_back(absl::StrCat("git=", git->url, " commit=", commit->id, " subdir=", git->subdir,
                                 " keep-git-dir=", keep));
  op->extract_archives = false;
  std::string pattern;  // the subdirectory, literally (no wildcards)
  for (char ch : git->subdir) {
    if (ch == '*' || ch == '?' || ch == '[' || ch == '\\') pattern += '\\';
    pattern += ch;
  }
  op->sources = {pattern};
  source->dir = root_ + "/git/" + key_prefix;
  const std::string dir = source->dir;
  return std::function<absl::Status()>([this, url, dir, keep, g = *git, c = *commit]() {
    absl::Status s = MakeDirs(root_ + "/git", 0700);
    if (s.ok()) s = CheckoutGit(g, c, dir, keep);
    if (s.ok() && !g.subdir.empty()) {
      struct stat st;
      if (lstat((dir + "/" + g.subdir).c_str(), &st) != 0) {
        s = absl::NotFoundError(absl::StrCat("no directory ", g.subdir, " at ", c.id));
      }
    }
    // RunStep adds the Dockerfile line.
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat("ADD ", url, ": ", s.message()));
    return absl::OkStatus();
  });
}

absl::Status Run::ExecFs(const df::ResolvedStep& step, const std::string& key, StageState* st,
                         const FsSource& source, const FsOp& op) {
  (void)step;
  image::Snapshotter& snap = store_->snapshotter();
  ASSIGN_OR_RETURN(std::vector<exec::Mount> mounts, snap.Prepare(key, st->chain));
  absl::Status s = RunFsOp(mounts, root_ + "/mnt/" + key, source, op);
  (void)rmdir((root_ + "/mnt/" + key).c_str());
  if (!s.ok()) {
    (void)snap.RemoveActive(key);
    return s;
  }
  return absl::OkStatus();
}

absl::Status Run::ExecRun(const df::ResolvedStep& step, const std::string& key, StageState* st,
                          StageRun* sr) {
  const df::Instruction& ins = step.instruction;
  const auto& run = std::get<df::Run>(ins.command);
  image::Snapshotter& snap = store_->snapshotter();
  uint32_t uid = 0, gid = 0;
  RETURN_IF_ERROR(ResolveUser(snap, st->chain, st->config.user, &uid, &gid));
  ASSIGN_OR_RETURN(std::vector<exec::Mount> mounts, snap.Prepare(key, st->chain));
  std::string mnt = root_ + "/mnt/" + key;
  HeldMounts held;
  // Undoes the preparation when the RUN does not get to run.
  auto abandon = [&](absl::Status s) {
    ReleaseRunMounts(held);
    (void)rmdir(mnt.c_str());
    (void)snap.RemoveActive(key);
    return s;
  };
  if (absl::Status s = MakeDirs(mnt, 0700); !s.ok()) return abandon(s);
  exec::ContainerSpec spec;
  spec.id = key;
  spec.rootfs = mnt;
  spec.rootfs_mounts = mounts;
  for (exec::Mount& m : spec.rootfs_mounts) m.target = "";
  if (run.network == "host") spec.namespaces.net.mode = exec::NamespaceMode::kHost;
  std::vector<std::string> shell =
      st->config.shell.empty() ? std::vector<std::string>{"/bin/sh", "-c"} : st->config.shell;
  spec.process.args = CommandArgs(run.command, shell);
  spec.process.env = step.run_env;
  spec.process.cwd = step.workdir.empty() ? "/" : step.workdir;
  spec.process.uid = uid;
  spec.process.gid = gid;
  spec.cgroup.memory_bytes = p_.memory_bytes;
  if (absl::Status s = PrepareRunMounts(run, step, key, mounts.at(0), &spec, &held); !s.ok()) {
    return abandon(Err(s.code(), ins, s.message()));
  }
  if (!run.heredocs.empty() && !run.command.exec_form) {
    HeredocRun h = RunWithHeredocs(run, shell, df_.escape);
    spec.process.args = h.args;
    if (h.script) {
      // The script is bound read-only into the container's /dev, which is
      // no part of the layer.
      const std::string dir = root_ + "/mnt/" + key + "-heredoc";
      held.scratch.push_back(dir);
      const std::string file = dir + "/script";
      absl::Status s = MakeDirs(dir, 0700);
      if (s.ok()) s = WriteFileReplace(file, h.script->body, 0755);
      if (!s.ok()) return abandon(s);
      spec.mounts.push_back(
          exec::Mount{"bind", file, absl::StrCat(kHeredocDir, "/", h.script->name), {"ro"}});
    }
  }
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return abandon(ErrnoStatus(errno, "pipe"));
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    return abandon(ErrnoStatus(errno, "pipe"));
  }
  spec.stdio.out = out[1];
  spec.stdio.err = err[1];
  absl::StatusOr<std::unique_ptr<exec::Process>> proc = executor_->Start(spec);
  close(out[1]);
  close(err[1]);
  std::mutex mu;
  std::string tail;
  auto reader = [&](int fd, int stream) {
    char buf[16384];
    for (;;) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      BuildEvent e;
      e.kind = BuildEvent::Kind::kStepLog;
      e.step = sr->step_no;
      e.stream = stream;
      e.data.assign(buf, n);
      {
        std::lock_guard<std::mutex> l(mu);
        tail.append(buf, n);
        if (tail.size() > 2048) tail.erase(0, tail.size() - 2048);
      }
      Emit(std::move(e));
    }
    close(fd);
  };
  std::thread t1(reader, out[0], 1);
  std::thread t2(reader, err[0], 2);
  absl::StatusOr<exec::ExitStatus> st_exit = absl::UnknownError("not started");
  if (proc.ok()) {
    st_exit = (*proc)->Wait();
    (void)(*proc)->Cleanup();
  }
  t1.join();
  t2.join();
  (void)rmdir(mnt.c_str());
  ReleaseRunMounts(held);
  if (!held.targets.empty()) {
    // Mount points the executor made in the snapshot are no part of the layer.
    absl::StatusOr<std::string> upper = snap.UpperDir(key);
    std::vector<std::string> lowers;
    for (std::optional<oci::Digest> c = st->chain; c;) {
      absl::StatusOr<std::string> dir = snap.Dir(*c);
      absl::StatusOr<image::SnapshotInfo> info = snap.Stat(*c);
      if (!dir.ok() || !info.ok()) break;
      lowers.push_back(*dir);
      c = info->parent;
    }
    std::vector<std::string> targets = held.targets;
    std::sort(targets.rbegin(), targets.rend());  // deepest first
    if (upper.ok()) {
      for (const std::string& t : targets) RemoveMountpointTraces(*upper, lowers, t);
    }
  }
  std::string cmd = CommandText(run.command);
  if (!proc.ok() || !st_exit.ok()) {
    (void)snap.RemoveActive(key);
    absl::Status s = proc.ok() ? st_exit.status() : proc.status();
    return Err(s.code(), ins, absl::StrCat("RUN ", cmd, ": ", s.message()));
  }
  if (st_exit->ExitCode() != 0) {
    (void)snap.RemoveActive(key);
    sr->failure.exit_code = st_exit->ExitCode();
    std::string msg = absl::StrCat(
        "RUN ", cmd, ": process did not complete successfully: exit code ", st_exit->ExitCode());
    if (!tail.empty()) absl::StrAppend(&msg, "\n", tail);
    return Err(absl::StatusCode::kAborted, ins, msg);
  }
  return absl::OkStatus();
}

namespace {

// A mount's target in the container: relative ones are below the working
// directory; a secret's defaults to /run/secrets/<id>.
std::string MountTarget(const df::Mount& m, const std::string& workdir) {
  std::string t = m.target;
  if (m.type == "secret" && t.empty()) t = "/run/secrets/" + m.id;
  if (t.empty()) return t;
  if (t[0] != '/') t = (workdir.empty() ? std::string("/") : workdir) + "/" + t;
  return df::CleanAbsPath(t);
}

// A secret's id: id=, else the target's file name.
std::string SecretId(const df::Mount& m) {
  if (!m.id.empty()) return m.id;
  size_t slash = m.target.rfind('/');
  return slash == std::string::npos ? m.target : m.target.substr(slash + 1);
}

absl::StatusOr<uint32_t> MountNumber(const std::string& text, int base, uint32_t fallback,
                                     absl::string_view what) {
  if (text.empty()) return fallback;
  uint32_t v = 0;
  if (!absl::numbers_internal::safe_strtou32_base(text, &v, base)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid ", what, " \"", text, "\""));
  }
  return v;
}

// InvalidArgument unless a cache or secret mount's mode (octal), uid and
// gid are numbers.
absl::Status CheckModeAndOwner(const df::Mount& m, const std::string& what) {
  for (const auto& [text, base, name] :
       {std::tuple(m.mode, 8, "mode"), std::tuple(m.uid, 10, "uid"),
        std::tuple(m.gid, 10, "gid")}) {
    absl::StatusOr<uint32_t> v = MountNumber(text, base, 0, name);
    if (!v.ok()) return absl::InvalidArgumentError(what + ": " + std::string(v.status().message()));
  }
  return absl::OkStatus();
}

// A tmpfs size= in bytes, optionally with a k, m or g suffix.
bool ValidTmpfsSize(absl::string_view size) {
  if (size.empty()) return false;
  if (absl::ascii_isalpha(static_cast<unsigned char>(size.back()))) {
    char unit = absl::ascii_tolower(static_cast<unsigned char>(size.back()));
    if (unit != 'k' && unit != 'm' && unit != 'g') return false;
    size.remove_suffix(1);
  }
  uint64_t v = 0;
  return absl::SimpleAtoi(size, &v);
}

// The host path of a bind mount's source in the build context; it must
// stay inside the context, symlinks included.
absl::StatusOr<std::string> ContextBindSource(const std::string& ctx, const std::string& source) {
  int depth = 0;
  for (absl::string_view c : absl::StrSplit(source, '/', absl::SkipEmpty())) {
    if (c == "..") {
      if (--depth < 0) break;
    } else if (c != ".") {
      ++depth;
    }
  }
  const std::string outside =
      absl::StrCat("RUN --mount=type=bind: source \"", source, "\" is outside the build context");
  if (depth < 0) return absl::InvalidArgumentError(outside);
  const std::string clean = df::CleanAbsPath("/" + source);
  char real_ctx[PATH_MAX], real[PATH_MAX];
  if (realpath(ctx.c_str(), real_ctx) == nullptr) return ErrnoStatus(errno, "build context");
  const std::string path = clean == "/" ? ctx : ctx + clean;
  if (realpath(path.c_str(), real) == nullptr) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return absl::NotFoundError(absl::StrCat("RUN --mount=type=bind: source \"", source,
                                              "\" not found in the build context"));
    }
    return ErrnoStatus(errno, "RUN --mount=type=bind: source " + source);
  }
  const std::string r = real, rc = real_ctx;
  if (r != rc && !absl::StartsWith(r, rc == "/" ? rc : rc + "/")) {
    return absl::InvalidArgumentError(outside);
  }
  return r;
}

}  // namespace

absl::StatusOr<std::pair<std::optional<oci::Digest>, std::string>> Run::MountFrom(
    const std::string& from) {
  std::optional<size_t> idx = df::FindStage(df_, from);
  if (idx) {
    std::optional<StageState> src = Built(*idx);
    if (!src) {
      return absl::InvalidArgumentError("from=" + from + ": stage is not built before this one");
    }
    return std::make_pair(src->chain, "stage=" + src->key);
  }
  if (!absl::StrContains(from, "/") && !absl::StrContains(from, ":") &&
      !absl::StrContains(from, ".")) {
    return absl::InvalidArgumentError("from=" + from + ": no such stage");
  }
  ASSIGN_OR_RETURN(BaseImage b, GetImage(from));
  return std::make_pair(b.chain, "image=" + b.image.target.digest.str());
}

absl::Status Run::RunMountInputs(const df::Run& run, const std::string& workdir,
                                 std::vector<std::string>* inputs) {
  std::set<std::string> targets;
  // Cache ids of this RUN: how often each is mounted, and whether locked.
  std::map<std::string, std::pair<int, bool>> cache_ids;
  for (const df::Mount& m : run.mounts) {
    const std::string what = "RUN --mount=type=" + m.type;
    if (m.type == "ssh") {
      return absl::UnimplementedError(
          what +
          ": SSH agent forwarding is not available in Pier builds; give the step what it "
          "needs with --mount=type=secret");
    }
    if (m.type == "secret" && m.id.empty() && m.target.empty()) {
      return absl::InvalidArgumentError(what + ": needs id=<id> or target=<path>");
    }
    const std::string target = MountTarget(m, workdir);
    if (target == "/") return absl::InvalidArgumentError(what + ": cannot mount on /");
    if (!targets.insert(target).second) {
      return absl::InvalidArgumentError(what + ": " + target + " is the target of two mounts");
    }
    std::string in = absl::StrCat("mount=", m.type, " target=", target, " ro=", m.readonly);
    if (m.type == "cache") {
      if (!m.from.empty()) {
        return absl::InvalidArgumentError(
            what +
            ": from= (a cache seeded from a stage or image) is not available; copy the files "
            "into the cache in the RUN instead, e.g. from a --mount=type=bind,from=...");
      }
      RETURN_IF_ERROR(CheckModeAndOwner(m, what));
      const std::string id = m.id.empty() ? target : m.id;
      auto& [count, locked] = cache_ids[id];
      ++count;
      locked |= m.sharing == "locked";
      if (count > 1 && locked) {
        // The second mount would wait for the first forever.
        return absl::InvalidArgumentError(what + ": cache id \"" + id +
                                          "\" is mounted twice and sharing=locked");
      }
      absl::StrAppend(&in, " id=", id, " sharing=", m.sharing, " mode=", m.mode, " uid=", m.uid,
                      " gid=", m.gid);
    } else if (m.type == "tmpfs") {
      if (!m.size.empty() && !ValidTmpfsSize(m.size)) {
        return absl::InvalidArgumentError(what + ": invalid size \"" + m.size +
                                          "\" (bytes, or a number with k, m or g)");
      }
      absl::StrAppend(&in, " size=", m.size);
    } else if (m.type == "bind") {
      if (m.from.empty()) {
        ASSIGN_OR_RETURN(std::string path, ContextBindSource(p_.context_dir, m.source));
        char real_ctx[PATH_MAX];
        if (realpath(p_.context_dir.c_str(), real_ctx) == nullptr) {
          return ErrnoStatus(errno, "build context");
        }
        std::string rel = path.substr(std::string(real_ctx).size());
        oci::Sha256 h;
        RETURN_IF_ERROR(HashTree(path, rel.empty() ? "/" : rel, p_.context_digests, &h));
        absl::StrAppend(&in, " context=", h.Finish().str());
      } else {
        absl::StatusOr<std::pair<std::optional<oci::Digest>, std::string>> from = MountFrom(m.from);
        if (!from.ok()) {
          return absl::Status(from.status().code(),
                              what + ": " + std::string(from.status().message()));
        }
        absl::StrAppend(&in, " ", from->second, " source=", df::CleanAbsPath("/" + m.source));
      }
    } else if (m.type == "secret") {
      const std::string id = SecretId(m);
      const bool present = p_.secrets.count(id) > 0;
      if (!present && m.required) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ",id=", id, ": the secret is required but the build has none by ",
                         "that id (pier build --secret id=", id, ",src=<file>)"));
      }
      RETURN_IF_ERROR(CheckModeAndOwner(m, what));
      absl::StrAppend(&in, " id=", id, " env=", m.env, " present=", present, " mode=", m.mode,
                      " uid=", m.uid, " gid=", m.gid);
    }
    inputs->push_back(in);
  }
  return absl::OkStatus();
}

absl::Status Run::PrepareRunMounts(const df::Run& run, const df::ResolvedStep& step,
                                   const std::string& key, const exec::Mount& rootfs,
                                   exec::ContainerSpec* spec, HeldMounts* held) {
  image::Snapshotter& snap = store_->snapshotter();
  // The snapshotter's own overlay settings (index=off, userxattr, ...).
  std::vector<std::string> overlay_options;
  for (const std::string& o : rootfs.options) {
    if (o != "ro" && !absl::StartsWith(o, "lowerdir=") && !absl::StartsWith(o, "upperdir=") &&
        !absl::StartsWith(o, "workdir=")) {
      overlay_options.push_back(o);
    }
  }
  for (size_t i = 0; i < run.mounts.size(); ++i) {
    const df::Mount& m = run.mounts[i];
    const std::string what = "RUN --mount=type=" + m.type;
    const std::string target = MountTarget(m, step.workdir);
    const std::string scratch = absl::StrCat(root_, "/mnt/", key, "-m", i);
    std::vector<std::string> ro;
    if (m.readonly) ro.push_back("ro");
    if (m.type == "cache") {
      ASSIGN_OR_RETURN(uint32_t mode, MountNumber(m.mode, 8, 0755, "mode"));
      ASSIGN_OR_RETURN(uint32_t uid, MountNumber(m.uid, 10, 0, "uid"));
      ASSIGN_OR_RETURN(uint32_t gid, MountNumber(m.gid, 10, 0, "gid"));
      absl::StatusOr<std::string> dir =
          builder_->cache_mounts().Acquire(m.id.empty() ? target : m.id, m.sharing, mode, uid, gid);
      if (!dir.ok()) return Annotate(dir.status(), what);
      held->caches.push_back(*dir);
      spec->mounts.push_back(exec::Mount{"bind", *dir, target, ro});
    } else if (m.type == "tmpfs") {
      std::vector<std::string> opts = {"nosuid", "nodev"};
      if (!m.size.empty()) opts.push_back("size=" + m.size);
      spec->mounts.push_back(exec::Mount{"tmpfs", "tmpfs", target, opts});
    } else if (m.type == "bind") {
      std::vector<std::string> lowers;
      std::string file;
      if (m.from.empty()) {
        ASSIGN_OR_RETURN(std::string path, ContextBindSource(p_.context_dir, m.source));
        struct stat sb;
        if (stat(path.c_str(), &sb) != 0) return ErrnoStatus(errno, what + ": " + m.source);
        if (S_ISDIR(sb.st_mode)) {
          lowers.push_back(path);
        } else {
          file = path;
        }
      } else {
        ASSIGN_OR_RETURN(auto from, MountFrom(m.from));
        // A view keeps the layers from being removed while they are mounted.
        const std::string view = absl::StrCat(key, "-m", i);
        ASSIGN_OR_RETURN(std::vector<exec::Mount> unused, snap.View(view, from.first));
        (void)unused;
        held->views.push_back(view);
        std::vector<std::string> dirs;
        for (std::optional<oci::Digest> c = from.first; c;) {
          ASSIGN_OR_RETURN(std::string dir, snap.Dir(*c));
          ASSIGN_OR_RETURN(image::SnapshotInfo info, snap.Stat(*c));
          dirs.push_back(dir);
          c = info.parent;
        }
        LayeredPath lp = LookupLayered(dirs, df::CleanAbsPath("/" + m.source).substr(1));
        if (dirs.empty() && df::CleanAbsPath("/" + m.source) == "/") {
          // The root of a stage with no layers (FROM scratch): an empty directory.
          held->scratch.push_back(scratch);
          RETURN_IF_ERROR(MakeDirs(scratch + "/empty", 0755));
          lp.found = true;
          lp.paths = {scratch + "/empty"};
          if (stat(lp.paths[0].c_str(), &lp.st) != 0) return ErrnoStatus(errno, lp.paths[0]);
        }
        if (!lp.found) {
          return absl::NotFoundError(
              absl::StrCat(what, ",from=", m.from, ": source \"", m.source, "\" not found"));
        }
        if (S_ISDIR(lp.st.st_mode)) {
          lowers = lp.paths;
        } else {
          file = lp.paths[0];
        }
      }
      if (!file.empty()) {
        if (!m.readonly) {
          // Writes go to a copy, discarded afterwards.
          held->scratch.push_back(scratch);
          RETURN_IF_ERROR(MakeDirs(scratch, 0700));
          ASSIGN_OR_RETURN(std::string data, ReadFile(file));
          struct stat sb;
          if (stat(file.c_str(), &sb) != 0) return ErrnoStatus(errno, file);
          RETURN_IF_ERROR(WriteFileReplace(scratch + "/file", data, sb.st_mode & 07777));
          file = scratch + "/file";
        }
        spec->mounts.push_back(exec::Mount{"bind", file, target, ro});
      } else if (m.readonly && lowers.size() == 1) {
        spec->mounts.push_back(exec::Mount{"bind", lowers[0], target, {"rbind", "ro"}});
      } else {
        std::vector<std::string> opts = {"lowerdir=" + absl::StrJoin(lowers, ":")};
        if (m.readonly) {
          opts.insert(opts.begin(), "ro");
        } else {
          // Writes go to a scratch upper directory, discarded afterwards.
          held->scratch.push_back(scratch);
          RETURN_IF_ERROR(MakeDirs(scratch + "/upper", 0755));
          RETURN_IF_ERROR(MakeDirs(scratch + "/work", 0700));
          opts.push_back("upperdir=" + scratch + "/upper");
          opts.push_back("workdir=" + scratch + "/work");
        }
        opts.insert(opts.end(), overlay_options.begin(), overlay_options.end());
        spec->mounts.push_back(exec::Mount{"overlay", "overlay", target, opts});
      }
    } else if (m.type == "secret") {
      auto it = p_.secrets.find(SecretId(m));
      if (it == p_.secrets.end()) continue;  // optional and absent
      if (!m.env.empty()) {
        const std::string var = m.env + "=" + it->second;
        auto& env = spec->process.env;
        auto old = std::find_if(env.begin(), env.end(), [&](const std::string& e) {
          return absl::StartsWith(e, m.env + "=");
        });
        if (old == env.end()) {
          env.push_back(var);
        } else {
          *old = var;
        }
        if (m.target.empty()) continue;  // env only
      }
      ASSIGN_OR_RETURN(uint32_t mode, MountNumber(m.mode, 8, 0400, "mode"));
      ASSIGN_OR_RETURN(uint32_t uid, MountNumber(m.uid, 10, 0, "uid"));
      ASSIGN_OR_RETURN(uint32_t gid, MountNumber(m.gid, 10, 0, "gid"));
      held->scratch.push_back(scratch);
      RETURN_IF_ERROR(MakeDirs(scratch, 0700));
      const std::string file = scratch + "/secret";
      RETURN_IF_ERROR(WriteFileReplace(file, it->second, static_cast<int>(mode)));
      if (chmod(file.c_str(), mode) != 0 || chown(file.c_str(), uid, gid) != 0) {
        return ErrnoStatus(errno, what + ": " + file);
      }
      spec->mounts.push_back(
          exec::Mount{"bind", file, target, {"ro", "nosuid", "nodev", "noexec"}});
    } else {
      return absl::InvalidArgumentError(what + ": unknown mount type");
    }
    held->targets.push_back(target);
  }
  // Parents before what is mounted inside them.
  std::stable_sort(spec->mounts.begin(), spec->mounts.end(),
                   [](const exec::Mount& a, const exec::Mount& b) { return a.target < b.target; });
  return absl::OkStatus();
}

void Run::ReleaseRunMounts(const HeldMounts& held) {
  for (const std::string& dir : held.caches) builder_->cache_mounts().Release(dir);
  for (const std::string& view : held.views) (void)store_->snapshotter().RemoveActive(view);
  for (const std::string& dir : held.scratch) (void)RemoveAll(dir);
}

absl::Status Run::RunStep(const df::ResolvedStep& step, const std::string& stage_name,
                          StageState* st, StageRun* sr) {
  const df::Instruction& ins = step.instruction;
  ++sr->step_no;
  const int step_no = sr->step_no;
  sr->failure.line = ins.start_line;
  sr->failure.step = step_no;
  std::string desc = Describe(ins);
  std::vector<std::string> inputs;
  bool fs = false;
  FsOp op;
  FsSource source;
  std::string src_view_key;
  std::optional<oci::Digest> src_chain;                       // COPY --from: the source's layers
  std::vector<std::string> urls;                              // ADD: http(s) sources
  std::string checksum;                                       // ADD --checksum
  std::vector<std::pair<std::string, RemoteFile>> downloads;  // ADD: path under source.dir
  std::vector<std::pair<std::string, std::string>> heredoc_files;  // COPY <<EOF: name, body
  std::function<absl::Status()> fetch_git;  // ADD <git>: checks out source.dir
  image::Snapshotter& snap = store_->snapshotter();
  const std::string key_prefix = absl::StrCat("b-", p_.build_id, "-", step_no);
  if (auto* run = std::get_if<df::Run>(&ins.command)) {
    fs = true;
    inputs = step.run_env;
    inputs.push_back("user=" + st->config.user);
    inputs.push_back("workdir=" + step.workdir);
    inputs.push_back("shell=" + Quote(st->config.shell));
    inputs.push_back("network=" + run->network);
    for (const df::Heredoc& h : run->heredocs) {
      inputs.push_back(
          absl::StrCat("heredoc=", h.fd, "<<", h.name, " ", oci::Digest::Of(h.content).str()));
    }
    absl::Status mounts = RunMountInputs(*run, step.workdir, &inputs);
    if (!mounts.ok()) return Err(mounts.code(), ins, mounts.message());
    desc = "RUN " +
           (run->command.exec_form
                ? Quote(run->command.exec)
                : absl::StrJoin(st->config.shell.empty() ? std::vector<std::string>{"/bin/sh", "-c"}
                                                         : st->config.shell,
                                " ") +
                      " " + run->command.shell);
  } else if (std::holds_alternative<df::Copy>(ins.command) ||
             std::holds_alternative<df::Add>(ins.command)) {
    fs = true;
    const df::CopyBase& c = std::holds_alternative<df::Copy>(ins.command)
                                ? static_cast<const df::CopyBase&>(std::get<df::Copy>(ins.command))
                                : std::get<df::Add>(ins.command);
    std::string from;
    if (auto* cp = std::get_if<df::Copy>(&ins.command)) from = cp->from;
    if (!c.heredocs.empty()) {
      if (!c.sources.empty() || !from.empty()) {
        return Err(absl::StatusCode::kInvalidArgument, ins,
                   ins.keyword +
                       ": here-documents cannot be combined with other sources or --from in one "
                       "instruction; use one " +
                       ins.keyword + " for each");
      }
      for (const df::HeredocSource& h : c.heredocs) {
        for (absl::string_view part : absl::StrSplit(h.path, '/')) {
          if (part == ".." || h.path.front() == '/') {
            return Err(
                absl::StatusCode::kInvalidArgument, ins,
                ins.keyword + ": here-document name <<" + h.path + " must be a relative file name");
          }
        }
      }
    }
    op.what = ins.keyword;
    op.sources = c.sources;
    const bool is_add = std::holds_alternative<df::Add>(ins.command);
    std::vector<std::string> git_urls;
    for (const std::string& s : c.sources) {
      if (is_add && IsGitUrl(s)) {
        git_urls.push_back(s);
      } else if (IsRemoteUrl(s)) {
        if (!is_add) {
          return Err(absl::StatusCode::kInvalidArgument, ins,
                     "COPY cannot copy from a URL (" + s + "): use ADD");
        }
        urls.push_back(s);
      }
    }
    if (!git_urls.empty() && c.sources.size() != 1) {
      return Err(absl::StatusCode::kInvalidArgument, ins,
                 "ADD of a git repository takes one source: use one ADD for each");
    }
    if (!urls.empty() && urls.size() != c.sources.size()) {
      return Err(absl::StatusCode::kUnimplemented, ins,
                 "ADD with both URLs and local sources is not supported: use one ADD for each");
    }
    if (is_add && !std::get<df::Add>(ins.command).checksum.empty()) {
      checksum = std::get<df::Add>(ins.command).checksum;
      if (urls.empty()) {
        return Err(absl::StatusCode::kInvalidArgument, ins,
                   "ADD --checksum=" + checksum + " is only supported for http(s) sources");
      }
      if (!oci::Digest::Parse(checksum).ok()) {
        return Err(absl::StatusCode::kInvalidArgument, ins,
                   "ADD --checksum=" + checksum + ": expected sha256:<64 hex digits>");
      }
    }
    std::string dest = c.dest;
    if (!absl::StartsWith(dest, "/")) {
      dest = (step.workdir.empty() ? std::string("/") : step.workdir) + "/" + dest;
    }
    bool slash = absl::EndsWith(c.dest, "/") || c.dest == "." || absl::EndsWith(c.dest, "/.");
    op.dest = df::CleanAbsPath(dest) + (slash ? "/" : "");
    op.extract_archives = std::holds_alternative<df::Add>(ins.command);
    if (!c.chmod.empty()) {
      uint32_t mode = 0;
      if (!absl::numbers_internal::safe_strtou32_base(c.chmod, &mode, 8)) {
        return Err(absl::StatusCode::kInvalidArgument, ins, "invalid --chmod " + c.chmod);
      }
      op.mode = mode;
    }
    if (!c.chown.empty()) {
      uint32_t uid = 0, gid = 0;
      absl::Status s = ResolveUser(snap, st->chain, c.chown, &uid, &gid);
      if (!s.ok()) return Err(s.code(), ins, s.message());
      op.uid = uid;
      op.gid = gid;
    }
    if (!c.heredocs.empty()) {
      // Each body becomes a file named by its delimiter, written out on a miss.
      op.extract_archives = false;
      for (const df::HeredocSource& h : c.heredocs) {
        std::string escaped;  // a literal name for the source glob
        for (char ch : h.path) {
          if (ch == '*' || ch == '?' || ch == '[' || ch == '\\') escaped += '\\';
          escaped += ch;
        }
        op.sources.push_back(escaped);
        inputs.push_back(absl::StrCat("heredoc=", h.path, " ", oci::Digest::Of(h.content).str()));
        heredoc_files.emplace_back(h.path, h.content);
      }
      source.dir = root_ + "/heredocs/" + key_prefix;
    } else if (!git_urls.empty()) {
      ASSIGN_OR_RETURN(fetch_git,
                       PrepareGitSource(ins, git_urls[0], key_prefix, &op, &source, &inputs));
    } else if (!urls.empty()) {
      // Fetched now (a conditional GET when the server gave an ETag), so
      // that the key has the content's digest; written out only on a miss.
      op.extract_archives = false;  // remote archives are copied as they are
      op.sources.clear();
      for (size_t i = 0; i < urls.size(); ++i) {
        const std::string& url = urls[i];
        absl::StatusOr<RemoteFile> f =
            builder_->remote().Fetch(url, absl::StrCat(key_prefix, "-url", i));
        if (!f.ok()) {
          return Err(f.status().code(), ins, absl::StrCat("ADD ", url, ": ", f.status().message()));
        }
        if (!checksum.empty() && f->digest.str() != checksum) {
          return Err(absl::StatusCode::kInvalidArgument, ins,
                     absl::StrCat("ADD --checksum: checksum mismatch for ", url, ": expected ",
                                  checksum, ", got ", f->digest.str()));
        }
        std::string name = FileNameFromUrl(url);
        if (name.empty()) {
          if (slash || urls.size() > 1) {
            return Err(absl::StatusCode::kInvalidArgument, ins,
                       "ADD " + url +
                           ": cannot determine a file name from the URL; give the destination "
                           "as a file path (without a trailing /)");
          }
          name = "download";
        }
        std::string escaped;  // a literal name for the source glob
        for (char ch : name) {
          if (ch == '*' || ch == '?' || ch == '[' || ch == '\\') escaped += '\\';
          escaped += ch;
        }
        op.sources.push_back(absl::StrCat(i, "/", escaped));
        inputs.push_back(absl::StrCat("url=", url, " digest=", f->digest.str(), " etag=", f->etag,
                                      " last-modified=", f->last_modified));
        downloads.emplace_back(absl::StrCat(i, "/", name), *std::move(f));
      }
      source.dir = root_ + "/downloads/" + key_prefix;
    } else if (from.empty()) {
      absl::StatusOr<std::string> h =
          HashContextSources(p_.context_dir, ins.keyword, p_.context_digests, &op.sources);
      if (!h.ok()) return Err(h.status().code(), ins, h.status().message());
      inputs.push_back("context=" + *h);
      source.dir = p_.context_dir;
    } else {
      op.preserve_owner = true;
      std::optional<size_t> idx = df::FindStage(df_, from);
      if (idx) {
        std::optional<StageState> src = Built(*idx);
        if (!src) {
          return Err(absl::StatusCode::kInvalidArgument, ins,
                     "COPY --from=" + from + ": stage is not built before this one");
        }
        src_chain = src->chain;
        inputs.push_back("from=" + src->key);
      } else if (!absl::StrContains(from, "/") && !absl::StrContains(from, ":") &&
                 !absl::StrContains(from, ".")) {
        return Err(absl::StatusCode::kInvalidArgument, ins,
                   "COPY --from=" + from + ": no such stage");
      } else {
        absl::StatusOr<BaseImage> b = GetImage(from);
        if (!b.ok()) return Err(b.status().code(), ins, b.status().message());
        src_chain = b->chain;
        inputs.push_back("from=" + b->image.target.digest.str());
      }
      for (std::string& s : op.sources) {
        std::string clean = df::CleanAbsPath("/" + s);
        s = clean == "/" ? "" : clean.substr(1);
      }
      src_view_key = key_prefix + "-src";
      source.mountpoint = root_ + "/mnt/" + src_view_key;
    }
  } else if (std::holds_alternative<df::Workdir>(ins.command)) {
    fs = true;
    op.kind = FsOp::Kind::kMkdir;
    op.what = "WORKDIR";
    op.dest = step.workdir;
  }
  std::string key = CacheKey(st->key, desc, inputs);
  UseKey(key);  // held before the lookup, so a prune cannot take it away meanwhile
  std::optional<CacheRecord> hit;
  if (!p_.no_cache) {
    ASSIGN_OR_RETURN(hit, cache_.Lookup(key));
    if (hit && hit->layer) {
      // The layer must still be in the content store.
      if (!store_->content().Info(hit->layer->digest).ok()) hit.reset();
    }
  }
  BuildEvent ev;
  ev.step = step_no;
  ev.total = total_;
  ev.stage = stage_name;
  ev.instruction = desc;
  ev.line = ins.start_line;
  ev.cache_key = key;
  absl::Time start = absl::Now();
  std::optional<archive::LayerInfo> layer;
  int64_t created_unix = 0;  // of the cache record: history times repeat on a hit
  if (hit) {
    layer = hit->layer;
    if (layer) {
      ASSIGN_OR_RETURN(std::unique_ptr<content::FileReader> r,
                       store_->content().OpenReader(layer->digest));
      ASSIGN_OR_RETURN(oci::Digest chain,
                       snap.Unpack(st->chain, layer->diff_id,
                                   [&](char* buf, size_t len) { return r->Read(buf, len); }));
      st->chain = chain;
    }
    RETURN_IF_ERROR(cache_.Touch(key, *hit, absl::ToUnixSeconds(absl::Now())));
    created_unix = hit->created_unix;
    ev.kind = BuildEvent::Kind::kStepCached;
    if (layer) ev.layer_digest = layer->diff_id.str();
    ++cached_;
    Emit(ev);
  } else {
    ev.kind = BuildEvent::Kind::kStepStarted;
    Emit(ev);
    if (fs) {
      if (std::holds_alternative<df::Run>(ins.command)) {
        RETURN_IF_ERROR(ExecRun(step, key_prefix, st, sr));
      } else {
        if (!src_view_key.empty()) {
          ASSIGN_OR_RETURN(source.mounts, snap.View(src_view_key, src_chain));
        }
        absl::Status s = fetch_git ? fetch_git() : absl::OkStatus();
        if (s.ok()) s = WriteDownloads(source.dir, downloads);
        if (s.ok()) s = WriteHeredocFiles(source.dir, heredoc_files);
        if (s.ok()) s = ExecFs(step, key_prefix, st, source, op);
        if (!downloads.empty() || !heredoc_files.empty() || fetch_git) (void)RemoveAll(source.dir);
        if (!src_view_key.empty()) {
          (void)snap.RemoveActive(src_view_key);
          (void)rmdir(source.mountpoint.c_str());
        }
        if (!s.ok()) return Err(s.code(), ins, s.message());
      }
      ASSIGN_OR_RETURN(layer, CommitLayer(key_prefix, st));
    }
    CacheRecord rec;
    rec.layer = layer;
    rec.description = desc;
    rec.created_unix = absl::ToUnixSeconds(absl::Now());
    created_unix = rec.created_unix;
    rec.last_used_unix = rec.created_unix;
    rec.usage_count = 1;
    RETURN_IF_ERROR(cache_.Store(key, rec));
    BuildEvent done;
    done.kind = BuildEvent::Kind::kStepCompleted;
    done.step = step_no;
    done.cache_key = key;
    if (layer) {
      done.layer_digest = layer->diff_id.str();
      done.size = static_cast<int64_t>(layer->uncompressed_size);
    }
    done.duration = absl::Now() - start;
    Emit(done);
  }
  st->key = key;
  ApplyConfig(step, st);
  if (std::holds_alternative<df::Arg>(ins.command)) return absl::OkStatus();
  if (layer) st->layers.push_back(*layer);
  std::string created_by =
      std::holds_alternative<df::Run>(ins.command) ? desc + " # buildkit" : desc;
  AddHistory(st, created_by, !layer.has_value(), created_unix);
  return absl::OkStatus();
}

absl::Status Run::BuildStage(size_t i, const df::ResolvedFrom& from_spec,
                             const df::ResolvedStage& rs, StageRun* sr) {
  std::string stage_name = df_.stages[i].name.empty() ? absl::StrCat(i) : df_.stages[i].name;
  StageState st;
  const df::Instruction& from = df_.stages[i].from;
  ++sr->step_no;
  sr->failure.line = from.start_line;
  sr->failure.step = sr->step_no;
  BuildEvent ev;
  ev.step = sr->step_no;
  ev.total = total_;
  ev.stage = stage_name;
  ev.line = from.start_line;
  ev.instruction = "FROM " + from_spec.image;
  if (from_spec.base_stage) {
    std::optional<StageState> base = Built(*from_spec.base_stage);
    if (!base) return absl::InternalError("base stage not built");
    st = *std::move(base);
    st.cmd_set = false;
  } else if (absl::AsciiStrToLower(from_spec.image) == "scratch") {
    st.key = CacheKey("", "FROM scratch", {});
    st.config.env = {std::string("PATH=") + exec::kDefaultPath};
  } else {
    ASSIGN_OR_RETURN(BaseImage b, GetImage(from_spec.image));
    st.base_image = b.image.id.str();
    st.chain = b.chain;
    st.config = b.config.config;
    st.config.on_build.clear();
    st.author = b.config.author;
    st.base_created = b.config.created;
    st.key = CacheKey("", "FROM", {b.image.target.digest.str()});
  }
  ev.cache_key = st.key;
  ev.kind = BuildEvent::Kind::kStepCached;
  ++cached_;
  Emit(ev);
  for (const df::ResolvedStep& step : rs.steps) {
    RETURN_IF_ERROR(RunStep(step, stage_name, &st, sr));
  }
  std::lock_guard<std::mutex> l(built_mu_);
  built_[i] = std::move(st);
  return absl::OkStatus();
}

absl::StatusOr<BuildOutcome> Run::Go() {
  {
    absl::StatusOr<df::Dockerfile> parsed = df::Parse(p_.dockerfile);
    if (!parsed.ok()) return parsed.status();
    df_ = std::move(*parsed);
  }
  df::BuildOptions options;
  options.build_args = p_.build_args;
  if (p_.source_date_epoch) {
    options.build_args.emplace("SOURCE_DATE_EPOCH", absl::StrCat(*p_.source_date_epoch));
  }
  oci::Platform host = image::HostPlatform();
  options.build_platform =
      "linux/" + host.architecture + (host.variant.empty() ? "" : "/" + host.variant);
  ASSIGN_OR_RETURN(df::VarSet globals, df::ResolveGlobalArgs(df_, options));
  // The target and the stages it needs.
  size_t target = df_.stages.size() - 1;
  if (!p_.target.empty()) {
    std::optional<size_t> t = df::FindStage(df_, p_.target);
    if (!t) return absl::InvalidArgumentError("target stage \"" + p_.target + "\" not found");
    target = *t;
  }
  std::vector<df::ResolvedFrom> froms;
  for (size_t i = 0; i < df_.stages.size(); ++i) {
    ASSIGN_OR_RETURN(df::ResolvedFrom f, df::ResolveFrom(df_, i, globals));
    froms.push_back(f);
  }
  std::set<size_t> needed;
  std::vector<size_t> todo = {target};
  while (!todo.empty()) {
    size_t i = todo.back();
    todo.pop_back();
    if (!needed.insert(i).second) continue;
    if (froms[i].base_stage) todo.push_back(*froms[i].base_stage);
    for (const std::string& from : StagesUsed(df_.stages[i])) {
      std::optional<size_t> s = df::FindStage(df_, from);
      if (s && *s < i) todo.push_back(*s);
    }
  }
  // Base images (and their ONBUILD triggers, run before the stage's own
  // instructions).
  for (size_t i : needed) {
    if (froms[i].base_stage || absl::AsciiStrToLower(froms[i].image) == "scratch") continue;
    absl::StatusOr<BaseImage> b = GetImage(froms[i].image);
    if (!b.ok()) {
      failure_->line = df_.stages[i].from.start_line;
      return Err(b.status().code(), df_.stages[i].from, b.status().message());
    }
    if (!b->config.config.on_build.empty()) {
      std::string text = "FROM scratch\n" + absl::StrJoin(b->config.config.on_build, "\n") + "\n";
      absl::StatusOr<df::Dockerfile> trig = df::Parse(text);
      if (!trig.ok())
        return Err(trig.status().code(), df_.stages[i].from,
                   "ONBUILD: " + std::string(trig.status().message()));
      auto& ins = df_.stages[i].instructions;
      for (df::Instruction& t : trig->stages[0].instructions)
        t.start_line = df_.stages[i].from.start_line;
      ins.insert(ins.begin(), trig->stages[0].instructions.begin(),
                 trig->stages[0].instructions.end());
    }
  }
  ASSIGN_OR_RETURN(std::vector<df::ResolvedStage> stages,
                   df::ResolveAll(df_, options,
                                  [&](const std::string& image,
                                      const std::string&) -> absl::StatusOr<df::StageBase> {
                                    df::StageBase base;
                                    auto it = images_.find(image);
                                    if (it != images_.end()) {
                                      base.env = it->second.config.config.env;
                                      base.workdir = it->second.config.config.working_dir;
                                    }
                                    return base;
                                  }));
  std::vector<std::string> names;
  for (size_t i : needed) {
    total_ += 1 + static_cast<int>(stages[i].steps.size());
    names.push_back(df_.stages[i].name);
  }
  BuildEvent started;
  started.kind = BuildEvent::Kind::kStarted;
  started.build_id = p_.build_id;
  started.total = total_;
  started.stages = names;
  Emit(started);
  RETURN_IF_ERROR(ImportCaches());
  RETURN_IF_ERROR(MakeDirs(root_ + "/mnt", 0700));
  // Stages as a graph: a stage waits for its base stage and the stages it
  // copies from; independent ones run at once, at most max_parallel_
  // together. Step numbers are fixed per stage up front (stage order), so
  // "[n/m]" does not depend on scheduling.
  std::map<size_t, std::set<size_t>> deps;
  std::map<size_t, int> first_step;
  int next_step = 0;
  for (size_t i : needed) {
    first_step[i] = next_step;
    next_step += 1 + static_cast<int>(stages[i].steps.size());
    if (froms[i].base_stage) deps[i].insert(*froms[i].base_stage);
    for (const std::string& from : StagesUsed(df_.stages[i])) {
      std::optional<size_t> s = df::FindStage(df_, from);
      if (s && *s < i) deps[i].insert(*s);
    }
  }
  if (needed.size() == 1) {
    // One stage (most builds): built on this thread, no scheduler.
    const size_t i = *needed.begin();
    StageRun sr;
    sr.step_no = first_step[i];
    absl::Status st = BuildStage(i, froms[i], stages[i], &sr);
    if (!st.ok()) {
      *failure_ = sr.failure;
      return st;
    }
  } else {
    std::mutex mu;
    std::condition_variable cv;
    std::set<size_t> pending = needed, done;
    int running = 0;
    absl::Status first_error;
    std::vector<std::thread> threads;
    std::unique_lock<std::mutex> l(mu);
    for (;;) {
      if (first_error.ok()) {
        for (auto it = pending.begin(); it != pending.end() && running < max_parallel_;) {
          size_t i = *it;
          bool ready = std::all_of(deps[i].begin(), deps[i].end(),
                                   [&](size_t d) { return done.count(d) > 0; });
          if (!ready) {
            ++it;
            continue;
          }
          it = pending.erase(it);
          ++running;
          threads.emplace_back([&, i] {
            StageRun sr;
            sr.step_no = first_step[i];
            absl::Status st = BuildStage(i, froms[i], stages[i], &sr);
            std::lock_guard<std::mutex> g(mu);
            if (st.ok()) {
              done.insert(i);
            } else if (first_error.ok()) {
              first_error = st;
              *failure_ = sr.failure;
            }
            --running;
            cv.notify_all();
          });
        }
      }
      if (running == 0) {
        if (first_error.ok() && !pending.empty()) {
          first_error = absl::InternalError("stage graph has a cycle");
        }
        break;
      }
      cv.wait(l);
    }
    l.unlock();
    for (std::thread& t : threads) t.join();
    RETURN_IF_ERROR(first_error);
  }
  *failure_ = BuildFailure{};
  // The image.
  const StageState fin = *Built(target);
  image::NewImage ni;
  ni.base = fin.base_image;
  ni.layers = fin.layers;
  ni.history = fin.history;
  std::vector<std::string> normalized;
  for (const std::string& t : p_.tags) {
    ASSIGN_OR_RETURN(std::string n, store_->NormalizeName(t));
    normalized.push_back(n);
  }
  ni.name = normalized.empty() ? "" : normalized[0];
  oci::ContainerConfig cfg = fin.config;
  for (const auto& [k, v] : p_.labels) cfg.labels[k] = v;
  std::string author = fin.author;
  // The image's time is its newest step's (as BuildKit does), so an
  // unchanged rebuild gives the same config; a build of FROM alone keeps
  // the base image's.
  std::optional<int64_t> epoch = p_.source_date_epoch;
  if (!epoch && fin.last_created_unix > 0) epoch = fin.last_created_unix;
  const std::string base_created = fin.base_created;
  ni.edit_config = [cfg, author, epoch, base_created](oci::ImageConfig* c) {
    c->config = cfg;
    if (!author.empty()) c->author = author;
    if (epoch) {
      c->created = TimeString(epoch);
    } else if (!base_created.empty()) {
      c->created = base_created;
    }
  };
  ni.compression = p_.compression;
  ni.recompress_base = p_.force_compression;
  ASSIGN_OR_RETURN(image::Image img, store_->CreateImage(ni));
  for (size_t i = 1; i < normalized.size(); ++i) {
    ASSIGN_OR_RETURN(image::Image tagged, store_->Tag(img.target.digest.str(), normalized[i]));
    (void)tagged;
  }
  BuildOutcome out;
  out.config_digest = img.id.str();
  out.names = normalized;
  out.manifest = img.target;
  ASSIGN_OR_RETURN(oci::Manifest m, store_->GetManifest(img));
  out.layers = m.layers;
  out.cached_steps = cached_.load();
  if (p_.push) {
    const std::vector<std::string>& targets = p_.push_targets.empty() ? p_.tags : p_.push_targets;
    for (const std::string& target : targets) {
      if (!NamesRegistry(target)) continue;
      ASSIGN_OR_RETURN(std::string name, store_->NormalizeName(target));
      absl::StatusOr<oci::Descriptor> d =
          store_->Push(img.target.digest.str(), name, OptionsFor(name));
      if (!d.ok()) return Annotate(d.status(), "pushing " + target);
      out.pushed.push_back(name + "@" + d->digest.str());
    }
  }
  RETURN_IF_ERROR(ExportCaches());
  return out;
}

}  // namespace

absl::StatusOr<BuildOutcome> Builder::Build(const BuildParams& params, const EventFn& events,
                                            BuildFailure* failure) {
  BuildFailure local;
  if (failure == nullptr) failure = &local;
  Run run(this, store_, kv_, executor_, root_, params, events, failure);
  return run.Go();
}

absl::Status Builder::Export(const BuildOutcome& outcome, image::ArchiveFormat format,
                             const archive::ByteSink& sink) {
  std::vector<std::string> names = outcome.names;
  if (names.empty()) names.push_back(outcome.manifest.digest.str());
  return store_->Save(names, format, sink);
}

absl::Status Builder::UnpackRootfs(const BuildOutcome& outcome, const std::string& dest) {
  RETURN_IF_ERROR(MakeDirs(dest, 0755));
  ASSIGN_OR_RETURN(image::Image img, store_->Get(outcome.manifest.digest.str()));
  ASSIGN_OR_RETURN(oci::Manifest m, store_->GetManifest(img));
  archive::ApplyOptions apply;
  apply.whiteout_mode = archive::WhiteoutMode::kDelete;
  for (const oci::Descriptor& d : m.layers) {
    ASSIGN_OR_RETURN(std::unique_ptr<content::FileReader> r,
                     store_->content().OpenReader(d.digest));
    absl::StatusOr<archive::ApplyResult> applied =
        archive::ApplyLayer([&](char* buf, size_t len) { return r->Read(buf, len); }, dest, apply);
    if (!applied.ok()) return Annotate(applied.status(), "unpacking layer " + d.digest.str());
  }
  return absl::OkStatus();
}

absl::Status Builder::ExportRootfs(const BuildOutcome& outcome, const archive::ByteSink& sink) {
  // Scratch space below <root>/rootfs (emptied when the daemon starts).
  static std::atomic<uint64_t> seq{0};
  const std::string dir =
      absl::StrCat(root_, "/rootfs/", outcome.manifest.digest.hex().substr(0, 12), "-", ++seq);
  struct Cleanup {
    std::string dir;
    ~Cleanup() { (void)RemoveAll(dir); }
  } cleanup{dir};
  RETURN_IF_ERROR(UnpackRootfs(outcome, dir + "/rootfs"));
  archive::CreateOptions plain;
  plain.compression = archive::Compression::kNone;
  return archive::CreateLayerFromDir(dir + "/rootfs", sink, plain).status();
}

void Builder::Hold(const std::string& key) {
  std::lock_guard<std::mutex> l(use_mu_);
  ++held_[key];
}

void Builder::Release(const std::vector<std::string>& keys) {
  std::lock_guard<std::mutex> l(use_mu_);
  for (const std::string& k : keys) {
    auto it = held_.find(k);
    if (it != held_.end() && --it->second <= 0) held_.erase(it);
  }
}

void Builder::BuildStarted() {
  std::lock_guard<std::mutex> l(use_mu_);
  ++running_builds_;
}

void Builder::BuildFinished() {
  std::lock_guard<std::mutex> l(use_mu_);
  --running_builds_;
}

namespace {

// Entries with their sizes: each layer blob counted in its oldest entry.
absl::StatusOr<std::vector<CacheEntryInfo>> Entries(LayerCache& cache,
                                                    const std::map<std::string, int>& held) {
  ASSIGN_OR_RETURN(auto records, cache.List());
  std::vector<CacheEntryInfo> out;
  for (auto& [key, record] : records) {
    CacheEntryInfo e;
    e.key = key;
    e.record = std::move(record);
    e.in_use = held.count(key) > 0;
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), [](const CacheEntryInfo& a, const CacheEntryInfo& b) {
    return std::tie(a.record.created_unix, a.key) < std::tie(b.record.created_unix, b.key);
  });
  std::set<oci::Digest> counted;
  for (CacheEntryInfo& e : out) {
    if (e.record.layer && counted.insert(e.record.layer->digest).second) {
      e.size = static_cast<int64_t>(e.record.layer->size);
    }
  }
  std::sort(out.begin(), out.end(), [](const CacheEntryInfo& a, const CacheEntryInfo& b) {
    return std::tie(b.record.last_used_unix, a.key) < std::tie(a.record.last_used_unix, b.key);
  });
  return out;
}

}  // namespace

absl::StatusOr<std::vector<CacheEntryInfo>> Builder::ListCache() {
  LayerCache cache(kv_);
  std::map<std::string, int> held;
  {
    std::lock_guard<std::mutex> l(use_mu_);
    held = held_;
  }
  return Entries(cache, held);
}

absl::StatusOr<PruneResult> Builder::PruneCache(const PruneOptions& options) {
  if (options.keep_duration < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("keep_duration must not be negative");
  }
  if (options.keep_bytes < 0) return absl::InvalidArgumentError("keep_bytes must not be negative");
  const bool all =
      options.all || (options.keep_duration == absl::ZeroDuration() && options.keep_bytes == 0);
  std::lock_guard<std::mutex> l(use_mu_);
  LayerCache cache(kv_);
  ASSIGN_OR_RETURN(std::vector<CacheEntryInfo> entries, Entries(cache, held_));
  // Decide, least recently used last in `entries` (most recent first).
  std::vector<bool> drop(entries.size(), false);
  const int64_t cutoff = absl::ToUnixSeconds(absl::Now() - options.keep_duration);
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].in_use) continue;
    if (all || (options.keep_duration > absl::ZeroDuration() &&
                entries[i].record.last_used_unix < cutoff)) {
      drop[i] = true;
    }
  }
  if (!all && options.keep_bytes > 0) {
    auto kept_bytes = [&] {
      std::set<oci::Digest> blobs;
      int64_t total = 0;
      for (size_t i = 0; i < entries.size(); ++i) {
        const auto& layer = entries[i].record.layer;
        if (!drop[i] && layer && blobs.insert(layer->digest).second) total += layer->size;
      }
      return total;
    };
    for (size_t i = entries.size(); i-- > 0 && kept_bytes() > options.keep_bytes;) {
      if (!entries[i].in_use) drop[i] = true;
    }
  }
  // Blobs still needed: by kept entries, and by images unless those go too.
  const bool remove_images = all && running_builds_ == 0;
  std::set<oci::Digest> needed;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (!drop[i] && entries[i].record.layer) needed.insert(entries[i].record.layer->digest);
  }
  ASSIGN_OR_RETURN(std::vector<image::Image> images, store_->List());
  if (!remove_images) {
    for (const image::Image& img : images) {
      absl::StatusOr<oci::Manifest> m = store_->GetManifest(img);
      if (!m.ok()) continue;
      for (const oci::Descriptor& d : m->layers) needed.insert(d.digest);
    }
  }
  PruneResult out;
  std::set<oci::Digest> freed;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (!drop[i]) continue;
    ++out.entries_deleted;
    const auto& layer = entries[i].record.layer;
    if (layer && !needed.count(layer->digest) && freed.insert(layer->digest).second) {
      absl::StatusOr<content::Info> info = store_->content().Info(layer->digest);
      if (!info.ok()) continue;  // already gone
      out.bytes_freed += static_cast<int64_t>(info->size);
      if (!options.dry_run) {
        absl::Status s = store_->content().Delete(layer->digest);
        if (!s.ok() && !absl::IsNotFound(s)) return s;
      }
    }
    if (!options.dry_run) RETURN_IF_ERROR(cache.Delete(entries[i].key));
  }
  if (all) {
    // RUN --mount=type=cache directories no running build holds.
    ASSIGN_OR_RETURN(int64_t cache_mount_bytes, cache_mounts_.Prune(options.dry_run));
    out.bytes_freed += cache_mount_bytes;
  }
  if (remove_images) {
    // Everything the images hold goes with them.
    ASSIGN_OR_RETURN(std::vector<content::Info> blobs, store_->content().List());
    for (const content::Info& b : blobs) {
      if (!freed.count(b.digest)) out.bytes_freed += static_cast<int64_t>(b.size);
    }
    if (!options.dry_run) {
      std::set<std::string> done;
      for (const image::Image& img : images) {
        if (!done.insert(img.id.str()).second) continue;
        absl::StatusOr<image::RemoveResult> r = store_->Remove(img.id.str(), /*force=*/true);
        if (!r.ok() && !absl::IsNotFound(r.status())) return r.status();
      }
      // Blobs no image recorded (cache exports' configs, layers of stages
      // that were not the target).
      ASSIGN_OR_RETURN(blobs, store_->content().List());
      for (const content::Info& b : blobs) {
        absl::Status s = store_->content().Delete(b.digest);
        if (!s.ok() && !absl::IsNotFound(s)) return s;
      }
    }
  }
  return out;
}

absl::StatusOr<CacheDiskUsage> Builder::DiskUsage() {
  ASSIGN_OR_RETURN(std::vector<CacheEntryInfo> entries, ListCache());
  CacheDiskUsage u;
  u.cache_entries = static_cast<int64_t>(entries.size());
  std::set<oci::Digest> cache_blobs;
  for (const CacheEntryInfo& e : entries) {
    if (e.record.layer) cache_blobs.insert(e.record.layer->digest);
  }
  ASSIGN_OR_RETURN(std::vector<content::Info> blobs, store_->content().List());
  for (const content::Info& b : blobs) {
    (cache_blobs.count(b.digest) ? u.cache_bytes : u.content_bytes) += static_cast<int64_t>(b.size);
  }
  PruneOptions all;
  all.all = true;
  all.dry_run = true;
  ASSIGN_OR_RETURN(PruneResult r, PruneCache(all));
  u.reclaimable_bytes = r.bytes_freed;
  return u;
}

}  // namespace pier::builder
