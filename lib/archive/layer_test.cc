// Layer round trips (writer -> applier), determinism, compressions,
// directory diffs, whiteouts applied over a lower tree, and compatibility
// with GNU tar in both directions.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdlib>
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
#include "lib/archive/libarchive_util.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "lib/common/testing.h"
#include "lib/oci/digest.h"

namespace pier::archive {
namespace {

using ::pier::testing::StatusIs;
using ::pier::testing::TempDir;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Pseudorandom(size_t n, uint64_t seed) {
  std::string out(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<char>(x);
  }
  return out;
}

// A VFS_CAP_REVISION_2 security.capability value granting
// CAP_NET_BIND_SERVICE (effective, permitted).
std::string NetBindCapability() {
  std::string v(20, '\0');
  uint32_t words[5] = {0x02000001u, 1u << 10, 0, 0, 0};
  std::memcpy(v.data(), words, sizeof(words));
  return v;
}

// Sets every entry's mtime, children before parents, to base + 7 * index.
absl::Status StampTimes(const std::string& root, int64_t base) {
  ASSIGN_OR_RETURN(auto tree, testing::DescribeTree(root));
  int64_t i = 0;
  for (auto it = tree.rbegin(); it != tree.rend(); ++it) {
    RETURN_IF_ERROR(testing::SetMtime(JoinPath(root, it->first), base + 7 * i++));
  }
  return absl::OkStatus();
}

// Every kind of entry a layer can hold.
absl::Status BuildRichTree(const std::string& root, int64_t time_base = 1500000000) {
  using namespace testing;  // NOLINT: test helpers
  RETURN_IF_ERROR(MakeDir(root));
  RETURN_IF_ERROR(WriteFile(root + "/bin/tool", "#!/bin/sh\necho hi\n", 0755));
  RETURN_IF_ERROR(WriteFile(root + "/bin/su", "setuid binary", 04755));
  RETURN_IF_ERROR(WriteFile(root + "/bin/sg", "setgid binary", 02711));
  RETURN_IF_ERROR(WriteFile(root + "/etc/conf", "key=value\n", 0640));
  RETURN_IF_ERROR(Chown(root + "/etc/conf", 1234, 5678));
  RETURN_IF_ERROR(SetXattr(root + "/etc/conf", "user.comment", "hello"));
  RETURN_IF_ERROR(SetXattr(root + "/etc", "user.dirattr", std::string("d\0x", 3)));
  RETURN_IF_ERROR(WriteFile(root + "/data/big.bin", Pseudorandom(3 << 20, 1)));
  RETURN_IF_ERROR(WriteFile(root + "/data/empty", ""));
  RETURN_IF_ERROR(WriteFile(root + "/data/text.txt", std::string(100000, 'a')));
  RETURN_IF_ERROR(
      WriteFile(root + "/long/" + std::string(120, 'x') + "/" + std::string(90, 'y'), "deep"));
  RETURN_IF_ERROR(WriteFile(root + "/donn\xc3\xa9"
                                   "es/\xc3\xa9t\xc3\xa9.txt",
                            "unicode"));
  RETURN_IF_ERROR(WriteFile(root + "/links/hard1", "shared inode", 0600));
  RETURN_IF_ERROR(MakeDir(root + "/other"));
  if (::link((root + "/links/hard1").c_str(), (root + "/other/hard2").c_str()) != 0 ||
      ::link((root + "/links/hard1").c_str(), (root + "/links/hard3").c_str()) != 0) {
    return ErrnoStatus(errno, "link");
  }
  RETURN_IF_ERROR(Symlink("../etc/conf", root + "/links/sym_rel"));
  RETURN_IF_ERROR(Symlink("/etc/passwd", root + "/links/sym_abs"));
  RETURN_IF_ERROR(Symlink("nowhere", root + "/links/dangling"));
  RETURN_IF_ERROR(Chown(root + "/links/sym_rel", 1234, 5678));
  RETURN_IF_ERROR(MakeDir(root + "/dev"));
  if (::mknod((root + "/dev/null").c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0 ||
      ::mknod((root + "/dev/loop9").c_str(), S_IFBLK | 0660, makedev(7, 9)) != 0 ||
      ::mknod((root + "/dev/fifo").c_str(), S_IFIFO | 0620, 0) != 0) {
    return ErrnoStatus(errno, "mknod");
  }
  RETURN_IF_ERROR(MakeDir(root + "/empty_dir", 0700));
  RETURN_IF_ERROR(Chown(root + "/empty_dir", 1234, 5678));
  RETURN_IF_ERROR(MakeDir(root + "/tmp", 01777));
  RETURN_IF_ERROR(WriteFile(root + "/cap/ping", "ping", 0755));
  RETURN_IF_ERROR(SetXattr(root + "/cap/ping", "security.capability", NetBindCapability()));
  RETURN_IF_ERROR(WriteFile(root + "/bigid", "large ids", 0644));
  RETURN_IF_ERROR(Chown(root + "/bigid", 3000000, 3000001));
  return StampTimes(root, time_base);
}

using testing::Apply;
using testing::Created;
using testing::CreateFromDir;

class LayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) FAIL() << "required: layer tests chown and mknod: run as root";
  }
  TempDir tmp_;
};

class RoundTripTest : public LayerTest, public ::testing::WithParamInterface<Compression> {};

TEST_P(RoundTripTest, TreeSurvivesCreateAndApply) {
  const std::string src = tmp_.Sub("src"), dst = tmp_.Sub("dst");
  ASSERT_OK(BuildRichTree(src));
  CreateOptions options;
  options.compression = GetParam();
  ASSERT_OK_AND_ASSIGN(Created layer, CreateFromDir(src, options));

  EXPECT_EQ(layer.info.digest, oci::Digest::Of(layer.bytes));
  EXPECT_EQ(layer.info.size, layer.bytes.size());
  EXPECT_EQ(layer.info.media_type, LayerMediaType(GetParam()));
  if (GetParam() == Compression::kNone) {
    EXPECT_EQ(layer.info.diff_id, layer.info.digest);
  } else {
    EXPECT_NE(layer.info.diff_id, layer.info.digest);
    EXPECT_LT(layer.info.size, layer.info.uncompressed_size);
  }

  ASSERT_OK_AND_ASSIGN(ApplyResult applied, Apply(layer.bytes, dst));
  EXPECT_EQ(applied.diff_id, layer.info.diff_id);
  EXPECT_EQ(applied.bytes, layer.info.uncompressed_size);
  EXPECT_EQ(applied.compression, GetParam());
  EXPECT_EQ(applied.entries, layer.info.entries);

  ASSERT_OK_AND_ASSIGN(auto want, testing::DescribeTree(src));
  ASSERT_OK_AND_ASSIGN(auto got, testing::DescribeTree(dst));
  EXPECT_EQ(got, want);

  // Hard links share one inode again.
  struct stat a {
  }, b{};
  ASSERT_EQ(::stat((dst + "/links/hard1").c_str(), &a), 0);
  ASSERT_EQ(::stat((dst + "/other/hard2").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 3u);
  ASSERT_OK_AND_ASSIGN(std::string cap,
                       testing::GetXattr(dst + "/cap/ping", "security.capability"));
  EXPECT_EQ(cap, NetBindCapability());
}

INSTANTIATE_TEST_SUITE_P(Compressions, RoundTripTest,
                         ::testing::Values(Compression::kNone, Compression::kGzip,
                                           Compression::kZstd),
                         [](const auto& info) { return std::string(CompressionName(info.param)); });

TEST_F(LayerTest, EntriesAreSortedAndDirectoriesEndInSlash) {
  const std::string src = tmp_.Sub("src");
  ASSERT_OK(testing::WriteFile(src + "/b/2", "x"));
  ASSERT_OK(testing::WriteFile(src + "/b/1", "x"));
  ASSERT_OK(testing::WriteFile(src + "/a", "x"));
  ASSERT_OK(testing::WriteFile(src + "/c", "x"));
  ASSERT_OK(testing::Symlink("a", src + "/B"));
  ASSERT_OK_AND_ASSIGN(Created layer, CreateFromDir(src));
  EXPECT_THAT(testing::ListLayer(layer.bytes), pier::testing::IsOk());
  EXPECT_THAT(*testing::ListLayer(layer.bytes),
              ElementsAre("B l -> a", "a f", "b/ d", "b/1 f", "b/2 f", "c f"));
}

// What docker and containerd write: ustar headers, PAX records only where
// needed, xattrs as SCHILY.xattr.*, UTF-8 names as they are.
TEST_F(LayerTest, TarFormatIsWhatDockerWrites) {
  const std::string src = tmp_.Sub("src");
  ASSERT_OK(BuildRichTree(src));
  CreateOptions options;
  options.compression = Compression::kNone;
  ASSERT_OK_AND_ASSIGN(Created layer, CreateFromDir(src, options));
  EXPECT_EQ(layer.bytes.substr(257, 8), std::string("ustar\0"
                                                    "00",
                                                    8));
  EXPECT_THAT(layer.bytes, HasSubstr("SCHILY.xattr.user.comment=hello"));
  EXPECT_THAT(layer.bytes, HasSubstr("SCHILY.xattr.security.capability="));
  EXPECT_THAT(layer.bytes, Not(HasSubstr("LIBARCHIVE.")));
  EXPECT_THAT(layer.bytes, Not(HasSubstr("hdrcharset")));
  EXPECT_THAT(layer.bytes, Not(HasSubstr("mtime=")));
  EXPECT_THAT(layer.bytes, HasSubstr("path=donn\xc3\xa9"
                                     "es/\xc3\xa9t\xc3\xa9.txt"));
  EXPECT_THAT(layer.bytes, HasSubstr(" uid=3000000\n"));
  EXPECT_EQ(layer.bytes.size() % 512, 0u);
  EXPECT_EQ(layer.bytes.substr(layer.bytes.size() - 1024), std::string(1024, '\0'));
}

TEST_F(LayerTest, SameTreeGivesSameBytes) {
  const std::string src = tmp_.Sub("src");
  ASSERT_OK(BuildRichTree(src));
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    CreateOptions options;
    options.compression = c;
    ASSERT_OK_AND_ASSIGN(Created one, CreateFromDir(src, options));
    ASSERT_OK_AND_ASSIGN(Created two, CreateFromDir(src, options));
    EXPECT_EQ(one.info.digest, two.info.digest) << CompressionName(c);
    EXPECT_EQ(one.bytes, two.bytes) << CompressionName(c);
  }
}

TEST_F(LayerTest, GzipHeaderHasNoNameAndNoTime) {
  const std::string src = tmp_.Sub("src");
  ASSERT_OK(testing::WriteFile(src + "/f", "x"));
  ASSERT_OK_AND_ASSIGN(Created layer, CreateFromDir(src));
  ASSERT_GE(layer.bytes.size(), 10u);
  EXPECT_EQ(static_cast<uint8_t>(layer.bytes[0]), 0x1f);
  EXPECT_EQ(static_cast<uint8_t>(layer.bytes[1]), 0x8b);
  EXPECT_EQ(layer.bytes[3], 0) << "FLG: no FNAME, FCOMMENT or FEXTRA";
  EXPECT_EQ(layer.bytes.substr(4, 4), std::string(4, '\0')) << "MTIME";
}

TEST_F(LayerTest, SourceDateEpochMakesTimesIrrelevant) {
  const std::string a = tmp_.Sub("a"), b = tmp_.Sub("b");
  ASSERT_OK(BuildRichTree(a, 1600000000));
  ASSERT_OK(BuildRichTree(b, 1700000000));
  ASSERT_OK_AND_ASSIGN(Created plain_a, CreateFromDir(a));
  ASSERT_OK_AND_ASSIGN(Created plain_b, CreateFromDir(b));
  EXPECT_NE(plain_a.info.diff_id, plain_b.info.diff_id);

  CreateOptions options;
  options.source_date_epoch = 1000000000;
  ASSERT_OK_AND_ASSIGN(Created epoch_a, CreateFromDir(a, options));
  ASSERT_OK_AND_ASSIGN(Created epoch_b, CreateFromDir(b, options));
  EXPECT_EQ(epoch_a.info.digest, epoch_b.info.digest);
  EXPECT_EQ(epoch_a.info.diff_id, epoch_b.info.diff_id);

  // Times older than the epoch are kept.
  const std::string dst = tmp_.Sub("dst");
  ASSERT_OK(Apply(epoch_a.bytes, dst).status());
  struct stat st {};
  ASSERT_EQ(::lstat((dst + "/bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtime, 1000000000);
  options.source_date_epoch = 2000000000;
  ASSERT_OK_AND_ASSIGN(Created late, CreateFromDir(a, options));
  EXPECT_EQ(late.info.diff_id, plain_a.info.diff_id);
}

TEST_F(LayerTest, CompressionLevelIsValidated) {
  const std::string src = tmp_.Sub("src");
  ASSERT_OK(testing::WriteFile(src + "/f", std::string(10000, 'z')));
  CreateOptions options;
  options.compression_level = 9;
  ASSERT_OK(CreateFromDir(src, options).status());
  options.compression = Compression::kZstd;
  options.compression_level = 19;
  ASSERT_OK(CreateFromDir(src, options).status());
  options.compression = Compression::kGzip;
  options.compression_level = 42;
  EXPECT_THAT(CreateFromDir(src, options), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(LayerTest, RecompressKeepsTheTarStream) {
  const std::string src = tmp_.Sub("src");
  ASSERT_OK(BuildRichTree(src));
  ASSERT_OK_AND_ASSIGN(Created gz, CreateFromDir(src));
  for (Compression c : {Compression::kZstd, Compression::kNone, Compression::kGzip}) {
    CreateOptions options;
    options.compression = c;
    ASSERT_OK_AND_ASSIGN(Created direct, CreateFromDir(src, options));
    std::string bytes;
    ASSERT_OK_AND_ASSIGN(LayerInfo info,
                         RecompressLayer(StringSource(gz.bytes), StringSink(&bytes), options));
    EXPECT_EQ(info.diff_id, gz.info.diff_id) << CompressionName(c);
    EXPECT_EQ(info.uncompressed_size, gz.info.uncompressed_size);
    EXPECT_EQ(info.media_type, LayerMediaType(c));
    EXPECT_EQ(info.size, bytes.size());
    EXPECT_EQ(info.digest, oci::Digest::Of(bytes));
    // Same bytes as writing the tree with that compression directly.
    EXPECT_EQ(info.digest, direct.info.digest) << CompressionName(c);
    ASSERT_OK_AND_ASSIGN(ApplyResult applied,
                         Apply(bytes, tmp_.Sub(std::string(CompressionName(c)))));
    EXPECT_EQ(applied.compression, c);
    EXPECT_EQ(applied.diff_id, gz.info.diff_id);
  }
  std::string out;
  EXPECT_THAT(
      RecompressLayer(StringSource(gz.bytes.substr(0, gz.bytes.size() / 2)), StringSink(&out), {}),
      StatusIs(absl::StatusCode::kDataLoss));
  CreateOptions bad;
  bad.compression = Compression::kZstd;
  bad.compression_level = 99;
  EXPECT_THAT(RecompressLayer(StringSource(gz.bytes), StringSink(&out), bad),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(LayerTest, WhiteoutNamesCannotBeArchived) {
  const std::string src = tmp_.Sub("src");
  ASSERT_OK(testing::WriteFile(src + "/d/.wh.x", ""));
  EXPECT_THAT(CreateFromDir(src), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(".wh.x")));
}

TEST_F(LayerTest, SocketsAreSkipped) {
  const std::string src = tmp_.Sub("src");
  ASSERT_OK(testing::WriteFile(src + "/f", "x"));
  ASSERT_OK(testing::WriteFile(src + "/sock", ""));
  ASSERT_EQ(::unlink((src + "/sock").c_str()), 0);
  ASSERT_EQ(::mknod((src + "/sock").c_str(), S_IFSOCK | 0600, 0), 0);
  ASSERT_OK_AND_ASSIGN(Created layer, CreateFromDir(src));
  EXPECT_THAT(*testing::ListLayer(layer.bytes), ElementsAre("f f"));
}

TEST_F(LayerTest, FdSinkAndFdSource) {
  const std::string src = tmp_.Sub("src"), dst = tmp_.Sub("dst");
  ASSERT_OK(BuildRichTree(src));
  const std::string file = tmp_.Sub("layer.tar.zst");
  CreateOptions options;
  options.compression = Compression::kZstd;
  LayerInfo info;
  {
    UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    ASSERT_TRUE(fd.valid());
    ASSERT_OK_AND_ASSIGN(info, CreateLayerFromDir(src, FdSink(fd.get()), options));
  }
  ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFile(file));
  EXPECT_EQ(oci::Digest::Of(bytes), info.digest);
  UniqueFd in(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_OK(MakeDirs(dst));
  ASSERT_OK_AND_ASSIGN(ApplyResult r, ApplyLayer(FdSource(in.get()), dst));
  EXPECT_EQ(r.diff_id, info.diff_id);
  EXPECT_EQ(r.compression, Compression::kZstd);
  EXPECT_EQ(*testing::DescribeTree(dst), *testing::DescribeTree(src));
}

TEST_F(LayerTest, SinkAndSourceErrorsComeBackUnchanged) {
  const std::string src = tmp_.Sub("src");
  ASSERT_OK(BuildRichTree(src));
  for (Compression c : {Compression::kNone, Compression::kGzip}) {
    CreateOptions options;
    options.compression = c;
    size_t written = 0;
    ByteSink full = [&written](absl::string_view chunk) -> absl::Status {
      written += chunk.size();
      if (written > 100000) return absl::ResourceExhaustedError("disk full");
      return absl::OkStatus();
    };
    EXPECT_THAT(CreateLayerFromDir(src, full, options),
                StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("disk full")));
  }
  ASSERT_OK_AND_ASSIGN(Created layer, CreateFromDir(src));
  size_t served = 0;
  ByteSource flaky = [&](char* buf, size_t len) -> absl::StatusOr<size_t> {
    if (served > layer.bytes.size() / 2) return absl::UnavailableError("connection reset");
    size_t n = std::min<size_t>(len, 4096);
    std::memcpy(buf, layer.bytes.data() + served, n);
    served += n;
    return n;
  };
  ASSERT_OK(MakeDirs(tmp_.Sub("dst")));
  EXPECT_THAT(ApplyLayer(flaky, tmp_.Sub("dst")),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("connection reset")));
}

TEST_F(LayerTest, ApplyNeedsAnExistingDirectory) {
  std::string tar = testing::TarBuilder().File("f", "x").Finish();
  EXPECT_THAT(ApplyLayer(StringSource(tar), tmp_.Sub("missing")),
              StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(testing::WriteFile(tmp_.Sub("file"), ""));
  EXPECT_THAT(ApplyLayer(StringSource(tar), tmp_.Sub("file")),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

// Whiteouts and opaque directories delete what the lower tree holds, never
// what the layer itself writes, wherever the marker sits in the tar.
TEST_F(LayerTest, WhiteoutsApplyOverLowerTree) {
  const std::string dst = tmp_.Sub("dst");
  using testing::WriteFile;
  ASSERT_OK(WriteFile(dst + "/a/file", "lower"));
  ASSERT_OK(WriteFile(dst + "/a/keep", "lower"));
  ASSERT_OK(WriteFile(dst + "/b/dir/x", "lower"));
  ASSERT_OK(WriteFile(dst + "/c/1", "lower"));
  ASSERT_OK(WriteFile(dst + "/c/sub/2", "lower"));
  ASSERT_OK(WriteFile(dst + "/d/old", "lower"));
  ASSERT_OK(WriteFile(dst + "/d/kept/old", "lower"));
  ASSERT_OK(WriteFile(dst + "/e/x", "lower"));
  std::string tar = testing::TarBuilder()
                        .File("a/.wh.file", "")
                        .File(".wh.b", "")
                        .Dir("c/")
                        .File("c/.wh..wh..opq", "")
                        .File("c/new", "layer")
                        // Another writer's order: entries before the marker.
                        .File("d/new", "layer")
                        .Dir("d/kept/")
                        .File("d/kept/new", "layer")
                        .File("d/.wh..wh..opq", "")
                        .File("e/y", "layer")
                        .File("e/.wh.y", "")  // this layer's own entry stays
                        .File("e/.wh.missing", "")
                        .File("nothere/.wh.x", "")
                        .File(".wh..wh.plnk", "")
                        .Finish();
  ASSERT_OK(Apply(tar, dst).status());
  ASSERT_OK_AND_ASSIGN(auto tree,
                       testing::DescribeTree(dst, {.mtimes = false, .dir_mtimes = false}));
  std::vector<std::string> paths;
  for (const auto& [path, desc] : tree) paths.push_back(path);
  EXPECT_THAT(paths, ElementsAre("a", "a/keep", "c", "c/new", "d", "d/kept", "d/kept/new", "d/new",
                                 "e", "e/x", "e/y"));
}

TEST_F(LayerTest, OverlayWhiteoutMode) {
  const std::string dst = tmp_.Sub("dst");
  std::string tar = testing::TarBuilder()
                        .File("a/.wh.file", "")
                        .File(".wh.b", "")
                        .Dir("c/")
                        .File("c/.wh..wh..opq", "")
                        .File("c/new", "layer")
                        .File("d/.wh..wh..opq", "")
                        .Finish();
  ApplyOptions options;
  options.whiteout_mode = WhiteoutMode::kOverlay;
  ASSERT_OK(Apply(tar, dst, options).status());
  ASSERT_OK_AND_ASSIGN(auto tree,
                       testing::DescribeTree(dst, {.mtimes = false, .dir_mtimes = false}));
  EXPECT_THAT(tree["a/file"], HasSubstr("chr 0,0"));
  EXPECT_THAT(tree["b"], HasSubstr("chr 0,0"));
  EXPECT_THAT(tree["c/new"], HasSubstr("reg"));
  EXPECT_EQ(*testing::GetXattr(dst + "/c", "trusted.overlay.opaque"), "y");
  EXPECT_EQ(*testing::GetXattr(dst + "/d", "trusted.overlay.opaque"), "y");

  const std::string user = tmp_.Sub("user");
  options.overlay_user_xattr = true;
  ASSERT_OK(Apply(tar, user, options).status());
  EXPECT_EQ(*testing::GetXattr(user + "/c", "user.overlay.opaque"), "y");
}

TEST_F(LayerTest, OverlayXattrsInALayerAreIgnored) {
  const std::string src = tmp_.Sub("src"), dst = tmp_.Sub("dst");
  std::string tar;
  {
    // libarchive writes what it is given, so build the hostile xattr by hand.
    internal::WriteArchive a(archive_write_new());
    archive_write_set_format_pax_restricted(a.get());
    archive_write_open2(
        a.get(), &tar, nullptr,
        [](struct archive*, void* o, const void* b, size_t n) -> la_ssize_t {
          static_cast<std::string*>(o)->append(static_cast<const char*>(b), n);
          return static_cast<la_ssize_t>(n);
        },
        nullptr, nullptr);
    internal::Entry e(archive_entry_new());
    archive_entry_copy_pathname(e.get(), "dir/");
    archive_entry_set_filetype(e.get(), AE_IFDIR);
    archive_entry_set_perm(e.get(), 0755);
    archive_entry_xattr_add_entry(e.get(), "trusted.overlay.redirect", "/etc", 4);
    archive_entry_xattr_add_entry(e.get(), "user.fine", "1", 1);
    archive_write_header(a.get(), e.get());
    archive_write_close(a.get());
  }
  ASSERT_OK(Apply(tar, dst).status());
  EXPECT_THAT(testing::GetXattr(dst + "/dir", "trusted.overlay.redirect"),
              Not(pier::testing::IsOk()));
  EXPECT_EQ(*testing::GetXattr(dst + "/dir", "user.fine"), "1");
}

TEST_F(LayerTest, DevicePolicy) {
  std::string tar = testing::TarBuilder().CharDevice("dev/null", 1, 3).File("f", "x").Finish();
  ApplyOptions options;
  options.devices = DevicePolicy::kSkip;
  ASSERT_OK(Apply(tar, tmp_.Sub("skip"), options).status());
  EXPECT_EQ(::access(tmp_.Sub("skip/dev/null").c_str(), F_OK), -1);
  EXPECT_EQ(::access(tmp_.Sub("skip/f").c_str(), F_OK), 0);
  options.devices = DevicePolicy::kRefuse;
  EXPECT_THAT(Apply(tar, tmp_.Sub("refuse"), options),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("\"dev/null\"")));
  ASSERT_OK(Apply(tar, tmp_.Sub("create")).status());
  struct stat st {};
  ASSERT_EQ(::lstat(tmp_.Sub("create/dev/null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
}

TEST_F(LayerTest, ReplacesEntriesOfEveryType) {
  const std::string dst = tmp_.Sub("dst");
  ASSERT_OK(testing::WriteFile(dst + "/dir_to_file/x/y", "lower"));
  ASSERT_OK(testing::WriteFile(dst + "/file_to_dir", "lower"));
  ASSERT_OK(testing::Symlink("/etc", dst + "/link_to_file"));
  ASSERT_OK(testing::WriteFile(dst + "/keep_dir/lower", "lower"));
  std::string tar = testing::TarBuilder()
                        .File("dir_to_file", "now a file")
                        .Dir("file_to_dir/")
                        .File("file_to_dir/inner", "x")
                        .File("link_to_file", "plain")
                        .Dir("keep_dir/", 0700)
                        .File("keep_dir/upper", "x")
                        .Finish();
  ASSERT_OK(Apply(tar, dst).status());
  ASSERT_OK_AND_ASSIGN(auto tree,
                       testing::DescribeTree(dst, {.mtimes = false, .dir_mtimes = false}));
  EXPECT_THAT(tree["dir_to_file"], HasSubstr("reg"));
  EXPECT_THAT(tree["file_to_dir"], HasSubstr("dir"));
  EXPECT_THAT(tree["link_to_file"], HasSubstr("reg"));
  EXPECT_THAT(tree["keep_dir"], HasSubstr("mode=0700"));
  EXPECT_TRUE(tree.contains("keep_dir/lower"));
  EXPECT_TRUE(tree.contains("keep_dir/upper"));
}

// CreateLayerFromDiff + ApplyLayer over the lower tree gives the upper tree.
TEST_F(LayerTest, DiffOfTwoTrees) {
  const std::string base = tmp_.Sub("base"), lower = tmp_.Sub("lower"), upper = tmp_.Sub("upper"),
                    result = tmp_.Sub("result");
  ASSERT_OK(BuildRichTree(base));
  ASSERT_OK_AND_ASSIGN(Created base_layer, CreateFromDir(base));
  for (const std::string& d : {lower, upper, result}) {
    ASSERT_OK(Apply(base_layer.bytes, d).status());
  }
  using testing::WriteFile;
  ASSERT_OK(WriteFile(upper + "/added/new.txt", "new"));
  ASSERT_OK(WriteFile(upper + "/etc/conf", "key=VALUE\n", 0640));  // same size
  ASSERT_OK(testing::Chown(upper + "/etc/conf", 1234, 5678));
  // Same size and same whole-second mtime: only the bytes tell.
  ASSERT_OK(WriteFile(upper + "/bin/tool", "#!/bin/sh\necho HI\n", 0755));
  struct stat st {};
  ASSERT_EQ(::lstat((lower + "/bin/tool").c_str(), &st), 0);
  ASSERT_OK(testing::SetMtime(upper + "/bin/tool", st.st_mtime));
  ASSERT_OK(RemoveAll(upper + "/long"));
  ASSERT_EQ(::unlink((upper + "/data/empty").c_str()), 0);
  ASSERT_EQ(::chmod((upper + "/bin/su").c_str(), 0755), 0);
  ASSERT_OK(RemoveAll(upper + "/dev"));
  ASSERT_OK(WriteFile(upper + "/dev", "dir replaced by file"));
  ASSERT_EQ(::unlink((upper + "/bigid").c_str()), 0);
  ASSERT_OK(testing::MakeDir(upper + "/bigid"));
  ASSERT_OK(testing::SetXattr(upper + "/data/text.txt", "user.new", "1"));
  ASSERT_EQ(::unlink((upper + "/links/sym_abs").c_str()), 0);
  ASSERT_OK(testing::Symlink("/etc/shadow", upper + "/links/sym_abs"));

  Created diff;
  ASSERT_OK_AND_ASSIGN(diff.info, CreateLayerFromDiff(lower, upper, StringSink(&diff.bytes)));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> entries, testing::ListLayer(diff.bytes));
  EXPECT_THAT(entries, Contains("added/ d"));
  EXPECT_THAT(entries, Contains("added/new.txt f"));
  EXPECT_THAT(entries, Contains("bin/tool f"));
  EXPECT_THAT(entries, Contains(".wh.long f"));
  EXPECT_THAT(entries, Contains("data/.wh.empty f"));
  EXPECT_THAT(entries, Not(Contains("data/big.bin f")));
  EXPECT_THAT(entries, Not(Contains("cap/ping f")));
  EXPECT_THAT(entries, Not(Contains("links/hard1 f")));

  ASSERT_OK(Apply(diff.bytes, result).status());
  // Directory mtimes in upper changed below the second (now); the layer
  // carries whole seconds, and they are what the describer compares.
  ASSERT_OK_AND_ASSIGN(auto want, testing::DescribeTree(upper));
  ASSERT_OK_AND_ASSIGN(auto got, testing::DescribeTree(result));
  EXPECT_EQ(got, want);

  // An unchanged pair of trees gives an empty layer.
  Created none;
  ASSERT_OK_AND_ASSIGN(none.info, CreateLayerFromDiff(upper, upper, StringSink(&none.bytes)));
  EXPECT_EQ(none.info.entries, 0u);
}

// A file rewritten in place leaves its directories' mtimes alone; the layer
// still carries those directories so that it applies on its own.
TEST_F(LayerTest, DiffCarriesParentsOfChanges) {
  const std::string lower = tmp_.Sub("lower"), upper = tmp_.Sub("upper");
  for (const std::string& root : {lower, upper}) {
    ASSERT_OK(testing::WriteFile(root + "/a/b/file", "old", 0600));
    ASSERT_OK(testing::WriteFile(root + "/a/other", "same"));
    ASSERT_OK(testing::WriteFile(root + "/z", "same"));
    ASSERT_OK(StampTimes(root, 1600000000));
  }
  {
    UniqueFd fd(::open((upper + "/a/b/file").c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    ASSERT_OK(WriteAll(fd.get(), "new!", "file"));
  }
  Created diff;
  ASSERT_OK_AND_ASSIGN(diff.info, CreateLayerFromDiff(lower, upper, StringSink(&diff.bytes)));
  EXPECT_THAT(*testing::ListLayer(diff.bytes), ElementsAre("a/ d", "a/b/ d", "a/b/file f"));
}

TEST_F(LayerTest, OwnersCanBeLeftAlone) {
  std::string tar;
  {
    const std::string src = tmp_.Sub("src");
    ASSERT_OK(testing::WriteFile(src + "/f", "x", 04755));
    ASSERT_OK(testing::Chown(src + "/f", 1234, 5678));
    ASSERT_EQ(::chmod((src + "/f").c_str(), 04755), 0);  // chown cleared setuid
    ASSERT_OK_AND_ASSIGN(Created layer, CreateFromDir(src));
    tar = layer.bytes;
  }
  ApplyOptions options;
  options.restore_owners = false;
  ASSERT_OK(Apply(tar, tmp_.Sub("dst"), options).status());
  struct stat st {};
  ASSERT_EQ(::lstat(tmp_.Sub("dst/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ::geteuid());
  EXPECT_EQ(st.st_mode & 07777, 04755u);
}

bool HaveGnuTar() { return std::system("tar --version >/dev/null 2>&1") == 0; }

TEST_F(LayerTest, GnuTarExtractsOurLayers) {
  if (!HaveGnuTar()) FAIL() << "required: no tar";
  const std::string src = tmp_.Sub("src"), dst = tmp_.Sub("dst"), file = tmp_.Sub("l.tgz");
  ASSERT_OK(BuildRichTree(src));
  ASSERT_OK_AND_ASSIGN(Created layer, CreateFromDir(src));
  ASSERT_OK(WriteFileAtomic(file, layer.bytes));
  ASSERT_OK(MakeDirs(dst));
  std::string cmd =
      absl::StrCat("tar --xattrs --xattrs-include='*' --numeric-owner -xpzf ", file, " -C ", dst);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_EQ(*testing::DescribeTree(dst), *testing::DescribeTree(src));
  std::string sum = absl::StrCat("gzip -dc ", file, " | sha256sum > ", file, ".sum");
  ASSERT_EQ(std::system(sum.c_str()), 0);
  ASSERT_OK_AND_ASSIGN(std::string out, ReadFile(file + ".sum"));
  EXPECT_EQ(out.substr(0, 64), layer.info.diff_id.hex());
}

TEST_F(LayerTest, WeApplyGnuTarLayers) {
  if (!HaveGnuTar()) FAIL() << "required: no tar";
  const std::string src = tmp_.Sub("src"), dst = tmp_.Sub("dst"), file = tmp_.Sub("l.tgz");
  ASSERT_OK(BuildRichTree(src));
  std::string cmd = absl::StrCat("tar --xattrs --xattrs-include='*' --numeric-owner -czf ", file,
                                 " -C ", src, " .");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFile(file));
  ASSERT_OK_AND_ASSIGN(ApplyResult r, Apply(bytes, dst));
  EXPECT_EQ(r.compression, Compression::kGzip);
  EXPECT_EQ(*testing::DescribeTree(dst), *testing::DescribeTree(src));
}

}  // namespace
}  // namespace pier::archive
