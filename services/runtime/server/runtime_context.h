// RuntimeContext: what pier-runtime's gRPC services share (the image store,
// the container manager, the kv store, registry settings), and the small
// conversions they have in common (registry options for a reference,
// Dockerfile-style config changes, signal names, timestamps).
//
// Ownership: the context borrows every pointer; main.cc owns the objects and
// keeps them alive until the gRPC server has stopped.
// Thread safety: the context is read-only after setup; the helpers are
// stateless.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"
#include "lib/distribution/registry_client.h"
#include "lib/image/store.h"
#include "lib/kv/kv_store.h"
#include "lib/oci/types.h"
#include "pier/common/v1/common.pb.h"
#include "services/runtime/containers/manager.h"
#include "services/runtime/events/event_bus.h"
#include "services/runtime/network/cni.h"
#include "services/runtime/volumes/volume_store.h"

namespace pier::runtime {

struct RuntimeContext {
  std::string root;                            // --root
  std::string run_root;                        // --exec-root
  std::string default_registry;                // --default-registry
  std::vector<std::string> insecure;           // --insecure-registry hosts
  std::map<std::string, std::string> aliases;  // --registry-alias
  std::string credentials_path;                // --credentials; "" for none
  std::string registry_ca;                     // --registry-ca; "" for the system CAs only
  std::string registry_cert;                   // --registry-tls-cert (mTLS to registries)
  std::string registry_key;                    // --registry-tls-key
  image::ImageStore* images = nullptr;         // borrowed
  ContainerManager* containers = nullptr;
  kv::KvStore* kv = nullptr;
  VolumeStore* volumes = nullptr;
  network::CniNetwork* cni = nullptr;  // bridge networking
  EventBus* events = nullptr;          // lifecycle events (Events RPC)

  // Publishes an event (nothing when `events` is null).
  void PublishEvent(Event::Type type, std::string id, std::string name, std::string action,
                    std::map<std::string, std::string> attributes = {}) const;

  // Whether any container (running or not) mounts `mountpoint`.
  bool VolumeInUse(const std::string& mountpoint) const;

  // Options for talking to the registry of `reference`: plain HTTP for
  // --insecure-registry hosts and, unless registry TLS settings are given,
  // loopback ones; credentials from `auth`
  // when it names that host (or has no host), else from the credentials
  // file. InvalidArgument for a malformed reference; the credentials file's
  // error otherwise.
  absl::StatusOr<distribution::RegistryClientOptions> RegistryOptionsFor(
      absl::string_view reference, const common::v1::RegistryAuth* auth) const;

  // Image ids ("sha256:...") that containers use; `running_only` restricts
  // to running or restarting containers.
  bool ImageInUse(const std::string& image_id, bool running_only) const;
};

// Applies Dockerfile instructions ("CMD [\"sh\"]", "ENV A=b", "WORKDIR /x",
// ...) to `config`: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD,
// STOPSIGNAL, USER, VOLUME, WORKDIR. InvalidArgument naming an unsupported
// or malformed instruction.
absl::Status ApplyChanges(const std::vector<std::string>& changes, oci::ContainerConfig* config);

// "SIGTERM", "TERM", "term" or "15" -> 15. InvalidArgument naming it.
absl::StatusOr<int> ParseSignal(absl::string_view text);

void ToTimestamp(absl::Time t, google::protobuf::Timestamp* ts);
absl::Time FromTimestamp(const google::protobuf::Timestamp& ts);
// RFC 3339 text (as in image configs) -> time; InfinitePast when empty or
// malformed.
absl::Time ParseRfc3339(const std::string& text);

// The platform a request names, with the node's os and architecture where it
// leaves them empty, GOARCH aliases resolved (x86_64 -> amd64, aarch64 ->
// arm64) and the default variant of arm64 (v8) and arm (v7) filled in.
// InvalidArgument when a field is not a plain lowercase word.
absl::StatusOr<oci::Platform> RequestedPlatform(const common::v1::Platform& p);

// "os/architecture[/variant]".
std::string PlatformText(const oci::Platform& p);

// Whether an image for `image` runs as `wanted`: same os and architecture,
// and the same variant once defaults are applied (an image without a
// variant runs on any).
bool PlatformMatches(const oci::Platform& image, const oci::Platform& wanted);

}  // namespace pier::runtime
