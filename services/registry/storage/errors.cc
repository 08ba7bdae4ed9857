#include "services/registry/storage/errors.h"

#include <string>

#include "absl/strings/cord.h"

namespace pier::registry {
namespace {

constexpr char kPayloadUrl[] = "pier.registry/error-code";

absl::StatusCode CanonicalCode(ErrorCode code) {
  switch (code) {
    case ErrorCode::kBlobUnknown:
    case ErrorCode::kBlobUploadUnknown:
    case ErrorCode::kManifestUnknown:
    case ErrorCode::kNameUnknown:
      return absl::StatusCode::kNotFound;
    case ErrorCode::kManifestBlobUnknown:
    case ErrorCode::kUploadOffsetMismatch:
      return absl::StatusCode::kFailedPrecondition;
    case ErrorCode::kDigestMismatch:
      return absl::StatusCode::kDataLoss;
    case ErrorCode::kManifestTooLarge:
      return absl::StatusCode::kResourceExhausted;
    case ErrorCode::kRangeInvalid:
      return absl::StatusCode::kOutOfRange;
    case ErrorCode::kUnauthorized:
      return absl::StatusCode::kUnauthenticated;
    case ErrorCode::kDenied:
      return absl::StatusCode::kPermissionDenied;
    case ErrorCode::kUnsupported:
      return absl::StatusCode::kUnimplemented;
    default:
      return absl::StatusCode::kInvalidArgument;
  }
}

}  // namespace

absl::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kBlobUnknown:
      return "BLOB_UNKNOWN";
    case ErrorCode::kBlobUploadInvalid:
      return "BLOB_UPLOAD_INVALID";
    case ErrorCode::kBlobUploadUnknown:
      return "BLOB_UPLOAD_UNKNOWN";
    case ErrorCode::kDigestInvalid:
      return "DIGEST_INVALID";
    case ErrorCode::kDigestMismatch:
      return "DIGEST_INVALID";
    case ErrorCode::kUploadOffsetMismatch:
      return "BLOB_UPLOAD_INVALID";
    case ErrorCode::kManifestBlobUnknown:
      return "MANIFEST_BLOB_UNKNOWN";
    case ErrorCode::kManifestInvalid:
      return "MANIFEST_INVALID";
    case ErrorCode::kManifestUnknown:
      return "MANIFEST_UNKNOWN";
    case ErrorCode::kNameInvalid:
      return "NAME_INVALID";
    case ErrorCode::kNameUnknown:
      return "NAME_UNKNOWN";
    case ErrorCode::kSizeInvalid:
      return "SIZE_INVALID";
    case ErrorCode::kManifestTooLarge:
      return "SIZE_INVALID";
    case ErrorCode::kRangeInvalid:
      return "RANGE_INVALID";
    case ErrorCode::kTagInvalid:
      return "TAG_INVALID";
    case ErrorCode::kUnauthorized:
      return "UNAUTHORIZED";
    case ErrorCode::kDenied:
      return "DENIED";
    case ErrorCode::kUnsupported:
      return "UNSUPPORTED";
  }
  return "UNKNOWN";
}

absl::Status RegistryError(ErrorCode code, absl::string_view message) {
  absl::Status s(CanonicalCode(code), message);
  s.SetPayload(kPayloadUrl, absl::Cord(std::to_string(static_cast<int>(code))));
  return s;
}

std::optional<ErrorCode> GetErrorCode(const absl::Status& status) {
  absl::optional<absl::Cord> p = status.GetPayload(kPayloadUrl);
  if (!p) return std::nullopt;
  return static_cast<ErrorCode>(std::stoi(std::string(*p)));
}

}  // namespace pier::registry
