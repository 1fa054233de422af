// Phase 5: the block bitmap against what references blocks (inodes and the
// holder table entries of live holders).
#include <cstring>
#include <algorithm>
#include <vector>
#include <string>

#include "alloc/holder_table.h"
#include "fsck/context.h"
#include "meta/holder_liveness.h"
#include "util/bit_words.h"

namespace sealfs::fsck {

namespace {

// A block range referenced by an inode or a live holder.
struct Owned {
  uint64_t start, end, ino;  // data-block indexes [start, end)
};

uint64_t load_word(const Image& image, uint64_t bitmap_start, uint64_t word) {
  uint64_t byte = word * 8;
  const std::byte* b = image.read_block(bitmap_start + byte / format::kBlockSize);
  uint64_t v = 0;
  std::memcpy(&v, b + byte % format::kBlockSize, 8);  // 8 divides the block size
  return le64toh(v);
}

void store_word(Image& image, uint64_t bitmap_start, uint64_t word, uint64_t value) {
  uint64_t byte = word * 8;
  std::byte* b = image.edit_block(bitmap_start + byte / format::kBlockSize);
  uint64_t v = htole64(value);
  std::memcpy(b + byte % format::kBlockSize, &v, 8);
}

// Bits of word `w` covered by the disjoint ascending `runs`; `cursor` only
// moves forward, so a pass over ascending words costs O(words + runs).
uint64_t expected_word(const std::vector<Owned>& runs, size_t& cursor, uint64_t w) {
  const uint64_t lo = w * 64, hi = lo + 64;
  while (cursor < runs.size() && runs[cursor].end <= lo) ++cursor;
  uint64_t bits = 0;
  for (size_t i = cursor; i < runs.size() && runs[i].start < hi; ++i) {
    uint64_t a = std::max(runs[i].start, lo) - lo, b = std::min(runs[i].end, hi) - lo;
    bits |= bit_words::span_mask(a, b);
  }
  return bits;
}

// Collects runs of set bits of successive (ascending) words.
struct RunCollector {
  std::vector<std::pair<uint64_t, uint64_t>> runs;  // [start, end) data-block indexes
  void feed(uint64_t w, uint64_t bits) {
    while (bits != 0) {
      uint64_t at = static_cast<uint64_t>(__builtin_ctzll(bits));
      uint64_t shifted = bits >> at;  // zeros come in at the top, so the run ends below 64
      uint64_t len = ~shifted == 0 ? 64 : static_cast<uint64_t>(__builtin_ctzll(~shifted));
      uint64_t start = w * bit_words::kBitsPerWord + at;
      if (!runs.empty() && runs.back().second == start) {
        runs.back().second = start + len;
      } else {
        runs.emplace_back(start, start + len);
      }
      bits = at + len >= 64 ? 0 : bits & (~uint64_t{0} << (at + len));
    }
  }
};

void report_runs(Context& ctx, const std::vector<std::pair<uint64_t, uint64_t>>& found,
                 const char* kind, const std::string& what, const std::vector<Owned>& owners) {
  const uint64_t base = ctx.geo().data_start;
  for (const auto& [start, end] : found) {
    uint64_t ino = 0;
    auto it = std::upper_bound(owners.begin(), owners.end(), start,
                               [](uint64_t v, const Owned& o) { return v < o.start; });
    if (it != owners.begin() && std::prev(it)->end > start) ino = std::prev(it)->ino;
    ctx.problem(Phase::kBitmap, kind, ino,
                std::to_string(end - start) + " block(s) at " + std::to_string(base + start) +
                    " " + what);
  }
}

// Whether the bitmap marks every block of `extent` (region block numbers).
bool all_marked(const Image& image, const Geometry& geo, const BlockExtent& extent) {
  if (!image.in_data_area(extent.start, extent.count)) return false;
  bool marked = true;
  bit_words::for_each_word(extent.start - geo.data_start, extent.count,
                           [&](uint64_t w, uint64_t mask) {
                             marked &= (load_word(image, geo.bitmap_start, w) & mask) == mask;
                           });
  return marked;
}

// The parts of `runs` outside `covered` (both ascending; `covered` disjoint).
std::vector<std::pair<uint64_t, uint64_t>> outside(
    const std::vector<std::pair<uint64_t, uint64_t>>& runs, const std::vector<Owned>& covered) {
  std::vector<std::pair<uint64_t, uint64_t>> rest;
  size_t c = 0;
  for (auto [start, end] : runs) {
    while (c < covered.size() && covered[c].end <= start) ++c;
    for (size_t i = c; start < end && i < covered.size() && covered[i].start < end; ++i) {
      if (covered[i].start > start) rest.emplace_back(start, covered[i].start);
      start = std::max(start, covered[i].end);
    }
    if (start < end) rest.emplace_back(start, end);
  }
  return rest;
}

// Sorts ranges and merges those that touch or overlap.
std::vector<Owned> merged(std::vector<Owned> ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const Owned& a, const Owned& b) { return a.start < b.start; });
  std::vector<Owned> out;
  for (const Owned& o : ranges) {
    if (!out.empty() && o.start <= out.back().end) {
      out.back().end = std::max(out.back().end, o.end);
    } else {
      out.push_back(o);
    }
  }
  return out;
}

}  // namespace

void check_bitmap(Context& ctx) {
  const Geometry& geo = ctx.geo();
  const uint64_t words = bit_words::words_for(geo.data_blocks);
  // What is referenced, as ranges: memory grows with the extents in use,
  // never with the region (a bit array of the data area is 32 MiB a TiB).
  std::vector<Owned> owners;
  auto claim = [&](uint64_t block, uint64_t count, uint64_t ino) {
    if (!ctx.image.in_data_area(block, count)) return;
    owners.push_back(Owned{block - geo.data_start, block - geo.data_start + count, ino});
  };
  for (uint64_t ino : ctx.inodes.numbers()) {
    const InodeState& st = ctx.inodes[ino];
    if (!st.used) continue;
    for (const Extent& e : st.extents) claim(e.region_block, e.length, ino);
    for (uint64_t b : st.chain) claim(b, 1, ino);
    for (uint64_t b : st.xattr_blocks) claim(b, 1, ino);
  }

  // What inodes own, merged, before the holder table adds its blocks: a
  // quarantine (blocks a removed file left to a process that mapped them)
  // over blocks a file still maps is a cross-link the daemon refuses.
  const std::vector<Owned> inode_owned = merged(owners);
  const size_t inode_claims = owners.size();
  // The inode that maps one of blocks [block, block + count), or 0.
  auto inode_mapping = [&](uint64_t block, uint64_t count) -> uint64_t {
    if (!ctx.image.in_data_area(block, count)) return 0;
    const uint64_t start = block - geo.data_start, end = start + count;
    auto it = std::upper_bound(inode_owned.begin(), inode_owned.end(), start,
                               [](uint64_t at, const Owned& o) { return at < o.start; });
    const bool overlaps = (it != inode_owned.begin() && std::prev(it)->end > start) ||
                          (it != inode_owned.end() && it->start < end);
    if (!overlaps) return 0;
    // Which one, for the message (merged runs keep their first inode only).
    for (size_t i = 0; i < inode_claims; ++i) {
      if (owners[i].start < end && start < owners[i].end) return owners[i].ino;
    }
    return 0;
  };

  // Holder table: live holders keep their blocks; stale entries are empty.
  auto table = load_holder_table(ctx);
  auto alive = [&](uint32_t pid, uint64_t start) {
    return ctx.opt.holder_alive ? ctx.opt.holder_alive(pid, start)
                                : holder_process_alive(pid, start);
  };
  // Check only: blocks of stale entries the next mount frees (not leaks).
  std::vector<Owned> released;
  auto rewrite_empty = [&](uint64_t b) {
    auto empty = HolderTable::empty_block();
    std::memcpy(ctx.image.edit_block(geo.holder_start + b), empty.data(), empty.size());
  };
  if (!table.is_ok()) {
    ctx.problem(Phase::kBitmap, "holder_table_corrupt", 0,
                ctx.fix(table.status().message(), "holder table emptied",
                        "empty the holder table"));
    for (uint64_t b = 0; b < geo.holder_blocks; ++b) rewrite_empty(b);
  } else {
    std::vector<bool> bad_block(geo.holder_blocks, false);
    for (size_t i = 0; i < table->slot_count(); ++i) {
      const HolderTable::Slot& slot = table->slot(i);
      size_t block = i / format::kHolderEntriesPerBlock;
      if (slot.state == HolderTable::SlotState::kUnusable) {
        if (!bad_block[block]) {
          bad_block[block] = true;
          for (const QuarantineEntry& q : salvage_holder_block(ctx, block, alive)) {
            claim(q.extent.start, q.extent.count, q.ino);
          }
        }
        continue;
      }
      if (slot.state != HolderTable::SlotState::kLive) continue;
      const QuarantineEntry& q = slot.entry;
      // A pin names blocks its file still owns (the file claims them); a
      // quarantine must name blocks no file does. The file keeps them: the
      // entry is what cannot be right, and a file's bytes are the user's.
      if (const uint64_t file = q.pinned ? 0 : inode_mapping(q.extent.start, q.extent.count)) {
        const std::string entry = "quarantine entry for [" + std::to_string(q.extent.start) +
                                  ", +" + std::to_string(q.extent.count) + ") of holder pid " +
                                  std::to_string(q.holder.pid);
        ctx.problem(Phase::kBitmap, "holder_cross_linked", q.ino,
                    ctx.fix(entry + " covers blocks inode " + std::to_string(file) +
                                " maps; the daemon refuses the region",
                            entry + " cleared (the file keeps its blocks)",
                            "clear the " + entry + " (the file keeps its blocks)"));
        if (Transaction* txn = ctx.image.extra()) {
          table->commit_clear(i);
          table->stage_slot(*txn, i);
        }
        continue;
      }
      if (alive(q.holder.pid, q.holder.start_time)) {
        claim(q.extent.start, q.extent.count, q.ino);
        continue;
      }
      const std::string entry = "entry for [" + std::to_string(q.extent.start) + ", +" +
                                std::to_string(q.extent.count) + ")";
      const std::string gone = "holder pid " + std::to_string(q.holder.pid) + " is gone";
      // The next mount drops a gone holder's pins and frees its quarantine
      // (Allocator::open), unless the bitmap marks the quarantined blocks
      // free: then it refuses the region. What the mount does by itself is
      // not damage (a crash with mapped files leaves it): a check reports it
      // as a note, as e2fsck does orphans. A repair writes it, so it counts.
      const bool mount_clears = q.pinned || all_marked(ctx.image, geo, q.extent);
      if (!ctx.repair() && mount_clears) {
        ctx.report.note(Phase::kBitmap, "stale_holder",
                        gone + " (inode " + std::to_string(q.ino) + "); the next mount clears its " +
                            entry + (q.pinned ? "" : " and frees the blocks") + ", as does -y");
        if (!q.pinned) {
          const uint64_t first = q.extent.start - geo.data_start;
          released.push_back(Owned{first, first + q.extent.count, q.ino});
        }
        continue;
      }
      ctx.problem(Phase::kBitmap, "stale_holder", q.ino,
                  ctx.fix(gone + (mount_clears ? "" : "; the bitmap marks its blocks free, so the "
                                                      "daemon refuses the region"),
                          entry + " cleared", "clear its " + entry));
      if (Transaction* txn = ctx.image.extra()) {
        table->commit_clear(i);
        table->stage_slot(*txn, i);
      }
    }
  }

  std::sort(owners.begin(), owners.end(),
            [](const Owned& a, const Owned& b) { return a.start < b.start; });
  const std::vector<Owned> expected = merged(owners);  // disjoint runs
  // Words to compare: those a run covers and those of bitmap blocks that may
  // hold set bits; every other word is zero on both sides.
  std::vector<std::pair<uint64_t, uint64_t>> spans;  // [first word, end word)
  for (const Owned& e : expected) {
    spans.emplace_back(bit_words::word_of(e.start), bit_words::words_for(e.end));
  }
  constexpr uint64_t kWordsPerBlock = format::kBlockSize / 8;
  for (const Image::BlockRun& r : ctx.image.nonzero_blocks(geo.bitmap_start, geo.bitmap_blocks)) {
    spans.emplace_back((r.begin - geo.bitmap_start) * kWordsPerBlock,
                       std::min(words, (r.end - geo.bitmap_start) * kWordsPerBlock));
  }
  std::sort(spans.begin(), spans.end());
  RunCollector used_free, leaked;
  uint64_t referenced = 0;
  size_t cursor = 0;
  uint64_t next = 0;  // first word not yet compared
  for (auto [first, end] : spans) {
    for (uint64_t w = std::max(first, next); w < end; ++w) {
      uint64_t want = expected_word(expected, cursor, w);
      uint64_t stored = load_word(ctx.image, geo.bitmap_start, w);
      uint64_t valid = bit_words::valid_mask(geo.data_blocks, w);
      if ((stored & ~valid) != 0) {
        ctx.problem(Phase::kBitmap, "bitmap_tail", 0,
                    ctx.fix("bits set beyond the data area", "cleared", "clear them"));
      }
      uint64_t actual = stored & valid;
      used_free.feed(w, want & ~actual);
      leaked.feed(w, actual & ~want);
      referenced += static_cast<uint64_t>(__builtin_popcountll(want));
      if (want != stored) store_word(ctx.image, geo.bitmap_start, w, want);
    }
    next = std::max(next, end);
  }
  const uint64_t marked = referenced;
  // Whole bitmap blocks past the data area's last word must be zero too.
  for (uint64_t byte = words * 8; byte < geo.bitmap_blocks * format::kBlockSize;
       byte += format::kBlockSize - byte % format::kBlockSize) {
    uint64_t block = geo.bitmap_start + byte / format::kBlockSize;
    const std::byte* b = ctx.image.read_block(block);
    uint64_t from = byte % format::kBlockSize;
    bool dirty = false;
    for (uint64_t k = from; k < format::kBlockSize; ++k) dirty |= b[k] != std::byte{0};
    if (dirty) {
      ctx.problem(Phase::kBitmap, "bitmap_tail", 0,
                  ctx.fix("bitmap block " + std::to_string(block) +
                              " has bits beyond the data area",
                          "cleared", "clear them"));
      std::memset(ctx.image.edit_block(block) + from, 0, format::kBlockSize - from);
    }
  }
  report_runs(ctx, used_free.runs, "used_but_free",
              ctx.fix("in use but free in the bitmap", "marked used", "mark them used"),
              owners);
  report_runs(ctx, outside(leaked.runs, merged(std::move(released))), "leaked_blocks",
              ctx.fix("marked in the bitmap but unreferenced", "freed", "free them"),
              owners);
  ctx.report.counts.blocks_referenced = referenced;
  ctx.report.counts.blocks_marked = marked;
  ctx.report.counts.data_blocks = geo.data_blocks;
}

}  // namespace sealfs::fsck
