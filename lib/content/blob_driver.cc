#include "lib/content/blob_driver.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "lib/content/filesystem_driver.h"
#include "lib/content/memory_driver.h"

namespace pier::content {
namespace {

absl::Status BadPath(absl::string_view path, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("invalid path \"", path, "\": ", why));
}

}  // namespace

absl::Status ValidatePath(absl::string_view path, bool allow_root) {
  if (path.empty()) {
    if (allow_root) return absl::OkStatus();
    return BadPath(path, "empty (the root is not allowed here)");
  }
  if (path.find('\0') != absl::string_view::npos) return BadPath(path, "contains NUL");
  if (path.front() == '/') return BadPath(path, "must be relative");
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty()) return BadPath(path, "empty component");
    if (part == "." || part == "..") return BadPath(path, "\".\" and \"..\" are not allowed");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> GetContent(BlobDriver& driver, absl::string_view path) {
  ASSIGN_OR_RETURN(std::unique_ptr<FileReader> reader, driver.Reader(path, 0));
  std::string out;
  out.reserve(reader->Size());
  char buf[65536];
  while (true) {
    ASSIGN_OR_RETURN(size_t n, reader->Read(buf, sizeof(buf)));
    if (n == 0) break;
    out.append(buf, n);
  }
  return out;
}

absl::Status PutContent(BlobDriver& driver, absl::string_view path, absl::string_view data) {
  ASSIGN_OR_RETURN(std::unique_ptr<FileWriter> writer, driver.Writer(path, /*append=*/false));
  RETURN_IF_ERROR(writer->Write(data));
  RETURN_IF_ERROR(writer->Commit());
  return writer->Close();
}

absl::StatusOr<std::unique_ptr<BlobDriver>> NewBlobDriver(absl::string_view spec) {
  if (spec == "memory:") return std::make_unique<MemoryDriver>();
  constexpr absl::string_view kFs = "filesystem:";
  if (absl::StartsWith(spec, kFs)) {
    std::string root(spec.substr(kFs.size()));
    if (root.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("blob driver spec \"", spec, "\": filesystem needs a root directory"));
    }
    RETURN_IF_ERROR(Annotate(MakeDirs(root), absl::StrCat("blob driver spec \"", spec, "\"")));
    return std::make_unique<FilesystemDriver>(std::move(root));
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown blob driver spec \"", spec,
                                                 "\": want \"filesystem:/path\" or \"memory:\""));
}

}  // namespace pier::content
