// Snapshotter: Pier's overlayfs snapshotter, modelled on containerd's
// overlay snapshotter. Image layers are unpacked once into committed,
// read-only snapshots named by their chain id and shared by every image and
// container that stacks on them; containers and builder steps get an active
// snapshot (a writable upper directory) on top of a committed chain, as a
// list of exec::Mount (the mount is data: only the executor mounts).
//
// Chain ids (OCI image-spec, "Layer ChainID"):
//   ChainID(L0) = DiffID(L0)
//   ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))
// so a chain id names a layer together with everything below it.
//
// On-disk layout under `root`:
//   snapshots/<n>/fs        a committed snapshot: one layer unpacked with
//                           overlay whiteouts (0/0 character devices and
//                           trusted.overlay.opaque=y); <n> is a small decimal
//                           number, mapped from the chain id in the kv store
//   active/<key>/upper      an active snapshot's writable upper directory
//   active/<key>/work       its overlayfs work directory
//   empty/                  an empty directory: the lower of an active
//                           snapshot without parent (overlayfs needs one)
//   tmp/                    unpacks in progress (removed on Open)
//
// Why numbers: overlayfs takes its lowerdir list in the mount(2) data page,
// at most one page (4096 bytes on x86_64) for every option together. A
// 71-character "<chainid hex>" per layer would allow barely 50 layers;
// "<root>/snapshots/<n>/fs" costs len(root) + ~18 bytes, so a root such as
// /var/lib/pier/runtime allows ~100 layers (docker's own limit is 127).
// Mounts whose options would not fit are refused with ResourceExhausted
// rather than failing later inside the executor (a chdir-relative mount, as
// containerd's mount helper does, is not possible when the mount is data).
//
// Kv keys (all under "snap/"):
//   snap/seq                 last number handed out
//   snap/c/<chain id>        committed snapshot record (JSON: id, parent,
//                            diff_id, created)
//   snap/a/<key>             active snapshot record (JSON: parent, created,
//                            readonly)
//   snap/ref/<parent>/<kind>:<name>   "parent has a child" index: kind "c"
//                            (a committed child, name = chain id) or "a" (an
//                            active snapshot, name = key); Remove refuses
//                            while any exists.
//
// Unpacking is atomic: a layer is applied into tmp/<n>, then renamed to
// snapshots/<n> and recorded. Two threads unpacking the same chain id both
// apply; the first to record wins and the other discards its copy. (One
// process owns a root: the kv store is RocksDB, opened by one process.)
//
// Ownership: the Snapshotter borrows `kv`, which must outlive it.
// Thread safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/archive/layer_apply.h"
#include "lib/archive/stream.h"
#include "lib/exec/spec.h"
#include "lib/kv/kv_store.h"
#include "lib/oci/digest.h"

namespace pier::image {

// ChainID(parent, diff_id): `diff_id` itself without a parent.
oci::Digest ChainId(const std::optional<oci::Digest>& parent, const oci::Digest& diff_id);

// The chain ids of every layer of `diff_ids` (bottom first): element i is the
// chain id of layers 0..i. Empty for no layers.
std::vector<oci::Digest> ChainIds(const std::vector<oci::Digest>& diff_ids);

struct SnapshotterOptions {
  // Add "index=off" to overlay mounts: committed layers are shared by many
  // mounts, which overlayfs's inode index would tie to the first upper.
  bool index_off = true;
  // Add "redirect_dir=off" and "metacopy=off" to writable mounts: an upper
  // directory holding redirects or metadata-only copies cannot be turned
  // into a layer (archive::CreateLayerFromOverlayUpper refuses it).
  bool layer_safe_upper = true;
  // Mark opaque directories with user.overlay.opaque and mount with
  // "userxattr" (overlayfs inside a user namespace).
  bool userxattr = false;
  // How layers are applied (device nodes, owners).
  archive::DevicePolicy devices = archive::DevicePolicy::kCreate;
  bool restore_owners = true;
  // The most bytes the options of one overlay mount may take (the kernel's
  // limit is a page, terminating NUL included).
  size_t max_mount_data = 4095;
};

// A committed snapshot.
struct SnapshotInfo {
  oci::Digest chain_id;
  std::optional<oci::Digest> parent;  // chain id of the layer below
  oci::Digest diff_id;                // the layer it holds
  uint64_t id = 0;                    // directory number: snapshots/<id>
  absl::Time created;
};

// An active (writable or view) snapshot.
struct ActiveInfo {
  std::string key;
  std::optional<oci::Digest> parent;
  bool readonly = false;
  absl::Time created;
};

struct Usage {
  uint64_t bytes = 0;   // allocated bytes (st_blocks * 512), each inode once
  uint64_t inodes = 0;  // entries, the top directory included
};

class Snapshotter {
 public:
  // Opens (creating) the snapshotter at `root` and removes leftovers of
  // interrupted unpacks in tmp/. errno's code naming the directory when it
  // cannot be created; the kv store's code when it cannot be read.
  static absl::StatusOr<std::unique_ptr<Snapshotter>> Open(std::string root, kv::KvStore* kv,
                                                           SnapshotterOptions options = {});

  const std::string& root() const { return root_; }

  // --- Committed snapshots.

  // The snapshot of `chain_id`. NotFound "snapshot <chain id> not found".
  absl::StatusOr<SnapshotInfo> Stat(const oci::Digest& chain_id);
  // Whether `chain_id` is committed. The kv store's code on failure.
  absl::StatusOr<bool> Exists(const oci::Digest& chain_id);
  // Every committed snapshot, in chain id order.
  absl::StatusOr<std::vector<SnapshotInfo>> List();
  // The fs directory of a committed snapshot (<root>/snapshots/<n>/fs).
  // NotFound as Stat.
  absl::StatusOr<std::string> Dir(const oci::Digest& chain_id);

  // Applies the layer read from `layer` on top of `parent` (a committed
  // chain id, or none for a base layer) and commits it under
  // ChainId(parent, diff_id), which it returns. When that chain id is
  // already committed, nothing is read and it is returned at once.
  // Errors: NotFound when `parent` is not committed; ApplyLayer's errors
  // (InvalidArgument for an entry that escapes, DataLoss for a corrupt
  // stream or one that does not hash to `diff_id`), with nothing committed.
  absl::StatusOr<oci::Digest> Unpack(const std::optional<oci::Digest>& parent,
                                     const oci::Digest& diff_id, const archive::ByteSource& layer);

  // Removes a committed snapshot. NotFound as Stat; FailedPrecondition
  // naming a child when a committed snapshot or an active one stacks on it.
  // Whether an image still needs it is the caller's business (ImageStore).
  absl::Status Remove(const oci::Digest& chain_id);

  // --- Active snapshots. `key` is 1..128 characters of [A-Za-z0-9_.-],
  // not starting with '.' (InvalidArgument otherwise).

  // Creates the active snapshot `key` on top of `parent` (none: an empty
  // root) and returns the one overlay mount (target "") that assembles it:
  // lowerdir = the parent chain's fs directories, top first (or empty/),
  // upperdir, workdir. AlreadyExists for a key in use; NotFound for an
  // unknown parent; ResourceExhausted when the options exceed
  // max_mount_data.
  absl::StatusOr<std::vector<exec::Mount>> Prepare(absl::string_view key,
                                                   const std::optional<oci::Digest>& parent);

  // Creates a read-only active snapshot `key` of `parent` (it keeps `parent`
  // from being removed until Remove(key)) and returns its mounts: a
  // read-only bind of the layer for a one-layer chain or of empty/ for none,
  // else an overlay of the lower directories alone. Errors as Prepare.
  absl::StatusOr<std::vector<exec::Mount>> View(absl::string_view key,
                                                const std::optional<oci::Digest>& parent);

  // The mounts of an existing active snapshot. NotFound for an unknown key.
  absl::StatusOr<std::vector<exec::Mount>> Mounts(absl::string_view key);

  // The record of an active snapshot. NotFound for an unknown key.
  absl::StatusOr<ActiveInfo> StatActive(absl::string_view key);
  // Every active snapshot, by key.
  absl::StatusOr<std::vector<ActiveInfo>> ListActive();

  // The upper directory of a writable active snapshot (for
  // archive::CreateLayerFromOverlayUpper once it is unmounted). NotFound
  // for an unknown key; FailedPrecondition for a view.
  absl::StatusOr<std::string> UpperDir(absl::string_view key);

  // Turns the unmounted active snapshot `key` into the committed snapshot
  // ChainId(parent, diff_id), where `diff_id` is that of the layer written
  // from its upper directory, and removes `key`. The upper directory is
  // renamed, not copied. When that chain id is already committed the upper
  // is discarded. Returns the chain id. NotFound for an unknown key;
  // FailedPrecondition for a view.
  absl::StatusOr<oci::Digest> Commit(absl::string_view key, const oci::Digest& diff_id);

  // Removes the active snapshot `key` and its directories (it must be
  // unmounted). NotFound for an unknown key.
  absl::Status RemoveActive(absl::string_view key);

  // Disk usage of a committed snapshot's layer alone.
  absl::StatusOr<Usage> UsageOf(const oci::Digest& chain_id);
  // Disk usage of an active snapshot's upper directory (0 for a view).
  absl::StatusOr<Usage> ActiveUsage(absl::string_view key);

 private:
  Snapshotter(std::string root, kv::KvStore* kv, SnapshotterOptions options)
      : root_(std::move(root)), kv_(kv), options_(options) {}

  absl::StatusOr<uint64_t> NextId();
  absl::StatusOr<std::optional<SnapshotInfo>> FindCommitted(const oci::Digest& chain_id);
  absl::StatusOr<std::optional<ActiveInfo>> FindActive(absl::string_view key);
  // The fs directories of `chain_id` and its ancestors, top first.
  absl::StatusOr<std::vector<std::string>> LowerDirs(const oci::Digest& chain_id);
  absl::StatusOr<std::vector<exec::Mount>> MountsFor(const ActiveInfo& info);
  absl::StatusOr<std::vector<exec::Mount>> CreateActive(absl::string_view key,
                                                        const std::optional<oci::Digest>& parent,
                                                        bool readonly);
  // Records the committed snapshot whose directory is tmp_dir (renamed to
  // snapshots/<id>), or discards tmp_dir when `chain_id` exists by now.
  absl::Status Publish(const std::string& tmp_dir, uint64_t id, const oci::Digest& chain_id,
                       const std::optional<oci::Digest>& parent, const oci::Digest& diff_id,
                       const kv::Batch& extra);
  std::string SnapshotDir(uint64_t id) const;
  std::string ActiveDir(absl::string_view key) const;

  const std::string root_;
  kv::KvStore* const kv_;
  const SnapshotterOptions options_;
  // Serialises record changes (sequence numbers, publish, remove) so that
  // check-then-write sequences on the kv store are atomic.
  std::mutex mu_;
};

}  // namespace pier::image
