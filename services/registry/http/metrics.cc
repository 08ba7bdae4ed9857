#include "services/registry/http/metrics.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pier::registry {
namespace {
thread_local RequestStats* g_current = nullptr;
}  // namespace

RequestStats* CurrentRequestStats() { return g_current; }

ScopedRequestStats::ScopedRequestStats(RequestStats* stats) : previous_(g_current) {
  g_current = stats;
}
ScopedRequestStats::~ScopedRequestStats() { g_current = previous_; }

void Metrics::Record(absl::string_view method, int status, double seconds,
                     const RequestStats& stats) {
  bytes_in_.fetch_add(stats.bytes_in);
  bytes_out_.fetch_add(stats.bytes_out);
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{std::string(method), status}];
  Histogram& h = durations_[std::string(method)];
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum += seconds;
}

std::string Metrics::Render() const {
  std::string out;
  absl::StrAppend(&out,
                  "# HELP pier_registry_http_requests_total HTTP requests by method and status.\n"
                  "# TYPE pier_registry_http_requests_total counter\n");
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, n] : requests_) {
    absl::StrAppend(&out, "pier_registry_http_requests_total{method=\"", key.first, "\",code=\"",
                    key.second, "\"} ", n, "\n");
  }
  absl::StrAppend(&out,
                  "# HELP pier_registry_http_request_duration_seconds Request latency.\n"
                  "# TYPE pier_registry_http_request_duration_seconds histogram\n");
  for (const auto& [method, h] : durations_) {
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      absl::StrAppend(&out, "pier_registry_http_request_duration_seconds_bucket{method=\"", method,
                      "\",le=\"", absl::StrFormat("%g", kBuckets[i]), "\"} ", h.buckets[i], "\n");
    }
    absl::StrAppend(&out, "pier_registry_http_request_duration_seconds_bucket{method=\"", method,
                    "\",le=\"+Inf\"} ", h.count, "\n");
    absl::StrAppend(&out, "pier_registry_http_request_duration_seconds_sum{method=\"", method,
                    "\"} ", absl::StrFormat("%.6f", h.sum), "\n");
    absl::StrAppend(&out, "pier_registry_http_request_duration_seconds_count{method=\"", method,
                    "\"} ", h.count, "\n");
  }
  absl::StrAppend(&out,
                  "# HELP pier_registry_http_bytes_received_total Request body bytes received.\n"
                  "# TYPE pier_registry_http_bytes_received_total counter\n"
                  "pier_registry_http_bytes_received_total ",
                  bytes_in_.load(), "\n",
                  "# HELP pier_registry_http_bytes_sent_total Response body bytes sent.\n"
                  "# TYPE pier_registry_http_bytes_sent_total counter\n"
                  "pier_registry_http_bytes_sent_total ",
                  bytes_out_.load(), "\n",
                  "# HELP pier_registry_uploads_in_flight Upload requests being received now.\n"
                  "# TYPE pier_registry_uploads_in_flight gauge\n"
                  "pier_registry_uploads_in_flight ",
                  uploads_in_flight_.load(), "\n");
  return out;
}

}  // namespace pier::registry
