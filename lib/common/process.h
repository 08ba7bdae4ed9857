// Process-wide settings every Pier executable applies first thing in main().
#pragma once

namespace pier {

// Turns off Abseil's mutex deadlock detection, which Debian's Abseil build
// leaves on: it keeps a lock graph updated on every Mutex::Lock (gRPC locks
// absl::Mutex on every call), costing CPU in daemons and in the CLI alike.
// Lock-order bugs are caught by the TSan build instead.
void InitProcess();

}  // namespace pier
