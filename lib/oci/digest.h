// Content digests for Pier: the `Digest` value type ("sha256:<64 hex>") and a
// streaming SHA-256 hasher on OpenSSL's EVP interface.
//
// Only sha256 is accepted: the OCI image spec makes it the one algorithm every
// implementation must support, and Pier refuses everything else with
// InvalidArgument naming the offending string, rather than storing content it
// cannot verify. Digest::Parse rejects upper-case hex, wrong lengths, missing or
// unknown algorithms and stray characters.
//
// Thread safety: Digest is an immutable value. A Sha256 hasher is used by one
// thread at a time.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pier::oci {

class Digest {
 public:
  // The digest of no bytes at all; also the default value.
  Digest();

  // Parses "sha256:<64 lower-case hex>". InvalidArgument otherwise, with the
  // input quoted in the message.
  static absl::StatusOr<Digest> Parse(absl::string_view text);

  // Builds from 32 raw SHA-256 bytes.
  static Digest FromBytes(const std::array<uint8_t, 32>& raw);

  // The SHA-256 of `data`.
  static Digest Of(absl::string_view data);

  const std::string& str() const { return text_; }  // "sha256:ab12..."
  absl::string_view algorithm() const { return "sha256"; }
  absl::string_view hex() const { return absl::string_view(text_).substr(7); }

  friend bool operator==(const Digest& a, const Digest& b) { return a.text_ == b.text_; }
  friend bool operator!=(const Digest& a, const Digest& b) { return a.text_ != b.text_; }
  friend bool operator<(const Digest& a, const Digest& b) { return a.text_ < b.text_; }
  friend std::ostream& operator<<(std::ostream& os, const Digest& d) { return os << d.text_; }
  template <typename H>
  friend H AbslHashValue(H h, const Digest& d) {
    return H::combine(std::move(h), d.text_);
  }

 private:
  explicit Digest(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

// Incremental SHA-256. Update() any number of times, then Finish() once.
// The hasher can be copied mid-stream (Clone) to read a running digest.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void Update(const void* data, size_t len);
  void Update(absl::string_view data) { Update(data.data(), data.size()); }
  // Total bytes fed so far.
  uint64_t size() const { return size_; }
  // Returns the digest of everything fed; the hasher must not be used after.
  Digest Finish();
  // Returns an independent copy of the current state.
  Sha256 Clone() const;

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
  uint64_t size_ = 0;
};

}  // namespace pier::oci
