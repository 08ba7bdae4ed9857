// JSON rendering of a parsed Dockerfile (instructions.h): the golden files in
// tests/testdata/dockerfile/<case>/expected.json and debugging output.
//
// Shape:
//   {"escape": "\\", "directives": [{name, value, line}],
//    "global_args": [<instruction>], "stages": [{index, name?, from: <instruction>,
//    instructions: [<instruction>]}], "warnings": [{line, message}]}
// and each <instruction> is {"instruction": "COPY", "start_line", "end_line",
// "original", <typed fields>}. Optional fields appear only when set. Words are
// raw, as in the typed structs. Durations use absl::FormatDuration ("1m30s").
//
// Never throws: strings that are not UTF-8 are rendered with U+FFFD.
// Thread safety: stateless.
#pragma once

#include <string>

#include "nlohmann/json.hpp"
#include "services/builder/dockerfile/instructions.h"

namespace pier::builder::dockerfile {

nlohmann::ordered_json InstructionToJson(const Instruction& instruction);
nlohmann::ordered_json DockerfileToJson(const Dockerfile& dockerfile);

// DockerfileToJson() as text: 2-space indent, ending in a newline.
std::string DockerfileToJsonString(const Dockerfile& dockerfile);

}  // namespace pier::builder::dockerfile
