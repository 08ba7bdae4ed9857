#include "tests/integration/runtime_helpers.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>

#include "absl/strings/match.h"
#include "lib/archive/layer_writer.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"

namespace pier::testing {

namespace v1 = ::pier::runtime::v1;

namespace {

constexpr char kBusybox[] = "/bin/busybox";

std::chrono::system_clock::time_point In30s() {
  return std::chrono::system_clock::now() + std::chrono::seconds(30);
}

}  // namespace

grpc::Status RunContainer(v1::ContainerService::Stub& stub, const v1::ContainerSpec& spec,
                          std::string* id) {
  grpc::ClientContext c;
  v1::RunContainerRequest req;
  *req.mutable_spec() = spec;
  v1::RunContainerResponse resp;
  grpc::Status s = stub.RunContainer(&c, req, &resp);
  *id = resp.id();
  return s;
}

int WaitContainer(v1::ContainerService::Stub& stub, const std::string& id) {
  grpc::ClientContext c;
  c.set_deadline(In30s());
  v1::WaitContainerRequest req;
  req.set_id(id);
  v1::WaitContainerResponse resp;
  grpc::Status s = stub.WaitContainer(&c, req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return resp.exit_code();
}

absl::StatusOr<std::string> BusyboxTar(const std::string& dir,
                                       const std::vector<std::string>& applets) {
  RETURN_IF_ERROR(MakeDirs(dir + "/bin"));
  RETURN_IF_ERROR(MakeDirs(dir + "/tmp"));
  ASSIGN_OR_RETURN(std::string busybox, ReadFile(kBusybox));
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/bin/busybox", busybox, 0755));
  for (const std::string& applet : applets) {
    std::string link = dir + "/bin/" + applet;
    if (::symlink("busybox", link.c_str()) != 0) return ErrnoStatus(errno, link);
  }
  std::string tar;
  archive::CreateOptions options;
  options.compression = archive::Compression::kNone;
  RETURN_IF_ERROR(archive::CreateLayerFromDir(dir, archive::StringSink(&tar), options).status());
  return tar;
}

absl::StatusOr<std::string> ImportImageTar(v1::ImageService::Stub& images, const std::string& tar,
                                           const std::string& reference,
                                           const std::vector<std::string>& changes) {
  grpc::ClientContext c;
  v1::ImportImageResponse resp;
  auto writer = images.ImportImage(&c, &resp);
  v1::ImportImageRequest req;
  req.mutable_spec()->set_reference(reference);
  for (const std::string& change : changes) req.mutable_spec()->add_changes(change);
  bool sent = writer->Write(req);
  for (size_t off = 0; sent && off < tar.size(); off += 64 << 10) {
    v1::ImportImageRequest data;
    data.set_data(tar.substr(off, 64 << 10));
    sent = writer->Write(data);
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok())
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  if (!sent) return absl::InternalError("import stream broke");
  return resp.id();
}

void RemoveAllContainers(v1::ContainerService::Stub& containers) {
  grpc::ClientContext c;
  v1::ListContainersRequest req;
  req.set_all(true);
  v1::ListContainersResponse resp;
  if (!containers.ListContainers(&c, req, &resp).ok()) return;
  for (const auto& ct : resp.containers()) {
    grpc::ClientContext rc;
    v1::RemoveContainerRequest r;
    r.set_id(ct.id());
    r.set_force(true);
    v1::RemoveContainerResponse rr;
    grpc::Status s = containers.RemoveContainer(&rc, r, &rr);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
}

void RuntimeFixture::SetUp() {
  if (::geteuid() != 0) FAIL() << "required: needs root";
  if (!absl::StrContains(ReadFile("/proc/filesystems").value_or(""), "overlay")) {
    FAIL() << "required: needs overlayfs";
  }
  struct stat st;
  if (::stat(kBusybox, &st) != 0) FAIL() << "required: busybox-static at " << kBusybox;
  StartRuntime();
  ASSERT_OK_AND_ASSIGN(std::string tar,
                       BusyboxTar(dir_.Sub("busybox"),
                                  {"sh",    "echo",  "cat",    "ls",   "sleep", "hostname", "id",
                                   "env",   "ps",    "touch",  "true", "tty",   "stty",     "grep",
                                   "chown", "mount", "umount", "ip",   "mkdir", "stat"}));
  ASSERT_OK_AND_ASSIGN(image_id_, ImportImageTar(*images_, tar, kFixtureImage,
                                                 {"ENV FOO=from-image PATH=/bin", "CMD [\"sh\"]"}));
}

void RuntimeFixture::TearDown() {
  if (containers_ == nullptr || !runtime_.running()) return;
  RemoveAllContainers(*containers_);
  (void)runtime_.Stop(SIGTERM, std::chrono::seconds(15));
}

void RuntimeFixture::StartRuntime() {
  socket_ = dir_.Sub("runtime.sock");
  ASSERT_OK(
      runtime_.Start("pier-runtime", {"--listen=unix://" + socket_, "--root=" + dir_.Sub("root")}));
  // A subchannel of its own: gRPC would otherwise share the previous
  // agent's broken connection with a channel made after a restart.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  channel_ =
      grpc::CreateCustomChannel("unix://" + socket_, grpc::InsecureChannelCredentials(), args);
  images_ = v1::ImageService::NewStub(channel_);
  containers_ = v1::ContainerService::NewStub(channel_);
  system_ = v1::SystemService::NewStub(channel_);
  volumes_ = v1::VolumeService::NewStub(channel_);
}

v1::ContainerSpec RuntimeFixture::Spec(std::vector<std::string> cmd, const std::string& image) {
  v1::ContainerSpec spec;
  spec.set_image(image);
  for (auto& c : cmd) spec.mutable_cmd()->add_values(c);
  spec.set_network_mode("none");
  return spec;
}

std::string RuntimeFixture::Logs(const std::string& id) {
  grpc::ClientContext c;
  c.set_deadline(In30s());
  v1::ContainerLogsRequest req;
  req.set_id(id);
  auto reader = containers_->ContainerLogs(&c, req);
  v1::ContainerLogsResponse resp;
  std::string out;
  while (reader->Read(&resp)) {
    for (const auto& e : resp.entries()) out += e.data();
  }
  grpc::Status s = reader->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
  return out;
}

std::string RuntimeFixture::RunOutput(const v1::ContainerSpec& spec, int* exit_code) {
  std::string id;
  grpc::Status s = Run(spec, &id);
  EXPECT_TRUE(s.ok()) << s.error_message();
  if (!s.ok()) return "";
  int code = Wait(id);
  if (exit_code != nullptr) *exit_code = code;
  return Logs(id);
}

std::string RuntimeFixture::ExecOutput(const std::string& id, std::vector<std::string> cmd,
                                       int* exit_code) {
  grpc::ClientContext c;
  c.set_deadline(In30s());
  auto call = containers_->Exec(&c);
  v1::ExecRequest req;
  req.mutable_spec()->set_container_id(id);
  for (auto& a : cmd) req.mutable_spec()->add_cmd(a);
  EXPECT_TRUE(call->Write(req));
  call->WritesDone();
  v1::ExecResponse resp;
  std::string out;
  int code = -1;
  while (call->Read(&resp)) {
    if (resp.has_output()) out += resp.output().data();
    if (resp.has_exit()) code = resp.exit().exit_code();
  }
  grpc::Status s = call->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
  if (exit_code != nullptr) *exit_code = code;
  return out;
}

v1::ContainerState RuntimeFixture::State(const std::string& id) {
  grpc::ClientContext c;
  v1::InspectContainerRequest req;
  req.set_id(id);
  v1::InspectContainerResponse resp;
  grpc::Status s = containers_->InspectContainer(&c, req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return resp.container().state();
}

}  // namespace pier::testing
