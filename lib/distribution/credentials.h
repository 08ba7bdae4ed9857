// Registry credentials as `pier login` stores them: a JSON file in docker's
// config.json shape, {"auths": {"<host[:port]>": {"auth": base64(user:pass)}}},
// at $PIER_CONFIG, else $HOME/.config/pier/config.json. The file is written
// atomically with mode 0600.
//
// Thread safety: stateless functions; concurrent writers of one file race
// (last writer wins), as with docker.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pier::distribution {

struct Credentials {
  std::string username;
  std::string password;
};

// $PIER_CONFIG, else $HOME/.config/pier/config.json.
std::string DefaultCredentialsPath();

// The credentials stored for `host` (as given to Store), or nullopt.
// InvalidArgument for a malformed file (naming it); a missing file is empty.
absl::StatusOr<std::optional<Credentials>> LoadCredentials(const std::string& path,
                                                           absl::string_view host);

// Every entry of the file, by host as stored. InvalidArgument as above.
absl::StatusOr<std::map<std::string, Credentials>> LoadAllCredentials(const std::string& path);

// Whether two registry host names mean the same registry: a scheme and
// trailing slashes are ignored, and docker.io, index.docker.io (also
// "https://index.docker.io/v1/") and registry-1.docker.io are one.
bool SameRegistryHost(absl::string_view a, absl::string_view b);

// Adds or replaces the entry for `host`.
absl::Status StoreCredentials(const std::string& path, absl::string_view host,
                              const Credentials& credentials);

// Removes the entry for `host`. NotFound when there is none.
absl::Status RemoveCredentials(const std::string& path, absl::string_view host);

}  // namespace pier::distribution
