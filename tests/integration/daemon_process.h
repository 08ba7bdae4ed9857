// Test harness: runs a real Pier daemon binary as a child process on
// loopback, learns the addresses it announced on stdout, and stops it.
//
// The destructor SIGKILLs a daemon that is still running (and reaps it), so a
// failing test never leaves one behind. Only the child this object started is
// ever signalled.
// Thread safety: one thread per object.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pier::testing {

// Directory of the built daemons (build/bin), from PIER_BIN_DIR or the path
// compiled in by CMake.
std::string BinDir();

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string output;  // stdout and stderr together
};

// Runs `pier` (from BinDir()) with `args` and `env` ("NAME=value") added to
// this process's environment; waits for it.
CommandResult RunPier(const std::vector<std::string>& args,
                      const std::vector<std::string>& env = {});

class DaemonProcess {
 public:
  DaemonProcess() = default;
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // Starts `binary` (a name under BinDir() or a path) with `args` and waits
  // until it has announced `wait_for` listeners ("grpc", "http"), or until it
  // exits or `timeout` passes (DeadlineExceeded, with its stderr).
  absl::Status Start(const std::string& binary, const std::vector<std::string>& args,
                     const std::vector<std::string>& wait_for = {"grpc"},
                     std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // The address announced for `kind`, e.g. "127.0.0.1:41234".
  std::string Address(const std::string& kind = "grpc") const;

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // Sends `sig` and waits up to `timeout` for the exit. Returns the wait
  // status (as from waitpid); DeadlineExceeded if it did not exit in time.
  absl::StatusOr<int> Stop(int sig, std::chrono::milliseconds timeout);

  // Sends SIGKILL and reaps.
  void Kill();

  // What the daemon wrote to stderr so far (for failure messages).
  std::string Stderr() const;

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string stderr_path_;
  std::map<std::string, std::string> addresses_;
};

}  // namespace pier::testing
