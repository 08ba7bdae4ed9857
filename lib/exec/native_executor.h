// NativeExecutor: Pier's own container executor, modelled on crun.
//
// Start():
//  parent: validate the spec, compile the seccomp filter, resolve every
//    mount's flags, create the cgroup with its limits, then clone3 with the
//    CLONE_NEW* flags of the spec (and CLONE_PIDFD).
//  child (pid 1 of its pid namespace), waiting on a sync pipe until the
//    parent has written its pid to the cgroup's cgroup.procs, then:
//    reset signals, setsid, stdio onto 0/1/2, join namespaces given by path,
//    unshare the cgroup namespace, rlimits, oom_score_adj; make "/" rslave,
//    perform rootfs_mounts, bind the rootfs onto itself, mount /proc, /sys
//    (read-only), /dev (tmpfs with null, zero, full, random, urandom, tty,
//    ptmx -> pts/ptmx, fd/stdin/stdout/stderr links), /dev/pts (newinstance,
//    ptmxmode=0666), /dev/shm, /dev/mqueue and the volumes, every target
//    resolved inside the rootfs with openat2(RESOLVE_IN_ROOT);
//    pivot_root(".", ".") and detach the old root; masked and read-only
//    paths; read-only "/" when asked; the pty (created in the container's
//    devpts, master passed to the parent over a socket, slave bound on
//    /dev/console and made the controlling terminal); sethostname; bounding
//    set, setgroups/setresgid/setresuid, capset, ambient cleared; chdir;
//    no_new_privs; seccomp last; execve through the PATH of the env.
//  Any failure before execve is written (errno + message) to a CLOEXEC pipe
//  and the child exits; the parent turns it into a status. EOF on that pipe
//  means execve succeeded.
//
// The child allocates nothing and calls only system calls, because the
// executor may run in a multi-threaded daemon: everything is prepared by
// the parent before clone3.
//
// Exec(): the parent opens a pidfd of the init, points its own thread's
// pid_for_children at the container's pid namespace (setns, undone after
// clone3), and the child joins the other namespaces with one setns(pidfd)
// after the parent has put it in the container's cgroups (from
// /proc/<pid>/cgroup).
//
// Thread safety: Start() and Exec() may be called concurrently.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "lib/exec/cgroup.h"
#include "lib/exec/executor.h"

namespace pier::exec {

class NativeExecutor : public Executor {
 public:
  // Uses the host's cgroup layout (detected on first use).
  NativeExecutor() = default;
  // Uses `layout` instead (tests).
  explicit NativeExecutor(CgroupLayout layout) : layout_(std::move(layout)) {}

  absl::StatusOr<std::unique_ptr<Process>> Start(const ContainerSpec& spec) override;
  absl::StatusOr<std::unique_ptr<Process>> Exec(pid_t init_pid, const ProcessSpec& process,
                                                const Stdio& stdio,
                                                const ExecOptions& options) override;
  using Executor::Exec;

 private:
  absl::StatusOr<CgroupLayout> Layout();

  std::optional<CgroupLayout> layout_;
};

}  // namespace pier::exec
