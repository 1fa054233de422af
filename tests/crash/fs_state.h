// A filesystem's visible state, captured by walking it through the
// Filesystem API, and the invariants every state must satisfy.
//
// The crash tier compares the state a recovered image shows with the states
// the live filesystem showed when each operation returned.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "meta/filesystem.h"

namespace sealfs::crash {

// Eight bytes that fill the blocks of deleted files before a workload: a
// recovered file that shows them exposes another file's stale data.
inline constexpr char kStaleWord[8] = {'S', 'T', 'A', 'L', 'E', '!', '#', '$'};

struct NodeState {
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;  // 512-byte units
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  std::string target;                         // symlinks
  std::map<std::string, std::string> xattrs;
  std::string content;                        // regular files
};

struct FsState {
  std::map<std::string, Ino> paths;  // "/" is the root
  std::map<Ino, NodeState> nodes;
};

// Walks the tree from the root with getattr/readdir (no lookups, so the walk
// takes no inode references). Appends every broken invariant to `problems`:
// an entry that does not resolve or whose type disagrees with the inode, a
// wrong "..", a directory with two names, link counts that disagree with the
// names (and subdirectories) found, a size that disagrees with the data read.
FsState capture(Filesystem& fs, std::vector<std::string>& problems);

// No leak: free blocks plus the blocks of every reachable inode cover the
// data area, and the inodes in use are exactly the reachable ones. Only
// valid when no unlinked inode is still open.
void check_space(Filesystem& fs, const FsState& state, std::vector<std::string>& problems);

// How timestamps compare. A regular file's times may lag after a crash: an
// overwrite of written blocks keeps them in DRAM until the inode's next
// transaction or fsync (lazytime; docs/design.md, "Timestamps"), so a
// recovered file may show older times than the live one did, never newer.
enum class Times { kExact, kFileTimesMayLag };

// First metadata difference (names, inode numbers, attributes, symlink
// targets, xattrs; not file contents), or "" when equal.
std::string metadata_diff(const FsState& got, const FsState& want, Times times = Times::kExact);

// Contents of every regular file in `got` (whose metadata equals `want`):
// each 8-byte word equals the word in `want` or, when `other` is given (the
// other side of an operation cut by the crash), the word at the same place in
// `other`'s version of the inode. No word may be kStaleWord. Returns the
// first violation or "".
std::string content_diff(const FsState& got, const FsState& want, const FsState* other);

}  // namespace sealfs::crash
