// The one mapping between absl::Status and grpc::Status in Pier.
//
// Both use the same canonical codes (checked on gRPC 1.51), so the mapping is
// a plain code cast that keeps the message. Services return ToGrpcStatus() of
// their domain status; clients turn what they receive back with
// FromGrpcStatus().
// Thread safety: stateless.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace pier::rpc {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace pier::rpc
