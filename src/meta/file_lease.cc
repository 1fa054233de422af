// What the lease engine needs from files: the layout lock, eligibility of a
// range for a direct mapping, ALLOCATE and RELOCATE, and the holder pins.
//
// Locking: lock_layout() takes the inode's lock exclusively; it is the lock
// every size or block-map change holds across its gate check and its change
// (locking.h), so a grant made under it cannot interleave with one.
// layout_extents() runs under it and never takes it again.
#include <sys/stat.h>

#include <algorithm>
#include <optional>
#include <shared_mutex>

#include "meta/filesystem_impl.h"
#include "meta/inode_flags.h"
#include "meta/layout_undo.h"
#include "util/log.h"

namespace sealfs {

namespace {

constexpr uint64_t kBlock = format::kBlockSize;
constexpr uint64_t kLeaseChunkBlocks = 1 << 14;  // blocks per ALLOCATE/RELOCATE transaction

// Made inside an operation's pass through the cache gate, it keeps a pass
// of its own until it is destroyed, after the inode's lock is released: the
// lease engine holds it between operations, and the inode may not be
// dropped from the cache meanwhile (locking.h, "Dropping cached inodes").
class InodeLayoutLock final : public LayoutLock {
 public:
  InodeLayoutLock(Inode& inode, CacheGate& gate) : inode_(inode), pass_(gate), hold_(inode.mu) {}
  Ino ino() const override { return inode_.ino; }
  Inode& inode() const { return inode_; }

 private:
  struct NestedPass {
    explicit NestedPass(CacheGate& gate) : gate(gate) { gate.enter_nested(); }
    ~NestedPass() { gate.leave(); }
    CacheGate& gate;
  };
  Inode& inode_;
  NestedPass pass_;  // declared before hold_: left after the lock is released
  std::unique_lock<SmallSharedMutex> hold_;
};

// The inode a LayoutLock of this filesystem holds exclusively.
Inode& inode_of(const LayoutLock& held, const char* caller) {
  const auto* lock = dynamic_cast<const InodeLayoutLock*>(&held);
  if (lock == nullptr) {
    log().critical("{}: a lock not made by this filesystem", caller);
    std::abort();
  }
  return lock->inode();
}

std::string at(uint64_t offset) { return " at offset " + std::to_string(offset); }

std::vector<BlockExtent> block_extents_of(const std::vector<LayoutPiece>& pieces) {
  std::vector<BlockExtent> out;
  out.reserve(pieces.size());
  for (const LayoutPiece& p : pieces) out.push_back({p.region_offset / kBlock, p.length / kBlock});
  return out;
}

}  // namespace

Result<std::unique_ptr<LayoutLock>> FilesystemImpl::lock_layout(Ino ino) {
  CacheGate::Pass pass(cache_gate_);
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  // A layout change's check_writable() runs under this lock and waits for
  // the mount's verifier, which takes inode locks: wait before it is held.
  if (!read_only_) (void)await_verified();
  auto lock = std::make_unique<InodeLayoutLock>(*inode, cache_gate_);
  inode->mu.assert_held();  // by `lock`
  if (!inode->in_use()) return Status(Code::kStale, "inode " + std::to_string(ino) + " is free");
  return std::unique_ptr<LayoutLock>(std::move(lock));
}

std::vector<LayoutPiece> FilesystemImpl::pieces_of(const Inode& inode, uint64_t offset,
                                                   uint64_t length) const {
  std::vector<LayoutPiece> out;
  const uint64_t end = offset + length;
  for (auto it = inode.extents.first_ending_after(offset / kBlock);
       it != inode.extents.end() && it->second.file_block * kBlock < end; ++it) {
    const Extent& e = it->second;
    const uint64_t from = std::max(offset, e.file_block * kBlock);
    const uint64_t to = std::min(end, e.file_end() * kBlock);
    out.push_back({from, e.region_block * kBlock + (from - e.file_block * kBlock), to - from});
  }
  return out;
}

Status FilesystemImpl::allocate_for_lease(Inode& inode, const LayoutPermit& permit, uint64_t first,
                                          uint64_t end) {
  check_permit(permit, inode);
  // New blocks get zeros (and a holder's stores) straight away: see
  // settle_freed_metadata for why recently freed metadata blocks must not.
  RETURN_IF_ERROR(settle_freed_metadata());
  for (uint64_t fb = first; fb < end;) {
    const uint64_t chunk_end = std::min(end, fb + kLeaseChunkBlocks);
    LayoutUndo snap(inode);
    MetaTxn t(*this);
    Status s = Status::ok();
    bool changed = false;
    for (uint64_t b = fb; b < chunk_end && s.is_ok();) {
      const Extent* e = inode.extents.find(b);
      if (e != nullptr) {
        const uint64_t stop = std::min(chunk_end, e->file_end());
        if (e->unwritten) {
          // Zeroed before the transaction that makes it written commits
          // (MetaTxn drains data first): never stale bytes of a former owner.
          data_->zero((e->region_block + (b - e->file_block)) * kBlock, (stop - b) * kBlock);
          inode.extents.set_unwritten(b, stop - b, false);
          changed = true;
        }
        b = stop;
        continue;
      }
      auto next = inode.extents.first_ending_after(b);
      const uint64_t hole_end =
          next == inode.extents.end() ? chunk_end : std::min(chunk_end, next->second.file_block);
      auto got = alloc_->allocate(t.txn(), hole_end - b, inode.extents.goal_for(b));
      if (!got.is_ok()) {
        s = got.status();
        break;
      }
      data_->zero(got->start * kBlock, got->count * kBlock);
      inode.extents.insert(Extent{b, got->start, got->count, false});
      inode.core.blocks += got->count;
      changed = true;
      b += got->count;
    }
    if (s.is_ok() && changed) {
      s = sync_extent_blocks(t, inode);
      if (s.is_ok()) {
        t.data_written();
        t.dirty(&inode);
        s = t.commit();
      }
    }
    if (!s.is_ok()) {
      snap.restore();
      return s.with_context("allocating inode " + std::to_string(inode.ino) + " for a lease");
    }
    fb = chunk_end;
  }
  return Status::ok();
}

Status FilesystemImpl::relocate_for_lease(Inode& inode, const LayoutPermit& permit, uint64_t first,
                                          uint64_t end) {
  check_permit(permit, inode);
  RETURN_IF_ERROR(settle_freed_metadata());
  const uint64_t align = alignment_blocks();
  const std::byte* base = region_->data();
  for (uint64_t fb = first; fb < end;) {
    const uint64_t take = std::min(end - fb, kLeaseChunkBlocks);
    const uint64_t rounded = (take + align - 1) / align * align;
    LayoutUndo snap(inode);
    MetaTxn t(*this);
    // Whole aligned chunks, so the allocator places the run on the alignment.
    auto got = alloc_->allocate(t.txn(), rounded, 0, rounded);
    if (!got.is_ok()) return got.status().with_context("relocating for a lease");
    if ((got->start * kBlock) % map_alignment_ != 0) {
      return Status(Code::kInvalid, "no free space aligned to " +
                                        std::to_string(map_alignment_) + at(fb * kBlock));
    }
    if (rounded > take) alloc_->free(t.txn(), {got->start + take, rounded - take});
    // Copy the file's bytes (every block is written: holes and unwritten
    // extents were refused or allocated before).
    for (const LayoutPiece& p : pieces_of(inode, fb * kBlock, take * kBlock)) {
      data_->write(got->start * kBlock + (p.file_offset - fb * kBlock), base + p.region_offset,
                   p.length);
    }
    Status s = Status::ok();
    for (const Extent& old : inode.extents.punch(fb, take)) {
      if (s.is_ok()) s = release_blocks(t, inode, {old.region_block, old.length});
    }
    inode.extents.insert(Extent{fb, got->start, take, false});
    if (s.is_ok()) s = sync_extent_blocks(t, inode);
    if (s.is_ok()) {
      t.data_written();
      t.dirty(&inode);
      s = t.commit();
    }
    if (!s.is_ok()) {
      snap.restore();
      return s.with_context("relocating inode " + std::to_string(inode.ino));
    }
    fb += take;
  }
  return Status::ok();
}

Result<std::vector<LayoutPiece>> FilesystemImpl::layout_extents(const LayoutLock& held,
                                                                uint64_t offset, uint64_t length,
                                                                uint32_t flags, uint64_t* where) {
  CacheGate::Pass pass(cache_gate_);
  Inode& inode = inode_of(held, "layout_extents");
  inode.mu.assert_held();  // by `held`
  uint64_t ignored_where = 0;
  uint64_t& bad = where != nullptr ? *where : ignored_where;
  bad = offset;
  if (!inode.in_use()) return Status(Code::kStale, "inode " + std::to_string(inode.ino) + " is free");
  if (!S_ISREG(inode.core.mode)) return Status(Code::kNotSupported, "not a regular file");
  // The last block is mappable whole: bytes past EOF in it read as zeros.
  const uint64_t mappable = (inode.core.size + kBlock - 1) / kBlock * kBlock;
  if (length == 0 || offset % kBlock != 0 || length % kBlock != 0 || offset > mappable ||
      length > mappable - offset) {
    bad = inode.core.size;
    return Status(Code::kRange, "range extends past end of file (size " +
                                    std::to_string(inode.core.size) + ")");
  }
  const uint64_t first = offset / kBlock, end = (offset + length) / kBlock;
  // Immutable and append-only files are never mapped writable (as the
  // kernel refuses a shared writable mmap of an append-only file), and an
  // immutable file's block map never changes, so a read-only holder of one
  // is never broken for its layout (docs/protocol.md).
  if ((flags & kLayoutWritable) && (is_immutable(inode.core) || is_append_only(inode.core))) {
    return Status(Code::kPermission, is_immutable(inode.core) ? "immutable file"
                                                             : "append-only file");
  }
  const bool frozen = is_immutable(inode.core);
  auto frozen_refusal = [&](uint64_t off, const std::string& what) {
    bad = off;
    return Status(Code::kPermission, "immutable file: " + what + at(off) + " cannot change");
  };
  // A writable mapping is a way to write: refused on a mount that is
  // read-only for good (damage found by its verifier, a media fault) like
  // every other write, even into blocks the file already owns. (lock_layout
  // waited for the verifier, so this does not wait under the lock.)
  if ((flags & kLayoutWritable) || (!frozen && (flags & (kLayoutAllocate | kLayoutRelocate)))) {
    RETURN_IF_ERROR(check_writable());
  }
  if (inode.has_inline_data()) {
    // A mapping reaches blocks, never the slot: the bytes move to block 0
    // first, under this layout lock and through the gate like any
    // allocation (the file's contents do not change, so an immutable file
    // moves too). With other leases on the file (none can map it yet), the
    // caller breaks them and retries, as for RELOCATE.
    RETURN_IF_ERROR(check_writable());
    Result<LayoutPermit> permit = gate(inode);
    if (!permit.is_ok()) {
      if (!is_layout_sealed(permit.status())) return permit.status();
      return Status(Code::kNxio, "moving an inline file to a block needs its leases gone");
    }
    RETURN_IF_ERROR(leave_inline(inode, *permit));
  }
  if (!frozen && (flags & kLayoutAllocate)) {
    // Fills holes only: no block another holder maps moves, so no gate.
    RETURN_IF_ERROR(allocate_for_lease(inode, permit_for_lease(held), first, end));
  }
  for (uint64_t b = first; b < end;) {
    const Extent* e = inode.extents.find(b);
    if (e == nullptr) {
      if (frozen && (flags & kLayoutAllocate)) return frozen_refusal(b * kBlock, "hole");
      bad = b * kBlock;
      return Status(Code::kNoData, "hole" + at(bad));
    }
    if (e->unwritten) {
      if (frozen && (flags & kLayoutAllocate)) {
        return frozen_refusal(b * kBlock, "unwritten extent");
      }
      bad = b * kBlock;
      return Status(Code::kAgain, "unwritten extent" + at(bad));
    }
    b = e->file_end();
  }
  auto misaligned = [&](const std::vector<LayoutPiece>& pieces) -> std::optional<uint64_t> {
    const uint64_t a = map_alignment_;
    for (size_t i = 0; i < pieces.size(); ++i) {
      const bool last = i + 1 == pieces.size();
      if (pieces[i].region_offset % a != 0 || (!last && pieces[i].length % a != 0)) {
        return pieces[i].file_offset;
      }
    }
    return std::nullopt;
  };
  std::vector<LayoutPiece> pieces = pieces_of(inode, offset, length);
  if (auto off = misaligned(pieces)) {
    bad = *off;
    const std::string why = "extent" + at(*off) + " is not aligned to " +
                            std::to_string(map_alignment_);
    if (!(flags & kLayoutRelocate)) return Status(Code::kInvalid, why);
    if (frozen) return frozen_refusal(*off, "misaligned extent");
    // Relocation moves blocks other holders of this file may map: those
    // must be broken first, which the caller does (ENXIO, then retry).
    Result<LayoutPermit> permit = gate(inode);
    if (!permit.is_ok()) {
      if (!is_layout_sealed(permit.status())) return permit.status();
      return Status(Code::kNxio, "relocation needs the file's other leases gone");
    }
    RETURN_IF_ERROR(relocate_for_lease(inode, *permit, first, end));
    pieces = pieces_of(inode, offset, length);
    if (auto again = misaligned(pieces)) {
      bad = *again;
      return Status(Code::kInvalid, "relocated extent" + at(*again) + " is still not aligned");
    }
  }
  return pieces;
}

Result<uint64_t> FilesystemImpl::grow_for_lease(const LayoutLock& held, uint64_t new_size) {
  CacheGate::Pass pass(cache_gate_);
  Inode& inode = inode_of(held, "grow_for_lease");
  inode.mu.assert_held();  // by `held`
  if (!inode.in_use()) return Status(Code::kStale, "inode " + std::to_string(inode.ino) + " is free");
  if (!S_ISREG(inode.core.mode)) return Status(Code::kNotSupported, "not a regular file");
  if (is_immutable(inode.core) || is_append_only(inode.core)) {
    return Status(Code::kPermission, "immutable or append-only file");
  }
  if (new_size > kMaxFileSize) return Status(Code::kTooBig, "size beyond the maximum file size");
  const uint64_t old_size = inode.core.size;
  if (new_size <= old_size) return old_size;
  RETURN_IF_ERROR(check_writable());
  // The grown range is about to be mapped: out of the slot first. An
  // inline file has no block any holder could map, so the lease's own
  // permit suffices (as for ALLOCATE).
  RETURN_IF_ERROR(leave_inline(inode, permit_for_lease(held)));
  MetaTxn t(*this);
  // The old last block's bytes past the old size become file bytes: zeros,
  // drained before the size commits. A holder may map that block; these
  // bytes were past EOF, so nothing it stored there was file data.
  if (const uint64_t tail = inode.core.size % kBlock; tail != 0) {
    const Extent* e = inode.extents.find(inode.core.size / kBlock);
    if (e != nullptr && !e->unwritten) {
      const uint64_t rb = e->region_block + (inode.core.size / kBlock - e->file_block);
      data_->zero(rb * kBlock + tail, kBlock - tail);
      t.data_written();
    }
  }
  const InodeCore saved = inode.core;
  inode.core.size = new_size;
  inode.core.mtime = inode.core.ctime = now_ns();
  t.dirty(&inode);
  Status s = t.commit();
  if (!s.is_ok()) {
    inode.core = saved;
    return s.with_context("growing inode " + std::to_string(inode.ino) + " for a lease");
  }
  return old_size;
}

Status FilesystemImpl::shrink_after_grow(const LayoutLock& held, uint64_t old_size) {
  CacheGate::Pass pass(cache_gate_);
  Inode& inode = inode_of(held, "shrink_after_grow");
  inode.mu.assert_held();  // by `held`
  if (!inode.in_use() || old_size >= inode.core.size) return Status::ok();
  RETURN_IF_ERROR(check_writable());
  // Only the grown part: blocks the EXTEND allocated there are in no lease
  // (its own lease did not get them); beyond the grown end nothing changed.
  const uint64_t first = (old_size + kBlock - 1) / kBlock;
  const uint64_t end = (inode.core.size + kBlock - 1) / kBlock;
  const int64_t now = now_ns();
  // Only blocks this EXTEND allocated, which no lease holds.
  return free_range(inode, permit_for_lease(held), first, end - first,
                    [old_size, now](Inode& i) {
                      i.mu.assert_held();  // called by free_range, under the lock
                      i.core.size = old_size;
                      i.core.mtime = i.core.ctime = now;
                    })
      .with_context("shrinking inode " + std::to_string(inode.ino) + " after a refused extend");
}

Status FilesystemImpl::pin_pieces(const Holder& holder, Ino ino,
                                  const std::vector<LayoutPiece>& pieces) {
  CacheGate::Pass pass(cache_gate_);
  // Nothing can free blocks on a read-only mount, nor on one whose
  // verifier found damage (lock_layout waited for it): no pin to write.
  if (read_only_ || !verified()) return Status::ok();
  MetaTxn t(*this);
  RETURN_IF_ERROR(alloc_->pin(t.txn(), block_extents_of(pieces), holder, ino));
  return t.commit();
}

void FilesystemImpl::unpin_pieces(const Holder& holder, const std::vector<LayoutPiece>& pieces) {
  CacheGate::Pass pass(cache_gate_);
  if (read_only_ || !verified()) return;
  MetaTxn t(*this);
  Status s = alloc_->unpin(t.txn(), block_extents_of(pieces), holder);
  if (!s.is_ok()) {
    // One missing pin must not keep the others: drop them one by one.
    log().warn("unpin for pid {}: {}", holder.pid, s.to_string());
    for (const BlockExtent& e : block_extents_of(pieces)) {
      Status one = alloc_->unpin(t.txn(), e, holder);
      if (!one.is_ok()) log().warn("unpin for pid {}: {}", holder.pid, one.to_string());
    }
  }
  s = t.commit();
  // A pin left behind only delays reuse until the holder is gone (the next
  // mount drops pins of dead holders): logged, not fatal.
  if (!s.is_ok()) log().warn("unpin for pid {}: {}", holder.pid, s.to_string());
}

void FilesystemImpl::quarantine_on_free(const Holder& holder, Ino,
                                        const std::vector<LayoutPiece>& pieces) {
  CacheGate::Pass pass(cache_gate_);
  for (const LayoutPiece& p : pieces) {
    pins_.add(holder, {p.region_offset / kBlock, p.length / kBlock});
  }
}

Status FilesystemImpl::release_holder(const Holder& holder) {
  CacheGate::Pass pass(cache_gate_);
  pins_.drop(holder);
  {
    MutexLock lock(restored_mu_);
    std::erase(restored_holders_, holder);
  }
  if (read_only_) return Status::ok();
  RETURN_IF_ERROR(check_writable());  // blocks go back to free space
  MetaTxn t(*this);
  RETURN_IF_ERROR(alloc_->release_holder(t.txn(), holder));
  return t.commit();
}

std::vector<Holder> FilesystemImpl::restored_holders() {
  CacheGate::Pass pass(cache_gate_);
  MutexLock lock(restored_mu_);
  return restored_holders_;
}

std::vector<QuarantineEntry> FilesystemImpl::quarantine_entries() {
  CacheGate::Pass pass(cache_gate_);
  return alloc_->quarantine_entries();
}

}  // namespace sealfs
