// pier-runtime: the Run service, one per node. Wiring only; see
// docs/architecture.md.
//
// Data under --root:
//   meta/        RocksDB: one KvStore shared by the image store ("image/"),
//                its snapshotter ("snap/"), the container manager
//                ("containers/", "container-names/") and the container
//                service's records ("svc/container/")
//   content/     blobs (manifests, configs, layers)
//   images/      the snapshotter (committed layers, active snapshots)
//   containers/  per-container log files
//   cni/         CNI state: host-local's IP leases, saved bridge results
//   tmp/         scratch (exports)
// and under --exec-root (default /run/pier/runtime with the default --root,
// else <root>/run; best on a tmpfs, as /run is), what lives as long as the
// machine runs:
//   containers/  per-container state directories (spec, shim socket, pids,
//                exit status)
//   rootfs/      mount points of containers' root file systems
//   netns/       bridge containers' network namespaces (bind mounts of nsfs)
//
// Pulls and pushes always go over the OCI distribution HTTP API, also to a
// pier-registry (which serves that API beside its gRPC one); loopback
// registries are plain http, --insecure-registry hosts too.
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "lib/common/fs.h"
#include "lib/common/log.h"
#include "lib/common/process.h"
#include "lib/common/status.h"
#include "lib/content/filesystem_driver.h"
#include "lib/image/store.h"
#include "lib/kv/kv_store.h"
#include "lib/rpc/daemon.h"
#include "services/runtime/containers/manager.h"
#include "services/runtime/events/event_bus.h"
#include "services/runtime/network/cni.h"
#include "services/runtime/server/container_service.h"
#include "services/runtime/server/image_service.h"
#include "services/runtime/server/runtime_context.h"
#include "services/runtime/server/volume_service.h"

namespace {

struct Flags {
  std::string default_registry = "docker.io";
  std::vector<std::string> insecure;
  std::vector<std::string> aliases;
  std::string shim;
  std::string exec_root;
  std::string credentials;
  std::string bridge_subnet = "10.88.0.0/16";
  std::string cni_bin_dir = "/usr/lib/cni";
  std::string registry_ca;
  std::string registry_cert;
  std::string registry_key;
};

struct State {
  pier::runtime::EventBus events;
  std::unique_ptr<pier::kv::KvStore> meta;
  std::unique_ptr<pier::content::ContentStore> content;
  std::unique_ptr<pier::image::ImageStore> images;
  std::unique_ptr<pier::runtime::ContainerManager> containers;
  pier::runtime::RuntimeContext ctx;
  std::unique_ptr<pier::runtime::ImageServiceImpl> image_service;
  std::unique_ptr<pier::runtime::ContainerServiceImpl> container_service;
  std::unique_ptr<pier::runtime::SystemServiceImpl> system_service;
  std::unique_ptr<pier::runtime::VolumeStore> volumes;
  std::unique_ptr<pier::runtime::VolumeServiceImpl> volume_service;
  std::unique_ptr<pier::runtime::network::CniNetwork> cni;
};

std::string ShimBesideSelf() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "pier-shim";
  return pier::JoinPath(pier::Dirname(std::string(buf, static_cast<size_t>(n))), "pier-shim");
}

}  // namespace

int main(int argc, char** argv) {
  pier::InitProcess();
  Flags f;
  State state;
  pier::rpc::DaemonSpec spec;
  spec.name = "pier-runtime";
  spec.default_listen = "unix:///run/pier/runtime.sock";
  spec.default_root = "/var/lib/pier/runtime";
  spec.add_flags = [&](pier::FlagSet& flags) {
    flags.String("default-registry", "", &f.default_registry,
                 "registry of short image names (default docker.io)");
    flags.StringList("insecure-registry", "", &f.insecure,
                     "registry host[:port] to reach over plain http (repeatable; loopback "
                     "registries always are)");
    flags.String("exec-root", "", &f.exec_root,
                 "directory of per-container run state, best on a tmpfs (default "
                 "/run/pier/runtime with the default --root, else <root>/run)");
    flags.String("bridge-subnet", "", &f.bridge_subnet,
                 "IPv4 subnet of the pier0 bridge network (default 10.88.0.0/16)");
    flags.String("cni-bin-dir", "", &f.cni_bin_dir,
                 "directory of the CNI plugins (default /usr/lib/cni)");
    flags.String("shim", "", &f.shim, "path of pier-shim (default: beside pier-runtime)");
    flags.String("registry-ca", "", &f.registry_ca,
                 "PEM CA to verify registries with (besides the system CAs)");
    flags.String("registry-tls-cert", "", &f.registry_cert,
                 "PEM client certificate for registries that require mTLS");
    flags.String("registry-tls-key", "", &f.registry_key,
                 "PEM private key for --registry-tls-cert");
    flags.StringList("registry-alias", "", &f.aliases,
                     "NAME=HOST[:PORT]: reach registry NAME at that address, e.g. "
                     "localhost=127.0.0.1:5000 (repeatable)");
    flags.String("credentials", "", &f.credentials,
                 "registry credentials file as `pier login` writes it (default: none)");
  };
  spec.setup = [&](pier::rpc::DaemonContext& ctx) -> absl::Status {
    const std::string& root = ctx.options().root;
    for (const char* sub : {"/content", "/images", "/containers", "/tmp"}) {
      RETURN_IF_ERROR(pier::MakeDirs(root + sub, 0700));
    }
    const std::string run_root = !f.exec_root.empty()        ? f.exec_root
                                 : root == spec.default_root ? "/run/pier/runtime"
                                                             : root + "/run";
    for (const char* sub : {"/containers", "/rootfs", "/netns"}) {
      RETURN_IF_ERROR(pier::MakeDirs(run_root + sub, 0700));
    }
    ASSIGN_OR_RETURN(state.meta, pier::kv::OpenRocksDb(root + "/meta"));
    state.content = std::make_unique<pier::content::ContentStore>(
        std::make_unique<pier::content::FilesystemDriver>(root + "/content"));
    pier::image::ImageStoreOptions image_options;
    image_options.default_registry = f.default_registry;
    ASSIGN_OR_RETURN(state.images,
                     pier::image::ImageStore::Open(root + "/images", state.meta.get(),
                                                   state.content.get(), image_options));
    pier::runtime::ManagerOptions manager_options;
    manager_options.root = root;
    manager_options.run_root = run_root;
    manager_options.kv = state.meta.get();
    manager_options.shim_path = f.shim.empty() ? ShimBesideSelf() : f.shim;
    manager_options.events = &state.events;
    ASSIGN_OR_RETURN(state.containers, pier::runtime::ContainerManager::Open(manager_options));

    state.ctx.root = root;
    state.ctx.run_root = run_root;
    state.ctx.default_registry = f.default_registry;
    state.ctx.insecure = f.insecure;
    RETURN_IF_ERROR(pier::distribution::ParseRegistryAliases(f.aliases, &state.ctx.aliases));
    state.ctx.credentials_path = f.credentials;
    state.ctx.registry_ca = f.registry_ca;
    state.ctx.registry_cert = f.registry_cert;
    state.ctx.registry_key = f.registry_key;
    state.ctx.images = state.images.get();
    state.ctx.containers = state.containers.get();
    state.ctx.kv = state.meta.get();
    state.ctx.events = &state.events;
    state.volumes =
        std::make_unique<pier::runtime::VolumeStore>(root, state.meta.get(), &state.events);
    state.ctx.volumes = state.volumes.get();
    pier::runtime::network::CniOptions cni_options;
    cni_options.subnet = f.bridge_subnet;
    cni_options.bin_dir = f.cni_bin_dir;
    cni_options.state_dir = root + "/cni";
    state.cni = std::make_unique<pier::runtime::network::CniNetwork>(cni_options);
    state.ctx.cni = state.cni.get();
    state.image_service = std::make_unique<pier::runtime::ImageServiceImpl>(&state.ctx);
    state.container_service = std::make_unique<pier::runtime::ContainerServiceImpl>(&state.ctx);
    state.system_service = std::make_unique<pier::runtime::SystemServiceImpl>(&state.ctx);
    // Every start (also restarts after recovery) first re-creates what a
    // host reboot took away; then the previous daemon's containers are
    // adopted or restarted.
    pier::runtime::ContainerServiceImpl* containers = state.container_service.get();
    state.containers->SetBeforeStart(
        [containers](pier::runtime::ContainerInfo* c) { return containers->PrepareStart(c); });
    absl::Status recovered = state.containers->Recover();
    if (!recovered.ok()) {
      PIER_LOG(WARNING) << "recovering containers: " << recovered;
    }
    ctx.RegisterService(state.image_service.get());
    ctx.RegisterService(state.container_service.get());
    ctx.RegisterService(state.system_service.get());
    state.volume_service = std::make_unique<pier::runtime::VolumeServiceImpl>(&state.ctx);
    ctx.RegisterService(state.volume_service.get());
    // The manager goes first at shutdown (containers keep running), then the
    // stores it and the services borrow.
    ctx.OnStop([&state] {
      state.containers.reset();
      state.images.reset();
      state.meta.reset();
    });
    return absl::OkStatus();
  };
  return pier::rpc::RunDaemon(spec, argc, argv);
}
