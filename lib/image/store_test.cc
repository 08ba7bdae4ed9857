// ImageStore without a registry: import of a busybox-static rootfs tarball
// (plain and gzip), lookups by name / id / prefix / digest, tags, removal
// with garbage collection and the in-use predicate, images made of new
// layers, and save/load round trips in both archive formats.
#include "lib/image/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "lib/archive/archive_test_util.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "lib/common/testing.h"
#include "lib/content/filesystem_driver.h"
#include "lib/kv/kv_store.h"

namespace pier::image {
namespace {

using ::pier::testing::StatusIs;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

int Sh(const std::string& cmd) { return std::system(cmd.c_str()); }

// The unpacked root of an image's top layer.
std::string TopDirOf(ImageStore& store, const Image& image) {
  auto top = store.Unpack(image);
  EXPECT_OK(top);
  if (!top.ok() || !top->has_value()) return "";
  return *store.snapshotter().Dir(**top);
}

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) FAIL() << "required: needs root (owners, devices, overlay xattrs)";
    if (!Exists("/bin/busybox")) FAIL() << "required: needs busybox-static";
    kv_ = kv::NewMemoryKvStore();
    content_ = std::make_unique<content::ContentStore>(
        std::make_unique<content::FilesystemDriver>(tmp_.Sub("content")));
    ASSERT_OK_AND_ASSIGN(store_, ImageStore::Open(tmp_.Sub("images"), kv_.get(), content_.get()));
    // A busybox rootfs, tarred the usual way.
    const std::string rootfs = tmp_.Sub("rootfs");
    ASSERT_EQ(Sh(absl::StrCat("mkdir -p ", rootfs, "/bin ", rootfs, "/etc ", rootfs,
                              "/tmp && cp /bin/busybox ", rootfs, "/bin/busybox && ln -s busybox ",
                              rootfs, "/bin/sh && echo root:x:0:0::/:/bin/sh > ", rootfs,
                              "/etc/passwd && tar -C ", rootfs, " -cf ", tmp_.Sub("rootfs.tar"),
                              " . && tar -C ", rootfs, " -czf ", tmp_.Sub("rootfs.tgz"), " .")),
              0);
  }

  absl::StatusOr<Image> ImportFile(const std::string& file, absl::string_view name,
                                   const ImportOptions& options = {}) {
    UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoStatus(errno, file);
    return store_->Import(archive::FdSource(fd.get()), name, options);
  }

  // The unpacked root of an image's top layer.
  std::string TopDir(const Image& image) {
    auto top = store_->Unpack(image);
    EXPECT_OK(top);
    if (!top.ok() || !top->has_value()) return "";
    return *store_->snapshotter().Dir(**top);
  }

  pier::testing::TempDir tmp_;
  std::unique_ptr<kv::KvStore> kv_;
  std::unique_ptr<content::ContentStore> content_;
  std::unique_ptr<ImageStore> store_;
};

TEST_F(ImageStoreTest, ImportGetListTagRemove) {
  ImportOptions options;
  options.config.cmd = std::vector<std::string>{"/bin/sh"};
  options.config.env = {"PATH=/bin"};
  options.message = "from a tarball";
  ASSERT_OK_AND_ASSIGN(Image image, ImportFile(tmp_.Sub("rootfs.tar"), "busybox", options));
  EXPECT_EQ(image.name, "docker.io/library/busybox:latest");
  EXPECT_EQ(image.target.media_type, oci::kOciManifest);

  ASSERT_OK_AND_ASSIGN(oci::Manifest manifest, store_->GetManifest(image));
  ASSERT_EQ(manifest.layers.size(), 1u);
  EXPECT_EQ(manifest.layers[0].media_type, oci::kOciLayerGzip);
  EXPECT_EQ(manifest.config.digest, image.id);
  ASSERT_OK_AND_ASSIGN(oci::ImageConfig config, store_->GetConfig(image));
  EXPECT_EQ(config.os, "linux");
  EXPECT_EQ(config.architecture, HostPlatform().architecture);
  EXPECT_EQ(config.config.cmd, options.config.cmd);
  EXPECT_EQ(config.config.env, options.config.env);
  ASSERT_EQ(config.history.size(), 1u);
  EXPECT_EQ(config.history[0].comment, "from a tarball");
  ASSERT_EQ(config.diff_ids.size(), 1u);

  // Unpacked at import.
  ASSERT_OK_AND_ASSIGN(bool unpacked, store_->snapshotter().Exists(config.diff_ids[0]));
  EXPECT_TRUE(unpacked);
  const std::string top = TopDir(image);
  EXPECT_TRUE(Exists(top + "/bin/busybox"));
  EXPECT_EQ(*ReadFile(top + "/etc/passwd"), "root:x:0:0::/:/bin/sh\n");

  // Lookups.
  EXPECT_EQ(store_->Get("busybox")->id, image.id);
  EXPECT_EQ(store_->Get("docker.io/library/busybox:latest")->id, image.id);
  EXPECT_EQ(store_->Get(image.id.str())->id, image.id);
  EXPECT_EQ(store_->Get(image.id.hex().substr(0, 12))->id, image.id);
  EXPECT_EQ(store_->Get(image.target.digest.str())->id, image.id);
  EXPECT_EQ(store_->Get("busybox@" + image.target.digest.str())->id, image.id);
  EXPECT_THAT(store_->Get("busybox:other"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("busybox:other")));
  EXPECT_THAT(store_->Get("Bad//Name"), StatusIs(absl::StatusCode::kInvalidArgument));

  // The gzip tarball gives the same layer (the import normalises it); another
  // message makes it another image.
  ImportOptions gz_options = options;
  gz_options.message = "gzip";
  ASSERT_OK_AND_ASSIGN(Image again,
                       ImportFile(tmp_.Sub("rootfs.tgz"), "localhost:5000/bb:gz", gz_options));
  EXPECT_NE(again.id, image.id);
  ASSERT_OK_AND_ASSIGN(oci::ImageConfig config2, store_->GetConfig(again));
  EXPECT_EQ(config2.diff_ids, config.diff_ids);

  // Tags.
  ASSERT_OK_AND_ASSIGN(Image tagged, store_->Tag("busybox", "example.com/tools/bb:1.0"));
  EXPECT_EQ(tagged.name, "example.com/tools/bb:1.0");
  EXPECT_EQ(tagged.id, image.id);
  EXPECT_THAT(store_->Tag("busybox", "x@" + image.target.digest.str()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->Tag("nope", "x"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(std::vector<Image> all, store_->List());
  std::vector<std::string> names;
  for (const Image& i : all) names.push_back(i.name);
  EXPECT_THAT(names, UnorderedElementsAre("docker.io/library/busybox:latest",
                                          "example.com/tools/bb:1.0", "localhost:5000/bb:gz"));

  // Two names on one id: removing by id needs force.
  EXPECT_THAT(store_->Remove(image.id.str(), false),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("2 names")));
  // Removing one name deletes nothing.
  ASSERT_OK_AND_ASSIGN(RemoveResult r1, store_->Remove("busybox", false));
  EXPECT_THAT(r1.untagged, ElementsAre("docker.io/library/busybox:latest"));
  EXPECT_THAT(r1.deleted, IsEmpty());
  EXPECT_OK(content_->Info(image.target.digest).status());

  // In use: refused without force.
  auto in_use = [&](const oci::Digest& id) { return id == image.id; };
  EXPECT_THAT(store_->Remove("example.com/tools/bb:1.0", false, in_use),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("in use")));

  // The last name of the image: its config and manifest go; the layer and
  // snapshot stay, since the gz import shares them.
  ASSERT_OK_AND_ASSIGN(RemoveResult r2, store_->Remove("example.com/tools/bb:1.0", false));
  EXPECT_THAT(r2.deleted, Contains(image.target.digest));
  EXPECT_THAT(r2.deleted, Contains(image.id));
  EXPECT_THAT(r2.deleted, ::testing::Not(Contains(manifest.layers[0].digest)));
  EXPECT_THAT(r2.removed_snapshots, IsEmpty());
  EXPECT_THAT(content_->Info(image.id), StatusIs(absl::StatusCode::kNotFound));

  // A container on the last image keeps its snapshot even after removal.
  ASSERT_OK(store_->snapshotter().Prepare("ctr", config.diff_ids[0]).status());
  ASSERT_OK_AND_ASSIGN(RemoveResult r3, store_->Remove("localhost:5000/bb:gz", false));
  EXPECT_THAT(r3.deleted, Contains(manifest.layers[0].digest));
  EXPECT_THAT(r3.removed_snapshots, IsEmpty());
  EXPECT_TRUE(*store_->snapshotter().Exists(config.diff_ids[0]));
  ASSERT_OK(store_->snapshotter().RemoveActive("ctr"));
  ASSERT_OK_AND_ASSIGN(all, store_->List());
  EXPECT_THAT(all, IsEmpty());
  EXPECT_THAT(store_->Remove("busybox", false), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ImageStoreTest, RemoveDeletesSnapshotsNoImageNeeds) {
  ASSERT_OK_AND_ASSIGN(Image image, ImportFile(tmp_.Sub("rootfs.tar"), "bb"));
  ASSERT_OK_AND_ASSIGN(oci::ImageConfig config, store_->GetConfig(image));
  ASSERT_OK_AND_ASSIGN(RemoveResult r, store_->Remove("bb", false));
  EXPECT_THAT(r.removed_snapshots, ElementsAre(config.diff_ids[0]));
  EXPECT_EQ(r.deleted.size(), 3u);  // manifest, config, layer
  ASSERT_OK_AND_ASSIGN(std::vector<content::Info> blobs, content_->List());
  EXPECT_THAT(blobs, IsEmpty());
}

TEST_F(ImageStoreTest, CreateImageStacksNewLayersOnABase) {
  ASSERT_OK_AND_ASSIGN(Image base, ImportFile(tmp_.Sub("rootfs.tar"), "base"));
  // A layer as the builder would make it: written into the content store.
  const std::string dir = tmp_.Sub("step");
  ASSERT_OK(archive::testing::WriteFile(dir + "/app/hello", "hello"));
  ASSERT_OK_AND_ASSIGN(auto writer, content_->OpenWriter("step-1"));
  ASSERT_OK_AND_ASSIGN(
      archive::LayerInfo layer,
      archive::CreateLayerFromDir(dir, [&](absl::string_view c) { return writer->Write(c); }));
  ASSERT_OK(writer->Commit(layer.size, layer.digest).status());

  NewImage request;
  request.base = "base";
  request.layers = {layer};
  oci::History env;
  env.created_by = "ENV A=b";
  env.empty_layer = true;
  request.history = {env};
  request.edit_config = [](oci::ImageConfig* c) { c->config.env.push_back("A=b"); };
  request.name = "app:v1";
  ASSERT_OK_AND_ASSIGN(Image app, store_->CreateImage(request));
  EXPECT_EQ(app.name, "docker.io/library/app:v1");
  ASSERT_OK_AND_ASSIGN(oci::Manifest m, store_->GetManifest(app));
  ASSERT_EQ(m.layers.size(), 2u);
  EXPECT_EQ(m.layers[1].digest, layer.digest);
  ASSERT_OK_AND_ASSIGN(oci::ImageConfig c, store_->GetConfig(app));
  ASSERT_EQ(c.diff_ids.size(), 2u);
  EXPECT_EQ(c.diff_ids[1], layer.diff_id);
  EXPECT_THAT(c.config.env, ElementsAre("A=b"));
  ASSERT_EQ(c.history.size(), 3u);  // import, ENV, and a default for the layer
  EXPECT_TRUE(c.history[1].empty_layer);
  EXPECT_EQ(c.history[2].created_by, "pier");
  const std::string top = TopDir(app);
  EXPECT_EQ(*ReadFile(top + "/app/hello"), "hello");

  // Dangling: no name, found by id.
  request.name.clear();
  request.edit_config = nullptr;
  request.history.clear();
  ASSERT_OK_AND_ASSIGN(Image dangling, store_->CreateImage(request));
  EXPECT_EQ(dangling.name, "");
  EXPECT_EQ(store_->Get(dangling.id.hex().substr(0, 8))->target.digest, dangling.target.digest);
  // Tagging it names it: the dangling record goes.
  ASSERT_OK(store_->Tag(dangling.id.str(), "named").status());
  ASSERT_OK_AND_ASSIGN(std::vector<Image> all, store_->List());
  EXPECT_EQ(all.size(), 3u);

  // Removing the base keeps the layers the app image shares.
  ASSERT_OK_AND_ASSIGN(RemoveResult r, store_->Remove("base", false));
  EXPECT_THAT(r.removed_snapshots, IsEmpty());
  EXPECT_THAT(r.deleted, ::testing::Not(Contains(m.layers[0].digest)));
  EXPECT_EQ(*ReadFile(TopDir(app) + "/app/hello"), "hello");

  // Bad requests.
  NewImage bad;
  bad.base = "nope";
  EXPECT_THAT(store_->CreateImage(bad), StatusIs(absl::StatusCode::kNotFound));
  bad.base.clear();
  archive::LayerInfo missing = layer;
  missing.digest = oci::Digest::Of("missing");
  bad.layers = {missing};
  EXPECT_THAT(store_->CreateImage(bad), StatusIs(absl::StatusCode::kNotFound));
  bad.layers = {layer};
  bad.layers[0].size += 1;
  EXPECT_THAT(store_->CreateImage(bad), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ImageStoreTest, CreateImageRewritesLayerCompression) {
  ASSERT_OK_AND_ASSIGN(Image base, ImportFile(tmp_.Sub("rootfs.tar"), "base"));
  const std::string dir = tmp_.Sub("step");
  ASSERT_OK(archive::testing::WriteFile(dir + "/app/hello", "hello"));
  ASSERT_OK_AND_ASSIGN(auto writer, content_->OpenWriter("step-1"));
  ASSERT_OK_AND_ASSIGN(
      archive::LayerInfo layer,
      archive::CreateLayerFromDir(dir, [&](absl::string_view c) { return writer->Write(c); }));
  ASSERT_OK(writer->Commit(layer.size, layer.digest).status());
  NewImage request;
  request.base = "base";
  request.layers = {layer};
  request.name = "app:gzip";
  ASSERT_OK_AND_ASSIGN(Image gzip, store_->CreateImage(request));

  // zstd: the new layer is rewritten, the base's stays gzip; same config.
  archive::CreateOptions zstd;
  zstd.compression = archive::Compression::kZstd;
  request.compression = zstd;
  request.name = "app:zstd";
  ASSERT_OK_AND_ASSIGN(Image z, store_->CreateImage(request));
  EXPECT_EQ(z.id, gzip.id);
  EXPECT_NE(z.target.digest, gzip.target.digest);
  ASSERT_OK_AND_ASSIGN(oci::Manifest m, store_->GetManifest(z));
  ASSERT_EQ(m.layers.size(), 2u);
  EXPECT_EQ(m.layers[0].media_type, oci::kOciLayerGzip);
  EXPECT_EQ(m.layers[1].media_type, oci::kOciLayerZstd);
  ASSERT_OK_AND_ASSIGN(std::string blob, content_->ReadAll(m.layers[1].digest, 1 << 20));
  EXPECT_EQ(blob.substr(0, 4), std::string("\x28\xb5\x2f\xfd", 4));
  EXPECT_EQ(static_cast<int64_t>(blob.size()), m.layers[1].size);
  // Again: the rewrite is reused (same blob, same manifest).
  request.name = "app:zstd2";
  ASSERT_OK_AND_ASSIGN(Image z2, store_->CreateImage(request));
  EXPECT_EQ(z2.target.digest, z.target.digest);
  // A manifest digest names its image exactly, though the id is shared.
  EXPECT_THAT(store_->Get(z.target.digest.str())->name, HasSubstr("docker.io/library/app:zstd"));
  EXPECT_EQ(store_->Get(gzip.target.digest.str())->name, "docker.io/library/app:gzip");

  // With the base rewritten too, uncompressed: plain tar layers whose
  // digests are their diff ids.
  archive::CreateOptions none;
  none.compression = archive::Compression::kNone;
  request.compression = none;
  request.recompress_base = true;
  request.name = "app:tar";
  ASSERT_OK_AND_ASSIGN(Image t, store_->CreateImage(request));
  ASSERT_OK_AND_ASSIGN(oci::ImageConfig c, store_->GetConfig(t));
  ASSERT_OK_AND_ASSIGN(m, store_->GetManifest(t));
  ASSERT_EQ(m.layers.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(m.layers[i].media_type, oci::kOciLayerTar);
    EXPECT_EQ(m.layers[i].digest, c.diff_ids[i]);
  }

  archive::CreateOptions bad_level = zstd;
  bad_level.compression_level = 99;
  request.compression = bad_level;
  EXPECT_THAT(store_->CreateImage(request), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ImageStoreTest, ImportRefusesBadInput) {
  EXPECT_THAT(ImportFile(tmp_.Sub("rootfs.tar"), "Not A Name"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  const std::string evil = archive::testing::TarBuilder().File("../../escape", "x").Finish();
  EXPECT_THAT(store_->Import(archive::StringSource(evil), "evil"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("escape")));
  const std::string garbage(1000, 'x');
  EXPECT_THAT(store_->Import(archive::StringSource(garbage), "garbage"),
              StatusIs(absl::StatusCode::kDataLoss));
  ASSERT_OK_AND_ASSIGN(std::vector<Image> all, store_->List());
  EXPECT_THAT(all, IsEmpty());
}

// Runs `cmd` and returns its stdout (exit code in *code).
std::string Capture(const std::string& cmd, int* code) {
  std::string out;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) {
    *code = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  int status = ::pclose(f);
  *code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

class SaveLoadTest : public ImageStoreTest {
 protected:
  void SetUp() override {
    ImageStoreTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_OK_AND_ASSIGN(base_, ImportFile(tmp_.Sub("rootfs.tar"), "bb:base"));
    const std::string dir = tmp_.Sub("step");
    ASSERT_OK(archive::testing::WriteFile(dir + "/app/hello", "hello"));
    ASSERT_OK_AND_ASSIGN(auto writer, content_->OpenWriter("step"));
    ASSERT_OK_AND_ASSIGN(
        archive::LayerInfo layer,
        archive::CreateLayerFromDir(dir, [&](absl::string_view c) { return writer->Write(c); }));
    ASSERT_OK(writer->Commit(layer.size, layer.digest).status());
    NewImage request;
    request.base = "bb:base";
    request.layers = {layer};
    request.name = "example.com/app:v1";
    ASSERT_OK_AND_ASSIGN(app_, store_->CreateImage(request));
  }

  absl::Status SaveTo(const std::vector<std::string>& names, ArchiveFormat format,
                      const std::string& file) {
    UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) return ErrnoStatus(errno, file);
    return store_->Save(names, format, archive::FdSink(fd.get()));
  }

  // A second, empty store on the same machine.
  struct Other {
    std::unique_ptr<kv::KvStore> kv;
    std::unique_ptr<content::ContentStore> content;
    std::unique_ptr<ImageStore> store;
  };
  Other NewStore(const std::string& name) {
    Other o;
    o.kv = kv::NewMemoryKvStore();
    o.content = std::make_unique<content::ContentStore>(
        std::make_unique<content::FilesystemDriver>(tmp_.Sub(name + "-content")));
    auto store = ImageStore::Open(tmp_.Sub(name + "-images"), o.kv.get(), o.content.get());
    EXPECT_OK(store);
    if (store.ok()) o.store = std::move(*store);
    return o;
  }

  absl::StatusOr<std::vector<Image>> LoadFrom(ImageStore& store, const std::string& file) {
    UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoStatus(errno, file);
    return store.Load(archive::FdSource(fd.get()));
  }

  Image base_, app_;
};

TEST_F(SaveLoadTest, OciArchiveRoundTripKeepsEveryDigest) {
  const std::string file = tmp_.Sub("oci.tar");
  ASSERT_OK(SaveTo({"bb:base", "example.com/app:v1"}, ArchiveFormat::kOciArchive, file));
  int code = 0;
  std::string listing = Capture("tar -tf " + file, &code);
  EXPECT_THAT(listing, HasSubstr("oci-layout"));
  EXPECT_THAT(listing, HasSubstr("index.json"));
  EXPECT_THAT(listing, HasSubstr("blobs/sha256/" + std::string(app_.target.digest.hex())));

  Other other = NewStore("oci");
  ASSERT_OK_AND_ASSIGN(std::vector<Image> loaded, LoadFrom(*other.store, file));
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_EQ(loaded[0].name, "docker.io/library/bb:base");
  EXPECT_EQ(loaded[0].target.digest, base_.target.digest);
  EXPECT_EQ(loaded[1].name, "example.com/app:v1");
  EXPECT_EQ(loaded[1].target.digest, app_.target.digest);
  EXPECT_EQ(loaded[1].id, app_.id);
  ASSERT_OK_AND_ASSIGN(std::optional<oci::Digest> top, other.store->Unpack(loaded[1]));
  EXPECT_EQ(*ReadFile(*other.store->snapshotter().Dir(*top) + "/app/hello"), "hello");

  // skopeo reads it.
  if (Exists("/usr/bin/skopeo")) {
    std::string out = Capture("skopeo inspect --raw oci-archive:" + file + ":v1 2>&1", &code);
    EXPECT_EQ(code, 0) << out;
    EXPECT_EQ(oci::Digest::Of(out), app_.target.digest) << out;
  }
}

TEST_F(SaveLoadTest, DockerArchiveRoundTripKeepsTheImageId) {
  const std::string file = tmp_.Sub("docker.tar");
  ASSERT_OK(SaveTo({"example.com/app:v1"}, ArchiveFormat::kDockerArchive, file));
  ASSERT_OK_AND_ASSIGN(oci::ImageConfig config, store_->GetConfig(app_));
  int code = 0;
  std::string listing = Capture("tar -tf " + file, &code);
  EXPECT_THAT(listing, HasSubstr("manifest.json"));
  EXPECT_THAT(listing, HasSubstr(absl::StrCat(app_.id.hex(), ".json")));
  EXPECT_THAT(listing, HasSubstr(absl::StrCat(config.diff_ids[1].hex(), "/layer.tar")));

  Other other = NewStore("docker");
  ASSERT_OK_AND_ASSIGN(std::vector<Image> loaded, LoadFrom(*other.store, file));
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded[0].name, "example.com/app:v1");
  EXPECT_EQ(loaded[0].id, app_.id);
  ASSERT_OK_AND_ASSIGN(oci::Manifest m, other.store->GetManifest(loaded[0]));
  ASSERT_EQ(m.layers.size(), 2u);
  // Layers are saved uncompressed: the blob is the diff.
  EXPECT_EQ(m.layers[1].media_type, oci::kOciLayerTar);
  EXPECT_EQ(m.layers[1].digest, config.diff_ids[1]);
  ASSERT_OK_AND_ASSIGN(std::optional<oci::Digest> top, other.store->Unpack(loaded[0]));
  EXPECT_EQ(*ReadFile(*other.store->snapshotter().Dir(*top) + "/app/hello"), "hello");

  if (Exists("/usr/bin/skopeo")) {
    std::string out = Capture("skopeo inspect docker-archive:" + file + " 2>&1", &code);
    EXPECT_EQ(code, 0) << out;
    EXPECT_THAT(out, HasSubstr(config.diff_ids[1].str()));
    // What skopeo writes, Pier loads: docker-archive and OCI archives.
    const std::string theirs = tmp_.Sub("skopeo-docker.tar");
    out = Capture("skopeo copy -q docker-archive:" + file + " docker-archive:" + theirs +
                      ":example.com/app:v2 2>&1",
                  &code);
    ASSERT_EQ(code, 0) << out;
    Other third = NewStore("skopeo");
    ASSERT_OK_AND_ASSIGN(loaded, LoadFrom(*third.store, theirs));
    ASSERT_EQ(loaded.size(), 1u);
    EXPECT_EQ(loaded[0].name, "example.com/app:v2");
    EXPECT_EQ(loaded[0].id, app_.id);
    const std::string oci_dir = tmp_.Sub("skopeo-oci.tar");
    out = Capture("skopeo copy -q docker-archive:" + file + " oci-archive:" + oci_dir +
                      ":example.com/app:v3 2>&1",
                  &code);
    ASSERT_EQ(code, 0) << out;
    ASSERT_OK_AND_ASSIGN(loaded, LoadFrom(*third.store, oci_dir));
    ASSERT_EQ(loaded.size(), 1u);
    EXPECT_EQ(loaded[0].name, "example.com/app:v3");
    EXPECT_EQ(*ReadFile(TopDirOf(*third.store, loaded[0]) + "/app/hello"), "hello");
  }
}

TEST_F(SaveLoadTest, BadArchives) {
  EXPECT_THAT(SaveTo({"nope"}, ArchiveFormat::kOciArchive, tmp_.Sub("x.tar")),
              StatusIs(absl::StatusCode::kNotFound));
  Other other = NewStore("bad");
  const std::string garbage(5000, 'x');
  EXPECT_THAT(other.store->Load(archive::StringSource(garbage)),
              StatusIs(absl::StatusCode::kDataLoss));
  const std::string empty = archive::testing::TarBuilder().File("hello", "x").Finish();
  EXPECT_THAT(other.store->Load(archive::StringSource(empty)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("neither")));
  // A blob whose bytes do not match its name.
  const std::string lie = archive::testing::TarBuilder()
                              .File("oci-layout", R"({"imageLayoutVersion":"1.0.0"})")
                              .File("blobs/sha256/" + std::string(oci::Digest::Of("a").hex()), "b")
                              .Finish();
  EXPECT_THAT(other.store->Load(archive::StringSource(lie)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("digest mismatch")));
  // manifest.json naming a missing layer.
  const std::string missing =
      archive::testing::TarBuilder()
          .File("c.json", "{}")
          .File("manifest.json",
                R"([{"Config":"c.json","RepoTags":["x:y"],"Layers":["l/layer.tar"]}])")
          .Finish();
  EXPECT_THAT(other.store->Load(archive::StringSource(missing)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("l/layer.tar")));
  ASSERT_OK_AND_ASSIGN(std::vector<Image> all, other.store->List());
  EXPECT_THAT(all, IsEmpty());
}

}  // namespace
}  // namespace pier::image
