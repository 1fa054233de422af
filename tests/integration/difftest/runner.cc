// The step loop, the state checks after each step, and the divergence report.
#include "runner.h"

#include <fcntl.h>
#include <ftw.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "state.h"

namespace difftest {
namespace {

constexpr size_t kHistory = 24;
const char* const kWorkName = "difftest.work";

int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  remove(path);
  return 0;
}

void remove_tree(const std::string& path) {
  clear_inode_flags_under(path);  // an immutable or append-only file cannot go
  nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

std::string parent_of(const std::string& rel) {
  size_t slash = rel.rfind('/');
  return slash == std::string::npos ? std::string() : rel.substr(0, slash);
}

// Asks the kernel to drop its dentries and inodes (FORGETs to A's daemon
// for every inode nothing holds); a failure ends the run, since the option
// would test nothing.
void drop_kernel_caches() {
  ::sync();
  int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  if (fd < 0 || ::write(fd, "2", 1) != 1) {
    std::perror("difftest: --drop-caches-every: /proc/sys/vm/drop_caches");
    std::exit(2);
  }
  ::close(fd);
}

}  // namespace

std::string reproduce_command(const Options& options, uint64_t ops) {
  std::string cmd = "difftest --a '" + options.root_a + "' --b '" + options.root_b +
                    "' --seed " + std::to_string(options.seed) + " --ops " + std::to_string(ops);
  if (options.check_every != Options{}.check_every) {
    cmd += " --check-every " + std::to_string(options.check_every);
  }
  if (options.drop_caches_every != 0) {
    cmd += " --drop-caches-every " + std::to_string(options.drop_caches_every);
  }
  if (!options.mmap) cmd += " --no-mmap";
  if (!options.xattrs) cmd += " --no-xattrs";
  if (!options.rename_flags) cmd += " --no-rename-flags";
  if (!options.fallocate) cmd += " --no-fallocate";
  if (!options.access) {
    cmd += " --no-access";
  } else {
    if (!options.acls) cmd += " --no-acls";
    if (!options.inode_flags) cmd += " --no-inode-flags";
  }
  if (options.emulate_a) cmd += " --emulate-a";
  if (options.nfs) cmd += " --nfs";
  return cmd;
}

Runner::Runner(const Options& options) : options_(options), rng_(options.seed) {
  work_[0] = options.root_a + "/" + kWorkName;
  work_[1] = options.root_b + "/" + kWorkName;
}

Runner::~Runner() {
  for (Slot& slot : slots_) close_slot(slot);
}

std::string Runner::at(int side, const std::string& rel) const {
  return rel.empty() ? work_[side] : work_[side] + "/" + rel;
}

void Runner::open_readers(Slot& slot) {
  for (int side = 0; side < 2; ++side) {
    struct stat st {};
    if (fstat(slot.fd[side], &st) != 0 || !S_ISREG(st.st_mode)) continue;
    // Reopening through /proc reaches the inode even after its last name is
    // gone, and works for write-only descriptors too.
    std::string self = "/proc/self/fd/" + std::to_string(slot.fd[side]);
    slot.reader[side] = open(self.c_str(), O_RDONLY | O_CLOEXEC);
  }
}

void Runner::close_slot(Slot& slot) {
  for (int side = 0; side < 2; ++side) {
    if (slot.reader[side] >= 0) close(slot.reader[side]);
    if (slot.fd[side] >= 0) close(slot.fd[side]);
    slot.reader[side] = slot.fd[side] = -1;
  }
  slot.used = false;
}

void Runner::close_before_removal(const std::string& path) {
  if (!options_.nfs) return;
  struct stat target {};
  // A removed file's descriptor keeps working through NFS (the client renames
  // the file aside while it is open), but only close-to-open; a removed
  // directory's answers ESTALE (no such rename for directories).
  if (lstat(at(0, path).c_str(), &target) != 0 ||
      !(S_ISREG(target.st_mode) || S_ISDIR(target.st_mode))) {
    return;
  }
  for (Slot& slot : slots_) {
    struct stat open_file {};
    if (!slot.used || slot.fd[0] < 0 || fstat(slot.fd[0], &open_file) != 0) continue;
    if (open_file.st_dev != target.st_dev || open_file.st_ino != target.st_ino) continue;
    std::string line = "close(" + slot.label() + ") [--nfs: before " + path + " goes]";
    if (options_.trace) std::fprintf(stderr, "%s\n", line.c_str());
    history_.push_back(std::move(line));
    if (history_.size() > kHistory) history_.pop_front();
    close_slot(slot);
  }
}

bool Runner::prepare_work_trees() {
  for (int side = 0; side < 2; ++side) {
    struct stat st {};
    const std::string& root = side == 0 ? options_.root_a : options_.root_b;
    if (stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      std::fprintf(stderr, "difftest: %s is not a directory\n", root.c_str());
      return false;
    }
    if (options_.compare_only) continue;
    remove_tree(work_[side]);
    if (options_.remove_only) continue;
    if (mkdir(work_[side].c_str(), 0755) != 0) {
      std::perror(("difftest: mkdir " + work_[side]).c_str());
      return false;
    }
  }
  return true;
}

std::string Runner::check_after(const Step& step) {
  std::string diff;
  if (step.slot >= 0 && slots_[step.slot].used) {
    const Slot& slot = slots_[step.slot];
    diff = compare_open_files(slot.fd[0], slot.fd[1], slot.reader[0], slot.reader[1]);
    if (!diff.empty()) return "file open as " + slot.label() + ": " + diff;
  }
  for (const std::string& path : step.paths) {
    for (const std::string& rel : {path, parent_of(path)}) {
      diff = compare_node(at(0, rel), at(1, rel), rel, options_.xattrs, options_.acls,
                              options_.inode_flags);
      if (!diff.empty()) return diff;
    }
  }
  return diff;
}

// Both sides refused, B with EPERM for an immutable or append-only inode,
// A with the error the kernel finds first on a FUSE inode, whose flags it
// does not know (unlink of a directory: EISDIR before EPERM; rename over a
// file: ENOTDIR; docs/daemon.md "Inode flags"). Which error comes first is all that differs; the state
// comparison after the step still runs.
bool Runner::flag_precedence_only(const Step& step, const Outcome& a, const Outcome& b) const {
  if (a.ret >= 0 || b.ret >= 0 || b.err != EPERM) return false;
  // Only the checks the kernel makes before a FUSE request: the type of
  // what a name holds, and a default ACL on a non-directory (EACCES).
  if (a.err != EISDIR && a.err != ENOTDIR && a.err != EEXIST && a.err != EACCES) return false;
  constexpr int kRefusing = FS_IMMUTABLE_FL | FS_APPEND_FL;
  for (const std::string& path : step.paths) {
    // The name itself, and what it leads to for a call that follows a final
    // symlink (setxattr of a default ACL through a symlink to an immutable
    // file: EPERM on B, EACCES on A; difftest --seed 22 --ops 4400 with
    // allow_other,default_permissions); the parent as the path walk reaches
    // it: through a symlink too.
    if (inode_flag_bits(at(1, path), false) & kRefusing) return true;
    if (inode_flag_bits(at(1, path), true) & kRefusing) return true;
    if (inode_flag_bits(at(1, parent_of(path)), true) & kRefusing) return true;
  }
  return false;
}

void Runner::report(uint64_t step, const std::string& what, const std::string& detail) {
  std::fprintf(stderr, "\nDIVERGENCE at step %llu (seed %llu)\n",
               static_cast<unsigned long long>(step),
               static_cast<unsigned long long>(options_.seed));
  std::fprintf(stderr, "  %s\n  %s\n", what.c_str(), detail.c_str());
  std::fprintf(stderr, "  recent steps (result on A):\n");
  for (const std::string& line : history_) std::fprintf(stderr, "    %s\n", line.c_str());
  std::fprintf(stderr, "  trees left for inspection: %s %s\n", work_[0].c_str(),
               work_[1].c_str());
  std::fprintf(stderr, "  reproduce: %s --trace\n",
               reproduce_command(options_, step).c_str());
}

int Runner::run() {
  if (!prepare_work_trees()) return 2;
  if (options_.remove_only) return 0;
  if (options_.compare_only) {
    std::string diff = compare_tree(work_[0], work_[1], "", options_.xattrs, options_.acls,
                              options_.inode_flags);
    if (!diff.empty()) {
      std::fprintf(stderr, "DIVERGENCE between existing trees:\n  %s\n", diff.c_str());
      return 1;
    }
    return 0;
  }

  for (uint64_t n = 1; n <= options_.ops; ++n) {
    Step step = draw();
    Outcome a = step.run(0);
    Outcome b = step.run(1);
    if (step.after) step.after(a, b);
    const bool precedence = !(a == b) && flag_precedence_only(step, a, b);
    flag_precedence_ += precedence ? 1 : 0;
    std::string line = std::to_string(n) + ": " + step.text + " -> " + describe(a);
    if (precedence) line += " [B: EPERM for a flag]";
    if (options_.trace) std::fprintf(stderr, "%s\n", line.c_str());
    history_.push_back(std::move(line));
    if (history_.size() > kHistory) history_.pop_front();

    if (!(a == b) && !precedence) {
      report(n, "result of " + step.text, describe_difference(a, b));
      return 1;
    }
    std::string diff = check_after(step);
    if (diff.empty() && n % options_.check_every == 0) {
      diff = compare_tree(work_[0], work_[1], "", options_.xattrs, options_.acls,
                              options_.inode_flags);
    }
    if (!diff.empty()) {
      report(n, "state after " + step.text, diff);
      return 1;
    }
    if (options_.drop_caches_every != 0 && n % options_.drop_caches_every == 0) {
      drop_kernel_caches();
    }
    if (n % 100000 == 0) {
      std::fprintf(stderr, "difftest: %llu ops, no divergence so far\n",
                   static_cast<unsigned long long>(n));
    }
  }

  // Last names gone and descriptors closed: orphans must have vanished too.
  for (Slot& slot : slots_) close_slot(slot);
  std::string diff = compare_tree(work_[0], work_[1], "", options_.xattrs, options_.acls,
                              options_.inode_flags);
  if (!diff.empty()) {
    report(options_.ops, "state after closing every file", diff);
    return 1;
  }
  if (flag_precedence_ != 0) {
    std::fprintf(stderr,
                 "difftest: %llu refusals differed only in which error came first "
                 "(EPERM for a flag on B)\n",
                 static_cast<unsigned long long>(flag_precedence_));
  }
  if (!options_.keep) {
    remove_tree(work_[0]);
    remove_tree(work_[1]);
  }
  return 0;
}

}  // namespace difftest
