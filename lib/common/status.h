// Status helpers for Pier.
//
// Debian 12's Abseil (20220623) has no status macros, so Pier defines its own:
//   RETURN_IF_ERROR(expr)          returns the status of `expr` when it is not OK.
//   ASSIGN_OR_RETURN(lhs, expr)    evaluates an absl::StatusOr<T>, returns its
//                                  status when not OK, else assigns the value.
// ErrnoStatus() wraps a failed syscall as an absl::Status carrying errno's
// canonical code and a message naming the operation and object.
//
// Thread safety: everything here is stateless.
#pragma once

#include <cerrno>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

#define PIER_STATUS_CONCAT_INNER_(a, b) a##b
#define PIER_STATUS_CONCAT_(a, b) PIER_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::absl::Status pier_status_ = (expr);        \
    if (!pier_status_.ok()) return pier_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  PIER_ASSIGN_OR_RETURN_IMPL_(PIER_STATUS_CONCAT_(pier_statusor_, __LINE__), lhs, expr)

#define PIER_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)   \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

namespace pier {

// Returns a status with errno `err`'s canonical code and the message
// "<what>: <strerror>".
absl::Status ErrnoStatus(int err, absl::string_view what);

// Returns `status` with `context` prefixed to its message ("context: message").
// The code is kept. OK stays OK.
absl::Status Annotate(const absl::Status& status, absl::string_view context);

}  // namespace pier
