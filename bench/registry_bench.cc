// pier_registry_bench: one OCI Distribution workload against one registry,
// driven by Pier's blocking HTTP client. bench/registry runs it against
// pier-registry and against CNCF distribution (docker-registry) on the same
// data and prints the comparison; it can also be run by hand:
//
//   pier_registry_bench --url=http://127.0.0.1:5000 --workload=push-large
//       [--pid=<server pid>] [--reps=3] [--first-rep=0] [--max-seconds=60]
//       [--read-kib=1024]
//
// Workloads (the "op" is what throughput and server CPU are counted per):
//   push-large     one 256 MiB blob: POST, PATCH in 8 MiB pieces with
//                  Content-Range, PUT ?digest=          op = blob, unit MiB/s
//   pull-large     GET of that 256 MiB blob (pushed first if missing; one
//                  untimed pull checks its digest)      op = blob, unit MiB/s
//   push-small     500 blobs of 64 KiB, one after another, each POST, PATCH,
//                  PUT ?digest=                          op = blob, blobs/s
//   manifest-put   300 PUTs by tag of small OCI image manifests referencing a
//                  config and 64 KiB layers pushed beforehand  op = PUT
//   manifest-get   1000 GETs by tag over 300 such manifests    op = GET
//   pull-parallel  16 clients (threads, one connection each) each GET a
//                  64 MiB blob 4 times; aggregate MiB/s        op = 64 MiB GET
//   base           GET /v2/ x2000                               op = request
//   pull-large-ceiling, pull-parallel-ceiling
//                  pull-large and pull-parallel against a minimal server
//                  inside this process that answers a blob GET by writing
//                  the body from memory (no disk, no parsing beyond the
//                  blank line; a thread per connection): what this client
//                  can receive on this loopback at all. --url is not used.
//
// Each repetition uses fresh content where the workload writes (so a push is
// never a no-op), generated deterministically from the repetition number
// (--first-rep, --first-rep+1, ...): two registries see byte-identical data,
// and bench/registry can run one repetition at a time, alternating servers.
// Repetitions stop early once --max-seconds have passed (at least one runs).
//
// With --pid, the server's CPU time (utime+stime from /proc/<pid>/stat, all
// threads) is read before the first and after the last timed repetition; the
// server is idle between repetitions (only the client prepares data), so the
// difference over the op count is its CPU per op, to one clock tick (10 ms)
// in total.
//
// The client's own CPU (getrusage, all threads, timed sections only) is
// reported too: on loopback a pull is bounded by the receiver's copy.
//
// Output: one line of key=value pairs on stdout, e.g.
//   workload=base unit=req/s reps=3 runs=9000.1,9100.2,8999.0 median=9000.1
//   ops=6000 client_cpu_ms=310.2 client_cpu_ms_per_op=0.0517 cpu_ticks=42
//   clk_tck=100 cpu_ms_per_op=0.0700
// (cpu_* only with --pid). Errors go to stderr with exit status 1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "lib/common/flags.h"
#include "lib/common/status.h"
#include "lib/http/client.h"
#include "lib/oci/digest.h"

namespace pier {
namespace {

using http::Client;
using http::ClientRequest;
using http::ClientResponse;
using oci::Digest;

constexpr size_t kMiB = 1 << 20;
constexpr size_t kLargeBlob = 256 * kMiB;
constexpr size_t kChunk = 8 * kMiB;
constexpr size_t kSmallBlob = 64 * 1024;
constexpr int kSmallBlobs = 500;
constexpr int kManifestPuts = 300;
constexpr int kManifestGets = 1000;
constexpr int kParallelClients = 16;
constexpr int kParallelPulls = 4;
constexpr size_t kParallelBlob = 64 * kMiB;
constexpr int kBaseGets = 2000;
constexpr int kManifestLayers = 4;

constexpr absl::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr absl::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
constexpr absl::string_view kOciLayer = "application/vnd.oci.image.layer.v1.tar+gzip";
constexpr absl::string_view kAcceptManifests =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json";

// Deterministic incompressible bytes (xorshift64*), seeded per blob.
void Fill(uint64_t seed, char* p, size_t n) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    uint64_t v = x * 0x2545F4914F6CDD1DULL;
    std::memcpy(p + i, &v, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<char>(i * 131 + seed);
}

struct Blob {
  std::string data;
  Digest digest;
};

Blob MakeBlob(uint64_t seed, size_t size) {
  Blob b;
  b.data.resize(size);
  Fill(seed, b.data.data(), size);
  b.digest = Digest::Of(b.data);
  return b;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// User+system CPU seconds of this process, all threads.
double ProcessCpuSeconds() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const struct timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

// utime+stime of all threads of `pid`, in clock ticks.
absl::StatusOr<uint64_t> CpuTicks(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) {
    return absl::NotFoundError(absl::StrCat("cannot read /proc/", pid, "/stat"));
  }
  // Fields after "(comm)": state is field 3; utime and stime are 14 and 15.
  size_t close = line.rfind(')');
  if (close == std::string::npos) {
    return absl::DataLossError(absl::StrCat("malformed /proc/", pid, "/stat"));
  }
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return utime + stime;
}

// One registry, addressed by its base URL ("http://127.0.0.1:5000").
class Registry {
 public:
  static absl::StatusOr<Registry> Connect(std::string base) {
    http::ClientOptions opts;
    opts.io_timeout = absl::Seconds(60);
    opts.connect_timeout = absl::Seconds(10);
    opts.user_agent = "pier-registry-bench";
    ASSIGN_OR_RETURN(std::unique_ptr<Client> client, Client::Create(opts));
    while (!base.empty() && base.back() == '/') base.pop_back();
    return Registry(std::move(base), std::move(client));
  }

  // Sends `req` (URL relative to the base unless absolute) and checks the
  // status; the body is left to the caller.
  absl::StatusOr<ClientResponse> Do(ClientRequest req, int want) {
    if (!absl::StartsWith(req.url, "http://") && !absl::StartsWith(req.url, "https://")) {
      req.url = base_ + req.url;
    }
    ASSIGN_OR_RETURN(ClientResponse resp, client_->Do(req));
    if (resp.status() != want) {
      std::string body = resp.ReadAll(4096).value_or("");
      return absl::InternalError(absl::StrCat(req.method, " ", req.url, ": status ", resp.status(),
                                              " (want ", want, "): ", body));
    }
    return resp;
  }

  // Do() plus reading (and discarding) a small body, so the connection is reused.
  absl::Status Call(ClientRequest req, int want, std::string* body = nullptr) {
    ASSIGN_OR_RETURN(ClientResponse resp, Do(std::move(req), want));
    ASSIGN_OR_RETURN(std::string b, resp.ReadAll(8 * kMiB));
    if (body != nullptr) *body = std::move(b);
    return absl::OkStatus();
  }

  // Pushes `data` as a chunked upload: POST, PATCH pieces of `chunk` bytes
  // with Content-Range, PUT ?digest= without body. Follows the Location of
  // every response, as the spec requires (distribution encodes its upload
  // state there).
  absl::Status PushBlob(const std::string& repo, absl::string_view data, const Digest& digest,
                        size_t chunk) {
    ClientRequest post;
    post.method = "POST";
    post.url = absl::StrCat("/v2/", repo, "/blobs/uploads/");
    ASSIGN_OR_RETURN(ClientResponse started, Do(post, 202));
    ASSIGN_OR_RETURN(std::string location, NextLocation(started));
    for (size_t off = 0; off < data.size(); off += chunk) {
      size_t n = std::min(chunk, data.size() - off);
      ClientRequest patch;
      patch.method = "PATCH";
      patch.url = location;
      patch.headers.Set("Content-Type", "application/octet-stream");
      patch.headers.Set("Content-Range", absl::StrCat(off, "-", off + n - 1));
      absl::string_view piece = data.substr(off, n);
      size_t sent = 0;
      patch.body_source = [piece, &sent](char* buf, size_t len) -> absl::StatusOr<size_t> {
        size_t k = std::min(len, piece.size() - sent);
        std::memcpy(buf, piece.data() + sent, k);
        sent += k;
        return k;
      };
      patch.content_length = n;
      ASSIGN_OR_RETURN(ClientResponse patched, Do(patch, 202));
      ASSIGN_OR_RETURN(location, NextLocation(patched));
    }
    ClientRequest put;
    put.method = "PUT";
    put.url = absl::StrCat(location, location.find('?') == std::string::npos ? "?" : "&",
                           "digest=", digest.str());
    put.headers.Set("Content-Type", "application/octet-stream");
    return Call(put, 201);
  }

  absl::StatusOr<bool> HasBlob(const std::string& repo, const Digest& digest) {
    ClientRequest head;
    head.method = "HEAD";
    head.url = absl::StrCat(base_, "/v2/", repo, "/blobs/", digest.str());
    ASSIGN_OR_RETURN(ClientResponse resp, client_->Do(head));
    (void)resp.ReadAll(4096);
    if (resp.status() == 200) return true;
    if (resp.status() == 404) return false;
    return absl::InternalError(absl::StrCat("HEAD ", head.url, ": status ", resp.status()));
  }

  absl::Status EnsureBlob(const std::string& repo, const Blob& blob) {
    ASSIGN_OR_RETURN(bool has, HasBlob(repo, blob.digest));
    if (has) return absl::OkStatus();
    return PushBlob(repo, blob.data, blob.digest, kChunk);
  }

  // GETs a blob into `buf` piece by piece; returns the byte count, checking
  // the digest too when `verify`.
  absl::StatusOr<uint64_t> PullBlob(const std::string& repo, const Digest& digest,
                                    std::vector<char>& buf, bool verify) {
    ClientRequest get;
    get.url = absl::StrCat("/v2/", repo, "/blobs/", digest.str());
    ASSIGN_OR_RETURN(ClientResponse resp, Do(get, 200));
    oci::Sha256 hash;
    uint64_t total = 0;
    for (;;) {
      ASSIGN_OR_RETURN(size_t n, resp.ReadBody(buf.data(), buf.size()));
      if (n == 0) break;
      if (verify) hash.Update(buf.data(), n);
      total += n;
    }
    if (verify && hash.Finish() != digest) {
      return absl::DataLossError(absl::StrCat("GET ", get.url, ": body does not match"));
    }
    return total;
  }

  absl::Status PutManifest(const std::string& repo, const std::string& tag,
                           const std::string& manifest) {
    ClientRequest put;
    put.method = "PUT";
    put.url = absl::StrCat("/v2/", repo, "/manifests/", tag);
    put.headers.Set("Content-Type", kOciManifest);
    put.body = manifest;
    return Call(put, 201);
  }

 private:
  Registry(std::string base, std::unique_ptr<Client> client)
      : base_(std::move(base)), client_(std::move(client)) {}

  // Reads the (empty) body and returns the absolute upload URL of Location.
  absl::StatusOr<std::string> NextLocation(ClientResponse& resp) {
    std::optional<absl::string_view> loc = resp.Header("Location");
    if (!loc) return absl::InternalError(absl::StrCat(resp.url(), ": no Location"));
    std::string location(*loc);
    RETURN_IF_ERROR(resp.ReadAll(64 * 1024).status());
    if (absl::StartsWith(location, "http://") || absl::StartsWith(location, "https://")) {
      return location;
    }
    return base_ + location;
  }

  std::string base_;
  std::unique_ptr<Client> client_;
};

// What a workload reports.
struct Result {
  std::string unit;
  std::vector<double> runs;  // throughput per repetition
  uint64_t ops = 0;          // ops over all timed repetitions
};

// Runs `rep(i)` (returning the repetition's throughput) up to `reps` times,
// stopping early after `max_seconds`; `ops_per_rep` ops each.
class Runner {
 public:
  int first_rep = 0;  // repetition numbers (which pick the data) start here
  int reps = 3;
  double max_seconds = 60;
  int pid = 0;
  size_t read_buffer = kMiB;      // bytes per ReadBody of a blob GET
  std::optional<uint64_t> ticks;  // server CPU over all repetitions
  double client_cpu = 0;          // seconds of this process's CPU in timed sections

  // Brackets the timed part of a repetition; Stop returns its wall seconds.
  void Start() {
    started_cpu_ = ProcessCpuSeconds();
    started_ = Now();
  }
  double Stop() {
    double secs = Now() - started_;
    client_cpu += ProcessCpuSeconds() - started_cpu_;
    return secs;
  }

  absl::Status Run(Result& result, uint64_t ops_per_rep,
                   const std::function<absl::StatusOr<double>(int)>& rep) {
    uint64_t before = 0;
    if (pid > 0) {
      ASSIGN_OR_RETURN(before, CpuTicks(pid));
    }
    double start = Now();
    for (int i = first_rep; i < first_rep + reps; ++i) {
      ASSIGN_OR_RETURN(double value, rep(i));
      result.runs.push_back(value);
      result.ops += ops_per_rep;
      if (Now() - start > max_seconds) break;
    }
    if (pid > 0) {
      ASSIGN_OR_RETURN(uint64_t after, CpuTicks(pid));
      ticks = after - before;
    }
    return absl::OkStatus();
  }

 private:
  double started_ = 0;
  double started_cpu_ = 0;
};

std::string Manifest(const Blob& config, const std::vector<Blob>& layers, int rep, int i) {
  const Blob& layer = layers[i % layers.size()];
  return absl::StrCat(
      R"({"schemaVersion":2,"mediaType":")", kOciManifest, R"(","config":{"mediaType":")",
      kOciConfig, R"(","digest":")", config.digest.str(), R"(","size":)", config.data.size(),
      R"(},"layers":[{"mediaType":")", kOciLayer, R"(","digest":")", layer.digest.str(),
      R"(","size":)", layer.data.size(), R"(}],"annotations":{"org.example.bench.rep":")", rep,
      R"(","org.example.bench.index":")", i, R"("}})");
}

// The config and layers every benchmark manifest references, pushed to `repo`.
absl::Status PushManifestBlobs(Registry& reg, const std::string& repo, Blob& config,
                               std::vector<Blob>& layers) {
  config.data = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}})";
  config.digest = Digest::Of(config.data);
  RETURN_IF_ERROR(reg.EnsureBlob(repo, config));
  for (int i = 0; i < kManifestLayers; ++i) {
    layers.push_back(MakeBlob(0x4C00 + i, kSmallBlob));
    RETURN_IF_ERROR(reg.EnsureBlob(repo, layers.back()));
  }
  return absl::OkStatus();
}

// A loopback HTTP server in a thread that answers every request on every
// connection with 200 and `body`, written straight from memory. The fastest
// possible sender: the reference for what a client can receive here.
class CeilingServer {
 public:
  explicit CeilingServer(const std::string& body) : body_(body) {}
  ~CeilingServer() {
    stop_ = true;
    if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    for (std::thread& t : connections_) t.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }

  absl::StatusOr<std::string> Start() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) return ErrnoStatus(errno, "socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listen_fd_, 64) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return ErrnoStatus(errno, "ceiling server: bind/listen");
    }
    thread_ = std::thread([this] { Serve(); });
    return absl::StrCat("http://127.0.0.1:", ntohs(addr.sin_port));
  }

 private:
  void Serve() {
    while (!stop_) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      connections_.emplace_back([this, fd] { ServeConnection(fd); });
    }
  }

  void ServeConnection(int fd) {
    // GET .../blobs/... gets the body; anything else (GET /v2/) an empty 200.
    const std::string head = absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", body_.size(),
                                          "\r\nContent-Type: application/octet-stream\r\n\r\n");
    const std::string empty = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    std::string in;
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
      size_t end;
      bool ok = true;
      while (ok && (end = in.find("\r\n\r\n")) != std::string::npos) {
        const bool blob = in.substr(0, in.find("\r\n")).find("/blobs/") != std::string::npos;
        in.erase(0, end + 4);
        ok = blob ? WriteAll(fd, head) && WriteAll(fd, body_) : WriteAll(fd, empty);
      }
      if (!ok) break;
    }
    ::close(fd);
  }
  static bool WriteAll(int fd, absl::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::write(fd, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  const std::string& body_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> connections_;  // only the accept thread adds
};

absl::StatusOr<Result> RunWorkload(const std::string& url_flag, const std::string& workload,
                                   Runner& runner) {
  std::string url = url_flag;
  std::unique_ptr<CeilingServer> ceiling;
  std::optional<Blob> ceiling_blob;
  const bool to_ceiling = absl::EndsWith(workload, "-ceiling");
  if (to_ceiling) {
    ceiling_blob = workload == "pull-large-ceiling" ? MakeBlob(0x1A00, kLargeBlob)
                                                    : MakeBlob(0x9A00, kParallelBlob);
    ceiling = std::make_unique<CeilingServer>(ceiling_blob->data);
    ASSIGN_OR_RETURN(url, ceiling->Start());
  }
  ASSIGN_OR_RETURN(Registry reg, Registry::Connect(url));
  RETURN_IF_ERROR(reg.Call(ClientRequest{.url = "/v2/"}, 200));  // reachable, connection open
  Result result;
  std::vector<char> buf(runner.read_buffer);

  if (workload == "push-large") {
    result.unit = "MiB/s";
    RETURN_IF_ERROR(runner.Run(result, 1, [&](int rep) -> absl::StatusOr<double> {
      Blob blob = MakeBlob(0x1A00 + rep, kLargeBlob);  // untimed; the server is idle
      runner.Start();
      RETURN_IF_ERROR(reg.PushBlob("bench/large", blob.data, blob.digest, kChunk));
      return kLargeBlob / kMiB / runner.Stop();
    }));
  } else if (workload == "pull-large") {
    result.unit = "MiB/s";
    Blob blob = MakeBlob(0x1A00, kLargeBlob);  // the first blob push-large pushes
    RETURN_IF_ERROR(reg.EnsureBlob("bench/large", blob));
    ASSIGN_OR_RETURN(uint64_t n, reg.PullBlob("bench/large", blob.digest, buf, true));
    if (n != kLargeBlob) return absl::DataLossError("pull-large: short body");
    RETURN_IF_ERROR(runner.Run(result, 1, [&](int) -> absl::StatusOr<double> {
      runner.Start();
      ASSIGN_OR_RETURN(uint64_t got, reg.PullBlob("bench/large", blob.digest, buf, false));
      double secs = runner.Stop();
      if (got != kLargeBlob) return absl::DataLossError("pull-large: short body");
      return kLargeBlob / kMiB / secs;
    }));
  } else if (workload == "pull-large-ceiling") {
    result.unit = "MiB/s";
    ASSIGN_OR_RETURN(uint64_t n, reg.PullBlob("bench/large", ceiling_blob->digest, buf, true));
    if (n != kLargeBlob) return absl::DataLossError("pull-large-ceiling: short body");
    RETURN_IF_ERROR(runner.Run(result, 1, [&](int) -> absl::StatusOr<double> {
      runner.Start();
      ASSIGN_OR_RETURN(uint64_t got, reg.PullBlob("bench/large", ceiling_blob->digest, buf, false));
      double secs = runner.Stop();
      if (got != kLargeBlob) return absl::DataLossError("pull-large-ceiling: short body");
      return kLargeBlob / kMiB / secs;
    }));
  } else if (workload == "push-small") {
    result.unit = "blobs/s";
    RETURN_IF_ERROR(runner.Run(result, kSmallBlobs, [&](int rep) -> absl::StatusOr<double> {
      std::vector<Blob> blobs;
      blobs.reserve(kSmallBlobs);
      for (int i = 0; i < kSmallBlobs; ++i) {
        blobs.push_back(MakeBlob((uint64_t{0x5B} << 32) | (rep << 16) | i, kSmallBlob));
      }
      runner.Start();
      for (const Blob& b : blobs) {
        RETURN_IF_ERROR(reg.PushBlob("bench/small", b.data, b.digest, kChunk));
      }
      return kSmallBlobs / runner.Stop();
    }));
  } else if (workload == "manifest-put") {
    result.unit = "manifests/s";
    Blob config;
    std::vector<Blob> layers;
    RETURN_IF_ERROR(PushManifestBlobs(reg, "bench/manifests", config, layers));
    RETURN_IF_ERROR(runner.Run(result, kManifestPuts, [&](int rep) -> absl::StatusOr<double> {
      std::vector<std::string> manifests;
      for (int i = 0; i < kManifestPuts; ++i) {
        manifests.push_back(Manifest(config, layers, rep + 1, i));
      }
      runner.Start();
      for (int i = 0; i < kManifestPuts; ++i) {
        RETURN_IF_ERROR(
            reg.PutManifest("bench/manifests", absl::StrCat("p", rep, "-", i), manifests[i]));
      }
      return kManifestPuts / runner.Stop();
    }));
  } else if (workload == "manifest-get") {
    result.unit = "manifests/s";
    Blob config;
    std::vector<Blob> layers;
    RETURN_IF_ERROR(PushManifestBlobs(reg, "bench/manifests", config, layers));
    std::vector<std::string> manifests;
    for (int i = 0; i < kManifestPuts; ++i) {
      manifests.push_back(Manifest(config, layers, 0, i));
      RETURN_IF_ERROR(reg.PutManifest("bench/manifests", absl::StrCat("g", i), manifests[i]));
    }
    RETURN_IF_ERROR(runner.Run(result, kManifestGets, [&](int) -> absl::StatusOr<double> {
      runner.Start();
      for (int i = 0; i < kManifestGets; ++i) {
        int k = i % kManifestPuts;
        ClientRequest get;
        get.url = absl::StrCat("/v2/bench/manifests/manifests/g", k);
        get.headers.Set("Accept", kAcceptManifests);
        std::string body;
        RETURN_IF_ERROR(reg.Call(get, 200, &body));
        if (body.size() != manifests[k].size()) {
          return absl::DataLossError(absl::StrCat(get.url, ": wrong manifest"));
        }
      }
      return kManifestGets / runner.Stop();
    }));
  } else if (workload == "pull-parallel" || workload == "pull-parallel-ceiling") {
    result.unit = "MiB/s";
    Blob blob = to_ceiling ? *ceiling_blob : MakeBlob(0x9A00, kParallelBlob);
    if (!to_ceiling) RETURN_IF_ERROR(reg.EnsureBlob("bench/parallel", blob));
    ASSIGN_OR_RETURN(uint64_t n, reg.PullBlob("bench/parallel", blob.digest, buf, true));
    if (n != kParallelBlob) return absl::DataLossError("pull-parallel: short body");
    uint64_t ops = kParallelClients * kParallelPulls;
    RETURN_IF_ERROR(runner.Run(result, ops, [&](int) -> absl::StatusOr<double> {
      std::mutex mu;
      std::condition_variable cv;
      int ready = 0;
      bool go = false;
      absl::Status failed;
      std::vector<std::thread> threads;
      for (int c = 0; c < kParallelClients; ++c) {
        threads.emplace_back([&] {
          absl::Status s = [&]() -> absl::Status {
            // Each client: its own connection, opened before the clock starts.
            ASSIGN_OR_RETURN(Registry mine, Registry::Connect(url));
            absl::Status opened = mine.Call(ClientRequest{.url = "/v2/"}, 200);
            {
              std::unique_lock lock(mu);
              ++ready;
              cv.notify_all();
              cv.wait(lock, [&] { return go; });
            }
            RETURN_IF_ERROR(opened);
            std::vector<char> mybuf(runner.read_buffer);
            for (int p = 0; p < kParallelPulls; ++p) {
              ASSIGN_OR_RETURN(uint64_t got,
                               mine.PullBlob("bench/parallel", blob.digest, mybuf, false));
              if (got != kParallelBlob) return absl::DataLossError("pull-parallel: short body");
            }
            return absl::OkStatus();
          }();
          std::lock_guard lock(mu);
          if (!s.ok() && failed.ok()) failed = s;
        });
      }
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return ready == kParallelClients; });
        runner.Start();
        go = true;
        cv.notify_all();
      }
      for (std::thread& t : threads) t.join();
      double secs = runner.Stop();
      if (!failed.ok()) return failed;
      return static_cast<double>(ops * kParallelBlob / kMiB) / secs;
    }));
  } else if (workload == "base") {
    result.unit = "req/s";
    RETURN_IF_ERROR(runner.Run(result, kBaseGets, [&](int) -> absl::StatusOr<double> {
      runner.Start();
      for (int i = 0; i < kBaseGets; ++i) {
        RETURN_IF_ERROR(reg.Call(ClientRequest{.url = "/v2/"}, 200));
      }
      return kBaseGets / runner.Stop();
    }));
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown workload \"", workload, "\""));
  }
  return result;
}

int Main(int argc, char** argv) {
  std::string url, workload;
  int64_t pid = 0, reps = 3, first_rep = 0, max_seconds = 60, read_kib = 1024;
  FlagSet flags("pier_registry_bench", "--url=URL --workload=NAME [flags]");
  flags.String("url", "", &url, "registry base URL, e.g. http://127.0.0.1:5000");
  flags.String("workload", "", &workload,
               "push-large|pull-large|push-small|manifest-put|manifest-get|pull-parallel|base|"
               "pull-large-ceiling|pull-parallel-ceiling");
  flags.Int("pid", "", &pid, "server process whose CPU time to measure (optional)");
  flags.Int("reps", "", &reps, "repetitions (default 3)");
  flags.Int("first-rep", "", &first_rep,
            "number of the first repetition (default 0); each number has its own data");
  flags.Int("read-kib", "", &read_kib, "blob GET read size in KiB (default 1024)");
  flags.Int("max-seconds", "", &max_seconds, "no new repetition after this long (default 60)");
  absl::StatusOr<std::vector<std::string>> rest =
      flags.Parse(std::vector<std::string>(argv + 1, argv + argc));
  if (!rest.ok() || url.empty() || workload.empty() || reps < 1 || first_rep < 0 ||
      first_rep > 255 || read_kib < 1) {
    std::string why = rest.ok() ? "--url and --workload are required" : rest.status().ToString();
    std::fprintf(stderr, "%s\n%s", why.c_str(), flags.Usage().c_str());
    return 2;
  }
  Runner runner;
  runner.reps = static_cast<int>(reps);
  runner.first_rep = static_cast<int>(first_rep);
  runner.max_seconds = static_cast<double>(max_seconds);
  runner.pid = static_cast<int>(pid);
  runner.read_buffer = static_cast<size_t>(read_kib) * 1024;
  absl::StatusOr<Result> r = RunWorkload(url, workload, runner);
  if (!r.ok()) {
    std::fprintf(stderr, "pier_registry_bench: %s: %s\n", workload.c_str(),
                 r.status().ToString().c_str());
    return 1;
  }
  std::vector<double> sorted = r->runs;
  std::sort(sorted.begin(), sorted.end());
  double median = sorted.size() % 2 == 1
                      ? sorted[sorted.size() / 2]
                      : (sorted[sorted.size() / 2 - 1] + sorted[sorted.size() / 2]) / 2;
  std::string line = absl::StrCat(
      "workload=", workload, " unit=", r->unit, " reps=", r->runs.size(), " runs=",
      absl::StrJoin(
          r->runs, ",",
          [](std::string* out, double v) { absl::StrAppend(out, absl::StrFormat("%.1f", v)); }),
      " median=", absl::StrFormat("%.1f", median), " ops=", r->ops);
  absl::StrAppend(
      &line, " client_cpu_ms=", absl::StrFormat("%.1f", 1000.0 * runner.client_cpu),
      " client_cpu_ms_per_op=", absl::StrFormat("%.4f", 1000.0 * runner.client_cpu / r->ops));
  if (runner.ticks) {
    long hz = sysconf(_SC_CLK_TCK);
    absl::StrAppend(&line, " cpu_ticks=", *runner.ticks, " clk_tck=", hz, " cpu_ms_per_op=",
                    absl::StrFormat("%.4f", 1000.0 * *runner.ticks / hz / r->ops));
  }
  std::printf("%s\n", line.c_str());
  return 0;
}

}  // namespace
}  // namespace pier

int main(int argc, char** argv) { return pier::Main(argc, argv); }
