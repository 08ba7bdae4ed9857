// An interactive attachment to a container (the Attach RPC), shared by
// `pier attach` and `pier run -i/-t`.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "cli/cli.h"
#include "cli/runtime_client.h"

namespace pier::cli {

struct AttachResult {
  std::optional<int> exit_code;  // the container's, when it exited
  std::string error;             // the exit's error, if any
  bool detached = false;         // the detach keys were typed
  bool attached = false;         // the runtime confirmed the attachment
  grpc::Status status;           // the RPC's failure when there is no exit code
};

struct AttachOptions {
  bool stdin = false;        // copy our stdin to the container
  std::string detach_keys;   // AttachSpec.detach_keys ("" : the runtime's default)
  bool since_start = false;  // AttachSpec.since_start (attach after a start)
};

// Attaches to `container`: our stdin is copied to it when `options.stdin`,
// its output goes to our stdout/stderr; typing the detach keys ends the
// session with `detached` (the container keeps running). With a container
// tty and a terminal on our stdin, the terminal is put in raw mode
// (restored on return and on SIGTERM/SIGHUP/SIGQUIT) and its size is sent
// at once and on SIGWINCH.
// `on_attached` runs once the server has confirmed the attachment (e.g.
// StartContainer); its error ends the session and is returned in status.
AttachResult AttachSession(rt::ContainerService::Stub& stub, const std::string& container,
                           const AttachOptions& options,
                           const std::function<grpc::Status()>& on_attached);

// The --detach-keys flag's value, else the config file's (`g.detach_keys`).
std::string DetachKeys(const Globals& g, const std::string& flag);

}  // namespace pier::cli
