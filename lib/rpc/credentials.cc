#include "lib/rpc/credentials.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/support/channel_arguments.h>

#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"

namespace pier::rpc {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, absl::string_view what) {
  absl::StatusOr<std::string> pem = ReadFile(path);
  if (!pem.ok()) return Annotate(pem.status(), absl::StrCat(what, " ", path));
  return pem;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& tls) {
  if (tls.cert.empty() && tls.key.empty()) {
    if (!tls.ca.empty()) {
      return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
    }
    return grpc::InsecureServerCredentials();
  }
  if (tls.cert.empty() || tls.key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key must be given together");
  }
  grpc::SslServerCredentialsOptions opts(
      tls.ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                     : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  ASSIGN_OR_RETURN(pair.cert_chain, ReadPem(tls.cert, "TLS certificate"));
  ASSIGN_OR_RETURN(pair.private_key, ReadPem(tls.key, "TLS key"));
  opts.pem_key_cert_pairs.push_back(std::move(pair));
  if (!tls.ca.empty()) {
    ASSIGN_OR_RETURN(opts.pem_root_certs, ReadPem(tls.ca, "TLS client CA"));
  }
  return grpc::SslServerCredentials(opts);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& tls) {
  if (!tls.enabled()) return grpc::InsecureChannelCredentials();
  if (tls.cert.empty() != tls.key.empty()) {
    return absl::InvalidArgumentError("client certificate and key must be given together");
  }
  grpc::SslCredentialsOptions opts;
  if (!tls.ca.empty()) {
    ASSIGN_OR_RETURN(opts.pem_root_certs, ReadPem(tls.ca, "TLS CA"));
  }
  if (!tls.cert.empty()) {
    ASSIGN_OR_RETURN(opts.pem_cert_chain, ReadPem(tls.cert, "TLS client certificate"));
    ASSIGN_OR_RETURN(opts.pem_private_key, ReadPem(tls.key, "TLS client key"));
  }
  return grpc::SslCredentials(opts);
}

namespace {

absl::StatusOr<std::shared_ptr<grpc::Channel>> NewChannel(const std::string& address,
                                                          const TlsFiles& tls, bool short_lived) {
  if (address.empty()) return absl::InvalidArgumentError("empty service address");
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> creds, MakeChannelCredentials(tls));
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  // Nothing reads channelz, which costs work on every channel and call.
  args.SetInt(GRPC_ARG_ENABLE_CHANNELZ, 0);
  if (short_lived) {
    // A CLI command's channel lives for a few calls: no retry machinery
    // (a daemon's long-lived channel keeps the transparent retries that
    // cover a connection closing under a starting call).
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  }
  if (!tls.server_name_override.empty()) {
    args.SetSslTargetNameOverride(tls.server_name_override);
  }
  return grpc::CreateCustomChannel(address, creds, args);
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& address,
                                                           const TlsFiles& tls) {
  return NewChannel(address, tls, /*short_lived=*/false);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> SharedChannel(const std::string& address,
                                                             const TlsFiles& tls) {
  using Key = std::tuple<std::string, std::string, std::string, std::string, std::string>;
  static absl::Mutex mu(absl::kConstInit);
  // Leaked on purpose: destroying channels at exit only costs time.
  static auto* channels = new std::map<Key, std::shared_ptr<grpc::Channel>>();
  Key key{address, tls.cert, tls.key, tls.ca, tls.server_name_override};
  absl::MutexLock lock(&mu);
  auto it = channels->find(key);
  if (it != channels->end()) return it->second;
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> ch, NewChannel(address, tls, true));
  channels->emplace(std::move(key), ch);
  return ch;
}

}  // namespace pier::rpc
