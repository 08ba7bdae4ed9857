// Hostile layers: each is built here with libarchive (or byte by byte) and
// applied to a target that sits next to a sentinel directory. Each must be
// refused with a precise code naming the offending entry, or, where the
// entry is legitimate but dangerous (a file over a planted symlink), be
// applied without following anything; in every case nothing outside the
// target may change.
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/archive/archive_test_util.h"
#include "lib/archive/layer_apply.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "lib/common/testing.h"

namespace pier::archive {
namespace {

using ::pier::testing::StatusIs;
using ::pier::testing::TempDir;
using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::TarBuilder;

// DataLoss (a damaged stream) or InvalidArgument (a malformed entry).
MATCHER(IsDamaged, "is DataLoss or InvalidArgument") {
  const absl::Status& s = ::pier::testing::GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == absl::StatusCode::kDataLoss || s.code() == absl::StatusCode::kInvalidArgument;
}

class HostileLayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) FAIL() << "required: needs root (chown in apply)";
    outside_ = tmp_.Sub("outside");
    target_ = tmp_.Sub("x/y/target");
    evil_ = absl::StrCat("pier-evil-", ::getpid());
    ASSERT_OK(testing::WriteFile(outside_ + "/victim", "original"));
    ASSERT_OK(testing::MakeDir(outside_ + "/dir"));
    ASSERT_OK(testing::WriteFile(outside_ + "/dir/inner", "original"));
    ASSERT_OK(MakeDirs(target_));
    ASSERT_OK_AND_ASSIGN(before_, Outside());
  }

  void TearDown() override {
    if (::geteuid() != 0) return;
    ASSERT_OK_AND_ASSIGN(auto after, Outside());
    EXPECT_EQ(after, before_) << "something outside the target changed";
    for (const std::string& dir : {std::string("/"), std::string("/tmp/"), std::string("/etc/")}) {
      EXPECT_NE(::access((dir + evil_).c_str(), F_OK), 0) << dir << evil_;
    }
    struct stat st {};
    ASSERT_EQ(::stat((outside_ + "/victim").c_str(), &st), 0);
    EXPECT_EQ(st.st_nlink, 1u) << "victim was hard-linked";
  }

  // Everything under the temp dir except the target's contents.
  absl::StatusOr<std::map<std::string, std::string>> Outside() {
    ASSIGN_OR_RETURN(auto tree, testing::DescribeTree(tmp_.path()));
    std::map<std::string, std::string> out;
    for (auto& [path, desc] : tree) {
      if (path == "x/y/target" || path.starts_with("x/y/target/")) continue;
      out[path] = desc;
    }
    return out;
  }

  absl::StatusOr<ApplyResult> Apply(const std::string& tar) {
    return ApplyLayer(StringSource(tar), target_);
  }

  static auto Refused(const std::string& entry) {
    return StatusIs(absl::StatusCode::kInvalidArgument,
                    HasSubstr(absl::StrCat("layer entry \"", entry, "\"")));
  }

  std::string Read(const std::string& path) {
    absl::StatusOr<std::string> s = ReadFile(path);
    return s.ok() ? *s : std::string("<") + std::string(s.status().message()) + ">";
  }

  TempDir tmp_;
  std::string outside_, target_, evil_;
  std::map<std::string, std::string> before_;
};

// 1
TEST_F(HostileLayerTest, DotDotEntry) {
  std::string name = "../" + evil_;
  EXPECT_THAT(Apply(TarBuilder().File(name, "x").Finish()),
              AllOf(Refused(name), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("path escapes the target"))));
}

// 2
TEST_F(HostileLayerTest, DotDotInsideThePath) {
  std::string name = "a/../../" + evil_;
  EXPECT_THAT(Apply(TarBuilder().File("a/ok", "x").File(name, "x").Finish()), Refused(name));
  std::string deep = "a/b/../../../../../" + evil_;
  EXPECT_THAT(Apply(TarBuilder().File(deep, "x").Finish()), Refused(deep));
  std::string dir = "../../" + evil_ + "/";
  EXPECT_THAT(Apply(TarBuilder().Dir(dir).Finish()), Refused(dir));
}

// 3: leading '/' is stripped (as docker does): the entry lands inside.
TEST_F(HostileLayerTest, AbsolutePathLandsInside) {
  std::string abs = outside_ + "/" + evil_;
  ASSERT_OK(Apply(TarBuilder().File(abs, "inside").File("/etc/" + evil_, "inside").Finish()));
  EXPECT_EQ(Read(target_ + abs), "inside");
  EXPECT_EQ(Read(target_ + "/etc/" + evil_), "inside");
}

// 4
TEST_F(HostileLayerTest, SymlinkToAbsoluteOutsideThenWriteThroughIt) {
  std::string name = "link/" + evil_;
  EXPECT_THAT(Apply(TarBuilder().Symlink("link", outside_).File(name, "x").Finish()),
              AllOf(Refused(name),
                    StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("escapes the target"))));
  // Same with a directory entry and a device below the link.
  EXPECT_THAT(Apply(TarBuilder().Symlink("l2", outside_).Dir("l2/sub/").Finish()),
              Refused("l2/sub/"));
  EXPECT_THAT(Apply(TarBuilder().Symlink("l3", "/").CharDevice("l3/tmp/" + evil_, 1, 3).Finish()),
              Refused("l3/tmp/" + evil_));
}

// 5
TEST_F(HostileLayerTest, SymlinkDotDotThenWriteThroughIt) {
  std::string name = "link/" + evil_;
  EXPECT_THAT(Apply(TarBuilder().Symlink("link", "../..").File(name, "x").Finish()), Refused(name));
  std::string deep = "deep/" + evil_;
  EXPECT_THAT(
      Apply(TarBuilder().Symlink("deep", "../../../../../../../../tmp").File(deep, "x").Finish()),
      Refused(deep));
}

// 6
TEST_F(HostileLayerTest, NestedSymlinkChainEscapes) {
  // s1 -> s2/x, s2 -> sub, sub/x -> ../s3, s3 -> ..   so s1 is the target's parent.
  std::string name = "s1/" + evil_;
  EXPECT_THAT(Apply(TarBuilder()
                        .Dir("sub/")
                        .Symlink("s3", "..")
                        .Symlink("sub/x", "../s3")
                        .Symlink("s2", "sub")
                        .Symlink("s1", "s2/x")
                        .File(name, "x")
                        .Finish()),
              Refused(name));
  // A chain that stays inside is fine.
  ASSERT_OK(Apply(TarBuilder()
                      .Dir("real/")
                      .Symlink("in2", "real")
                      .Symlink("in1", "./in2/../in2")
                      .File("in1/ok", "inside")
                      .Finish()));
  EXPECT_EQ(Read(target_ + "/real/ok"), "inside");
}

// 7
TEST_F(HostileLayerTest, SymlinkLoop) {
  EXPECT_THAT(Apply(TarBuilder()
                        .Symlink("loop1", "loop2")
                        .Symlink("loop2", "loop1")
                        .File("loop1/x", "x")
                        .Finish()),
              Refused("loop1/x"));
}

// 8
TEST_F(HostileLayerTest, HardlinkToDotDotPath) {
  EXPECT_THAT(Apply(TarBuilder().Hardlink("h", "../../etc/passwd").Finish()),
              AllOf(Refused("h"), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("hard link target \"../../etc/passwd\""))));
  EXPECT_THAT(Apply(TarBuilder().Hardlink("h2", "../../../outside/victim").Finish()),
              Refused("h2"));
}

// 9: an absolute link target means the path inside the target, where the
// victim does not exist.
TEST_F(HostileLayerTest, HardlinkToAbsolutePathOutside) {
  EXPECT_THAT(Apply(TarBuilder().Hardlink("h", outside_ + "/victim").Finish()),
              AllOf(Refused("h"),
                    StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not exist"))));
  EXPECT_THAT(Apply(TarBuilder().Hardlink("p", "/etc/passwd").Finish()), Refused("p"));
  EXPECT_NE(::access((target_ + "/h").c_str(), F_OK), 0);
}

// 10
TEST_F(HostileLayerTest, HardlinkThroughSymlinkedParent) {
  EXPECT_THAT(Apply(TarBuilder().Symlink("link", outside_).Hardlink("h", "link/victim").Finish()),
              AllOf(Refused("h"),
                    StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("escapes the target"))));
  EXPECT_THAT(Apply(TarBuilder().Hardlink("missing", "not/there").Finish()), Refused("missing"));
  EXPECT_THAT(Apply(TarBuilder().Dir("d/").Hardlink("dl", "d").Finish()), Refused("dl"));
}

// 11: a regular file over a planted symlink replaces the symlink.
TEST_F(HostileLayerTest, FileOverSymlinkReplacesIt) {
  ASSERT_OK(testing::Symlink(outside_ + "/victim", target_ + "/planted"));
  ASSERT_OK(Apply(TarBuilder()
                      .Symlink("f", outside_ + "/victim")
                      .File("f", "PWNED")
                      .File("planted", "PWNED")
                      .Symlink("dirlink", outside_ + "/dir")
                      .File("dirlink", "PWNED")
                      .Finish()));
  EXPECT_EQ(Read(outside_ + "/victim"), "original");
  EXPECT_EQ(Read(target_ + "/f"), "PWNED");
  EXPECT_EQ(Read(target_ + "/planted"), "PWNED");
  struct stat st {};
  ASSERT_EQ(::lstat((target_ + "/dirlink").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  // Hard link to a symlink, then a file over the link: the symlink is linked,
  // never followed, and then replaced.
  ASSERT_OK(Apply(TarBuilder()
                      .Symlink("s", outside_ + "/victim")
                      .Hardlink("h", "s")
                      .File("h", "PWNED")
                      .Fifo("s")
                      .Finish()));
  EXPECT_EQ(Read(target_ + "/h"), "PWNED");
}

// 12
TEST_F(HostileLayerTest, WhiteoutsThatEscape) {
  EXPECT_THAT(Apply(TarBuilder().File("../.wh.victim", "").Finish()), Refused("../.wh.victim"));
  EXPECT_THAT(Apply(TarBuilder().File("a/../../.wh.outside", "").Finish()),
              Refused("a/../../.wh.outside"));
  for (std::string name : {".wh...", "sub/.wh..", ".wh."}) {
    EXPECT_THAT(Apply(TarBuilder().File(name, "").Finish()), Refused(name));
  }
  EXPECT_THAT(Apply(TarBuilder().Symlink("link", outside_).File("link/.wh.victim", "").Finish()),
              Refused("link/.wh.victim"));
  EXPECT_THAT(Apply(TarBuilder().Symlink("up", "..").File("up/.wh.target", "").Finish()),
              Refused("up/.wh.target"));
  EXPECT_THAT(
      Apply(TarBuilder().Symlink("ld", outside_ + "/dir").File("ld/.wh..wh..opq", "").Finish()),
      Refused("ld/.wh..wh..opq"));
  // Whiting out a symlink removes the symlink, not what it points to.
  ASSERT_OK(Apply(TarBuilder().Symlink("gone", outside_ + "/dir").File(".wh.gone", "").Finish()));
}

// 12b: kOverlay whiteouts are resolved the same way.
TEST_F(HostileLayerTest, OverlayWhiteoutsThatEscape) {
  ApplyOptions options;
  options.whiteout_mode = WhiteoutMode::kOverlay;
  EXPECT_THAT(
      ApplyLayer(
          StringSource(TarBuilder().Symlink("link", outside_).File("link/.wh.victim", "").Finish()),
          target_, options),
      Refused("link/.wh.victim"));
  EXPECT_THAT(ApplyLayer(StringSource(TarBuilder()
                                          .Symlink("link2", outside_ + "/dir")
                                          .File("link2/.wh..wh..opq", "")
                                          .Finish()),
                         target_, options),
              Refused("link2/.wh..wh..opq"));
}

// 13: a directory entry over a symlink replaces it; what follows lands inside.
TEST_F(HostileLayerTest, DirectoryReplacesSymlinkToOutside) {
  std::string name = "d/" + evil_;
  ASSERT_OK(
      Apply(TarBuilder().Symlink("d", outside_ + "/dir").Dir("d/").File(name, "inside").Finish()));
  struct stat st {};
  ASSERT_EQ(::lstat((target_ + "/d").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(Read(target_ + "/" + name), "inside");
}

// 13b: directory times are set at the end; a directory replaced meanwhile
// by a symlink that leads out must not have its times set through it.
TEST_F(HostileLayerTest, DirectoryLaterReplacedBySymlinkToOutside) {
  ASSERT_OK(Apply(TarBuilder().Dir("a/").Dir("a/dir/").Symlink("a", outside_).Finish()));
  struct stat st {};
  ASSERT_EQ(::lstat((target_ + "/a").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
}

// 14: a lower layer's escaping symlink in the target already.
TEST_F(HostileLayerTest, PreexistingSymlinkedParent) {
  ASSERT_OK(testing::Symlink(outside_, target_ + "/etc"));
  EXPECT_THAT(Apply(TarBuilder().File("etc/victim", "PWNED").Finish()), Refused("etc/victim"));
  EXPECT_THAT(Apply(TarBuilder().File("etc/sub/new", "PWNED").Finish()), Refused("etc/sub/new"));
}

// 15
TEST_F(HostileLayerTest, HugeSizeHeader) {
  std::string tar =
      testing::UstarHeader("huge", '0', std::string("77777777777\0", 12)) + std::string(4096, 'A');
  EXPECT_THAT(Apply(tar), IsDamaged());
  // Base-256 size of 2^62.
  std::string b256("\x80\0\0\0\x40\0\0\0\0\0\0\0", 12);
  EXPECT_THAT(Apply(testing::UstarHeader("huge2", '0', b256) + std::string(1024, '\0')),
              IsDamaged());
}

// 16
TEST_F(HostileLayerTest, NegativeSizeHeader) {
  std::string tar =
      testing::UstarHeader("neg", '0', std::string(12, '\xff')) + std::string(1024, '\0');
  EXPECT_THAT(Apply(tar), IsDamaged());
}

// 17
TEST_F(HostileLayerTest, TruncatedAndCorruptStreams) {
  std::string tar = TarBuilder().File("a", std::string(100000, 'a')).File("b", "b").Finish();
  EXPECT_THAT(Apply(tar.substr(0, 3000)), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(Apply(tar.substr(0, 300)), StatusIs(absl::StatusCode::kDataLoss));
  std::string gz = testing::Gzip(tar);
  EXPECT_THAT(Apply(gz.substr(0, gz.size() / 2)), StatusIs(absl::StatusCode::kDataLoss));
  // libarchive does not check gzip's CRC; the expected diff_id catches a
  // flipped bit whether or not inflate notices it.
  std::string flipped = gz;
  flipped[flipped.size() / 2] ^= 0x55;
  ApplyOptions verify;
  verify.expected_diff_id = oci::Digest::Of(tar);
  EXPECT_THAT(ApplyLayer(StringSource(flipped), target_, verify),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_OK(ApplyLayer(StringSource(gz), target_, verify).status());
  std::string zst = testing::Zstd(tar);
  EXPECT_THAT(Apply(zst.substr(0, zst.size() - 7)), StatusIs(absl::StatusCode::kDataLoss));
  std::string bad_checksum = tar;
  bad_checksum[150] ^= 0x01;
  EXPECT_THAT(Apply(bad_checksum), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(Apply(std::string(5000, '\x42')), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(Apply(""), StatusIs(absl::StatusCode::kDataLoss));
}

// 18: POSIX says an unknown type flag is read as a regular file; it is
// still confined like any other entry.
TEST_F(HostileLayerTest, UnknownTypeFlags) {
  std::string tar = testing::UstarHeader("weird", 'Z', "00000000000") +
                    testing::UstarHeader("../weird", 'Z', "00000000000") + std::string(1024, '\0');
  EXPECT_THAT(Apply(tar), Refused("../weird"));
  struct stat st {};
  ASSERT_EQ(::lstat((target_ + "/weird").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

// 19: a PAX path record overrides a harmless ustar name.
TEST_F(HostileLayerTest, PaxPathOverride) {
  std::string record = absl::StrCat(" path=../", evil_, "\n");
  record = absl::StrCat(record.size() + 2, record);  // the length counts itself (2 digits)
  std::string size = absl::StrFormat("%011o", record.size());
  std::string pax = testing::UstarHeader("PaxHeader/ok", 'x', size + std::string(1, '\0')) +
                    record + std::string(512 - record.size(), '\0');
  std::string tar = pax + testing::UstarHeader("ok", '0', std::string("00000000000\0", 12)) +
                    std::string(1024, '\0');
  EXPECT_THAT(Apply(tar), Refused("../" + evil_));
}

}  // namespace
}  // namespace pier::archive
