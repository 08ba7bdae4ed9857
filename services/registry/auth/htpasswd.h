// An htpasswd password file with bcrypt entries, for the registry's Basic
// authentication and its token endpoint.
//
// File format: one `user:hash` per line; blank lines and lines starting with
// '#' are ignored; trailing whitespace (and a CR) is dropped. Only bcrypt
// hashes are accepted (`$2y$`, `$2a$`, `$2b$`, as written by `htpasswd -B`);
// any other scheme (MD5 `$apr1$`, SHA `{SHA}`, crypt, plain text) is refused
// when the file is loaded, naming the line. A user may appear only once.
//
// The file is re-read when its mtime (or size or inode) changes; the check
// runs at most once a second, on the next Verify(). A reload that fails keeps
// the entries already loaded and logs a warning.
//
// Ownership: HtpasswdFile owns its parsed entries; it holds no file open.
// Thread safety: Verify(), Reload() and Size() may be called concurrently;
// the bcrypt computation runs outside the lock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pier::registry::auth {

// The message of every failed password check, whichever half was wrong.
inline constexpr char kInvalidCredentials[] = "invalid username or password";

// Returns a bcrypt (`$2y$`) hash of `password` with work factor `cost`
// (4..31; htpasswd -B uses 5 by default, 10 or more is advisable), salted
// from the system's random source: the hash half of an htpasswd line.
// InvalidArgument when cost is out of range or the password is longer than 72
// bytes (bcrypt ignores the rest) or contains a NUL byte; Internal when the
// crypt library fails.
absl::StatusOr<std::string> HashPassword(absl::string_view password, int cost = 10);

class HtpasswdFile {
 public:
  struct Options {
    // The time source for the once-a-second reload check; null means
    // absl::Now. Tests inject a fake clock to step past the interval.
    std::function<absl::Time()> clock;
    // Minimum time between two checks of the file's mtime.
    absl::Duration check_interval = absl::Seconds(1);
  };

  // Loads `path`. NotFound when it does not exist, PermissionDenied when it
  // cannot be read, InvalidArgument ("<path>:<line>: ...") for a malformed
  // line, an unsupported hash scheme or a duplicate user.
  static absl::StatusOr<std::unique_ptr<HtpasswdFile>> Open(std::string path, Options options);
  static absl::StatusOr<std::unique_ptr<HtpasswdFile>> Open(std::string path) {
    return Open(std::move(path), Options());
  }

  HtpasswdFile(const HtpasswdFile&) = delete;
  HtpasswdFile& operator=(const HtpasswdFile&) = delete;

  // OK when `user` exists and `password` matches its hash; Unauthenticated
  // with kInvalidCredentials otherwise (unknown user, wrong password, a NUL
  // in the password). An unknown user still costs one bcrypt computation so
  // timing does not reveal which users exist; the hash comparison is
  // constant-time. First re-reads the file if it changed (see above).
  absl::Status Verify(absl::string_view user, absl::string_view password);

  // Re-reads the file now, whether or not it changed. On error (codes as for
  // Open) the entries already loaded stay in use.
  absl::Status Reload();

  // Number of users currently loaded.
  size_t Size() const;

  const std::string& path() const { return path_; }

 private:
  struct FileId {
    int64_t mtime_sec = -1;
    int64_t mtime_nsec = -1;
    int64_t size = -1;
    uint64_t inode = 0;
    uint64_t device = 0;
    bool operator==(const FileId&) const = default;
  };
  using Entries = std::map<std::string, std::string, std::less<>>;

  HtpasswdFile(std::string path, Options options);

  // Identifies the current version of the file at `path`; errno's code when
  // stat fails.
  static absl::StatusOr<FileId> StatFile(const std::string& path);
  absl::Time Now() const;
  // Reads and parses the file; fills `entries` and `id`. Does not lock.
  absl::Status Load(Entries* entries, FileId* id) const;
  // Reloads when the interval has passed and the file changed. Locks mu_.
  void MaybeReload();

  const std::string path_;
  const Options options_;

  mutable std::mutex mu_;
  Entries entries_;                               // guarded by mu_
  FileId loaded_id_;                              // guarded by mu_; the version last tried
  absl::Time last_check_ = absl::InfinitePast();  // guarded by mu_
};

}  // namespace pier::registry::auth
