// ContainerManager: the runtime's container lifecycle ("Run"), independent
// of images: the caller gives an exec::ContainerSpec whose rootfs (or rootfs
// mounts) is already prepared.
//
// Each container has a record in the KvStore ("containers/<id>" -> JSON,
// "container-names/<name>" -> id) and a state directory
// `<root>/containers/<id>/` (layout: shim/state_dir.h). Start() spawns one
// pier-shim per run; the shim is the container's parent and detaches from
// the runtime, so containers survive the manager (and the daemon) going
// away. A supervisor thread keeps a `wait` connection to every shim and,
// when one reports an exit, records it and applies the restart policy with
// exponential back-off. Recover() re-attaches to the shims of a previous
// daemon (or records the exits that happened meanwhile).
//
// Ownership: the manager borrows the KvStore (it must outlive the manager;
// RocksDB allows one opener, so a new manager on the same data needs the old
// one destroyed and its store closed first). Destroying the manager stops
// the supervisor but leaves containers and shims running.
// Thread safety: every method may be called from any thread. Lifecycle
// calls on the same container are serialised; Wait() and Logs(follow) block
// only the calling thread.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/common/fs.h"
#include "lib/exec/executor.h"
#include "lib/exec/native_executor.h"
#include "lib/exec/spec.h"
#include "lib/kv/kv_store.h"
#include "services/runtime/events/event_bus.h"
#include "services/runtime/shim/log_file.h"
#include "services/runtime/shim/protocol.h"

namespace pier::runtime {

// Docker's restart policies: "no", "always", "on-failure[:N]",
// "unless-stopped". Stop() (and Remove()) suppress restarts until the next
// Start(); a Kill() does not.
struct RestartPolicy {
  enum class Kind { kNo, kAlways, kOnFailure, kUnlessStopped };
  Kind kind = Kind::kNo;
  int max_retries = 0;  // on-failure: give up after this many restarts (0: never)

  // InvalidArgument for anything else (naming it).
  static absl::StatusOr<RestartPolicy> Parse(absl::string_view text);
  std::string ToString() const;
};

enum class ContainerState {
  kCreated,     // recorded, never started (or its start failed)
  kRunning,     // a shim and the container's init are alive
  kRestarting,  // exited; a restart is scheduled (back-off)
  kExited,      // exited (or stopped); exit status recorded
};
absl::string_view ContainerStateName(ContainerState state);

struct CreateOptions {
  std::string name;          // unique on the node; empty: "pier_" + the id's first 12 chars
  std::string image;         // the image reference, recorded only
  exec::ContainerSpec spec;  // spec.id is replaced by the container id
  RestartPolicy restart;
  int stop_signal = 0;                              // 0: SIGTERM
  absl::Duration stop_timeout = absl::Seconds(10);  // Stop()'s default
  bool open_stdin = false;                          // keep stdin open for Attach(stdin) (non-tty)
  bool auto_remove = false;  // removed (see SetAutoRemove) once its main process exits
  std::map<std::string, std::string> labels;  // recorded; attributes of its events
};

// One resource sample of a running container (docker stats), from its
// cgroup and its network namespace.
struct ContainerStats {
  absl::Time time;
  int64_t cpu_usage_ns = 0;         // CPU time of its processes since it started
  int64_t system_cpu_usage_ns = 0;  // the host's CPU time since boot (/proc/stat)
  int online_cpus = 0;
  int64_t memory_usage_bytes = 0;  // without inactive page cache, as docker shows it
  int64_t memory_limit_bytes = 0;  // the host's memory when unlimited
  int64_t memory_cache_bytes = 0;
  int64_t pids = 0;
  int64_t pids_limit = 0;  // 0: unlimited
  int64_t network_rx_bytes = 0, network_tx_bytes = 0;
  int64_t block_read_bytes = 0, block_write_bytes = 0;
};

// A container as List() and Inspect() report it.
struct ContainerInfo {
  std::string id;
  std::string name;
  std::string image;
  ContainerState state = ContainerState::kCreated;
  pid_t pid = 0;          // the init's host pid while running
  pid_t shim_pid = 0;     // the shim of the current (or last) run
  exec::ExitStatus exit;  // of the last run (when it has exited)
  std::string error;      // the last start error ("" when it started)
  absl::Time created_at = absl::InfinitePast();
  absl::Time started_at = absl::InfinitePast();
  absl::Time finished_at = absl::InfinitePast();
  RestartPolicy restart;
  int restart_count = 0;
  bool manually_stopped = false;
  int stop_signal = 0;
  absl::Duration stop_timeout = absl::Seconds(10);
  bool open_stdin = false;
  bool paused = false;  // running, its processes frozen (Pause)
  bool auto_remove = false;
  std::map<std::string, std::string> labels;
  exec::ContainerSpec spec;
};

struct LogsOptions {
  bool follow = false;  // keep streaming until the container stops or `cancelled`
  int64_t tail = -1;    // only the last N entries (of the existing ones); -1: all
  absl::Time since = absl::InfinitePast();  // entries at or after this time
  bool timestamps = false;                  // prefix each entry's data with its time and a space
  bool stdout = true;
  bool stderr = true;
  // Polled at least every 100 ms while following; true ends Logs() with OK.
  std::function<bool()> cancelled;
};

struct ManagerOptions {
  std::string root;  // logs under <root>/containers/<id>
  // Per-container run state (spec.json, pid files, the shim's socket,
  // exit.json) under <run_root>/containers/<id>: files that live as long as
  // the machine runs, best on a tmpfs (as /run is). Empty: <root>/run.
  std::string run_root;
  kv::KvStore* kv = nullptr;  // borrowed, must outlive the manager
  std::string shim_path;      // empty: pier-shim beside /proc/self/exe
  bool standby_shim = true;   // keep one shim started ahead of need
  absl::Duration start_timeout = absl::Seconds(30);
  absl::Duration restart_backoff_initial = absl::Milliseconds(100);
  absl::Duration restart_backoff_max = absl::Minutes(1);
  int64_t log_max_size = 10 << 20;  // per log file
  int log_max_files = 3;
  // Where lifecycle events go (create, start, restart, kill, die, oom, stop,
  // destroy); borrowed, may be null.
  EventBus* events = nullptr;
};

class ContainerManager {
 public:
  // Loads the records and starts the supervisor. Call Recover() next to
  // re-attach to running containers. InvalidArgument without root or kv;
  // the KvStore's or file system's error otherwise.
  static absl::StatusOr<std::unique_ptr<ContainerManager>> Open(ManagerOptions options);
  ~ContainerManager();
  ContainerManager(const ContainerManager&) = delete;
  ContainerManager& operator=(const ContainerManager&) = delete;

  // Re-attaches to every shim still alive (checked by /proc/<pid>/cmdline),
  // records the exits that happened while no manager watched (exit.json),
  // and applies restart policies to them. A container whose shim is gone
  // without an exit.json (a host reboot, a killed shim) is marked exited
  // (code 255) with an error, what is left of its cgroup is killed, and then
  // its restart policy applies. The first KvStore error, if any.
  absl::Status Recover();

  // Runs before every start of a container (Start(), restart policies,
  // recovery), e.g. to re-create resources a host reboot took away (its
  // network namespace); its error fails that start as an executor error
  // would. The hook may complete the copy of the container's spec that this
  // start uses (e.g. the path of a namespace to join, which can change from
  // one start to the next); the recorded spec stays as created. Set it
  // before Recover(). Called without the manager's locks.
  void SetBeforeStart(std::function<absl::Status(ContainerInfo*)> hook);

  // Records a new container (state created) and writes its state directory
  // with spec.json. Returns the id. AlreadyExists when the name is taken;
  // InvalidArgument for a bad name or a spec without args or rootfs.
  absl::StatusOr<std::string> Create(const CreateOptions& options);

  // Starts the container through a new pier-shim and returns once the init
  // has exec'd. OK when already running. NotFound for an unknown id; the
  // executor's error as-is (e.g. NotFound "exec /bin/nope: No such file or
  // directory"), also recorded in ContainerInfo::error; DeadlineExceeded
  // when the shim does not report within start_timeout.
  absl::Status Start(absl::string_view id);

  // Sends the stop signal, waits up to `timeout` (default: the container's
  // stop_timeout), then SIGKILL, and waits for the exit. Suppresses restarts.
  // OK when not running. NotFound for an unknown id; DeadlineExceeded when
  // even SIGKILL did not end it within 30 s.
  absl::Status Stop(absl::string_view id, std::optional<absl::Duration> timeout = std::nullopt);

  // Sends `signal` to the init. FailedPrecondition when not running.
  absl::Status Kill(absl::string_view id, int signal);

  // Blocks until the current run exits (the next exit when running or
  // restarting) and returns its status; at once when exited.
  // FailedPrecondition when never started; NotFound when removed meanwhile;
  // DeadlineExceeded after `timeout`.
  absl::StatusOr<exec::ExitStatus> Wait(absl::string_view id,
                                        absl::Duration timeout = absl::InfiniteDuration());

  // Deletes the record and the state directory. FailedPrecondition when
  // running (or restarting) and not `force`; with `force` it is SIGKILLed
  // first.
  absl::Status Remove(absl::string_view id, bool force);

  // By id or name. NotFound when unknown.
  absl::StatusOr<ContainerInfo> Inspect(absl::string_view id_or_name);
  std::vector<ContainerInfo> List();

  // Calls `sink` for each log entry in time order (stopping when it returns
  // false). NotFound for an unknown id; file errors otherwise.
  absl::Status Logs(absl::string_view id, const LogsOptions& options,
                    const std::function<bool(const shim::LogEntry&)>& sink);

  // Starts `process` in the running container (its namespaces, cgroup and
  // security settings; `privileged` lifts the seccomp filter and device
  // restrictions for this process even in an unprivileged container) with
  // `stdio`; the caller waits for and cleans up the returned process.
  // FailedPrecondition (naming the container) when not running; the
  // executor's error otherwise.
  absl::StatusOr<std::unique_ptr<exec::Process>> Exec(absl::string_view id,
                                                      const exec::ProcessSpec& process,
                                                      const exec::Stdio& stdio,
                                                      bool privileged = false);

  // Streams the container's output (and stdin when `stdin`) through its
  // shim. FailedPrecondition when not running.
  absl::StatusOr<std::unique_ptr<shim::AttachStream>> Attach(absl::string_view id, bool stdin);
  // Resizes the container's tty. FailedPrecondition when not running or
  // without a tty.
  absl::Status Resize(absl::string_view id, uint16_t rows, uint16_t cols);

  // Freezes (pause) or thaws (unpause) every process of a running
  // container (docker pause/unpause). FailedPrecondition when it is not
  // running, or already in that state.
  absl::Status Pause(absl::string_view id_or_name, bool pause);

  // A resource sample of a running container. FailedPrecondition when it is
  // not running; the failing cgroup file's error otherwise.
  absl::StatusOr<ContainerStats> Stats(absl::string_view id_or_name);

  // <run_root>/containers/<id>: the shim's files.
  std::string StateDir(absl::string_view id) const;
  // <root>/containers/<id>: the container's log files (kept across reboots).
  std::string LogDir(absl::string_view id) const;

  // `remove` is called, on a worker thread of the manager, for each
  // container created with auto_remove once its exit is recorded (or found
  // at Recover). nullptr stops the calls; when SetAutoRemove returns, no
  // call of the previous function is running.
  void SetAutoRemove(std::function<void(const std::string& id)> remove);

  // Waits until the container is removed. OK when it is (or never was);
  // DeadlineExceeded at `deadline`.
  absl::Status WaitRemoved(absl::string_view id, absl::Time deadline);

 private:
  struct Entry {
    ContainerInfo info;
    std::shared_ptr<std::mutex> op_mu = std::make_shared<std::mutex>();
    uint64_t exits = 0;  // bumped on every recorded exit (Wait's generation)
    int backoff_step = 0;
  };

  explicit ContainerManager(ManagerOptions options);
  absl::Status Load();
  absl::Status PersistLocked(const Entry& e);
  absl::StatusOr<std::string> ResolveLocked(absl::string_view id_or_name) const;
  absl::Status StartLocked(const std::string& id);  // op_mu held, mu_ not
  absl::StatusOr<shim::ShimState> SpawnShim(const std::string& id, const ContainerInfo& info);
  // Starts a pier-shim in standby (--standby-fd) and returns our end of its
  // socket once the shim has detached.
  absl::StatusOr<UniqueFd> SpawnStandbyShim();
  UniqueFd TakeStandbyShim();  // an idle shim's socket, or an invalid fd
  void KeepStandbyShim();      // the standby thread: one idle shim at all times
  void AddWatch(const std::string& id, UniqueFd fd);
  void HandleExit(const std::string& id, absl::StatusOr<shim::ExitRecord> exit);
  // Applies the restart policy to the exited container `e` (mu_ held).
  void MaybeScheduleRestartLocked(const std::string& id, Entry& e);
  void Restart(const std::string& id);
  void Supervise();
  void Wake();
  bool WaitExitLocked(std::unique_lock<std::mutex>& lock, const std::string& id, uint64_t gen,
                      absl::Time deadline);
  std::shared_ptr<std::mutex> OpMutex(const std::string& id);
  // Publishes a container event about `c` (its name, image and labels as
  // attributes, plus `extra`). Called with mu_ held, so that events of one
  // container keep the order of its state changes.
  void PublishLocked(const ContainerInfo& c, absl::string_view action,
                     std::map<std::string, std::string> extra = {});

  ManagerOptions opts_;
  exec::NativeExecutor executor_;

  std::mutex mu_;
  std::condition_variable cv_;  // signalled on every exit and removal
  std::map<std::string, Entry> entries_;
  std::map<std::string, UniqueFd> watches_;     // id -> `wait` connection to its shim
  std::map<std::string, absl::Time> restarts_;  // id -> when to restart
  bool stopping_ = false;
  std::function<absl::Status(ContainerInfo*)> before_start_;  // guarded by mu_

  UniqueFd wake_fd_;  // eventfd that interrupts the supervisor's poll
  std::thread supervisor_;

  // One shim started ahead of need, so that a start does not wait for an
  // exec and the shim's two forks (a few ms, more on a loaded node).
  std::mutex standby_mu_;
  std::condition_variable standby_cv_;  // the standby was taken, or stopping
  UniqueFd standby_;                    // guarded by standby_mu_
  bool standby_stopping_ = false;       // guarded by standby_mu_
  std::thread standby_thread_;

  // Auto-removal: ids queued by HandleExit, removed by remover_.
  std::mutex remove_mu_;                                 // held while calling auto_remove_
  std::function<void(const std::string&)> auto_remove_;  // guarded by remove_mu_
  std::mutex remove_queue_mu_;
  std::condition_variable remove_cv_;
  std::deque<std::string> remove_queue_;  // guarded by remove_queue_mu_
  bool remove_stopping_ = false;          // guarded by remove_queue_mu_
  std::thread remover_;
};

}  // namespace pier::runtime
