#include "lib/common/process.h"

#include "absl/synchronization/mutex.h"

namespace pier {

void InitProcess() { absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore); }

}  // namespace pier
