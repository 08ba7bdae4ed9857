#include "services/runtime/shim/state_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "nlohmann/json.hpp"

namespace pier::runtime::shim {

using Json = nlohmann::json;

std::string FormatTimestamp(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ", t, absl::UTCTimeZone());
}

absl::StatusOr<absl::Time> ParseTimestamp(absl::string_view s) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, s, &t, &err)) {
    return absl::InvalidArgumentError(absl::StrCat("bad time \"", s, "\": ", err));
  }
  return t;
}

std::string ExitRecordToJson(const ExitRecord& r) {
  return Json{{"code", r.status.code},
              {"signal", r.status.signal},
              {"oom_killed", r.status.oom_killed},
              {"exit_code", r.status.ExitCode()},
              {"finished_at", FormatTimestamp(r.finished_at)}}
      .dump();
}

absl::StatusOr<ExitRecord> ExitRecordFromJson(absl::string_view json) {
  Json j = Json::parse(json.begin(), json.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return absl::InvalidArgumentError("exit record: not JSON");
  ExitRecord r;
  try {
    r.status.code = j.value("code", 0);
    r.status.signal = j.value("signal", 0);
    r.status.oom_killed = j.value("oom_killed", false);
    std::string at = j.value("finished_at", "");
    if (!at.empty()) {
      ASSIGN_OR_RETURN(r.finished_at, ParseTimestamp(at));
    }
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("exit record: ", e.what()));
  }
  return r;
}

absl::StatusOr<std::optional<ExitRecord>> ReadExitRecord(const std::string& dir) {
  std::string path = JoinPath(dir, kExitFile);
  auto data = ReadFile(path);
  if (!data.ok()) {
    if (absl::IsNotFound(data.status())) return std::optional<ExitRecord>();
    return data.status();
  }
  auto r = ExitRecordFromJson(*data);
  if (!r.ok()) return absl::DataLossError(absl::StrCat(path, ": ", r.status().message()));
  return std::optional<ExitRecord>(*r);
}

std::string StatusToJson(const absl::Status& status) {
  return Json{{"code", static_cast<int>(status.code())}, {"message", std::string(status.message())}}
      .dump(-1, ' ', false, Json::error_handler_t::replace);
}

absl::Status StatusFromJson(absl::string_view json) {
  Json j = Json::parse(json.begin(), json.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InternalError(absl::StrCat("malformed status: ", json));
  }
  int code = j.value("code", static_cast<int>(absl::StatusCode::kUnknown));
  if (code < 0 || code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    code = static_cast<int>(absl::StatusCode::kUnknown);
  }
  return absl::Status(static_cast<absl::StatusCode>(code), j.value("message", ""));
}

absl::StatusOr<pid_t> ReadPidFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string data, ReadFile(path));
  int pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(data), &pid) || pid <= 0) {
    return absl::DataLossError(absl::StrCat(path, ": not a pid: \"", data, "\""));
  }
  return static_cast<pid_t>(pid);
}

absl::Status WritePidFile(const std::string& path, pid_t pid) {
  return WriteFileReplace(path, absl::StrCat(pid, "\n"));
}

bool IsShimAlive(pid_t pid, absl::string_view dir) {
  if (pid <= 0) return false;
  auto cmdline = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
  if (!cmdline.ok()) return false;
  // Arguments are NUL-separated; zombies have an empty cmdline.
  if (!absl::StrContains(*cmdline, "pier-shim")) return false;
  if (absl::StrContains(*cmdline, dir)) return true;
  // A shim started in standby got its directory later: it works there.
  struct stat cwd, want;
  return ::stat(absl::StrCat("/proc/", pid, "/cwd").c_str(), &cwd) == 0 &&
         ::stat(std::string(dir).c_str(), &want) == 0 && cwd.st_dev == want.st_dev &&
         cwd.st_ino == want.st_ino;
}

}  // namespace pier::runtime::shim
