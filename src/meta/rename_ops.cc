// rename(2) with RENAME_NOREPLACE, RENAME_EXCHANGE and RENAME_WHITEOUT, in
// one transaction.
#include <linux/fs.h>
#include <sys/stat.h>

#include "meta/filesystem_impl.h"
#include "meta/inode_flags.h"
#include "meta/layout_undo.h"

namespace sealfs {

// True if `ancestor` is `ino` or one of its ancestors. Parent links change
// only under rename_mu_, which the caller holds.
Result<bool> FilesystemImpl::is_ancestor(Ino ancestor, Ino ino) {
  uint64_t cur = ino;
  for (uint64_t steps = 0; steps <= geo_.inode_count; ++steps) {
    if (cur == ancestor) return true;
    if (cur == format::kRootIno) return false;
    Inode* i = slot(cur);
    if (i == nullptr || i->parent == 0) return false;
    cur = i->parent;
  }
  return Status(Code::kCorruption, "directory parent chain has a loop");
}

Status FilesystemImpl::rename(Ino parent, std::string_view name, Ino new_parent,
                              std::string_view new_name, unsigned flags, const Cred& cred) {
  CacheGate::Pass pass(cache_gate_);
  Status s = rename_entries(parent, name, new_parent, new_name, flags, cred);
  notify_deferred_frees();
  return s;
}

Status FilesystemImpl::rename_entries(Ino parent, std::string_view name, Ino new_parent,
                                      std::string_view new_name, unsigned flags,
                                      const Cred& cred) {
  RETURN_IF_ERROR(check_writable());
  if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) != 0 ||
      ((flags & RENAME_EXCHANGE) && (flags & (RENAME_NOREPLACE | RENAME_WHITEOUT)))) {
    return Status(Code::kInvalid, "rename flags");
  }
  const bool whiteout = (flags & RENAME_WHITEOUT) != 0;
  RETURN_IF_ERROR(check_name(name));
  RETURN_IF_ERROR(check_name(new_name));
  if (name == "." || name == ".." || new_name == "." || new_name == "..") {
    return Status(Code::kInvalid, "rename of . or ..");
  }
  const bool exchange = (flags & RENAME_EXCHANGE) != 0;
  MutexLock rename_lock(rename_mu_);
  ASSIGN_OR_RETURN(Inode * src_dir, live(parent));
  ASSIGN_OR_RETURN(Inode * dst_dir, live(new_parent));
  // Directories in the lock order (meta/locking.h).
  Inode* first = src_dir;
  Inode* second = dst_dir == src_dir ? nullptr : dst_dir;
  if (second != nullptr) {
    ASSIGN_OR_RETURN(bool dst_above, is_ancestor(dst_dir->ino, src_dir->ino));
    ASSIGN_OR_RETURN(bool src_above, is_ancestor(src_dir->ino, dst_dir->ino));
    if (dst_above || (!src_above && dst_dir->ino < src_dir->ino)) std::swap(first, second);
  }
  WriterLock l1(first->mu);
  std::unique_lock<SmallSharedMutex> l2;
  if (second != nullptr) l2 = std::unique_lock(second->mu);
  // Which of the locks is which is chosen at run time (the order above).
  assert_inode_locked(src_dir);
  assert_inode_locked(dst_dir);
  if (!src_dir->in_use() || !dst_dir->in_use()) return Status(Code::kStale, "directory freed");
  if (!S_ISDIR(src_dir->core.mode) || !S_ISDIR(dst_dir->core.mode)) {
    return Status(Code::kNotDir, "rename parent is not a directory");
  }
  RETURN_IF_ERROR(ensure_dir_index(*src_dir));
  RETURN_IF_ERROR(ensure_dir_index(*dst_dir));
  const std::optional<DirLocation> sloc = src_dir->dir->find(name);
  if (!sloc) return Status(Code::kNotFound, std::string(name));
  const std::optional<DirLocation> tloc = dst_dir->dir->find(new_name);
  if ((flags & RENAME_NOREPLACE) && tloc.has_value()) return Status(Code::kExists, std::string(new_name));
  if (exchange && !tloc) return Status(Code::kNotFound, std::string(new_name));
  Inode* src = slot(sloc->ino);
  Inode* tgt = tloc.has_value() ? slot(tloc->ino) : nullptr;
  if (src == tgt) return Status::ok();  // same file: nothing to do (POSIX)
  if (src == dst_dir) return Status(Code::kInvalid, "move a directory into itself");
  if (tgt == src_dir || tgt == dst_dir) {
    return exchange ? Status(Code::kInvalid, "exchange with an ancestor")
                    : Status(Code::kNotEmpty, "target is an ancestor of the source");
  }
  // The children's types from their entries: their modes may be read only
  // under their locks, which are taken in an order that depends on the
  // types. Checked against the modes once those locks are held.
  const bool src_is_dir = sloc->type == dtype_for_mode(S_IFDIR);
  const bool tgt_is_dir = tloc.has_value() && tloc->type == dtype_for_mode(S_IFDIR);
  if (src_is_dir && src_dir != dst_dir) {
    ASSIGN_OR_RETURN(bool loop, is_ancestor(src->ino, dst_dir->ino));
    if (loop) return Status(Code::kInvalid, "move a directory into its own subtree");
  }
  if (exchange && tgt_is_dir && src_dir != dst_dir) {
    ASSIGN_OR_RETURN(bool loop, is_ancestor(tgt->ino, src_dir->ino));
    if (loop) return Status(Code::kInvalid, "move a directory into its own subtree");
  }
  // Children in the lock order (meta/locking.h): directories first.
  Inode* c1 = src;
  Inode* c2 = tgt;
  if (c2 != nullptr) {
    auto key = [](Inode* i, bool is_dir) { return std::pair(is_dir ? 0 : 1, i->ino); };
    if (key(c2, tgt_is_dir) < key(c1, src_is_dir)) std::swap(c1, c2);
  }
  WriterLock l3(c1->mu);
  std::unique_lock<SmallSharedMutex> l4;
  if (c2 != nullptr) l4 = std::unique_lock(c2->mu);
  assert_inode_locked(src);
  assert_inode_locked(tgt);  // when there is one
  if (S_ISDIR(src->core.mode) != src_is_dir ||
      (tgt != nullptr && S_ISDIR(tgt->core.mode) != tgt_is_dir)) {
    return Status(Code::kCorruption, "rename: a directory entry's type is not its inode's; "
                                     "run fsck.sealfs");
  }
  // As may_delete / may_create: the source leaves its directory, a target
  // is removed from (or, exchanged, leaves) its own.
  RETURN_IF_ERROR(check_dir_may_change(src_dir->core, true));
  RETURN_IF_ERROR(check_dir_may_change(dst_dir->core, tgt != nullptr));
  RETURN_IF_ERROR(check_may_modify(src->core, "rename"));
  if (tgt != nullptr) RETURN_IF_ERROR(check_may_modify(tgt->core, "rename over"));

  if (!exchange && tgt != nullptr) {
    if (src_is_dir && !tgt_is_dir) return Status(Code::kNotDir, std::string(new_name));
    if (!src_is_dir && tgt_is_dir) return Status(Code::kIsDir, std::string(new_name));
    if (tgt_is_dir) {
      RETURN_IF_ERROR(ensure_dir_index(*tgt));
      if (!tgt->dir->empty()) return Status(Code::kNotEmpty, std::string(new_name));
    }
    if (S_ISREG(tgt->core.mode) && tgt->core.nlink == 1) RETURN_IF_ERROR(gate(*tgt).status());
  }
  if (src_dir != dst_dir) {
    int grow = (src_is_dir ? 1 : 0) - (exchange && tgt_is_dir ? 1 : 0);
    if (grow > 0 && !(tgt_is_dir && !exchange) && dst_dir->core.nlink >= kMaxLinks) {
      return Status(Code::kTooManyLinks, "too many subdirectories");
    }
  }

  std::vector<LayoutUndo> saved;
  for (Inode* i : {src_dir, dst_dir, src, tgt}) {
    if (i == nullptr) continue;
    bool seen = false;
    for (auto& s : saved) seen |= s.inode() == i;
    if (!seen) saved.emplace_back(*i);
  }
  uint64_t src_parent_before = src->parent;
  uint64_t tgt_parent_before = tgt != nullptr ? tgt->parent.load() : 0;

  int64_t now = now_ns();
  // The whiteout: a fresh inode nobody else can reach yet, so its lock
  // comes last without breaking the order.
  Inode* wo = nullptr;
  std::unique_lock<SmallSharedMutex> l5;
  if (whiteout) {
    ASSIGN_OR_RETURN(wo, allocate_inode());
    l5 = std::unique_lock(wo->mu);
    assert_inode_locked(wo);
    init_whiteout(*wo, cred, now);
  }
  MetaTxn t(*this);
  Status s;
  std::string src_name(name);
  std::string dst_name(new_name);
  if (exchange) {
    dir_retarget(t, *src_dir, src_name, tgt->ino, dtype_for_mode(tgt->core.mode));
    dir_retarget(t, *dst_dir, dst_name, src->ino, dtype_for_mode(src->core.mode));
    if (src_dir != dst_dir) {
      if (src_is_dir) {
        src_dir->core.nlink -= 1;
        dst_dir->core.nlink += 1;
        src->parent = dst_dir->ino;
      }
      if (tgt_is_dir) {
        dst_dir->core.nlink -= 1;
        src_dir->core.nlink += 1;
        tgt->parent = src_dir->ino;
      }
    }
    tgt->core.ctime = now;
  } else {
    if (tgt != nullptr) {
      dir_retarget(t, *dst_dir, dst_name, src->ino, dtype_for_mode(src->core.mode));
      if (tgt_is_dir) {
        tgt->core.nlink = 0;
        dst_dir->core.nlink -= 1;
      } else {
        tgt->core.nlink -= 1;
      }
      tgt->core.ctime = now;
      if (tgt->core.nlink == 0) {
        tgt->core.flags |= format::kInodeOrphan;
        t.orphan_add(tgt);
      }
    } else {
      s = dir_insert(t, *dst_dir, dst_name, src->ino, dtype_for_mode(src->core.mode));
    }
    if (s.is_ok() && wo != nullptr) {
      dir_retarget(t, *src_dir, src_name, wo->ino, dtype_for_mode(S_IFCHR));
      if (src_is_dir && src_dir != dst_dir) {
        src_dir->core.nlink -= 1;
        dst_dir->core.nlink += 1;
        src->parent = dst_dir->ino;
      }
    } else if (s.is_ok()) {
      dir_remove(t, *src_dir, src_name);
      if (src_is_dir && src_dir != dst_dir) {
        src_dir->core.nlink -= 1;
        dst_dir->core.nlink += 1;
        src->parent = dst_dir->ino;
      }
    }
  }
  if (s.is_ok()) {
    src->core.ctime = now;
    src_dir->core.mtime = src_dir->core.ctime = now;
    dst_dir->core.mtime = dst_dir->core.ctime = now;
    for (auto& sv : saved) {
      assert_inode_locked(sv.inode());  // one of the locks above
      t.dirty(sv.inode());
    }
    if (wo != nullptr) {
      assert_inode_locked(wo);  // l5
      t.dirty(wo);
    }
    s = t.commit();
  }
  if (!s.is_ok()) {
    if (wo != nullptr) {
      assert_inode_locked(wo);  // l5
      undo_whiteout(*wo);
    }
    for (auto& sv : saved) sv.restore();
    src_dir->dir.reset();
    dst_dir->dir.reset();
    src->parent = src_parent_before;
    if (tgt != nullptr) tgt->parent = tgt_parent_before;
    return s;
  }
  if (tgt != nullptr && !exchange && tgt->core.nlink == 0) maybe_free(*tgt);
  return Status::ok();
}

void FilesystemImpl::init_whiteout(Inode& wo, const Cred& cred, int64_t now) {
  const uint32_t generation = wo.core.generation + 1;
  InodeCore& c = wo.core;
  c = InodeCore{};
  c.mode = S_IFCHR;  // WHITEOUT_MODE: no permission bits, device 0/0
  c.uid = cred.uid;
  c.gid = cred.gid;
  c.nlink = 1;
  c.generation = generation;
  c.atime = c.mtime = c.ctime = now;
  wo.unborn = true;
  wo.extents.clear();
  wo.chain.clear();
  wo.inline_bytes.clear();
  wo.lookups.reset();
  wo.opens.reset();
  wo.dir.reset();
}

void FilesystemImpl::undo_whiteout(Inode& wo) {
  const uint32_t generation = wo.core.generation - 1;
  wo.core = InodeCore{};
  wo.core.generation = generation;
  release_inode_number(wo.ino);
}

}  // namespace sealfs
