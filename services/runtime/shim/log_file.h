// A container's captured output: `log.jsonl` in its state directory, one
// JSON object per line,
//
//   {"t":"2024-05-01T12:00:00.123456789Z","s":"stdout","d":"hello\n"}
//
// "t" is the RFC 3339 UTC time with nanoseconds when the shim read the
// bytes, "s" the stream ("stdout" | "stderr"; a tty's output is "stdout"),
// "d" the bytes as JSON text when they are valid UTF-8, otherwise base64
// with "b64":true beside it. "p":true marks a partial line (flushed because
// it grew too long or the stream ended without a newline).
//
// LogWriter (used by pier-shim) rotates by size: when the next line would
// take log.jsonl over `max_size` bytes it becomes log.jsonl.1 (.1 becomes .2,
// ... and the oldest beyond `max_files - 1` is deleted). The reader side
// lists the files oldest first.
//
// Thread safety: LogWriter is not synchronised (the shim's single event loop
// owns it); the free functions are stateless.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/common/fs.h"

namespace pier::runtime::shim {

struct LogEntry {
  absl::Time time;
  std::string stream;  // "stdout" | "stderr"
  std::string data;
  bool partial = false;
};

// One line of log.jsonl, without the trailing newline.
std::string EncodeLogEntry(const LogEntry& entry);
// InvalidArgument (quoting the line) when it is not a log entry.
absl::StatusOr<LogEntry> DecodeLogEntry(absl::string_view line);

class LogWriter {
 public:
  // Opens (appending) `<dir>/log.jsonl`. `max_size` <= 0: never rotate;
  // `max_files` counts log.jsonl itself (at least 1). The open error, naming
  // the file, on failure.
  static absl::StatusOr<std::unique_ptr<LogWriter>> Open(const std::string& dir, int64_t max_size,
                                                         int max_files);

  // Appends one entry as one write(2), rotating first when needed. The
  // write or rename error, naming the file.
  absl::Status Append(const LogEntry& entry);

 private:
  LogWriter(std::string dir, int64_t max_size, int max_files)
      : dir_(std::move(dir)), max_size_(max_size), max_files_(max_files) {}
  absl::Status OpenCurrent();
  absl::Status Rotate();

  std::string dir_;
  int64_t max_size_;
  int max_files_;
  UniqueFd fd_;
  int64_t size_ = 0;
};

// The existing log files of `dir`, oldest first (log.jsonl.K ... .1, then
// log.jsonl). Rotated files are looked up while they exist, so no maximum
// needs to be known.
std::vector<std::string> ListLogFiles(const std::string& dir);

// Splits complete lines off the front of `*buf` and decodes them, calling
// `fn` for each (malformed lines are skipped). An incomplete last line stays
// in `*buf`. Returns false when `fn` asked to stop.
bool ConsumeLogLines(std::string* buf, const std::function<bool(LogEntry)>& fn);

}  // namespace pier::runtime::shim
