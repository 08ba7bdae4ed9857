// Minimal leveled logging to stderr for the Pier daemons and tools.
//
//   PIER_LOG(INFO) << "listening on " << addr;
//
// Each line is "<RFC3339 UTC time> <LEVEL> <file>:<line>] <message>".
// Lines are written with one write(2) so concurrent threads do not interleave.
// SetMinLogLevel() filters; PIER_LOG(FATAL) aborts after writing.
// Thread safety: safe from any thread.
#pragma once

#include <sstream>

namespace pier {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kFatal = 4 };

void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

}  // namespace pier

#define PIER_LOG_LEVEL_DEBUG ::pier::LogLevel::kDebug
#define PIER_LOG_LEVEL_INFO ::pier::LogLevel::kInfo
#define PIER_LOG_LEVEL_WARNING ::pier::LogLevel::kWarning
#define PIER_LOG_LEVEL_ERROR ::pier::LogLevel::kError
#define PIER_LOG_LEVEL_FATAL ::pier::LogLevel::kFatal

#define PIER_LOG(level)                                 \
  if (PIER_LOG_LEVEL_##level < ::pier::MinLogLevel()) { \
  } else                                                \
    ::pier::LogMessage(PIER_LOG_LEVEL_##level, __FILE__, __LINE__).stream()
