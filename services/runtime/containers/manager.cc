#include "services/runtime/containers/manager.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <deque>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lib/common/log.h"
#include "lib/common/status.h"
#include "lib/exec/cgroup.h"
#include "nlohmann/json.hpp"
#include "services/runtime/containers/spec_json.h"
#include "services/runtime/shim/state_dir.h"

extern char** environ;

namespace pier::runtime {
namespace {

using Json = nlohmann::json;

constexpr char kRecordPrefix[] = "containers/";
constexpr char kNamePrefix[] = "container-names/";
constexpr absl::Duration kKillWait = absl::Seconds(30);
// A run this long resets the restart back-off (as Docker does).
constexpr absl::Duration kBackoffReset = absl::Seconds(10);

std::string OptTime(absl::Time t) {
  return t == absl::InfinitePast() ? "" : shim::FormatTimestamp(t);
}
absl::Time ParseOptTime(const std::string& s) {
  if (s.empty()) return absl::InfinitePast();
  auto t = shim::ParseTimestamp(s);
  return t.ok() ? *t : absl::InfinitePast();
}

ContainerState StateFromName(absl::string_view s) {
  if (s == "running") return ContainerState::kRunning;
  if (s == "restarting") return ContainerState::kRestarting;
  if (s == "exited") return ContainerState::kExited;
  return ContainerState::kCreated;
}

std::string RecordToJson(const ContainerInfo& c) {
  Json j{{"id", c.id},
         {"name", c.name},
         {"image", c.image},
         {"state", std::string(ContainerStateName(c.state))},
         {"pid", c.pid},
         {"shim_pid", c.shim_pid},
         {"exit_code", c.exit.code},
         {"exit_signal", c.exit.signal},
         {"oom_killed", c.exit.oom_killed},
         {"error", c.error},
         {"created_at", OptTime(c.created_at)},
         {"started_at", OptTime(c.started_at)},
         {"finished_at", OptTime(c.finished_at)},
         {"restart", c.restart.ToString()},
         {"restart_count", c.restart_count},
         {"manually_stopped", c.manually_stopped},
         {"stop_signal", c.stop_signal},
         {"stop_timeout_ms", absl::ToInt64Milliseconds(c.stop_timeout)},
         {"open_stdin", c.open_stdin},
         {"paused", c.paused},
         {"auto_remove", c.auto_remove},
         {"labels", c.labels},
         {"spec", ContainerSpecToJsonValue(c.spec)}};
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

absl::StatusOr<ContainerInfo> RecordFromJson(absl::string_view key, absl::string_view text) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError(absl::StrCat("container record ", key, " is not JSON"));
  }
  ContainerInfo c;
  try {
    c.id = j.value("id", "");
    c.name = j.value("name", "");
    c.image = j.value("image", "");
    c.state = StateFromName(j.value("state", "created"));
    c.pid = j.value("pid", 0);
    c.shim_pid = j.value("shim_pid", 0);
    c.exit.code = j.value("exit_code", 0);
    c.exit.signal = j.value("exit_signal", 0);
    c.exit.oom_killed = j.value("oom_killed", false);
    c.error = j.value("error", "");
    c.created_at = ParseOptTime(j.value("created_at", ""));
    c.started_at = ParseOptTime(j.value("started_at", ""));
    c.finished_at = ParseOptTime(j.value("finished_at", ""));
    auto policy = RestartPolicy::Parse(j.value("restart", "no"));
    if (policy.ok()) c.restart = *policy;
    c.restart_count = j.value("restart_count", 0);
    c.manually_stopped = j.value("manually_stopped", false);
    c.stop_signal = j.value("stop_signal", 0);
    c.stop_timeout = absl::Milliseconds(j.value("stop_timeout_ms", int64_t{10000}));
    c.open_stdin = j.value("open_stdin", false);
    c.paused = j.value("paused", false);
    c.auto_remove = j.value("auto_remove", false);
    if (j.contains("labels") && j["labels"].is_object()) {
      c.labels = j["labels"].get<std::map<std::string, std::string>>();
    }
    if (j.contains("spec")) {
      auto spec = ContainerSpecFromJsonValue(j["spec"]);
      if (!spec.ok()) return Annotate(spec.status(), absl::StrCat("container record ", key));
      c.spec = *std::move(spec);
    }
  } catch (const Json::exception& e) {
    return absl::DataLossError(absl::StrCat("container record ", key, ": ", e.what()));
  }
  return c;
}

absl::StatusOr<std::string> NewId() {
  unsigned char buf[32];
  size_t got = 0;
  while (got < sizeof(buf)) {
    ssize_t n = ::getrandom(buf + got, sizeof(buf) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "getrandom");
    }
    got += static_cast<size_t>(n);
  }
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(buf), sizeof(buf)));
}

// Docker's container name rule: [a-zA-Z0-9][a-zA-Z0-9_.-]*.
bool ValidName(absl::string_view name) {
  if (name.empty() || !absl::ascii_isalnum(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return false;
    }
  }
  return true;
}

// Waits (bounded) until process `pid` is gone; true when it is.
bool WaitPidGone(pid_t pid, absl::Duration timeout) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;
  UniqueFd pidfd(fd);
  struct pollfd pfd = {fd, POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  } while (rc < 0 && errno == EINTR);
  return rc > 0;
}

// Kills and removes what is left of a container's cgroup (its shim is gone).
void DestroyCgroup(const ContainerInfo& c) {
  auto layout = exec::DetectCgroupLayout();
  if (!layout.ok()) return;
  std::string path = c.spec.cgroup.parent_path.empty() ? absl::StrCat("pier/", c.spec.id)
                                                       : c.spec.cgroup.parent_path;
  auto cg = exec::Cgroup::Create(*layout, path, exec::CgroupSpec{}, /*allow_all_devices=*/true);
  if (!cg.ok()) return;
  absl::Status s = (*cg)->Destroy();
  if (!s.ok()) {
    PIER_LOG(WARNING) << "removing cgroup " << path << ": " << s;
  }
}

// Freezes (or thaws) every process of the container's cgroup: the v1
// freezer's freezer.state, or v2's cgroup.freeze; waits, bounded, until the
// kernel reports the new state.
absl::Status FreezeCgroup(const ContainerInfo& c, bool freeze) {
  ASSIGN_OR_RETURN(exec::CgroupLayout layout, exec::DetectCgroupLayout());
  const std::string path = c.spec.cgroup.parent_path.empty() ? absl::StrCat("pier/", c.spec.id)
                                                             : c.spec.cgroup.parent_path;
  std::string file, value, done_file, done;
  if (layout.version == exec::CgroupVersion::kV2) {
    std::string dir = JoinPath(layout.unified, path);
    file = JoinPath(dir, "cgroup.freeze");
    value = freeze ? "1" : "0";
    done_file = JoinPath(dir, "cgroup.events");
    done = freeze ? "frozen 1" : "frozen 0";
  } else {
    auto it = layout.v1.find("freezer");
    if (it == layout.v1.end()) {
      return absl::FailedPreconditionError("the freezer cgroup controller is not mounted");
    }
    std::string dir = JoinPath(it->second, path);
    file = JoinPath(dir, "freezer.state");
    value = freeze ? "FROZEN" : "THAWED";
    done_file = file;
    done = value;
  }
  {
    UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd.valid() || ::write(fd.get(), value.data(), value.size()) < 0) {
      return ErrnoStatus(errno, absl::StrCat("write ", value, " to ", file));
    }
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  for (;;) {
    absl::StatusOr<std::string> now = ReadFile(done_file);
    if (now.ok() && absl::StrContains(*now, done)) return absl::OkStatus();
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(done_file, " does not say \"", done, "\" after 5 s"));
    }
    absl::SleepFor(absl::Milliseconds(2));
  }
}

// "key value" lines (memory.stat, cpu.stat, /proc/meminfo without units).
int64_t StatValue(const std::string& text, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::ByAnyChar(" :\t"), absl::SkipEmpty());
    int64_t v = 0;
    if (f.size() >= 2 && f[0] == key && absl::SimpleAtoi(f[1], &v)) return v;
  }
  return 0;
}

int64_t ReadInt(const std::string& path, int64_t unlimited = 0) {
  absl::StatusOr<std::string> s = ReadFile(path);
  if (!s.ok()) return 0;
  absl::string_view v = absl::StripAsciiWhitespace(*s);
  if (v == "max") return unlimited;
  int64_t out = 0;
  return absl::SimpleAtoi(v, &out) ? out : 0;
}

absl::StatusOr<ContainerStats> ReadStats(const ContainerInfo& c) {
  ASSIGN_OR_RETURN(exec::CgroupLayout layout, exec::DetectCgroupLayout());
  const std::string path = c.spec.cgroup.parent_path.empty() ? absl::StrCat("pier/", c.spec.id)
                                                             : c.spec.cgroup.parent_path;
  ContainerStats st;
  st.time = absl::Now();
  st.online_cpus = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  const int64_t host_memory = StatValue(ReadFile("/proc/meminfo").value_or(""), "MemTotal") * 1024;
  // Host CPU time: the first line of /proc/stat, in clock ticks.
  {
    std::string stat = ReadFile("/proc/stat").value_or("");
    absl::string_view first = absl::string_view(stat).substr(0, stat.find('\n'));
    int64_t ticks = 0;
    for (absl::string_view f : absl::StrSplit(first, ' ', absl::SkipEmpty())) {
      int64_t v = 0;
      if (absl::SimpleAtoi(f, &v)) ticks += v;
    }
    st.system_cpu_usage_ns = ticks * (1000000000 / ::sysconf(_SC_CLK_TCK));
  }
  auto v1 = [&](const char* controller) -> std::string {
    auto it = layout.v1.find(controller);
    return it == layout.v1.end() ? "" : JoinPath(it->second, path);
  };
  if (layout.version == exec::CgroupVersion::kV2) {
    const std::string dir = JoinPath(layout.unified, path);
    ASSIGN_OR_RETURN(std::string cpu, ReadFile(JoinPath(dir, "cpu.stat")));
    st.cpu_usage_ns = StatValue(cpu, "usage_usec") * 1000;
    std::string mem = ReadFile(JoinPath(dir, "memory.stat")).value_or("");
    st.memory_cache_bytes = StatValue(mem, "file");
    st.memory_usage_bytes = std::max<int64_t>(
        0, ReadInt(JoinPath(dir, "memory.current")) - StatValue(mem, "inactive_file"));
    st.memory_limit_bytes = ReadInt(JoinPath(dir, "memory.max"), host_memory);
    st.pids = ReadInt(JoinPath(dir, "pids.current"));
    st.pids_limit = ReadInt(JoinPath(dir, "pids.max"));
    for (absl::string_view line :
         absl::StrSplit(ReadFile(JoinPath(dir, "io.stat")).value_or(""), '\n')) {
      st.block_read_bytes += StatValue(absl::StrReplaceAll(line, {{"=", " "}}), "rbytes");
      st.block_write_bytes += StatValue(absl::StrReplaceAll(line, {{"=", " "}}), "wbytes");
    }
  } else {
    const std::string cpuacct = v1("cpuacct");
    if (cpuacct.empty()) return absl::FailedPreconditionError("no cpuacct cgroup hierarchy");
    ASSIGN_OR_RETURN(std::string usage, ReadFile(JoinPath(cpuacct, "cpuacct.usage")));
    (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(usage), &st.cpu_usage_ns);
    const std::string memory = v1("memory");
    std::string mem = ReadFile(JoinPath(memory, "memory.stat")).value_or("");
    st.memory_cache_bytes = StatValue(mem, "total_cache");
    st.memory_usage_bytes =
        std::max<int64_t>(0, ReadInt(JoinPath(memory, "memory.usage_in_bytes")) -
                                 StatValue(mem, "total_inactive_file"));
    const int64_t limit = ReadInt(JoinPath(memory, "memory.limit_in_bytes"));
    st.memory_limit_bytes = limit <= 0 || limit > host_memory ? host_memory : limit;
    st.pids = ReadInt(JoinPath(v1("pids"), "pids.current"));
    st.pids_limit = ReadInt(JoinPath(v1("pids"), "pids.max"));
    for (absl::string_view line : absl::StrSplit(
             ReadFile(JoinPath(v1("blkio"), "blkio.throttle.io_service_bytes")).value_or(""),
             '\n')) {
      std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
      int64_t v = 0;
      if (f.size() != 3 || !absl::SimpleAtoi(f[2], &v)) continue;
      if (f[1] == "Read") st.block_read_bytes += v;
      if (f[1] == "Write") st.block_write_bytes += v;
    }
  }
  // The network namespace's interfaces, as its init sees them (but lo).
  for (absl::string_view line :
       absl::StrSplit(ReadFile(absl::StrCat("/proc/", c.pid, "/net/dev")).value_or(""), '\n')) {
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    if (absl::StripAsciiWhitespace(line.substr(0, colon)) == "lo") continue;
    std::vector<absl::string_view> f =
        absl::StrSplit(line.substr(colon + 1), ' ', absl::SkipEmpty());
    int64_t rx = 0, tx = 0;
    if (f.size() >= 9 && absl::SimpleAtoi(f[0], &rx) && absl::SimpleAtoi(f[8], &tx)) {
      st.network_rx_bytes += rx;
      st.network_tx_bytes += tx;
    }
  }
  return st;
}

std::string ShimPathFromSelf() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "pier-shim";
  return JoinPath(Dirname(absl::string_view(buf, static_cast<size_t>(n))), "pier-shim");
}

}  // namespace

absl::StatusOr<RestartPolicy> RestartPolicy::Parse(absl::string_view text) {
  RestartPolicy p;
  if (text.empty() || text == "no") return p;
  if (text == "always") {
    p.kind = Kind::kAlways;
    return p;
  }
  if (text == "unless-stopped") {
    p.kind = Kind::kUnlessStopped;
    return p;
  }
  absl::string_view rest = text;
  if (absl::ConsumePrefix(&rest, "on-failure")) {
    p.kind = Kind::kOnFailure;
    if (rest.empty()) return p;
    if (absl::ConsumePrefix(&rest, ":") && absl::SimpleAtoi(rest, &p.max_retries) &&
        p.max_retries >= 0) {
      return p;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("invalid restart policy \"", text, "\""));
}

std::string RestartPolicy::ToString() const {
  switch (kind) {
    case Kind::kNo:
      return "no";
    case Kind::kAlways:
      return "always";
    case Kind::kUnlessStopped:
      return "unless-stopped";
    case Kind::kOnFailure:
      return max_retries > 0 ? absl::StrCat("on-failure:", max_retries) : "on-failure";
  }
  return "no";
}

absl::string_view ContainerStateName(ContainerState state) {
  switch (state) {
    case ContainerState::kCreated:
      return "created";
    case ContainerState::kRunning:
      return "running";
    case ContainerState::kRestarting:
      return "restarting";
    case ContainerState::kExited:
      return "exited";
  }
  return "created";
}

ContainerManager::ContainerManager(ManagerOptions options) : opts_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<ContainerManager>> ContainerManager::Open(ManagerOptions options) {
  if (options.root.empty() || options.kv == nullptr) {
    return absl::InvalidArgumentError("container manager needs a root and a kv store");
  }
  if (options.shim_path.empty()) options.shim_path = ShimPathFromSelf();
  if (options.run_root.empty()) options.run_root = JoinPath(options.root, "run");
  std::unique_ptr<ContainerManager> m(new ContainerManager(std::move(options)));
  RETURN_IF_ERROR(MakeDirs(JoinPath(m->opts_.root, "containers"), 0711));
  RETURN_IF_ERROR(MakeDirs(JoinPath(m->opts_.run_root, "containers"), 0711));
  // What removals left before a crash.
  EmptyTrash(JoinPath(m->opts_.root, "trash"));
  EmptyTrash(JoinPath(m->opts_.run_root, "trash"));
  RETURN_IF_ERROR(m->Load());
  m->wake_fd_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!m->wake_fd_.valid()) return ErrnoStatus(errno, "eventfd");
  m->supervisor_ = std::thread([p = m.get()] { p->Supervise(); });
  m->remover_ = std::thread([p = m.get()] {
    for (;;) {
      std::string id;
      {
        std::unique_lock<std::mutex> lock(p->remove_queue_mu_);
        p->remove_cv_.wait(lock, [&] { return p->remove_stopping_ || !p->remove_queue_.empty(); });
        if (p->remove_stopping_) return;
        id = std::move(p->remove_queue_.front());
        p->remove_queue_.pop_front();
      }
      std::lock_guard<std::mutex> lock(p->remove_mu_);
      if (p->auto_remove_) p->auto_remove_(id);
    }
  });
  if (m->opts_.standby_shim)
    m->standby_thread_ = std::thread([p = m.get()] { p->KeepStandbyShim(); });
  return m;
}

ContainerManager::~ContainerManager() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  Wake();
  if (supervisor_.joinable()) supervisor_.join();
  {
    std::lock_guard<std::mutex> lock(remove_queue_mu_);
    remove_stopping_ = true;
  }
  remove_cv_.notify_all();
  if (remover_.joinable()) remover_.join();
  {
    std::lock_guard<std::mutex> lock(standby_mu_);
    standby_stopping_ = true;
    standby_.Reset();  // the idle shim reads EOF and exits
  }
  standby_cv_.notify_all();
  if (standby_thread_.joinable()) standby_thread_.join();
}

void ContainerManager::SetAutoRemove(std::function<void(const std::string& id)> remove) {
  std::lock_guard<std::mutex> lock(remove_mu_);
  auto_remove_ = std::move(remove);
}

absl::Status ContainerManager::WaitRemoved(absl::string_view id, absl::Time deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  const std::string key(id);
  while (entries_.count(key)) {
    if (cv_.wait_until(lock, absl::ToChronoTime(deadline)) == std::cv_status::timeout &&
        entries_.count(key)) {
      return absl::DeadlineExceededError(absl::StrCat("container ", key, " is not removed yet"));
    }
  }
  return absl::OkStatus();
}

void ContainerManager::KeepStandbyShim() {
  std::unique_lock<std::mutex> lock(standby_mu_);
  int failures = 0;
  while (!standby_stopping_) {
    if (standby_.valid()) {
      standby_cv_.wait(lock, [&] { return standby_stopping_ || !standby_.valid(); });
      continue;
    }
    lock.unlock();
    absl::StatusOr<UniqueFd> fd = SpawnStandbyShim();
    lock.lock();
    if (fd.ok()) {
      failures = 0;
      if (!standby_stopping_) standby_ = *std::move(fd);
      continue;
    }
    // Starts spawn their own shim meanwhile; retry with a bounded back-off.
    if (failures++ == 0) {
      PIER_LOG(WARNING) << "standby pier-shim: " << fd.status();
    }
    standby_cv_.wait_for(lock,
                         std::chrono::milliseconds(std::min(100 << std::min(failures, 6), 5000)),
                         [&] { return standby_stopping_; });
  }
}

UniqueFd ContainerManager::TakeStandbyShim() {
  // The next standby starts at once, on the other core while this start
  // mostly runs on one (measured: waiting until the start is over is slower
  // for back-to-back starts, which then find no standby).
  UniqueFd fd;
  {
    std::lock_guard<std::mutex> lock(standby_mu_);
    fd = std::move(standby_);
  }
  standby_cv_.notify_all();
  return fd;
}

absl::StatusOr<UniqueFd> ContainerManager::SpawnStandbyShim() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    return ErrnoStatus(errno, "socketpair for pier-shim");
  }
  UniqueFd ours(sv[0]), theirs(sv[1]);
  std::vector<std::string> args = {opts_.shim_path, "--standby-fd=3"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, theirs.get(), 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t child = -1;
  int err = ::posix_spawn(&child, opts_.shim_path.c_str(), &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  theirs.Reset();
  if (err != 0) return ErrnoStatus(err, absl::StrCat("spawn ", opts_.shim_path));
  // The spawned process forks twice and exits at once: reap it.
  int wstatus = 0;
  while (::waitpid(child, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return absl::InternalError(
        absl::StrCat(opts_.shim_path, " --standby-fd failed (status ", wstatus, ")"));
  }
  return ours;
}

absl::Status ContainerManager::Load() {
  absl::Status parse_error;
  RETURN_IF_ERROR(
      opts_.kv->Scan(kRecordPrefix, "", 0, [&](absl::string_view key, absl::string_view value) {
        auto c = RecordFromJson(key, value);
        if (!c.ok()) {
          PIER_LOG(ERROR) << c.status();
          return true;
        }
        Entry e;
        e.info = *std::move(c);
        std::string id = e.info.id;
        entries_.emplace(std::move(id), std::move(e));
        return true;
      }));
  return absl::OkStatus();
}

std::string ContainerManager::StateDir(absl::string_view id) const {
  return JoinPath(JoinPath(opts_.run_root, "containers"), id);
}

std::string ContainerManager::LogDir(absl::string_view id) const {
  return JoinPath(JoinPath(opts_.root, "containers"), id);
}

// Container records are written without fsync: they must survive the
// agent's crash or restart (the write is in the kernel when Write returns),
// while a machine crash ends the containers anyway.
absl::Status ContainerManager::PersistLocked(const Entry& e) {
  kv::Batch batch;
  batch.Put(absl::StrCat(kRecordPrefix, e.info.id), RecordToJson(e.info));
  batch.set_sync(false);
  return opts_.kv->Write(batch);
}

absl::StatusOr<std::string> ContainerManager::ResolveLocked(absl::string_view id_or_name) const {
  if (entries_.count(std::string(id_or_name))) return std::string(id_or_name);
  for (const auto& [id, e] : entries_) {
    if (e.info.name == id_or_name) return id;
  }
  return absl::NotFoundError(absl::StrCat("no such container: ", id_or_name));
}

std::shared_ptr<std::mutex> ContainerManager::OpMutex(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : it->second.op_mu;
}

void ContainerManager::Wake() {
  uint64_t one = 1;
  if (wake_fd_.valid()) (void)!::write(wake_fd_.get(), &one, sizeof(one));
}

absl::StatusOr<std::string> ContainerManager::Create(const CreateOptions& options) {
  if (options.spec.process.args.empty()) {
    return absl::InvalidArgumentError("container spec has no process args");
  }
  if (options.spec.rootfs.empty())
    return absl::InvalidArgumentError("container spec has no rootfs");
  ASSIGN_OR_RETURN(std::string id, NewId());
  std::string name = options.name.empty() ? absl::StrCat("pier_", id.substr(0, 12)) : options.name;
  if (!ValidName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid container name \"", name, "\": only [a-zA-Z0-9][a-zA-Z0-9_.-]"));
  }
  Entry e;
  ContainerInfo& c = e.info;
  c.id = id;
  c.name = name;
  c.image = options.image;
  c.spec = options.spec;
  c.spec.id = id;
  c.spec.stdio = {};
  c.restart = options.restart;
  c.stop_signal = options.stop_signal;
  c.stop_timeout = options.stop_timeout;
  c.open_stdin = options.open_stdin;
  c.auto_remove = options.auto_remove;
  c.labels = options.labels;
  c.created_at = absl::Now();

  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(std::optional<std::string> owner,
                   opts_.kv->Find(absl::StrCat(kNamePrefix, name)));
  if (owner) {
    return absl::AlreadyExistsError(
        absl::StrCat("container name \"", name, "\" is already in use by container ", *owner));
  }
  std::string dir = StateDir(id);
  // spec.json is written at each start, for the shim; the record holds it.
  RETURN_IF_ERROR(MakeDirs(dir, 0711));
  absl::Status logs = MakeDirs(LogDir(id), 0711);
  if (!logs.ok()) {
    (void)RemoveAll(dir);
    return logs;
  }
  kv::Batch batch;
  batch.Put(absl::StrCat(kRecordPrefix, id), RecordToJson(c));
  batch.Put(absl::StrCat(kNamePrefix, name), id);
  batch.set_sync(false);  // See PersistLocked.
  absl::Status s = opts_.kv->Write(batch);
  if (!s.ok()) {
    (void)RemoveAll(dir);
    (void)RemoveAll(LogDir(id));
    return s;
  }
  PublishLocked(c, "create");
  entries_.emplace(id, std::move(e));
  return id;
}

void ContainerManager::PublishLocked(const ContainerInfo& c, absl::string_view action,
                                     std::map<std::string, std::string> extra) {
  if (opts_.events == nullptr) return;
  Event e;
  e.type = Event::Type::kContainer;
  e.id = c.id;
  e.name = c.name;
  e.action = std::string(action);
  e.attributes = c.labels;
  e.attributes["name"] = c.name;
  e.attributes["image"] = c.image;
  for (auto& [k, v] : extra) e.attributes[k] = std::move(v);
  opts_.events->Publish(std::move(e));
}

absl::StatusOr<shim::ShimState> ContainerManager::SpawnShim(const std::string& id,
                                                            const ContainerInfo& info) {
  const std::string dir = StateDir(id);
  RETURN_IF_ERROR(WriteFileReplace(JoinPath(dir, shim::kSpecFile), ContainerSpecToJson(info.spec)));
  // An idle shim, or a new one; it gets its flags on its socket and answers
  // there with the start report.
  UniqueFd sync_r = TakeStandbyShim();
  if (!sync_r.valid()) {
    ASSIGN_OR_RETURN(sync_r, SpawnStandbyShim());
  }
  std::vector<std::string> args = {absl::StrCat("--dir=", dir),
                                   absl::StrCat("--log-dir=", LogDir(id)),
                                   absl::StrCat("--log-max-size=", opts_.log_max_size),
                                   absl::StrCat("--log-max-files=", opts_.log_max_files)};
  if (info.open_stdin) args.push_back("--stdin");
  std::string assignment;
  for (const std::string& a : args) assignment.append(a).push_back('\0');
  assignment.push_back('\0');
  RETURN_IF_ERROR(WriteAll(sync_r.get(), assignment, "pier-shim's assignment"));
  const int wstatus = 0;
  const std::string shim_log = JoinPath(dir, shim::kShimLogFile);

  // The start report, then EOF.
  std::string report;
  const absl::Time deadline = absl::Now() + opts_.start_timeout;
  for (;;) {
    int ms =
        static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
    struct pollfd pfd = {sync_r.get(), POLLIN, 0};
    int rc = ::poll(&pfd, 1, ms);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return ErrnoStatus(errno, "poll the shim's start report");
    if (rc == 0) {
      return absl::DeadlineExceededError(absl::StrCat("container ", id, ": no start report from ",
                                                      "pier-shim within ",
                                                      absl::FormatDuration(opts_.start_timeout)));
    }
    char buf[4096];
    ssize_t n = ::read(sync_r.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    report.append(buf, static_cast<size_t>(n));
  }
  if (report.empty()) {
    auto err_json = ReadFile(JoinPath(dir, shim::kErrorFile));
    if (err_json.ok()) return shim::StatusFromJson(*err_json);
    return absl::InternalError(absl::StrCat("pier-shim for container ", id,
                                            " exited without a start report (status ", wstatus,
                                            "); see ", shim_log));
  }
  ASSIGN_OR_RETURN(std::string ok, shim::ParseAnswer(report));
  Json j = Json::parse(ok, nullptr, false);
  shim::ShimState st;
  st.pid = j.value("pid", 0);
  st.shim_pid = j.value("shim_pid", 0);
  st.running = true;
  auto started = shim::ParseTimestamp(j.value("started_at", ""));
  st.started_at = started.ok() ? *started : absl::Now();
  return st;
}

absl::Status ContainerManager::Start(absl::string_view id_or_name) {
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(id, ResolveLocked(id_or_name));
  }
  std::shared_ptr<std::mutex> op = OpMutex(id);
  if (!op) return absl::NotFoundError(absl::StrCat("no such container: ", id));
  std::lock_guard<std::mutex> op_lock(*op);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return absl::NotFoundError(absl::StrCat("no such container: ", id));
    if (it->second.info.state == ContainerState::kRunning) return absl::OkStatus();
    restarts_.erase(id);
    it->second.info.manually_stopped = false;
    it->second.info.restart_count = 0;
    it->second.backoff_step = 0;
  }
  return StartLocked(id);
}

absl::Status ContainerManager::StartLocked(const std::string& id) {
  ContainerInfo info;
  std::function<absl::Status(ContainerInfo*)> hook;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return absl::NotFoundError(absl::StrCat("no such container: ", id));
    info = it->second.info;
    hook = before_start_;
  }
  const absl::Status prepared = hook ? hook(&info) : absl::OkStatus();
  absl::StatusOr<shim::ShimState> st =
      prepared.ok() ? SpawnShim(id, info) : absl::StatusOr<shim::ShimState>(prepared);
  UniqueFd watch;
  if (st.ok()) {
    auto w = shim::ShimClient(StateDir(id)).StartWait();
    // Unavailable: the container already exited and its shim is gone; the
    // exit is read from exit.json below.
    if (w.ok()) watch = *std::move(w);
  }
  std::unique_lock<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return absl::NotFoundError(absl::StrCat("no such container: ", id));
  ContainerInfo& c = it->second.info;
  if (!st.ok()) {
    c.error = std::string(st.status().message());
    c.exit = {};
    c.exit.code = absl::IsNotFound(st.status()) ? 127 : 126;
    absl::Status s = PersistLocked(it->second);
    if (!s.ok()) {
      PIER_LOG(ERROR) << "recording the start error of " << id << ": " << s;
    }
    return st.status();
  }
  c.state = ContainerState::kRunning;
  c.pid = st->pid;
  c.shim_pid = st->shim_pid;
  c.error.clear();
  c.started_at = st->started_at;
  RETURN_IF_ERROR(PersistLocked(it->second));
  PublishLocked(c, "start");
  if (watch.valid()) {
    watches_[id] = std::move(watch);
    lock.unlock();
    Wake();
  } else {
    lock.unlock();
    auto exit = shim::ReadExitRecord(StateDir(id));
    if (exit.ok() && *exit) {
      HandleExit(id, **exit);
    } else {
      HandleExit(id, absl::UnavailableError("the shim went away without an exit status"));
    }
  }
  return absl::OkStatus();
}

void ContainerManager::AddWatch(const std::string& id, UniqueFd fd) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    watches_[id] = std::move(fd);
  }
  Wake();
}

void ContainerManager::HandleExit(const std::string& id, absl::StatusOr<shim::ExitRecord> exit) {
  if (!exit.ok()) {
    // The wait connection broke: the exit may still be on disk.
    auto rec = shim::ReadExitRecord(StateDir(id));
    if (rec.ok() && *rec) exit = **rec;
  }
  bool destroy_cgroup = false;
  ContainerInfo copy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    watches_.erase(id);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    Entry& e = it->second;
    ContainerInfo& c = e.info;
    if (exit.ok()) {
      c.exit = exit->status;
      c.finished_at = exit->finished_at;
    } else {
      PIER_LOG(WARNING) << "container " << id << ": " << exit.status();
      c.exit = {};
      c.exit.code = 255;
      c.error = absl::StrCat("shim lost: ", exit.status().message());
      c.finished_at = absl::Now();
      destroy_cgroup = true;
      copy = c;
    }
    c.state = ContainerState::kExited;
    c.pid = 0;
    c.paused = false;
    ++e.exits;
    if (c.exit.oom_killed) PublishLocked(c, "oom");
    PublishLocked(c, "die", {{"exitCode", absl::StrCat(c.exit.ExitCode())}});

    // With the shim lost, what is left of the container is killed first;
    // the restart policy applies after that.
    if (!destroy_cgroup) MaybeScheduleRestartLocked(id, e);
    absl::Status s = PersistLocked(e);
    if (!s.ok()) {
      PIER_LOG(ERROR) << "recording the exit of " << id << ": " << s;
    }
    if (c.auto_remove && c.state != ContainerState::kRestarting) {
      std::lock_guard<std::mutex> qlock(remove_queue_mu_);
      remove_queue_.push_back(id);
      remove_cv_.notify_one();
    }
  }
  cv_.notify_all();
  Wake();
  if (destroy_cgroup) {
    DestroyCgroup(copy);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it != entries_.end() && it->second.info.state == ContainerState::kExited) {
      MaybeScheduleRestartLocked(id, it->second);
      absl::Status s = PersistLocked(it->second);
      if (!s.ok()) {
        PIER_LOG(ERROR) << "recording container " << id << ": " << s;
      }
    }
    Wake();
  }
}

void ContainerManager::MaybeScheduleRestartLocked(const std::string& id, Entry& e) {
  ContainerInfo& c = e.info;
  bool restart = false;
  if (!c.manually_stopped) {
    switch (c.restart.kind) {
      case RestartPolicy::Kind::kNo:
        break;
      case RestartPolicy::Kind::kAlways:
      case RestartPolicy::Kind::kUnlessStopped:
        restart = true;
        break;
      case RestartPolicy::Kind::kOnFailure:
        restart = c.exit.ExitCode() != 0 &&
                  (c.restart.max_retries == 0 || c.restart_count < c.restart.max_retries);
        break;
    }
  }
  if (!restart) return;
  if (c.started_at != absl::InfinitePast() && c.finished_at - c.started_at >= kBackoffReset) {
    e.backoff_step = 0;
  }
  absl::Duration delay = opts_.restart_backoff_initial;
  for (int i = 0; i < e.backoff_step && delay < opts_.restart_backoff_max; ++i) delay *= 2;
  delay = std::min(delay, opts_.restart_backoff_max);
  ++e.backoff_step;
  c.state = ContainerState::kRestarting;
  restarts_[id] = absl::Now() + delay;
}

void ContainerManager::SetBeforeStart(std::function<absl::Status(ContainerInfo*)> hook) {
  std::lock_guard<std::mutex> lock(mu_);
  before_start_ = std::move(hook);
}

void ContainerManager::Restart(const std::string& id) {
  std::shared_ptr<std::mutex> op = OpMutex(id);
  if (!op) return;
  std::unique_lock<std::mutex> op_lock(*op, std::try_to_lock);
  if (!op_lock.owns_lock()) {  // a lifecycle call is busy with it: try again soon
    std::lock_guard<std::mutex> lock(mu_);
    restarts_[id] = absl::Now() + absl::Milliseconds(50);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.info.state != ContainerState::kRestarting ||
        it->second.info.manually_stopped) {
      return;
    }
    ++it->second.info.restart_count;
    PublishLocked(it->second.info, "restart",
                  {{"restartCount", absl::StrCat(it->second.info.restart_count)}});
  }
  absl::Status s = StartLocked(id);
  if (!s.ok()) {
    PIER_LOG(WARNING) << "restarting container " << id << ": " << s;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = entries_.find(id);
      if (it != entries_.end()) {
        it->second.info.state = ContainerState::kExited;
        ++it->second.exits;
        absl::Status p = PersistLocked(it->second);
        if (!p.ok()) {
          PIER_LOG(ERROR) << "recording container " << id << ": " << p;
        }
      }
    }
    cv_.notify_all();
  }
}

void ContainerManager::Supervise() {
  for (;;) {
    std::vector<std::pair<std::string, int>> watched;
    absl::Time next_restart = absl::InfiniteFuture();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      for (const auto& [id, fd] : watches_) watched.emplace_back(id, fd.get());
      for (const auto& [id, due] : restarts_) next_restart = std::min(next_restart, due);
    }
    std::vector<pollfd> pfds;
    pfds.push_back({wake_fd_.get(), POLLIN, 0});
    for (const auto& w : watched) pfds.push_back({w.second, POLLIN, 0});
    int ms = -1;
    if (next_restart != absl::InfiniteFuture()) {
      ms = static_cast<int>(std::max<int64_t>(
          0, absl::ToInt64Milliseconds(next_restart - absl::Now() + absl::Milliseconds(1))));
    }
    int rc = ::poll(pfds.data(), pfds.size(), ms);
    if (rc < 0 && errno != EINTR) {
      PIER_LOG(ERROR) << "supervisor poll: " << ErrnoStatus(errno, "poll");
    }
    if (rc > 0 && pfds[0].revents) {
      uint64_t v;
      (void)!::read(wake_fd_.get(), &v, sizeof(v));
    }
    for (size_t i = 0; rc > 0 && i < watched.size(); ++i) {
      if (pfds[i + 1].revents == 0) continue;
      // The shim answers `wait` in one small frame once exit.json is written.
      HandleExit(watched[i].first, shim::ReadWaitAnswer(watched[i].second, absl::Seconds(5)));
    }
    std::vector<std::string> due;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      const absl::Time now = absl::Now();
      for (auto it = restarts_.begin(); it != restarts_.end();) {
        if (it->second <= now) {
          due.push_back(it->first);
          it = restarts_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (const std::string& id : due) Restart(id);
  }
}

bool ContainerManager::WaitExitLocked(std::unique_lock<std::mutex>& lock, const std::string& id,
                                      uint64_t gen, absl::Time deadline) {
  auto done = [&] {
    auto it = entries_.find(id);
    return it == entries_.end() || it->second.exits > gen;
  };
  if (deadline == absl::InfiniteFuture()) {
    cv_.wait(lock, done);
    return true;
  }
  return cv_.wait_for(
      lock, absl::ToChronoNanoseconds(std::max(deadline - absl::Now(), absl::ZeroDuration())),
      done);
}

absl::StatusOr<exec::ExitStatus> ContainerManager::Wait(absl::string_view id_or_name,
                                                        absl::Duration timeout) {
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  std::unique_lock<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(std::string id, ResolveLocked(id_or_name));
  Entry& e = entries_.at(id);
  if (e.info.state == ContainerState::kCreated) {
    return absl::FailedPreconditionError(absl::StrCat("container ", id, " was never started"));
  }
  if (e.info.state == ContainerState::kExited) return e.info.exit;
  uint64_t gen = e.exits;
  if (!WaitExitLocked(lock, id, gen, deadline)) {
    return absl::DeadlineExceededError(
        absl::StrCat("container ", id, " still running after ", absl::FormatDuration(timeout)));
  }
  auto it = entries_.find(id);
  if (it == entries_.end()) return absl::NotFoundError(absl::StrCat("container ", id, " removed"));
  return it->second.info.exit;
}

absl::Status ContainerManager::Pause(absl::string_view id_or_name, bool pause) {
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(id, ResolveLocked(id_or_name));
  }
  std::shared_ptr<std::mutex> op = OpMutex(id);
  if (!op) return absl::NotFoundError(absl::StrCat("no such container: ", id));
  std::lock_guard<std::mutex> op_lock(*op);
  ContainerInfo info;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return absl::NotFoundError(absl::StrCat("no such container: ", id));
    info = it->second.info;
  }
  if (info.state != ContainerState::kRunning) {
    return absl::FailedPreconditionError(
        absl::StrCat("container ", info.name, " (", id, ") is not running"));
  }
  if (info.paused == pause) {
    return absl::FailedPreconditionError(absl::StrCat("container ", info.name, " (", id, ") is ",
                                                      pause ? "already paused" : "not paused"));
  }
  RETURN_IF_ERROR(FreezeCgroup(info, pause));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return absl::OkStatus();
  it->second.info.paused = pause;
  PublishLocked(it->second.info, pause ? "pause" : "unpause");
  return PersistLocked(it->second);
}

namespace {

// Thaws a paused container before it is signalled: a frozen process only
// acts on a signal once thawed (v1), and docker's stop and kill work on
// paused containers.
void ThawForSignal(const ContainerInfo& c) {
  if (!c.paused) return;
  absl::Status s = FreezeCgroup(c, false);
  if (!s.ok()) {
    PIER_LOG(WARNING) << "container " << c.id << ": thawing: " << s;
  }
}

}  // namespace

absl::StatusOr<ContainerStats> ContainerManager::Stats(absl::string_view id_or_name) {
  ContainerInfo info;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(std::string id, ResolveLocked(id_or_name));
    info = entries_.at(id).info;
  }
  if (info.state != ContainerState::kRunning || info.pid <= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("container ", info.name, " (", info.id, ") is not running"));
  }
  return ReadStats(info);
}

absl::Status ContainerManager::Kill(absl::string_view id_or_name, int signal) {
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(id, ResolveLocked(id_or_name));
    if (entries_.at(id).info.state != ContainerState::kRunning) {
      return absl::FailedPreconditionError(absl::StrCat("container ", id, " is not running"));
    }
    // `kill` (SIGKILL) ends a container on purpose, as `stop` does: its
    // restart policy does not bring it back. Other signals (a reload, a
    // dump) leave the policy in force for a later exit.
    if (signal == SIGKILL) {
      Entry& e = entries_.at(id);
      e.info.manually_stopped = true;
      RETURN_IF_ERROR(PersistLocked(e));
    }
  }
  ContainerInfo before;
  {
    std::lock_guard<std::mutex> lock(mu_);
    before = entries_.at(id).info;
  }
  absl::Status s = shim::ShimClient(StateDir(id)).Kill(signal);
  if (absl::IsNotFound(s) || absl::IsUnavailable(s)) {
    return absl::FailedPreconditionError(absl::StrCat("container ", id, " is not running"));
  }
  // A paused container gets the signal when thawed; only a signal that ends
  // it thaws it (a HUP to a paused container waits for unpause).
  if (s.ok() && (signal == SIGKILL || signal == SIGTERM || signal == SIGINT)) {
    ThawForSignal(before);
  }
  if (s.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it != entries_.end())
      PublishLocked(it->second.info, "kill", {{"signal", absl::StrCat(signal)}});
  }
  return s;
}

absl::Status ContainerManager::Stop(absl::string_view id_or_name,
                                    std::optional<absl::Duration> timeout) {
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(id, ResolveLocked(id_or_name));
  }
  std::shared_ptr<std::mutex> op = OpMutex(id);
  if (!op) return absl::NotFoundError(absl::StrCat("no such container: ", id));
  std::lock_guard<std::mutex> op_lock(*op);
  std::unique_lock<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return absl::NotFoundError(absl::StrCat("no such container: ", id));
  Entry& e = it->second;
  e.info.manually_stopped = true;
  ThawForSignal(e.info);
  if (e.info.state == ContainerState::kRestarting) {
    restarts_.erase(id);
    e.info.state = ContainerState::kExited;
    ++e.exits;
    cv_.notify_all();
  }
  RETURN_IF_ERROR(PersistLocked(e));
  if (e.info.state != ContainerState::kRunning) return absl::OkStatus();
  const uint64_t gen = e.exits;
  const int sig = e.info.stop_signal > 0 ? e.info.stop_signal : SIGTERM;
  const absl::Duration grace = timeout.value_or(e.info.stop_timeout);
  PublishLocked(e.info, "kill", {{"signal", absl::StrCat(sig)}});
  lock.unlock();
  // "stop" once it has exited (after its "die").
  auto stopped = [&] {
    auto it = entries_.find(id);
    if (it != entries_.end()) PublishLocked(it->second.info, "stop");
    return absl::OkStatus();
  };

  shim::ShimClient client(StateDir(id));
  absl::Status s = client.Kill(sig);
  if (!s.ok() && !absl::IsNotFound(s) && !absl::IsUnavailable(s)) return s;
  lock.lock();
  if (WaitExitLocked(lock, id, gen, absl::Now() + grace)) return stopped();
  {
    auto it = entries_.find(id);
    if (it != entries_.end())
      PublishLocked(it->second.info, "kill", {{"signal", absl::StrCat(SIGKILL)}});
  }
  lock.unlock();
  s = client.Kill(SIGKILL);
  if (!s.ok() && !absl::IsNotFound(s) && !absl::IsUnavailable(s)) return s;
  lock.lock();
  if (WaitExitLocked(lock, id, gen, absl::Now() + kKillWait)) return stopped();
  return absl::DeadlineExceededError(absl::StrCat("container ", id, " did not exit after SIGKILL"));
}

absl::Status ContainerManager::Remove(absl::string_view id_or_name, bool force) {
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(id, ResolveLocked(id_or_name));
  }
  std::shared_ptr<std::mutex> op = OpMutex(id);
  if (!op) return absl::NotFoundError(absl::StrCat("no such container: ", id));
  std::lock_guard<std::mutex> op_lock(*op);
  std::unique_lock<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return absl::NotFoundError(absl::StrCat("no such container: ", id));
  ContainerState state = it->second.info.state;
  if ((state == ContainerState::kRunning || state == ContainerState::kRestarting) && !force) {
    return absl::FailedPreconditionError(absl::StrCat(
        "container ", id, " is ", ContainerStateName(state), "; stop it first or force removal"));
  }
  it->second.info.manually_stopped = true;
  restarts_.erase(id);
  if (state == ContainerState::kRunning) {
    const uint64_t gen = it->second.exits;
    PublishLocked(it->second.info, "kill", {{"signal", absl::StrCat(SIGKILL)}});
    const ContainerInfo killed = it->second.info;
    lock.unlock();
    absl::Status s = shim::ShimClient(StateDir(id)).Kill(SIGKILL);
    if (!s.ok() && !absl::IsNotFound(s) && !absl::IsUnavailable(s)) return s;
    ThawForSignal(killed);
    lock.lock();
    if (!WaitExitLocked(lock, id, gen, absl::Now() + kKillWait)) {
      return absl::DeadlineExceededError(
          absl::StrCat("container ", id, " did not exit after SIGKILL"));
    }
    it = entries_.find(id);
    if (it == entries_.end()) return absl::OkStatus();
  }
  ContainerInfo info = it->second.info;
  lock.unlock();
  // Let the last shim finish (it may still be handing the exit to clients,
  // or be on its way out after a failed start).
  auto shim_pid = shim::ReadPidFile(JoinPath(StateDir(id), shim::kShimPidFile));
  if (shim_pid.ok() && shim::IsShimAlive(*shim_pid, StateDir(id)) &&
      !WaitPidGone(*shim_pid, absl::Seconds(10))) {
    PIER_LOG(WARNING) << "shim " << *shim_pid << " of container " << id
                      << " still alive; killing it";
    ::kill(*shim_pid, SIGKILL);
  }
  RETURN_IF_ERROR(RemoveInBackground(StateDir(id), JoinPath(opts_.run_root, "trash")));
  RETURN_IF_ERROR(RemoveInBackground(LogDir(id), JoinPath(opts_.root, "trash")));
  lock.lock();
  kv::Batch batch;
  batch.Delete(absl::StrCat(kRecordPrefix, id));
  batch.Delete(absl::StrCat(kNamePrefix, info.name));
  batch.set_sync(false);  // See PersistLocked.
  RETURN_IF_ERROR(opts_.kv->Write(batch));
  entries_.erase(id);
  PublishLocked(info, "destroy");
  cv_.notify_all();
  return absl::OkStatus();
}

absl::StatusOr<ContainerInfo> ContainerManager::Inspect(absl::string_view id_or_name) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(std::string id, ResolveLocked(id_or_name));
  return entries_.at(id).info;
}

std::vector<ContainerInfo> ContainerManager::List() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ContainerInfo> out;
  for (const auto& [id, e] : entries_) out.push_back(e.info);
  return out;
}

absl::Status ContainerManager::Recover() {
  std::vector<std::pair<std::string, ContainerInfo>> todo;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, e] : entries_) {
      if (watches_.count(id)) continue;
      if (e.info.state == ContainerState::kRunning || e.info.state == ContainerState::kRestarting) {
        todo.emplace_back(id, e.info);
      }
    }
  }
  for (const auto& [id, info] : todo) {
    const std::string dir = StateDir(id);
    auto shim_pid = shim::ReadPidFile(JoinPath(dir, shim::kShimPidFile));
    if (info.state == ContainerState::kRunning && shim_pid.ok() &&
        shim::IsShimAlive(*shim_pid, dir)) {
      auto w = shim::ShimClient(dir).StartWait();
      if (w.ok()) {
        auto init_pid = shim::ReadPidFile(JoinPath(dir, shim::kInitPidFile));
        {
          std::lock_guard<std::mutex> lock(mu_);
          auto it = entries_.find(id);
          if (it != entries_.end()) {
            it->second.info.shim_pid = *shim_pid;
            if (init_pid.ok()) it->second.info.pid = *init_pid;
          }
        }
        PIER_LOG(INFO) << "recovered container " << id << " (shim " << *shim_pid << ")";
        AddWatch(id, *std::move(w));
        continue;
      }
    }
    auto exit = shim::ReadExitRecord(dir);
    if (exit.ok() && *exit && info.state == ContainerState::kRunning) {
      HandleExit(id, **exit);
    } else if (info.state == ContainerState::kRestarting) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        restarts_[id] = absl::Now();
      }
      Wake();
    } else {
      HandleExit(id, absl::UnavailableError(absl::StrCat("shim ", shim_pid.ok() ? *shim_pid : 0,
                                                         " is gone and left no exit status")));
    }
  }
  return absl::OkStatus();
}

absl::Status ContainerManager::Logs(absl::string_view id_or_name, const LogsOptions& options,
                                    const std::function<bool(const shim::LogEntry&)>& sink) {
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(id, ResolveLocked(id_or_name));
  }
  const std::string dir = LogDir(id);
  const std::string state_dir = StateDir(id);
  const std::string current = JoinPath(dir, shim::kLogFile);
  const std::string exit_file = JoinPath(state_dir, shim::kExitFile);
  auto running = [&] {
    bool no_restart = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = entries_.find(id);
      if (it == entries_.end() || (it->second.info.state != ContainerState::kRunning &&
                                   it->second.info.state != ContainerState::kRestarting)) {
        return false;
      }
      no_restart = it->second.info.restart.kind == RestartPolicy::Kind::kNo;
    }
    // The shim publishes exit.json after the last output (and inotify tells
    // us at once), possibly before the supervisor has recorded the exit: a
    // container that will not restart is done then.
    struct stat st;
    return !(no_restart && ::stat(exit_file.c_str(), &st) == 0);
  };
  auto wanted = [&](const shim::LogEntry& e) {
    if (e.time < options.since) return false;
    if (e.stream == "stderr" ? !options.stderr : !options.stdout) return false;
    return true;
  };
  auto emit = [&](shim::LogEntry e) {
    if (options.timestamps) e.data = absl::StrCat(shim::FormatTimestamp(e.time), " ", e.data);
    return sink(e);
  };

  // A container already done has written all its output: following it is
  // reading the backlog (checked first, as in the loop below).
  const bool done_before_backlog = options.follow && !running();
  // The backlog: rotated files, then the current one (kept open to follow).
  std::deque<shim::LogEntry> backlog;
  auto collect = [&](shim::LogEntry e) {
    if (!wanted(e)) return true;
    backlog.push_back(std::move(e));
    if (options.tail >= 0 && backlog.size() > static_cast<size_t>(options.tail)) {
      backlog.pop_front();
    }
    return true;
  };
  UniqueFd fd;
  std::string pending;
  auto read_fd = [&](const std::function<bool(shim::LogEntry)>& fn) -> absl::StatusOr<bool> {
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(fd.get(), buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus(errno, absl::StrCat("read ", current));
      if (n == 0) return true;
      pending.append(buf, static_cast<size_t>(n));
      if (!shim::ConsumeLogLines(&pending, fn)) return false;
    }
  };
  for (const std::string& f : shim::ListLogFiles(dir)) {
    if (f == current) continue;
    auto data = ReadFile(f);
    if (!data.ok()) {
      if (absl::IsNotFound(data.status())) continue;  // rotated away meanwhile
      return data.status();
    }
    shim::ConsumeLogLines(&*data, collect);
  }
  fd.Reset(::open(current.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.valid()) {
    ASSIGN_OR_RETURN(bool unused, read_fd(collect));
    (void)unused;
  }
  while (!backlog.empty()) {
    if (!emit(std::move(backlog.front()))) return absl::OkStatus();
    backlog.pop_front();
  }
  if (!options.follow || done_before_backlog) return absl::OkStatus();

  UniqueFd in(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!in.valid()) return ErrnoStatus(errno, "inotify_init1");
  // Closing an inotify descriptor waits for an SRCU grace period (~10 ms):
  // done on a detached thread so the end of the stream is not delayed.
  struct CloseInBackground {
    UniqueFd* fd;
    ~CloseInBackground() {
      std::thread([f = fd->Release()] { ::close(f); }).detach();
    }
  } close_later{&in};
  // New output in the log directory; exit.json in the state directory.
  for (const std::string& d : {dir, state_dir}) {
    if (::inotify_add_watch(in.get(), d.c_str(),
                            IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
      return ErrnoStatus(errno, absl::StrCat("inotify_add_watch ", d));
    }
  }
  auto forward = [&](shim::LogEntry e) { return !wanted(e) || emit(std::move(e)); };
  for (;;) {
    if (options.cancelled && options.cancelled()) return absl::OkStatus();
    // Checked before reading: the shim writes the last output before the
    // exit is recorded, so one more read after this sees all of it.
    const bool done = !running();
    if (fd.valid()) {
      ASSIGN_OR_RETURN(bool go_on, read_fd(forward));
      if (!go_on) return absl::OkStatus();
    }
    // Rotation (or first creation): switch to the new log.jsonl once the
    // old one is read to its end.
    struct stat cur, open_st;
    if (::stat(current.c_str(), &cur) == 0 &&
        (!fd.valid() || (::fstat(fd.get(), &open_st) == 0 && open_st.st_ino != cur.st_ino))) {
      fd.Reset(::open(current.c_str(), O_RDONLY | O_CLOEXEC));
      pending.clear();
      continue;
    }
    if (done) return absl::OkStatus();
    struct pollfd pfd = {in.get(), POLLIN, 0};
    int rc = ::poll(&pfd, 1, 100);
    if (rc > 0) {
      char ev[4096];
      while (::read(in.get(), ev, sizeof(ev)) > 0) {
      }
    }
  }
}

absl::StatusOr<std::unique_ptr<exec::Process>> ContainerManager::Exec(
    absl::string_view id_or_name, const exec::ProcessSpec& process, const exec::Stdio& stdio,
    bool privileged) {
  pid_t pid;
  exec::ExecOptions options;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(std::string id, ResolveLocked(id_or_name));
    const ContainerInfo& c = entries_.at(id).info;
    if (c.state != ContainerState::kRunning || c.pid <= 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("container ", c.name, " (", id, ") is not running: cannot exec in it"));
    }
    if (c.paused) {
      return absl::FailedPreconditionError(
          absl::StrCat("container ", c.name, " (", id, ") is paused: unpause it before exec"));
    }
    pid = c.pid;
    options.privileged = c.spec.privileged || privileged;
    options.seccomp = c.spec.seccomp;
  }
  return executor_.Exec(pid, process, stdio, options);
}

absl::StatusOr<std::unique_ptr<shim::AttachStream>> ContainerManager::Attach(
    absl::string_view id_or_name, bool stdin) {
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(id, ResolveLocked(id_or_name));
    if (entries_.at(id).info.state != ContainerState::kRunning) {
      return absl::FailedPreconditionError(absl::StrCat("container ", id, " is not running"));
    }
  }
  auto a = shim::ShimClient(StateDir(id)).Attach(stdin);
  if (absl::IsUnavailable(a.status())) {
    return absl::FailedPreconditionError(absl::StrCat("container ", id, " is not running"));
  }
  return a;
}

absl::Status ContainerManager::Resize(absl::string_view id_or_name, uint16_t rows, uint16_t cols) {
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(id, ResolveLocked(id_or_name));
    if (entries_.at(id).info.state != ContainerState::kRunning) {
      return absl::FailedPreconditionError(absl::StrCat("container ", id, " is not running"));
    }
  }
  absl::Status s = shim::ShimClient(StateDir(id)).Resize(rows, cols);
  if (absl::IsNotFound(s) || absl::IsUnavailable(s)) {
    return absl::FailedPreconditionError(absl::StrCat("container ", id, " is not running"));
  }
  return s;
}

}  // namespace pier::runtime
