#include "lib/archive/stream.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "lib/common/fs.h"
#include "lib/common/status.h"

namespace pier::archive {

ByteSink FdSink(int fd) {
  return [fd](absl::string_view chunk) { return WriteAll(fd, chunk, "layer output"); };
}

ByteSink StringSink(std::string* out) {
  return [out](absl::string_view chunk) {
    out->append(chunk.data(), chunk.size());
    return absl::OkStatus();
  };
}

ByteSource FdSource(int fd) {
  return [fd](char* buf, size_t len) -> absl::StatusOr<size_t> {
    while (true) {
      ssize_t n = ::read(fd, buf, len);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return ErrnoStatus(errno, "read layer input");
    }
  };
}

ByteSource StringSource(absl::string_view data) {
  auto pos = std::make_shared<size_t>(0);
  return [data, pos](char* buf, size_t len) -> absl::StatusOr<size_t> {
    size_t n = std::min(len, data.size() - *pos);
    std::memcpy(buf, data.data() + *pos, n);
    *pos += n;
    return n;
  };
}

}  // namespace pier::archive
