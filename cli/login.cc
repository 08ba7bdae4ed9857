// `pier login [SERVER]` and `pier logout [SERVER]`: check credentials against
// a registry's HTTP API (answering its Basic or token challenge) and store
// them for later pushes and pulls (see lib/distribution/credentials.h).
// SERVER defaults to $PIER_REGISTRY_HTTP, else 127.0.0.1:5000.
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "cli/cli.h"
#include "lib/common/flags.h"
#include "lib/distribution/credentials.h"
#include "lib/distribution/registry_client.h"

namespace pier::cli {
namespace {

std::string DefaultServer() {
  const char* env = std::getenv("PIER_REGISTRY_HTTP");
  return env != nullptr && *env != '\0' ? env : "127.0.0.1:5000";
}

}  // namespace

int Login(const Globals& globals, const std::vector<std::string>& args) {
  std::string user, password, ca;
  bool password_stdin = false, tls = false, tls_verify = true;
  FlagSet flags("pier login", "[flags] [SERVER]");
  flags.String("username", "u", &user, "user name");
  flags.String("password", "p", &password, "password (prefer --password-stdin)");
  flags.Bool("password-stdin", "", &password_stdin, "read the password from standard input");
  flags.Bool("tls", "", &tls, "use https even for a loopback registry");
  flags.Bool("tls-verify", "", &tls_verify, "verify the registry's certificate (default true)");
  flags.String("tls-ca", "", &ca,
               "CA bundle to verify the registry with (default: the global --tlscacert)");
  absl::StatusOr<std::vector<std::string>> pos = flags.Parse(args);
  if (!pos.ok()) {
    if (absl::IsCancelled(pos.status())) {
      std::cout << flags.Usage();
      return 0;
    }
    return Fail(pos.status(), 2);
  }
  if (pos->size() > 1) {
    std::cerr << "pier login: at most one SERVER\n";
    return 2;
  }
  std::string server = pos->empty() ? DefaultServer() : (*pos)[0];
  if (password_stdin) {
    if (!password.empty()) {
      std::cerr << "pier login: --password and --password-stdin are mutually exclusive\n";
      return 2;
    }
    std::getline(std::cin, password);
    if (!password.empty() && password.back() == '\r') password.pop_back();
  }
  if (user.empty()) {
    std::cerr << "pier login: --username is required (pier login -u USER --password-stdin "
              << server << ")\n";
    return 2;
  }
  if (password.empty()) {
    std::cerr << "pier login: no password given (use --password-stdin)\n";
    return 2;
  }
  distribution::RegistryClientOptions opts;
  opts.credentials = distribution::Credentials{user, password};
  // With the suite's TLS settings (--tlscacert/--tlscert/--tlskey or
  // PIER_TLS_*), the registry's HTTP side is TLS too and may require the
  // client certificate.
  opts.force_tls = tls || globals.tls.enabled();
  opts.tls_verify = tls_verify;
  opts.ca_file = ca.empty() ? globals.tls.ca : ca;
  opts.cert_file = globals.tls.cert;
  opts.key_file = globals.tls.key;
  absl::StatusOr<std::unique_ptr<distribution::RegistryClient>> client =
      distribution::RegistryClient::Create(server, opts);
  if (!client.ok()) return Fail(client.status());
  if (absl::Status s = (*client)->Ping(); !s.ok()) {
    std::cerr << "pier login: " << server << ": " << s.message() << "\n";
    return 1;
  }
  std::string path = distribution::DefaultCredentialsPath();
  if (absl::Status s = distribution::StoreCredentials(path, server, *opts.credentials); !s.ok()) {
    return Fail(s);
  }
  std::cout << "Login Succeeded (credentials stored in " << path << ")\n";
  return 0;
}

int Logout(const Globals&, const std::vector<std::string>& args) {
  FlagSet flags("pier logout", "[SERVER]");
  absl::StatusOr<std::vector<std::string>> pos = flags.Parse(args);
  if (!pos.ok()) {
    if (absl::IsCancelled(pos.status())) {
      std::cout << flags.Usage();
      return 0;
    }
    return Fail(pos.status(), 2);
  }
  std::string server = pos->empty() ? DefaultServer() : (*pos)[0];
  absl::Status s = distribution::RemoveCredentials(distribution::DefaultCredentialsPath(), server);
  if (!s.ok()) return Fail(s);
  std::cout << "Removed login credentials for " << server << "\n";
  return 0;
}

}  // namespace pier::cli
