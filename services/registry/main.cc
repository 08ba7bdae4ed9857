// pier-registry: the Ship service. Wiring only; see docs/architecture.md.
//
// Data under --root: content/ (blobs and upload ingests, see
// lib/content/content_store.h), meta/ (RocksDB, see
// services/registry/storage/registry.h) and token.key (the token signing
// key, created on first use in token mode).
#include <atomic>
#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "lib/common/fs.h"
#include "lib/common/log.h"
#include "lib/common/process.h"
#include "lib/common/status.h"
#include "lib/content/filesystem_driver.h"
#include "lib/http/server.h"
#include "lib/kv/kv_store.h"
#include "lib/rpc/daemon.h"
#include "services/registry/auth/authorizer.h"
#include "services/registry/http/auth_hook.h"
#include "services/registry/http/distribution.h"
#include "services/registry/http/metrics.h"
#include "services/registry/server/registry_service.h"
#include "services/registry/storage/registry.h"

namespace {

namespace auth = pier::registry::auth;

struct Flags {
  std::string http_listen = "127.0.0.1:5000";
  std::string auth_mode = "none";
  std::string htpasswd;
  std::string http_client_ca;
  std::string token_realm;
  std::string token_service = "pier-registry";
  std::string token_key;
  int64_t token_ttl_s = 300;
  bool anonymous_pull = false;
  bool access_log = true;
  bool sendfile = false;
};

struct State {
  std::unique_ptr<pier::content::ContentStore> content;
  std::unique_ptr<pier::kv::KvStore> meta;
  std::unique_ptr<pier::registry::Registry> registry;
  std::unique_ptr<auth::Authorizer> authorizer;
  std::unique_ptr<pier::registry::RegistryService> grpc_service;
  std::unique_ptr<pier::registry::Metrics> metrics;
  // The HTTP side's authorizer carries the token realm, known once bound.
  std::unique_ptr<auth::Authorizer> http_authorizer;
  std::unique_ptr<pier::registry::DistributionApi> api;
  // Published to the HTTP handler once everything above is built.
  std::atomic<pier::registry::DistributionApi*> api_ready{nullptr};
  std::unique_ptr<pier::http::Server> http;
};

}  // namespace

int main(int argc, char** argv) {
  pier::InitProcess();
  Flags f;
  State state;
  pier::rpc::DaemonSpec spec;
  spec.name = "pier-registry";
  spec.default_listen = "127.0.0.1:5050";
  spec.default_root = "/var/lib/pier/registry";
  spec.add_flags = [&](pier::FlagSet& flags) {
    flags.String("http-listen", "", &f.http_listen,
                 "OCI Distribution HTTP API address, host:port (default 127.0.0.1:5000; "
                 "\"off\" disables it)");
    flags.String("http-tls-client-ca", "", &f.http_client_ca,
                 "PEM CA; HTTP clients must present a cert it signed (needs --tls-cert)");
    flags.String("auth", "", &f.auth_mode, "none|basic|token (default none)");
    flags.String("htpasswd", "", &f.htpasswd, "htpasswd file of bcrypt users (basic, token)");
    flags.String("token-realm", "", &f.token_realm,
                 "token endpoint URL sent in challenges (default <http address>/token)");
    flags.String("token-service", "", &f.token_service, "token service name (pier-registry)");
    flags.String("token-key", "", &f.token_key, "token signing key file (<root>/token.key)");
    flags.Int("token-ttl", "", &f.token_ttl_s, "token lifetime in seconds (default 300)");
    flags.Bool("anonymous-pull", "", &f.anonymous_pull, "let clients without credentials pull");
    flags.Bool("access-log", "", &f.access_log, "log one line per HTTP request (default true)");
    flags.Bool("sendfile", "", &f.sendfile,
               "send blobs with sendfile(2) instead of through a 256 KiB buffer (default "
               "false: on loopback and this kernel the buffer is faster and cheaper)");
  };
  spec.setup = [&](pier::rpc::DaemonContext& ctx) -> absl::Status {
    const std::string& root = ctx.options().root;
    RETURN_IF_ERROR(pier::MakeDirs(root + "/content", 0700));
    state.content = std::make_unique<pier::content::ContentStore>(
        std::make_unique<pier::content::FilesystemDriver>(root + "/content"));
    ASSIGN_OR_RETURN(state.meta, pier::kv::OpenRocksDb(root + "/meta"));
    state.registry =
        std::make_unique<pier::registry::Registry>(state.content.get(), state.meta.get());
    auth::AuthConfig cfg;
    ASSIGN_OR_RETURN(cfg.mode, auth::ParseAuthMode(f.auth_mode));
    cfg.htpasswd_path = f.htpasswd;
    cfg.token_service = f.token_service;
    cfg.token_issuer = f.token_service;
    cfg.token_key_path = f.token_key.empty() ? root + "/token.key" : f.token_key;
    cfg.token_ttl = absl::Seconds(f.token_ttl_s);
    cfg.anonymous_pull = f.anonymous_pull;
    // The realm needs the bound HTTP address; set a placeholder that
    // after_start replaces when no --token-realm was given.
    cfg.token_realm = f.token_realm.empty() ? "http://pending/token" : f.token_realm;
    ASSIGN_OR_RETURN(state.authorizer, auth::Authorizer::Create(cfg));
    state.grpc_service = std::make_unique<pier::registry::RegistryService>(state.registry.get(),
                                                                           state.authorizer.get());
    ctx.RegisterService(state.grpc_service.get());
    return absl::OkStatus();
  };
  spec.after_start = [&](pier::rpc::DaemonContext& ctx) -> absl::Status {
    if (f.http_listen == "off") return absl::OkStatus();
    state.metrics = std::make_unique<pier::registry::Metrics>();
    pier::http::ServerOptions opts;
    opts.listen = f.http_listen;
    opts.tls_cert_file = ctx.options().tls.cert;
    opts.tls_key_file = ctx.options().tls.key;
    opts.tls_client_ca_file = f.http_client_ca;
    if (!f.http_client_ca.empty() && opts.tls_cert_file.empty()) {
      return absl::InvalidArgumentError("--http-tls-client-ca needs --tls-cert and --tls-key");
    }
    opts.shutdown_grace = absl::Milliseconds(ctx.options().shutdown_grace_ms);
    pier::registry::AuthorizeFn authorize;
    bool token_mode = state.authorizer->config().mode == auth::AuthMode::kToken;
    pier::registry::Metrics* metrics = state.metrics.get();
    bool access_log = f.access_log;
    State* st = &state;
    ASSIGN_OR_RETURN(
        state.http, pier::http::Server::Start(opts, [=](pier::http::Request& req,
                                                        pier::http::ResponseWriter& w) {
          auto started = std::chrono::steady_clock::now();
          pier::registry::RequestStats stats;
          {
            pier::registry::ScopedRequestStats scope(&stats);
            pier::registry::DistributionApi* api = st->api_ready.load();
            if (api == nullptr) {
              w.SetStatus(503);
              (void)w.Send("starting\n");
            } else if (token_mode && req.path == "/token") {
              pier::registry::ServeToken(*st->http_authorizer, req, w);
            } else {
              api->Handle(req, w);
            }
          }
          double seconds =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
          metrics->Record(req.method, w.status(), seconds, stats);
          if (access_log) {
            PIER_LOG(INFO) << "access remote=" << req.remote_address << " method=" << req.method
                           << " path=" << req.target << " status=" << w.status()
                           << " bytes_in=" << stats.bytes_in << " bytes_out=" << stats.bytes_out
                           << " duration_ms=" << static_cast<int64_t>(seconds * 1000)
                           << " user=" << (stats.user.empty() ? "-" : stats.user);
          }
        }));
    std::string scheme = opts.tls_cert_file.empty() ? "http" : "https";
    auth::AuthConfig cfg = state.authorizer->config();
    if (f.token_realm.empty()) {
      cfg.token_realm = absl::StrCat(scheme, "://", state.http->address(), "/token");
    }
    ASSIGN_OR_RETURN(state.http_authorizer, auth::Authorizer::Create(cfg));
    state.api = std::make_unique<pier::registry::DistributionApi>(
        state.registry.get(), state.metrics.get(),
        pier::registry::MakeHttpAuthorizer(state.http_authorizer.get()));
    state.api->set_use_sendfile(f.sendfile);
    state.api_ready.store(state.api.get());
    ctx.Announce("http", state.http->address());
    ctx.OnStop([&state] { state.http->Stop(); });
    return absl::OkStatus();
  };
  return pier::rpc::RunDaemon(spec, argc, argv);
}
