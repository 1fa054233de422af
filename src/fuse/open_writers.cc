#include "fuse/open_writers.h"

#include <fcntl.h>

namespace sealfs::fuse {
namespace {

bool can_write(int open_flags) { return (open_flags & O_ACCMODE) != O_RDONLY; }

}  // namespace

uint32_t OpenWriters::opened(uint64_t ino, int open_flags) {
  MutexLock lock(mu_);
  auto it = writers_.find(ino);
  const uint32_t others = it == writers_.end() ? 0 : it->second;
  if (can_write(open_flags)) ++writers_[ino];
  return others;
}

void OpenWriters::released(uint64_t ino, int open_flags) {
  if (!can_write(open_flags)) return;
  MutexLock lock(mu_);
  auto it = writers_.find(ino);
  if (it == writers_.end()) return;
  if (--it->second == 0) writers_.erase(it);
}

}  // namespace sealfs::fuse
