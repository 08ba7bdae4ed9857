#include "services/runtime/server/container_service.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lib/archive/layer_writer.h"
#include "lib/common/fs.h"
#include "lib/common/log.h"
#include "lib/common/status.h"
#include "lib/exec/capabilities.h"
#include "lib/rpc/status.h"

namespace pier::runtime {
namespace {

using rpc::ToGrpcStatus;

constexpr char kRecordPrefix[] = "svc/container/";
// Prefix of the network and pid modes that join another container's
// namespace, "container:<id or name>".
constexpr char kContainerMode[] = "container:";
constexpr size_t kChunk = 1 << 20;

absl::StatusOr<std::string> RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  UniqueFd fd(::open("/dev/urandom", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, "open /dev/urandom");
  ASSIGN_OR_RETURN(size_t n, ReadFull(fd.get(), raw.data(), raw.size(), "/dev/urandom"));
  if (n != bytes) return absl::InternalError("short read from /dev/urandom");
  return absl::BytesToHexString(raw);
}

absl::Status SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return ErrnoStatus(errno, "fcntl O_NONBLOCK");
  }
  return absl::OkStatus();
}

// Writes `data` to the non-blocking `fd`, waiting for room while `stop` is
// false (so a process that never reads cannot hold the caller forever).
void WriteNonBlocking(int fd, absl::string_view data, const std::atomic<bool>& stop) {
  while (!data.empty() && !stop.load()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return;
    pollfd pfd{fd, POLLOUT, 0};
    (void)::poll(&pfd, 1, 200);
  }
}

// The bytes of a detach key sequence, "ctrl-p,ctrl-q" style: each
// comma-separated key is one character or "ctrl-" and one of a-z, @, [, \,
// ], ^, _. Empty `keys`: ctrl-p,ctrl-q for a TTY, none otherwise; "none":
// none. InvalidArgument naming the key otherwise.
absl::StatusOr<std::string> ParseDetachKeys(const std::string& keys, bool tty) {
  if (keys == "none") return std::string();
  if (keys.empty()) return tty ? std::string("\x10\x11") : std::string();
  std::string out;
  for (absl::string_view key : absl::StrSplit(keys, ',')) {
    const std::string lower = absl::AsciiStrToLower(key);
    if (key.size() == 1) {
      out.push_back(key[0]);
      continue;
    }
    if (absl::StartsWith(lower, "ctrl-") && lower.size() == 6) {
      const char c = lower[5];
      if (c >= 'a' && c <= 'z') {
        out.push_back(static_cast<char>(c - 'a' + 1));
        continue;
      }
      const std::string specials = "@[\\]^_";  // 0, 27 .. 31
      const size_t i = specials.find(c);
      if (i != std::string::npos) {
        out.push_back(static_cast<char>(i == 0 ? 0 : 26 + i));
        continue;
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "detach keys \"", keys, "\": unknown key \"", key,
        "\" (use a single character or ctrl-<a-z, @, [, \\, ], ^, _>, separated by commas)"));
  }
  return out;
}

// Finds a detach key sequence in a stdin byte stream. Feed() returns the
// bytes to forward: those of a partial match are held until a later byte
// completes the sequence (then they are dropped and detached() turns true)
// or breaks it (then they are forwarded first).
class DetachMatcher {
 public:
  explicit DetachMatcher(std::string keys) : keys_(std::move(keys)) {}

  std::string Feed(absl::string_view data) {
    std::string out;
    for (char c : data) {
      if (keys_.empty() || detached_) {
        if (!detached_) out.push_back(c);
        continue;
      }
      if (c != keys_[held_]) {
        out.append(keys_, 0, held_);
        held_ = 0;
        if (c != keys_[0]) {
          out.push_back(c);
          continue;
        }
      }
      if (++held_ == keys_.size()) {
        detached_ = true;
        held_ = 0;
      }
    }
    return out;
  }
  // What a partial match holds (forwarded when stdin closes).
  std::string Held() const { return keys_.substr(0, held_); }
  bool detached() const { return detached_; }

 private:
  const std::string keys_;
  size_t held_ = 0;
  bool detached_ = false;
};

uint16_t ClampTty(uint32_t v) { return static_cast<uint16_t>(std::min<uint32_t>(v, 65535)); }

std::string CapName(absl::string_view name) {
  std::string n = absl::AsciiStrToUpper(name);
  if (!absl::StartsWith(n, "CAP_")) n = "CAP_" + n;
  return n;
}

std::vector<std::string> AllCapabilities() {
  std::vector<std::string> out;
  for (int c = 0; c <= exec::LastCapability(); ++c) out.push_back(exec::CapabilityName(c));
  return out;
}

absl::StatusOr<std::vector<std::string>> Capabilities(const v1::ContainerSpec& spec) {
  std::vector<std::string> caps = exec::DefaultCapabilities();
  for (const std::string& d : spec.cap_drop()) {
    std::string n = CapName(d);
    if (n == "CAP_ALL") {
      caps.clear();
      continue;
    }
    if (!exec::CapabilityFromName(n).ok()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown capability \"", d, "\""));
    }
    caps.erase(std::remove(caps.begin(), caps.end(), n), caps.end());
  }
  for (const std::string& a : spec.cap_add()) {
    std::string n = CapName(a);
    if (n == "CAP_ALL") {
      caps = AllCapabilities();
      continue;
    }
    if (!exec::CapabilityFromName(n).ok()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown capability \"", a, "\""));
    }
    if (std::find(caps.begin(), caps.end(), n) == caps.end()) caps.push_back(n);
  }
  return caps;
}

// "uid", "uid:gid", "root". Names other than root would need the image's
// /etc/passwd, which is not read yet.
absl::Status ParseUser(const std::string& user, exec::ProcessSpec* p) {
  if (user.empty() || user == "root" || user == "root:root") return absl::OkStatus();
  std::vector<std::string> parts = absl::StrSplit(user, absl::MaxSplits(':', 1));
  uint32_t uid = 0, gid = 0;
  if (!absl::SimpleAtoi(parts[0], &uid) ||
      (parts.size() == 2 && !absl::SimpleAtoi(parts[1], &gid))) {
    return absl::InvalidArgumentError(
        absl::StrCat("user \"", user, "\": only numeric uid[:gid] (or root) is supported for now"));
  }
  p->uid = uid;
  p->gid = parts.size() == 2 ? gid : uid;
  return absl::OkStatus();
}

void MergeEnv(std::vector<std::string>* env, const std::string& entry) {
  std::string key = entry.substr(0, entry.find('='));
  for (std::string& e : *env) {
    if (e.substr(0, e.find('=')) == key) {
      e = entry;
      return;
    }
  }
  env->push_back(entry);
}

v1::ContainerStatus ToStatus(ContainerState s) {
  switch (s) {
    case ContainerState::kCreated:
      return v1::CONTAINER_STATUS_CREATED;
    case ContainerState::kRunning:
      return v1::CONTAINER_STATUS_RUNNING;
    case ContainerState::kRestarting:
      return v1::CONTAINER_STATUS_RESTARTING;
    case ContainerState::kExited:
      return v1::CONTAINER_STATUS_EXITED;
  }
  return v1::CONTAINER_STATUS_UNSPECIFIED;
}

std::string StatusText(const ContainerInfo& c) {
  absl::Duration d;
  switch (c.state) {
    case ContainerState::kCreated:
      return "Created";
    case ContainerState::kRunning:
      d = absl::Now() - c.started_at;
      return absl::StrCat("Up ", absl::FormatDuration(absl::Trunc(d, absl::Seconds(1))),
                          c.paused ? " (Paused)" : "");
    case ContainerState::kRestarting:
      return absl::StrCat("Restarting (", c.exit.ExitCode(), ")");
    case ContainerState::kExited:
      d = absl::Now() - c.finished_at;
      return absl::StrCat("Exited (", c.exit.ExitCode(), ") ",
                          absl::FormatDuration(absl::Trunc(d, absl::Seconds(1))), " ago");
  }
  return "";
}

std::string RootfsKey(const v1::Container& record) {
  const std::string& p = record.rootfs_path();
  return p.substr(p.rfind('/') + 1);
}

void FillState(const ContainerInfo& c, v1::ContainerState* s) {
  s->set_status(c.paused ? v1::CONTAINER_STATUS_PAUSED : ToStatus(c.state));
  s->set_pid(c.state == ContainerState::kRunning ? c.pid : 0);
  s->set_exit_code(c.state == ContainerState::kExited || c.state == ContainerState::kRestarting
                       ? c.exit.ExitCode()
                       : 0);
  s->set_error(c.error);
  ToTimestamp(c.started_at, s->mutable_started_at());
  ToTimestamp(c.finished_at, s->mutable_finished_at());
  s->set_oom_killed(c.exit.oom_killed);
  s->set_restart_count(c.restart_count);
}

const char* ProtocolName(v1::Protocol p) {
  switch (p) {
    case v1::PROTOCOL_UDP:
      return "udp";
    case v1::PROTOCOL_SCTP:
      return "sctp";
    default:
      return "tcp";
  }
}

v1::PortBinding ToBinding(const network::PortMapping& m) {
  v1::PortBinding b;
  b.set_host_ip(m.host_ip);
  b.set_host_port(m.host_port);
  b.set_container_port(m.container_port);
  b.set_protocol(m.protocol == "udp"    ? v1::PROTOCOL_UDP
                 : m.protocol == "sctp" ? v1::PROTOCOL_SCTP
                                        : v1::PROTOCOL_TCP);
  return b;
}

network::PortMapping FromBinding(const v1::PortBinding& b) {
  network::PortMapping m;
  m.host_ip = b.host_ip();
  m.host_port = static_cast<int>(b.host_port());
  m.container_port = static_cast<int>(b.container_port());
  m.protocol = ProtocolName(b.protocol());
  return m;
}

bool SameHostAddress(const std::string& a, const std::string& b) {
  auto any = [](const std::string& ip) { return ip.empty() || ip == "0.0.0.0" || ip == "::"; };
  return a == b || any(a) || any(b);
}

// "80", "80/tcp" -> (80, "tcp").
absl::StatusOr<std::pair<int, std::string>> ParseExposed(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, absl::MaxSplits('/', 1));
  int port = 0;
  if (!absl::SimpleAtoi(parts[0], &port) || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("invalid exposed port \"", text, "\""));
  }
  std::string proto = parts.size() == 2 ? absl::AsciiStrToLower(parts[1]) : "tcp";
  if (proto != "tcp" && proto != "udp" && proto != "sctp") {
    return absl::InvalidArgumentError(absl::StrCat("invalid protocol in \"", text, "\""));
  }
  return std::make_pair(port, proto);
}

// The spec's published ports, plus (publish_all) the image's and the spec's
// exposed ports on ephemeral host ports; host port 0 gets a free port.
absl::StatusOr<std::vector<network::PortMapping>> PortMappings(const v1::ContainerSpec& spec,
                                                               const oci::ContainerConfig& ic) {
  std::vector<network::PortMapping> out;
  for (const v1::PortBinding& b : spec.ports()) {
    if (b.container_port() < 1 || b.container_port() > 65535 || b.host_port() > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid port mapping ", b.host_port(), ":", b.container_port()));
    }
    out.push_back(FromBinding(b));
  }
  if (spec.publish_all()) {
    std::vector<std::string> exposed = ic.exposed_ports;
    exposed.insert(exposed.end(), spec.expose().begin(), spec.expose().end());
    for (const std::string& e : exposed) {
      ASSIGN_OR_RETURN(auto pp, ParseExposed(e));
      bool covered = std::any_of(out.begin(), out.end(), [&](const network::PortMapping& m) {
        return m.container_port == pp.first && m.protocol == pp.second;
      });
      if (covered) continue;
      network::PortMapping m;
      m.container_port = pp.first;
      m.protocol = pp.second;
      out.push_back(m);
    }
  }
  for (network::PortMapping& m : out) {
    if (m.host_port == 0) {
      ASSIGN_OR_RETURN(m.host_port, network::PickFreePort(m.host_ip, m.protocol));
    }
  }
  return out;
}
}  // namespace

absl::StatusOr<std::string> ContainerServiceImpl::Resolve(absl::string_view id_or_name) const {
  if (id_or_name.empty()) return absl::InvalidArgumentError("no container id or name given");
  std::vector<ContainerInfo> all = ctx_->containers->List();
  for (const ContainerInfo& c : all) {
    if (c.id == id_or_name) return c.id;
  }
  for (const ContainerInfo& c : all) {
    if (c.name == id_or_name) return c.id;
  }
  std::vector<std::string> matches;
  for (const ContainerInfo& c : all) {
    if (absl::StartsWith(c.id, id_or_name)) matches.push_back(c.id);
  }
  if (matches.size() == 1) return matches[0];
  if (matches.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("container id prefix \"", id_or_name, "\" is ambiguous"));
  }
  return absl::NotFoundError(absl::StrCat("no such container: ", id_or_name));
}

absl::StatusOr<v1::Container> ContainerServiceImpl::Record(const std::string& id) const {
  ASSIGN_OR_RETURN(std::optional<std::string> raw, ctx_->kv->Find(kRecordPrefix + id));
  v1::Container c;
  if (!raw || !c.ParseFromString(*raw)) {
    return absl::NotFoundError(absl::StrCat("container ", id, " has no runtime record"));
  }
  return c;
}

absl::Status ContainerServiceImpl::CheckPorts(
    const std::vector<network::PortMapping>& ports) const {
  for (size_t i = 0; i < ports.size(); ++i) {
    const network::PortMapping& m = ports[i];
    const std::string shown =
        absl::StrCat(m.host_ip.empty() ? "0.0.0.0" : m.host_ip, ":", m.host_port);
    for (size_t j = 0; j < i; ++j) {
      if (ports[j].host_port == m.host_port && ports[j].protocol == m.protocol &&
          SameHostAddress(ports[j].host_ip, m.host_ip)) {
        return absl::InvalidArgumentError(absl::StrCat("port ", shown, " is published twice"));
      }
    }
    // Ports published by other containers (portmap uses iptables, so a
    // test bind does not see them).
    for (const ContainerInfo& c : ctx_->containers->List()) {
      absl::StatusOr<v1::Container> record = Record(c.id);
      if (!record.ok()) continue;
      for (const v1::PortBinding& b : record->network().ports()) {
        if (static_cast<int>(b.host_port()) == m.host_port &&
            ProtocolName(b.protocol()) == m.protocol && SameHostAddress(b.host_ip(), m.host_ip)) {
          return absl::FailedPreconditionError(
              absl::StrCat("port ", shown, " is already in use (by container ", c.name, ")"));
        }
      }
    }
    RETURN_IF_ERROR(network::CheckPortFree(m.host_ip, m.host_port, m.protocol));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ContainerServiceImpl::Create(const v1::ContainerSpec& spec,
                                                         std::string* name,
                                                         std::vector<std::string>* warnings) {
  if (spec.image().empty()) return absl::InvalidArgumentError("container spec has no image");
  absl::StatusOr<image::Image> img = ctx_->images->Get(spec.image());
  if (absl::IsNotFound(img.status())) {
    return absl::NotFoundError(
        absl::StrCat("image ", spec.image(), " not found locally; pull it first"));
  }
  if (!img.ok()) return img.status();
  ASSIGN_OR_RETURN(oci::ImageConfig config, ctx_->images->GetConfig(*img));
  const oci::ContainerConfig& ic = config.config;
  // The image must be for the platform asked for (by default the node's).
  ASSIGN_OR_RETURN(oci::Platform wanted, RequestedPlatform(spec.platform()));
  oci::Platform image_platform;
  image_platform.os = config.os.empty() ? "linux" : config.os;
  image_platform.architecture = config.architecture;
  image_platform.variant = config.variant;
  if (!config.architecture.empty() && !PlatformMatches(image_platform, wanted)) {
    const std::string node = PlatformText(image::HostPlatform());
    const std::string what = absl::StrCat("image ", spec.image(), " (", img->id.str(), ") is for ",
                                          PlatformText(image_platform));
    if (spec.has_platform()) {
      return absl::FailedPreconditionError(absl::StrCat(
          what, ", not the requested ", PlatformText(wanted), " (the node is ", node, ")"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat(what, ", but the node is ", node, " (give platform ",
                     PlatformText(image_platform), " to run it anyway, under emulation)"));
  }

  CreateOptions opts;
  opts.name = spec.name();
  opts.image = img->id.str();
  exec::ContainerSpec& es = opts.spec;
  exec::ProcessSpec& p = es.process;

  // Entrypoint and command, as docker merges them.
  std::vector<std::string> args;
  if (spec.has_entrypoint()) {
    args.assign(spec.entrypoint().values().begin(), spec.entrypoint().values().end());
  } else if (ic.entrypoint) {
    args = *ic.entrypoint;
  }
  if (spec.has_cmd()) {
    args.insert(args.end(), spec.cmd().values().begin(), spec.cmd().values().end());
  } else if (!spec.has_entrypoint() && ic.cmd) {
    args.insert(args.end(), ic.cmd->begin(), ic.cmd->end());
  }
  if (args.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no command specified for image ", spec.image()));
  }
  p.args = args;
  p.env = ic.env;
  for (const std::string& e : spec.env()) {
    if (e.find('=') == std::string::npos || e[0] == '=') {
      return absl::InvalidArgumentError(absl::StrCat("env \"", e, "\" is not KEY=VALUE"));
    }
    MergeEnv(&p.env, e);
  }
  p.cwd = !spec.working_dir().empty() ? spec.working_dir()
                                      : (!ic.working_dir.empty() ? ic.working_dir : "/");
  if (p.cwd[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("working directory \"", p.cwd, "\" is not absolute"));
  }
  const std::string user = !spec.user().empty() ? spec.user() : ic.user;
  RETURN_IF_ERROR(ParseUser(user, &p));
  p.tty = spec.tty();
  opts.open_stdin = spec.open_stdin();
  opts.labels.insert(spec.labels().begin(), spec.labels().end());

  // Namespaces. bridge (the default) gets a network namespace made here and
  // configured by CNI, which the container joins; none gets a fresh one from
  // the container's clone (only `lo`, brought up by the executor), so it
  // costs no pinned namespace file.
  const std::string& net = spec.network_mode();
  const bool bridge = net.empty() || net == "bridge";
  const bool own_netns = bridge;
  std::string net_target;  // container:<target> mode: the target's id
  if (bridge && ctx_->cni == nullptr) {
    return absl::FailedPreconditionError("bridge networking is not configured in this runtime");
  }
  if (own_netns || net == "none") {
  } else if (net == "host") {
    es.namespaces.net.mode = exec::NamespaceMode::kHost;
    es.namespaces.uts.mode = exec::NamespaceMode::kHost;
  } else if (absl::StartsWith(net, kContainerMode)) {
    // The namespace's path is found at each start (the target's may change
    // as it restarts); its hostname is the target's.
    ASSIGN_OR_RETURN(net_target, ModeTarget(net, "network"));
    if (!spec.hostname().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("conflicting options: hostname and the network mode \"", net, "\""));
    }
    es.namespaces.net = {exec::NamespaceMode::kPath, ""};
    ASSIGN_OR_RETURN(es.hostname, TargetHostname(net_target));
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown network mode \"", net, "\""));
  }
  std::string pid_target;
  if (spec.pid_mode() == "host") {
    es.namespaces.pid.mode = exec::NamespaceMode::kHost;
  } else if (absl::StartsWith(spec.pid_mode(), kContainerMode)) {
    ASSIGN_OR_RETURN(pid_target, ModeTarget(spec.pid_mode(), "pid"));
    es.namespaces.pid = {exec::NamespaceMode::kPath, ""};
  } else if (!spec.pid_mode().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown pid mode \"", spec.pid_mode(), "\""));
  }
  std::string ipc_target;
  if (spec.ipc_mode() == "host") {
    es.namespaces.ipc.mode = exec::NamespaceMode::kHost;
  } else if (absl::StartsWith(spec.ipc_mode(), kContainerMode)) {
    ASSIGN_OR_RETURN(ipc_target, ModeTarget(spec.ipc_mode(), "ipc"));
    es.namespaces.ipc = {exec::NamespaceMode::kPath, ""};
  } else if (!spec.ipc_mode().empty() && spec.ipc_mode() != "private") {
    return absl::InvalidArgumentError(absl::StrCat("unknown ipc mode \"", spec.ipc_mode(), "\""));
  }
  std::vector<network::PortMapping> ports;
  if (!spec.ports().empty() || spec.publish_all()) {
    if (!bridge) {
      return absl::InvalidArgumentError(
          absl::StrCat("published ports need bridge networking, not \"", net, "\""));
    }
    ASSIGN_OR_RETURN(ports, PortMappings(spec, ic));
    RETURN_IF_ERROR(CheckPorts(ports));
  }
  if (net_target.empty()) es.hostname = spec.hostname();
  es.privileged = spec.privileged();
  if (spec.privileged()) {
    p.capabilities = AllCapabilities();
  } else {
    ASSIGN_OR_RETURN(p.capabilities, Capabilities(spec));
  }
  for (const std::string& opt : spec.security_opt()) {
    if (opt == "no-new-privileges" || opt == "no-new-privileges:true") {
      p.no_new_privileges = true;
    } else if (opt == "seccomp=unconfined" || opt == "seccomp:unconfined") {
      es.seccomp = exec::SeccompMode::kUnconfined;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unsupported security option \"", opt, "\""));
    }
  }
  es.readonly_rootfs = spec.read_only_rootfs();

  // Resources.
  const v1::Resources& r = spec.resources();
  if (r.memory_bytes() != 0 && r.memory_bytes() < (6 << 20)) {
    return absl::InvalidArgumentError("memory limit below the minimum of 6 MiB");
  }
  if (r.memory_bytes() < 0 || r.nano_cpus() < 0 || r.pids_limit() < 0 || r.cpu_shares() < 0) {
    return absl::InvalidArgumentError("negative resource limit");
  }
  es.cgroup.memory_bytes = r.memory_bytes();
  es.cgroup.memory_swap = r.memory_swap_bytes();
  es.cgroup.nano_cpus = r.nano_cpus();
  es.cgroup.cpu_shares = static_cast<uint64_t>(r.cpu_shares());
  es.cgroup.pids_limit = r.pids_limit();
  es.cgroup.cpuset_cpus = r.cpuset_cpus();

  // Mounts.
  for (const v1::Mount& m : spec.mounts()) {
    if (m.target().empty() || m.target()[0] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("mount target \"", m.target(), "\" is not an absolute path"));
    }
    exec::Mount em;
    em.target = m.target();
    switch (m.type()) {
      case v1::Mount::TYPE_BIND: {
        if (m.source().empty() || m.source()[0] != '/') {
          return absl::InvalidArgumentError(
              absl::StrCat("bind mount source \"", m.source(), "\" is not an absolute path"));
        }
        struct stat st;
        if (::stat(m.source().c_str(), &st) != 0) {
          if (errno != ENOENT) return ErrnoStatus(errno, absl::StrCat("stat ", m.source()));
          if (!m.create_host_path()) {
            return absl::FailedPreconditionError(
                absl::StrCat("bind mount source path does not exist: ", m.source()));
          }
          RETURN_IF_ERROR(MakeDirs(m.source(), 0755));
        }
        em.type = "bind";
        em.source = m.source();
        em.options = {"rbind", m.propagation().empty() ? "rprivate" : m.propagation()};
        if (m.read_only()) em.options.push_back("ro");
        break;
      }
      case v1::Mount::TYPE_TMPFS: {
        if (!m.source().empty()) {
          return absl::InvalidArgumentError("tmpfs mount with a source");
        }
        em.type = "tmpfs";
        em.source = "tmpfs";
        em.options = {"nosuid", "nodev",
                      absl::StrFormat("mode=%o", m.tmpfs_mode() ? m.tmpfs_mode() : 01777u)};
        if (m.tmpfs_size_bytes() > 0)
          em.options.push_back(absl::StrCat("size=", m.tmpfs_size_bytes()));
        if (m.read_only()) em.options.push_back("ro");
        break;
      }
      case v1::Mount::TYPE_VOLUME: {
        // A named volume, created on first use; no name: anonymous.
        absl::StatusOr<VolumeInfo> vol = m.source().empty() ? ctx_->volumes->CreateAnonymous()
                                                            : ctx_->volumes->Create(m.source());
        if (!vol.ok()) return vol.status();
        em.type = "bind";
        em.source = vol->mountpoint;
        em.options = {"rbind", "rprivate"};
        if (m.read_only()) em.options.push_back("ro");
        break;
      }
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("mount at ", m.target(), " has no valid type"));
    }
    es.mounts.push_back(std::move(em));
  }
  // The image's VOLUME paths not covered above get anonymous volumes.
  for (const std::string& path : ic.volumes) {
    bool covered = std::any_of(es.mounts.begin(), es.mounts.end(),
                               [&](const exec::Mount& m) { return m.target == path; });
    if (covered) continue;
    ASSIGN_OR_RETURN(VolumeInfo vol, ctx_->volumes->CreateAnonymous());
    exec::Mount em;
    em.type = "bind";
    em.source = vol.mountpoint;
    em.target = path;
    em.options = {"rbind", "rprivate"};
    es.mounts.push_back(std::move(em));
  }

  // Lifecycle.
  std::string policy = "no";
  switch (spec.restart_policy().name()) {
    case v1::RestartPolicy::NAME_UNSPECIFIED:
    case v1::RestartPolicy::NAME_NO:
      break;
    case v1::RestartPolicy::NAME_ALWAYS:
      policy = "always";
      break;
    case v1::RestartPolicy::NAME_ON_FAILURE:
      policy = spec.restart_policy().max_retries() > 0
                   ? absl::StrCat("on-failure:", spec.restart_policy().max_retries())
                   : "on-failure";
      break;
    case v1::RestartPolicy::NAME_UNLESS_STOPPED:
      policy = "unless-stopped";
      break;
    default:
      return absl::InvalidArgumentError("unknown restart policy");
  }
  ASSIGN_OR_RETURN(opts.restart, RestartPolicy::Parse(policy));
  if (spec.auto_remove()) {
    if (policy != "no") {
      return absl::InvalidArgumentError("auto_remove conflicts with a restart policy");
    }
    opts.auto_remove = true;
  }
  const std::string stop_signal = !spec.stop_signal().empty() ? spec.stop_signal() : ic.stop_signal;
  if (!stop_signal.empty()) {
    ASSIGN_OR_RETURN(opts.stop_signal, ParseSignal(stop_signal));
  }
  if (spec.has_stop_timeout_seconds()) {
    if (spec.stop_timeout_seconds() < 0) return absl::InvalidArgumentError("negative stop timeout");
    opts.stop_timeout = absl::Seconds(spec.stop_timeout_seconds());
  }
  if (!spec.name().empty()) {
    // Fail before creating a snapshot.
    for (const ContainerInfo& c : ctx_->containers->List()) {
      if (c.name == spec.name()) {
        return absl::AlreadyExistsError(absl::StrCat("container name \"", spec.name(),
                                                     "\" is already in use by container ", c.id));
      }
    }
  }

  // Root file system: an active snapshot over the image's layers.
  ASSIGN_OR_RETURN(std::optional<oci::Digest> parent, ctx_->images->Unpack(*img));
  ASSIGN_OR_RETURN(std::string key, RandomHex(32));
  ASSIGN_OR_RETURN(es.rootfs_mounts, ctx_->images->snapshotter().Prepare(key, parent));
  es.rootfs = JoinPath(ctx_->run_root, "rootfs/" + key);
  auto cleanup = [&] {
    (void)ctx_->images->snapshotter().RemoveActive(key);
    (void)RemoveAll(es.rootfs);
  };
  absl::Status s = MakeDirs(es.rootfs, 0755);
  if (!s.ok()) {
    cleanup();
    return s;
  }
  // The network namespace, set up before the container starts.
  std::string netns;
  network::SetupResult addr;
  if (own_netns) {
    netns = JoinPath(ctx_->run_root, "netns/" + key);
    s = network::CreateNetns(netns);
    if (s.ok() && bridge) {
      absl::StatusOr<network::SetupResult> r = ctx_->cni->Setup(key, netns, ports);
      if (r.ok()) {
        addr = *r;
      } else {
        s = r.status();
        (void)network::RemoveNetns(netns);
      }
    }
    if (!s.ok()) {
      cleanup();
      return s;
    }
    es.namespaces.net.mode = exec::NamespaceMode::kPath;
    es.namespaces.net.path = netns;
  }
  auto cleanup_net = [&] {
    if (netns.empty()) return;
    if (bridge) (void)ctx_->cni->Teardown(key, netns, ports);
    (void)network::RemoveNetns(netns);
  };
  absl::StatusOr<std::string> id = ctx_->containers->Create(opts);
  if (!id.ok()) {
    cleanup_net();
    cleanup();
    return id.status();
  }
  absl::StatusOr<ContainerInfo> info = ctx_->containers->Inspect(*id);
  v1::Container record;
  record.set_id(*id);
  record.set_name(info.ok() ? info->name : spec.name());
  ToTimestamp(info.ok() ? info->created_at : absl::Now(), record.mutable_created_at());
  record.set_image(spec.image());
  record.set_image_id(img->id.str());
  *record.mutable_spec() = spec;
  record.mutable_spec()->set_name(record.name());
  v1::ProcessConfig* pc = record.mutable_config();
  for (const auto& a : p.args) pc->add_args(a);
  for (const auto& e : p.env) pc->add_env(e);
  pc->set_working_dir(p.cwd);
  pc->set_user(user);
  pc->set_tty(p.tty);
  v1::NetworkSettings* ns = record.mutable_network();
  ns->set_network_mode(net.empty()           ? "bridge"
                       : !net_target.empty() ? kContainerMode + net_target
                                             : net);
  if (!pid_target.empty()) record.mutable_spec()->set_pid_mode(kContainerMode + pid_target);
  if (!ipc_target.empty()) record.mutable_spec()->set_ipc_mode(kContainerMode + ipc_target);
  ns->set_sandbox_path(netns);
  ns->set_ip_address(addr.ip);
  ns->set_ip_prefix_len(addr.prefix_len);
  ns->set_gateway(addr.gateway);
  ns->set_mac_address(addr.mac);
  for (const network::PortMapping& m : ports) *ns->add_ports() = ToBinding(m);
  for (const v1::Mount& m : spec.mounts()) {
    v1::MountPoint* mp = record.add_mounts();
    mp->set_type(m.type());
    mp->set_source(m.source());
    mp->set_target(m.target());
    mp->set_read_only(m.read_only());
    if (m.type() == v1::Mount::TYPE_BIND) {
      mp->set_propagation(m.propagation().empty() ? "rprivate" : m.propagation());
    }
  }
  record.set_log_path(JoinPath(ctx_->containers->LogDir(*id), "log.jsonl"));
  record.set_rootfs_path(es.rootfs);
  {
    // Not synced, as the manager's container records (see PersistLocked).
    kv::Batch batch;
    batch.Put(kRecordPrefix + *id, record.SerializeAsString());
    batch.set_sync(false);
    s = ctx_->kv->Write(batch);
  }
  if (!s.ok()) {
    (void)ctx_->containers->Remove(*id, true);
    cleanup_net();
    cleanup();
    return s;
  }
  *name = record.name();
  PIER_LOG(INFO) << "created container " << *id << " (" << *name << ") from " << spec.image();
  return *id;
}

ContainerServiceImpl::ContainerServiceImpl(const RuntimeContext* ctx) : ctx_(ctx) {
  ctx_->containers->SetAutoRemove([this](const std::string& id) {
    absl::Status s = RemoveById(id, /*force=*/false);
    if (!s.ok() && !absl::IsNotFound(s)) {
      PIER_LOG(WARNING) << "container " << id << ": auto-remove: " << s;
    }
  });
}

ContainerServiceImpl::~ContainerServiceImpl() { ctx_->containers->SetAutoRemove(nullptr); }

absl::Status ContainerServiceImpl::RemoveById(const std::string& id, bool force) {
  absl::StatusOr<v1::Container> record = Record(id);
  RETURN_IF_ERROR(ctx_->containers->Remove(id, force));
  if (record.ok()) {
    absl::Status s = ctx_->images->snapshotter().RemoveActive(RootfsKey(*record));
    if (!s.ok() && !absl::IsNotFound(s)) {
      PIER_LOG(WARNING) << "container " << id << ": removing its snapshot: " << s;
    }
    (void)RemoveAll(record->rootfs_path());
    const std::string& netns = record->network().sandbox_path();
    if (!netns.empty()) {
      if (record->network().network_mode() == "bridge" && ctx_->cni != nullptr) {
        std::vector<network::PortMapping> ports;
        for (const v1::PortBinding& b : record->network().ports()) ports.push_back(FromBinding(b));
        absl::Status n = ctx_->cni->Teardown(netns.substr(netns.rfind('/') + 1), netns, ports);
        if (!n.ok()) {
          PIER_LOG(WARNING) << "container " << id << ": network teardown: " << n;
        }
      }
      absl::Status n = network::RemoveNetns(netns);
      if (!n.ok()) {
        PIER_LOG(WARNING) << "container " << id << ": " << n;
      }
    }
  }
  // Not synced, as the record's creation: a machine crash may bring a removed
  // container back as exited, with nothing left to remove but the record.
  kv::Batch batch;
  batch.Delete(kRecordPrefix + id);
  batch.set_sync(false);
  return ctx_->kv->Write(batch);
}

absl::StatusOr<std::string> ContainerServiceImpl::ModeTarget(const std::string& mode,
                                                             absl::string_view what) const {
  const std::string target = mode.substr(sizeof(kContainerMode) - 1);
  if (target.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " mode \"", mode, "\" names no container"));
  }
  absl::StatusOr<std::string> id = Resolve(target);
  if (!id.ok()) return Annotate(id.status(), absl::StrCat(what, " mode \"", mode, "\""));
  return id;
}

absl::StatusOr<std::string> ContainerServiceImpl::TargetHostname(const std::string& id) const {
  ASSIGN_OR_RETURN(ContainerInfo t, ctx_->containers->Inspect(id));
  if (!t.spec.hostname.empty()) return t.spec.hostname;
  if (t.spec.namespaces.uts.mode == exec::NamespaceMode::kHost) {
    char host[256] = {};
    if (::gethostname(host, sizeof(host) - 1) != 0) return ErrnoStatus(errno, "gethostname");
    return std::string(host);
  }
  return t.id.substr(0, 12);
}

absl::StatusOr<std::string> ContainerServiceImpl::SharedNamespace(const std::string& id,
                                                                  const std::string& mode,
                                                                  absl::string_view kind) const {
  const std::string target = mode.substr(sizeof(kContainerMode) - 1);
  absl::StatusOr<ContainerInfo> t = ctx_->containers->Inspect(target);
  if (!t.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("container ", id, ": cannot join the ", kind,
                                                      " namespace of container ", target,
                                                      ": it no longer exists"));
  }
  if (t->state != ContainerState::kRunning || t->pid <= 0) {
    return absl::FailedPreconditionError(absl::StrCat("container ", id, ": cannot join the ", kind,
                                                      " namespace of container ", t->name, " (",
                                                      t->id, "): it is not running"));
  }
  if (kind == "net") {
    // The target's pinned namespace, when it has one of its own.
    absl::StatusOr<v1::Container> record = Record(t->id);
    if (record.ok() && !record->network().sandbox_path().empty() &&
        network::NetnsPinned(record->network().sandbox_path())) {
      return record->network().sandbox_path();
    }
  }
  return absl::StrCat("/proc/", t->pid, "/ns/", kind);
}

absl::Status ContainerServiceImpl::PrepareStart(ContainerInfo* start) {
  const ContainerInfo& info = *start;
  exec::Namespaces& namespaces = start->spec.namespaces;
  const bool join_net =
      namespaces.net.mode == exec::NamespaceMode::kPath && namespaces.net.path.empty();
  const bool join_pid =
      namespaces.pid.mode == exec::NamespaceMode::kPath && namespaces.pid.path.empty();
  const bool join_ipc =
      namespaces.ipc.mode == exec::NamespaceMode::kPath && namespaces.ipc.path.empty();
  if (join_net || join_pid || join_ipc) {
    // container:<target> modes: the target's namespaces as of now.
    ASSIGN_OR_RETURN(v1::Container record, Record(info.id));
    if (join_net) {
      ASSIGN_OR_RETURN(namespaces.net.path,
                       SharedNamespace(info.id, record.network().network_mode(), "net"));
    }
    if (join_pid) {
      ASSIGN_OR_RETURN(namespaces.pid.path,
                       SharedNamespace(info.id, record.spec().pid_mode(), "pid"));
    }
    if (join_ipc) {
      ASSIGN_OR_RETURN(namespaces.ipc.path,
                       SharedNamespace(info.id, record.spec().ipc_mode(), "ipc"));
    }
    return absl::OkStatus();
  }
  const exec::NamespaceSpec& net = info.spec.namespaces.net;
  if (net.mode != exec::NamespaceMode::kPath || network::NetnsPinned(net.path)) {
    return absl::OkStatus();
  }
  PIER_LOG(WARNING) << "container " << info.id << ": network namespace " << net.path
                    << " is gone; creating a new one";
  ASSIGN_OR_RETURN(v1::Container record, Record(info.id));
  RETURN_IF_ERROR(network::RemoveNetns(net.path));  // the stale mount point
  RETURN_IF_ERROR(network::CreateNetns(net.path));
  const std::string& mode = record.network().network_mode();
  if (mode != "bridge") return absl::OkStatus();
  if (ctx_->cni == nullptr) {
    return absl::FailedPreconditionError("bridge networking is not configured in this runtime");
  }
  std::vector<network::PortMapping> ports;
  for (const v1::PortBinding& b : record.network().ports()) ports.push_back(FromBinding(b));
  const std::string key = std::string(absl::StripPrefix(
      net.path, JoinPath(ctx_->run_root, "netns") + "/"));  // the snapshot key CNI knows it by
  // What the previous ADD left (IPAM lease, port mappings) goes first.
  absl::Status del = ctx_->cni->Teardown(key, net.path, ports);
  if (!del.ok()) PIER_LOG(WARNING) << "container " << info.id << ": CNI DEL: " << del;
  absl::StatusOr<network::SetupResult> addr = ctx_->cni->Setup(key, net.path, ports);
  if (!addr.ok()) return Annotate(addr.status(), absl::StrCat("container ", info.id));
  v1::NetworkSettings* ns = record.mutable_network();
  ns->set_ip_address(addr->ip);
  ns->set_ip_prefix_len(addr->prefix_len);
  ns->set_gateway(addr->gateway);
  ns->set_mac_address(addr->mac);
  return ctx_->kv->Put(kRecordPrefix + info.id, record.SerializeAsString());
}

grpc::Status ContainerServiceImpl::CreateContainer(grpc::ServerContext*,
                                                   const v1::CreateContainerRequest* request,
                                                   v1::CreateContainerResponse* response) {
  std::string name;
  std::vector<std::string> warnings;
  auto id = Create(request->spec(), &name, &warnings);
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_id(*id);
  response->set_name(name);
  for (auto& w : warnings) response->add_warnings(w);
  return grpc::Status::OK;
}

grpc::Status ContainerServiceImpl::StartContainer(grpc::ServerContext*,
                                                  const v1::StartContainerRequest* request,
                                                  v1::StartContainerResponse*) {
  auto id = Resolve(request->id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  absl::Status s = ctx_->containers->Start(*id);
  if (absl::IsNotFound(s) || absl::IsPermissionDenied(s)) {
    // The executable could not be run: the container is left exited.
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("container ", *id, ": ", s.message()));
  }
  return ToGrpcStatus(s);
}

grpc::Status ContainerServiceImpl::RunContainer(grpc::ServerContext*,
                                                const v1::RunContainerRequest* request,
                                                v1::RunContainerResponse* response) {
  std::string name;
  std::vector<std::string> warnings;
  auto id = Create(request->spec(), &name, &warnings);
  if (!id.ok()) return ToGrpcStatus(id.status());
  absl::Status s = ctx_->containers->Start(*id);
  if (!s.ok()) {
    absl::Status r = RemoveById(*id, true);
    if (!r.ok()) {
      PIER_LOG(WARNING) << "removing container " << *id << " after failed start: " << r;
    }
    if (absl::IsNotFound(s) || absl::IsPermissionDenied(s)) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("container ", *id, ": ", s.message()));
    }
    return ToGrpcStatus(s);
  }
  response->set_id(*id);
  response->set_name(name);
  for (auto& w : warnings) response->add_warnings(w);
  return grpc::Status::OK;
}

grpc::Status ContainerServiceImpl::StopContainer(grpc::ServerContext*,
                                                 const v1::StopContainerRequest* request,
                                                 v1::StopContainerResponse*) {
  auto id = Resolve(request->id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  std::optional<absl::Duration> timeout;
  if (request->has_timeout_seconds())
    timeout = absl::Seconds(std::max(0, request->timeout_seconds()));
  return ToGrpcStatus(ctx_->containers->Stop(*id, timeout));
}

grpc::Status ContainerServiceImpl::RestartContainer(grpc::ServerContext*,
                                                    const v1::RestartContainerRequest* request,
                                                    v1::RestartContainerResponse*) {
  auto id = Resolve(request->id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  std::optional<absl::Duration> timeout;
  if (request->has_timeout_seconds())
    timeout = absl::Seconds(std::max(0, request->timeout_seconds()));
  absl::Status s = ctx_->containers->Stop(*id, timeout);
  if (!s.ok()) return ToGrpcStatus(s);
  s = ctx_->containers->Start(*id);
  if (!s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<ContainerInfo> info = ctx_->containers->Inspect(*id);
  if (info.ok()) {
    std::map<std::string, std::string> attrs = info->labels;
    attrs["name"] = info->name;
    attrs["image"] = info->image;
    ctx_->PublishEvent(Event::Type::kContainer, *id, info->name, "restart", std::move(attrs));
  }
  return grpc::Status::OK;
}

grpc::Status ContainerServiceImpl::PauseContainer(grpc::ServerContext*,
                                                  const v1::PauseContainerRequest* request,
                                                  v1::PauseContainerResponse*) {
  auto id = Resolve(request->id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  return ToGrpcStatus(ctx_->containers->Pause(*id, true));
}

grpc::Status ContainerServiceImpl::UnpauseContainer(grpc::ServerContext*,
                                                    const v1::UnpauseContainerRequest* request,
                                                    v1::UnpauseContainerResponse*) {
  auto id = Resolve(request->id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  return ToGrpcStatus(ctx_->containers->Pause(*id, false));
}

grpc::Status ContainerServiceImpl::ContainerStats(
    grpc::ServerContext* context, const v1::ContainerStatsRequest* request,
    grpc::ServerWriter<v1::ContainerStatsResponse>* writer) {
  auto id = Resolve(request->id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  for (bool first = true;; first = false) {
    absl::StatusOr<runtime::ContainerStats> st = ctx_->containers->Stats(*id);
    if (!st.ok()) {
      // A stream ends quietly when the container stops.
      if (!first && absl::IsFailedPrecondition(st.status())) return grpc::Status::OK;
      return ToGrpcStatus(st.status());
    }
    v1::ContainerStatsResponse r;
    ToTimestamp(st->time, r.mutable_time());
    r.set_cpu_usage_ns(st->cpu_usage_ns);
    r.set_system_cpu_usage_ns(st->system_cpu_usage_ns);
    r.set_online_cpus(st->online_cpus);
    r.set_memory_usage_bytes(st->memory_usage_bytes);
    r.set_memory_limit_bytes(st->memory_limit_bytes);
    r.set_memory_cache_bytes(st->memory_cache_bytes);
    r.set_pids(st->pids);
    r.set_pids_limit(st->pids_limit);
    r.set_network_rx_bytes(st->network_rx_bytes);
    r.set_network_tx_bytes(st->network_tx_bytes);
    r.set_block_read_bytes(st->block_read_bytes);
    r.set_block_write_bytes(st->block_write_bytes);
    if (!writer->Write(r) || !request->stream()) return grpc::Status::OK;
    for (int i = 0; i < 10; ++i) {  // a sample a second, cancellable
      if (context->IsCancelled()) return grpc::Status::OK;
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
}

grpc::Status ContainerServiceImpl::KillContainer(grpc::ServerContext*,
                                                 const v1::KillContainerRequest* request,
                                                 v1::KillContainerResponse*) {
  auto id = Resolve(request->id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  int sig = SIGKILL;
  if (!request->signal().empty()) {
    auto parsed = ParseSignal(request->signal());
    if (!parsed.ok()) return ToGrpcStatus(parsed.status());
    sig = *parsed;
  }
  return ToGrpcStatus(ctx_->containers->Kill(*id, sig));
}

grpc::Status ContainerServiceImpl::RemoveContainer(grpc::ServerContext*,
                                                   const v1::RemoveContainerRequest* request,
                                                   v1::RemoveContainerResponse*) {
  auto id = Resolve(request->id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  std::vector<std::string> anonymous;
  if (request->remove_volumes()) {
    absl::StatusOr<ContainerInfo> info = ctx_->containers->Inspect(*id);
    absl::StatusOr<std::vector<VolumeInfo>> vols = ctx_->volumes->List();
    if (info.ok() && vols.ok()) {
      for (const exec::Mount& m : info->spec.mounts) {
        for (const VolumeInfo& v : *vols) {
          if (v.anonymous && v.mountpoint == m.source) anonymous.push_back(v.name);
        }
      }
    }
  }
  absl::Status s = RemoveById(*id, request->force());
  if (!s.ok()) return ToGrpcStatus(s);
  for (const std::string& v : anonymous) {
    absl::Status r =
        ctx_->volumes->Remove(v, [this](const std::string& mp) { return ctx_->VolumeInUse(mp); });
    if (!r.ok()) {
      PIER_LOG(WARNING) << "removing anonymous volume " << v << ": " << r;
    }
  }
  return grpc::Status::OK;
}

grpc::Status ContainerServiceImpl::ListContainers(grpc::ServerContext*,
                                                  const v1::ListContainersRequest* request,
                                                  v1::ListContainersResponse* response) {
  std::vector<ContainerInfo> all = ctx_->containers->List();
  std::sort(all.begin(), all.end(), [](const ContainerInfo& a, const ContainerInfo& b) {
    return a.created_at > b.created_at;
  });
  const v1::ContainerFilters& f = request->filters();
  for (const ContainerInfo& c : all) {
    v1::ContainerStatus status = c.paused ? v1::CONTAINER_STATUS_PAUSED : ToStatus(c.state);
    if (!request->all() && status != v1::CONTAINER_STATUS_RUNNING &&
        status != v1::CONTAINER_STATUS_RESTARTING && status != v1::CONTAINER_STATUS_PAUSED) {
      continue;
    }
    auto any = [](const auto& list, auto pred) {
      return list.empty() || std::any_of(list.begin(), list.end(), pred);
    };
    if (!any(f.ids(), [&](const std::string& p) { return absl::StartsWith(c.id, p); })) continue;
    if (!any(f.names(), [&](const std::string& n) { return absl::StrContains(c.name, n); })) {
      continue;
    }
    if (!any(f.statuses(), [&](int s) { return s == status; })) continue;
    if (!any(f.exit_codes(), [&](int code) {
          return c.state == ContainerState::kExited && c.exit.ExitCode() == code;
        })) {
      continue;
    }
    absl::StatusOr<v1::Container> record = Record(c.id);
    if (!any(f.ancestors(), [&](const std::string& a) {
          auto img = ctx_->images->Get(a);
          return img.ok() && img->id.str() == c.image;
        })) {
      continue;
    }
    bool labels_ok = true;
    for (const std::string& cond : f.labels()) {
      std::vector<std::string> kv = absl::StrSplit(cond, absl::MaxSplits('=', 1));
      if (!record.ok()) {
        labels_ok = false;
        break;
      }
      auto it = record->spec().labels().find(kv[0]);
      if (it == record->spec().labels().end() || (kv.size() == 2 && it->second != kv[1])) {
        labels_ok = false;
      }
    }
    if (!labels_ok) continue;
    v1::ContainerSummary* out = response->add_containers();
    out->set_id(c.id);
    out->set_name(c.name);
    out->set_image(record.ok() ? record->image() : c.image);
    out->set_image_id(c.image);
    out->set_command(absl::StrJoin(c.spec.process.args, " "));
    ToTimestamp(c.created_at, out->mutable_created_at());
    out->set_status(status);
    out->set_status_text(StatusText(c));
    if (record.ok()) *out->mutable_labels() = record->spec().labels();
    if (record.ok()) *out->mutable_ports() = record->network().ports();
    out->set_exit_code(c.state == ContainerState::kExited ? c.exit.ExitCode() : 0);
    if (request->limit() > 0 && response->containers_size() >= request->limit()) break;
  }
  return grpc::Status::OK;
}

grpc::Status ContainerServiceImpl::InspectContainer(grpc::ServerContext*,
                                                    const v1::InspectContainerRequest* request,
                                                    v1::InspectContainerResponse* response) {
  auto id = Resolve(request->id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  auto info = ctx_->containers->Inspect(*id);
  if (!info.ok()) return ToGrpcStatus(info.status());
  auto record = Record(*id);
  v1::Container* c = response->mutable_container();
  if (record.ok()) *c = *record;
  c->set_id(info->id);
  c->set_name(info->name);
  c->set_image_id(info->image);
  FillState(*info, c->mutable_state());
  if (info->state != ContainerState::kRunning) c->clear_rootfs_path();
  return grpc::Status::OK;
}

namespace {

void FillWait(const ContainerInfo& c, v1::WaitContainerResponse* response) {
  response->set_exit_code(c.state == ContainerState::kCreated ? 0 : c.exit.ExitCode());
  response->set_error(c.error);
  ToTimestamp(c.finished_at, response->mutable_finished_at());
  response->set_oom_killed(c.exit.oom_killed);
}

}  // namespace

grpc::Status ContainerServiceImpl::WaitNextExit(grpc::ServerContext* context, const std::string& id,
                                                v1::WaitContainerResponse* response) {
  while (!context->IsCancelled()) {
    auto exit = ctx_->containers->Wait(id, absl::Milliseconds(500));
    if (absl::IsDeadlineExceeded(exit.status())) continue;
    if (absl::IsFailedPrecondition(exit.status())) {
      // Never started: a created container that is started later is waited
      // for as well.
      absl::SleepFor(absl::Milliseconds(100));
      continue;
    }
    if (!exit.ok()) return ToGrpcStatus(exit.status());
    auto after = ctx_->containers->Inspect(id);
    if (after.ok()) FillWait(*after, response);
    response->set_exit_code(exit->ExitCode());
    response->set_oom_killed(exit->oom_killed);
    return grpc::Status::OK;
  }
  return grpc::Status(grpc::StatusCode::CANCELLED, "wait cancelled");
}

grpc::Status ContainerServiceImpl::WaitContainer(grpc::ServerContext* context,
                                                 const v1::WaitContainerRequest* request,
                                                 v1::WaitContainerResponse* response) {
  auto id = Resolve(request->id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  auto info = ctx_->containers->Inspect(*id);
  if (!info.ok()) return ToGrpcStatus(info.status());
  const v1::WaitCondition cond = request->condition();
  auto fill = [&](const ContainerInfo& c) { FillWait(c, response); };
  if ((cond == v1::WAIT_CONDITION_UNSPECIFIED || cond == v1::WAIT_CONDITION_NOT_RUNNING) &&
      (info->state == ContainerState::kCreated || info->state == ContainerState::kExited)) {
    fill(*info);
    return grpc::Status::OK;
  }
  if (cond == v1::WAIT_CONDITION_REMOVED) {
    // Removed by RemoveContainer or, with auto_remove, after its exit: the
    // answer carries the last state seen before the removal.
    while (!context->IsCancelled()) {
      auto now = ctx_->containers->Inspect(*id);
      if (absl::IsNotFound(now.status())) return grpc::Status::OK;
      if (now.ok()) fill(*now);
      if (now.ok() &&
          (now->state == ContainerState::kRunning || now->state == ContainerState::kRestarting)) {
        (void)ctx_->containers->Wait(*id, absl::Milliseconds(500));  // then its exit is filled
        continue;
      }
      absl::Status w = ctx_->containers->WaitRemoved(*id, absl::Now() + absl::Milliseconds(500));
      if (w.ok()) return grpc::Status::OK;
    }
    return grpc::Status(grpc::StatusCode::CANCELLED, "wait cancelled");
  }
  return WaitNextExit(context, *id, response);
}

grpc::Status ContainerServiceImpl::ContainerLogs(
    grpc::ServerContext* context, const v1::ContainerLogsRequest* request,
    grpc::ServerWriter<v1::ContainerLogsResponse>* writer) {
  auto id = Resolve(request->id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  if (request->has_tail() && request->tail() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "negative tail");
  }
  if (request->has_since() && request->has_until() &&
      FromTimestamp(request->until()) < FromTimestamp(request->since())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "until is before since");
  }
  LogsOptions opts;
  opts.follow = request->follow();
  opts.tail = request->has_tail() ? request->tail() : -1;
  if (request->has_since()) opts.since = FromTimestamp(request->since());
  const bool both = !request->stdout() && !request->stderr();
  opts.stdout = both || request->stdout();
  opts.stderr = both || request->stderr();
  const absl::Time until =
      request->has_until() ? FromTimestamp(request->until()) : absl::InfiniteFuture();
  bool past_until = false;
  bool client_gone = false;
  opts.cancelled = [&] { return context->IsCancelled() || past_until; };
  absl::Status s = ctx_->containers->Logs(*id, opts, [&](const shim::LogEntry& e) {
    if (e.time >= until) {
      past_until = true;
      return false;
    }
    v1::ContainerLogsResponse r;
    v1::LogEntry* out = r.add_entries();
    out->set_stream(e.stream == "stderr" ? common::v1::OUTPUT_STREAM_STDERR
                                         : common::v1::OUTPUT_STREAM_STDOUT);
    if (request->timestamps()) ToTimestamp(e.time, out->mutable_time());
    out->set_data(e.data);
    out->set_partial(e.partial);
    client_gone = !writer->Write(r);
    return !client_gone;
  });
  if (context->IsCancelled() || client_gone) return grpc::Status::OK;
  if (!s.ok()) return ToGrpcStatus(s);
  if (request->follow() && request->with_exit() && !past_until) {
    // The output ended because the container stopped; its exit may be
    // published (exit.json) a moment before the manager records it.
    v1::ContainerLogsResponse last;
    v1::WaitContainerResponse* exit = last.mutable_exit();
    auto info = ctx_->containers->Inspect(*id);
    if (!info.ok()) return ToGrpcStatus(info.status());
    if (info->state == ContainerState::kCreated || info->state == ContainerState::kExited) {
      FillWait(*info, exit);
    } else if (grpc::Status w = WaitNextExit(context, *id, exit); !w.ok()) {
      return w;
    }
    if (request->remove()) {
      absl::Status r = RemoveById(*id, /*force=*/false);
      if (!r.ok()) return ToGrpcStatus(r);
    }
    writer->Write(last);
  }
  return grpc::Status::OK;
}

grpc::Status ContainerServiceImpl::ResizeTty(grpc::ServerContext*,
                                             const v1::ResizeTtyRequest* request,
                                             v1::ResizeTtyResponse*) {
  if (request->size().width() == 0 || request->size().height() == 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "zero terminal width or height");
  }
  auto id = Resolve(request->container_id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  if (!request->exec_id().empty()) {
    std::lock_guard<std::mutex> lock(execs_mu_);
    auto it = execs_.find(request->exec_id());
    if (it == execs_.end() || it->second.container_id != *id) {
      return ToGrpcStatus(absl::NotFoundError(absl::StrCat(
          "no exec ", request->exec_id(), " running in container ", request->container_id())));
    }
    if (!it->second.tty) {
      return ToGrpcStatus(
          absl::FailedPreconditionError(absl::StrCat("exec ", request->exec_id(), " has no tty")));
    }
    return ToGrpcStatus(it->second.process->Resize(ClampTty(request->size().height()),
                                                   ClampTty(request->size().width())));
  }
  return ToGrpcStatus(ctx_->containers->Resize(*id, static_cast<uint16_t>(request->size().height()),
                                               static_cast<uint16_t>(request->size().width())));
}

grpc::Status ContainerServiceImpl::CommitContainer(grpc::ServerContext*,
                                                   const v1::CommitContainerRequest* request,
                                                   v1::CommitContainerResponse* response) {
  auto id = Resolve(request->container_id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  auto record = Record(*id);
  if (!record.ok()) return ToGrpcStatus(record.status());
  oci::ContainerConfig probe;
  std::vector<std::string> changes(request->changes().begin(), request->changes().end());
  absl::Status s = ApplyChanges(changes, &probe);
  if (!s.ok()) return ToGrpcStatus(s);
  std::string name;
  if (!request->reference().empty()) {
    auto n = ctx_->images->NormalizeName(request->reference());
    if (!n.ok()) return ToGrpcStatus(n.status());
    name = *n;
  }
  auto upper = ctx_->images->snapshotter().UpperDir(RootfsKey(*record));
  if (!upper.ok()) return ToGrpcStatus(upper.status());
  // The container is not paused (no freezer support yet): a file written
  // during the commit may be caught half-way.
  auto ref = RandomHex(8);
  if (!ref.ok()) return ToGrpcStatus(ref.status());
  auto writer = ctx_->images->content().OpenWriter(absl::StrCat("commit-", *ref));
  if (!writer.ok()) return ToGrpcStatus(writer.status());
  auto layer = archive::CreateLayerFromOverlayUpper(
      *upper, [&](absl::string_view chunk) { return (*writer)->Write(chunk); });
  if (!layer.ok()) {
    (void)(*writer)->Abort();
    return ToGrpcStatus(Annotate(layer.status(), absl::StrCat("commit container ", *id)));
  }
  auto committed = (*writer)->Commit(layer->size, layer->digest);
  if (!committed.ok()) return ToGrpcStatus(committed.status());
  image::NewImage req;
  req.base = record->image_id();
  req.layers.push_back(*layer);
  oci::History h;
  h.created_by = absl::StrCat("pier commit ", id->substr(0, 12));
  h.author = request->author();
  h.comment = request->message();
  req.history.push_back(h);
  req.name = name;
  const std::string author = request->author();
  req.edit_config = [&changes, author](oci::ImageConfig* config) {
    (void)ApplyChanges(changes, &config->config);
    if (!author.empty()) config->author = author;
  };
  auto img = ctx_->images->CreateImage(req);
  if (!img.ok()) return ToGrpcStatus(img.status());
  response->set_image_id(img->id.str());
  response->set_reference(name);
  PIER_LOG(INFO) << "committed container " << *id << " as " << img->id.str();
  return grpc::Status::OK;
}

grpc::Status ContainerServiceImpl::ExportContainer(
    grpc::ServerContext* context, const v1::ExportContainerRequest* request,
    grpc::ServerWriter<v1::ExportContainerResponse>* writer) {
  auto id = Resolve(request->id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  auto record = Record(*id);
  if (!record.ok()) return ToGrpcStatus(record.status());
  const std::string key = RootfsKey(*record);
  auto upper = ctx_->images->snapshotter().UpperDir(key);
  if (!upper.ok()) return ToGrpcStatus(upper.status());
  auto mounts = ctx_->images->snapshotter().Mounts(key);
  if (!mounts.ok()) return ToGrpcStatus(mounts.status());
  std::string lower;
  for (const exec::Mount& m : *mounts) {
    for (const std::string& o : m.options) {
      if (absl::StartsWith(o, "lowerdir=")) lower = o.substr(9);
    }
  }
  if (lower.empty()) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "snapshot mount has no lowerdir");
  }
  // A read-only overlay of the upper directory over the image's layers
  // (no upperdir: overlayfs then needs no work dir and writes nothing).
  auto tmp = RandomHex(8);
  if (!tmp.ok()) return ToGrpcStatus(tmp.status());
  const std::string dir = JoinPath(ctx_->root, "tmp/export-" + *tmp);
  absl::Status s = MakeDirs(dir, 0700);
  if (!s.ok()) return ToGrpcStatus(s);
  const std::string data = absl::StrCat("lowerdir=", *upper, ":", lower, ",index=off");
  if (::mount("overlay", dir.c_str(), "overlay", MS_RDONLY, data.c_str()) != 0) {
    s = ErrnoStatus(errno, absl::StrCat("mount overlay on ", dir));
    (void)::rmdir(dir.c_str());
    return ToGrpcStatus(s);
  }
  std::string pending;
  auto flush = [&]() -> absl::Status {
    v1::ExportContainerResponse r;
    r.set_data(std::move(pending));
    pending.clear();
    if (!writer->Write(r) || context->IsCancelled()) {
      return absl::CancelledError("client went away during export");
    }
    return absl::OkStatus();
  };
  archive::CreateOptions copts;
  copts.compression = archive::Compression::kNone;
  auto written = archive::CreateLayerFromDir(
      dir,
      [&](absl::string_view chunk) -> absl::Status {
        while (!chunk.empty()) {
          size_t n = std::min(chunk.size(), kChunk - pending.size());
          pending.append(chunk.data(), n);
          chunk.remove_prefix(n);
          if (pending.size() == kChunk) RETURN_IF_ERROR(flush());
        }
        return absl::OkStatus();
      },
      copts);
  s = written.status();
  if (s.ok() && !pending.empty()) s = flush();
  if (::umount2(dir.c_str(), MNT_DETACH) != 0) {
    PIER_LOG(WARNING) << "unmount " << dir << ": " << ErrnoStatus(errno, "umount");
  }
  (void)::rmdir(dir.c_str());
  return ToGrpcStatus(s);
}

grpc::Status ContainerServiceImpl::PruneContainers(grpc::ServerContext*,
                                                   const v1::PruneContainersRequest* request,
                                                   v1::PruneContainersResponse* response) {
  const v1::ContainerFilters& f = request->filters();
  for (const ContainerInfo& c : ctx_->containers->List()) {
    if (c.state == ContainerState::kRunning || c.state == ContainerState::kRestarting) continue;
    if (!f.ids().empty() && std::none_of(f.ids().begin(), f.ids().end(), [&](const auto& p) {
          return absl::StartsWith(c.id, p);
        })) {
      continue;
    }
    if (!f.names().empty() && std::none_of(f.names().begin(), f.names().end(), [&](const auto& n) {
          return absl::StrContains(c.name, n);
        })) {
      continue;
    }
    absl::Status s = RemoveById(c.id, false);
    if (s.ok()) {
      response->add_deleted(c.id);
    } else {
      PIER_LOG(WARNING) << "prune: container " << c.id << ": " << s;
    }
  }
  return grpc::Status::OK;
}

// --- SystemService.

namespace {
std::string Arch() {
  struct utsname u;
  if (::uname(&u) != 0) return "";
  std::string m = u.machine;
  if (m == "x86_64") return "amd64";
  if (m == "aarch64") return "arm64";
  return m;
}
std::string Kernel() {
  struct utsname u;
  return ::uname(&u) == 0 ? u.release : "";
}
}  // namespace

grpc::Status SystemServiceImpl::Version(grpc::ServerContext*, const v1::VersionRequest*,
                                        v1::VersionResponse* response) {
  response->set_version("0.1.0");
  response->set_api_version("pier.runtime.v1");
  response->set_os("linux");
  response->set_architecture(Arch());
  response->set_kernel_version(Kernel());
  return grpc::Status::OK;
}

grpc::Status SystemServiceImpl::Info(grpc::ServerContext*, const v1::InfoRequest*,
                                     v1::InfoResponse* response) {
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  response->set_hostname(host);
  int running = 0, stopped = 0, total = 0;
  for (const ContainerInfo& c : ctx_->containers->List()) {
    ++total;
    if (c.state == ContainerState::kRunning || c.state == ContainerState::kRestarting) {
      ++running;
    } else {
      ++stopped;
    }
  }
  response->set_containers(total);
  response->set_containers_running(running);
  response->set_containers_stopped(stopped);
  auto images = ctx_->images->List();
  if (images.ok()) {
    std::vector<std::string> ids;
    for (const auto& i : *images) ids.push_back(i.id.str());
    std::sort(ids.begin(), ids.end());
    response->set_images(static_cast<int32_t>(std::unique(ids.begin(), ids.end()) - ids.begin()));
  }
  response->set_root_dir(ctx_->root);
  response->set_storage_driver("overlayfs");
  struct stat st;
  response->set_cgroup_version(::stat("/sys/fs/cgroup/cgroup.controllers", &st) == 0 ? 2 : 1);
  response->set_cgroup_driver("cgroupfs");
  response->set_executor("native");
  response->set_kernel_version(Kernel());
  std::ifstream os("/etc/os-release");
  std::string line;
  while (std::getline(os, line)) {
    if (absl::StartsWith(line, "PRETTY_NAME=")) {
      std::string v = line.substr(12);
      if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
      response->set_operating_system(v);
    }
  }
  response->mutable_platform()->set_os("linux");
  response->mutable_platform()->set_architecture(Arch());
  response->set_ncpu(static_cast<int32_t>(std::thread::hardware_concurrency()));
  struct sysinfo si;
  if (::sysinfo(&si) == 0) {
    response->set_mem_total_bytes(static_cast<int64_t>(si.totalram) * si.mem_unit);
  }
  response->add_security_options("seccomp");
  response->add_security_options("no-new-privileges");
  return grpc::Status::OK;
}

grpc::Status ContainerServiceImpl::Exec(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::ExecResponse, v1::ExecRequest>* stream) {
  v1::ExecRequest first;
  if (!stream->Read(&first) || !first.has_spec()) {
    return rpc::ToGrpcStatus(absl::InvalidArgumentError("the first Exec message must be the spec"));
  }
  const v1::ExecSpec& spec = first.spec();
  if (spec.cmd().empty()) {
    return rpc::ToGrpcStatus(absl::InvalidArgumentError("exec needs a command"));
  }
  if (spec.tty() && spec.has_tty_size() &&
      (spec.tty_size().width() == 0 || spec.tty_size().height() == 0)) {
    return rpc::ToGrpcStatus(absl::InvalidArgumentError("exec tty_size: zero width or height"));
  }
  if (spec.detach() && spec.attach_stdin()) {
    return rpc::ToGrpcStatus(
        absl::InvalidArgumentError("exec: detach and attach_stdin exclude each other"));
  }
  absl::StatusOr<std::string> id = Resolve(spec.container_id());
  if (!id.ok()) return rpc::ToGrpcStatus(id.status());
  absl::StatusOr<ContainerInfo> info = ctx_->containers->Inspect(*id);
  if (!info.ok()) return rpc::ToGrpcStatus(info.status());

  exec::ProcessSpec p;
  p.args.assign(spec.cmd().begin(), spec.cmd().end());
  p.env = info->spec.process.env;
  for (const std::string& e : spec.env()) p.env.push_back(e);
  p.cwd = spec.working_dir().empty() ? info->spec.process.cwd : spec.working_dir();
  p.uid = info->spec.process.uid;
  p.gid = info->spec.process.gid;
  if (!spec.user().empty()) {
    std::pair<std::string, std::string> ug = absl::StrSplit(spec.user(), absl::MaxSplits(':', 1));
    if (!absl::SimpleAtoi(ug.first, &p.uid) ||
        (!ug.second.empty() && !absl::SimpleAtoi(ug.second, &p.gid))) {
      return rpc::ToGrpcStatus(absl::InvalidArgumentError(
          absl::StrCat("exec --user \"", spec.user(), "\": only numeric uid[:gid] for now")));
    }
  }
  // A privileged exec has every capability and no seccomp filter, also in
  // an unprivileged container.
  p.capabilities = spec.privileged() ? AllCapabilities() : info->spec.process.capabilities;
  const bool tty = spec.tty();
  if (tty) {
    p.tty = true;
    p.tty_rows = spec.has_tty_size() ? ClampTty(spec.tty_size().height()) : 24;
    p.tty_cols = spec.has_tty_size() ? ClampTty(spec.tty_size().width()) : 80;
  }

  // Without a tty: pipes (stdin only when attached; otherwise /dev/null;
  // all three /dev/null for a detached exec). With one, the executor makes
  // the pty and `stdio` is ignored.
  UniqueFd in_r, in_w, out_r, out_w, err_r, err_w;
  if (!tty && !spec.detach()) {
    int in[2] = {-1, -1}, out[2], err[2];
    if ((spec.attach_stdin() && ::pipe2(in, O_CLOEXEC) != 0) || ::pipe2(out, O_CLOEXEC) != 0 ||
        ::pipe2(err, O_CLOEXEC) != 0) {
      return rpc::ToGrpcStatus(ErrnoStatus(errno, "exec: pipe"));
    }
    in_r.Reset(in[0]);
    in_w.Reset(in[1]);
    out_r.Reset(out[0]);
    out_w.Reset(out[1]);
    err_r.Reset(err[0]);
    err_w.Reset(err[1]);
  }
  exec::Stdio stdio{in_r.get(), out_w.get(), err_w.get()};
  absl::StatusOr<std::unique_ptr<exec::Process>> proc =
      ctx_->containers->Exec(*id, p, stdio, spec.privileged());
  in_r.Reset();
  out_w.Reset();
  err_w.Reset();
  if (!proc.ok()) return rpc::ToGrpcStatus(proc.status());
  exec::Process* process = proc->get();
  absl::StatusOr<std::string> exec_id = RandomHex(16);
  if (!exec_id.ok()) {
    (void)process->Signal(SIGKILL);
    (void)process->Wait();
    return rpc::ToGrpcStatus(exec_id.status());
  }
  // The pty master, non-blocking: output is polled and stdin waits for room.
  const int ptm = tty ? process->ptm() : -1;
  if (tty) {
    absl::Status nb = SetNonBlocking(ptm);
    if (!nb.ok()) {
      (void)process->Signal(SIGKILL);
      (void)process->Wait();
      return rpc::ToGrpcStatus(nb);
    }
  }
  {
    std::lock_guard<std::mutex> lock(execs_mu_);
    execs_[*exec_id] = ExecEntry{*id, process, tty};
  }
  {
    v1::ExecResponse started;
    started.mutable_started()->set_exec_id(*exec_id);
    started.mutable_started()->set_pid(process->pid());
    stream->Write(started);
  }
  if (spec.detach()) {
    // The process runs on without the call: a thread of its own reads and
    // drops what it writes to its terminal (so it never blocks on a full
    // one) and reaps it. It owns the process and needs nothing of this
    // service.
    {
      std::lock_guard<std::mutex> lock(execs_mu_);
      execs_.erase(*exec_id);
    }
    std::thread([owned = *std::move(proc), tty] {
      if (tty) {
        std::string sink(64 << 10, '\0');
        pollfd fds[2] = {{owned->ptm(), POLLIN, 0}, {owned->pidfd(), POLLIN, 0}};
        bool exited = false;
        for (;;) {
          int rc = ::poll(fds, exited ? 1 : 2, exited ? 250 : -1);
          if (rc < 0 && errno != EINTR) break;
          if (exited && rc == 0) break;
          if (!exited && (fds[1].revents & POLLIN)) exited = true;
          if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = ::read(owned->ptm(), sink.data(), sink.size());
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;
          }
        }
      }
      (void)owned->Wait();
    }).detach();
    return grpc::Status::OK;
  }
  // Client messages (stdin, resizes, close, signals) on their own thread.
  std::atomic<bool> done{false};
  std::mutex client_mu;
  std::condition_variable client_cv;
  bool client_done = false;  // the client half-closed (guarded by client_mu)
  std::mutex stdin_mu;
  int stdin_fd = tty ? (spec.attach_stdin() ? ptm : -1) : in_w.Release();
  if (stdin_fd >= 0 && !tty) (void)SetNonBlocking(stdin_fd);
  std::thread reader([&] {
    v1::ExecRequest req;
    while (stream->Read(&req)) {
      std::lock_guard<std::mutex> lock(stdin_mu);
      switch (req.request_case()) {
        case v1::ExecRequest::kStdin:
          if (stdin_fd >= 0) WriteNonBlocking(stdin_fd, req.stdin(), done);
          break;
        case v1::ExecRequest::kCloseStdin:
          if (stdin_fd < 0) break;
          if (tty) {
            // A pty cannot be half-closed: send the end-of-file character,
            // as typing Ctrl-D would.
            WriteNonBlocking(stdin_fd, "\x04", done);
          } else {
            ::close(stdin_fd);
          }
          stdin_fd = -1;
          break;
        case v1::ExecRequest::kResize:
          if (tty && req.resize().width() > 0 && req.resize().height() > 0) {
            (void)process->Resize(ClampTty(req.resize().height()), ClampTty(req.resize().width()));
          }
          break;
        case v1::ExecRequest::kSignal: {
          absl::StatusOr<int> sig = ParseSignal(req.signal());
          if (sig.ok()) (void)process->Signal(*sig);
          break;
        }
        default:
          break;
      }
    }
    std::lock_guard<std::mutex> lock(stdin_mu);
    if (stdin_fd >= 0 && !tty) ::close(stdin_fd);
    stdin_fd = -1;
    std::lock_guard<std::mutex> client_lock(client_mu);
    client_done = true;
    client_cv.notify_all();
  });
  auto send_output = [&](bool is_stderr, const char* data, size_t n) {
    v1::ExecResponse r;
    r.mutable_output()->set_stream(is_stderr ? common::v1::OUTPUT_STREAM_STDERR
                                             : common::v1::OUTPUT_STREAM_STDOUT);
    r.mutable_output()->set_data(data, n);
    stream->Write(r);
  };
  std::string buf(64 << 10, '\0');
  if (tty) {
    // Output until the pty's slave side is closed by everyone (EIO), or,
    // once the process has exited, until no more output comes (a
    // background child may keep the terminal open).
    pollfd fds[2] = {{ptm, POLLIN, 0}, {process->pidfd(), POLLIN, 0}};
    bool exited = false;
    while (!context->IsCancelled()) {
      int rc = ::poll(fds, exited ? 1 : 2, exited ? 250 : 1000);
      if (rc < 0 && errno != EINTR) break;
      if (exited && rc == 0) break;
      if (!exited && (fds[1].revents & POLLIN)) exited = true;
      if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t n = ::read(ptm, buf.data(), buf.size());
        if (n > 0) {
          send_output(false, buf.data(), static_cast<size_t>(n));
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          break;  // EIO: no process has the terminal open any more
        }
      }
    }
  } else {
    // Output until both pipes close.
    pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0 && !context->IsCancelled()) {
      if (::poll(fds, 2, 1000) < 0 && errno != EINTR) break;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = ::read(fds[i].fd, buf.data(), buf.size());
        if (n <= 0) {
          fds[i].fd = -1;
          --open_fds;
          continue;
        }
        send_output(i == 1, buf.data(), static_cast<size_t>(n));
      }
    }
  }
  // Cancelling the RPC kills the process (the API's contract).
  if (context->IsCancelled() && !process->exit_status()) (void)process->Signal(SIGKILL);
  absl::StatusOr<exec::ExitStatus> st = process->Wait();
  {
    std::lock_guard<std::mutex> lock(execs_mu_);
    execs_.erase(*exec_id);
  }
  v1::ExecResponse exit;
  if (st.ok()) {
    exit.mutable_exit()->set_exit_code(st->ExitCode());
    exit.mutable_exit()->set_oom_killed(st->oom_killed);
  } else {
    exit.mutable_exit()->set_exit_code(-1);
    exit.mutable_exit()->set_error(std::string(st.status().message()));
  }
  ToTimestamp(absl::Now(), exit.mutable_exit()->mutable_finished_at());
  stream->Write(exit);
  // The exit is the last message: a client half-closes (or cancels) once
  // it has it, and one that has already half-closed gets OK. One that keeps
  // its side open beyond a grace period has the call cancelled, which ends
  // the reader thread's Read.
  done = true;
  {
    std::unique_lock<std::mutex> client_lock(client_mu);
    if (!client_cv.wait_for(client_lock, std::chrono::seconds(2), [&] { return client_done; })) {
      context->TryCancel();
    }
  }
  reader.join();
  return grpc::Status::OK;
}

grpc::Status ContainerServiceImpl::Attach(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::AttachResponse, v1::AttachRequest>* stream) {
  v1::AttachRequest first;
  if (!stream->Read(&first) || !first.has_spec()) {
    return ToGrpcStatus(absl::InvalidArgumentError("the first Attach message must be the spec"));
  }
  const v1::AttachSpec spec = first.spec();
  absl::StatusOr<std::string> id = Resolve(spec.container_id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  absl::StatusOr<ContainerInfo> info = ctx_->containers->Inspect(*id);
  if (!info.ok()) return ToGrpcStatus(info.status());
  const bool tty = info->spec.process.tty;
  if (spec.stdin() && !tty && !info->open_stdin) {
    return ToGrpcStatus(absl::FailedPreconditionError(absl::StrCat(
        "container ", *id, "'s stdin is not open (create it with open_stdin or a tty)")));
  }
  absl::StatusOr<std::string> detach_keys = ParseDetachKeys(spec.detach_keys(), tty);
  if (!detach_keys.ok()) return ToGrpcStatus(detach_keys.status());

  bool attached_sent = false;
  auto send_attached = [&] {
    if (attached_sent) return;
    attached_sent = true;
    v1::AttachResponse r;
    r.mutable_attached()->set_tty(tty);
    stream->Write(r);
  };
  auto send_output = [&](bool is_stderr, absl::string_view data) {
    v1::AttachResponse r;
    r.mutable_output()->set_stream(is_stderr ? common::v1::OUTPUT_STREAM_STDERR
                                             : common::v1::OUTPUT_STREAM_STDOUT);
    r.mutable_output()->set_data(data.data(), data.size());
    return stream->Write(r);
  };
  // The log entries in [since, before).
  auto replay = [&](absl::Time since, absl::Time before) {
    LogsOptions lo;
    lo.since = since;
    (void)ctx_->containers->Logs(*id, lo, [&](const shim::LogEntry& e) {
      if (e.time >= before) return false;
      return send_output(e.stream == "stderr", e.data);
    });
  };
  auto send_exit = [&](const exec::ExitStatus& st, absl::Time finished_at) {
    v1::AttachResponse r;
    r.mutable_exit()->set_exit_code(st.ExitCode());
    r.mutable_exit()->set_oom_killed(st.oom_killed);
    ToTimestamp(finished_at, r.mutable_exit()->mutable_finished_at());
    stream->Write(r);
  };

  std::optional<absl::Time> replay_since;
  if (spec.logs()) replay_since = absl::InfinitePast();
  if (info->state == ContainerState::kCreated || info->state == ContainerState::kRestarting) {
    // Tell the client it may start the container now, then wait for it.
    send_attached();
    while (info->state == ContainerState::kCreated || info->state == ContainerState::kRestarting) {
      if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "detached");
      absl::SleepFor(absl::Milliseconds(5));
      info = ctx_->containers->Inspect(*id);
      if (!info.ok()) return ToGrpcStatus(info.status());
    }
    // What was written between the start and the attachment comes from
    // the log.
    if (!replay_since) replay_since = info->started_at;
  }
  if (info->state == ContainerState::kExited) {
    send_attached();
    replay(replay_since.value_or(info->started_at), absl::InfiniteFuture());
    send_exit(info->exit, info->finished_at);
    return grpc::Status::OK;
  }

  if (spec.since_start() && !replay_since) replay_since = info->started_at;
  const absl::Time t0 = absl::Now();
  absl::StatusOr<std::unique_ptr<shim::AttachStream>> as =
      ctx_->containers->Attach(*id, spec.stdin());
  if (!as.ok()) {
    // It may have exited in the meantime (its shim gone before the
    // manager recorded the exit): wait for the record.
    absl::StatusOr<ContainerInfo> now = ctx_->containers->Inspect(*id);
    if (absl::IsFailedPrecondition(as.status()) && now.ok() &&
        now->state == ContainerState::kRunning) {
      (void)ctx_->containers->Wait(*id, absl::Seconds(10));
      now = ctx_->containers->Inspect(*id);
    }
    if (absl::IsFailedPrecondition(as.status()) && now.ok() &&
        now->state == ContainerState::kExited) {
      send_attached();
      replay(replay_since.value_or(now->started_at), absl::InfiniteFuture());
      send_exit(now->exit, now->finished_at);
      return grpc::Status::OK;
    }
    return ToGrpcStatus(as.status());
  }
  send_attached();
  // Replay what the shim logged before it began forwarding to us.
  if (replay_since) {
    replay(*replay_since, (*as)->attached_at() != absl::InfinitePast() ? (*as)->attached_at() : t0);
  }

  shim::AttachStream* a = as->get();
  std::mutex write_mu;
  // Set by the reader when the detach keys were typed; the output loop then
  // ends the call with detached.
  std::atomic<bool> detach{false};
  std::thread reader([&] {
    DetachMatcher matcher(spec.stdin() ? *detach_keys : std::string());
    v1::AttachRequest req;
    while (stream->Read(&req)) {
      std::lock_guard<std::mutex> lock(write_mu);
      switch (req.request_case()) {
        case v1::AttachRequest::kStdin:
          if (spec.stdin()) {
            const std::string data = matcher.Feed(req.stdin());
            if (!data.empty()) (void)a->WriteStdin(data);
            if (matcher.detached()) {
              detach = true;
              return;
            }
          }
          break;
        case v1::AttachRequest::kResize:
          if (tty && req.resize().width() > 0 && req.resize().height() > 0) {
            (void)a->Resize(static_cast<uint16_t>(std::min<uint32_t>(req.resize().height(), 65535)),
                            static_cast<uint16_t>(std::min<uint32_t>(req.resize().width(), 65535)));
          }
          break;
        case v1::AttachRequest::kCloseStdin:
          if (spec.stdin()) {
            const std::string held = matcher.Held();
            if (!held.empty()) (void)a->WriteStdin(held);
            (void)a->CloseStdin();
          }
          break;
        default:
          break;
      }
    }
  });

  std::optional<exec::ExitStatus> exit;
  absl::Time finished_at = absl::Now();
  absl::Status error;
  while (!context->IsCancelled() && !detach) {
    absl::StatusOr<shim::AttachEvent> ev = a->Next(absl::Milliseconds(100));
    if (absl::IsDeadlineExceeded(ev.status())) continue;
    if (!ev.ok()) {
      error = ev.status();
      break;
    }
    if (ev->kind == shim::AttachEvent::Kind::kStdout ||
        ev->kind == shim::AttachEvent::Kind::kStderr) {
      if (!send_output(ev->kind == shim::AttachEvent::Kind::kStderr, ev->data)) break;
      continue;
    }
    if (ev->kind == shim::AttachEvent::Kind::kExit && ev->exit) {
      exit = ev->exit->status;
      finished_at = ev->exit->finished_at;
    }
    break;  // exit or EOF
  }
  if (detach) {
    // The container keeps running; the client is told and the call ends.
    v1::AttachResponse r;
    r.mutable_detached();
    stream->Write(r);
    reader.join();  // it stopped reading at the keys
    return grpc::Status::OK;
  }
  if (!exit && !context->IsCancelled()) {
    // The shim went away without telling us: ask the manager.
    absl::StatusOr<exec::ExitStatus> w = ctx_->containers->Wait(*id, absl::Seconds(5));
    if (w.ok()) {
      exit = *w;
      error = absl::OkStatus();
    }
  }
  if (exit) send_exit(*exit, finished_at);
  // The client may keep its side open (stdin); end the call so the reader
  // thread's Read returns.
  context->TryCancel();
  reader.join();
  if (!exit && !error.ok()) return ToGrpcStatus(error);
  return grpc::Status::OK;
}

namespace {

Event::Type FromEventType(v1::EventType t) {
  switch (t) {
    case v1::EVENT_TYPE_IMAGE:
      return Event::Type::kImage;
    case v1::EVENT_TYPE_VOLUME:
      return Event::Type::kVolume;
    case v1::EVENT_TYPE_NETWORK:
      return Event::Type::kNetwork;
    case v1::EVENT_TYPE_DAEMON:
      return Event::Type::kDaemon;
    default:
      return Event::Type::kContainer;
  }
}

v1::EventType ToEventType(Event::Type t) {
  switch (t) {
    case Event::Type::kContainer:
      return v1::EVENT_TYPE_CONTAINER;
    case Event::Type::kImage:
      return v1::EVENT_TYPE_IMAGE;
    case Event::Type::kVolume:
      return v1::EVENT_TYPE_VOLUME;
    case Event::Type::kNetwork:
      return v1::EVENT_TYPE_NETWORK;
    case Event::Type::kDaemon:
      return v1::EVENT_TYPE_DAEMON;
  }
  return v1::EVENT_TYPE_UNSPECIFIED;
}

}  // namespace

grpc::Status SystemServiceImpl::Events(grpc::ServerContext* context,
                                       const v1::EventsRequest* request,
                                       grpc::ServerWriter<v1::EventsResponse>* writer) {
  if (ctx_->events == nullptr) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "this agent publishes no events");
  }
  const absl::Time since =
      request->has_since() ? FromTimestamp(request->since()) : absl::InfiniteFuture();
  const absl::Time until =
      request->has_until() ? FromTimestamp(request->until()) : absl::InfiniteFuture();
  if (request->has_since() && request->has_until() && until < since) {
    return ToGrpcStatus(absl::InvalidArgumentError("events: until is before since"));
  }
  EventFilter filter;
  bool unspecified_type = false;
  for (int t : request->types()) {
    if (t == v1::EVENT_TYPE_UNSPECIFIED) {
      unspecified_type = true;  // matches nothing
      continue;
    }
    if (!v1::EventType_IsValid(t)) {
      return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat("events: unknown type ", t)));
    }
    filter.types.push_back(FromEventType(static_cast<v1::EventType>(t)));
  }
  if (unspecified_type && filter.types.empty()) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        "events: the type filter only has EVENT_TYPE_UNSPECIFIED, which matches nothing"));
  }
  filter.ids.assign(request->ids().begin(), request->ids().end());
  filter.actions.assign(request->actions().begin(), request->actions().end());
  filter.labels.assign(request->labels().begin(), request->labels().end());
  absl::Status valid = filter.Validate();
  if (!valid.ok()) return ToGrpcStatus(valid);

  // Replay from `since`; a `since` in the future waits for it.
  std::unique_ptr<EventBus::Subscription> sub =
      ctx_->events->Subscribe(request->has_since() ? since : absl::InfiniteFuture());
  while (!context->IsCancelled()) {
    // Queued (and replayed) events come at once; waits are bounded so that
    // cancellation and `until` are noticed.
    absl::Duration wait = absl::Milliseconds(500);
    if (until != absl::InfiniteFuture()) {
      wait = std::clamp(until - absl::Now(), absl::ZeroDuration(), wait);
    }
    absl::StatusOr<Event> e = sub->Next(wait);
    if (absl::IsDeadlineExceeded(e.status())) {
      if (absl::Now() >= until) return grpc::Status::OK;
      continue;
    }
    if (!e.ok()) return ToGrpcStatus(e.status());  // dropped for falling behind
    if (e->time > until) return grpc::Status::OK;
    if (request->has_since() && e->time < since) continue;
    if (!filter.Matches(*e)) continue;
    v1::EventsResponse r;
    v1::Event* out = r.mutable_event();
    out->set_type(ToEventType(e->type));
    out->set_id(e->id);
    out->set_name(e->name);
    out->set_action(e->action);
    out->mutable_attributes()->insert(e->attributes.begin(), e->attributes.end());
    ToTimestamp(e->time, out->mutable_time());
    if (!writer->Write(r)) return grpc::Status::OK;  // the client went away
  }
  return grpc::Status::OK;
}

}  // namespace pier::runtime
