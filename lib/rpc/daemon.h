// The shared bootstrap of every Pier daemon (pier-registry, pier-builder,
// pier-runtime): flags, config file, data root, gRPC server with the standard
// health service and reflection, TLS/mTLS, and graceful stop on SIGTERM.
//
// A daemon's main() only wires: it fills a DaemonSpec and calls RunDaemon().
//
//   --listen=ADDR        gRPC address: host:port (port 0 picks a free port) or
//                        unix:///path
//   --root=DIR           data directory (created 0700, locked so that two
//                        daemons never share one)
//   --config=FILE        `name = value` lines; flags on the command line win
//   --tls-cert/--tls-key/--tls-client-ca   TLS, and mTLS with a client CA
//   --log-level=LEVEL    debug|info|warning|error
//   --shutdown-grace=MS  how long SIGTERM waits for in-flight calls
//
// Once serving, the daemon prints one line per listener to stdout,
// "<name>: <kind> listening on <address>" (kind is grpc, or http for the
// registry's HTTP front door), so scripts and tests can find port-0 addresses.
// On SIGTERM or SIGINT it sets health to NOT_SERVING, drains in-flight calls
// for at most --shutdown-grace, cancels the rest, and exits 0.
//
// Thread safety: RunDaemon runs once per process, from main().
#pragma once

#include <grpcpp/server.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/common/flags.h"
#include "lib/rpc/credentials.h"

namespace pier::rpc {

struct DaemonOptions {
  std::string listen;
  std::string root;
  std::string config;
  TlsFiles tls;
  std::string log_level = "info";
  int64_t shutdown_grace_ms = 1500;
};

// What a service hands back from setup: called on shutdown after the gRPC
// server has drained, in reverse order of registration.
using StopFn = std::function<void()>;

// Passed to DaemonSpec::setup: register gRPC services, start side listeners,
// and announce them.
class DaemonContext {
 public:
  virtual ~DaemonContext() = default;
  virtual const DaemonOptions& options() const = 0;
  // Registers a service on the gRPC server; `service` must outlive the server.
  virtual void RegisterService(grpc::Service* service) = 0;
  // Prints "<name>: <kind> listening on <address>" for a side listener.
  virtual void Announce(const std::string& kind, const std::string& address) = 0;
  // Runs `stop` at shutdown.
  virtual void OnStop(StopFn stop) = 0;
  // Marks a named gRPC service's health (the empty name is the server).
  virtual void SetServing(const std::string& service, bool serving) = 0;
};

struct DaemonSpec {
  std::string name;            // "pier-registry"
  std::string default_listen;  // "127.0.0.1:5050"
  std::string default_root;    // "/var/lib/pier/registry"
  // Registers the daemon's own flags (e.g. --http-listen).
  std::function<void(FlagSet&)> add_flags;
  // Builds the daemon's services once flags are parsed and the root exists.
  // Called before the gRPC server starts listening.
  std::function<absl::Status(DaemonContext&)> setup;
  // Called after the gRPC server is listening (e.g. to start HTTP).
  std::function<absl::Status(DaemonContext&)> after_start;
};

// Parses flags, sets up, serves until SIGTERM/SIGINT, stops. Returns the
// process exit code: 0 on a clean stop or --help, 2 for bad flags, 1 when
// setup or binding fails (the reason is logged).
int RunDaemon(const DaemonSpec& spec, int argc, char** argv);

}  // namespace pier::rpc
