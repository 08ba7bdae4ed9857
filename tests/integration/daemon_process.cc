#include "tests/integration/daemon_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"

extern char** environ;

namespace pier::testing {

std::string BinDir() {
  const char* env = std::getenv("PIER_BIN_DIR");
  if (env != nullptr && *env != '\0') return env;
  return PIER_DEFAULT_BIN_DIR;
}

CommandResult RunPier(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::string cmd;
  for (const std::string& e : env) absl::StrAppend(&cmd, "'", e, "' ");
  absl::StrAppend(&cmd, "'", JoinPath(BinDir(), "pier"), "'");
  for (const std::string& a : args) {
    std::string quoted;
    for (char c : a) {
      if (c == '\'') {
        quoted += "'\\''";
      } else {
        quoted += c;
      }
    }
    absl::StrAppend(&cmd, " '", quoted, "'");
  }
  absl::StrAppend(&cmd, " 2>&1");
  std::string full = env.empty() ? cmd : absl::StrCat("env ", cmd);
  CommandResult result;
  FILE* p = ::popen(full.c_str(), "r");
  if (p == nullptr) return result;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) result.output.append(buf, n);
  int status = ::pclose(p);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

DaemonProcess::~DaemonProcess() {
  Kill();
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  if (!stderr_path_.empty()) ::unlink(stderr_path_.c_str());
}

absl::Status DaemonProcess::Start(const std::string& binary, const std::vector<std::string>& args,
                                  const std::vector<std::string>& wait_for,
                                  std::chrono::milliseconds timeout) {
  Kill();
  addresses_.clear();
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  stdout_fd_ = -1;
  if (!stderr_path_.empty()) ::unlink(stderr_path_.c_str());
  std::string path = binary.find('/') == std::string::npos ? JoinPath(BinDir(), binary) : binary;
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  char tmpl[] = "/tmp/pier-daemon-stderr-XXXXXX";
  int err_fd = ::mkstemp(tmpl);
  if (err_fd < 0) return ErrnoStatus(errno, "mkstemp");
  stderr_path_ = tmpl;

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_fd, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  std::vector<std::string> argv_s = {path};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  // pier-registry's HTTP side defaults to 127.0.0.1:5000; tests that run at
  // once (ctest -j) would race for it, so it gets a free port unless the
  // test chose one.
  if (absl::EndsWith(binary, "pier-registry") &&
      std::none_of(args.begin(), args.end(),
                   [](const std::string& a) { return absl::StartsWith(a, "--http-listen"); })) {
    argv_s.push_back("--http-listen=127.0.0.1:0");
  }
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, path.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  ::close(err_fd);
  if (rc != 0) {
    ::close(out[0]);
    return ErrnoStatus(rc, absl::StrCat("spawn ", path));
  }
  pid_ = pid;
  stdout_fd_ = out[0];

  // Read "<name>: <kind> listening on <address>" lines until all are seen.
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string buffer;
  auto have_all = [&] {
    for (const std::string& k : wait_for) {
      if (addresses_.count(k) == 0) return false;
    }
    return true;
  };
  while (!have_all()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return absl::DeadlineExceededError(
          absl::StrCat(binary, " did not announce its listeners in time; stderr:\n", Stderr()));
    }
    pollfd p{stdout_fd_, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno != EINTR) return ErrnoStatus(errno, "poll");
    if (n <= 0) continue;
    char buf[4096];
    ssize_t got = ::read(stdout_fd_, buf, sizeof(buf));
    if (got <= 0) {
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
      return absl::FailedPreconditionError(absl::StrCat(binary, " exited before serving (status ",
                                                        status, "); stderr:\n", Stderr()));
    }
    buffer.append(buf, static_cast<size_t>(got));
    size_t nl;
    while ((nl = buffer.find('\n')) != std::string::npos) {
      std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      size_t marker = line.find(" listening on ");
      size_t colon = line.find(": ");
      if (marker == std::string::npos || colon == std::string::npos || colon > marker) continue;
      std::string kind = line.substr(colon + 2, marker - colon - 2);
      addresses_[kind] = line.substr(marker + 14);
    }
  }
  return absl::OkStatus();
}

std::string DaemonProcess::Address(const std::string& kind) const {
  auto it = addresses_.find(kind);
  return it == addresses_.end() ? "" : it->second;
}

absl::StatusOr<int> DaemonProcess::Stop(int sig, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("daemon is not running");
  if (::kill(pid_, sig) != 0) return ErrnoStatus(errno, "kill");
  // A pidfd becomes readable when the process exits: wait on it, bounded.
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
  if (!pidfd.valid()) return ErrnoStatus(errno, "pidfd_open");
  pollfd p{pidfd.get(), POLLIN, 0};
  int n;
  do {
    n = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (n < 0 && errno == EINTR);
  if (n == 0) {
    return absl::DeadlineExceededError(
        absl::StrCat("daemon did not exit within ", timeout.count(), " ms"));
  }
  int status = 0;
  if (::waitpid(pid_, &status, 0) != pid_) return ErrnoStatus(errno, "waitpid");
  pid_ = -1;
  return status;
}

void DaemonProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string DaemonProcess::Stderr() const {
  absl::StatusOr<std::string> s = ReadFile(stderr_path_);
  return s.ok() ? *s : "";
}

}  // namespace pier::testing
