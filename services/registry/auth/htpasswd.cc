#include "services/registry/auth/htpasswd.h"

#include <crypt.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <openssl/crypto.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/common/fs.h"
#include "lib/common/log.h"
#include "lib/common/status.h"

namespace pier::registry::auth {
namespace {

// bcrypt reads at most this many password bytes.
constexpr size_t kBcryptMaxPassword = 72;

bool IsBcryptAlphabet(char c) { return absl::ascii_isalnum(c) || c == '.' || c == '/'; }

bool HasBcryptPrefix(absl::string_view hash) {
  return absl::StartsWith(hash, "$2y$") || absl::StartsWith(hash, "$2a$") ||
         absl::StartsWith(hash, "$2b$");
}

// "$2y$" + two-digit cost + "$" + 22 salt characters + 31 hash characters.
bool IsBcryptHash(absl::string_view hash) {
  if (hash.size() != 60 || !HasBcryptPrefix(hash)) return false;
  if (!absl::ascii_isdigit(hash[4]) || !absl::ascii_isdigit(hash[5]) || hash[6] != '$') {
    return false;
  }
  int cost = (hash[4] - '0') * 10 + (hash[5] - '0');
  if (cost < 4 || cost > 31) return false;
  for (char c : hash.substr(7)) {
    if (!IsBcryptAlphabet(c)) return false;
  }
  return true;
}

bool IsValidUser(absl::string_view user) {
  if (user.empty()) return false;
  for (char c : user) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return false;
  }
  return true;
}

// crypt(3) with a zeroed, heap-allocated work area (32 KiB) that is wiped
// afterwards. Returns the output string, or "" when crypt fails (it then
// returns NULL or a "*"-prefixed failure token).
std::string Crypt(absl::string_view password, const std::string& setting) {
  auto data = std::make_unique<crypt_data>();
  std::string pw(password);
  const char* out = crypt_r(pw.c_str(), setting.c_str(), data.get());
  std::string result = (out == nullptr || out[0] == '*') ? "" : std::string(out);
  OPENSSL_cleanse(data.get(), sizeof(crypt_data));
  OPENSSL_cleanse(pw.data(), pw.size());
  return result;
}

absl::Status ParseHtpasswd(absl::string_view path, absl::string_view text,
                           std::map<std::string, std::string, std::less<>>* out) {
  std::map<std::string, int, std::less<>> first_line;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("htpasswd ", path, ":", line_no, ": ", why));
    };
    line = absl::StripTrailingAsciiWhitespace(line);
    absl::string_view trimmed = absl::StripLeadingAsciiWhitespace(line);
    if (trimmed.empty() || trimmed[0] == '#') continue;
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) return bad("expected \"user:hash\"");
    absl::string_view user = line.substr(0, colon);
    absl::string_view hash = line.substr(colon + 1);
    if (!IsValidUser(user)) return bad("empty user name, or one with spaces or control characters");
    if (!IsBcryptHash(hash)) {
      if (HasBcryptPrefix(hash))
        return bad(absl::StrCat("malformed bcrypt hash for user \"", user, "\""));
      return bad(absl::StrCat("unsupported hash scheme for user \"", user,
                              "\": only bcrypt ($2y$, $2a$, $2b$; htpasswd -B) is accepted"));
    }
    auto [it, inserted] = first_line.emplace(std::string(user), line_no);
    if (!inserted) {
      return bad(absl::StrCat("duplicate user \"", user, "\" (first on line ", it->second, ")"));
    }
    out->emplace(std::string(user), std::string(hash));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> HashPassword(absl::string_view password, int cost) {
  if (cost < 4 || cost > 31) {
    return absl::InvalidArgumentError(absl::StrCat("bcrypt cost ", cost, " out of range 4..31"));
  }
  if (password.size() > kBcryptMaxPassword) {
    return absl::InvalidArgumentError(
        absl::StrCat("password longer than ", kBcryptMaxPassword, " bytes (bcrypt's limit)"));
  }
  if (password.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("password contains a NUL byte");
  }
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2y$", static_cast<unsigned long>(cost), nullptr, 0, setting,
                       sizeof(setting)) == nullptr) {
    return absl::InternalError(
        absl::StrCat("crypt_gensalt_rn($2y$, ", cost, "): ", std::strerror(errno)));
  }
  std::string hash = Crypt(password, setting);
  if (!IsBcryptHash(hash)) return absl::InternalError("crypt_r failed to produce a bcrypt hash");
  return hash;
}

HtpasswdFile::HtpasswdFile(std::string path, Options options)
    : path_(std::move(path)), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<HtpasswdFile>> HtpasswdFile::Open(std::string path,
                                                                 Options options) {
  std::unique_ptr<HtpasswdFile> file(new HtpasswdFile(std::move(path), std::move(options)));
  RETURN_IF_ERROR(file->Reload());
  std::lock_guard<std::mutex> lock(file->mu_);
  file->last_check_ = file->Now();
  return file;
}

absl::StatusOr<HtpasswdFile::FileId> HtpasswdFile::StatFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("stat htpasswd ", path));
  }
  return FileId{static_cast<int64_t>(st.st_mtim.tv_sec), static_cast<int64_t>(st.st_mtim.tv_nsec),
                static_cast<int64_t>(st.st_size), static_cast<uint64_t>(st.st_ino),
                static_cast<uint64_t>(st.st_dev)};
}

absl::Time HtpasswdFile::Now() const { return options_.clock ? options_.clock() : absl::Now(); }

absl::Status HtpasswdFile::Load(Entries* entries, FileId* id) const {
  // Stat before reading: if the file changes in between, the next check sees
  // a newer id and reads it again, rather than missing the change.
  ASSIGN_OR_RETURN(*id, StatFile(path_));
  ASSIGN_OR_RETURN(std::string text, ReadFile(path_));
  return ParseHtpasswd(path_, text, entries);
}

absl::Status HtpasswdFile::Reload() {
  Entries entries;
  FileId id;
  absl::Status status = Load(&entries, &id);
  std::lock_guard<std::mutex> lock(mu_);
  loaded_id_ = id;
  if (!status.ok()) return status;
  entries_ = std::move(entries);
  return absl::OkStatus();
}

void HtpasswdFile::MaybeReload() {
  std::lock_guard<std::mutex> lock(mu_);
  absl::Time now = Now();
  if (now - last_check_ < options_.check_interval) return;
  last_check_ = now;
  absl::StatusOr<FileId> stat = StatFile(path_);
  FileId current = stat.ok() ? *stat : FileId();  // a missing file is its own "version"
  if (current == loaded_id_) return;
  Entries entries;
  FileId id;
  absl::Status status = Load(&entries, &id);
  loaded_id_ = status.ok() ? id : current;  // do not retry a version that failed
  if (!status.ok()) {
    PIER_LOG(WARNING) << "keeping " << entries_.size()
                      << " htpasswd users: reload failed: " << status.message();
    return;
  }
  entries_ = std::move(entries);
  PIER_LOG(INFO) << "reloaded " << path_ << ": " << entries_.size() << " users";
}

absl::Status HtpasswdFile::Verify(absl::string_view user, absl::string_view password) {
  MaybeReload();
  std::string hash;
  bool known = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = entries_.find(user); it != entries_.end()) {
      hash = it->second;
      known = true;
    } else if (!entries_.empty()) {
      // Spend the same work on an unknown user as on a known one.
      hash = entries_.begin()->second;
    }
  }
  if (hash.empty() || password.find('\0') != absl::string_view::npos) {
    return absl::UnauthenticatedError(kInvalidCredentials);
  }
  std::string out = Crypt(password, hash);
  bool match =
      out.size() == hash.size() && CRYPTO_memcmp(out.data(), hash.data(), hash.size()) == 0;
  if (!match || !known) return absl::UnauthenticatedError(kInvalidCredentials);
  return absl::OkStatus();
}

size_t HtpasswdFile::Size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace pier::registry::auth
