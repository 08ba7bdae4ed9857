// pier-shim: the per-container monitor started by pier-runtime. Wiring only:
// flags, detaching from the runtime (double fork + setsid), signals; the
// work is in shim.h.
//
//   pier-shim --dir=<run-root>/containers/<id> [--log-dir=<root>/containers/<id>]
//             [--sync-fd=3] [--stdin]
//             [--log-max-size=BYTES] [--log-max-files=N]
//   pier-shim --standby-fd=3
//
// Standby: the runtime keeps one shim started ahead of need, already
// detached, so a container start does not wait for an exec and two forks.
// The shim reads its assignment from the socket on --standby-fd, its flags
// ("--dir=...", "--log-max-size=...", ["--stdin"]) each ended by a NUL and
// the list by an empty one, and then answers on the same socket as
// --sync-fd. EOF before any assignment (the runtime
// stopped): it exits quietly.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

#include "lib/common/flags.h"
#include "lib/common/log.h"
#include "lib/common/process.h"
#include "services/runtime/shim/shim.h"
#include "services/runtime/shim/state_dir.h"

namespace {

// Detaches from the parent (the runtime): the first child starts a new
// session, the second is re-parented to init (or the nearest subreaper) and
// can never reacquire a controlling terminal. Only the grandchild returns.
void Daemonize() {
  pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("pier-shim: fork");
    ::_exit(1);
  }
  if (pid > 0) ::_exit(0);
  if (::setsid() < 0) {
    std::perror("pier-shim: setsid");
    ::_exit(1);
  }
  pid = ::fork();
  if (pid < 0) {
    std::perror("pier-shim: fork");
    ::_exit(1);
  }
  if (pid > 0) ::_exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  pier::InitProcess();
  pier::runtime::shim::ShimOptions options;
  int64_t sync_fd = -1;
  bool foreground = false;
  int64_t log_max_files = options.log_max_files;
  int64_t log_max_size = options.log_max_size;
  pier::FlagSet flags("pier-shim", "--dir=STATE_DIR [flags]");
  flags.String("dir", "", &options.dir, "the container's state directory (holds spec.json)");
  flags.String("log-dir", "", &options.log_dir,
               "directory of the container's log.jsonl (default: --dir)");
  flags.Int("sync-fd", "", &sync_fd, "descriptor that receives the start report, then EOF");
  flags.Bool("stdin", "", &options.open_stdin, "keep the container's stdin open for attach");
  flags.Int("log-max-size", "", &log_max_size, "bytes per log file before rotation (0: never)");
  flags.Int("log-max-files", "", &log_max_files, "log files kept, the current one included");
  flags.Bool("foreground", "", &foreground, "do not detach (debugging)");
  int64_t standby_fd = -1;
  flags.Int("standby-fd", "", &standby_fd,
            "wait on this socket for the flags of a container, then answer on it");
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = flags.Parse(args);
  if (parsed.ok() && standby_fd >= 0) {
    // Detach first (that is the point of waiting), then read the flags.
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    ::signal(SIGPIPE, SIG_IGN);
    ::umask(022);
    Daemonize();
    // The runtime writes the whole list and then only reads until the start
    // report, so reading in blocks cannot take anything beyond the list.
    std::vector<std::string> assigned;
    std::string buf;
    size_t pos = 0;  // start of the argument being read
    for (bool done = false; !done;) {
      char block[4096];
      ssize_t n = ::read(static_cast<int>(standby_fd), block, sizeof(block));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) ::_exit(0);  // the runtime went away: nothing to do
      buf.append(block, static_cast<size_t>(n));
      if (buf.size() > 65536) ::_exit(2);
      for (size_t nul; !done && (nul = buf.find('\0', pos)) != std::string::npos; pos = nul + 1) {
        if (nul == pos) {
          done = true;  // the empty argument ends the list
        } else {
          assigned.push_back(buf.substr(pos, nul - pos));
        }
      }
    }
    assigned.push_back(absl::StrCat("--sync-fd=", standby_fd));
    parsed = flags.Parse(assigned);
    if (parsed.ok() && !options.dir.empty() && options.dir[0] == '/') {
      // stderr goes to the container's shim.log, as for a spawned shim.
      std::string log = options.dir + "/" + pier::runtime::shim::kShimLogFile;
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
      if (fd >= 0) {
        ::dup2(fd, 2);
        ::close(fd);
      }
    }
    foreground = true;  // already detached
  }
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s\n%s", std::string(parsed.status().message()).c_str(),
                 flags.Usage().c_str());
    return 2;
  }
  if (options.dir.empty() || options.dir[0] != '/') {
    std::fprintf(stderr, "pier-shim: --dir must be an absolute path\n");
    return 2;
  }
  options.sync_fd = static_cast<int>(sync_fd);
  options.log_max_size = log_max_size;
  options.log_max_files = static_cast<int>(log_max_files);

  // Only the runtime's `kill` request signals the container; the shim itself
  // survives terminal hangups and stray SIGTERM/SIGINT.
  ::signal(SIGTERM, SIG_IGN);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  ::umask(022);
  if (!foreground) Daemonize();
  // The shim works in its container's directory: its cwd names it in /proc
  // (IsShimAlive), whatever its command line says.
  if (::chdir(options.dir.c_str()) != 0) {
    std::perror("pier-shim: chdir to the state directory");
    return 1;
  }
  return pier::runtime::shim::RunShim(options);
}
