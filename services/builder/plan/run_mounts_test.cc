#include "services/builder/plan/run_mounts.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "lib/common/fs.h"
#include "lib/common/testing.h"
#include "services/builder/dockerfile/instructions.h"

namespace pier::builder {
namespace {

using ::pier::testing::TempDir;
using ::testing::ElementsAre;

void Touch(const std::string& path, const std::string& data = "") {
  ASSERT_OK(MakeDirs(Dirname(path), 0755));
  std::ofstream(path) << data;
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Two layers: `top` over `low`, with a whiteout, an opaque directory and
// symlinks.
class LayersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) FAIL() << "required: needs root (whiteout devices, trusted xattrs)";
    top_ = dir_.Sub("top");
    low_ = dir_.Sub("low");
    Touch(low_ + "/d/x", "x");
    Touch(low_ + "/d/y", "y");
    Touch(low_ + "/o/old");
    Touch(low_ + "/f");
    ASSERT_OK(MakeDirs(low_ + "/run", 0755));
    ASSERT_OK(MakeDirs(low_ + "/var", 0755));
    ASSERT_EQ(symlink("/run", (low_ + "/var/run").c_str()), 0);
    ASSERT_EQ(symlink("d", (low_ + "/lnk").c_str()), 0);
    ASSERT_OK(MakeDirs(top_ + "/d", 0755));
    ASSERT_EQ(mknod((top_ + "/d/y").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
    Touch(top_ + "/o/new");
    ASSERT_EQ(setxattr((top_ + "/o").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
    layers_ = {top_, low_};
  }

  TempDir dir_;
  std::string top_, low_;
  std::vector<std::string> layers_;
};

TEST_F(LayersTest, LookupSeesWhiteoutsAndOpaqueDirectories) {
  LayeredPath x = LookupLayered(layers_, "d/x");
  ASSERT_TRUE(x.found);
  EXPECT_THAT(x.paths, ElementsAre(low_ + "/d/x"));
  EXPECT_FALSE(LookupLayered(layers_, "d/y").found);
  LayeredPath d = LookupLayered(layers_, "d");
  ASSERT_TRUE(d.found);
  EXPECT_TRUE(S_ISDIR(d.st.st_mode));
  EXPECT_THAT(d.paths, ElementsAre(top_ + "/d", low_ + "/d"));
  LayeredPath o = LookupLayered(layers_, "o");
  EXPECT_THAT(o.paths, ElementsAre(top_ + "/o"));  // opaque: the lower o/ is hidden
  EXPECT_FALSE(LookupLayered(layers_, "o/old").found);
  EXPECT_TRUE(LookupLayered(layers_, "o/new").found);
  EXPECT_THAT(LookupLayered(layers_, "f").paths, ElementsAre(low_ + "/f"));
  EXPECT_FALSE(LookupLayered(layers_, "f/below-a-file").found);
  EXPECT_FALSE(LookupLayered(layers_, "nothing").found);
  EXPECT_THAT(LookupLayered(layers_, "").paths, ElementsAre(top_, low_));
}

TEST_F(LayersTest, ResolveFollowsTheImagesSymlinks) {
  EXPECT_EQ(ResolveLayered(layers_, "/var/run/x"), "/run/x");
  EXPECT_EQ(ResolveLayered(layers_, "/lnk/x"), "/d/x");
  EXPECT_EQ(ResolveLayered(layers_, "/new/../d/./x"), "/d/x");
  EXPECT_EQ(ResolveLayered(layers_, "/missing/dir"), "/missing/dir");
}

TEST_F(LayersTest, MountpointTracesGoAndChangesStay) {
  std::string upper = dir_.Sub("upper");
  // Made for mounts: a new tree, a file, and a directory in a copied-up /run
  // (reached through the /var/run symlink).
  ASSERT_OK(MakeDirs(upper + "/cache/apt", 0755));
  Touch(upper + "/secrets/tok");
  ASSERT_OK(MakeDirs(upper + "/run/x", 0755));
  ASSERT_EQ(chmod((upper + "/run").c_str(), 0755), 0);
  // A mount point inside a directory the command also wrote to.
  ASSERT_OK(MakeDirs(upper + "/d/m", 0755));
  Touch(upper + "/d/written", "w");
  RemoveMountpointTraces(upper, layers_, "/cache/apt");
  RemoveMountpointTraces(upper, layers_, "/secrets/tok");
  RemoveMountpointTraces(upper, layers_, "/var/run/x");
  RemoveMountpointTraces(upper, layers_, "/d/m");
  EXPECT_FALSE(Exists(upper + "/cache"));
  EXPECT_FALSE(Exists(upper + "/secrets"));
  EXPECT_FALSE(Exists(upper + "/run"));
  EXPECT_FALSE(Exists(upper + "/d/m"));
  EXPECT_TRUE(Exists(upper + "/d/written"));

  // A copied-up parent whose mode the command changed stays.
  ASSERT_OK(MakeDirs(upper + "/run/y", 0755));
  ASSERT_EQ(chmod((upper + "/run").c_str(), 0700), 0);
  RemoveMountpointTraces(upper, layers_, "/run/y");
  EXPECT_FALSE(Exists(upper + "/run/y"));
  EXPECT_TRUE(Exists(upper + "/run"));
  // A mount point the command filled after the mount (not empty) stays.
  Touch(upper + "/kept/file");
  RemoveMountpointTraces(upper, layers_, "/kept");
  EXPECT_TRUE(Exists(upper + "/kept/file"));
}

dockerfile::Run ParseRun(const std::string& text) {
  absl::StatusOr<dockerfile::Dockerfile> df = dockerfile::Parse("FROM scratch\n" + text);
  EXPECT_OK(df.status());
  return std::get<dockerfile::Run>(df->stages[0].instructions[0].command);
}

TEST(RunWithHeredocsTest, ScriptsShebangsAndShellHeredocs) {
  const std::vector<std::string> sh = {"/bin/sh", "-c"};
  HeredocRun plain = RunWithHeredocs(ParseRun("RUN <<EOF\necho $A\nEOF\n"), sh, '\\');
  EXPECT_THAT(plain.args, ElementsAre("/bin/sh", "-c", "echo $A\n"));
  EXPECT_FALSE(plain.script);

  HeredocRun bang =
      RunWithHeredocs(ParseRun("RUN <<-PY\n\t#!/usr/bin/python3\n\tprint(1)\n\tPY\n"), sh, '\\');
  ASSERT_TRUE(bang.script);
  EXPECT_EQ(bang.script->name, "PY");
  EXPECT_EQ(bang.script->body, "#!/usr/bin/python3\nprint(1)\n");
  EXPECT_THAT(bang.args, ElementsAre("/dev/pipes/PY"));

  HeredocRun cat = RunWithHeredocs(ParseRun("RUN cat <<'EOF' > /f\n$HOME\nEOF\n"), sh, '\\');
  EXPECT_THAT(cat.args, ElementsAre("/bin/sh", "-c", "cat <<'EOF' > /f\n$HOME\nEOF"));

  HeredocRun two =
      RunWithHeredocs(ParseRun("RUN <<A cat > /a && <<B cat > /b\n1\nA\n2\nB\n"), sh, '\\');
  EXPECT_THAT(two.args, ElementsAre("/bin/sh", "-c", "<<A cat > /a && <<B cat > /b\n1\nA\n2\nB"));

  // A command word after the here-document: the shell runs it.
  HeredocRun with_cmd = RunWithHeredocs(ParseRun("RUN <<EOT bash\nset -e\nEOT\n"), sh, '\\');
  EXPECT_THAT(with_cmd.args, ElementsAre("/bin/sh", "-c", "<<EOT bash\nset -e\nEOT"));
}

TEST(CacheMountsTest, SharingModes) {
  if (geteuid() != 0) FAIL() << "required: needs root (chown)";
  TempDir dir;
  CacheMounts caches(dir.Sub("caches"));
  ASSERT_OK_AND_ASSIGN(std::string a, caches.Acquire("/root/.cache", "shared", 0750, 7, 8));
  ASSERT_OK_AND_ASSIGN(std::string b, caches.Acquire("/root/.cache", "", 0700, 0, 0));
  EXPECT_EQ(a, b);
  struct stat st;
  ASSERT_EQ(stat(a.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);  // from the first use
  EXPECT_EQ(st.st_uid, 7u);
  EXPECT_EQ(st.st_gid, 8u);
  // private: another directory while the first is held.
  ASSERT_OK_AND_ASSIGN(std::string p, caches.Acquire("/root/.cache", "private", 0755, 0, 0));
  EXPECT_NE(p, a);
  caches.Release(p);
  ASSERT_OK_AND_ASSIGN(std::string other, caches.Acquire("other", "shared", 0755, 0, 0));
  EXPECT_NE(other, a);
  caches.Release(other);
  // locked: waits for the shared holders to go.
  std::atomic<bool> got{false};
  std::thread locker([&] {
    absl::StatusOr<std::string> l = caches.Acquire("/root/.cache", "locked", 0755, 0, 0);
    got = true;
    if (l.ok()) caches.Release(*l);
  });
  caches.Release(a);
  EXPECT_FALSE(got.load());  // b still holds it
  caches.Release(b);
  locker.join();
  EXPECT_TRUE(got.load());
}

TEST(CacheMountsTest, PruneRemovesWhatNoOneHolds) {
  TempDir dir;
  CacheMounts caches(dir.Sub("caches"));
  EXPECT_EQ(caches.Prune(false).value_or(-1), 0);  // no root yet
  ASSERT_OK_AND_ASSIGN(std::string held, caches.Acquire("held", "shared", 0755, 0, 0));
  ASSERT_OK_AND_ASSIGN(std::string idle, caches.Acquire("idle", "shared", 0755, 0, 0));
  Touch(held + "/a", "1234");
  Touch(idle + "/sub/b", "123456");
  caches.Release(idle);
  EXPECT_EQ(caches.Prune(true).value_or(-1), 6);
  EXPECT_TRUE(Exists(idle + "/sub/b"));
  EXPECT_EQ(caches.Prune(false).value_or(-1), 6);
  EXPECT_FALSE(Exists(idle));
  EXPECT_TRUE(Exists(held + "/a"));
  caches.Release(held);
}

}  // namespace
}  // namespace pier::builder
