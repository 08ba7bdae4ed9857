// ContainerService of pier-runtime (pier.runtime.v1.ContainerService): turns
// API container specs into exec::ContainerSpec (image config merged, an
// overlay snapshot as the root file system) for the ContainerManager, and
// streams logs and exports.
//
// Besides the manager's records, each container has a record in the kv
// store under "svc/container/<id>": the API Container message as created
// (spec with the generated name, image id, effective process config,
// rootfs path; the snapshot key is the rootfs directory's base name).
// Root file systems: the active snapshot <key> in the image store's
// snapshotter, mounted by the executor (inside the container's mount
// namespace) on <root>/rootfs/<key>.
//
// Networking: "bridge" (the default) and "none" get a network namespace
// pinned at <root>/netns/<key> (key = the rootfs snapshot key) at create
// time, with lo up; for bridge, CNI (bridge + host-local, then portmap for
// published ports) configures it before the container starts and the
// container joins it. Published host ports are checked against other
// containers' and host sockets (FailedPrecondition). RemoveContainer runs
// CNI DEL and removes the namespace file. "host" shares the host's.
//
// Ownership: borrows the RuntimeContext. Thread safety: calls run
// concurrently; the manager serialises lifecycle calls per container.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <mutex>
#include <string>

#include "pier/runtime/v1/runtime.grpc.pb.h"
#include "services/runtime/server/runtime_context.h"

namespace pier::runtime {

class ContainerServiceImpl final : public v1::ContainerService::Service {
 public:
  // Removes auto_remove containers after their exit (ContainerManager::SetAutoRemove).
  explicit ContainerServiceImpl(const RuntimeContext* ctx);
  ~ContainerServiceImpl() override;

  grpc::Status CreateContainer(grpc::ServerContext* context,
                               const v1::CreateContainerRequest* request,
                               v1::CreateContainerResponse* response) override;
  grpc::Status StartContainer(grpc::ServerContext* context,
                              const v1::StartContainerRequest* request,
                              v1::StartContainerResponse* response) override;
  grpc::Status RunContainer(grpc::ServerContext* context, const v1::RunContainerRequest* request,
                            v1::RunContainerResponse* response) override;
  grpc::Status StopContainer(grpc::ServerContext* context, const v1::StopContainerRequest* request,
                             v1::StopContainerResponse* response) override;
  grpc::Status RestartContainer(grpc::ServerContext* context,
                                const v1::RestartContainerRequest* request,
                                v1::RestartContainerResponse* response) override;
  grpc::Status KillContainer(grpc::ServerContext* context, const v1::KillContainerRequest* request,
                             v1::KillContainerResponse* response) override;
  grpc::Status RemoveContainer(grpc::ServerContext* context,
                               const v1::RemoveContainerRequest* request,
                               v1::RemoveContainerResponse* response) override;
  grpc::Status ListContainers(grpc::ServerContext* context,
                              const v1::ListContainersRequest* request,
                              v1::ListContainersResponse* response) override;
  grpc::Status InspectContainer(grpc::ServerContext* context,
                                const v1::InspectContainerRequest* request,
                                v1::InspectContainerResponse* response) override;
  grpc::Status WaitContainer(grpc::ServerContext* context, const v1::WaitContainerRequest* request,
                             v1::WaitContainerResponse* response) override;
  grpc::Status ContainerLogs(grpc::ServerContext* context, const v1::ContainerLogsRequest* request,
                             grpc::ServerWriter<v1::ContainerLogsResponse>* writer) override;
  grpc::Status ResizeTty(grpc::ServerContext* context, const v1::ResizeTtyRequest* request,
                         v1::ResizeTtyResponse* response) override;
  grpc::Status CommitContainer(grpc::ServerContext* context,
                               const v1::CommitContainerRequest* request,
                               v1::CommitContainerResponse* response) override;
  grpc::Status ExportContainer(grpc::ServerContext* context,
                               const v1::ExportContainerRequest* request,
                               grpc::ServerWriter<v1::ExportContainerResponse>* writer) override;
  grpc::Status PruneContainers(grpc::ServerContext* context,
                               const v1::PruneContainersRequest* request,
                               v1::PruneContainersResponse* response) override;
  // Runs before every start of a container (ContainerManager's before-start
  // hook): a container whose pinned network namespace is gone (a host
  // reboot unmounts it) gets a new one at the same path, and for bridge
  // networking CNI runs again (DEL of what is left, then ADD with the
  // recorded published ports); the new address is recorded. OK when the
  // namespace is in place or the container has none of its own; the
  // namespace's or CNI's error otherwise. A container in network, pid or ipc
  // mode container:<target> gets the target's namespace paths for this
  // start; FailedPrecondition (naming both) when the target is gone or not
  // running.
  absl::Status PrepareStart(ContainerInfo* start);

  // Pause/Unpause freeze and thaw the container's cgroup (FAILED_PRECONDITION
  // when not running or already so).
  grpc::Status PauseContainer(grpc::ServerContext* context,
                              const v1::PauseContainerRequest* request,
                              v1::PauseContainerResponse* response) override;
  grpc::Status UnpauseContainer(grpc::ServerContext* context,
                                const v1::UnpauseContainerRequest* request,
                                v1::UnpauseContainerResponse* response) override;
  // One sample, or (stream) one a second until the container stops.
  grpc::Status ContainerStats(grpc::ServerContext* context,
                              const v1::ContainerStatsRequest* request,
                              grpc::ServerWriter<v1::ContainerStatsResponse>* writer) override;

 private:
  // FailedPrecondition when a host port is taken (by another container or a
  // host socket).
  absl::Status CheckPorts(const std::vector<network::PortMapping>& ports) const;
  // The full id of the container `id_or_name` names (id, name or unique id
  // prefix). NotFound; InvalidArgument for an ambiguous prefix.
  absl::StatusOr<std::string> Resolve(absl::string_view id_or_name) const;
  // Waits for the next recorded exit of container `id` (a created one that
  // starts later included) and fills `response`; CANCELLED with the call.
  grpc::Status WaitNextExit(grpc::ServerContext* context, const std::string& id,
                            v1::WaitContainerResponse* response);
  // The id of the container a "container:<id or name>" `what` mode (network,
  // pid, ipc) names: NotFound or InvalidArgument naming the mode.
  absl::StatusOr<std::string> ModeTarget(const std::string& mode, absl::string_view what) const;
  // The host name of container `id`, which containers joining its network
  // namespace take.
  absl::StatusOr<std::string> TargetHostname(const std::string& id) const;
  // The path of the `kind` ("net", "pid", "ipc") namespace of the running container
  // that `mode` ("container:<id>") names, for container `id` to join.
  // FailedPrecondition when it is gone or not running.
  absl::StatusOr<std::string> SharedNamespace(const std::string& id, const std::string& mode,
                                              absl::string_view kind) const;

 public:
  // Exec: a new process in the container's namespaces and cgroup, a child
  // of the agent (not of the shim), killed when the RPC is cancelled.
  // Without a tty: stdin from the client's messages (pipes), stdout and
  // stderr back as output frames. With a tty: a pty made inside the
  // container (its devpts), sized from tty_size (80x24 when unset), resized
  // by stream messages or ResizeTty(exec_id); output comes as stdout until
  // no process holds the terminal any more (or, after the exec's exit, until
  // it falls silent: a background child may keep it open); close_stdin sends
  // the end-of-file character. detach_keys are not honoured yet.
  grpc::Status Exec(grpc::ServerContext* context,
                    grpc::ServerReaderWriter<v1::ExecResponse, v1::ExecRequest>* stream) override;

  // Attach through the container's shim. On a created container it answers
  // attached at once, waits for the start (polling) and then attaches,
  // replaying the log entries written between the start and the attachment
  // (so short-lived containers lose no complete lines; a partial line being
  // written at that instant may be lost). On an exited container it replays
  // the last run's log and sends its exit. AttachSpec.logs replays the log
  // first; since_start replays the running container's current run. The
  // detach keys are looked for in stdin (a partial match is held back);
  // once typed, the call answers detached and ends, the container keeps
  // running. stdout/stderr selection is not honoured (both streams are
  // sent).
  grpc::Status Attach(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::AttachResponse, v1::AttachRequest>* stream) override;

 private:
  // The stored API record of container `id`.
  absl::StatusOr<v1::Container> Record(const std::string& id) const;
  // Creates the container (snapshot, manager record, API record).
  absl::StatusOr<std::string> Create(const v1::ContainerSpec& spec, std::string* name,
                                     std::vector<std::string>* warnings);
  // Removes the container and its snapshot and records.
  absl::Status RemoveById(const std::string& id, bool force);

  const RuntimeContext* ctx_;

  // Execs in flight, by exec id, for ResizeTty. The Exec call owns the
  // process and removes its entry before destroying it.
  struct ExecEntry {
    std::string container_id;
    exec::Process* process = nullptr;
    bool tty = false;
  };
  std::mutex execs_mu_;
  std::map<std::string, ExecEntry> execs_;  // guarded by execs_mu_
};

// SystemService: Version, Info and Events.
class SystemServiceImpl final : public v1::SystemService::Service {
 public:
  explicit SystemServiceImpl(const RuntimeContext* ctx) : ctx_(ctx) {}
  grpc::Status Version(grpc::ServerContext* context, const v1::VersionRequest* request,
                       v1::VersionResponse* response) override;
  grpc::Status Info(grpc::ServerContext* context, const v1::InfoRequest* request,
                    v1::InfoResponse* response) override;
  // Events from the context's EventBus: a subscription (replaying the kept
  // events from `since`), filtered as the request says (ids match an
  // event's id, an id prefix, or its name), until `until` or cancellation.
  // A subscriber that falls too far behind ends with RESOURCE_EXHAUSTED;
  // the daemon never waits for it.
  grpc::Status Events(grpc::ServerContext* context, const v1::EventsRequest* request,
                      grpc::ServerWriter<v1::EventsResponse>* writer) override;

 private:
  const RuntimeContext* ctx_;
};

}  // namespace pier::runtime
