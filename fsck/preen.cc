#include "fsck/preen.h"

#include <array>

namespace sealfs::fsck {

bool preen_safe(std::string_view kind) {
  // Kept in step with the "preen" column of docs/fsck.md.
  static constexpr std::array<std::string_view, 15> kSafe = {
      "backup_superblock_bad",    // rewritten from a primary that verifies
      "journal_replayed",         // what mount does
      "journal_header_slot_bad",  // the standby slot, from the current header
      "block_count",              // the blocks the inode maps
      "used_but_free",            // bits set under blocks an inode references
      "leaked_blocks",            // bits cleared where nothing references
      "bitmap_tail",              // bits past the data area
      "stale_holder",             // the holder process is gone
      "entry_type",               // the DT_* hint, from the inode's mode
      "wrong_nlink",              // the names counted
      "orphan_pending",           // what mount does
      "orphan_linked",            // taken off the list, kept
      "unlinked_inode",           // no name, link count 0: what mount does
      "orphan_flag",              // the mark on a linked inode
      "overflow_empty",           // an extent block that maps nothing, unlinked
  };
  for (std::string_view safe : kSafe) {
    if (kind == safe) return true;
  }
  return false;
}

}  // namespace sealfs::fsck
