#include "lib/exec/capabilities.h"

#include <sys/prctl.h>

#include <cerrno>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace pier::exec {
namespace {

constexpr const char* kNames[] = {"CAP_CHOWN",
                                  "CAP_DAC_OVERRIDE",
                                  "CAP_DAC_READ_SEARCH",
                                  "CAP_FOWNER",
                                  "CAP_FSETID",
                                  "CAP_KILL",
                                  "CAP_SETGID",
                                  "CAP_SETUID",
                                  "CAP_SETPCAP",
                                  "CAP_LINUX_IMMUTABLE",
                                  "CAP_NET_BIND_SERVICE",
                                  "CAP_NET_BROADCAST",
                                  "CAP_NET_ADMIN",
                                  "CAP_NET_RAW",
                                  "CAP_IPC_LOCK",
                                  "CAP_IPC_OWNER",
                                  "CAP_SYS_MODULE",
                                  "CAP_SYS_RAWIO",
                                  "CAP_SYS_CHROOT",
                                  "CAP_SYS_PTRACE",
                                  "CAP_SYS_PACCT",
                                  "CAP_SYS_ADMIN",
                                  "CAP_SYS_BOOT",
                                  "CAP_SYS_NICE",
                                  "CAP_SYS_RESOURCE",
                                  "CAP_SYS_TIME",
                                  "CAP_SYS_TTY_CONFIG",
                                  "CAP_MKNOD",
                                  "CAP_LEASE",
                                  "CAP_AUDIT_WRITE",
                                  "CAP_AUDIT_CONTROL",
                                  "CAP_SETFCAP",
                                  "CAP_MAC_OVERRIDE",
                                  "CAP_MAC_ADMIN",
                                  "CAP_SYSLOG",
                                  "CAP_WAKE_ALARM",
                                  "CAP_BLOCK_SUSPEND",
                                  "CAP_AUDIT_READ",
                                  "CAP_PERFMON",
                                  "CAP_BPF",
                                  "CAP_CHECKPOINT_RESTORE"};
constexpr int kKnown = sizeof(kNames) / sizeof(kNames[0]);

}  // namespace

absl::StatusOr<int> CapabilityFromName(absl::string_view name) {
  std::string upper = absl::AsciiStrToUpper(name);
  if (!absl::StartsWith(upper, "CAP_")) upper = absl::StrCat("CAP_", upper);
  for (int i = 0; i < kKnown; ++i) {
    if (upper == kNames[i]) return i;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown capability \"", name, "\""));
}

std::string CapabilityName(int cap) {
  if (cap >= 0 && cap < kKnown) return kNames[cap];
  return absl::StrCat("CAP_", cap);
}

int LastCapability() {
  static const int last = [] {
    int v = kKnown - 1;
    if (FILE* f = std::fopen("/proc/sys/kernel/cap_last_cap", "re")) {
      int n = 0;
      if (std::fscanf(f, "%d", &n) == 1 && n > 0 && n < 64) v = n;
      std::fclose(f);
    }
    return v;
  }();
  return last;
}

absl::StatusOr<uint64_t> CapabilityMask(const std::vector<std::string>& names) {
  uint64_t mask = 0;
  for (const std::string& name : names) {
    if (absl::AsciiStrToUpper(name) == "ALL") {
      for (int c = 0; c <= LastCapability(); ++c) mask |= uint64_t{1} << c;
      continue;
    }
    auto cap = CapabilityFromName(name);
    if (!cap.ok()) return cap.status();
    mask |= uint64_t{1} << *cap;
  }
  return mask;
}

uint64_t BoundingSet() {
  uint64_t mask = 0;
  for (int c = 0; c <= LastCapability(); ++c) {
    if (::prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1) mask |= uint64_t{1} << c;
  }
  return mask;
}

}  // namespace pier::exec
