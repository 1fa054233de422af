// File data: read (zero-copy segments), write, SEEK_DATA/SEEK_HOLE,
// copy_file_range.
//
// Ordered data: every byte a new or converted extent exposes is written (data
// or zeros) and drained before the transaction that maps it commits; in-place
// overwrites of written blocks change no metadata except mtime/ctime.
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "meta/filesystem_impl.h"
#include "meta/inode_flags.h"
#include "meta/layout_undo.h"

namespace sealfs {

namespace {
constexpr uint64_t kBlock = format::kBlockSize;
// A write into preallocated space converts (and zeroes) up to this many
// blocks around it: 256 KiB, a few tens of microseconds of stores on pmem,
// paid once per chunk instead of a transaction per write. ext4 zeroes out
// up to 32 KiB for the same reason (extent_max_zeroout_kb).
constexpr uint64_t kZeroOutBlocks = 64;
}  // namespace

Status FilesystemImpl::read(Ino ino, uint64_t offset, size_t length,
                            const std::function<void(const std::vector<ReadSegment>&)>& consume) {
  CacheGate::Pass pass(cache_gate_);
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  // atime before the reply: the reader may stat(2) the moment it has it.
  if (atime_wanted(*inode)) touch_atime(*inode);
  {
    ReaderLock lock(inode->mu);
    if (!inode->in_use()) return Status(Code::kStale, "inode freed");
    if (S_ISDIR(inode->core.mode)) return Status(Code::kIsDir, "read of a directory");
    std::vector<ReadSegment> segs;
    const uint64_t size = inode->core.size;
    if (offset < size && length > 0) {
      uint64_t end = offset + std::min<uint64_t>(length, size - offset);
      uint64_t pos = offset;
      auto add = [&](const void* p, uint64_t n) {
        if (!segs.empty()) {
          auto& last = segs.back();
          bool both_zero = last.data == nullptr && p == nullptr;
          bool contiguous = last.data != nullptr && p != nullptr &&
                            static_cast<const std::byte*>(last.data) + last.length == p;
          if (both_zero || contiguous) {
            last.length += n;
            return;
          }
        }
        segs.push_back(ReadSegment{p, static_cast<size_t>(n)});
      };
      if (inode->has_inline_data()) {
        // The slot's bytes, valid while the shared lock is held.
        add(inline_data_of(*inode) + offset, end - offset);
        pos = end;
      }
      while (pos < end) {
        uint64_t fb = pos / kBlock;
        const Extent* e = inode->extents.find(fb);
        if (e != nullptr) {
          uint64_t run_end = std::min(end, e->file_end() * kBlock);
          const void* p = nullptr;
          if (!e->unwritten) {
            p = region_->data() + (e->region_block + (fb - e->file_block)) * kBlock + pos % kBlock;
          }
          add(p, run_end - pos);
          pos = run_end;
          continue;
        }
        auto next = inode->extents.first_ending_after(fb);
        uint64_t run_end =
            next == inode->extents.end() ? end : std::min(end, next->second.file_block * kBlock);
        add(nullptr, run_end - pos);
        pos = run_end;
      }
    }
    consume(segs);
  }
  return Status::ok();
}

Status FilesystemImpl::note_direct_stores(Ino ino) {
  CacheGate::Pass pass(cache_gate_);
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  if (read_only_) return Status::ok();
  WriterLock lock(inode->mu);
  // An immutable file's times stay (the flag may have come between the
  // stores and this call: no writable mapping of it can be granted now).
  if (!inode->in_use() || is_immutable(inode->core)) return Status::ok();
  inode->core.mtime = inode->core.ctime = now_ns();
  mark_times_dirty(*inode);
  return Status::ok();
}

void FilesystemImpl::touch_atime(Inode& inode) {
  WriterLock lock(inode.mu);
  if (!inode.in_use()) return;
  InodeCore& c = inode.core;
  int64_t now = now_ns();
  if (!atime_due(c, now)) return;
  c.atime = now;
  mark_times_dirty(inode);
}

Result<size_t> FilesystemImpl::read_copy(Ino ino, uint64_t offset, void* buf, size_t length) {
  CacheGate::Pass pass(cache_gate_);
  size_t copied = 0;
  Status faulted;
  RETURN_IF_ERROR(read(ino, offset, length, [&](const std::vector<ReadSegment>& segs) {
    auto* out = static_cast<std::byte*>(buf);
    // A media fault (SIGBUS) on the source bytes fails this read with EIO.
    faulted = region_->guarded("file data read", [&] {
      for (const auto& s : segs) {
        if (s.data == nullptr) {
          std::memset(out + copied, 0, s.length);
        } else {
          std::memcpy(out + copied, s.data, s.length);
        }
        copied += s.length;
      }
    });
  }));
  RETURN_IF_ERROR(faulted);
  return copied;
}

Result<size_t> FilesystemImpl::write(Ino ino, uint64_t offset, const void* buf, size_t length,
                                     bool append) {
  CacheGate::Pass pass(cache_gate_);
  RETURN_IF_ERROR(check_writable());
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  WriterLock lock(inode->mu);
  if (!inode->in_use()) return Status(Code::kStale, "inode freed");
  if (S_ISDIR(inode->core.mode)) return Status(Code::kIsDir, "write to a directory");
  if (!S_ISREG(inode->core.mode)) return Status(Code::kInvalid, "write to a special file");
  if (is_immutable(inode->core)) return Status(Code::kPermission, "write: immutable inode");
  if (append) offset = inode->core.size;
  size_t kept = 0;
  if (is_append_only(inode->core) && !append) {
    ASSIGN_OR_RETURN(kept, unchanged_below_eof(*inode, offset, buf, length));
    offset += kept;
    buf = static_cast<const std::byte*>(buf) + kept;
    length -= kept;
  }
  ASSIGN_OR_RETURN(size_t written, write_locked(*inode, offset, buf, length));
  return kept + written;
}

// An append-only file takes writes at its end only. A write that arrives
// with an offset (the writeback cache places O_APPEND writes itself and
// writes back whole pages; a descriptor whose O_APPEND fcntl cleared, which
// the kernel cannot refuse for a FUSE file) may still start below EOF when
// the bytes it carries there are the ones the file holds: those are skipped
// and the rest is appended. Anything else would change what the file says.
Result<size_t> FilesystemImpl::unchanged_below_eof(const Inode& inode, uint64_t offset,
                                                   const void* buf, size_t length) {
  const uint64_t size = inode.core.size;
  if (offset > size) return Status(Code::kPermission, "write past EOF of an append-only inode");
  const uint64_t end = std::min<uint64_t>(offset + length, size);
  const auto* src = static_cast<const std::byte*>(buf);
  if (inode.has_inline_data()) {
    if (std::memcmp(src, inline_data_of(inode) + offset, end - offset) != 0) {
      return Status(Code::kPermission, "overwrite inside an append-only inode");
    }
    return static_cast<size_t>(end - offset);
  }
  bool same = true;
  RETURN_IF_ERROR(region_->guarded("file data read", [&] {
    inode.mu.assert_held_shared();  // the caller's, held across this call
    for (uint64_t pos = offset; pos < end && same;) {
      const uint64_t fb = pos / kBlock;
      const Extent* e = inode.extents.find(fb);
      uint64_t stop = end;
      if (e != nullptr) {
        stop = std::min(end, e->file_end() * kBlock);
      } else if (auto next = inode.extents.first_ending_after(fb);
                 next != inode.extents.end()) {
        stop = std::min(end, next->second.file_block * kBlock);
      }
      const std::byte* mine = src + (pos - offset);
      if (e != nullptr && !e->unwritten) {
        const std::byte* held =
            region_->data() + (e->region_block + (fb - e->file_block)) * kBlock + pos % kBlock;
        same = std::memcmp(mine, held, stop - pos) == 0;
      } else {
        for (uint64_t i = 0; i < stop - pos && same; ++i) same = mine[i] == std::byte{0};
      }
      pos = stop;
    }
  }));
  if (!same) return Status(Code::kPermission, "overwrite inside an append-only inode");
  return static_cast<size_t>(end - offset);
}

Result<size_t> FilesystemImpl::write_locked(Inode& inode, uint64_t offset, const void* buf,
                                            size_t length) {
  if (length == 0) return size_t{0};
  if (offset >= kMaxFileSize) return Status(Code::kTooBig, "write beyond the maximum file size");
  length = static_cast<size_t>(std::min<uint64_t>(length, kMaxFileSize - offset));
  const uint64_t end = offset + length;
  const uint64_t fb_end = (end + kBlock - 1) / kBlock;

  if (inode.has_inline_data() && end <= format::kInlineDataMax) {
    // Stays in the slot: one transaction, data and all. Only growth asks
    // the gate, as for a file in extents.
    if (end > inode.core.size || options_.gate_every_write) {
      RETURN_IF_ERROR(gate(inode).status());
    }
    return write_inline(inode, offset, buf, length);
  }
  bool layout_change = end > inode.core.size || inode.has_inline_data();
  for (uint64_t fb = offset / kBlock; fb < fb_end && !layout_change;) {
    const Extent* e = inode.extents.find(fb);
    if (e == nullptr || e->unwritten) layout_change = true;
    else fb = e->file_end();
  }
  if (!layout_change && options_.gate_every_write) RETURN_IF_ERROR(gate(inode).status());
  const auto* src = static_cast<const std::byte*>(buf);
  if (!layout_change) {
    // An overwrite of written blocks inside EOF: data only. The new times
    // stay in DRAM until the inode's next transaction, its fsync or the
    // unmount (lazytime: docs/design.md, "Timestamps").
    for (uint64_t pos = offset; pos < end;) {
      uint64_t fb = pos / kBlock;
      const Extent* e = inode.extents.find(fb);
      uint64_t stop = std::min(end, e->file_end() * kBlock);
      uint64_t at = (e->region_block + (fb - e->file_block)) * kBlock + pos % kBlock;
      data_->write(at, src + (pos - offset), stop - pos);
      pos = stop;
    }
    // A media fault in a copy (backing store full, poison) fails the whole
    // write with EIO: nothing of it is acknowledged.
    RETURN_IF_ERROR(data_->drain());
    inode.core.mtime = inode.core.ctime = now_ns();
    mark_times_dirty(inode);
    return length;
  }
  ASSIGN_OR_RETURN(LayoutPermit permit, gate(inode));
  return write_changing_layout(inode, permit, offset, buf, length);
}

Result<size_t> FilesystemImpl::write_changing_layout(Inode& inode, const LayoutPermit& permit,
                                                     uint64_t offset, const void* buf,
                                                     size_t length) {
  check_permit(permit, inode);
  const uint64_t end = offset + length;
  const uint64_t fb_end = (end + kBlock - 1) / kBlock;
  const auto* src = static_cast<const std::byte*>(buf);
  RETURN_IF_ERROR(settle_freed_metadata());

  // Undo of this write's block-map edits, should they not commit.
  LayoutUndo undo(inode);
  MetaTxn t(*this);
  // Past the slot's capacity: the inline bytes move to a block in this
  // transaction, so a crash leaves the old inline file or the written one.
  if (Status moved = move_inline_to_extents(t, inode, permit); !moved.is_ok()) {
    undo.restore();
    return moved;
  }
  // Writes data into blocks [fb, fb + n) at region block `rb`, zeroing the
  // parts of those blocks the write does not cover.
  auto fill_new = [&](uint64_t fb, uint64_t rb, uint64_t n, uint64_t pos) -> uint64_t {
    uint64_t block_start = fb * kBlock;
    uint64_t stop = std::min(end, (fb + n) * kBlock);
    uint64_t base = rb * kBlock;
    if (pos > block_start) data_->zero(base, pos - block_start);
    data_->write(base + (pos - block_start), src + (pos - offset), stop - pos);
    uint64_t blocks_end = (fb + n) * kBlock;
    if (stop < blocks_end) data_->zero(base + (stop - block_start), blocks_end - stop);
    return stop;
  };
  // Bytes for blocks the file has written already are visible the moment
  // they land, so they are copied only once nothing can refuse the write
  // any more (the allocations and the extent blocks below): a write refused
  // with ENOSPC leaves the file's bytes as they were. New and unwritten
  // blocks are filled at once; nothing shows them before the commit.
  struct Overwrite {
    uint64_t at;    // region offset
    uint64_t from;  // offset in the caller's buffer
    uint64_t length;
  };
  std::vector<Overwrite> overwrites;
  uint64_t pos = offset;
  Status alloc_error;
  while (pos < end) {
    uint64_t fb = pos / kBlock;
    const Extent* e = inode.extents.find(fb);
    if (e != nullptr && !e->unwritten) {
      uint64_t stop = std::min(end, e->file_end() * kBlock);
      uint64_t at = (e->region_block + (fb - e->file_block)) * kBlock + pos % kBlock;
      overwrites.push_back({at, pos - offset, stop - pos});
      pos = stop;
      continue;
    }
    if (e != nullptr) {
      // Unwritten: the blocks become written in place, and with them the
      // rest of their kZeroOutBlocks-aligned chunk of the extent (inside
      // EOF), zeroed: the next writes nearby are then plain overwrites with
      // no transaction. set_unwritten merges the chunk with written
      // neighbours contiguous on media, so a preallocated file written in
      // random order returns to few extents.
      uint64_t eof_block = (std::max(inode.core.size, end) + kBlock - 1) / kBlock;
      uint64_t lo = std::max(e->file_block, fb / kZeroOutBlocks * kZeroOutBlocks);
      uint64_t write_hi = std::min(fb_end, e->file_end());
      uint64_t chunk_hi = (write_hi + kZeroOutBlocks - 1) / kZeroOutBlocks * kZeroOutBlocks;
      uint64_t hi = std::max(write_hi, std::min({chunk_hi, e->file_end(), eof_block}));
      uint64_t rb = e->region_block + (lo - e->file_block);
      pos = fill_new(lo, rb, hi - lo, pos);
      inode.extents.set_unwritten(lo, hi - lo, false);
      continue;
    }
    auto next = inode.extents.first_ending_after(fb);
    uint64_t hole_end = next == inode.extents.end() ? fb_end
                                                     : std::min(fb_end, next->second.file_block);
    auto b = alloc_->allocate(t.txn(), hole_end - fb, inode.extents.goal_for(fb));
    if (!b.is_ok()) {
      alloc_error = b.status();
      break;
    }
    pos = fill_new(fb, b->start, b->count, pos);
    inode.extents.insert(Extent{fb, b->start, b->count, false});
    inode.core.blocks += b->count;
  }
  // A media fault in any copy above fails the whole write with EIO.
  if (Status drained = data_->drain(); !drained.is_ok()) {
    undo.restore();
    return drained;
  }
  uint64_t written = pos - offset;
  if (written == 0) {
    undo.restore();
    return alloc_error.is_ok() ? Status(Code::kNoSpace, "no space") : alloc_error;
  }
  if (Status s = sync_extent_blocks(t, inode); !s.is_ok()) {
    undo.restore();
    return s;
  }
  for (const Overwrite& o : overwrites) {
    if (o.from >= written) break;  // past a short write's end
    data_->write(o.at, src + o.from, std::min(o.length, written - o.from));
  }
  if (!overwrites.empty()) {
    if (Status drained = data_->drain(); !drained.is_ok()) {
      undo.restore();
      return drained;
    }
  }
  int64_t now = now_ns();
  inode.core.size = std::max(inode.core.size, offset + written);
  inode.core.mtime = inode.core.ctime = now;
  t.dirty(&inode);
  t.data_written();
  if (Status s = t.commit(); !s.is_ok()) {
    undo.restore();
    return s;
  }
  return static_cast<size_t>(written);
}

// A free block that held journaled metadata (directory, symlink, xattr or
// extent block) is rewritten by the replay of any transaction before the log
// tail that logged it: data written there now would be clobbered by recovery
// after a crash. So before data goes into newly mapped blocks, a checkpoint
// moves the tail past every committed transaction that freed such a block.
Status FilesystemImpl::settle_freed_metadata() {
  uint64_t frees = metadata_frees_.load();
  if (frees == metadata_frees_settled_.load()) return Status::ok();
  RETURN_IF_ERROR(journal_->checkpoint());
  uint64_t settled = metadata_frees_settled_.load();
  while (settled < frees && !metadata_frees_settled_.compare_exchange_weak(settled, frees)) {
  }
  return Status::ok();
}

Result<uint64_t> FilesystemImpl::lseek(Ino ino, uint64_t offset, int whence) {
  CacheGate::Pass pass(cache_gate_);
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return Status(Code::kInvalid, "whence");
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  ReaderLock lock(inode->mu);
  const uint64_t size = inode->core.size;
  if (offset >= size) return Status(Code::kNxio, "offset at or beyond EOF");
  // An inline file is data from its first byte to its last.
  if (inode->has_inline_data()) return whence == SEEK_DATA ? offset : size;
  if (whence == SEEK_DATA) {
    for (auto it = inode->extents.first_ending_after(offset / kBlock); it != inode->extents.end();
         ++it) {
      if (it->second.unwritten) continue;
      uint64_t start = std::max(offset, it->second.file_block * kBlock);
      if (start < size) return start;
      break;
    }
    return Status(Code::kNxio, "no data after offset");
  }
  uint64_t pos = offset;
  while (pos < size) {
    const Extent* e = inode->extents.find(pos / kBlock);
    if (e == nullptr || e->unwritten) return pos;
    pos = e->file_end() * kBlock;
  }
  return size;
}

Result<size_t> FilesystemImpl::copy_file_range(Ino in, uint64_t in_offset, Ino out,
                                               uint64_t out_offset, size_t length) {
  CacheGate::Pass pass(cache_gate_);
  if (in == out && in_offset < out_offset + length && out_offset < in_offset + length) {
    return Status(Code::kInvalid, "overlapping ranges in one file");
  }
  // The kernel refuses an O_APPEND target (EBADF) before asking; a target
  // made append-only since its open is refused here.
  ASSIGN_OR_RETURN(InodeAttrFlags target, get_flags(out));
  if (target.flags & (format::kInodeAppend | format::kInodeImmutable)) {
    return Status(Code::kPermission, "copy into an immutable or append-only inode");
  }
  constexpr size_t kChunk = 1 << 20;
  std::vector<std::byte> buf(std::min(length, kChunk));
  size_t done = 0;
  while (done < length) {
    size_t want = std::min(kChunk, length - done);
    ASSIGN_OR_RETURN(size_t got, read_copy(in, in_offset + done, buf.data(), want));
    if (got == 0) break;
    auto w = write(out, out_offset + done, buf.data(), got, false);
    if (!w.is_ok()) {
      if (done > 0) break;
      return w.status();
    }
    done += *w;
    if (*w < got) break;
  }
  return done;
}

}  // namespace sealfs
