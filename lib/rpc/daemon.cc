#include "lib/rpc/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/support/server_interceptor.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/common/fs.h"
#include "lib/common/log.h"
#include "lib/common/status.h"

namespace pier::rpc {
namespace {

absl::Status ParseLogLevel(const std::string& level) {
  if (level == "debug") {
    SetMinLogLevel(LogLevel::kDebug);
  } else if (level == "info") {
    SetMinLogLevel(LogLevel::kInfo);
  } else if (level == "warning" || level == "warn") {
    SetMinLogLevel(LogLevel::kWarning);
  } else if (level == "error") {
    SetMinLogLevel(LogLevel::kError);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid --log-level \"", level, "\" (debug|info|warning|error)"));
  }
  return absl::OkStatus();
}

// Takes an exclusive lock on <root>/LOCK for the life of the process.
absl::StatusOr<UniqueFd> LockRoot(const std::string& root, const std::string& name) {
  RETURN_IF_ERROR(MakeDirs(root, 0700));
  std::string path = JoinPath(root, "LOCK");
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", path));
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("data root ", root, " is in use by another ", name));
    }
    return ErrnoStatus(errno, absl::StrCat("lock ", path));
  }
  return fd;
}

// Removes a stale unix socket file and creates its directory.
absl::Status PrepareUnixSocket(const std::string& listen) {
  std::string path;
  if (absl::StartsWith(listen, "unix://")) {
    path = listen.substr(7);
  } else if (absl::StartsWith(listen, "unix:")) {
    path = listen.substr(5);
  } else {
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(MakeDirs(Dirname(path), 0755));
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("--listen ", listen, ": ", path, " exists and is not a socket"));
    }
    ::unlink(path.c_str());
  }
  return absl::OkStatus();
}

std::string BoundAddress(const std::string& listen, int port) {
  if (absl::StartsWith(listen, "unix:")) return listen;
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return listen;
  return absl::StrCat(listen.substr(0, colon), ":", port);
}

// Counts calls in flight, so that SIGTERM waits only while there is work:
// gRPC's own Shutdown(deadline) also waits for idle client connections to
// close, which long-lived clients never do.
std::atomic<int64_t> g_calls_in_flight{0};

class CallCounter : public grpc::experimental::Interceptor {
 public:
  CallCounter() { g_calls_in_flight.fetch_add(1); }
  ~CallCounter() override { g_calls_in_flight.fetch_sub(1); }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }
};

class CallCounterFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo*) override {
    return new CallCounter();
  }
};

class Context : public DaemonContext {
 public:
  Context(std::string name, DaemonOptions options)
      : name_(std::move(name)), options_(std::move(options)) {}
  const DaemonOptions& options() const override { return options_; }
  void RegisterService(grpc::Service* service) override { services_.push_back(service); }
  void Announce(const std::string& kind, const std::string& address) override {
    std::printf("%s: %s listening on %s\n", name_.c_str(), kind.c_str(), address.c_str());
    std::fflush(stdout);
    PIER_LOG(INFO) << kind << " listening on " << address;
  }
  void OnStop(StopFn stop) override { stops_.push_back(std::move(stop)); }
  void SetServing(const std::string& service, bool serving) override {
    if (server_ != nullptr && server_->GetHealthCheckService() != nullptr) {
      server_->GetHealthCheckService()->SetServingStatus(service, serving);
    }
  }

  std::string name_;
  DaemonOptions options_;
  std::vector<grpc::Service*> services_;
  std::vector<StopFn> stops_;
  grpc::Server* server_ = nullptr;
};

}  // namespace

int RunDaemon(const DaemonSpec& spec, int argc, char** argv) {
  // Block the stop signals before any thread exists, so every thread inherits
  // the mask and only sigwait() below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  DaemonOptions opts;
  opts.listen = spec.default_listen;
  opts.root = spec.default_root;
  FlagSet flags(spec.name, "[flags]");
  flags.String(
      "listen", "", &opts.listen,
      absl::StrCat("gRPC address, host:port or unix:///path (default ", spec.default_listen, ")"));
  flags.String("root", "", &opts.root,
               absl::StrCat("data directory (default ", spec.default_root, ")"));
  flags.String("config", "", &opts.config, "config file of `name = value` lines");
  flags.String("tls-cert", "", &opts.tls.cert, "PEM certificate to serve TLS with");
  flags.String("tls-key", "", &opts.tls.key, "PEM private key for --tls-cert");
  flags.String("tls-client-ca", "", &opts.tls.ca, "PEM CA; clients must present a cert it signed");
  flags.String("log-level", "", &opts.log_level, "debug|info|warning|error (default info)");
  flags.Int("shutdown-grace", "", &opts.shutdown_grace_ms,
            "milliseconds SIGTERM waits for in-flight calls (default 1500)");
  if (spec.add_flags) spec.add_flags(flags);

  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<std::vector<std::string>> positional = flags.Parse(args);
  if (!positional.ok()) {
    if (absl::IsCancelled(positional.status())) {
      std::cout << flags.Usage();
      return 0;
    }
    std::cerr << spec.name << ": " << positional.status().message() << "\n"
              << "Run '" << spec.name << " --help' for usage.\n";
    return 2;
  }
  if (!positional->empty()) {
    std::cerr << spec.name << ": unexpected argument \"" << (*positional)[0] << "\"\n";
    return 2;
  }
  if (!opts.config.empty()) {
    if (absl::Status s = flags.ApplyConfigFile(opts.config); !s.ok()) {
      std::cerr << spec.name << ": " << s.message() << "\n";
      return 2;
    }
  }
  if (absl::Status s = ParseLogLevel(opts.log_level); !s.ok()) {
    std::cerr << spec.name << ": " << s.message() << "\n";
    return 2;
  }

  PIER_LOG(DEBUG) << "settings: listen=" << opts.listen << " root=" << opts.root
                  << " config=" << opts.config << " tls=" << (opts.tls.enabled() ? "on" : "off");
  absl::StatusOr<UniqueFd> lock = LockRoot(opts.root, spec.name);
  if (!lock.ok()) {
    PIER_LOG(ERROR) << lock.status().message();
    return 1;
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds = MakeServerCredentials(opts.tls);
  if (!creds.ok()) {
    PIER_LOG(ERROR) << creds.status().message();
    return 1;
  }
  if (absl::Status s = PrepareUnixSocket(opts.listen); !s.ok()) {
    PIER_LOG(ERROR) << s.message();
    return 1;
  }

  Context ctx(spec.name, opts);
  if (spec.setup) {
    if (absl::Status s = spec.setup(ctx); !s.ok()) {
      PIER_LOG(ERROR) << "setup failed: " << s;
      return 1;
    }
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(opts.listen, *creds, &port);
  builder.SetMaxReceiveMessageSize(-1);
  builder.SetMaxSendMessageSize(-1);
  // A second daemon on a taken port must fail, not share it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  for (grpc::Service* s : ctx.services_) builder.RegisterService(s);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<CallCounterFactory>());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || (port == 0 && !absl::StartsWith(opts.listen, "unix:"))) {
    PIER_LOG(ERROR) << "cannot listen on " << opts.listen
                    << " (address in use, or not a valid host:port / unix:///path)";
    return 1;
  }
  ctx.server_ = server.get();
  ctx.SetServing("", true);
  ctx.Announce("grpc", BoundAddress(opts.listen, port));
  if (spec.after_start) {
    if (absl::Status s = spec.after_start(ctx); !s.ok()) {
      PIER_LOG(ERROR) << "start failed: " << s;
      server->Shutdown(std::chrono::system_clock::now());
      for (auto it = ctx.stops_.rbegin(); it != ctx.stops_.rend(); ++it) (*it)();
      return 1;
    }
  }

  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  PIER_LOG(INFO) << "received " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ", stopping";
  server->GetHealthCheckService()->Shutdown();
  // Drain: wait (bounded by the grace period) while calls are in flight,
  // then shut down, cancelling whatever is left.
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(opts.shutdown_grace_ms);
  while (g_calls_in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (int64_t left = g_calls_in_flight.load(); left > 0) {
    PIER_LOG(WARNING) << "cancelling " << left << " calls still in flight";
  }
  server->Shutdown(std::chrono::system_clock::now());
  PIER_LOG(DEBUG) << "gRPC server drained";
  for (auto it = ctx.stops_.rbegin(); it != ctx.stops_.rend(); ++it) (*it)();
  server->Wait();
  PIER_LOG(INFO) << "stopped";
  return 0;
}

}  // namespace pier::rpc
