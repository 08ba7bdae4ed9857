#include "lib/oci/digest.h"

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/common/testing.h"

namespace pier::oci {
namespace {

using ::pier::testing::StatusIs;
using ::testing::HasSubstr;

TEST(DigestTest, KnownVectors) {
  EXPECT_EQ(Digest::Of("").str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Digest().str(), Digest::Of("").str());
  EXPECT_EQ(Digest::Of("abc").str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Digest::Of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").str(),
            "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(DigestTest, ParseAcceptsCanonicalAndExposesParts) {
  std::string text = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  ASSERT_OK_AND_ASSIGN(Digest d, Digest::Parse(text));
  EXPECT_EQ(d.str(), text);
  EXPECT_EQ(d.algorithm(), "sha256");
  EXPECT_EQ(d.hex(), text.substr(7));
  EXPECT_EQ(d, Digest::Of("abc"));
}

TEST(DigestTest, ParseRejectsMalformed) {
  const std::string hex64(64, 'a');
  const std::vector<std::string> bad = {
      "",
      "sha256",
      "sha256:",
      hex64,
      "sha512:" + hex64,
      "md5:" + hex64,
      "SHA256:" + hex64,
      "sha256:" + std::string(63, 'a'),
      "sha256:" + std::string(65, 'a'),
      "sha256:" + std::string(64, 'A'),
      "sha256:" + std::string(63, 'a') + "g",
      "sha256:" + std::string(63, 'a') + " ",
      " sha256:" + hex64,
      "sha256::" + std::string(63, 'a'),
  };
  for (const std::string& s : bad) {
    EXPECT_THAT(Digest::Parse(s), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("invalid digest \"" + s + "\"")))
        << "input: " << s;
  }
}

TEST(DigestTest, CloneGivesRunningDigest) {
  Sha256 h;
  h.Update("ab");
  Sha256 copy = h.Clone();
  EXPECT_EQ(copy.Finish(), Digest::Of("ab"));
  h.Update("c");
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(h.Finish(), Digest::Of("abc"));
}

// Streams 1 GiB of pseudo-random bytes through Sha256 in odd-sized chunks and
// through `sha256sum` at once; both must agree.
TEST(DigestTest, OneGibStreamInOddChunksMatchesSha256sum) {
  std::string out = ::testing::TempDir() + "/sha256sum.out";
  FILE* sink = ::popen(("sha256sum > " + out).c_str(), "w");
  ASSERT_NE(sink, nullptr);
  constexpr uint64_t kTotal = 1ull << 30;
  const size_t chunk_sizes[] = {1, 7, 4093, 65521, 1048573, 13};
  std::vector<char> buf(1 << 21);
  std::mt19937_64 rng(42);
  for (size_t i = 0; i < buf.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(&buf[i], &v, 8);
  }
  Sha256 h;
  uint64_t done = 0;
  size_t which = 0;
  while (done < kTotal) {
    size_t n = chunk_sizes[which++ % std::size(chunk_sizes)];
    n = static_cast<size_t>(std::min<uint64_t>(n, kTotal - done));
    size_t off = static_cast<size_t>((done * 2654435761u) % (buf.size() - n));
    h.Update(&buf[off], n);
    ASSERT_EQ(std::fwrite(&buf[off], 1, n, sink), n);
    done += n;
  }
  ASSERT_EQ(::pclose(sink), 0);
  EXPECT_EQ(h.size(), kTotal);
  FILE* result = std::fopen(out.c_str(), "r");
  ASSERT_NE(result, nullptr);
  char line[128] = {};
  ASSERT_NE(std::fgets(line, sizeof(line), result), nullptr);
  std::fclose(result);
  EXPECT_EQ(h.Finish().str(), absl::StrCat("sha256:", std::string(line, 64)));
}

}  // namespace
}  // namespace pier::oci
