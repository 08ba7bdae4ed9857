// Snapshotter without mounting: chain ids, unpacking into numbered
// directories with overlay whiteouts, the mounts returned, reference
// counting, commit of an upper directory, usage, races and bad layers.
// (Needs root for mknod of whiteouts and trusted.* xattrs.)
#include "lib/image/snapshotter.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/archive/archive_test_util.h"
#include "lib/archive/layer_writer.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "lib/common/testing.h"
#include "lib/kv/kv_store.h"

namespace pier::image {
namespace {

using ::pier::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

oci::Digest D(absl::string_view text) { return *oci::Digest::Parse(text); }

TEST(ChainIdTest, KnownVector) {
  // By hand:
  //   a=$(printf layer0 | sha256sum) b=$(printf layer1 | sha256sum)
  //   c=$(printf layer2 | sha256sum)
  //   c1=$(printf "sha256:$a sha256:$b" | sha256sum)
  //   c2=$(printf "sha256:$c1 sha256:$c" | sha256sum)
  const oci::Digest a = oci::Digest::Of("layer0"), b = oci::Digest::Of("layer1"),
                    c = oci::Digest::Of("layer2");
  EXPECT_EQ(a.str(), "sha256:4fbec69b941195fd56f8212a5000e304129451d82efca94ff0e0fb2d5355472e");
  EXPECT_EQ(ChainId(std::nullopt, a), a);
  const oci::Digest c1 =
      D("sha256:ef232af0eb422cdfd7917631657cd8ed2bfd5b9461b37c427aa0d3e0a19adf79");
  const oci::Digest c2 =
      D("sha256:7ad3896338947cc04ee0b35b50d400ff32538d63f42f85ec87feac78bf71a54d");
  EXPECT_EQ(ChainId(a, b), c1);
  EXPECT_EQ(ChainId(c1, c), c2);
  EXPECT_THAT(ChainIds({a, b, c}), ElementsAre(a, c1, c2));
  EXPECT_TRUE(ChainIds({}).empty());
}

absl::Status MakeWhiteout(const std::string& path) {
  if (::mknod(path.c_str(), S_IFCHR, makedev(0, 0)) != 0) {
    return ErrnoStatus(errno, absl::StrCat("mknod ", path));
  }
  return absl::OkStatus();
}

std::string Xattr(const std::string& path, const char* name) {
  char buf[64];
  ssize_t n = ::lgetxattr(path.c_str(), name, buf, sizeof(buf));
  return n < 0 ? "" : std::string(buf, n);
}

bool IsWhiteout(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

class SnapshotterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) FAIL() << "required: needs root (mknod, trusted.* xattrs)";
    kv_ = kv::NewMemoryKvStore();
    Open();
    // Layer 1: a/file1, a/keep, dir/x.
    const std::string t1 = tmp_.Sub("tree1");
    ASSERT_OK(archive::testing::WriteFile(t1 + "/a/file1", "one"));
    ASSERT_OK(archive::testing::WriteFile(t1 + "/a/keep", "keep"));
    ASSERT_OK(archive::testing::WriteFile(t1 + "/dir/x", "x"));
    ASSERT_OK_AND_ASSIGN(layer1_, archive::testing::CreateFromDir(t1));
    // Layer 2 (an overlay upper): deletes a/file1, makes dir opaque with y.
    const std::string u2 = tmp_.Sub("upper2");
    ASSERT_OK(archive::testing::MakeDir(u2 + "/a"));
    ASSERT_OK(MakeWhiteout(u2 + "/a/file1"));
    ASSERT_OK(archive::testing::WriteFile(u2 + "/dir/y", "y"));
    ASSERT_OK(archive::testing::SetXattr(u2 + "/dir", "trusted.overlay.opaque", "y"));
    ASSERT_OK_AND_ASSIGN(layer2_, CreateFromUpper(u2));
  }

  void Open(SnapshotterOptions options = {}) {
    snapshotter_.reset();
    auto s = Snapshotter::Open(tmp_.Sub("root"), kv_.get(), options);
    ASSERT_OK(s);
    snapshotter_ = std::move(*s);
  }

  static absl::StatusOr<archive::testing::Created> CreateFromUpper(const std::string& dir) {
    archive::testing::Created out;
    ASSIGN_OR_RETURN(out.info,
                     archive::CreateLayerFromOverlayUpper(dir, archive::StringSink(&out.bytes)));
    return out;
  }

  // Unpacks both layers; returns their chain ids.
  std::pair<oci::Digest, oci::Digest> UnpackBoth() {
    auto c1 = snapshotter_->Unpack(std::nullopt, layer1_.info.diff_id,
                                   archive::StringSource(layer1_.bytes));
    EXPECT_OK(c1);
    auto c2 = snapshotter_->Unpack(*c1, layer2_.info.diff_id, archive::StringSource(layer2_.bytes));
    EXPECT_OK(c2);
    return {*c1, *c2};
  }

  pier::testing::TempDir tmp_;
  std::unique_ptr<kv::KvStore> kv_;
  std::unique_ptr<Snapshotter> snapshotter_;
  archive::testing::Created layer1_, layer2_;
};

TEST_F(SnapshotterTest, UnpackStoresEachLayerInANumberedDirectory) {
  auto [c1, c2] = UnpackBoth();
  EXPECT_EQ(c1, layer1_.info.diff_id);
  EXPECT_EQ(c2, ChainId(c1, layer2_.info.diff_id));
  ASSERT_OK_AND_ASSIGN(SnapshotInfo s1, snapshotter_->Stat(c1));
  ASSERT_OK_AND_ASSIGN(SnapshotInfo s2, snapshotter_->Stat(c2));
  EXPECT_FALSE(s1.parent.has_value());
  EXPECT_EQ(s2.parent, c1);
  EXPECT_EQ(s2.diff_id, layer2_.info.diff_id);
  EXPECT_NE(s1.id, s2.id);
  const std::string d1 = tmp_.Sub(absl::StrCat("root/snapshots/", s1.id, "/fs"));
  const std::string d2 = tmp_.Sub(absl::StrCat("root/snapshots/", s2.id, "/fs"));
  EXPECT_EQ(*snapshotter_->Dir(c2), d2);
  EXPECT_EQ(*ReadFile(d1 + "/a/file1"), "one");
  EXPECT_EQ(*ReadFile(d1 + "/dir/x"), "x");
  EXPECT_TRUE(IsWhiteout(d2 + "/a/file1"));
  EXPECT_EQ(Xattr(d2 + "/dir", "trusted.overlay.opaque"), "y");
  EXPECT_EQ(*ReadFile(d2 + "/dir/y"), "y");
  EXPECT_FALSE(Exists(d2 + "/a/keep"));
  ASSERT_OK_AND_ASSIGN(std::vector<SnapshotInfo> all, snapshotter_->List());
  EXPECT_EQ(all.size(), 2u);

  // Unpacked once: a second Unpack reads nothing.
  archive::ByteSource failing = [](char*, size_t) -> absl::StatusOr<size_t> {
    return absl::InternalError("must not be read");
  };
  EXPECT_EQ(*snapshotter_->Unpack(std::nullopt, layer1_.info.diff_id, failing), c1);

  ASSERT_OK_AND_ASSIGN(Usage usage, snapshotter_->UsageOf(c1));
  EXPECT_EQ(usage.inodes, 6u);  // fs, a, a/file1, a/keep, dir, dir/x
  EXPECT_GT(usage.bytes, 0u);

  // Records survive reopening.
  Open();
  EXPECT_TRUE(*snapshotter_->Exists(c2));
}

TEST_F(SnapshotterTest, PrepareAndViewMounts) {
  auto [c1, c2] = UnpackBoth();
  const std::string root = tmp_.Sub("root");
  const std::string d1 = *snapshotter_->Dir(c1), d2 = *snapshotter_->Dir(c2);

  ASSERT_OK_AND_ASSIGN(std::vector<exec::Mount> mounts, snapshotter_->Prepare("c-1", c2));
  ASSERT_EQ(mounts.size(), 1u);
  EXPECT_EQ(mounts[0].type, "overlay");
  EXPECT_THAT(mounts[0].options,
              ElementsAre("lowerdir=" + d2 + ":" + d1, "upperdir=" + root + "/active/c-1/upper",
                          "workdir=" + root + "/active/c-1/work", "redirect_dir=off",
                          "metacopy=off", "index=off"));
  EXPECT_TRUE(Exists(root + "/active/c-1/upper"));
  EXPECT_EQ(*snapshotter_->UpperDir("c-1"), root + "/active/c-1/upper");
  EXPECT_EQ(snapshotter_->Mounts("c-1")->at(0).options, mounts[0].options);
  EXPECT_THAT(snapshotter_->Prepare("c-1", c2), StatusIs(absl::StatusCode::kAlreadyExists));

  // No parent: an empty lower directory.
  ASSERT_OK_AND_ASSIGN(mounts, snapshotter_->Prepare("scratch", std::nullopt));
  EXPECT_EQ(mounts[0].options[0], "lowerdir=" + root + "/empty");

  // Views: a bind for one layer, an overlay of lowers for more.
  ASSERT_OK_AND_ASSIGN(mounts, snapshotter_->View("v1", c1));
  EXPECT_EQ(mounts[0].type, "bind");
  EXPECT_EQ(mounts[0].source, d1);
  EXPECT_THAT(mounts[0].options, ElementsAre("ro", "rbind"));
  ASSERT_OK_AND_ASSIGN(mounts, snapshotter_->View("v2", c2));
  EXPECT_EQ(mounts[0].type, "overlay");
  EXPECT_THAT(mounts[0].options, ElementsAre("ro", "lowerdir=" + d2 + ":" + d1, "index=off"));
  EXPECT_THAT(snapshotter_->UpperDir("v2"), StatusIs(absl::StatusCode::kFailedPrecondition));

  ASSERT_OK_AND_ASSIGN(std::vector<ActiveInfo> active, snapshotter_->ListActive());
  EXPECT_EQ(active.size(), 4u);

  // Bad keys and parents.
  EXPECT_THAT(snapshotter_->Prepare("../x", c1), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(snapshotter_->Prepare("", c1), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(snapshotter_->Prepare("k", oci::Digest::Of("nope")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("not found")));
}

TEST_F(SnapshotterTest, RemoveRefusesSnapshotsInUse) {
  auto [c1, c2] = UnpackBoth();
  ASSERT_OK(snapshotter_->Prepare("ctr", c2).status());
  EXPECT_THAT(snapshotter_->Remove(c1),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(c2.str())));
  EXPECT_THAT(snapshotter_->Remove(c2),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("active snapshot ctr")));
  ASSERT_OK(snapshotter_->RemoveActive("ctr"));
  EXPECT_FALSE(Exists(tmp_.Sub("root/active/ctr")));
  const std::string d2 = *snapshotter_->Dir(c2);
  ASSERT_OK(snapshotter_->Remove(c2));
  EXPECT_FALSE(Exists(d2));
  ASSERT_OK(snapshotter_->Remove(c1));
  EXPECT_THAT(snapshotter_->Remove(c1), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(snapshotter_->RemoveActive("ctr"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(std::vector<SnapshotInfo> all, snapshotter_->List());
  EXPECT_TRUE(all.empty());
}

TEST_F(SnapshotterTest, CommitTurnsAnUpperIntoASnapshot) {
  auto [c1, c2] = UnpackBoth();
  ASSERT_OK(snapshotter_->Prepare("build", c2).status());
  const std::string upper = *snapshotter_->UpperDir("build");
  ASSERT_OK(archive::testing::WriteFile(upper + "/new", "new"));
  std::string bytes;
  ASSERT_OK_AND_ASSIGN(archive::LayerInfo info,
                       archive::CreateLayerFromOverlayUpper(upper, archive::StringSink(&bytes)));
  ASSERT_OK_AND_ASSIGN(oci::Digest c3, snapshotter_->Commit("build", info.diff_id));
  EXPECT_EQ(c3, ChainId(c2, info.diff_id));
  EXPECT_EQ(*ReadFile(*snapshotter_->Dir(c3) + "/new"), "new");
  EXPECT_THAT(snapshotter_->StatActive("build"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_FALSE(Exists(tmp_.Sub("root/active/build")));
  EXPECT_THAT(snapshotter_->Remove(c2), StatusIs(absl::StatusCode::kFailedPrecondition));

  // Committing the same change again keeps the first copy.
  ASSERT_OK(snapshotter_->Prepare("again", c2).status());
  ASSERT_OK(archive::testing::WriteFile(*snapshotter_->UpperDir("again") + "/new", "new"));
  EXPECT_EQ(*snapshotter_->Commit("again", info.diff_id), c3);
  ASSERT_OK_AND_ASSIGN(std::vector<SnapshotInfo> all, snapshotter_->List());
  EXPECT_EQ(all.size(), 3u);
}

TEST_F(SnapshotterTest, ConcurrentUnpacksOfOneLayerShareOneSnapshot) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      auto c = snapshotter_->Unpack(std::nullopt, layer1_.info.diff_id,
                                    archive::StringSource(layer1_.bytes));
      if (c.ok() && *c == layer1_.info.diff_id) ok++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 4);
  ASSERT_OK_AND_ASSIGN(std::vector<SnapshotInfo> all, snapshotter_->List());
  ASSERT_EQ(all.size(), 1u);
  // Losers discarded their copies: one directory in snapshots/, none in tmp/.
  int dirs = 0;
  for (const char* sub : {"snapshots", "tmp"}) {
    for (uint64_t n = 1; n <= 8; ++n) {
      if (Exists(tmp_.Sub(absl::StrCat("root/", sub, "/", n)))) dirs++;
    }
  }
  EXPECT_EQ(dirs, 1);
}

TEST_F(SnapshotterTest, BadLayersCommitNothing) {
  // Wrong diff id: DataLoss.
  EXPECT_THAT(snapshotter_->Unpack(std::nullopt, oci::Digest::Of("other"),
                                   archive::StringSource(layer1_.bytes)),
              StatusIs(absl::StatusCode::kDataLoss));
  // An entry that escapes the target: InvalidArgument from ApplyLayer.
  std::string evil = archive::testing::TarBuilder().File("../escape", "x").Finish();
  EXPECT_THAT(
      snapshotter_->Unpack(std::nullopt, oci::Digest::Of(evil), archive::StringSource(evil)),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("escape")));
  EXPECT_FALSE(Exists(tmp_.Sub("root/escape")));
  // Unknown parent.
  EXPECT_THAT(snapshotter_->Unpack(oci::Digest::Of("nope"), layer2_.info.diff_id,
                                   archive::StringSource(layer2_.bytes)),
              StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(std::vector<SnapshotInfo> all, snapshotter_->List());
  EXPECT_TRUE(all.empty());
  for (uint64_t n = 1; n <= 4; ++n) {
    EXPECT_FALSE(Exists(tmp_.Sub(absl::StrCat("root/tmp/", n))));
    EXPECT_FALSE(Exists(tmp_.Sub(absl::StrCat("root/snapshots/", n))));
  }
}

TEST_F(SnapshotterTest, MountOptionsLongerThanAPageAreRefused) {
  SnapshotterOptions options;
  options.max_mount_data = 200;
  Open(options);
  auto [c1, c2] = UnpackBoth();
  EXPECT_THAT(snapshotter_->Prepare("long", c2),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("2 layers")));
  // The refused snapshot is not left behind.
  EXPECT_THAT(snapshotter_->StatActive("long"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(snapshotter_->Remove(c2));
}

}  // namespace
}  // namespace pier::image
