#include "services/builder/dockerfile/json.h"

#include <type_traits>

namespace pier::builder::dockerfile {
namespace {

using Json = nlohmann::ordered_json;

Json CommandLineJson(const CommandLine& c) {
  Json j;
  if (c.exec_form) {
    j["form"] = "exec";
    j["exec"] = c.exec;
  } else {
    j["form"] = "shell";
    j["shell"] = c.shell;
  }
  return j;
}

Json HeredocJson(const Heredoc& h) {
  Json j;
  j["name"] = h.name;
  j["content"] = h.content;
  j["expand"] = h.expand;
  j["chomp"] = h.chomp;
  if (h.fd != 0) j["fd"] = h.fd;
  return j;
}

Json KeyValuesJson(const std::vector<KeyValue>& kvs) {
  Json arr = Json::array();
  for (const KeyValue& kv : kvs) arr.push_back(Json{{"key", kv.key}, {"value", kv.value}});
  return arr;
}

Json MountJson(const Mount& m) {
  Json j;
  j["type"] = m.type;
  auto put = [&](const char* key, const std::string& v) {
    if (!v.empty()) j[key] = v;
  };
  put("target", m.target);
  put("source", m.source);
  put("from", m.from);
  put("id", m.id);
  put("sharing", m.sharing);
  put("mode", m.mode);
  put("uid", m.uid);
  put("gid", m.gid);
  put("size", m.size);
  put("env", m.env);
  j["readonly"] = m.readonly;
  if (m.required) j["required"] = true;
  return j;
}

void CopyBaseJson(const CopyBase& c, Json* j) {
  (*j)["sources"] = c.sources;
  if (!c.heredocs.empty()) {
    Json arr = Json::array();
    for (const HeredocSource& h : c.heredocs) {
      arr.push_back(Json{{"path", h.path}, {"content", h.content}, {"expand", h.expand}});
    }
    (*j)["heredocs"] = arr;
  }
  (*j)["dest"] = c.dest;
  if (!c.chown.empty()) (*j)["chown"] = c.chown;
  if (!c.chmod.empty()) (*j)["chmod"] = c.chmod;
  if (c.link) (*j)["link"] = true;
  if (!c.excludes.empty()) (*j)["exclude"] = c.excludes;
  if (c.json_form) (*j)["json_form"] = true;
}

void FillCommand(const Command& command, Json* j) {
  std::visit(
      [j](const auto& c) {
        using T = std::decay_t<decltype(c)>;
        Json& o = *j;
        if constexpr (std::is_same_v<T, From>) {
          o["image"] = c.image;
          if (!c.name.empty()) o["name"] = c.name;
          if (!c.platform.empty()) o["platform"] = c.platform;
        } else if constexpr (std::is_same_v<T, Run>) {
          o["command"] = CommandLineJson(c.command);
          if (!c.heredocs.empty()) {
            Json arr = Json::array();
            for (const Heredoc& h : c.heredocs) arr.push_back(HeredocJson(h));
            o["heredocs"] = arr;
          }
          if (!c.mounts.empty()) {
            Json arr = Json::array();
            for (const Mount& m : c.mounts) arr.push_back(MountJson(m));
            o["mounts"] = arr;
          }
          if (!c.network.empty()) o["network"] = c.network;
          if (!c.security.empty()) o["security"] = c.security;
          if (!c.devices.empty()) o["devices"] = c.devices;
        } else if constexpr (std::is_same_v<T, Cmd> || std::is_same_v<T, Entrypoint>) {
          o["command"] = CommandLineJson(c.command);
        } else if constexpr (std::is_same_v<T, Shell>) {
          o["shell"] = c.shell;
        } else if constexpr (std::is_same_v<T, Label>) {
          o["labels"] = KeyValuesJson(c.labels);
          if (c.legacy) o["legacy"] = true;
        } else if constexpr (std::is_same_v<T, Maintainer>) {
          o["maintainer"] = c.name;
        } else if constexpr (std::is_same_v<T, Expose>) {
          Json arr = Json::array();
          for (const std::string& p : c.ports) {
            Json port{{"spec", p}};
            if (absl::StatusOr<PortSpec> spec = ParsePortSpec(p); spec.ok()) {
              port["start"] = spec->start;
              port["end"] = spec->end;
              port["protocol"] = spec->protocol;
            }
            arr.push_back(port);
          }
          o["ports"] = arr;
        } else if constexpr (std::is_same_v<T, Env>) {
          o["env"] = KeyValuesJson(c.vars);
          if (c.legacy) o["legacy"] = true;
        } else if constexpr (std::is_same_v<T, Copy>) {
          CopyBaseJson(c, j);
          if (!c.from.empty()) o["from"] = c.from;
          if (c.parents) o["parents"] = true;
        } else if constexpr (std::is_same_v<T, Add>) {
          CopyBaseJson(c, j);
          if (!c.checksum.empty()) o["checksum"] = c.checksum;
          if (c.keep_git_dir) o["keep_git_dir"] = *c.keep_git_dir;
          if (c.unpack) o["unpack"] = *c.unpack;
        } else if constexpr (std::is_same_v<T, Volume>) {
          o["paths"] = c.paths;
        } else if constexpr (std::is_same_v<T, User>) {
          o["user"] = c.user;
          if (c.group) o["group"] = *c.group;
        } else if constexpr (std::is_same_v<T, Workdir>) {
          o["path"] = c.path;
        } else if constexpr (std::is_same_v<T, Arg>) {
          Json arr = Json::array();
          for (const ArgDecl& a : c.args) {
            Json d{{"name", a.name}};
            if (a.default_value) d["default"] = *a.default_value;
            arr.push_back(d);
          }
          o["args"] = arr;
        } else if constexpr (std::is_same_v<T, Onbuild>) {
          o["trigger"] = c.trigger;
          o["expression"] = c.expression;
          if (!c.heredocs.empty()) {
            Json arr = Json::array();
            for (const Heredoc& h : c.heredocs) arr.push_back(HeredocJson(h));
            o["heredocs"] = arr;
          }
        } else if constexpr (std::is_same_v<T, Stopsignal>) {
          o["signal"] = c.signal;
        } else if constexpr (std::is_same_v<T, Healthcheck>) {
          if (c.none) {
            o["type"] = "NONE";
            return;
          }
          o["type"] = "CMD";
          o["command"] = CommandLineJson(c.command);
          auto dur = [&](const char* key, const std::optional<absl::Duration>& d) {
            if (d) o[key] = absl::FormatDuration(*d);
          };
          dur("interval", c.interval);
          dur("timeout", c.timeout);
          dur("start_period", c.start_period);
          dur("start_interval", c.start_interval);
          if (c.retries) o["retries"] = *c.retries;
        }
      },
      command);
}

}  // namespace

nlohmann::ordered_json InstructionToJson(const Instruction& instruction) {
  Json j;
  j["instruction"] = instruction.keyword;
  j["start_line"] = instruction.start_line;
  j["end_line"] = instruction.end_line;
  j["original"] = instruction.original;
  FillCommand(instruction.command, &j);
  return j;
}

nlohmann::ordered_json DockerfileToJson(const Dockerfile& dockerfile) {
  Json j;
  j["escape"] = std::string(1, dockerfile.escape);
  Json directives = Json::array();
  for (const Directive& d : dockerfile.directives) {
    directives.push_back(Json{{"name", d.name}, {"value", d.value}, {"line", d.line}});
  }
  j["directives"] = directives;
  Json globals = Json::array();
  for (const Instruction& ins : dockerfile.global_args) globals.push_back(InstructionToJson(ins));
  j["global_args"] = globals;
  Json stages = Json::array();
  for (const Stage& s : dockerfile.stages) {
    Json st;
    st["index"] = s.index;
    if (!s.name.empty()) st["name"] = s.name;
    st["from"] = InstructionToJson(s.from);
    Json list = Json::array();
    for (const Instruction& ins : s.instructions) list.push_back(InstructionToJson(ins));
    st["instructions"] = list;
    stages.push_back(st);
  }
  j["stages"] = stages;
  if (!dockerfile.warnings.empty()) {
    Json warnings = Json::array();
    for (const Warning& w : dockerfile.warnings) {
      warnings.push_back(Json{{"line", w.line}, {"message", w.message}});
    }
    j["warnings"] = warnings;
  }
  return j;
}

std::string DockerfileToJsonString(const Dockerfile& dockerfile) {
  return DockerfileToJson(dockerfile)
             .dump(2, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace) +
         "\n";
}

}  // namespace pier::builder::dockerfile
