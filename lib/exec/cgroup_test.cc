// Cgroup logic against fake hierarchies (plain directories), so that both
// the v1 and the v2 code paths run on any host.
#include "lib/exec/cgroup.h"

#include <sys/stat.h>

#include "gtest/gtest.h"
#include "lib/common/fs.h"
#include "lib/common/testing.h"

namespace pier::exec {
namespace {

using ::pier::testing::StatusIs;
using ::pier::testing::TempDir;

// Creates `dir` with empty control files, as the kernel would.
void FakeCgroupDir(const std::string& dir, const std::vector<std::string>& files) {
  ASSERT_OK(MakeDirs(dir));
  for (const std::string& f : files) ASSERT_OK(WriteFileAtomic(JoinPath(dir, f), ""));
}

std::string Read(const std::string& path) {
  auto s = ReadFile(path);
  return s.ok() ? *s : "<missing>";
}

TEST(CgroupTest, V2WritesLimitsAndEnablesControllers) {
  TempDir root;
  ASSERT_OK(WriteFileAtomic(root.Sub("cgroup.controllers"), "cpuset cpu io memory pids hugetlb"));
  ASSERT_OK(WriteFileAtomic(root.Sub("cgroup.subtree_control"), ""));
  FakeCgroupDir(root.Sub("pier"), {"cgroup.subtree_control"});
  ASSERT_OK(WriteFileAtomic(root.Sub("pier/cgroup.controllers"), "memory pids"));
  FakeCgroupDir(root.Sub("pier/c1"), {"memory.max", "memory.swap.max", "cpu.max", "cpu.weight",
                                      "pids.max", "cgroup.procs"});
  CgroupLayout layout{CgroupVersion::kV2, root.path(), {}};
  CgroupSpec spec;
  spec.memory_bytes = 32 << 20;
  spec.memory_swap = 64 << 20;
  spec.nano_cpus = 1500000000;
  spec.cpu_shares = 1024;
  spec.pids_limit = 20;
  // All devices allowed: a fake directory cannot take the eBPF device filter.
  ASSERT_OK_AND_ASSIGN(auto cg, Cgroup::Create(layout, "pier/c1", spec, true));
  EXPECT_EQ(Read(root.Sub("pier/c1/memory.max")), "33554432");
  EXPECT_EQ(Read(root.Sub("pier/c1/memory.swap.max")), "33554432");
  EXPECT_EQ(Read(root.Sub("pier/c1/cpu.max")), "150000 100000");
  EXPECT_EQ(Read(root.Sub("pier/c1/cpu.weight")), "39");
  EXPECT_EQ(Read(root.Sub("pier/c1/pids.max")), "20");
  // Each write replaces the fake file's content: the last controller wins.
  EXPECT_EQ(Read(root.Sub("pier/cgroup.subtree_control")), "+pids");
  ASSERT_OK(cg->AddProcess(1234));
  EXPECT_EQ(Read(root.Sub("pier/c1/cgroup.procs")), "1234");
  ASSERT_EQ(cg->paths().size(), 1u);
  EXPECT_EQ(cg->paths()[0], root.Sub("pier/c1"));
}

TEST(CgroupTest, V1WritesEachController) {
  TempDir root;
  for (const char* c : {"memory", "cpu", "pids"}) ASSERT_OK(MakeDirs(root.Sub(c)));
  FakeCgroupDir(root.Sub("memory/pier/c2"),
                {"memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "cgroup.procs"});
  FakeCgroupDir(root.Sub("cpu/pier/c2"),
                {"cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares", "cgroup.procs"});
  FakeCgroupDir(root.Sub("pids/pier/c2"), {"pids.max", "cgroup.procs"});
  CgroupLayout layout;
  layout.version = CgroupVersion::kV1;
  for (const char* c : {"memory", "cpu", "pids"}) layout.v1[c] = root.Sub(c);
  CgroupSpec spec;
  spec.memory_bytes = 1 << 20;
  spec.memory_swap = -1;
  spec.nano_cpus = 500000000;
  spec.cpu_shares = 512;
  spec.pids_limit = 7;
  ASSERT_OK_AND_ASSIGN(auto cg, Cgroup::Create(layout, "pier/c2", spec, false));
  EXPECT_EQ(Read(root.Sub("memory/pier/c2/memory.limit_in_bytes")), "1048576");
  EXPECT_EQ(Read(root.Sub("memory/pier/c2/memory.memsw.limit_in_bytes")), "-1");
  EXPECT_EQ(Read(root.Sub("cpu/pier/c2/cpu.cfs_period_us")), "100000");
  EXPECT_EQ(Read(root.Sub("cpu/pier/c2/cpu.cfs_quota_us")), "50000");
  EXPECT_EQ(Read(root.Sub("cpu/pier/c2/cpu.shares")), "512");
  EXPECT_EQ(Read(root.Sub("pids/pier/c2/pids.max")), "7");
  EXPECT_EQ(cg->paths().size(), 3u);
}

TEST(CgroupTest, MissingControllerIsAClearError) {
  TempDir root;
  ASSERT_OK(MakeDirs(root.Sub("memory")));
  CgroupLayout layout;
  layout.v1["memory"] = root.Sub("memory");
  CgroupSpec spec;
  spec.pids_limit = 3;
  EXPECT_THAT(Cgroup::Create(layout, "pier/c3", spec, false),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::HasSubstr("pids")));
  // What was created for the failed cgroup is gone again.
  struct stat st;
  EXPECT_NE(::stat(root.Sub("memory/pier/c3").c_str(), &st), 0);
}

TEST(CgroupTest, RejectsEscapingPaths) {
  CgroupLayout layout{CgroupVersion::kV2, "/nonexistent", {}};
  EXPECT_THAT(Cgroup::Create(layout, "../x", {}, false),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Cgroup::Create(layout, "/abs", {}, false),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(CgroupTest, DetectsThisHost) {
  auto layout = DetectCgroupLayout();
  if (!layout.ok()) FAIL() << layout.status();
  if (layout->version == CgroupVersion::kV1) {
    EXPECT_FALSE(layout->v1.empty());
  } else {
    EXPECT_FALSE(layout->unified.empty());
  }
}

}  // namespace
}  // namespace pier::exec
