// pier-unpack: unpacks a root filesystem tar from stdin into a directory with
// lib/archive's safe extraction (nothing lands outside it: no `..`, absolute
// paths or writes through symlinks). `pier build -o type=local` runs it, so
// that the `pier` CLI itself does not load libarchive and its dozen shared
// libraries on every command.
//
//   pier-unpack DIR < rootfs.tar
//
// As root owners, devices and xattrs are restored; otherwise files belong to
// the caller and devices are left out. Whiteouts delete what they name.
// Exit 0 on success; 1 with the error on stderr; 2 for bad usage.
#include <unistd.h>

#include <iostream>
#include <string>

#include "lib/archive/layer_apply.h"
#include "lib/common/fs.h"
#include "lib/common/process.h"
#include "lib/common/status.h"

namespace {

absl::Status Unpack(const std::string& dir) {
  RETURN_IF_ERROR(pier::MakeDirs(dir, 0755));
  pier::archive::ApplyOptions options;
  options.whiteout_mode = pier::archive::WhiteoutMode::kDelete;
  const bool root = ::geteuid() == 0;
  options.restore_owners = root;
  options.devices =
      root ? pier::archive::DevicePolicy::kCreate : pier::archive::DevicePolicy::kSkip;
  options.restore_xattrs = root;
  absl::StatusOr<pier::archive::ApplyResult> r =
      pier::archive::ApplyLayer(pier::archive::FdSource(STDIN_FILENO), dir, options);
  if (!r.ok()) return pier::Annotate(r.status(), "unpacking the root filesystem into " + dir);
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  pier::InitProcess();
  if (argc != 2 || argv[1][0] == '\0' || argv[1][0] == '-') {
    std::cerr << "usage: pier-unpack DIR < rootfs.tar\n";
    return 2;
  }
  absl::Status s = Unpack(argv[1]);
  if (!s.ok()) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  return 0;
}
