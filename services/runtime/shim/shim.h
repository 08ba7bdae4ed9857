// pier-shim's core: the per-container monitor (like containerd-shim or
// conmon). One shim process per container run; it is the parent of the
// container's init, so it alone can reap it, and it is not a child of the
// runtime, so containers outlive a restart (or SIGKILL) of the runtime.
//
// RunShim() in the already daemonised process, with the state directory
// (state_dir.h) holding spec.json:
//  1. binds shim.sock, writes shim.pid;
//  2. starts the container with exec::NativeExecutor, stdout/stderr on pipes
//     (or the pty master when process.tty), stdin on a pipe when open_stdin;
//  3. writes init.pid and reports {"ok":true,"pid":N,"shim_pid":M,
//     "started_at":RFC3339Nano} on `sync_fd` (or the start error as {"ok":false,"code","message"},
//     also written to error.json), then closes it;
//  4. serves the protocol (protocol.h) in a single-threaded poll loop while
//     copying the output into log.jsonl (log_file.h) and to attached clients;
//  5. when the init exits: reads the output to EOF (bounded), runs
//     Cleanup() (the rest of the cgroup is killed and removed), writes
//     exit.json atomically, answers `wait` clients, sends the exit frame to
//     attached ones, and returns once they are drained (bounded), removing
//     shim.sock.
// SIGTERM, SIGINT and SIGHUP are ignored by the shim: only a `kill` request
// signals the container.
//
// Thread safety: RunShim() runs one event loop on the calling thread.
#pragma once

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace pier::runtime::shim {

struct ShimOptions {
  std::string dir;      // the container's state directory (absolute)
  std::string log_dir;  // where log.jsonl goes; empty: `dir`
  int sync_fd = -1;     // start report, closed after it (-1: none)
  bool open_stdin = false;
  int64_t log_max_size = 10 << 20;  // bytes per log file; <= 0: no rotation
  int log_max_files = 3;            // log.jsonl plus rotated ones
  // How long to keep reading output after the init exited, and to wait
  // for clients to take the last frames.
  absl::Duration drain_timeout = absl::Seconds(5);
};

// Returns the process exit code: 0 after a container ran (whatever its
// status), 1 when it could not be started.
int RunShim(const ShimOptions& options);

}  // namespace pier::runtime::shim
