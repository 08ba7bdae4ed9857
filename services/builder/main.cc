// pier-builder: the Build service. Wiring only; see docs/architecture.md.
//
// Data under --root: content/ (blobs: base image layers, built layers),
// meta/ (RocksDB: image records, snapshots, the layer cache), images/ (the
// snapshotter), contexts/ (build contexts in transfer) and mnt/ (mount
// points of running steps).
#include <memory>

#include "lib/common/fs.h"
#include "lib/common/process.h"
#include "lib/common/status.h"
#include "lib/content/filesystem_driver.h"
#include "lib/distribution/registry_client.h"
#include "lib/exec/native_executor.h"
#include "lib/image/store.h"
#include "lib/kv/kv_store.h"
#include "lib/rpc/daemon.h"
#include "services/builder/plan/builder.h"
#include "services/builder/server/builder_service.h"

namespace {

struct State {
  std::unique_ptr<pier::content::ContentStore> content;
  std::unique_ptr<pier::kv::KvStore> meta;
  std::unique_ptr<pier::image::ImageStore> images;
  std::unique_ptr<pier::exec::NativeExecutor> executor;
  std::unique_ptr<pier::builder::Builder> builder;
  std::unique_ptr<pier::builder::BuilderService> service;
};

}  // namespace

int main(int argc, char** argv) {
  pier::InitProcess();
  State state;
  pier::distribution::RegistryClientOptions registry_options;
  std::vector<std::string> aliases;
  pier::rpc::DaemonSpec spec;
  spec.name = "pier-builder";
  spec.default_listen = "127.0.0.1:5051";
  spec.default_root = "/var/lib/pier/builder";
  int64_t max_parallel_stages = 3;
  spec.add_flags = [&](pier::FlagSet& flags) {
    flags.Int("max-parallel-stages", "", &max_parallel_stages,
              "independent stages of one build run at once, at most this many (default 3)");
    flags.String("registry-ca", "", &registry_options.ca_file,
                 "PEM CA to verify registries with (besides the system CAs)");
    flags.String("registry-tls-cert", "", &registry_options.cert_file,
                 "PEM client certificate for registries that require mTLS");
    flags.String("registry-tls-key", "", &registry_options.key_file,
                 "PEM private key for --registry-tls-cert");
    flags.StringList("registry-alias", "", &aliases,
                     "NAME=HOST[:PORT]: reach registry NAME at that address, e.g. "
                     "localhost=127.0.0.1:5000 (repeatable)");
  };
  spec.setup = [&](pier::rpc::DaemonContext& ctx) -> absl::Status {
    if (max_parallel_stages < 1) {
      return absl::InvalidArgumentError("--max-parallel-stages must be at least 1");
    }
    const std::string& root = ctx.options().root;
    RETURN_IF_ERROR(pier::distribution::ParseRegistryAliases(aliases, &registry_options.aliases));
    RETURN_IF_ERROR(pier::MakeDirs(root + "/content", 0700));
    (void)pier::RemoveAll(root + "/contexts");
    (void)pier::RemoveAll(root + "/mnt");
    (void)pier::RemoveAll(root + "/git");     // ADD git checkouts
    (void)pier::RemoveAll(root + "/rootfs");  // type=local scratch trees
    state.content = std::make_unique<pier::content::ContentStore>(
        std::make_unique<pier::content::FilesystemDriver>(root + "/content"));
    ASSIGN_OR_RETURN(state.meta, pier::kv::OpenRocksDb(root + "/meta"));
    ASSIGN_OR_RETURN(state.images, pier::image::ImageStore::Open(root + "/images", state.meta.get(),
                                                                 state.content.get()));
    state.executor = std::make_unique<pier::exec::NativeExecutor>();
    state.builder = std::make_unique<pier::builder::Builder>(state.images.get(), state.meta.get(),
                                                             state.executor.get(), root,
                                                             static_cast<int>(max_parallel_stages));
    // With registry TLS settings, loopback registries are reached over https
    // too (they are the suite's own registry, serving TLS).
    registry_options.force_tls =
        !registry_options.ca_file.empty() || !registry_options.cert_file.empty();
    state.builder->set_registry_options(registry_options);
    state.service = std::make_unique<pier::builder::BuilderService>(state.builder.get(), root);
    ctx.RegisterService(state.service.get());
    return absl::OkStatus();
  };
  return pier::rpc::RunDaemon(spec, argc, argv);
}
