// Mounts what the Snapshotter returns, for real, in a forked child's private
// mount namespace (nothing leaks into the host's mount table even if the
// test dies): two layers (the second deleting a file of the first and making
// a directory opaque) must merge into the expected view, writes must land in
// the upper directory, and a read-only View must be read-only.
// Needs root and overlayfs (label: integration).
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/archive/archive_test_util.h"
#include "lib/common/fs.h"
#include "lib/common/testing.h"
#include "lib/image/snapshotter.h"
#include "lib/kv/kv_store.h"

namespace pier::image {
namespace {

// mount(2)s `m` at `target` the way an executor would: flag words become
// flags, the rest is file system data. Returns errno or 0.
int MountOne(const exec::Mount& m, const std::string& target) {
  unsigned long flags = 0;
  std::vector<std::string> data;
  for (const std::string& o : m.options) {
    if (o == "ro") {
      flags |= MS_RDONLY;
    } else if (o == "rbind") {
      flags |= MS_BIND | MS_REC;
    } else if (o == "bind") {
      flags |= MS_BIND;
    } else {
      data.push_back(o);
    }
  }
  std::string joined = absl::StrJoin(data, ",");
  if (::mount(m.source.c_str(), target.c_str(), m.type == "bind" ? nullptr : m.type.c_str(), flags,
              joined.empty() ? nullptr : joined.c_str()) != 0) {
    return errno;
  }
  if ((flags & MS_BIND) && (flags & MS_RDONLY)) {  // a bind ignores MS_RDONLY until remounted
    if (::mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) {
      return errno;
    }
  }
  return 0;
}

// Runs `fn` in a child with a private mount namespace; returns its exit code
// (fn's return value), or 100 + errno for a failed setup.
int InPrivateMountNamespace(const std::function<int()>& fn) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::unshare(CLONE_NEWNS) != 0) ::_exit(100 + errno);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(100 + errno);
    ::_exit(fn());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

TEST(SnapshotterMountTest, PreparedOverlayShowsTheMergedLayers) {
  if (::geteuid() != 0) FAIL() << "required: needs root";
  pier::testing::TempDir tmp;
  auto kv = kv::NewMemoryKvStore();
  ASSERT_OK_AND_ASSIGN(auto snapshotter, Snapshotter::Open(tmp.Sub("root"), kv.get()));

  const std::string t1 = tmp.Sub("tree1");
  ASSERT_OK(archive::testing::WriteFile(t1 + "/a/file1", "one"));
  ASSERT_OK(archive::testing::WriteFile(t1 + "/a/keep", "keep"));
  ASSERT_OK(archive::testing::WriteFile(t1 + "/dir/x", "x"));
  ASSERT_OK_AND_ASSIGN(auto l1, archive::testing::CreateFromDir(t1));
  const std::string u2 = tmp.Sub("upper2");
  ASSERT_OK(archive::testing::MakeDir(u2 + "/a"));
  ASSERT_EQ(::mknod((u2 + "/a/file1").c_str(), S_IFCHR, makedev(0, 0)), 0);
  ASSERT_OK(archive::testing::WriteFile(u2 + "/dir/y", "y"));
  ASSERT_OK(archive::testing::SetXattr(u2 + "/dir", "trusted.overlay.opaque", "y"));
  std::string l2;
  ASSERT_OK_AND_ASSIGN(archive::LayerInfo l2info,
                       archive::CreateLayerFromOverlayUpper(u2, archive::StringSink(&l2)));

  ASSERT_OK_AND_ASSIGN(oci::Digest c1, snapshotter->Unpack(std::nullopt, l1.info.diff_id,
                                                           archive::StringSource(l1.bytes)));
  ASSERT_OK_AND_ASSIGN(oci::Digest c2,
                       snapshotter->Unpack(c1, l2info.diff_id, archive::StringSource(l2)));
  ASSERT_OK_AND_ASSIGN(std::vector<exec::Mount> rw, snapshotter->Prepare("ctr", c2));
  ASSERT_OK_AND_ASSIGN(std::vector<exec::Mount> ro, snapshotter->View("view", c2));
  ASSERT_OK_AND_ASSIGN(std::vector<exec::Mount> ro1, snapshotter->View("view1", c1));
  ASSERT_OK_AND_ASSIGN(std::vector<exec::Mount> empty,
                       snapshotter->Prepare("scratch", std::nullopt));
  const std::string merged = tmp.Sub("merged");
  ASSERT_OK(MakeDirs(merged));

  // Exit codes: 0 ok, 1..99 the failed check, 100+ setup errno, 200+ mount errno.
  int code = InPrivateMountNamespace([&]() -> int {
    if (int err = MountOne(rw[0], merged)) return 200 + err;
    if (!Exists(merged + "/a/keep")) return 1;
    if (Exists(merged + "/a/file1")) return 2;  // whiteout
    if (Exists(merged + "/dir/x")) return 3;    // opaque
    if (!Exists(merged + "/dir/y")) return 4;
    if (!archive::testing::WriteFile(merged + "/written", "w").ok()) return 5;
    if (::unlink((merged + "/a/keep").c_str()) != 0) return 6;
    return 0;
  });
  ASSERT_EQ(code, 0);
  const std::string upper = *snapshotter->UpperDir("ctr");
  EXPECT_EQ(*ReadFile(upper + "/written"), "w");
  struct stat st;
  ASSERT_EQ(::lstat((upper + "/a/keep").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));  // overlay's whiteout
  // No redirect/metacopy xattrs: the upper makes a valid layer.
  std::string layer;
  ASSERT_OK(archive::CreateLayerFromOverlayUpper(upper, archive::StringSink(&layer)).status());

  code = InPrivateMountNamespace([&]() -> int {
    if (int err = MountOne(ro[0], merged)) return 200 + err;
    if (!Exists(merged + "/a/keep") || Exists(merged + "/a/file1")) return 1;
    if (!Exists(merged + "/dir/y") || Exists(merged + "/dir/x")) return 2;
    if (archive::testing::WriteFile(merged + "/nope", "w").ok()) return 3;  // read-only
    return 0;
  });
  EXPECT_EQ(code, 0);

  code = InPrivateMountNamespace([&]() -> int {
    if (int err = MountOne(ro1[0], merged)) return 200 + err;
    if (!Exists(merged + "/a/file1") || !Exists(merged + "/dir/x")) return 1;
    if (archive::testing::WriteFile(merged + "/nope", "w").ok()) return 2;
    return 0;
  });
  EXPECT_EQ(code, 0);

  code = InPrivateMountNamespace([&]() -> int {
    if (int err = MountOne(empty[0], merged)) return 200 + err;
    if (!archive::testing::WriteFile(merged + "/first", "1").ok()) return 1;
    return 0;
  });
  EXPECT_EQ(code, 0);
  EXPECT_EQ(*ReadFile(*snapshotter->UpperDir("scratch") + "/first"), "1");
  EXPECT_FALSE(Exists(merged + "/first"));  // the host never saw the mount
}

}  // namespace
}  // namespace pier::image
