// How `pier build` shows the events of a Build stream.
//
// Two displays, picked by --progress=auto|tty|plain as `docker buildx`
// does (auto: tty when the output is a terminal and TERM is not "dumb"):
//   plain  one line per event, appended (what CI logs want):
//            #2 [0 2/3] RUN echo hi
//            #2 hi
//            #2 DONE 0.31s sha256:...
//   tty    one line per step, redrawn in place with ANSI cursor movement:
//          stage, step n/m, instruction and state (CACHED, the elapsed time
//          while running, DONE with its duration, ERROR), the last lines of
//          a running RUN's output under it, and a status line that becomes
//          the summary at the end. Steps that have finished, with every step
//          shown before them, are printed for good and not redrawn.
// Both end with the image, manifest and pushed names of a successful build
// and a summary line (image, cached/total steps, total time).
//
// Thread safety: Event, Line and Finish may be called from any one thread;
// the tty display redraws from its own ticker thread as well (internally
// locked). Ownership: borrows `out`, which must outlive the display.
#pragma once

#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pier/builder/v1/builder.pb.h"

namespace pier::cli {

enum class ProgressMode { kAuto, kTty, kPlain };

// "auto", "tty" or "plain"; InvalidArgument naming --progress otherwise.
absl::StatusOr<ProgressMode> ParseProgressMode(absl::string_view text);

class BuildProgress {
 public:
  virtual ~BuildProgress() = default;
  // One event of the Build stream. Tarball chunks are not shown; an error
  // event marks its step as failed (the message itself is the caller's).
  virtual void Event(const builder::v1::BuildResponse& event) = 0;
  // A line of the CLI's own, shown after the build's lines ("wrote FILE").
  virtual void Line(const std::string& text) = 0;
  // The stream has ended: leaves the display in its final state (steps
  // still running are shown as canceled). Call once, before Line.
  virtual void Finish() = 0;
};

// The display for `mode` writing to `out`, whose descriptor is `fd` (tested
// for a terminal by kAuto, asked for its width by the tty display).
// `context_entries` is the number of entries of the context manifest.
// Warnings go to standard error in plain mode and into the display on a tty.
std::unique_ptr<BuildProgress> MakeBuildProgress(ProgressMode mode, int fd, std::ostream& out,
                                                 int context_entries);

}  // namespace pier::cli
