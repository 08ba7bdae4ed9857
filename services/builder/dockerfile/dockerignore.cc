#include "services/builder/dockerfile/dockerignore.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"

namespace pier::builder::dockerfile {
namespace {

using Token = Matcher::Token;

// Go's filepath.Clean for '/'-separated paths.
std::string CleanPath(absl::string_view path) {
  if (path.empty()) return ".";
  const bool rooted = path[0] == '/';
  std::vector<absl::string_view> parts;
  for (absl::string_view p : absl::StrSplit(path, '/')) {
    if (p.empty() || p == ".") continue;
    if (p == "..") {
      if (!parts.empty() && parts.back() != "..") {
        parts.pop_back();
      } else if (!rooted) {
        parts.push_back(p);
      }
      continue;
    }
    parts.push_back(p);
  }
  std::string out = absl::StrCat(rooted ? "/" : "", absl::StrJoin(parts, "/"));
  return out.empty() ? "." : out;
}

// Normalises a context path for matching: "./a//b/" -> "a/b".
std::string NormalizeRelPath(absl::string_view path) {
  std::string p = CleanPath(path);
  while (!p.empty() && p[0] == '/') p.erase(0, 1);
  return p;
}

// Compiles a cleaned pattern. InvalidArgument for a malformed class.
absl::StatusOr<std::vector<Token>> Compile(absl::string_view p) {
  std::vector<Token> tokens;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    Token t;
    if (c == '*') {
      if (i + 1 < p.size() && p[i + 1] == '*') {
        ++i;
        if (i + 1 < p.size() && p[i + 1] == '/') {
          ++i;
          t.kind = Token::Kind::kAnyDirs;
        } else {
          t.kind = Token::Kind::kAnything;
        }
      } else {
        t.kind = Token::Kind::kStar;
      }
    } else if (c == '?') {
      t.kind = Token::Kind::kQuestion;
    } else if (c == '[') {
      t.kind = Token::Kind::kClass;
      size_t j = i + 1;
      if (j < p.size() && p[j] == '^') {
        t.negated = true;
        ++j;
      }
      auto read_char = [&](char* out) -> bool {
        if (j >= p.size() || p[j] == '-' || p[j] == ']') return false;
        if (p[j] == '\\') {
          if (++j >= p.size()) return false;
        }
        *out = p[j++];
        return true;
      };
      bool closed = false;
      while (j < p.size()) {
        if (p[j] == ']' && !t.ranges.empty()) {
          closed = true;
          break;
        }
        char lo, hi;
        if (!read_char(&lo)) break;
        hi = lo;
        if (j < p.size() && p[j] == '-') {
          ++j;
          if (!read_char(&hi)) break;
          if (hi < lo) break;
        }
        t.ranges.emplace_back(lo, hi);
      }
      if (!closed) return absl::InvalidArgumentError("syntax error in pattern (bad [ ] class)");
      i = j;
    } else if (c == '\\' && i + 1 < p.size()) {
      t.literal = p[++i];
    } else {
      t.literal = c;
    }
    tokens.push_back(std::move(t));
  }
  return tokens;
}

bool ClassMatches(const Token& t, char c) {
  bool in = false;
  for (const auto& [lo, hi] : t.ranges) {
    if (lo <= c && c <= hi) in = true;
  }
  return in != t.negated;
}

bool MatchFrom(const std::vector<Token>& t, size_t ti, absl::string_view s, size_t si) {
  while (ti < t.size()) {
    const Token& tok = t[ti];
    switch (tok.kind) {
      case Token::Kind::kLiteral:
        if (si < s.size() && s[si] == tok.literal) break;
        return false;
      case Token::Kind::kQuestion:
        if (si < s.size() && s[si] != '/') break;
        return false;
      case Token::Kind::kClass:
        if (si < s.size() && ClassMatches(tok, s[si])) break;
        return false;
      case Token::Kind::kStar:
        for (size_t k = si;; ++k) {
          if (MatchFrom(t, ti + 1, s, k)) return true;
          if (k >= s.size() || s[k] == '/') return false;
        }
      case Token::Kind::kAnyDirs:
        if (MatchFrom(t, ti + 1, s, si)) return true;
        for (size_t k = si; k < s.size(); ++k) {
          if (s[k] == '/' && MatchFrom(t, ti + 1, s, k + 1)) return true;
        }
        return false;
      case Token::Kind::kAnything:
        for (size_t k = si; k <= s.size(); ++k) {
          if (MatchFrom(t, ti + 1, s, k)) return true;
        }
        return false;
    }
    ++ti;
    ++si;
  }
  return si == s.size();
}

struct Walker {
  const Matcher& matcher;
  std::string dockerfile;  // normalised
  std::vector<ContextEntry> out;

  bool AlwaysSent(const std::string& rel) const {
    return rel == dockerfile || rel == ".dockerignore";
  }
  bool LeadsToAlwaysSent(const std::string& rel) const {
    return absl::StartsWith(dockerfile, absl::StrCat(rel, "/"));
  }

  // Lists the directory open as `fd` (taken over) at `rel` ("" for the root).
  // Sets *listed when anything below was listed.
  absl::Status Dir(int fd, const std::string& rel, const std::string& abs, bool* listed) {
    DIR* dir = ::fdopendir(fd);
    if (dir == nullptr) {
      int err = errno;
      ::close(fd);
      return ErrnoStatus(err, absl::StrCat("read context directory ", abs));
    }
    struct Closer {
      DIR* d;
      ~Closer() { ::closedir(d); }
    } closer{dir};
    const int dfd = ::dirfd(dir);
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* e = ::readdir(dir)) {
      absl::string_view name = e->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
      errno = 0;
    }
    if (errno != 0) return ErrnoStatus(errno, absl::StrCat("read context directory ", abs));
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      std::string child = rel.empty() ? name : absl::StrCat(rel, "/", name);
      std::string child_abs = absl::StrCat(abs, "/", name);
      struct stat st;
      if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return ErrnoStatus(errno, absl::StrCat("stat ", child_abs));
      }
      const bool excluded = !AlwaysSent(child) && matcher.Matches(child);
      if (S_ISDIR(st.st_mode)) {
        if (excluded && !matcher.HasExceptions() && !LeadsToAlwaysSent(child)) continue;
        int cfd = ::openat(dfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0) return ErrnoStatus(errno, absl::StrCat("open ", child_abs));
        bool below = false;
        RETURN_IF_ERROR(Dir(cfd, child, child_abs, &below));
        if (!excluded || below) {
          out.push_back(ContextEntry{child, ContextEntry::Type::kDirectory, ""});
          *listed = true;
        }
        continue;
      }
      if (excluded) continue;
      ContextEntry entry{child, ContextEntry::Type::kFile, ""};
      if (S_ISLNK(st.st_mode)) {
        entry.type = ContextEntry::Type::kSymlink;
        std::string target(static_cast<size_t>(st.st_size > 0 ? st.st_size : 256) + 1, '\0');
        ssize_t n = ::readlinkat(dfd, name.c_str(), target.data(), target.size());
        if (n < 0) return ErrnoStatus(errno, absl::StrCat("readlink ", child_abs));
        target.resize(static_cast<size_t>(n));
        entry.target = std::move(target);
      } else if (!S_ISREG(st.st_mode)) {
        entry.type = ContextEntry::Type::kOther;
      }
      out.push_back(std::move(entry));
      *listed = true;
    }
    return absl::OkStatus();
  }
};

}  // namespace

absl::Status Matcher::Add(absl::string_view line, int line_number) {
  auto fail = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("dockerignore:", line_number, ": ", what));
  };
  absl::string_view p = absl::StripAsciiWhitespace(line);
  if (p.empty()) return absl::OkStatus();
  Pattern pattern;
  if (p[0] == '!') {
    pattern.exception = true;
    p = absl::StripAsciiWhitespace(p.substr(1));
    if (p.empty()) return fail("illegal exclusion pattern: \"!\"");
  }
  std::string cleaned = CleanPath(p);
  if (cleaned.size() > 1 && cleaned[0] == '/') cleaned.erase(0, 1);
  absl::StatusOr<std::vector<Token>> tokens = Compile(cleaned);
  if (!tokens.ok()) return fail(absl::StrCat("\"", p, "\": ", tokens.status().message()));
  pattern.text = std::move(cleaned);
  pattern.tokens = *std::move(tokens);
  has_exceptions_ = has_exceptions_ || pattern.exception;
  patterns_.push_back(std::move(pattern));
  return absl::OkStatus();
}

absl::StatusOr<Matcher> Matcher::Parse(absl::string_view dockerignore) {
  if (absl::StartsWith(dockerignore, "\xEF\xBB\xBF")) dockerignore.remove_prefix(3);
  Matcher m;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(dockerignore, '\n')) {
    ++line_number;
    if (absl::StartsWith(line, "#")) continue;  // comments only in column 1
    RETURN_IF_ERROR(m.Add(line, line_number));
  }
  return m;
}

absl::StatusOr<Matcher> Matcher::FromPatterns(const std::vector<std::string>& patterns) {
  Matcher m;
  for (size_t i = 0; i < patterns.size(); ++i) {
    RETURN_IF_ERROR(m.Add(patterns[i], static_cast<int>(i) + 1));
  }
  return m;
}

bool Matcher::Matches(absl::string_view path) const {
  const std::string p = NormalizeRelPath(path);
  if (p == ".") return false;
  // The parent directories of p: "a", "a/b" for "a/b/c".
  std::vector<absl::string_view> parents;
  for (size_t i = p.find('/'); i != std::string::npos; i = p.find('/', i + 1)) {
    parents.push_back(absl::string_view(p).substr(0, i));
  }
  bool matched = false;
  for (const Pattern& pat : patterns_) {
    // An exclusion only matters while not matched, an exception only once matched.
    if (pat.exception != matched) continue;
    bool hit = MatchFrom(pat.tokens, 0, p, 0);
    for (size_t i = 0; !hit && i < parents.size(); ++i) {
      hit = MatchFrom(pat.tokens, 0, parents[i], 0);
    }
    if (hit) matched = !pat.exception;
  }
  return matched;
}

std::vector<std::string> Matcher::Patterns() const {
  std::vector<std::string> out;
  for (const Pattern& p : patterns_) out.push_back(absl::StrCat(p.exception ? "!" : "", p.text));
  return out;
}

absl::StatusOr<std::vector<ContextEntry>> WalkContext(const std::string& context_dir,
                                                      const Matcher& matcher,
                                                      absl::string_view dockerfile) {
  int fd = ::open(context_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open build context ", context_dir));
  Walker walker{matcher, NormalizeRelPath(dockerfile), {}};
  bool listed = false;
  RETURN_IF_ERROR(walker.Dir(fd, "", context_dir, &listed));
  std::sort(walker.out.begin(), walker.out.end(),
            [](const ContextEntry& a, const ContextEntry& b) { return a.path < b.path; });
  return std::move(walker.out);
}

absl::StatusOr<std::vector<ContextEntry>> ListContext(const std::string& context_dir,
                                                      absl::string_view dockerfile) {
  Matcher matcher;
  absl::StatusOr<std::string> text = ReadFile(JoinPath(context_dir, ".dockerignore"));
  if (text.ok()) {
    ASSIGN_OR_RETURN(matcher, Matcher::Parse(*text));
  } else if (!absl::IsNotFound(text.status())) {
    return text.status();
  }
  return WalkContext(context_dir, matcher, dockerfile);
}

}  // namespace pier::builder::dockerfile
