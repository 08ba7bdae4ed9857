// Test helpers shared by the tests that drive pier-runtime over gRPC: calls
// the tests make often, and RuntimeFixture, which starts a real pier-runtime
// (with the real pier-shim) on a unix socket under a temporary root and
// imports a busybox image made from Debian's busybox-static.
// Thread safety: one test thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "lib/common/testing.h"
#include "pier/runtime/v1/runtime.grpc.pb.h"
#include "tests/integration/daemon_process.h"

namespace pier::testing {

// RunContainer; fills `id` (empty when the call failed).
grpc::Status RunContainer(pier::runtime::v1::ContainerService::Stub& stub,
                          const pier::runtime::v1::ContainerSpec& spec, std::string* id);

// WaitContainer with a 30 s deadline; a failed call is a test failure and
// returns the response's default exit code.
int WaitContainer(pier::runtime::v1::ContainerService::Stub& stub, const std::string& id);

// An uncompressed tar of `dir` after filling it with /bin/busybox, its
// `applets` as links, and an empty /tmp.
// Imports rootfs tarball `tar` as `reference` with Dockerfile-style
// `changes` through ImportImage (64 KiB messages). The image id, or the
// call's error.
absl::StatusOr<std::string> ImportImageTar(pier::runtime::v1::ImageService::Stub& images,
                                           const std::string& tar, const std::string& reference,
                                           const std::vector<std::string>& changes);

// Force-removes every container the agent lists (test tear-down); failures
// are test failures.
void RemoveAllContainers(pier::runtime::v1::ContainerService::Stub& containers);

absl::StatusOr<std::string> BusyboxTar(const std::string& dir,
                                       const std::vector<std::string>& applets);

// A fixture with a running pier-runtime and the image kFixtureImage (busybox
// with ENV FOO=from-image PATH=/bin and CMD ["sh"]). SetUp fails the test
// without root, overlayfs or busybox-static. TearDown removes every
// container (forced) and stops the agent.
class RuntimeFixture : public ::testing::Test {
 protected:
  static constexpr char kFixtureImage[] = "busybox-test:1";

  void SetUp() override;
  void TearDown() override;

  // Starts the agent on dir_ (again, after a stop) and makes the stubs.
  void StartRuntime();

  // A spec running `cmd` in `image` with network mode "none".
  static pier::runtime::v1::ContainerSpec Spec(std::vector<std::string> cmd,
                                               const std::string& image = kFixtureImage);

  grpc::Status Run(const pier::runtime::v1::ContainerSpec& spec, std::string* id) {
    return RunContainer(*containers_, spec, id);
  }
  int Wait(const std::string& id) { return WaitContainer(*containers_, id); }
  // stdout and stderr of the container's log, in order.
  std::string Logs(const std::string& id);
  // Runs `spec` to completion; returns its log (and its exit code).
  std::string RunOutput(const pier::runtime::v1::ContainerSpec& spec, int* exit_code = nullptr);
  // Runs `cmd` with Exec (no tty) in the running container `id`; returns
  // stdout and stderr (and the exit code).
  std::string ExecOutput(const std::string& id, std::vector<std::string> cmd,
                         int* exit_code = nullptr);
  pier::runtime::v1::ContainerState State(const std::string& id);

  TempDir dir_;
  DaemonProcess runtime_;
  std::string socket_;
  std::string image_id_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pier::runtime::v1::ImageService::Stub> images_;
  std::unique_ptr<pier::runtime::v1::ContainerService::Stub> containers_;
  std::unique_ptr<pier::runtime::v1::SystemService::Stub> system_;
  std::unique_ptr<pier::runtime::v1::VolumeService::Stub> volumes_;
};

}  // namespace pier::testing
