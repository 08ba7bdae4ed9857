#include "lib/kv/kv_store.h"

#include <map>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"

namespace pier::kv {

absl::StatusOr<std::optional<std::string>> KvStore::Find(absl::string_view key) {
  absl::StatusOr<std::string> v = Get(key);
  if (v.ok()) return std::optional<std::string>(std::move(*v));
  if (absl::IsNotFound(v.status())) return std::optional<std::string>();
  return v.status();
}

absl::Status KvStore::Put(absl::string_view key, absl::string_view value) {
  Batch b;
  b.Put(key, value);
  return Write(b);
}

absl::Status KvStore::Delete(absl::string_view key) {
  Batch b;
  b.Delete(key);
  return Write(b);
}

namespace {

rocksdb::Slice ToSlice(absl::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrCat(what, ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsIOError() && absl::StrContains(s.ToString(), "lock")) {
    return absl::FailedPreconditionError(msg);
  }
  if (s.IsBusy() || s.IsTryAgain()) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

class RocksDbStore : public KvStore {
 public:
  explicit RocksDbStore(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}

  absl::StatusOr<std::string> Get(absl::string_view key) override {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), ToSlice(key), &value);
    if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("key \"", key, "\" not found"));
    if (!s.ok()) return FromRocks(s, absl::StrCat("get ", key));
    return value;
  }

  absl::Status Write(const Batch& batch) override {
    rocksdb::WriteBatch wb;
    for (const Batch::Op& op : batch.ops()) {
      if (op.is_delete) {
        wb.Delete(ToSlice(op.key));
      } else {
        wb.Put(ToSlice(op.key), ToSlice(op.value));
      }
    }
    rocksdb::WriteOptions wo;
    wo.sync = batch.sync();
    return FromRocks(db_->Write(wo, &wb), "write batch");
  }

  absl::Status Scan(absl::string_view prefix, absl::string_view start_after, size_t limit,
                    const std::function<bool(absl::string_view, absl::string_view)>& fn) override {
    rocksdb::ReadOptions ro;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    std::string start = start_after.empty() ? std::string(prefix) : std::string(start_after);
    size_t seen = 0;
    for (it->Seek(ToSlice(start)); it->Valid(); it->Next()) {
      absl::string_view key(it->key().data(), it->key().size());
      if (!absl::StartsWith(key, prefix)) break;
      if (!start_after.empty() && key == start_after) continue;
      if (!fn(key, absl::string_view(it->value().data(), it->value().size()))) break;
      if (limit != 0 && ++seen >= limit) break;
    }
    return FromRocks(it->status(), absl::StrCat("scan ", prefix));
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
};

class MemoryKvStore : public KvStore {
 public:
  absl::StatusOr<std::string> Get(absl::string_view key) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = data_.find(std::string(key));
    if (it == data_.end()) {
      return absl::NotFoundError(absl::StrCat("key \"", key, "\" not found"));
    }
    return it->second;
  }

  absl::Status Write(const Batch& batch) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Batch::Op& op : batch.ops()) {
      if (op.is_delete) {
        data_.erase(op.key);
      } else {
        data_[op.key] = op.value;
      }
    }
    return absl::OkStatus();
  }

  absl::Status Scan(absl::string_view prefix, absl::string_view start_after, size_t limit,
                    const std::function<bool(absl::string_view, absl::string_view)>& fn) override {
    std::map<std::string, std::string> snapshot;
    {
      std::lock_guard<std::mutex> lock(mu_);
      snapshot = data_;
    }
    auto it = start_after.empty() ? snapshot.lower_bound(std::string(prefix))
                                  : snapshot.upper_bound(std::string(start_after));
    size_t seen = 0;
    for (; it != snapshot.end(); ++it) {
      if (!absl::StartsWith(it->first, prefix)) break;
      if (!fn(it->first, it->second)) break;
      if (limit != 0 && ++seen >= limit) break;
    }
    return absl::OkStatus();
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> data_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<KvStore>> OpenRocksDb(const std::string& path) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.IncreaseParallelism(2);
  options.keep_log_file_num = 4;
  options.max_manifest_file_size = 64 << 20;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, path, &raw);
  if (!s.ok()) return FromRocks(s, absl::StrCat("open metadata database ", path));
  return std::unique_ptr<KvStore>(new RocksDbStore(std::unique_ptr<rocksdb::DB>(raw)));
}

std::unique_ptr<KvStore> NewMemoryKvStore() { return std::make_unique<MemoryKvStore>(); }

}  // namespace pier::kv
