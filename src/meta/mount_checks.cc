// Mount-time checks that compare what the mount decoded with itself
// (issue 8, items 5 and 6): the block bitmap against every block referent,
// and link counts against the names found by the directory pass. Both run on
// read-only mounts too: a damaged bitmap or a short link count means the
// image is not what the journal wrote, and nothing of it is served.
#include <sys/stat.h>

#include <chrono>

#include "meta/block_references.h"
#include "meta/filesystem_impl.h"
#include "util/log.h"

namespace sealfs {

namespace {

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

Status FilesystemImpl::check_block_references() {
  const auto start = std::chrono::steady_clock::now();
  using Kind = BlockReferent::Kind;
  // Quarantined extents belong to the holder table, not to a file. Pins are
  // left out: their blocks are still in their file's extent map.
  const std::vector<QuarantineEntry> quarantine = alloc_->quarantine_entries();
  const XattrBlockReader xattr_reader = xattr_block_reader();
  auto referents = [&](const std::function<void(const BlockReferent&)>& emit) {
    for_each_used_inode_verifying([&](uint64_t ino) {
      Inode& inode = *slot(ino);
      // Readers may hold it too; writers wait for the verifier.
      ReaderLock lock(inode.mu);
      for (const auto& [file_block, e] : inode.extents) {
        emit({Kind::kExtent, ino, 0, {e.region_block, e.length}});
      }
      for (const auto& link : inode.chain.links()) {
        emit({Kind::kExtentBlock, ino, 0, {link.region_block, 1}});
      }
      if (inode.core.xattr_block != 0) {
        for (uint64_t b : xattr_chain_blocks(inode.core.xattr_block, ino, xattr_reader)) {
          emit({Kind::kXattrBlock, ino, 0, {b, 1}});
        }
      }
    });
    for (const QuarantineEntry& q : quarantine) {
      emit({Kind::kQuarantine, q.ino, q.holder.pid, q.extent});
    }
  };
  ASSIGN_OR_RETURN(BlockCheckCounts counts,
                   cross_check_block_bitmap(geo_.data_start, geo_.data_blocks,
                                            alloc_->allocated_bits(), referents));
  log().info("mount: block bitmap cross-checked: {} block(s) referenced, {:.1f} ms",
             counts.referenced_blocks, ms_since(start));
  if (counts.leaked_blocks != 0) {
    log().warn("mount: {} block(s) marked used in the bitmap belong to nothing; they stay "
               "allocated until fsck.sealfs -y frees them",
               counts.leaked_blocks);
  }
  return Status::ok();
}

Status FilesystemImpl::check_link_counts(const std::vector<uint32_t>& names,
                                         const std::vector<uint32_t>& subdirs) {
  const auto start = std::chrono::steady_clock::now();
  uint64_t above = 0, first_above = 0;
  Status bad;
  for_each_used_inode_verifying([&](uint64_t ino) {
    if (!bad.is_ok()) return;
    Inode& inode = *slot(ino);
    ReaderLock lock(inode.mu);
    const InodeCore c = inode.core;
    uint64_t want = names[ino];
    if (S_ISDIR(c.mode)) {
      const uint32_t max_names = ino == format::kRootIno ? 0 : 1;
      if (names[ino] > max_names) {
        bad = Status(Code::kCorruption, "directory " + std::to_string(ino) + " has " +
                                             std::to_string(names[ino]) +
                                             " name(s); run fsck.sealfs");
        return;
      }
      // A removed directory still open has no name and link count 0.
      const bool named = names[ino] > 0 || ino == format::kRootIno;
      want = named ? 2 + uint64_t{subdirs[ino]} : 0;
    }
    if (c.nlink < want) {
      // Served as is, the inode would be freed (at its last close, at
      // unmount, or as an orphan) while names still point at it.
      bad = Status(Code::kCorruption,
                   "inode " + std::to_string(ino) + ": link count " + std::to_string(c.nlink) + " but " +
                        (S_ISDIR(c.mode) ? "a directory with " + std::to_string(subdirs[ino]) +
                                               " subdirectories needs " + std::to_string(want)
                                         : std::to_string(want) + " name(s) point at it") +
                        "; run fsck.sealfs");
      return;
    }
    if (c.nlink > want && above++ == 0) first_above = ino;
  });
  RETURN_IF_ERROR(bad);
  log().info("mount: link counts checked against names, {:.1f} ms", ms_since(start));
  if (above != 0) {
    log().warn("mount: {} inode(s) have a link count above their names (first: inode {}); "
               "they are never freed until fsck.sealfs -y sets the count",
               above, first_above);
  }
  return Status::ok();
}

}  // namespace sealfs
