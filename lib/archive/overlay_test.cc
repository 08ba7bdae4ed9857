// Layers from overlayfs upper directories: built by hand (0/0 character
// devices, opaque xattrs) and produced by a real overlay mount, then applied
// both ways (deleting whiteouts into a flat tree, and as overlay-native
// whiteouts in a layer directory mounted under overlayfs again).
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/archive/archive_test_util.h"
#include "lib/archive/layer_apply.h"
#include "lib/archive/layer_writer.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "lib/common/testing.h"

namespace pier::archive {
namespace {

using ::pier::testing::StatusIs;
using ::pier::testing::TempDir;
using testing::Apply;
using ::testing::Contains;
using testing::Created;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

absl::StatusOr<Created> CreateFromUpper(const std::string& upper) {
  Created c;
  ASSIGN_OR_RETURN(c.info, CreateLayerFromOverlayUpper(upper, StringSink(&c.bytes)));
  return c;
}

absl::Status Mknod00(const std::string& path) {
  if (::mknod(path.c_str(), S_IFCHR, makedev(0, 0)) != 0) {
    return ErrnoStatus(errno, absl::StrCat("mknod ", path));
  }
  return absl::OkStatus();
}

class OverlayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) FAIL() << "required: needs root (mknod, trusted.* xattrs, mount)";
  }
  TempDir tmp_;
};

TEST_F(OverlayTest, HandBuiltUpperDirectory) {
  const std::string upper = tmp_.Sub("upper");
  ASSERT_OK(testing::WriteFile(upper + "/changed", "new content"));
  ASSERT_OK(testing::WriteFile(upper + "/dir/file", "x"));
  ASSERT_OK(testing::SetXattr(upper + "/dir", "trusted.overlay.origin", std::string("\0\xfb", 2)));
  ASSERT_OK(testing::SetXattr(upper + "/dir", "trusted.overlay.impure", "y"));
  ASSERT_OK(testing::SetXattr(upper + "/dir", "user.keep", "1"));
  ASSERT_OK(Mknod00(upper + "/gone"));
  ASSERT_OK(Mknod00(upper + "/dir/gone_too"));
  ASSERT_OK(testing::WriteFile(upper + "/opq/new", "x"));
  ASSERT_OK(testing::SetXattr(upper + "/opq", "trusted.overlay.opaque", "y"));
  ASSERT_OK(testing::WriteFile(upper + "/uopq/new", "x"));
  ASSERT_OK(testing::SetXattr(upper + "/uopq", "user.overlay.opaque", "y"));
  ASSERT_OK(testing::MakeDir(upper + "/notopq"));
  ASSERT_OK(testing::SetXattr(upper + "/notopq", "trusted.overlay.opaque", "x"));
  // A real device that is not 0/0 stays a device.
  ASSERT_EQ(::mknod((upper + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);

  ASSERT_OK_AND_ASSIGN(Created layer, CreateFromUpper(upper));
  EXPECT_THAT(*testing::ListLayer(layer.bytes),
              ElementsAre("changed f", "dir/ d xattr=user.keep", "dir/file f", "dir/.wh.gone_too f",
                          ".wh.gone f", "notopq/ d", "null c", "opq/ d", "opq/.wh..wh..opq f",
                          "opq/new f", "uopq/ d", "uopq/.wh..wh..opq f", "uopq/new f"));

  // Applied over a lower tree: deletions, opaque directories, new content.
  const std::string dst = tmp_.Sub("dst");
  ASSERT_OK(testing::WriteFile(dst + "/gone", "lower"));
  ASSERT_OK(testing::WriteFile(dst + "/dir/gone_too/deep", "lower"));
  ASSERT_OK(testing::WriteFile(dst + "/dir/stays", "lower"));
  ASSERT_OK(testing::WriteFile(dst + "/opq/old", "lower"));
  ASSERT_OK(testing::WriteFile(dst + "/uopq/old/deep", "lower"));
  ASSERT_OK(testing::WriteFile(dst + "/notopq/old", "lower"));
  ASSERT_OK(Apply(layer.bytes, dst).status());
  ASSERT_OK_AND_ASSIGN(auto tree,
                       testing::DescribeTree(dst, {.mtimes = false, .dir_mtimes = false}));
  std::vector<std::string> paths;
  for (const auto& [path, desc] : tree) paths.push_back(path);
  EXPECT_THAT(paths, ElementsAre("changed", "dir", "dir/file", "dir/stays", "notopq", "notopq/old",
                                 "null", "opq", "opq/new", "uopq", "uopq/new"));
  EXPECT_THAT(testing::GetXattr(dst + "/dir", "trusted.overlay.origin"),
              Not(pier::testing::IsOk()));
}

TEST_F(OverlayTest, RedirectAndMetacopyAreRefused) {
  const std::string upper = tmp_.Sub("upper");
  ASSERT_OK(testing::MakeDir(upper + "/renamed"));
  ASSERT_OK(testing::SetXattr(upper + "/renamed", "trusted.overlay.redirect", "/orig"));
  EXPECT_THAT(CreateFromUpper(upper), StatusIs(absl::StatusCode::kFailedPrecondition,
                                               HasSubstr("trusted.overlay.redirect")));
  const std::string upper2 = tmp_.Sub("upper2");
  ASSERT_OK(testing::WriteFile(upper2 + "/meta", ""));
  ASSERT_OK(testing::SetXattr(upper2 + "/meta", "trusted.overlay.metacopy", ""));
  EXPECT_THAT(CreateFromUpper(upper2),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("metacopy")));
}

// Mounts an overlay for the life of the object.
class OverlayMount {
 public:
  OverlayMount(const std::string& target, const std::string& options) : target_(target) {
    (void)MakeDirs(target);
    if (::mount("overlay", target.c_str(), "overlay", 0, options.c_str()) == 0) {
      mounted_ = true;
    } else {
      error_ = errno;
    }
  }
  ~OverlayMount() { Unmount(); }
  void Unmount() {
    if (mounted_) ::umount2(target_.c_str(), MNT_DETACH);
    mounted_ = false;
  }
  bool mounted() const { return mounted_; }
  int error() const { return error_; }

 private:
  std::string target_;
  bool mounted_ = false;
  int error_ = 0;
};

// Whether overlayfs is missing or not allowed here (the only reasons to skip).
bool Unavailable(int err) { return err == ENODEV || err == EPERM; }

absl::Status BuildBase(const std::string& root) {
  using namespace testing;  // NOLINT: test helpers
  RETURN_IF_ERROR(WriteFile(root + "/etc/a", "a"));
  RETURN_IF_ERROR(WriteFile(root + "/etc/b", "b"));
  RETURN_IF_ERROR(WriteFile(root + "/var/log/x", "log"));
  RETURN_IF_ERROR(WriteFile(root + "/var/log/sub/y", "log"));
  RETURN_IF_ERROR(WriteFile(root + "/var/cache/y", "cache"));
  RETURN_IF_ERROR(WriteFile(root + "/usr/bin/tool", "tool", 0755));
  RETURN_IF_ERROR(WriteFile(root + "/opt/dir/1", "1"));
  RETURN_IF_ERROR(WriteFile(root + "/opt/dir/sub/2", "2"));
  RETURN_IF_ERROR(WriteFile(root + "/usr/lib/hard", "hard"));
  if (::link((root + "/usr/lib/hard").c_str(), (root + "/usr/lib/hard2").c_str()) != 0) {
    return ErrnoStatus(errno, "link");
  }
  RETURN_IF_ERROR(Symlink("usr/bin", root + "/bin"));
  return absl::OkStatus();
}

// Changes made through a real overlay mount become a layer whose application
// over the lower tree reproduces the merged view exactly; the same layer
// unpacked with overlay-native whiteouts and mounted as a second lower layer
// shows the same view again.
TEST_F(OverlayTest, RealOverlayMountRoundTrip) {
  const std::string base = tmp_.Sub("base"), lower = tmp_.Sub("lower"), upper = tmp_.Sub("upper"),
                    work = tmp_.Sub("work"), merged = tmp_.Sub("merged");
  ASSERT_OK(BuildBase(base));
  ASSERT_OK_AND_ASSIGN(Created base_layer, testing::CreateFromDir(base));
  ASSERT_OK(Apply(base_layer.bytes, lower).status());
  ASSERT_OK(MakeDirs(upper));
  ASSERT_OK(MakeDirs(work));

  std::map<std::string, std::string> expected;
  {
    OverlayMount mnt(merged, absl::StrCat("lowerdir=", lower, ",upperdir=", upper,
                                          ",workdir=", work, ",redirect_dir=off,metacopy=off"));
    if (!mnt.mounted() && Unavailable(mnt.error())) FAIL() << "required: no overlayfs here";
    ASSERT_TRUE(mnt.mounted()) << strerror(mnt.error());
    using testing::WriteFile;
    ASSERT_EQ(::unlink((merged + "/etc/a").c_str()), 0);
    ASSERT_OK(WriteFile(merged + "/etc/b", "b changed"));
    ASSERT_OK(RemoveAll(merged + "/var/log"));
    ASSERT_OK(RemoveAll(merged + "/opt/dir"));
    ASSERT_OK(WriteFile(merged + "/opt/dir/3", "3"));  // recreated: opaque
    ASSERT_EQ(::chmod((merged + "/usr/bin/tool").c_str(), 0700), 0);
    ASSERT_OK(WriteFile(merged + "/new/file", "new"));
    ASSERT_OK(testing::Chown(merged + "/new/file", 1234, 5678));
    ASSERT_OK(testing::SetXattr(merged + "/var/cache/y", "user.tag", "v"));
    ASSERT_OK(testing::Symlink("../etc/b", merged + "/new/link"));
    ASSERT_OK_AND_ASSIGN(expected, testing::DescribeTree(merged));
  }

  ASSERT_OK_AND_ASSIGN(Created layer, CreateFromUpper(upper));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> entries, testing::ListLayer(layer.bytes));
  EXPECT_THAT(entries, Contains("etc/.wh.a f"));
  EXPECT_THAT(entries, Contains("var/.wh.log f"));
  EXPECT_THAT(entries, Contains("opt/dir/.wh..wh..opq f"));
  EXPECT_THAT(entries, Contains("etc/b f"));
  EXPECT_THAT(entries, Not(Contains("usr/lib/hard f")));

  const std::string flat = tmp_.Sub("flat");
  ASSERT_OK(Apply(base_layer.bytes, flat).status());
  ASSERT_OK(Apply(layer.bytes, flat).status());
  EXPECT_EQ(*testing::DescribeTree(flat), expected);

  // Overlay-native: the layer in its own directory, stacked on the lower one.
  const std::string layer_dir = tmp_.Sub("layer"), view = tmp_.Sub("view");
  ApplyOptions options;
  options.whiteout_mode = WhiteoutMode::kOverlay;
  ASSERT_OK(Apply(layer.bytes, layer_dir, options).status());
  OverlayMount stacked(view, absl::StrCat("lowerdir=", layer_dir, ":", lower));
  ASSERT_TRUE(stacked.mounted()) << strerror(stacked.error());
  EXPECT_EQ(*testing::DescribeTree(view), expected);
}

}  // namespace
}  // namespace pier::archive
