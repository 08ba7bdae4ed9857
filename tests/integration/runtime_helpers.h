// Test helpers shared by the tests that drive pier-runtime over gRPC.
#pragma once

#include <string>

#include "pier/runtime/v1/runtime.grpc.pb.h"

namespace pier::testing {

// RunContainer; fills `id` (empty when the call failed).
grpc::Status RunContainer(pier::runtime::v1::ContainerService::Stub& stub,
                          const pier::runtime::v1::ContainerSpec& spec, std::string* id);

// WaitContainer with a 30 s deadline; a failed call is a test failure and
// returns the response's default exit code.
int WaitContainer(pier::runtime::v1::ContainerService::Stub& stub, const std::string& id);

}  // namespace pier::testing
