// Internal to pier_archive: owning handles for libarchive objects and the
// conversion of libarchive errors into absl::Status.
//
// Thread safety: a libarchive handle is used by one thread at a time.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <locale.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace pier::archive::internal {

struct ReadArchiveDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
struct WriteArchiveDeleter {
  void operator()(struct archive* a) const { archive_write_free(a); }
};
struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

using ReadArchive = std::unique_ptr<struct archive, ReadArchiveDeleter>;
using WriteArchive = std::unique_ptr<struct archive, WriteArchiveDeleter>;
using Entry = std::unique_ptr<archive_entry, EntryDeleter>;

// Switches the calling thread (uselocale, never the process) to the C.UTF-8
// locale while it lives. libarchive converts names between the locale's
// charset and the UTF-8 of PAX headers; in the plain C locale any non-ASCII
// name fails that conversion (hdrcharset=BINARY, warnings), while under
// C.UTF-8 UTF-8 names pass through unchanged, as docker and containerd
// write them.
class ScopedUtf8Locale {
 public:
  ScopedUtf8Locale() {
    static const locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
    if (utf8 != static_cast<locale_t>(0)) previous_ = uselocale(utf8);
  }
  ~ScopedUtf8Locale() {
    if (previous_ != static_cast<locale_t>(0)) uselocale(previous_);
  }
  ScopedUtf8Locale(const ScopedUtf8Locale&) = delete;
  ScopedUtf8Locale& operator=(const ScopedUtf8Locale&) = delete;

 private:
  locale_t previous_ = static_cast<locale_t>(0);
};

// "<what>: <libarchive's message>" with `code`.
inline absl::Status ArchiveError(absl::StatusCode code, struct archive* a, absl::string_view what) {
  const char* msg = archive_error_string(a);
  return absl::Status(code,
                      absl::StrCat(what, ": ", msg != nullptr ? msg : "unknown libarchive error"));
}

}  // namespace pier::archive::internal
