// `pier`: docker-like verbs over the gRPC APIs of pier-registry,
// pier-builder and pier-runtime. Wiring only; each verb has its own file.
#include <openssl/crypto.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "lib/common/flags.h"
#include "lib/common/process.h"

namespace pier::cli {
namespace {

constexpr Verb kVerbs[] = {
    {"attach", "Attach to a running container's input and output", Attach},
    {"build", "Build an image from a Dockerfile", Build},
    {"builder", "Manage the build cache (prune, du)", Builder},
    {"commit", "Create an image from a container's changes", Commit},
    {"completion", "Print a shell completion script (bash)", Completion},
    {"container", "Manage containers (ls, prune, rm)", Container},
    {"create", "Create a container", Create},
    {"events", "Stream the runtime's lifecycle events", Events},
    {"exec", "Run a command in a running container", Exec},
    {"export", "Export a container's filesystem as a tarball", Export},
    {"history", "Show an image's layers and what made them", History},
    {"image", "Manage images (ls, prune, rm)", Image},
    {"images", "List images", Images},
    {"import", "Import a root filesystem tarball as an image", Import},
    {"inspect", "Show a container or an image as JSON", Inspect},
    {"kill", "Send a signal to running containers", Kill},
    {"load", "Load images from a tarball", Load},
    {"login", "Log in to a registry", Login},
    {"logout", "Log out from a registry", Logout},
    {"logs", "Fetch a container's logs", Logs},
    {"pause", "Freeze every process of containers", Pause},
    {"ps", "List containers", Ps},
    {"pull", "Pull an image from a registry", Pull},
    {"push", "Push an image to a registry", Push},
    {"registry", "Administer pier-registry (ls, tags, gc)", Registry},
    {"rm", "Remove containers", Rm},
    {"rmi", "Remove images", Rmi},
    {"run", "Create and start a container", Run},
    {"save", "Save images to a tarball", Save},
    {"start", "Start created or stopped containers", Start},
    {"stats", "Show containers' resource use (CPU, memory, I/O, processes)", Stats},
    {"status", "Show whether each Pier service is serving", Status},
    {"stop", "Stop running containers (SIGTERM, then SIGKILL)", Stop},
    {"tag", "Give an image another name", Tag},
    {"unpause", "Thaw the processes of paused containers", Unpause},
    {"version", "Show the Pier version", Version},
    {"volume", "Manage volumes (create, ls, inspect, rm, prune)", Volume},
    {"wait", "Wait for containers to exit and print their exit codes", Wait},
};

std::string Env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? v : fallback;
}

void PrintUsage(std::ostream& out) {
  out << "Usage: pier [global flags] COMMAND [ARGS...]\n\n"
         "Build, ship and run OCI containers.\n\nCommands:\n";
  for (const Verb& v : kVerbs) {
    std::string name = v.name;
    out << "  " << name << std::string(name.size() < 12 ? 12 - name.size() : 1, ' ') << v.summary
        << "\n";
  }
  out << "\nGlobal flags:\n"
         "      --registry string   pier-registry gRPC address (env PIER_REGISTRY)\n"
         "      --builder string    pier-builder gRPC address (env PIER_BUILDER)\n"
         "      --runtime string    pier-runtime gRPC address (env PIER_RUNTIME)\n"
         "      --tlscacert string  CA to verify the services (env PIER_TLS_CA; alias --tls-ca)\n"
         "      --tlscert string    client certificate for mTLS (env PIER_TLS_CERT; alias "
         "--tls-cert)\n"
         "      --tlskey string     client key for mTLS (env PIER_TLS_KEY; alias --tls-key)\n"
         "\nAddresses and TLS files come from these flags, else the environment, else\n"
         "the config file $PIER_CLI_CONFIG or ~/.config/pier/pier.conf (`name = value`\n"
         "lines with the flag names, e.g. `registry = 10.0.0.5:5050`), else the defaults\n"
         "127.0.0.1:5050, 127.0.0.1:5051 and unix:///run/pier/runtime.sock.\n"
         "\nRun 'pier COMMAND --help' for more on a command.\n";
}

void AddGlobalFlags(FlagSet& flags, Globals& g) {
  flags.String("registry", "", &g.registry, "pier-registry address");
  flags.String("builder", "", &g.builder, "pier-builder address");
  flags.String("runtime", "", &g.runtime, "pier-runtime address");
  flags.String("tls-ca", "", &g.tls.ca, "CA bundle");
  flags.String("tls-cert", "", &g.tls.cert, "client certificate");
  flags.String("tls-key", "", &g.tls.key, "client key");
  // docker's spelling of the same three.
  flags.String("tlscacert", "", &g.tls.ca, "CA bundle");
  flags.String("tlscert", "", &g.tls.cert, "client certificate");
  flags.String("tlskey", "", &g.tls.key, "client key");
}

// The CLI's config file: $PIER_CLI_CONFIG, else
// $XDG_CONFIG_HOME/pier/pier.conf, else ~/.config/pier/pier.conf.
std::string ConfigPath() {
  std::string path = Env("PIER_CLI_CONFIG", "");
  if (!path.empty()) return path;
  std::string xdg = Env("XDG_CONFIG_HOME", "");
  if (!xdg.empty()) return xdg + "/pier/pier.conf";
  std::string home = Env("HOME", "");
  return home.empty() ? "" : home + "/.config/pier/pier.conf";
}

// Fills what the command line left unset: the environment first, then the
// config file (`registry = host:port` lines, the global flags' names, and
// `detach-keys = ctrl-x,y`), then the defaults. NotFound is not an error for the default path.
absl::Status ApplyEnvAndConfig(const FlagSet& flags, Globals& g) {
  Globals file;
  file.registry = "127.0.0.1:5050";
  file.builder = "127.0.0.1:5051";
  file.runtime = "unix:///run/pier/runtime.sock";
  std::string path = ConfigPath();
  if (!path.empty()) {
    FlagSet file_flags("pier", "");
    AddGlobalFlags(file_flags, file);
    // Only in the file (as docker's detachKeys): attach's default keys.
    file_flags.String("detach-keys", "", &file.detach_keys, "");
    absl::Status s = file_flags.ApplyConfigFile(path);
    if (!s.ok() && !(absl::IsNotFound(s) && Env("PIER_CLI_CONFIG", "").empty())) return s;
  }
  struct Field {
    const char* flag;
    const char* alias;
    const char* env;
    std::string* value;
    const std::string* from_file;
  };
  const Field fields[] = {
      {"registry", "", "PIER_REGISTRY", &g.registry, &file.registry},
      {"builder", "", "PIER_BUILDER", &g.builder, &file.builder},
      {"runtime", "", "PIER_RUNTIME", &g.runtime, &file.runtime},
      {"tls-ca", "tlscacert", "PIER_TLS_CA", &g.tls.ca, &file.tls.ca},
      {"tls-cert", "tlscert", "PIER_TLS_CERT", &g.tls.cert, &file.tls.cert},
      {"tls-key", "tlskey", "PIER_TLS_KEY", &g.tls.key, &file.tls.key},
  };
  for (const Field& f : fields) {
    if (flags.IsSet(f.flag) || (*f.alias != '\0' && flags.IsSet(f.alias))) continue;
    *f.value = Env(f.env, f.from_file->c_str());
  }
  g.detach_keys = file.detach_keys;
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  Globals g;
  FlagSet flags("pier", "[global flags] COMMAND [ARGS...]");
  AddGlobalFlags(flags, g);
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<std::vector<std::string>> rest = flags.Parse(args, true);
  if (!rest.ok()) {
    if (absl::IsCancelled(rest.status())) {
      PrintUsage(std::cout);
      return 0;
    }
    std::cerr << "pier: " << rest.status().message() << "\nRun 'pier --help' for usage.\n";
    return 2;
  }
  if (absl::Status s = ApplyEnvAndConfig(flags, g); !s.ok()) {
    std::cerr << "pier: config file: " << s.message() << "\n";
    return 2;
  }
  if (rest->empty()) {
    PrintUsage(std::cerr);
    return 2;
  }
  const std::string& verb = (*rest)[0];
  if (verb == "help") {
    PrintUsage(std::cout);
    return 0;
  }
  for (const Verb& v : kVerbs) {
    if (verb == v.name) return v.run(g, std::vector<std::string>(rest->begin() + 1, rest->end()));
  }
  std::cerr << "pier: '" << verb << "' is not a pier command.\nRun 'pier --help' for usage.\n";
  return 2;
}

}  // namespace

std::vector<Verb> AllVerbs() { return std::vector<Verb>(std::begin(kVerbs), std::end(kVerbs)); }

std::string GlobalFlagsUsage() {
  Globals g;
  FlagSet flags("pier", "[global flags] COMMAND [ARGS...]");
  AddGlobalFlags(flags, g);
  return flags.Usage();
}

}  // namespace pier::cli

int main(int argc, char** argv) {
  pier::InitProcess();
  // The CLI's only OpenSSL uses are SHA-256 of build contexts and gRPC's TLS,
  // which sets its own protocol floor and ciphers: reading openssl.cnf
  // (~0.5 ms) buys nothing for a command that lives a few milliseconds.
  OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
  int rc = pier::cli::Main(argc, argv);
  // Every verb has closed its files and finished its calls by now: flush the
  // standard streams and leave without running static destructors, which
  // would shut gRPC down (joining its threads, ~2-3 ms) for nothing.
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  ::_exit(rc);
}
