// CniNetwork: bridge networking for containers through the CNI plugins
// installed on the host (bridge + host-local, then portmap), chained by
// passing each plugin's result as the next one's prevResult (CNI spec).
// Also the named network namespaces the plugins configure before a
// container starts (CreateNetns / RemoveNetns).
//
// Thread safety: Setup/Teardown may run concurrently for different ids
// (host-local locks its data dir itself).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pier::runtime::network {

struct PortMapping {
  std::string host_ip;  // "" = all addresses
  int host_port = 0;
  int container_port = 0;
  std::string protocol = "tcp";  // tcp, udp, sctp
};

struct CniOptions {
  std::string bridge = "pier0";
  std::string subnet = "10.88.0.0/16";
  std::string bin_dir = "/usr/lib/cni";
  std::string state_dir;  // e.g. <root>/cni; host-local's dataDir is under it
  absl::Duration timeout = absl::Seconds(30);
};

struct SetupResult {
  std::string ip;  // "10.88.0.5"
  int prefix_len = 0;
  std::string gateway;
  std::string mac;
};

class CniNetwork {
 public:
  explicit CniNetwork(CniOptions options) : options_(std::move(options)) {}

  // ADD: bridge (with host-local IPAM), then portmap when `ports` is not
  // empty. On a portmap failure the bridge is torn down again. Errors name
  // the plugin and carry its message.
  absl::StatusOr<SetupResult> Setup(const std::string& container_id, const std::string& netns,
                                    const std::vector<PortMapping>& ports);

  // DEL in reverse order; "not found"-style errors are ignored.
  absl::Status Teardown(const std::string& container_id, const std::string& netns,
                        const std::vector<PortMapping>& ports);

  const CniOptions& options() const { return options_; }

 private:
  std::string BridgeConfig() const;
  std::string ResultPath(const std::string& container_id) const;

  CniOptions options_;
};

// Runs `plugin` (a path) with the CNI environment and `stdin_json`; returns
// its stdout. Errors: the plugin's CNI error {code, msg, details} as
// "<plugin>: <msg>: <details>", or its stderr, or a timeout.
absl::StatusOr<std::string> RunPlugin(const std::string& plugin, const std::string& command,
                                      const std::string& container_id, const std::string& netns,
                                      const std::string& ifname, const std::string& cni_path,
                                      const std::string& stdin_json, absl::Duration timeout);

// Creates a new network namespace with `lo` up and pins it at `path` (a
// bind mount of the namespace file; the directory is created).
absl::Status CreateNetns(const std::string& path);

// Whether `path` still pins a network namespace (a mounted nsfs file). A
// host reboot leaves the empty mount point behind.
bool NetnsPinned(const std::string& path);

// Unmounts and unlinks a namespace created by CreateNetns; OK if absent.
absl::Status RemoveNetns(const std::string& path);

// Whether (host_ip, port, protocol) can be bound on the host now.
// FailedPrecondition "port 127.0.0.1:8080 is already in use" if not.
absl::Status CheckPortFree(const std::string& host_ip, int port, const std::string& protocol);

// A free ephemeral port on `host_ip` (bind to port 0).
absl::StatusOr<int> PickFreePort(const std::string& host_ip, const std::string& protocol);

}  // namespace pier::runtime::network
