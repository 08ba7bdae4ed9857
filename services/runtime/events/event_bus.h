// EventBus: pier-runtime's in-process stream of lifecycle events (containers,
// images, volumes) for the Events RPC. Publishers never block: each
// subscriber has a bounded queue, and one that falls more than
// `queue_limit` events behind is dropped (its Next() then answers
// ResourceExhausted) instead of slowing the daemon. The last `history`
// events are kept so that a subscriber can replay recent ones (`since`).
//
// Ownership: the bus must outlive its subscriptions. Thread safety: every
// method may be called from any thread; a Subscription is read by one
// thread at a time.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pier::runtime {

struct Event {
  enum class Type { kContainer, kImage, kVolume, kNetwork, kDaemon };
  Type type = Type::kContainer;
  std::string id;      // container id, image id, volume name
  std::string name;    // container name, image reference, volume name
  std::string action;  // "create", "start", "die", ... (runtime.proto's Event.action)
  std::map<std::string, std::string> attributes;  // "exitCode", "image", labels, ...
  absl::Time time = absl::InfinitePast();         // set by Publish()
};

// Which events a subscriber wants. Empty lists match everything; a label
// condition is "key" (present) or "key=value".
struct EventFilter {
  std::vector<Event::Type> types;
  std::vector<std::string> ids;  // an event's id, id prefix, or name
  std::vector<std::string> actions;
  std::vector<std::string> labels;

  // InvalidArgument for an empty id, action or label condition, naming it.
  absl::Status Validate() const;
  bool Matches(const Event& e) const;
};

class EventBus {
 public:
  struct Options {
    size_t history = 1000;      // events kept for replay
    size_t queue_limit = 4096;  // a subscriber this far behind is dropped
  };

  class Subscription;

  EventBus() : EventBus(Options{}) {}
  explicit EventBus(Options options) : opts_(options) {}
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;

  // Stamps `e` with the current time (times are non-decreasing in
  // publication order) and hands it to every subscriber. Never blocks on a
  // subscriber.
  void Publish(Event e);

  // A new subscriber. It first receives the kept events stamped at or after
  // `since` (none for InfiniteFuture), then every event published from now
  // on, with no gap and no duplicate between the two.
  std::unique_ptr<Subscription> Subscribe(absl::Time since = absl::InfiniteFuture());

  class Subscription {
   public:
    ~Subscription();
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

    // The next event, waiting up to `timeout`. DeadlineExceeded when none
    // came; ResourceExhausted once the subscriber was dropped for falling
    // behind (the queued events are discarded).
    absl::StatusOr<Event> Next(absl::Duration timeout);

   private:
    friend class EventBus;
    explicit Subscription(EventBus* bus) : bus_(bus) {}

    EventBus* bus_;
    std::condition_variable cv_;
    std::deque<Event> queue_;  // guarded by bus_->mu_
    bool dropped_ = false;     // guarded by bus_->mu_
  };

 private:
  const Options opts_;
  std::mutex mu_;
  std::deque<Event> history_;
  std::list<Subscription*> subscribers_;
  absl::Time last_time_ = absl::InfinitePast();
};

}  // namespace pier::runtime
