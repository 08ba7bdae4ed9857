// Streams a container's logs to our stdout/stderr (shared by `pier logs`
// and `pier run` in the foreground).
#pragma once

#include <string>

#include "cli/runtime_client.h"

namespace pier::cli {

struct LogsOptions {
  bool follow = false;
  int64_t tail = -1;
  bool timestamps = false;
  // With follow: ask for the container's exit at the end of the stream and
  // store it here (a foreground run then needs no WaitContainer).
  rt::WaitContainerResponse* exit = nullptr;
  bool* got_exit = nullptr;
  // With exit: the runtime removes the container before the stream ends.
  bool remove = false;
};

// Returns the RPC status of the stream.
grpc::Status StreamLogs(rt::ContainerService::Stub& stub, const std::string& id,
                        const LogsOptions& options);

}  // namespace pier::cli
