// Cgroups for the executor: detection of the host's layout (v1, v1 "hybrid"
// with an empty unified hierarchy beside it, or v2) and one container's
// cgroup, created with its limits before the container starts, joined by the
// container's processes before they exec, killed and removed after exit.
//
// v1: one directory per controller, <mount>/<path> for memory, cpu, cpuacct,
//   pids, devices (Docker's default device allow-list unless all devices are
//   allowed), blkio, freezer and cpuset (cpus/mems copied from the parent
//   when empty, as the kernel requires before a task may join); in hybrid
//   mode also <unified>/<path>, used for cgroup.kill.
// v2: <root>/<path> with memory.max, memory.swap.max, cpu.max, cpu.weight,
//   pids.max, cpuset.cpus/mems; the controllers are enabled in every
//   ancestor's cgroup.subtree_control; the device allow-list is an eBPF
//   program (AttachDefaultDeviceFilter).
//
// Ownership: a Cgroup owns its directories; Destroy() kills what is left in
// them and removes them (the destructor does not: a container's cgroup
// outlives the handle when the runtime restarts). Thread safety: a Cgroup is
// not synchronised; call it from one thread at a time.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/common/fs.h"
#include "lib/exec/spec.h"

namespace pier::exec {

enum class CgroupVersion { kV1, kV2 };

// Where the hierarchies are mounted.
struct CgroupLayout {
  CgroupVersion version = CgroupVersion::kV1;
  // v2: the cgroup2 mount (/sys/fs/cgroup). v1 hybrid: the unified mount
  // (/sys/fs/cgroup/unified). Empty: none.
  std::string unified;
  // v1: controller name ("memory", "cpu", ...) -> its mount point.
  std::map<std::string, std::string> v1;
};

// Reads /proc/self/mountinfo: cgroup2 mounted on /sys/fs/cgroup means v2,
// otherwise v1 with whichever controllers are mounted. FailedPrecondition
// when no cgroup file system is mounted; the file's errors otherwise.
absl::StatusOr<CgroupLayout> DetectCgroupLayout();

// Attaches a BPF_PROG_TYPE_CGROUP_DEVICE program allowing only Docker's
// default devices (null, zero, full, random, urandom, tty, console, ptmx,
// pts, tun; mknod of any) to the cgroup v2 directory `cgroup_dir`: the v2
// form of the v1 devices allow-list. The error of bpf(2), naming the
// directory, on failure.
absl::Status AttachDefaultDeviceFilter(const std::string& cgroup_dir);

// How a new process enters a set of cgroup directories without taking the
// kernel's global cgroup lock (a write to cgroup.procs waits for an RCU
// grace period, 5-20 ms): for each v1 directory the process itself writes
// "0" to `tasks` before it execs (moving the current thread skips the lock);
// the v2 directory, if any, is entered at clone3 time with
// CLONE_INTO_CGROUP.
struct CgroupEntry {
  std::vector<UniqueFd> v1_tasks;    // <dir>/tasks, open for writing
  std::vector<std::string> v1_dirs;  // parallel to v1_tasks, for errors
  UniqueFd v2_dir;                   // the v2 (or hybrid unified) directory
};

// Opens the entry handles for `dirs` (directories of `layout`'s
// hierarchies). The failing open's error, naming the file, otherwise.
absl::StatusOr<CgroupEntry> OpenCgroupEntry(const CgroupLayout& layout,
                                            const std::vector<std::string>& dirs);

class Cgroup {
 public:
  // Creates (or adopts, when it exists) the cgroup at `rel_path` (e.g.
  // "pier/<id>") in every hierarchy of `layout` and applies the limits of
  // `spec`. `allow_all_devices` skips the v1 device allow-list (privileged).
  // InvalidArgument for a path with ".." or an absolute path; the failing
  // file's error (naming it) otherwise, after removing what was created.
  static absl::StatusOr<std::unique_ptr<Cgroup>> Create(const CgroupLayout& layout,
                                                        absl::string_view rel_path,
                                                        const CgroupSpec& spec,
                                                        bool allow_all_devices);
  ~Cgroup() = default;
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;

  // Moves `pid` into the cgroup in every hierarchy. The error of the failing
  // cgroup.procs write, naming it.
  absl::Status AddProcess(pid_t pid) const;

  // The processes in the cgroup (from the first hierarchy).
  absl::StatusOr<std::vector<pid_t>> Pids() const;

  // SIGKILLs every process in the cgroup (cgroup.kill when the kernel has
  // it, else repeated kill(2) over cgroup.procs) and waits, bounded, until
  // the cgroup is empty. DeadlineExceeded when processes remain after ~5 s.
  absl::Status KillAll() const;

  // KillAll() then rmdir of every directory created for the container.
  // Idempotent. The rmdir error naming the directory on failure.
  absl::Status Destroy();

  // True when the kernel's OOM killer has killed a process of this cgroup
  // (memory.events "oom_kill" on v2, memory.oom_control "oom_kill" on v1).
  bool OomKilled() const;

  // The directories of this cgroup, one per hierarchy (for tests and logs).
  const std::vector<std::string>& paths() const { return paths_; }
  CgroupVersion version() const { return version_; }

 private:
  Cgroup() = default;

  CgroupVersion version_ = CgroupVersion::kV1;
  std::vector<std::string> paths_;  // every directory the process joins
  std::string memory_dir_;          // memory controller directory ("" if none)
  std::string kill_dir_;            // a v2 directory with cgroup.kill ("" if none)
  std::string procs_dir_;           // the directory listed by Pids()
  bool destroyed_ = false;
};

}  // namespace pier::exec
