// Registry credentials as `pier login` stores them: a JSON file in docker's
// config.json shape, {"auths": {"<host[:port]>": {"auth": base64(user:pass)}}},
// at $PIER_CONFIG, else $HOME/.config/pier/config.json. The file is written
// atomically with mode 0600.
//
// Thread safety: stateless functions; concurrent writers of one file race
// (last writer wins), as with docker.
#pragma once

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

// Adds or replaces the entry for `host`.
absl::Status StoreCredentials(const std::string& path, absl::string_view host,
                              const Credentials& credentials);

// Removes the entry for `host`. NotFound when there is none.
absl::Status RemoveCredentials(const std::string& path, absl::string_view host);

}  // namespace pier::distribution
