#include "cli/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "cli/runtime_client.h"

namespace pier::cli {
namespace {

using Action = common::v1::Progress;

constexpr int kBarWidth = 30;

// "[=========>          ]" for `current` of `total`.
std::string Bar(int64_t current, int64_t total) {
  int filled =
      total > 0 ? static_cast<int>(std::min<int64_t>(current, total) * kBarWidth / total) : 0;
  std::string bar = "[";
  for (int i = 0; i < kBarWidth; ++i) {
    bar += i < filled ? "=" : (i == filled ? ">" : " ");
  }
  return bar + "]";
}

std::string Capitalized(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

}  // namespace

std::string ShortId(const std::string& id) {
  if (id.rfind("sha256:", 0) == 0 && id.size() >= 7 + 12) return id.substr(7, 12);
  return id;
}

ProgressDisplay::ProgressDisplay(FILE* out, Direction direction, bool tty, int width)
    : out_(out), direction_(direction), tty_(tty), width_(std::max(width, 20)) {}

ProgressDisplay ProgressDisplay::ForStream(FILE* out, Direction direction) {
  int fd = fileno(out);
  bool tty = fd >= 0 && isatty(fd) == 1;
  int width = 80;
  struct winsize ws {};
  if (tty && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) width = ws.ws_col;
  return ProgressDisplay(out, direction, tty, width);
}

std::string ProgressDisplay::Render(const std::string& short_id,
                                    const common::v1::Progress& p) const {
  const bool pull = direction_ == Direction::kPull;
  std::string status;
  bool transfer = false;
  switch (p.action()) {
    case Action::ACTION_RESOLVING:
      status = pull ? "Resolved" : "Resolving";
      break;
    case Action::ACTION_WAITING:
      status = "Waiting";
      break;
    case Action::ACTION_DOWNLOADING:
      status = "Downloading";
      transfer = true;
      break;
    case Action::ACTION_VERIFYING:
      status = "Download complete";
      break;
    case Action::ACTION_EXTRACTING:
      status = "Extracting";
      transfer = true;
      break;
    case Action::ACTION_UPLOADING:
      status = "Pushing";
      transfer = true;
      break;
    case Action::ACTION_EXISTS:
      status = pull ? "Already exists" : "Layer already exists";
      break;
    case Action::ACTION_MOUNTED:
      status = "Mounted from another repository";
      break;
    case Action::ACTION_DONE:
      // Pushes end every item with "Pushed", as docker; a pull's last event
      // is the unpacked image (its top chain id): "Unpacked".
      if (!pull) {
        status = "Pushed";
      } else {
        status = p.message().empty() ? "Pull complete" : Capitalized(p.message());
      }
      break;
    default:
      status = p.message();
      break;
  }
  std::string line = absl::StrCat(short_id, ": ", status);
  if (transfer && p.total() > 0) {
    if (tty_) absl::StrAppend(&line, " ", Bar(p.current(), p.total()));
    absl::StrAppend(&line, " ", HumanSize(p.current()), "/", HumanSize(p.total()));
  }
  return line;
}

void ProgressDisplay::Update(const common::v1::Progress& p) {
  const std::string short_id = ShortId(p.id());
  auto it = items_.find(p.id());
  const bool is_new = it == items_.end();
  if (is_new) {
    it = items_.emplace(p.id(), Item{}).first;
    order_.push_back(p.id());
  }
  Item& item = it->second;
  const bool changed = is_new || item.action != p.action() || item.message != p.message();
  item.action = p.action();
  item.message = p.message();
  std::string line = Render(short_id, p);
  if (!tty_) {
    // Plain lines: state changes only, with the transfer's total.
    if (changed) {
      if (p.action() == Action::ACTION_DOWNLOADING || p.action() == Action::ACTION_UPLOADING) {
        line = absl::StrCat(short_id, ": ",
                            p.action() == Action::ACTION_UPLOADING ? "Pushing" : "Downloading",
                            p.total() > 0 ? absl::StrCat(" ", HumanSize(p.total())) : "");
      }
      std::fprintf(out_, "%s\n", line.c_str());
      std::fflush(out_);
    }
    item.line = std::move(line);
    return;
  }
  if (static_cast<int>(line.size()) >= width_) line.resize(static_cast<size_t>(width_ - 1));
  if (!is_new && line == item.line) return;
  item.line = line;
  if (is_new) {
    std::fprintf(out_, "%s\n", line.c_str());
  } else {
    // Up to the item's line, redraw it, back down below the last line.
    size_t index =
        static_cast<size_t>(std::find(order_.begin(), order_.end(), p.id()) - order_.begin());
    size_t up = order_.size() - index;
    std::fprintf(out_, "\x1b[%zuA\r\x1b[2K%s\r\x1b[%zuB", up, line.c_str(), up);
  }
  std::fflush(out_);
}

}  // namespace pier::cli
