// JSON form of exec::ContainerSpec: what the runtime writes to a container's
// state directory as `spec.json` and what pier-shim reads back to start the
// container; the manager also embeds it in its KvStore records.
//
// Field names are the struct members' names (snake_case). Enums are strings
// ("new" | "host" | "path" for namespaces, "default" | "unconfined" for
// seccomp). `ContainerSpec::stdio` is not serialised: descriptors mean
// nothing in another process. On decoding, a missing field keeps the
// struct's default (so an absent "capabilities" means Docker's default set).
//
// Thread safety: stateless functions.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/exec/spec.h"
#include "nlohmann/json.hpp"

namespace pier::runtime {

nlohmann::json ContainerSpecToJsonValue(const exec::ContainerSpec& spec);
nlohmann::json ProcessSpecToJsonValue(const exec::ProcessSpec& process);

// The spec as compact JSON text.
std::string ContainerSpecToJson(const exec::ContainerSpec& spec);

// InvalidArgument (naming the field) when a field has the wrong type or an
// unknown enum value.
absl::StatusOr<exec::ContainerSpec> ContainerSpecFromJsonValue(const nlohmann::json& j);
absl::StatusOr<exec::ProcessSpec> ProcessSpecFromJsonValue(const nlohmann::json& j);

// InvalidArgument for text that is not JSON, or as above.
absl::StatusOr<exec::ContainerSpec> ContainerSpecFromJson(absl::string_view json);

}  // namespace pier::runtime
