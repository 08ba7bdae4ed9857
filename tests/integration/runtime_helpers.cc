#include "tests/integration/runtime_helpers.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "gtest/gtest.h"

namespace pier::testing {

namespace v1 = ::pier::runtime::v1;

grpc::Status RunContainer(v1::ContainerService::Stub& stub, const v1::ContainerSpec& spec,
                          std::string* id) {
  grpc::ClientContext c;
  v1::RunContainerRequest req;
  *req.mutable_spec() = spec;
  v1::RunContainerResponse resp;
  grpc::Status s = stub.RunContainer(&c, req, &resp);
  *id = resp.id();
  return s;
}

int WaitContainer(v1::ContainerService::Stub& stub, const std::string& id) {
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::WaitContainerRequest req;
  req.set_id(id);
  v1::WaitContainerResponse resp;
  grpc::Status s = stub.WaitContainer(&c, req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return resp.exit_code();
}

}  // namespace pier::testing
