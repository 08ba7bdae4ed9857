// pier-registry: the Ship service. Wiring only; see docs/architecture.md.
//
// Data under --root: content/ (blobs and upload ingests, see
// lib/content/content_store.h) and meta/ (RocksDB, see
// services/registry/storage/registry.h).
#include <memory>

#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "lib/content/filesystem_driver.h"
#include "lib/kv/kv_store.h"
#include "lib/rpc/daemon.h"
#include "services/registry/server/registry_service.h"
#include "services/registry/storage/registry.h"

namespace {

struct State {
  std::unique_ptr<pier::content::ContentStore> content;
  std::unique_ptr<pier::kv::KvStore> meta;
  std::unique_ptr<pier::registry::Registry> registry;
  std::unique_ptr<pier::registry::RegistryService> grpc_service;
};

}  // namespace

int main(int argc, char** argv) {
  State state;
  pier::rpc::DaemonSpec spec;
  spec.name = "pier-registry";
  spec.default_listen = "127.0.0.1:5050";
  spec.default_root = "/var/lib/pier/registry";
  spec.setup = [&](pier::rpc::DaemonContext& ctx) -> absl::Status {
    const std::string& root = ctx.options().root;
    RETURN_IF_ERROR(pier::MakeDirs(root + "/content", 0700));
    state.content = std::make_unique<pier::content::ContentStore>(
        std::make_unique<pier::content::FilesystemDriver>(root + "/content"));
    ASSIGN_OR_RETURN(state.meta, pier::kv::OpenRocksDb(root + "/meta"));
    state.registry =
        std::make_unique<pier::registry::Registry>(state.content.get(), state.meta.get());
    state.grpc_service = std::make_unique<pier::registry::RegistryService>(state.registry.get());
    ctx.RegisterService(state.grpc_service.get());
    return absl::OkStatus();
  };
  return pier::rpc::RunDaemon(spec, argc, argv);
}
