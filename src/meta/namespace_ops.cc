// Namespace operations: lookup, create, link, unlink, rmdir, rename, open.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "meta/filesystem_impl.h"
#include "meta/inode_flags.h"
#include "meta/layout_undo.h"

namespace sealfs {

namespace {

// Directory state an operation may change, restored when its commit fails.
struct DirUndo {
  LayoutUndo layout;
  explicit DirUndo(Inode* d) REQUIRES(d->mu) : layout(*d) {}
  void restore() const {
    layout.restore();
    assert_inode_locked(layout.inode());
    layout.inode()->dir.reset();  // rebuilt from media on next use
  }
};

}  // namespace

Result<Attr> FilesystemImpl::lookup(Ino parent, std::string_view name) {
  CacheGate::Pass pass(cache_gate_);
  if (name.size() > format::kNameMax) return Status(Code::kNameTooLong, "name too long");
  if (name == ".") return lookup_self(parent);      // handle_lookup.cc
  if (name == "..") return lookup_parent(parent);
  ASSIGN_OR_RETURN(Inode * dir, live(parent));
  ReaderLock dl(dir->mu);
  if (!dir->in_use()) return Status(Code::kStale, "directory freed");
  if (!S_ISDIR(dir->core.mode)) return Status(Code::kNotDir, "lookup in a non-directory");
  RETURN_IF_ERROR(ensure_dir_index(*dir));
  const std::optional<DirLocation> loc = dir->dir->find(name);
  if (!loc) return Status(Code::kNotFound, std::string(name));
  Inode* child = slot(loc->ino);
  if (child == dir) {
    // A damaged directory naming itself: its lock is already held.
    return Status(Code::kCorruption, "directory " + std::to_string(dir->ino) + " names itself");
  }
  // Until the mount is verified (mount_verifier.cc) the names are not yet
  // checked against the inodes: a damaged one is refused here.
  if (child == nullptr) {
    return Status(Code::kCorruption, "directory " + std::to_string(dir->ino) + ": entry '" +
                                         std::string(name) + "' -> no such inode");
  }
  if (child->load_failed) return unreadable_inode(child->ino);
  WriterLock cl(child->mu);
  if (!child->in_use()) {
    return Status(Code::kCorruption, "directory " + std::to_string(dir->ino) + ": entry '" +
                                         std::string(name) + "' -> free inode " +
                                         std::to_string(child->ino));
  }
  // A name always goes with the link count it holds up (unlink, rmdir and
  // rename change both in one transaction): a named inode with none is
  // damage the verifier refuses, and the kernel must not be told that a
  // named file has no links before it has.
  if (child->core.nlink == 0) {
    return Status(Code::kCorruption, "directory " + std::to_string(dir->ino) + ": entry '" +
                                         std::string(name) + "' -> inode " +
                                         std::to_string(child->ino) + " with link count 0");
  }
  if (loc->type != dtype_for_mode(child->core.mode)) {
    return Status(Code::kCorruption, "directory " + std::to_string(dir->ino) + ": entry '" +
                                         std::string(name) + "' has type " +
                                         std::to_string(loc->type) + ", inode " +
                                         std::to_string(child->ino) + " is of type " +
                                         std::to_string(dtype_for_mode(child->core.mode)));
  }
  // A directory has one name, so its parent is known once looked up; the
  // verifier sets the rest (and checks the one name).
  if (S_ISDIR(child->core.mode) && child->parent == 0) child->parent = dir->ino;
  child->lookups.add(1);
  return attr_of(*child);
}

Result<Attr> FilesystemImpl::make_node(Ino parent, std::string_view name, uint32_t mode,
                                       uint32_t rdev, const Cred& cred,
                                       std::string_view symlink_target, bool open_it) {
  RETURN_IF_ERROR(check_writable());
  RETURN_IF_ERROR(check_name(name));
  if (name == "." || name == "..") return Status(Code::kExists, std::string(name));
  ASSIGN_OR_RETURN(Inode * dir, live(parent));
  WriterLock dl(dir->mu);
  if (!dir->in_use()) return Status(Code::kStale, "directory freed");
  if (!S_ISDIR(dir->core.mode)) return Status(Code::kNotDir, "parent is not a directory");
  if (dir->core.nlink == 0) return Status(Code::kNotFound, "directory was removed");
  RETURN_IF_ERROR(ensure_dir_index(*dir));
  if (dir->dir->find(name)) return Status(Code::kExists, std::string(name));
  RETURN_IF_ERROR(check_dir_may_change(dir->core, false));
  if (S_ISDIR(mode) && dir->core.nlink >= kMaxLinks) {
    return Status(Code::kTooManyLinks, "too many subdirectories");
  }
  // The umask, or the parent's default ACL: the new inode's mode and ACLs.
  XattrList inherited;
  RETURN_IF_ERROR(inherit_acls(*dir, &mode, cred.umask, &inherited));
  ASSIGN_OR_RETURN(Inode * inode, allocate_inode());
  WriterLock il(inode->mu);
  DirUndo undo(dir);
  const uint32_t generation = inode->core.generation + 1;
  int64_t now = now_ns();
  InodeCore& c = inode->core;
  c = InodeCore{};
  c.mode = mode;
  c.uid = cred.uid;
  c.gid = cred.gid;
  if (dir->core.mode & S_ISGID) {
    c.gid = dir->core.gid;
    if (S_ISDIR(mode)) c.mode |= S_ISGID;
  }
  c.flags = dir->core.flags & kFlagsInheritedFromDirectory;
  // Regular files start in the slot (inline_data.cc).
  if (S_ISREG(mode) && new_files_inline()) c.flags |= format::kInodeInlineData;
  c.nlink = S_ISDIR(mode) ? 2 : 1;
  c.generation = generation;
  c.rdev = (S_ISCHR(mode) || S_ISBLK(mode)) ? rdev : 0;
  c.atime = c.mtime = c.ctime = now;
  inode->unborn = true;
  inode->extents.clear();
  inode->chain.clear();
  inode->inline_bytes.clear();
  inode->lookups.reset();
  inode->opens.reset();
  inode->dir.reset();

  MetaTxn t(*this);
  auto fail = [&](Status s) -> Status {
    inode->mu.assert_held();  // taken above, held until this function returns
    undo.restore();
    inode->core = InodeCore{};
    inode->core.generation = generation - 1;
    inode->extents.clear();
    inode->inline_bytes.clear();
    release_inode_number(inode->ino);
    return s;
  };
  if (S_ISLNK(mode)) {
    c.size = symlink_target.size();
    if (symlink_target.size() <= format::kInlineSymlinkMax) {
      inode->inline_bytes.assign(symlink_target);
    } else {
      auto b = alloc_->allocate(t.txn(), 1, 0);
      if (!b.is_ok()) return fail(b.status());
      data_->write(block_offset(b->start), symlink_target.data(), symlink_target.size());
      data_->zero(block_offset(b->start) + symlink_target.size(),
                  format::kBlockSize - symlink_target.size());
      t.data_written();
      inode->extents.insert(Extent{0, b->start, 1, false});
      c.blocks = 1;
    }
  }
  Status s = write_xattrs(t, *inode, {}, inherited);
  if (!s.is_ok()) return fail(s);
  s = dir_insert(t, *dir, name, inode->ino, dtype_for_mode(mode));
  if (!s.is_ok()) return fail(s);
  if (S_ISDIR(mode)) {
    dir->core.nlink += 1;
    inode->parent = dir->ino;
  }
  dir->core.mtime = dir->core.ctime = now;
  t.dirty(dir);
  t.dirty(inode);
  s = t.commit();
  if (!s.is_ok()) return fail(s);
  inode->lookups.add(1);
  if (open_it) inode->opens.add(1);
  return attr_of(*inode);
}

Result<Attr> FilesystemImpl::mknod(Ino parent, std::string_view name, uint32_t mode, uint32_t rdev,
                                   const Cred& cred) {
  CacheGate::Pass pass(cache_gate_);
  uint32_t type = mode & S_IFMT;
  if (type == 0) mode |= S_IFREG;
  else if (type == S_IFDIR || type == S_IFLNK) return Status(Code::kInvalid, "mknod type");
  return make_node(parent, name, mode, rdev, cred, {}, false);
}

Result<Attr> FilesystemImpl::mkdir(Ino parent, std::string_view name, uint32_t mode,
                                   const Cred& cred) {
  CacheGate::Pass pass(cache_gate_);
  return make_node(parent, name, S_IFDIR | (mode & 07777), 0, cred, {}, false);
}

Result<Attr> FilesystemImpl::symlink(Ino parent, std::string_view name, std::string_view target,
                                     const Cred& cred) {
  CacheGate::Pass pass(cache_gate_);
  if (target.size() > kSymlinkMax) return Status(Code::kNameTooLong, "symlink target too long");
  if (target.empty()) return Status(Code::kNotFound, "empty symlink target");
  return make_node(parent, name, S_IFLNK | 0777, 0, cred, target, false);
}

Result<Attr> FilesystemImpl::create(Ino parent, std::string_view name, uint32_t mode, int flags,
                                    const Cred& cred) {
  CacheGate::Pass pass(cache_gate_);
  auto made = make_node(parent, name, S_IFREG | (mode & 07777), 0, cred, {}, true);
  if (made.is_ok() || made.status().code() != Code::kExists || (flags & O_EXCL)) return made;
  // Lost a race with another creator: open the existing file.
  ASSIGN_OR_RETURN(Attr attr, lookup(parent, name));
  if (S_ISDIR(attr.mode)) {
    forget(attr.ino, 1);
    return Status(Code::kIsDir, std::string(name));
  }
  Status s = open(attr.ino, flags);
  if (!s.is_ok()) {
    forget(attr.ino, 1);
    return s;
  }
  return getattr(attr.ino);
}

Result<std::string> FilesystemImpl::readlink(Ino ino) {
  CacheGate::Pass pass(cache_gate_);
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  ReaderLock lock(inode->mu);
  if (!S_ISLNK(inode->core.mode)) return Status(Code::kInvalid, "not a symlink");
  if (inode->extents.empty()) return inode->inline_bytes.str();
  const Extent& e = inode->extents.begin()->second;
  uint64_t len = std::min<uint64_t>(inode->core.size, format::kBlockSize);
  return std::string(reinterpret_cast<const char*>(region_->data() + block_offset(e.region_block)),
                     len);
}

Result<Attr> FilesystemImpl::link(Ino ino, Ino new_parent, std::string_view new_name) {
  CacheGate::Pass pass(cache_gate_);
  RETURN_IF_ERROR(check_writable());
  RETURN_IF_ERROR(check_name(new_name));
  ASSIGN_OR_RETURN(Inode * dir, live(new_parent));
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  WriterLock dl(dir->mu);
  if (!dir->in_use()) return Status(Code::kStale, "directory freed");
  if (!S_ISDIR(dir->core.mode)) return Status(Code::kNotDir, "link target is not a directory");
  if (dir == inode) return Status(Code::kPermission, "hard link to a directory");
  WriterLock il(inode->mu);
  if (!inode->in_use()) return Status(Code::kStale, "inode freed");
  if (S_ISDIR(inode->core.mode)) return Status(Code::kPermission, "hard link to a directory");
  if (inode->core.nlink == 0) return Status(Code::kNotFound, "file was unlinked");
  if (inode->core.nlink >= kMaxLinks) return Status(Code::kTooManyLinks, "too many links");
  if (dir->core.nlink == 0) return Status(Code::kNotFound, "directory was removed");
  RETURN_IF_ERROR(check_may_modify(inode->core, "link"));
  RETURN_IF_ERROR(check_dir_may_change(dir->core, false));
  RETURN_IF_ERROR(ensure_dir_index(*dir));
  if (dir->dir->find(new_name)) return Status(Code::kExists, std::string(new_name));
  DirUndo undo(dir);
  InodeCore saved = inode->core;
  MetaTxn t(*this);
  Status s = dir_insert(t, *dir, new_name, inode->ino, dtype_for_mode(inode->core.mode));
  if (s.is_ok()) {
    int64_t now = now_ns();
    inode->core.nlink += 1;
    inode->core.ctime = now;
    dir->core.mtime = dir->core.ctime = now;
    t.dirty(dir);
    t.dirty(inode);
    s = t.commit();
  }
  if (!s.is_ok()) {
    undo.restore();
    inode->core = saved;
    return s;
  }
  inode->lookups.add(1);
  return attr_of(*inode);
}

Status FilesystemImpl::remove_entry(Ino parent, std::string_view name, bool is_rmdir) {
  RETURN_IF_ERROR(check_writable());
  if (name.size() > format::kNameMax) return Status(Code::kNameTooLong, "name too long");
  if (is_rmdir && name == ".") return Status(Code::kInvalid, "rmdir .");
  if (is_rmdir && name == "..") return Status(Code::kNotEmpty, "rmdir ..");
  ASSIGN_OR_RETURN(Inode * dir, live(parent));
  WriterLock dl(dir->mu);
  if (!dir->in_use()) return Status(Code::kStale, "directory freed");
  if (!S_ISDIR(dir->core.mode)) return Status(Code::kNotDir, "parent is not a directory");
  RETURN_IF_ERROR(ensure_dir_index(*dir));
  const std::optional<DirLocation> loc = dir->dir->find(name);
  if (!loc) return Status(Code::kNotFound, std::string(name));
  Inode* child = slot(loc->ino);
  WriterLock cl(child->mu);
  // Before the type and emptiness checks, as may_delete.
  RETURN_IF_ERROR(check_dir_may_change(dir->core, true));
  RETURN_IF_ERROR(check_may_modify(child->core, is_rmdir ? "rmdir" : "unlink"));
  bool child_is_dir = S_ISDIR(child->core.mode);
  if (is_rmdir) {
    if (!child_is_dir) return Status(Code::kNotDir, std::string(name));
    RETURN_IF_ERROR(ensure_dir_index(*child));
    if (!child->dir->empty()) return Status(Code::kNotEmpty, std::string(name));
  } else if (child_is_dir) {
    return Status(Code::kIsDir, std::string(name));
  }
  DirUndo undo(dir);
  InodeCore saved = child->core;
  int64_t now = now_ns();
  MetaTxn t(*this);
  dir_remove(t, *dir, name);
  if (child_is_dir) {
    child->core.nlink = 0;
    dir->core.nlink -= 1;
  } else {
    child->core.nlink -= 1;
  }
  child->core.ctime = now;
  dir->core.mtime = dir->core.ctime = now;
  if (child->core.nlink == 0) {
    child->core.flags |= format::kInodeOrphan;
    t.orphan_add(child);
  }
  t.dirty(dir);
  t.dirty(child);
  Status s = t.commit();
  if (!s.is_ok()) {
    undo.restore();
    child->core = saved;
    return s;
  }
  maybe_free(*child);
  return Status::ok();
}

Status FilesystemImpl::unlink(Ino parent, std::string_view name) {
  CacheGate::Pass pass(cache_gate_);
  Status s = remove_entry(parent, name, false);
  notify_deferred_frees();
  return s;
}

Status FilesystemImpl::rmdir(Ino parent, std::string_view name) {
  CacheGate::Pass pass(cache_gate_);
  return remove_entry(parent, name, true);
}

Status FilesystemImpl::open(Ino ino, int flags) {
  CacheGate::Pass pass(cache_gate_);
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  // check_writable() below waits for the mount's verifier, which takes
  // inode locks: wait here, before this one is held.
  if (!read_only_ && ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))) {
    (void)await_verified();
  }
  WriterLock lock(inode->mu);
  if (!inode->in_use()) return Status(Code::kStale, "inode freed");
  bool writing = (flags & O_ACCMODE) != O_RDONLY;
  if (writing && S_ISDIR(inode->core.mode)) return Status(Code::kIsDir, "open a directory for writing");
  RETURN_IF_ERROR(check_may_open(inode->core, flags));
  // Linux truncates on O_TRUNC whatever the access mode (the kernel has
  // already checked write permission), and marks mtime/ctime even when the
  // file is empty, as POSIX asks.
  bool truncating = (flags & O_TRUNC) && S_ISREG(inode->core.mode);
  if (writing || truncating) RETURN_IF_ERROR(check_writable());
  if (truncating) {
    ASSIGN_OR_RETURN(LayoutPermit permit, gate(*inode));
    RETURN_IF_ERROR(truncate_locked(*inode, permit, 0));
  }
  inode->opens.add(1);
  return Status::ok();
}

}  // namespace sealfs
