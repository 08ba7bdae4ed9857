// SystemService.Events against the real pier-runtime: a container's
// lifecycle in order (create, start, die with its exit code, destroy),
// stop/kill, restart, volume and image events, the filters, `until`, and
// malformed requests. Subscriptions replay from `since` (taken before the
// actions), so no event can be missed by subscribing late.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pier/runtime/v1/runtime.grpc.pb.h"
#include "tests/integration/runtime_helpers.h"

namespace pier::testing {
namespace {

namespace v1 = ::pier::runtime::v1;
using ::testing::ElementsAre;

void SetTime(absl::Time t, google::protobuf::Timestamp* ts) {
  const int64_t nanos = absl::ToUnixNanos(t);
  ts->set_seconds(nanos / 1000000000);
  ts->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

class RuntimeEventsTest : public RuntimeFixture {
 protected:
  void SetUp() override {
    RuntimeFixture::SetUp();
    t0_ = absl::Now();
  }

  // Reads events matching `req` (since t0 unless set) until one has
  // `last_action`, or the stream ends; returns them all.
  std::vector<v1::Event> Collect(v1::EventsRequest req, const std::string& last_action,
                                 grpc::Status* status = nullptr) {
    if (!req.has_since()) SetTime(t0_, req.mutable_since());
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = system_->Events(&c, req);
    std::vector<v1::Event> out;
    v1::EventsResponse resp;
    while (reader->Read(&resp)) {
      out.push_back(resp.event());
      if (resp.event().action() == last_action) {
        c.TryCancel();
        break;
      }
    }
    grpc::Status s = reader->Finish();
    if (status != nullptr) *status = s;
    return out;
  }

  static std::vector<std::string> Actions(const std::vector<v1::Event>& events) {
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e.action());
    return out;
  }

  absl::Time t0_;
};

TEST_F(RuntimeEventsTest, ContainerLifecycleInOrder) {
  // A live subscriber, opened before anything happens.
  grpc::ClientContext live_ctx;
  live_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::EventsRequest live_req;
  SetTime(t0_, live_req.mutable_since());
  live_req.add_types(v1::EVENT_TYPE_CONTAINER);
  live_req.add_ids("exits-three");
  auto live = system_->Events(&live_ctx, live_req);

  v1::ContainerSpec spec = Spec({"sh", "-c", "exit 3"});
  spec.set_name("exits-three");
  (*spec.mutable_labels())["tier"] = "test";
  std::string id;
  ASSERT_TRUE(Run(spec, &id).ok());
  ASSERT_EQ(Wait(id), 3);
  grpc::ClientContext rc;
  v1::RemoveContainerRequest rm;
  rm.set_id(id);
  v1::RemoveContainerResponse rm_resp;
  ASSERT_TRUE(containers_->RemoveContainer(&rc, rm, &rm_resp).ok());

  std::vector<v1::Event> events;
  v1::EventsResponse resp;
  while (live->Read(&resp)) {
    events.push_back(resp.event());
    if (resp.event().action() == "destroy") break;
  }
  live_ctx.TryCancel();
  (void)live->Finish();
  ASSERT_THAT(Actions(events), ElementsAre("create", "start", "die", "destroy"));
  for (const auto& e : events) {
    EXPECT_EQ(e.type(), v1::EVENT_TYPE_CONTAINER);
    EXPECT_EQ(e.id(), id);
    EXPECT_EQ(e.name(), "exits-three");
    EXPECT_EQ(e.attributes().at("name"), "exits-three");
    EXPECT_EQ(e.attributes().at("tier"), "test");  // the container's labels
    EXPECT_EQ(e.attributes().at("image"), image_id_);
  }
  EXPECT_EQ(events[2].attributes().at("exitCode"), "3");
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_LE(absl::FromUnixSeconds(events[i - 1].time().seconds()),
              absl::FromUnixSeconds(events[i].time().seconds()));
  }

  // The same sequence replayed by a later subscriber, filtered by action
  // and label.
  v1::EventsRequest dies;
  dies.add_actions("die");
  dies.add_labels("tier=test");
  std::vector<v1::Event> replay = Collect(dies, "die");
  ASSERT_EQ(replay.size(), 1u);
  EXPECT_EQ(replay[0].id(), id);
  v1::EventsRequest other_label;
  other_label.add_labels("tier=prod");
  SetTime(absl::Now(), other_label.mutable_until());
  EXPECT_TRUE(Collect(other_label, "").empty());
}

TEST_F(RuntimeEventsTest, StopRestartVolumesImagesAndUntil) {
  v1::ContainerSpec spec = Spec({"sleep", "1000"});
  spec.set_name("sleeper");
  std::string id;
  ASSERT_TRUE(Run(spec, &id).ok());
  {
    grpc::ClientContext c;
    v1::RestartContainerRequest req;
    req.set_id(id);
    req.set_timeout_seconds(0);
    v1::RestartContainerResponse resp;
    grpc::Status s = containers_->RestartContainer(&c, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  {
    grpc::ClientContext c;
    v1::StopContainerRequest req;
    req.set_id(id);
    req.set_timeout_seconds(0);
    v1::StopContainerResponse resp;
    ASSERT_TRUE(containers_->StopContainer(&c, req, &resp).ok());
  }
  {
    grpc::ClientContext c;
    v1::CreateVolumeRequest req;
    req.set_name("evvol");
    v1::CreateVolumeResponse resp;
    ASSERT_TRUE(volumes_->CreateVolume(&c, req, &resp).ok());
    grpc::ClientContext rc;
    v1::RemoveVolumeRequest rreq;
    rreq.set_name("evvol");
    v1::RemoveVolumeResponse rresp;
    ASSERT_TRUE(volumes_->RemoveVolume(&rc, rreq, &rresp).ok());
  }
  {
    grpc::ClientContext c;
    v1::TagImageRequest req;
    req.set_source(kFixtureImage);
    req.set_target("busybox-test:other");
    v1::TagImageResponse resp;
    ASSERT_TRUE(images_->TagImage(&c, req, &resp).ok());
    grpc::ClientContext rc;
    v1::RemoveImageRequest rreq;
    rreq.set_image("busybox-test:other");
    rreq.set_force(true);  // a stopped container uses the image
    v1::RemoveImageResponse rresp;
    grpc::Status s = images_->RemoveImage(&rc, rreq, &rresp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // `until` ends the stream by itself once it has passed.
  v1::EventsRequest all;
  SetTime(absl::Now(), all.mutable_until());
  grpc::Status s;
  std::vector<v1::Event> events = Collect(all, "", &s);
  EXPECT_TRUE(s.ok()) << s.error_message();

  std::vector<std::string> container, volume, image;
  for (const auto& e : events) {
    if (e.type() == v1::EVENT_TYPE_CONTAINER) {
      EXPECT_EQ(e.id(), id);
      container.push_back(e.action() + (e.attributes().count("signal")
                                            ? "(" + e.attributes().at("signal") + ")"
                                            : ""));
    }
    if (e.type() == v1::EVENT_TYPE_VOLUME) volume.push_back(e.action() + ":" + e.name());
    if (e.type() == v1::EVENT_TYPE_IMAGE) image.push_back(e.action() + ":" + e.name());
  }
  // The restart stops with SIGTERM (sleep as pid 1 ignores it), then
  // SIGKILL at once (timeout 0).
  EXPECT_THAT(container, ElementsAre("create", "start", "kill(15)", "kill(9)", "die", "stop",
                                     "start", "restart", "kill(15)", "kill(9)", "die", "stop"));
  EXPECT_THAT(volume, ElementsAre("create:evvol", "destroy:evvol"));
  ASSERT_EQ(image.size(), 2u);
  EXPECT_THAT(image[0], ::testing::StartsWith("tag:"));
  EXPECT_THAT(image[0], ::testing::HasSubstr("busybox-test:other"));
  EXPECT_THAT(image[1], ::testing::StartsWith("untag:"));

  // Only volumes.
  v1::EventsRequest vols;
  vols.add_types(v1::EVENT_TYPE_VOLUME);
  SetTime(absl::Now(), vols.mutable_until());
  EXPECT_EQ(Collect(vols, "").size(), 2u);
}

TEST_F(RuntimeEventsTest, BadRequests) {
  v1::EventsRequest backwards;
  SetTime(t0_, backwards.mutable_since());
  SetTime(t0_ - absl::Seconds(10), backwards.mutable_until());
  grpc::Status s;
  Collect(backwards, "", &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();

  v1::EventsRequest bad_label;
  bad_label.add_labels("=x");
  Collect(bad_label, "", &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();

  v1::EventsRequest nothing;
  nothing.add_types(v1::EVENT_TYPE_UNSPECIFIED);
  Collect(nothing, "", &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
}

}  // namespace
}  // namespace pier::testing
