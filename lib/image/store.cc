// ImageStore: records, lookups, removal with garbage collection, unpacking
// and image creation (import, new layers). Registry transfers are in
// store_registry.cc, archives in store_archive.cc.
#include "lib/image/store.h"

#include <stdlib.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "lib/archive/layer_apply.h"
#include "lib/common/fs.h"
#include "lib/common/log.h"
#include "lib/common/status.h"
#include "lib/image/internal.h"
#include "nlohmann/json.hpp"

namespace pier::image {
namespace {

using Json = nlohmann::json;

constexpr absl::string_view kNamedPrefix = "image/n/";
constexpr absl::string_view kDanglingPrefix = "image/d/";
// image/c/<layer digest>/<compression>/<level> -> "<media type> <digest>"
// of its rewrite (NewImage::compression).
constexpr absl::string_view kRecompressedPrefix = "image/c/";

std::string RecordKey(const Image& image) {
  if (image.name.empty()) return absl::StrCat(kDanglingPrefix, image.target.digest.str());
  return absl::StrCat(kNamedPrefix, image.name);
}

std::string RecordToJson(const Image& image) {
  Json j = {{"target",
             {{"mediaType", image.target.media_type},
              {"digest", image.target.digest.str()},
              {"size", image.target.size}}},
            {"config", image.id.str()},
            {"created", absl::FormatTime(absl::RFC3339_full, image.created, absl::UTCTimeZone())}};
  if (image.repo_digest) j["repo_digest"] = image.repo_digest->str();
  return j.dump();
}

absl::StatusOr<Image> RecordFromJson(absl::string_view key, absl::string_view text) {
  auto bad = [&] { return absl::DataLossError(absl::StrCat("image record ", key, " is corrupt")); };
  Json j = Json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("target") || !j["target"].is_object()) return bad();
  Image image;
  if (absl::StartsWith(key, kNamedPrefix))
    image.name = std::string(key.substr(kNamedPrefix.size()));
  const Json& t = j["target"];
  image.target.media_type = t.value("mediaType", "");
  auto digest = oci::Digest::Parse(t.value("digest", ""));
  if (!digest.ok()) return bad();
  image.target.digest = *digest;
  image.target.size = t.value("size", int64_t{0});
  auto id = oci::Digest::Parse(j.value("config", ""));
  if (!id.ok()) return bad();
  image.id = *id;
  if (j.contains("repo_digest")) {
    auto repo = oci::Digest::Parse(j.value("repo_digest", ""));
    if (!repo.ok()) return bad();
    image.repo_digest = *repo;
  }
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, j.value("created", ""), &image.created, &err)) {
    image.created = absl::UnixEpoch();
  }
  return image;
}

bool IsHex(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) ||
        absl::ascii_isupper(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

}  // namespace

namespace internal {

std::string NowRfc3339() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
}

archive::ByteSource ReaderSource(content::FileReader* reader) {
  return
      [reader](char* buf, size_t len) -> absl::StatusOr<size_t> { return reader->Read(buf, len); };
}

}  // namespace internal

oci::Platform HostPlatform() {
  oci::Platform p;
  p.os = "linux";
  struct utsname u;
  std::string machine = ::uname(&u) == 0 ? u.machine : "x86_64";
  if (machine == "x86_64") {
    p.architecture = "amd64";
  } else if (machine == "aarch64" || machine == "arm64") {
    p.architecture = "arm64";
    p.variant = "v8";
  } else if (absl::StartsWith(machine, "armv7")) {
    p.architecture = "arm";
    p.variant = "v7";
  } else if (absl::StartsWith(machine, "armv6")) {
    p.architecture = "arm";
    p.variant = "v6";
  } else if (machine == "i386" || machine == "i686") {
    p.architecture = "386";
  } else {
    p.architecture = machine;  // ppc64le, s390x, riscv64 match GOARCH
  }
  return p;
}

ImageStore::ImageStore(std::string root, kv::KvStore* kv, content::ContentStore* content,
                       ImageStoreOptions options, std::unique_ptr<Snapshotter> snapshotter)
    : root_(std::move(root)),
      kv_(kv),
      content_(content),
      options_(std::move(options)),
      snapshotter_(std::move(snapshotter)) {}

absl::StatusOr<std::unique_ptr<ImageStore>> ImageStore::Open(std::string root, kv::KvStore* kv,
                                                             content::ContentStore* content,
                                                             ImageStoreOptions options) {
  if (options.architecture.empty()) {
    oci::Platform host = HostPlatform();
    options.architecture = host.architecture;
    if (options.variant.empty()) options.variant = host.variant;
  }
  if (options.os.empty()) options.os = "linux";
  ASSIGN_OR_RETURN(std::unique_ptr<Snapshotter> snapshotter,
                   Snapshotter::Open(root, kv, options.snapshotter));
  return std::unique_ptr<ImageStore>(
      new ImageStore(std::move(root), kv, content, std::move(options), std::move(snapshotter)));
}

absl::StatusOr<std::string> ImageStore::NormalizeName(absl::string_view name) const {
  ASSIGN_OR_RETURN(oci::Reference ref, oci::Reference::Parse(name, options_.default_registry));
  return ref.String();
}

std::string ImageStore::PlatformString() const {
  std::string s = absl::StrCat(options_.os, "/", options_.architecture);
  if (!options_.variant.empty()) absl::StrAppend(&s, "/", options_.variant);
  return s;
}

absl::StatusOr<std::string> ImageStore::TempDir(absl::string_view prefix) {
  std::string tmpl = absl::StrCat(root_, "/tmp/", prefix, "XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return ErrnoStatus(errno, absl::StrCat("mkdtemp ", tmpl));
  }
  return tmpl;
}

// --- Records.

absl::StatusOr<std::vector<Image>> ImageStore::Scan() {
  std::vector<Image> out;
  absl::Status status;
  for (absl::string_view prefix : {kNamedPrefix, kDanglingPrefix}) {
    RETURN_IF_ERROR(kv_->Scan(prefix, "", 0, [&](absl::string_view key, absl::string_view value) {
      auto image = RecordFromJson(key, value);
      if (!image.ok()) {
        status = image.status();
        return false;
      }
      out.push_back(*std::move(image));
      return true;
    }));
    RETURN_IF_ERROR(status);
  }
  return out;
}

absl::StatusOr<std::vector<Image>> ImageStore::List() { return Scan(); }

absl::StatusOr<Image> ImageStore::Record(Image image) {
  image.created = absl::Now();
  std::lock_guard<std::mutex> lock(mu_);
  if (!image.name.empty()) {
    // The name already on this manifest (an unchanged rebuild): nothing to
    // write, found without reading every record.
    ASSIGN_OR_RETURN(std::optional<std::string> rec,
                     kv_->Find(absl::StrCat(kNamedPrefix, image.name)));
    if (rec) {
      ASSIGN_OR_RETURN(Image old, RecordFromJson(absl::StrCat(kNamedPrefix, image.name), *rec));
      if (old.target.digest == image.target.digest && old.id == image.id &&
          old.repo_digest == image.repo_digest) {
        return old;
      }
    }
  }
  ASSIGN_OR_RETURN(std::vector<Image> all, Scan());
  kv::Batch batch;
  if (!image.name.empty()) {
    // The name already on this manifest (an unchanged rebuild): nothing to write.
    for (const Image& old : all) {
      if (old.name == image.name && old.target.digest == image.target.digest &&
          old.id == image.id && old.repo_digest == image.repo_digest) {
        return old;
      }
    }
    // The image this name pointed at becomes dangling if that was its last name.
    for (const Image& old : all) {
      if (old.name != image.name || old.target.digest == image.target.digest) continue;
      bool named_elsewhere = false;
      for (const Image& other : all) {
        if (other.name != old.name && other.target.digest == old.target.digest) {
          named_elsewhere = true;
        }
      }
      if (!named_elsewhere) {
        Image dangling = old;
        dangling.name.clear();
        batch.Put(RecordKey(dangling), RecordToJson(dangling));
      }
    }
    // A name supersedes a dangling record of the same manifest.
    batch.Delete(absl::StrCat(kDanglingPrefix, image.target.digest.str()));
  } else {
    for (const Image& other : all) {
      // Already known (named or dangling): nothing to record.
      if (other.target.digest == image.target.digest) return other;
    }
  }
  batch.Put(RecordKey(image), RecordToJson(image));
  RETURN_IF_ERROR(kv_->Write(batch));
  return image;
}

absl::StatusOr<Image> ImageStore::Get(absl::string_view name_or_id) {
  absl::StatusOr<oci::Reference> ref = oci::Reference::Parse(name_or_id, options_.default_registry);
  if (ref.ok()) {
    ASSIGN_OR_RETURN(std::optional<std::string> rec,
                     kv_->Find(absl::StrCat(kNamedPrefix, ref->String())));
    if (rec) return RecordFromJson(absl::StrCat(kNamedPrefix, ref->String()), *rec);
    if (ref->digest) {
      // "repo@sha256:..." names an image of that repository by manifest or
      // repo digest, whatever tag it was recorded under.
      ASSIGN_OR_RETURN(std::vector<Image> all, Scan());
      for (const Image& image : all) {
        auto name = oci::Reference::Parse(image.name, options_.default_registry);
        if (!name.ok() || name->Name() != ref->Name()) continue;
        if (image.target.digest == *ref->digest || image.repo_digest == ref->digest) return image;
      }
    }
  }
  std::string hex(name_or_id);
  if (absl::StartsWith(hex, "sha256:")) hex = hex.substr(7);
  if (hex.size() >= 4 && hex.size() <= 64 && IsHex(hex)) {
    ASSIGN_OR_RETURN(std::vector<Image> all, Scan());
    std::optional<Image> found;
    for (const Image& image : all) {
      // A manifest digest names one image exactly; images that differ only
      // in their layers' compression share an id.
      if (hex.size() == 64 && image.target.digest.hex() == hex) return image;
    }
    for (const Image& image : all) {
      if (!absl::StartsWith(image.id.hex(), hex)) continue;
      if (found && found->id != image.id) {
        return absl::InvalidArgumentError(absl::StrCat("image id prefix \"", name_or_id,
                                                       "\" is ambiguous: ", found->id.str(),
                                                       " and ", image.id.str()));
      }
      if (!found) found = image;
    }
    if (found) return *found;
  }
  if (!ref.ok() && !IsHex(hex)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image \"", name_or_id, "\" is neither a name nor an id: ", ref.status().message()));
  }
  return absl::NotFoundError(absl::StrCat("image \"", name_or_id, "\" not found"));
}

absl::StatusOr<Image> ImageStore::Tag(absl::string_view src, absl::string_view dst) {
  ASSIGN_OR_RETURN(Image image, Get(src));
  ASSIGN_OR_RETURN(oci::Reference ref, oci::Reference::Parse(dst, options_.default_registry));
  if (ref.digest) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot tag \"", dst, "\": a tag name has no digest"));
  }
  image.name = ref.String();
  image.repo_digest.reset();
  return Record(std::move(image));
}

absl::StatusOr<oci::Manifest> ImageStore::GetManifest(const Image& image) {
  ASSIGN_OR_RETURN(std::string bytes,
                   content_->ReadAll(image.target.digest, options_.max_manifest_bytes));
  return oci::Manifest::Parse(bytes);
}

absl::StatusOr<oci::ImageConfig> ImageStore::GetConfig(const Image& image) {
  ASSIGN_OR_RETURN(std::string bytes, content_->ReadAll(image.id, options_.max_config_bytes));
  return oci::ImageConfig::Parse(bytes);
}

absl::Status ImageStore::CollectNeeds(const Image& image, std::vector<oci::Digest>* blobs,
                                      std::vector<oci::Digest>* chains) {
  blobs->push_back(image.target.digest);
  blobs->push_back(image.id);
  if (image.repo_digest) blobs->push_back(*image.repo_digest);
  absl::StatusOr<oci::Manifest> manifest = GetManifest(image);
  if (!manifest.ok()) return manifest.status();
  for (const oci::Descriptor& layer : manifest->layers) blobs->push_back(layer.digest);
  absl::StatusOr<oci::ImageConfig> config = GetConfig(image);
  if (!config.ok()) return config.status();
  std::vector<oci::Digest> ids = ChainIds(config->diff_ids);
  chains->insert(chains->end(), ids.begin(), ids.end());
  return absl::OkStatus();
}

absl::StatusOr<RemoveResult> ImageStore::Remove(absl::string_view name_or_id, bool force,
                                                const InUseFn& in_use) {
  std::optional<Image> by_name;
  absl::StatusOr<oci::Reference> ref = oci::Reference::Parse(name_or_id, options_.default_registry);
  if (ref.ok()) {
    ASSIGN_OR_RETURN(std::optional<std::string> rec,
                     kv_->Find(absl::StrCat(kNamedPrefix, ref->String())));
    if (rec) {
      ASSIGN_OR_RETURN(by_name, RecordFromJson(absl::StrCat(kNamedPrefix, ref->String()), *rec));
    }
  }
  std::optional<Image> by_id;
  if (!by_name) {
    ASSIGN_OR_RETURN(by_id, Get(name_or_id));
  }

  RemoveResult result;
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(std::vector<Image> all, Scan());
  std::vector<Image> targets, remaining;
  for (const Image& image : all) {
    bool target = by_name ? image.name == by_name->name : image.id == by_id->id;
    (target ? targets : remaining).push_back(image);
  }
  if (targets.empty()) {
    return absl::NotFoundError(absl::StrCat("image \"", name_or_id, "\" not found"));
  }
  if (by_id && targets.size() > 1 && !force) {
    return absl::FailedPreconditionError(
        absl::StrCat("image ", by_id->id.str(), " has ", targets.size(),
                     " names; remove them by name or force the removal"));
  }
  std::set<oci::Digest> gone_ids;
  for (const Image& t : targets) {
    bool still = std::any_of(remaining.begin(), remaining.end(),
                             [&](const Image& r) { return r.id == t.id; });
    if (!still) gone_ids.insert(t.id);
  }
  std::set<oci::Digest> keep_ids;
  for (const oci::Digest& id : gone_ids) {
    if (in_use && in_use(id)) {
      if (!force) {
        return absl::FailedPreconditionError(absl::StrCat("image ", id.str(), " (", name_or_id,
                                                          ") is in use; force to untag it anyway"));
      }
      keep_ids.insert(id);
    }
  }
  kv::Batch batch;
  for (const Image& t : targets) {
    batch.Delete(RecordKey(t));
    if (!t.name.empty()) result.untagged.push_back(t.name);
  }
  // An image in use keeps a dangling record so that its content stays
  // accounted for (and removable by id later).
  for (const Image& t : targets) {
    if (keep_ids.count(t.id) > 0 && !t.name.empty()) {
      Image dangling = t;
      dangling.name.clear();
      batch.Put(RecordKey(dangling), RecordToJson(dangling));
      remaining.push_back(dangling);
    }
  }
  RETURN_IF_ERROR(kv_->Write(batch));

  // Garbage: what the removed images needed and no remaining image does.
  std::vector<oci::Digest> need_blobs, need_chains;
  for (const Image& r : remaining) {
    absl::Status st = CollectNeeds(r, &need_blobs, &need_chains);
    if (!st.ok()) {
      // Without knowing what it needs, deleting anything could break it.
      PIER_LOG(WARNING) << "image " << r.name << " " << r.id << ": " << st
                        << "; keeping content of removed images";
      return result;
    }
  }
  std::set<oci::Digest> needed_blobs(need_blobs.begin(), need_blobs.end());
  std::set<oci::Digest> needed_chains(need_chains.begin(), need_chains.end());
  std::vector<oci::Digest> cand_blobs, cand_chains;
  for (const Image& t : targets) {
    if (keep_ids.count(t.id) > 0 || gone_ids.count(t.id) == 0) continue;
    std::vector<oci::Digest> chains;
    absl::Status st = CollectNeeds(t, &cand_blobs, &chains);
    if (!st.ok()) {
      PIER_LOG(WARNING) << "removed image " << t.id << ": " << st;
    }
    cand_chains.insert(cand_chains.end(), chains.rbegin(), chains.rend());  // top first
  }
  std::set<oci::Digest> done;
  for (const oci::Digest& chain : cand_chains) {
    if (needed_chains.count(chain) > 0 || !done.insert(chain).second) continue;
    absl::Status st = snapshotter_->Remove(chain);
    if (st.ok()) {
      result.removed_snapshots.push_back(chain);
    } else if (!absl::IsNotFound(st)) {
      PIER_LOG(INFO) << "keeping snapshot " << chain << ": " << st;
    }
  }
  done.clear();
  for (const oci::Digest& blob : cand_blobs) {
    if (needed_blobs.count(blob) > 0 || !done.insert(blob).second) continue;
    absl::Status st = content_->Delete(blob);
    if (st.ok()) {
      result.deleted.push_back(blob);
    } else if (!absl::IsNotFound(st)) {
      PIER_LOG(WARNING) << "delete blob " << blob << ": " << st;
    }
  }
  return result;
}

// --- Unpacking and creating.

absl::StatusOr<std::optional<oci::Digest>> ImageStore::Unpack(const Image& image) {
  ASSIGN_OR_RETURN(oci::Manifest manifest, GetManifest(image));
  ASSIGN_OR_RETURN(oci::ImageConfig config, GetConfig(image));
  if (manifest.layers.size() != config.diff_ids.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("image ", image.target.digest.str(), ": manifest has ", manifest.layers.size(),
                     " layers but config has ", config.diff_ids.size(), " diff_ids"));
  }
  std::optional<oci::Digest> parent;
  for (size_t i = 0; i < manifest.layers.size(); ++i) {
    const oci::Digest chain = ChainId(parent, config.diff_ids[i]);
    ASSIGN_OR_RETURN(bool exists, snapshotter_->Exists(chain));
    if (!exists) {
      ASSIGN_OR_RETURN(std::unique_ptr<content::FileReader> reader,
                       content_->OpenReader(manifest.layers[i].digest));
      ASSIGN_OR_RETURN(oci::Digest got, snapshotter_->Unpack(parent, config.diff_ids[i],
                                                             internal::ReaderSource(reader.get())));
      (void)got;
    }
    parent = chain;
  }
  return parent;
}

absl::StatusOr<Image> ImageStore::RecordManifest(const oci::Manifest& manifest,
                                                 const oci::Digest& digest,
                                                 absl::string_view media_type,
                                                 const std::string& name,
                                                 std::optional<oci::Digest> repo_digest) {
  Image image;
  image.name = name;
  image.target.media_type = std::string(media_type);
  image.target.digest = digest;
  ASSIGN_OR_RETURN(content::Info info, content_->Info(digest));
  image.target.size = static_cast<int64_t>(info.size);
  image.id = manifest.config.digest;
  image.repo_digest = repo_digest;
  RETURN_IF_ERROR(Unpack(image).status());
  return Record(std::move(image));
}

namespace {
// Numbers recompression ingests: concurrent rewrites of one layer must not
// share (or resume) an ingest.
std::atomic<uint64_t> recompress_seq{0};
}  // namespace

absl::StatusOr<oci::Descriptor> ImageStore::Recompress(const oci::Descriptor& layer,
                                                       const archive::CreateOptions& options) {
  const std::string& t = layer.media_type;
  archive::Compression have = archive::Compression::kNone;
  if (absl::EndsWith(t, "gzip")) have = archive::Compression::kGzip;
  if (absl::EndsWith(t, "zstd")) have = archive::Compression::kZstd;
  if (have == options.compression && options.compression_level == 0) return layer;
  // An earlier rewrite of this blob with these options, when its result is
  // still stored: compressing is the slow part of a cached rebuild.
  const std::string memo =
      absl::StrCat(kRecompressedPrefix, layer.digest.str(), "/",
                   archive::CompressionName(options.compression), "/", options.compression_level);
  ASSIGN_OR_RETURN(std::optional<std::string> known, kv_->Find(memo));
  if (known) {
    std::vector<std::string> f = absl::StrSplit(*known, ' ');
    absl::StatusOr<oci::Digest> digest =
        f.size() == 2 ? oci::Digest::Parse(f[1]) : absl::InvalidArgumentError("bad record");
    if (digest.ok()) {
      absl::StatusOr<content::Info> info = content_->Info(*digest);
      if (info.ok()) {
        oci::Descriptor d;
        d.media_type = f[0];
        d.digest = *digest;
        d.size = static_cast<int64_t>(info->size);
        return d;
      }
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<content::FileReader> reader, content_->OpenReader(layer.digest));
  ASSIGN_OR_RETURN(std::unique_ptr<content::ContentWriter> writer,
                   content_->OpenWriter(absl::StrCat("recompress-", layer.digest.hex(), "-",
                                                     archive::CompressionName(options.compression),
                                                     "-", ::getpid(), "-", ++recompress_seq)));
  absl::StatusOr<archive::LayerInfo> info = archive::RecompressLayer(
      [&](char* buf, size_t len) { return reader->Read(buf, len); },
      [&](absl::string_view chunk) { return writer->Write(chunk); }, options);
  if (!info.ok()) {
    (void)writer->Abort();
    return Annotate(info.status(), "recompress layer " + layer.digest.str());
  }
  absl::StatusOr<content::Info> committed = writer->Commit(info->size, info->digest);
  if (!committed.ok() && !absl::IsAlreadyExists(committed.status())) {
    return Annotate(committed.status(), "recompress layer " + layer.digest.str());
  }
  oci::Descriptor d;
  d.media_type = info->media_type;
  d.digest = info->digest;
  d.size = static_cast<int64_t>(info->size);
  kv::Batch batch;
  batch.set_sync(false);  // losing it costs one more rewrite
  batch.Put(memo, absl::StrCat(d.media_type, " ", d.digest.str()));
  RETURN_IF_ERROR(kv_->Write(batch));
  return d;
}

absl::StatusOr<Image> ImageStore::CreateImage(const NewImage& request) {
  std::string name;
  if (!request.name.empty()) {
    ASSIGN_OR_RETURN(oci::Reference ref,
                     oci::Reference::Parse(request.name, options_.default_registry));
    if (ref.digest) {
      return absl::InvalidArgumentError(
          absl::StrCat("image name \"", request.name, "\" must not have a digest"));
    }
    name = ref.String();
  }
  oci::Manifest manifest;
  oci::ImageConfig config;
  if (!request.base.empty()) {
    ASSIGN_OR_RETURN(Image base, Get(request.base));
    ASSIGN_OR_RETURN(manifest, GetManifest(base));
    ASSIGN_OR_RETURN(config, GetConfig(base));
    manifest.raw.clear();
    manifest.annotations.clear();
    manifest.subject.reset();
  } else {
    config.architecture = options_.architecture;
    config.os = options_.os;
    config.variant = options_.variant;
  }
  if (request.compression && request.recompress_base) {
    for (oci::Descriptor& d : manifest.layers) {
      ASSIGN_OR_RETURN(d, Recompress(d, *request.compression));
    }
  }
  for (const archive::LayerInfo& layer : request.layers) {
    absl::StatusOr<content::Info> info = content_->Info(layer.digest);
    if (!info.ok()) return Annotate(info.status(), "new layer");
    if (info->size != layer.size) {
      return absl::InvalidArgumentError(absl::StrCat("layer ", layer.digest.str(), " has ",
                                                     info->size, " bytes, not ", layer.size));
    }
    oci::Descriptor d;
    d.media_type = layer.media_type.empty() ? std::string(oci::kOciLayerGzip) : layer.media_type;
    d.digest = layer.digest;
    d.size = static_cast<int64_t>(layer.size);
    if (request.compression) {
      ASSIGN_OR_RETURN(d, Recompress(d, *request.compression));
    }
    manifest.layers.push_back(std::move(d));
    config.diff_ids.push_back(layer.diff_id);
  }
  const std::string now = internal::NowRfc3339();
  size_t non_empty = 0;
  for (oci::History h : request.history) {
    if (h.created.empty()) h.created = now;
    if (!h.empty_layer) non_empty++;
    config.history.push_back(std::move(h));
  }
  for (size_t i = non_empty; i < request.layers.size(); ++i) {
    oci::History h;
    h.created = now;
    h.created_by = "pier";
    config.history.push_back(std::move(h));
  }
  config.created = now;
  if (request.edit_config) request.edit_config(&config);

  const std::string config_json = config.ToJson();
  ASSIGN_OR_RETURN(content::Info config_info, content_->Put(config_json));
  manifest.schema_version = 2;
  manifest.media_type = oci::kOciManifest;
  manifest.config.media_type = oci::kOciConfig;
  manifest.config.digest = config_info.digest;
  manifest.config.size = static_cast<int64_t>(config_info.size);
  manifest.config.annotations.clear();
  manifest.config.urls.clear();
  const std::string manifest_json = manifest.ToJson();
  ASSIGN_OR_RETURN(content::Info manifest_info, content_->Put(manifest_json));
  ASSIGN_OR_RETURN(oci::Manifest parsed, oci::Manifest::Parse(manifest_json));
  return RecordManifest(parsed, manifest_info.digest, oci::kOciManifest, name, std::nullopt);
}

absl::StatusOr<Image> ImageStore::Import(const archive::ByteSource& rootfs, absl::string_view name,
                                         const ImportOptions& options) {
  if (!name.empty()) {
    RETURN_IF_ERROR(oci::Reference::Parse(name, options_.default_registry).status());
  }
  ASSIGN_OR_RETURN(std::string tmp, TempDir("import-"));
  struct Cleanup {
    std::string dir;
    ~Cleanup() { (void)RemoveAll(dir); }
  } cleanup{tmp};
  const std::string dir = tmp + "/rootfs";
  RETURN_IF_ERROR(MakeDirs(dir));
  archive::ApplyOptions apply;
  apply.whiteout_mode = archive::WhiteoutMode::kDelete;
  apply.devices = options_.snapshotter.devices;
  apply.restore_owners = options_.snapshotter.restore_owners;
  absl::StatusOr<archive::ApplyResult> applied = archive::ApplyLayer(rootfs, dir, apply);
  if (!applied.ok()) return Annotate(applied.status(), "import rootfs");

  ASSIGN_OR_RETURN(std::unique_ptr<content::ContentWriter> writer,
                   content_->OpenWriter(absl::StrCat("import-", tmp.substr(tmp.size() - 6))));
  absl::StatusOr<archive::LayerInfo> layer = archive::CreateLayerFromDir(
      dir, [&](absl::string_view chunk) { return writer->Write(chunk); }, options.layer);
  if (!layer.ok()) {
    (void)writer->Abort();
    return Annotate(layer.status(), "write imported layer");
  }
  RETURN_IF_ERROR(writer->Commit(layer->size, layer->digest).status());

  NewImage request;
  request.name = std::string(name);
  request.layers.push_back(*layer);
  oci::History h;
  h.created_by = "pier import";
  h.comment = options.message;
  h.author = options.author;
  request.history.push_back(std::move(h));
  request.edit_config = [&](oci::ImageConfig* config) {
    config->config = options.config;
    config->author = options.author;
  };
  return CreateImage(request);
}

}  // namespace pier::image
