#include "lib/rpc/status.h"

#include "lib/common/testing.h"

namespace pier::rpc {
namespace {

TEST(RpcStatusTest, CodesAndMessagesSurviveBothWays) {
  for (int c = 0; c <= 16; ++c) {
    absl::Status s(static_cast<absl::StatusCode>(c), c == 0 ? "" : "blob sha256:x");
    grpc::Status g = ToGrpcStatus(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), c);
    EXPECT_EQ(FromGrpcStatus(g), s);
  }
  EXPECT_EQ(ToGrpcStatus(absl::NotFoundError("blob unknown")).error_message(), "blob unknown");
}

}  // namespace
}  // namespace pier::rpc
