// Pieces of RUN beyond its command line: here-documents, and the file
// systems of RUN --mount (cache directories that outlive builds, read-only
// views of overlay layer stacks, and the traces mount points leave in a
// snapshot's upper directory).
//
// The builder (builder.h) turns each --mount into an exec::Mount for the
// executor; these helpers hold what it needs besides the mount itself.
//
// Ownership: CacheMounts owns nothing but its bookkeeping; the directories
// it hands out live under its root until removed by hand. Thread safety:
// CacheMounts is safe to share between threads; the functions are stateless.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/builder/dockerfile/instructions.h"

namespace pier::builder {

// The persistent directories of RUN --mount=type=cache, one per cache id
// (more for sharing=private while one is busy), below `root`.
class CacheMounts {
 public:
  explicit CacheMounts(std::string root) : root_(std::move(root)) {}

  // Returns the directory for cache `id` and holds it until Release():
  //   shared   any number of holders at once (waits only for a locked one);
  //   private  a directory no one else holds: the id's first free instance;
  //   locked   waits until no one holds the id's directory, then holds it alone.
  // A directory is created on first use with `mode` and owner uid:gid (later
  // uses keep what it has). The errno's status when it cannot be created.
  absl::StatusOr<std::string> Acquire(absl::string_view id, absl::string_view sharing, mode_t mode,
                                      uid_t uid, gid_t gid);
  // Releases a directory Acquire() returned.
  void Release(const std::string& dir);

  // Removes every cache directory no one holds (with `dry_run`, only counts)
  // and returns the bytes of the regular files they held. The first
  // removal's errno status on failure.
  absl::StatusOr<int64_t> Prune(bool dry_run);

 private:
  std::string root_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, int> holders_;  // guarded by mu_: count, -1 for a locked holder
};

// What a path is in a stack of overlay layer directories (top first), read
// as overlayfs would: whiteouts (0:0 character devices) hide what is below,
// an opaque directory hides the same directory below it.
struct LayeredPath {
  bool found = false;
  struct stat st {};  // of the top-most entry when found
  // When `found`: the path in each layer that contributes to it, top first
  // (one entry unless it is a directory).
  std::vector<std::string> paths;
};
// `rel` is slash-separated, relative to the layer roots ("" for the root).
// Symlinks on the way are not followed.
LayeredPath LookupLayered(const std::vector<std::string>& layers, absl::string_view rel);

// `path` (absolute) with the symlinks of the layer stack resolved as in a
// chroot to it (at most 40 links; missing components are taken as they are).
std::string ResolveLayered(const std::vector<std::string>& layers, absl::string_view path);

// After a RUN: removes from the snapshot's `upper` directory the mount
// point `target` (absolute in the container, symlinks resolved through
// `lowers`) that the executor created, and
// the parents it created or copied up for it, as long as they are empty and
// (for copied-up parents) unchanged from `lowers` (the snapshot's layer
// directories, top first). Entries the command changed are kept.
void RemoveMountpointTraces(const std::string& upper, const std::vector<std::string>& lowers,
                            absl::string_view target);

// How a RUN with here-documents runs (see the Dockerfile reference): a RUN
// whose whole command is one here-document runs its body, as an executable
// file when the body starts with "#!" (`script`), else as the shell's
// command string; any other RUN gets the command line followed by each body
// and its delimiter, which the shell reads as its own here-documents.
struct HeredocRun {
  std::vector<std::string> args;
  struct Script {
    std::string name;  // file name: the delimiter
    std::string body;
  };
  std::optional<Script> script;  // args then name the file under kHeredocDir
};
inline constexpr char kHeredocDir[] = "/dev/pipes";
HeredocRun RunWithHeredocs(const dockerfile::Run& run, const std::vector<std::string>& shell,
                           char escape);

}  // namespace pier::builder
