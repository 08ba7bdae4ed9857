// `pier`: docker-like verbs over the gRPC APIs of pier-registry,
// pier-builder and pier-runtime. Wiring only; each verb has its own file.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "lib/common/flags.h"

namespace pier::cli {
namespace {

constexpr Verb kVerbs[] = {
    {"attach", "Attach to a running container's input and output", Attach},
    {"build", "Build an image from a Dockerfile", Build},
    {"commit", "Create an image from a container's changes", Commit},
    {"create", "Create a container", Create},
    {"events", "Stream the runtime's lifecycle events", Events},
    {"exec", "Run a command in a running container", Exec},
    {"export", "Export a container's filesystem as a tarball", Export},
    {"history", "Show an image's layers and what made them", History},
    {"images", "List images", Images},
    {"import", "Import a root filesystem tarball as an image", Import},
    {"inspect", "Show a container or an image as JSON", Inspect},
    {"kill", "Send a signal to running containers", Kill},
    {"load", "Load images from a tarball", Load},
    {"login", "Log in to a registry", Login},
    {"logout", "Log out from a registry", Logout},
    {"logs", "Fetch a container's logs", Logs},
    {"ps", "List containers", Ps},
    {"pull", "Pull an image from a registry", Pull},
    {"push", "Push an image to a registry", Push},
    {"registry", "Administer pier-registry (ls, tags, gc)", Registry},
    {"rm", "Remove containers", Rm},
    {"rmi", "Remove images", Rmi},
    {"run", "Create and start a container", Run},
    {"save", "Save images to a tarball", Save},
    {"start", "Start created or stopped containers", Start},
    {"status", "Show whether each Pier service is serving", Status},
    {"stop", "Stop running containers (SIGTERM, then SIGKILL)", Stop},
    {"tag", "Give an image another name", Tag},
    {"version", "Show the Pier version", Version},
    {"volume", "Manage volumes (create, ls, inspect, rm)", Volume},
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
         "      --tls-ca string     CA to verify the services (env PIER_TLS_CA)\n"
         "      --tls-cert string   client certificate for mTLS (env PIER_TLS_CERT)\n"
         "      --tls-key string    client key for mTLS (env PIER_TLS_KEY)\n"
         "\nRun 'pier COMMAND --help' for more on a command.\n";
}

int Main(int argc, char** argv) {
  Globals g;
  g.registry = Env("PIER_REGISTRY", "127.0.0.1:5050");
  g.builder = Env("PIER_BUILDER", "127.0.0.1:5051");
  g.runtime = Env("PIER_RUNTIME", "unix:///run/pier/runtime.sock");
  g.tls.ca = Env("PIER_TLS_CA", "");
  g.tls.cert = Env("PIER_TLS_CERT", "");
  g.tls.key = Env("PIER_TLS_KEY", "");
  FlagSet flags("pier", "[global flags] COMMAND [ARGS...]");
  flags.String("registry", "", &g.registry, "pier-registry address");
  flags.String("builder", "", &g.builder, "pier-builder address");
  flags.String("runtime", "", &g.runtime, "pier-runtime address");
  flags.String("tls-ca", "", &g.tls.ca, "CA bundle");
  flags.String("tls-cert", "", &g.tls.cert, "client certificate");
  flags.String("tls-key", "", &g.tls.key, "client key");
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
}  // namespace pier::cli

int main(int argc, char** argv) { return pier::cli::Main(argc, argv); }
