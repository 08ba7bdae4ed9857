// --privileged, --cap-add, --cap-drop and --pid=host over gRPC against the
// real pier-runtime, each checked from inside the container (its own
// /proc/self/status, an operation the capability allows or forbids) and
// from the host (/proc/<init pid>/status of the running container). Also
// ExecSpec.privileged. Needs root, overlayfs and busybox-static.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/common/fs.h"
#include "pier/runtime/v1/runtime.grpc.pb.h"
#include "tests/integration/runtime_helpers.h"

namespace pier::testing {
namespace {

namespace v1 = ::pier::runtime::v1;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kCapChown = 0;
constexpr int kCapNetAdmin = 12;
constexpr int kCapSysAdmin = 21;

// The value of `field` ("CapEff", "Seccomp") in a /proc/<pid>/status text.
std::string StatusField(const std::string& status, const std::string& field) {
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (absl::ConsumePrefix(&line, field + ":")) {
      return std::string(absl::StripAsciiWhitespace(line));
    }
  }
  return "";
}

uint64_t CapMask(const std::string& hex) {
  uint64_t v = 0;
  EXPECT_TRUE(absl::SimpleHexAtoi(hex, &v)) << "CapEff \"" << hex << "\"";
  return v;
}

bool Has(uint64_t mask, int cap) { return (mask >> cap) & 1; }

// Every capability root has on this host: this process's effective set
// (the agent it starts runs with the same; a sandboxed host may withhold
// some of the kernel's, e.g. CAP_SYS_RESOURCE).
uint64_t FullSet() {
  std::string status = ReadFile("/proc/self/status").value_or("");
  uint64_t mask = CapMask(StatusField(status, "CapEff"));
  EXPECT_TRUE(Has(mask, kCapSysAdmin) && Has(mask, kCapNetAdmin)) << status;
  return mask;
}

class RuntimeSecurityTest : public RuntimeFixture {
 protected:
  // Starts `spec` running `sleep 1000` and returns the host's view of its
  // init's /proc/<pid>/status.
  std::string HostStatus(v1::ContainerSpec spec, std::string* id) {
    spec.mutable_cmd()->Clear();
    spec.mutable_cmd()->add_values("sleep");
    spec.mutable_cmd()->add_values("1000");
    grpc::Status s = Run(spec, id);
    EXPECT_TRUE(s.ok()) << s.error_message();
    v1::ContainerState st = State(*id);
    EXPECT_GT(st.pid(), 0);
    return ReadFile(absl::StrCat("/proc/", st.pid(), "/status")).value_or("");
  }

  // CapEff of a process of `spec` seen from inside.
  uint64_t InsideCapEff(v1::ContainerSpec spec) {
    spec.mutable_cmd()->Clear();
    for (const char* a : {"grep", "CapEff", "/proc/self/status"}) spec.mutable_cmd()->add_values(a);
    int code = -1;
    std::string out = RunOutput(spec, &code);
    EXPECT_EQ(code, 0) << out;
    return CapMask(StatusField(out, "CapEff"));
  }
};

TEST_F(RuntimeSecurityTest, PrivilegedHasEveryCapabilityAndMayMount) {
  v1::ContainerSpec priv = Spec({});
  priv.set_privileged(true);
  EXPECT_EQ(InsideCapEff(priv), FullSet());
  // It can mount (CAP_SYS_ADMIN) and runs without a seccomp filter.
  priv.mutable_cmd()->Clear();
  for (const char* a : {"sh", "-c",
                        "mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && echo mounted; "
                        "grep Seccomp: /proc/self/status"}) {
    priv.mutable_cmd()->add_values(a);
  }
  int code = -1;
  std::string out = RunOutput(priv, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("mounted\n"));
  EXPECT_EQ(StatusField(out, "Seccomp"), "0") << out;

  // The default container may not, and is filtered.
  v1::ContainerSpec plain = Spec({"sh", "-c",
                                  "mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && echo mounted; "
                                  "grep Seccomp: /proc/self/status"});
  out = RunOutput(plain, &code);
  EXPECT_THAT(out, Not(HasSubstr("mounted\n")));
  EXPECT_EQ(StatusField(out, "Seccomp"), "2") << out;
  EXPECT_FALSE(Has(InsideCapEff(Spec({})), kCapSysAdmin));

  // From the host: the running init's effective set.
  std::string id;
  priv.mutable_cmd()->Clear();
  std::string status = HostStatus(priv, &id);
  EXPECT_EQ(CapMask(StatusField(status, "CapEff")), FullSet()) << status;
}

TEST_F(RuntimeSecurityTest, CapAddNetAdmin) {
  const uint64_t dflt = InsideCapEff(Spec({}));
  EXPECT_FALSE(Has(dflt, kCapNetAdmin));
  v1::ContainerSpec spec = Spec({});
  spec.add_cap_add("NET_ADMIN");
  const uint64_t added = InsideCapEff(spec);
  EXPECT_TRUE(Has(added, kCapNetAdmin));
  EXPECT_EQ(added & ~(uint64_t{1} << kCapNetAdmin), dflt);  // nothing else changed

  // NET_ADMIN lets it change its own network namespace's loopback.
  spec.mutable_cmd()->Clear();
  for (const char* a : {"sh", "-c", "ip link set lo mtu 1400 && echo changed"}) {
    spec.mutable_cmd()->add_values(a);
  }
  int code = -1;
  EXPECT_EQ(RunOutput(spec, &code), "changed\n");
  EXPECT_EQ(code, 0);
  v1::ContainerSpec without = Spec({"sh", "-c", "ip link set lo mtu 1400 && echo changed"});
  EXPECT_THAT(RunOutput(without, &code), Not(HasSubstr("changed")));
  EXPECT_NE(code, 0);

  std::string id;
  std::string status = HostStatus(spec, &id);
  EXPECT_TRUE(Has(CapMask(StatusField(status, "CapEff")), kCapNetAdmin)) << status;
}

TEST_F(RuntimeSecurityTest, CapDropChown) {
  const char* kChown = "touch /tmp/f && chown 1234 /tmp/f && echo chowned";
  int code = -1;
  EXPECT_EQ(RunOutput(Spec({"sh", "-c", kChown}), &code), "chowned\n");
  EXPECT_EQ(code, 0);

  v1::ContainerSpec spec = Spec({"sh", "-c", kChown});
  spec.add_cap_drop("CHOWN");
  std::string out = RunOutput(spec, &code);
  EXPECT_NE(code, 0);
  EXPECT_THAT(out, Not(HasSubstr("chowned")));
  EXPECT_THAT(out, HasSubstr("Operation not permitted"));
  EXPECT_FALSE(Has(InsideCapEff(spec), kCapChown));
  EXPECT_TRUE(Has(InsideCapEff(Spec({})), kCapChown));

  std::string id;
  std::string status = HostStatus(spec, &id);
  EXPECT_FALSE(Has(CapMask(StatusField(status, "CapEff")), kCapChown)) << status;

  // An unknown capability is refused with its name.
  v1::ContainerSpec bad = Spec({"true"});
  bad.add_cap_drop("NOT_A_CAP");
  grpc::Status s = Run(bad, &id);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("NOT_A_CAP"));
}

TEST_F(RuntimeSecurityTest, PidHostSeesHostProcesses) {
  const std::string me = absl::StrCat(::getpid());
  const std::string kLook = absl::StrCat("test -d /proc/", me, " && cat /proc/", me, "/cmdline");
  v1::ContainerSpec spec = Spec({"sh", "-c", kLook});
  spec.set_pid_mode("host");
  int code = -1;
  std::string out = RunOutput(spec, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("runtime_security_test"));  // this test's own command line

  // Without it, the container has its own pid namespace.
  out = RunOutput(Spec({"sh", "-c", kLook}), &code);
  EXPECT_NE(code, 0);
  EXPECT_THAT(out, Not(HasSubstr("runtime_security_test")));

  // Inside and outside agree on the init's pid.
  v1::ContainerSpec init = Spec({"sh", "-c", "echo $$; exec sleep 1000"});
  init.set_pid_mode("host");
  std::string id;
  ASSERT_TRUE(Run(init, &id).ok());
  const int pid = State(id).pid();
  ASSERT_GT(pid, 0);
  // The first line of the log (followed until it is written).
  grpc::ClientContext lc;
  v1::ContainerLogsRequest lreq;
  lreq.set_id(id);
  lreq.set_follow(true);
  auto reader = containers_->ContainerLogs(&lc, lreq);
  v1::ContainerLogsResponse lresp;
  std::string logged;
  while (!absl::StrContains(logged, "\n") && reader->Read(&lresp)) {
    for (const auto& e : lresp.entries()) logged += e.data();
  }
  lc.TryCancel();
  (void)reader->Finish();
  EXPECT_EQ(logged, absl::StrCat(pid, "\n"));
  // The shell logs its pid just before it execs sleep: give the exec a moment.
  std::string comm;
  for (int i = 0; i < 100; ++i) {
    comm = ReadFile(absl::StrCat("/proc/", pid, "/comm")).value_or("");
    if (comm == "sleep\n") break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(comm, "sleep\n");

  v1::ContainerSpec bad = Spec({"true"});
  bad.set_pid_mode("sideways");
  EXPECT_EQ(Run(bad, &id).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // container:<name> needs an existing container (network_test joins one).
  bad.set_pid_mode("container:x");
  EXPECT_EQ(Run(bad, &id).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(RuntimeSecurityTest, PrivilegedExecInAPlainContainer) {
  std::string id;
  ASSERT_TRUE(Run(Spec({"sleep", "1000"}), &id).ok());
  std::string out = ExecOutput(id, {"grep", "CapEff", "/proc/self/status"});
  EXPECT_FALSE(Has(CapMask(StatusField(out, "CapEff")), kCapSysAdmin)) << out;

  grpc::ClientContext c;
  auto call = containers_->Exec(&c);
  v1::ExecRequest req;
  req.mutable_spec()->set_container_id(id);
  for (const char* a : {"grep", "-E", "CapEff|Seccomp:", "/proc/self/status"}) {
    req.mutable_spec()->add_cmd(a);
  }
  req.mutable_spec()->set_privileged(true);
  ASSERT_TRUE(call->Write(req));
  call->WritesDone();
  v1::ExecResponse resp;
  out.clear();
  while (call->Read(&resp)) {
    if (resp.has_output()) out += resp.output().data();
  }
  ASSERT_TRUE(call->Finish().ok());
  EXPECT_EQ(CapMask(StatusField(out, "CapEff")), FullSet()) << out;
  EXPECT_EQ(StatusField(out, "Seccomp"), "0") << out;
}

}  // namespace
}  // namespace pier::testing
