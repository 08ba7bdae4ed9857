// Builder: runs one Dockerfile build against a context directory.
//
// Build() parses the Dockerfile, picks the stages the target needs (its
// FROM chain and COPY --from references, in order), pulls base images into
// the ImageStore (loopback registries over plain HTTP), resolves variables
// (dockerfile/expand.h) and executes each instruction:
//   RUN        in a NativeExecutor container on a writable overlay snapshot
//              (network none unless --network=host), output streamed as
//              kStepLog events; the upper directory becomes a layer (none
//              when the diff is empty);
//   COPY/ADD   through fs_ops.h into a snapshot; one layer each;
//   WORKDIR    creates the directory (a layer when it was missing);
//   the rest   edit the image config; history entries with empty_layer.
// Every step has a cache key (cache/layer_cache.h); a hit reuses the layer
// without running. The result is recorded with ImageStore::CreateImage under
// the first tag and pushed to every tag that names a registry.
//
// Errors (with BuildFailure filled in): InvalidArgument for Dockerfile
// errors ("Dockerfile:<line>: ..."), an unknown target or --from stage, a
// COPY source outside the context; NotFound for a missing COPY source or
// base image; Aborted for a RUN that exits non-zero; the store's, registry's
// and executor's own codes otherwise.
// Ownership: borrows the store, kv and executor. Thread safety: Build may be
// called from several threads (separate builds use separate snapshot keys).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
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
  std::map<std::string, std::string> build_args;
  std::map<std::string, std::string> labels;
  std::string target;
  std::vector<std::string> tags;
  bool no_cache = false;
  bool pull = false;
  bool push = true;
  std::optional<int64_t> source_date_epoch;
  int64_t memory_bytes = 0;
  // Registry credentials of the client (`pier login`), by registry host;
  // used for base image pulls and pushes to a matching host
  // (distribution::SameRegistryHost), anonymous elsewhere.
  std::map<std::string, distribution::Credentials> credentials;
};

struct BuildOutcome {
  std::string config_digest;
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

class Builder {
 public:
  Builder(image::ImageStore* store, kv::KvStore* kv, exec::Executor* executor, std::string root)
      : store_(store), kv_(kv), executor_(executor), root_(std::move(root)) {}

  absl::StatusOr<BuildOutcome> Build(const BuildParams& params, const EventFn& events,
                                     BuildFailure* failure);

  // How base images are pulled and results pushed (TLS CA, client
  // certificate for registries that require mTLS). Set before the first Build.
  void set_registry_options(distribution::RegistryClientOptions options) {
    registry_options_ = std::move(options);
  }
  const distribution::RegistryClientOptions& registry_options() const { return registry_options_; }

 private:
  distribution::RegistryClientOptions registry_options_;
  image::ImageStore* store_;
  kv::KvStore* kv_;
  exec::Executor* executor_;
  std::string root_;
};

}  // namespace pier::builder
