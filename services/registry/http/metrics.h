// Prometheus metrics and the structured access log of pier-registry's HTTP
// front door.
//
// Exposed at GET /metrics in the Prometheus text format (version 0.0.4):
//   pier_registry_http_requests_total{method,code}      counter
//   pier_registry_http_request_duration_seconds{method} histogram
//   pier_registry_http_bytes_received_total             counter
//   pier_registry_http_bytes_sent_total                 counter
//   pier_registry_uploads_in_flight                     gauge
// Each request also logs one line "access remote=... method=... path=...
// status=... bytes_in=... bytes_out=... duration_ms=... user=...".
//
// Thread safety: all methods are safe from any thread (atomics and one
// mutex for the labelled counters).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace pier::registry {

// Per-request figures, filled in by the handler while it serves.
struct RequestStats {
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  std::string user;
};

// The stats of the request the calling thread is serving, or null.
RequestStats* CurrentRequestStats();

// Sets the calling thread's current request for the life of the object.
class ScopedRequestStats {
 public:
  explicit ScopedRequestStats(RequestStats* stats);
  ~ScopedRequestStats();
  ScopedRequestStats(const ScopedRequestStats&) = delete;
  ScopedRequestStats& operator=(const ScopedRequestStats&) = delete;

 private:
  RequestStats* previous_;
};

class Metrics {
 public:
  Metrics() = default;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  void Record(absl::string_view method, int status, double seconds, const RequestStats& stats);
  void UploadStarted() { uploads_in_flight_.fetch_add(1); }
  void UploadEnded() { uploads_in_flight_.fetch_sub(1); }

  // The Prometheus text exposition.
  std::string Render() const;

 private:
  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1,    5};
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> buckets{};
    uint64_t count = 0;
    double sum = 0;
  };

  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // Guarded by mu_.
  std::map<std::string, Histogram> durations_;                // Guarded by mu_.
  std::atomic<uint64_t> bytes_in_{0};
  std::atomic<uint64_t> bytes_out_{0};
  std::atomic<int64_t> uploads_in_flight_{0};
};

}  // namespace pier::registry
