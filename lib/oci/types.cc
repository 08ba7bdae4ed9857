#include "lib/oci/types.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "lib/common/status.h"
#include "nlohmann/json.hpp"

namespace pier::oci {
namespace {

using Json = nlohmann::ordered_json;

absl::Status Bad(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

absl::StatusOr<Json> ParseJson(absl::string_view bytes, absl::string_view what) {
  Json j = Json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Bad(what, "malformed JSON");
  if (!j.is_object()) return Bad(what, "expected a JSON object");
  return j;
}

absl::StatusOr<std::string> GetString(const Json& j, const char* key, absl::string_view where,
                                      bool required = false) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return Bad(where, absl::StrCat("missing \"", key, "\""));
    return std::string();
  }
  if (!it->is_string()) return Bad(where, absl::StrCat("\"", key, "\" must be a string"));
  return it->get<std::string>();
}

absl::StatusOr<std::vector<std::string>> GetStrings(const Json& j, const char* key,
                                                    absl::string_view where) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_array()) return Bad(where, absl::StrCat("\"", key, "\" must be an array"));
  for (const Json& e : *it) {
    if (!e.is_string()) {
      return Bad(where, absl::StrCat("\"", key, "\" must hold strings"));
    }
    out.push_back(e.get<std::string>());
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> GetStringMap(const Json& j, const char* key,
                                                                absl::string_view where) {
  std::map<std::string, std::string> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_object()) return Bad(where, absl::StrCat("\"", key, "\" must be an object"));
  for (auto& [k, v] : it->items()) {
    if (!v.is_string()) {
      return Bad(where, absl::StrCat("\"", key, "\".\"", k, "\" must be a string"));
    }
    out[k] = v.get<std::string>();
  }
  return out;
}

// Keys of a JSON object used as a set ({"80/tcp": {}}), sorted.
absl::StatusOr<std::vector<std::string>> GetKeySet(const Json& j, const char* key,
                                                   absl::string_view where) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_object()) return Bad(where, absl::StrCat("\"", key, "\" must be an object"));
  for (auto& [k, v] : it->items()) out.push_back(k);
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<int64_t> GetInt(const Json& j, const char* key, absl::string_view where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return 0;
  if (!it->is_number_integer()) {
    return Bad(where, absl::StrCat("\"", key, "\" must be an integer"));
  }
  return it->get<int64_t>();
}

absl::StatusOr<Platform> ParsePlatform(const Json& j, absl::string_view where) {
  if (!j.is_object()) return Bad(where, "platform must be an object");
  Platform p;
  ASSIGN_OR_RETURN(p.architecture, GetString(j, "architecture", where, true));
  ASSIGN_OR_RETURN(p.os, GetString(j, "os", where, true));
  ASSIGN_OR_RETURN(p.os_version, GetString(j, "os.version", where));
  ASSIGN_OR_RETURN(p.os_features, GetStrings(j, "os.features", where));
  ASSIGN_OR_RETURN(p.variant, GetString(j, "variant", where));
  return p;
}

Json PlatformJson(const Platform& p) {
  Json j = Json::object();
  j["architecture"] = p.architecture;
  j["os"] = p.os;
  if (!p.os_version.empty()) j["os.version"] = p.os_version;
  if (!p.os_features.empty()) j["os.features"] = p.os_features;
  if (!p.variant.empty()) j["variant"] = p.variant;
  return j;
}

absl::StatusOr<Descriptor> ParseDescriptor(const Json& j, const std::string& where) {
  if (!j.is_object()) return Bad(where, "descriptor must be an object");
  Descriptor d;
  ASSIGN_OR_RETURN(d.media_type, GetString(j, "mediaType", where, true));
  ASSIGN_OR_RETURN(std::string digest, GetString(j, "digest", where, true));
  absl::StatusOr<Digest> parsed = Digest::Parse(digest);
  if (!parsed.ok()) return Bad(absl::StrCat(where, ".digest"), parsed.status().message());
  d.digest = *parsed;
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_integer()) {
    return Bad(where, "\"size\" must be an integer");
  }
  d.size = size->get<int64_t>();
  if (d.size < 0) return Bad(where, "\"size\" must not be negative");
  ASSIGN_OR_RETURN(d.urls, GetStrings(j, "urls", where));
  ASSIGN_OR_RETURN(d.annotations, GetStringMap(j, "annotations", where));
  ASSIGN_OR_RETURN(d.artifact_type, GetString(j, "artifactType", where));
  if (auto p = j.find("platform"); p != j.end() && !p->is_null()) {
    ASSIGN_OR_RETURN(d.platform, ParsePlatform(*p, absl::StrCat(where, ".platform")));
  }
  return d;
}

Json DescriptorJson(const Descriptor& d) {
  Json j = Json::object();
  j["mediaType"] = d.media_type;
  j["digest"] = d.digest.str();
  j["size"] = d.size;
  if (!d.urls.empty()) j["urls"] = d.urls;
  if (!d.annotations.empty()) j["annotations"] = d.annotations;
  if (d.platform) j["platform"] = PlatformJson(*d.platform);
  if (!d.artifact_type.empty()) j["artifactType"] = d.artifact_type;
  return j;
}

absl::Status CheckSchemaVersion(const Json& j, absl::string_view where) {
  auto it = j.find("schemaVersion");
  if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() != 2) {
    return Bad(where, "\"schemaVersion\" must be 2");
  }
  return absl::OkStatus();
}

}  // namespace

bool IsManifestMediaType(absl::string_view t) { return t == kOciManifest || t == kDockerManifest; }
bool IsIndexMediaType(absl::string_view t) { return t == kOciIndex || t == kDockerManifestList; }
bool IsLayerMediaType(absl::string_view t) {
  return t == kOciLayerTar || t == kOciLayerGzip || t == kOciLayerZstd || t == kDockerLayerGzip ||
         t == kDockerForeignLayerGzip ||
         t == "application/vnd.oci.image.layer.nondistributable.v1.tar" ||
         t == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" ||
         t == "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
}

absl::StatusOr<Manifest> Manifest::Parse(absl::string_view bytes) {
  ASSIGN_OR_RETURN(Json j, ParseJson(bytes, "manifest"));
  RETURN_IF_ERROR(CheckSchemaVersion(j, "manifest"));
  Manifest m;
  ASSIGN_OR_RETURN(m.media_type, GetString(j, "mediaType", "manifest"));
  if (!m.media_type.empty() && !IsManifestMediaType(m.media_type)) {
    return Bad("manifest", absl::StrCat("unsupported mediaType \"", m.media_type, "\""));
  }
  ASSIGN_OR_RETURN(m.artifact_type, GetString(j, "artifactType", "manifest"));
  auto config = j.find("config");
  if (config == j.end()) return Bad("manifest", "missing \"config\"");
  ASSIGN_OR_RETURN(m.config, ParseDescriptor(*config, "manifest: config"));
  auto layers = j.find("layers");
  if (layers != j.end() && !layers->is_null()) {
    if (!layers->is_array()) return Bad("manifest", "\"layers\" must be an array");
    for (size_t i = 0; i < layers->size(); ++i) {
      ASSIGN_OR_RETURN(Descriptor d,
                       ParseDescriptor((*layers)[i], absl::StrCat("manifest: layers[", i, "]")));
      m.layers.push_back(std::move(d));
    }
  } else if (m.media_type == kDockerManifest) {
    return Bad("manifest", "missing \"layers\"");
  }
  if (auto s = j.find("subject"); s != j.end() && !s->is_null()) {
    ASSIGN_OR_RETURN(m.subject, ParseDescriptor(*s, "manifest: subject"));
  }
  ASSIGN_OR_RETURN(m.annotations, GetStringMap(j, "annotations", "manifest"));
  m.raw = std::string(bytes);
  return m;
}

std::string Manifest::ToJson() const {
  Json j = Json::object();
  j["schemaVersion"] = schema_version;
  if (!media_type.empty()) j["mediaType"] = media_type;
  if (!artifact_type.empty()) j["artifactType"] = artifact_type;
  j["config"] = DescriptorJson(config);
  Json ls = Json::array();
  for (const Descriptor& d : layers) ls.push_back(DescriptorJson(d));
  j["layers"] = std::move(ls);
  if (subject) j["subject"] = DescriptorJson(*subject);
  if (!annotations.empty()) j["annotations"] = annotations;
  return j.dump();
}

absl::StatusOr<Index> Index::Parse(absl::string_view bytes) {
  ASSIGN_OR_RETURN(Json j, ParseJson(bytes, "index"));
  RETURN_IF_ERROR(CheckSchemaVersion(j, "index"));
  Index x;
  ASSIGN_OR_RETURN(x.media_type, GetString(j, "mediaType", "index"));
  if (!x.media_type.empty() && !IsIndexMediaType(x.media_type)) {
    return Bad("index", absl::StrCat("unsupported mediaType \"", x.media_type, "\""));
  }
  ASSIGN_OR_RETURN(x.artifact_type, GetString(j, "artifactType", "index"));
  auto ms = j.find("manifests");
  if (ms == j.end() || !ms->is_array()) return Bad("index", "\"manifests\" must be an array");
  for (size_t i = 0; i < ms->size(); ++i) {
    ASSIGN_OR_RETURN(Descriptor d,
                     ParseDescriptor((*ms)[i], absl::StrCat("index: manifests[", i, "]")));
    x.manifests.push_back(std::move(d));
  }
  if (auto s = j.find("subject"); s != j.end() && !s->is_null()) {
    ASSIGN_OR_RETURN(x.subject, ParseDescriptor(*s, "index: subject"));
  }
  ASSIGN_OR_RETURN(x.annotations, GetStringMap(j, "annotations", "index"));
  x.raw = std::string(bytes);
  return x;
}

std::string Index::ToJson() const {
  Json j = Json::object();
  j["schemaVersion"] = schema_version;
  if (!media_type.empty()) j["mediaType"] = media_type;
  if (!artifact_type.empty()) j["artifactType"] = artifact_type;
  Json ms = Json::array();
  for (const Descriptor& d : manifests) ms.push_back(DescriptorJson(d));
  j["manifests"] = std::move(ms);
  if (subject) j["subject"] = DescriptorJson(*subject);
  if (!annotations.empty()) j["annotations"] = annotations;
  return j.dump();
}

namespace {

absl::StatusOr<ContainerConfig> ParseContainerConfig(const Json& j) {
  constexpr absl::string_view where = "image config: config";
  ContainerConfig c;
  if (j.is_null()) return c;
  if (!j.is_object()) return Bad(where, "must be an object");
  ASSIGN_OR_RETURN(c.user, GetString(j, "User", where));
  ASSIGN_OR_RETURN(c.exposed_ports, GetKeySet(j, "ExposedPorts", where));
  ASSIGN_OR_RETURN(c.env, GetStrings(j, "Env", where));
  if (auto it = j.find("Entrypoint"); it != j.end() && !it->is_null()) {
    ASSIGN_OR_RETURN(c.entrypoint, GetStrings(j, "Entrypoint", where));
  }
  if (auto it = j.find("Cmd"); it != j.end() && !it->is_null()) {
    ASSIGN_OR_RETURN(c.cmd, GetStrings(j, "Cmd", where));
  }
  ASSIGN_OR_RETURN(c.volumes, GetKeySet(j, "Volumes", where));
  ASSIGN_OR_RETURN(c.working_dir, GetString(j, "WorkingDir", where));
  ASSIGN_OR_RETURN(c.labels, GetStringMap(j, "Labels", where));
  ASSIGN_OR_RETURN(c.stop_signal, GetString(j, "StopSignal", where));
  ASSIGN_OR_RETURN(c.on_build, GetStrings(j, "OnBuild", where));
  ASSIGN_OR_RETURN(c.shell, GetStrings(j, "Shell", where));
  if (auto it = j.find("Healthcheck"); it != j.end() && !it->is_null()) {
    constexpr absl::string_view hw = "image config: config.Healthcheck";
    if (!it->is_object()) return Bad(hw, "must be an object");
    HealthConfig h;
    ASSIGN_OR_RETURN(h.test, GetStrings(*it, "Test", hw));
    ASSIGN_OR_RETURN(h.interval_ns, GetInt(*it, "Interval", hw));
    ASSIGN_OR_RETURN(h.timeout_ns, GetInt(*it, "Timeout", hw));
    ASSIGN_OR_RETURN(h.start_period_ns, GetInt(*it, "StartPeriod", hw));
    ASSIGN_OR_RETURN(h.start_interval_ns, GetInt(*it, "StartInterval", hw));
    ASSIGN_OR_RETURN(int64_t retries, GetInt(*it, "Retries", hw));
    h.retries = static_cast<int>(retries);
    c.healthcheck = std::move(h);
  }
  return c;
}

// Sets or erases `key` so that empty values are omitted, as docker does.
template <typename T>
void SetOrErase(Json& j, const char* key, const T& value, bool empty) {
  if (empty) {
    j.erase(key);
  } else {
    j[key] = value;
  }
}

Json KeySet(const std::vector<std::string>& keys) {
  Json j = Json::object();
  for (const std::string& k : keys) j[k] = Json::object();
  return j;
}

void MergeContainerConfig(const ContainerConfig& c, Json& j) {
  SetOrErase(j, "User", c.user, c.user.empty());
  SetOrErase(j, "ExposedPorts", KeySet(c.exposed_ports), c.exposed_ports.empty());
  SetOrErase(j, "Env", c.env, c.env.empty());
  if (c.entrypoint) {
    j["Entrypoint"] = *c.entrypoint;
  } else {
    j.erase("Entrypoint");
  }
  if (c.cmd) {
    j["Cmd"] = *c.cmd;
  } else {
    j.erase("Cmd");
  }
  SetOrErase(j, "Volumes", KeySet(c.volumes), c.volumes.empty());
  SetOrErase(j, "WorkingDir", c.working_dir, c.working_dir.empty());
  SetOrErase(j, "Labels", c.labels, c.labels.empty());
  SetOrErase(j, "StopSignal", c.stop_signal, c.stop_signal.empty());
  if (c.healthcheck) {
    Json h = Json::object();
    h["Test"] = c.healthcheck->test;
    if (c.healthcheck->interval_ns) h["Interval"] = c.healthcheck->interval_ns;
    if (c.healthcheck->timeout_ns) h["Timeout"] = c.healthcheck->timeout_ns;
    if (c.healthcheck->start_period_ns) h["StartPeriod"] = c.healthcheck->start_period_ns;
    if (c.healthcheck->start_interval_ns) h["StartInterval"] = c.healthcheck->start_interval_ns;
    if (c.healthcheck->retries) h["Retries"] = c.healthcheck->retries;
    j["Healthcheck"] = std::move(h);
  } else {
    j.erase("Healthcheck");
  }
  SetOrErase(j, "OnBuild", c.on_build, c.on_build.empty());
  SetOrErase(j, "Shell", c.shell, c.shell.empty());
}

}  // namespace

absl::StatusOr<ImageConfig> ImageConfig::Parse(absl::string_view bytes) {
  constexpr absl::string_view where = "image config";
  ASSIGN_OR_RETURN(Json j, ParseJson(bytes, where));
  ImageConfig c;
  ASSIGN_OR_RETURN(c.created, GetString(j, "created", where));
  ASSIGN_OR_RETURN(c.author, GetString(j, "author", where));
  ASSIGN_OR_RETURN(c.architecture, GetString(j, "architecture", where));
  ASSIGN_OR_RETURN(c.os, GetString(j, "os", where));
  ASSIGN_OR_RETURN(c.variant, GetString(j, "variant", where));
  if (auto it = j.find("config"); it != j.end()) {
    ASSIGN_OR_RETURN(c.config, ParseContainerConfig(*it));
  }
  if (auto it = j.find("rootfs"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return Bad(where, "\"rootfs\" must be an object");
    ASSIGN_OR_RETURN(std::string type, GetString(*it, "type", "image config: rootfs"));
    if (type != "layers") {
      return Bad("image config: rootfs", absl::StrCat("unsupported type \"", type, "\""));
    }
    ASSIGN_OR_RETURN(std::vector<std::string> ids,
                     GetStrings(*it, "diff_ids", "image config: rootfs"));
    for (size_t i = 0; i < ids.size(); ++i) {
      absl::StatusOr<Digest> d = Digest::Parse(ids[i]);
      if (!d.ok()) {
        return Bad(absl::StrCat("image config: rootfs.diff_ids[", i, "]"), d.status().message());
      }
      c.diff_ids.push_back(*d);
    }
  }
  if (auto it = j.find("history"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return Bad(where, "\"history\" must be an array");
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& h = (*it)[i];
      std::string hw = absl::StrCat("image config: history[", i, "]");
      if (!h.is_object()) return Bad(hw, "must be an object");
      History e;
      ASSIGN_OR_RETURN(e.created, GetString(h, "created", hw));
      ASSIGN_OR_RETURN(e.created_by, GetString(h, "created_by", hw));
      ASSIGN_OR_RETURN(e.author, GetString(h, "author", hw));
      ASSIGN_OR_RETURN(e.comment, GetString(h, "comment", hw));
      if (auto el = h.find("empty_layer"); el != h.end() && !el->is_null()) {
        if (!el->is_boolean()) return Bad(hw, "\"empty_layer\" must be a boolean");
        e.empty_layer = el->get<bool>();
      }
      c.history.push_back(std::move(e));
    }
  }
  c.raw = std::string(bytes);
  return c;
}

std::string ImageConfig::ToJson() const {
  Json j = Json::object();
  if (!raw.empty()) {
    Json old = Json::parse(raw, nullptr, /*allow_exceptions=*/false);
    if (old.is_object()) j = std::move(old);
  }
  SetOrErase(j, "created", created, created.empty());
  SetOrErase(j, "author", author, author.empty());
  j["architecture"] = architecture;
  j["os"] = os;
  SetOrErase(j, "variant", variant, variant.empty());
  Json cfg = j.contains("config") && j["config"].is_object() ? j["config"] : Json::object();
  MergeContainerConfig(config, cfg);
  j["config"] = std::move(cfg);
  Json ids = Json::array();
  for (const Digest& d : diff_ids) ids.push_back(d.str());
  j["rootfs"] = Json{{"type", "layers"}, {"diff_ids", std::move(ids)}};
  Json hs = Json::array();
  for (const History& h : history) {
    Json e = Json::object();
    if (!h.created.empty()) e["created"] = h.created;
    if (!h.created_by.empty()) e["created_by"] = h.created_by;
    if (!h.author.empty()) e["author"] = h.author;
    if (!h.comment.empty()) e["comment"] = h.comment;
    if (h.empty_layer) e["empty_layer"] = true;
    hs.push_back(std::move(e));
  }
  SetOrErase(j, "history", hs, history.empty());
  return j.dump();
}

absl::StatusOr<std::string> DetectManifestMediaType(absl::string_view bytes) {
  ASSIGN_OR_RETURN(Json j, ParseJson(bytes, "manifest"));
  ASSIGN_OR_RETURN(std::string mt, GetString(j, "mediaType", "manifest"));
  if (!mt.empty()) {
    if (!IsManifestMediaType(mt) && !IsIndexMediaType(mt)) {
      return Bad("manifest", absl::StrCat("unsupported mediaType \"", mt, "\""));
    }
    return mt;
  }
  if (j.contains("manifests")) return std::string(kOciIndex);
  if (j.contains("config")) return std::string(kOciManifest);
  return Bad("manifest", "neither an image manifest nor an index");
}

absl::StatusOr<std::vector<Descriptor>> References(absl::string_view media_type,
                                                   absl::string_view bytes) {
  std::vector<Descriptor> out;
  if (IsIndexMediaType(media_type)) {
    ASSIGN_OR_RETURN(Index x, Index::Parse(bytes));
    return x.manifests;
  }
  if (IsManifestMediaType(media_type)) {
    ASSIGN_OR_RETURN(Manifest m, Manifest::Parse(bytes));
    out.push_back(m.config);
    out.insert(out.end(), m.layers.begin(), m.layers.end());
    return out;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported manifest media type \"", media_type, "\""));
}

}  // namespace pier::oci
