// Drives pier-builder through `pier build` against a real pier-registry
// (HTTP): a busybox base image built FROM scratch, a Dockerfile exercising
// RUN/COPY/ENV/WORKDIR/CMD/EXPOSE/LABEL/USER, the pushed manifest and
// config, a fully cached rebuild with the same manifest digest, a whiteout
// for a file deleted by RUN, and the error paths (failing RUN, missing COPY
// source, unknown instruction).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "lib/common/fs.h"
#include "lib/common/testing.h"
#include "lib/http/server.h"
#include "lib/oci/digest.h"
#include "nlohmann/json.hpp"
#include "pier/builder/v1/builder.grpc.pb.h"
#include "tests/integration/daemon_process.h"

namespace pier::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace bpb = ::pier::builder::v1;

std::string Sh(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  pclose(f);
  return out;
}

void Write(const std::string& path, const std::string& data) {
  ASSERT_OK(MakeDirs(Dirname(path), 0755));
  std::ofstream(path) << data;
}

// A build over gRPC: the Dockerfile travels in the spec, the context is
// empty. Returns every event and the final status.
struct RpcBuild {
  grpc::Status status;
  std::vector<bpb::BuildResponse> events;
};
RpcBuild BuildOverGrpc(const std::string& address, const bpb::BuildSpec& spec) {
  auto stub = bpb::BuilderService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  auto stream = stub->Build(&ctx);
  bpb::BuildRequest req;
  *req.mutable_spec() = spec;
  stream->Write(req);
  req.mutable_context_manifest()->set_complete(true);
  stream->Write(req);
  RpcBuild out;
  bpb::BuildResponse resp;
  while (stream->Read(&resp)) {
    if (resp.has_need_files()) {
      req.mutable_context_done();
      stream->Write(req);
      stream->WritesDone();
    }
    out.events.push_back(resp);
  }
  out.status = stream->Finish();
  return out;
}

class BuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) FAIL() << "required: needs root (overlayfs, namespaces)";
    if (access("/bin/busybox", X_OK) != 0) FAIL() << "required: needs busybox-static";
    ASSERT_OK(registry_.Start(
        "pier-registry",
        {"--listen=127.0.0.1:0", "--http-listen=127.0.0.1:0", "--root=" + dir_.Sub("registry")},
        {"grpc", "http"}));
    ASSERT_OK(
        builder_.Start("pier-builder", {"--listen=127.0.0.1:0", "--root=" + dir_.Sub("builder")}));
    reg_ = registry_.Address("http");
    // The base image: busybox built FROM scratch by Pier itself.
    std::string rootfs = dir_.Sub("base/rootfs");
    for (const char* d : {"bin", "proc", "sys", "dev", "tmp", "etc"}) {
      ASSERT_OK(MakeDirs(rootfs + "/" + d, 0755));
    }
    Sh("cp /bin/busybox " + rootfs + "/bin/busybox");
    for (const char* c : {"sh", "ls", "cat", "echo", "rm", "false", "true", "mkdir"}) {
      ASSERT_EQ(symlink("busybox", (rootfs + "/bin/" + c).c_str()), 0);
    }
    Write(dir_.Sub("base/Dockerfile"), "FROM scratch\nCOPY rootfs/ /\nCMD [\"/bin/sh\"]\n");
    CommandResult r = Build({"-t", reg_ + "/base/busybox:latest", dir_.Sub("base")});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }

  CommandResult Build(std::vector<std::string> args) { return BuildOn(builder_, std::move(args)); }

  CommandResult BuildOn(const DaemonProcess& builder, std::vector<std::string> args) {
    args.insert(args.begin(), "build");
    args.insert(args.begin(), "--builder=" + builder.Address());
    return RunPier(args, {"SOURCE_DATE_EPOCH=1700000000"});
  }

  nlohmann::json Get(const std::string& path) {
    return nlohmann::json::parse(
        Sh("curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' http://" + reg_ +
           path),
        nullptr, false);
  }

  TempDir dir_;
  DaemonProcess registry_;
  DaemonProcess builder_;
  std::string reg_;
};

TEST_F(BuilderTest, BuildPushCacheAndErrors) {
  std::string app = dir_.Sub("app");
  Write(app + "/hello.txt", "hello\n");
  Write(app + "/Dockerfile", absl::StrCat("FROM ", reg_, "/base/busybox:latest\n",
                                          "ENV GREETING=hi\n"
                                          "WORKDIR /app\n"
                                          "COPY hello.txt ./\n"
                                          "RUN echo built > /app/built.txt && rm /bin/false\n"
                                          "EXPOSE 8080\n"
                                          "LABEL org.example=demo\n"
                                          "USER 1000\n"
                                          "CMD [\"cat\", \"/app/hello.txt\"]\n"));
  CommandResult first = Build({"-t", reg_ + "/demo/app:v1", app});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_THAT(first.output, HasSubstr("RUN /bin/sh -c echo built"));

  nlohmann::json manifest = Get("/v2/demo/app/manifests/v1");
  ASSERT_TRUE(manifest.is_object());
  // base COPY + WORKDIR + COPY + RUN.
  ASSERT_EQ(manifest["layers"].size(), 4u);
  nlohmann::json config =
      Get("/v2/demo/app/blobs/" + manifest["config"]["digest"].get<std::string>());
  ASSERT_TRUE(config.is_object());
  const nlohmann::json& c = config["config"];
  EXPECT_THAT(c["Env"].dump(), HasSubstr("GREETING=hi"));
  EXPECT_EQ(c["Cmd"], nlohmann::json::array({"cat", "/app/hello.txt"}));
  EXPECT_TRUE(c["ExposedPorts"].contains("8080/tcp"));
  EXPECT_EQ(c["Labels"]["org.example"], "demo");
  EXPECT_EQ(c["User"], "1000");
  EXPECT_EQ(c["WorkingDir"], "/app");
  int empty = 0, full = 0;
  for (const auto& h : config["history"]) (h.value("empty_layer", false) ? empty : full)++;
  EXPECT_EQ(full, 4);
  EXPECT_GE(empty, 6);

  // The RUN layer records the deletion as a whiteout.
  std::string run_layer = manifest["layers"][3]["digest"];
  std::string listing =
      Sh("curl -sf http://" + reg_ + "/v2/demo/app/blobs/" + run_layer + " | tar -tzf -");
  EXPECT_THAT(listing, HasSubstr("bin/.wh.false"));
  EXPECT_THAT(listing, HasSubstr("app/built.txt"));

  // An identical rebuild is fully cached and reproduces the manifest.
  CommandResult second = Build({"-t", reg_ + "/demo/app:v1", app});
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_THAT(second.output, Not(HasSubstr("DONE")));
  std::string digest =
      Sh("curl -sfI -H 'Accept: application/vnd.oci.image.manifest.v1+json' http://" + reg_ +
         "/v2/demo/app/manifests/v1 | grep -i docker-content-digest");
  EXPECT_THAT(first.output, HasSubstr("manifest "));
  for (absl::string_view line : absl::StrSplit(first.output, '\n')) {
    if (absl::StartsWith(line, "manifest ")) {
      EXPECT_THAT(second.output, HasSubstr(std::string(line)));
      EXPECT_THAT(digest, HasSubstr(std::string(line.substr(9))));
    }
  }

  // A failing RUN: exit 1, line and exit code in the message, nothing pushed.
  std::string bad = dir_.Sub("bad");
  Write(bad + "/Dockerfile",
        absl::StrCat("FROM ", reg_, "/base/busybox:latest\nRUN echo boom && exit 3\n"));
  CommandResult failed = Build({"-t", reg_ + "/demo/bad:v1", bad});
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_THAT(failed.output, HasSubstr("Dockerfile:2"));
  EXPECT_THAT(failed.output, HasSubstr("exit code 3"));
  EXPECT_THAT(failed.output, HasSubstr("boom"));
  EXPECT_FALSE(Get("/v2/demo/bad/manifests/v1").is_object());

  // A missing COPY source is named.
  Write(bad + "/Dockerfile",
        absl::StrCat("FROM ", reg_, "/base/busybox:latest\nCOPY nope.txt /\n"));
  failed = Build({bad});
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_THAT(failed.output, HasSubstr("nope.txt"));

  // An unknown instruction names its line.
  Write(bad + "/Dockerfile", absl::StrCat("FROM ", reg_, "/base/busybox:latest\nFROBNICATE x\n"));
  failed = Build({bad});
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_THAT(failed.output, HasSubstr("Dockerfile:2"));
  EXPECT_THAT(failed.output, HasSubstr("FROBNICATE"));
}

// The manifest digest a build printed ("manifest sha256:...").
std::string ManifestLine(const std::string& output) {
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (absl::StartsWith(line, "manifest ")) return std::string(line.substr(9));
  }
  return "";
}

// The status printed for the step whose line contains `step` ("CACHED",
// "DONE", ...): the "#<n> CACHED" or "#<n> DONE" line of its step number
// (stages may run concurrently, so other steps' lines can come between).
std::string StepStatus(const std::string& output, const std::string& step) {
  std::vector<std::string> lines = absl::StrSplit(output, '\n');
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find(step) == std::string::npos || !absl::StartsWith(lines[i], "#")) continue;
    std::string n = lines[i].substr(0, lines[i].find(' '));
    for (size_t j = i; j < lines.size(); ++j) {
      if (absl::StartsWith(lines[j], n + " CACHED")) return "CACHED";
      if (absl::StartsWith(lines[j], n + " DONE")) return "DONE";
    }
  }
  return "";
}

TEST_F(BuilderTest, ChangedCopyRebuildsFromThatStepAndBuildsAreReproducible) {
  std::string app = dir_.Sub("repro");
  Write(app + "/a.txt", "first\n");
  Write(app + "/b.txt", "unchanged\n");
  Write(app + "/Dockerfile", absl::StrCat("FROM ", reg_, "/base/busybox:latest\n",
                                          "COPY b.txt /b.txt\n"
                                          "RUN echo one > /one\n"
                                          "COPY a.txt /a.txt\n"
                                          "RUN cat /a.txt > /copy\n"));
  CommandResult first = Build({"-t", reg_ + "/demo/repro:v1", app});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  std::string d1 = ManifestLine(first.output);
  ASSERT_FALSE(d1.empty()) << first.output;

  // Without the cache, the same input gives the same digests.
  CommandResult again = Build({"--no-cache", "-t", reg_ + "/demo/repro:v2", app});
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(StepStatus(again.output, "echo one"), "DONE") << again.output;
  EXPECT_EQ(ManifestLine(again.output), d1);

  // The builder keeps what it received: an unchanged context sends nothing.
  EXPECT_THAT(again.output, HasSubstr("context: sending 0 of"));

  // Changing a.txt rebuilds from its COPY on; the steps before stay cached,
  // and only a.txt crosses the wire.
  Write(app + "/a.txt", "second\n");
  CommandResult changed = Build({"-t", reg_ + "/demo/repro:v3", app});
  ASSERT_EQ(changed.exit_code, 0) << changed.output;
  EXPECT_THAT(changed.output, HasSubstr("context: sending 1 of"));
  EXPECT_EQ(StepStatus(changed.output, "COPY b.txt"), "CACHED") << changed.output;
  EXPECT_EQ(StepStatus(changed.output, "echo one"), "CACHED") << changed.output;
  EXPECT_EQ(StepStatus(changed.output, "COPY a.txt"), "DONE") << changed.output;
  EXPECT_EQ(StepStatus(changed.output, "cat /a.txt"), "DONE") << changed.output;
  EXPECT_NE(ManifestLine(changed.output), d1);
}

TEST_F(BuilderTest, MultiStageDockerignoreAndOneLayerBeatsTwo) {
  std::string app = dir_.Sub("multi");
  Write(app + "/keep.txt", "keep\n");
  Write(app + "/secret.key", "do not send\n");
  Write(app + "/.dockerignore", "*.key\n");
  Write(app + "/Dockerfile", absl::StrCat("FROM ", reg_, "/base/busybox:latest AS tools\n",
                                          "RUN echo from-tools > /made\n"
                                          "FROM ",
                                          reg_, "/base/busybox:latest\n",
                                          "COPY --from=tools /made /made\n"
                                          "COPY . /ctx/\n"));
  CommandResult built = Build({"-t", reg_ + "/demo/multi:v1", app});
  ASSERT_EQ(built.exit_code, 0) << built.output;
  nlohmann::json m = Get("/v2/demo/multi/manifests/v1");
  ASSERT_TRUE(m.is_object());
  std::string listing;
  for (const auto& l : m["layers"]) {
    listing += Sh("curl -sf http://" + reg_ + "/v2/demo/multi/blobs/" +
                  l["digest"].get<std::string>() + " | tar -tzf -");
  }
  EXPECT_THAT(listing, HasSubstr("made"));
  EXPECT_THAT(listing, HasSubstr("ctx/keep.txt"));
  EXPECT_THAT(listing, Not(HasSubstr("secret.key")));

  // The seed's lesson: install and clean up in one RUN, and the layer holds
  // nothing; in two RUNs, the first layer keeps the bytes the second deletes.
  std::string one = dir_.Sub("one"), two = dir_.Sub("two");
  std::string make = "busybox dd if=/dev/urandom of=/pkg bs=1024 count=2048 2>/dev/null";
  Write(one + "/Dockerfile",
        absl::StrCat("FROM ", reg_, "/base/busybox:latest\nRUN ", make, " && rm /pkg\n"));
  Write(two + "/Dockerfile",
        absl::StrCat("FROM ", reg_, "/base/busybox:latest\nRUN ", make, "\nRUN rm /pkg\n"));
  ASSERT_EQ(Build({"-t", reg_ + "/demo/one:v1", one}).exit_code, 0);
  ASSERT_EQ(Build({"-t", reg_ + "/demo/two:v1", two}).exit_code, 0);
  auto added = [&](const std::string& repo) {
    nlohmann::json mf = Get("/v2/" + repo + "/manifests/v1");
    int64_t base = Get("/v2/base/busybox/manifests/latest")["layers"][0]["size"];
    int64_t total = 0;
    for (const auto& l : mf["layers"]) total += l["size"].get<int64_t>();
    return total - base;
  };
  int64_t one_layer = added("demo/one"), two_layers = added("demo/two");
  std::cout << "bytes added: one RUN " << one_layer << ", two RUNs " << two_layers << "\n";
  EXPECT_LT(one_layer, 64 * 1024);
  EXPECT_GT(two_layers, 2 * 1024 * 1024);
}

TEST_F(BuilderTest, EveryInstructionLandsInTheImage) {
  std::string app = dir_.Sub("all");
  Write(app + "/hello.txt", "hello\n");
  // A local tarball that ADD extracts.
  Write(app + "/tree/inner/file.txt", "from a tarball\n");
  Sh("tar -C " + app + "/tree -cf " + app + "/tree.tar inner");
  Write(app + "/Dockerfile",
        absl::StrCat("# syntax=docker/dockerfile:1\n"
                     "ARG BASE=",
                     reg_,
                     "/base/busybox:latest\n"
                     "FROM ${BASE}\n"
                     "MAINTAINER Pier <admin@example.org>\n"
                     "ARG GREETING=hello\n"
                     "ENV MESSAGE=\"${GREETING} world\" OTHER=x\n"
                     "LABEL a=1 b=\"two words\"\n"
                     "SHELL [\"/bin/sh\", \"-c\"]\n"
                     "WORKDIR /srv\n"
                     "COPY --chmod=0600 hello.txt ./\n"
                     "ADD tree.tar /unpacked/\n"
                     "RUN echo \"$MESSAGE\" > /srv/msg\n"
                     "VOLUME [\"/data\"]\n"
                     "EXPOSE 80 53/udp\n"
                     "USER 1000:1000\n"
                     "STOPSIGNAL SIGINT\n"
                     "HEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD cat /srv/msg\n"
                     "ONBUILD RUN echo child\n"
                     "ENTRYPOINT [\"/bin/sh\", \"-c\"]\n"
                     "CMD [\"cat /srv/msg\"]\n"));
  CommandResult built = Build({"-t", reg_ + "/demo/all:v1", app});
  ASSERT_EQ(built.exit_code, 0) << built.output;
  nlohmann::json m = Get("/v2/demo/all/manifests/v1");
  ASSERT_TRUE(m.is_object());
  nlohmann::json config = Get("/v2/demo/all/blobs/" + m["config"]["digest"].get<std::string>());
  const nlohmann::json& c = config["config"];
  EXPECT_EQ(config["author"], "Pier <admin@example.org>");
  EXPECT_THAT(c["Env"].dump(), HasSubstr("MESSAGE=hello world"));
  EXPECT_EQ(c["Labels"]["b"], "two words");
  EXPECT_EQ(c["WorkingDir"], "/srv");
  EXPECT_TRUE(c["Volumes"].contains("/data"));
  EXPECT_TRUE(c["ExposedPorts"].contains("80/tcp"));
  EXPECT_TRUE(c["ExposedPorts"].contains("53/udp"));
  EXPECT_EQ(c["User"], "1000:1000");
  EXPECT_EQ(c["StopSignal"], "SIGINT");
  EXPECT_EQ(c["Healthcheck"]["Test"], nlohmann::json::array({"CMD-SHELL", "cat /srv/msg"}));
  EXPECT_EQ(c["Healthcheck"]["Interval"], 30000000000LL);
  EXPECT_EQ(c["Healthcheck"]["Retries"], 2);
  EXPECT_EQ(c["OnBuild"], nlohmann::json::array({"RUN echo child"}));
  EXPECT_EQ(c["Shell"], nlohmann::json::array({"/bin/sh", "-c"}));
  EXPECT_EQ(c["Entrypoint"], nlohmann::json::array({"/bin/sh", "-c"}));
  EXPECT_EQ(c["Cmd"], nlohmann::json::array({"cat /srv/msg"}));
  std::string listing;
  for (const auto& l : m["layers"]) {
    listing += Sh("curl -sf http://" + reg_ + "/v2/demo/all/blobs/" +
                  l["digest"].get<std::string>() + " | tar -tvzf -");
  }
  EXPECT_THAT(listing, HasSubstr("unpacked/inner/file.txt"));
  EXPECT_THAT(listing, HasSubstr("srv/msg"));
  EXPECT_THAT(listing, HasSubstr("-rw------- 0/0"));  // COPY --chmod=0600

  // A child image runs the ONBUILD trigger.
  std::string child = dir_.Sub("child");
  Write(child + "/Dockerfile", absl::StrCat("FROM ", reg_, "/demo/all:v1\n"));
  CommandResult c2 = Build({"-t", reg_ + "/demo/child:v1", child});
  ASSERT_EQ(c2.exit_code, 0) << c2.output;
  EXPECT_THAT(c2.output, HasSubstr("echo child"));
}

TEST_F(BuilderTest, BadInputsNameTheirObjectAndPushNothing) {
  std::string bad = dir_.Sub("bad2");
  Write(bad + "/inside.txt", "x\n");
  Write(bad + "/Dockerfile",
        absl::StrCat("FROM ", reg_, "/base/busybox:latest\nCOPY ../outside.txt /\n"));
  CommandResult r = Build({"-t", reg_ + "/demo/bad2:v1", bad});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("outside.txt"));
  Write(bad + "/Dockerfile",
        absl::StrCat("FROM ", reg_, "/base/busybox:latest\nCOPY --from=nosuchstage /x /\n"));
  r = Build({"-t", reg_ + "/demo/bad2:v1", bad});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("nosuchstage"));
  Write(bad + "/Dockerfile", "FROM 127.0.0.1:1/nothing/here:latest\nRUN true\n");
  r = Build({"-t", reg_ + "/demo/bad2:v1", bad});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("127.0.0.1:1"));
  EXPECT_FALSE(Get("/v2/demo/bad2/manifests/v1").is_object());
}

// Each layer of a pushed image as `tar -tv` lists it.
std::vector<std::string> LayerListings(const std::string& reg, const nlohmann::json& manifest,
                                       const std::string& repo) {
  std::vector<std::string> out;
  for (const auto& l : manifest["layers"]) {
    out.push_back(Sh("curl -sf http://" + reg + "/v2/" + repo + "/blobs/" +
                     l["digest"].get<std::string>() + " | tar -tvzf -"));
  }
  return out;
}

// Unpacks every layer of a pushed image into `dir`, bottom first.
void UnpackImage(const std::string& reg, const nlohmann::json& manifest, const std::string& repo,
                 const std::string& dir) {
  ASSERT_OK(MakeDirs(dir, 0755));
  for (const auto& l : manifest["layers"]) {
    Sh("curl -sf http://" + reg + "/v2/" + repo + "/blobs/" + l["digest"].get<std::string>() +
       " | tar -xzf - -C " + dir);
  }
}

std::string FileOr(const std::string& path) {
  absl::StatusOr<std::string> data = ReadFile(path);
  return data.ok() ? *data : "<missing " + path + ">";
}

// RUN here-documents: a script for the shell, a #! script run as a file,
// a here-document as a command's stdin, two in one RUN; COPY here-documents
// with --chmod and expansion; bodies in the cache key; no trace of the
// script in the layers.
TEST_F(BuilderTest, HeredocsRunScriptsAndBecomeFiles) {
  std::string app = dir_.Sub("heredoc");
  const std::string dockerfile = absl::StrCat("FROM ", reg_, "/base/busybox:latest\n",
                                              "ARG NAME=world\n"
                                              "RUN <<EOF\n"
                                              "echo \"hello $NAME\" > /plain\n"
                                              "echo second >> /plain\n"
                                              "EOF\n"
                                              "RUN <<EOT\n"
                                              "#!/bin/sh\n"
                                              "echo \"shebang $0\" > /shebang\n"
                                              "EOT\n"
                                              "RUN cat <<EOF > /catted\n"
                                              "body $NAME\n"
                                              "EOF\n"
                                              "RUN <<-'QUOTED' cat > /quoted\n"
                                              "\tkept $NAME\n"
                                              "\tQUOTED\n"
                                              "RUN <<A cat > /a && <<B cat > /b\n"
                                              "first\n"
                                              "A\n"
                                              "second\n"
                                              "B\n"
                                              "COPY --chmod=0755 <<script.sh /usr/local/bin/\n"
                                              "#!/bin/sh\n"
                                              "echo from script\n"
                                              "script.sh\n"
                                              "COPY <<one.txt <<\"two.txt\" /dir/\n"
                                              "1 ${NAME}\n"
                                              "one.txt\n"
                                              "2 ${NAME}\n"
                                              "two.txt\n"
                                              "COPY <<EOF /etc/greeting\n"
                                              "hi $NAME\n"
                                              "EOF\n"
                                              "ADD --chown=5:6 <<EOF /added.txt\n"
                                              "added\n"
                                              "EOF\n"
                                              "RUN /usr/local/bin/script.sh > /ran\n");
  Write(app + "/Dockerfile", dockerfile);
  CommandResult first = Build({"-t", reg_ + "/demo/heredoc:v1", app});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  nlohmann::json m = Get("/v2/demo/heredoc/manifests/v1");
  ASSERT_TRUE(m.is_object());
  std::string root = dir_.Sub("heredoc-root");
  UnpackImage(reg_, m, "demo/heredoc", root);
  EXPECT_EQ(FileOr(root + "/plain"), "hello world\nsecond\n");
  EXPECT_EQ(FileOr(root + "/shebang"), "shebang /dev/pipes/EOT\n");
  EXPECT_EQ(FileOr(root + "/catted"), "body world\n");
  EXPECT_EQ(FileOr(root + "/quoted"), "kept $NAME\n");
  EXPECT_EQ(FileOr(root + "/a"), "first\n");
  EXPECT_EQ(FileOr(root + "/b"), "second\n");
  EXPECT_EQ(FileOr(root + "/dir/one.txt"), "1 world\n");
  EXPECT_EQ(FileOr(root + "/dir/two.txt"), "2 ${NAME}\n");
  EXPECT_EQ(FileOr(root + "/ran"), "from script\n");
  EXPECT_EQ(FileOr(root + "/etc/greeting"), "hi world\n");
  EXPECT_EQ(FileOr(root + "/added.txt"), "added\n");
  std::string all = absl::StrJoin(LayerListings(reg_, m, "demo/heredoc"), "");
  EXPECT_THAT(all, HasSubstr("-rwxr-xr-x 0/0"));  // --chmod=0755
  EXPECT_THAT(all, HasSubstr("usr/local/bin/script.sh"));
  EXPECT_THAT(all, HasSubstr("-rw-r--r-- 0/0"));  // heredoc files default to 0644
  EXPECT_THAT(all, HasSubstr("-rw-r--r-- 5/6"));  // ADD --chown
  EXPECT_THAT(all, Not(HasSubstr("pipes")));
  nlohmann::json config = Get("/v2/demo/heredoc/blobs/" + m["config"]["digest"].get<std::string>());
  EXPECT_THAT(config["history"].dump(), HasSubstr("RUN /bin/sh -c cat <<EOF > /catted"));

  // Unchanged: every step cached. A changed body rebuilds from its step.
  CommandResult again = Build({"-t", reg_ + "/demo/heredoc:v1", app});
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_THAT(again.output, Not(HasSubstr("DONE")));
  Write(app + "/Dockerfile",
        absl::StrReplaceAll(dockerfile, {{"body $NAME", "changed $NAME"}, {"2 ${NAME}", "2b"}}));
  CommandResult changed = Build({"-t", reg_ + "/demo/heredoc:v2", app});
  ASSERT_EQ(changed.exit_code, 0) << changed.output;
  EXPECT_EQ(StepStatus(changed.output, "#!/bin/sh"), "") << changed.output;
  EXPECT_EQ(StepStatus(changed.output, "RUN /bin/sh -c <<EOT"), "CACHED") << changed.output;
  EXPECT_EQ(StepStatus(changed.output, "cat <<EOF > /catted"), "DONE") << changed.output;
  EXPECT_EQ(StepStatus(changed.output, "<<two.txt"), "DONE") << changed.output;
  nlohmann::json m2 = Get("/v2/demo/heredoc/manifests/v2");
  std::string root2 = dir_.Sub("heredoc-root2");
  UnpackImage(reg_, m2, "demo/heredoc", root2);
  EXPECT_EQ(FileOr(root2 + "/catted"), "changed world\n");
  EXPECT_EQ(FileOr(root2 + "/dir/two.txt"), "2b\n");
}

// RUN --mount: a cache directory that outlives builds and stays out of the
// image; binds of the context (read-only, and rw with writes discarded) and
// of another stage; a tmpfs; no mount point left in any layer; errors that
// name the line.
TEST_F(BuilderTest, RunMountsCacheBindAndTmpfs) {
  std::string app = dir_.Sub("mounts");
  Write(app + "/src/data.txt", "from context\n");
  Write(app + "/Dockerfile",
        absl::StrCat("FROM scratch AS empty\n"
                     "FROM ",
                     reg_, "/base/busybox:latest AS tools\n",
                     "RUN mkdir -p /out && echo from-stage > /out/tool.txt\n"
                     "FROM ",
                     reg_, "/base/busybox:latest\n",
                     "RUN --mount=type=cache,target=/tmp/cache echo run >> /tmp/cache/log && "
                     "cat /tmp/cache/log > /seen\n"
                     "RUN --mount=type=bind,source=src,target=/src cat /src/data.txt > /from-ctx "
                     "&& ! echo x > /src/data.txt\n"
                     "RUN --mount=type=bind,from=tools,source=/out,target=/mnt/tools "
                     "cat /mnt/tools/tool.txt > /from-stage\n"
                     "RUN --mount=type=bind,target=/ctx,rw echo scribble > /ctx/src/data.txt && "
                     "cat /ctx/src/data.txt > /rw-ok\n"
                     "RUN --mount=type=tmpfs,target=/scratch,size=1m echo t > /scratch/t && "
                     "busybox grep ' /scratch tmpfs' /proc/mounts > /tmpfs-ok\n"
                     "RUN --mount=type=bind,from=",
                     reg_,
                     "/base/busybox:latest,source=/bin,target=/img-bin "
                     "ls /img-bin/busybox > /from-image\n"
                     "RUN --mount=type=bind,from=empty,target=/e ls -A /e > /from-empty && "
                     "echo listed >> /from-empty\n"));
  CommandResult first = Build({"--no-cache", "-t", reg_ + "/demo/mounts:v1", app});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  CommandResult second = Build({"--no-cache", "-t", reg_ + "/demo/mounts:v2", app});
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_EQ(FileOr(app + "/src/data.txt"), "from context\n");  // rw writes are discarded
  nlohmann::json m = Get("/v2/demo/mounts/manifests/v2");
  ASSERT_TRUE(m.is_object());
  std::string root = dir_.Sub("mounts-root");
  UnpackImage(reg_, m, "demo/mounts", root);
  EXPECT_EQ(FileOr(root + "/seen"), "run\nrun\n");  // the second build saw the first's write
  EXPECT_EQ(FileOr(root + "/from-ctx"), "from context\n");
  EXPECT_EQ(FileOr(root + "/from-stage"), "from-stage\n");
  EXPECT_EQ(FileOr(root + "/rw-ok"), "scribble\n");
  EXPECT_THAT(FileOr(root + "/tmpfs-ok"), HasSubstr("tmpfs"));
  EXPECT_EQ(FileOr(root + "/from-image"), "/img-bin/busybox\n");
  std::vector<std::string> layers = LayerListings(reg_, m, "demo/mounts");
  EXPECT_EQ(FileOr(root + "/from-empty"), "listed\n");
  ASSERT_EQ(layers.size(), 8u);  // base + seven RUNs
  for (size_t i = 1; i < layers.size(); ++i) {
    // Mount points (and the /tmp copied up for /tmp/cache) leave no trace.
    for (const char* trace :
         {"tmp/", "cache", "src/", "mnt/", "ctx/", "scratch/", "img-bin", "e/"}) {
      EXPECT_THAT(layers[i], Not(HasSubstr(std::string(" ") + trace))) << i << ": " << layers[i];
    }
  }

  // `pier builder prune --all` empties the cache mounts too.
  CommandResult pruned = RunPier({"--builder=" + builder_.Address(), "builder", "prune", "-a"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.output;
  CommandResult third = Build({"-t", reg_ + "/demo/mounts:v3", app});
  ASSERT_EQ(third.exit_code, 0) << third.output;
  std::string root3 = dir_.Sub("mounts-root3");
  UnpackImage(reg_, Get("/v2/demo/mounts/manifests/v3"), "demo/mounts", root3);
  EXPECT_EQ(FileOr(root3 + "/seen"), "run\n");

  // Errors name the line.
  std::string bad = dir_.Sub("mounts-bad");
  Write(bad + "/inside.txt", "x\n");
  for (const auto& [mount, message] :
       {std::pair("type=nosuch,target=/x", "unsupported mount type"),
        std::pair("type=bind,source=../outside,target=/x", "outside the build context"),
        std::pair("type=bind,source=missing,target=/x", "not found in the build context"),
        std::pair("type=ssh", "RUN --mount=type=ssh"),
        std::pair("type=secret,id=nope,required", "required"),
        std::pair("type=tmpfs,target=/t,size=lots", "invalid size"),
        std::pair("type=cache,target=/a,id=x,sharing=locked --mount=type=cache,target=/b,id=x",
                  "mounted twice"),
        std::pair("type=bind,from=nosuchstage,target=/x", "no such stage")}) {
    Write(bad + "/Dockerfile",
          absl::StrCat("FROM ", reg_, "/base/busybox:latest\nRUN --mount=", mount, " true\n"));
    CommandResult r = Build({bad});
    EXPECT_EQ(r.exit_code, 1) << mount;
    EXPECT_THAT(r.output, HasSubstr("Dockerfile:2")) << mount;
    EXPECT_THAT(r.output, HasSubstr(message)) << r.output;
  }
}

// RUN --mount=type=secret: the secret (`pier build --secret`) is readable as
// a file and as an environment variable, and lands in no layer, config or
// cache key (a changed value still hits the cache).
TEST_F(BuilderTest, RunSecretsStayOutOfTheImage) {
  std::string app = dir_.Sub("secrets");
  const std::string value = "s3cr3t-value-42";
  const std::string encoded = "czNjcjN0LXZhbHVlLTQy";  // base64 of `value`
  std::string secret_file = dir_.Sub("secret.txt");
  Write(secret_file, value);
  Write(app + "/Dockerfile",
        absl::StrCat("FROM ", reg_, "/base/busybox:latest\n",
                     // The value is compared in base64, so that the Dockerfile
                     // does not hold it.
                     "RUN --mount=type=secret,id=tok,required "
                     "[ \"$(busybox base64 /run/secrets/tok)\" = ",
                     encoded, " ] && echo file-ok > /file-ok\n",
                     "RUN --mount=type=secret,id=tok,env=TOKEN,target=/etc/tok,mode=0440,uid=7 "
                     "[ \"$(echo -n \"$TOKEN\" | busybox base64)\" = ",
                     encoded,
                     " ] && busybox stat -c '%a %u' /etc/tok > /env-ok\n"
                     "RUN --mount=type=secret,id=absent [ ! -e /run/secrets/absent ] && "
                     "echo optional > /optional\n"));
  CommandResult first =
      Build({"--secret", "id=tok,src=" + secret_file, "-t", reg_ + "/demo/secrets:v1", app});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_THAT(first.output, Not(HasSubstr(value)));
  nlohmann::json m = Get("/v2/demo/secrets/manifests/v1");
  ASSERT_TRUE(m.is_object());
  std::string root = dir_.Sub("secrets-root");
  UnpackImage(reg_, m, "demo/secrets", root);
  EXPECT_EQ(FileOr(root + "/file-ok"), "file-ok\n");
  EXPECT_EQ(FileOr(root + "/env-ok"), "440 7\n");
  EXPECT_EQ(FileOr(root + "/optional"), "optional\n");
  for (const auto& l : m["layers"]) {
    std::string blob = Sh("curl -sf http://" + reg_ + "/v2/demo/secrets/blobs/" +
                          l["digest"].get<std::string>() + " | gzip -dc");
    EXPECT_THAT(blob, Not(HasSubstr(value)));
    EXPECT_THAT(blob, Not(HasSubstr("run/secrets")));
    EXPECT_THAT(blob, Not(HasSubstr("etc/tok")));
  }
  std::string config = Sh("curl -sf http://" + reg_ + "/v2/demo/secrets/blobs/" +
                          m["config"]["digest"].get<std::string>());
  ASSERT_FALSE(config.empty());
  EXPECT_THAT(config, Not(HasSubstr(value)));

  // Another value of the same secret: the steps stay cached (only presence
  // counts); without it, the required one fails naming its line.
  Write(secret_file, "another-value");
  CommandResult again =
      Build({"--secret", "id=tok,src=" + secret_file, "-t", reg_ + "/demo/secrets:v1", app});
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_THAT(again.output, Not(HasSubstr("DONE")));
  CommandResult missing = Build({app});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.output, HasSubstr("Dockerfile:2"));
  EXPECT_THAT(missing.output, HasSubstr("id=tok"));
}

TEST_F(BuilderTest, TarballOutputsAsBuildxWritesThem) {
  std::string app = dir_.Sub("tar");
  Write(app + "/hello.txt", "hello\n");
  Write(app + "/Dockerfile", absl::StrCat("FROM ", reg_, "/base/busybox:latest\n",
                                          "COPY hello.txt /hello.txt\n"
                                          "RUN echo ran > /ran\n"
                                          "CMD [\"cat\", \"/hello.txt\"]\n"));
  // type=oci: an OCI layout tar that skopeo reads; nothing is pushed.
  std::string oci = dir_.Sub("out/oci.tar");
  ASSERT_OK(MakeDirs(dir_.Sub("out"), 0755));
  CommandResult r = Build({"-t", reg_ + "/demo/tar:v1", "-o", "type=oci,dest=" + oci, app});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string manifest_digest = ManifestLine(r.output);
  ASSERT_FALSE(manifest_digest.empty()) << r.output;
  nlohmann::json inspect =
      nlohmann::json::parse(Sh("skopeo inspect oci-archive:" + oci), nullptr, false);
  ASSERT_TRUE(inspect.is_object()) << r.output;
  EXPECT_EQ(inspect["Digest"], manifest_digest);
  EXPECT_EQ(inspect["Layers"].size(), 3u);  // base, COPY, RUN
  nlohmann::json config =
      nlohmann::json::parse(Sh("skopeo inspect --config oci-archive:" + oci), nullptr, false);
  ASSERT_TRUE(config.is_object());
  EXPECT_EQ(config["config"]["Cmd"], nlohmann::json::array({"cat", "/hello.txt"}));
  std::string index = Sh("tar -xOf " + oci + " index.json");
  EXPECT_THAT(index, HasSubstr(reg_ + "/demo/tar:v1"));
  EXPECT_FALSE(Get("/v2/demo/tar/manifests/v1").is_object());
  // umoci unpacks the layout: the files are there.
  std::string layout = dir_.Sub("out/layout");
  ASSERT_OK(MakeDirs(layout, 0755));
  Sh("tar -C " + layout + " -xf " + oci);
  std::string bundle = dir_.Sub("out/bundle");
  Sh("umoci unpack --image " + layout + ":v1 " + bundle + " 2>&1");
  EXPECT_EQ(Sh("cat " + bundle + "/rootfs/hello.txt " + bundle + "/rootfs/ran"), "hello\nran\n");

  // type=docker: manifest.json with the tag, the config and three layers.
  std::string docker = dir_.Sub("out/docker.tar");
  r = Build({"-t", reg_ + "/demo/tar:v1", "-o", "type=docker,dest=" + docker, app});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(ManifestLine(r.output), manifest_digest);
  nlohmann::json mj =
      nlohmann::json::parse(Sh("tar -xOf " + docker + " manifest.json"), nullptr, false);
  ASSERT_TRUE(mj.is_array() && mj.size() == 1u) << mj.dump();
  EXPECT_EQ(mj[0]["RepoTags"], nlohmann::json::array({reg_ + "/demo/tar:v1"}));
  EXPECT_EQ(mj[0]["Layers"].size(), 3u);
  size_t at = r.output.find("writing image sha256:");
  ASSERT_NE(at, std::string::npos) << r.output;
  EXPECT_EQ(mj[0]["Config"], r.output.substr(at + 21, 64) + ".json");
  nlohmann::json dinspect =
      nlohmann::json::parse(Sh("skopeo inspect docker-archive:" + docker), nullptr, false);
  ASSERT_TRUE(dinspect.is_object());
  EXPECT_EQ(dinspect["Layers"].size(), 3u);
  EXPECT_FALSE(Get("/v2/demo/tar/manifests/v1").is_object());

  // dest=-: the archive on standard output, progress on standard error.
  std::string piped = dir_.Sub("out/piped.tar");
  Sh("SOURCE_DATE_EPOCH=1700000000 " + BinDir() + "/pier --builder=" + builder_.Address() +
     " build -o type=oci,dest=- " + app + " > " + piped + " 2>/dev/null");
  inspect = nlohmann::json::parse(Sh("skopeo inspect oci-archive:" + piped), nullptr, false);
  ASSERT_TRUE(inspect.is_object());
  EXPECT_EQ(inspect["Digest"], manifest_digest);

  // type=registry pushes (the default without -o does too).
  r = Build({"-t", reg_ + "/demo/tar:v1", "-o", "type=registry", app});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(Get("/v2/demo/tar/manifests/v1").is_object());

  // Bad -o flags are usage errors naming the flag.
  r = Build({"-o", "type=oci", app});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("dest= is required"));
  r = Build({"-o", "type=zip,dest=x.zip", app});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("unknown output type \"zip\""));

  // Over gRPC, the builder refuses a typeless output and a relative dest.
  bpb::BuildSpec spec;
  spec.set_dockerfile(absl::StrCat("FROM ", reg_, "/base/busybox:latest\n"));
  spec.add_outputs();
  RpcBuild bad = BuildOverGrpc(builder_.Address(), spec);
  EXPECT_EQ(bad.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.status.error_message(), HasSubstr("outputs[0]"));
  spec.mutable_outputs(0)->set_type(bpb::Output::TYPE_OCI);
  spec.mutable_outputs(0)->set_dest("relative.tar");
  bad = BuildOverGrpc(builder_.Address(), spec);
  EXPECT_EQ(bad.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.status.error_message(), HasSubstr("dest"));
  // An absolute dest is written on the builder's host.
  spec.mutable_outputs(0)->set_dest(dir_.Sub("out/server.tar"));
  RpcBuild good = BuildOverGrpc(builder_.Address(), spec);
  ASSERT_TRUE(good.status.ok()) << good.status.error_message();
  EXPECT_TRUE(nlohmann::json::parse(Sh("skopeo inspect oci-archive:" + dir_.Sub("out/server.tar")),
                                    nullptr, false)
                  .is_object());

  // type local with an absolute dest unpacks the root filesystem on the
  // builder's host; streamed, it is one plain tar of that tree.
  spec.set_dockerfile(
      absl::StrCat("FROM ", reg_, "/base/busybox:latest\nRUN echo ran > /ran && rm /bin/false\n"));
  spec.mutable_outputs(0)->set_type(bpb::Output::TYPE_LOCAL);
  spec.mutable_outputs(0)->set_dest(dir_.Sub("out/rootfs"));
  good = BuildOverGrpc(builder_.Address(), spec);
  ASSERT_TRUE(good.status.ok()) << good.status.error_message();
  EXPECT_EQ(Sh("cat " + dir_.Sub("out/rootfs/ran")), "ran\n");
  EXPECT_EQ(access(dir_.Sub("out/rootfs/bin/busybox").c_str(), X_OK), 0);
  EXPECT_NE(access(dir_.Sub("out/rootfs/bin/false").c_str(), F_OK), 0);
  spec.mutable_outputs(0)->clear_dest();
  good = BuildOverGrpc(builder_.Address(), spec);
  ASSERT_TRUE(good.status.ok()) << good.status.error_message();
  std::string streamed;
  for (const bpb::BuildResponse& e : good.events) {
    if (e.has_tarball_chunk()) {
      EXPECT_EQ(e.tarball_chunk().output(), 0);
      EXPECT_EQ(e.tarball_chunk().offset(), static_cast<int64_t>(streamed.size()));
      streamed += e.tarball_chunk().data();
    }
  }
  Write(dir_.Sub("out/rootfs.tar"), streamed);
  std::string listing = Sh("tar -tf " + dir_.Sub("out/rootfs.tar"));
  EXPECT_THAT(listing, HasSubstr("\nran\n"));
  EXPECT_THAT(listing, HasSubstr("bin/busybox"));
  EXPECT_THAT(listing, Not(HasSubstr("bin/false")));
  EXPECT_THAT(listing, Not(HasSubstr(".wh.")));
  // Compression: zstd into a docker archive, and an out-of-range level.
  spec.mutable_outputs(0)->set_type(bpb::Output::TYPE_DOCKER);
  spec.mutable_outputs(0)->set_compression(bpb::Output::COMPRESSION_ZSTD);
  bad = BuildOverGrpc(builder_.Address(), spec);
  EXPECT_EQ(bad.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.status.error_message(), HasSubstr("outputs[0]: type docker cannot hold zstd"));
  spec.mutable_outputs(0)->set_type(bpb::Output::TYPE_OCI);
  spec.mutable_outputs(0)->set_compression_level(20);
  bad = BuildOverGrpc(builder_.Address(), spec);
  EXPECT_EQ(bad.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.status.error_message(), HasSubstr("out of range 1..19"));
}

TEST_F(BuilderTest, RegistryCacheLetsAFreshBuilderSkipEveryStep) {
  std::string app = dir_.Sub("cacheapp");
  Write(app + "/a.txt", "a\n");
  Write(app + "/Dockerfile", absl::StrCat("FROM ", reg_, "/base/busybox:latest AS tools\n",
                                          "RUN echo tool > /tool\n"
                                          "FROM ",
                                          reg_, "/base/busybox:latest\n",
                                          "ENV X=1\n"
                                          "COPY a.txt /a.txt\n"
                                          "RUN echo ran-once > /ran\n"
                                          "COPY --from=tools /tool /tool\n"
                                          "WORKDIR /w\n"));
  const std::string cache = reg_ + "/demo/cacheapp:buildcache";
  CommandResult first =
      Build({"-t", reg_ + "/demo/cacheapp:v1", "--cache-to", "type=registry,ref=" + cache, app});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_EQ(StepStatus(first.output, "echo ran-once"), "DONE") << first.output;
  std::string digest = ManifestLine(first.output);
  ASSERT_FALSE(digest.empty());
  // The cache is an OCI artifact in the registry.
  nlohmann::json m = Get("/v2/demo/cacheapp/manifests/buildcache");
  ASSERT_TRUE(m.is_object());
  EXPECT_EQ(m["artifactType"], "application/vnd.pier.build-cache.v1");
  EXPECT_EQ(m["config"]["mediaType"], "application/vnd.pier.build-cache.config.v1+json");
  EXPECT_EQ(m["layers"].size(), 4u);  // RUN tool, COPY a.txt, RUN ran-once, COPY --from

  // A second builder on an empty root imports the cache and runs nothing.
  DaemonProcess fresh;
  ASSERT_OK(fresh.Start("pier-builder", {"--listen=127.0.0.1:0", "--root=" + dir_.Sub("fresh")}));
  CommandResult second = BuildOn(
      fresh, {"-t", reg_ + "/demo/cacheapp:v2", "--cache-from", "type=registry,ref=" + cache, app});
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_THAT(second.output, Not(HasSubstr("DONE"))) << second.output;
  for (const char* step :
       {"echo tool", "ENV X=1", "COPY a.txt", "echo ran-once", "COPY --from", "WORKDIR /w"}) {
    EXPECT_EQ(StepStatus(second.output, step), "CACHED") << step << "\n" << second.output;
  }
  EXPECT_EQ(ManifestLine(second.output), digest);

  // A cache that does not exist is a warning, not a failure.
  CommandResult missing = BuildOn(fresh, {"--cache-from", reg_ + "/demo/nocache:none", app});
  EXPECT_EQ(missing.exit_code, 0) << missing.output;
  EXPECT_THAT(missing.output, HasSubstr("WARNING: cache-from " + reg_ + "/demo/nocache:none"));
  CommandResult bad = Build({"--cache-to", "type=local,dest=/tmp/x", app});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.output, HasSubstr("--cache-to"));
}

TEST_F(BuilderTest, IndependentStagesRunConcurrently) {
  bpb::BuildSpec spec;
  spec.set_dockerfile(absl::StrCat("FROM ", reg_, "/base/busybox:latest AS a\n",
                                   "RUN sleep 1 && echo a > /a\n"
                                   "FROM ",
                                   reg_, "/base/busybox:latest AS b\n",
                                   "RUN sleep 1 && echo b > /b\n"
                                   "FROM ",
                                   reg_,
                                   "/base/busybox:latest\n"
                                   "COPY --from=a /a /a\n"
                                   "COPY --from=b /b /b\n"));
  RpcBuild r = BuildOverGrpc(builder_.Address(), spec);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  // Event positions of each RUN's start and completion, by stage.
  std::map<std::string, size_t> started, completed;
  std::map<int, std::string> stage_of_step;
  std::vector<size_t> copies;  // positions of the final stage's COPY starts
  for (size_t i = 0; i < r.events.size(); ++i) {
    const bpb::BuildResponse& e = r.events[i];
    if (e.has_step_started()) {
      stage_of_step[e.step_started().step()] = e.step_started().stage();
      if (absl::StartsWith(e.step_started().instruction(), "RUN")) {
        started[e.step_started().stage()] = i;
      } else {
        EXPECT_EQ(e.step_started().stage(), "2");
        copies.push_back(i);
      }
    }
    if (e.has_step_completed() && stage_of_step.count(e.step_completed().step())) {
      const std::string& stage = stage_of_step[e.step_completed().step()];
      if (started.count(stage) && !completed.count(stage)) completed[stage] = i;
    }
  }
  ASSERT_TRUE(started.count("a") && started.count("b")) << started.size();
  ASSERT_TRUE(completed.count("a") && completed.count("b"));
  // Each stage's RUN started before the other's finished: they overlapped.
  EXPECT_LT(started["b"], completed["a"]);
  EXPECT_LT(started["a"], completed["b"]);
  // The final stage copied from both, after both.
  ASSERT_EQ(copies.size(), 2u);
  EXPECT_GT(copies[0], std::max(completed["a"], completed["b"]));
  ASSERT_FALSE(r.events.empty());
  ASSERT_TRUE(r.events.back().has_result());
  EXPECT_EQ(r.events.back().result().layers_size(), 3);

  // With one stage at a time, the same build runs them one after the other.
  DaemonProcess serial;
  ASSERT_OK(serial.Start("pier-builder", {"--listen=127.0.0.1:0", "--root=" + dir_.Sub("serial"),
                                          "--max-parallel-stages=1"}));
  r = BuildOverGrpc(serial.Address(), spec);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  std::vector<std::string> order;  // "start a", "done a", ...
  stage_of_step.clear();
  for (const bpb::BuildResponse& e : r.events) {
    if (e.has_step_started() && absl::StartsWith(e.step_started().instruction(), "RUN")) {
      stage_of_step[e.step_started().step()] = e.step_started().stage();
      order.push_back("start " + e.step_started().stage());
    }
    if (e.has_step_completed() && stage_of_step.count(e.step_completed().step())) {
      order.push_back("done " + stage_of_step[e.step_completed().step()]);
    }
  }
  EXPECT_EQ(order, std::vector<std::string>({"start a", "done a", "start b", "done b"}));
}

TEST_F(BuilderTest, ListPruneAndDiskUsageOverGrpc) {
  std::string app = dir_.Sub("prune");
  Write(app + "/data.txt", "some context data\n");
  Write(app + "/Dockerfile", absl::StrCat("FROM ", reg_, "/base/busybox:latest\n",
                                          "COPY data.txt /data.txt\n"
                                          "RUN echo pruned > /p\n"));
  CommandResult first = Build({app});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  auto stub = bpb::BuilderService::NewStub(
      grpc::CreateChannel(builder_.Address(), grpc::InsecureChannelCredentials()));

  // ListCache: newest first, paginated, every entry described.
  auto list = [&](int page_size, const std::string& token, bpb::ListCacheResponse* resp) {
    grpc::ClientContext ctx;
    bpb::ListCacheRequest req;
    req.set_page_size(page_size);
    req.set_page_token(token);
    return stub->ListCache(&ctx, req, resp);
  };
  bpb::ListCacheResponse all;
  ASSERT_TRUE(list(0, "", &all).ok());
  // The base image's COPY and CMD (config only), and this build's COPY and RUN.
  ASSERT_EQ(all.entries_size(), 4);
  int with_layer = 0;
  EXPECT_TRUE(all.next_page_token().empty());
  int64_t listed_bytes = 0;
  for (int i = 0; i < all.entries_size(); ++i) {
    const bpb::CacheEntry& e = all.entries(i);
    EXPECT_FALSE(e.in_use());
    EXPECT_GE(e.usage_count(), 1);
    with_layer += e.layer_digest().empty() ? 0 : 1;
    EXPECT_EQ(e.size() > 0, !e.layer_digest().empty()) << e.description();
    listed_bytes += e.size();
    if (i > 0) {
      EXPECT_LE(e.last_used().seconds(), all.entries(i - 1).last_used().seconds());
    }
  }
  EXPECT_EQ(with_layer, 3);
  std::string descriptions;
  for (const bpb::CacheEntry& e : all.entries()) descriptions += e.description() + "\n";
  EXPECT_THAT(descriptions, HasSubstr("RUN /bin/sh -c echo pruned"));
  EXPECT_THAT(descriptions, HasSubstr("COPY data.txt /data.txt"));
  bpb::ListCacheResponse page;
  ASSERT_TRUE(list(2, "", &page).ok());
  EXPECT_EQ(page.entries_size(), 2);
  ASSERT_EQ(page.next_page_token(), "2");
  ASSERT_TRUE(list(3, page.next_page_token(), &page).ok());
  EXPECT_EQ(page.entries_size(), 2);
  EXPECT_TRUE(page.next_page_token().empty());
  EXPECT_EQ(list(2, "bogus", &page).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  auto du = [&] {
    grpc::ClientContext ctx;
    bpb::DiskUsageResponse resp;
    EXPECT_TRUE(stub->DiskUsage(&ctx, bpb::DiskUsageRequest(), &resp).ok());
    return resp;
  };
  bpb::DiskUsageResponse before = du();
  EXPECT_EQ(before.cache_entries(), 4);
  EXPECT_EQ(before.cache_bytes(), listed_bytes);
  EXPECT_GT(before.context_bytes(), 1000000);  // busybox of the base image's context
  EXPECT_GT(before.content_bytes(), 0);        // config and manifest blobs
  EXPECT_GE(before.reclaimable_bytes(), before.cache_bytes() + before.context_bytes());

  auto prune = [&](const bpb::PruneCacheRequest& req, bpb::PruneCacheResponse* resp) {
    grpc::ClientContext ctx;
    return stub->PruneCache(&ctx, req, resp);
  };
  bpb::PruneCacheRequest req;
  bpb::PruneCacheResponse resp;
  req.set_keep_bytes(-1);
  EXPECT_EQ(prune(req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Entries used within the hour stay.
  req.set_keep_bytes(0);
  req.mutable_keep_duration()->set_seconds(3600);
  ASSERT_TRUE(prune(req, &resp).ok());
  EXPECT_EQ(resp.entries_deleted(), 0);
  EXPECT_EQ(resp.bytes_freed(), 0);
  // A dry run of --all reports and deletes nothing.
  req.Clear();
  req.set_all(true);
  req.set_dry_run(true);
  ASSERT_TRUE(prune(req, &resp).ok());
  EXPECT_EQ(resp.entries_deleted(), 4);
  EXPECT_EQ(resp.bytes_freed(), before.reclaimable_bytes());
  EXPECT_EQ(du().cache_entries(), 4);
  // --all empties the cache and the context store.
  req.set_dry_run(false);
  ASSERT_TRUE(prune(req, &resp).ok());
  EXPECT_EQ(resp.entries_deleted(), 4);
  EXPECT_EQ(resp.bytes_freed(), before.reclaimable_bytes());
  bpb::DiskUsageResponse after = du();
  EXPECT_EQ(after.cache_entries(), 0);
  EXPECT_EQ(after.cache_bytes(), 0);
  EXPECT_EQ(after.context_bytes(), 0);
  EXPECT_EQ(after.content_bytes(), 0);
  EXPECT_EQ(Sh("ls " + dir_.Sub("builder/context-store")), "");
  ASSERT_TRUE(list(0, "", &all).ok());
  EXPECT_EQ(all.entries_size(), 0);

  // The next build sends its context again and runs its steps.
  CommandResult again = Build({app});
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("context: sending 2 of"));
  EXPECT_EQ(StepStatus(again.output, "echo pruned"), "DONE") << again.output;

  // The CLI verbs.
  CommandResult cli_du = RunPier({"--builder=" + builder_.Address(), "builder", "du", "-v"});
  EXPECT_EQ(cli_du.exit_code, 0) << cli_du.output;
  EXPECT_THAT(cli_du.output, HasSubstr("echo pruned"));
  EXPECT_THAT(cli_du.output, HasSubstr("Build cache\t2"));
  CommandResult cli_prune =
      RunPier({"--builder=" + builder_.Address(), "builder", "prune", "--keep-storage", "1GB"});
  EXPECT_EQ(cli_prune.exit_code, 0) << cli_prune.output;
  EXPECT_THAT(cli_prune.output, HasSubstr("(0 cache entries)"));
  cli_prune = RunPier({"--builder=" + builder_.Address(), "builder", "prune", "-a"});
  EXPECT_EQ(cli_prune.exit_code, 0) << cli_prune.output;
  EXPECT_THAT(cli_prune.output, HasSubstr("(2 cache entries)"));
  cli_prune = RunPier({"--builder=" + builder_.Address(), "builder", "prune", "--filter", "x"});
  EXPECT_EQ(cli_prune.exit_code, 2);
  EXPECT_THAT(cli_prune.output, HasSubstr("--filter"));
}

}  // namespace
}  // namespace pier::testing

namespace pier::testing {
namespace {

// ADD of http URLs from a loopback server this test runs: file name from the
// URL, --chmod/--chown, mtime from Last-Modified, archives not extracted,
// an unchanged remote file confirmed by ETag (every step cached), a changed
// one rebuilding from its step, --checksum checked, a 404 named.
TEST_F(BuilderTest, AddFromUrlFetchesChecksAndCaches) {
  std::mutex mu;
  std::string tool = "echo remote v1\n", etag = "\"v1\"";
  int not_modified = 0;
  std::string archive =
      Sh("cd " + dir_.Sub("") + " && echo inner > inner.txt && tar -czf - inner.txt");
  ASSERT_FALSE(archive.empty());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<http::Server> server,
                       http::Server::Start({}, [&](http::Request& req, http::ResponseWriter& w) {
                         std::lock_guard<std::mutex> l(mu);
                         if (req.path == "/dl/app.tar.gz") {
                           (void)w.Send(archive);
                           return;
                         }
                         if (req.path != "/dl/tool.sh") {
                           w.SetStatus(404);
                           (void)w.Send("not here\n");
                           return;
                         }
                         w.SetHeader("ETag", etag);
                         w.SetHeader("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT");
                         if (req.Header("If-None-Match").value_or("") == etag) {
                           ++not_modified;
                           w.SetStatus(304);
                           (void)w.Send("");
                           return;
                         }
                         (void)w.Send(tool);
                       }));
  const std::string url = absl::StrCat("http://", server->address(), "/dl/");
  std::string app = dir_.Sub("addurl");
  Write(app + "/Dockerfile",
        absl::StrCat("FROM ", reg_, "/base/busybox:latest\n",                           // 1
                     "ADD ", url, "tool.sh /opt/\n",                                    // 2
                     "ADD --chmod=755 --chown=1:2 ", url, "tool.sh /opt/renamed.sh\n",  // 3
                     "ADD ", url, "app.tar.gz /opt/\n",                                 // 4
                     "RUN busybox stat -c '%n %a %u:%g %Y' /opt/tool.sh /opt/renamed.sh && "
                     "cat /opt/tool.sh && test -f /opt/app.tar.gz && ! test -e /opt/inner.txt\n"));
  CommandResult first = Build({app});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_THAT(first.output, HasSubstr("/opt/tool.sh 600 0:0 784111777"));
  EXPECT_THAT(first.output, HasSubstr("/opt/renamed.sh 755 1:2 784111777"));
  EXPECT_THAT(first.output, HasSubstr("echo remote v1"));

  // Unchanged: the ETag confirms it (304s), every step is cached.
  CommandResult second = Build({app});
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_THAT(second.output, Not(HasSubstr("DONE")));
  EXPECT_THAT(second.output, HasSubstr("5/5 steps cached"));
  {
    std::lock_guard<std::mutex> l(mu);
    EXPECT_GE(not_modified, 2);
    tool = "echo remote v2\n";
    etag = "\"v2\"";
  }
  // Changed: the steps from the first ADD of it on run again.
  CommandResult third = Build({app});
  ASSERT_EQ(third.exit_code, 0) << third.output;
  EXPECT_EQ(StepStatus(third.output, "tool.sh /opt/"), "DONE");
  EXPECT_EQ(StepStatus(third.output, "/opt/renamed.sh"), "DONE");
  EXPECT_EQ(StepStatus(third.output, "RUN "), "DONE");
  EXPECT_THAT(third.output, HasSubstr("echo remote v2"));
  EXPECT_THAT(third.output, Not(HasSubstr("echo remote v1")));

  // --checksum: a mismatch names the line and both digests; a match builds.
  const std::string actual = oci::Digest::Of("echo remote v2\n").str();
  const std::string wrong = "sha256:" + std::string(64, '0');
  std::string sum = dir_.Sub("addsum");
  Write(sum + "/Dockerfile", absl::StrCat("FROM ", reg_, "/base/busybox:latest\nADD --checksum=",
                                          wrong, " ", url, "tool.sh /t.sh\n"));
  CommandResult bad = Build({sum});
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_THAT(bad.output, HasSubstr("Dockerfile:2"));
  EXPECT_THAT(bad.output, HasSubstr("checksum mismatch"));
  EXPECT_THAT(bad.output, HasSubstr("expected " + wrong));
  EXPECT_THAT(bad.output, HasSubstr("got " + actual));
  Write(sum + "/Dockerfile", absl::StrCat("FROM ", reg_, "/base/busybox:latest\nADD --checksum=",
                                          actual, " ", url, "tool.sh /t.sh\n"));
  CommandResult good = Build({sum});
  EXPECT_EQ(good.exit_code, 0) << good.output;

  // A missing remote file names the line and the URL.
  Write(sum + "/Dockerfile",
        absl::StrCat("FROM ", reg_, "/base/busybox:latest\nADD ", url, "gone.txt /\n"));
  CommandResult gone = Build({sum});
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_THAT(gone.output, HasSubstr("Dockerfile:2"));
  EXPECT_THAT(gone.output, HasSubstr(url + "gone.txt"));
  EXPECT_THAT(gone.output, HasSubstr("HTTP 404"));
}

}  // namespace
}  // namespace pier::testing
