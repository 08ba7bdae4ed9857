// Git sources of ADD: `ADD <repository>[#<ref>[:<subdir>]] <dest>`.
//
// A source is a git repository when it starts with "git@" (scp-like ssh
// syntax) or "git://", or when it is an http(s):// or ssh:// URL whose path
// ends in ".git". Only remote transports are allowed (GIT_ALLOW_PROTOCOL):
// a Dockerfile cannot read repositories on the builder host. The fragment names a branch, tag, full
// commit id or full ref name (default: the remote's HEAD) and optionally a subdirectory of the tree
// to copy (default: the whole tree).
//
// The work is done by the host's `git` (found on PATH), run with a
// neutral environment: no terminal prompts, no system or user config, ssh
// in batch mode. ResolveGitRef asks the remote (`git ls-remote`) which
// commit the ref names, so that the step's cache key holds the commit id:
// an unchanged ref hits the cache without fetching, a moved one misses.
// CheckoutGit fetches just that commit (`git fetch --depth 1`; the ref's
// whole history from servers that cannot serve shallow fetches, such as
// dumb HTTP ones) into a fresh repository and checks it out.
//
// Ownership: the functions own nothing beyond their arguments.
// Thread safety: reentrant; concurrent calls on different directories are
// safe.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pier::builder {

struct GitSource {
  std::string url;     // the repository, without the fragment
  std::string ref;     // "" for the remote's HEAD
  std::string subdir;  // relative, cleaned; "" for the whole tree
};

// A ref resolved on the remote.
struct GitCommit {
  std::string id;       // the commit (hex)
  std::string refname;  // what to fetch: "refs/heads/main", "HEAD", or the id itself
};

// Whether ADD treats `source` as a git repository (see the file comment).
bool IsGitUrl(absl::string_view source);

// Splits `source` into repository, ref and subdirectory. InvalidArgument
// for an empty repository or a subdirectory that leaves the tree ("..").
absl::StatusOr<GitSource> ParseGitUrl(absl::string_view source);

// Resolves `source.ref` on the remote: a full commit id (40 or 64 hex
// digits) stands for itself; otherwise the ref is looked up among the
// remote's refs as given ("refs/..."), as a branch, then as a tag (peeled
// to its commit). NotFound naming the ref and repository when the remote
// lacks it; Unavailable with git's message when the repository cannot be
// read; FailedPrecondition when git cannot be run.
absl::StatusOr<GitCommit> ResolveGitRef(const GitSource& source);

// Fetches `commit` of `source.url` into the new directory `dir` (its parent
// must exist) and checks it out; then deletes `dir`/.git unless
// `keep_git_dir`. NotFound when the remote does not serve the commit;
// Aborted when the ref moved to another commit since it was resolved;
// Unavailable with git's message when fetching fails otherwise.
absl::Status CheckoutGit(const GitSource& source, const GitCommit& commit, const std::string& dir,
                         bool keep_git_dir);

}  // namespace pier::builder
