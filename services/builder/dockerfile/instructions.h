// Typed Dockerfile instructions, built from the AST (parser.h) and validated.
//
// Parse() turns Dockerfile text into a Dockerfile: its parser directives, the
// global ARGs (those before the first FROM) and the build stages, each a FROM
// plus the instructions up to the next FROM. Every instruction keeps its
// keyword, first and last line and logical line, and a typed command (one of
// the structs below, in the `Command` variant).
//
// Words are kept raw: `ENV A="x y"` has the value `"x y"` with its quotes, and
// `$VAR` is not replaced. Expansion (which also removes quotes) needs the
// build's variables and happens later, in expand.h, for exactly the
// instructions where the Dockerfile reference allows it. Literal values that
// can be checked now are checked now (ports, --chmod, durations, signal names,
// RUN --mount keys); values holding a `$` are checked after expansion.
//
// Errors are InvalidArgument "Dockerfile:<line>: <what>", where <what> names
// the instruction, e.g. "Dockerfile:4: unknown flag for COPY: --bogus".
//
// Ownership: results are plain values. Thread safety: stateless functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/builder/dockerfile/parser.h"

namespace pier::builder::dockerfile {

// A key and a value as written (raw).
struct KeyValue {
  std::string key;
  std::string value;
};

// The command of RUN, CMD, ENTRYPOINT and HEALTHCHECK CMD.
struct CommandLine {
  bool exec_form = false;         // JSON form: run `exec` directly, no shell
  std::string shell;              // shell form: the command text for the shell
  std::vector<std::string> exec;  // exec form: argv
};

// FROM [--platform=<p>] <image> [AS <name>]
struct From {
  std::string image;     // raw; may hold ${ARG}s from the global scope
  std::string name;      // stage name, lowercased; empty when unnamed
  std::string platform;  // raw --platform; empty when absent
};

// One RUN --mount=... option, as parsed from its comma-separated fields.
struct Mount {
  std::string type = "bind";  // bind, cache, tmpfs, secret or ssh
  std::string target;         // target / dst / destination
  std::string source;         // source / src
  std::string from;
  std::string id;
  std::string sharing;  // cache: shared, private or locked
  std::string mode;     // octal, as written
  std::string uid;
  std::string gid;
  std::string size;       // tmpfs
  std::string env;        // secret: expose as this environment variable
  bool readonly = true;   // bind mounts are read-only unless rw; others writable
  bool required = false;  // secret, ssh
};

// RUN [--mount=...] [--network=...] [--security=...] [--device=...] <command>
struct Run {
  CommandLine command;
  std::vector<Heredoc> heredocs;
  std::vector<std::string> mount_specs;  // raw --mount values (expanded later)
  std::vector<Mount> mounts;             // parsed from mount_specs
  std::string network;                   // default, none or host; empty when absent
  std::string security;                  // sandbox or insecure; empty when absent
  std::vector<std::string> devices;
};

struct Cmd {
  CommandLine command;
};

struct Entrypoint {
  CommandLine command;
};

// SHELL ["executable", "parameters"...]  (JSON form only)
struct Shell {
  std::vector<std::string> shell;
};

// LABEL k=v ...  or the legacy LABEL k v
struct Label {
  std::vector<KeyValue> labels;
  bool legacy = false;
};

struct Maintainer {
  std::string name;
};

// A port range of EXPOSE: "80", "80/tcp", "53/udp", "8000-8002".
struct PortSpec {
  uint16_t start = 0;
  uint16_t end = 0;
  std::string protocol = "tcp";  // tcp, udp or sctp
};

// EXPOSE <port>[/<protocol>] ...
struct Expose {
  std::vector<std::string> ports;  // raw
};

// ENV k=v ...  or the legacy ENV k v (the rest of the line is the value)
struct Env {
  std::vector<KeyValue> vars;
  bool legacy = false;
};

// A COPY/ADD source given as a here-document (`COPY <<EOF /dest`).
struct HeredocSource {
  std::string path;     // the delimiter name, which is also the file name
  std::string content;  // tabs already stripped for <<-
  bool expand = true;   // unquoted delimiter: variables are expanded
};

// Fields common to COPY and ADD.
struct CopyBase {
  std::vector<std::string> sources;     // paths, URLs or git addresses, raw
  std::vector<HeredocSource> heredocs;  // here-document sources
  std::string dest;                     // raw
  std::string chown;                    // raw --chown; empty when absent
  std::string chmod;                    // raw --chmod; empty when absent
  bool link = false;
  std::vector<std::string> excludes;  // --exclude, repeatable
  bool json_form = false;
};

// COPY [--from=<stage|index|image>] [--chown] [--chmod] [--link] [--parents]
//      [--exclude] <src>... <dest>
struct Copy : CopyBase {
  std::string from;
  bool parents = false;
};

// ADD [--chown] [--chmod] [--link] [--checksum] [--keep-git-dir] [--unpack]
//     [--exclude] <src>... <dest>
struct Add : CopyBase {
  std::string checksum;
  std::optional<bool> keep_git_dir;  // git sources: keep the .git directory
  std::optional<bool> unpack;
};

// VOLUME ["/a", "/b"]  or  VOLUME /a /b
struct Volume {
  std::vector<std::string> paths;
};

// USER <user>[:<group>]
struct User {
  std::string user;
  std::optional<std::string> group;
};

// WORKDIR <path> (relative paths are resolved against the previous WORKDIR by
// the resolver in expand.h)
struct Workdir {
  std::string path;
};

// One name of ARG <name>[=<default>] ...
struct ArgDecl {
  std::string name;
  std::optional<std::string> default_value;  // raw
};

struct Arg {
  std::vector<ArgDecl> args;
};

// ONBUILD <instruction>: stored raw, run by the builds that use this image.
struct Onbuild {
  std::string trigger;     // the trigger's keyword, uppercase: "RUN"
  std::string expression;  // the trigger text: "RUN make"
  std::vector<Heredoc> heredocs;
};

struct Stopsignal {
  std::string signal;
};

// HEALTHCHECK NONE  or  HEALTHCHECK [--interval=..] [--timeout=..]
// [--start-period=..] [--start-interval=..] [--retries=N] CMD <command>
struct Healthcheck {
  bool none = false;
  CommandLine command;
  std::optional<absl::Duration> interval;
  std::optional<absl::Duration> timeout;
  std::optional<absl::Duration> start_period;
  std::optional<absl::Duration> start_interval;
  std::optional<int> retries;
};

using Command = std::variant<From, Run, Cmd, Entrypoint, Shell, Label, Maintainer, Expose, Env, Add,
                             Copy, Volume, User, Workdir, Arg, Onbuild, Stopsignal, Healthcheck>;

// One instruction with its location.
struct Instruction {
  std::string keyword;  // uppercase: "COPY"
  int start_line = 0;
  int end_line = 0;
  std::string original;  // the logical line
  Command command;
};

// FROM and the instructions up to the next FROM.
struct Stage {
  int index = 0;
  std::string name;  // lowercased; empty when unnamed
  Instruction from;  // holds a From
  std::vector<Instruction> instructions;

  const From& base() const { return std::get<From>(from.command); }
};

struct Dockerfile {
  std::vector<Directive> directives;
  char escape = '\\';
  std::vector<Instruction> global_args;  // ARGs before the first FROM (each holds an Arg)
  std::vector<Stage> stages;
  std::vector<Warning> warnings;
};

// Parses and validates a Dockerfile. InvalidArgument "Dockerfile:<line>: ..."
// for anything parser.h reports, a missing FROM, an instruction other than ARG
// before the first FROM, a missing or extra argument, an unknown or malformed
// flag, a SHELL not in JSON form, a malformed port, duration, --chmod or
// --mount, a here-document as a destination, ONBUILD ONBUILD/FROM/MAINTAINER,
// an invalid or repeated stage name.
absl::StatusOr<Dockerfile> Parse(absl::string_view dockerfile);

// Types one AST node (FROM included). `escape` is the directive's escape
// character. Errors as for Parse().
absl::StatusOr<Instruction> ParseInstruction(const Node& node, char escape = '\\');

// Parses one EXPOSE word after expansion: "80", "80/udp", "8000-8002/tcp".
// InvalidArgument on anything else (ports are 1-65535; protocols tcp, udp,
// sctp, case-insensitive).
absl::StatusOr<PortSpec> ParsePortSpec(absl::string_view spec);

// Parses one RUN --mount value ("type=cache,target=/root/.cache,sharing=locked").
// InvalidArgument on an unknown key, a bad type, sharing, mode, id or boolean,
// or a missing target where the type needs one.
absl::StatusOr<Mount> ParseMountSpec(absl::string_view spec);

// As above, passing every field's value through `expand` first (expand.h uses
// it to expand variables); errors of `expand` are returned as they are.
absl::StatusOr<Mount> ParseMountSpec(
    absl::string_view spec,
    absl::FunctionRef<absl::StatusOr<std::string>(absl::string_view value)> expand);

// Parses a Go-style duration ("30s", "1m30s", "500ms", "0"). InvalidArgument
// when malformed, negative or infinite.
absl::StatusOr<absl::Duration> ParseDuration(absl::string_view text);

// Finds a stage by name (case-insensitive) or by index ("0", "1", ...).
// nullopt when there is none.
std::optional<size_t> FindStage(const Dockerfile& dockerfile, absl::string_view name_or_index);

}  // namespace pier::builder::dockerfile
