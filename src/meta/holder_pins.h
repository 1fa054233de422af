// HolderPins: blocks that a revoked direct-mapping holder may still reach,
// in DRAM. When a file frees blocks, the pieces that intersect a rule go to
// allocator quarantine against the rule's holder, in the same transaction,
// instead of to free space (FilesystemImpl::release_blocks).
//
// Rules come from the lease engine at revoke time (quarantine_on_free) and,
// at mount, from the allocator's persistent pins of holders still alive.
// A rule lives until its holder is released (it names blocks, and blocks
// are reused once the holder is gone).
//
// Thread-safe; its mutex is a leaf (src/meta/locking.h).
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "alloc/allocator.h"
#include "util/thread_annotations.h"

namespace sealfs {

class HolderPins {
 public:
  void add(const Holder& holder, BlockExtent extent);
  void drop(const Holder& holder);
  bool empty() const;
  // `freed` cut into consecutive pieces, each with the holder whose rule
  // covers it (the earliest rule when several do) or none.
  std::vector<std::pair<BlockExtent, std::optional<Holder>>> split(BlockExtent freed) const;

 private:
  mutable Mutex mu_;
  std::vector<std::pair<Holder, BlockExtent>> rules_ GUARDED_BY(mu_);
};

}  // namespace sealfs
