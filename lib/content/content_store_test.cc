// Runs the ContentStore suite on both drivers, then what only the
// filesystem driver can show: the on-disk layout, corruption of the files
// under blobs/, and crash safety with a writer process killed by SIGKILL.
#include "lib/content/content_store.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <random>
#include <string>

#include "lib/common/fs.h"
#include "lib/common/testing.h"
#include "lib/content/filesystem_driver.h"
#include "lib/content/memory_driver.h"
#include "lib/content/testsuite/content_store_suite.h"

namespace pier::content {
namespace {

using ::pier::oci::Digest;
using ::pier::testing::StatusIs;
using ::pier::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using testing::ContentStoreSuite;

INSTANTIATE_TEST_SUITE_P(Drivers, ContentStoreSuite,
                         ::testing::Values(testing::FilesystemDriverFactory(),
                                           testing::MemoryDriverFactory()),
                         testing::DriverFactoryName);

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::unique_ptr<ContentStore> OpenStore(const std::string& root) {
  return std::make_unique<ContentStore>(std::make_unique<FilesystemDriver>(root));
}

TEST(ContentStoreFilesystemTest, OnDiskLayout) {
  TempDir tmp;
  const std::string root = tmp.Sub("root");
  auto store = OpenStore(root);
  const std::string ref = "upload/0001";
  const std::string ingest = root + "/ingest/" + std::string(Digest::Of(ref).hex());
  EXPECT_EQ(ContentStore::IngestDir(ref), "ingest/" + std::string(Digest::Of(ref).hex()));

  ASSERT_OK_AND_ASSIGN(auto w, store->OpenWriter(ref, std::nullopt, 5));
  ASSERT_OK(w->Write("hel"));
  ASSERT_OK_AND_ASSIGN(std::string stored_ref, ReadFile(ingest + "/ref"));
  EXPECT_EQ(stored_ref, ref);
  ASSERT_OK_AND_ASSIGN(std::string total, ReadFile(ingest + "/total"));
  EXPECT_EQ(total, "5");
  ASSERT_OK_AND_ASSIGN(std::string data, ReadFile(ingest + "/data"));
  EXPECT_EQ(data, "hel");
  EXPECT_TRUE(Exists(ingest + "/startedat"));

  ASSERT_OK(w->Write("lo"));
  ASSERT_OK_AND_ASSIGN(Info info, w->Commit(5, Digest::Of("hello")));
  const std::string blob = root + "/blobs/sha256/" + std::string(info.digest.hex());
  EXPECT_EQ(ContentStore::BlobPath(info.digest), "blobs/sha256/" + std::string(info.digest.hex()));
  ASSERT_OK_AND_ASSIGN(std::string on_disk, ReadFile(blob));
  EXPECT_EQ(on_disk, "hello");
  EXPECT_FALSE(Exists(ingest));
}

TEST(ContentStoreFilesystemTest, VerifyDetectsAModifiedBlobFile) {
  TempDir tmp;
  const std::string root = tmp.Sub("root");
  auto store = OpenStore(root);
  const std::string data = RandomBytes(100000, 1);
  ASSERT_OK_AND_ASSIGN(Info info, store->Put(data));
  ASSERT_OK(store->Verify(info.digest));

  // Flip one byte in the middle of the committed file, in place.
  const std::string blob = root + "/blobs/sha256/" + std::string(info.digest.hex());
  UniqueFd fd(::open(blob.c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid()) << "open " << blob << ": " << errno;
  char flipped = static_cast<char>(data[54321] ^ 0x01);
  ASSERT_EQ(::pwrite(fd.get(), &flipped, 1, 54321), 1);
  fd.Reset();

  EXPECT_THAT(store->Verify(info.digest),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(info.digest.str())));
  // A truncated file is caught too.
  ASSERT_EQ(::truncate(blob.c_str(), 10), 0);
  EXPECT_THAT(store->Verify(info.digest), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(ContentStoreFilesystemTest, BareIngestDirectoriesAreIgnoredAndCleanedUp) {
  TempDir tmp;
  const std::string root = tmp.Sub("root");
  auto store = OpenStore(root);
  // What a crash between taking the lock and writing `ref` leaves behind.
  ASSERT_OK(MakeDirs(root + "/ingest/0123"));
  ASSERT_OK_AND_ASSIGN(auto ingests, store->ListIngests());
  EXPECT_THAT(ingests, IsEmpty());
  ASSERT_OK_AND_ASSIGN(int removed, store->CleanupIngestsBefore(absl::InfiniteFuture()));
  EXPECT_EQ(removed, 1);
  EXPECT_FALSE(Exists(root + "/ingest/0123"));
}

// A MemoryDriver whose TryLock always succeeds, like a backend with no
// locking of its own: the store's in-process lock must still hold.
class NoLockDriver final : public BlobDriver {
 public:
  std::string Name() const override { return "nolock"; }
  absl::StatusOr<std::unique_ptr<FileReader>> Reader(absl::string_view p, uint64_t o) override {
    return mem_.Reader(p, o);
  }
  absl::StatusOr<std::unique_ptr<FileWriter>> Writer(absl::string_view p, bool a) override {
    return mem_.Writer(p, a);
  }
  absl::StatusOr<FileInfo> Stat(absl::string_view p) override { return mem_.Stat(p); }
  absl::StatusOr<std::vector<std::string>> List(absl::string_view d) override {
    return mem_.List(d);
  }
  absl::Status Move(absl::string_view s, absl::string_view d) override { return mem_.Move(s, d); }
  absl::Status Delete(absl::string_view p) override { return mem_.Delete(p); }
  absl::StatusOr<std::unique_ptr<DriverLock>> TryLock(absl::string_view) override {
    return std::make_unique<DriverLock>();
  }

 private:
  MemoryDriver mem_;
};

TEST(ContentStoreLockTest, InProcessLockHoldsWithoutDriverLocking) {
  ContentStore store(std::make_unique<NoLockDriver>());
  ASSERT_OK_AND_ASSIGN(auto w, store.OpenWriter("ref"));
  EXPECT_THAT(store.OpenWriter("ref"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("ref ref is locked")));
  EXPECT_THAT(store.Abort("ref"), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_OK_AND_ASSIGN(int removed, store.CleanupIngestsBefore(absl::InfiniteFuture()));
  EXPECT_EQ(removed, 0);
  ASSERT_OK(w->Close());
  EXPECT_OK(store.OpenWriter("ref"));
}

// A child process that opens `ref`, writes `part`, optionally commits, then
// reports on `report_fd` ('w' written, 'c' committed, 'e' error) and waits
// to be killed. It never returns.
[[noreturn]] void RunChildWriter(const std::string& root, const std::string& ref,
                                 const std::string& part, std::optional<Digest> commit_as,
                                 int report_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
  char result = 'e';
  auto store = OpenStore(root);
  absl::StatusOr<std::unique_ptr<ContentWriter>> w = store->OpenWriter(ref);
  if (w.ok() && (*w)->Write(part).ok()) {
    result = 'w';
    if (commit_as.has_value()) {
      result = (*w)->Commit(part.size(), *commit_as).ok() ? 'c' : 'e';
    }
  }
  // The writer (and its lock) stay alive while we wait for SIGKILL.
  while (::write(report_fd, &result, 1) < 0 && errno == EINTR) {
  }
  while (true) ::pause();
}

// Forks RunChildWriter and kills the child with SIGKILL on destruction (or
// when Kill() is called); reports what the child said.
class ChildWriter {
 public:
  ChildWriter(const std::string& root, const std::string& ref, const std::string& part,
              std::optional<Digest> commit_as = std::nullopt) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(fds[0]);
      RunChildWriter(root, ref, part, commit_as, fds[1]);
    }
    ::close(fds[1]);
    if (pid_ > 0) {
      char c = 0;
      ssize_t n;
      do {
        n = ::read(fds[0], &c, 1);  // EOF if the child died without a word
      } while (n < 0 && errno == EINTR);
      report_ = n == 1 ? c : '?';
    }
    ::close(fds[0]);
  }
  ~ChildWriter() { Kill(); }

  char report() const { return report_; }

  // SIGKILLs the child and reaps it; true when it died of SIGKILL.
  bool Kill() {
    if (pid_ <= 0) return false;
    ::kill(pid_, SIGKILL);
    int status = 0;
    pid_t got;
    do {
      got = ::waitpid(pid_, &status, 0);
    } while (got < 0 && errno == EINTR);
    pid_ = -1;
    return got > 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  }

 private:
  pid_t pid_ = -1;
  char report_ = '?';
};

TEST(ContentStoreCrashTest, WriterKilledMidBlobLeavesAResumableIngest) {
  TempDir tmp;
  const std::string root = tmp.Sub("root");
  const std::string data = RandomBytes(3 * 1024 * 1024 + 5, 42);
  const Digest d = Digest::Of(data);
  const size_t written = 1024 * 1024 + 7;
  const std::string ref = "crash-upload";

  ChildWriter child(root, ref, data.substr(0, written));
  ASSERT_EQ(child.report(), 'w');

  // While the child lives, its flock keeps everyone else off the ref.
  auto store = OpenStore(root);
  EXPECT_THAT(store->OpenWriter(ref),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("is locked")));
  EXPECT_THAT(store->Abort(ref), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_OK_AND_ASSIGN(int removed, store->CleanupIngestsBefore(absl::InfiniteFuture()));
  EXPECT_EQ(removed, 0);

  ASSERT_TRUE(child.Kill());

  // Nothing is visible; the ingest holds exactly what the child wrote.
  EXPECT_THAT(store->Info(d), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(IngestStatus st, store->Status(ref));
  EXPECT_EQ(st.offset, written);

  ASSERT_OK_AND_ASSIGN(auto w, store->OpenWriter(ref));
  EXPECT_EQ(w->Offset(), written);
  EXPECT_EQ(w->Digest(), Digest::Of(data.substr(0, written)));
  ASSERT_OK(w->Write(absl::string_view(data).substr(written)));
  ASSERT_OK_AND_ASSIGN(Info info, w->Commit(data.size(), d));
  EXPECT_EQ(info.size, data.size());
  EXPECT_OK(store->Verify(d));
  ASSERT_OK_AND_ASSIGN(auto ingests, store->ListIngests());
  EXPECT_THAT(ingests, IsEmpty());
}

TEST(ContentStoreCrashTest, WriterKilledAfterCommitLeavesTheCompleteBlob) {
  TempDir tmp;
  const std::string root = tmp.Sub("root");
  const std::string data = RandomBytes(2 * 1024 * 1024 + 1, 43);
  const Digest d = Digest::Of(data);

  ChildWriter child(root, "committed-then-killed", data, d);
  ASSERT_EQ(child.report(), 'c');
  ASSERT_TRUE(child.Kill());

  auto store = OpenStore(root);
  ASSERT_OK_AND_ASSIGN(Info info, store->Info(d));
  EXPECT_EQ(info.size, data.size());
  EXPECT_OK(store->Verify(d));
  ASSERT_OK_AND_ASSIGN(std::string got, store->ReadAll(d, data.size()));
  EXPECT_TRUE(got == data);
  EXPECT_THAT(store->Status("committed-then-killed"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(auto ingests, store->ListIngests());
  EXPECT_THAT(ingests, IsEmpty());
}

}  // namespace
}  // namespace pier::content
