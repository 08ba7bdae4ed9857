#include "services/runtime/network/cni.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/common/fs.h"
#include "lib/common/log.h"
#include "lib/common/status.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace pier::runtime::network {
namespace {

using json = nlohmann::json;

constexpr char kCniVersion[] = "1.0.0";
constexpr char kNetworkName[] = "pier";
constexpr char kIfName[] = "eth0";

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

std::string Basename(const std::string& path) { return path.substr(path.rfind('/') + 1); }

// The message of a CNI error result, or the raw text.
std::string ErrorText(const std::string& out, const std::string& err) {
  json j = json::parse(out, nullptr, false);
  if (j.is_object() && j.contains("msg")) {
    std::string msg = j.value("msg", "");
    std::string details = j.value("details", "");
    if (!details.empty()) absl::StrAppend(&msg, ": ", details);
    if (j.contains("code")) absl::StrAppend(&msg, " (code ", j["code"].dump(), ")");
    return msg;
  }
  std::string text = std::string(absl::StripAsciiWhitespace(err));
  if (text.empty()) text = std::string(absl::StripAsciiWhitespace(out));
  return text.empty() ? "failed without a message" : text;
}

bool IsGone(const absl::Status& s) {
  std::string m = absl::AsciiStrToLower(s.message());
  return absl::StrContains(m, "not found") || absl::StrContains(m, "no such") ||
         absl::StrContains(m, "does not exist") || absl::StrContains(m, "cannot find");
}

int SocketType(const std::string& protocol) { return protocol == "udp" ? SOCK_DGRAM : SOCK_STREAM; }

// Binds (host_ip, port); returns the bound port, or errno as a negative value.
absl::StatusOr<int> TryBind(const std::string& host_ip, int port, const std::string& protocol) {
  std::string ip = host_ip.empty() ? "0.0.0.0" : host_ip;
  bool v6 = ip.find(':') != std::string::npos;
  UniqueFd fd(::socket(v6 ? AF_INET6 : AF_INET, SocketType(protocol) | SOCK_CLOEXEC,
                       protocol == "sctp" ? IPPROTO_SCTP : 0));
  if (!fd.valid()) return ErrnoStatus(errno, "socket");
  sockaddr_storage ss{};
  socklen_t len;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    if (::inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("invalid host IP \"", host_ip, "\""));
    }
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    if (::inet_pton(AF_INET, ip.c_str(), &a->sin_addr) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("invalid host IP \"", host_ip, "\""));
    }
    len = sizeof(*a);
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int e = errno;
    if (e == EADDRINUSE) {
      return absl::FailedPreconditionError(
          absl::StrCat("port ", ip, ":", port, " is already in use"));
    }
    if (e == EADDRNOTAVAIL) {
      return absl::InvalidArgumentError(absl::StrCat("host IP ", ip, " is not on this host"));
    }
    return ErrnoStatus(e, absl::StrCat("bind ", ip, ":", port));
  }
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return ErrnoStatus(errno, "getsockname");
  }
  return v6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
            : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

}  // namespace

absl::StatusOr<std::string> RunPlugin(const std::string& plugin, const std::string& command,
                                      const std::string& container_id, const std::string& netns,
                                      const std::string& ifname, const std::string& cni_path,
                                      const std::string& stdin_json, absl::Duration timeout) {
  const std::string name = Basename(plugin);
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  UniqueFd in_r(in[0]), in_w(in[1]);
  if (::pipe2(out, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  UniqueFd err_r(err[0]), err_w(err[1]);

  std::vector<std::string> env = {
      "CNI_COMMAND=" + command, "CNI_CONTAINERID=" + container_id,
      "CNI_NETNS=" + netns,     "CNI_IFNAME=" + ifname,
      "CNI_PATH=" + cni_path,   "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  };
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string argv0 = plugin;
  char* argv[] = {argv0.data(), nullptr};

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_r.get(), 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, err_w.get(), 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, plugin.c_str(), &fa, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return ErrnoStatus(rc, absl::StrCat("CNI plugin ", name, ": spawn ", plugin));
  in_r.Reset();
  out_w.Reset();
  err_w.Reset();

  SetNonBlocking(in_w.get());
  SetNonBlocking(out_r.get());
  SetNonBlocking(err_r.get());
  std::string stdout_text, stderr_text;
  size_t written = 0;
  absl::Time deadline = absl::Now() + timeout;
  bool timed_out = false;
  char buf[8192];
  while (out_r.valid() || err_r.valid()) {
    pollfd fds[3];
    int n = 0;
    int i_in = -1, i_out = -1, i_err = -1;
    if (in_w.valid()) {
      fds[n] = {in_w.get(), POLLOUT, 0};
      i_in = n++;
    }
    if (out_r.valid()) {
      fds[n] = {out_r.get(), POLLIN, 0};
      i_out = n++;
    }
    if (err_r.valid()) {
      fds[n] = {err_r.get(), POLLIN, 0};
      i_err = n++;
    }
    int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) {
      timed_out = true;
      break;
    }
    int r = ::poll(fds, n, static_cast<int>(std::min<int64_t>(ms, 1000)));
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    if (i_in >= 0 && fds[i_in].revents) {
      ssize_t w = ::write(in_w.get(), stdin_json.data() + written, stdin_json.size() - written);
      if (w > 0) written += w;
      if (w < 0 && errno != EAGAIN) written = stdin_json.size();
      if (written >= stdin_json.size()) in_w.Reset();
    }
    for (auto [idx, fd, text] :
         {std::tuple{i_out, &out_r, &stdout_text}, std::tuple{i_err, &err_r, &stderr_text}}) {
      if (idx < 0 || fds[idx].revents == 0) continue;
      ssize_t got = ::read(fd->get(), buf, sizeof(buf));
      if (got > 0) {
        text->append(buf, got);
      } else if (got == 0 || errno != EAGAIN) {
        fd->Reset();
      }
    }
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return absl::DeadlineExceededError(absl::StrCat(
        "CNI plugin ", name, " ", command, " timed out after ", absl::FormatDuration(timeout)));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat("CNI plugin ", name, " ", command, ": ", ErrorText(stdout_text, stderr_text)));
  }
  return stdout_text;
}

std::string CniNetwork::BridgeConfig() const {
  json c = {
      {"cniVersion", kCniVersion},
      {"name", kNetworkName},
      {"type", "bridge"},
      {"bridge", options_.bridge},
      {"isGateway", true},
      {"ipMasq", true},
      {"hairpinMode", true},
      {"ipam",
       {{"type", "host-local"},
        {"ranges", json::array({json::array({{{"subnet", options_.subnet}}})})},
        {"routes", json::array({{{"dst", "0.0.0.0/0"}}})},
        {"dataDir", JoinPath(options_.state_dir, "networks")}}},
  };
  return c.dump();
}

std::string CniNetwork::ResultPath(const std::string& container_id) const {
  return JoinPath(options_.state_dir, "results/" + container_id + ".json");
}

namespace {

json PortMapConfig(const json& prev, const std::vector<PortMapping>& ports) {
  json maps = json::array();
  for (const PortMapping& p : ports) {
    json m = {
        {"hostPort", p.host_port}, {"containerPort", p.container_port}, {"protocol", p.protocol}};
    if (!p.host_ip.empty()) m["hostIP"] = p.host_ip;
    maps.push_back(m);
  }
  json c = {{"cniVersion", kCniVersion},
            {"name", kNetworkName},
            {"type", "portmap"},
            {"snat", true},
            {"capabilities", {{"portMappings", true}}},
            {"runtimeConfig", {{"portMappings", maps}}}};
  if (!prev.is_null()) c["prevResult"] = prev;
  return c;
}

}  // namespace

absl::StatusOr<SetupResult> CniNetwork::Setup(const std::string& container_id,
                                              const std::string& netns,
                                              const std::vector<PortMapping>& ports) {
  RETURN_IF_ERROR(MakeDirs(JoinPath(options_.state_dir, "results"), 0700));
  const std::string bridge = JoinPath(options_.bin_dir, "bridge");
  const std::string portmap = JoinPath(options_.bin_dir, "portmap");
  ASSIGN_OR_RETURN(std::string out, RunPlugin(bridge, "ADD", container_id, netns, kIfName,
                                              options_.bin_dir, BridgeConfig(), options_.timeout));
  json result = json::parse(out, nullptr, false);
  if (!result.is_object()) {
    (void)Teardown(container_id, netns, {});
    return absl::InternalError(absl::StrCat("CNI plugin bridge: result is not JSON: ", out));
  }
  absl::Status s = WriteFileAtomic(ResultPath(container_id), out, 0600);
  if (!s.ok()) {
    PIER_LOG(WARNING) << "saving CNI result: " << s;
  }

  SetupResult r;
  // The container's interface: the one with a "sandbox".
  int eth = -1;
  if (result.contains("interfaces")) {
    for (size_t i = 0; i < result["interfaces"].size(); ++i) {
      const json& itf = result["interfaces"][i];
      if (itf.value("sandbox", "") != "") {
        eth = static_cast<int>(i);
        r.mac = itf.value("mac", "");
      }
    }
  }
  if (result.contains("ips")) {
    for (const json& ip : result["ips"]) {
      if (eth >= 0 && ip.contains("interface") && ip["interface"].get<int>() != eth) continue;
      std::string addr = ip.value("address", "");
      std::vector<std::string> parts = absl::StrSplit(addr, '/');
      if (addr.find(':') != std::string::npos) continue;  // IPv4 only for now
      r.ip = parts[0];
      if (parts.size() == 2) (void)absl::SimpleAtoi(parts[1], &r.prefix_len);
      r.gateway = ip.value("gateway", "");
      break;
    }
  }
  if (r.ip.empty()) {
    (void)Teardown(container_id, netns, {});
    return absl::InternalError(absl::StrCat("CNI plugin bridge: no IPv4 address in ", out));
  }
  if (!ports.empty()) {
    absl::StatusOr<std::string> pm =
        RunPlugin(portmap, "ADD", container_id, netns, kIfName, options_.bin_dir,
                  PortMapConfig(result, ports).dump(), options_.timeout);
    if (!pm.ok()) {
      (void)Teardown(container_id, netns, ports);
      return pm.status();
    }
  }
  return r;
}

absl::Status CniNetwork::Teardown(const std::string& container_id, const std::string& netns,
                                  const std::vector<PortMapping>& ports) {
  json prev;
  absl::StatusOr<std::string> saved = ReadFile(ResultPath(container_id));
  if (saved.ok()) prev = json::parse(*saved, nullptr, false);
  if (prev.is_discarded()) prev = json();
  absl::Status first;
  if (!ports.empty()) {
    absl::StatusOr<std::string> r =
        RunPlugin(JoinPath(options_.bin_dir, "portmap"), "DEL", container_id, netns, kIfName,
                  options_.bin_dir, PortMapConfig(prev, ports).dump(), options_.timeout);
    if (!r.ok() && !IsGone(r.status())) first = r.status();
  }
  json bridge = json::parse(BridgeConfig());
  if (!prev.is_null()) bridge["prevResult"] = prev;
  absl::StatusOr<std::string> r =
      RunPlugin(JoinPath(options_.bin_dir, "bridge"), "DEL", container_id, netns, kIfName,
                options_.bin_dir, bridge.dump(), options_.timeout);
  if (!r.ok() && !IsGone(r.status()) && first.ok()) first = r.status();
  if (first.ok()) ::unlink(ResultPath(container_id).c_str());
  return first;
}

absl::Status CreateNetns(const std::string& path) {
  RETURN_IF_ERROR(MakeDirs(Dirname(path), 0755));
  {
    UniqueFd f(::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
    if (!f.valid()) return ErrnoStatus(errno, absl::StrCat("create ", path));
  }
  // A network namespace belongs to a thread, not to the process: a
  // short-lived thread makes one, brings its loopback up and pins it with a
  // bind mount (mounts are process-wide), then exits. No fork of this large
  // process, and the daemon's other threads keep their namespace.
  absl::Status s;
  std::thread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      s = ErrnoStatus(errno, "new network namespace");
      return;
    }
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr;
    std::memset(&ifr, 0, sizeof(ifr));
    std::memcpy(ifr.ifr_name, "lo", 3);
    if (!sock.valid() || ::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) != 0) {
      s = ErrnoStatus(errno, "read the loopback's flags");
      return;
    }
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (::ioctl(sock.get(), SIOCSIFFLAGS, &ifr) != 0) {
      s = ErrnoStatus(errno, "bring the loopback up");
      return;
    }
    const std::string ns = absl::StrCat("/proc/self/task/", ::gettid(), "/ns/net");
    if (::mount(ns.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      s = ErrnoStatus(errno, absl::StrCat("bind mount ", ns, " on ", path));
    }
  }).join();
  if (!s.ok()) ::unlink(path.c_str());
  return s;
}

bool NetnsPinned(const std::string& path) {
  constexpr long kNsfsMagic = 0x6e736673;  // NSFS_MAGIC
  struct statfs fs;
  return ::statfs(path.c_str(), &fs) == 0 && static_cast<long>(fs.f_type) == kNsfsMagic;
}

absl::Status RemoveNetns(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("umount ", path));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("remove ", path));
  }
  return absl::OkStatus();
}

absl::Status CheckPortFree(const std::string& host_ip, int port, const std::string& protocol) {
  return TryBind(host_ip, port, protocol).status();
}

absl::StatusOr<int> PickFreePort(const std::string& host_ip, const std::string& protocol) {
  return TryBind(host_ip, 0, protocol);
}

}  // namespace pier::runtime::network
