// ImageStore: pull from and push to OCI registries over the distribution API
// (OCI distribution-spec v1.1, Docker Registry HTTP API V2).
#include <algorithm>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/common/log.h"
#include "lib/common/status.h"
#include "lib/http/url.h"
#include "lib/image/internal.h"
#include "lib/image/store.h"

namespace pier::image {
namespace {

constexpr size_t kChunk = 1 << 20;

// Docker Hub's API lives on another host than its name.
std::string ApiHost(absl::string_view registry) {
  if (registry == "docker.io" || registry == "index.docker.io") return "registry-1.docker.io";
  return std::string(registry);
}

std::string AcceptManifests() {
  return absl::StrJoin(
      {oci::kOciManifest, oci::kOciIndex, oci::kDockerManifest, oci::kDockerManifestList}, ", ");
}

// The status for an unexpected HTTP answer to `what`.
absl::Status HttpError(http::ClientResponse& resp, absl::string_view what) {
  absl::StatusOr<std::string> body = resp.ReadAll(4096);
  std::string detail = body.ok() ? std::string(absl::StripAsciiWhitespace(*body)) : "";
  if (detail.size() > 300) detail = detail.substr(0, 300) + "...";
  std::string msg =
      absl::StrCat(what, ": HTTP ", resp.status(), detail.empty() ? "" : ": ", detail);
  switch (resp.status()) {
    case 400:
    case 405:
    case 413:
    case 415:
      return absl::InvalidArgumentError(msg);
    case 401:
      return absl::UnauthenticatedError(msg);
    case 403:
      return absl::PermissionDeniedError(msg);
    case 404:
      return absl::NotFoundError(msg);
    case 416:
      return absl::OutOfRangeError(msg);
    case 429:
      return absl::ResourceExhaustedError(msg);
    default:
      if (resp.status() >= 500) return absl::UnavailableError(msg);
      return absl::UnknownError(msg);
  }
}

std::string MediaTypeOf(const http::ClientResponse& resp) {
  std::string type(resp.Header("Content-Type").value_or(""));
  size_t semi = type.find(';');
  if (semi != std::string::npos) type = type.substr(0, semi);
  return std::string(absl::StripAsciiWhitespace(type));
}

void Report(const ProgressFn& progress, Progress::Phase phase, const oci::Digest& digest,
            uint64_t offset = 0, uint64_t total = 0) {
  if (progress) progress(Progress{phase, digest, offset, total});
}

struct Fetched {
  std::string bytes;
  oci::Digest digest;
  std::string media_type;
};

// GETs /v2/<repo>/manifests/<ref> and checks its digest: against `expected`
// when given, else against Docker-Content-Digest when the registry sent one.
absl::StatusOr<Fetched> FetchManifest(distribution::RegistryClient& client,
                                      const oci::Reference& ref, absl::string_view reference,
                                      const std::optional<oci::Digest>& expected,
                                      std::optional<int64_t> expected_size, uint64_t max_bytes) {
  http::ClientRequest req;
  req.url = absl::StrCat("/v2/", ref.repository, "/manifests/", reference);
  req.headers.Set("Accept", AcceptManifests());
  const std::string what = absl::StrCat(
      "manifest ", ref.Name(), absl::StartsWith(reference, "sha256:") ? "@" : ":", reference);
  ASSIGN_OR_RETURN(http::ClientResponse resp, client.Do(req));
  if (resp.status() == 404) {
    (void)resp.ReadAll(4096);
    return absl::NotFoundError(absl::StrCat(what, " not found"));
  }
  if (resp.status() != 200) return HttpError(resp, absl::StrCat("GET ", what));
  Fetched out;
  out.media_type = MediaTypeOf(resp);
  std::optional<absl::string_view> header = resp.Header("Docker-Content-Digest");
  absl::StatusOr<std::string> body = resp.ReadAll(max_bytes);
  if (!body.ok()) return Annotate(body.status(), what);
  out.bytes = *std::move(body);
  out.digest = oci::Digest::Of(out.bytes);
  if (expected) {
    if (out.digest != *expected) {
      return absl::DataLossError(absl::StrCat(what, ": content hashes to ", out.digest.str()));
    }
  } else if (header) {
    absl::StatusOr<oci::Digest> claimed = oci::Digest::Parse(*header);
    if (claimed.ok() && *claimed != out.digest) {
      return absl::DataLossError(absl::StrCat(what, ": content hashes to ", out.digest.str(),
                                              ", registry says ", claimed->str()));
    }
  }
  if (expected_size && static_cast<int64_t>(out.bytes.size()) != *expected_size) {
    return absl::DataLossError(
        absl::StrCat(what, ": ", out.bytes.size(), " bytes, expected ", *expected_size));
  }
  if (out.media_type.empty() ||
      (!oci::IsManifestMediaType(out.media_type) && !oci::IsIndexMediaType(out.media_type))) {
    ASSIGN_OR_RETURN(out.media_type, oci::DetectManifestMediaType(out.bytes));
  }
  return out;
}

// Fetches blob `d` of `ref` into `content` unless present: streamed,
// resumed from a partial ingest, checked against its digest and size.
absl::Status FetchBlob(distribution::RegistryClient& client, content::ContentStore& store,
                       const oci::Reference& ref, const oci::Descriptor& d,
                       const ProgressFn& progress) {
  absl::StatusOr<content::Info> have = store.Info(d.digest);
  if (have.ok() && have->size == static_cast<uint64_t>(d.size)) {
    Report(progress, Progress::Phase::kExists, d.digest, d.size, d.size);
    return absl::OkStatus();
  }
  const std::string what = absl::StrCat("blob ", d.digest.str(), " of ", ref.Name());
  ASSIGN_OR_RETURN(std::unique_ptr<content::ContentWriter> writer,
                   store.OpenWriter(absl::StrCat("pull-", d.digest.hex()), d.digest,
                                    static_cast<uint64_t>(d.size)));
  uint64_t offset = writer->Offset();
  if (offset < static_cast<uint64_t>(d.size) || d.size == 0) {
    http::ClientRequest req;
    req.url = absl::StrCat("/v2/", ref.repository, "/blobs/", d.digest.str());
    if (offset > 0) req.headers.Set("Range", absl::StrCat("bytes=", offset, "-"));
    ASSIGN_OR_RETURN(http::ClientResponse resp, client.Do(req));
    if (resp.status() == 200 && offset > 0) {
      RETURN_IF_ERROR(writer->Truncate(0));  // the registry ignored the range
      offset = 0;
    } else if (resp.status() == 404) {
      (void)resp.ReadAll(4096);
      return absl::NotFoundError(absl::StrCat(what, " not found"));
    } else if (resp.status() != 200 && resp.status() != 206) {
      return HttpError(resp, absl::StrCat("GET ", what));
    }
    std::unique_ptr<char[]> buf(new char[kChunk]);
    for (;;) {
      ASSIGN_OR_RETURN(size_t n, resp.ReadBody(buf.get(), kChunk));
      if (n == 0) break;
      absl::Status st = writer->Write(absl::string_view(buf.get(), n));
      if (absl::IsInvalidArgument(st)) {  // longer than the descriptor says
        (void)writer->Abort();
        return absl::DataLossError(absl::StrCat(what, ": ", st.message()));
      }
      RETURN_IF_ERROR(st);
      Report(progress, Progress::Phase::kFetching, d.digest, writer->Offset(), d.size);
    }
  }
  absl::StatusOr<content::Info> info = writer->Commit(d.size, d.digest);
  if (absl::IsInvalidArgument(info.status())) {  // size or digest mismatch: ingest dropped
    return absl::DataLossError(absl::StrCat(what, ": ", info.status().message()));
  }
  RETURN_IF_ERROR(info.status());
  Report(progress, Progress::Phase::kFetched, d.digest, d.size, d.size);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<oci::Descriptor> ImageStore::PickPlatform(const oci::Index& index,
                                                         absl::string_view what,
                                                         const oci::Platform* wanted) const {
  std::string os = options_.os, architecture = options_.architecture, variant = options_.variant;
  if (wanted != nullptr) {
    os = wanted->os;
    architecture = wanted->architecture;
    variant = wanted->variant;
    if (variant.empty() && architecture == "arm64") variant = "v8";
    if (variant.empty() && architecture == "arm") variant = "v7";
  }
  const oci::Descriptor* variantless = nullptr;
  std::vector<std::string> available;
  for (const oci::Descriptor& d : index.manifests) {
    if (!oci::IsManifestMediaType(d.media_type) || !d.platform) continue;
    const oci::Platform& p = *d.platform;
    available.push_back(
        absl::StrCat(p.os, "/", p.architecture, p.variant.empty() ? "" : "/", p.variant));
    if (p.os != os || p.architecture != architecture) continue;
    if (p.variant == variant) return d;
    if (p.variant.empty() && variantless == nullptr) variantless = &d;
  }
  if (variantless != nullptr) return *variantless;
  const std::string platform =
      wanted == nullptr ? PlatformString()
                        : absl::StrCat(os, "/", architecture, variant.empty() ? "" : "/", variant);
  return absl::NotFoundError(absl::StrCat(what, " has no manifest for ", platform,
                                          " (it has: ", absl::StrJoin(available, ", "), ")"));
}

absl::StatusOr<Image> ImageStore::Pull(absl::string_view reference,
                                       const distribution::RegistryClientOptions& options,
                                       const ProgressFn& progress, const oci::Platform* platform) {
  ASSIGN_OR_RETURN(oci::Reference ref, oci::Reference::Parse(reference, options_.default_registry));
  ASSIGN_OR_RETURN(std::unique_ptr<distribution::RegistryClient> client,
                   distribution::RegistryClient::Create(ApiHost(ref.registry), options));

  // Resolve.
  const std::string manifest_ref = ref.ManifestReference();
  ASSIGN_OR_RETURN(Fetched top, FetchManifest(*client, ref, manifest_ref, ref.digest, std::nullopt,
                                              options_.max_manifest_bytes));
  Report(progress, Progress::Phase::kResolved, top.digest);
  Fetched manifest_doc = top;
  std::optional<oci::Digest> repo_digest = top.digest;
  if (oci::IsIndexMediaType(top.media_type)) {
    ASSIGN_OR_RETURN(oci::Index index, oci::Index::Parse(top.bytes));
    ASSIGN_OR_RETURN(oci::Descriptor chosen, PickPlatform(index, ref.String(), platform));
    ASSIGN_OR_RETURN(manifest_doc, FetchManifest(*client, ref, chosen.digest.str(), chosen.digest,
                                                 chosen.size, options_.max_manifest_bytes));
    RETURN_IF_ERROR(content_->Put(top.bytes, top.digest).status());
  } else if (!oci::IsManifestMediaType(top.media_type)) {
    return absl::InvalidArgumentError(
        absl::StrCat(ref.String(), " is a ", top.media_type, ", not an image"));
  }
  ASSIGN_OR_RETURN(oci::Manifest manifest, oci::Manifest::Parse(manifest_doc.bytes));

  // Config, then layers: each fetched unless present, streamed and verified.
  auto fetch_blob = [&](const oci::Descriptor& d) {
    return FetchBlob(*client, *content_, ref, d, progress);
  };
  RETURN_IF_ERROR(fetch_blob(manifest.config));
  ASSIGN_OR_RETURN(std::string config_bytes,
                   content_->ReadAll(manifest.config.digest, options_.max_config_bytes));
  ASSIGN_OR_RETURN(oci::ImageConfig config, oci::ImageConfig::Parse(config_bytes));
  if (config.diff_ids.size() != manifest.layers.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(ref.String(), ": manifest has ", manifest.layers.size(),
                     " layers but its config has ", config.diff_ids.size(), " diff_ids"));
  }
  for (const oci::Descriptor& layer : manifest.layers) {
    if (!oci::IsLayerMediaType(layer.media_type)) {
      return absl::InvalidArgumentError(absl::StrCat(ref.String(), ": layer ", layer.digest.str(),
                                                     " has unsupported media type ",
                                                     layer.media_type));
    }
    RETURN_IF_ERROR(fetch_blob(layer));
  }
  RETURN_IF_ERROR(content_->Put(manifest_doc.bytes, manifest_doc.digest).status());

  // Unpack and record (RecordManifest unpacks what is missing).
  ASSIGN_OR_RETURN(Image image, RecordManifest(manifest, manifest_doc.digest,
                                               manifest_doc.media_type, ref.String(), repo_digest));
  if (!config.diff_ids.empty()) {
    Report(progress, Progress::Phase::kUnpacked, ChainIds(config.diff_ids).back());
  }
  return image;
}

absl::StatusOr<oci::Descriptor> ImageStore::Push(absl::string_view name, absl::string_view target,
                                                 const distribution::RegistryClientOptions& options,
                                                 const ProgressFn& progress) {
  ASSIGN_OR_RETURN(Image image, Get(name));
  std::string target_text(target.empty() ? image.name : std::string(target));
  if (target_text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("image ", image.id.str(), " has no name: give a target reference"));
  }
  ASSIGN_OR_RETURN(oci::Reference ref,
                   oci::Reference::Parse(target_text, options_.default_registry));
  ASSIGN_OR_RETURN(oci::Manifest manifest, GetManifest(image));
  ASSIGN_OR_RETURN(std::string manifest_bytes,
                   content_->ReadAll(image.target.digest, options_.max_manifest_bytes));
  if (ref.digest && *ref.digest != image.target.digest) {
    return absl::InvalidArgumentError(absl::StrCat("cannot push image ", image.target.digest.str(),
                                                   " as ", ref.String(), ": digests differ"));
  }
  std::vector<oci::Descriptor> blobs = manifest.layers;
  blobs.push_back(manifest.config);
  const std::string media_type =
      image.target.media_type.empty() ? std::string(oci::kOciManifest) : image.target.media_type;
  ASSIGN_OR_RETURN(oci::Descriptor pushed, PushManifest(ref.String(), blobs, manifest_bytes,
                                                        media_type, options, progress));
  oci::Descriptor out = image.target;
  out.size = pushed.size;
  return out;
}

absl::StatusOr<oci::Descriptor> ImageStore::PushManifest(
    absl::string_view target, const std::vector<oci::Descriptor>& blobs,
    absl::string_view manifest_bytes, absl::string_view media_type,
    const distribution::RegistryClientOptions& options, const ProgressFn& progress) {
  ASSIGN_OR_RETURN(oci::Reference ref, oci::Reference::Parse(target, options_.default_registry));
  const oci::Digest manifest_digest = oci::Digest::Of(manifest_bytes);
  ASSIGN_OR_RETURN(std::unique_ptr<distribution::RegistryClient> client,
                   distribution::RegistryClient::Create(ApiHost(ref.registry), options));
  oci::Descriptor pushed;
  pushed.media_type = std::string(media_type);
  pushed.digest = manifest_digest;
  pushed.size = static_cast<int64_t>(manifest_bytes.size());
  // The tag already names this very manifest (an unchanged rebuild pushed
  // again): one HEAD, and nothing to upload. Any other answer, or another
  // digest, goes the whole way.
  {
    http::ClientRequest head;
    head.method = "HEAD";
    head.url = absl::StrCat("/v2/", ref.repository, "/manifests/", ref.ManifestReference());
    head.headers.Set("Accept", std::string(media_type));
    absl::StatusOr<http::ClientResponse> have = client->Do(head);
    if (have.ok() && have->status() == 200) {
      absl::StatusOr<oci::Digest> got =
          oci::Digest::Parse(have->Header("Docker-Content-Digest").value_or(""));
      if (got.ok() && *got == manifest_digest) {
        Report(progress, Progress::Phase::kManifest, manifest_digest, manifest_bytes.size(),
               manifest_bytes.size());
        return pushed;
      }
    }
  }
  std::set<oci::Digest> done;
  for (const oci::Descriptor& d : blobs) {
    if (!done.insert(d.digest).second) continue;
    const std::string what = absl::StrCat("blob ", d.digest.str(), " to ", ref.Name());
    http::ClientRequest head;
    head.method = "HEAD";
    head.url = absl::StrCat("/v2/", ref.repository, "/blobs/", d.digest.str());
    ASSIGN_OR_RETURN(http::ClientResponse exists, client->Do(head));
    if (exists.status() == 200) {
      Report(progress, Progress::Phase::kExists, d.digest, d.size, d.size);
      continue;
    }
    if (exists.status() != 404) return HttpError(exists, absl::StrCat("HEAD ", what));
    ASSIGN_OR_RETURN(content::Info info, content_->Info(d.digest));

    http::ClientRequest start;
    start.method = "POST";
    start.url = absl::StrCat("/v2/", ref.repository, "/blobs/uploads/");
    ASSIGN_OR_RETURN(http::ClientResponse started, client->Do(start));
    if (started.status() != 202) return HttpError(started, absl::StrCat("POST ", what));
    std::string location(started.Header("Location").value_or(""));
    (void)started.ReadAll(4096);
    if (location.empty()) {
      return absl::UnavailableError(absl::StrCat("POST ", what, ": no Location in the answer"));
    }

    // One monolithic PUT, streamed from the content store.
    std::unique_ptr<content::FileReader> reader;
    uint64_t sent = 0;
    auto open = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(reader, content_->OpenReader(d.digest));
      sent = 0;
      return absl::OkStatus();
    };
    RETURN_IF_ERROR(open());
    http::ClientRequest put;
    put.method = "PUT";
    put.url = absl::StrCat(location, absl::StrContains(location, "?") ? "&" : "?",
                           "digest=", http::PercentEncode(d.digest.str()));
    put.headers.Set("Content-Type", "application/octet-stream");
    put.content_length = info.size;
    put.body_source = [&](char* buf, size_t len) -> absl::StatusOr<size_t> {
      ASSIGN_OR_RETURN(size_t n, reader->Read(buf, len));
      sent += n;
      Report(progress, Progress::Phase::kUploading, d.digest, sent, info.size);
      return n;
    };
    put.rewind_body = open;
    ASSIGN_OR_RETURN(http::ClientResponse put_resp, client->Do(std::move(put)));
    if (put_resp.status() != 201) return HttpError(put_resp, absl::StrCat("PUT ", what));
    (void)put_resp.ReadAll(4096);
    Report(progress, Progress::Phase::kUploaded, d.digest, info.size, info.size);
  }

  http::ClientRequest put;
  put.method = "PUT";
  put.url = absl::StrCat("/v2/", ref.repository, "/manifests/", ref.ManifestReference());
  put.headers.Set("Content-Type", std::string(media_type));
  put.body = std::string(manifest_bytes);
  ASSIGN_OR_RETURN(http::ClientResponse resp, client->Do(put));
  if (resp.status() != 201 && resp.status() != 200) {
    return HttpError(resp, absl::StrCat("PUT manifest ", ref.String()));
  }
  if (std::optional<absl::string_view> h = resp.Header("Docker-Content-Digest")) {
    absl::StatusOr<oci::Digest> got = oci::Digest::Parse(*h);
    if (got.ok() && *got != manifest_digest) {
      return absl::DataLossError(absl::StrCat("registry stored manifest ", ref.String(), " as ",
                                              got->str(), ", expected ", manifest_digest.str()));
    }
  }
  (void)resp.ReadAll(4096);
  Report(progress, Progress::Phase::kManifest, manifest_digest, manifest_bytes.size(),
         manifest_bytes.size());
  return pushed;
}

absl::StatusOr<oci::Manifest> ImageStore::FetchManifestAndBlobs(
    absl::string_view reference, const distribution::RegistryClientOptions& options,
    const ProgressFn& progress) {
  ASSIGN_OR_RETURN(oci::Reference ref, oci::Reference::Parse(reference, options_.default_registry));
  ASSIGN_OR_RETURN(std::unique_ptr<distribution::RegistryClient> client,
                   distribution::RegistryClient::Create(ApiHost(ref.registry), options));
  ASSIGN_OR_RETURN(Fetched doc, FetchManifest(*client, ref, ref.ManifestReference(), ref.digest,
                                              std::nullopt, options_.max_manifest_bytes));
  Report(progress, Progress::Phase::kResolved, doc.digest);
  if (!oci::IsManifestMediaType(doc.media_type)) {
    return absl::InvalidArgumentError(
        absl::StrCat(ref.String(), " is a ", doc.media_type, ", not a manifest"));
  }
  ASSIGN_OR_RETURN(oci::Manifest manifest, oci::Manifest::Parse(doc.bytes));
  RETURN_IF_ERROR(FetchBlob(*client, *content_, ref, manifest.config, progress));
  for (const oci::Descriptor& d : manifest.layers) {
    RETURN_IF_ERROR(FetchBlob(*client, *content_, ref, d, progress));
  }
  RETURN_IF_ERROR(content_->Put(doc.bytes, doc.digest).status());
  return manifest;
}

}  // namespace pier::image
