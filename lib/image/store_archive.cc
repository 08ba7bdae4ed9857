// ImageStore: Save and Load of image archives (docker-archive as `docker
// save` writes it, and an OCI image layout in a tar), with libarchive.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "lib/archive/libarchive_util.h"
#include "lib/common/fs.h"
#include "lib/common/log.h"
#include "lib/common/status.h"
#include "lib/image/internal.h"
#include "lib/image/store.h"
#include "nlohmann/json.hpp"

namespace pier::image {
namespace {

using Json = nlohmann::json;
namespace ai = ::pier::archive::internal;

constexpr size_t kChunk = 1 << 20;
constexpr int64_t kMaxSmallFile = 16 << 20;
constexpr char kNameAnnotation[] = "io.containerd.image.name";
constexpr char kRefNameAnnotation[] = "org.opencontainers.image.ref.name";

// Writes a tar (pax) to a ByteSink.
class TarWriter {
 public:
  explicit TarWriter(const archive::ByteSink& sink) : sink_(sink) {}

  absl::Status Open() {
    a_.reset(archive_write_new());
    if (!a_) return absl::ResourceExhaustedError("archive_write_new failed");
    if (archive_write_set_format_pax_restricted(a_.get()) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a_.get(), 1) != ARCHIVE_OK ||
        archive_write_open(a_.get(), this, nullptr, &TarWriter::OnWrite, nullptr) != ARCHIVE_OK) {
      return Error("open tar");
    }
    return absl::OkStatus();
  }

  absl::Status Dir(const std::string& name) {
    if (!dirs_.insert(name).second) return absl::OkStatus();
    ai::Entry e(archive_entry_new());
    archive_entry_set_pathname(e.get(), (name + "/").c_str());
    archive_entry_set_filetype(e.get(), AE_IFDIR);
    archive_entry_set_perm(e.get(), 0755);
    if (archive_write_header(a_.get(), e.get()) != ARCHIVE_OK) return Error(name);
    return absl::OkStatus();
  }

  absl::Status Bytes(const std::string& name, absl::string_view data) {
    RETURN_IF_ERROR(Header(name, data.size()));
    if (!data.empty() && archive_write_data(a_.get(), data.data(), data.size()) !=
                             static_cast<la_ssize_t>(data.size())) {
      return Error(name);
    }
    return absl::OkStatus();
  }

  // A file of `size` bytes read from `source` (which must produce exactly that).
  absl::Status Stream(const std::string& name, uint64_t size, const archive::ByteSource& source) {
    RETURN_IF_ERROR(Header(name, size));
    std::unique_ptr<char[]> buf(new char[kChunk]);
    uint64_t done = 0;
    while (done < size) {
      ASSIGN_OR_RETURN(size_t n, source(buf.get(), kChunk));
      if (n == 0) break;
      if (done + n > size) return absl::DataLossError(absl::StrCat(name, ": grew while saved"));
      if (archive_write_data(a_.get(), buf.get(), n) != static_cast<la_ssize_t>(n)) {
        return Error(name);
      }
      done += n;
    }
    if (done != size) {
      return absl::DataLossError(absl::StrCat(name, ": ", done, " bytes, expected ", size));
    }
    return absl::OkStatus();
  }

  absl::Status Close() {
    if (archive_write_close(a_.get()) != ARCHIVE_OK) return Error("close tar");
    return absl::OkStatus();
  }

 private:
  absl::Status Header(const std::string& name, uint64_t size) {
    ai::Entry e(archive_entry_new());
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0644);
    archive_entry_set_size(e.get(), static_cast<la_int64_t>(size));
    if (archive_write_header(a_.get(), e.get()) != ARCHIVE_OK) return Error(name);
    return absl::OkStatus();
  }

  absl::Status Error(absl::string_view what) {
    if (!error_.ok()) return error_;
    return ai::ArchiveError(absl::StatusCode::kInternal, a_.get(), absl::StrCat("save: ", what));
  }

  static la_ssize_t OnWrite(struct archive* a, void* opaque, const void* buf, size_t len) {
    auto* self = static_cast<TarWriter*>(opaque);
    absl::Status st = self->sink_(absl::string_view(static_cast<const char*>(buf), len));
    if (!st.ok()) {
      self->error_ = st;
      archive_set_error(a, EIO, "%s", std::string(st.message()).c_str());
      return -1;
    }
    return static_cast<la_ssize_t>(len);
  }

  const archive::ByteSink& sink_;
  ai::WriteArchive a_;
  absl::Status error_;
  std::set<std::string> dirs_;
  ai::ScopedUtf8Locale locale_;
};

// Decompresses (gzip, zstd or nothing) `source` into `fd`; returns the bytes written.
absl::StatusOr<uint64_t> Decompress(const archive::ByteSource& source, int fd,
                                    absl::string_view what) {
  struct Ctx {
    const archive::ByteSource* source;
    std::unique_ptr<char[]> buf{new char[kChunk]};
    absl::Status error;
  } ctx{&source};
  ai::ReadArchive a(archive_read_new());
  if (!a) return absl::ResourceExhaustedError("archive_read_new failed");
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_zstd(a.get());
  archive_read_support_format_raw(a.get());
  auto on_read = [](struct archive* ar, void* opaque, const void** out) -> la_ssize_t {
    auto* c = static_cast<Ctx*>(opaque);
    absl::StatusOr<size_t> n = (*c->source)(c->buf.get(), kChunk);
    if (!n.ok()) {
      c->error = n.status();
      archive_set_error(ar, EIO, "%s", std::string(n.status().message()).c_str());
      return -1;
    }
    *out = c->buf.get();
    return static_cast<la_ssize_t>(*n);
  };
  auto fail = [&](absl::string_view step) -> absl::Status {
    if (!ctx.error.ok()) return ctx.error;
    return ai::ArchiveError(absl::StatusCode::kDataLoss, a.get(), absl::StrCat(step, " ", what));
  };
  if (archive_read_open(a.get(), &ctx, nullptr, on_read, nullptr) != ARCHIVE_OK) {
    return fail("open");
  }
  archive_entry* entry = nullptr;
  int r = archive_read_next_header(a.get(), &entry);
  if (r == ARCHIVE_EOF) return uint64_t{0};
  if (r < ARCHIVE_WARN) return fail("read");
  uint64_t total = 0;
  for (;;) {
    const void* block = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    r = archive_read_data_block(a.get(), &block, &size, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return fail("decompress");
    RETURN_IF_ERROR(WriteAll(fd, absl::string_view(static_cast<const char*>(block), size), what));
    total += size;
  }
  return total;
}

// The layer media type for a blob starting with `head`.
std::string LayerTypeOf(absl::string_view head) {
  if (head.size() >= 2 && static_cast<unsigned char>(head[0]) == 0x1f &&
      static_cast<unsigned char>(head[1]) == 0x8b) {
    return oci::kOciLayerGzip;
  }
  if (head.size() >= 4 && head.substr(0, 4) == absl::string_view("\x28\xb5\x2f\xfd", 4)) {
    return oci::kOciLayerZstd;
  }
  return oci::kOciLayerTar;
}

std::string CleanName(absl::string_view name) {
  while (absl::ConsumePrefix(&name, "./")) {
  }
  absl::ConsumePrefix(&name, "/");
  return std::string(name);
}

}  // namespace

absl::Status ImageStore::Save(const std::vector<std::string>& names, ArchiveFormat format,
                              const archive::ByteSink& sink) {
  struct Item {
    Image image;
    oci::Manifest manifest;
    oci::ImageConfig config;
  };
  std::vector<Item> items;
  for (const std::string& name : names) {
    Item item;
    ASSIGN_OR_RETURN(item.image, Get(name));
    // A name given as a name saves under it; an id saves the record found.
    absl::StatusOr<std::string> normal = NormalizeName(name);
    if (normal.ok() && *normal == item.image.name) item.image.name = *normal;
    ASSIGN_OR_RETURN(item.manifest, GetManifest(item.image));
    ASSIGN_OR_RETURN(item.config, GetConfig(item.image));
    if (item.config.diff_ids.size() != item.manifest.layers.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("image ", item.image.id.str(), ": layers and diff_ids differ in number"));
    }
    items.push_back(std::move(item));
  }

  TarWriter tar(sink);
  RETURN_IF_ERROR(tar.Open());
  auto stream_blob = [&](const std::string& path, const oci::Digest& digest) -> absl::Status {
    ASSIGN_OR_RETURN(std::unique_ptr<content::FileReader> reader, content_->OpenReader(digest));
    return tar.Stream(path, reader->Size(), internal::ReaderSource(reader.get()));
  };

  if (format == ArchiveFormat::kOciArchive) {
    RETURN_IF_ERROR(tar.Bytes("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
    oci::Index index;
    index.media_type = oci::kOciIndex;
    for (const Item& item : items) {
      oci::Descriptor d = item.image.target;
      if (d.media_type.empty()) d.media_type = oci::kOciManifest;
      if (!item.image.name.empty()) {
        d.annotations[kNameAnnotation] = item.image.name;
        absl::StatusOr<oci::Reference> ref = oci::Reference::Parse(item.image.name);
        if (ref.ok() && !ref->tag.empty()) d.annotations[kRefNameAnnotation] = ref->tag;
      }
      index.manifests.push_back(std::move(d));
    }
    RETURN_IF_ERROR(tar.Bytes("index.json", index.ToJson()));
    RETURN_IF_ERROR(tar.Dir("blobs"));
    RETURN_IF_ERROR(tar.Dir("blobs/sha256"));
    std::set<oci::Digest> written;
    for (const Item& item : items) {
      std::vector<oci::Digest> blobs = {item.image.target.digest, item.image.id};
      for (const oci::Descriptor& l : item.manifest.layers) blobs.push_back(l.digest);
      for (const oci::Digest& d : blobs) {
        if (!written.insert(d).second) continue;
        RETURN_IF_ERROR(stream_blob(absl::StrCat("blobs/sha256/", d.hex()), d));
      }
    }
    return tar.Close();
  }

  // docker-archive: uncompressed layers as <diff id hex>/layer.tar.
  ASSIGN_OR_RETURN(std::string tmp, TempDir("save-"));
  struct Cleanup {
    std::string dir;
    ~Cleanup() { (void)RemoveAll(dir); }
  } cleanup{tmp};
  Json manifest_json = Json::array();
  std::map<oci::Digest, size_t> entry_of_id;
  std::set<std::string> written;
  for (const Item& item : items) {
    auto it = entry_of_id.find(item.image.id);
    if (it != entry_of_id.end()) {
      if (!item.image.name.empty())
        manifest_json[it->second]["RepoTags"].push_back(item.image.name);
      continue;
    }
    const std::string config_path = absl::StrCat(item.image.id.hex(), ".json");
    if (written.insert(config_path).second)
      RETURN_IF_ERROR(stream_blob(config_path, item.image.id));
    Json layers = Json::array();
    for (size_t i = 0; i < item.manifest.layers.size(); ++i) {
      const oci::Descriptor& layer = item.manifest.layers[i];
      const std::string dir(item.config.diff_ids[i].hex());
      const std::string path = dir + "/layer.tar";
      layers.push_back(path);
      if (!written.insert(path).second) continue;
      RETURN_IF_ERROR(tar.Dir(dir));
      ASSIGN_OR_RETURN(std::unique_ptr<content::FileReader> reader,
                       content_->OpenReader(layer.digest));
      const std::string file = tmp + "/layer";
      UniqueFd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
      if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("create ", file));
      ASSIGN_OR_RETURN(uint64_t size, Decompress(internal::ReaderSource(reader.get()), fd.get(),
                                                 absl::StrCat("layer ", layer.digest.str())));
      if (::lseek(fd.get(), 0, SEEK_SET) != 0) return ErrnoStatus(errno, "seek " + file);
      RETURN_IF_ERROR(tar.Stream(path, size, archive::FdSource(fd.get())));
    }
    Json entry = {{"Config", config_path}, {"RepoTags", Json::array()}, {"Layers", layers}};
    if (!item.image.name.empty()) entry["RepoTags"].push_back(item.image.name);
    entry_of_id[item.image.id] = manifest_json.size();
    manifest_json.push_back(std::move(entry));
  }
  RETURN_IF_ERROR(tar.Bytes("manifest.json", manifest_json.dump()));
  return tar.Close();
}

absl::StatusOr<std::vector<Image>> ImageStore::Load(const archive::ByteSource& source) {
  struct Ctx {
    const archive::ByteSource* source;
    std::unique_ptr<char[]> buf{new char[kChunk]};
    absl::Status error;
  } ctx{&source};
  ai::ScopedUtf8Locale locale;
  ai::ReadArchive a(archive_read_new());
  if (!a) return absl::ResourceExhaustedError("archive_read_new failed");
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_zstd(a.get());
  archive_read_support_format_tar(a.get());
  auto on_read = [](struct archive* ar, void* opaque, const void** out) -> la_ssize_t {
    auto* c = static_cast<Ctx*>(opaque);
    absl::StatusOr<size_t> n = (*c->source)(c->buf.get(), kChunk);
    if (!n.ok()) {
      c->error = n.status();
      archive_set_error(ar, EIO, "%s", std::string(n.status().message()).c_str());
      return -1;
    }
    *out = c->buf.get();
    return static_cast<la_ssize_t>(*n);
  };
  auto fail = [&](absl::string_view what) -> absl::Status {
    if (!ctx.error.ok()) return ctx.error;
    return ai::ArchiveError(absl::StatusCode::kDataLoss, a.get(), absl::StrCat("load: ", what));
  };
  if (archive_read_open(a.get(), &ctx, nullptr, on_read, nullptr) != ARCHIVE_OK) {
    return fail("open archive");
  }

  std::map<std::string, std::string> small;   // json files by path
  std::map<std::string, oci::Digest> stored;  // path -> blob in the content store
  int ingest = 0;
  const std::string ingest_prefix =
      absl::StrCat("load-", ::getpid(), "-", absl::ToUnixNanos(absl::Now()), "-");
  for (;;) {
    archive_entry* entry = nullptr;
    int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return fail("read entry");
    if (archive_entry_filetype(entry) != AE_IFREG) continue;
    const std::string name = CleanName(archive_entry_pathname(entry));
    const int64_t size = archive_entry_size(entry);
    std::optional<oci::Digest> expected;
    if (absl::StartsWith(name, "blobs/sha256/")) {
      absl::StatusOr<oci::Digest> d = oci::Digest::Parse("sha256:" + name.substr(13));
      if (!d.ok()) return absl::InvalidArgumentError(absl::StrCat("load: bad blob name ", name));
      expected = *d;
    }
    const bool is_blob = expected || absl::EndsWith(name, "/layer.tar");
    if (!is_blob) {
      if (size > kMaxSmallFile) continue;  // nothing Pier reads
      std::string data;
      const void* block;
      size_t len;
      la_int64_t offset;
      while ((r = archive_read_data_block(a.get(), &block, &len, &offset)) == ARCHIVE_OK) {
        data.append(static_cast<const char*>(block), len);
      }
      if (r != ARCHIVE_EOF) return fail(name);
      small[name] = std::move(data);
      continue;
    }
    if (expected) {
      absl::StatusOr<content::Info> have = content_->Info(*expected);
      if (have.ok() && static_cast<int64_t>(have->size) == size) {
        stored[name] = *expected;
        continue;  // libarchive skips the data
      }
    }
    ASSIGN_OR_RETURN(std::unique_ptr<content::ContentWriter> writer,
                     content_->OpenWriter(absl::StrCat(ingest_prefix, ingest++), expected,
                                          static_cast<uint64_t>(size)));
    const void* block;
    size_t len;
    la_int64_t offset;
    while ((r = archive_read_data_block(a.get(), &block, &len, &offset)) == ARCHIVE_OK) {
      absl::Status st = writer->Write(absl::string_view(static_cast<const char*>(block), len));
      if (!st.ok()) {
        (void)writer->Abort();
        return Annotate(st, absl::StrCat("load: ", name));
      }
    }
    if (r != ARCHIVE_EOF) {
      (void)writer->Abort();
      return fail(name);
    }
    absl::StatusOr<content::Info> info = writer->Commit(size, expected);
    if (absl::IsInvalidArgument(info.status())) {
      return absl::DataLossError(absl::StrCat("load: ", name, ": ", info.status().message()));
    }
    RETURN_IF_ERROR(info.status());
    stored[name] = info->digest;
  }

  auto blob_at = [&](const std::string& path) -> absl::StatusOr<oci::Digest> {
    const std::string clean = CleanName(path);
    auto it = stored.find(clean);
    if (it != stored.end()) return it->second;
    auto s = small.find(clean);
    if (s != small.end()) {
      ASSIGN_OR_RETURN(content::Info info, content_->Put(s->second));
      return info.digest;
    }
    return absl::InvalidArgumentError(absl::StrCat("load: archive lacks ", clean));
  };

  std::vector<Image> loaded;
  // Names from manifest.json, by config digest (also used for OCI layouts
  // written by docker, whose index.json may carry no names).
  std::map<oci::Digest, std::vector<std::string>> repo_tags;
  Json docker_manifest;
  if (auto it = small.find("manifest.json"); it != small.end()) {
    docker_manifest = Json::parse(it->second, nullptr, false);
    if (!docker_manifest.is_array()) {
      return absl::InvalidArgumentError("load: manifest.json is not a JSON array");
    }
  }

  if (auto it = small.find("index.json"); it != small.end()) {
    absl::StatusOr<oci::Index> index = oci::Index::Parse(it->second);
    if (!index.ok()) return Annotate(index.status(), "load: index.json");
    for (const Json& e : docker_manifest) {
      if (!e.is_object() || !e.contains("Config") || !e["Config"].is_string()) continue;
      absl::StatusOr<oci::Digest> config = blob_at(e["Config"].get<std::string>());
      if (!config.ok() || !e.contains("RepoTags") || !e["RepoTags"].is_array()) continue;
      for (const Json& t : e["RepoTags"]) {
        if (t.is_string()) repo_tags[*config].push_back(t.get<std::string>());
      }
    }
    for (const oci::Descriptor& top : index->manifests) {
      oci::Descriptor d = top;
      if (oci::IsIndexMediaType(d.media_type)) {
        ASSIGN_OR_RETURN(std::string bytes,
                         content_->ReadAll(d.digest, options_.max_manifest_bytes));
        ASSIGN_OR_RETURN(oci::Index child, oci::Index::Parse(bytes));
        ASSIGN_OR_RETURN(d, PickPlatform(child, absl::StrCat("index ", d.digest.str())));
      }
      if (!oci::IsManifestMediaType(d.media_type)) continue;
      ASSIGN_OR_RETURN(std::string bytes, content_->ReadAll(d.digest, options_.max_manifest_bytes));
      ASSIGN_OR_RETURN(oci::Manifest manifest, oci::Manifest::Parse(bytes));
      std::vector<std::string> names;
      auto name_it = top.annotations.find(kNameAnnotation);
      auto ref_it = top.annotations.find(kRefNameAnnotation);
      if (name_it != top.annotations.end()) {
        names.push_back(name_it->second);
      } else if (ref_it != top.annotations.end() && !oci::IsValidTag(ref_it->second)) {
        names.push_back(ref_it->second);  // a full reference, as skopeo writes it
      } else if (auto rt = repo_tags.find(manifest.config.digest); rt != repo_tags.end()) {
        names = rt->second;
      }
      if (names.empty()) names.push_back("");
      for (const std::string& n : names) {
        std::string name;
        if (!n.empty()) {
          ASSIGN_OR_RETURN(name, NormalizeName(n));
        }
        ASSIGN_OR_RETURN(Image image,
                         RecordManifest(manifest, d.digest, d.media_type, name, std::nullopt));
        loaded.push_back(std::move(image));
      }
    }
    return loaded;
  }

  if (small.count("manifest.json") == 0) {
    return absl::InvalidArgumentError(
        "load: neither a docker archive (manifest.json) nor an OCI layout (index.json)");
  }
  for (const Json& e : docker_manifest) {
    if (!e.is_object() || !e.contains("Config") || !e["Config"].is_string() ||
        !e.contains("Layers") || !e["Layers"].is_array()) {
      return absl::InvalidArgumentError("load: manifest.json entry lacks Config or Layers");
    }
    oci::Manifest manifest;
    manifest.media_type = oci::kOciManifest;
    ASSIGN_OR_RETURN(oci::Digest config_digest, blob_at(e["Config"].get<std::string>()));
    ASSIGN_OR_RETURN(content::Info config_info, content_->Info(config_digest));
    manifest.config = {oci::kOciConfig, config_digest, static_cast<int64_t>(config_info.size)};
    for (const Json& l : e["Layers"]) {
      if (!l.is_string()) return absl::InvalidArgumentError("load: manifest.json: bad layer");
      ASSIGN_OR_RETURN(oci::Digest digest, blob_at(l.get<std::string>()));
      ASSIGN_OR_RETURN(content::Info info, content_->Info(digest));
      ASSIGN_OR_RETURN(std::string head, content_->ReadAt(digest, 0, 4));
      manifest.layers.push_back({LayerTypeOf(head), digest, static_cast<int64_t>(info.size)});
    }
    const std::string json = manifest.ToJson();
    ASSIGN_OR_RETURN(content::Info stored_manifest, content_->Put(json));
    ASSIGN_OR_RETURN(oci::Manifest parsed, oci::Manifest::Parse(json));
    std::vector<std::string> names;
    if (e.contains("RepoTags") && e["RepoTags"].is_array()) {
      for (const Json& t : e["RepoTags"]) {
        if (t.is_string()) names.push_back(t.get<std::string>());
      }
    }
    if (names.empty()) names.push_back("");
    for (const std::string& n : names) {
      std::string name;
      if (!n.empty()) {
        ASSIGN_OR_RETURN(name, NormalizeName(n));
      }
      ASSIGN_OR_RETURN(Image image, RecordManifest(parsed, stored_manifest.digest,
                                                   oci::kOciManifest, name, std::nullopt));
      loaded.push_back(std::move(image));
    }
  }
  return loaded;
}

}  // namespace pier::image
