// Shared state of one fsck pass: the image, the report, and what the phases
// learned about every inode. Internal to fsck/.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "alloc/allocator.h"
#include "alloc/holder_table.h"
#include "fsck/checker.h"
#include "fsck/image.h"
#include "fsck/inode_states.h"
#include "fsck/report.h"
#include "media/journal.h"
#include "media/superblock.h"
#include "meta/extent_map.h"
#include "sealfs/format.h"

namespace sealfs::fsck {

struct EntryRef {
  uint64_t dir = 0;
  uint64_t region_block = 0;
  uint16_t offset = 0;
};

struct InodeState {
  bool used = false;  // decoded and in use (mode != 0)
  uint32_t mode = 0;
  uint32_t nlink = 0;
  // `u` of the slot holds bytes, not extents: an inline symlink's target or
  // an inline file's data (kInodeInlineData). Phase 4 never rewrites the
  // block map of such an inode (store_layout would zero `u`).
  bool bytes_in_slot = false;
  // Its slot failed only its crc and was kept (inode_salvage.cc): it loses
  // every cross-link (one with another kept inode too) and is cleared by
  // one, or by a name whose type disagrees with its mode.
  bool salvaged = false;
  // Unlinked with its blocks already freed (slot_unlinked): a symlink whose
  // target's block is gone. Phase 6 removes a name of it (damage: the daemon
  // frees the blocks only after the last name went), so phase 8 frees it in
  // the same run.
  bool blocks_freed = false;
  // Phase 4: the layout as it stands after repairs.
  std::vector<Extent> extents;
  std::vector<uint64_t> chain;  // overflow blocks, in order
  uint64_t xattr_block = 0;              // the inode's xattr_block
  std::vector<uint64_t> xattr_blocks;    // phase 4: its whole chain, in order
  // Phase 6: the namespace.
  uint32_t refs = 0;     // directory entries naming this inode
  uint32_t subdirs = 0;  // directories: entries naming subdirectories
  uint64_t parent = 0;   // directories: the directory holding their entry
  EntryRef parent_entry;
  bool reachable = false;
  std::vector<uint64_t> children;  // directories: inodes their entries name
};

// Blocks an inode cleared in phase 3 may have owned: [start, start+count).
struct ClearedRange {
  uint64_t start = 0, count = 0, ino = 0;
};

struct Context {
  Context(Image& img, Report& rep, const FsckOptions& o) : image(img), report(rep), opt(o) {}
  Image& image;
  Report& report;
  const FsckOptions& opt;
  Superblock sb;
  SparseStates<InodeState> inodes;  // inodes in use (and those phases freed)
  // Phase 3: what the map of each inode it cleared seems to hold, read as
  // far as it decodes. Their bitmap bits stay set until phase 5, so an
  // inode kept after a bad crc could pass its checks with these blocks:
  // phase 4 makes it lose them as it loses a cross-link.
  std::vector<ClearedRange> cleared_maps;
  // Phase 6: the name of each directory's entry in its parent, for paths.
  std::unordered_map<uint64_t, std::string> dir_names;
  // "/a/b" for a directory whose parent pointers (found in phase 6) lead to
  // the root, else "(directory inode N)/b" from the last one known.
  std::string dir_path(uint64_t dir) const;

  bool used(uint64_t ino) const {
    const InodeState* st = inodes.find(ino);
    return st != nullptr && st->used;
  }

  const Geometry& geo() const { return image.geo(); }
  bool repair() const { return opt.repair; }
  void problem(Phase phase, std::string kind, uint64_t ino, std::string detail,
               bool fixable = true, std::vector<std::pair<std::string, uint64_t>> values = {}) {
    report.add(phase, std::move(kind), ino, std::move(detail), fixable && opt.repair,
               std::move(values));
  }
  // The text of a repair: what was done with -y, what would be done with -n
  // (which changes nothing, so never says "cleared" or "freed").
  std::string fix(const std::string& what, const std::string& done,
                  const std::string& would) const {
    return what + "; " + (opt.repair ? done : "would " + would);
  }
  void progress(Phase phase, uint64_t done, uint64_t total) const {
    if (opt.progress) opt.progress(phase, done, total);
  }
  void superblock_changed();  // re-encodes `sb` into block 0 of the overlay
};

// Phase 2 (phase_journal.cc). Repair: opens the journal, replaying what is
// committed (past damaged transactions too) or resetting an unusable one, and
// returns it for the overlay's commits. Check: writes nothing, lays what
// replay would write over the overlay so the later phases check the replayed
// state, and returns nullptr. An error is operational.
Result<std::unique_ptr<Journal>> check_journal(Context& ctx, Region& region);

// Phases 3..8 (phase 1 lives in checker.cc).
void check_inodes(Context& ctx);
void check_extents(Context& ctx);
void check_bitmap(Context& ctx);
void check_directories(Context& ctx);
void check_links(Context& ctx);
void check_orphans(Context& ctx);

// Phase 4's extended attributes (xattr_repair.cc): reads the inode's store
// into st.xattr_blocks, reports what does not check and, with -y, repairs
// it; true when the inode or its store changed. Sets *chains when the store
// is a chain (the superblock must carry the feature).
bool check_inode_xattrs(Context& ctx, uint64_t ino, InodeState& st, bool* chains);

// Phase 3 (inode_salvage.cc): why a slot that fails its crc cannot be kept,
// or "" when every field something else on the image vouches for checks;
// `slot` is then what to keep (resealed, bytes nothing reads zeroed), and
// `corrected` says what was set from what vouches for it ("" if nothing).
std::string salvage_blocker(Context& ctx, uint64_t ino, format::DiskInode& slot,
                            std::string* corrected);

// Phase 5 (holder_salvage.cc): a holder table block that fails its checks
// is reported and rewritten with only the entries that still parse and whose
// holder is alive; returns those, whose blocks stay referenced.
std::vector<QuarantineEntry> salvage_holder_block(
    Context& ctx, uint64_t index, const std::function<bool(uint32_t, uint64_t)>& alive);
// The holder table as the image (with its repairs so far) has it; a block
// that fails its checks has its slots marked unusable (phase 5 repairs it).
Result<HolderTable> load_holder_table(Context& ctx);

// Shared helpers (layout.cc).
// Rewrites the inode's extents (inline, then the overflow blocks in
// `chain`, allocating more from the bitmap only when may_allocate) and its
// block count; surplus chain blocks are freed in the bitmap. Extents that
// fit nowhere are dropped (returns false then).
bool store_layout(Context& ctx, uint64_t ino, std::vector<Extent> extents,
                  std::vector<uint64_t> chain, bool may_allocate);
// Frees the inode: its blocks in the bitmap, then the slot (mode 0, the
// generation kept for the next reuse).
void free_inode(Context& ctx, uint64_t ino);
// Frees an inode found damaged: as free_inode, with the generation one
// above, so that a handle to what was there never matches the next inode.
void clear_inode(Context& ctx, uint64_t ino);
uint64_t expected_blocks(const InodeState& st);

}  // namespace sealfs::fsck
