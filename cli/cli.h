// The `pier` command: shared pieces of every verb.
//
// Each verb lives in its own file and registers itself in kVerbs (main.cc).
// A verb gets its arguments after the verb name and the global options, and
// returns the process exit code: 0 success, 1 the operation failed, 2 bad
// usage (as docker does).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "lib/rpc/credentials.h"

namespace pier::cli {

// Where the services are, from --registry/--builder/--runtime, then
// PIER_REGISTRY / PIER_BUILDER / PIER_RUNTIME, then the config file
// ($PIER_CLI_CONFIG or ~/.config/pier/pier.conf), then the defaults
// 127.0.0.1:5050, 127.0.0.1:5051 and unix:///run/pier/runtime.sock.
struct Globals {
  std::string registry;
  std::string builder;
  std::string runtime;
  rpc::TlsFiles tls;  // --tls-ca/--tls-cert/--tls-key or PIER_TLS_*.
  // Detach key sequence of attach, run -it and start -a when their
  // --detach-keys is not given: the config file's `detach-keys`; empty: the
  // runtime's default (ctrl-p,ctrl-q).
  std::string detach_keys;
};

using VerbFn = int (*)(const Globals& globals, const std::vector<std::string>& args);

struct Verb {
  const char* name;
  const char* summary;
  VerbFn run;
};

// The verb table and the global flags' usage text (main.cc), for `pier
// completion`.
std::vector<Verb> AllVerbs();
std::string GlobalFlagsUsage();

// Prints "pier: <message>" to stderr and returns `code`.
int Fail(const absl::Status& status, int code = 1);

int Attach(const Globals& globals, const std::vector<std::string>& args);
int Build(const Globals& globals, const std::vector<std::string>& args);
int Builder(const Globals& globals, const std::vector<std::string>& args);
int Commit(const Globals& globals, const std::vector<std::string>& args);
int Completion(const Globals& globals, const std::vector<std::string>& args);
int Container(const Globals& globals, const std::vector<std::string>& args);
int Create(const Globals& globals, const std::vector<std::string>& args);
int Events(const Globals& globals, const std::vector<std::string>& args);
int Exec(const Globals& globals, const std::vector<std::string>& args);
int Export(const Globals& globals, const std::vector<std::string>& args);
int History(const Globals& globals, const std::vector<std::string>& args);
int Image(const Globals& globals, const std::vector<std::string>& args);
int Images(const Globals& globals, const std::vector<std::string>& args);
int Import(const Globals& globals, const std::vector<std::string>& args);
int Inspect(const Globals& globals, const std::vector<std::string>& args);
int Kill(const Globals& globals, const std::vector<std::string>& args);
int Load(const Globals& globals, const std::vector<std::string>& args);
int Login(const Globals& globals, const std::vector<std::string>& args);
int Logout(const Globals& globals, const std::vector<std::string>& args);
int Logs(const Globals& globals, const std::vector<std::string>& args);
int Ps(const Globals& globals, const std::vector<std::string>& args);
int Pause(const Globals& globals, const std::vector<std::string>& args);
int Pull(const Globals& globals, const std::vector<std::string>& args);
int Push(const Globals& globals, const std::vector<std::string>& args);
int Registry(const Globals& globals, const std::vector<std::string>& args);
int Rm(const Globals& globals, const std::vector<std::string>& args);
int Rmi(const Globals& globals, const std::vector<std::string>& args);
int Run(const Globals& globals, const std::vector<std::string>& args);
int Save(const Globals& globals, const std::vector<std::string>& args);
int Start(const Globals& globals, const std::vector<std::string>& args);
int Stats(const Globals& globals, const std::vector<std::string>& args);
int Status(const Globals& globals, const std::vector<std::string>& args);
int Stop(const Globals& globals, const std::vector<std::string>& args);
int Tag(const Globals& globals, const std::vector<std::string>& args);
int Unpause(const Globals& globals, const std::vector<std::string>& args);
int Version(const Globals& globals, const std::vector<std::string>& args);
int Volume(const Globals& globals, const std::vector<std::string>& args);
// `pier volume prune` (prune.cc).
int VolumePrune(const Globals& globals, const std::vector<std::string>& args);
int Wait(const Globals& globals, const std::vector<std::string>& args);

}  // namespace pier::cli
