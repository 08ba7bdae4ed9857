#include "services/runtime/shim/log_file.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lib/common/testing.h"
#include "services/runtime/shim/state_dir.h"

namespace pier::runtime::shim {
namespace {

using ::pier::testing::TempDir;

std::vector<LogEntry> ReadAll(const std::string& dir) {
  std::vector<LogEntry> out;
  for (const std::string& f : ListLogFiles(dir)) {
    std::string buf = *ReadFile(f);
    ConsumeLogLines(&buf, [&](LogEntry e) {
      out.push_back(std::move(e));
      return true;
    });
  }
  return out;
}

TEST(LogFileTest, EncodesTextAndBinary) {
  absl::Time t = absl::FromUnixNanos(1700000000123456789);
  LogEntry text{t, "stdout", "héllo \"x\"\n", false};
  std::string line = EncodeLogEntry(text);
  EXPECT_EQ(line, R"({"d":"héllo \"x\"\n","s":"stdout","t":"2023-11-14T22:13:20.123456789Z"})");
  ASSERT_OK_AND_ASSIGN(LogEntry back, DecodeLogEntry(line));
  EXPECT_EQ(back.data, text.data);
  EXPECT_EQ(back.time, t);
  EXPECT_EQ(back.stream, "stdout");

  LogEntry bin{t, "stderr", std::string("\xff\x00\x01", 3), true};
  line = EncodeLogEntry(bin);
  EXPECT_NE(line.find("\"b64\":true"), std::string::npos);
  ASSERT_OK_AND_ASSIGN(back, DecodeLogEntry(line));
  EXPECT_EQ(back.data, bin.data);
  EXPECT_TRUE(back.partial);
  EXPECT_FALSE(DecodeLogEntry("nope").ok());
}

TEST(LogFileTest, RotatesKeepingNFiles) {
  TempDir tmp;
  ASSERT_OK_AND_ASSIGN(auto w, LogWriter::Open(tmp.path(), 300, 3));
  for (int i = 0; i < 40; ++i) {
    ASSERT_OK(w->Append({absl::Now(), "stdout", absl::StrCat("line ", i, "\n"), false}));
  }
  std::vector<std::string> files = ListLogFiles(tmp.path());
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0], tmp.Sub("log.jsonl.2"));
  EXPECT_EQ(files[2], tmp.Sub("log.jsonl"));
  std::vector<LogEntry> entries = ReadAll(tmp.path());
  ASSERT_FALSE(entries.empty());
  EXPECT_LT(entries.size(), 40u);
  EXPECT_EQ(entries.back().data, "line 39\n");
  for (size_t i = 1; i < entries.size(); ++i) {  // contiguous and in order
    EXPECT_EQ(entries[i].data, absl::StrCat("line ", 40 - entries.size() + i, "\n"));
  }
  for (const std::string& f : files) EXPECT_LE(ReadFile(f)->size(), 300u);
}

TEST(LogFileTest, ConsumeKeepsIncompleteLine) {
  std::string buf = EncodeLogEntry({absl::Now(), "stdout", "a\n", false}) + "\n{\"t\":";
  int n = 0;
  ConsumeLogLines(&buf, [&](LogEntry) {
    ++n;
    return true;
  });
  EXPECT_EQ(n, 1);
  EXPECT_EQ(buf, "{\"t\":");
}

}  // namespace
}  // namespace pier::runtime::shim
