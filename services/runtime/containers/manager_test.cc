// Integration tests of ContainerManager with the real pier-shim: busybox
// containers in a root file system built by the test. Needs root and
// busybox-static. Every shim, container and cgroup left by a test is killed
// and removed by ShimReaper, also when the test fails half-way.
#include "services/runtime/containers/manager.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "lib/common/testing.h"
#include "lib/exec/cgroup.h"
#include "services/runtime/shim/protocol.h"
#include "services/runtime/shim/state_dir.h"

namespace pier::runtime {
namespace {

using ::pier::testing::StatusIs;
using ::pier::testing::TempDir;
using ::testing::HasSubstr;

constexpr char kBusybox[] = "/bin/busybox";
constexpr absl::Duration kWait = absl::Seconds(30);

const char* const kApplets[] = {"sh", "echo", "sleep", "cat", "true", "false", "stty", "kill"};

absl::Status MakeBusyboxRootfs(const std::string& dir) {
  for (const char* d : {"bin", "proc", "sys", "dev", "etc", "tmp"}) {
    RETURN_IF_ERROR(MakeDirs(JoinPath(dir, d)));
  }
  ASSIGN_OR_RETURN(std::string busybox, ReadFile(kBusybox));
  RETURN_IF_ERROR(WriteFileAtomic(JoinPath(dir, "bin/busybox"), busybox, 0755));
  for (const char* applet : kApplets) {
    std::string link = JoinPath(dir, absl::StrCat("bin/", applet));
    if (::symlink("busybox", link.c_str()) < 0 && errno != EEXIST) {
      return ErrnoStatus(errno, link);
    }
  }
  return WriteFileAtomic(JoinPath(dir, "etc/passwd"), "root:x:0:0:root:/:/bin/sh\n");
}

// Kills every shim and container under <root>/containers and removes their
// cgroups: the safety net behind each test.
class ShimReaper {
 public:
  explicit ShimReaper(std::string root) : root_(std::move(root)) {}
  ~ShimReaper() {
    std::string base = JoinPath(root_, "containers");
    DIR* d = ::opendir(base.c_str());
    if (d == nullptr) return;
    std::vector<std::string> ids;
    while (struct dirent* ent = ::readdir(d)) {
      if (ent->d_name[0] != '.') ids.emplace_back(ent->d_name);
    }
    ::closedir(d);
    auto layout = exec::DetectCgroupLayout();
    for (const std::string& id : ids) {
      std::string dir = JoinPath(base, id);
      auto shim_pid = shim::ReadPidFile(JoinPath(dir, shim::kShimPidFile));
      if (shim_pid.ok() && shim::IsShimAlive(*shim_pid, dir)) ::kill(*shim_pid, SIGKILL);
      if (!layout.ok()) continue;
      struct stat st;
      std::string probe =
          layout->version == exec::CgroupVersion::kV1
              ? absl::StrCat(layout->v1.count("memory") ? layout->v1.at("memory")
                                                        : std::string("/nonexistent"),
                             "/pier/", id)
              : absl::StrCat(layout->unified, "/pier/", id);
      if (::stat(probe.c_str(), &st) != 0) continue;
      auto cg = exec::Cgroup::Create(*layout, absl::StrCat("pier/", id), exec::CgroupSpec{}, true);
      if (cg.ok()) {
        absl::Status s = (*cg)->Destroy();
        if (!s.ok()) ADD_FAILURE() << "removing cgroup of " << id << ": " << s;
      }
    }
  }

 private:
  std::string root_;
};

class ContainerManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) FAIL() << "required: needs root";
    struct stat st;
    if (::stat(kBusybox, &st) != 0) FAIL() << "required: needs busybox-static";
    rootfs_ = tmp_.Sub("rootfs");
    ASSERT_OK(MakeBusyboxRootfs(rootfs_));
    ASSERT_OK(OpenManager());
  }

  absl::Status OpenManager() {
    ASSIGN_OR_RETURN(kv_, kv::OpenRocksDb(tmp_.Sub("kv")));
    ManagerOptions o;
    o.root = tmp_.Sub("root");
    o.kv = kv_.get();
    o.shim_path = PIER_SHIM_PATH;
    ASSIGN_OR_RETURN(manager_, ContainerManager::Open(o));
    return manager_->Recover();
  }

  // The daemon going away: the manager first, then its KvStore.
  void CloseManager() {
    manager_.reset();
    kv_.reset();
  }

  CreateOptions Options(std::vector<std::string> args, std::string name = "") {
    CreateOptions o;
    o.name = std::move(name);
    o.spec.rootfs = rootfs_;
    o.spec.process.args = std::move(args);
    return o;
  }

  absl::StatusOr<std::string> Run(const CreateOptions& o) {
    ASSIGN_OR_RETURN(std::string id, manager_->Create(o));
    RETURN_IF_ERROR(manager_->Start(id));
    return id;
  }

  std::vector<shim::LogEntry> Logs(const std::string& id, LogsOptions o = {}) {
    std::vector<shim::LogEntry> out;
    absl::Status s = manager_->Logs(id, o, [&](const shim::LogEntry& e) {
      out.push_back(e);
      return true;
    });
    EXPECT_OK(s);
    return out;
  }

  // Follows the logs until `text` appears (bounded by kWait).
  absl::Status WaitForLog(const std::string& id, absl::string_view text) {
    LogsOptions o;
    o.follow = true;
    const absl::Time deadline = absl::Now() + kWait;
    o.cancelled = [deadline] { return absl::Now() > deadline; };
    bool seen = false;
    std::string all;
    RETURN_IF_ERROR(manager_->Logs(id, o, [&](const shim::LogEntry& e) {
      all += e.data;
      seen = absl::StrContains(all, text);
      return !seen;
    }));
    if (!seen) return absl::DeadlineExceededError(absl::StrCat("no \"", text, "\" in the logs"));
    return absl::OkStatus();
  }

  TempDir tmp_;
  ShimReaper reaper_{tmp_.Sub("root")};
  std::string rootfs_;
  std::unique_ptr<kv::KvStore> kv_;
  std::unique_ptr<ContainerManager> manager_;
};

TEST_F(ContainerManagerTest, RunCapturesLogsAndExitCode) {
  ASSERT_OK_AND_ASSIGN(std::string id,
                       Run(Options({"sh", "-c", "echo hi; echo err >&2; exit 3"}, "logs")));
  ASSERT_OK_AND_ASSIGN(exec::ExitStatus st, manager_->Wait(id, kWait));
  EXPECT_EQ(st.code, 3);
  EXPECT_EQ(st.signal, 0);

  ASSERT_OK_AND_ASSIGN(ContainerInfo info, manager_->Inspect("logs"));
  EXPECT_EQ(info.id, id);
  EXPECT_EQ(info.state, ContainerState::kExited);
  EXPECT_EQ(info.exit.ExitCode(), 3);
  EXPECT_FALSE(info.exit.oom_killed);
  EXPECT_LE(info.created_at, info.started_at);
  EXPECT_LE(info.started_at, info.finished_at);
  EXPECT_EQ(info.pid, 0);

  std::vector<shim::LogEntry> logs = Logs(id);
  ASSERT_EQ(logs.size(), 2u);
  EXPECT_EQ(logs[0].stream, "stdout");
  EXPECT_EQ(logs[0].data, "hi\n");
  EXPECT_EQ(logs[1].stream, "stderr");
  EXPECT_EQ(logs[1].data, "err\n");
  EXPECT_LE(logs[0].time, logs[1].time);
  EXPECT_GE(logs[0].time, info.started_at - absl::Seconds(1));

  LogsOptions o;
  o.tail = 1;
  o.timestamps = true;
  logs = Logs(id, o);
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0].data, absl::StrCat(shim::FormatTimestamp(logs[0].time), " err\n"));
  o = {};
  o.stderr = false;
  logs = Logs(id, o);
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0].data, "hi\n");
  o = {};
  o.follow = true;  // ends by itself: the container has exited
  EXPECT_EQ(Logs(id, o).size(), 2u);
}

TEST_F(ContainerManagerTest, StopEscalatesToSigkill) {
  ASSERT_OK_AND_ASSIGN(std::string id,
                       Run(Options({"sh", "-c", "trap '' TERM; echo ready; sleep 1000"})));
  ASSERT_OK(WaitForLog(id, "ready"));
  const absl::Time t0 = absl::Now();
  ASSERT_OK(manager_->Stop(id, absl::Seconds(1)));
  const absl::Duration took = absl::Now() - t0;
  EXPECT_GE(took, absl::Seconds(1));  // the grace period was honoured
  EXPECT_LT(took, kWait);
  ASSERT_OK_AND_ASSIGN(exec::ExitStatus st, manager_->Wait(id, kWait));
  EXPECT_EQ(st.signal, SIGKILL);
  EXPECT_EQ(st.ExitCode(), 137);
  ASSERT_OK_AND_ASSIGN(ContainerInfo info, manager_->Inspect(id));
  EXPECT_EQ(info.state, ContainerState::kExited);
  EXPECT_TRUE(info.manually_stopped);
  EXPECT_OK(manager_->Stop(id));  // stopping a stopped container is fine
  EXPECT_THAT(manager_->Kill(id, SIGTERM), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(ContainerManagerTest, KillDeliversTheSignal) {
  ASSERT_OK_AND_ASSIGN(
      std::string id,
      Run(Options({"sh", "-c", "trap 'echo usr1; exit 7' USR1; echo ready; sleep 1000 & wait"})));
  ASSERT_OK(WaitForLog(id, "ready"));
  ASSERT_OK(manager_->Kill(id, SIGUSR1));
  ASSERT_OK_AND_ASSIGN(exec::ExitStatus st, manager_->Wait(id, kWait));
  EXPECT_EQ(st.code, 7);
  std::string out;
  for (const auto& e : Logs(id)) out += e.data;
  EXPECT_EQ(out, "ready\nusr1\n");
}

TEST_F(ContainerManagerTest, RestartAlwaysUntilStopped) {
  CreateOptions o = Options({"sh", "-c", "exit 1"});
  ASSERT_OK_AND_ASSIGN(o.restart, RestartPolicy::Parse("always"));
  ASSERT_OK_AND_ASSIGN(std::string id, Run(o));
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(exec::ExitStatus st, manager_->Wait(id, kWait));
    EXPECT_EQ(st.code, 1);
  }
  ASSERT_OK_AND_ASSIGN(ContainerInfo info, manager_->Inspect(id));
  EXPECT_GE(info.restart_count, 2);
  ASSERT_OK(manager_->Stop(id, absl::Seconds(5)));
  ASSERT_OK_AND_ASSIGN(info, manager_->Inspect(id));
  EXPECT_EQ(info.state, ContainerState::kExited);
  const int count = info.restart_count;
  // Stopped for good: Wait answers at once and nothing restarts it.
  ASSERT_OK_AND_ASSIGN(exec::ExitStatus st, manager_->Wait(id, kWait));
  EXPECT_EQ(st.code, 1);
  ASSERT_OK_AND_ASSIGN(info, manager_->Inspect(id));
  EXPECT_EQ(info.state, ContainerState::kExited);
  EXPECT_EQ(info.restart_count, count);
}

TEST_F(ContainerManagerTest, OnFailureGivesUpAfterMaxRetries) {
  CreateOptions o = Options({"sh", "-c", "echo run; exit 1"});
  ASSERT_OK_AND_ASSIGN(o.restart, RestartPolicy::Parse("on-failure:2"));
  ASSERT_OK_AND_ASSIGN(std::string id, Run(o));
  ContainerInfo info;
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK(manager_->Wait(id, kWait).status());
    ASSERT_OK_AND_ASSIGN(info, manager_->Inspect(id));
    if (info.state == ContainerState::kExited) break;
  }
  EXPECT_EQ(info.state, ContainerState::kExited);
  EXPECT_EQ(info.restart_count, 2);
  EXPECT_EQ(info.exit.code, 1);
  EXPECT_EQ(Logs(id).size(), 3u);  // one line per run, logs kept across restarts

  // on-failure does not restart a clean exit.
  CreateOptions ok = Options({"true"});
  ok.restart = o.restart;
  ASSERT_OK_AND_ASSIGN(std::string ok_id, Run(ok));
  ASSERT_OK(manager_->Wait(ok_id, kWait).status());
  ASSERT_OK_AND_ASSIGN(info, manager_->Inspect(ok_id));
  EXPECT_EQ(info.state, ContainerState::kExited);
  EXPECT_EQ(info.restart_count, 0);
}

TEST_F(ContainerManagerTest, RestartPolicyParsing) {
  EXPECT_EQ(RestartPolicy::Parse("no")->kind, RestartPolicy::Kind::kNo);
  EXPECT_EQ(RestartPolicy::Parse("unless-stopped")->kind, RestartPolicy::Kind::kUnlessStopped);
  EXPECT_EQ(RestartPolicy::Parse("on-failure")->max_retries, 0);
  EXPECT_EQ(RestartPolicy::Parse("on-failure:5")->ToString(), "on-failure:5");
  EXPECT_THAT(RestartPolicy::Parse("sometimes"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RestartPolicy::Parse("on-failure:x"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ContainerManagerTest, NamesAreUnique) {
  ASSERT_OK(manager_->Create(Options({"true"}, "web")).status());
  EXPECT_THAT(manager_->Create(Options({"true"}, "web")),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("web")));
  EXPECT_THAT(manager_->Create(Options({"true"}, "bad/name")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK(manager_->Remove("web", false));
  EXPECT_OK(manager_->Create(Options({"true"}, "web")).status());  // free again
}

TEST_F(ContainerManagerTest, MissingExecutableIsAClearError) {
  ASSERT_OK_AND_ASSIGN(std::string id, manager_->Create(Options({"/bin/nope"})));
  EXPECT_THAT(manager_->Start(id),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("exec /bin/nope")));
  ASSERT_OK_AND_ASSIGN(ContainerInfo info, manager_->Inspect(id));
  EXPECT_EQ(info.state, ContainerState::kCreated);
  EXPECT_THAT(info.error, HasSubstr("/bin/nope"));
  EXPECT_THAT(manager_->Wait(id, kWait), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_OK(manager_->Remove(id, false));
}

TEST_F(ContainerManagerTest, RemoveRunningNeedsForce) {
  ASSERT_OK_AND_ASSIGN(std::string id, Run(Options({"sleep", "1000"})));
  EXPECT_THAT(manager_->Remove(id, false), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK_AND_ASSIGN(ContainerInfo info, manager_->Inspect(id));
  EXPECT_EQ(info.state, ContainerState::kRunning);
  ASSERT_OK(manager_->Remove(id, true));
  EXPECT_THAT(manager_->Inspect(id), StatusIs(absl::StatusCode::kNotFound));
  struct stat st;
  EXPECT_NE(::stat(manager_->StateDir(id).c_str(), &st), 0);
  EXPECT_FALSE(shim::IsShimAlive(info.shim_pid, manager_->StateDir(id)));
  EXPECT_NE(::kill(info.pid, 0), 0);
}

TEST_F(ContainerManagerTest, ExecRunsInTheContainer) {
  ASSERT_OK_AND_ASSIGN(std::string id,
                       Run(Options({"sh", "-c", "echo hello > /tmp/x; echo ready; sleep 1000"})));
  ASSERT_OK(WaitForLog(id, "ready"));
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  exec::ProcessSpec proc;
  proc.args = {"sh", "-c", "cat /tmp/x; echo $$"};
  ASSERT_OK_AND_ASSIGN(auto process, manager_->Exec(id, proc, {-1, w.get(), w.get()}));
  w.Reset();
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = ::read(r.get(), buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  ASSERT_OK_AND_ASSIGN(exec::ExitStatus st, process->WaitFor(kWait));
  EXPECT_EQ(st.code, 0);
  EXPECT_OK(process->Cleanup());
  EXPECT_THAT(out, ::testing::StartsWith("hello\n"));
  EXPECT_NE(out, "hello\n1\n");  // not the init: its own pid in the container
  ASSERT_OK(manager_->Remove(id, true));
}

TEST_F(ContainerManagerTest, AttachForwardsStdinAndOutput) {
  CreateOptions o = Options({"cat"});
  o.open_stdin = true;
  ASSERT_OK_AND_ASSIGN(std::string id, Run(o));
  ASSERT_OK_AND_ASSIGN(auto stream, manager_->Attach(id, true));
  ASSERT_OK(stream->WriteStdin("ping\n"));
  std::string out;
  while (!absl::StrContains(out, "ping\n")) {
    ASSERT_OK_AND_ASSIGN(shim::AttachEvent ev, stream->Next(kWait));
    ASSERT_EQ(ev.kind, shim::AttachEvent::Kind::kStdout);
    out += ev.data;
  }
  ASSERT_OK(stream->CloseStdin());
  ASSERT_OK_AND_ASSIGN(shim::AttachEvent ev, stream->Next(kWait));
  ASSERT_EQ(ev.kind, shim::AttachEvent::Kind::kExit);
  EXPECT_EQ(ev.exit->status.code, 0);
  ASSERT_OK_AND_ASSIGN(exec::ExitStatus st, manager_->Wait(id, kWait));
  EXPECT_EQ(st.code, 0);
  EXPECT_EQ(Logs(id).at(0).data, "ping\n");
}

TEST_F(ContainerManagerTest, TtyAttachAndResize) {
  CreateOptions o = Options({"sh", "-c", "echo ready; read x; stty size; exit 4"});
  o.spec.process.tty = true;
  ASSERT_OK_AND_ASSIGN(std::string id, Run(o));
  ASSERT_OK_AND_ASSIGN(auto stream, manager_->Attach(id, true));
  ASSERT_OK(WaitForLog(id, "ready"));
  ASSERT_OK(manager_->Resize(id, 33, 111));
  ASSERT_OK(stream->WriteStdin("go\n"));
  std::string out;
  std::optional<shim::ExitRecord> exit;
  while (!exit) {
    ASSERT_OK_AND_ASSIGN(shim::AttachEvent ev, stream->Next(kWait));
    ASSERT_NE(ev.kind, shim::AttachEvent::Kind::kEof) << out;
    out += ev.data;
    exit = ev.exit;
  }
  EXPECT_THAT(out, HasSubstr("33 111"));
  EXPECT_EQ(exit->status.code, 4);
}

TEST_F(ContainerManagerTest, ContainersOutliveTheManager) {
  ASSERT_OK_AND_ASSIGN(std::string id,
                       Run(Options({"sh", "-c", "echo ready; sleep 1000"}, "survivor")));
  ASSERT_OK(WaitForLog(id, "ready"));
  ASSERT_OK_AND_ASSIGN(std::string gone_id, Run(Options({"sleep", "1000"}, "dies-meanwhile")));
  ASSERT_OK_AND_ASSIGN(ContainerInfo before, manager_->Inspect(id));
  ASSERT_OK_AND_ASSIGN(ContainerInfo gone_before, manager_->Inspect(gone_id));
  const std::string dir = manager_->StateDir(id);
  const std::string gone_dir = manager_->StateDir(gone_id);
  CloseManager();

  EXPECT_TRUE(shim::IsShimAlive(before.shim_pid, dir));
  EXPECT_EQ(::kill(before.pid, 0), 0);
  // The shim ignores SIGTERM/SIGINT/SIGHUP: it still answers afterwards (a
  // pending signal is handled before the shim runs again).
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) ASSERT_EQ(::kill(before.shim_pid, sig), 0);
  ASSERT_OK_AND_ASSIGN(shim::ShimState state, shim::ShimClient(dir).State());
  EXPECT_TRUE(state.running);
  EXPECT_EQ(state.pid, before.pid);
  EXPECT_EQ(state.shim_pid, before.shim_pid);
  // While no manager watches, one container is killed through its shim.
  {
    shim::ShimClient client(gone_dir);
    ASSERT_OK_AND_ASSIGN(UniqueFd wait, client.StartWait());
    ASSERT_OK(client.Kill(SIGKILL));
    ASSERT_OK(shim::ReadWaitAnswer(wait.get(), kWait).status());
  }

  ASSERT_OK(OpenManager());  // the "restarted daemon"
  ASSERT_OK_AND_ASSIGN(ContainerInfo after, manager_->Inspect("survivor"));
  EXPECT_EQ(after.state, ContainerState::kRunning);
  EXPECT_EQ(after.pid, before.pid);
  EXPECT_EQ(after.shim_pid, before.shim_pid);
  bool listed = false;
  for (const ContainerInfo& c : manager_->List()) listed |= c.id == id && c.pid == before.pid;
  EXPECT_TRUE(listed);
  ASSERT_OK_AND_ASSIGN(ContainerInfo gone, manager_->Inspect(gone_id));
  EXPECT_EQ(gone.state, ContainerState::kExited);
  EXPECT_EQ(gone.exit.signal, SIGKILL);
  EXPECT_EQ(gone.shim_pid, gone_before.shim_pid);

  ASSERT_OK(manager_->Stop(id, absl::Seconds(1)));  // sleep as pid 1 ignores SIGTERM
  ASSERT_OK_AND_ASSIGN(exec::ExitStatus st, manager_->Wait(id, kWait));
  EXPECT_EQ(st.signal, SIGKILL);
  ASSERT_OK(manager_->Remove(id, false));
  ASSERT_OK(manager_->Remove(gone_id, false));
}

}  // namespace
}  // namespace pier::runtime
