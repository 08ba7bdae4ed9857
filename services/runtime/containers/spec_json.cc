#include "services/runtime/containers/spec_json.h"

#include <stdexcept>
#include <utility>

#include "absl/strings/str_cat.h"

namespace pier::runtime {
namespace {

using Json = nlohmann::json;

// A decoding error naming the field ("process.uid: type must be number").
class FieldError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Sets `*out` from j[key] when present; throws FieldError on a type mismatch.
template <typename T>
void Get(const Json& j, const char* key, absl::string_view path, T* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  try {
    *out = it->get<T>();
  } catch (const Json::exception& e) {
    throw FieldError(absl::StrCat(path, key, ": ", e.what()));
  }
}

void RequireObject(const Json& j, absl::string_view path) {
  if (!j.is_object())
    throw FieldError(absl::StrCat(path.empty() ? "spec" : path, ": not an object"));
}

Json MountToJson(const exec::Mount& m) {
  return Json{{"type", m.type}, {"source", m.source}, {"target", m.target}, {"options", m.options}};
}

std::vector<exec::Mount> MountsFromJson(const Json& j, const char* key, absl::string_view path) {
  std::vector<exec::Mount> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  std::string where = absl::StrCat(path, key);
  if (!it->is_array()) throw FieldError(where + ": not an array");
  for (const Json& e : *it) {
    RequireObject(e, where);
    exec::Mount m;
    std::string p = where + "[].";
    Get(e, "type", p, &m.type);
    Get(e, "source", p, &m.source);
    Get(e, "target", p, &m.target);
    Get(e, "options", p, &m.options);
    out.push_back(std::move(m));
  }
  return out;
}

const char* NamespaceModeName(exec::NamespaceMode m) {
  switch (m) {
    case exec::NamespaceMode::kNew:
      return "new";
    case exec::NamespaceMode::kHost:
      return "host";
    case exec::NamespaceMode::kPath:
      return "path";
  }
  return "new";
}

Json NamespaceToJson(const exec::NamespaceSpec& ns) {
  Json j{{"mode", NamespaceModeName(ns.mode)}};
  if (!ns.path.empty()) j["path"] = ns.path;
  return j;
}

exec::NamespaceSpec NamespaceFromJson(const Json& j, const char* key, absl::string_view path) {
  exec::NamespaceSpec ns;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return ns;
  std::string p = absl::StrCat(path, key, ".");
  RequireObject(*it, p);
  std::string mode = "new";
  Get(*it, "mode", p, &mode);
  if (mode == "new") {
    ns.mode = exec::NamespaceMode::kNew;
  } else if (mode == "host") {
    ns.mode = exec::NamespaceMode::kHost;
  } else if (mode == "path") {
    ns.mode = exec::NamespaceMode::kPath;
  } else {
    throw FieldError(absl::StrCat(p, "mode: unknown namespace mode \"", mode, "\""));
  }
  Get(*it, "path", p, &ns.path);
  return ns;
}

exec::ProcessSpec ProcessFromJson(const Json& j, absl::string_view path) {
  RequireObject(j, path);
  exec::ProcessSpec p;
  Get(j, "args", path, &p.args);
  Get(j, "env", path, &p.env);
  Get(j, "cwd", path, &p.cwd);
  Get(j, "uid", path, &p.uid);
  Get(j, "gid", path, &p.gid);
  Get(j, "additional_gids", path, &p.additional_gids);
  Get(j, "tty", path, &p.tty);
  Get(j, "tty_rows", path, &p.tty_rows);
  Get(j, "tty_cols", path, &p.tty_cols);
  Get(j, "no_new_privileges", path, &p.no_new_privileges);
  Get(j, "capabilities", path, &p.capabilities);
  auto rl = j.find("rlimits");
  if (rl != j.end() && !rl->is_null()) {
    std::string where = absl::StrCat(path, "rlimits");
    if (!rl->is_array()) throw FieldError(where + ": not an array");
    for (const Json& e : *rl) {
      RequireObject(e, where);
      exec::Rlimit r;
      Get(e, "type", where + "[].", &r.type);
      Get(e, "soft", where + "[].", &r.soft);
      Get(e, "hard", where + "[].", &r.hard);
      p.rlimits.push_back(std::move(r));
    }
  }
  auto oom = j.find("oom_score_adj");
  if (oom != j.end() && !oom->is_null()) {
    int v = 0;
    Get(j, "oom_score_adj", path, &v);
    p.oom_score_adj = v;
  }
  return p;
}

}  // namespace

Json ProcessSpecToJsonValue(const exec::ProcessSpec& p) {
  Json j{{"args", p.args},
         {"env", p.env},
         {"cwd", p.cwd},
         {"uid", p.uid},
         {"gid", p.gid},
         {"additional_gids", p.additional_gids},
         {"tty", p.tty},
         {"tty_rows", p.tty_rows},
         {"tty_cols", p.tty_cols},
         {"no_new_privileges", p.no_new_privileges},
         {"capabilities", p.capabilities}};
  Json rlimits = Json::array();
  for (const exec::Rlimit& r : p.rlimits) {
    rlimits.push_back(Json{{"type", r.type}, {"soft", r.soft}, {"hard", r.hard}});
  }
  j["rlimits"] = std::move(rlimits);
  if (p.oom_score_adj) j["oom_score_adj"] = *p.oom_score_adj;
  return j;
}

Json ContainerSpecToJsonValue(const exec::ContainerSpec& s) {
  Json rootfs_mounts = Json::array();
  for (const exec::Mount& m : s.rootfs_mounts) rootfs_mounts.push_back(MountToJson(m));
  Json mounts = Json::array();
  for (const exec::Mount& m : s.mounts) mounts.push_back(MountToJson(m));
  const exec::CgroupSpec& c = s.cgroup;
  return Json{
      {"id", s.id},
      {"rootfs", s.rootfs},
      {"rootfs_mounts", std::move(rootfs_mounts)},
      {"mounts", std::move(mounts)},
      {"readonly_rootfs", s.readonly_rootfs},
      {"hostname", s.hostname},
      {"namespaces",
       {{"pid", NamespaceToJson(s.namespaces.pid)},
        {"net", NamespaceToJson(s.namespaces.net)},
        {"ipc", NamespaceToJson(s.namespaces.ipc)},
        {"uts", NamespaceToJson(s.namespaces.uts)},
        {"mount", NamespaceToJson(s.namespaces.mount)},
        {"cgroup", NamespaceToJson(s.namespaces.cgroup)}}},
      {"masked_paths", s.masked_paths},
      {"readonly_paths", s.readonly_paths},
      {"privileged", s.privileged},
      {"seccomp", s.seccomp == exec::SeccompMode::kUnconfined ? "unconfined" : "default"},
      {"cgroup",
       {{"parent_path", c.parent_path},
        {"memory_bytes", c.memory_bytes},
        {"memory_swap", c.memory_swap},
        {"nano_cpus", c.nano_cpus},
        {"cpu_shares", c.cpu_shares},
        {"pids_limit", c.pids_limit},
        {"cpuset_cpus", c.cpuset_cpus},
        {"cpuset_mems", c.cpuset_mems}}},
      {"process", ProcessSpecToJsonValue(s.process)},
  };
}

std::string ContainerSpecToJson(const exec::ContainerSpec& spec) {
  return ContainerSpecToJsonValue(spec).dump(-1, ' ', false, Json::error_handler_t::replace);
}

absl::StatusOr<exec::ProcessSpec> ProcessSpecFromJsonValue(const nlohmann::json& j) {
  try {
    return ProcessFromJson(j, "process.");
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("process spec: ", e.what()));
  }
}

absl::StatusOr<exec::ContainerSpec> ContainerSpecFromJsonValue(const nlohmann::json& j) {
  try {
    RequireObject(j, "");
    exec::ContainerSpec s;
    Get(j, "id", "", &s.id);
    Get(j, "rootfs", "", &s.rootfs);
    s.rootfs_mounts = MountsFromJson(j, "rootfs_mounts", "");
    s.mounts = MountsFromJson(j, "mounts", "");
    Get(j, "readonly_rootfs", "", &s.readonly_rootfs);
    Get(j, "hostname", "", &s.hostname);
    auto ns = j.find("namespaces");
    if (ns != j.end() && !ns->is_null()) {
      RequireObject(*ns, "namespaces");
      s.namespaces.pid = NamespaceFromJson(*ns, "pid", "namespaces.");
      s.namespaces.net = NamespaceFromJson(*ns, "net", "namespaces.");
      s.namespaces.ipc = NamespaceFromJson(*ns, "ipc", "namespaces.");
      s.namespaces.uts = NamespaceFromJson(*ns, "uts", "namespaces.");
      s.namespaces.mount = NamespaceFromJson(*ns, "mount", "namespaces.");
      s.namespaces.cgroup = NamespaceFromJson(*ns, "cgroup", "namespaces.");
    }
    Get(j, "masked_paths", "", &s.masked_paths);
    Get(j, "readonly_paths", "", &s.readonly_paths);
    Get(j, "privileged", "", &s.privileged);
    std::string seccomp = "default";
    Get(j, "seccomp", "", &seccomp);
    if (seccomp == "default") {
      s.seccomp = exec::SeccompMode::kDefault;
    } else if (seccomp == "unconfined") {
      s.seccomp = exec::SeccompMode::kUnconfined;
    } else {
      throw FieldError(absl::StrCat("seccomp: unknown mode \"", seccomp, "\""));
    }
    auto cg = j.find("cgroup");
    if (cg != j.end() && !cg->is_null()) {
      RequireObject(*cg, "cgroup");
      exec::CgroupSpec& c = s.cgroup;
      Get(*cg, "parent_path", "cgroup.", &c.parent_path);
      Get(*cg, "memory_bytes", "cgroup.", &c.memory_bytes);
      Get(*cg, "memory_swap", "cgroup.", &c.memory_swap);
      Get(*cg, "nano_cpus", "cgroup.", &c.nano_cpus);
      Get(*cg, "cpu_shares", "cgroup.", &c.cpu_shares);
      Get(*cg, "pids_limit", "cgroup.", &c.pids_limit);
      Get(*cg, "cpuset_cpus", "cgroup.", &c.cpuset_cpus);
      Get(*cg, "cpuset_mems", "cgroup.", &c.cpuset_mems);
    }
    auto proc = j.find("process");
    if (proc != j.end() && !proc->is_null()) s.process = ProcessFromJson(*proc, "process.");
    return s;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("container spec: ", e.what()));
  }
}

absl::StatusOr<exec::ContainerSpec> ContainerSpecFromJson(absl::string_view json) {
  Json j = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("container spec: not valid JSON");
  return ContainerSpecFromJsonValue(j);
}

}  // namespace pier::runtime
