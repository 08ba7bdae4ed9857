#include "lib/content/testsuite/blob_driver_suite.h"

#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "lib/content/filesystem_driver.h"
#include "lib/content/memory_driver.h"

namespace pier::content::testing {

std::string DriverFactoryName(const ::testing::TestParamInfo<DriverFactory>& info) {
  return info.param.name;
}

DriverFactory FilesystemDriverFactory() {
  return {"Filesystem", [](const std::string& scratch) -> std::unique_ptr<BlobDriver> {
            return std::make_unique<FilesystemDriver>(scratch + "/root");
          }};
}

DriverFactory MemoryDriverFactory() {
  return {"Memory", [](const std::string&) -> std::unique_ptr<BlobDriver> {
            return std::make_unique<MemoryDriver>();
          }};
}

void BlobDriverSuite::SetUp() {
  driver_ = GetParam().make(scratch_.path());
  ASSERT_NE(driver_, nullptr);
}

namespace {

using ::pier::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A StatusOr that is OK and whose value matches `m`.
MATCHER_P(IsOkAndHolds, m, "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(m, *arg, result_listener);
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

// Reads everything `reader` has left, in chunks of `chunk` bytes.
absl::StatusOr<std::string> Drain(FileReader& reader, size_t chunk) {
  std::string out;
  std::string buf(chunk, '\0');
  while (true) {
    absl::StatusOr<size_t> n = reader.Read(buf.data(), buf.size());
    if (!n.ok()) return n.status();
    if (*n == 0) return out;
    out.append(buf.data(), *n);
  }
}

TEST_P(BlobDriverSuite, PutContentThenGetContent) {
  ASSERT_OK(PutContent(*driver_, "a/b/c", "hello"));
  ASSERT_OK_AND_ASSIGN(std::string got, GetContent(*driver_, "a/b/c"));
  EXPECT_EQ(got, "hello");

  ASSERT_OK_AND_ASSIGN(FileInfo file, driver_->Stat("a/b/c"));
  EXPECT_EQ(file.path, "a/b/c");
  EXPECT_EQ(file.size, 5u);
  EXPECT_FALSE(file.is_dir);
  EXPECT_GT(file.mtime, absl::UnixEpoch());

  ASSERT_OK_AND_ASSIGN(FileInfo dir, driver_->Stat("a/b"));
  EXPECT_TRUE(dir.is_dir);
  ASSERT_OK_AND_ASSIGN(FileInfo root, driver_->Stat(""));
  EXPECT_TRUE(root.is_dir);

  // Replacing truncates.
  ASSERT_OK(PutContent(*driver_, "a/b/c", "hi"));
  ASSERT_OK_AND_ASSIGN(got, GetContent(*driver_, "a/b/c"));
  EXPECT_EQ(got, "hi");
}

TEST_P(BlobDriverSuite, EmptyFile) {
  ASSERT_OK(PutContent(*driver_, "empty", ""));
  ASSERT_OK_AND_ASSIGN(FileInfo info, driver_->Stat("empty"));
  EXPECT_EQ(info.size, 0u);
  EXPECT_FALSE(info.is_dir);
  ASSERT_OK_AND_ASSIGN(std::string got, GetContent(*driver_, "empty"));
  EXPECT_EQ(got, "");
}

TEST_P(BlobDriverSuite, WriterAppendsAndTruncates) {
  {
    ASSERT_OK_AND_ASSIGN(auto w, driver_->Writer("f", /*append=*/false));
    EXPECT_EQ(w->Size(), 0u);
    ASSERT_OK(w->Write("hello"));
    EXPECT_EQ(w->Size(), 5u);
    ASSERT_OK(w->Close());
    EXPECT_OK(w->Close());  // idempotent
  }
  {
    ASSERT_OK_AND_ASSIGN(auto w, driver_->Writer("f", /*append=*/true));
    EXPECT_EQ(w->Size(), 5u);
    ASSERT_OK(w->Write(" "));
    ASSERT_OK(w->Write("world"));
    EXPECT_EQ(w->Size(), 11u);
    ASSERT_OK(w->Commit());
    ASSERT_OK(w->Close());
  }
  ASSERT_OK_AND_ASSIGN(std::string got, GetContent(*driver_, "f"));
  EXPECT_EQ(got, "hello world");
  {
    ASSERT_OK_AND_ASSIGN(auto w, driver_->Writer("f", /*append=*/false));
    EXPECT_EQ(w->Size(), 0u);
    ASSERT_OK(w->Close());
  }
  ASSERT_OK_AND_ASSIGN(got, GetContent(*driver_, "f"));
  EXPECT_EQ(got, "");
}

TEST_P(BlobDriverSuite, WrittenBytesAreVisibleWithoutCommitAndSurviveClose) {
  {
    ASSERT_OK_AND_ASSIGN(auto w, driver_->Writer("partial", false));
    ASSERT_OK(w->Write("abc"));
    ASSERT_OK_AND_ASSIGN(std::string seen, GetContent(*driver_, "partial"));
    EXPECT_EQ(seen, "abc");
    // Destroyed without Commit or Close.
  }
  ASSERT_OK_AND_ASSIGN(std::string got, GetContent(*driver_, "partial"));
  EXPECT_EQ(got, "abc");
}

TEST_P(BlobDriverSuite, CancelDiscardsTheFile) {
  ASSERT_OK_AND_ASSIGN(auto w, driver_->Writer("dir/cancelled", false));
  ASSERT_OK(w->Write("doomed"));
  ASSERT_OK(w->Cancel());
  EXPECT_THAT(driver_->Stat("dir/cancelled"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(w->Write("more"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(w->Commit(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_P(BlobDriverSuite, WriterStateMachine) {
  ASSERT_OK_AND_ASSIGN(auto w, driver_->Writer("f", false));
  ASSERT_OK(w->Write("x"));
  ASSERT_OK(w->Commit());
  EXPECT_THAT(w->Write("y"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(w->Commit(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(w->Cancel(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_OK(w->Close());
  ASSERT_OK_AND_ASSIGN(std::string got, GetContent(*driver_, "f"));
  EXPECT_EQ(got, "x");

  ASSERT_OK_AND_ASSIGN(auto closed, driver_->Writer("g", false));
  ASSERT_OK(closed->Close());
  EXPECT_THAT(closed->Write("y"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(closed->Cancel(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_P(BlobDriverSuite, StreamsLargeFilesInChunks) {
  const std::string data = RandomBytes(3 * 1024 * 1024 + 17, 1);
  {
    ASSERT_OK_AND_ASSIGN(auto w, driver_->Writer("big/blob", false));
    for (size_t off = 0; off < data.size(); off += 65536) {
      ASSERT_OK(w->Write(absl::string_view(data).substr(off, 65536)));
    }
    EXPECT_EQ(w->Size(), data.size());
    ASSERT_OK(w->Commit());
  }
  ASSERT_OK_AND_ASSIGN(auto r, driver_->Reader("big/blob", 0));
  EXPECT_EQ(r->Size(), data.size());
  ASSERT_OK_AND_ASSIGN(std::string got, Drain(*r, 4096 + 3));
  EXPECT_TRUE(got == data) << "read back " << got.size() << " bytes, wrote " << data.size();
}

TEST_P(BlobDriverSuite, ReaderStartsAtOffset) {
  const std::string data = RandomBytes(100000, 2);
  ASSERT_OK(PutContent(*driver_, "r", data));
  for (uint64_t offset : {uint64_t{0}, uint64_t{1}, uint64_t{4095}, uint64_t{65536},
                          uint64_t{99999}, uint64_t{100000}}) {
    SCOPED_TRACE(absl::StrCat("offset ", offset));
    ASSERT_OK_AND_ASSIGN(auto r, driver_->Reader("r", offset));
    EXPECT_EQ(r->Size(), data.size());
    ASSERT_OK_AND_ASSIGN(std::string got, Drain(*r, 7777));
    EXPECT_TRUE(got == data.substr(offset));
  }
  EXPECT_THAT(driver_->Reader("r", 100001), StatusIs(absl::StatusCode::kOutOfRange));
}

TEST_P(BlobDriverSuite, MissingPathsAreNotFound) {
  ASSERT_OK(PutContent(*driver_, "present/file", "x"));
  constexpr auto kNotFound = absl::StatusCode::kNotFound;
  EXPECT_THAT(driver_->Reader("missing", 0), StatusIs(kNotFound));
  EXPECT_THAT(driver_->Reader("present/missing", 0), StatusIs(kNotFound));
  EXPECT_THAT(driver_->Stat("missing"), StatusIs(kNotFound));
  EXPECT_THAT(driver_->Stat("present/fil"), StatusIs(kNotFound));
  EXPECT_THAT(driver_->List("missing"), StatusIs(kNotFound));
  EXPECT_THAT(driver_->List("presen"), StatusIs(kNotFound));
  EXPECT_THAT(driver_->Move("missing", "elsewhere"), StatusIs(kNotFound));
  EXPECT_THAT(driver_->Delete("missing"), StatusIs(kNotFound));
  EXPECT_THAT(driver_->Delete("present/fil"), StatusIs(kNotFound));
  EXPECT_THAT(GetContent(*driver_, "missing"), StatusIs(kNotFound));
  EXPECT_THAT(driver_->Stat("elsewhere"), StatusIs(kNotFound));
}

TEST_P(BlobDriverSuite, ListsDirectChildrenSorted) {
  ASSERT_OK(PutContent(*driver_, "d/c", "1"));
  ASSERT_OK(PutContent(*driver_, "d/a", "2"));
  ASSERT_OK(PutContent(*driver_, "d/b/x", "3"));
  ASSERT_OK(PutContent(*driver_, "d/b/y/z", "4"));
  ASSERT_OK(PutContent(*driver_, "d0", "5"));
  ASSERT_OK(PutContent(*driver_, "top", "6"));
  EXPECT_THAT(driver_->List("d"), IsOkAndHolds(ElementsAre("d/a", "d/b", "d/c")));
  EXPECT_THAT(driver_->List("d/b"), IsOkAndHolds(ElementsAre("d/b/x", "d/b/y")));
  EXPECT_THAT(driver_->List(""), IsOkAndHolds(ElementsAre("d", "d0", "top")));
  EXPECT_THAT(driver_->List("d/a"), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_P(BlobDriverSuite, MoveRenamesAndReplaces) {
  ASSERT_OK(PutContent(*driver_, "src", "new"));
  ASSERT_OK(PutContent(*driver_, "dst/file", "old"));
  ASSERT_OK(driver_->Move("src", "dst/file"));
  EXPECT_THAT(driver_->Stat("src"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(std::string got, GetContent(*driver_, "dst/file"));
  EXPECT_EQ(got, "new");

  // Parents of the destination are created.
  ASSERT_OK(driver_->Move("dst/file", "x/y/z/moved"));
  ASSERT_OK_AND_ASSIGN(got, GetContent(*driver_, "x/y/z/moved"));
  EXPECT_EQ(got, "new");
  EXPECT_THAT(driver_->Stat("dst/file"), StatusIs(absl::StatusCode::kNotFound));

  // Onto itself: nothing changes.
  ASSERT_OK(driver_->Move("x/y/z/moved", "x/y/z/moved"));
  ASSERT_OK_AND_ASSIGN(got, GetContent(*driver_, "x/y/z/moved"));
  EXPECT_EQ(got, "new");
}

TEST_P(BlobDriverSuite, MoveRefusesDirectories) {
  ASSERT_OK(PutContent(*driver_, "dir/inner", "1"));
  ASSERT_OK(PutContent(*driver_, "file", "2"));
  EXPECT_THAT(driver_->Move("dir", "elsewhere"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(driver_->Move("file", "dir"), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK_AND_ASSIGN(std::string got, GetContent(*driver_, "file"));
  EXPECT_EQ(got, "2");
  ASSERT_OK_AND_ASSIGN(got, GetContent(*driver_, "dir/inner"));
  EXPECT_EQ(got, "1");
}

TEST_P(BlobDriverSuite, MoveKeepsAnOpenWriterAttached) {
  ASSERT_OK_AND_ASSIGN(auto w, driver_->Writer("tmp/upload", false));
  ASSERT_OK(w->Write("part1"));
  ASSERT_OK(driver_->Move("tmp/upload", "final"));
  ASSERT_OK_AND_ASSIGN(std::string got, GetContent(*driver_, "final"));
  EXPECT_EQ(got, "part1");
}

TEST_P(BlobDriverSuite, DeleteIsRecursive) {
  ASSERT_OK(PutContent(*driver_, "t/a", "1"));
  ASSERT_OK(PutContent(*driver_, "t/b/c", "2"));
  ASSERT_OK(PutContent(*driver_, "t2", "3"));
  ASSERT_OK(driver_->Delete("t"));
  EXPECT_THAT(driver_->Stat("t"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(driver_->Stat("t/b/c"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(driver_->List(""), IsOkAndHolds(ElementsAre("t2")));
  ASSERT_OK(driver_->Delete("t2"));
  EXPECT_THAT(driver_->List(""), IsOkAndHolds(IsEmpty()));
  EXPECT_THAT(driver_->Delete(""), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_P(BlobDriverSuite, ReaderAndWriterRefuseDirectoriesAndFileParents) {
  ASSERT_OK(PutContent(*driver_, "dir/inner", "1"));
  EXPECT_THAT(driver_->Reader("dir", 0), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(driver_->Writer("dir", false), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(driver_->Writer("dir/inner/below", false),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK_AND_ASSIGN(std::string got, GetContent(*driver_, "dir/inner"));
  EXPECT_EQ(got, "1");
}

TEST_P(BlobDriverSuite, RejectsPathsOutsideTheRoot) {
  ASSERT_OK(PutContent(*driver_, "ok/file", "x"));
  for (const char* bad :
       {"/etc/passwd", "../escape", "ok/../../escape", "a//b", "a/./b", "a/", ".", "..", "ok/.."}) {
    SCOPED_TRACE(bad);
    constexpr auto kBad = absl::StatusCode::kInvalidArgument;
    EXPECT_THAT(driver_->Reader(bad, 0), StatusIs(kBad, HasSubstr("invalid path")));
    EXPECT_THAT(driver_->Writer(bad, false), StatusIs(kBad));
    EXPECT_THAT(driver_->Stat(bad), StatusIs(kBad));
    EXPECT_THAT(driver_->List(bad), StatusIs(kBad));
    EXPECT_THAT(driver_->Move("ok/file", bad), StatusIs(kBad));
    EXPECT_THAT(driver_->Move(bad, "ok/other"), StatusIs(kBad));
    EXPECT_THAT(driver_->Delete(bad), StatusIs(kBad));
    EXPECT_THAT(driver_->TryLock(bad), StatusIs(kBad));
  }
  EXPECT_THAT(driver_->Writer("", false), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(driver_->Reader("", 0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(driver_->Writer(absl::string_view("nul\0byte", 8), false),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // Nothing was disturbed.
  EXPECT_THAT(driver_->List(""), IsOkAndHolds(ElementsAre("ok")));
  ASSERT_OK_AND_ASSIGN(std::string got, GetContent(*driver_, "ok/file"));
  EXPECT_EQ(got, "x");
}

TEST_P(BlobDriverSuite, TryLockExcludesUntilReleased) {
  ASSERT_OK_AND_ASSIGN(auto a, driver_->TryLock("locks/a"));
  EXPECT_THAT(driver_->TryLock("locks/a"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("is locked")));
  ASSERT_OK_AND_ASSIGN(auto b, driver_->TryLock("locks/b"));
  // Another thread is excluded too.
  absl::Status from_thread;
  std::thread t([&] { from_thread = driver_->TryLock("locks/a").status(); });
  t.join();
  EXPECT_THAT(from_thread, StatusIs(absl::StatusCode::kUnavailable));
  a.reset();
  ASSERT_OK_AND_ASSIGN(auto again, driver_->TryLock("locks/a"));
  EXPECT_NE(again, nullptr);
}

TEST_P(BlobDriverSuite, TryLockSurvivesDeletionOfTheLockedPath) {
  ASSERT_OK(PutContent(*driver_, "ing/x/data", "1"));
  {
    ASSERT_OK_AND_ASSIGN(auto lock, driver_->TryLock("ing/x"));
    ASSERT_OK(driver_->Delete("ing/x"));  // the holder removes what it locked
  }
  ASSERT_OK_AND_ASSIGN(auto lock, driver_->TryLock("ing/x"));
  EXPECT_THAT(driver_->TryLock("ing/x"), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_P(BlobDriverSuite, ConcurrentWritersOnDistinctPaths) {
  constexpr int kThreads = 8;
  std::vector<absl::Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      std::string data = RandomBytes(200000, 100 + i);
      std::string path = absl::StrCat("conc/", i);
      absl::Status s = PutContent(*driver_, path, data);
      if (s.ok()) {
        absl::StatusOr<std::string> got = GetContent(*driver_, path);
        s = !got.ok()      ? got.status()
            : *got != data ? absl::DataLossError(absl::StrCat(path, " differs"))
                           : absl::OkStatus();
      }
      results[i] = s;
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) EXPECT_OK(s);
  ASSERT_OK_AND_ASSIGN(auto listed, driver_->List("conc"));
  EXPECT_EQ(listed.size(), static_cast<size_t>(kThreads));
}

}  // namespace
}  // namespace pier::content::testing
