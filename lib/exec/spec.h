// What the executor runs: plain data describing a container (root
// filesystem, mounts, namespaces, cgroup limits, security) and a process in
// it. Builder `RUN` and the runtime fill these in; only the executor acts on
// them (see executor.h).
//
// The defaults follow Docker's: the default capability set, the masked and
// read-only paths of /proc and /sys, the default devices, a default seccomp
// profile and no_new_privileges. The helpers below return those lists so
// that callers can extend them.
//
// Ownership: value types, copied freely. Thread safety: none needed (plain
// data; the helper functions are stateless).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pier::exec {

// Docker's default capability set (14 capabilities: CAP_CHOWN,
// CAP_DAC_OVERRIDE, CAP_FSETID, CAP_FOWNER, CAP_MKNOD, CAP_NET_RAW,
// CAP_SETGID, CAP_SETUID, CAP_SETFCAP, CAP_SETPCAP, CAP_NET_BIND_SERVICE,
// CAP_SYS_CHROOT, CAP_KILL, CAP_AUDIT_WRITE).
std::vector<std::string> DefaultCapabilities();

// Docker's masked paths (/proc/kcore, /proc/keys, /sys/firmware, ...):
// files get /dev/null bound over them, directories an empty read-only tmpfs.
std::vector<std::string> DefaultMaskedPaths();

// Docker's read-only paths (/proc/bus, /proc/fs, /proc/irq, /proc/sys,
// /proc/sysrq-trigger): bound onto themselves read-only.
std::vector<std::string> DefaultReadonlyPaths();

// One mount, as data. `options` are mount(8)-style words: flags ("ro", "rw",
// "bind", "rbind", "nosuid", "nodev", "noexec", "relatime", "private",
// "rprivate", "slave", "shared", ...) and anything else is passed to the
// file system as data ("lowerdir=/a:/b", "size=64m", "mode=755").
struct Mount {
  std::string type;    // "bind", "overlay", "tmpfs", "proc", ...
  std::string source;  // host path for binds; device or fs name otherwise
  std::string target;  // path inside the container (absolute)
  std::vector<std::string> options;
};

// One resource limit applied with setrlimit(2) before exec. `type` is the
// RLIMIT_* name ("RLIMIT_NOFILE", "RLIMIT_NPROC", ...). A hard limit above
// the executor's own hard limit fails unless the executor may raise it
// (CAP_SYS_RESOURCE).
struct Rlimit {
  std::string type;
  uint64_t soft = 0;
  uint64_t hard = 0;
};

// The process to run (the container's init for Start, or an exec'd process).
struct ProcessSpec {
  std::vector<std::string> args;  // args[0] is looked up in PATH (from env) when it has no '/'
  std::vector<std::string> env;   // "KEY=value"; PATH defaults to kDefaultPath when missing
  std::string cwd = "/";          // created in the rootfs by Start when missing
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> additional_gids;
  // Allocate a pseudo-terminal inside the container; its slave becomes the
  // process's stdin/stdout/stderr and controlling terminal, the master is
  // handed to the caller (Process::ptm()).
  bool tty = false;
  uint16_t tty_rows = 0;  // initial window size when tty (0: leave the default)
  uint16_t tty_cols = 0;
  bool no_new_privileges = true;
  // Capability names ("CAP_CHOWN"); the bounding, effective, permitted and
  // inheritable sets become exactly these (ambient is cleared). For a
  // non-root uid the effective and permitted sets are empty, as in Docker.
  std::vector<std::string> capabilities = DefaultCapabilities();
  std::vector<Rlimit> rlimits;
  // Written to /proc/self/oom_score_adj when set. Lowering it needs
  // CAP_SYS_RESOURCE in the executor.
  std::optional<int> oom_score_adj;
};

// How a namespace is obtained.
enum class NamespaceMode {
  kNew,   // a fresh namespace (the default)
  kHost,  // share the executor's (pid=host, net=host, ipc=host, ...)
  kPath,  // join the namespace at `path` (e.g. /run/netns/X made by CNI)
};

struct NamespaceSpec {
  NamespaceMode mode = NamespaceMode::kNew;
  std::string path;  // for kPath
};

struct Namespaces {
  NamespaceSpec pid;
  NamespaceSpec net;
  NamespaceSpec ipc;
  NamespaceSpec uts;
  NamespaceSpec mount;  // kHost is refused: the executor always needs its own
  NamespaceSpec cgroup;
};

// Cgroup placement and limits. Zero or negative values mean "no limit /
// kernel default" except where noted.
struct CgroupSpec {
  // Relative path under each hierarchy's root, e.g. "pier/<id>". Empty: the
  // executor uses "pier/<container id>".
  std::string parent_path;
  int64_t memory_bytes = 0;  // memory.limit_in_bytes / memory.max
  // Memory plus swap as Docker's --memory-swap: 0 = unset, -1 = unlimited
  // swap. memory.memsw.limit_in_bytes / memory.swap.max (= swap - memory).
  int64_t memory_swap = 0;
  int64_t nano_cpus = 0;    // 1e9 = one CPU: cfs quota/period or cpu.max
  uint64_t cpu_shares = 0;  // v1 cpu.shares; converted to cpu.weight on v2
  int64_t pids_limit = 0;   // pids.max
  std::string cpuset_cpus;  // "0-1"; empty: inherit
  std::string cpuset_mems;
};

enum class SeccompMode {
  kDefault,     // Pier's Docker-like default profile (see seccomp.h)
  kUnconfined,  // no filter
};

// Where the container's standard streams go when the process has no tty.
// The descriptors are borrowed: dup'ed onto 0/1/2 in the child, never
// closed by the executor. -1 means /dev/null.
struct Stdio {
  int in = -1;
  int out = -1;
  int err = -1;
};

struct ContainerSpec {
  std::string id;  // [A-Za-z0-9_.-]+, names the cgroup
  // Directory that becomes "/" of the container. It must exist.
  std::string rootfs;
  // Mounts that build the root file system at `rootfs` (e.g. one overlay
  // mount with lowerdir/upperdir/workdir), performed inside the container's
  // mount namespace so nothing is left on the host. Targets are relative to
  // `rootfs` ("" or "/" is `rootfs` itself).
  std::vector<Mount> rootfs_mounts;
  // Volumes: bind mounts (source on the host) and tmpfs, targets inside the
  // container, applied after /proc, /sys and /dev.
  std::vector<Mount> mounts;
  bool readonly_rootfs = false;
  std::string hostname;  // empty: the container id (first 12 chars)
  Namespaces namespaces;
  std::vector<std::string> masked_paths = DefaultMaskedPaths();
  std::vector<std::string> readonly_paths = DefaultReadonlyPaths();
  // All capabilities the executor holds, no seccomp filter, no masked or
  // read-only paths, the host's devices and writable /sys.
  bool privileged = false;
  SeccompMode seccomp = SeccompMode::kDefault;
  CgroupSpec cgroup;
  ProcessSpec process;
  Stdio stdio;  // ignored when process.tty
};

// The PATH used when the process env has none.
inline constexpr char kDefaultPath[] =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

}  // namespace pier::exec
