#include "cli/container_flags.h"

#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/common/status.h"

namespace pier::cli {

absl::StatusOr<int64_t> ParseBytes(const std::string& text) {
  std::string t = absl::AsciiStrToLower(text);
  int64_t mult = 1;
  if (!t.empty() && t.back() == 'b') t.pop_back();
  if (!t.empty()) {
    switch (t.back()) {
      case 'k':
        mult = 1LL << 10;
        t.pop_back();
        break;
      case 'm':
        mult = 1LL << 20;
        t.pop_back();
        break;
      case 'g':
        mult = 1LL << 30;
        t.pop_back();
        break;
      default:
        break;
    }
  }
  int64_t v = 0;
  if (!absl::SimpleAtoi(t, &v) || v < 0) {
    return absl::InvalidArgumentError(absl::StrCat("invalid size \"", text, "\" (e.g. 512m, 1g)"));
  }
  return v * mult;
}

void ContainerFlags::Register(FlagSet& f, bool with_run_flags) {
  f.String("platform", "", &platform,
           "platform of the image to run and to pull, e.g. linux/arm64 (default: the node's)");
  f.String("pull", "", &pull,
           "pull the image before creating: missing (default, when not on the node), always, "
           "never");
  f.String("name", "", &name, "container name, unique on the node");
  f.StringList("env", "e", &env, "set an environment variable (KEY=value, or KEY to copy ours)");
  f.StringList("env-file", "", &env_files, "read KEY=value lines from a file");
  f.StringList("volume", "v", &volumes, "bind mount HOST:CONTAINER[:ro] or a named volume");
  f.StringList("tmpfs", "", &tmpfs, "mount a tmpfs at a path");
  f.String("workdir", "w", &workdir, "working directory inside the container");
  f.String("user", "u", &user, "user[:group] to run as");
  f.String("entrypoint", "", &entrypoint, "override the image's ENTRYPOINT");
  f.Bool("tty", "t", &tty, "allocate a pseudo-terminal");
  f.Bool("interactive", "i", &interactive, "keep standard input open");
  f.String("hostname", "h", &hostname, "container host name");
  f.String("restart", "", &restart, "no|always|on-failure[:N]|unless-stopped");
  f.Bool("privileged", "", &privileged, "all capabilities, no seccomp, host devices");
  f.String("pid", "", &pid, "\"host\" or \"container:<name|id>\" to share that pid namespace");
  f.String("ipc", "", &ipc, "\"host\" or \"container:<name|id>\" to share that ipc namespace");
  f.String("network", "", &network, "none|host|bridge|container:<name|id> (--net is the same)");
  f.String("net", "", &network, "alias of --network");
  f.StringList("cap-add", "", &cap_add, "add a Linux capability");
  f.StringList("cap-drop", "", &cap_drop, "drop a Linux capability");
  f.Bool("read-only", "", &read_only, "mount the root filesystem read-only");
  f.String("memory", "m", &memory, "memory limit (e.g. 256m)");
  f.String("cpus", "", &cpus, "number of CPUs (e.g. 1.5)");
  f.Int("pids-limit", "", &pids_limit, "maximum number of processes");
  f.StringList("publish", "p", &publish, "publish [ip:]host:container[/udp]");
  f.Bool("publish-all", "P", &publish_all, "publish every EXPOSEd port on a free host port");
  f.StringList("label", "l", &labels, "set a label KEY=value");
  f.String("stop-signal", "", &stop_signal, "signal to stop the container (default SIGTERM)");
  f.Int("stop-timeout", "", &stop_timeout, "seconds before SIGKILL on stop");
  if (with_run_flags) {
    f.Bool("detach", "d", &detach, "run in the background and print the container id");
    f.String("detach-keys", "", &detach_keys,
             "key sequence that detaches from -it, e.g. ctrl-x,y (default ctrl-p,ctrl-q)");
    f.Bool("rm", "", &rm, "remove the container when it exits");
  }
}

absl::Status ContainerFlags::ToSpec(const std::vector<std::string>& pos,
                                    rt::ContainerSpec* spec) const {
  if (pos.empty()) return absl::InvalidArgumentError("an IMAGE is required");
  if (pull != "missing" && pull != "always" && pull != "never") {
    return absl::InvalidArgumentError(
        absl::StrCat("--pull=", pull, ": expected missing, always or never"));
  }
  spec->set_image(pos[0]);
  if (pos.size() > 1) {
    for (size_t i = 1; i < pos.size(); ++i) spec->mutable_cmd()->add_values(pos[i]);
  }
  if (entrypoint_set) {  // --entrypoint "" clears the image's entrypoint
    common::v1::StringList* ep = spec->mutable_entrypoint();
    if (!entrypoint.empty()) ep->add_values(entrypoint);
  }
  spec->set_name(name);
  for (const std::string& file : env_files) {
    std::ifstream in(file);
    if (!in) return absl::NotFoundError(absl::StrCat("--env-file ", file, ": cannot open"));
    std::string line;
    while (std::getline(in, line)) {
      absl::string_view l = absl::StripAsciiWhitespace(line);
      if (l.empty() || l[0] == '#') continue;
      spec->add_env(std::string(l));
    }
  }
  for (const std::string& e : env) {
    if (e.find('=') == std::string::npos) {
      const char* v = std::getenv(e.c_str());
      if (v != nullptr) spec->add_env(absl::StrCat(e, "=", v));
      continue;
    }
    spec->add_env(e);
  }
  for (const std::string& v : volumes) {
    std::vector<std::string> parts = absl::StrSplit(v, ':');
    if (parts.size() < 2 || parts.size() > 3 || parts[1].empty() || parts[1][0] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid --volume \"", v, "\": expected SOURCE:/container/path[:ro]"));
    }
    rt::Mount* m = spec->add_mounts();
    m->set_type(parts[0].rfind('/', 0) == 0 ? rt::Mount::TYPE_BIND : rt::Mount::TYPE_VOLUME);
    m->set_source(parts[0]);
    m->set_target(parts[1]);
    if (parts.size() == 3) {
      if (parts[2] != "ro" && parts[2] != "rw") {
        return absl::InvalidArgumentError(absl::StrCat("invalid --volume mode \"", parts[2], "\""));
      }
      m->set_read_only(parts[2] == "ro");
    }
  }
  for (const std::string& t : tmpfs) {
    rt::Mount* m = spec->add_mounts();
    m->set_type(rt::Mount::TYPE_TMPFS);
    m->set_target(t);
  }
  spec->set_working_dir(workdir);
  spec->set_user(user);
  spec->set_tty(tty);
  spec->set_open_stdin(interactive);
  spec->set_hostname(hostname);
  if (!restart.empty()) {
    std::pair<std::string, std::string> nr = absl::StrSplit(restart, absl::MaxSplits(':', 1));
    rt::RestartPolicy* p = spec->mutable_restart_policy();
    if (nr.first == "no") {
      p->set_name(rt::RestartPolicy::NAME_NO);
    } else if (nr.first == "always") {
      p->set_name(rt::RestartPolicy::NAME_ALWAYS);
    } else if (nr.first == "unless-stopped") {
      p->set_name(rt::RestartPolicy::NAME_UNLESS_STOPPED);
    } else if (nr.first == "on-failure") {
      p->set_name(rt::RestartPolicy::NAME_ON_FAILURE);
      int n = 0;
      if (!nr.second.empty() && (!absl::SimpleAtoi(nr.second, &n) || n < 0)) {
        return absl::InvalidArgumentError(absl::StrCat("invalid --restart \"", restart, "\""));
      }
      p->set_max_retries(n);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid --restart \"", restart, "\": use no, always, on-failure[:N] or unless-stopped"));
    }
    if (nr.first != "on-failure" && !nr.second.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("invalid --restart \"", restart, "\""));
    }
  }
  spec->set_privileged(privileged);
  if (!pid.empty() && pid != "host" && !absl::StartsWith(pid, "container:")) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid --pid \"", pid, "\": host or container:<name|id>"));
  }
  spec->set_pid_mode(pid);
  if (!ipc.empty() && ipc != "host" && ipc != "private" && !absl::StartsWith(ipc, "container:")) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid --ipc \"", ipc, "\": host, private or container:<name|id>"));
  }
  spec->set_ipc_mode(ipc);
  if (!platform.empty()) RETURN_IF_ERROR(ParsePlatform(platform, spec->mutable_platform()));
  spec->set_network_mode(network);
  for (const std::string& c : cap_add) spec->add_cap_add(c);
  for (const std::string& c : cap_drop) spec->add_cap_drop(c);
  spec->set_read_only_rootfs(read_only);
  if (!memory.empty()) {
    absl::StatusOr<int64_t> b = ParseBytes(memory);
    if (!b.ok()) return b.status();
    spec->mutable_resources()->set_memory_bytes(*b);
  }
  if (!cpus.empty()) {
    double c = 0;
    if (!absl::SimpleAtod(cpus, &c) || c <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("invalid --cpus \"", cpus, "\""));
    }
    spec->mutable_resources()->set_nano_cpus(static_cast<int64_t>(c * 1e9));
  }
  if (pids_limit > 0) spec->mutable_resources()->set_pids_limit(pids_limit);
  for (const std::string& p : publish) {
    // [ip:]host:container[/proto]
    std::string proto = "tcp";
    std::string rest = p;
    if (size_t slash = rest.find('/'); slash != std::string::npos) {
      proto = rest.substr(slash + 1);
      rest.resize(slash);
    }
    std::vector<std::string> parts = absl::StrSplit(rest, ':');
    uint32_t host = 0, ctr = 0;
    std::string ip;
    bool ok = true;
    if (parts.size() == 1) {
      ok = absl::SimpleAtoi(parts[0], &ctr);
    } else if (parts.size() == 2) {
      ok = absl::SimpleAtoi(parts[1], &ctr) &&
           (parts[0].empty() || absl::SimpleAtoi(parts[0], &host));
    } else if (parts.size() == 3) {
      ip = parts[0];
      ok = absl::SimpleAtoi(parts[2], &ctr) &&
           (parts[1].empty() || absl::SimpleAtoi(parts[1], &host));
    } else {
      ok = false;
    }
    if (!ok || ctr == 0 || ctr > 65535 || host > 65535 || (proto != "tcp" && proto != "udp")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid --publish \"", p, "\": expected [ip:]hostPort:containerPort[/udp]"));
    }
    rt::PortBinding* b = spec->add_ports();
    b->set_host_ip(ip);
    b->set_host_port(host);
    b->set_container_port(ctr);
    b->set_protocol(proto == "udp" ? rt::PROTOCOL_UDP : rt::PROTOCOL_TCP);
  }
  spec->set_publish_all(publish_all);
  for (const std::string& l : labels) {
    std::pair<std::string, std::string> kv = absl::StrSplit(l, absl::MaxSplits('=', 1));
    (*spec->mutable_labels())[kv.first] = kv.second;
  }
  spec->set_stop_signal(stop_signal);
  if (stop_timeout >= 0) spec->set_stop_timeout_seconds(static_cast<int32_t>(stop_timeout));
  // In the foreground `pier run --rm` removes the container itself after
  // waiting; only a detached one asks the runtime to.
  spec->set_auto_remove(rm && detach);
  return absl::OkStatus();
}

}  // namespace pier::cli
