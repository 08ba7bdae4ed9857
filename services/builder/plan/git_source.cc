#include "services/builder/plan/git_source.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"

extern char** environ;

namespace pier::builder {
namespace {

struct GitResult {
  int exit_code = 0;
  std::string out;  // stdout
  std::string err;  // stderr, trimmed
};

// The environment git runs with: PATH, proxies and the ssh agent from ours;
// no prompts, no system or user configuration, ssh in batch mode.
std::vector<std::string> GitEnvironment() {
  std::vector<std::string> env = {
      "GIT_TERMINAL_PROMPT=0",
      "GIT_CONFIG_NOSYSTEM=1",
      "GIT_CONFIG_GLOBAL=/dev/null",
      "GIT_SSH_COMMAND=ssh -o BatchMode=yes",
      "HOME=/nonexistent",
      "LC_ALL=C",
      "GIT_PROTOCOL_FROM_USER=0",
      // Remote transports only: never the builder host's own files (file://,
      // plain paths) or helper commands (ext::).
      "GIT_ALLOW_PROTOCOL=http:https:git:ssh",
  };
  for (const char* name : {"PATH", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY",
                           "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "SSH_AUTH_SOCK"}) {
    if (const char* v = std::getenv(name); v != nullptr) env.push_back(absl::StrCat(name, "=", v));
  }
  return env;
}

// Runs `git args...`, collecting its output, and kills it after `timeout`
// (DeadlineExceeded). FailedPrecondition when git cannot be started.
absl::StatusOr<GitResult> RunGit(const std::vector<std::string>& args, absl::Duration timeout) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (pipe2(err, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  UniqueFd err_r(err[0]), err_w(err[1]);
  std::vector<std::string> argv_s = {"git"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s = GitEnvironment();
  std::vector<char*> envp;
  for (std::string& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, err_w.get(), 2);
  // Our PATH, not git's environment's, finds the binary.
  std::string path = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "/usr/bin:/bin";
  std::string exe;
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/git");
    if (access(candidate.c_str(), X_OK) == 0) {
      exe = candidate;
      break;
    }
  }
  if (exe.empty()) {
    posix_spawn_file_actions_destroy(&fa);
    return absl::FailedPreconditionError("git is not installed on the builder host (PATH)");
  }
  pid_t pid = 0;
  int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return ErrnoStatus(rc, "run git");
  out_w.Reset();
  err_w.Reset();
  GitResult result;
  const absl::Time deadline = absl::Now() + timeout;
  bool killed = false;
  pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
  int open_fds = 2;
  char buf[1 << 16];
  while (open_fds > 0) {
    int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left <= 0) {
      kill(pid, SIGKILL);
      killed = true;
      break;
    }
    int n = poll(fds, 2, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t got = read(fds[i].fd, buf, sizeof(buf));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(got));
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (killed) {
    return absl::DeadlineExceededError(absl::StrCat("git ", args.empty() ? "" : args[0],
                                                    " did not finish within ",
                                                    absl::FormatDuration(timeout)));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.err = std::string(absl::StripAsciiWhitespace(result.err));
  return result;
}

// git's own words for a failure, on one line.
std::string GitMessage(const GitResult& r) {
  std::vector<std::string> lines;
  for (absl::string_view l : absl::StrSplit(r.err, '\n', absl::SkipWhitespace())) {
    lines.push_back(std::string(absl::StripAsciiWhitespace(l)));
  }
  if (lines.empty()) return absl::StrCat("git exited with status ", r.exit_code);
  return absl::StrJoin(lines, "; ");
}

bool IsCommitId(absl::string_view s) {
  if (s.size() != 40 && s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(c) || absl::ascii_isupper(c)) return false;
  }
  return true;
}

constexpr absl::Duration kResolveTimeout = absl::Minutes(2);
constexpr absl::Duration kFetchTimeout = absl::Minutes(30);

}  // namespace

bool IsGitUrl(absl::string_view source) {
  if (absl::StartsWith(source, "git@") || absl::StartsWith(source, "git://")) return true;
  absl::string_view path = source.substr(0, source.find('#'));
  for (absl::string_view scheme : {"http://", "https://", "ssh://"}) {
    if (absl::StartsWithIgnoreCase(path, scheme)) {
      while (absl::ConsumeSuffix(&path, "/")) {
      }
      return absl::EndsWith(path, ".git");
    }
  }
  return false;
}

absl::StatusOr<GitSource> ParseGitUrl(absl::string_view source) {
  GitSource g;
  size_t hash = source.find('#');
  g.url = std::string(source.substr(0, hash));
  if (g.url.empty() || absl::StartsWith(g.url, "-")) {
    return absl::InvalidArgumentError(absl::StrCat("invalid git repository \"", source, "\""));
  }
  if (hash != absl::string_view::npos) {
    absl::string_view frag = source.substr(hash + 1);
    size_t colon = frag.find(':');
    g.ref = std::string(frag.substr(0, colon));
    if (absl::StartsWith(g.ref, "-")) {
      return absl::InvalidArgumentError(absl::StrCat("invalid git ref \"", g.ref, "\""));
    }
    if (colon != absl::string_view::npos) {
      std::vector<std::string> parts;
      for (absl::string_view c : absl::StrSplit(frag.substr(colon + 1), '/', absl::SkipEmpty())) {
        if (c == ".") continue;
        if (c == "..") {
          return absl::InvalidArgumentError(absl::StrCat(
              "git subdirectory \"", frag.substr(colon + 1), "\" leaves the repository"));
        }
        parts.push_back(std::string(c));
      }
      g.subdir = absl::StrJoin(parts, "/");
    }
  }
  return g;
}

absl::StatusOr<GitCommit> ResolveGitRef(const GitSource& source) {
  if (IsCommitId(source.ref)) return GitCommit{source.ref, source.ref};
  ASSIGN_OR_RETURN(GitResult r, RunGit({"ls-remote", "--", source.url}, kResolveTimeout));
  if (r.exit_code != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot read git repository ", source.url, ": ", GitMessage(r)));
  }
  std::map<std::string, std::string> refs;  // name -> id
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> p = absl::StrSplit(line, '\t');
    refs[std::string(p.second)] = std::string(p.first);
  }
  const std::string ref = source.ref.empty() ? "HEAD" : source.ref;
  std::vector<std::string> candidates;
  if (ref == "HEAD" || absl::StartsWith(ref, "refs/")) {
    candidates = {ref + "^{}", ref};
  } else {
    candidates = {"refs/heads/" + ref, "refs/tags/" + ref + "^{}", "refs/tags/" + ref};
  }
  for (const std::string& c : candidates) {
    auto it = refs.find(c);
    if (it == refs.end()) continue;
    absl::string_view name = c;
    absl::ConsumeSuffix(&name, "^{}");
    return GitCommit{it->second, std::string(name)};
  }
  return absl::NotFoundError(
      absl::StrCat("git repository ", source.url, " has no branch, tag or ref \"", ref, "\""));
}

absl::Status CheckoutGit(const GitSource& source, const GitCommit& commit, const std::string& dir,
                         bool keep_git_dir) {
  auto git = [&](std::vector<std::string> args, absl::Duration timeout) {
    args.insert(args.begin(), {"-C", dir});
    return RunGit(args, timeout);
  };
  if (mkdir(dir.c_str(), 0755) != 0) return ErrnoStatus(errno, "mkdir " + dir);
  ASSIGN_OR_RETURN(GitResult r, RunGit({"init", "-q", "--", dir}, kResolveTimeout));
  if (r.exit_code != 0) return absl::InternalError("git init: " + GitMessage(r));
  ASSIGN_OR_RETURN(r, git({"remote", "add", "origin", "--", source.url}, kResolveTimeout));
  if (r.exit_code != 0) return absl::InternalError("git remote add: " + GitMessage(r));
  ASSIGN_OR_RETURN(r, git({"fetch", "-q", "--no-tags", "--depth", "1", "origin", commit.refname},
                          kFetchTimeout));
  if (r.exit_code != 0) {
    // Servers speaking the dumb HTTP protocol cannot serve shallow fetches.
    ASSIGN_OR_RETURN(r, git({"fetch", "-q", "--no-tags", "origin", commit.refname}, kFetchTimeout));
  }
  if (r.exit_code != 0 && commit.refname == commit.id) {
    // A server that refuses to serve a commit by id may still have it on
    // one of its refs.
    ASSIGN_OR_RETURN(r,
                     git({"fetch", "-q", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*"},
                         kFetchTimeout));
    if (r.exit_code == 0) {
      ASSIGN_OR_RETURN(GitResult has,
                       git({"cat-file", "-e", commit.id + "^{commit}"}, kResolveTimeout));
      if (has.exit_code != 0) {
        return absl::NotFoundError(
            absl::StrCat("git repository ", source.url, " has no commit ", commit.id));
      }
    }
  }
  if (r.exit_code != 0) {
    return absl::UnavailableError(
        absl::StrCat("fetching ", commit.refname, " from ", source.url, ": ", GitMessage(r)));
  }
  if (commit.refname != commit.id) {
    ASSIGN_OR_RETURN(GitResult head, git({"rev-parse", "FETCH_HEAD^{commit}"}, kResolveTimeout));
    std::string got(absl::StripAsciiWhitespace(head.out));
    if (head.exit_code != 0 || got != commit.id) {
      return absl::AbortedError(absl::StrCat(commit.refname, " of ", source.url, " moved from ",
                                             commit.id, " to ", got,
                                             " during the build; build again"));
    }
  }
  ASSIGN_OR_RETURN(r,
                   git({"-c", "advice.detachedHead=false", "checkout", "-q", "--detach", commit.id},
                       kFetchTimeout));
  if (r.exit_code != 0) {
    return absl::InternalError(absl::StrCat("git checkout ", commit.id, ": ", GitMessage(r)));
  }
  if (!keep_git_dir) RETURN_IF_ERROR(RemoveAll(dir + "/.git"));
  return absl::OkStatus();
}

}  // namespace pier::builder
