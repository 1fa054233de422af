#include "meta/block_references.h"

#include <algorithm>
#include <optional>

#include "util/bit_words.h"

namespace sealfs {

namespace {

constexpr const char* kRunFsck = "; run fsck.sealfs";

std::string range_text(uint64_t start, uint64_t count) {
  return "[" + std::to_string(start) + ", +" + std::to_string(count) + ")";
}

bool inside(const BlockExtent& b, uint64_t data_start, uint64_t data_blocks) {
  return b.count != 0 && b.start >= data_start && b.start - data_start < data_blocks &&
         b.count <= data_blocks - (b.start - data_start);
}

// The first referent, in enumeration order, that holds `block`.
std::optional<BlockReferent> owner_of(const BlockReferentSource& referents, uint64_t block) {
  std::optional<BlockReferent> found;
  referents([&](const BlockReferent& r) {
    if (!found && block >= r.blocks.start && block < r.blocks.end()) found = r;
  });
  return found;
}

}  // namespace

std::string BlockReferent::describe() const {
  const std::string inode = "inode " + std::to_string(ino);
  switch (kind) {
    case Kind::kExtent:
      return inode + ": extent on blocks " + range_text(blocks.start, blocks.count);
    case Kind::kExtentBlock:
      return inode + ": extent overflow block " + std::to_string(blocks.start);
    case Kind::kXattrBlock:
      return inode + ": xattr block " + std::to_string(blocks.start);
    case Kind::kQuarantine:
      return "holder table: blocks " + range_text(blocks.start, blocks.count) +
             " quarantined for pid " + std::to_string(holder_pid) + " (from inode " +
             std::to_string(ino) + ")";
  }
  return inode;
}

Result<BlockCheckCounts> cross_check_block_bitmap(uint64_t data_start, uint64_t data_blocks,
                                                  const SparseBits& allocated,
                                                  const BlockReferentSource& referents) {
  const uint64_t words = bit_words::words_for(data_blocks);
  if (allocated.bit_count() != data_blocks) {
    return Status(Code::kInvalid, "bitmap of " + std::to_string(allocated.bit_count()) +
                                      " bits for " + std::to_string(data_blocks) + " blocks");
  }
  // One bit per data block: referenced by something seen so far.
  SparseBits referenced(data_blocks);
  BlockCheckCounts counts;
  std::optional<BlockReferent> stopped_at;  // the referent that failed
  bool cross_linked = false;  // else it lies outside the data area
  uint64_t clash = 0;
  referents([&](const BlockReferent& r) {
    if (stopped_at) return;
    if (!inside(r.blocks, data_start, data_blocks)) {
      stopped_at = r;
      return;
    }
    bool clashed = false;
    const uint64_t first = r.blocks.start - data_start;
    bit_words::for_each_word(first, r.blocks.count, [&](uint64_t w, uint64_t mask) {
      const uint64_t both = referenced.word(w) & mask;
      if (both != 0 && !clashed) {
        clashed = true;
        clash = data_start + bit_words::lowest_bit(w, both);
      }
    });
    referenced.assign(first, r.blocks.count, true);
    if (clashed) {
      stopped_at = r;
      cross_linked = true;
      return;
    }
    counts.referenced_blocks += r.blocks.count;
  });
  if (stopped_at && !cross_linked) {
    return Status(Code::kCorruption, stopped_at->describe() + ": outside the data area" + kRunFsck);
  }
  if (stopped_at) {
    // The earlier claimant comes first in the same enumeration order.
    std::optional<BlockReferent> other = owner_of(referents, clash);
    return Status(Code::kCorruption,
                  "block " + std::to_string(clash) + " is cross-linked: " +
                      (other ? other->describe() : std::string("another referent")) + " and " +
                      stopped_at->describe() + kRunFsck);
  }

  // Page by page: a page absent from both (no bit ever set) has nothing to
  // compare, which on a young region is nearly all of them.
  uint64_t first_free = 0, free_count = 0;
  for (uint64_t p = 0; p < allocated.page_count(); ++p) {
    const uint64_t* alloc_page = allocated.page(p);
    const uint64_t* ref_page = referenced.page(p);
    if (alloc_page == nullptr && ref_page == nullptr) continue;
    const uint64_t first_word = p * SparseBits::kWordsPerPage;
    const uint64_t end_word = std::min(words, first_word + SparseBits::kWordsPerPage);
    for (uint64_t w = first_word; w < end_word; ++w) {
      const uint64_t a = alloc_page == nullptr ? 0 : alloc_page[w - first_word];
      const uint64_t r = ref_page == nullptr ? 0 : ref_page[w - first_word];
      const uint64_t missing = r & ~a;
      if (missing != 0) {
        if (free_count == 0) {
          first_free = bit_words::lowest_bit(w, missing);
        }
        free_count += static_cast<uint64_t>(__builtin_popcountll(missing));
      }
      counts.leaked_blocks += static_cast<uint64_t>(__builtin_popcountll(a & ~r));
    }
  }
  if (free_count != 0) {
    // Name the first damaged referent and the run of clear bits in it.
    const uint64_t block = data_start + first_free;
    std::optional<BlockReferent> owner = owner_of(referents, block);
    uint64_t run_end = block + 1;
    const uint64_t limit = owner ? owner->blocks.end() : run_end;
    auto is_set = [&](uint64_t b) { return allocated.test(b - data_start); };
    while (run_end < limit && !is_set(run_end)) ++run_end;
    return Status(Code::kCorruption,
                  (owner ? owner->describe() : std::string("a referent")) + ": blocks " +
                      range_text(block, run_end - block) +
                      " are free in the block bitmap (" + std::to_string(free_count) +
                      " referenced block(s) free in all); the bitmap is damaged" + kRunFsck);
  }
  return counts;
}

}  // namespace sealfs
