#include "services/runtime/events/event_bus.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace pier::runtime {

absl::Status EventFilter::Validate() const {
  for (const std::string& id : ids) {
    if (id.empty()) return absl::InvalidArgumentError("event filter: empty id or name");
  }
  for (const std::string& a : actions) {
    if (a.empty()) return absl::InvalidArgumentError("event filter: empty action");
  }
  for (const std::string& l : labels) {
    if (l.empty() || l[0] == '=') {
      return absl::InvalidArgumentError(absl::StrCat("event filter: malformed label condition \"",
                                                     l, "\" (want key or key=value)"));
    }
  }
  return absl::OkStatus();
}

bool EventFilter::Matches(const Event& e) const {
  if (!types.empty() && std::find(types.begin(), types.end(), e.type) == types.end()) return false;
  if (!actions.empty() && std::find(actions.begin(), actions.end(), e.action) == actions.end()) {
    return false;
  }
  if (!ids.empty() && std::none_of(ids.begin(), ids.end(), [&](const std::string& x) {
        return x == e.name || absl::StartsWith(e.id, x);
      })) {
    return false;
  }
  for (const std::string& l : labels) {
    size_t eq = l.find('=');
    auto it = e.attributes.find(l.substr(0, eq));
    if (it == e.attributes.end()) return false;
    if (eq != std::string::npos && it->second != l.substr(eq + 1)) return false;
  }
  return true;
}

void EventBus::Publish(Event e) {
  std::lock_guard<std::mutex> lock(mu_);
  e.time = std::max(absl::Now(), last_time_);
  last_time_ = e.time;
  for (auto it = subscribers_.begin(); it != subscribers_.end();) {
    Subscription* s = *it;
    if (s->queue_.size() >= opts_.queue_limit) {
      s->dropped_ = true;
      s->queue_.clear();
      s->cv_.notify_one();
      it = subscribers_.erase(it);
      continue;
    }
    s->queue_.push_back(e);
    s->cv_.notify_one();
    ++it;
  }
  history_.push_back(std::move(e));
  while (history_.size() > opts_.history) history_.pop_front();
}

std::unique_ptr<EventBus::Subscription> EventBus::Subscribe(absl::Time since) {
  std::unique_ptr<Subscription> s(new Subscription(this));
  std::lock_guard<std::mutex> lock(mu_);
  if (since != absl::InfiniteFuture()) {
    for (const Event& e : history_) {
      if (e.time >= since) s->queue_.push_back(e);
    }
  }
  subscribers_.push_back(s.get());
  return s;
}

EventBus::Subscription::~Subscription() {
  std::lock_guard<std::mutex> lock(bus_->mu_);
  bus_->subscribers_.remove(this);
}

absl::StatusOr<Event> EventBus::Subscription::Next(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(bus_->mu_);
  auto ready = [&] { return dropped_ || !queue_.empty(); };
  if (!cv_.wait_for(lock, absl::ToChronoNanoseconds(std::max(timeout, absl::ZeroDuration())),
                    ready)) {
    return absl::DeadlineExceededError("no event");
  }
  if (dropped_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("event subscriber dropped: it fell more than ", bus_->opts_.queue_limit,
                     " events behind; subscribe again (with since) to resume"));
  }
  Event e = std::move(queue_.front());
  queue_.pop_front();
  return e;
}

}  // namespace pier::runtime
