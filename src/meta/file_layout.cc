// Block-map edits: overflow chain upkeep, bounded freeing, truncate,
// fallocate, zeroing partial blocks.
//
// Large frees (truncate, punch, final free of an unlinked file) run as a
// sequence of transactions, each unmapping at most kFreeChunkExtents extents
// from the end of the range towards its start, so none exceeds the journal's
// transaction limit. The first transaction also commits the new size, so a
// crash in between leaves only extents beyond EOF (or inside a punched
// range, which is the punch being half done: the data there is the file's
// own old data, never another file's). Written extents beyond EOF left by
// such a crash are trimmed at the next mount (trim_beyond_eof); unwritten
// ones are legitimate (fallocate KEEP_SIZE) and stay.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <cstring>
#include <functional>
#include <set>

#include "meta/filesystem_impl.h"
#include "meta/inode_flags.h"
#include "meta/layout_undo.h"
#include "util/log.h"

namespace sealfs {

namespace {
constexpr size_t kFreeChunkExtents = 128;
constexpr uint64_t kAllocChunkBlocks = 1 << 16;  // per fallocate transaction
constexpr uint64_t kBlock = format::kBlockSize;

// How the extents of one overfull block are cut into blocks. The chain's last
// block is filled (files grow at the end: keep their blocks full); another
// is split evenly, leaving room on both sides for the next inserts.
std::vector<size_t> piece_sizes(size_t count, bool last) {
  const size_t per = format::kExtentsPerBlock;
  std::vector<size_t> sizes;
  if (last) {
    for (size_t left = count; left > 0; left -= std::min(left, per)) {
      sizes.push_back(std::min(left, per));
    }
    return sizes;
  }
  size_t pieces = (count + per - 1) / per;
  for (size_t i = 0; i < pieces; ++i) sizes.push_back(count / pieces + (i < count % pieces ? 1 : 0));
  return sizes;
}

}  // namespace

// Brings the overflow blocks in line with the extent map after an edit,
// rewriting only the blocks whose ranges the edit touched (ExtentChain).
Status FilesystemImpl::sync_extent_blocks(MetaTxn& t, Inode& inode) {
  ExtentChain& chain = inode.chain;
  auto unlink_block = [&](size_t i) {
    inode.mu.assert_held();  // this function's caller's
    uint64_t b = chain[i].region_block;
    chain.erase(i);
    t.drop_block(b);
    t.freed_metadata();
    alloc_->free(t.txn(), {b, 1});
    inode.core.blocks -= 1;
  };
  if (inode.extents.count() <= format::kInlineExtents) {
    while (!chain.empty()) unlink_block(chain.size() - 1);
    chain.set_synced_start(0);
    return Status::ok();
  }
  const uint64_t first_key = std::next(inode.extents.begin(), format::kInlineExtents)->first;
  // Block indexes to rewrite, highest first: splitting or unlinking block i
  // then never moves a block still to be visited.
  std::set<size_t, std::greater<>> dirty;
  // Blocks new in this call: their images start from zero.
  std::set<uint64_t> fresh;
  if (chain.empty()) {
    ASSIGN_OR_RETURN(BlockExtent b, alloc_->allocate(t.txn(), 1, 0));
    chain.insert(0, {b.start, first_key});
    fresh.insert(b.start);
    inode.core.blocks += 1;
    dirty.insert(0);
  } else {
    for (const auto& change : inode.extents.changes()) dirty.insert(chain.index_of(change.key));
    uint64_t old_first = chain.synced_start();
    if (old_first != first_key) {
      // Extents moved between the inode and block 0 (and past it, when
      // blocks in front emptied): every block over the moved range.
      size_t lo = chain.index_of(std::min(old_first, first_key));
      size_t hi = chain.index_of(std::max(old_first, first_key));
      for (size_t i = lo; i <= hi; ++i) dirty.insert(i);
    }
  }
  std::set<size_t, std::greater<>> rewrite;
  while (!dirty.empty()) {
    size_t i = *dirty.begin();
    dirty.erase(dirty.begin());
    uint64_t lo = i == 0 ? first_key : std::max(chain[i].start, first_key);
    bool last = i + 1 == chain.size();
    uint64_t hi = last ? UINT64_MAX : std::max(chain[i + 1].start, first_key);
    std::vector<Extent> held;
    for (auto it = inode.extents.lower_bound(lo); it != inode.extents.end() && it->first < hi;
         ++it) {
      held.push_back(it->second);
    }
    if (held.empty()) {
      unlink_block(i);
      // The block in front now links past it; block 0 is linked from the
      // inode, which every transaction of this inode rewrites.
      if (i > 0) dirty.insert(i - 1);
      std::set<size_t, std::greater<>> shifted;
      for (size_t r : rewrite) shifted.insert(r > i ? r - 1 : r);
      rewrite.swap(shifted);
      continue;
    }
    std::vector<size_t> sizes = piece_sizes(held.size(), last);
    size_t first = 0;
    for (size_t p = 1; p < sizes.size(); ++p) {
      first += sizes[p - 1];
      uint64_t goal = chain[i + p - 1].region_block + 1;
      ASSIGN_OR_RETURN(BlockExtent b, alloc_->allocate(t.txn(), 1, goal));
      chain.insert(i + p, {b.start, held[first].file_block});
      fresh.insert(b.start);
      inode.core.blocks += 1;
    }
    std::set<size_t, std::greater<>> shifted;
    for (size_t r : rewrite) shifted.insert(r > i ? r + sizes.size() - 1 : r);
    rewrite.swap(shifted);
    for (size_t p = 0; p < sizes.size(); ++p) rewrite.insert(i + p);
  }
  // Encode: every block of `rewrite` from the map, with its next link.
  for (size_t i : rewrite) {
    uint64_t lo = i == 0 ? first_key : std::max(chain[i].start, first_key);
    uint64_t hi = i + 1 == chain.size() ? UINT64_MAX : std::max(chain[i + 1].start, first_key);
    std::vector<format::DiskExtent> disk;
    for (auto it = inode.extents.lower_bound(lo); it != inode.extents.end() && it->first < hi;
         ++it) {
      disk.push_back(encode_extent(it->second));
    }
    uint64_t b = chain[i].region_block;
    std::byte* img = fresh.count(b) != 0 ? t.fresh_block(b) : t.block(b);
    encode_extent_block(img, inode.ino, chain.next_after(i), disk);
    extent_blocks_encoded_.fetch_add(1, std::memory_order_relaxed);
  }
  chain.set_synced_start(first_key);
  return Status::ok();
}

Status FilesystemImpl::free_range(Inode& inode, const LayoutPermit& permit, uint64_t first,
                                  uint64_t count, const std::function<void(Inode&)>& first_edit) {
  check_permit(permit, inode);
  uint64_t end = count > UINT64_MAX - first ? UINT64_MAX : first + count;
  bool first_txn = true;
  while (true) {
    // The last kFreeChunkExtents pieces inside [first, end).
    std::vector<uint64_t> starts;
    for (auto it = inode.extents.first_ending_after(first);
         it != inode.extents.end() && it->second.file_block < end; ++it) {
      starts.push_back(std::max(first, it->second.file_block));
    }
    if (starts.empty() && !first_txn) return Status::ok();
    uint64_t chunk_start =
        starts.size() > kFreeChunkExtents ? starts[starts.size() - kFreeChunkExtents] : first;
    LayoutUndo snap(inode);
    MetaTxn t(*this);
    if (first_txn && first_edit) first_edit(inode);
    if (!S_ISREG(inode.core.mode)) t.freed_metadata();  // directory or symlink blocks
    if (!starts.empty()) {
      Status s = Status::ok();
      for (const Extent& r : inode.extents.punch(chunk_start, end - chunk_start)) {
        if (s.is_ok()) s = release_blocks(t, inode, {r.region_block, r.length});
        inode.core.blocks -= r.length;
      }
      if (s.is_ok()) s = sync_extent_blocks(t, inode);
      if (!s.is_ok()) {
        snap.restore();
        return s;
      }
    }
    t.dirty(&inode);
    Status s = t.commit();
    if (!s.is_ok()) {
      snap.restore();
      return s;
    }
    first_txn = false;
    end = chunk_start;
    if (starts.size() <= kFreeChunkExtents) return Status::ok();
  }
}

Status FilesystemImpl::release_blocks(MetaTxn& t, const Inode& inode, BlockExtent blocks) {
  for (const auto& [piece, holder] : pins_.split(blocks)) {
    if (holder) {
      RETURN_IF_ERROR(alloc_->quarantine(t.txn(), piece, *holder, inode.ino));
    } else {
      alloc_->free(t.txn(), piece);
    }
  }
  return Status::ok();
}

Status FilesystemImpl::zero_partial(Inode& inode, uint64_t offset, uint64_t length) {
  uint64_t end = offset + length;
  bool wrote = false;
  while (offset < end) {
    uint64_t fb = offset / kBlock;
    uint64_t block_end = std::min(end, (fb + 1) * kBlock);
    const Extent* e = inode.extents.find(fb);
    if (e != nullptr && !e->unwritten) {
      uint64_t at = (e->region_block + (fb - e->file_block)) * kBlock + offset % kBlock;
      data_->zero(at, block_end - offset);
      wrote = true;
    }
    offset = block_end;
  }
  if (wrote) RETURN_IF_ERROR(data_->drain());
  return Status::ok();
}

Status FilesystemImpl::truncate_locked(Inode& inode, const LayoutPermit& permit,
                                       uint64_t new_size) {
  check_permit(permit, inode);
  if (new_size > kMaxFileSize) return Status(Code::kTooBig, "size beyond the maximum file size");
  int64_t now = now_ns();
  auto edit = [new_size, now](Inode& i) {
    i.mu.assert_held();  // called by free_range or below, under the lock
    i.core.size = new_size;
    i.core.mtime = i.core.ctime = now;
  };
  if (inode.has_inline_data()) {
    if (new_size <= format::kInlineDataMax) return resize_inline(inode, new_size, true);
    // Grown past the slot: block 0 takes the bytes in the transaction that
    // sets the size (the rest of the file is a hole).
    RETURN_IF_ERROR(settle_freed_metadata());
    LayoutUndo undo(inode);
    MetaTxn t(*this);
    Status s = move_inline_to_extents(t, inode, permit);
    if (s.is_ok()) s = sync_extent_blocks(t, inode);
    if (s.is_ok()) {
      edit(inode);
      t.dirty(&inode);
      s = t.commit();
    }
    if (!s.is_ok()) undo.restore();
    return s;
  }
  if (new_size >= inode.core.size) {
    MetaTxn t(*this);
    InodeCore saved = inode.core;
    edit(inode);
    t.dirty(&inode);
    Status s = t.commit();
    if (!s.is_ok()) inode.core = saved;
    return s;
  }
  // The rest of the new last block is zeroed only after the new size has
  // committed: zeroed first, a crash before the commit would leave the old
  // size showing zeros where the file's data was. A crash after the commit
  // leaves old bytes beyond EOF, which trim_beyond_eof zeroes at mount.
  uint64_t first = (new_size + kBlock - 1) / kBlock;
  RETURN_IF_ERROR(free_range(inode, permit, first, UINT64_MAX - first, edit));
  if (new_size % kBlock != 0) {
    RETURN_IF_ERROR(zero_partial(inode, new_size, kBlock - new_size % kBlock));
  }
  // Emptied (O_TRUNC, truncate to 0): inline again, so rewriting a small
  // file does not keep a block. A crash before this leaves an empty file in
  // extents, which is as good.
  if (new_size == 0) RETURN_IF_ERROR(return_to_inline(inode));
  return Status::ok();
}

Status FilesystemImpl::allocate_unwritten(MetaTxn& t, Inode& inode, const LayoutPermit& permit,
                                          uint64_t first, uint64_t count) {
  check_permit(permit, inode);
  uint64_t fb = first;
  uint64_t end = first + count;
  while (fb < end) {
    const Extent* e = inode.extents.find(fb);
    if (e != nullptr) {
      fb = e->file_end();
      continue;
    }
    auto next = inode.extents.first_ending_after(fb);
    uint64_t hole_end = next == inode.extents.end() ? end : std::min(end, next->second.file_block);
    ASSIGN_OR_RETURN(BlockExtent b,
                     alloc_->allocate(t.txn(), hole_end - fb, inode.extents.goal_for(fb)));
    inode.extents.insert(Extent{fb, b.start, b.count, true});
    inode.core.blocks += b.count;
    fb += b.count;
  }
  return Status::ok();
}

Status FilesystemImpl::trim_beyond_eof(Inode& inode) {
  uint64_t first = (inode.core.size + kBlock - 1) / kBlock;
  // Extending a file exposes the rest of its last block, which must read
  // as zeros (see truncate_locked).
  bool dirty_tail = false;
  const uint64_t tail = inode.core.size % kBlock;
  if (tail != 0) {
    const Extent* e = inode.extents.find(inode.core.size / kBlock);
    if (e != nullptr && !e->unwritten) {
      uint64_t rb = e->region_block + (inode.core.size / kBlock - e->file_block);
      const std::byte* p = region_->data() + block_offset(rb) + tail;
      for (uint64_t i = 0; i < kBlock - tail && !dirty_tail; ++i) dirty_tail = p[i] != std::byte{0};
    }
  }
  std::vector<Extent> written;
  for (auto it = inode.extents.first_ending_after(first); it != inode.extents.end(); ++it) {
    if (!it->second.unwritten) written.push_back(it->second);
  }
  if (!dirty_tail && written.empty()) return Status::ok();
  // The verifier runs before any lease can be granted (lock_layout waits
  // for it), so the gate lets it through. Should it ever say "sealed", the
  // trim waits for the next mount: that is no damage to report.
  Result<LayoutPermit> permit = gate(inode);
  if (!permit.is_ok()) {
    if (!is_layout_sealed(permit.status())) return permit.status();
    log().warn("inode {}: blocks past EOF left for the next mount: {}", inode.ino,
               permit.status().to_string());
    return Status::ok();
  }
  if (dirty_tail) RETURN_IF_ERROR(zero_partial(inode, inode.core.size, kBlock - tail));
  for (auto it = written.rbegin(); it != written.rend(); ++it) {
    uint64_t from = std::max(first, it->file_block);
    RETURN_IF_ERROR(free_range(inode, *permit, from, it->file_end() - from, nullptr));
  }
  return Status::ok();
}

Status FilesystemImpl::fallocate(Ino ino, int mode, uint64_t offset, uint64_t length) {
  CacheGate::Pass pass(cache_gate_);
  RETURN_IF_ERROR(check_writable());
  const int known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
  if ((mode & ~known) != 0) return Status(Code::kNotSupported, "fallocate mode");
  if ((mode & FALLOC_FL_PUNCH_HOLE) && (mode & FALLOC_FL_ZERO_RANGE)) {
    return Status(Code::kNotSupported, "fallocate mode");
  }
  if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE)) {
    return Status(Code::kNotSupported, "punch hole needs KEEP_SIZE");
  }
  if (length == 0) return Status(Code::kInvalid, "fallocate of length 0");
  if (offset > kMaxFileSize || length > kMaxFileSize - offset) {
    return Status(Code::kTooBig, "fallocate beyond the maximum file size");
  }
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  WriterLock lock(inode->mu);
  if (!inode->in_use()) return Status(Code::kStale, "inode freed");
  if (S_ISDIR(inode->core.mode)) return Status(Code::kIsDir, "fallocate on a directory");
  if (!S_ISREG(inode->core.mode)) return Status(Code::kNotSupported, "fallocate on a special file");
  RETURN_IF_ERROR(check_may_fallocate(inode->core, mode));
  ASSIGN_OR_RETURN(LayoutPermit permit, gate(*inode));
  const uint64_t end = offset + length;
  const bool keep_size = (mode & FALLOC_FL_KEEP_SIZE) != 0;
  int64_t now = now_ns();

  if (inode->has_inline_data()) {
    const uint64_t size = inode->core.size;
    const uint64_t grown = keep_size ? size : std::max(size, end);
    // A punch never grows the file; the other modes stay in the slot while
    // the range fits in it (the slot is the space they reserve). Past it,
    // the bytes move to block 0 in the first transaction below.
    if (mode & FALLOC_FL_PUNCH_HOLE) return zero_inline(*inode, offset, length, size);
    if (end <= format::kInlineDataMax) {
      if (mode & FALLOC_FL_ZERO_RANGE) return zero_inline(*inode, offset, length, grown);
      return resize_inline(*inode, grown, false);
    }
    RETURN_IF_ERROR(settle_freed_metadata());
  }

  if (mode & FALLOC_FL_PUNCH_HOLE) {
    uint64_t size = inode->core.size;
    uint64_t zend = std::min(end, std::max(size, offset));
    // Partial blocks at both edges are zeroed; whole blocks are unmapped.
    uint64_t first = (offset + kBlock - 1) / kBlock;
    uint64_t last = end / kBlock;
    if (first > last) {
      RETURN_IF_ERROR(zero_partial(*inode, offset, length));
    } else {
      // The whole blocks first: unmapping them may split an extent, and the
      // split may need an extent block that a full region refuses. The
      // partial blocks at the edges are zeroed in place only after that, so
      // a punch refused with ENOSPC leaves every byte (the kernel keeps its
      // cached pages of the range when the call fails).
      RETURN_IF_ERROR(free_range(*inode, permit, first, last - first, [now](Inode& i) {
        i.mu.assert_held();  // called by free_range, under the lock
        i.core.mtime = i.core.ctime = now;
      }));
      if (offset % kBlock) RETURN_IF_ERROR(zero_partial(*inode, offset, first * kBlock - offset));
      if (end % kBlock) RETURN_IF_ERROR(zero_partial(*inode, last * kBlock, end - last * kBlock));
    }
    (void)zend;
    return Status::ok();
  }

  uint64_t first = offset / kBlock;
  uint64_t last = (end + kBlock - 1) / kBlock;
  // ZERO_RANGE zeroes the partial blocks at its edges in place, once the
  // transactions below have committed: a zero range refused for want of
  // space must leave every byte as it was (the kernel keeps its cached
  // pages of the range when the call fails).
  std::function<Status()> zero_edges = [] { return Status::ok(); };
  if (mode & FALLOC_FL_ZERO_RANGE) {
    uint64_t whole_first = (offset + kBlock - 1) / kBlock;
    uint64_t whole_last = end / kBlock;
    zero_edges = [this, inode, offset, length, end, whole_first, whole_last]() -> Status {
      inode->mu.assert_held();  // run below, under the lock
      if (whole_first > whole_last) return zero_partial(*inode, offset, length);
      if (offset % kBlock) {
        RETURN_IF_ERROR(zero_partial(*inode, offset, whole_first * kBlock - offset));
      }
      if (end % kBlock) {
        RETURN_IF_ERROR(zero_partial(*inode, whole_last * kBlock, end - whole_last * kBlock));
      }
      return Status::ok();
    };
    first = whole_first;
    last = std::max(whole_first, whole_last);
  }
  // Allocate holes (and for ZERO_RANGE turn whole written blocks into
  // unwritten ones) in bounded transactions; the size moves in the last.
  uint64_t fb = first;
  do {
    uint64_t chunk_end = std::min(last, fb + kAllocChunkBlocks);
    LayoutUndo snap(*inode);
    MetaTxn t(*this);
    Status s = Status::ok();
    if (inode->has_inline_data()) {
      // The zeroed part of the inline bytes goes to the block zeroed.
      if ((mode & FALLOC_FL_ZERO_RANGE) && offset < inode->core.size) {
        stage_inline_bytes(*inode);
        std::memset(inode->inline_bytes.data() + offset, 0, inode->inline_bytes.size() - offset);
      }
      s = move_inline_to_extents(t, *inode, permit);
    }
    if (s.is_ok() && (mode & FALLOC_FL_ZERO_RANGE)) {
      inode->extents.set_unwritten(fb, chunk_end - fb, true);
    }
    if (s.is_ok()) s = allocate_unwritten(t, *inode, permit, fb, chunk_end - fb);
    if (s.is_ok()) s = sync_extent_blocks(t, *inode);
    if (s.is_ok()) {
      bool final_chunk = chunk_end >= last;
      if (final_chunk && !keep_size && end > inode->core.size) inode->core.size = end;
      if (final_chunk) inode->core.ctime = now;
      if (final_chunk && (mode & FALLOC_FL_ZERO_RANGE)) inode->core.mtime = now;
      t.dirty(inode);
      s = t.commit();
    }
    if (!s.is_ok()) {
      snap.restore();
      return s;
    }
    fb = chunk_end;
  } while (fb < last);
  return zero_edges();
}

}  // namespace sealfs
