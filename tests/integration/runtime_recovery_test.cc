// An agent restart after a simulated host reboot: the container's shim and
// processes are gone without an exit record and its pinned network
// namespace is unmounted (what a reboot leaves). The agent must record the
// loss, apply the restart policy, and start the container again in a new
// network namespace at the same path. Needs root, overlayfs and
// busybox-static.
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/common/fs.h"
#include "pier/runtime/v1/runtime.grpc.pb.h"
#include "tests/integration/runtime_helpers.h"

namespace pier::testing {
namespace {

namespace v1 = ::pier::runtime::v1;

// SIGKILLs `pid` and waits (on a pidfd) until it is gone (it may be gone
// already: a container's init may die with its shim).
void KillAndWait(pid_t pid) {
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!fd.valid() && errno == ESRCH) return;
  ASSERT_TRUE(fd.valid()) << "pidfd_open " << pid << ": " << std::strerror(errno);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  pollfd p{fd.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 30000), 1) << "process " << pid << " did not die";
}

class RuntimeRecoveryTest : public RuntimeFixture {};

TEST_F(RuntimeRecoveryTest, RestartPolicyRestartsAfterReboot) {
  v1::ContainerSpec spec = Spec({"sleep", "1000"});
  spec.set_name("phoenix");
  spec.mutable_restart_policy()->set_name(v1::RestartPolicy::NAME_ALWAYS);
  std::string id;
  grpc::Status s = Run(spec, &id);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const pid_t old_init = State(id).pid();
  ASSERT_GT(old_init, 0);

  grpc::ClientContext ic;
  v1::InspectContainerRequest ireq;
  ireq.set_id(id);
  v1::InspectContainerResponse iresp;
  ASSERT_TRUE(containers_->InspectContainer(&ic, ireq, &iresp).ok());
  // Network none: the container's clone makes its namespace, nothing is
  // pinned on the host.
  EXPECT_EQ(iresp.container().network().sandbox_path(), "");

  // The "reboot": the agent stops, then the shim and the container die
  // without an exit record.
  ASSERT_OK(runtime_.Stop(SIGTERM, std::chrono::seconds(15)).status());
  const std::string state_dir = dir_.Sub("root/run/containers/" + id);
  std::string shim_text = ReadFile(state_dir + "/shim.pid").value_or("");
  int shim_pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(shim_text), &shim_pid)) << shim_text;
  KillAndWait(shim_pid);
  KillAndWait(old_init);
  ASSERT_TRUE(::unlink((state_dir + "/exit.json").c_str()) == 0 || errno == ENOENT);

  StartRuntime();
  // The restart shows as a "start" event in the new agent's buffer.
  grpc::ClientContext ec;
  ec.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::EventsRequest ereq;
  ereq.mutable_since()->set_seconds(0);
  ereq.add_ids(id);
  ereq.add_actions("start");
  auto events = system_->Events(&ec, ereq);
  v1::EventsResponse ev;
  ASSERT_TRUE(events->Read(&ev)) << events->Finish().error_message();
  ec.TryCancel();
  (void)events->Finish();

  v1::ContainerState st = State(id);
  EXPECT_EQ(st.status(), v1::CONTAINER_STATUS_RUNNING);
  EXPECT_GE(st.restart_count(), 1);
  ASSERT_GT(st.pid(), 0);
  EXPECT_NE(st.pid(), old_init);
  // It has a network namespace of its own again, with its loopback up.
  struct stat mine, host;
  ASSERT_EQ(::stat(absl::StrCat("/proc/", st.pid(), "/ns/net").c_str(), &mine), 0);
  ASSERT_EQ(::stat("/proc/self/ns/net", &host), 0);
  EXPECT_NE(mine.st_ino, host.st_ino);
  int code = -1;
  std::string out = ExecOutput(id, {"ip", "link", "show", "lo"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, ::testing::HasSubstr("UP"));
}

}  // namespace
}  // namespace pier::testing
