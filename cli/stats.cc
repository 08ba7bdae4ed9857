// `pier stats [--no-stream] [--format json] CONTAINER...`: resource use of
// running containers (CPU %, memory, network and block I/O, processes), as
// docker stats shows it. Each container is sampled through the
// ContainerStats stream; CPU % compares two samples a second apart. Without
// --no-stream the table is redrawn every second until interrupted.
#include <grpcpp/grpcpp.h>

#include <unistd.h>
#include <cstdio>
#include <iostream>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/format.h"
#include "cli/runtime_client.h"

namespace pier::cli {
namespace {

struct Sample {
  std::string id, name;
  rt::ContainerStatsResponse now;
  std::optional<rt::ContainerStatsResponse> before;
};

double CpuPercent(const Sample& s) {
  if (!s.before) return 0;
  const double cpu = static_cast<double>(s.now.cpu_usage_ns() - s.before->cpu_usage_ns());
  const double sys =
      static_cast<double>(s.now.system_cpu_usage_ns() - s.before->system_cpu_usage_ns());
  if (cpu <= 0 || sys <= 0) return 0;
  return cpu / sys * std::max(1, s.now.online_cpus()) * 100.0;
}

double MemPercent(const rt::ContainerStatsResponse& r) {
  return r.memory_limit_bytes() > 0
             ? static_cast<double>(r.memory_usage_bytes()) / r.memory_limit_bytes() * 100.0
             : 0;
}

// Two samples (one second apart) of `container`, or its error.
absl::StatusOr<Sample> Take(rt::ContainerService::Stub& stub, const std::string& container) {
  grpc::ClientContext ctx;
  rt::ContainerStatsRequest req;
  req.set_id(container);
  req.set_stream(true);
  auto reader = stub.ContainerStats(&ctx, req);
  Sample s;
  rt::ContainerStatsResponse r;
  int n = 0;
  while (n < 2 && reader->Read(&r)) {
    if (n == 0) {
      s.now = r;
    } else {
      s.before = s.now;
      s.now = r;
    }
    ++n;
  }
  ctx.TryCancel();  // the stream would go on as long as the container runs
  grpc::Status st = reader->Finish();
  if (n == 0) {
    return absl::Status(static_cast<absl::StatusCode>(st.error_code()), st.error_message());
  }
  return s;
}

}  // namespace

int Stats(const Globals& g, const std::vector<std::string>& args) {
  bool no_stream = false;
  std::string format_text;
  FlagSet flags("pier stats", "[flags] CONTAINER [CONTAINER...]");
  flags.Bool("no-stream", "", &no_stream, "print one sample and exit");
  flags.String("format", "", &format_text, kFormatHelp);
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  int rc = 0;
  std::optional<Format> format = ParseFormatFlag("pier stats", format_text, &rc);
  if (!format) return rc;
  if (pos.empty()) return Fail(absl::InvalidArgumentError("pier stats needs a CONTAINER"), 2);
  auto stub = ContainerStub(g);
  if (!stub.ok()) return Fail(stub.status());
  const bool tty = ::isatty(STDOUT_FILENO) && !no_stream && format->table();
  for (;;) {
    std::vector<Sample> samples(pos.size());
    std::vector<absl::Status> errors(pos.size());
    {
      std::vector<std::thread> threads;
      for (size_t i = 0; i < pos.size(); ++i) {
        threads.emplace_back([&, i] {
          absl::StatusOr<Sample> s = Take(**stub, pos[i]);
          if (s.ok()) {
            samples[i] = *std::move(s);
          } else {
            errors[i] = s.status();
          }
        });
      }
      for (std::thread& t : threads) t.join();
    }
    for (size_t i = 0; i < pos.size(); ++i) {
      if (!errors[i].ok()) return Fail(errors[i]);
    }
    if (tty) std::printf("\033[2J\033[H");
    if (format->table()) {
      std::printf("%-14s %-20s %-8s %-22s %-7s %-20s %-20s %s\n", "CONTAINER", "NAME", "CPU %",
                  "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS");
    }
    for (size_t i = 0; i < pos.size(); ++i) {
      const rt::ContainerStatsResponse& r = samples[i].now;
      if (!format->table()) {
        nlohmann::ordered_json row = {
            {"Container", pos[i]},
            {"CPUPerc", absl::StrFormat("%.2f%%", CpuPercent(samples[i]))},
            {"MemUsage", r.memory_usage_bytes()},
            {"MemLimit", r.memory_limit_bytes()},
            {"MemPerc", absl::StrFormat("%.2f%%", MemPercent(r))},
            {"NetRx", r.network_rx_bytes()},
            {"NetTx", r.network_tx_bytes()},
            {"BlockRead", r.block_read_bytes()},
            {"BlockWrite", r.block_write_bytes()},
            {"PIDs", r.pids()},
            {"PIDsLimit", r.pids_limit()},
        };
        if (!PrintRow(*format, row)) return 1;
        continue;
      }
      std::printf(
          "%-14s %-20s %-8s %-22s %-7s %-20s %-20s %lld\n", pos[i].substr(0, 12).c_str(),
          pos[i].c_str(), absl::StrFormat("%.2f%%", CpuPercent(samples[i])).c_str(),
          absl::StrCat(HumanSize(r.memory_usage_bytes()), " / ", HumanSize(r.memory_limit_bytes()))
              .c_str(),
          absl::StrFormat("%.2f%%", MemPercent(r)).c_str(),
          absl::StrCat(HumanSize(r.network_rx_bytes()), " / ", HumanSize(r.network_tx_bytes()))
              .c_str(),
          absl::StrCat(HumanSize(r.block_read_bytes()), " / ", HumanSize(r.block_write_bytes()))
              .c_str(),
          static_cast<long long>(r.pids()));
    }
    std::fflush(stdout);
    if (no_stream) return 0;
  }
}

}  // namespace pier::cli
