// pier-registry: the Ship service. Wiring only; see docs/architecture.md.
#include "lib/rpc/daemon.h"

int main(int argc, char** argv) {
  pier::rpc::DaemonSpec spec;
  spec.name = "pier-registry";
  spec.default_listen = "127.0.0.1:5050";
  spec.default_root = "/var/lib/pier/registry";
  return pier::rpc::RunDaemon(spec, argc, argv);
}
