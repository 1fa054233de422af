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

#include "meta/filesystem_impl.h"

namespace sealfs {

namespace {
constexpr size_t kFreeChunkExtents = 128;
constexpr uint64_t kAllocChunkBlocks = 1 << 16;  // per fallocate transaction
constexpr uint64_t kBlock = format::kBlockSize;

struct LayoutSnapshot {
  InodeCore core;
  ExtentMap extents;
  std::vector<uint64_t> overflow;
  explicit LayoutSnapshot(const Inode& i)
      : core(i.core), extents(i.extents), overflow(i.overflow_blocks) {}
  void restore(Inode& i) const {
    i.core = core;
    i.extents = extents;
    i.overflow_blocks = overflow;
  }
};
}  // namespace

Status FilesystemImpl::sync_extent_blocks(MetaTxn& t, Inode& inode) {
  uint64_t n = inode.extents.count();
  uint64_t need = n > format::kInlineExtents
                      ? (n - format::kInlineExtents + format::kExtentsPerBlock - 1) /
                            format::kExtentsPerBlock
                      : 0;
  size_t old_count = inode.overflow_blocks.size();
  while (inode.overflow_blocks.size() < need) {
    uint64_t goal = inode.overflow_blocks.empty() ? 0 : inode.overflow_blocks.back() + 1;
    ASSIGN_OR_RETURN(BlockExtent b, alloc_->allocate(t.txn(), 1, goal));
    inode.overflow_blocks.push_back(b.start);
    inode.core.blocks += 1;
  }
  while (inode.overflow_blocks.size() > need) {
    uint64_t b = inode.overflow_blocks.back();
    inode.overflow_blocks.pop_back();
    t.drop_block(b);
    t.freed_metadata();
    alloc_->free(t.txn(), {b, 1});
    inode.core.blocks -= 1;
  }
  if (need == 0) return Status::ok();
  std::vector<format::DiskExtent> rest;
  rest.reserve(n - format::kInlineExtents);
  uint64_t i = 0;
  for (const auto& [fb, e] : inode.extents) {
    if (i++ >= format::kInlineExtents) rest.push_back(encode_extent(e));
  }
  for (size_t k = 0; k < need; ++k) {
    uint64_t b = inode.overflow_blocks[k];
    uint64_t next = k + 1 < need ? inode.overflow_blocks[k + 1] : 0;
    size_t from = k * format::kExtentsPerBlock;
    size_t count = std::min<size_t>(format::kExtentsPerBlock, rest.size() - from);
    std::byte* img = k >= old_count ? t.fresh_block(b) : t.block(b);
    encode_extent_block(img, inode.ino, next, std::span(rest.data() + from, count));
  }
  return Status::ok();
}

Status FilesystemImpl::free_range(Inode& inode, uint64_t first, uint64_t count,
                                  const std::function<void(Inode&)>& first_edit) {
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
    LayoutSnapshot snap(inode);
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
        snap.restore(inode);
        return s;
      }
    }
    t.dirty(&inode);
    Status s = t.commit();
    if (!s.is_ok()) {
      snap.restore(inode);
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

Status FilesystemImpl::truncate_locked(Inode& inode, uint64_t new_size) {
  if (new_size > kMaxFileSize) return Status(Code::kTooBig, "size beyond the maximum file size");
  RETURN_IF_ERROR(gate(inode));
  int64_t now = now_ns();
  auto edit = [new_size, now](Inode& i) {
    i.core.size = new_size;
    i.core.mtime = i.core.ctime = now;
  };
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
  RETURN_IF_ERROR(free_range(inode, first, UINT64_MAX - first, edit));
  if (new_size % kBlock != 0) {
    RETURN_IF_ERROR(zero_partial(inode, new_size, kBlock - new_size % kBlock));
  }
  return Status::ok();
}

Status FilesystemImpl::allocate_unwritten(MetaTxn& t, Inode& inode, uint64_t first,
                                          uint64_t count) {
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
  if (uint64_t tail = inode.core.size % kBlock; tail != 0) {
    const Extent* e = inode.extents.find(inode.core.size / kBlock);
    if (e != nullptr && !e->unwritten) {
      uint64_t rb = e->region_block + (inode.core.size / kBlock - e->file_block);
      const std::byte* p = region_->data() + block_offset(rb) + tail;
      bool dirty = false;
      for (uint64_t i = 0; i < kBlock - tail && !dirty; ++i) dirty = p[i] != std::byte{0};
      if (dirty) RETURN_IF_ERROR(zero_partial(inode, inode.core.size, kBlock - tail));
    }
  }
  std::vector<Extent> written;
  for (auto it = inode.extents.first_ending_after(first); it != inode.extents.end(); ++it) {
    if (!it->second.unwritten) written.push_back(it->second);
  }
  for (auto it = written.rbegin(); it != written.rend(); ++it) {
    uint64_t from = std::max(first, it->file_block);
    RETURN_IF_ERROR(free_range(inode, from, it->file_end() - from, nullptr));
  }
  return Status::ok();
}

Status FilesystemImpl::fallocate(Ino ino, int mode, uint64_t offset, uint64_t length) {
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
  std::unique_lock lock(inode->mu);
  if (!inode->in_use()) return Status(Code::kStale, "inode freed");
  if (S_ISDIR(inode->core.mode)) return Status(Code::kIsDir, "fallocate on a directory");
  if (!S_ISREG(inode->core.mode)) return Status(Code::kNotSupported, "fallocate on a special file");
  RETURN_IF_ERROR(gate(*inode));
  const uint64_t end = offset + length;
  const bool keep_size = (mode & FALLOC_FL_KEEP_SIZE) != 0;
  int64_t now = now_ns();

  if (mode & FALLOC_FL_PUNCH_HOLE) {
    uint64_t size = inode->core.size;
    uint64_t zend = std::min(end, std::max(size, offset));
    // Partial blocks at both edges are zeroed; whole blocks are unmapped.
    uint64_t first = (offset + kBlock - 1) / kBlock;
    uint64_t last = end / kBlock;
    if (first > last) {
      RETURN_IF_ERROR(zero_partial(*inode, offset, length));
    } else {
      if (offset % kBlock) RETURN_IF_ERROR(zero_partial(*inode, offset, first * kBlock - offset));
      if (end % kBlock) RETURN_IF_ERROR(zero_partial(*inode, last * kBlock, end - last * kBlock));
      RETURN_IF_ERROR(free_range(*inode, first, last - first, [now](Inode& i) {
        i.core.mtime = i.core.ctime = now;
      }));
    }
    (void)zend;
    return Status::ok();
  }

  uint64_t first = offset / kBlock;
  uint64_t last = (end + kBlock - 1) / kBlock;
  if (mode & FALLOC_FL_ZERO_RANGE) {
    uint64_t whole_first = (offset + kBlock - 1) / kBlock;
    uint64_t whole_last = end / kBlock;
    if (whole_first > whole_last) {
      RETURN_IF_ERROR(zero_partial(*inode, offset, length));
    } else {
      if (offset % kBlock) {
        RETURN_IF_ERROR(zero_partial(*inode, offset, whole_first * kBlock - offset));
      }
      if (end % kBlock) {
        RETURN_IF_ERROR(zero_partial(*inode, whole_last * kBlock, end - whole_last * kBlock));
      }
    }
    first = whole_first;
    last = std::max(whole_first, whole_last);
  }
  // Allocate holes (and for ZERO_RANGE turn whole written blocks into
  // unwritten ones) in bounded transactions; the size moves in the last.
  uint64_t fb = first;
  do {
    uint64_t chunk_end = std::min(last, fb + kAllocChunkBlocks);
    LayoutSnapshot snap(*inode);
    MetaTxn t(*this);
    if (mode & FALLOC_FL_ZERO_RANGE) inode->extents.set_unwritten(fb, chunk_end - fb, true);
    Status s = allocate_unwritten(t, *inode, fb, chunk_end - fb);
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
      snap.restore(*inode);
      return s;
    }
    fb = chunk_end;
  } while (fb < last);
  return Status::ok();
}

}  // namespace sealfs
