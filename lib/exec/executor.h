// The executor: runs a process in an isolated root file system (namespaces,
// mounts, cgroups, capabilities, seccomp), shared by builder `RUN` and the
// runtime. `Executor` is the interface; `NativeExecutor` (native_executor.h)
// does the work itself with clone3, setns, pivot_root and cgroupfs.
//
//   NativeExecutor executor;
//   ASSIGN_OR_RETURN(auto init, executor.Start(spec));
//   ASSIGN_OR_RETURN(auto sh, executor.Exec(*init, exec_process, stdio));
//   ASSIGN_OR_RETURN(ExitStatus st, init->Wait());
//   RETURN_IF_ERROR(init->Cleanup());
//
// Ownership: a Process owns its pidfd and pty master and, for a container's
// init, the container's cgroup (removed by Cleanup()). Destroying a Process
// neither kills nor reaps it: a container may outlive its handle (call
// Signal(SIGKILL) and Wait() first to stop it).
// Thread safety: an Executor may be used from many threads at once. A
// Process is not synchronised: use it from one thread at a time (Signal()
// and Resize() may be called while another thread is in Wait()).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/exec/spec.h"

namespace pier::exec {

// How a process ended.
struct ExitStatus {
  int code = 0;             // exit code when it exited (signal == 0)
  int signal = 0;           // the signal that killed it, 0 when it exited
  bool oom_killed = false;  // the container's cgroup recorded an OOM kill
  // The shell convention: `code`, or 128 + `signal`.
  int ExitCode() const { return signal != 0 ? 128 + signal : code; }
  std::string ToString() const;
};

// Security settings an exec'd process takes from its container.
struct ExecOptions {
  bool privileged = false;
  SeccompMode seccomp = SeccompMode::kDefault;
};

// A running (or exited) process started by an Executor.
class Process {
 public:
  virtual ~Process() = default;

  // The pid in the executor's pid namespace.
  virtual pid_t pid() const = 0;
  // A pidfd (pidfd_open) for the process, owned by this object.
  virtual int pidfd() const = 0;
  // The pty master when the process has a tty, -1 otherwise. Owned by this
  // object; dup it to keep it beyond the Process.
  virtual int ptm() const = 0;

  // Waits for the process to exit and reaps it. For a container's init with
  // pid=host, the rest of the container's cgroup is killed too. Returns the
  // cached status when called again. FailedPrecondition when the process is
  // not a child of this executor; the waitid error otherwise.
  virtual absl::StatusOr<ExitStatus> Wait() = 0;
  // Wait() bounded by `timeout`: DeadlineExceeded when still running.
  virtual absl::StatusOr<ExitStatus> WaitFor(absl::Duration timeout) = 0;
  // The exit status once Wait() has returned it, nullopt before.
  virtual std::optional<ExitStatus> exit_status() const = 0;
  // The exit code (ExitStatus::ExitCode()) once waited, nullopt before.
  std::optional<int> ExitCode() const {
    auto st = exit_status();
    return st ? std::optional<int>(st->ExitCode()) : std::nullopt;
  }

  // Sends `sig` through the pidfd. NotFound when the process has exited
  // (ESRCH); the errno's status otherwise.
  virtual absl::Status Signal(int sig) = 0;
  // Sets the pty's window size. FailedPrecondition without a tty.
  virtual absl::Status Resize(uint16_t rows, uint16_t cols) = 0;
  // After exit: kills what is left of the container (init only) and removes
  // its cgroup; closes the pty master. FailedPrecondition while the process
  // still runs; the cgroup's error otherwise. Idempotent.
  virtual absl::Status Cleanup() = 0;

  // The settings Exec() uses for processes joining this container.
  virtual ExecOptions exec_options() const = 0;
};

class Executor {
 public:
  virtual ~Executor() = default;

  // Creates the container described by `spec` and starts its init process.
  // Returns once the process has exec'd. Errors: InvalidArgument for a
  // malformed spec; NotFound when the rootfs or the executable is missing
  // (the message names it, e.g. "exec /bin/foo: No such file or directory");
  // PermissionDenied when it is not executable; the failing setup step's
  // error (naming the mount, file or cgroup) otherwise. Nothing is left
  // behind on failure.
  virtual absl::StatusOr<std::unique_ptr<Process>> Start(const ContainerSpec& spec) = 0;

  // Starts `process` inside the running container whose init is `init_pid`:
  // it joins every namespace of that process that differs from the
  // executor's own, and its cgroup, then applies its own user, capabilities,
  // seccomp filter, cwd and env. `stdio` is ignored when process.tty.
  // NotFound when `init_pid` does not exist or the executable is missing;
  // the failing step's error otherwise.
  virtual absl::StatusOr<std::unique_ptr<Process>> Exec(pid_t init_pid, const ProcessSpec& process,
                                                        const Stdio& stdio,
                                                        const ExecOptions& options) = 0;

  // Exec() into the container of `init` with the container's own settings.
  absl::StatusOr<std::unique_ptr<Process>> Exec(const Process& init, const ProcessSpec& process,
                                                const Stdio& stdio) {
    return Exec(init.pid(), process, stdio, init.exec_options());
  }
};

}  // namespace pier::exec
