#include "lib/exec/seccomp.h"

#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "gtest/gtest.h"
#include "lib/common/testing.h"

namespace pier::exec {
namespace {

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST(SeccompTest, DenyListDependsOnCapabilities) {
  auto denied = SeccompDeniedSyscalls(0);
  for (const char* s : {"keyctl",          "add_key",     "request_key",
                        "kexec_load",      "init_module", "finit_module",
                        "delete_module",   "reboot",      "swapon",
                        "swapoff",         "acct",        "settimeofday",
                        "clock_settime",   "adjtimex",    "bpf",
                        "perf_event_open", "userfaultfd", "open_by_handle_at",
                        "mount",           "umount2",     "pivot_root",
                        "unshare",         "setns",       "quotactl",
                        "lookup_dcookie",  "vm86",        "name_to_handle_at"}) {
    EXPECT_TRUE(Contains(denied, s)) << s;
  }
  auto admin = SeccompDeniedSyscalls(uint64_t{1} << CAP_SYS_ADMIN);
  EXPECT_FALSE(Contains(admin, "mount"));
  EXPECT_TRUE(Contains(admin, "keyctl"));
}

// Loads the filter in a forked child and reports errno of a few calls.
TEST(SeccompTest, FilterAnswersEpermForDeniedCalls) {
  ASSERT_OK_AND_ASSIGN(std::vector<sock_filter> prog, CompileDefaultSeccompFilter(0));
  ASSERT_FALSE(prog.empty());
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    struct sock_fprog fprog = {static_cast<unsigned short>(prog.size()), prog.data()};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) ::_exit(10);
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0) ::_exit(11);
    errno = 0;
    if (::syscall(SYS_keyctl, 0, 0, 0, 0, 0) != -1 || errno != EPERM) ::_exit(12);
    if (::syscall(SYS_unshare, 0x40000000 /* CLONE_NEWNET */) != -1 || errno != EPERM) ::_exit(13);
    if (::personality(0x0040000 /* ADDR_NO_RANDOMIZE */) != -1 || errno != EPERM) ::_exit(14);
    if (::personality(0) == -1) ::_exit(15);  // PER_LINUX stays allowed
    if (::getpid() <= 0) ::_exit(16);         // and everything else
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace pier::exec
