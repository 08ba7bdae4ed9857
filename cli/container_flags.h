// The flags `pier run` and `pier create` share, with docker's names, turned
// into a pier.runtime.v1.ContainerSpec.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cli/runtime_client.h"

namespace pier::cli {

struct ContainerFlags {
  std::string name, workdir, user, entrypoint, hostname, restart, pid, network, memory, cpus;
  std::string stop_signal;
  std::string platform;          // --platform os[/arch[/variant]]
  std::string ipc;               // --ipc
  std::string pull = "missing";  // --pull: missing, always or never
  int64_t stop_timeout = -1, pids_limit = 0;
  std::string detach_keys;  // run: --detach-keys
  bool tty = false, interactive = false, detach = false, rm = false, privileged = false;
  bool read_only = false, publish_all = false, entrypoint_set = false;
  std::vector<std::string> env, env_files, volumes, cap_add, cap_drop, publish, labels, tmpfs;

  void Register(FlagSet& flags, bool with_run_flags);
  // Fills `spec` from the flags and the positional IMAGE [COMMAND...].
  // InvalidArgument names the bad flag value.
  absl::Status ToSpec(const std::vector<std::string>& positional, rt::ContainerSpec* spec) const;
};

// "512m", "1g", "1024" → bytes. InvalidArgument otherwise.
absl::StatusOr<int64_t> ParseBytes(const std::string& text);

}  // namespace pier::cli
