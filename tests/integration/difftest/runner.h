// The differential runner: draws a seeded sequence of operations, applies
// each to tree A (the filesystem under test) and tree B (the reference),
// and stops at the first step where results or resulting state differ.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "outcome.h"
#include "rng.h"

namespace difftest {

struct Options {
  std::string root_a, root_b;
  uint64_t seed = 1;
  uint64_t ops = 10000;
  uint64_t check_every = 50;  // full-tree comparison period, in steps
  // Every this many steps the kernel's dentry and inode caches are dropped
  // (root; 0: never), so that A's inodes are forgotten and read again: a
  // daemon with a small inode cache drops them in between.
  uint64_t drop_caches_every = 0;
  bool mmap = true;
  bool xattrs = true;
  bool rename_flags = true;
  bool fallocate = true;  // off only for peers without it (bindfs)
  // ACLs, inode flags, chown and operations by another user (root only).
  bool access = true;
  // Within access: POSIX ACLs and inode flags, each of which a peer may
  // lack alone (an NFSv4 mount carries neither, NFSv3 ACLs but no flags).
  bool acls = true;
  bool inode_flags = true;
  // B, tmpfs, is made to answer as ext4 where tmpfs lacks something
  // (FALLOC_FL_ZERO_RANGE: punch + extend) or differs from ext4 and sealfs
  // (write and ftruncate through a descriptor of a now-immutable file).
  // A gets the same only when asked, to self-test against tmpfs or bindfs.
  bool emulate_a = false;
  // A is an NFS mount. Its client renames a file that is unlinked or
  // renamed over while this client has it open to .nfsXXXX ("silly
  // rename") instead of removing the name, which no local filesystem does,
  // and a directory holding such a file cannot be removed. So before an
  // unlink or a rename onto a name, the open files that name is (on A) are
  // closed on both sides, a step of its own in the history; and no mmap
  // (a mapping keeps the file open). An NFSv4 client also refuses
  // open(O_RDONLY | O_TRUNC) of an existing file (EACCES), which Linux
  // filesystems truncate: no such open is drawn.
  bool nfs = false;
  bool trace = false;
  bool keep = false;          // leave the work trees after a clean run
  bool compare_only = false;  // no operations: compare existing work trees
  bool remove_only = false;   // no operations: remove the work trees
};

std::string reproduce_command(const Options& options, uint64_t ops);

class Runner {
 public:
  explicit Runner(const Options& options);
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // 0: A and B agreed at every step; 1: divergence (reported on stderr);
  // 2: the trees could not be set up.
  int run();

 private:
  static constexpr int kSlots = 6;
  struct Slot {
    bool used = false;
    int fd[2] = {-1, -1};
    int reader[2] = {-1, -1};  // read-only reopen of the same inode, for checks
    int flags = 0;
    std::string path;
    std::string label() const;
  };
  // One drawn operation. `run` is called once per side (0 = A, 1 = B).
  struct Step {
    std::string text;
    std::function<Outcome(int side)> run;
    std::function<void(const Outcome& a, const Outcome& b)> after;  // bookkeeping
    std::vector<std::string> paths;  // compared afterwards, with their parents
    int slot = -1;                   // open file compared afterwards
  };

  // Operation generators (ops.cc).
  Step draw();
  Step op_open();
  Step op_close(int slot);
  Step op_write(int slot, bool positional);
  Step op_read(int slot, bool positional);
  Step op_lseek(int slot);
  Step op_ftruncate(int slot);
  Step op_truncate();
  Step op_fallocate(int slot);
  Step op_fsync(int slot);
  Step op_fstat(int slot);
  Step op_mmap(int slot);
  Step op_unlink();
  Step op_rename();
  Step op_link();
  Step op_mkdir();
  Step op_rmdir();
  Step op_symlink();
  Step op_readlink();
  Step op_stat();
  Step op_readdir();
  Step op_chmod();
  Step op_setxattr();
  Step op_getxattr();
  Step op_listxattr();
  Step op_removexattr();
  // ops_access.cc
  Step op_chown();
  Step op_setacl();
  Step op_setflags();
  Step op_as_other_user(int slot);  // often on the file open in `slot` (if >= 0)

  std::string pick_path();
  std::string pick_dir();
  int pick_used_slot();
  off_t pick_offset(off_t size);
  size_t pick_length();
  off_t current_size(int slot);
  std::string at(int side, const std::string& rel) const;
  void open_readers(Slot& slot);
  void close_slot(Slot& slot);
  // --nfs: closes the open files and directories that `path` names on A,
  // before it goes.
  void close_before_removal(const std::string& path);

  // Checks and reporting (runner.cc).
  bool prepare_work_trees();
  std::string check_after(const Step& step);
  bool flag_precedence_only(const Step& step, const Outcome& a, const Outcome& b) const;
  void report(uint64_t step, const std::string& what, const std::string& detail);

  Options options_;
  Rng rng_;
  std::string work_[2];
  Slot slots_[kSlots];
  std::deque<std::string> history_;
  uint64_t flag_precedence_ = 0;  // results accepted by flag_precedence_only()
};

}  // namespace difftest
