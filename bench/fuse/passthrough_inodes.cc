#include "passthrough_inodes.h"

#include <unistd.h>

namespace passthrough {

InodeTable::InodeTable(int root_fd) {
  root_.fd = root_fd;
  root_.nlookup = 1;
}

InodeTable::~InodeTable() {
  for (auto& [key, entry] : by_key_) close(entry->inode.fd);
  close(root_.fd);
}

// A node id other than the root is the address of its Entry: no second
// search on the hot path. The address stays valid until the last forget,
// after which the kernel no longer sends that id.
int InodeTable::fd_of(fuse_ino_t ino) {
  if (ino == FUSE_ROOT_ID) return root_.fd;
  return reinterpret_cast<Entry*>(ino)->inode.fd;
}

fuse_ino_t InodeTable::remember(int fd, const struct stat& st) {
  Key key{st.st_dev, st.st_ino};
  std::lock_guard lock(mutex_);
  auto it = by_key_.find(key);
  if (it != by_key_.end()) {
    close(fd);
    ++it->second->inode.nlookup;
    return reinterpret_cast<fuse_ino_t>(it->second.get());
  }
  auto entry = std::make_unique<Entry>();
  entry->key = key;
  entry->inode.fd = fd;
  entry->inode.nlookup = 1;
  Entry* raw = entry.get();
  by_key_.emplace(key, std::move(entry));
  return reinterpret_cast<fuse_ino_t>(raw);
}

void InodeTable::forget(fuse_ino_t ino, uint64_t n) {
  if (ino == FUSE_ROOT_ID) return;
  auto* entry = reinterpret_cast<Entry*>(ino);
  int fd = -1;
  {
    std::lock_guard lock(mutex_);
    if (entry->inode.nlookup > n) {
      entry->inode.nlookup -= n;
      return;
    }
    fd = entry->inode.fd;
    by_key_.erase(entry->key);  // frees entry
  }
  close(fd);
}

}  // namespace passthrough
