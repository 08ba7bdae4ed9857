// An ordered key-value store for Pier's metadata (registry repositories,
// tags and links; runtime images, containers and volumes).
//
// Writes are atomic per Batch: a tag and the link it needs land together or
// not at all. Durable writes (`sync = true`, the default) survive a crash of
// the process or the machine once Write() returns. Scan() iterates a key
// prefix in byte order from a consistent snapshot.
//
// Implementations: RocksDbStore (OpenRocksDb) for the daemons and
// MemoryKvStore for tests; both pass kv_store_test's conformance suite.
//
// Errors: Get returns NotFound naming the key; I/O failures map to
// Internal/DataLoss with RocksDB's message.
// Thread safety: every method is safe from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pier::kv {

// A set of puts and deletes applied atomically by KvStore::Write.
class Batch {
 public:
  void Put(absl::string_view key, absl::string_view value) {
    ops_.push_back({std::string(key), std::string(value), false});
  }
  void Delete(absl::string_view key) { ops_.push_back({std::string(key), "", true}); }
  bool empty() const { return ops_.empty(); }
  // A batch is durable when Write returns (fsync of the log), unless
  // set_sync(false): then it survives a process crash but may be lost with
  // the machine. For records whose loss is harmless (an upload session).
  void set_sync(bool sync) { sync_ = sync; }
  bool sync() const { return sync_; }

  struct Op {
    std::string key;
    std::string value;
    bool is_delete;
  };
  const std::vector<Op>& ops() const { return ops_; }

 private:
  std::vector<Op> ops_;
  bool sync_ = true;
};

class KvStore {
 public:
  virtual ~KvStore() = default;

  // NotFound when `key` is absent.
  virtual absl::StatusOr<std::string> Get(absl::string_view key) = 0;
  // Like Get, but absence is std::nullopt rather than an error.
  absl::StatusOr<std::optional<std::string>> Find(absl::string_view key);

  virtual absl::Status Write(const Batch& batch) = 0;
  absl::Status Put(absl::string_view key, absl::string_view value);
  absl::Status Delete(absl::string_view key);

  // Calls `fn(key, value)` for every key starting with `prefix` and greater
  // than `start_after` (all when empty), in byte order, until `fn` returns
  // false or `limit` (0 = no limit) keys were visited.
  virtual absl::Status Scan(
      absl::string_view prefix, absl::string_view start_after, size_t limit,
      const std::function<bool(absl::string_view key, absl::string_view value)>& fn) = 0;
};

// Opens (creating if needed) a RocksDB database in directory `path`.
// FailedPrecondition when another process holds it open.
absl::StatusOr<std::unique_ptr<KvStore>> OpenRocksDb(const std::string& path);

// An in-memory store for tests.
std::unique_ptr<KvStore> NewMemoryKvStore();

}  // namespace pier::kv
