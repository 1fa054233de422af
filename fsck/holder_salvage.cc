// A holder table block that fails its magic or crc check (phase 5).
//
// Its entries may quarantine blocks a living holder still maps: the daemon
// that revoked the holder is gone, but the holder's mapping of the device is
// not. Dropping every entry would free those blocks for the next file while
// the holder can still write them. So the entries that still parse are
// salvaged and those whose holder is alive (pid and start time both match)
// are kept; the rest are dropped, and their blocks become leaks that the
// bitmap check frees. What remains unsafe: an entry whose pid or start time
// bytes were themselves damaged looks like a dead holder's (docs/fsck.md).
#include <cstring>
#include <string>

#include "alloc/holder_table.h"
#include "fsck/context.h"

namespace sealfs::fsck {

Result<HolderTable> load_holder_table(Context& ctx) {
  const Geometry& geo = ctx.geo();
  std::vector<std::byte> area(geo.holder_blocks * format::kBlockSize);
  for (uint64_t b = 0; b < geo.holder_blocks; ++b) {
    std::memcpy(area.data() + b * format::kBlockSize, ctx.image.read_block(geo.holder_start + b),
                format::kBlockSize);
  }
  return HolderTable::load(area.data(), geo.holder_start, geo.holder_blocks, geo.data_start,
                           geo.data_blocks, HolderTable::DamagedBlocks::kMarkUnusable);
}

std::vector<QuarantineEntry> salvage_holder_block(
    Context& ctx, uint64_t index, const std::function<bool(uint32_t, uint64_t)>& alive) {
  const Geometry& geo = ctx.geo();
  const uint64_t block = geo.holder_start + index;
  auto parsed =
      HolderTable::salvage_entries(ctx.image.read_block(block), geo.data_start, geo.data_blocks);
  std::vector<std::pair<size_t, QuarantineEntry>> live;
  for (const auto& slot : parsed) {
    if (alive(slot.second.holder.pid, slot.second.holder.start_time)) live.push_back(slot);
  }
  ctx.problem(Phase::kBitmap, "holder_block_bad", 0,
              ctx.fix("holder table block " + std::to_string(block) + " has a bad magic or crc",
                      "rewritten with the ", "rewrite it with the ") +
                  std::to_string(live.size()) + " of its " + std::to_string(parsed.size()) +
                  " readable entries whose holder is alive");
  auto rebuilt = HolderTable::encode_block(live);
  std::memcpy(ctx.image.edit_block(block), rebuilt.data(), rebuilt.size());
  std::vector<QuarantineEntry> kept;
  for (const auto& slot : live) kept.push_back(slot.second);
  return kept;
}

}  // namespace sealfs::fsck
