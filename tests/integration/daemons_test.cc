// Starts each real Pier daemon on loopback and checks the conventions every
// operator relies on: port 0, health SERVING, reflection, --config with flags
// winning, a locked data root, a clear failure on a port clash, TLS and mTLS,
// and a graceful exit 0 within 2 seconds of SIGTERM.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "lib/common/fs.h"
#include "lib/common/testing.h"
#include "tests/integration/daemon_process.h"
#include "tests/integration/health_client.h"

namespace pier::testing {
namespace {

using ::testing::HasSubstr;

class DaemonsTest : public ::testing::TestWithParam<std::string> {
 protected:
  TempDir dir_;
};

TEST_P(DaemonsTest, ServesHealthAndReflectionThenStopsOnSigterm) {
  DaemonProcess d;
  ASSERT_OK(d.Start(GetParam(), {"--listen=127.0.0.1:0", "--root=" + dir_.Sub("root")}));
  std::string addr = d.Address();
  ASSERT_THAT(addr, HasSubstr("127.0.0.1:"));
  EXPECT_NE(addr, "127.0.0.1:0");
  ASSERT_OK_AND_ASSIGN(std::string health, CheckHealth(addr));
  EXPECT_EQ(health, "SERVING");
  ASSERT_OK_AND_ASSIGN(std::string services, ReflectionListServices(addr));
  EXPECT_THAT(services, HasSubstr("grpc.health.v1.Health"));
  ASSERT_OK_AND_ASSIGN(int status, d.Stop(SIGTERM, std::chrono::seconds(2)));
  ASSERT_TRUE(WIFEXITED(status)) << d.Stderr();
  EXPECT_EQ(WEXITSTATUS(status), 0) << d.Stderr();
}

TEST_P(DaemonsTest, ListensOnUnixSocket) {
  DaemonProcess d;
  std::string sock = "unix://" + dir_.Sub("run/d.sock");
  ASSERT_OK(d.Start(GetParam(), {"--listen=" + sock, "--root=" + dir_.Sub("root")}));
  EXPECT_EQ(d.Address(), sock);
  ASSERT_OK_AND_ASSIGN(std::string health, CheckHealth(sock));
  EXPECT_EQ(health, "SERVING");
  ASSERT_OK_AND_ASSIGN(int status, d.Stop(SIGINT, std::chrono::seconds(2)));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << d.Stderr();
}

TEST_P(DaemonsTest, ConfigFileAppliesAndFlagsWin) {
  std::string cfg = dir_.Sub("d.conf");
  std::ofstream(cfg) << "# example\nlisten = \"127.0.0.1:1\"\nroot = " << dir_.Sub("from-file")
                     << "\nlog-level = debug\n";
  DaemonProcess d;
  ASSERT_OK(d.Start(GetParam(), {"--config=" + cfg, "--listen=127.0.0.1:0"}));
  EXPECT_NE(d.Address(), "127.0.0.1:1");
  EXPECT_EQ(access(dir_.Sub("from-file/LOCK").c_str(), F_OK), 0);
  EXPECT_THAT(d.Stderr(), HasSubstr("DEBUG"));
}

TEST_P(DaemonsTest, RefusesASecondDaemonOnTheSameRoot) {
  DaemonProcess first;
  ASSERT_OK(first.Start(GetParam(), {"--listen=127.0.0.1:0", "--root=" + dir_.Sub("root")}));
  DaemonProcess second;
  absl::Status s = second.Start(GetParam(), {"--listen=127.0.0.1:0", "--root=" + dir_.Sub("root")});
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is in use")));
}

TEST_P(DaemonsTest, FailsClearlyWhenThePortIsTaken) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof(sa);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  std::string taken = absl::StrCat("127.0.0.1:", ntohs(sa.sin_port));
  DaemonProcess d;
  absl::Status s = d.Start(GetParam(), {"--listen=" + taken, "--root=" + dir_.Sub("root")});
  ::close(fd);
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("cannot listen on " + taken)));
}

TEST_P(DaemonsTest, RejectsBadFlagsWithExitCode2) {
  DaemonProcess d;
  absl::Status s = d.Start(GetParam(), {"--no-such-flag"});
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition,
                          ::testing::AllOf(HasSubstr("status 512"), HasSubstr("--no-such-flag"))));
}

// Makes a CA, a server certificate for 127.0.0.1 and a client certificate.
void MakeCertificates(const std::string& dir) {
  std::string script = absl::StrCat(
      "set -e; cd ", dir, "; exec >/dev/null 2>&1;",
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 "
      "-subj /CN=pier-test-ca;",
      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1;",
      "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > san.ext;",
      "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt "
      "-days 1 -extfile san.ext;",
      "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=client;",
      "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt "
      "-days 1;",
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.crt -days 1 "
      "-subj /CN=stranger;");
  ASSERT_EQ(std::system(script.c_str()), 0);
}

TEST_P(DaemonsTest, ServesMutualTlsAndRefusesClientsWithoutACertificate) {
  std::string certs = dir_.Sub("certs");
  ASSERT_OK(MakeDirs(certs));
  ASSERT_NO_FATAL_FAILURE(MakeCertificates(certs));
  DaemonProcess d;
  ASSERT_OK(d.Start(
      GetParam(),
      {"--listen=127.0.0.1:0", "--root=" + dir_.Sub("root"), "--tls-cert=" + certs + "/server.crt",
       "--tls-key=" + certs + "/server.key", "--tls-client-ca=" + certs + "/ca.crt"}));
  rpc::TlsFiles good{certs + "/client.crt", certs + "/client.key", certs + "/ca.crt"};
  ASSERT_OK_AND_ASSIGN(std::string health, CheckHealth(d.Address(), good));
  EXPECT_EQ(health, "SERVING");
  rpc::TlsFiles no_cert{"", "", certs + "/ca.crt"};
  EXPECT_THAT(CheckHealth(d.Address(), no_cert), StatusIs(absl::StatusCode::kUnavailable));
  rpc::TlsFiles stranger{certs + "/other.crt", certs + "/other.key", certs + "/ca.crt"};
  EXPECT_THAT(CheckHealth(d.Address(), stranger), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(CheckHealth(d.Address()), StatusIs(absl::StatusCode::kUnavailable));
}

INSTANTIATE_TEST_SUITE_P(AllDaemons, DaemonsTest,
                         ::testing::Values("pier-registry", "pier-builder", "pier-runtime"),
                         [](const auto& info) {
                           std::string n = info.param;
                           return n.substr(5);
                         });

}  // namespace
}  // namespace pier::testing
