// The inode table of the benchmark's passthrough peer (bench/fuse/passthrough):
// one O_PATH descriptor per backing inode the kernel knows, counted by
// lookups and released by forgets, so the peer never resolves a path twice.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

namespace passthrough {

struct Inode {
  int fd = -1;           // O_PATH|O_NOFOLLOW descriptor of the backing inode
  uint64_t nlookup = 0;  // lookups the kernel has not forgotten; InodeTable::mutex_
};

class InodeTable {
 public:
  // Takes ownership of root_fd, the O_PATH descriptor of the served directory.
  explicit InodeTable(int root_fd);
  ~InodeTable();
  InodeTable(const InodeTable&) = delete;
  InodeTable& operator=(const InodeTable&) = delete;

  // The backing descriptor of a node id the kernel sent.
  int fd_of(fuse_ino_t ino);

  // Counts one lookup of the backing inode fd names (st is its stat) and
  // returns its node id. Takes ownership of fd: kept for a new inode, closed
  // when the inode is already known under another descriptor.
  fuse_ino_t remember(int fd, const struct stat& st);

  // The kernel dropped n lookups of ino; the last one closes its descriptor.
  void forget(fuse_ino_t ino, uint64_t n);

 private:
  using Key = std::pair<dev_t, ino_t>;
  struct Entry {
    Key key;
    Inode inode;
  };

  Inode root_;  // FUSE_ROOT_ID; never forgotten
  std::mutex mutex_;  // leaf lock: nothing is called while it is held
  std::map<Key, std::unique_ptr<Entry>> by_key_;  // mutex_
};

}  // namespace passthrough
