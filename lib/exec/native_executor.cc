#include "lib/exec/native_executor.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <mutex>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lib/common/fs.h"
#include "lib/common/log.h"
#include "lib/common/status.h"
#include "lib/exec/capabilities.h"
#include "lib/exec/seccomp.h"

namespace pier::exec {

std::string ExitStatus::ToString() const {
  std::string s = signal != 0
                      ? absl::StrCat("killed by signal ", signal, " (", strsignal(signal), ")")
                      : absl::StrCat("exited with code ", code);
  if (oom_killed) absl::StrAppend(&s, ", OOM-killed");
  return s;
}

namespace {

// ---------------------------------------------------------------------------
// What the child does, prepared by the parent so that the child allocates
// nothing.

struct PreparedMount {
  std::string source;
  std::string target;  // rootfs_mounts: absolute host path; volumes: relative to the root
  std::string fstype;
  std::string data;
  unsigned long flags = 0;        // MS_RDONLY, MS_NOSUID, ... (not bind/rec/propagation)
  unsigned long propagation = 0;  // MS_PRIVATE | MS_REC, ...
  bool bind = false;
  bool recursive = false;
  bool file = false;  // the bind source is not a directory
};

struct DeviceNode {
  std::string name;
  mode_t mode;
  dev_t rdev;
};

struct Plan {
  // Descriptors (child ends).
  int sync_fd = -1;  // the child reads one byte: "go on"
  int err_fd = -1;   // the child writes a ChildError before failing
  int sock_fd = -1;  // the child sends the pty master here
  int stdio[3] = {-1, -1, -1};
  int devnull_fd = -1;

  // Namespaces joined by the child.
  int join_pidfd = -1;  // Exec: setns(pidfd, join_flags)
  int join_flags = 0;
  std::vector<std::pair<int, int>> join_fds;  // Start: (fd, CLONE_NEW*) given by path
  bool unshare_cgroup = false;
  bool loopback_up = false;  // a new network namespace: bring `lo` up in it
  // v1 cgroup `tasks` files: the child writes "0" to each (moves itself).
  std::vector<int> cgroup_tasks;

  std::vector<std::pair<int, struct rlimit>> rlimits;
  std::vector<std::string> rlimit_names;  // parallel to rlimits
  std::string oom_score_adj;              // empty: leave

  // File system (Start only).
  bool setup_rootfs = false;
  std::string rootfs;
  std::vector<PreparedMount> rootfs_mounts;
  std::vector<PreparedMount> volumes;
  bool sys_readonly = true;
  bool sys_cgroup2 = false;
  std::vector<DeviceNode> devices;
  std::vector<std::string> masked;
  std::vector<std::string> readonly;
  bool readonly_rootfs = false;
  std::string cwd_rel;  // created when missing
  std::string hostname;

  // The process.
  bool tty = false;
  struct winsize ws = {};
  bool console = false;  // bind the pty slave on /dev/console
  std::string arg0;
  std::vector<std::string> candidates;  // execve tries these in order
  std::vector<std::string> args_storage;
  std::vector<std::string> env_storage;
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::string cwd;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  uint64_t bounding = 0;
  uint64_t effective = 0;
  int last_cap = 40;
  bool no_new_privs = true;
  bool has_seccomp = false;
  std::vector<sock_filter> seccomp;
};

// What the child reports before failing (fits PIPE_BUF: one atomic write).
struct ChildError {
  int32_t err;
  char msg[500];
};

// A message built without allocation.
class Msg {
 public:
  Msg& operator<<(const char* s) {
    while (s != nullptr && *s != '\0' && len_ + 1 < sizeof(buf_)) buf_[len_++] = *s++;
    buf_[len_] = '\0';
    return *this;
  }
  Msg& operator<<(const std::string& s) { return *this << s.c_str(); }
  Msg& operator<<(long v) {
    char tmp[24];
    int n = 0;
    bool neg = v < 0;
    unsigned long u = neg ? 0UL - static_cast<unsigned long>(v) : static_cast<unsigned long>(v);
    do {
      tmp[n++] = static_cast<char>('0' + u % 10);
      u /= 10;
    } while (u != 0);
    if (neg) tmp[n++] = '-';
    char out[24];
    for (int i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return *this << static_cast<const char*>(out);
  }
  const char* c_str() const { return buf_; }
  size_t size() const { return len_; }

 private:
  char buf_[480] = {};
  size_t len_ = 0;
};

[[noreturn]] void ChildFail(const Plan& p, int err, const Msg& msg) {
  ChildError e;
  std::memset(&e, 0, sizeof(e));
  e.err = err;
  std::memcpy(e.msg, msg.c_str(), msg.size() + 1);
  ssize_t unused = ::write(p.err_fd, &e, sizeof(e));
  (void)unused;
  ::_exit(127);
}

[[noreturn]] void ChildFail(const Plan& p, int err, const char* what,
                            const char* object = nullptr) {
  Msg m;
  m << what;
  if (object != nullptr) m << " " << object;
  ChildFail(p, err, m);
}

// "/proc/self/fd/<fd>" in a caller-provided buffer.
struct FdPath {
  explicit FdPath(int fd) {
    Msg m;
    m << "/proc/self/fd/" << static_cast<long>(fd);
    std::memcpy(buf, m.c_str(), m.size() + 1);
  }
  char buf[40];
};

int OpenAt2(int dirfd, const char* path, uint64_t flags) {
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = flags;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int fd;
  do {
    fd = static_cast<int>(::syscall(SYS_openat2, dirfd, path, &how, sizeof(how)));
  } while (fd < 0 && errno == EAGAIN);
  return fd;
}

enum class Create { kNo, kDir, kFile };

// Opens `rel` (relative, no leading '/') inside the root `rootfd` as O_PATH,
// symlinks resolved as if `rootfd` were "/", creating missing components
// (directories, and the last one as `create` says). -1 with errno on failure.
int ResolveInRoot(int rootfd, const char* rel, Create create) {
  if (rel[0] == '\0') return ::fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
  int fd = OpenAt2(rootfd, rel, O_PATH | O_CLOEXEC);
  if (fd >= 0 || errno != ENOENT || create == Create::kNo) return fd;
  char path[PATH_MAX];
  size_t len = std::strlen(rel);
  if (len >= sizeof(path)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(path, rel, len + 1);
  int parent = ::fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
  size_t start = 0;
  while (start < len) {
    size_t end = start;
    while (end < len && path[end] != '/') ++end;
    if (end == start) {  // "//"
      ++start;
      continue;
    }
    const bool last = end == len;
    char saved = path[end];
    path[end] = '\0';
    int next = OpenAt2(rootfd, path, O_PATH | O_CLOEXEC);
    if (next < 0 && errno == ENOENT) {
      const char* name = path + start;
      if (last && create == Create::kFile) {
        int f = ::openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (f >= 0) ::close(f);
      } else {
        ::mkdirat(parent, name, 0755);
      }
      next = OpenAt2(rootfd, path, O_PATH | O_CLOEXEC);
    }
    int saved_errno = errno;
    ::close(parent);
    if (next < 0) {
      errno = saved_errno;
      return -1;
    }
    parent = next;
    path[end] = saved;
    start = end + 1;
  }
  return parent;
}

void DoMountAt(const Plan& p, const PreparedMount& m, const char* target) {
  if (m.bind) {
    unsigned long flags = MS_BIND | (m.recursive ? MS_REC : 0);
    if (::mount(m.source.c_str(), target, nullptr, flags, nullptr) < 0) {
      Msg msg;
      msg << "bind mount " << m.source << " on " << m.target;
      ChildFail(p, errno, msg);
    }
  } else {
    if (::mount(m.source.c_str(), target, m.fstype.c_str(), m.flags,
                m.data.empty() ? nullptr : m.data.c_str()) < 0) {
      Msg msg;
      msg << "mount " << m.fstype << " " << m.source << " on " << m.target;
      if (!m.data.empty()) msg << " (" << m.data << ")";
      ChildFail(p, errno, msg);
    }
  }
}

// Remount flags and propagation of a mount, on its now-mounted target.
void FinishMountAt(const Plan& p, const PreparedMount& m, const char* target) {
  if (m.bind && m.flags != 0) {
    if (::mount(nullptr, target, nullptr, MS_REMOUNT | MS_BIND | m.flags, nullptr) < 0) {
      ChildFail(p, errno, "remount read-only/flags", m.target.c_str());
    }
  }
  if (m.propagation != 0 && ::mount(nullptr, target, nullptr, m.propagation, nullptr) < 0) {
    ChildFail(p, errno, "set propagation of", m.target.c_str());
  }
}

void MountInRoot(const Plan& p, int rootfd, const PreparedMount& m) {
  int fd = ResolveInRoot(rootfd, m.target.c_str(), m.file ? Create::kFile : Create::kDir);
  if (fd < 0) ChildFail(p, errno, "create mount point", m.target.c_str());
  DoMountAt(p, m, FdPath(fd).buf);
  ::close(fd);
  fd = ResolveInRoot(rootfd, m.target.c_str(), Create::kNo);
  if (fd < 0) ChildFail(p, errno, "open mount point", m.target.c_str());
  FinishMountAt(p, m, FdPath(fd).buf);
  ::close(fd);
}

void SimpleMountInRoot(const Plan& p, int rootfd, const char* rel, const char* source,
                       const char* fstype, unsigned long flags, const char* data) {
  int fd = ResolveInRoot(rootfd, rel, Create::kDir);
  if (fd < 0) ChildFail(p, errno, "create mount point", rel);
  if (::mount(source, FdPath(fd).buf, fstype, flags, data) < 0) {
    Msg msg;
    msg << "mount " << fstype << " on /" << rel;
    ChildFail(p, errno, msg);
  }
  ::close(fd);
}

void SetupDev(const Plan& p, int rootfd) {
  SimpleMountInRoot(p, rootfd, "dev", "tmpfs", "tmpfs", MS_NOSUID | MS_STRICTATIME,
                    "mode=755,size=65536k");
  int dev = ResolveInRoot(rootfd, "dev", Create::kNo);
  if (dev < 0) ChildFail(p, errno, "open /dev");
  for (const DeviceNode& d : p.devices) {
    if (::mknodat(dev, d.name.c_str(), d.mode, d.rdev) < 0 && errno != EEXIST) {
      ChildFail(p, errno, "mknod /dev/", d.name.c_str());
    }
  }
  const char* links[][2] = {{"/proc/self/fd", "fd"},       {"/proc/self/fd/0", "stdin"},
                            {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
                            {"pts/ptmx", "ptmx"},          {"/proc/kcore", "core"}};
  for (auto& l : links) {
    if (::symlinkat(l[0], dev, l[1]) < 0 && errno != EEXIST)
      ChildFail(p, errno, "symlink /dev/", l[1]);
  }
  struct {
    const char* name;
    const char* fstype;
    unsigned long flags;
    const char* data;
  } mounts[] = {
      {"pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"},
      {"shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k"},
      {"mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr},
  };
  for (auto& m : mounts) {
    if (::mkdirat(dev, m.name, 0755) < 0 && errno != EEXIST)
      ChildFail(p, errno, "mkdir /dev/", m.name);
    int fd = ::openat(dev, m.name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) ChildFail(p, errno, "open /dev/", m.name);
    if (::mount(m.name, FdPath(fd).buf, m.fstype, m.flags, m.data) < 0) {
      ChildFail(p, errno, "mount /dev/", m.name);
    }
    ::close(fd);
  }
  if (p.console) {
    int fd = ::openat(dev, "console", O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) ChildFail(p, errno, "create /dev/console");
    ::close(fd);
  }
  ::close(dev);
}

void SetupRootfs(const Plan& p) {
  // Nothing mounted from here on may propagate back to the host.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) < 0) {
    ChildFail(p, errno, "make / a recursive slave mount");
  }
  for (const PreparedMount& m : p.rootfs_mounts) {
    DoMountAt(p, m, m.target.c_str());
    FinishMountAt(p, m, m.target.c_str());
  }
  // pivot_root needs the new root to be a mount point.
  if (::mount(p.rootfs.c_str(), p.rootfs.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0) {
    ChildFail(p, errno, "bind mount rootfs", p.rootfs.c_str());
  }
  int rootfd = ::open(p.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) ChildFail(p, errno, "open rootfs", p.rootfs.c_str());

  if (!p.cwd_rel.empty()) {
    int fd = ResolveInRoot(rootfd, p.cwd_rel.c_str(), Create::kDir);
    if (fd < 0) ChildFail(p, errno, "create working directory", p.cwd.c_str());
    ::close(fd);
  }
  SimpleMountInRoot(p, rootfd, "proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  {
    unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | (p.sys_readonly ? MS_RDONLY : 0);
    int fd = ResolveInRoot(rootfd, "sys", Create::kDir);
    if (fd < 0) ChildFail(p, errno, "create mount point /sys");
    if (::mount("sysfs", FdPath(fd).buf, "sysfs", flags, nullptr) < 0) {
      // Not allowed for this network namespace: the host's, bound read-only.
      if (errno != EPERM ||
          ::mount("/sys", FdPath(fd).buf, nullptr, MS_BIND | MS_REC, nullptr) < 0) {
        ChildFail(p, errno, "mount sysfs on /sys");
      }
      ::close(fd);
      fd = ResolveInRoot(rootfd, "sys", Create::kNo);
      if (fd < 0 ||
          ::mount(nullptr, FdPath(fd).buf, nullptr, MS_REMOUNT | MS_BIND | flags, nullptr) < 0) {
        ChildFail(p, errno, "remount /sys read-only");
      }
    }
    ::close(fd);
    if (p.sys_cgroup2) {
      SimpleMountInRoot(p, rootfd, "sys/fs/cgroup", "cgroup2", "cgroup2",
                        MS_NOSUID | MS_NODEV | MS_NOEXEC | (p.sys_readonly ? MS_RDONLY : 0),
                        nullptr);
    }
  }
  SetupDev(p, rootfd);
  for (const PreparedMount& m : p.volumes) MountInRoot(p, rootfd, m);

  // pivot_root(".", ".") stacks the old root on top of the new one; detach it.
  if (::fchdir(rootfd) < 0) ChildFail(p, errno, "chdir to rootfs", p.rootfs.c_str());
  ::close(rootfd);
  if (::syscall(SYS_pivot_root, ".", ".") < 0)
    ChildFail(p, errno, "pivot_root to", p.rootfs.c_str());
  if (::mount(nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr) < 0) {
    ChildFail(p, errno, "make the old root a slave mount");
  }
  if (::umount2(".", MNT_DETACH) < 0) ChildFail(p, errno, "unmount the old root");
  if (::chdir("/") < 0) ChildFail(p, errno, "chdir /");

  for (const std::string& path : p.masked) {
    struct stat st;
    if (::stat(path.c_str(), &st) < 0) continue;
    int rc = S_ISDIR(st.st_mode) ? ::mount("tmpfs", path.c_str(), "tmpfs", MS_RDONLY, "size=0")
                                 : ::mount("/dev/null", path.c_str(), nullptr, MS_BIND, nullptr);
    if (rc < 0) ChildFail(p, errno, "mask", path.c_str());
  }
  for (const std::string& path : p.readonly) {
    struct stat st;
    if (::stat(path.c_str(), &st) < 0) continue;
    if (::mount(path.c_str(), path.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0 ||
        ::mount(nullptr, path.c_str(), nullptr,
                MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0) {
      ChildFail(p, errno, "make read-only", path.c_str());
    }
  }
}

// A new network namespace has only `lo`, down; containers (network none)
// and build steps expect it up, as the namespace CNI prepares has it.
void BringUpLoopback(const Plan& p) {
  int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) ChildFail(p, errno, "socket for the loopback interface");
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof(ifr));
  std::memcpy(ifr.ifr_name, "lo", 3);
  if (::ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) ChildFail(p, errno, "read the flags of lo");
  ifr.ifr_flags |= IFF_UP;
  if (::ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) ChildFail(p, errno, "bring lo up");
  ::close(sock);
}

void SetupTty(const Plan& p) {
  int master = ::open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) ChildFail(p, errno, "open /dev/pts/ptmx");
  int unlock = 0;
  if (::ioctl(master, TIOCSPTLCK, &unlock) < 0) ChildFail(p, errno, "unlock pty");
  int slave = ::ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) ChildFail(p, errno, "open pty slave");
  if (p.ws.ws_row != 0 && ::ioctl(slave, TIOCSWINSZ, &p.ws) < 0) {
    ChildFail(p, errno, "set pty window size");
  }
  if (p.console) {
    int n = 0;
    if (::ioctl(master, TIOCGPTN, &n) < 0) ChildFail(p, errno, "get pty number");
    Msg path;
    path << "/dev/pts/" << static_cast<long>(n);
    if (::mount(path.c_str(), "/dev/console", nullptr, MS_BIND, nullptr) < 0) {
      ChildFail(p, errno, "bind the pty on /dev/console");
    }
  }
  // Hand the master to the parent.
  char dummy = 'p';
  struct iovec iov = {&dummy, 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  std::memset(&control, 0, sizeof(control));
  struct msghdr msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof(control.buf);
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &master, sizeof(int));
  if (::sendmsg(p.sock_fd, &msg, MSG_NOSIGNAL) < 0) ChildFail(p, errno, "send the pty master");
  ::close(master);
  if (::ioctl(slave, TIOCSCTTY, 0) < 0)
    ChildFail(p, errno, "make the pty the controlling terminal");
  for (int i = 0; i < 3; ++i) {
    if (::dup2(slave, i) < 0) ChildFail(p, errno, "dup the pty onto stdio");
  }
  ::close(slave);
}

void SetCapabilities(const Plan& p) {
  // The bounding set first: dropping needs CAP_SETPCAP, which setuid may take.
  for (int c = 0; c <= p.last_cap; ++c) {
    if ((p.bounding >> c) & 1) continue;
    if (::prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) {
      ChildFail(p, errno, "drop capability from the bounding set");
    }
  }
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) ChildFail(p, errno, "PR_SET_KEEPCAPS");
  // Raw system calls: glibc's wrappers broadcast to every thread it knows
  // of, and after clone3 it still believes in the parent's threads.
  if (::syscall(SYS_setgroups, p.groups.size(), p.groups.data()) < 0) {
    ChildFail(p, errno, "setgroups");
  }
  if (::syscall(SYS_setresgid, p.gid, p.gid, p.gid) < 0) ChildFail(p, errno, "setresgid");
  if (::syscall(SYS_setresuid, p.uid, p.uid, p.uid) < 0) ChildFail(p, errno, "setresuid");
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  std::memset(data, 0, sizeof(data));
  data[0].effective = data[0].permitted = static_cast<uint32_t>(p.effective);
  data[1].effective = data[1].permitted = static_cast<uint32_t>(p.effective >> 32);
  if (::syscall(SYS_capset, &header, data) < 0) ChildFail(p, errno, "capset");
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
    ChildFail(p, errno, "clear ambient capabilities");
  }
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) ChildFail(p, errno, "PR_SET_KEEPCAPS");
}

void LoadSeccomp(const Plan& p) {
  struct sock_fprog prog;
  prog.len = static_cast<unsigned short>(p.seccomp.size());
  prog.filter = const_cast<sock_filter*>(p.seccomp.data());
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
    ChildFail(p, errno, "load the seccomp filter");
  }
}

[[noreturn]] void RunChild(const Plan& p) {
  char go = 0;
  ssize_t n;
  do {
    n = ::read(p.sync_fd, &go, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) ::_exit(127);  // the parent gave up
  ::close(p.sync_fd);
  // Into the v1 cgroups first, before anything that is accounted or
  // limited; the v2 one was entered at clone time.
  for (int fd : p.cgroup_tasks) {
    if (::write(fd, "0", 1) != 1) ChildFail(p, errno, "join its cgroup");
    ::close(fd);
  }

  // A clean signal state: nothing blocked, default dispositions.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    ::sigaction(sig, &sa, nullptr);
  }
  ::umask(0);
  if (::setsid() < 0) ChildFail(p, errno, "setsid");

  if (!p.tty) {
    // Move the caller's descriptors out of the way before placing them.
    int tmp[3];
    for (int i = 0; i < 3; ++i) {
      int src = p.stdio[i] >= 0 ? p.stdio[i] : p.devnull_fd;
      tmp[i] = ::fcntl(src, F_DUPFD_CLOEXEC, 3);
      if (tmp[i] < 0) ChildFail(p, errno, "dup stdio");
    }
    for (int i = 0; i < 3; ++i) {
      if (::dup2(tmp[i], i) < 0) ChildFail(p, errno, "dup stdio");
    }
  }
  // Every other descriptor closes at execve.
  if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    ChildFail(p, errno, "close_range");
  }

  if (p.join_pidfd >= 0 && p.join_flags != 0 && ::setns(p.join_pidfd, p.join_flags) < 0) {
    ChildFail(p, errno, "join the container's namespaces");
  }
  for (const auto& [fd, type] : p.join_fds) {
    if (::setns(fd, type) < 0) ChildFail(p, errno, "join namespace");
  }
  if (p.unshare_cgroup && ::unshare(CLONE_NEWCGROUP) < 0) {
    ChildFail(p, errno, "create the cgroup namespace");
  }
  if (p.loopback_up) BringUpLoopback(p);
  for (size_t i = 0; i < p.rlimits.size(); ++i) {
    const auto& [resource, limit] = p.rlimits[i];
    if (::setrlimit(static_cast<__rlimit_resource>(resource), &limit) < 0) {
      Msg m;
      m << "setrlimit " << p.rlimit_names[i] << " soft " << static_cast<long>(limit.rlim_cur)
        << " hard " << static_cast<long>(limit.rlim_max);
      ChildFail(p, errno, m);
    }
  }
  if (!p.oom_score_adj.empty()) {
    int fd = ::open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, p.oom_score_adj.data(), p.oom_score_adj.size()) < 0) {
      ChildFail(p, errno, "write oom_score_adj", p.oom_score_adj.c_str());
    }
    ::close(fd);
  }
  if (p.setup_rootfs) SetupRootfs(p);
  if (p.tty) SetupTty(p);
  if (!p.hostname.empty() && ::sethostname(p.hostname.data(), p.hostname.size()) < 0) {
    ChildFail(p, errno, "sethostname", p.hostname.c_str());
  }
  if (p.setup_rootfs && p.readonly_rootfs &&
      ::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) < 0) {
    ChildFail(p, errno, "remount / read-only");
  }
  ::umask(022);

  // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while
  // still root (the default profile allows the credential calls below).
  if (p.has_seccomp && !p.no_new_privs) LoadSeccomp(p);
  SetCapabilities(p);
  if (::chdir(p.cwd.c_str()) < 0) ChildFail(p, errno, "chdir to", p.cwd.c_str());
  if (p.no_new_privs && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
    ChildFail(p, errno, "PR_SET_NO_NEW_PRIVS");
  }
  if (p.has_seccomp && p.no_new_privs) LoadSeccomp(p);

  int err = ENOENT;
  bool denied = false;
  for (const std::string& path : p.candidates) {
    ::execve(path.c_str(), p.argv.data(), p.envp.data());
    err = errno;
    if (err == EACCES) {
      denied = true;
    } else if (err != ENOENT && err != ENOTDIR) {
      ChildFail(p, err, "exec", path.c_str());
    }
  }
  if (denied) err = EACCES;
  Msg m;
  if (p.arg0.find('/') != std::string::npos) {
    m << "exec " << p.arg0;
  } else {
    m << "exec: \"" << p.arg0 << "\": executable file not found in $PATH";
  }
  ChildFail(p, err, m);
}

// ---------------------------------------------------------------------------
// Parent side.

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL  // <linux/sched.h>, Linux >= 5.7
#endif

struct CloneArgs {  // struct clone_args of <linux/sched.h>, version 2
  uint64_t flags;
  uint64_t pidfd;
  uint64_t child_tid;
  uint64_t parent_tid;
  uint64_t exit_signal;
  uint64_t stack;
  uint64_t stack_size;
  uint64_t tls;
  uint64_t set_tid;
  uint64_t set_tid_size;
  uint64_t cgroup;
};

absl::Status ParseMountOptions(const Mount& mount, PreparedMount* out) {
  struct Flag {
    const char* name;
    bool clear;
    unsigned long flag;
  };
  static constexpr Flag kFlags[] = {
      {"ro", false, MS_RDONLY},          {"rw", true, MS_RDONLY},
      {"nosuid", false, MS_NOSUID},      {"suid", true, MS_NOSUID},
      {"nodev", false, MS_NODEV},        {"dev", true, MS_NODEV},
      {"noexec", false, MS_NOEXEC},      {"exec", true, MS_NOEXEC},
      {"sync", false, MS_SYNCHRONOUS},   {"async", true, MS_SYNCHRONOUS},
      {"dirsync", false, MS_DIRSYNC},    {"noatime", false, MS_NOATIME},
      {"atime", true, MS_NOATIME},       {"nodiratime", false, MS_NODIRATIME},
      {"diratime", true, MS_NODIRATIME}, {"relatime", false, MS_RELATIME},
      {"norelatime", true, MS_RELATIME}, {"strictatime", false, MS_STRICTATIME},
  };
  static constexpr std::pair<const char*, unsigned long> kPropagation[] = {
      {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
      {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
      {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
      {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
  };
  out->source = mount.source;
  out->fstype = mount.type;
  out->bind = mount.type == "bind";
  out->recursive = false;
  std::vector<std::string> data;
  for (const std::string& opt : mount.options) {
    if (opt == "bind") {
      out->bind = true;
      continue;
    }
    if (opt == "rbind") {
      out->bind = out->recursive = true;
      continue;
    }
    bool known = false;
    for (const Flag& f : kFlags) {
      if (opt == f.name) {
        if (f.clear) {
          out->flags &= ~f.flag;
        } else {
          out->flags |= f.flag;
        }
        known = true;
      }
    }
    for (const auto& [name, flag] : kPropagation) {
      if (opt == name) {
        out->propagation = flag;
        known = true;
      }
    }
    if (!known) data.push_back(opt);
  }
  out->data = absl::StrJoin(data, ",");
  if (out->bind) {
    if (!out->data.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bind mount on ", mount.target, ": unknown options \"", out->data, "\""));
    }
    if (mount.source.empty() || mount.source[0] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("bind mount on ", mount.target, ": source must be an absolute path"));
    }
    struct stat st;
    if (::stat(mount.source.c_str(), &st) < 0) {
      return ErrnoStatus(errno, absl::StrCat("bind mount source ", mount.source));
    }
    out->file = !S_ISDIR(st.st_mode);
  } else if (mount.type.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("mount on ", mount.target, ": no type"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> RlimitFromName(absl::string_view name) {
  static constexpr std::pair<const char*, int> kNames[] = {
      {"RLIMIT_CPU", RLIMIT_CPU},           {"RLIMIT_FSIZE", RLIMIT_FSIZE},
      {"RLIMIT_DATA", RLIMIT_DATA},         {"RLIMIT_STACK", RLIMIT_STACK},
      {"RLIMIT_CORE", RLIMIT_CORE},         {"RLIMIT_RSS", RLIMIT_RSS},
      {"RLIMIT_NPROC", RLIMIT_NPROC},       {"RLIMIT_NOFILE", RLIMIT_NOFILE},
      {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},   {"RLIMIT_AS", RLIMIT_AS},
      {"RLIMIT_LOCKS", RLIMIT_LOCKS},       {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
      {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
      {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},     {"RLIMIT_RTTIME", RLIMIT_RTTIME},
  };
  for (const auto& [n, v] : kNames) {
    if (name == n) return v;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown rlimit \"", name, "\""));
}

// The executor's permitted capabilities.
uint64_t PermittedCapabilities() {
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  std::memset(data, 0, sizeof(data));
  if (::syscall(SYS_capget, &header, data) < 0) return 0;
  return uint64_t{data[0].permitted} | (uint64_t{data[1].permitted} << 32);
}

// Fills the process part of `plan`.
absl::Status PrepareProcess(const ProcessSpec& spec, bool privileged, SeccompMode seccomp,
                            Plan* plan) {
  if (spec.args.empty()) return absl::InvalidArgumentError("process has no args");
  if (spec.cwd.empty() || spec.cwd[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat("cwd \"", spec.cwd, "\" is not absolute"));
  }
  plan->args_storage = spec.args;
  plan->env_storage = spec.env;
  std::string path_env = kDefaultPath;
  bool has_path = false, has_term = false;
  for (const std::string& e : spec.env) {
    if (absl::StartsWith(e, "PATH=")) {
      has_path = true;
      path_env = e.substr(5);
    }
    has_term |= absl::StartsWith(e, "TERM=");
  }
  if (!has_path) plan->env_storage.push_back(absl::StrCat("PATH=", kDefaultPath));
  if (spec.tty && !has_term) plan->env_storage.push_back("TERM=xterm");
  for (std::string& a : plan->args_storage) plan->argv.push_back(a.data());
  plan->argv.push_back(nullptr);
  for (std::string& e : plan->env_storage) plan->envp.push_back(e.data());
  plan->envp.push_back(nullptr);
  plan->arg0 = spec.args[0];
  if (plan->arg0.empty()) return absl::InvalidArgumentError("process args[0] is empty");
  if (absl::StrContains(plan->arg0, "/")) {
    plan->candidates.push_back(plan->arg0);
  } else {
    for (absl::string_view dir : absl::StrSplit(path_env, ':')) {
      plan->candidates.push_back(JoinPath(dir.empty() ? "." : dir, plan->arg0));
    }
  }
  plan->cwd = spec.cwd;
  plan->uid = spec.uid;
  plan->gid = spec.gid;
  plan->groups = spec.additional_gids;
  plan->tty = spec.tty;
  plan->ws.ws_row = spec.tty_rows;
  plan->ws.ws_col = spec.tty_cols;
  plan->no_new_privs = spec.no_new_privileges;
  for (const Rlimit& r : spec.rlimits) {
    ASSIGN_OR_RETURN(int resource, RlimitFromName(r.type));
    if (r.soft > r.hard) {
      return absl::InvalidArgumentError(absl::StrCat(r.type, ": soft limit above hard limit"));
    }
    plan->rlimits.emplace_back(resource, rlimit{r.soft, r.hard});
    plan->rlimit_names.push_back(r.type);
  }
  if (spec.oom_score_adj) plan->oom_score_adj = absl::StrCat(*spec.oom_score_adj);

  const uint64_t permitted = PermittedCapabilities();
  uint64_t caps = permitted;
  if (!privileged) {
    ASSIGN_OR_RETURN(uint64_t wanted, CapabilityMask(spec.capabilities));
    caps = wanted & permitted;  // what the executor lacks cannot be given
  }
  plan->last_cap = LastCapability();
  plan->bounding = caps;
  plan->effective = spec.uid == 0 ? caps : 0;
  if (!privileged && seccomp == SeccompMode::kDefault) {
    ASSIGN_OR_RETURN(plan->seccomp, CompileDefaultSeccompFilter(caps));
    plan->has_seccomp = true;
  }
  return absl::OkStatus();
}

// Relative form of an absolute container path ("/a/b" -> "a/b").
std::string Relative(absl::string_view path) {
  while (absl::ConsumePrefix(&path, "/")) {
  }
  return std::string(path);
}

absl::StatusOr<std::vector<DeviceNode>> HostDevices() {
  std::vector<DeviceNode> out;
  DIR* dir = ::opendir("/dev");
  if (dir == nullptr) return ErrnoStatus(errno, "open /dev");
  while (struct dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    struct stat st;
    if (::fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
    if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) continue;
    if (name == "console" || name == "ptmx" || name == "tty") continue;
    out.push_back({name, st.st_mode, st.st_rdev});
  }
  ::closedir(dir);
  return out;
}

// The cgroup directories of `pid`, from /proc/<pid>/cgroup.
absl::StatusOr<std::vector<std::string>> CgroupDirsOf(const CgroupLayout& layout, pid_t pid) {
  ASSIGN_OR_RETURN(std::string content, ReadFile(absl::StrCat("/proc/", pid, "/cgroup")));
  std::vector<std::string> dirs;
  for (absl::string_view line : absl::StrSplit(content, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (f.size() != 3) continue;
    if (f[0] == "0" && f[1].empty()) {
      if (!layout.unified.empty()) dirs.push_back(JoinPath(layout.unified, f[2]));
      continue;
    }
    for (absl::string_view c : absl::StrSplit(f[1], ',')) {
      auto it = layout.v1.find(std::string(c));
      if (it == layout.v1.end()) continue;
      std::string dir = JoinPath(it->second, f[2]);
      if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(dir);
      break;
    }
  }
  return dirs;
}

absl::StatusOr<UniqueFd> OpenNamespace(const NamespaceSpec& ns, absl::string_view what) {
  UniqueFd fd(::open(ns.path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", what, " namespace ", ns.path));
  return fd;
}

// Whether `pid` shares the executor's namespace of kind `ns` ("mnt", ...).
// FailedPrecondition when the process has exited (its namespaces are gone).
absl::StatusOr<bool> SameNamespace(pid_t pid, const char* ns) {
  struct stat theirs, ours;
  std::string path = absl::StrCat("/proc/", pid, "/ns/", ns);
  if (::stat(path.c_str(), &theirs) < 0) {
    if (errno == ENOENT || errno == ESRCH) {
      return absl::FailedPreconditionError(absl::StrCat("process ", pid, " has exited"));
    }
    return ErrnoStatus(errno, absl::StrCat("stat ", path));
  }
  std::string own = absl::StrCat("/proc/self/ns/", ns);
  if (::stat(own.c_str(), &ours) < 0) return ErrnoStatus(errno, absl::StrCat("stat ", own));
  return theirs.st_ino == ours.st_ino && theirs.st_dev == ours.st_dev;
}

// Sets this thread's pid namespace for children to `target` (an nsfs fd or
// a pidfd) and restores it on destruction.
class ScopedPidNsForChildren {
 public:
  absl::Status Enter(int target) {
    own_.Reset(::open("/proc/thread-self/ns/pid", O_RDONLY | O_CLOEXEC));
    if (!own_.valid()) return ErrnoStatus(errno, "open /proc/thread-self/ns/pid");
    if (::setns(target, CLONE_NEWPID) < 0) {
      own_.Reset();
      return ErrnoStatus(errno, "join the container's pid namespace");
    }
    return absl::OkStatus();
  }
  ~ScopedPidNsForChildren() {
    if (own_.valid() && ::setns(own_.get(), CLONE_NEWPID) < 0) {
      PIER_LOG(ERROR) << "restoring the pid namespace for children: " << std::strerror(errno);
    }
  }

 private:
  UniqueFd own_;
};

class NativeProcess : public Process {
 public:
  NativeProcess(pid_t pid, UniqueFd pidfd, UniqueFd ptm, std::unique_ptr<Cgroup> cgroup,
                bool kill_cgroup_on_exit, ExecOptions options)
      : pid_(pid),
        pidfd_(std::move(pidfd)),
        ptm_(std::move(ptm)),
        cgroup_(std::move(cgroup)),
        kill_cgroup_on_exit_(kill_cgroup_on_exit),
        options_(options) {}

  pid_t pid() const override { return pid_; }
  int pidfd() const override { return pidfd_.get(); }
  int ptm() const override { return ptm_.get(); }
  std::optional<ExitStatus> exit_status() const override { return status_; }
  ExecOptions exec_options() const override { return options_; }

  absl::StatusOr<ExitStatus> Wait() override { return WaitFor(absl::InfiniteDuration()); }

  absl::StatusOr<ExitStatus> WaitFor(absl::Duration timeout) override {
    if (status_) return *status_;
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      int ms = -1;
      if (timeout != absl::InfiniteDuration()) {
        ms = static_cast<int>(std::max<int64_t>(
            0, absl::ToInt64Milliseconds(deadline - absl::Now() + absl::Milliseconds(1))));
      }
      struct pollfd pfd = {pidfd_.get(), POLLIN, 0};
      int rc = ::poll(&pfd, 1, ms);
      if (rc < 0 && errno == EINTR) continue;
      if (rc < 0) return ErrnoStatus(errno, absl::StrCat("poll pidfd of ", pid_));
      if (rc == 0) {
        return absl::DeadlineExceededError(
            absl::StrCat("process ", pid_, " still running after ", absl::FormatDuration(timeout)));
      }
      break;
    }
    siginfo_t info;
    std::memset(&info, 0, sizeof(info));
    int rc;
    do {
      rc = ::waitid(static_cast<idtype_t>(3 /* P_PIDFD */), static_cast<id_t>(pidfd_.get()), &info,
                    WEXITED);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
      if (errno == ECHILD) {
        return absl::FailedPreconditionError(
            absl::StrCat("process ", pid_, " is not a child of this executor"));
      }
      return ErrnoStatus(errno, absl::StrCat("wait for process ", pid_));
    }
    ExitStatus st;
    if (info.si_code == CLD_EXITED) {
      st.code = info.si_status;
    } else {
      st.signal = info.si_status;
    }
    if (cgroup_) {
      st.oom_killed = cgroup_->OomKilled();
      if (kill_cgroup_on_exit_) {
        absl::Status s = cgroup_->KillAll();
        if (!s.ok()) {
          PIER_LOG(WARNING) << "killing the rest of container " << pid_ << ": " << s;
        }
      }
    }
    status_ = st;
    return st;
  }

  absl::Status Signal(int sig) override {
    if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) < 0) {
      if (errno == ESRCH) return absl::NotFoundError(absl::StrCat("process ", pid_, " has exited"));
      return ErrnoStatus(errno, absl::StrCat("signal ", sig, " to process ", pid_));
    }
    return absl::OkStatus();
  }

  absl::Status Resize(uint16_t rows, uint16_t cols) override {
    if (!ptm_.valid()) {
      return absl::FailedPreconditionError(absl::StrCat("process ", pid_, " has no tty"));
    }
    struct winsize ws = {};
    ws.ws_row = rows;
    ws.ws_col = cols;
    if (::ioctl(ptm_.get(), TIOCSWINSZ, &ws) < 0) return ErrnoStatus(errno, "resize the pty");
    return absl::OkStatus();
  }

  absl::Status Cleanup() override {
    if (!status_) {
      return absl::FailedPreconditionError(
          absl::StrCat("process ", pid_, " is still running; wait for it first"));
    }
    ptm_.Reset();
    if (cgroup_) RETURN_IF_ERROR(cgroup_->Destroy());
    return absl::OkStatus();
  }

 private:
  pid_t pid_;
  UniqueFd pidfd_;
  UniqueFd ptm_;
  std::unique_ptr<Cgroup> cgroup_;  // only a container's init owns one
  bool kill_cgroup_on_exit_;
  ExecOptions options_;
  std::optional<ExitStatus> status_;
};

struct Launched {
  pid_t pid = -1;
  UniqueFd pidfd;
  UniqueFd ptm;
};

absl::StatusOr<UniqueFd> ReceiveFd(int sock) {
  char dummy;
  struct iovec iov = {&dummy, 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  struct msghdr msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof(control.buf);
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoStatus(errno, "receive the pty master");
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (n == 0 || cmsg == nullptr || cmsg->cmsg_type != SCM_RIGHTS) {
    return absl::UnavailableError("the container did not send its pty");
  }
  int fd;
  std::memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
  return UniqueFd(fd);
}

// Clones the child that runs `plan`, places it with `place`, lets it go and
// waits until it has exec'd (or reports why not).
absl::StatusOr<Launched> Launch(Plan& plan, uint64_t clone_flags, int pid_ns_fd,
                                const CgroupEntry& cgroup) {
  int sync[2], err[2], sock[2] = {-1, -1};
  if (::pipe2(sync, O_CLOEXEC) < 0) return ErrnoStatus(errno, "pipe");
  UniqueFd sync_r(sync[0]), sync_w(sync[1]);
  if (::pipe2(err, O_CLOEXEC) < 0) return ErrnoStatus(errno, "pipe");
  UniqueFd err_r(err[0]), err_w(err[1]);
  if (plan.tty && ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sock) < 0) {
    return ErrnoStatus(errno, "socketpair");
  }
  UniqueFd sock_parent(sock[0]), sock_child(sock[1]);
  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull.valid()) return ErrnoStatus(errno, "open /dev/null");
  plan.sync_fd = sync_r.get();
  plan.err_fd = err_w.get();
  plan.sock_fd = sock_child.get();
  plan.devnull_fd = devnull.get();
  plan.cgroup_tasks.clear();
  for (const UniqueFd& fd : cgroup.v1_tasks) plan.cgroup_tasks.push_back(fd.get());

  int pidfd = -1;
  CloneArgs args;
  std::memset(&args, 0, sizeof(args));
  args.flags = clone_flags | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  if (cgroup.v2_dir.valid()) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<uint64_t>(cgroup.v2_dir.get());
  }
  args.exit_signal = SIGCHLD;
  long pid;
  {
    ScopedPidNsForChildren pidns;
    if (pid_ns_fd >= 0) RETURN_IF_ERROR(pidns.Enter(pid_ns_fd));
    pid = ::syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0) RunChild(plan);
  }
  if (pid < 0) return ErrnoStatus(errno, "clone3");
  Launched out;
  out.pid = static_cast<pid_t>(pid);
  out.pidfd.Reset(pidfd);
  sync_r.Reset();
  err_w.Reset();
  sock_child.Reset();

  auto abort_child = [&](absl::Status s) -> absl::Status {
    ::syscall(SYS_pidfd_send_signal, out.pidfd.get(), SIGKILL, nullptr, 0);
    siginfo_t info;
    while (::waitid(static_cast<idtype_t>(3), static_cast<id_t>(out.pidfd.get()), &info, WEXITED) <
               0 &&
           errno == EINTR) {
    }
    return s;
  };
  if (::write(sync_w.get(), "g", 1) != 1) return abort_child(ErrnoStatus(errno, "start the child"));
  sync_w.Reset();

  absl::Status pty_status;
  if (plan.tty) {
    auto ptm = ReceiveFd(sock_parent.get());
    if (ptm.ok()) {
      out.ptm = std::move(*ptm);
    } else {
      pty_status = ptm.status();
    }
  }
  ChildError e;
  std::memset(&e, 0, sizeof(e));
  auto got =
      ReadFull(err_r.get(), reinterpret_cast<char*>(&e), sizeof(e), "the child's error pipe");
  if (!got.ok()) return abort_child(got.status());
  if (*got > 0) {
    e.msg[sizeof(e.msg) - 1] = '\0';
    return abort_child(ErrnoStatus(e.err, e.msg));
  }
  if (!pty_status.ok()) return abort_child(pty_status);
  return out;
}

bool ValidId(absl::string_view id) {
  if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '-' && c != '.') return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<CgroupLayout> NativeExecutor::Layout() {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (!layout_) {
    ASSIGN_OR_RETURN(CgroupLayout layout, DetectCgroupLayout());
    layout_ = std::move(layout);
  }
  return *layout_;
}

absl::StatusOr<std::unique_ptr<Process>> NativeExecutor::Start(const ContainerSpec& spec) {
  if (!ValidId(spec.id)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid container id \"", spec.id, "\""));
  }
  if (spec.rootfs.empty() || spec.rootfs[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat("container ", spec.id, ": rootfs \"",
                                                   spec.rootfs, "\" is not an absolute path"));
  }
  struct stat st;
  if (::stat(spec.rootfs.c_str(), &st) < 0) {
    return ErrnoStatus(errno, absl::StrCat("container ", spec.id, ": rootfs ", spec.rootfs));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("container ", spec.id, ": rootfs ", spec.rootfs, " is not a directory"));
  }
  const Namespaces& ns = spec.namespaces;
  if (ns.mount.mode != NamespaceMode::kNew) {
    return absl::InvalidArgumentError("the executor always creates a mount namespace");
  }

  Plan plan;
  RETURN_IF_ERROR(PrepareProcess(spec.process, spec.privileged, spec.seccomp, &plan));
  plan.stdio[0] = spec.stdio.in;
  plan.stdio[1] = spec.stdio.out;
  plan.stdio[2] = spec.stdio.err;
  plan.setup_rootfs = true;
  plan.rootfs = spec.rootfs;
  plan.console = spec.process.tty;
  for (const Mount& m : spec.rootfs_mounts) {
    PreparedMount pm;
    RETURN_IF_ERROR(Annotate(ParseMountOptions(m, &pm), absl::StrCat("container ", spec.id)));
    pm.target = m.target.empty() || m.target == "/" ? spec.rootfs : JoinPath(spec.rootfs, m.target);
    plan.rootfs_mounts.push_back(std::move(pm));
  }
  for (const Mount& m : spec.mounts) {
    if (m.target.empty() || m.target[0] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("container ", spec.id, ": mount target \"", m.target, "\" is not absolute"));
    }
    PreparedMount pm;
    RETURN_IF_ERROR(Annotate(ParseMountOptions(m, &pm), absl::StrCat("container ", spec.id)));
    pm.target = Relative(m.target);
    plan.volumes.push_back(std::move(pm));
  }
  plan.cwd_rel = Relative(spec.process.cwd);
  plan.readonly_rootfs = spec.readonly_rootfs;
  plan.sys_readonly = !spec.privileged;
  if (!spec.privileged) {
    plan.masked = spec.masked_paths;
    plan.readonly = spec.readonly_paths;
  }
  const mode_t kChr = S_IFCHR | 0666;
  plan.devices = {{"null", kChr, makedev(1, 3)},    {"zero", kChr, makedev(1, 5)},
                  {"full", kChr, makedev(1, 7)},    {"random", kChr, makedev(1, 8)},
                  {"urandom", kChr, makedev(1, 9)}, {"tty", kChr, makedev(5, 0)}};
  if (spec.privileged) {
    ASSIGN_OR_RETURN(std::vector<DeviceNode> host, HostDevices());
    for (DeviceNode& d : host) {
      bool dup = false;
      for (const DeviceNode& have : plan.devices) dup |= have.name == d.name;
      if (!dup) plan.devices.push_back(std::move(d));
    }
  }

  uint64_t clone_flags = CLONE_NEWNS;
  std::vector<UniqueFd> ns_fds;
  UniqueFd pid_ns;
  auto add_ns = [&](const NamespaceSpec& n, uint64_t flag, const char* what) -> absl::Status {
    switch (n.mode) {
      case NamespaceMode::kNew:
        clone_flags |= flag;
        break;
      case NamespaceMode::kHost:
        break;
      case NamespaceMode::kPath: {
        ASSIGN_OR_RETURN(UniqueFd fd, OpenNamespace(n, what));
        plan.join_fds.emplace_back(fd.get(), static_cast<int>(flag));
        ns_fds.push_back(std::move(fd));
        break;
      }
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(add_ns(ns.net, CLONE_NEWNET, "net"));
  plan.loopback_up = ns.net.mode == NamespaceMode::kNew;
  RETURN_IF_ERROR(add_ns(ns.ipc, CLONE_NEWIPC, "ipc"));
  RETURN_IF_ERROR(add_ns(ns.uts, CLONE_NEWUTS, "uts"));
  RETURN_IF_ERROR(add_ns(ns.cgroup, CLONE_NEWCGROUP, "cgroup"));
  // The cgroup namespace is created by the child once it is in its cgroup,
  // so that the container sees its own cgroup as the root.
  if (clone_flags & CLONE_NEWCGROUP) {
    clone_flags &= ~static_cast<uint64_t>(CLONE_NEWCGROUP);
    plan.unshare_cgroup = true;
  }
  switch (ns.pid.mode) {
    case NamespaceMode::kNew:
      clone_flags |= CLONE_NEWPID;
      break;
    case NamespaceMode::kHost:
      break;
    case NamespaceMode::kPath: {
      ASSIGN_OR_RETURN(pid_ns, OpenNamespace(ns.pid, "pid"));
      break;
    }
  }
  if (ns.uts.mode == NamespaceMode::kNew) {
    plan.hostname = spec.hostname.empty() ? spec.id.substr(0, 12) : spec.hostname;
  } else if (!spec.hostname.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("container ", spec.id, ": a hostname needs its own uts namespace"));
  }

  ASSIGN_OR_RETURN(CgroupLayout layout, Layout());
  plan.sys_cgroup2 = plan.unshare_cgroup && layout.version == CgroupVersion::kV2;
  std::string cgroup_path =
      spec.cgroup.parent_path.empty() ? absl::StrCat("pier/", spec.id) : spec.cgroup.parent_path;
  ASSIGN_OR_RETURN(std::unique_ptr<Cgroup> cgroup,
                   Cgroup::Create(layout, cgroup_path, spec.cgroup, spec.privileged));

  absl::StatusOr<CgroupEntry> entry = OpenCgroupEntry(layout, cgroup->paths());
  absl::StatusOr<Launched> launched =
      entry.ok() ? Launch(plan, clone_flags, pid_ns.valid() ? pid_ns.get() : -1, *entry)
                 : absl::StatusOr<Launched>(entry.status());
  if (!launched.ok()) {
    absl::Status s = cgroup->Destroy();
    if (!s.ok()) {
      PIER_LOG(WARNING) << "container " << spec.id << ": " << s;
    }
    return Annotate(launched.status(), absl::StrCat("container ", spec.id));
  }
  ExecOptions options{spec.privileged, spec.seccomp};
  bool own_pid_ns = ns.pid.mode == NamespaceMode::kNew;
  return std::unique_ptr<Process>(new NativeProcess(launched->pid, std::move(launched->pidfd),
                                                    std::move(launched->ptm), std::move(cgroup),
                                                    !own_pid_ns, options));
}

absl::StatusOr<std::unique_ptr<Process>> NativeExecutor::Exec(pid_t init_pid,
                                                              const ProcessSpec& process,
                                                              const Stdio& stdio,
                                                              const ExecOptions& options) {
  UniqueFd target(static_cast<int>(::syscall(SYS_pidfd_open, init_pid, 0)));
  if (!target.valid()) {
    if (errno == ESRCH) return absl::NotFoundError(absl::StrCat("no process ", init_pid));
    return ErrnoStatus(errno, absl::StrCat("pidfd_open ", init_pid));
  }
  Plan plan;
  RETURN_IF_ERROR(PrepareProcess(process, options.privileged, options.seccomp, &plan));
  plan.stdio[0] = stdio.in;
  plan.stdio[1] = stdio.out;
  plan.stdio[2] = stdio.err;
  plan.join_pidfd = target.get();
  struct {
    const char* name;
    int flag;
  } kinds[] = {{"mnt", CLONE_NEWNS},
               {"uts", CLONE_NEWUTS},
               {"ipc", CLONE_NEWIPC},
               {"net", CLONE_NEWNET},
               {"cgroup", CLONE_NEWCGROUP}};
  for (const auto& k : kinds) {
    ASSIGN_OR_RETURN(bool same, SameNamespace(init_pid, k.name));
    if (!same) plan.join_flags |= k.flag;
  }
  ASSIGN_OR_RETURN(bool same_pid, SameNamespace(init_pid, "pid"));
  const bool join_pid = !same_pid;
  ASSIGN_OR_RETURN(CgroupLayout layout, Layout());
  ASSIGN_OR_RETURN(std::vector<std::string> cgroup_dirs, CgroupDirsOf(layout, init_pid));

  ASSIGN_OR_RETURN(CgroupEntry entry, OpenCgroupEntry(layout, cgroup_dirs));
  auto launched = Launch(plan, 0, join_pid ? target.get() : -1, entry);
  if (!launched.ok()) {
    return Annotate(launched.status(), absl::StrCat("exec in container of process ", init_pid));
  }
  return std::unique_ptr<Process>(new NativeProcess(launched->pid, std::move(launched->pidfd),
                                                    std::move(launched->ptm), nullptr, false,
                                                    options));
}

}  // namespace pier::exec
