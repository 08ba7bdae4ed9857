// The registry's error vocabulary: the OCI distribution-spec error codes,
// carried inside absl::Status as a payload so that each front door can map
// them exactly (HTTP: code + status in http/errors.cc; gRPC: the canonical
// code, which RegistryError chooses to match).
//
// Thread safety: stateless.
#pragma once

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace pier::registry {

enum class ErrorCode {
  kBlobUnknown,           // NotFound
  kBlobUploadInvalid,     // InvalidArgument
  kBlobUploadUnknown,     // NotFound
  kDigestInvalid,         // InvalidArgument: a malformed digest
  kDigestMismatch,        // DataLoss: content does not match its digest (DIGEST_INVALID)
  kManifestBlobUnknown,   // FailedPrecondition
  kManifestInvalid,       // InvalidArgument
  kManifestUnknown,       // NotFound
  kNameInvalid,           // InvalidArgument
  kNameUnknown,           // NotFound
  kSizeInvalid,           // InvalidArgument
  kManifestTooLarge,      // ResourceExhausted (HTTP 413, code SIZE_INVALID)
  kRangeInvalid,          // OutOfRange: a read past the end (HTTP 416)
  kUploadOffsetMismatch,  // FailedPrecondition: chunk not at the upload's offset
                          // (HTTP 416, BLOB_UPLOAD_INVALID)
  kTagInvalid,            // InvalidArgument (HTTP 400, code TAG_INVALID)
  kUnauthorized,          // Unauthenticated
  kDenied,                // PermissionDenied
  kUnsupported,           // Unimplemented
};

// A status with the canonical code for `code` and the OCI code attached.
absl::Status RegistryError(ErrorCode code, absl::string_view message);

// The OCI code of a status made by RegistryError, if any.
std::optional<ErrorCode> GetErrorCode(const absl::Status& status);

// "BLOB_UNKNOWN", ... as the distribution spec spells them.
absl::string_view ErrorCodeName(ErrorCode code);

}  // namespace pier::registry
