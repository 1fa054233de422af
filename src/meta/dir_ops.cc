// Directory blocks of a directory inode: index building, entry insert,
// remove and retarget, readdir.
#include <dirent.h>
#include <sys/stat.h>

#include "meta/filesystem_impl.h"

namespace sealfs {

namespace {
uint8_t dtype_of(uint32_t mode) { return static_cast<uint8_t>(IFTODT(mode)); }

// The one write of Inode::dir under a shared lock: a reader building the
// index (ensure_dir_index) sets it, with table_mu_ held so that builders are
// serialised. Once set it changes only under the exclusive lock (an undo,
// the inode's free), so a shared holder that has seen it set may use it.
// The analysis knows Inode::dir as guarded by the inode lock, which a shared
// holder may not write; this is the one exception.
void publish_dir_index(Inode& dir, std::unique_ptr<DirIndex> index) NO_THREAD_SAFETY_ANALYSIS {
  if (!dir.dir) dir.dir = std::move(index);
}

}  // namespace

Status FilesystemImpl::check_name(std::string_view name) const {
  if (name.empty()) return Status(Code::kInvalid, "empty name");
  if (name.size() > format::kNameMax) return Status(Code::kNameTooLong, "name too long");
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return Status(Code::kInvalid, "bad character in name");
  }
  return Status::ok();
}

Result<uint64_t> FilesystemImpl::dir_region_block(const Inode& dir, uint32_t index) const {
  const Extent* e = dir.extents.find(index);
  if (e == nullptr) {
    return Status(Code::kCorruption, "directory " + std::to_string(dir.ino) + " has a hole");
  }
  return e->region_block + (index - e->file_block);
}

// Caller holds dir.mu (shared or exclusive). The index is built once; a
// shared holder may build it, guarded by table_mu_ (a leaf) to serialise
// builders.
Status FilesystemImpl::ensure_dir_index(Inode& dir) {
  {
    MutexLock lock(table_mu_);
    if (dir.dir) return Status::ok();
  }
  auto index = std::make_unique<DirIndex>();
  // The size comes from media. The index grows block by block and a
  // directory has no holes, so a damaged size stops at the first unmapped
  // block (Corruption) instead of sizing the index from the size alone
  // (gigabytes, found by tests/fuzz/image_fuzz) or wrapping in 32 bits.
  const uint64_t nblocks = dir.core.size / format::kBlockSize;
  if (nblocks > UINT32_MAX) {
    return Status(Code::kCorruption, "directory " + std::to_string(dir.ino) + " size " +
                                         std::to_string(dir.core.size) + " is impossible");
  }
  // Two passes: the first checks the blocks and counts the names and their
  // bytes, so that the index's arrays are made once at their final size.
  // Grown by doubling and then shrunk, they left freed arrays of every size
  // behind in malloc's heap (issue 12 counts the daemon's memory per name).
  std::vector<const std::byte*> blocks;
  uint64_t names = 0, name_bytes = 0;
  for (uint32_t bi = 0; bi < nblocks; ++bi) {
    ASSIGN_OR_RETURN(uint64_t rb, dir_region_block(dir, bi));
    const std::byte* b = region_->data() + block_offset(rb);
    Status s = dir_block_verify(b, dir.ino);
    if (!s.is_ok()) return s.with_context("directory " + std::to_string(dir.ino));
    Status bad;
    dir_block_for_each(b, [&](const DirBlockEntry& e) {
      if (!bad.is_ok()) return;
      bad = dir_entry_check(e, geo_.inode_count);
      ++names;
      name_bytes += e.name.size();
    });
    if (!bad.is_ok()) return bad.with_context("directory " + std::to_string(dir.ino));
    blocks.push_back(b);
  }
  index->reserve(names, name_bytes);
  index->largest_free.reserve(blocks.size());
  for (uint32_t bi = 0; bi < blocks.size(); ++bi) {
    Status bad;
    dir_block_for_each(blocks[bi], [&](const DirBlockEntry& e) {
      if (bad.is_ok() && !index->add(e.name, DirLocation{e.ino, bi, e.offset, e.type})) {
        bad = dir_entry_damage(e, "a second entry of this name");
      }
    });
    if (!bad.is_ok()) return bad.with_context("directory " + std::to_string(dir.ino));
    index->largest_free.push_back(dir_block_largest_free(blocks[bi]));
  }
  MutexLock lock(table_mu_);
  publish_dir_index(dir, std::move(index));
  return Status::ok();
}

Status FilesystemImpl::dir_insert(MetaTxn& t, Inode& dir, std::string_view name, uint64_t ino,
                                  uint8_t type) {
  RETURN_IF_ERROR(ensure_dir_index(dir));
  DirIndex& index = *dir.dir;
  uint32_t need = format::dir_entry_size(static_cast<uint32_t>(name.size()));
  for (uint32_t bi = 0; bi < index.largest_free.size(); ++bi) {
    if (index.largest_free[bi] < need) continue;
    ASSIGN_OR_RETURN(uint64_t rb, dir_region_block(dir, bi));
    std::byte* img = t.block(rb);
    auto at = dir_block_insert(img, name, ino, type);
    if (!at) continue;
    index.largest_free[bi] = dir_block_largest_free(img);
    index.set(name, DirLocation{ino, bi, *at, type});
    return Status::ok();
  }
  // A new block at the end of the directory.
  uint32_t bi = static_cast<uint32_t>(index.largest_free.size());
  ASSIGN_OR_RETURN(BlockExtent b, alloc_->allocate(t.txn(), 1, dir.extents.goal_for(bi)));
  std::byte* img = t.fresh_block(b.start);
  dir_block_init(img, dir.ino);
  auto at = dir_block_insert(img, name, ino, type);
  dir.extents.insert(Extent{bi, b.start, 1, false});
  dir.core.blocks += 1;
  dir.core.size += format::kBlockSize;
  RETURN_IF_ERROR(sync_extent_blocks(t, dir));
  index.largest_free.push_back(dir_block_largest_free(img));
  index.set(name, DirLocation{ino, bi, *at, type});
  return Status::ok();
}

void FilesystemImpl::dir_remove(MetaTxn& t, Inode& dir, std::string_view name) {
  DirIndex& index = *dir.dir;
  const DirLocation loc = *index.find(name);
  uint64_t rb = dir_region_block(dir, loc.block_index).value();
  std::byte* img = t.block(rb);
  dir_block_remove(img, loc.offset);
  index.largest_free[loc.block_index] = dir_block_largest_free(img);
  index.erase(name);
}

void FilesystemImpl::dir_retarget(MetaTxn& t, Inode& dir, std::string_view name, uint64_t ino,
                                  uint8_t type) {
  DirIndex& index = *dir.dir;
  DirLocation loc = *index.find(name);
  uint64_t rb = dir_region_block(dir, loc.block_index).value();
  dir_block_retarget(t.block(rb), loc.offset, ino, type);
  loc.ino = ino;
  loc.type = type;
  index.set(name, loc);
}

Status FilesystemImpl::readdir(Ino ino, uint64_t cookie,
                               const std::function<bool(const DirEntry&)>& emit) {
  CacheGate::Pass pass(cache_gate_);
  ASSIGN_OR_RETURN(Inode * dir, live(ino));
  // "..": a directory reached by number before the mount's verifier set
  // its parent link waits for it (lookup_parent), before the lock.
  if (cookie <= 1 && dir->parent.load() == 0) (void)await_verified();
  ReaderLock lock(dir->mu);
  if (!dir->in_use()) return Status(Code::kStale, "directory freed");
  if (!S_ISDIR(dir->core.mode)) return Status(Code::kNotDir, "readdir on a non-directory");
  if (cookie <= 0) {
    if (!emit(DirEntry{".", dir->ino, DT_DIR, 1})) return Status::ok();
  }
  if (cookie <= 1) {
    uint64_t parent = dir->parent != 0 ? dir->parent.load() : dir->ino;
    if (!emit(DirEntry{"..", parent, DT_DIR, 2})) return Status::ok();
  }
  uint64_t pos = cookie >= 3 ? cookie - 3 : 0;
  uint64_t first_block = pos >> format::kBlockShift;
  uint64_t nblocks = dir->core.size / format::kBlockSize;
  for (uint64_t bi = first_block; bi < nblocks; ++bi) {
    ASSIGN_OR_RETURN(uint64_t rb, dir_region_block(*dir, static_cast<uint32_t>(bi)));
    const std::byte* b = region_->data() + block_offset(rb);
    Status s = dir_block_verify(b, dir->ino);
    if (!s.is_ok()) return s.with_context("directory " + std::to_string(dir->ino));
    uint64_t min_offset = bi == first_block ? (pos & (format::kBlockSize - 1)) : 0;
    bool stop = false;
    Status bad;
    dir_block_for_each(b, [&](const DirBlockEntry& e) {
      if (stop || e.offset < min_offset) return;
      // Names the daemon could not have stored are refused, not listed; a
      // name listed twice is the verifier's to find (mount_verifier.cc).
      bad = dir_entry_check(e, geo_.inode_count);
      if (!bad.is_ok()) {
        stop = true;
        return;
      }
      uint64_t c = dir_cookie(static_cast<uint32_t>(bi), e.offset);
      if (!emit(DirEntry{e.name, e.ino, e.type, c + 1})) stop = true;
    });
    if (!bad.is_ok()) return bad.with_context("directory " + std::to_string(dir->ino));
    if (stop) break;
  }
  return Status::ok();
}

uint8_t dtype_for_mode(uint32_t mode) { return dtype_of(mode); }

}  // namespace sealfs
