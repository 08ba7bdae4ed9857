#include "services/runtime/events/event_bus.h"

#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/common/testing.h"

namespace pier::runtime {
namespace {

using ::pier::testing::StatusIs;

Event ContainerEvent(const std::string& id, const std::string& name, const std::string& action) {
  Event e;
  e.type = Event::Type::kContainer;
  e.id = id;
  e.name = name;
  e.action = action;
  return e;
}

TEST(EventBusTest, DeliversInOrderToEverySubscriber) {
  EventBus bus;
  auto a = bus.Subscribe();
  auto b = bus.Subscribe();
  bus.Publish(ContainerEvent("c1", "one", "create"));
  bus.Publish(ContainerEvent("c1", "one", "start"));
  for (auto* s : {a.get(), b.get()}) {
    ASSERT_OK_AND_ASSIGN(Event e1, s->Next(absl::Seconds(5)));
    ASSERT_OK_AND_ASSIGN(Event e2, s->Next(absl::Seconds(5)));
    EXPECT_EQ(e1.action, "create");
    EXPECT_EQ(e2.action, "start");
    EXPECT_LE(e1.time, e2.time);
    EXPECT_NE(e1.time, absl::InfinitePast());
  }
  EXPECT_THAT(a->Next(absl::ZeroDuration()).status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST(EventBusTest, ReplaysKeptEventsSince) {
  EventBus bus(EventBus::Options{.history = 2, .queue_limit = 10});
  bus.Publish(ContainerEvent("c1", "one", "create"));
  bus.Publish(ContainerEvent("c1", "one", "start"));
  bus.Publish(ContainerEvent("c1", "one", "die"));
  auto live = bus.Subscribe();  // only new events
  auto replay = bus.Subscribe(absl::InfinitePast());
  bus.Publish(ContainerEvent("c1", "one", "destroy"));
  // Only the last two were kept; then the new one, no duplicate.
  std::vector<std::string> got;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(Event e, replay->Next(absl::Seconds(5)));
    got.push_back(e.action);
  }
  EXPECT_THAT(got, ::testing::ElementsAre("start", "die", "destroy"));
  ASSERT_OK_AND_ASSIGN(Event e, live->Next(absl::Seconds(5)));
  EXPECT_EQ(e.action, "destroy");
}

TEST(EventBusTest, SlowSubscriberIsDroppedWithoutBlocking) {
  EventBus bus(EventBus::Options{.history = 10, .queue_limit = 3});
  auto slow = bus.Subscribe();
  auto fast = bus.Subscribe();
  for (int i = 0; i < 3; ++i) {
    bus.Publish(ContainerEvent("c", "n", "start"));
    ASSERT_OK(fast->Next(absl::Seconds(5)).status());
  }
  bus.Publish(ContainerEvent("c", "n", "die"));  // the slow one's queue is full
  EXPECT_THAT(slow->Next(absl::Seconds(5)).status(),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(slow->Next(absl::Seconds(5)).status(),
              StatusIs(absl::StatusCode::kResourceExhausted));
  ASSERT_OK_AND_ASSIGN(Event e, fast->Next(absl::Seconds(5)));
  EXPECT_EQ(e.action, "die");
}

TEST(EventBusTest, NextWakesOnPublishFromAnotherThread) {
  EventBus bus;
  auto s = bus.Subscribe();
  std::thread t([&] { bus.Publish(ContainerEvent("c", "n", "kill")); });
  ASSERT_OK_AND_ASSIGN(Event e, s->Next(absl::Seconds(30)));
  EXPECT_EQ(e.action, "kill");
  t.join();
}

TEST(EventFilterTest, Matches) {
  Event e = ContainerEvent("abcdef123", "web", "die");
  e.attributes = {{"exitCode", "3"}, {"tier", "front"}};
  EXPECT_TRUE(EventFilter{}.Matches(e));
  EXPECT_TRUE(EventFilter{.types = {Event::Type::kContainer}}.Matches(e));
  EXPECT_FALSE(EventFilter{.types = {Event::Type::kImage}}.Matches(e));
  EXPECT_TRUE(EventFilter{.ids = {"web"}}.Matches(e));
  EXPECT_TRUE(EventFilter{.ids = {"abcd"}}.Matches(e));
  EXPECT_FALSE((EventFilter{.ids = {"other", "bcd"}}.Matches(e)));
  EXPECT_TRUE((EventFilter{.actions = {"start", "die"}}.Matches(e)));
  EXPECT_FALSE(EventFilter{.actions = {"start"}}.Matches(e));
  EXPECT_TRUE(EventFilter{.labels = {"tier"}}.Matches(e));
  EXPECT_TRUE(EventFilter{.labels = {"tier=front"}}.Matches(e));
  EXPECT_FALSE(EventFilter{.labels = {"tier=back"}}.Matches(e));
  EXPECT_FALSE(EventFilter{.labels = {"zone"}}.Matches(e));
}

TEST(EventFilterTest, Validate) {
  EXPECT_OK((EventFilter{.labels = {"a", "b=c"}}.Validate()));
  EXPECT_THAT(EventFilter{.labels = {"=x"}}.Validate(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(EventFilter{.ids = {""}}.Validate(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(EventFilter{.actions = {""}}.Validate(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace pier::runtime
