// Mount verification: what a mount reads and checks before it trusts the
// image (every inode slot and overflow chain, the block bitmap against every
// referent, link counts against names, parent links), then the repairs that
// need a verified image (orphans freed, blocks beyond EOF trimmed).
//
// It runs before the mount is live, or, with MountOptions::background_verify,
// on a thread after it (docs/design.md, "Mount"). Until it finishes:
// - an inode first touched is read from its slot by the inode table
//   (load_on_demand), with the checks the verifier applies, exactly once;
// - every metadata change waits in check_writable() -> await_verified(), so
//   nothing is allocated, freed or relinked on an image not yet checked;
// - damage found makes the mount read-only for good, stamps the region
//   "needs check", and an inode that could not be read answers EIO.
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <string_view>
#include <unordered_set>

#include "meta/filesystem_impl.h"
#include "meta/mount_verifier.h"
#include "util/log.h"

namespace sealfs {

namespace {

// What the verifier returns when it gives up for an unmount; noted, so that
// damage found while the unmount waited is still damage.
Status stopped_status(MountVerifier& v) {
  v.gave_up = true;
  return Status(Code::kBusy, "unmounted before the mount was verified");
}

}  // namespace

void FilesystemImpl::load_on_demand(Inode& inode, bool evicted) {
  MountVerifier& v = *verifier_;
  // An inode the cache dropped (only once verified) is read whatever the
  // mount found in its slot: it was written, maybe since the mount, or it
  // was a slot never used (a file handle's number, say), still all zeros.
  if (evicted) {
    format::DiskInode disk{};
    std::memcpy(&disk, region_->data() + inode_offset(geo_, inode.ino), sizeof(disk));
    if (slot_is_zero(disk)) return;
  } else {
    if (!v.loading.load(std::memory_order_acquire)) return;
    const uint64_t at = inode_offset(geo_, inode.ino);
    const auto& ranges = v.table_data;
    // Ranges are sorted and disjoint: the last one starting at or before `at`.
    auto it = std::upper_bound(
        ranges.begin(), ranges.end(), at,
        [](uint64_t off, const Region::ByteRange& r) { return off < r.offset; });
    if (it == ranges.begin()) return;
    --it;
    if (at >= it->offset + it->length) return;  // a hole: zeros, not read
    format::DiskInode disk{};
    std::memcpy(&disk, region_->data() + at, sizeof(disk));
    if (slot_is_zero(disk)) return;
  }
  Status s = load_inode(inode);
  if (s.is_ok()) return;
  // Nothing of it is kept, so no path can serve it; live() answers EIO.
  log().error("inode {}: {}", inode.ino, s.to_string());
  inode.load_failed = true;
  inode.core = InodeCore{};
  inode.extents.clear();
  inode.chain.clear();
  inode.inline_bytes.clear();
}

Status FilesystemImpl::unreadable_inode(Ino ino) const {
  return Status(Code::kIoError, "inode " + std::to_string(ino) +
                                    " is damaged on the media and is not served; run fsck.sealfs");
}

Status FilesystemImpl::describe_load_failure(Ino ino) {
  Inode scratch(ino);
  Status s = load_inode(scratch);
  return s.is_ok() ? unreadable_inode(ino) : s;
}

Status FilesystemImpl::load_inode_table() {
  MountVerifier& v = *verifier_;
  std::vector<uint64_t> used(bit_words::words_for(geo_.inode_count + 1), 0);  // numbers 0..count
  bit_words::set(used, 0);  // inode 0 does not exist
  uint64_t count = 0;
  Status first_bad;
  // Only the parts of the table that hold data: a slot never written since
  // mkfs is a hole in a sparse region file and reads as zero (free), and an
  // empty region's mount then reads (on tmpfs: allocates) nothing of its
  // table. A devdax region has no holes and is read whole.
  const uint64_t table = inode_offset(geo_, 1);
  for (const Region::ByteRange& r : v.table_data) {
    const uint64_t first = (r.offset - table) / format::kInodeSize + 1;
    const uint64_t last = std::min(
        geo_.inode_count, (r.offset + r.length - table + format::kInodeSize - 1) / format::kInodeSize);
    for (uint64_t ino = first; ino <= last; ++ino) {
      if (ino % 4096 == 0 && v.stop.load(std::memory_order_relaxed)) {
        return first_bad.is_ok() ? stopped_status(v) : first_bad;
      }
      format::DiskInode disk{};
      std::memcpy(&disk, region_->data() + inode_offset(geo_, ino), sizeof(disk));
      if (slot_is_zero(disk)) continue;
      // Read here, or already by a lookup (load_on_demand): once either way.
      Inode* inode = slot(ino);
      if (inode->load_failed) {
        // Every other inode is still read: they are served while the mount
        // stays up read-only.
        if (first_bad.is_ok()) first_bad = describe_load_failure(ino);
        continue;
      }
      ReaderLock lock(inode->mu);
      if (inode->in_use()) {
        bit_words::set(used, ino);
        ++count;
      }
    }
  }
  MutexLock lock(ialloc_mu_);
  inode_used_.swap(used);
  used_inodes_ = count;
  return first_bad;
}

// Counts the names pointing at each inode and the subdirectories of `dir`,
// and sets each subdirectory's parent link (for "..", rename loop checks).
Status FilesystemImpl::count_directory_names(Inode& dir, std::vector<uint32_t>& names,
                                             std::vector<uint32_t>& subdirs) {
  ReaderLock lock(dir.mu);
  const uint64_t ino = dir.ino;
  std::unordered_set<std::string_view> seen;  // this directory's names
  for (const auto& [fb, e] : dir.extents) {
    for (uint64_t i = 0; i < e.length; ++i) {
      const std::byte* b = region_->data() + block_offset(e.region_block + i);
      Status s = dir_block_verify(b, ino);
      if (!s.is_ok()) return s.with_context("directory " + std::to_string(ino));
      Status bad;
      dir_block_for_each(b, [&](const DirBlockEntry& de) {
        if (!bad.is_ok()) return;
        bad = dir_entry_check(de, geo_.inode_count);
        if (!bad.is_ok()) return;
        Inode* child = slot(de.ino);
        // A child's mode changes only after check_writable(), which waits
        // for the verifier: read without its lock.
        const uint32_t mode = child != nullptr ? mode_while_verifying(*child) : 0;
        if (mode == 0 || de.ino >= names.size()) {
          bad = dir_entry_damage(de, "names free inode " + std::to_string(de.ino));
          return;
        }
        if (de.type != dtype_for_mode(mode)) {
          bad = dir_entry_damage(de, "has type " + std::to_string(de.type) + ", inode " +
                                         std::to_string(de.ino) + " is of type " +
                                         std::to_string(dtype_for_mode(mode)));
          return;
        }
        // Names point into the region, which outlives the set.
        if (!seen.insert(de.name).second) {
          bad = dir_entry_damage(de, "a second entry of this name");
          return;
        }
        ++names[de.ino];
        if (S_ISDIR(mode_while_verifying(*child))) {
          child->parent = ino;
          ++subdirs[ino];
        }
      });
      if (!bad.is_ok()) return bad.with_context("directory " + std::to_string(ino));
    }
  }
  return Status::ok();
}

Status FilesystemImpl::verify_image(FsckLikeStats* stats) {
  MountVerifier& v = *verifier_;
  auto stopping = [&] { return v.stop.load(std::memory_order_relaxed); };
  RETURN_IF_ERROR(load_inode_table());
  if (stopping()) return stopped_status(v);
  RETURN_IF_ERROR(check_block_references());
  if (stopping()) return stopped_status(v);
  // Indexed by inode number, up to the highest in use: a name pointing
  // higher points at a free inode and fails the check.
  uint64_t highest_used = 0;
  for_each_used_inode_verifying([&](uint64_t ino) { highest_used = ino; });
  std::vector<uint32_t> names(highest_used + 1, 0), subdirs(highest_used + 1, 0);
  Status tree;
  for_each_used_inode_verifying([&](uint64_t ino) {
    if (!tree.is_ok()) return;
    if (stopping()) {
      tree = stopped_status(v);
      return;
    }
    Inode* dir = slot(ino);
    if (!S_ISDIR(mode_while_verifying(*dir))) return;
    tree = count_directory_names(*dir, names, subdirs);
  });
  RETURN_IF_ERROR(tree);
  RETURN_IF_ERROR(check_link_counts(names, subdirs));
  if (read_only_) return Status::ok();
  if (stopping()) return stopped_status(v);
  RETURN_IF_ERROR(process_orphans(stats));
  Status trimmed;
  for_each_used_inode_verifying([&](uint64_t ino) {
    Inode* inode = slot(ino);
    if (!trimmed.is_ok() || !S_ISREG(mode_while_verifying(*inode))) return;
    WriterLock lock(inode->mu);
    trimmed = trim_beyond_eof(*inode);
  });
  return trimmed;
}

void FilesystemImpl::start_verifier() {
  verifier_->thread = std::thread([this] {
    if (options_.before_verify) options_.before_verify();
    const auto start = std::chrono::steady_clock::now();
    Status s = verify_image(nullptr);
    if (s.is_ok()) {
      log().info("mount: verified in the background in {:.1f} ms",
                 std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
    }
    finish_verification(s);
  });
}

void FilesystemImpl::finish_verification(const Status& result) {
  MountVerifier& v = *verifier_;
  // Only a give-up is "stopped": damage found while an unmount waited for
  // the thread is logged and stamped as any other (the unmount then does
  // not mark the region clean).
  const bool stopped = !result.is_ok() && v.gave_up;
  if (result.is_ok()) {
    // Every slot with data is in the table: the rest are zeros, not read.
    v.loading.store(false, std::memory_order_release);
  } else if (!stopped) {
    v.damaged.store(true, std::memory_order_relaxed);
    log().error("mount verification found damage: {}; the filesystem is read-only from now on "
                "and damaged inodes answer EIO; unmount it and run fsck.sealfs -y",
                result.to_string());
    if (!read_only_) {
      // Refused from the next read-write mount on, as a media fault is.
      Status stamped = journal_->stamp_needs_check();
      if (!stamped.is_ok()) log().error("needs-check stamp: {}", stamped.to_string());
    }
  }
  {
    MutexLock lock(v.mu);
    v.done = true;
    v.stopped = stopped;
    v.result = result;
    v.verified.store(result.is_ok(), std::memory_order_release);
  }
  v.finished.notify_all();
}

void FilesystemImpl::stop_verifier() {
  if (!verifier_) return;
  verifier_->stop.store(true);
  if (verifier_->thread.joinable()) verifier_->thread.join();
}

bool FilesystemImpl::verified() const {
  return verifier_ != nullptr && verifier_->verified.load(std::memory_order_acquire);
}

Status FilesystemImpl::await_verified() const {
  if (verified()) return Status::ok();
  MountVerifier& v = *verifier_;
  MutexLock lock(v.mu);
  // A loop, not wait(lock, predicate): the analysis would check the
  // predicate lambda as a function of its own, without the lock.
  while (!v.done) v.finished.wait(lock);
  if (v.result.is_ok()) return Status::ok();
  return Status(Code::kReadOnly, v.stopped ? "unmounting before the image was verified"
                                           : "mount verification found damage: " +
                                                 v.result.to_string());
}

}  // namespace sealfs
