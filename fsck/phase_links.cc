// Phase 7 (link counts) and phase 8 (the orphan list and unlinked inodes).
//
// fsck runs offline: no process holds an inode open, so every inode that
// has no name is freed here, whether or not it made it onto the orphan list
// (the daemon would free it at its next mount anyway).
#include <sys/stat.h>

#include <set>
#include <string>

#include "fsck/context.h"
#include "meta/inode.h"

namespace sealfs::fsck {

namespace {

void set_nlink(Context& ctx, uint64_t ino, uint32_t nlink) {
  format::DiskInode disk = ctx.image.read_inode(ino);
  disk.nlink.set(nlink);
  ctx.image.write_inode(ino, disk);
  ctx.inodes[ino].nlink = nlink;
}

void clear_orphan_state(Context& ctx, uint64_t ino) {
  format::DiskInode disk = ctx.image.read_inode(ino);
  disk.flags.set(disk.flags.get() & ~uint32_t{format::kInodeOrphan});
  disk.orphan_next.set(0);
  ctx.image.write_inode(ino, disk);
}

}  // namespace

void check_links(Context& ctx) {
  for (uint64_t ino : ctx.inodes.numbers()) {
    const InodeState& st = ctx.inodes[ino];
    if (!st.used) continue;
    if (st.refs == 0 && ino != format::kRootIno) continue;  // unlinked: phase 8
    uint64_t want = S_ISDIR(st.mode) ? 2 + uint64_t{st.subdirs} : st.refs;
    if (want > UINT32_MAX) want = UINT32_MAX;
    if (st.nlink != want) {
      ctx.problem(Phase::kLinks, "wrong_nlink", ino,
                  ctx.fix((S_ISDIR(st.mode) ? "directory '" + ctx.dir_path(ino) + "': " : "") +
                              std::string("link count ") + std::to_string(st.nlink) +
                              ", should be " + std::to_string(want),
                          "fixed", "fix it"));
      set_nlink(ctx, ino, static_cast<uint32_t>(want));
    }
  }
}

void check_orphans(Context& ctx) {
  std::set<uint64_t> listed;
  std::vector<uint64_t> order;
  uint64_t cur = ctx.sb.orphan_head;
  uint64_t prev = 0;
  bool cut = false;
  while (cur != 0) {
    std::string bad;
    if (!ctx.used(cur)) {
      bad = "names free or out-of-range inode " + std::to_string(cur);
    } else if (listed.count(cur) != 0) {
      bad = "loops back to inode " + std::to_string(cur);
    }
    if (!bad.empty()) {
      ctx.problem(Phase::kOrphans, "orphan_list_broken", prev,
                  ctx.fix("orphan list " + bad, "list cut there", "cut the list there"));
      cut = true;
      break;
    }
    listed.insert(cur);
    order.push_back(cur);
    prev = cur;
    cur = ctx.image.read_inode(cur).orphan_next.get();
  }
  ctx.report.counts.orphans = order.size();

  bool list_changed = cut;
  for (uint64_t ino : order) {
    InodeState& st = ctx.inodes[ino];
    if (st.refs > 0) {
      ctx.problem(Phase::kOrphans, "orphan_linked", ino,
                  ctx.fix("on the orphan list but has " + std::to_string(st.refs) + " name(s)",
                          "taken off the list", "take it off the list"));
      clear_orphan_state(ctx, ino);
    } else if (ctx.sb.state == format::kStateMounted && !ctx.repair()) {
      // After a crash this is expected, as committed transactions waiting
      // for replay are: an inode unlinked while still open (or still known
      // to the kernel) waits on the list for the next mount to free it.
      ctx.report.note(Phase::kOrphans, "orphan_pending",
                      "inode " + std::to_string(ino) +
                          ": unlinked, left on the orphan list by a crash; the next mount or -y "
                          "frees it");
      free_inode(ctx, ino);
    } else {
      ctx.problem(Phase::kOrphans, "orphan_pending", ino,
                  ctx.fix("unlinked inode on the orphan list not yet freed", "freed",
                          "free it"));
      free_inode(ctx, ino);
    }
    list_changed = true;
  }
  if (list_changed) {
    // Offline, every orphan is either freed or linked again: the list ends
    // up empty.
    ctx.sb.orphan_head = 0;
    ctx.superblock_changed();
  }
  for (uint64_t ino : ctx.inodes.numbers()) {
    InodeState& st = ctx.inodes[ino];
    if (!st.used || listed.count(ino) != 0) continue;
    format::DiskInode disk = ctx.image.read_inode(ino);
    bool flagged = (disk.flags.get() & format::kInodeOrphan) != 0;
    if (st.refs == 0 && ino != format::kRootIno && !st.reachable) {
      ctx.problem(Phase::kOrphans, "unlinked_inode", ino,
                  ctx.fix(std::string("inode with no name") +
                              (flagged ? " flagged orphan but not on the list"
                                       : " and link count 0"),
                          "freed", "free it"));
      free_inode(ctx, ino);
      continue;
    }
    if (flagged || disk.orphan_next.get() != 0) {
      ctx.problem(Phase::kOrphans, "orphan_flag", ino,
                  ctx.fix("linked inode marked as an orphan", "mark cleared",
                          "clear the mark"));
      clear_orphan_state(ctx, ino);
    }
  }
}

}  // namespace sealfs::fsck
