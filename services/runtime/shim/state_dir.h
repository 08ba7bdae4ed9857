// The layout of a container's state directory `<root>/containers/<id>/`,
// shared by pier-shim (which writes it) and the runtime's ContainerManager
// (which reads it, also after a restart of the runtime):
//
//   spec.json        exec::ContainerSpec as JSON (spec_json.h), by the runtime
//   shim.pid         the shim's pid, decimal, written atomically
//   init.pid         the container init's pid (host pid namespace)
//   shim.sock        the shim's unix socket (protocol.h); removed on exit
//   shim.log         the shim's own stderr (diagnostics)
//   error.json       {"code", "message"} when the container failed to start
//   exit.json        {"code", "signal", "oom_killed", "exit_code",
//                    "finished_at"} once the init exited and the container was
//                    cleaned up; written atomically, last of all
//   log.jsonl        the container's output, one JSON object per line
//   log.jsonl.1..N   rotated logs, .1 the most recent (log_file.h)
//
// Thread safety: stateless functions.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/exec/executor.h"

namespace pier::runtime::shim {

inline constexpr char kSpecFile[] = "spec.json";
inline constexpr char kShimPidFile[] = "shim.pid";
inline constexpr char kInitPidFile[] = "init.pid";
inline constexpr char kSocketFile[] = "shim.sock";
inline constexpr char kShimLogFile[] = "shim.log";
inline constexpr char kErrorFile[] = "error.json";
inline constexpr char kExitFile[] = "exit.json";
inline constexpr char kLogFile[] = "log.jsonl";

// How the container ended, as recorded in exit.json.
struct ExitRecord {
  exec::ExitStatus status;
  absl::Time finished_at;
};

// RFC 3339 with nanoseconds in UTC ("2024-05-01T12:00:00.123456789Z"); the
// fixed width makes the strings sort in time order.
std::string FormatTimestamp(absl::Time t);
// InvalidArgument for a malformed time.
absl::StatusOr<absl::Time> ParseTimestamp(absl::string_view s);

std::string ExitRecordToJson(const ExitRecord& r);
// InvalidArgument for malformed JSON.
absl::StatusOr<ExitRecord> ExitRecordFromJson(absl::string_view json);
// Reads `<dir>/exit.json`: nullopt when absent, DataLoss when malformed.
absl::StatusOr<std::optional<ExitRecord>> ReadExitRecord(const std::string& dir);

// A status as JSON {"code": int, "message": str} and back.
std::string StatusToJson(const absl::Status& status);
absl::Status StatusFromJson(absl::string_view json);

// Reads a decimal pid file. NotFound when absent, DataLoss when malformed.
absl::StatusOr<pid_t> ReadPidFile(const std::string& path);
absl::Status WritePidFile(const std::string& path, pid_t pid);

// True when `pid` is alive and is a pier-shim serving `dir` (its
// /proc/<pid>/cmdline names "pier-shim" and `dir`): guards against pid
// reuse after a reboot or a long downtime.
bool IsShimAlive(pid_t pid, absl::string_view dir);

}  // namespace pier::runtime::shim
