#include "cli/logs_stream.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include "absl/time/time.h"
#include "lib/common/fs.h"

namespace pier::cli {

grpc::Status StreamLogs(rt::ContainerService::Stub& stub, const std::string& id,
                        const LogsOptions& options) {
  grpc::ClientContext ctx;
  rt::ContainerLogsRequest req;
  req.set_id(id);
  req.set_follow(options.follow);
  if (options.tail >= 0) req.set_tail(options.tail);
  req.set_timestamps(options.timestamps);
  req.set_stdout(true);
  req.set_stderr(true);
  req.set_with_exit(options.follow && options.exit != nullptr);
  req.set_remove(req.with_exit() && options.remove);
  auto reader = stub.ContainerLogs(&ctx, req);
  rt::ContainerLogsResponse resp;
  while (reader->Read(&resp)) {
    if (resp.has_exit() && options.exit != nullptr) {
      *options.exit = resp.exit();
      if (options.got_exit != nullptr) *options.got_exit = true;
    }
    for (const rt::LogEntry& e : resp.entries()) {
      int fd = e.stream() == common::v1::OUTPUT_STREAM_STDERR ? STDERR_FILENO : STDOUT_FILENO;
      if (options.timestamps) {
        absl::Time t =
            absl::FromUnixSeconds(e.time().seconds()) + absl::Nanoseconds(e.time().nanos());
        std::string ts = absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ ", t, absl::UTCTimeZone());
        (void)WriteAll(fd, ts, "stdout");
      }
      (void)WriteAll(fd, e.data(), "stdout");
    }
  }
  return reader->Finish();
}

}  // namespace pier::cli
