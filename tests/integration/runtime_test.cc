// Drives the real pier-runtime (with the real pier-shim) over gRPC: imports
// a busybox rootfs, runs containers (exit codes, logs, env, bind mounts,
// read-only rootfs, hostname, pid namespace, stop), error codes, commit,
// push to and pull from a real pier-registry, save/load, and an agent
// restart with running containers. Needs root, overlayfs and
// busybox-static.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/archive/layer_writer.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "lib/common/testing.h"
#include "pier/runtime/v1/runtime.grpc.pb.h"
#include "tests/integration/daemon_process.h"
#include "tests/integration/runtime_helpers.h"

namespace pier::testing {
namespace {

namespace v1 = ::pier::runtime::v1;
constexpr char kBusybox[] = "/bin/busybox";
constexpr char kImage[] = "busybox-test:1";

bool OverlaySupported() {
  std::string fs = ReadFile("/proc/filesystems").value_or("");
  return absl::StrContains(fs, "overlay");
}

// A tar of a directory with /bin/busybox and its applet links.
absl::StatusOr<std::string> BusyboxTar(const std::string& dir) {
  RETURN_IF_ERROR(MakeDirs(dir + "/bin"));
  RETURN_IF_ERROR(MakeDirs(dir + "/tmp"));
  ASSIGN_OR_RETURN(std::string busybox, ReadFile(kBusybox));
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/bin/busybox", busybox, 0755));
  for (const char* applet :
       {"sh", "echo", "cat", "ls", "sleep", "hostname", "id", "env", "ps", "touch", "true"}) {
    std::string link = dir + "/bin/" + applet;
    if (::symlink("busybox", link.c_str()) != 0) return ErrnoStatus(errno, link);
  }
  std::string tar;
  archive::CreateOptions options;
  options.compression = archive::Compression::kNone;
  RETURN_IF_ERROR(archive::CreateLayerFromDir(dir, archive::StringSink(&tar), options).status());
  return tar;
}

v1::ContainerSpec Spec(std::vector<std::string> cmd, const std::string& image = kImage) {
  v1::ContainerSpec spec;
  spec.set_image(image);
  for (auto& c : cmd) spec.mutable_cmd()->add_values(c);
  spec.set_network_mode("none");
  return spec;
}

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) FAIL() << "required: needs root";
    if (!OverlaySupported()) FAIL() << "required: needs overlayfs";
    struct stat st;
    if (::stat(kBusybox, &st) != 0) FAIL() << "required: busybox-static at " << kBusybox;
    StartRuntime();
    ASSERT_OK_AND_ASSIGN(std::string tar, BusyboxTar(dir_.Sub("busybox")));
    ASSERT_OK_AND_ASSIGN(
        image_id_,
        ImportImageTar(*images_, tar, kImage, {"ENV FOO=from-image PATH=/bin", "CMD [\"sh\"]"}));
  }

  void TearDown() override {
    if (containers_ == nullptr || !runtime_.running()) return;
    RemoveAllContainers(*containers_);
    (void)runtime_.Stop(SIGTERM, std::chrono::seconds(15));
  }

  void StartRuntime() {
    socket_ = dir_.Sub("runtime.sock");
    ASSERT_OK(runtime_.Start("pier-runtime",
                             {"--listen=unix://" + socket_, "--root=" + dir_.Sub("root")}));
    auto channel = grpc::CreateChannel("unix://" + socket_, grpc::InsecureChannelCredentials());
    images_ = v1::ImageService::NewStub(channel);
    containers_ = v1::ContainerService::NewStub(channel);
  }

  grpc::Status Run(const v1::ContainerSpec& spec, std::string* id) {
    return RunContainer(*containers_, spec, id);
  }

  int Wait(const std::string& id) { return WaitContainer(*containers_, id); }

  // stdout and stderr of a finished container, "out:" / "err:" prefixed
  // per entry when `tagged`.
  std::string Logs(const std::string& id, bool tagged = false) {
    grpc::ClientContext c;
    v1::ContainerLogsRequest req;
    req.set_id(id);
    auto reader = containers_->ContainerLogs(&c, req);
    v1::ContainerLogsResponse resp;
    std::string out;
    while (reader->Read(&resp)) {
      for (const auto& e : resp.entries()) {
        if (tagged) out += e.stream() == common::v1::OUTPUT_STREAM_STDERR ? "err:" : "out:";
        out += e.data();
      }
    }
    EXPECT_TRUE(reader->Finish().ok());
    return out;
  }

  // Runs `cmd` to completion and returns its output.
  std::string RunOutput(v1::ContainerSpec spec, int* exit_code = nullptr) {
    std::string id;
    grpc::Status s = Run(spec, &id);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (!s.ok()) return "";
    int code = Wait(id);
    if (exit_code != nullptr) *exit_code = code;
    return Logs(id);
  }

  v1::ContainerState State(const std::string& id) {
    grpc::ClientContext c;
    v1::InspectContainerRequest req;
    req.set_id(id);
    v1::InspectContainerResponse resp;
    EXPECT_TRUE(containers_->InspectContainer(&c, req, &resp).ok());
    return resp.container().state();
  }

  TempDir dir_;
  DaemonProcess runtime_;
  std::string socket_;
  std::string image_id_;
  std::unique_ptr<v1::ImageService::Stub> images_;
  std::unique_ptr<v1::ContainerService::Stub> containers_;
};

TEST_F(RuntimeTest, ExitCodeAndLogs) {
  std::string id;
  grpc::Status s = Run(Spec({"sh", "-c", "echo hello; echo err >&2; exit 3"}), &id);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(Wait(id), 3);
  std::string logs = Logs(id, true);
  EXPECT_THAT(logs, ::testing::HasSubstr("out:hello\n"));
  EXPECT_THAT(logs, ::testing::HasSubstr("err:err\n"));
  EXPECT_EQ(State(id).status(), v1::CONTAINER_STATUS_EXITED);
  EXPECT_EQ(State(id).exit_code(), 3);
}

// A followed stream asked with_exit ends with the exit, after all output,
// both for a container still running when the stream starts and for one
// already done.
TEST_F(RuntimeTest, FollowedLogsEndWithTheExit) {
  for (const char* cmd : {"sleep 0.3; echo late; exit 7", "echo early; exit 7"}) {
    std::string id;
    grpc::Status s = Run(Spec({"sh", "-c", cmd}), &id);
    ASSERT_TRUE(s.ok()) << s.error_message();
    if (absl::StartsWith(cmd, "echo")) EXPECT_EQ(Wait(id), 7);
    grpc::ClientContext c;
    v1::ContainerLogsRequest req;
    req.set_id(id);
    req.set_follow(true);
    req.set_with_exit(true);
    auto reader = containers_->ContainerLogs(&c, req);
    v1::ContainerLogsResponse resp;
    std::string out;
    int exits = 0, exit_code = -1;
    while (reader->Read(&resp)) {
      EXPECT_EQ(exits, 0) << "a message after the exit";
      for (const auto& e : resp.entries()) out += e.data();
      if (resp.has_exit()) {
        ++exits;
        exit_code = resp.exit().exit_code();
      }
    }
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_THAT(out, ::testing::HasSubstr(absl::StartsWith(cmd, "echo") ? "early\n" : "late\n"));
    EXPECT_EQ(exits, 1) << cmd;
    EXPECT_EQ(exit_code, 7) << cmd;
  }
}

// With remove as well, the container is gone when the stream ends (pier
// run --rm), and the exit still arrives.
TEST_F(RuntimeTest, FollowedLogsCanRemoveTheContainer) {
  std::string id;
  grpc::Status s = Run(Spec({"sh", "-c", "echo bye; exit 4"}), &id);
  ASSERT_TRUE(s.ok()) << s.error_message();
  grpc::ClientContext c;
  v1::ContainerLogsRequest req;
  req.set_id(id);
  req.set_follow(true);
  req.set_with_exit(true);
  req.set_remove(true);
  auto reader = containers_->ContainerLogs(&c, req);
  v1::ContainerLogsResponse resp;
  std::string out;
  int exit_code = -1;
  while (reader->Read(&resp)) {
    for (const auto& e : resp.entries()) out += e.data();
    if (resp.has_exit()) exit_code = resp.exit().exit_code();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(out, "bye\n");
  EXPECT_EQ(exit_code, 4);
  grpc::ClientContext ic;
  v1::InspectContainerRequest ireq;
  ireq.set_id(id);
  v1::InspectContainerResponse iresp;
  EXPECT_EQ(containers_->InspectContainer(&ic, ireq, &iresp).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(RuntimeTest, EnvFromImageAndSpec) {
  v1::ContainerSpec spec = Spec({"env"});
  spec.add_env("BAR=from-spec");
  std::string out = RunOutput(spec);
  EXPECT_THAT(out, ::testing::HasSubstr("FOO=from-image\n"));
  EXPECT_THAT(out, ::testing::HasSubstr("BAR=from-spec\n"));
  // The image's CMD runs when none is given.
  v1::ContainerSpec dflt;
  dflt.set_image(kImage);
  dflt.set_network_mode("none");
  int code = -1;
  RunOutput(dflt, &code);
  EXPECT_EQ(code, 0);  // sh with stdin /dev/null exits at once
}

TEST_F(RuntimeTest, BindMountReadOnlyRootHostnameAndPids) {
  ASSERT_OK(MakeDirs(dir_.Sub("shared")));
  v1::ContainerSpec spec = Spec({"sh", "-c", "echo from-container > /mnt/out"});
  v1::Mount* m = spec.add_mounts();
  m->set_type(v1::Mount::TYPE_BIND);
  m->set_source(dir_.Sub("shared"));
  m->set_target("/mnt");
  int code = -1;
  RunOutput(spec, &code);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(ReadFile(dir_.Sub("shared/out")).value_or(""), "from-container\n");

  v1::ContainerSpec ro = Spec({"sh", "-c", "touch /x"});
  ro.set_read_only_rootfs(true);
  std::string out = RunOutput(ro, &code);
  EXPECT_NE(code, 0);
  EXPECT_THAT(out, ::testing::HasSubstr("Read-only file system"));

  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  std::string id;
  ASSERT_TRUE(Run(Spec({"hostname"}), &id).ok());
  EXPECT_EQ(Wait(id), 0);
  std::string name = Logs(id);
  EXPECT_NE(name, std::string(host) + "\n");
  EXPECT_EQ(name, id.substr(0, 12) + "\n");

  std::string ps = RunOutput(Spec({"ps", "-o", "pid,comm"}));
  std::vector<std::string> lines = absl::StrSplit(ps, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << ps;  // header and ps itself
  EXPECT_THAT(lines[1], ::testing::HasSubstr("1 ps"));
}

TEST_F(RuntimeTest, StopWithTimeout) {
  std::string id;
  ASSERT_TRUE(Run(Spec({"sleep", "1000"}), &id).ok());
  EXPECT_EQ(State(id).status(), v1::CONTAINER_STATUS_RUNNING);
  auto start = std::chrono::steady_clock::now();
  grpc::ClientContext c;
  v1::StopContainerRequest req;
  req.set_id(id);
  req.set_timeout_seconds(1);
  v1::StopContainerResponse resp;
  grpc::Status s = containers_->StopContainer(&c, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));
  v1::ContainerState st = State(id);
  EXPECT_EQ(st.status(), v1::CONTAINER_STATUS_EXITED);
  EXPECT_EQ(st.exit_code(), 137);  // pid 1 ignores SIGTERM; SIGKILL after 1 s
}

TEST_F(RuntimeTest, ErrorCodes) {
  v1::ContainerSpec named = Spec({"true"});
  named.set_name("dup");
  std::string id;
  ASSERT_TRUE(Run(named, &id).ok());
  EXPECT_EQ(Run(named, &id).error_code(), grpc::StatusCode::ALREADY_EXISTS);

  grpc::Status s = Run(Spec({"true"}, "no-such-image:1"), &id);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("pull it first"));

  // A missing bind source is FAILED_PRECONDITION (runtime.proto:
  // "bind mount source missing without create_host_path").
  v1::ContainerSpec bind = Spec({"true"});
  v1::Mount* m = bind.add_mounts();
  m->set_type(v1::Mount::TYPE_BIND);
  m->set_source(dir_.Sub("missing"));
  m->set_target("/mnt");
  s = Run(bind, &id);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr(dir_.Sub("missing")));

  // A failed start leaves nothing behind.
  s = Run(Spec({"/bin/nope"}), &id);
  EXPECT_FALSE(s.ok());
  grpc::ClientContext c;
  v1::ListContainersRequest req;
  req.set_all(true);
  v1::ListContainersResponse resp;
  ASSERT_TRUE(containers_->ListContainers(&c, req, &resp).ok());
  EXPECT_EQ(resp.containers_size(), 1);
}

TEST_F(RuntimeTest, CommitAndExport) {
  std::string id;
  ASSERT_TRUE(Run(Spec({"sh", "-c", "echo committed > /newfile"}), &id).ok());
  ASSERT_EQ(Wait(id), 0);
  grpc::ClientContext c;
  v1::CommitContainerRequest req;
  req.set_container_id(id);
  req.set_reference("committed:1");
  req.set_message("add newfile");
  req.add_changes("ENV COMMITTED=yes");
  v1::CommitContainerResponse resp;
  grpc::Status s = containers_->CommitContainer(&c, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_NE(resp.image_id(), image_id_);
  EXPECT_EQ(RunOutput(Spec({"cat", "/newfile"}, "committed:1")), "committed\n");
  EXPECT_THAT(RunOutput(Spec({"env"}, "committed:1")), ::testing::HasSubstr("COMMITTED=yes"));

  grpc::ClientContext hc;
  v1::ImageHistoryRequest hreq;
  hreq.set_image("committed:1");
  v1::ImageHistoryResponse hresp;
  ASSERT_TRUE(images_->ImageHistory(&hc, hreq, &hresp).ok());
  ASSERT_GE(hresp.history_size(), 2);
  EXPECT_EQ(hresp.history(0).comment(), "add newfile");

  grpc::ClientContext ec;
  v1::ExportContainerRequest ereq;
  ereq.set_id(id);
  auto reader = containers_->ExportContainer(&ec, ereq);
  v1::ExportContainerResponse chunk;
  std::string tar;
  while (reader->Read(&chunk)) tar += chunk.data();
  s = reader->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(tar, ::testing::HasSubstr("bin/busybox"));
  EXPECT_THAT(tar, ::testing::HasSubstr("newfile"));
}

TEST_F(RuntimeTest, PushRemovePullSaveLoad) {
  DaemonProcess registry;
  ASSERT_OK(registry.Start(
      "pier-registry",
      {"--listen=127.0.0.1:0", "--http-listen=127.0.0.1:0", "--root=" + dir_.Sub("registry")},
      {"grpc", "http"}));
  const std::string remote = registry.Address("http") + "/test/busybox:1";
  {
    grpc::ClientContext c;
    v1::TagImageRequest req;
    req.set_source(kImage);
    req.set_target(remote);
    v1::TagImageResponse resp;
    ASSERT_TRUE(images_->TagImage(&c, req, &resp).ok());
  }
  {
    grpc::ClientContext c;
    v1::PushImageRequest req;
    req.set_reference(remote);
    auto reader = images_->PushImage(&c, req);
    v1::PushImageResponse resp;
    std::string digest;
    while (reader->Read(&resp)) {
      if (resp.has_result()) digest = resp.result().digest();
    }
    grpc::Status s = reader->Finish();
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_TRUE(absl::StartsWith(digest, "sha256:"));
  }
  for (const std::string& name : {remote, std::string(kImage)}) {
    grpc::ClientContext c;
    v1::RemoveImageRequest req;
    req.set_image(name);
    v1::RemoveImageResponse resp;
    grpc::Status s = images_->RemoveImage(&c, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  {
    grpc::ClientContext c;
    v1::InspectImageRequest req;
    req.set_image(image_id_);
    v1::InspectImageResponse resp;
    EXPECT_EQ(images_->InspectImage(&c, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext c;
    v1::PullImageRequest req;
    req.set_reference(remote);
    auto reader = images_->PullImage(&c, req);
    v1::PullImageResponse resp;
    std::string id;
    while (reader->Read(&resp)) {
      if (resp.has_image()) id = resp.image().id();
    }
    grpc::Status s = reader->Finish();
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(id, image_id_);
  }
  EXPECT_THAT(RunOutput(Spec({"echo", "pulled"}, remote)), "pulled\n");

  // Save, remove, load.
  std::string tar;
  {
    grpc::ClientContext c;
    v1::SaveImagesRequest req;
    req.add_images(remote);
    auto reader = images_->SaveImages(&c, req);
    v1::SaveImagesResponse resp;
    while (reader->Read(&resp)) tar += resp.data();
    ASSERT_TRUE(reader->Finish().ok());
  }
  {
    grpc::ClientContext c;
    v1::RemoveImageRequest req;
    req.set_image(remote);
    v1::RemoveImageResponse resp;
    // A stopped container uses it: refused without force.
    EXPECT_EQ(images_->RemoveImage(&c, req, &resp).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
    grpc::ClientContext c2;
    req.set_force(true);
    grpc::Status s = images_->RemoveImage(&c2, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  {
    grpc::ClientContext c;
    v1::LoadImagesResponse resp;
    auto writer = images_->LoadImages(&c, &resp);
    for (size_t off = 0; off < tar.size(); off += 100000) {
      v1::LoadImagesRequest req;
      req.set_data(tar.substr(off, 100000));
      ASSERT_TRUE(writer->Write(req));
    }
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(resp.images_size(), 1);
    EXPECT_EQ(resp.images(0).id(), image_id_);
  }
  {
    grpc::ClientContext c;
    v1::ListImagesRequest req;
    v1::ListImagesResponse resp;
    ASSERT_TRUE(images_->ListImages(&c, req, &resp).ok());
    ASSERT_EQ(resp.images_size(), 1);
    EXPECT_THAT(resp.images(0).repo_tags(), ::testing::Contains(remote));
  }
}

TEST_F(RuntimeTest, ContainersSurviveAgentRestart) {
  std::vector<std::string> ids(3);
  for (auto& id : ids) ASSERT_TRUE(Run(Spec({"sleep", "1000"}), &id).ok());
  ASSERT_OK(runtime_.Stop(SIGTERM, std::chrono::seconds(15)).status());
  StartRuntime();
  grpc::ClientContext c;
  v1::ListContainersRequest req;
  v1::ListContainersResponse resp;
  ASSERT_TRUE(containers_->ListContainers(&c, req, &resp).ok());
  ASSERT_EQ(resp.containers_size(), 3);
  for (const auto& id : ids) {
    EXPECT_EQ(State(id).status(), v1::CONTAINER_STATUS_RUNNING) << id;
    grpc::ClientContext sc;
    v1::StopContainerRequest sreq;
    sreq.set_id(id);
    sreq.set_timeout_seconds(0);
    v1::StopContainerResponse sresp;
    grpc::Status s = containers_->StopContainer(&sc, sreq, &sresp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(State(id).status(), v1::CONTAINER_STATUS_EXITED);
  }
}

}  // namespace
}  // namespace pier::testing
