#include "lib/oci/reference.h"

#include "lib/common/testing.h"

namespace pier::oci {
namespace {

using ::pier::testing::StatusIs;

TEST(ReferenceTest, NormalisesLikeDocker) {
  ASSERT_OK_AND_ASSIGN(Reference r, Reference::Parse("busybox"));
  EXPECT_EQ(r.String(), "docker.io/library/busybox:latest");
  ASSERT_OK_AND_ASSIGN(r, Reference::Parse("busybox", "localhost:5000"));
  EXPECT_EQ(r.String(), "localhost:5000/busybox:latest");
  ASSERT_OK_AND_ASSIGN(r, Reference::Parse("localhost/busybox:1.36"));
  EXPECT_EQ(r.registry, "localhost");
  EXPECT_EQ(r.repository, "busybox");
  EXPECT_EQ(r.tag, "1.36");
  ASSERT_OK_AND_ASSIGN(r, Reference::Parse("127.0.0.1:5000/demo/web:v1"));
  EXPECT_EQ(r.registry, "127.0.0.1:5000");
  EXPECT_EQ(r.repository, "demo/web");
  EXPECT_EQ(r.ManifestReference(), "v1");
  std::string d = "sha256:" + std::string(64, 'e');
  ASSERT_OK_AND_ASSIGN(r, Reference::Parse("my.reg/a/b/c@" + d));
  EXPECT_EQ(r.tag, "");
  EXPECT_EQ(r.ManifestReference(), d);
  EXPECT_EQ(r.String(), "my.reg/a/b/c@" + d);
  ASSERT_OK_AND_ASSIGN(r, Reference::Parse("user/app", "docker.io", false));
  EXPECT_EQ(r.String(), "docker.io/user/app");
}

TEST(ReferenceTest, RejectsInvalid) {
  for (const char* bad :
       {"", "Busybox", "busybox:", "a//b", "-a", "a:tag with space", "a@sha256:1234", "reg.io/",
        "a:"
        "........",
        "UPPER/case"}) {
    EXPECT_THAT(Reference::Parse(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  EXPECT_TRUE(IsValidRepository("a/b-c/d__e.f"));
  EXPECT_FALSE(IsValidRepository("a/b_-c"));
  EXPECT_TRUE(IsValidTag("v1.0_rc-1"));
  EXPECT_FALSE(IsValidTag(".hidden"));
  EXPECT_FALSE(IsValidTag(std::string(129, 'a')));
}

}  // namespace
}  // namespace pier::oci
