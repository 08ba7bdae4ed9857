// LayerCache: the builder's step cache, persisted in its kv store (RocksDB),
// so it survives restarts.
//
// Key: CacheKey(parent key, instruction text after expansion, inputs), where
// inputs are content digests of copied files, the RUN environment, user,
// working directory and so on; the root key of a stage is its base image's
// manifest digest (or "scratch", or the parent stage's last key).
// Value (kv key "cache/<key>", JSON): the layer the step produced (blob
// digest, diff id, sizes, media type), or none for a step that only changed
// the config (the config edits are recomputed from the instruction, which
// is part of the key).
//
// Registry form (--cache-to/--cache-from): an OCI image manifest with
// artifactType kCacheArtifactType whose config (media type
// kCacheConfigMediaType, EncodeCacheConfig) maps each exported cache key to
// its record (description, layer digest, diff id, sizes, media type), and
// whose layers are the records' layer blobs, each once.
//
// Errors: the kv store's codes; Lookup returns nullopt for a missing or
// unreadable entry. Thread safety: safe from any thread (the kv store is).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/archive/layer_writer.h"
#include "lib/kv/kv_store.h"

namespace pier::builder {

struct CacheRecord {
  std::optional<archive::LayerInfo> layer;  // nullopt: config-only step
  std::string description;                  // the instruction
  int64_t created_unix = 0;
  int64_t last_used_unix = 0;  // last build that stored or hit it
  int64_t usage_count = 0;     // builds that stored or hit it
};

// sha256 over the parts, each length-prefixed, "sha256:<hex>".
std::string CacheKey(absl::string_view parent, absl::string_view instruction,
                     const std::vector<std::string>& inputs);

inline constexpr char kCacheArtifactType[] = "application/vnd.pier.build-cache.v1";
inline constexpr char kCacheConfigMediaType[] = "application/vnd.pier.build-cache.config.v1+json";

// The config blob of an exported cache: {"version":1,"records":[{"key",
// "description","created","layer":{...}}...]} in the given order.
std::string EncodeCacheConfig(const std::vector<std::pair<std::string, CacheRecord>>& records);

// Parses EncodeCacheConfig's output. InvalidArgument for anything else.
absl::StatusOr<std::vector<std::pair<std::string, CacheRecord>>> DecodeCacheConfig(
    absl::string_view bytes);

class LayerCache {
 public:
  explicit LayerCache(kv::KvStore* kv) : kv_(kv) {}
  absl::StatusOr<std::optional<CacheRecord>> Lookup(absl::string_view key);
  absl::Status Store(absl::string_view key, const CacheRecord& record);
  // Records a use of `key` now (last_used, usage_count). NotFound when the
  // entry is gone. Not synced: a use lost with the machine only makes the
  // entry look older to prune, and a cache hit costs no fsync.
  absl::Status Touch(absl::string_view key, int64_t now_unix);
  // The same for a record just read by Lookup (no second read).
  absl::Status Touch(absl::string_view key, CacheRecord record, int64_t now_unix);
  // Every readable entry, in key order.
  absl::StatusOr<std::vector<std::pair<std::string, CacheRecord>>> List();
  // Deletes the entry (absent: OK).
  absl::Status Delete(absl::string_view key);

 private:
  kv::KvStore* kv_;
};

}  // namespace pier::builder
