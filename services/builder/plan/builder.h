// Builder: runs one Dockerfile build against a context directory.
//
// Build() parses the Dockerfile, picks the stages the target needs (its
// FROM chain and COPY --from references) and runs them as a graph: a stage
// starts once its base stage and the stages it copies from are built, so
// independent stages run concurrently (at most max_parallel_stages at
// once); events carry the stage's name. It pulls base images into
// the ImageStore (loopback registries over plain HTTP), resolves variables
// (dockerfile/expand.h) and executes each instruction:
//   RUN        in a NativeExecutor container on a writable overlay snapshot
//              (network none unless --network=host), output streamed as
//              kStepLog events; the upper directory becomes a layer (none
//              when the diff is empty); here-documents as the script or the
//              shell's own here-documents, --mount (cache, bind, tmpfs,
//              secret) as the container's mounts (run_mounts.h), their
//              mount points removed from the upper before the diff;
//   COPY/ADD   through fs_ops.h into a snapshot; one layer each (here-
//              document sources are written out as files first); ADD of an
//              http(s) URL fetches it first (remote_source.h, in this
//              process: RUN's network policy does not apply), ADD of a git
//              repository checks out the commit its ref names
//              (git_source.h, the host's git);
//   WORKDIR    creates the directory (a layer when it was missing);
//   the rest   edit the image config; history entries with empty_layer.
// Every step has a cache key (cache/layer_cache.h); a hit reuses the layer
// without running. The result is recorded with ImageStore::CreateImage under
// the first tag (its layers rewritten when another compression is asked
// for) and pushed to every tag that names a registry. ExportRootfs and
// UnpackRootfs flatten it for `-o type=local`.
// Registry caches (cache/layer_cache.h) named by cache_from are fetched into
// the local cache (records and layer blobs) before the first step; the
// records of every step of the build are exported to each cache_to
// reference at the end.
//
// Errors (with BuildFailure filled in): InvalidArgument for Dockerfile
// errors ("Dockerfile:<line>: ..."), an unknown target or --from stage, a
// COPY source or RUN --mount bind source outside the context, a missing
// required secret; Unimplemented for RUN --mount=type=ssh; NotFound for a missing COPY source or
// base image; Aborted for a RUN that exits non-zero; InvalidArgument for an
// ADD --checksum that does not match (naming both digests) or one given
// for a local source; the fetcher's codes for an ADD URL; the store's,
// registry's and executor's own codes otherwise.
// Ownership: borrows the store, kv and executor. Thread safety: Build may be
// called from several threads (separate builds use separate snapshot keys).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/distribution/registry_client.h"
#include "lib/exec/executor.h"
#include "lib/image/store.h"
#include "lib/kv/kv_store.h"
#include "lib/oci/types.h"
#include "services/builder/cache/layer_cache.h"
#include "services/builder/plan/remote_source.h"
#include "services/builder/plan/run_mounts.h"

namespace pier::builder {

struct BuildEvent {
  enum class Kind { kStarted, kStepStarted, kStepCached, kStepLog, kStepCompleted, kWarning };
  Kind kind = Kind::kStepStarted;
  int step = 0;
  int total = 0;
  std::string stage;
  std::string instruction;
  int line = 0;
  std::string cache_key;
  std::string layer_digest;  // diff id
  int64_t size = 0;
  absl::Duration duration;
  int stream = 1;    // kStepLog: 1 stdout, 2 stderr
  std::string data;  // kStepLog bytes; kWarning message
  std::string build_id;
  std::vector<std::string> stages;  // kStarted
};
using EventFn = std::function<void(const BuildEvent&)>;

struct BuildParams {
  std::string build_id;
  std::string dockerfile;   // contents
  std::string context_dir;  // files of the context
  // Content digests ("sha256:...") of context files by path relative to
  // context_dir, already verified by the caller: COPY's cache keys use them
  // instead of reading the files again. Files not listed are read.
  std::map<std::string, std::string> context_digests;
  std::map<std::string, std::string> build_args;
  std::map<std::string, std::string> labels;
  std::string target;
  std::vector<std::string> tags;
  bool no_cache = false;
  bool pull = false;
  // Push the result to every tag that names a registry (or to push_targets
  // instead, when given).
  bool push = false;
  std::vector<std::string> push_targets;
  std::optional<int64_t> source_date_epoch;
  int64_t memory_bytes = 0;
  // Registry references of exported build caches to import before the
  // first step (--cache-from); a missing one is a warning.
  std::vector<std::string> cache_from;
  // References to export the cache records of this build's steps to
  // (--cache-to), after the image is made.
  std::vector<std::string> cache_to;
  // Registry credentials of the client (`pier login`), by registry host;
  // used for base image pulls and pushes to a matching host
  // (distribution::SameRegistryHost), anonymous elsewhere.
  std::map<std::string, distribution::Credentials> credentials;
  // Secrets for RUN --mount=type=secret, by id (`pier build --secret`).
  // They reach RUN's mounts only: never a layer, the cache key or an event.
  std::map<std::string, std::string> secrets;
  // Layer compression of the result image. Steps' layers are kept gzip in
  // the layer cache; when this differs (or a level is set) the image gets
  // rewritten copies (ImageStore NewImage::compression), and with
  // force_compression the base image's layers are rewritten too. nullopt:
  // as built.
  std::optional<archive::CreateOptions> compression;
  bool force_compression = false;
};

struct BuildOutcome {
  std::string config_digest;
  // Normalised names of the image (from BuildParams::tags), as recorded in
  // the builder's store; empty for an untagged build.
  std::vector<std::string> names;
  oci::Descriptor manifest;
  std::vector<oci::Descriptor> layers;
  std::vector<std::string> pushed;
  int cached_steps = 0;
};

struct BuildFailure {
  int line = 0;
  int step = 0;
  int exit_code = 0;
};

// One layer cache entry as ListCache reports it.
struct CacheEntryInfo {
  std::string key;
  CacheRecord record;
  // Bytes of its layer blob, counted in the oldest entry that has it (0 for
  // the others and for config-only entries).
  int64_t size = 0;
  bool in_use = false;  // a running build holds it
};

struct PruneOptions {
  bool all = false;              // every entry not in use, and the builder's images
  absl::Duration keep_duration;  // keep entries used within this (0: no age rule)
  int64_t keep_bytes = 0;        // then LRU until at most this many bytes (0: no limit)
  bool dry_run = false;
};

struct PruneResult {
  int64_t entries_deleted = 0;
  int64_t bytes_freed = 0;
};

struct CacheDiskUsage {
  int64_t cache_bytes = 0;  // distinct layer blobs of cache entries
  int64_t cache_entries = 0;
  int64_t content_bytes = 0;  // the rest of the content store
  int64_t reclaimable_bytes = 0;
};

class Builder {
 public:
  // `max_parallel_stages` bounds how many independent stages of one build
  // run at once (at least 1).
  Builder(image::ImageStore* store, kv::KvStore* kv, exec::Executor* executor, std::string root,
          int max_parallel_stages = 3)
      : store_(store),
        kv_(kv),
        executor_(executor),
        root_(std::move(root)),
        max_parallel_stages_(max_parallel_stages),
        remote_(&store->content(), kv),
        cache_mounts_(root_ + "/cache-mounts") {}

  int max_parallel_stages() const { return max_parallel_stages_; }

  // Layer cache entries, most recently used first.
  absl::StatusOr<std::vector<CacheEntryInfo>> ListCache();

  // Deletes cache entries by the rules of `options` (no rule at all: like
  // `all`), skipping entries a running build holds, and each deleted
  // entry's layer blob when no remaining entry or image needs it. With
  // `all` and no build running, the builder's image records go too (their
  // blobs and snapshots with them, ImageStore::Remove); with `all`, the
  // RUN --mount=type=cache directories no running step holds go as well. InvalidArgument for
  // a negative keep_duration or keep_bytes; the stores' errors otherwise.
  absl::StatusOr<PruneResult> PruneCache(const PruneOptions& options);

  // Space the cache and the content store use; reclaimable is what
  // PruneCache{all} would free now.
  absl::StatusOr<CacheDiskUsage> DiskUsage();

  // For builds: marks cache `key` as held until released (pruning skips
  // held entries), and counts running builds.
  void Hold(const std::string& key);
  void Release(const std::vector<std::string>& keys);
  void BuildStarted();
  void BuildFinished();

  absl::StatusOr<BuildOutcome> Build(const BuildParams& params, const EventFn& events,
                                     BuildFailure* failure);

  // How base images are pulled and results pushed (TLS CA, client
  // certificate for registries that require mTLS). Set before the first Build.
  void set_registry_options(distribution::RegistryClientOptions options) {
    registry_options_ = std::move(options);
  }
  const distribution::RegistryClientOptions& registry_options() const { return registry_options_; }

  // Fetches ADD's URL sources for every build.
  RemoteFetcher& remote() { return remote_; }

  // The directories of RUN --mount=type=cache, kept across builds.
  CacheMounts& cache_mounts() { return cache_mounts_; }

  // Writes the image of a successful build as an archive (docker-archive or
  // OCI layout tar, see ImageStore::Save) to `sink`, named by outcome.names
  // (unnamed when there are none). NotFound when the image was removed in
  // the meantime; the sink's own errors.
  absl::Status Export(const BuildOutcome& outcome, image::ArchiveFormat format,
                      const archive::ByteSink& sink);

  // Writes the root filesystem of a successful build's image (every layer
  // applied, whiteouts honoured) as a plain tar to `sink`. NotFound when
  // the image or a layer blob was removed in the meantime; the layers'
  // apply errors; the sink's own errors.
  absl::Status ExportRootfs(const BuildOutcome& outcome, const archive::ByteSink& sink);

  // Unpacks that root filesystem into the directory `dest` on this host
  // (created when missing). Errors as ExportRootfs, plus the file system's
  // codes for `dest`.
  absl::Status UnpackRootfs(const BuildOutcome& outcome, const std::string& dest);

 private:
  distribution::RegistryClientOptions registry_options_;
  image::ImageStore* store_;
  kv::KvStore* kv_;
  exec::Executor* executor_;
  std::string root_;
  int max_parallel_stages_;
  RemoteFetcher remote_;
  CacheMounts cache_mounts_;
  std::mutex use_mu_;                // held by PruneCache throughout, so holds wait for it
  std::map<std::string, int> held_;  // guarded by use_mu_
  int running_builds_ = 0;           // guarded by use_mu_
};

}  // namespace pier::builder
