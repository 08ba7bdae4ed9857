#include "services/runtime/volumes/volume_store.h"

#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "nlohmann/json.hpp"

namespace pier::runtime {
namespace {

using Json = nlohmann::json;

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 255 || !absl::ascii_isalnum(name[0])) return false;
  for (char c : name) {
    if (!(absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '-')) return false;
  }
  return true;
}

std::string Key(const std::string& name) { return "volume/" + name; }

}  // namespace

absl::StatusOr<VolumeInfo> VolumeStore::Create(const std::string& name,
                                               const std::map<std::string, std::string>& labels,
                                               bool anonymous) {
  if (!ValidName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid volume name \"", name, "\": use letters, digits and _ . - (not first)"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(std::optional<std::string> rec, kv_->Find(Key(name)));
  VolumeInfo v;
  v.name = name;
  v.mountpoint = absl::StrCat(root_, "/volumes/", name, "/_data");
  if (rec) {
    Json j = Json::parse(*rec, nullptr, false);
    if (j.is_object()) {
      v.created_at = absl::FromUnixSeconds(j.value("created", int64_t{0}));
      v.anonymous = j.value("anonymous", false);
      if (j.contains("labels") && j["labels"].is_object()) {
        for (auto& [k, val] : j["labels"].items()) {
          if (val.is_string()) v.labels[k] = val.get<std::string>();
        }
      }
    }
    return v;
  }
  RETURN_IF_ERROR(MakeDirs(v.mountpoint, 0755));
  v.created_at = absl::Now();
  v.labels = labels;
  v.anonymous = anonymous;
  Json j = {
      {"created", absl::ToUnixSeconds(v.created_at)}, {"anonymous", anonymous}, {"labels", labels}};
  RETURN_IF_ERROR(kv_->Put(Key(name), j.dump()));
  Publish(v.name, "create", labels);
  return v;
}

void VolumeStore::Publish(const std::string& name, absl::string_view action,
                          const std::map<std::string, std::string>& labels) {
  if (events_ == nullptr) return;
  Event e;
  e.type = Event::Type::kVolume;
  e.id = name;
  e.name = name;
  e.action = std::string(action);
  e.attributes = labels;
  events_->Publish(std::move(e));
}

absl::StatusOr<VolumeInfo> VolumeStore::CreateAnonymous() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string name;
  for (int i = 0; i < 4; ++i) absl::StrAppend(&name, absl::StrFormat("%016x", rng()));
  return Create(name, {}, /*anonymous=*/true);
}

absl::StatusOr<VolumeInfo> VolumeStore::Get(const std::string& name) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(std::optional<std::string> rec, kv_->Find(Key(name)));
    if (!rec) return absl::NotFoundError(absl::StrCat("no such volume: ", name));
  }
  return Create(name);
}

absl::StatusOr<std::vector<VolumeInfo>> VolumeStore::List() {
  std::vector<std::string> names;
  RETURN_IF_ERROR(kv_->Scan("volume/", "", 0, [&](absl::string_view k, absl::string_view) {
    names.emplace_back(k.substr(7));
    return true;
  }));
  std::vector<VolumeInfo> out;
  for (const std::string& n : names) {
    ASSIGN_OR_RETURN(VolumeInfo v, Get(n));
    out.push_back(std::move(v));
  }
  return out;
}

absl::Status VolumeStore::Remove(const std::string& name,
                                 const std::function<bool(const std::string&)>& in_use) {
  ASSIGN_OR_RETURN(VolumeInfo v, Get(name));
  if (in_use && in_use(v.mountpoint)) {
    return absl::FailedPreconditionError(
        absl::StrCat("volume ", name, " is in use by a container: remove the container first"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(RemoveAll(absl::StrCat(root_, "/volumes/", name)));
  RETURN_IF_ERROR(kv_->Delete(Key(name)));
  Publish(name, "destroy", v.labels);
  return absl::OkStatus();
}

}  // namespace pier::runtime
