// Phase 5: the block bitmap against what references blocks (inodes and the
// holder table entries of live holders).
#include <cstring>
#include <map>
#include <string>

#include "alloc/holder_table.h"
#include "fsck/context.h"
#include "meta/holder_liveness.h"

namespace sealfs::fsck {

namespace {

constexpr uint64_t kBitsPerBlock = 8ull * format::kBlockSize;

void set_range(std::vector<uint64_t>& bits, uint64_t first, uint64_t count) {
  for (uint64_t i = first; i < first + count; ++i) bits[i / 64] |= uint64_t{1} << (i % 64);
}

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

// Reports runs of set bits in `diff` (data-block indexes) as one problem each.
void report_runs(Context& ctx, const std::vector<uint64_t>& diff, const char* kind,
                 const char* what, const std::map<uint64_t, std::pair<uint64_t, uint64_t>>& owners) {
  const uint64_t base = ctx.geo().data_start;
  uint64_t i = 0;
  const uint64_t total = diff.size() * 64;
  while (i < total) {
    if (diff[i / 64] == 0) {
      i = (i / 64 + 1) * 64;
      continue;
    }
    if (((diff[i / 64] >> (i % 64)) & 1) == 0) {
      ++i;
      continue;
    }
    uint64_t start = i;
    while (i < total && ((diff[i / 64] >> (i % 64)) & 1) != 0) ++i;
    uint64_t ino = 0;
    auto it = owners.upper_bound(base + start);
    if (it != owners.begin()) {
      auto p = std::prev(it);
      if (p->second.first > base + start) ino = p->second.second;
    }
    ctx.problem(Phase::kBitmap, kind, ino,
                std::to_string(i - start) + " block(s) at " + std::to_string(base + start) + " " +
                    what);
  }
}

}  // namespace

void check_bitmap(Context& ctx) {
  const Geometry& geo = ctx.geo();
  const uint64_t words = (geo.data_blocks + 63) / 64;
  std::vector<uint64_t> expected(words, 0);
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> owners;  // start -> (end, ino)
  auto claim = [&](uint64_t block, uint64_t count, uint64_t ino) {
    if (!ctx.image.in_data_area(block, count)) return;
    set_range(expected, block - geo.data_start, count);
    owners.emplace(block, std::make_pair(block + count, ino));
  };
  for (uint64_t ino = 1; ino < ctx.inodes.size(); ++ino) {
    const InodeState& st = ctx.inodes[ino];
    if (!st.used) continue;
    for (const Extent& e : st.extents) claim(e.region_block, e.length, ino);
    for (uint64_t b : st.chain) claim(b, 1, ino);
    if (st.xattr_block != 0) claim(st.xattr_block, 1, ino);
  }

  // Holder table: live holders keep their blocks; stale entries are empty.
  std::vector<std::byte> area(geo.holder_blocks * format::kBlockSize);
  for (uint64_t b = 0; b < geo.holder_blocks; ++b) {
    std::memcpy(area.data() + b * format::kBlockSize, ctx.image.read_block(geo.holder_start + b),
                format::kBlockSize);
  }
  auto table = HolderTable::load(area.data(), geo.holder_start, geo.holder_blocks, geo.data_start,
                                 geo.data_blocks, HolderTable::DamagedBlocks::kMarkUnusable);
  auto alive = [&](uint32_t pid, uint64_t start) {
    return ctx.opt.holder_alive ? ctx.opt.holder_alive(pid, start)
                                : holder_process_alive(pid, start);
  };
  auto rewrite_empty = [&](uint64_t b) {
    auto empty = HolderTable::empty_block();
    std::memcpy(ctx.image.edit_block(geo.holder_start + b), empty.data(), empty.size());
  };
  if (!table.is_ok()) {
    ctx.problem(Phase::kBitmap, "holder_table_corrupt", 0,
                table.status().message() + "; holder table emptied");
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
      if (alive(q.holder.pid, q.holder.start_time)) {
        claim(q.extent.start, q.extent.count, q.ino);
        continue;
      }
      ctx.problem(Phase::kBitmap, "stale_holder", q.ino,
                  "holder pid " + std::to_string(q.holder.pid) + " is gone; entry for [" +
                      std::to_string(q.extent.start) + ", +" + std::to_string(q.extent.count) +
                      ") cleared");
      if (Transaction* txn = ctx.image.extra()) {
        table->commit_clear(i);
        table->stage_slot(*txn, i);
      }
    }
  }

  std::vector<uint64_t> used_free(words, 0), leaked(words, 0);
  uint64_t marked = 0, referenced = 0;
  for (uint64_t w = 0; w < words; ++w) {
    uint64_t actual = load_word(ctx.image, geo.bitmap_start, w);
    uint64_t valid = (w + 1) * 64 <= geo.data_blocks
                         ? ~uint64_t{0}
                         : (uint64_t{1} << (geo.data_blocks % 64)) - 1;
    if ((actual & ~valid) != 0) {
      ctx.problem(Phase::kBitmap, "bitmap_tail", 0, "bits set beyond the data area; cleared");
    }
    actual &= valid;
    used_free[w] = expected[w] & ~actual;
    leaked[w] = actual & ~expected[w];
    referenced += static_cast<uint64_t>(__builtin_popcountll(expected[w]));
    if (expected[w] != load_word(ctx.image, geo.bitmap_start, w)) {
      store_word(ctx.image, geo.bitmap_start, w, expected[w]);
    }
    marked += static_cast<uint64_t>(__builtin_popcountll(expected[w]));
  }
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
                  "bitmap block " + std::to_string(block) + " has bits beyond the data area; cleared");
      std::memset(ctx.image.edit_block(block) + from, 0, format::kBlockSize - from);
    }
  }
  report_runs(ctx, used_free, "used_but_free", "in use but free in the bitmap; marked used",
              owners);
  report_runs(ctx, leaked, "leaked_blocks", "marked in the bitmap but unreferenced; freed",
              owners);
  ctx.report.counts.blocks_referenced = referenced;
  ctx.report.counts.blocks_marked = marked;
  ctx.report.counts.data_blocks = geo.data_blocks;
}

}  // namespace sealfs::fsck
