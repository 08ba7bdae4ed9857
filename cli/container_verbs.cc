// Small container verbs that take container names or ids:
//   pier start (-a/-i attach as `pier attach` does), stop, kill, rm, wait
// and `pier logs`, `pier ps`.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/attach.h"
#include "cli/format.h"
#include "cli/logs_stream.h"
#include "cli/runtime_client.h"
#include "nlohmann/json.hpp"

namespace pier::cli {
namespace {

// Runs `fn` for each container argument; prints the argument on success
// (docker's habit); returns 1 if any failed.
template <typename Fn>
int ForEach(const std::vector<std::string>& ids, Fn fn, bool echo = true) {
  int rc = 0;
  for (const std::string& id : ids) {
    grpc::Status s = fn(id);
    if (!s.ok()) {
      rc = FailRpc(s);
    } else if (echo) {
      std::cout << id << "\n";
    }
  }
  return rc;
}

}  // namespace

int Start(const Globals& g, const std::vector<std::string>& args) {
  bool attach = false, interactive = false;
  std::string detach_keys;
  FlagSet flags("pier start", "[flags] CONTAINER [CONTAINER...]");
  flags.Bool("attach", "a", &attach, "attach output and wait for the exit (one container)");
  flags.Bool("interactive", "i", &interactive, "attach our standard input (one container)");
  flags.String("detach-keys", "", &detach_keys,
               "key sequence that detaches, e.g. ctrl-x,y (default ctrl-p,ctrl-q)");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.empty()) return Fail(absl::InvalidArgumentError("pier start needs a CONTAINER"), 2);
  auto stub = ContainerStub(g);
  if (!stub.ok()) return Fail(stub.status());
  auto start = [&](const std::string& id) {
    grpc::ClientContext ctx;
    rt::StartContainerRequest req;
    req.set_id(id);
    rt::StartContainerResponse resp;
    return (*stub)->StartContainer(&ctx, req, &resp);
  };
  if (!attach && !interactive) return ForEach(pos, start);
  if (pos.size() != 1) {
    return Fail(absl::InvalidArgumentError("pier start --attach/--interactive takes one CONTAINER"),
                2);
  }
  // Start, then attach replaying this run's output from its start, so
  // nothing it wrote before the attachment is lost.
  if (grpc::Status s = start(pos[0]); !s.ok()) return FailRpc(s);
  AttachOptions options;
  options.stdin = interactive;
  options.detach_keys = DetachKeys(g, detach_keys);
  options.since_start = true;
  AttachResult r = AttachSession(**stub, pos[0], options, nullptr);
  if (r.exit_code) {
    if (!r.error.empty()) std::cerr << "pier: " << r.error << "\n";
    return *r.exit_code;
  }
  if (r.detached) return 0;
  return FailRpc(r.status);
}

int Stop(const Globals& g, const std::vector<std::string>& args) {
  int64_t timeout = -1;
  FlagSet flags("pier stop", "[flags] CONTAINER [CONTAINER...]");
  flags.Int("time", "t", &timeout, "seconds to wait before SIGKILL (default: the container's)");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.empty()) return Fail(absl::InvalidArgumentError("pier stop needs a CONTAINER"), 2);
  auto stub = ContainerStub(g);
  if (!stub.ok()) return Fail(stub.status());
  return ForEach(pos, [&](const std::string& id) {
    grpc::ClientContext ctx;
    rt::StopContainerRequest req;
    req.set_id(id);
    if (timeout >= 0) req.set_timeout_seconds(static_cast<int32_t>(timeout));
    rt::StopContainerResponse resp;
    return (*stub)->StopContainer(&ctx, req, &resp);
  });
}

int Kill(const Globals& g, const std::vector<std::string>& args) {
  std::string signal = "SIGKILL";
  FlagSet flags("pier kill", "[flags] CONTAINER [CONTAINER...]");
  flags.String("signal", "s", &signal, "signal to send (default SIGKILL)");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.empty()) return Fail(absl::InvalidArgumentError("pier kill needs a CONTAINER"), 2);
  auto stub = ContainerStub(g);
  if (!stub.ok()) return Fail(stub.status());
  return ForEach(pos, [&](const std::string& id) {
    grpc::ClientContext ctx;
    rt::KillContainerRequest req;
    req.set_id(id);
    req.set_signal(signal);
    rt::KillContainerResponse resp;
    return (*stub)->KillContainer(&ctx, req, &resp);
  });
}

// `pier pause` / `pier unpause`: freeze or thaw every process of containers.
int PauseOrUnpause(const Globals& g, const std::vector<std::string>& args, bool pause) {
  const std::string verb = pause ? "pause" : "unpause";
  FlagSet flags("pier " + verb, "CONTAINER [CONTAINER...]");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.empty()) {
    return Fail(absl::InvalidArgumentError("pier " + verb + " needs a CONTAINER"), 2);
  }
  auto stub = ContainerStub(g);
  if (!stub.ok()) return Fail(stub.status());
  return ForEach(pos, [&](const std::string& id) {
    grpc::ClientContext ctx;
    if (pause) {
      rt::PauseContainerRequest req;
      req.set_id(id);
      rt::PauseContainerResponse resp;
      return (*stub)->PauseContainer(&ctx, req, &resp);
    }
    rt::UnpauseContainerRequest req;
    req.set_id(id);
    rt::UnpauseContainerResponse resp;
    return (*stub)->UnpauseContainer(&ctx, req, &resp);
  });
}

int Pause(const Globals& g, const std::vector<std::string>& args) {
  return PauseOrUnpause(g, args, true);
}

int Unpause(const Globals& g, const std::vector<std::string>& args) {
  return PauseOrUnpause(g, args, false);
}

int Rm(const Globals& g, const std::vector<std::string>& args) {
  bool force = false, volumes = false;
  FlagSet flags("pier rm", "[flags] CONTAINER [CONTAINER...]");
  flags.Bool("force", "f", &force, "kill a running container first");
  flags.Bool("volumes", "v", &volumes, "also remove its anonymous volumes");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.empty()) return Fail(absl::InvalidArgumentError("pier rm needs a CONTAINER"), 2);
  auto stub = ContainerStub(g);
  if (!stub.ok()) return Fail(stub.status());
  return ForEach(pos, [&](const std::string& id) {
    grpc::ClientContext ctx;
    rt::RemoveContainerRequest req;
    req.set_id(id);
    req.set_force(force);
    req.set_remove_volumes(volumes);
    rt::RemoveContainerResponse resp;
    return (*stub)->RemoveContainer(&ctx, req, &resp);
  });
}

int Wait(const Globals& g, const std::vector<std::string>& args) {
  FlagSet flags("pier wait", "CONTAINER [CONTAINER...]");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.empty()) return Fail(absl::InvalidArgumentError("pier wait needs a CONTAINER"), 2);
  auto stub = ContainerStub(g);
  if (!stub.ok()) return Fail(stub.status());
  return ForEach(
      pos,
      [&](const std::string& id) {
        grpc::ClientContext ctx;
        rt::WaitContainerRequest req;
        req.set_id(id);
        rt::WaitContainerResponse resp;
        grpc::Status s = (*stub)->WaitContainer(&ctx, req, &resp);
        if (s.ok()) std::cout << resp.exit_code() << "\n";
        return s;
      },
      /*echo=*/false);
}

int Logs(const Globals& g, const std::vector<std::string>& args) {
  LogsOptions o;
  std::string tail = "all";
  FlagSet flags("pier logs", "[flags] CONTAINER");
  flags.Bool("follow", "f", &o.follow, "keep streaming new output");
  flags.String("tail", "n", &tail, "number of lines from the end (default all)");
  flags.Bool("timestamps", "t", &o.timestamps, "show timestamps");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (pos.size() != 1) return Fail(absl::InvalidArgumentError("pier logs needs one CONTAINER"), 2);
  if (tail != "all") {
    o.tail = std::atoll(tail.c_str());
    if (o.tail < 0 || (o.tail == 0 && tail != "0")) {
      return Fail(absl::InvalidArgumentError("--tail takes a number or \"all\""), 2);
    }
  }
  auto stub = ContainerStub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::Status s = StreamLogs(**stub, pos[0], o);
  return s.ok() ? 0 : FailRpc(s);
}

int Ps(const Globals& g, const std::vector<std::string>& args) {
  bool all = false, quiet = false;
  std::string format_text;
  FlagSet flags("pier ps", "[flags]");
  flags.Bool("all", "a", &all, "show stopped containers too");
  flags.Bool("quiet", "q", &quiet, "print only ids");
  flags.String("format", "", &format_text, kFormatHelp);
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  int rc = 0;
  std::optional<Format> format = ParseFormatFlag("pier ps", format_text, &rc);
  if (!format) return rc;
  auto stub = ContainerStub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  rt::ListContainersRequest req;
  req.set_all(all);
  rt::ListContainersResponse resp;
  grpc::Status s = (*stub)->ListContainers(&ctx, req, &resp);
  if (!s.ok()) return FailRpc(s);
  // Published ports as docker prints them: 127.0.0.1:8080->80/tcp.
  auto ports = [](const rt::ContainerSummary& c) {
    std::vector<std::string> out;
    for (const rt::PortBinding& p : c.ports()) {
      std::string host = p.host_ip().empty() ? "0.0.0.0" : p.host_ip();
      if (host.find(':') != std::string::npos) host = "[" + host + "]";
      out.push_back(absl::StrCat(host, ":", p.host_port(), "->", p.container_port(),
                                 p.protocol() == rt::PROTOCOL_UDP ? "/udp" : "/tcp"));
    }
    return absl::StrJoin(out, ", ");
  };
  if (!quiet && format->table()) {
    std::printf("%-14s %-28s %-24s %-18s %-22s %-24s %s\n", "CONTAINER ID", "IMAGE", "COMMAND",
                "CREATED", "STATUS", "PORTS", "NAMES");
  }
  for (const rt::ContainerSummary& c : resp.containers()) {
    std::string id = c.id().substr(0, 12);
    if (quiet) {
      std::cout << id << "\n";
      continue;
    }
    if (!format->table()) {
      std::string state = rt::ContainerStatus_Name(c.status());
      if (state.rfind("CONTAINER_STATUS_", 0) == 0) state = state.substr(17);
      nlohmann::ordered_json row = {
          {"ID", c.id()},
          {"Image", c.image()},
          {"ImageID", c.image_id()},
          {"Command", c.command()},
          {"CreatedAt", TimeString(c.created_at())},
          {"State", absl::AsciiStrToLower(state)},
          {"Status", c.status_text()},
          {"Ports", ports(c)},
          {"Names", c.name()},
          {"ExitCode", c.exit_code()},
      };
      if (!PrintRow(*format, row)) return 1;
      continue;
    }
    std::string cmd = "\"" + c.command().substr(0, 20) + "\"";
    std::printf("%-14s %-28s %-24s %-18s %-22s %-24s %s\n", id.c_str(), c.image().c_str(),
                cmd.c_str(), Ago(c.created_at()).c_str(), c.status_text().c_str(), ports(c).c_str(),
                c.name().c_str());
  }
  return 0;
}

}  // namespace pier::cli
