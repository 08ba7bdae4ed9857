#include "services/builder/cache/layer_cache.h"

#include "absl/strings/str_cat.h"
#include "lib/common/status.h"
#include "lib/oci/digest.h"
#include "nlohmann/json.hpp"

namespace pier::builder {

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
  nlohmann::json j = nlohmann::json::parse(*raw, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  CacheRecord r;
  r.description = j.value("description", "");
  r.created_unix = j.value("created", int64_t{0});
  if (j.contains("layer")) {
    const nlohmann::json& l = j["layer"];
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

absl::Status LayerCache::Store(absl::string_view key, const CacheRecord& record) {
  nlohmann::json j;
  j["description"] = record.description;
  j["created"] = record.created_unix;
  if (record.layer) {
    j["layer"] = {{"digest", record.layer->digest.str()},
                  {"diff_id", record.layer->diff_id.str()},
                  {"size", record.layer->size},
                  {"uncompressed_size", record.layer->uncompressed_size},
                  {"media_type", record.layer->media_type},
                  {"entries", record.layer->entries}};
  }
  return kv_->Put(absl::StrCat("cache/", key), j.dump());
}

}  // namespace pier::builder
