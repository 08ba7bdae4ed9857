// Pier's default seccomp profile, modelled on Docker's: every system call is
// allowed except a deny list that answers EPERM (clone3 answers ENOSYS, so
// that libc falls back to clone, whose namespace flags can be checked).
//
// Denied always:
//   keyctl add_key request_key kexec_load kexec_file_load userfaultfd
//   lookup_dcookie vm86 vm86old uselib ustat sysfs _sysctl create_module
//   get_kernel_syms query_module nfsservctl, and personality(2) with any
//   persona other than PER_LINUX (0), PER_LINUX32 (8), UNAME26 (0x20000) and
//   their combination (0x20008) (so the query 0xffffffff is denied too).
// Denied unless the process keeps the named capability:
//   CAP_SYS_ADMIN: mount umount umount2 pivot_root unshare setns fsopen
//                  fsconfig fsmount fspick move_mount open_tree mount_setattr
//                  swapon swapoff quotactl quotactl_fd bpf perf_event_open
//                  fanotify_init name_to_handle_at, clone with any CLONE_NEW*
//                  flag, clone3 (ENOSYS)
//   CAP_SYS_BOOT: reboot            CAP_SYS_MODULE: init_module finit_module delete_module
//   CAP_SYS_PACCT: acct             CAP_SYS_RAWIO: iopl ioperm
//   CAP_SYS_TIME: settimeofday stime clock_settime clock_adjtime adjtimex
//   CAP_DAC_READ_SEARCH: open_by_handle_at      CAP_SYSLOG: syslog
// System calls of other architectures (e.g. i386 via int 0x80) kill the
// process (libseccomp's bad-arch action).
//
// The filter is compiled with libseccomp in the executor (parent) and loaded
// in the child with seccomp(2) just before execve, so the child needs no
// allocation.
//
// Thread safety: stateless; safe from any thread.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pier::exec {

// Compiles the default profile for a process keeping the capabilities in
// `caps` (bit n = capability n) into classic BPF for the native
// architecture. Internal when libseccomp fails.
absl::StatusOr<std::vector<sock_filter>> CompileDefaultSeccompFilter(uint64_t caps);

// The system calls the default profile denies for a process holding `caps`
// (the unconditional list plus the groups whose capability is missing).
std::vector<std::string> SeccompDeniedSyscalls(uint64_t caps);

}  // namespace pier::exec
