// ExtentChain: the DRAM index of a file's overflow blocks, the extent blocks
// that hold its extents beyond the inline ones (format: docs/format.md, §7).
//
// The blocks form a chain in file order. Block i holds the extents whose
// file block lies in [start(i), start(i+1)): start(0) is the key of the first
// extent past the inline ones (it moves as extents come and go in front),
// and start(i), i > 0, is the first file block the block held when it was
// created or loaded. Blocks need not be full; none is empty. So an edit of
// the extent map rewrites only the blocks whose ranges hold an edited key
// (FilesystemImpl::sync_extent_blocks): an overfull block is split in two, an
// emptied one unlinked, and nothing else moves. The cost of a write is the
// extents it changed, not the number the file has.
//
// Edits are logged like ExtentMap's, for the undo of a failed transaction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace sealfs {

class ExtentChain {
 public:
  struct Link {
    uint64_t region_block = 0;
    uint64_t start = 0;  // first file block of the block's range (ignored for block 0)
    bool operator==(const Link&) const = default;
  };

  ExtentChain() = default;
  ExtentChain(const ExtentChain&) = delete;
  ExtentChain& operator=(const ExtentChain&) = delete;

  bool empty() const { return links().empty(); }
  size_t size() const { return links().size(); }
  const Link& operator[](size_t i) const { return links()[i]; }
  const std::vector<Link>& links() const { return rep_ ? rep_->links : no_links(); }
  // First block of the chain (the inode's extent_block), 0 when empty.
  uint64_t head() const { return empty() ? 0 : links().front().region_block; }
  // Region block of the block after `i`, 0 at the end.
  uint64_t next_after(size_t i) const {
    return i + 1 < size() ? links()[i + 1].region_block : 0;
  }
  // The block whose range holds file block `key` (block 0 for keys in front
  // of every start). The chain must not be empty.
  size_t index_of(uint64_t key) const;

  // The key of the first overflow extent when the blocks were last written.
  uint64_t synced_start() const { return rep_ ? rep_->synced_start : 0; }

  void insert(size_t i, Link link);
  void erase(size_t i);
  void set_synced_start(uint64_t key);
  // Loading from media: no log.
  void load(std::vector<Link> links, uint64_t synced_start);
  void clear() { rep_.reset(); }

  size_t change_mark() const { return rep_ ? rep_->changes.size() : 0; }
  void undo_to(size_t mark);
  // Forgets the log, and frees everything when the chain is empty.
  void forget_changes();

 private:
  struct Change {
    enum class Kind { kInsert, kErase, kStart } kind;
    size_t index = 0;
    Link link;            // kErase: the link removed
    uint64_t start = 0;   // kStart: the previous synced start
  };
  // Made by the first edit or load of a non-empty chain: most files have
  // no overflow block, and a cached inode then pays one pointer for its
  // chain (issue 12: 200 bytes of DRAM per cached inode), not 56 bytes.
  struct Rep {
    std::vector<Link> links;
    uint64_t synced_start = 0;
    std::vector<Change> changes;
  };
  static const std::vector<Link>& no_links();
  Rep& rep();
  std::unique_ptr<Rep> rep_;
};

}  // namespace sealfs
