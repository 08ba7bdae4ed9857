#include "services/runtime/shim/log_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "lib/common/status.h"
#include "nlohmann/json.hpp"
#include "services/runtime/shim/state_dir.h"

namespace pier::runtime::shim {
namespace {

using Json = nlohmann::json;

// True when `s` is well-formed UTF-8 (no overlongs or surrogates).
bool IsUtf8(absl::string_view s) {
  size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  while (i < n) {
    unsigned char c = p[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string RotatedName(const std::string& dir, int k) {
  return JoinPath(dir, absl::StrCat(kLogFile, ".", k));
}

}  // namespace

std::string EncodeLogEntry(const LogEntry& e) {
  Json j{{"t", FormatTimestamp(e.time)}, {"s", e.stream}};
  if (IsUtf8(e.data)) {
    j["d"] = e.data;
  } else {
    j["d"] = absl::Base64Escape(e.data);
    j["b64"] = true;
  }
  if (e.partial) j["p"] = true;
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

absl::StatusOr<LogEntry> DecodeLogEntry(absl::string_view line) {
  Json j = Json::parse(line.begin(), line.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("t") || !j.contains("d")) {
    return absl::InvalidArgumentError(absl::StrCat("not a log entry: ", line.substr(0, 200)));
  }
  LogEntry e;
  try {
    ASSIGN_OR_RETURN(e.time, ParseTimestamp(j["t"].get<std::string>()));
    e.stream = j.value("s", "stdout");
    e.data = j["d"].get<std::string>();
    e.partial = j.value("p", false);
    if (j.value("b64", false)) {
      std::string raw;
      if (!absl::Base64Unescape(e.data, &raw)) {
        return absl::InvalidArgumentError(absl::StrCat("bad base64 in log entry: ", line));
      }
      e.data = std::move(raw);
    }
  } catch (const Json::exception& ex) {
    return absl::InvalidArgumentError(absl::StrCat("log entry: ", ex.what()));
  }
  return e;
}

absl::StatusOr<std::unique_ptr<LogWriter>> LogWriter::Open(const std::string& dir, int64_t max_size,
                                                           int max_files) {
  std::unique_ptr<LogWriter> w(new LogWriter(dir, max_size, std::max(1, max_files)));
  RETURN_IF_ERROR(w->OpenCurrent());
  return w;
}

absl::Status LogWriter::OpenCurrent() {
  std::string path = JoinPath(dir_, kLogFile);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  fd_.Reset(fd);
  struct stat st;
  if (::fstat(fd, &st) < 0) return ErrnoStatus(errno, absl::StrCat("stat ", path));
  size_ = st.st_size;
  return absl::OkStatus();
}

absl::Status LogWriter::Rotate() {
  fd_.Reset();
  std::string current = JoinPath(dir_, kLogFile);
  if (max_files_ <= 1) {
    if (::unlink(current.c_str()) < 0 && errno != ENOENT) {
      return ErrnoStatus(errno, absl::StrCat("unlink ", current));
    }
    return OpenCurrent();
  }
  // Drop the oldest, shift the rest up by one, then log.jsonl -> .1.
  for (int k = max_files_ - 1;; ++k) {  // also anything left from a larger max_files
    std::string old = RotatedName(dir_, k);
    if (::unlink(old.c_str()) < 0) {
      if (errno == ENOENT) break;
      return ErrnoStatus(errno, absl::StrCat("unlink ", old));
    }
  }
  for (int k = max_files_ - 2; k >= 1; --k) {
    std::string from = RotatedName(dir_, k);
    std::string to = RotatedName(dir_, k + 1);
    if (::rename(from.c_str(), to.c_str()) < 0 && errno != ENOENT) {
      return ErrnoStatus(errno, absl::StrCat("rename ", from));
    }
  }
  std::string first = RotatedName(dir_, 1);
  if (::rename(current.c_str(), first.c_str()) < 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("rename ", current));
  }
  return OpenCurrent();
}

absl::Status LogWriter::Append(const LogEntry& entry) {
  std::string line = EncodeLogEntry(entry);
  line.push_back('\n');
  if (max_size_ > 0 && size_ > 0 && size_ + static_cast<int64_t>(line.size()) > max_size_) {
    RETURN_IF_ERROR(Rotate());
  }
  RETURN_IF_ERROR(WriteAll(fd_.get(), line, JoinPath(dir_, kLogFile)));
  size_ += static_cast<int64_t>(line.size());
  return absl::OkStatus();
}

std::vector<std::string> ListLogFiles(const std::string& dir) {
  std::vector<std::string> rotated;
  for (int k = 1;; ++k) {
    std::string p = RotatedName(dir, k);
    struct stat st;
    if (::stat(p.c_str(), &st) < 0) break;
    rotated.push_back(std::move(p));
  }
  std::vector<std::string> out(rotated.rbegin(), rotated.rend());
  std::string current = JoinPath(dir, kLogFile);
  struct stat st;
  if (::stat(current.c_str(), &st) == 0) out.push_back(current);
  return out;
}

bool ConsumeLogLines(std::string* buf, const std::function<bool(LogEntry)>& fn) {
  size_t start = 0;
  bool go_on = true;
  while (go_on) {
    size_t nl = buf->find('\n', start);
    if (nl == std::string::npos) break;
    absl::string_view line(buf->data() + start, nl - start);
    start = nl + 1;
    if (line.empty()) continue;
    auto e = DecodeLogEntry(line);
    if (e.ok()) go_on = fn(*std::move(e));
  }
  buf->erase(0, start);
  return go_on;
}

}  // namespace pier::runtime::shim
