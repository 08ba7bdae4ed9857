// pier-runtime: the Run service, one per node. Wiring only; see
// docs/architecture.md.
#include "lib/rpc/daemon.h"

int main(int argc, char** argv) {
  pier::rpc::DaemonSpec spec;
  spec.name = "pier-runtime";
  spec.default_listen = "unix:///run/pier/runtime.sock";
  spec.default_root = "/var/lib/pier/runtime";
  return pier::rpc::RunDaemon(spec, argc, argv);
}
