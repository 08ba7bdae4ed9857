// TLS and mTLS credentials and channel creation for Pier's gRPC edges.
//
// Server side: with no certificate the server listens in plaintext (loopback
// and unix sockets are the defaults); with --tls-cert/--tls-key it serves TLS;
// adding --tls-client-ca requires and verifies client certificates (mTLS).
// Client side: with a CA file the channel verifies the server; with a client
// certificate and key it presents them.
//
// Addresses: "host:port", "[::1]:port", "unix:///abs/path" or "unix:/abs/path".
// Functions return NotFound naming the file when a PEM file is missing and
// InvalidArgument for an inconsistent set (a key without a certificate).
// Thread safety: stateless.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace pier::rpc {

struct TlsFiles {
  std::string cert;                  // PEM certificate chain presented by this side.
  std::string key;                   // PEM private key for `cert`.
  std::string ca;                    // PEM CA bundle used to verify the peer.
  std::string server_name_override;  // Client only: expected server name.
  bool enabled() const { return !cert.empty() || !ca.empty(); }
};

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const TlsFiles& tls);

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& tls);

// Creates a channel to `address` with unlimited message size for streaming
// blob transfer.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& address,
                                                           const TlsFiles& tls = {});

// The process's one channel to `address` with `tls`, created on first use and
// never destroyed. For short-lived clients (the CLI): verbs that call several
// services on one daemon share one connection, exit does not pay for
// tearing the channel down, and the channel has no retry machinery.
absl::StatusOr<std::shared_ptr<grpc::Channel>> SharedChannel(const std::string& address,
                                                             const TlsFiles& tls = {});

}  // namespace pier::rpc
