#include "services/builder/cache/layer_cache.h"

#include "absl/strings/str_cat.h"
#include "lib/common/status.h"
#include "lib/oci/digest.h"
#include "nlohmann/json.hpp"

namespace pier::builder {
namespace {

nlohmann::json RecordToJson(const CacheRecord& record) {
  nlohmann::json j;
  j["description"] = record.description;
  j["created"] = record.created_unix;
  j["last_used"] = record.last_used_unix;
  j["usage_count"] = record.usage_count;
  if (record.layer) {
    j["layer"] = {{"digest", record.layer->digest.str()},
                  {"diff_id", record.layer->diff_id.str()},
                  {"size", record.layer->size},
                  {"uncompressed_size", record.layer->uncompressed_size},
                  {"media_type", record.layer->media_type},
                  {"entries", record.layer->entries}};
  }
  return j;
}

// nullopt for a malformed record.
std::optional<CacheRecord> RecordFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return std::nullopt;
  CacheRecord r;
  r.description = j.value("description", "");
  r.created_unix = j.value("created", int64_t{0});
  r.last_used_unix = j.value("last_used", int64_t{0});
  if (r.last_used_unix == 0) r.last_used_unix = r.created_unix;  // never used since
  r.usage_count = j.value("usage_count", int64_t{0});
  if (j.contains("layer")) {
    const nlohmann::json& l = j["layer"];
    if (!l.is_object()) return std::nullopt;
    archive::LayerInfo info;
    auto digest = oci::Digest::Parse(l.value("digest", ""));
    auto diff_id = oci::Digest::Parse(l.value("diff_id", ""));
    if (!digest.ok() || !diff_id.ok()) return std::nullopt;
    info.digest = *digest;
    info.diff_id = *diff_id;
    info.size = l.value("size", uint64_t{0});
    info.uncompressed_size = l.value("uncompressed_size", uint64_t{0});
    info.media_type = l.value("media_type", "");
    info.entries = l.value("entries", uint64_t{0});
    r.layer = info;
  }
  return r;
}

}  // namespace

std::string CacheKey(absl::string_view parent, absl::string_view instruction,
                     const std::vector<std::string>& inputs) {
  std::string buf;
  auto add = [&](absl::string_view s) { absl::StrAppend(&buf, s.size(), ":", s, "\n"); };
  add(parent);
  add(instruction);
  for (const std::string& in : inputs) add(in);
  return oci::Digest::Of(buf).str();
}

absl::StatusOr<std::optional<CacheRecord>> LayerCache::Lookup(absl::string_view key) {
  ASSIGN_OR_RETURN(std::optional<std::string> raw, kv_->Find(absl::StrCat("cache/", key)));
  if (!raw) return std::nullopt;
  return RecordFromJson(nlohmann::json::parse(*raw, nullptr, false));
}

absl::Status LayerCache::Store(absl::string_view key, const CacheRecord& record) {
  return kv_->Put(absl::StrCat("cache/", key), RecordToJson(record).dump());
}

absl::Status LayerCache::Touch(absl::string_view key, int64_t now_unix) {
  ASSIGN_OR_RETURN(std::optional<CacheRecord> r, Lookup(key));
  if (!r) return absl::NotFoundError(absl::StrCat("cache entry ", key, " not found"));
  return Touch(key, *std::move(r), now_unix);
}

absl::Status LayerCache::Touch(absl::string_view key, CacheRecord record, int64_t now_unix) {
  record.last_used_unix = now_unix;
  ++record.usage_count;
  kv::Batch b;
  b.Put(absl::StrCat("cache/", key), RecordToJson(record).dump());
  b.set_sync(false);
  return kv_->Write(b);
}

absl::StatusOr<std::vector<std::pair<std::string, CacheRecord>>> LayerCache::List() {
  std::vector<std::pair<std::string, CacheRecord>> out;
  RETURN_IF_ERROR(kv_->Scan("cache/", "", 0, [&](absl::string_view key, absl::string_view value) {
    std::optional<CacheRecord> r = RecordFromJson(nlohmann::json::parse(value, nullptr, false));
    if (r) out.emplace_back(std::string(key.substr(6)), *std::move(r));
    return true;
  }));
  return out;
}

absl::Status LayerCache::Delete(absl::string_view key) {
  return kv_->Delete(absl::StrCat("cache/", key));
}

std::string EncodeCacheConfig(const std::vector<std::pair<std::string, CacheRecord>>& records) {
  nlohmann::ordered_json j;
  j["version"] = 1;
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [key, record] : records) {
    nlohmann::json e = RecordToJson(record);
    e["key"] = key;
    list.push_back(std::move(e));
  }
  j["records"] = std::move(list);
  return j.dump();
}

absl::StatusOr<std::vector<std::pair<std::string, CacheRecord>>> DecodeCacheConfig(
    absl::string_view bytes) {
  nlohmann::json j = nlohmann::json::parse(bytes, nullptr, false);
  if (!j.is_object() || j.value("version", 0) != 1 || !j.contains("records") ||
      !j["records"].is_array()) {
    return absl::InvalidArgumentError("not a version 1 Pier build cache config");
  }
  std::vector<std::pair<std::string, CacheRecord>> out;
  for (const nlohmann::json& e : j["records"]) {
    std::optional<CacheRecord> r = RecordFromJson(e);
    if (!r || !e.contains("key") || !e["key"].is_string() ||
        !oci::Digest::Parse(e["key"].get<std::string>()).ok()) {
      return absl::InvalidArgumentError("malformed record in the build cache config: " +
                                        e.dump().substr(0, 200));
    }
    out.emplace_back(e["key"].get<std::string>(), *std::move(r));
  }
  return out;
}

}  // namespace pier::builder
