#include "lib/exec/capabilities.h"

#include "gtest/gtest.h"
#include "lib/common/testing.h"
#include "lib/exec/spec.h"

namespace pier::exec {
namespace {

using ::pier::testing::StatusIs;

TEST(CapabilitiesTest, NamesRoundTrip) {
  ASSERT_OK_AND_ASSIGN(int chown, CapabilityFromName("CAP_CHOWN"));
  EXPECT_EQ(chown, 0);
  ASSERT_OK_AND_ASSIGN(int admin, CapabilityFromName("sys_admin"));
  EXPECT_EQ(admin, 21);
  EXPECT_EQ(CapabilityName(21), "CAP_SYS_ADMIN");
  EXPECT_THAT(CapabilityFromName("CAP_NOPE"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(CapabilitiesTest, DockerDefaultMask) {
  ASSERT_OK_AND_ASSIGN(uint64_t mask, CapabilityMask(DefaultCapabilities()));
  EXPECT_EQ(mask, 0xa80425fbULL);  // Docker's well-known CapEff
}

TEST(CapabilitiesTest, AllCoversTheKernelsCapabilities) {
  ASSERT_OK_AND_ASSIGN(uint64_t mask, CapabilityMask({"ALL"}));
  EXPECT_EQ(mask, (uint64_t{1} << (LastCapability() + 1)) - 1);
}

}  // namespace
}  // namespace pier::exec
