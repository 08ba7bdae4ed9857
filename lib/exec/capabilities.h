// Linux capability names and sets for the executor: parsing "CAP_CHOWN"
// style names into a 64-bit mask, and reading what the executor itself holds.
// Applying a set to a process happens in the executor's child with raw
// syscalls (capset, prctl), so no library is needed.
//
// Thread safety: stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pier::exec {

// The number of the capability called `name` ("CAP_CHOWN" or "chown",
// case-insensitive). InvalidArgument naming it when unknown.
absl::StatusOr<int> CapabilityFromName(absl::string_view name);

// "CAP_CHOWN" for 0; "CAP_<n>" for numbers this build does not know.
std::string CapabilityName(int cap);

// The mask (bit n = capability n) of `names`. "ALL" means every capability
// up to LastCapability(). InvalidArgument for an unknown name.
absl::StatusOr<uint64_t> CapabilityMask(const std::vector<std::string>& names);

// The highest capability number the kernel knows (/proc/sys/kernel/cap_last_cap).
int LastCapability();

// The executor's own bounding set (capabilities a child can keep).
uint64_t BoundingSet();

}  // namespace pier::exec
