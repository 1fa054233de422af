// Proof that a change of one file's size or block map may proceed.
//
// The functions of the meta layer that change a file's block map or cut
// its size (truncate_locked, free_range, allocate_unwritten, the
// allocating part of a write, allocate_for_lease, relocate_for_lease,
// move_inline_to_extents and leave_inline) take
// a LayoutPermit for that inode, as Region::writable() takes a
// RegionWriteKey: a new path that calls them without asking the layout
// gate does not compile. (Code that edits an ExtentMap or a size directly
// is not covered; keep such edits inside those functions.) A permit is
// made in two places only (FilesystemImpl):
//   - gate(inode): the LayoutGate was asked under the inode's lock and the
//     inode has no direct-mapping leases (docs/design.md section 6);
//   - permit_for_lease(held): the change is made for a lease request, under
//     the layout lock the grant holds: ALLOCATE fills holes, and the undo
//     of a refused EXTEND frees what that EXTEND allocated, and EXTEND moves
//     an inline file's bytes to a block (leave_inline: an inline file has
//     no block a holder could map). (RELOCATE and a MAP's move of an
//     inline file ask the gate; EXTEND's own growth of the size moves no
//     block.)
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
