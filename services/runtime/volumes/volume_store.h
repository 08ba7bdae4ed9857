// Named volumes of pier-runtime: directories under <root>/volumes/<name>/_data
// that outlive the containers using them. Created explicitly or on first use
// (`-v name:/path`); an image's VOLUME paths get anonymous volumes (random
// 64-hex names) that `pier rm -v` removes with their container.
//
// Records live in the runtime's KvStore under "volume/<name>".
// Errors: InvalidArgument for a bad name ([A-Za-z0-9][A-Za-z0-9_.-]*),
// NotFound for an unknown volume, FailedPrecondition when removing one that
// a container still uses.
// Events: "create" when a volume is made (not for an existing one) and
// "destroy" on removal.
// Thread safety: all methods are safe from any thread.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/kv/kv_store.h"
#include "services/runtime/events/event_bus.h"

namespace pier::runtime {

struct VolumeInfo {
  std::string name;
  std::string mountpoint;  // <root>/volumes/<name>/_data
  absl::Time created_at;
  std::map<std::string, std::string> labels;
  bool anonymous = false;
};

class VolumeStore {
 public:
  // `events` (borrowed, may be null) receives "create" and "destroy".
  VolumeStore(std::string root, kv::KvStore* kv, EventBus* events = nullptr)
      : root_(std::move(root)), kv_(kv), events_(events) {}

  // Creates the volume, or returns the existing one (idempotent, as docker).
  absl::StatusOr<VolumeInfo> Create(const std::string& name,
                                    const std::map<std::string, std::string>& labels = {},
                                    bool anonymous = false);
  // A fresh anonymous volume.
  absl::StatusOr<VolumeInfo> CreateAnonymous();
  absl::StatusOr<VolumeInfo> Get(const std::string& name);
  absl::StatusOr<std::vector<VolumeInfo>> List();
  // `in_use(mountpoint)` says whether a container mounts it.
  absl::Status Remove(const std::string& name,
                      const std::function<bool(const std::string&)>& in_use);

 private:
  void Publish(const std::string& name, absl::string_view action,
               const std::map<std::string, std::string>& labels);

  std::string root_;
  kv::KvStore* kv_;
  EventBus* events_;
  std::mutex mu_;
};

}  // namespace pier::runtime
