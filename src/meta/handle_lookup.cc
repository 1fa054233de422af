// Lookups by inode number: "." and "..", which a path walk resolves in the
// VFS and which reach the filesystem only from the kernel's export
// operations (fs/fuse/inode.c fuse_get_dentry and fuse_get_parent, behind
// open_by_handle_at(2) and nfsd). The kernel asks "." of an inode number it
// no longer holds and compares the generation we answer with the one in
// the handle; it asks ".." of a directory to reconnect it to the tree.
#include <thread>

#include "meta/filesystem_impl.h"

namespace sealfs {

// Any type of inode, not only directories: a handle names a file as well.
// An inode with no name left is as gone as a freed one for a handle (the
// kernel turns kStale into ESTALE); a reused number answers with its new
// generation, which the kernel finds different from the handle's.
Result<Attr> FilesystemImpl::lookup_self(Ino ino) {
  Inode* inode = slot(ino);
  if (inode == nullptr) return Status(Code::kStale, "no inode " + std::to_string(ino));
  if (inode->load_failed) return unreadable_inode(ino);
  WriterLock lock(inode->mu);
  if (!inode->in_use()) return Status(Code::kStale, "inode " + std::to_string(ino) + " is free");
  if (inode->core.nlink == 0) {
    return Status(Code::kStale, "inode " + std::to_string(ino) + " was removed");
  }
  inode->lookups.add(1);
  return attr_of(*inode);
}

// The parent link kept in DRAM (set at mount from the directory entries,
// moved by rename); the root is its own parent.
Result<Attr> FilesystemImpl::lookup_parent(Ino ino) {
  ASSIGN_OR_RETURN(Inode * dir, live(ino));
  for (;;) {
    uint64_t parent = 0;
    {
      ReaderLock dl(dir->mu);
      if (!dir->in_use()) return Status(Code::kStale, "directory freed");
      if (!S_ISDIR(dir->core.mode)) return Status(Code::kNotDir, "'..' of a non-directory");
      if (dir->core.nlink == 0) return Status(Code::kStale, "directory was removed");
      parent = dir->parent.load();
    }
    if (parent == 0) {
      // Not yet looked up by name since the mount: the verifier sets it.
      if (Status s = await_verified(); !s.is_ok()) {
        return Status(Code::kIoError,
                      "parent of " + std::to_string(ino) + " unknown: " + s.to_string());
      }
      parent = dir->parent != 0 ? dir->parent.load() : dir->ino;
    }
    // Locking the parent while holding the child would invert the order
    // (meta/locking.h), so between the two locks the directory may have
    // been moved or removed, and its old parent removed and its number
    // reused. Under the parent's lock the link cannot move away from it
    // (a rename or rmdir out of it takes that lock): if it still points
    // there, the directory is a child of `up` or was removed from it, and
    // its own lock tells which. That lock is only tried: when the directory
    // was removed and `up` is a reuser of the number, `up` is no ancestor
    // and waiting here could invert the order, so contention means retry.
    Inode* up = slot(parent);
    if (up == nullptr) return Status(Code::kStale, "parent " + std::to_string(parent));
    std::unique_lock lock(up->mu);  // dropped below when the child's lock is contended
    up->mu.assert_held();
    const uint64_t now_parent = dir->parent != 0 ? dir->parent.load() : dir->ino;
    if (now_parent != parent) continue;  // moved meanwhile: ask again
    if (up != dir) {
      std::shared_lock dl(dir->mu, std::try_to_lock);
      if (!dl.owns_lock()) {
        lock.unlock();
        std::this_thread::yield();
        continue;
      }
      dir->mu.assert_held_shared();
      if (!dir->in_use() || dir->core.nlink == 0) {
        return Status(Code::kStale, "directory was removed");
      }
    }
    if (!up->in_use() || !S_ISDIR(up->core.mode) || up->core.nlink == 0) {
      return Status(Code::kStale, "parent " + std::to_string(parent) + " is gone");
    }
    up->lookups.add(1);
    return attr_of(*up);
  }
}

}  // namespace sealfs
