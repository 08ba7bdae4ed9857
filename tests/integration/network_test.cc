// Bridge networking of pier-runtime end to end, with the real CNI plugins:
// a published port reaches busybox httpd in a container, a second container
// publishing the same host port is refused, --network=none sees only lo,
// and removing containers removes their veths and namespace files.
//
// A container in network mode container:<name> shares another one's
// namespace (and pid and ipc modes container:<name> its processes and IPC).
//
// Everything happens inside a private network (and mount) namespace: the
// test re-executes itself under `unshare --net --mount --fork`, so the
// pier0 bridge, the veths and the iptables rules never touch the host's
// network. Needs root, overlayfs, busybox-static, containernetworking-plugins,
// iproute2, iptables and curl.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
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
constexpr char kImage[] = "busybox-net:1";
constexpr char kInnerEnv[] = "PIER_NETWORK_TEST_IN_NAMESPACE";

// Re-executes this binary in a private network and mount namespace, before
// gtest starts. The outer process's exit status is the inner one's.
const bool kReexeced = [] {
  if (std::getenv(kInnerEnv) != nullptr || ::geteuid() != 0) return false;
  struct stat st;
  if (::stat("/usr/bin/unshare", &st) != 0) return false;
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return false;
  exe[n] = '\0';
  std::string cmdline = ReadFile("/proc/self/cmdline").value_or("");
  std::vector<std::string> args = absl::StrSplit(cmdline, '\0', absl::SkipEmpty());
  std::vector<std::string> argv = {"unshare", "--net", "--mount", "--fork", "--", exe};
  for (size_t i = 1; i < args.size(); ++i) argv.push_back(args[i]);
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  ::setenv(kInnerEnv, "1", 1);
  ::execv("/usr/bin/unshare", cargv.data());
  std::perror("exec unshare");
  std::_Exit(127);
}();

bool InPrivateNamespace() { return std::getenv(kInnerEnv) != nullptr; }

std::string Shell(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
  if (f == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  ::pclose(f);
  return out;
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

absl::StatusOr<std::string> BusyboxTar(const std::string& dir) {
  RETURN_IF_ERROR(MakeDirs(dir + "/bin"));
  RETURN_IF_ERROR(MakeDirs(dir + "/tmp"));
  RETURN_IF_ERROR(MakeDirs(dir + "/out"));
  ASSIGN_OR_RETURN(std::string busybox, ReadFile(kBusybox));
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/bin/busybox", busybox, 0755));
  for (const char* applet : {"sh", "echo", "cat", "mkdir", "httpd", "ip", "wget", "sleep", "ls",
                             "true", "hostname", "readlink"}) {
    std::string link = dir + "/bin/" + applet;
    if (::symlink("busybox", link.c_str()) != 0) return ErrnoStatus(errno, link);
  }
  std::string tar;
  archive::CreateOptions options;
  options.compression = archive::Compression::kNone;
  RETURN_IF_ERROR(archive::CreateLayerFromDir(dir, archive::StringSink(&tar), options).status());
  return tar;
}

class NetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) FAIL() << "required: needs root";
    ASSERT_TRUE(InPrivateNamespace()) << "required: unshare (util-linux) to run in a private "
                                         "network namespace";
    for (const char* p : {kBusybox, "/usr/lib/cni/bridge", "/usr/lib/cni/portmap",
                          "/usr/lib/cni/host-local", "/usr/bin/curl", "/usr/sbin/ip"}) {
      struct stat st;
      if (::stat(p, &st) != 0) FAIL() << "required: " << p;
    }
    // Only this namespace's loopback: nothing can leave the machine.
    ASSERT_EQ(std::system("ip link set lo up"), 0);
    std::string links = Shell("ip -o link");
    ASSERT_FALSE(absl::StrContains(links, "veth")) << links;

    socket_ = dir_.Sub("runtime.sock");
    root_ = dir_.Sub("root");
    ASSERT_OK(runtime_.Start("pier-runtime", {"--listen=unix://" + socket_, "--root=" + root_,
                                              "--bridge-subnet=10.123.0.0/24"}));
    auto channel = grpc::CreateChannel("unix://" + socket_, grpc::InsecureChannelCredentials());
    images_ = v1::ImageService::NewStub(channel);
    containers_ = v1::ContainerService::NewStub(channel);

    ASSERT_OK_AND_ASSIGN(std::string tar, BusyboxTar(dir_.Sub("busybox")));
    ASSERT_OK(
        ImportImageTar(*images_, tar, kImage, {"ENV PATH=/bin", "EXPOSE 80/tcp", "CMD [\"sh\"]"})
            .status());
  }

  void TearDown() override {
    if (containers_ != nullptr && runtime_.running()) {
      for (const auto& ct : List()) Remove(ct.id());
      (void)runtime_.Stop(SIGTERM, std::chrono::seconds(15));
    }
  }

  std::vector<v1::ContainerSummary> List() {
    grpc::ClientContext c;
    v1::ListContainersRequest req;
    req.set_all(true);
    v1::ListContainersResponse resp;
    grpc::Status s = containers_->ListContainers(&c, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {resp.containers().begin(), resp.containers().end()};
  }

  void Remove(const std::string& id) {
    grpc::ClientContext c;
    v1::RemoveContainerRequest r;
    r.set_id(id);
    r.set_force(true);
    v1::RemoveContainerResponse rr;
    grpc::Status s = containers_->RemoveContainer(&c, r, &rr);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }

  grpc::Status Run(const v1::ContainerSpec& spec, std::string* id) {
    return RunContainer(*containers_, spec, id);
  }

  int Wait(const std::string& id) { return WaitContainer(*containers_, id); }

  v1::Container Inspect(const std::string& id) {
    grpc::ClientContext c;
    v1::InspectContainerRequest req;
    req.set_id(id);
    v1::InspectContainerResponse resp;
    grpc::Status s = containers_->InspectContainer(&c, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.container();
  }

  // GETs http://127.0.0.1:<port>/ until it answers (httpd may still be
  // starting) or 15 s pass.
  std::string Get(int port) {
    std::string out;
    for (int i = 0; i < 60; ++i) {
      out = Shell(absl::StrCat("curl -s --max-time 2 http://127.0.0.1:", port, "/"));
      if (absl::StrContains(out, "hello")) return out;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return out;
  }

  v1::ContainerSpec HttpdSpec(const std::string& text) {
    v1::ContainerSpec spec;
    spec.set_image(kImage);
    for (const char* a : {"sh", "-c"}) spec.mutable_cmd()->add_values(a);
    spec.mutable_cmd()->add_values(absl::StrCat(
        "mkdir -p /www && echo ", text, " > /www/index.html && exec httpd -f -p 80 -h /www"));
    return spec;
  }

  TempDir dir_;
  DaemonProcess runtime_;
  std::string socket_;
  std::string root_;
  std::unique_ptr<v1::ImageService::Stub> images_;
  std::unique_ptr<v1::ContainerService::Stub> containers_;
};

TEST_F(NetworkTest, PublishedPortReachesContainer) {
  const int port = FreePort();
  v1::ContainerSpec spec = HttpdSpec("hello-from-pier");
  v1::PortBinding* b = spec.add_ports();
  b->set_host_ip("127.0.0.1");
  b->set_host_port(port);
  b->set_container_port(80);
  std::string id;
  grpc::Status s = Run(spec, &id);
  ASSERT_TRUE(s.ok()) << s.error_message() << runtime_.Stderr();

  EXPECT_THAT(Get(port), ::testing::HasSubstr("hello-from-pier"));

  v1::Container c = Inspect(id);
  EXPECT_EQ(c.network().network_mode(), "bridge");
  EXPECT_TRUE(absl::StartsWith(c.network().ip_address(), "10.123.0.")) << c.network().ip_address();
  EXPECT_EQ(c.network().gateway(), "10.123.0.1");
  ASSERT_EQ(c.network().ports_size(), 1);
  EXPECT_EQ(c.network().ports(0).host_port(), static_cast<uint32_t>(port));
  std::vector<v1::ContainerSummary> list = List();
  ASSERT_EQ(list.size(), 1u);
  ASSERT_EQ(list[0].ports_size(), 1);
  EXPECT_EQ(list[0].ports(0).container_port(), 80u);
  const std::string netns = c.network().sandbox_path();
  struct stat st;
  EXPECT_EQ(::stat(netns.c_str(), &st), 0) << netns;
  EXPECT_THAT(Shell("ip -o link"), ::testing::HasSubstr("veth"));

  // The same host port again: refused before anything starts.
  std::string second;
  s = Run(spec, &second);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_THAT(s.error_message(),
              ::testing::HasSubstr(absl::StrCat("port 127.0.0.1:", port, " is already in use")));
  EXPECT_EQ(List().size(), 1u);

  // -P: the image's EXPOSE 80 on an ephemeral host port.
  v1::ContainerSpec all = HttpdSpec("hello-publish-all");
  all.set_publish_all(true);
  std::string third;
  s = Run(all, &third);
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::Container c3 = Inspect(third);
  ASSERT_EQ(c3.network().ports_size(), 1);
  EXPECT_NE(c3.network().ports(0).host_port(), 0u);
  EXPECT_EQ(c3.network().ports(0).container_port(), 80u);
  EXPECT_NE(c3.network().ip_address(), c.network().ip_address());
  EXPECT_THAT(Get(static_cast<int>(c3.network().ports(0).host_port())),
              ::testing::HasSubstr("hello-publish-all"));

  // Stop and start again: the container rejoins its namespace, the
  // mapping still works.
  {
    grpc::ClientContext sc;
    v1::StopContainerRequest req;
    req.set_id(id);
    req.set_timeout_seconds(1);
    v1::StopContainerResponse resp;
    grpc::Status st = containers_->StopContainer(&sc, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    grpc::ClientContext rc;
    v1::StartContainerRequest start;
    start.set_id(id);
    v1::StartContainerResponse started;
    st = containers_->StartContainer(&rc, start, &started);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_THAT(Get(port), ::testing::HasSubstr("hello-from-pier"));
  }

  Remove(id);
  Remove(third);
  EXPECT_NE(::stat(netns.c_str(), &st), 0) << netns << " still exists";
  std::string links = Shell("ip -o link");
  EXPECT_FALSE(absl::StrContains(links, "veth")) << links;
  std::string leftover = Shell(absl::StrCat("ls -A ", root_, "/run/netns"));
  EXPECT_EQ(absl::StripAsciiWhitespace(leftover), "") << leftover;
}

// A host reboot unmounts the pinned namespaces (the veths and the address
// go with them). Starting the container again makes a new namespace at the
// same path and runs CNI again, so its published port works again.
TEST_F(NetworkTest, StartRecreatesVanishedNamespace) {
  const int port = FreePort();
  v1::ContainerSpec spec = HttpdSpec("hello-again");
  v1::PortBinding* b = spec.add_ports();
  b->set_host_ip("127.0.0.1");
  b->set_host_port(port);
  b->set_container_port(80);
  std::string id;
  grpc::Status s = Run(spec, &id);
  ASSERT_TRUE(s.ok()) << s.error_message() << runtime_.Stderr();
  EXPECT_THAT(Get(port), ::testing::HasSubstr("hello-again"));
  const std::string netns = Inspect(id).network().sandbox_path();
  {
    grpc::ClientContext sc;
    v1::StopContainerRequest req;
    req.set_id(id);
    req.set_timeout_seconds(1);
    v1::StopContainerResponse resp;
    ASSERT_TRUE(containers_->StopContainer(&sc, req, &resp).ok());
  }
  ASSERT_EQ(::umount2(netns.c_str(), MNT_DETACH), 0) << netns;

  grpc::ClientContext rc;
  v1::StartContainerRequest start;
  start.set_id(id);
  v1::StartContainerResponse started;
  s = containers_->StartContainer(&rc, start, &started);
  ASSERT_TRUE(s.ok()) << s.error_message() << runtime_.Stderr();
  EXPECT_THAT(Get(port), ::testing::HasSubstr("hello-again"));
  v1::Container c = Inspect(id);
  EXPECT_TRUE(absl::StartsWith(c.network().ip_address(), "10.123.0.")) << c.network().ip_address();
  EXPECT_THAT(Shell("ip -o link"), ::testing::HasSubstr("veth"));
  Remove(id);
  EXPECT_FALSE(absl::StrContains(Shell("ip -o link"), "veth"));
}

TEST_F(NetworkTest, NoneHasOnlyLoopback) {
  const std::string out = dir_.Sub("out");
  ASSERT_OK(MakeDirs(out));
  v1::ContainerSpec spec;
  spec.set_image(kImage);
  spec.set_network_mode("none");
  for (const char* a : {"sh", "-c", "cat /proc/net/dev > /out/dev; ip -o addr > /out/addr"}) {
    spec.mutable_cmd()->add_values(a);
  }
  v1::Mount* m = spec.add_mounts();
  m->set_type(v1::Mount::TYPE_BIND);
  m->set_source(out);
  m->set_target("/out");
  std::string id;
  grpc::Status s = Run(spec, &id);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(Wait(id), 0);
  ASSERT_OK_AND_ASSIGN(std::string dev, ReadFile(out + "/dev"));
  std::vector<std::string> ifaces;
  for (absl::string_view line : absl::StrSplit(dev, '\n', absl::SkipEmpty())) {
    if (!absl::StrContains(line, ":") || absl::StrContains(line, "|")) continue;
    ifaces.push_back(std::string(absl::StripAsciiWhitespace(line.substr(0, line.find(':')))));
  }
  EXPECT_THAT(ifaces, ::testing::ElementsAre("lo")) << dev;
  ASSERT_OK_AND_ASSIGN(std::string addr, ReadFile(out + "/addr"));
  EXPECT_THAT(addr, ::testing::HasSubstr("127.0.0.1")) << "lo is not up";
  v1::Container c = Inspect(id);
  EXPECT_EQ(c.network().network_mode(), "none");
  EXPECT_EQ(c.network().ip_address(), "");
  // The namespace came from the container's clone: nothing pinned on the host.
  EXPECT_EQ(c.network().sandbox_path(), "");
  Remove(id);
}

// The interface names in a /proc/net/dev listing.
std::vector<std::string> Interfaces(absl::string_view dev) {
  std::vector<std::string> ifaces;
  for (absl::string_view line : absl::StrSplit(dev, '\n', absl::SkipEmpty())) {
    if (!absl::StrContains(line, ":") || absl::StrContains(line, "|")) continue;
    ifaces.push_back(std::string(absl::StripAsciiWhitespace(line.substr(0, line.find(':')))));
  }
  std::sort(ifaces.begin(), ifaces.end());
  return ifaces;
}

// --net container:web: the second container reaches web's httpd on its
// own loopback, sees web's interfaces and address and takes its host name;
// it keeps the namespace when web goes away. --pid container:web shows
// web's processes.
TEST_F(NetworkTest, ContainerModeJoinsAnotherContainersNamespace) {
  const int port = FreePort();
  v1::ContainerSpec web = HttpdSpec("hello-neighbour");
  web.set_name("web");
  v1::PortBinding* b = web.add_ports();
  b->set_host_ip("127.0.0.1");
  b->set_host_port(port);
  b->set_container_port(80);
  std::string web_id;
  grpc::Status s = Run(web, &web_id);
  ASSERT_TRUE(s.ok()) << s.error_message() << runtime_.Stderr();
  ASSERT_THAT(Get(port), ::testing::HasSubstr("hello-neighbour"));
  const v1::Container web_record = Inspect(web_id);

  const std::string out = dir_.Sub("joined");
  ASSERT_OK(MakeDirs(out));
  v1::ContainerSpec joiner;
  joiner.set_image(kImage);
  joiner.set_network_mode("container:web");
  for (const char* a :
       {"sh", "-c",
        "wget -qO- http://127.0.0.1:80/ > /out/page && cat /proc/net/dev > /out/dev "
        "&& ip -o addr > /out/addr && hostname > /out/hostname"}) {
    joiner.mutable_cmd()->add_values(a);
  }
  v1::Mount* m = joiner.add_mounts();
  m->set_type(v1::Mount::TYPE_BIND);
  m->set_source(out);
  m->set_target("/out");
  std::string joiner_id;
  s = Run(joiner, &joiner_id);
  ASSERT_TRUE(s.ok()) << s.error_message() << runtime_.Stderr();
  EXPECT_EQ(Wait(joiner_id), 0) << runtime_.Stderr();
  EXPECT_THAT(ReadFile(out + "/page").value_or(""), ::testing::HasSubstr("hello-neighbour"));
  const std::vector<std::string> web_ifaces =
      Interfaces(ReadFile(absl::StrCat("/proc/", web_record.state().pid(), "/net/dev")).value());
  EXPECT_THAT(web_ifaces, ::testing::Contains("eth0"));
  EXPECT_EQ(Interfaces(ReadFile(out + "/dev").value_or("")), web_ifaces);
  EXPECT_THAT(ReadFile(out + "/addr").value_or(""),
              ::testing::HasSubstr(web_record.network().ip_address() + "/"));
  EXPECT_EQ(absl::StripAsciiWhitespace(ReadFile(out + "/hostname").value_or("")),
            web_id.substr(0, 12));
  v1::Container joined = Inspect(joiner_id);
  EXPECT_EQ(joined.network().network_mode(), "container:" + web_id);
  EXPECT_EQ(joined.network().ip_address(), "");
  EXPECT_EQ(joined.network().sandbox_path(), "");

  // --pid container:web: web's httpd is PID 1.
  v1::ContainerSpec pid_joiner;
  pid_joiner.set_image(kImage);
  pid_joiner.set_network_mode("none");
  pid_joiner.set_pid_mode("container:" + web_id.substr(0, 12));
  pid_joiner.set_ipc_mode("container:web");
  for (const char* a :
       {"sh", "-c", "cat /proc/1/cmdline > /out/init; readlink /proc/self/ns/ipc > /out/ipc"}) {
    pid_joiner.mutable_cmd()->add_values(a);
  }
  *pid_joiner.add_mounts() = *m;
  std::string pid_id;
  s = Run(pid_joiner, &pid_id);
  ASSERT_TRUE(s.ok()) << s.error_message() << runtime_.Stderr();
  EXPECT_EQ(Wait(pid_id), 0);
  EXPECT_THAT(ReadFile(out + "/init").value_or(""), ::testing::HasSubstr("httpd"));
  EXPECT_EQ(Inspect(pid_id).spec().pid_mode(), "container:" + web_id);
  EXPECT_EQ(Inspect(pid_id).spec().ipc_mode(), "container:" + web_id);
  EXPECT_EQ(ReadFile(out + "/ipc").value_or("?"),
            Shell(absl::StrCat("readlink /proc/", web_record.state().pid(), "/ns/ipc")));
  EXPECT_NE(ReadFile(out + "/ipc").value_or("?"), Shell("readlink /proc/self/ns/ipc"));

  // What Docker refuses too, and unknown targets.
  v1::ContainerSpec bad = joiner;
  bad.set_hostname("other");
  std::string none;
  s = Run(bad, &none);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("hostname"));
  bad = joiner;
  *bad.add_ports() = *b;
  s = Run(bad, &none);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  bad = joiner;
  bad.clear_ports();
  bad.set_publish_all(true);
  s = Run(bad, &none);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  bad = joiner;
  bad.set_network_mode("container:nope");
  s = Run(bad, &none);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("container:nope"));

  // A long-running joiner outlives web: it keeps the namespace after web
  // stops (interfaces included), and stays in it after web is removed
  // (which tears web's bridge attachment down).
  v1::ContainerSpec sleeper = joiner;
  sleeper.mutable_cmd()->clear_values();
  for (const char* a : {"sleep", "300"}) sleeper.mutable_cmd()->add_values(a);
  std::string sleeper_id;
  s = Run(sleeper, &sleeper_id);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const int sleeper_pid = Inspect(sleeper_id).state().pid();
  const std::string netns_link = Shell(absl::StrCat("readlink /proc/", sleeper_pid, "/ns/net"));
  EXPECT_EQ(netns_link,
            Shell(absl::StrCat("readlink /proc/", web_record.state().pid(), "/ns/net")));
  {
    grpc::ClientContext sc;
    v1::StopContainerRequest req;
    req.set_id(web_id);
    req.set_timeout_seconds(1);
    v1::StopContainerResponse resp;
    ASSERT_TRUE(containers_->StopContainer(&sc, req, &resp).ok());
  }
  EXPECT_EQ(Interfaces(ReadFile(absl::StrCat("/proc/", sleeper_pid, "/net/dev")).value_or("")),
            web_ifaces);
  // web is not running: a new joiner is refused, and nothing is left.
  const size_t before = List().size();
  s = Run(joiner, &none);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("not running"));
  EXPECT_EQ(List().size(), before);

  Remove(web_id);
  v1::Container still = Inspect(sleeper_id);
  EXPECT_EQ(still.state().status(), v1::CONTAINER_STATUS_RUNNING);
  EXPECT_EQ(Shell(absl::StrCat("readlink /proc/", sleeper_pid, "/ns/net")), netns_link);
  // Restarting it now fails: the namespace it joined has no owner left.
  {
    grpc::ClientContext rc;
    v1::RestartContainerRequest req;
    req.set_id(sleeper_id);
    req.set_timeout_seconds(0);
    v1::RestartContainerResponse resp;
    s = containers_->RestartContainer(&rc, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
    EXPECT_THAT(s.error_message(), ::testing::HasSubstr("no longer exists"));
  }
}

}  // namespace
}  // namespace pier::testing
