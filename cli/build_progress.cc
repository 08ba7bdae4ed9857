#include "cli/build_progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace pier::cli {
namespace {

namespace bpb = ::pier::builder::v1;

double Seconds(const google::protobuf::Duration& d) { return d.seconds() + d.nanos() / 1e9; }

// "sha256:0123456789ab" from a full digest.
std::string ShortDigest(const std::string& digest) {
  size_t colon = digest.find(':');
  return colon == std::string::npos ? digest : digest.substr(0, colon + 13);
}

// The result's lines: what scripts grep (image, manifest, pushed names),
// then the one-line summary.
std::string ResultLines(const bpb::BuildResult& r, int total) {
  std::string s =
      absl::StrCat("writing image ", r.image_digest(), "\nmanifest ", r.manifest_digest(), "\n");
  std::vector<std::string> names;
  for (const std::string& p : r.pushed()) {
    absl::StrAppend(&s, "pushed ", p, "\n");
    names.push_back(p.substr(0, p.find('@')));
  }
  absl::StrAppend(&s, "built ", ShortDigest(r.image_digest()), " in ",
                  absl::StrFormat("%.2fs", Seconds(r.duration())), ": ", r.cached_steps(), "/",
                  total, " steps cached");
  if (!names.empty()) absl::StrAppend(&s, ", pushed ", absl::StrJoin(names, ", "));
  return s + "\n";
}

std::string StepTitle(int step, const std::string& stage, int total, const std::string& ins) {
  return absl::StrCat("[", stage, " ", step, "/", total, "] ", ins);
}

// ---- plain ------------------------------------------------------------------

class PlainProgress : public BuildProgress {
 public:
  PlainProgress(std::ostream& out, int context_entries)
      : out_(out), context_entries_(context_entries) {}

  void Event(const bpb::BuildResponse& r) override {
    if (r.has_need_files()) {
      out_ << "context: sending " << r.need_files().paths_size() << " of " << context_entries_
           << " entries (" << r.need_files().total_bytes() << " bytes)" << std::endl;
    } else if (r.has_started()) {
      total_ = r.started().total_steps();
    } else if (r.has_step_started()) {
      const auto& s = r.step_started();
      out_ << "#" << s.step() << " " << StepTitle(s.step(), s.stage(), s.total(), s.instruction())
           << std::endl;
    } else if (r.has_step_cached()) {
      const auto& s = r.step_cached();
      out_ << "#" << s.step() << " " << StepTitle(s.step(), s.stage(), s.total(), s.instruction())
           << "\n#" << s.step() << " CACHED" << std::endl;
    } else if (r.has_step_log()) {
      const std::string& d = r.step_log().data();
      out_ << "#" << r.step_log().step() << " " << d;
      if (!d.empty() && d.back() != '\n') out_ << "\n";
      out_.flush();
    } else if (r.has_step_completed()) {
      const auto& s = r.step_completed();
      out_ << "#" << s.step() << " DONE " << absl::StrCat(Seconds(s.duration())) << "s"
           << (s.layer_digest().empty() ? "" : " " + s.layer_digest()) << std::endl;
    } else if (r.has_warning()) {
      std::cerr << "WARNING: " << r.warning().message() << "\n";
    } else if (r.has_result()) {
      out_ << ResultLines(r.result(), total_) << std::flush;
    }
  }
  void Line(const std::string& text) override { out_ << text << "\n"; }
  void Finish() override { out_.flush(); }

 private:
  std::ostream& out_;
  int context_entries_;
  int total_ = 0;
};

// ---- tty --------------------------------------------------------------------

constexpr size_t kTailLines = 6;
constexpr absl::Duration kTick = absl::Milliseconds(100);

// Makes one line of program output safe to draw: the text after the last
// carriage return (progress bars redraw themselves with it), tabs as spaces,
// other control characters and escape sequences dropped.
std::string Sanitize(absl::string_view line) {
  size_t cr = line.rfind('\r');
  if (cr != absl::string_view::npos && cr + 1 < line.size()) line.remove_prefix(cr + 1);
  std::string s;
  for (size_t i = 0; i < line.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(line[i]);
    if (c == '\t') {
      s += "    ";
    } else if (c == 0x1b) {  // skip "ESC [ ... final byte" or one character after ESC
      if (i + 1 < line.size() && line[i + 1] == '[') {
        i += 2;
        while (i < line.size() && !(line[i] >= 0x40 && line[i] <= 0x7e)) ++i;
      } else {
        ++i;
      }
    } else if (c >= 0x20 && c != 0x7f) {
      s += static_cast<char>(c);
    }
  }
  return s;
}

// At most `width` bytes of `s`, not cutting a UTF-8 sequence.
std::string Fit(const std::string& s, size_t width) {
  if (s.size() <= width) return s;
  size_t n = width;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

class TtyProgress : public BuildProgress {
 public:
  TtyProgress(int fd, std::ostream& out, int context_entries)
      : out_(out), context_entries_(context_entries) {
    winsize ws{};
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) width_ = ws.ws_col;
    ticker_ = std::thread([this] { Tick(); });
  }
  ~TtyProgress() override { StopTicker(); }

  void Event(const bpb::BuildResponse& r) override {
    std::lock_guard<std::mutex> l(mu_);
    if (r.has_need_files()) {
      Step& s = Add(
          0, absl::StrCat("[context] sending ", r.need_files().paths_size(), " of ",
                          context_entries_, " entries (", r.need_files().total_bytes(), " bytes)"));
      (void)s;
    } else if (r.has_started()) {
      total_ = r.started().total_steps();
      EndContext();
    } else if (r.has_step_started()) {
      EndContext();
      const auto& e = r.step_started();
      Add(e.step(), StepTitle(e.step(), e.stage(), e.total(), e.instruction()));
    } else if (r.has_step_cached()) {
      EndContext();
      const auto& e = r.step_cached();
      Step& s = Add(e.step(), StepTitle(e.step(), e.stage(), e.total(), e.instruction()));
      s.state = State::kCached;
    } else if (r.has_step_log()) {
      auto it = steps_.find(r.step_log().step());
      if (it != steps_.end()) AppendLog(&it->second, r.step_log().data());
    } else if (r.has_step_completed()) {
      auto it = steps_.find(r.step_completed().step());
      if (it != steps_.end()) {
        it->second.state = State::kDone;
        it->second.seconds = Seconds(r.step_completed().duration());
      }
    } else if (r.has_warning()) {
      above_.push_back("WARNING: " + r.warning().message());
    } else if (r.has_result()) {
      result_ = r.result();
      has_result_ = true;
    } else if (r.has_error()) {
      failed_ = true;
      auto it = steps_.find(r.error().step());
      if (it != steps_.end() && r.error().step() > 0) {
        it->second.state = State::kError;
        it->second.seconds = absl::ToDoubleSeconds(absl::Now() - it->second.start);
      }
    } else {
      return;
    }
    Draw(false);
  }

  void Line(const std::string& text) override {
    std::lock_guard<std::mutex> l(mu_);
    out_ << text << "\n" << std::flush;
  }

  void Finish() override {
    StopTicker();
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [n, s] : steps_) {
      if (s.state == State::kRunning) {
        s.state = n == 0 && !failed_ ? State::kDone : State::kCanceled;
        s.seconds = absl::ToDoubleSeconds(absl::Now() - s.start);
      }
    }
    Draw(true);
    if (has_result_) {
      out_ << ResultLines(result_, total_);
    } else {
      out_ << absl::StrFormat("[+] build failed after %.1fs (%d/%d steps)\n",
                              absl::ToDoubleSeconds(absl::Now() - start_), Finished(), total_);
    }
    out_.flush();
  }

 private:
  enum class State { kRunning, kCached, kDone, kError, kCanceled };
  struct Step {
    std::string title;
    State state = State::kRunning;
    absl::Time start;
    double seconds = 0;
    std::deque<std::string> tail;  // last lines of output
    std::string partial;           // output after the last newline
  };

  Step& Add(int n, std::string title) {
    auto [it, inserted] = steps_.try_emplace(n);
    if (inserted) {
      order_.push_back(n);
      it->second.start = absl::Now();
    }
    it->second.title = std::move(title);
    return it->second;
  }

  // The context transfer ends when the build starts.
  void EndContext() {
    auto it = steps_.find(0);
    if (it != steps_.end() && it->second.state == State::kRunning) {
      it->second.state = State::kDone;
      it->second.seconds = absl::ToDoubleSeconds(absl::Now() - it->second.start);
    }
  }

  static void AppendLog(Step* s, const std::string& data) {
    s->partial += data;
    size_t nl;
    while ((nl = s->partial.find('\n')) != std::string::npos) {
      s->tail.push_back(Sanitize(absl::string_view(s->partial).substr(0, nl)));
      if (s->tail.size() > kTailLines) s->tail.pop_front();
      s->partial.erase(0, nl + 1);
    }
    if (s->partial.size() > 4096) s->partial.erase(0, s->partial.size() - 4096);
  }

  int Finished() const {
    int n = 0;
    for (const auto& [k, s] : steps_) {
      if (k > 0 && (s.state == State::kCached || s.state == State::kDone)) ++n;
    }
    return n;
  }

  // The step's line, with its state right-aligned, and its output lines
  // while it runs or after it failed.
  void StepLines(int n, const Step& s, std::vector<std::string>* lines) const {
    std::string right;
    switch (s.state) {
      case State::kRunning:
        right = absl::StrFormat("%.1fs", absl::ToDoubleSeconds(absl::Now() - s.start));
        break;
      case State::kCached:
        right = "CACHED";
        break;
      case State::kDone:
        right = absl::StrFormat("DONE %.1fs", s.seconds);
        break;
      case State::kError:
        right = absl::StrFormat("ERROR %.1fs", s.seconds);
        break;
      case State::kCanceled:
        right = absl::StrFormat("CANCELED %.1fs", s.seconds);
        break;
    }
    const size_t width = static_cast<size_t>(width_) - 1;
    std::string left = Fit(absl::StrCat("#", n, " ", s.title),
                           width > right.size() + 1 ? width - right.size() - 1 : 0);
    left.append(width - right.size() > left.size() ? width - right.size() - left.size() : 1, ' ');
    lines->push_back(left + right);
    if (s.state == State::kRunning || s.state == State::kError) {
      std::vector<std::string> out(s.tail.begin(), s.tail.end());
      if (!s.partial.empty()) out.push_back(Sanitize(s.partial));
      size_t from = out.size() > kTailLines ? out.size() - kTailLines : 0;
      for (size_t i = from; i < out.size(); ++i) lines->push_back(Fit("  > " + out[i], width));
    }
  }

  static bool Over(const Step& s) { return s.state != State::kRunning; }

  // Redraws the live region: moves the cursor to its top, prints what has
  // become final (warnings, finished steps with everything before them)
  // once, then the live steps and the status line, and clears what is left
  // of the old region. `final`: everything is final, no status line.
  void Draw(bool final) {
    std::string buf;
    if (live_lines_ > 0) absl::StrAppend(&buf, "\r\x1b[", live_lines_, "A");
    std::vector<std::string> fixed;
    for (const std::string& a : above_) fixed.push_back(Fit(a, width_ - 1));
    above_.clear();
    while (frozen_ < order_.size() && (final || Over(steps_.at(order_[frozen_])))) {
      StepLines(order_[frozen_], steps_.at(order_[frozen_]), &fixed);
      ++frozen_;
    }
    std::vector<std::string> live;
    for (size_t i = frozen_; i < order_.size(); ++i) {
      StepLines(order_[i], steps_.at(order_[i]), &live);
    }
    if (!final) {
      live.push_back(absl::StrFormat("[+] Building %.1fs (%d/%s)",
                                     absl::ToDoubleSeconds(absl::Now() - start_), Finished(),
                                     total_ > 0 ? absl::StrCat(total_) : "?"));
    }
    for (const std::string& line : fixed) absl::StrAppend(&buf, "\x1b[2K", line, "\n");
    for (const std::string& line : live) absl::StrAppend(&buf, "\x1b[2K", line, "\n");
    absl::StrAppend(&buf, "\x1b[J");
    live_lines_ = static_cast<int>(live.size());
    out_ << buf << std::flush;
  }

  void Tick() {
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
      cv_.wait_for(l, absl::ToChronoMilliseconds(kTick));
      if (stop_) break;
      bool running = false;
      for (const auto& [n, s] : steps_) running |= s.state == State::kRunning;
      if (running) Draw(false);
    }
  }

  void StopTicker() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (ticker_.joinable()) ticker_.join();
  }

  std::ostream& out_;
  const int context_entries_;
  int width_ = 80;
  const absl::Time start_ = absl::Now();
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;               // guarded by mu_
  std::map<int, Step> steps_;       // guarded by mu_; 0 is the context transfer
  std::vector<int> order_;          // guarded by mu_; steps in order of appearance
  size_t frozen_ = 0;               // guarded by mu_; order_ entries printed for good
  int live_lines_ = 0;              // guarded by mu_; lines of the live region
  std::vector<std::string> above_;  // guarded by mu_; warnings not yet printed
  int total_ = 0;                   // guarded by mu_
  bool failed_ = false;             // guarded by mu_
  bool has_result_ = false;         // guarded by mu_
  bpb::BuildResult result_;         // guarded by mu_
  std::thread ticker_;
};

}  // namespace

absl::StatusOr<ProgressMode> ParseProgressMode(absl::string_view text) {
  if (text == "auto" || text.empty()) return ProgressMode::kAuto;
  if (text == "tty") return ProgressMode::kTty;
  if (text == "plain") return ProgressMode::kPlain;
  return absl::InvalidArgumentError(
      absl::StrCat("--progress ", text, ": expected auto, tty or plain"));
}

std::unique_ptr<BuildProgress> MakeBuildProgress(ProgressMode mode, int fd, std::ostream& out,
                                                 int context_entries) {
  if (mode == ProgressMode::kAuto) {
    const char* term = std::getenv("TERM");
    bool dumb = term != nullptr && absl::string_view(term) == "dumb";
    mode = ::isatty(fd) && !dumb ? ProgressMode::kTty : ProgressMode::kPlain;
  }
  if (mode == ProgressMode::kTty) return std::make_unique<TtyProgress>(fd, out, context_entries);
  return std::make_unique<PlainProgress>(out, context_entries);
}

}  // namespace pier::cli
