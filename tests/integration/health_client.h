// Test helpers that talk to a running Pier daemon over gRPC: the standard
// health check and the server-reflection service list.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "lib/rpc/credentials.h"

namespace pier::testing {

// Returns the health status name ("SERVING", "NOT_SERVING", ...) of
// `service` ("" for the server), or the RPC's error.
absl::StatusOr<std::string> CheckHealth(const std::string& address, const rpc::TlsFiles& tls = {},
                                        const std::string& service = "");

// Returns the raw ServerReflectionResponse to a list_services request; the
// service names appear in it verbatim.
absl::StatusOr<std::string> ReflectionListServices(const std::string& address);

}  // namespace pier::testing
