// ImageStore: the node-local image store shared by pier-runtime and
// pier-builder, modelled on containerd's images + content + snapshots +
// unpacker. Images are records in the kv store that point at a manifest in
// the ContentStore; their layers are unpacked into the Snapshotter (one
// committed snapshot per chain id, shared by every image that has it).
//
// Names. An image name is a normalised docker reference,
// "host/repository:tag" (or "host/repository@sha256:..." for an image pulled
// by digest alone): `busybox` is "docker.io/library/busybox:latest" with the
// default registry "docker.io" (ImageStoreOptions::default_registry). An
// image's id is its config digest, as docker's. Get() also takes an id, an
// unambiguous prefix of one (with or without "sha256:", at least 4 hex
// digits) or a manifest digest. An image without a name (built or imported
// without one, or untagged by Tag over it) is "dangling": it keeps a record
// under its manifest digest until removed by id.
//
// Kv keys:
//   image/n/<name>              named image record (JSON: target descriptor,
//                               config digest, repo digest, created)
//   image/d/<manifest digest>   dangling image record (same JSON)
//   image/c/<layer>/<comp>/<n>  a layer's rewrite with another compression
//                               and level (NewImage::compression), reused
//                               while its blob is stored
// The manifest, its config, its layers (and the index it was pulled
// through) are in the ContentStore under their digests. The snapshotter
// (see snapshotter.h) lives in the store's root; imports and saves use
// <root>/tmp for scratch space.
//
// Garbage. Remove() deletes the blobs and snapshots of the images it untags
// that no remaining image needs (never anything else: a builder may have
// committed layers it has not yet recorded). A snapshot an active snapshot
// stacks on (a container's rootfs) is kept, and so is everything of an image
// the caller's `in_use` predicate claims. There are no leases yet (as
// containerd has): a Remove that runs while a Pull, Load or CreateImage of
// an image sharing blobs with the removed one is between fetching and
// recording may delete a blob that image is about to use; that operation
// then fails (NotFound) and can be retried. Callers that need more serialise
// them. Blobs of a pull that failed half-way stay in the content store (a
// retry reuses them).
//
// Ownership: the store borrows `kv` and `content`, which must outlive it,
// and owns its Snapshotter.
// Thread safety: every method may be called from any thread. Record changes
// are serialised; pulls and pushes run concurrently (two pulls of the same
// blob at once: one gets Unavailable "ref ... is locked" from the content
// store).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/archive/layer_writer.h"
#include "lib/archive/stream.h"
#include "lib/content/content_store.h"
#include "lib/distribution/registry_client.h"
#include "lib/image/snapshotter.h"
#include "lib/kv/kv_store.h"
#include "lib/oci/digest.h"
#include "lib/oci/reference.h"
#include "lib/oci/types.h"

namespace pier::image {

struct Image {
  std::string name;        // normalised reference; "" for a dangling image
  oci::Descriptor target;  // the image manifest (for this platform)
  oci::Digest id;          // its config digest
  // What the registry served for the name when pulled (an index's digest
  // when pulled through one); also set by Push. Empty for local images.
  std::optional<oci::Digest> repo_digest;
  absl::Time created;  // when the record was written
};

// Pull/push progress, one call per event.
struct Progress {
  enum class Phase {
    kResolved,   // the reference resolved to `digest` (manifest or index)
    kExists,     // blob `digest` was already present (pull) or in the registry (push)
    kFetching,   // `offset` of `total` bytes of `digest` fetched so far
    kFetched,    // blob `digest` stored and verified
    kUnpacked,   // layer with chain id `digest` unpacked
    kUploading,  // `offset` of `total` bytes of `digest` sent so far
    kUploaded,   // blob `digest` uploaded
    kManifest,   // manifest `digest` pushed
  };
  Phase phase;
  oci::Digest digest;
  uint64_t offset = 0;
  uint64_t total = 0;
};
using ProgressFn = std::function<void(const Progress&)>;

enum class ArchiveFormat {
  // `docker save`'s format: manifest.json, repositories, <config hex>.json
  // and <diff id hex>/layer.tar (uncompressed).
  kDockerArchive,
  // An OCI image layout in a tar: oci-layout, index.json, blobs/sha256/
  // (layers kept as stored).
  kOciArchive,
};

struct ImageStoreOptions {
  // Registry of names without one ("busybox").
  std::string default_registry = "docker.io";
  // The platform picked from an index; empty: the host's (linux,
  // uname -m as GOARCH: amd64, arm64, ...; variant: v8 on arm64, v7 on armv7).
  std::string os = "linux";
  std::string architecture;
  std::string variant;
  SnapshotterOptions snapshotter;
  uint64_t max_manifest_bytes = 4 << 20;
  uint64_t max_config_bytes = 16 << 20;
};

// The config of an imported image.
struct ImportOptions {
  oci::ContainerConfig config;  // Env, Cmd, Entrypoint, WorkingDir, ...
  std::string author;
  std::string message;  // the history entry's comment
  // The layer written into the content store.
  archive::CreateOptions layer;
};

// An image made of a base image's layers plus new ones (builder steps, a
// container commit).
struct NewImage {
  // Name or id of the base image in this store; "" for scratch.
  std::string base;
  // Layers on top, bottom first; each blob must already be committed in the
  // ContentStore (from CreateLayerFrom* into a ContentWriter).
  std::vector<archive::LayerInfo> layers;
  // History entries appended to the base's (empty_layer ones for
  // metadata-only steps). When fewer non-empty entries than `layers` are
  // given, "pier" entries are added for the rest.
  std::vector<oci::History> history;
  // Edits the config after the layers and history were added (Env, Cmd,
  // labels...). `created` is set to now beforehand.
  std::function<void(oci::ImageConfig*)> edit_config;
  std::string name;  // "" for a dangling image
  // Layer compression of the image. nullopt: layers as given. Otherwise
  // each of `layers` whose media type names another compression (every one
  // of them, when compression_level is set) is rewritten with
  // archive::RecompressLayer into the content store (same diff id, so the
  // config is unchanged); with `recompress_base` the base image's layers
  // are rewritten by the same rule.
  std::optional<archive::CreateOptions> compression;
  bool recompress_base = false;
};

struct RemoveResult {
  std::vector<std::string> untagged;           // names removed
  std::vector<oci::Digest> deleted;            // blobs deleted from the content store
  std::vector<oci::Digest> removed_snapshots;  // chain ids removed
};

// Whether a container (or anything else the caller knows of) uses the image
// with this id.
using InUseFn = std::function<bool(const oci::Digest& image_id)>;

class ImageStore {
 public:
  // Opens the store rooted at `root` (its snapshotter included). Errors as
  // Snapshotter::Open.
  static absl::StatusOr<std::unique_ptr<ImageStore>> Open(std::string root, kv::KvStore* kv,
                                                          content::ContentStore* content,
                                                          ImageStoreOptions options = {});

  Snapshotter& snapshotter() { return *snapshotter_; }
  content::ContentStore& content() { return *content_; }

  // Normalises `name` ("busybox" -> "docker.io/library/busybox:latest").
  // InvalidArgument for an invalid reference.
  absl::StatusOr<std::string> NormalizeName(absl::string_view name) const;

  // --- Registries.

  // Resolves `reference` (docker syntax, default registry applied) on its
  // registry, picks this platform's manifest from an index, fetches the
  // config and every layer not yet present (streamed, each checked against
  // its digest and size), unpacks them into snapshots and records the
  // image under the reference. Returns the image.
  // Errors: InvalidArgument for a bad reference or malformed documents;
  // NotFound naming the reference for an unknown tag, repository or blob,
  // or naming the platform when an index lacks it; DataLoss when a manifest
  // or blob does not match its digest or size; Unauthenticated /
  // PermissionDenied from the registry; Unavailable when it cannot be
  // reached; ApplyLayer's errors (InvalidArgument for an escaping entry).
  // `platform`, when given, is picked from an index instead of the store's
  // (an empty variant means its architecture's default: v8 for arm64, v7
  // for arm); a single-platform manifest is taken whatever its platform.
  absl::StatusOr<Image> Pull(absl::string_view reference,
                             const distribution::RegistryClientOptions& options,
                             const ProgressFn& progress = nullptr,
                             const oci::Platform* platform = nullptr);

  // Pushes image `name` (anything Get takes) to `target` (a reference; ""
  // for the image's own name): each layer and the config unless the
  // registry has it (HEAD), then the manifest under the target's tag (or
  // digest). Returns the pushed manifest's descriptor.
  // Errors: NotFound for an unknown image or a missing blob;
  // InvalidArgument for a bad target (or no name and no target); the
  // registry's refusals mapped from HTTP (Unauthenticated, PermissionDenied,
  // NotFound, InvalidArgument for a rejected manifest); Unavailable.
  absl::StatusOr<oci::Descriptor> Push(absl::string_view name, absl::string_view target,
                                       const distribution::RegistryClientOptions& options,
                                       const ProgressFn& progress = nullptr);

  // Pushes `blobs` (each in the content store; skipped when the registry
  // has them, duplicates once) to `target`'s repository, then
  // `manifest_bytes` as `media_type` under its tag or digest: the generic
  // half of Push, also used for artifacts such as the builder's cache.
  // When the registry already has that manifest under the tag (one HEAD),
  // nothing is uploaded.
  // Returns the manifest's descriptor. Errors as Push.
  absl::StatusOr<oci::Descriptor> PushManifest(absl::string_view target,
                                               const std::vector<oci::Descriptor>& blobs,
                                               absl::string_view manifest_bytes,
                                               absl::string_view media_type,
                                               const distribution::RegistryClientOptions& options,
                                               const ProgressFn& progress = nullptr);

  // Fetches the image manifest `reference` names (an index is refused with
  // InvalidArgument) and every blob it references (config and layers,
  // whatever their media types) into the content store, verified, without
  // recording an image or unpacking anything. Returns the manifest (with
  // its raw bytes, also stored). Errors as Pull.
  absl::StatusOr<oci::Manifest> FetchManifestAndBlobs(
      absl::string_view reference, const distribution::RegistryClientOptions& options,
      const ProgressFn& progress = nullptr);

  // --- Records.

  // The image named `name_or_id` (see the file comment). NotFound naming it;
  // InvalidArgument for an ambiguous id prefix.
  absl::StatusOr<Image> Get(absl::string_view name_or_id);

  // Every image record, named ones by name, then dangling ones.
  absl::StatusOr<std::vector<Image>> List();

  // Records `dst` (a name) for the image `src` names (moving a name that
  // pointed elsewhere; the image that loses its last name becomes dangling).
  // NotFound for `src`; InvalidArgument for a bad `dst` or a digest in it.
  absl::StatusOr<Image> Tag(absl::string_view src, absl::string_view dst);

  // Removes the image `name_or_id` names: a name removes that name only; an
  // id (or digest, or prefix) removes every name of the image, which needs
  // `force` when there are several. When no name is left, the image's
  // blobs and snapshots that no remaining image needs are deleted.
  // Errors: NotFound; FailedPrecondition when several names share the id
  // without `force`, or when `in_use` claims the image and `force` is unset
  // (with `force` the name goes but the content stays).
  absl::StatusOr<RemoveResult> Remove(absl::string_view name_or_id, bool force,
                                      const InUseFn& in_use = nullptr);

  // The manifest and config of an image. NotFound when a blob is missing;
  // InvalidArgument when malformed.
  absl::StatusOr<oci::Manifest> GetManifest(const Image& image);
  absl::StatusOr<oci::ImageConfig> GetConfig(const Image& image);

  // Unpacks every layer of `image` not yet in the snapshotter and returns
  // the top chain id (nullopt for an image without layers): the parent to
  // give Snapshotter::Prepare for a container. Errors as Snapshotter::Unpack;
  // NotFound for a missing blob.
  absl::StatusOr<std::optional<oci::Digest>> Unpack(const Image& image);

  // --- Creating images.

  // Builds a one-layer image from a root file system tarball (tar, gzip or
  // zstd): the tar is applied to a scratch directory (refusing escaping
  // entries) and written back as a layer, so the stored layer is
  // normalised. Records it under `name` ("" for dangling).
  // Errors: InvalidArgument for a bad name or an unsafe entry; DataLoss for
  // a corrupt tarball; the source's own errors.
  absl::StatusOr<Image> Import(const archive::ByteSource& rootfs, absl::string_view name,
                               const ImportOptions& options = {});

  // Builds an image from a base and new layers (see NewImage), unpacks it
  // and records it. NotFound for an unknown base or a layer blob missing
  // from the content store; InvalidArgument for a layer whose stored size
  // differs, a bad name or a compression level the compressor refuses;
  // DataLoss for a corrupt layer that had to be recompressed.
  absl::StatusOr<Image> CreateImage(const NewImage& request);

  // --- Archives.

  // Writes the images `names` (anything Get takes) as one tar archive to
  // `sink`. NotFound for an unknown image; the sink's own errors.
  absl::Status Save(const std::vector<std::string>& names, ArchiveFormat format,
                    const archive::ByteSink& sink);

  // Reads a docker-archive or OCI layout tar (plain or gzip) from `source`,
  // stores its blobs (verified against their digests), unpacks and records
  // its images (names from manifest.json's RepoTags, or the OCI index's
  // io.containerd.image.name / org.opencontainers.image.ref.name
  // annotations; dangling without). Returns the images recorded.
  // Errors: InvalidArgument for an archive that is neither format or lacks
  // a referenced file; DataLoss for a corrupt tar or blob; unpack errors.
  absl::StatusOr<std::vector<Image>> Load(const archive::ByteSource& source);

 private:
  ImageStore(std::string root, kv::KvStore* kv, content::ContentStore* content,
             ImageStoreOptions options, std::unique_ptr<Snapshotter> snapshotter);

  // Records `image` (by name, or dangling when its name is empty); a named
  // record replaces a dangling one of the same manifest. A name already
  // recorded on the same manifest, config and repo digest is left as it is
  // (its `created` too) and nothing is written.
  absl::StatusOr<Image> Record(Image image);
  absl::StatusOr<std::vector<Image>> Scan();
  // Stores manifest + config already in the content store as an image.
  absl::StatusOr<Image> RecordManifest(const oci::Manifest& manifest, const oci::Digest& digest,
                                       absl::string_view media_type, const std::string& name,
                                       std::optional<oci::Digest> repo_digest);
  // Picks the entry of an index for `wanted` (null: the store's platform):
  // os and architecture equal, the same variant or else an entry without
  // one. NotFound naming the platform.
  absl::StatusOr<oci::Descriptor> PickPlatform(const oci::Index& index, absl::string_view what,
                                               const oci::Platform* wanted = nullptr) const;
  std::string PlatformString() const;
  // Blobs and snapshots of `manifest` (with the config read for diff_ids).
  absl::Status CollectNeeds(const Image& image, std::vector<oci::Digest>* blobs,
                            std::vector<oci::Digest>* chains);
  absl::StatusOr<std::string> TempDir(absl::string_view prefix);
  // The layer `layer` describes, rewritten with `options` into the content
  // store unless it already has that compression (and no level is asked
  // for). Errors as archive::RecompressLayer, NotFound for a missing blob.
  absl::StatusOr<oci::Descriptor> Recompress(const oci::Descriptor& layer,
                                             const archive::CreateOptions& options);

  const std::string root_;
  kv::KvStore* const kv_;
  content::ContentStore* const content_;
  const ImageStoreOptions options_;
  std::unique_ptr<Snapshotter> snapshotter_;
  std::mutex mu_;  // serialises record changes and garbage collection
};

// The host's platform as an OCI image index names it: {"linux", "amd64",
// ""} on x86_64, {"linux", "arm64", "v8"} on aarch64.
oci::Platform HostPlatform();

}  // namespace pier::image
