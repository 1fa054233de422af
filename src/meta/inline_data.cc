// Inline data (format.h kInodeInlineData): a regular file of at most
// kInlineDataMax bytes keeps them in its inode slot. DRAM holds no copy:
// reads point at the committed slot in the region (inline_data_of), and a
// change stages the bytes in Inode::inline_bytes (exactly core.size bytes)
// only until its commit. Every change of those bytes is a change of the
// slot, so it commits through the journal like any attribute: a crash
// leaves the old slot or the new one, never a mix.
//
// A file leaves inline storage (move_inline_to_extents) when a write,
// truncate or fallocate takes it past kInlineDataMax, and before any direct
// mapping (file_lease.cc): its bytes go to a newly allocated block inside the
// same transaction that maps the block and clears the flag. It comes back
// only when truncated to size 0 with no block left (truncate_locked):
// bytes of a larger file are never copied back into the slot.
//
// Every function here is called with inode.mu held exclusively.
#include <sys/stat.h>

#include <cstring>

#include "meta/filesystem_impl.h"
#include "meta/layout_undo.h"

namespace sealfs {

namespace {
constexpr uint64_t kBlock = format::kBlockSize;
}  // namespace

bool FilesystemImpl::new_files_inline() const { return inline_data_feature_; }

const char* FilesystemImpl::inline_data_of(const Inode& inode) const {
  if (!inode.has_inline_data()) return nullptr;
  if (!inode.inline_bytes.empty()) return inode.inline_bytes.data();
  return reinterpret_cast<const char*>(region_->data() + inode_offset(geo_, inode.ino) +
                                       offsetof(format::DiskInode, u));
}

void FilesystemImpl::stage_inline_bytes(Inode& inode) const {
  if (!inode.has_inline_data() || !inode.inline_bytes.empty() || inode.core.size == 0) return;
  inode.inline_bytes.assign(std::string_view(inline_data_of(inode), inode.core.size));
}

Status FilesystemImpl::move_inline_to_extents(MetaTxn& t, Inode& inode,
                                              const LayoutPermit& permit) {
  check_permit(permit, inode);
  if (!inode.has_inline_data()) return Status::ok();
  const uint64_t size = inode.core.size;
  if (size > 0) {
    // The caller settled freed metadata (settle_freed_metadata) before
    // opening `t`: these bytes go into a block that may have held some.
    ASSIGN_OR_RETURN(BlockExtent b, alloc_->allocate(t.txn(), 1, inode.extents.goal_for(0)));
    const uint64_t at = b.start * kBlock;
    data_->write(at, inline_data_of(inode), size);
    data_->zero(at + size, kBlock - size);
    t.data_written();  // drained before the commit that maps the block
    inode.extents.insert(Extent{0, b.start, 1, false});
    inode.core.blocks += 1;
  }
  inode.core.flags &= ~format::kInodeInlineData;
  inode.inline_bytes.clear();
  t.dirty(&inode);
  return Status::ok();
}

Status FilesystemImpl::leave_inline(Inode& inode, const LayoutPermit& permit) {
  if (!inode.has_inline_data()) return Status::ok();
  RETURN_IF_ERROR(settle_freed_metadata());
  LayoutUndo undo(inode);
  MetaTxn t(*this);
  Status s = move_inline_to_extents(t, inode, permit);
  if (s.is_ok()) s = t.commit();
  if (!s.is_ok()) undo.restore();
  return s.with_context("moving inode " + std::to_string(inode.ino) + " out of its slot");
}

Status FilesystemImpl::commit_inline_edit(Inode& inode, const std::function<void(Inode&)>& edit) {
  LayoutUndo undo(inode);
  stage_inline_bytes(inode);
  edit(inode);
  MetaTxn t(*this);
  t.dirty(&inode);
  Status s = t.commit();
  if (!s.is_ok()) {
    undo.restore();
    return s;
  }
  // Committed: the slot holds the bytes now, DRAM need not.
  inode.inline_bytes.clear();
  return s;
}

Result<size_t> FilesystemImpl::write_inline(Inode& inode, uint64_t offset, const void* buf,
                                            size_t length) {
  const uint64_t end = offset + length;
  const int64_t now = now_ns();
  RETURN_IF_ERROR(commit_inline_edit(inode, [&](Inode& i) {
    i.mu.assert_held();  // commit_inline_edit's caller's
    if (end > i.inline_bytes.size()) i.inline_bytes.resize(end);
    std::memcpy(i.inline_bytes.data() + offset, buf, length);
    i.core.size = i.inline_bytes.size();
    i.core.mtime = i.core.ctime = now;
  }));
  return length;
}

Status FilesystemImpl::resize_inline(Inode& inode, uint64_t new_size, bool touch_mtime) {
  const int64_t now = now_ns();
  return commit_inline_edit(inode, [&](Inode& i) {
    i.mu.assert_held();  // commit_inline_edit's caller's
    i.inline_bytes.resize(new_size);
    i.core.size = new_size;
    i.core.ctime = now;
    if (touch_mtime) i.core.mtime = now;
  });
}

Status FilesystemImpl::zero_inline(Inode& inode, uint64_t offset, uint64_t length,
                                   uint64_t new_size) {
  const int64_t now = now_ns();
  return commit_inline_edit(inode, [&](Inode& i) {
    i.mu.assert_held();  // commit_inline_edit's caller's
    if (new_size > i.inline_bytes.size()) i.inline_bytes.resize(new_size);
    i.core.size = i.inline_bytes.size();
    const uint64_t size = i.core.size;
    if (offset < size) {
      std::memset(i.inline_bytes.data() + offset, 0, std::min(length, size - offset));
    }
    i.core.mtime = i.core.ctime = now;
  });
}

Status FilesystemImpl::return_to_inline(Inode& inode) {
  if (!new_files_inline() || !S_ISREG(inode.core.mode) || inode.has_inline_data()) {
    return Status::ok();
  }
  if (inode.core.size != 0 || !inode.extents.empty() || !inode.chain.empty()) {
    return Status::ok();
  }
  return commit_inline_edit(inode, [](Inode& i) {
    i.mu.assert_held();  // commit_inline_edit's caller's
    i.core.flags |= format::kInodeInlineData;
  });
}

}  // namespace sealfs
