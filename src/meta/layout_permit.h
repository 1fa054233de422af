// Proof that a change of one file's size or block map may proceed.
//
// Every function of the meta layer that changes a file's layout takes a
// LayoutPermit for that inode, as Region::writable() takes a RegionWriteKey:
// a new layout-changing path that forgets to ask the layout gate does not
// compile. A permit is made in two places only (FilesystemImpl):
//   - gate(inode): the LayoutGate was asked under the inode's lock and the
//     inode has no direct-mapping leases (docs/design.md section 6);
//   - permit_for_lease(held): the change is made for a lease request, under
//     the layout lock the grant holds (ALLOCATE fills holes, RELOCATE after
//     the other leases are gone, EXTEND and its undo).
// It is valid while the caller keeps holding that inode's lock; it is not
// stored anywhere.
#pragma once

#include <cstdint>

namespace sealfs {

class FilesystemImpl;

class LayoutPermit {
 public:
  uint64_t ino() const { return ino_; }

 private:
  friend class FilesystemImpl;
  explicit LayoutPermit(uint64_t ino) : ino_(ino) {}
  uint64_t ino_;
};

}  // namespace sealfs
