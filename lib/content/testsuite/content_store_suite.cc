#include "lib/content/testsuite/content_store_suite.h"

#include <algorithm>
#include <cstdint>
#include <latch>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"

namespace pier::content::testing {

void ContentStoreSuite::SetUp() {
  std::unique_ptr<BlobDriver> driver = GetParam().make(scratch_.path());
  ASSERT_NE(driver, nullptr);
  store_ = std::make_unique<ContentStore>(std::move(driver));
}

namespace {

using ::pier::oci::Digest;
using ::pier::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr auto kInvalidArgument = absl::StatusCode::kInvalidArgument;
constexpr auto kNotFound = absl::StatusCode::kNotFound;
constexpr auto kUnavailable = absl::StatusCode::kUnavailable;
constexpr auto kFailedPrecondition = absl::StatusCode::kFailedPrecondition;

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

// Writes `data` in `chunk`-sized pieces.
absl::Status WriteChunked(ContentWriter& w, absl::string_view data, size_t chunk) {
  for (size_t off = 0; off < data.size(); off += chunk) {
    absl::Status s = w.Write(data.substr(off, chunk));
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

TEST_P(ContentStoreSuite, WriteCommitAndReadBack) {
  const std::string data = RandomBytes(300000, 1);
  const Digest digest = Digest::Of(data);
  ASSERT_OK_AND_ASSIGN(auto w, store_->OpenWriter("upload-1"));
  EXPECT_EQ(w->ref(), "upload-1");
  EXPECT_EQ(w->Offset(), 0u);
  EXPECT_EQ(w->Digest(), Digest());
  ASSERT_OK(WriteChunked(*w, data, 32768));
  EXPECT_EQ(w->Offset(), data.size());
  EXPECT_EQ(w->Digest(), digest);
  // Not visible before Commit.
  EXPECT_THAT(store_->Info(digest), StatusIs(kNotFound));
  ASSERT_OK_AND_ASSIGN(Info committed, w->Commit(data.size(), digest));
  EXPECT_EQ(committed.digest, digest);
  EXPECT_EQ(committed.size, data.size());

  ASSERT_OK_AND_ASSIGN(Info info, store_->Info(digest));
  EXPECT_EQ(info.digest, digest);
  EXPECT_EQ(info.size, data.size());
  EXPECT_GT(info.created, absl::UnixEpoch());
  ASSERT_OK_AND_ASSIGN(std::string got, store_->ReadAll(digest, data.size()));
  EXPECT_TRUE(got == data);
  EXPECT_OK(store_->Verify(digest));

  // The ingest is gone and the writer is finished.
  EXPECT_THAT(store_->Status("upload-1"), StatusIs(kNotFound, HasSubstr("upload-1")));
  ASSERT_OK_AND_ASSIGN(auto ingests, store_->ListIngests());
  EXPECT_THAT(ingests, IsEmpty());
  EXPECT_THAT(w->Write("more"), StatusIs(kFailedPrecondition));
  EXPECT_THAT(w->Commit(), StatusIs(kFailedPrecondition));
  EXPECT_OK(w->Close());
}

TEST_P(ContentStoreSuite, EmptyBlob) {
  ASSERT_OK_AND_ASSIGN(auto w, store_->OpenWriter("empty"));
  ASSERT_OK_AND_ASSIGN(Info info, w->Commit(0, Digest()));
  EXPECT_EQ(info.size, 0u);
  ASSERT_OK_AND_ASSIGN(std::string got, store_->ReadAll(Digest(), 0));
  EXPECT_EQ(got, "");
  EXPECT_OK(store_->Verify(Digest()));
}

TEST_P(ContentStoreSuite, MissingContentIsNotFoundAndNamed) {
  const Digest d = Digest::Of("never stored");
  EXPECT_THAT(store_->Info(d), StatusIs(kNotFound, HasSubstr(d.str())));
  EXPECT_THAT(store_->OpenReader(d, 0), StatusIs(kNotFound, HasSubstr(d.str())));
  EXPECT_THAT(store_->ReadAll(d, 100), StatusIs(kNotFound, HasSubstr(d.str())));
  EXPECT_THAT(store_->ReadAt(d, 0, 1), StatusIs(kNotFound, HasSubstr(d.str())));
  EXPECT_THAT(store_->Verify(d), StatusIs(kNotFound, HasSubstr(d.str())));
  EXPECT_THAT(store_->Delete(d), StatusIs(kNotFound, HasSubstr(d.str())));
  ASSERT_OK_AND_ASSIGN(auto all, store_->List());
  EXPECT_THAT(all, IsEmpty());
}

TEST_P(ContentStoreSuite, RangedReads) {
  const std::string data = RandomBytes(1024 * 1024 + 3, 2);
  ASSERT_OK_AND_ASSIGN(Info info, store_->Put(data));
  const Digest& d = info.digest;

  ASSERT_OK_AND_ASSIGN(std::string head, store_->ReadAt(d, 0, 10));
  EXPECT_TRUE(head == data.substr(0, 10));
  ASSERT_OK_AND_ASSIGN(std::string middle, store_->ReadAt(d, 1000, 500000));
  EXPECT_TRUE(middle == data.substr(1000, 500000));
  ASSERT_OK_AND_ASSIGN(std::string tail, store_->ReadAt(d, data.size() - 3, 100));
  EXPECT_TRUE(tail == data.substr(data.size() - 3));
  ASSERT_OK_AND_ASSIGN(std::string none, store_->ReadAt(d, data.size(), 10));
  EXPECT_EQ(none, "");
  EXPECT_THAT(store_->ReadAt(d, data.size() + 1, 1), StatusIs(absl::StatusCode::kOutOfRange));

  // Streaming from an offset.
  ASSERT_OK_AND_ASSIGN(auto reader, store_->OpenReader(d, 123457));
  EXPECT_EQ(reader->Size(), data.size());
  std::string streamed;
  std::string buf(10000, '\0');
  while (true) {
    ASSERT_OK_AND_ASSIGN(size_t n, reader->Read(buf.data(), buf.size()));
    if (n == 0) break;
    streamed.append(buf.data(), n);
  }
  EXPECT_TRUE(streamed == data.substr(123457));
}

TEST_P(ContentStoreSuite, ReadAllHonoursTheLimit) {
  ASSERT_OK_AND_ASSIGN(Info info, store_->Put("twelve bytes"));
  EXPECT_THAT(store_->ReadAll(info.digest, 11),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr(info.digest.str())));
  ASSERT_OK_AND_ASSIGN(std::string got, store_->ReadAll(info.digest, 12));
  EXPECT_EQ(got, "twelve bytes");
}

TEST_P(ContentStoreSuite, SizeMismatchLeavesNothingVisible) {
  const std::string data = RandomBytes(5000, 3);
  const Digest d = Digest::Of(data);
  ASSERT_OK_AND_ASSIGN(auto w, store_->OpenWriter("short"));
  ASSERT_OK(w->Write(data));
  EXPECT_THAT(w->Commit(5001, d),
              StatusIs(kInvalidArgument, HasSubstr("size mismatch: got 5000, expected 5001")));
  EXPECT_THAT(store_->Info(d), StatusIs(kNotFound));
  EXPECT_THAT(store_->Status("short"), StatusIs(kNotFound));
  ASSERT_OK_AND_ASSIGN(auto ingests, store_->ListIngests());
  EXPECT_THAT(ingests, IsEmpty());
  ASSERT_OK_AND_ASSIGN(auto blobs, store_->List());
  EXPECT_THAT(blobs, IsEmpty());
  EXPECT_THAT(w->Write("x"), StatusIs(kFailedPrecondition));
  // The ref is free again and starts from nothing.
  ASSERT_OK_AND_ASSIGN(auto again, store_->OpenWriter("short"));
  EXPECT_EQ(again->Offset(), 0u);
}

TEST_P(ContentStoreSuite, DigestMismatchLeavesNothingVisible) {
  const std::string data = "the real bytes";
  const Digest real = Digest::Of(data);
  const Digest claimed = Digest::Of("the claimed bytes");
  ASSERT_OK_AND_ASSIGN(auto w, store_->OpenWriter("liar"));
  ASSERT_OK(w->Write(data));
  EXPECT_THAT(w->Commit(data.size(), claimed),
              StatusIs(kInvalidArgument, HasSubstr(absl::StrCat("digest mismatch: got ", real.str(),
                                                                ", expected ", claimed.str()))));
  EXPECT_THAT(store_->Info(real), StatusIs(kNotFound));
  EXPECT_THAT(store_->Info(claimed), StatusIs(kNotFound));
  EXPECT_THAT(store_->Status("liar"), StatusIs(kNotFound));
  ASSERT_OK_AND_ASSIGN(auto ingests, store_->ListIngests());
  EXPECT_THAT(ingests, IsEmpty());
  ASSERT_OK_AND_ASSIGN(auto blobs, store_->List());
  EXPECT_THAT(blobs, IsEmpty());
}

TEST_P(ContentStoreSuite, ExpectationsGivenAtOpenAreEnforced) {
  const Digest claimed = Digest::Of("something else");
  {
    ASSERT_OK_AND_ASSIGN(auto w, store_->OpenWriter("by-digest", claimed));
    ASSERT_OK(w->Write("data"));
    EXPECT_THAT(w->Commit(), StatusIs(kInvalidArgument, HasSubstr("digest mismatch")));
  }
  {
    ASSERT_OK_AND_ASSIGN(auto w, store_->OpenWriter("by-size", std::nullopt, 3));
    ASSERT_OK_AND_ASSIGN(IngestStatus st, store_->Status("by-size"));
    EXPECT_EQ(st.total, std::optional<uint64_t>(3));
    ASSERT_OK(w->Write("ab"));
    EXPECT_THAT(w->Write("cd"), StatusIs(kInvalidArgument, HasSubstr("expected size 3")));
    EXPECT_EQ(w->Offset(), 2u);
    ASSERT_OK(w->Write("c"));
    ASSERT_OK(w->Commit());
  }
  EXPECT_OK(store_->Info(Digest::Of("abc")));
  EXPECT_THAT(store_->Info(claimed), StatusIs(kNotFound));
}

TEST_P(ContentStoreSuite, ResumesAfterTheWriterIsClosed) {
  const std::string data = RandomBytes(700001, 4);
  const Digest d = Digest::Of(data);
  const size_t half = 350000;
  {
    ASSERT_OK_AND_ASSIGN(auto w, store_->OpenWriter("resumable", std::nullopt, data.size()));
    ASSERT_OK(WriteChunked(*w, absl::string_view(data).substr(0, half), 4096));
    ASSERT_OK(w->Close());
  }
  ASSERT_OK_AND_ASSIGN(IngestStatus st, store_->Status("resumable"));
  EXPECT_EQ(st.ref, "resumable");
  EXPECT_EQ(st.offset, half);
  EXPECT_EQ(st.total, std::optional<uint64_t>(data.size()));
  EXPECT_LE(st.started_at, st.updated_at);
  ASSERT_OK_AND_ASSIGN(auto ingests, store_->ListIngests());
  ASSERT_THAT(ingests, SizeIs(1));
  EXPECT_EQ(ingests[0].ref, "resumable");
  EXPECT_EQ(ingests[0].offset, half);

  {
    // Destroying the writer (without Close) also keeps the ingest.
    ASSERT_OK_AND_ASSIGN(auto w, store_->OpenWriter("resumable"));
    EXPECT_EQ(w->Offset(), half);
    EXPECT_EQ(w->Digest(), Digest::Of(data.substr(0, half)));
    EXPECT_EQ(w->Status().total, std::optional<uint64_t>(data.size()));  // from disk
    ASSERT_OK(w->Write(absl::string_view(data).substr(half, 1000)));
  }
  ASSERT_OK_AND_ASSIGN(auto w, store_->OpenWriter("resumable"));
  EXPECT_EQ(w->Offset(), half + 1000);
  ASSERT_OK(WriteChunked(*w, absl::string_view(data).substr(half + 1000), 65536));
  EXPECT_EQ(w->Digest(), d);
  ASSERT_OK(w->Commit(data.size(), d));
  EXPECT_OK(store_->Verify(d));
  ASSERT_OK_AND_ASSIGN(std::string got, store_->ReadAll(d, data.size()));
  EXPECT_TRUE(got == data);
}

TEST_P(ContentStoreSuite, ResumeRejectsAnIngestLargerThanExpected) {
  {
    ASSERT_OK_AND_ASSIGN(auto w, store_->OpenWriter("big"));
    ASSERT_OK(w->Write("0123456789"));
  }
  EXPECT_THAT(store_->OpenWriter("big", std::nullopt, 5),
              StatusIs(kInvalidArgument, HasSubstr("more than the expected size 5")));
  // The failed open released the ref.
  ASSERT_OK_AND_ASSIGN(auto w, store_->OpenWriter("big"));
  EXPECT_EQ(w->Offset(), 10u);
}

TEST_P(ContentStoreSuite, AbortThroughTheWriter) {
  ASSERT_OK_AND_ASSIGN(auto w, store_->OpenWriter("abort-me"));
  ASSERT_OK(w->Write("some bytes"));
  ASSERT_OK(w->Abort());
  EXPECT_THAT(w->Abort(), StatusIs(kFailedPrecondition));
  EXPECT_THAT(w->Write("x"), StatusIs(kFailedPrecondition));
  EXPECT_THAT(store_->Status("abort-me"), StatusIs(kNotFound));
  ASSERT_OK_AND_ASSIGN(auto again, store_->OpenWriter("abort-me"));
  EXPECT_EQ(again->Offset(), 0u);
}

TEST_P(ContentStoreSuite, AbortByRef) {
  {
    ASSERT_OK_AND_ASSIGN(auto w, store_->OpenWriter("stale"));
    ASSERT_OK(w->Write("abandoned"));
    // Held: cannot be aborted from outside.
    EXPECT_THAT(store_->Abort("stale"), StatusIs(kUnavailable, HasSubstr("ref stale is locked")));
  }
  ASSERT_OK(store_->Abort("stale"));
  EXPECT_THAT(store_->Status("stale"), StatusIs(kNotFound));
  EXPECT_THAT(store_->Abort("stale"), StatusIs(kNotFound, HasSubstr("stale")));
  EXPECT_THAT(store_->Abort("never-existed"), StatusIs(kNotFound));
}

TEST_P(ContentStoreSuite, TruncateToZeroStartsOver) {
  ASSERT_OK_AND_ASSIGN(auto w, store_->OpenWriter("redo"));
  ASSERT_OK(w->Write("wrong start"));
  EXPECT_THAT(w->Truncate(3), StatusIs(kInvalidArgument));
  ASSERT_OK(w->Truncate(0));
  EXPECT_EQ(w->Offset(), 0u);
  EXPECT_EQ(w->Digest(), Digest());
  ASSERT_OK(w->Write("right"));
  ASSERT_OK_AND_ASSIGN(Info info, w->Commit(5, Digest::Of("right")));
  ASSERT_OK_AND_ASSIGN(std::string got, store_->ReadAll(info.digest, 100));
  EXPECT_EQ(got, "right");
}

TEST_P(ContentStoreSuite, CommittingExistingContentSucceedsAndDropsTheIngest) {
  const std::string data = RandomBytes(10000, 5);
  ASSERT_OK_AND_ASSIGN(Info first, store_->Put(data));
  ASSERT_OK_AND_ASSIGN(auto w, store_->OpenWriter("dup"));
  ASSERT_OK(w->Write(data));
  ASSERT_OK_AND_ASSIGN(Info second, w->Commit(data.size(), first.digest));
  EXPECT_EQ(second.digest, first.digest);
  EXPECT_EQ(second.size, first.size);
  ASSERT_OK_AND_ASSIGN(auto ingests, store_->ListIngests());
  EXPECT_THAT(ingests, IsEmpty());
  EXPECT_OK(store_->Verify(first.digest));
}

TEST_P(ContentStoreSuite, PutChecksTheDigestBeforeStoring) {
  ASSERT_OK_AND_ASSIGN(Info info, store_->Put("payload", Digest::Of("payload")));
  EXPECT_EQ(info.digest, Digest::Of("payload"));
  EXPECT_EQ(info.size, 7u);
  ASSERT_OK_AND_ASSIGN(Info again, store_->Put("payload"));
  EXPECT_EQ(again.digest, info.digest);

  EXPECT_THAT(store_->Put("other", Digest::Of("not other")),
              StatusIs(kInvalidArgument, HasSubstr("digest mismatch")));
  EXPECT_THAT(store_->Info(Digest::Of("other")), StatusIs(kNotFound));
  ASSERT_OK_AND_ASSIGN(auto ingests, store_->ListIngests());
  EXPECT_THAT(ingests, IsEmpty());
}

TEST_P(ContentStoreSuite, VerifyDetectsContentThatNoLongerMatchesItsName) {
  ASSERT_OK_AND_ASSIGN(Info info, store_->Put("pristine content"));
  ASSERT_OK(store_->Verify(info.digest));
  // Corrupt it behind the store's back, through the driver.
  ASSERT_OK(PutContent(store_->driver(), ContentStore::BlobPath(info.digest), "pristine c0ntent"));
  EXPECT_THAT(store_->Verify(info.digest),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr(absl::StrCat(info.digest.str(), " is corrupt"))));
}

TEST_P(ContentStoreSuite, ListWalkAndDelete) {
  std::vector<Digest> digests;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(Info info, store_->Put(RandomBytes(100 + i, 10 + i)));
    digests.push_back(info.digest);
  }
  std::sort(digests.begin(), digests.end());
  // A stray file under blobs/sha256 is not content.
  ASSERT_OK(PutContent(store_->driver(), "blobs/sha256/not-a-digest", "junk"));

  ASSERT_OK_AND_ASSIGN(std::vector<Info> all, store_->List());
  ASSERT_THAT(all, SizeIs(3));
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].digest, digests[i]);
    ASSERT_OK_AND_ASSIGN(Info info, store_->Info(all[i].digest));
    EXPECT_EQ(all[i].size, info.size);
  }

  int seen = 0;
  EXPECT_THAT(store_->Walk([&seen](const Info&) {
    ++seen;
    return absl::CancelledError("stop");
  }),
              StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(seen, 1);

  ASSERT_OK(store_->Delete(digests[1]));
  EXPECT_THAT(store_->Info(digests[1]), StatusIs(kNotFound));
  EXPECT_THAT(store_->Delete(digests[1]), StatusIs(kNotFound));
  ASSERT_OK_AND_ASSIGN(all, store_->List());
  ASSERT_THAT(all, SizeIs(2));
  EXPECT_EQ(all[0].digest, digests[0]);
  EXPECT_EQ(all[1].digest, digests[2]);
}

TEST_P(ContentStoreSuite, RefsAreValidatedAndAnyStringIsSafe) {
  EXPECT_THAT(store_->OpenWriter(""), StatusIs(kInvalidArgument));
  EXPECT_THAT(store_->OpenWriter(std::string(1025, 'r')), StatusIs(kInvalidArgument));
  EXPECT_THAT(store_->Status(""), StatusIs(kInvalidArgument));
  const std::string odd = "../../etc/passwd\n/with slashes and \xff bytes";
  {
    ASSERT_OK_AND_ASSIGN(auto w, store_->OpenWriter(odd));
    ASSERT_OK(w->Write("x"));
  }
  ASSERT_OK_AND_ASSIGN(IngestStatus st, store_->Status(odd));
  EXPECT_EQ(st.ref, odd);
  EXPECT_EQ(st.offset, 1u);
  ASSERT_OK(store_->Abort(odd));
}

TEST_P(ContentStoreSuite, SameRefFromAnotherThreadIsUnavailable) {
  ASSERT_OK_AND_ASSIGN(auto w, store_->OpenWriter("contended"));
  ASSERT_OK(w->Write("first writer"));
  absl::Status second;
  std::thread t([&] { second = store_->OpenWriter("contended").status(); });
  t.join();
  EXPECT_THAT(second, StatusIs(kUnavailable, HasSubstr("ref contended is locked")));
  // Other refs are not affected.
  ASSERT_OK_AND_ASSIGN(auto other, store_->OpenWriter("uncontended"));
  // Once released, the ref resumes where the first writer stopped.
  ASSERT_OK(w->Close());
  ASSERT_OK_AND_ASSIGN(auto resumed, store_->OpenWriter("contended"));
  EXPECT_EQ(resumed->Offset(), 12u);
}

TEST_P(ContentStoreSuite, TwoWritersOfTheSameBlobUnderDifferentRefsBothCommit) {
  const std::string data = RandomBytes(8 * 1024 * 1024, 6);
  const Digest d = Digest::Of(data);
  constexpr int kWriters = 2;
  std::latch opened(kWriters);
  std::vector<absl::Status> results(kWriters);
  std::vector<std::thread> threads;
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<std::unique_ptr<ContentWriter>> w =
          store_->OpenWriter(absl::StrCat("same-blob-", i));
      opened.count_down();
      if (!w.ok()) {
        results[i] = w.status();
        return;
      }
      opened.wait();  // both ingests exist before either writes
      absl::Status s = WriteChunked(**w, data, 65536);
      if (s.ok()) s = (*w)->Commit(data.size(), d).status();
      results[i] = s;
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) EXPECT_OK(s);
  EXPECT_OK(store_->Verify(d));
  ASSERT_OK_AND_ASSIGN(Info info, store_->Info(d));
  EXPECT_EQ(info.size, data.size());
  ASSERT_OK_AND_ASSIGN(auto ingests, store_->ListIngests());
  EXPECT_THAT(ingests, IsEmpty());
  ASSERT_OK_AND_ASSIGN(auto blobs, store_->List());
  EXPECT_THAT(blobs, SizeIs(1));
}

TEST_P(ContentStoreSuite, ConcurrentPutsOfTheSameContent) {
  const std::string data = RandomBytes(500000, 7);
  constexpr int kThreads = 4;
  std::vector<absl::Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = store_->Put(data).status(); });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) EXPECT_OK(s);
  EXPECT_OK(store_->Verify(Digest::Of(data)));
  ASSERT_OK_AND_ASSIGN(auto ingests, store_->ListIngests());
  EXPECT_THAT(ingests, IsEmpty());
}

TEST_P(ContentStoreSuite, CleanupIngestsRemovesIdleOnesAndSkipsHeldOnes) {
  {
    ASSERT_OK_AND_ASSIGN(auto idle, store_->OpenWriter("idle"));
    ASSERT_OK(idle->Write("left behind"));
  }
  ASSERT_OK_AND_ASSIGN(auto busy, store_->OpenWriter("busy"));
  ASSERT_OK(busy->Write("still going"));

  // Nothing is older than the beginning of time, and nothing here has been
  // idle for a day.
  ASSERT_OK_AND_ASSIGN(int removed, store_->CleanupIngestsBefore(absl::InfinitePast()));
  EXPECT_EQ(removed, 0);
  ASSERT_OK_AND_ASSIGN(removed, store_->CleanupIngests(absl::Hours(24)));
  EXPECT_EQ(removed, 0);
  ASSERT_OK_AND_ASSIGN(auto ingests, store_->ListIngests());
  EXPECT_THAT(ingests, SizeIs(2));

  // Everything is older than the end of time, but "busy" is held.
  ASSERT_OK_AND_ASSIGN(removed, store_->CleanupIngestsBefore(absl::InfiniteFuture()));
  EXPECT_EQ(removed, 1);
  EXPECT_THAT(store_->Status("idle"), StatusIs(kNotFound));
  ASSERT_OK_AND_ASSIGN(IngestStatus st, store_->Status("busy"));
  EXPECT_EQ(st.offset, 11u);
  ASSERT_OK(busy->Write("!"));
  ASSERT_OK(busy->Commit(12, Digest::Of("still going!")));
  ASSERT_OK_AND_ASSIGN(ingests, store_->ListIngests());
  EXPECT_THAT(ingests, IsEmpty());
}

}  // namespace
}  // namespace pier::content::testing
