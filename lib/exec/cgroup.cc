#include "lib/exec/cgroup.h"

#include <fcntl.h>
#include <linux/bpf.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lib/common/fs.h"
#include "lib/common/log.h"
#include "lib/common/status.h"

namespace pier::exec {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Writes `value` to the existing control file `dir`/`file`.
absl::Status WriteControl(const std::string& dir, absl::string_view file, absl::string_view value) {
  std::string path = JoinPath(dir, file);
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", path));
  ssize_t n = ::write(fd.get(), value.data(), value.size());
  if (n < 0) return ErrnoStatus(errno, absl::StrCat("write \"", value, "\" to ", path));
  return absl::OkStatus();
}

std::string ReadControl(const std::string& dir, absl::string_view file) {
  auto content = ReadFile(JoinPath(dir, file));
  if (!content.ok()) return "";
  return std::string(absl::StripAsciiWhitespace(*content));
}

// The value of "key N" in a flat keyed file (memory.events, memory.oom_control).
int64_t KeyedValue(const std::string& content, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, ' ');
    int64_t v = 0;
    if (kv.first == key && absl::SimpleAtoi(kv.second, &v)) return v;
  }
  return 0;
}

// mkdir each component of `rel` below `root`; records the directories it
// created in `created` (deepest last). For cpuset hierarchies, new levels get
// their parent's cpus/mems.
absl::Status MakeCgroupDirs(const std::string& root, absl::string_view rel, bool cpuset,
                            std::vector<std::string>* created, std::string* leaf) {
  std::string dir = root;
  for (absl::string_view part : absl::StrSplit(rel, '/', absl::SkipEmpty())) {
    std::string parent = dir;
    dir = JoinPath(dir, part);
    if (::mkdir(dir.c_str(), 0755) == 0) {
      created->push_back(dir);
    } else if (errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("create cgroup ", dir));
    }
    if (cpuset) {
      for (const char* f : {"cpuset.cpus", "cpuset.mems"}) {
        if (ReadControl(dir, f).empty()) {
          std::string v = ReadControl(parent, f);
          if (!v.empty()) RETURN_IF_ERROR(WriteControl(dir, f, v));
        }
      }
    }
  }
  *leaf = dir;
  return absl::OkStatus();
}

// One device rule: type 'c', 'b' or 'a' (all), major/minor or -1 for any,
// access a subset of "rwm".
struct DeviceRule {
  char type;
  int64_t major;
  int64_t minor;
  const char* access;
};

// Docker's default device rules: mknod of anything, use of null, zero,
// full, random, urandom, tty, console, ptmx, the pts and tun.
constexpr DeviceRule kDefaultDeviceRules[] = {
    {'c', -1, -1, "m"}, {'b', -1, -1, "m"}, {'c', 1, 3, "rwm"},    {'c', 1, 5, "rwm"},
    {'c', 1, 7, "rwm"}, {'c', 1, 8, "rwm"}, {'c', 1, 9, "rwm"},    {'c', 5, 0, "rwm"},
    {'c', 5, 1, "rwm"}, {'c', 5, 2, "rwm"}, {'c', 136, -1, "rwm"}, {'c', 10, 200, "rwm"},
};

// "c 1:3 rwm" for devices.allow (v1).
std::string V1Rule(const DeviceRule& r) {
  auto num = [](int64_t v) { return v < 0 ? std::string("*") : absl::StrCat(v); };
  return absl::StrCat(absl::string_view(&r.type, 1), " ", num(r.major), ":", num(r.minor), " ",
                      r.access);
}

bpf_insn Insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i;
  std::memset(&i, 0, sizeof(i));
  i.code = code;
  i.dst_reg = dst;
  i.src_reg = src;
  i.off = off;
  i.imm = imm;
  return i;
}

// The v2 equivalent of a v1 allow-list: a BPF_PROG_TYPE_CGROUP_DEVICE
// program returning 1 (allow) when a rule matches, else 0.
std::vector<bpf_insn> DeviceProgram(const std::vector<DeviceRule>& rules) {
  std::vector<bpf_insn> prog = {
      // r2 = type, r3 = access, r4 = major, r5 = minor
      Insn(BPF_LDX | BPF_MEM | BPF_W, 2, 1, 0, 0),
      Insn(BPF_ALU64 | BPF_AND | BPF_K, 2, 0, 0, 0xffff),
      Insn(BPF_LDX | BPF_MEM | BPF_W, 3, 1, 0, 0),
      Insn(BPF_ALU64 | BPF_RSH | BPF_K, 3, 0, 0, 16),
      Insn(BPF_LDX | BPF_MEM | BPF_W, 4, 1, 4, 0),
      Insn(BPF_LDX | BPF_MEM | BPF_W, 5, 1, 8, 0),
  };
  for (const DeviceRule& r : rules) {
    bpf_insn block[10];
    size_t n = 0;
    size_t jumps[4];  // indexes of "goto next rule"
    size_t njumps = 0;
    if (r.type != 'a') {
      jumps[njumps++] = n;
      block[n++] = Insn(BPF_JMP | BPF_JNE | BPF_K, 2, 0, 0,
                        r.type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK);
    }
    int32_t access = 0;
    for (const char* a = r.access; *a != '\0'; ++a) {
      access |= *a == 'r'   ? BPF_DEVCG_ACC_READ
                : *a == 'w' ? BPF_DEVCG_ACC_WRITE
                            : BPF_DEVCG_ACC_MKNOD;
    }
    if (access != (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD)) {
      block[n++] = Insn(BPF_ALU64 | BPF_MOV | BPF_X, 6, 3, 0, 0);
      block[n++] = Insn(BPF_ALU64 | BPF_AND | BPF_K, 6, 0, 0, ~access);
      jumps[njumps++] = n;
      block[n++] = Insn(BPF_JMP | BPF_JNE | BPF_K, 6, 0, 0, 0);
    }
    if (r.major >= 0) {
      jumps[njumps++] = n;
      block[n++] = Insn(BPF_JMP | BPF_JNE | BPF_K, 4, 0, 0, static_cast<int32_t>(r.major));
    }
    if (r.minor >= 0) {
      jumps[njumps++] = n;
      block[n++] = Insn(BPF_JMP | BPF_JNE | BPF_K, 5, 0, 0, static_cast<int32_t>(r.minor));
    }
    block[n++] = Insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1);
    block[n++] = Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    for (size_t j = 0; j < njumps; ++j) {
      block[jumps[j]].off = static_cast<int16_t>(n - jumps[j] - 1);
    }
    prog.insert(prog.end(), block, block + n);
  }
  prog.push_back(Insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0));
  prog.push_back(Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
  return prog;
}

}  // namespace

absl::Status AttachDefaultDeviceFilter(const std::string& cgroup_dir) {
  std::vector<bpf_insn> prog = DeviceProgram(
      std::vector<DeviceRule>(std::begin(kDefaultDeviceRules), std::end(kDefaultDeviceRules)));
  union bpf_attr load;
  std::memset(&load, 0, sizeof(load));
  load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  load.insns = reinterpret_cast<uint64_t>(prog.data());
  load.insn_cnt = static_cast<uint32_t>(prog.size());
  load.license = reinterpret_cast<uint64_t>("Apache");
  UniqueFd prog_fd(static_cast<int>(::syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof(load))));
  if (!prog_fd.valid()) {
    int err = errno;
    // Again with the verifier's log, for the message.
    std::string log(1 << 16, '\0');
    load.log_buf = reinterpret_cast<uint64_t>(log.data());
    load.log_size = static_cast<uint32_t>(log.size());
    load.log_level = 1;
    UniqueFd again(static_cast<int>(::syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof(load))));
    log.resize(std::strlen(log.c_str()));
    return ErrnoStatus(err, absl::StrCat("load the device filter for ", cgroup_dir,
                                         log.empty() ? "" : absl::StrCat(" (", log, ")")));
  }
  UniqueFd dir(::open(cgroup_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return ErrnoStatus(errno, absl::StrCat("open ", cgroup_dir));
  union bpf_attr attach;
  std::memset(&attach, 0, sizeof(attach));
  attach.target_fd = static_cast<uint32_t>(dir.get());
  attach.attach_bpf_fd = static_cast<uint32_t>(prog_fd.get());
  attach.attach_type = BPF_CGROUP_DEVICE;
  attach.attach_flags = BPF_F_ALLOW_MULTI;
  if (::syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof(attach)) < 0) {
    return ErrnoStatus(errno, absl::StrCat("attach the device filter to ", cgroup_dir));
  }
  return absl::OkStatus();
}

namespace {}  // namespace

absl::StatusOr<CgroupLayout> DetectCgroupLayout() {
  ASSIGN_OR_RETURN(std::string mountinfo, ReadFile("/proc/self/mountinfo"));
  CgroupLayout layout;
  bool found = false;
  for (absl::string_view line : absl::StrSplit(mountinfo, '\n', absl::SkipEmpty())) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superopts
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    size_t dash = 0;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (f.size() < 5 || dash + 3 >= f.size()) continue;
    absl::string_view fstype = f[dash + 1];
    std::string mountpoint(f[4]);
    if (fstype == "cgroup2") {
      found = true;
      if (mountpoint == "/sys/fs/cgroup") {
        layout.version = CgroupVersion::kV2;
        layout.unified = mountpoint;
        layout.v1.clear();
        return layout;
      }
      if (layout.unified.empty()) layout.unified = mountpoint;
    } else if (fstype == "cgroup") {
      found = true;
      for (absl::string_view opt : absl::StrSplit(f[dash + 3], ',')) {
        if (opt == "rw" || opt == "ro" || absl::StartsWith(opt, "name=") ||
            absl::StartsWith(opt, "release_agent") || opt == "clone_children" ||
            opt == "noprefix" || opt == "xattr") {
          continue;
        }
        layout.v1.emplace(std::string(opt), mountpoint);
      }
    }
  }
  if (!found) return absl::FailedPreconditionError("no cgroup file system is mounted");
  if (layout.v1.empty() && !layout.unified.empty()) layout.version = CgroupVersion::kV2;
  return layout;
}

absl::StatusOr<std::unique_ptr<Cgroup>> Cgroup::Create(const CgroupLayout& layout,
                                                       absl::string_view rel_path,
                                                       const CgroupSpec& spec,
                                                       bool allow_all_devices) {
  if (rel_path.empty() || rel_path.front() == '/' ||
      absl::StrContains(absl::StrCat("/", rel_path, "/"), "/../")) {
    return absl::InvalidArgumentError(absl::StrCat("invalid cgroup path \"", rel_path, "\""));
  }
  std::unique_ptr<Cgroup> cg(new Cgroup());
  cg->version_ = layout.version;
  std::vector<std::string> created;
  auto fail = [&](absl::Status s) {
    for (auto it = created.rbegin(); it != created.rend(); ++it) ::rmdir(it->c_str());
    return s;
  };

  if (layout.version == CgroupVersion::kV2) {
    const std::string& root = layout.unified;
    // Enable the controllers on every level above the leaf.
    std::string dir = root;
    std::vector<absl::string_view> parts = absl::StrSplit(rel_path, '/', absl::SkipEmpty());
    for (size_t i = 0; i < parts.size(); ++i) {
      std::string available = ReadControl(dir, "cgroup.controllers");
      for (absl::string_view c : absl::StrSplit(available, ' ', absl::SkipEmpty())) {
        if (c != "cpu" && c != "cpuset" && c != "io" && c != "memory" && c != "pids") continue;
        absl::Status s = WriteControl(dir, "cgroup.subtree_control", absl::StrCat("+", c));
        if (!s.ok()) {
          PIER_LOG(WARNING) << "cgroup: enabling " << c << ": " << s;
        }
      }
      std::string next = JoinPath(dir, parts[i]);
      if (::mkdir(next.c_str(), 0755) == 0) {
        created.push_back(next);
      } else if (errno != EEXIST) {
        return fail(ErrnoStatus(errno, absl::StrCat("create cgroup ", next)));
      }
      dir = next;
    }
    cg->paths_ = {dir};
    cg->memory_dir_ = dir;
    cg->kill_dir_ = dir;
    cg->procs_dir_ = dir;
    auto set = [&](absl::string_view file, absl::string_view value) {
      return WriteControl(dir, file, value);
    };
    absl::Status s;
    if (spec.memory_bytes > 0) s.Update(set("memory.max", absl::StrCat(spec.memory_bytes)));
    if (s.ok() && spec.memory_swap == -1) s.Update(set("memory.swap.max", "max"));
    if (s.ok() && spec.memory_swap > 0) {
      int64_t swap = spec.memory_swap - std::max<int64_t>(spec.memory_bytes, 0);
      if (swap < 0) {
        s = absl::InvalidArgumentError("memory_swap is smaller than memory_bytes");
      } else {
        s.Update(set("memory.swap.max", absl::StrCat(swap)));
      }
    }
    if (s.ok() && spec.nano_cpus > 0) {
      constexpr int64_t kPeriod = 100000;
      s.Update(set("cpu.max",
                   absl::StrCat(std::max<int64_t>(spec.nano_cpus * kPeriod / 1000000000, 1000), " ",
                                kPeriod)));
    }
    if (s.ok() && spec.cpu_shares > 0) {
      // runc's conversion of shares [2, 262144] to weight [1, 10000].
      uint64_t shares = std::clamp<uint64_t>(spec.cpu_shares, 2, 262144);
      s.Update(set("cpu.weight", absl::StrCat(1 + ((shares - 2) * 9999) / 262142)));
    }
    if (s.ok() && spec.pids_limit > 0) s.Update(set("pids.max", absl::StrCat(spec.pids_limit)));
    if (s.ok() && !spec.cpuset_cpus.empty()) s.Update(set("cpuset.cpus", spec.cpuset_cpus));
    if (s.ok() && !spec.cpuset_mems.empty()) s.Update(set("cpuset.mems", spec.cpuset_mems));
    // v2 has no devices controller: the allow-list is an eBPF program.
    if (s.ok() && !allow_all_devices) s.Update(AttachDefaultDeviceFilter(dir));
    if (!s.ok()) return fail(s);
    return cg;
  }

  // v1: one directory per controller; co-mounted controllers share one.
  std::map<std::string, std::string> leaf_of_mount;  // mount point -> leaf dir
  for (const auto& [controller, mountpoint] : layout.v1) {
    static constexpr const char* kJoined[] = {"memory",  "cpu",   "cpuacct", "pids",
                                              "devices", "blkio", "freezer", "cpuset"};
    bool wanted = false;
    for (const char* c : kJoined) wanted |= controller == c;
    if (!wanted || leaf_of_mount.count(mountpoint)) continue;
    std::string leaf;
    absl::Status s = MakeCgroupDirs(mountpoint, rel_path,
                                    Exists(JoinPath(mountpoint, "cpuset.cpus")), &created, &leaf);
    if (!s.ok()) return fail(s);
    leaf_of_mount[mountpoint] = leaf;
    cg->paths_.push_back(leaf);
  }
  auto dir_of = [&](const char* controller) -> std::string {
    auto it = layout.v1.find(controller);
    if (it == layout.v1.end()) return "";
    auto leaf = leaf_of_mount.find(it->second);
    return leaf == leaf_of_mount.end() ? "" : leaf->second;
  };
  auto need = [&](const char* controller) -> absl::StatusOr<std::string> {
    std::string d = dir_of(controller);
    if (d.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the cgroup v1 controller \"", controller, "\" is not mounted"));
    }
    return d;
  };
  cg->memory_dir_ = dir_of("memory");
  cg->procs_dir_ =
      !dir_of("pids").empty() ? dir_of("pids") : (cg->paths_.empty() ? "" : cg->paths_[0]);

  absl::Status s;
  if (spec.memory_bytes > 0) {
    auto d = need("memory");
    s = d.ok() ? WriteControl(*d, "memory.limit_in_bytes", absl::StrCat(spec.memory_bytes))
               : d.status();
    if (s.ok() && spec.memory_swap != 0) {
      s = WriteControl(*d, "memory.memsw.limit_in_bytes",
                       spec.memory_swap < 0 ? "-1" : absl::StrCat(spec.memory_swap));
      if (!s.ok() && spec.memory_swap < 0 && absl::IsNotFound(s)) s = absl::OkStatus();
    }
  }
  if (s.ok() && (spec.nano_cpus > 0 || spec.cpu_shares > 0)) {
    auto d = need("cpu");
    if (!d.ok()) s = d.status();
    if (s.ok() && spec.nano_cpus > 0) {
      constexpr int64_t kPeriod = 100000;
      s = WriteControl(*d, "cpu.cfs_period_us", absl::StrCat(kPeriod));
      if (s.ok()) {
        s = WriteControl(
            *d, "cpu.cfs_quota_us",
            absl::StrCat(std::max<int64_t>(spec.nano_cpus * kPeriod / 1000000000, 1000)));
      }
    }
    if (s.ok() && spec.cpu_shares > 0) {
      s = WriteControl(*d, "cpu.shares", absl::StrCat(spec.cpu_shares));
    }
  }
  if (s.ok() && spec.pids_limit > 0) {
    auto d = need("pids");
    s = d.ok() ? WriteControl(*d, "pids.max", absl::StrCat(spec.pids_limit)) : d.status();
  }
  if (s.ok() && (!spec.cpuset_cpus.empty() || !spec.cpuset_mems.empty())) {
    auto d = need("cpuset");
    if (!d.ok()) s = d.status();
    if (s.ok() && !spec.cpuset_cpus.empty()) s = WriteControl(*d, "cpuset.cpus", spec.cpuset_cpus);
    if (s.ok() && !spec.cpuset_mems.empty()) s = WriteControl(*d, "cpuset.mems", spec.cpuset_mems);
  }
  if (s.ok()) {
    if (std::string d = dir_of("devices"); !d.empty()) {
      if (allow_all_devices) {
        s = WriteControl(d, "devices.allow", "a");
      } else {
        s = WriteControl(d, "devices.deny", "a");
        for (const DeviceRule& rule : kDefaultDeviceRules) {
          if (s.ok()) s = WriteControl(d, "devices.allow", V1Rule(rule));
        }
      }
    }
  }
  if (!s.ok()) return fail(s);

  // Hybrid: also join the (controller-less) unified hierarchy, for cgroup.kill.
  if (!layout.unified.empty()) {
    std::string leaf;
    absl::Status us = MakeCgroupDirs(layout.unified, rel_path, false, &created, &leaf);
    if (us.ok()) {
      cg->paths_.push_back(leaf);
      if (Exists(JoinPath(leaf, "cgroup.kill"))) cg->kill_dir_ = leaf;
    } else {
      PIER_LOG(WARNING) << "cgroup: unified hierarchy not used: " << us;
    }
  }
  return cg;
}

absl::StatusOr<CgroupEntry> OpenCgroupEntry(const CgroupLayout& layout,
                                            const std::vector<std::string>& dirs) {
  CgroupEntry entry;
  for (const std::string& dir : dirs) {
    const bool v2 = layout.version == CgroupVersion::kV2 ||
                    (!layout.unified.empty() &&
                     (dir == layout.unified || absl::StartsWith(dir, layout.unified + "/")));
    if (v2) {
      entry.v2_dir.Reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!entry.v2_dir.valid()) return ErrnoStatus(errno, absl::StrCat("open cgroup ", dir));
      continue;
    }
    std::string tasks = JoinPath(dir, "tasks");
    UniqueFd fd(::open(tasks.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", tasks));
    entry.v1_tasks.push_back(std::move(fd));
    entry.v1_dirs.push_back(dir);
  }
  return entry;
}

absl::Status Cgroup::AddProcess(pid_t pid) const {
  std::string value = absl::StrCat(pid);
  for (const std::string& dir : paths_) {
    RETURN_IF_ERROR(WriteControl(dir, "cgroup.procs", value));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<pid_t>> Cgroup::Pids() const {
  std::vector<pid_t> pids;
  if (procs_dir_.empty()) return pids;
  ASSIGN_OR_RETURN(std::string content, ReadFile(JoinPath(procs_dir_, "cgroup.procs")));
  for (absl::string_view line : absl::StrSplit(content, '\n', absl::SkipEmpty())) {
    int pid = 0;
    if (absl::SimpleAtoi(line, &pid) && pid > 0) pids.push_back(pid);
  }
  return pids;
}

absl::Status Cgroup::KillAll() const {
  bool used_kill_file = false;
  if (!kill_dir_.empty()) used_kill_file = WriteControl(kill_dir_, "cgroup.kill", "1").ok();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (int round = 0;; ++round) {
    auto pids = Pids();
    if (!pids.ok()) return absl::IsNotFound(pids.status()) ? absl::OkStatus() : pids.status();
    if (pids->empty()) return absl::OkStatus();
    if (!used_kill_file || round > 0) {
      for (pid_t pid : *pids) ::kill(pid, SIGKILL);
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("cgroup ", procs_dir_, ": ", pids->size(), " processes left after SIGKILL"));
    }
    // Killed tasks leave the cgroup as they exit; give them a moment.
    std::this_thread::sleep_for(std::chrono::milliseconds(round < 10 ? 1 : 10));
  }
}

absl::Status Cgroup::Destroy() {
  if (destroyed_) return absl::OkStatus();
  RETURN_IF_ERROR(KillAll());
  absl::Status result;
  for (const std::string& dir : paths_) {
    // An exiting task may keep the directory busy for a moment.
    for (int attempt = 0;; ++attempt) {
      if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) break;
      if (errno != EBUSY || attempt >= 500) {
        result.Update(ErrnoStatus(errno, absl::StrCat("remove cgroup ", dir)));
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (result.ok()) destroyed_ = true;
  return result;
}

bool Cgroup::OomKilled() const {
  if (memory_dir_.empty()) return false;
  if (version_ == CgroupVersion::kV2) {
    auto events = ReadFile(JoinPath(memory_dir_, "memory.events"));
    return events.ok() && KeyedValue(*events, "oom_kill") > 0;
  }
  auto control = ReadFile(JoinPath(memory_dir_, "memory.oom_control"));
  return control.ok() && KeyedValue(*control, "oom_kill") > 0;
}

}  // namespace pier::exec
