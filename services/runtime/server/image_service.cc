#include "services/runtime/server/image_service.h"

#include <fnmatch.h>

#include <algorithm>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/common/log.h"
#include "lib/common/status.h"
#include "lib/oci/reference.h"
#include "lib/rpc/status.h"

namespace pier::runtime {
namespace {

using rpc::ToGrpcStatus;

constexpr size_t kChunk = 1 << 20;

common::v1::Progress ToProgress(const image::Progress& p) {
  using A = common::v1::Progress;
  common::v1::Progress out;
  out.set_id(p.digest.str());
  out.set_current(static_cast<int64_t>(p.offset));
  out.set_total(static_cast<int64_t>(p.total));
  switch (p.phase) {
    case image::Progress::Phase::kResolved:
      out.set_action(A::ACTION_RESOLVING);
      out.set_message("resolved");
      break;
    case image::Progress::Phase::kExists:
      out.set_action(A::ACTION_EXISTS);
      break;
    case image::Progress::Phase::kFetching:
      out.set_action(A::ACTION_DOWNLOADING);
      break;
    case image::Progress::Phase::kFetched:
      out.set_action(A::ACTION_VERIFYING);
      out.set_message("fetched and verified");
      break;
    case image::Progress::Phase::kUnpacked:
      out.set_action(A::ACTION_DONE);
      out.set_message("unpacked");
      break;
    case image::Progress::Phase::kUploading:
      out.set_action(A::ACTION_UPLOADING);
      break;
    case image::Progress::Phase::kUploaded:
      out.set_action(A::ACTION_DONE);
      out.set_message("uploaded");
      break;
    case image::Progress::Phase::kManifest:
      out.set_action(A::ACTION_DONE);
      out.set_message("manifest pushed");
      break;
  }
  return out;
}

void FillConfig(const oci::ContainerConfig& c, v1::ImageConfig* out) {
  out->set_user(c.user);
  for (const auto& p : c.exposed_ports) out->add_exposed_ports(p);
  for (const auto& e : c.env) out->add_env(e);
  if (c.entrypoint) {
    for (const auto& e : *c.entrypoint) out->add_entrypoint(e);
  }
  if (c.cmd) {
    for (const auto& e : *c.cmd) out->add_cmd(e);
  }
  for (const auto& v : c.volumes) out->add_volumes(v);
  out->set_working_dir(c.working_dir);
  for (const auto& [k, v] : c.labels) (*out->mutable_labels())[k] = v;
  out->set_stop_signal(c.stop_signal);
  for (const auto& s : c.shell) out->add_shell(s);
  for (const auto& s : c.on_build) out->add_on_build(s);
}

// History entries (oldest first) with their layers' diff ids and sizes.
std::vector<v1::HistoryEntry> History(image::ImageStore* store, const oci::ImageConfig& config) {
  std::vector<oci::Digest> chains = image::ChainIds(config.diff_ids);
  std::vector<v1::HistoryEntry> out;
  size_t layer = 0;
  for (const oci::History& h : config.history) {
    v1::HistoryEntry e;
    ToTimestamp(ParseRfc3339(h.created), e.mutable_created_at());
    e.set_created_by(h.created_by);
    e.set_author(h.author);
    e.set_comment(h.comment);
    e.set_empty_layer(h.empty_layer);
    if (!h.empty_layer && layer < config.diff_ids.size()) {
      e.set_layer_digest(config.diff_ids[layer].str());
      auto usage = store->snapshotter().UsageOf(chains[layer]);
      if (usage.ok()) e.set_size(static_cast<int64_t>(usage->bytes));
      ++layer;
    }
    out.push_back(std::move(e));
  }
  return out;
}

// Reads the bytes of a client stream as a ByteSource: `next` returns the
// next chunk or nullopt at the end.
class StreamSource {
 public:
  explicit StreamSource(std::function<std::optional<std::string>()> next)
      : next_(std::move(next)) {}
  absl::StatusOr<size_t> Read(char* buf, size_t len) {
    while (pos_ == chunk_.size()) {
      if (done_) return 0;
      std::optional<std::string> c = next_();
      if (!c) {
        done_ = true;
        return 0;
      }
      chunk_ = std::move(*c);
      pos_ = 0;
    }
    size_t n = std::min(len, chunk_.size() - pos_);
    std::memcpy(buf, chunk_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  archive::ByteSource AsSource() {
    return [this](char* buf, size_t len) { return Read(buf, len); };
  }

 private:
  std::function<std::optional<std::string>()> next_;
  std::string chunk_;
  size_t pos_ = 0;
  bool done_ = false;
};

}  // namespace

absl::Status ImageServiceImpl::Summarize(const image::Image& img,
                                         const std::vector<image::Image>& all, v1::Image* out) {
  out->set_id(img.id.str());
  out->set_manifest_digest(img.target.digest.str());
  for (const image::Image& other : all) {
    if (other.id != img.id) continue;
    if (!other.name.empty()) {
      if (other.name.find('@') == std::string::npos) out->add_repo_tags(other.name);
      if (other.repo_digest) {
        auto ref = oci::Reference::Parse(other.name, ctx_->default_registry);
        if (ref.ok()) {
          std::string d = absl::StrCat(ref->Name(), "@", other.repo_digest->str());
          auto& digests = *out->mutable_repo_digests();
          if (std::find(digests.begin(), digests.end(), d) == digests.end())
            out->add_repo_digests(d);
        }
      }
    }
  }
  ASSIGN_OR_RETURN(oci::ImageConfig config, ctx_->images->GetConfig(img));
  ToTimestamp(ParseRfc3339(config.created), out->mutable_created_at());
  int64_t size = 0;
  for (const oci::Digest& chain : image::ChainIds(config.diff_ids)) {
    auto usage = ctx_->images->snapshotter().UsageOf(chain);
    if (usage.ok()) size += static_cast<int64_t>(usage->bytes);
  }
  out->set_size(size);
  for (const auto& [k, v] : config.config.labels) (*out->mutable_labels())[k] = v;
  int n = 0;
  for (const ContainerInfo& c : ctx_->containers->List()) {
    if (c.image == img.id.str()) ++n;
  }
  out->set_containers(n);
  out->mutable_platform()->set_os(config.os);
  out->mutable_platform()->set_architecture(config.architecture);
  out->mutable_platform()->set_variant(config.variant);
  return absl::OkStatus();
}

grpc::Status ImageServiceImpl::PullImage(grpc::ServerContext*, const v1::PullImageRequest* request,
                                         grpc::ServerWriter<v1::PullImageResponse>* writer) {
  std::optional<oci::Platform> platform;
  if (request->has_platform()) {
    absl::StatusOr<oci::Platform> p = RequestedPlatform(request->platform());
    if (!p.ok()) return ToGrpcStatus(p.status());
    platform = *p;
  }
  auto options = ctx_->RegistryOptionsFor(request->reference(),
                                          request->has_auth() ? &request->auth() : nullptr);
  if (!options.ok()) return ToGrpcStatus(options.status());
  absl::StatusOr<image::Image> img = ctx_->images->Pull(
      request->reference(), *options,
      [&](const image::Progress& p) {
        v1::PullImageResponse r;
        *r.mutable_progress() = ToProgress(p);
        writer->Write(r);
      },
      platform ? &*platform : nullptr);
  if (!img.ok()) return ToGrpcStatus(img.status());
  auto all = ctx_->images->List();
  if (!all.ok()) return ToGrpcStatus(all.status());
  v1::PullImageResponse r;
  absl::Status s = Summarize(*img, *all, r.mutable_image());
  if (!s.ok()) return ToGrpcStatus(s);
  writer->Write(r);
  ctx_->PublishEvent(Event::Type::kImage, img->id.str(), img->name, "pull");
  PIER_LOG(INFO) << "pulled " << img->name << " (" << img->id.str() << ")";
  return grpc::Status::OK;
}

bool ImageServiceImpl::Matches(const v1::Image& summary, const v1::ImageFilters& f,
                               bool with_dangling) const {
  const bool dangling = summary.repo_tags().empty() && summary.repo_digests().empty();
  if (with_dangling && f.has_dangling() && f.dangling() != dangling) return false;
  if (!f.references().empty()) {
    bool match = false;
    for (const std::string& pattern : f.references()) {
      for (const std::string& tag : summary.repo_tags()) {
        if (::fnmatch(pattern.c_str(), tag.c_str(), 0) == 0) match = true;
        auto ref = oci::Reference::Parse(tag, ctx_->default_registry);
        if (ref.ok() && (::fnmatch(pattern.c_str(), ref->Name().c_str(), 0) == 0)) match = true;
      }
      auto norm = ctx_->images->NormalizeName(pattern);
      if (norm.ok()) {
        for (const std::string& tag : summary.repo_tags()) {
          if (tag == *norm) match = true;
        }
      }
    }
    if (!match) return false;
  }
  bool labels_ok = true;
  for (const std::string& cond : f.labels()) {
    std::vector<std::string> kv = absl::StrSplit(cond, absl::MaxSplits('=', 1));
    auto it = summary.labels().find(kv[0]);
    if (it == summary.labels().end() || (kv.size() == 2 && it->second != kv[1])) {
      labels_ok = false;
    }
  }
  if (!labels_ok) return false;
  absl::Time created = FromTimestamp(summary.created_at());
  if (f.has_before() && created >= FromTimestamp(f.before())) return false;
  if (f.has_since() && created <= FromTimestamp(f.since())) return false;
  return true;
}

grpc::Status ImageServiceImpl::ListImages(grpc::ServerContext*,
                                          const v1::ListImagesRequest* request,
                                          v1::ListImagesResponse* response) {
  auto all = ctx_->images->List();
  if (!all.ok()) return ToGrpcStatus(all.status());
  const v1::ImageFilters& f = request->filters();
  std::map<std::string, bool> seen;
  std::vector<v1::Image> out;
  for (const image::Image& img : *all) {
    if (seen[img.id.str()]) continue;
    seen[img.id.str()] = true;
    v1::Image summary;
    absl::Status s = Summarize(img, *all, &summary);
    if (!s.ok()) return ToGrpcStatus(s);
    if (!Matches(summary, f, /*with_dangling=*/true)) continue;
    out.push_back(std::move(summary));
  }
  std::stable_sort(out.begin(), out.end(), [](const v1::Image& a, const v1::Image& b) {
    return FromTimestamp(a.created_at()) > FromTimestamp(b.created_at());
  });
  for (auto& i : out) *response->add_images() = std::move(i);
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::InspectImage(grpc::ServerContext*,
                                            const v1::InspectImageRequest* request,
                                            v1::InspectImageResponse* response) {
  auto img = ctx_->images->Get(request->image());
  if (!img.ok()) return ToGrpcStatus(img.status());
  auto all = ctx_->images->List();
  if (!all.ok()) return ToGrpcStatus(all.status());
  absl::Status s = Summarize(*img, *all, response->mutable_image());
  if (!s.ok()) return ToGrpcStatus(s);
  auto manifest = ctx_->images->GetManifest(*img);
  if (!manifest.ok()) return ToGrpcStatus(manifest.status());
  auto config = ctx_->images->GetConfig(*img);
  if (!config.ok()) return ToGrpcStatus(config.status());
  FillConfig(config->config, response->mutable_config());
  auto* md = response->mutable_manifest();
  md->set_media_type(img->target.media_type);
  md->set_digest(img->target.digest.str());
  md->set_size(img->target.size);
  std::vector<oci::Digest> chains = image::ChainIds(config->diff_ids);
  for (size_t i = 0; i < manifest->layers.size(); ++i) {
    const oci::Descriptor& d = manifest->layers[i];
    v1::Layer* l = response->add_layers();
    l->mutable_blob()->set_media_type(d.media_type);
    l->mutable_blob()->set_digest(d.digest.str());
    l->mutable_blob()->set_size(d.size);
    if (i < config->diff_ids.size()) {
      l->set_diff_id(config->diff_ids[i].str());
      auto usage = ctx_->images->snapshotter().UsageOf(chains[i]);
      if (usage.ok()) l->set_unpacked_size(static_cast<int64_t>(usage->bytes));
    }
  }
  for (auto& h : History(ctx_->images, *config)) *response->add_history() = std::move(h);
  response->set_author(config->author);
  if (!config->history.empty()) response->set_comment(config->history.back().comment);
  auto raw_manifest = ctx_->images->content().ReadAll(img->target.digest, 16 << 20);
  if (raw_manifest.ok()) response->set_manifest_content(*raw_manifest);
  auto raw_config = ctx_->images->content().ReadAll(img->id, 16 << 20);
  if (raw_config.ok()) response->set_config_content(*raw_config);
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::RemoveImage(grpc::ServerContext*,
                                           const v1::RemoveImageRequest* request,
                                           v1::RemoveImageResponse* response) {
  auto img = ctx_->images->Get(request->image());
  if (!img.ok()) return ToGrpcStatus(img.status());
  // Removing one of several names of an image only untags it, as docker
  // does: the image itself stays, so containers using it do not matter.
  bool other_names = false;
  if (!img->name.empty() && img->name != img->id.str()) {
    auto normalized = ctx_->images->NormalizeName(request->image());
    auto all = ctx_->images->List();
    if (!all.ok()) return ToGrpcStatus(all.status());
    for (const image::Image& other : *all) {
      if (other.id == img->id && !other.name.empty() &&
          (!normalized.ok() || other.name != *normalized) && other.name != img->name) {
        other_names = true;
        break;
      }
    }
  }
  if (!other_names && ctx_->ImageInUse(img->id.str(), /*running_only=*/true)) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("image ", request->image(), " (", img->id.str(),
                                     ") is used by a running container"));
  }
  if (!other_names && !request->force() &&
      ctx_->ImageInUse(img->id.str(), /*running_only=*/false)) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("image ", request->image(), " (", img->id.str(),
                                     ") is used by a container; remove it first or force"));
  }
  const RuntimeContext* ctx = ctx_;
  // no_prune: claim the image as in use so its content stays.
  const bool keep = request->no_prune();
  auto result = ctx_->images->Remove(
      request->image(), request->force(),
      [ctx, keep](const oci::Digest& id) { return keep || ctx->ImageInUse(id.str(), false); });
  if (!result.ok()) return ToGrpcStatus(result.status());
  for (const auto& u : result->untagged) {
    response->add_untagged(u);
    ctx_->PublishEvent(Event::Type::kImage, img->id.str(), u, "untag");
  }
  bool image_deleted = false;
  for (const auto& d : result->deleted) {
    response->add_deleted(d.str());
    image_deleted = image_deleted || d == img->id;
  }
  // The image itself is gone once its config blob is.
  if (image_deleted) ctx_->PublishEvent(Event::Type::kImage, img->id.str(), img->name, "delete");
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::TagImage(grpc::ServerContext*, const v1::TagImageRequest* request,
                                        v1::TagImageResponse*) {
  if (request->target().find('@') != std::string::npos) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("tag target ", request->target(), " has a digest"));
  }
  absl::StatusOr<image::Image> tagged = ctx_->images->Tag(request->source(), request->target());
  if (!tagged.ok()) return ToGrpcStatus(tagged.status());
  ctx_->PublishEvent(Event::Type::kImage, tagged->id.str(), tagged->name, "tag");
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::PushImage(grpc::ServerContext*, const v1::PushImageRequest* request,
                                         grpc::ServerWriter<v1::PushImageResponse>* writer) {
  auto normalized = ctx_->images->NormalizeName(request->reference());
  if (!normalized.ok()) return ToGrpcStatus(normalized.status());
  auto options = ctx_->RegistryOptionsFor(request->reference(),
                                          request->has_auth() ? &request->auth() : nullptr);
  if (!options.ok()) return ToGrpcStatus(options.status());
  auto pushed =
      ctx_->images->Push(request->reference(), "", *options, [&](const image::Progress& p) {
        v1::PushImageResponse r;
        *r.mutable_progress() = ToProgress(p);
        writer->Write(r);
      });
  if (!pushed.ok()) return ToGrpcStatus(pushed.status());
  v1::PushImageResponse r;
  r.mutable_result()->set_reference(*normalized);
  r.mutable_result()->set_digest(pushed->digest.str());
  r.mutable_result()->set_size(pushed->size);
  writer->Write(r);
  ctx_->PublishEvent(Event::Type::kImage, pushed->digest.str(), *normalized, "push");
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::SaveImages(grpc::ServerContext* context,
                                          const v1::SaveImagesRequest* request,
                                          grpc::ServerWriter<v1::SaveImagesResponse>* writer) {
  if (request->images().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no images to save");
  }
  image::ArchiveFormat format;
  switch (request->format()) {
    case v1::ARCHIVE_FORMAT_UNSPECIFIED:
    case v1::ARCHIVE_FORMAT_DOCKER:
      format = image::ArchiveFormat::kDockerArchive;
      break;
    case v1::ARCHIVE_FORMAT_OCI:
      format = image::ArchiveFormat::kOciArchive;
      break;
    default:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "unknown archive format");
  }
  std::vector<std::string> names(request->images().begin(), request->images().end());
  for (const std::string& n : names) {
    auto img = ctx_->images->Get(n);
    if (!img.ok()) return ToGrpcStatus(img.status());
  }
  std::string pending;
  auto flush = [&]() -> absl::Status {
    v1::SaveImagesResponse r;
    r.set_data(std::move(pending));
    pending.clear();
    if (!writer->Write(r) || context->IsCancelled()) {
      return absl::CancelledError("client went away during save");
    }
    return absl::OkStatus();
  };
  absl::Status s = ctx_->images->Save(names, format, [&](absl::string_view chunk) -> absl::Status {
    while (!chunk.empty()) {
      size_t n = std::min(chunk.size(), kChunk - pending.size());
      pending.append(chunk.data(), n);
      chunk.remove_prefix(n);
      if (pending.size() == kChunk) RETURN_IF_ERROR(flush());
    }
    return absl::OkStatus();
  });
  if (s.ok() && !pending.empty()) s = flush();
  return ToGrpcStatus(s);
}

grpc::Status ImageServiceImpl::LoadImages(grpc::ServerContext*,
                                          grpc::ServerReader<v1::LoadImagesRequest>* reader,
                                          v1::LoadImagesResponse* response) {
  StreamSource source([reader]() -> std::optional<std::string> {
    v1::LoadImagesRequest req;
    if (!reader->Read(&req)) return std::nullopt;
    return std::move(*req.mutable_data());
  });
  auto loaded = ctx_->images->Load(source.AsSource());
  if (!loaded.ok()) return ToGrpcStatus(loaded.status());
  // Drain whatever the archive reader did not consume.
  v1::LoadImagesRequest rest;
  while (reader->Read(&rest)) {
  }
  for (const image::Image& img : *loaded) {
    v1::LoadedImage* out = nullptr;
    for (auto& existing : *response->mutable_images()) {
      if (existing.id() == img.id.str()) out = &existing;
    }
    if (out == nullptr) {
      out = response->add_images();
      out->set_id(img.id.str());
    }
    if (!img.name.empty()) out->add_references(img.name);
    ctx_->PublishEvent(Event::Type::kImage, img.id.str(), img.name, "load");
  }
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::ImportImage(grpc::ServerContext*,
                                           grpc::ServerReader<v1::ImportImageRequest>* reader,
                                           v1::ImportImageResponse* response) {
  v1::ImportImageRequest first;
  if (!reader->Read(&first) || !first.has_spec()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "ImportImage: the first message must be a spec");
  }
  const v1::ImportSpec spec = first.spec();
  image::ImportOptions options;
  options.message = spec.message();
  std::vector<std::string> changes(spec.changes().begin(), spec.changes().end());
  absl::Status s = ApplyChanges(changes, &options.config);
  if (!s.ok()) return ToGrpcStatus(s);
  std::string name;
  if (!spec.reference().empty()) {
    auto n = ctx_->images->NormalizeName(spec.reference());
    if (!n.ok()) return ToGrpcStatus(n.status());
    name = *n;
  }
  bool bad_message = false;
  StreamSource source([reader, &bad_message]() -> std::optional<std::string> {
    v1::ImportImageRequest req;
    if (!reader->Read(&req)) return std::nullopt;
    if (!req.has_data()) {
      bad_message = true;
      return std::nullopt;
    }
    return std::move(*req.mutable_data());
  });
  auto img = ctx_->images->Import(source.AsSource(), name, options);
  if (bad_message) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "ImportImage: only data may follow the spec");
  }
  if (!img.ok()) return ToGrpcStatus(img.status());
  v1::ImportImageRequest rest;
  while (reader->Read(&rest)) {
  }
  response->set_id(img->id.str());
  response->set_reference(name);
  ctx_->PublishEvent(Event::Type::kImage, img->id.str(), name, "import");
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::ImageHistory(grpc::ServerContext*,
                                            const v1::ImageHistoryRequest* request,
                                            v1::ImageHistoryResponse* response) {
  auto img = ctx_->images->Get(request->image());
  if (!img.ok()) return ToGrpcStatus(img.status());
  auto config = ctx_->images->GetConfig(*img);
  if (!config.ok()) return ToGrpcStatus(config.status());
  std::vector<v1::HistoryEntry> h = History(ctx_->images, *config);
  for (auto it = h.rbegin(); it != h.rend(); ++it) *response->add_history() = std::move(*it);
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::PruneImages(grpc::ServerContext*,
                                           const v1::PruneImagesRequest* request,
                                           v1::PruneImagesResponse* response) {
  const v1::ImageFilters& f = request->filters();
  for (const std::string& cond : f.labels()) {
    if (cond.empty() || cond[0] == '=') {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("malformed label filter \"", cond, "\""));
    }
  }
  auto all = ctx_->images->List();
  if (!all.ok()) return ToGrpcStatus(all.status());
  const RuntimeContext* ctx = ctx_;
  auto in_use = [ctx](const oci::Digest& id) { return ctx->ImageInUse(id.str(), false); };
  std::map<std::string, bool> seen;
  int64_t reclaimed = 0;
  for (const image::Image& img : *all) {
    const std::string id = img.id.str();
    if (seen[id]) continue;
    seen[id] = true;
    v1::Image summary;
    if (absl::Status s = Summarize(img, *all, &summary); !s.ok()) {
      PIER_LOG(WARNING) << "prune: image " << id << ": " << s;
      continue;
    }
    const bool dangling = summary.repo_tags().empty() && summary.repo_digests().empty();
    if (!request->all() && !dangling) continue;
    if (!Matches(summary, f, /*with_dangling=*/false) || ctx_->ImageInUse(id, false)) continue;
    // What removal may free, measured while it is still there.
    std::map<std::string, int64_t> blob_bytes, snapshot_bytes;
    auto blob = [&](const oci::Digest& d) {
      auto info = ctx_->images->content().Info(d);
      if (info.ok()) blob_bytes[d.str()] = static_cast<int64_t>(info->size);
    };
    blob(img.target.digest);
    if (auto manifest = ctx_->images->GetManifest(img); manifest.ok()) {
      blob(manifest->config.digest);
      for (const oci::Descriptor& l : manifest->layers) blob(l.digest);
    }
    if (auto config = ctx_->images->GetConfig(img); config.ok()) {
      for (const oci::Digest& chain : image::ChainIds(config->diff_ids)) {
        auto usage = ctx_->images->snapshotter().UsageOf(chain);
        if (usage.ok()) snapshot_bytes[chain.str()] = static_cast<int64_t>(usage->bytes);
      }
    }
    auto result = ctx_->images->Remove(id, /*force=*/true, in_use);
    if (!result.ok()) {
      // Removed meanwhile, or claimed by a container created meanwhile.
      if (!absl::IsNotFound(result.status())) {
        PIER_LOG(WARNING) << "prune: image " << id << ": " << result.status();
      }
      continue;
    }
    for (const std::string& u : result->untagged) {
      response->add_untagged(u);
      ctx_->PublishEvent(Event::Type::kImage, id, u, "untag");
    }
    bool image_deleted = false;
    for (const oci::Digest& d : result->deleted) {
      response->add_deleted(d.str());
      image_deleted = image_deleted || d == img.id;
      if (auto it = blob_bytes.find(d.str()); it != blob_bytes.end()) reclaimed += it->second;
    }
    for (const oci::Digest& chain : result->removed_snapshots) {
      if (auto it = snapshot_bytes.find(chain.str()); it != snapshot_bytes.end())
        reclaimed += it->second;
    }
    if (image_deleted) ctx_->PublishEvent(Event::Type::kImage, id, img.name, "delete");
  }
  response->set_space_reclaimed(reclaimed);
  return grpc::Status::OK;
}

}  // namespace pier::runtime
