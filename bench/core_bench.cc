// pier_core_bench: throughput of Pier's core data paths, in bytes of content
// per second.
//
//   BM_Sha256            pier::oci::Sha256 over 256 MiB, fed 1 MiB at a time
//   BM_CreateLayer/<c>   CreateLayerFromDir over a generated ~200 MiB tree
//                        (a mix of small and large, compressible and random
//                        files) into a file, gzip or uncompressed
//   BM_ApplyLayer/<c>    ApplyLayer of that layer into a fresh directory
//
// The data is generated once per run into $PIER_BENCH_DIR (kept, so that
// bench/core can time sha256sum and tar on the very same files: sha.bin,
// tree/, layer.tar, layer.tar.gz, tree.bytes), or into a temporary
// directory that is removed at exit. Not a ctest test.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "lib/archive/layer_apply.h"
#include "lib/archive/layer_writer.h"
#include "lib/common/fs.h"
#include "lib/oci/digest.h"

namespace pier {
namespace {

constexpr size_t kMiB = 1 << 20;
constexpr size_t kShaBytes = 256 * kMiB;

// xorshift64: fast, deterministic filler.
class Filler {
 public:
  explicit Filler(uint64_t seed) : x_(seed * 0x9E3779B97F4A7C15ULL + 1) {}
  void Random(char* p, size_t n) {
    for (size_t i = 0; i + 8 <= n; i += 8) {
      uint64_t v = Next();
      std::memcpy(p + i, &v, 8);
    }
    for (size_t i = n & ~size_t{7}; i < n; ++i) p[i] = static_cast<char>(Next());
  }
  // Text-like bytes that compress about 3-4x, like source code and configs.
  void Text(char* p, size_t n) {
    static const char* const kWords[] = {"the ",   "layer ",  "image ", "pier ",  "config ",
                                         "run\n",  "{ ",      "} ",     "int ",   "return ",
                                         "path ",  "if (",    ") ",     "= ",     "0x1f ",
                                         "file\n", "static ", "void ",  "char* ", "// "};
    size_t i = 0;
    while (i < n) {
      uint64_t v = Next();
      const char* w = kWords[v % 20];
      size_t len = std::min(std::strlen(w), n - i);
      std::memcpy(p + i, w, len);
      i += len;
      if ((v >> 8) % 7 == 0 && i < n) p[i++] = static_cast<char>('a' + (v >> 16) % 26);
    }
  }
  uint64_t Next() {
    x_ ^= x_ << 13;
    x_ ^= x_ >> 7;
    x_ ^= x_ << 17;
    return x_;
  }

 private:
  uint64_t x_;
};

void Check(const absl::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "pier_core_bench: %s: %s\n", what, std::string(s.message()).c_str());
    std::exit(1);
  }
}

struct BenchData {
  std::string dir;
  bool owned = false;
  std::string tree;
  uint64_t tree_bytes = 0;
  std::string sha;  // kShaBytes of data, also written to dir/sha.bin

  std::string Layer(archive::Compression c) const {
    return JoinPath(dir, c == archive::Compression::kGzip ? "layer.tar.gz" : "layer.tar");
  }
};

void WriteBlob(const std::string& path, const std::string& data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) Check(absl::InternalError("cannot create " + path), "create");
  Check(WriteAll(fd.get(), data, path), "write");
}

// ~200 MiB: four 32 MiB files (two random, two text) and 4096 small files of
// 1-32 KiB (half random, half text) in 64 directories two levels deep.
uint64_t GenerateTree(const std::string& root) {
  Filler fill(42);
  uint64_t total = 0;
  std::string buf;
  Check(MakeDirs(root + "/large"), "mkdir");
  for (int i = 0; i < 4; ++i) {
    buf.resize(32 * kMiB);
    if (i % 2 == 0) {
      fill.Random(buf.data(), buf.size());
    } else {
      fill.Text(buf.data(), buf.size());
    }
    WriteBlob(absl::StrCat(root, "/large/blob", i, i % 2 == 0 ? ".bin" : ".txt"), buf);
    total += buf.size();
  }
  for (int i = 0; i < 4096; ++i) {
    std::string dir = absl::StrCat(root, "/src/d", i % 8, "/e", (i / 8) % 8);
    if (i < 64) Check(MakeDirs(dir), "mkdir");
    buf.resize(1024 + fill.Next() % (31 * 1024));
    if (i % 2 == 0) {
      fill.Random(buf.data(), buf.size());
    } else {
      fill.Text(buf.data(), buf.size());
    }
    WriteBlob(absl::StrCat(dir, "/f", i, ".dat"), buf);
    total += buf.size();
  }
  return total;
}

BenchData* g_data = nullptr;  // set once the data exists

BenchData& Data() {
  static BenchData* data = [] {
    auto* d = new BenchData;
    const char* env = std::getenv("PIER_BENCH_DIR");
    if (env != nullptr && *env != '\0') {
      d->dir = env;
      Check(MakeDirs(d->dir), "mkdir");
    } else {
      std::string tmpl = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                         "/pier-bench-XXXXXX";
      if (::mkdtemp(tmpl.data()) == nullptr) Check(absl::InternalError("mkdtemp"), "mkdtemp");
      d->dir = tmpl;
      d->owned = true;
    }
    d->sha.resize(kShaBytes);
    Filler(7).Random(d->sha.data(), d->sha.size());
    WriteBlob(JoinPath(d->dir, "sha.bin"), d->sha);
    d->tree = JoinPath(d->dir, "tree");
    Check(RemoveAll(d->tree), "clean");
    d->tree_bytes = GenerateTree(d->tree);
    WriteBlob(JoinPath(d->dir, "tree.bytes"), absl::StrCat(d->tree_bytes, "\n"));
    g_data = d;
    return d;
  }();
  return *data;
}

void BM_Sha256(benchmark::State& state) {
  const std::string& data = Data().sha;
  for (auto _ : state) {
    oci::Sha256 h;
    for (size_t off = 0; off < data.size(); off += kMiB) h.Update(data.data() + off, kMiB);
    oci::Digest d = h.Finish();
    benchmark::DoNotOptimize(d);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_Sha256)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(4);

archive::Compression CompressionArg(const benchmark::State& state) {
  return state.range(0) != 0 ? archive::Compression::kGzip : archive::Compression::kNone;
}

archive::LayerInfo CreateLayerFile(archive::Compression c) {
  const BenchData& d = Data();
  UniqueFd fd(::open(d.Layer(c).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) Check(absl::InternalError("cannot create " + d.Layer(c)), "create");
  archive::CreateOptions options;
  options.compression = c;
  absl::StatusOr<archive::LayerInfo> info =
      archive::CreateLayerFromDir(d.tree, archive::FdSink(fd.get()), options);
  Check(info.status(), "create layer");
  return *info;
}

void BM_CreateLayer(benchmark::State& state) {
  const archive::Compression c = CompressionArg(state);
  archive::LayerInfo info;
  for (auto _ : state) info = CreateLayerFile(c);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * Data().tree_bytes));
  state.SetLabel(absl::StrCat(archive::CompressionName(c), " layer=", info.size / kMiB, "MiB"));
}
BENCHMARK(BM_CreateLayer)
    ->ArgName("gzip")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(2);

void BM_ApplyLayer(benchmark::State& state) {
  const archive::Compression c = CompressionArg(state);
  state.SetLabel(std::string(archive::CompressionName(c)));
  const BenchData& d = Data();
  if (::access(d.Layer(c).c_str(), R_OK) != 0) CreateLayerFile(c);
  const std::string target = JoinPath(d.dir, "applied");
  for (auto _ : state) {
    state.PauseTiming();
    Check(RemoveAll(target), "clean");
    Check(MakeDirs(target), "mkdir");
    UniqueFd fd(::open(d.Layer(c).c_str(), O_RDONLY | O_CLOEXEC));
    state.ResumeTiming();
    absl::StatusOr<archive::ApplyResult> r =
        archive::ApplyLayer(archive::FdSource(fd.get()), target);
    Check(r.status(), "apply layer");
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * d.tree_bytes));
  Check(RemoveAll(target), "clean");
}
BENCHMARK(BM_ApplyLayer)
    ->ArgName("gzip")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);

}  // namespace
}  // namespace pier

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (pier::g_data != nullptr && pier::g_data->owned) (void)pier::RemoveAll(pier::g_data->dir);
  return 0;
}
