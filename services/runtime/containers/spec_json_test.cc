#include "services/runtime/containers/spec_json.h"

#include "gtest/gtest.h"
#include "lib/common/testing.h"

namespace pier::runtime {
namespace {

using ::pier::testing::StatusIs;
using ::testing::HasSubstr;

TEST(SpecJsonTest, RoundTripsEveryField) {
  exec::ContainerSpec s;
  s.id = "abc";
  s.rootfs = "/var/lib/x/rootfs";
  s.rootfs_mounts = {{"overlay", "overlay", "/", {"lowerdir=/a:/b", "upperdir=/u", "workdir=/w"}}};
  s.mounts = {{"bind", "/host", "/data", {"rbind", "ro"}}, {"tmpfs", "tmpfs", "/run", {}}};
  s.readonly_rootfs = true;
  s.hostname = "h";
  s.namespaces.net = {exec::NamespaceMode::kPath, "/run/netns/x"};
  s.namespaces.pid.mode = exec::NamespaceMode::kHost;
  s.masked_paths = {"/proc/kcore"};
  s.readonly_paths = {};
  s.privileged = true;
  s.seccomp = exec::SeccompMode::kUnconfined;
  s.cgroup = {"pier/abc", 1 << 20, -1, 500000000, 512, 10, "0-1", "0"};
  s.process.args = {"sh", "-c", "echo \"hi\" \xff"};
  s.process.env = {"A=1"};
  s.process.cwd = "/w";
  s.process.uid = 1000;
  s.process.gid = 1001;
  s.process.additional_gids = {5, 6};
  s.process.tty = true;
  s.process.tty_rows = 24;
  s.process.tty_cols = 80;
  s.process.no_new_privileges = false;
  s.process.capabilities = {"CAP_KILL"};
  s.process.rlimits = {{"RLIMIT_NOFILE", 100, 200}};
  s.process.oom_score_adj = -5;

  ASSERT_OK_AND_ASSIGN(exec::ContainerSpec r, ContainerSpecFromJson(ContainerSpecToJson(s)));
  EXPECT_EQ(r.id, s.id);
  EXPECT_EQ(r.rootfs, s.rootfs);
  ASSERT_EQ(r.rootfs_mounts.size(), 1u);
  EXPECT_EQ(r.rootfs_mounts[0].options, s.rootfs_mounts[0].options);
  ASSERT_EQ(r.mounts.size(), 2u);
  EXPECT_EQ(r.mounts[0].source, "/host");
  EXPECT_EQ(r.mounts[1].type, "tmpfs");
  EXPECT_TRUE(r.readonly_rootfs);
  EXPECT_EQ(r.hostname, "h");
  EXPECT_EQ(r.namespaces.net.mode, exec::NamespaceMode::kPath);
  EXPECT_EQ(r.namespaces.net.path, "/run/netns/x");
  EXPECT_EQ(r.namespaces.pid.mode, exec::NamespaceMode::kHost);
  EXPECT_EQ(r.namespaces.ipc.mode, exec::NamespaceMode::kNew);
  EXPECT_EQ(r.masked_paths, s.masked_paths);
  EXPECT_TRUE(r.readonly_paths.empty());
  EXPECT_TRUE(r.privileged);
  EXPECT_EQ(r.seccomp, exec::SeccompMode::kUnconfined);
  EXPECT_EQ(r.cgroup.parent_path, "pier/abc");
  EXPECT_EQ(r.cgroup.memory_bytes, 1 << 20);
  EXPECT_EQ(r.cgroup.memory_swap, -1);
  EXPECT_EQ(r.cgroup.nano_cpus, 500000000);
  EXPECT_EQ(r.cgroup.cpu_shares, 512u);
  EXPECT_EQ(r.cgroup.pids_limit, 10);
  EXPECT_EQ(r.cgroup.cpuset_cpus, "0-1");
  EXPECT_EQ(r.cgroup.cpuset_mems, "0");
  EXPECT_EQ(r.process.args.size(), 3u);
  EXPECT_EQ(r.process.args[0], "sh");
  EXPECT_EQ(r.process.env, s.process.env);
  EXPECT_EQ(r.process.cwd, "/w");
  EXPECT_EQ(r.process.uid, 1000u);
  EXPECT_EQ(r.process.gid, 1001u);
  EXPECT_EQ(r.process.additional_gids, s.process.additional_gids);
  EXPECT_TRUE(r.process.tty);
  EXPECT_EQ(r.process.tty_rows, 24);
  EXPECT_EQ(r.process.tty_cols, 80);
  EXPECT_FALSE(r.process.no_new_privileges);
  EXPECT_EQ(r.process.capabilities, s.process.capabilities);
  ASSERT_EQ(r.process.rlimits.size(), 1u);
  EXPECT_EQ(r.process.rlimits[0].hard, 200u);
  EXPECT_EQ(r.process.oom_score_adj, -5);
}

TEST(SpecJsonTest, MissingFieldsKeepDefaults) {
  ASSERT_OK_AND_ASSIGN(exec::ContainerSpec r,
                       ContainerSpecFromJson(R"({"rootfs":"/r","process":{"args":["true"]}})"));
  EXPECT_EQ(r.process.capabilities, exec::DefaultCapabilities());
  EXPECT_EQ(r.masked_paths, exec::DefaultMaskedPaths());
  EXPECT_EQ(r.process.cwd, "/");
  EXPECT_TRUE(r.process.no_new_privileges);
  EXPECT_FALSE(r.process.oom_score_adj.has_value());
}

TEST(SpecJsonTest, BadInputIsInvalidArgument) {
  EXPECT_THAT(ContainerSpecFromJson("{"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ContainerSpecFromJson("[]"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ContainerSpecFromJson(R"({"process":{"uid":"root"}})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("process.uid")));
  EXPECT_THAT(ContainerSpecFromJson(R"({"namespaces":{"net":{"mode":"shared"}}})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("namespaces.net.mode")));
  EXPECT_THAT(ContainerSpecFromJson(R"({"seccomp":"off"})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("seccomp")));
}

}  // namespace
}  // namespace pier::runtime
