#include "lib/exec/seccomp.h"

#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"

namespace pier::exec {
namespace {

struct Group {
  int cap;  // -1: denied always
  std::vector<const char*> syscalls;
};

const std::vector<Group>& Groups() {
  static const auto* groups = new std::vector<Group>{
      {-1,
       {"keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load", "userfaultfd",
        "lookup_dcookie", "vm86", "vm86old", "uselib", "ustat", "sysfs", "_sysctl", "create_module",
        "get_kernel_syms", "query_module", "nfsservctl"}},
      {CAP_SYS_ADMIN, {"mount",           "umount",        "umount2",
                       "pivot_root",      "unshare",       "setns",
                       "fsopen",          "fsconfig",      "fsmount",
                       "fspick",          "move_mount",    "open_tree",
                       "mount_setattr",   "swapon",        "swapoff",
                       "quotactl",        "quotactl_fd",   "bpf",
                       "perf_event_open", "fanotify_init", "name_to_handle_at"}},
      {CAP_SYS_BOOT, {"reboot"}},
      {CAP_SYS_MODULE, {"init_module", "finit_module", "delete_module"}},
      {CAP_SYS_PACCT, {"acct"}},
      {CAP_SYS_RAWIO, {"iopl", "ioperm"}},
      {CAP_SYS_TIME, {"settimeofday", "stime", "clock_settime", "clock_adjtime", "adjtimex"}},
      {CAP_DAC_READ_SEARCH, {"open_by_handle_at"}},
      {CAP_SYSLOG, {"syslog"}},
  };
  return *groups;
}

bool Has(uint64_t caps, int cap) { return cap >= 0 && (caps >> cap) & 1; }

// Frees a libseccomp context on scope exit.
struct CtxReleaser {
  scmp_filter_ctx ctx;
  ~CtxReleaser() { seccomp_release(ctx); }
};

absl::Status RuleError(int rc, absl::string_view what) {
  return absl::InternalError(absl::StrCat("seccomp rule for ", what, ": ", std::strerror(-rc)));
}

}  // namespace

std::vector<std::string> SeccompDeniedSyscalls(uint64_t caps) {
  std::vector<std::string> out;
  for (const Group& g : Groups()) {
    if (Has(caps, g.cap)) continue;
    for (const char* s : g.syscalls) out.emplace_back(s);
  }
  return out;
}

absl::StatusOr<std::vector<sock_filter>> CompileDefaultSeccompFilter(uint64_t caps) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr) return absl::InternalError("seccomp_init failed");
  CtxReleaser releaser{ctx};
  // The child sets no_new_privs itself when asked to; the filter must not.
  if (int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0); rc < 0) {
    return RuleError(rc, "CTL_NNP");
  }
  const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  for (const std::string& name : SeccompDeniedSyscalls(caps)) {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    if (int rc = seccomp_rule_add(ctx, eperm, nr, 0); rc < 0) return RuleError(rc, name);
  }
  if (!Has(caps, CAP_SYS_ADMIN)) {
    // clone with a namespace flag: one rule per flag (rules are OR'ed).
    const uint64_t ns_flags[] = {CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,   CLONE_NEWUSER,
                                 CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP};
    for (uint64_t flag : ns_flags) {
      if (int rc = seccomp_rule_add(ctx, eperm, SCMP_SYS(clone), 1,
                                    SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
          rc < 0) {
        return RuleError(rc, "clone");
      }
    }
    int nr = seccomp_syscall_resolve_name("clone3");
    if (nr != __NR_SCMP_ERROR) {
      if (int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0); rc < 0) {
        return RuleError(rc, "clone3");
      }
    }
  }
  // personality: deny every bit outside PER_LINUX32 (0x8) and UNAME26 (0x20000).
  for (int bit = 0; bit < 32; ++bit) {
    if (bit == 3 || bit == 17) continue;
    const uint64_t b = uint64_t{1} << bit;
    if (int rc = seccomp_rule_add(ctx, eperm, SCMP_SYS(personality), 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, b, b));
        rc < 0) {
      return RuleError(rc, "personality");
    }
  }

  UniqueFd mem(::memfd_create("pier-seccomp", MFD_CLOEXEC));
  if (!mem.valid()) return ErrnoStatus(errno, "memfd_create for seccomp filter");
  if (int rc = seccomp_export_bpf(ctx, mem.get()); rc < 0) {
    return absl::InternalError(absl::StrCat("seccomp_export_bpf: ", std::strerror(-rc)));
  }
  off_t size = ::lseek(mem.get(), 0, SEEK_END);
  if (size < 0 || size % sizeof(sock_filter) != 0) {
    return absl::InternalError("seccomp_export_bpf produced a partial program");
  }
  std::vector<sock_filter> prog(static_cast<size_t>(size) / sizeof(sock_filter));
  if (::pread(mem.get(), prog.data(), static_cast<size_t>(size), 0) != size) {
    return ErrnoStatus(errno, "read seccomp filter");
  }
  return prog;
}

}  // namespace pier::exec
