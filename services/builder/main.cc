// pier-builder: the Build service. Wiring only; see docs/architecture.md.
#include "lib/rpc/daemon.h"

int main(int argc, char** argv) {
  pier::rpc::DaemonSpec spec;
  spec.name = "pier-builder";
  spec.default_listen = "127.0.0.1:5051";
  spec.default_root = "/var/lib/pier/builder";
  return pier::rpc::RunDaemon(spec, argc, argv);
}
