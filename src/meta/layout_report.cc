// Read-only snapshots for sealfs-layout (docs/layout.md): a file's block
// map as it is, holes and unwritten extents included, where layout_extents()
// refuses both; the free extents; the inodes in use.
#include "meta/filesystem_impl.h"

namespace sealfs {

Result<FileLayoutReport> FilesystemImpl::file_layout(Ino ino) {
  CacheGate::Pass pass(cache_gate_);
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  ReaderLock lock(inode->mu);
  if (!inode->in_use()) return Status(Code::kStale, "inode freed");
  FileLayoutReport report;
  report.ino = ino;
  report.mode = inode->core.mode;
  report.size = inode->core.size;
  report.flags = {inode->core.flags & format::kInodeUserFlags, inode->core.project_id};
  report.inline_data = inode->has_inline_data();
  report.extents.reserve(inode->extents.count());
  for (const auto& [first, e] : inode->extents) {
    report.extents.push_back({e.file_block * format::kBlockSize,
                              e.region_block * format::kBlockSize,
                              e.length * format::kBlockSize, e.unwritten});
  }
  return report;
}

std::vector<BlockExtent> FilesystemImpl::free_extents() { return alloc_->free_extents(); }

std::vector<Ino> FilesystemImpl::used_inodes() {
  CacheGate::Pass pass(cache_gate_);
  std::vector<Ino> out;
  (void)await_verified();  // the set is known once every slot is read
  MutexLock lock(ialloc_mu_);
  for_each_used_inode([&](uint64_t ino) { out.push_back(ino); });
  return out;
}

}  // namespace sealfs
