// Exec over gRPC against the real pier-runtime: a process with a pty (its
// /dev/pts terminal, the initial size, resizes through ResizeTty with the
// exec id and through the stream, stdin through the terminal), and the
// errors: exec into a stopped container, resizing an unknown or tty-less
// exec. Needs root, overlayfs and busybox-static.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pier/runtime/v1/runtime.grpc.pb.h"
#include "tests/integration/runtime_helpers.h"

namespace pier::testing {
namespace {

namespace v1 = ::pier::runtime::v1;
using ExecStream = grpc::ClientReaderWriter<v1::ExecRequest, v1::ExecResponse>;

class RuntimeExecTest : public RuntimeFixture {
 protected:
  // Reads responses into `out` until it contains `want`; false when the
  // stream ends first (the exit, if read, lands in `exit`).
  static bool ReadUntil(ExecStream& call, const std::string& want, std::string* out,
                        std::optional<int>* exit = nullptr) {
    v1::ExecResponse resp;
    while (!absl::StrContains(*out, want)) {
      if (!call.Read(&resp)) return false;
      if (resp.has_output()) *out += resp.output().data();
      if (resp.has_exit() && exit != nullptr) *exit = resp.exit().exit_code();
    }
    return true;
  }

  grpc::Status Resize(const std::string& container, const std::string& exec_id, uint32_t w,
                      uint32_t h) {
    grpc::ClientContext c;
    v1::ResizeTtyRequest req;
    req.set_container_id(container);
    req.set_exec_id(exec_id);
    req.mutable_size()->set_width(w);
    req.mutable_size()->set_height(h);
    v1::ResizeTtyResponse resp;
    return containers_->ResizeTty(&c, req, &resp);
  }
};

TEST_F(RuntimeExecTest, TtySizeAndResize) {
  v1::ContainerSpec cspec = Spec({"sleep", "1000"});
  cspec.set_name("tty-host");
  std::string id;
  ASSERT_TRUE(Run(cspec, &id).ok());

  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto call = containers_->Exec(&c);
  v1::ExecRequest first;
  v1::ExecSpec* spec = first.mutable_spec();
  spec->set_container_id("tty-host");
  for (const char* a : {"sh", "-c",
                        "tty; stty size; read a; stty size; read b; stty size; "
                        "echo done-$a-$b; exit 4"}) {
    spec->add_cmd(a);
  }
  spec->set_tty(true);
  spec->set_attach_stdin(true);
  spec->mutable_tty_size()->set_width(99);
  spec->mutable_tty_size()->set_height(33);
  ASSERT_TRUE(call->Write(first));
  v1::ExecResponse resp;
  ASSERT_TRUE(call->Read(&resp));
  ASSERT_TRUE(resp.has_started()) << resp.DebugString();
  const std::string exec_id = resp.started().exec_id();
  ASSERT_FALSE(exec_id.empty());
  EXPECT_GT(resp.started().pid(), 0);

  std::string out;
  ASSERT_TRUE(ReadUntil(*call, "33 99", &out)) << out;
  // The process's stdio is a terminal of the container's devpts.
  EXPECT_TRUE(std::regex_search(out, std::regex("^/dev/pts/[0-9]+\r?\n"))) << out;

  // ResizeTty with the exec id, then a line on stdin lets it look again.
  grpc::Status s = Resize(id, exec_id, 120, 40);
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::ExecRequest in;
  in.set_stdin("one\n");
  ASSERT_TRUE(call->Write(in));
  ASSERT_TRUE(ReadUntil(*call, "40 120", &out)) << out;

  // A resize on the stream itself.
  v1::ExecRequest rs;
  rs.mutable_resize()->set_width(130);
  rs.mutable_resize()->set_height(50);
  ASSERT_TRUE(call->Write(rs));
  in.set_stdin("two\n");
  ASSERT_TRUE(call->Write(in));
  call->WritesDone();
  std::optional<int> code;
  ASSERT_TRUE(ReadUntil(*call, "done-one-two", &out, &code)) << out;
  EXPECT_THAT(out, ::testing::HasSubstr("50 130"));
  while (call->Read(&resp)) {
    if (resp.has_exit()) code = resp.exit().exit_code();
  }
  s = call->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(code, 4);

  // The exec is gone once it has exited.
  EXPECT_EQ(Resize(id, exec_id, 80, 24).error_code(), grpc::StatusCode::NOT_FOUND);
}

// A detached exec answers started and ends the call; the process runs on,
// also with a terminal it fills (the runtime drains it).
TEST_F(RuntimeExecTest, DetachedExecRunsOn) {
  std::string id;
  ASSERT_TRUE(Run(Spec({"sleep", "1000"}), &id).ok());
  const std::string flood =
      "i=0; while [ $i -lt 3000 ]; do "
      "echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; ";
  for (bool tty : {false, true}) {
    const std::string marker = tty ? "/tmp/done-tty" : "/tmp/done";
    grpc::ClientContext c;
    auto call = containers_->Exec(&c);
    v1::ExecRequest first;
    v1::ExecSpec* spec = first.mutable_spec();
    spec->set_container_id(id);
    spec->set_detach(true);
    spec->set_tty(tty);
    for (const std::string& a : {std::string("sh"), std::string("-c"), flood + "touch " + marker}) {
      spec->add_cmd(a);
    }
    ASSERT_TRUE(call->Write(first));
    v1::ExecResponse resp;
    ASSERT_TRUE(call->Read(&resp));
    EXPECT_TRUE(resp.has_started());
    EXPECT_FALSE(call->Read(&resp)) << "a message after started";
    call->WritesDone();
    ASSERT_TRUE(call->Finish().ok());
    int code = -1;
    for (int i = 0; i < 100 && code != 0; ++i) {
      (void)ExecOutput(id, {"ls", marker}, &code);
      if (code != 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(code, 0) << marker << " never appeared (tty " << tty << ")";
  }
  // Detached and attached stdin exclude each other.
  grpc::ClientContext c;
  auto call = containers_->Exec(&c);
  v1::ExecRequest first;
  first.mutable_spec()->set_container_id(id);
  first.mutable_spec()->set_detach(true);
  first.mutable_spec()->set_attach_stdin(true);
  first.mutable_spec()->add_cmd("true");
  ASSERT_TRUE(call->Write(first));
  v1::ExecResponse resp;
  EXPECT_FALSE(call->Read(&resp));
  EXPECT_EQ(call->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(RuntimeExecTest, Errors) {
  std::string id;
  ASSERT_TRUE(Run(Spec({"sleep", "1000"}), &id).ok());
  EXPECT_EQ(Resize(id, "nope", 80, 24).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Resize(id, "", 0, 24).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // An exec without a tty has no terminal to resize.
  {
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto call = containers_->Exec(&c);
    v1::ExecRequest first;
    first.mutable_spec()->set_container_id(id);
    first.mutable_spec()->add_cmd("cat");
    first.mutable_spec()->set_attach_stdin(true);
    ASSERT_TRUE(call->Write(first));
    v1::ExecResponse resp;
    ASSERT_TRUE(call->Read(&resp));
    ASSERT_TRUE(resp.has_started());
    grpc::Status s = Resize(id, resp.started().exec_id(), 80, 24);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
    // The exec id belongs to its container only.
    std::string other;
    ASSERT_TRUE(Run(Spec({"sleep", "1000"}), &other).ok());
    EXPECT_EQ(Resize(other, resp.started().exec_id(), 80, 24).error_code(),
              grpc::StatusCode::NOT_FOUND);
    v1::ExecRequest close;
    close.mutable_close_stdin();
    ASSERT_TRUE(call->Write(close));
    call->WritesDone();
    std::optional<int> code;
    while (call->Read(&resp)) {
      if (resp.has_exit()) code = resp.exit().exit_code();
    }
    EXPECT_TRUE(call->Finish().ok());
    EXPECT_EQ(code, 0);
  }

  // A tty exec into a stopped container names it.
  v1::ContainerSpec stopped = Spec({"true"});
  stopped.set_name("stopped-one");
  std::string sid;
  ASSERT_TRUE(Run(stopped, &sid).ok());
  ASSERT_EQ(Wait(sid), 0);
  grpc::ClientContext c;
  auto call = containers_->Exec(&c);
  v1::ExecRequest first;
  first.mutable_spec()->set_container_id("stopped-one");
  first.mutable_spec()->add_cmd("sh");
  first.mutable_spec()->set_tty(true);
  ASSERT_TRUE(call->Write(first));
  call->WritesDone();
  v1::ExecResponse resp;
  EXPECT_FALSE(call->Read(&resp));
  grpc::Status s = call->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("stopped-one"));

  // A zero terminal size is refused.
  grpc::ClientContext zc;
  auto zcall = containers_->Exec(&zc);
  first.mutable_spec()->set_container_id(id);
  first.mutable_spec()->mutable_tty_size()->set_width(0);
  first.mutable_spec()->mutable_tty_size()->set_height(10);
  ASSERT_TRUE(zcall->Write(first));
  zcall->WritesDone();
  EXPECT_FALSE(zcall->Read(&resp));
  EXPECT_EQ(zcall->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace pier::testing
