#include "lib/oci/digest.h"

// SHA-256 through OpenSSL's direct SHA256_* functions (deprecated in the 3.0
// headers, still the implementation behind its provider): the EVP route
// fetches the algorithm from a provider, and the first fetch in a process
// builds OpenSSL's name map of every algorithm (~0.4 ms), paid by each CLI
// command that hashes anything. Same assembly (SHA-NI/AVX2) either way.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace pier::oci {
namespace {

constexpr absl::string_view kEmptySha256 =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string Hex(const uint8_t* raw, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.resize(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[raw[i] >> 4];
    out[2 * i + 1] = kHex[raw[i] & 0xf];
  }
  return out;
}

}  // namespace

Digest::Digest() : text_(kEmptySha256) {}

absl::StatusOr<Digest> Digest::Parse(absl::string_view text) {
  size_t colon = text.find(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid digest \"", text, "\": expected <algorithm>:<hex>"));
  }
  absl::string_view algo = text.substr(0, colon);
  absl::string_view hex = text.substr(colon + 1);
  if (algo != "sha256") {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid digest \"", text, "\": unsupported algorithm \"", algo, "\" (only sha256)"));
  }
  if (hex.size() != 64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid digest \"", text, "\": sha256 needs 64 hex characters, got ", hex.size()));
  }
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid digest \"", text, "\": hex must be lower-case [0-9a-f]"));
    }
  }
  return Digest(std::string(text));
}

Digest Digest::FromBytes(const std::array<uint8_t, 32>& raw) {
  return Digest(absl::StrCat("sha256:", Hex(raw.data(), raw.size())));
}

Digest Digest::Of(absl::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.Finish();
}

struct Sha256::Ctx {
  SHA256_CTX sha;
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) { SHA256_Init(&ctx_->sha); }

Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::Update(const void* data, size_t len) {
  if (len == 0) return;
  SHA256_Update(&ctx_->sha, data, len);
  size_ += len;
}

Digest Sha256::Finish() {
  std::array<uint8_t, 32> raw{};
  SHA256_Final(raw.data(), &ctx_->sha);
  return Digest::FromBytes(raw);
}

Sha256 Sha256::Clone() const {
  Sha256 copy;
  copy.ctx_->sha = ctx_->sha;
  copy.size_ = size_;
  return copy;
}

}  // namespace pier::oci
