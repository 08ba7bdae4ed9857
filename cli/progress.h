// The progress display of `pier pull` and `pier push`: one line per item
// (blob, manifest), named by the short id docker prints (the first 12 hex
// digits of its digest), with what is happening to it.
//   On a terminal: the lines are redrawn in place as the runtime's Progress
//   events arrive (cursor up, erase line, cursor down), transfers with a bar
//   and "done/total" bytes, each line cut to the terminal's width so that
//   nothing wraps.
//   Otherwise: plain lines, one each time an item changes state (not one per
//   chunk), without escape sequences.
// Thread safety: one thread.
#pragma once

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "pier/common/v1/common.pb.h"

namespace pier::cli {

class ProgressDisplay {
 public:
  enum class Direction { kPull, kPush };

  // Writes to `out` (stderr for the verbs). `tty`: redraw in place; `width`:
  // the terminal's columns (ignored without a tty).
  ProgressDisplay(FILE* out, Direction direction, bool tty, int width);

  // For `out`: a tty when isatty(), its width from TIOCGWINSZ (80 if unknown).
  static ProgressDisplay ForStream(FILE* out, Direction direction);

  void Update(const common::v1::Progress& p);

 private:
  struct Item {
    std::string line;  // what is shown now
    int action = 0;
    std::string message;
  };
  // The text of one item's line.
  std::string Render(const std::string& short_id, const common::v1::Progress& p) const;

  FILE* out_;
  Direction direction_;
  bool tty_;
  int width_;
  std::vector<std::string> order_;     // ids, in the order of their lines
  std::map<std::string, Item> items_;  // by id
};

// "a3ed95caeb02" for "sha256:a3ed95caeb02...", else the id itself.
std::string ShortId(const std::string& id);

}  // namespace pier::cli
