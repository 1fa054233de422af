#include "alloc/allocator.h"

#include <endian.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include "alloc/free_space.h"
#include "alloc/holder_table.h"
#include "sealfs/format.h"
#include "util/bit_words.h"
#include "util/log.h"
#include "util/sparse_bits.h"
#include "util/thread_annotations.h"

namespace sealfs {

namespace {

constexpr uint64_t kBlock = format::kBlockSize;
constexpr uint64_t kBitsPerBlock = kBlock * 8;

[[noreturn]] void broken(const std::string& what) {
  log().critical("allocator invariant broken: {}", what);
  std::fprintf(stderr, "sealfs allocator invariant broken: %s\n", what.c_str());
  std::abort();
}

std::string extent_text(BlockExtent e) {
  return "[" + std::to_string(e.start) + ", +" + std::to_string(e.count) + ")";
}

// The allocator's bitmaps cover the data area: bit i <=> block
// data_start + i (util/sparse_bits.h: zero pages take no memory).
using Bits = SparseBits;

Status check_area(const AllocatorArea& a, uint64_t region_blocks) {
  auto invalid = [](const std::string& why) {
    return Status(Code::kInvalid, "allocator area: " + why);
  };
  if (a.align_blocks == 0 || (a.align_blocks & (a.align_blocks - 1)) != 0) {
    return invalid("align_blocks " + std::to_string(a.align_blocks) + " is not a power of two");
  }
  if (a.data_blocks == 0) return invalid("empty data area");
  if (a.data_start % a.align_blocks != 0) {
    return invalid("data_start " + std::to_string(a.data_start) + " is not aligned to " +
                   std::to_string(a.align_blocks) + " blocks");
  }
  if (a.bitmap_blocks > UINT64_MAX / kBitsPerBlock || a.bitmap_blocks * kBitsPerBlock < a.data_blocks) {
    return invalid("bitmap of " + std::to_string(a.bitmap_blocks) + " blocks cannot cover " +
                   std::to_string(a.data_blocks) + " data blocks");
  }
  struct Span {
    const char* name;
    uint64_t start, blocks;
  } spans[] = {{"bitmap", a.bitmap_start, a.bitmap_blocks},
               {"holder table", a.holder_start, a.holder_blocks},
               {"data", a.data_start, a.data_blocks}};
  for (const Span& s : spans) {
    if (s.start + s.blocks < s.start || (region_blocks != 0 && s.start + s.blocks > region_blocks)) {
      return invalid(std::string(s.name) + " area lies outside the region");
    }
  }
  for (size_t i = 0; i < 3; ++i) {
    for (size_t j = i + 1; j < 3; ++j) {
      const Span& x = spans[i];
      const Span& y = spans[j];
      if (x.blocks != 0 && y.blocks != 0 && x.start < y.start + y.blocks &&
          y.start < x.start + x.blocks) {
        return invalid(std::string(x.name) + " and " + y.name + " areas overlap");
      }
    }
  }
  return Status::ok();
}

}  // namespace

struct Allocator::Impl {
  Impl(const Region& r, Journal& j, const AllocatorArea& a)
      : region(r), journal(j), area(a), free_space(a.align_blocks), in_use(a.data_blocks),
        pending_free(a.data_blocks), committed(a.data_blocks) {}

  const Region& region;
  Journal& journal;
  const AllocatorArea area;

  // A leaf (src/meta/locking.h): taken under the journal mutex by prepare
  // hooks and their undos, and under callers' locks; nothing is called with
  // it held that takes another lock.
  mutable Mutex mu;
  FreeSpace free_space GUARDED_BY(mu);
  Bits in_use GUARDED_BY(mu);        // allocated, incl. uncommitted allocations and frees
  Bits pending_free GUARDED_BY(mu);  // in a free or release that has not committed yet
  Bits committed GUARDED_BY(mu);     // what the committed transactions put on media
  std::optional<HolderTable> holders GUARDED_BY(mu);
  std::map<uint64_t, uint64_t> quarantined GUARDED_BY(mu);  // start -> count, live entries
  uint64_t quarantined_blocks GUARDED_BY(mu) = 0;

  uint64_t bit(uint64_t block) const { return block - area.data_start; }

  void check_inside(BlockExtent e, const char* op) const {
    if (e.count == 0 || e.start < area.data_start || e.start - area.data_start >= area.data_blocks ||
        e.count > area.data_blocks - (e.start - area.data_start)) {
      broken(std::string(op) + " of " + extent_text(e) + " outside the data area");
    }
  }
  bool overlaps_quarantine(BlockExtent e) const REQUIRES(mu) {
    auto it = quarantined.lower_bound(e.start);
    if (it != quarantined.end() && it->first < e.end()) return true;
    if (it != quarantined.begin()) {
      --it;
      if (it->first + it->second > e.start) return true;
    }
    return false;
  }

  // Stages the committed words covering `e`, as one record.
  void stage_words(Transaction& txn, BlockExtent e) const REQUIRES(mu) {
    uint64_t first = bit_words::word_of(bit(e.start));
    uint64_t last = bit_words::word_of(bit(e.start) + e.count - 1);
    std::vector<uint64_t> le(last - first + 1);
    for (uint64_t w = first; w <= last; ++w) le[w - first] = htole64(committed.word(w));
    txn.write(area.bitmap_start * kBlock + first * 8, le.data(), le.size() * 8);
  }


  Status load(const std::function<bool(const Holder&)>& alive, std::vector<Holder>* dead,
              std::vector<size_t>* stale_pins) REQUIRES(mu);
  void release_locked(Transaction& txn, const Holder& holder) REQUIRES(mu);
  // The parts of `e` that live pins of holders other than `holder` cover,
  // each with the holder it goes to.
  std::vector<std::pair<BlockExtent, Holder>> reached_by_others(BlockExtent e,
                                                                const Holder& holder) const
      REQUIRES(mu);
  // Clears pinned slots (kLive) through `txn`; nothing else changes.
  void drop_pins_locked(Transaction& txn, const std::vector<size_t>& slots) REQUIRES(mu);
  std::vector<QuarantineEntry> entries(bool pinned) const EXCLUDES(mu);
};

Allocator::Allocator() = default;
Allocator::~Allocator() = default;
const AllocatorArea& Allocator::area() const { return impl_->area; }

Status Allocator::format(Transaction& txn, const AllocatorArea& area) {
  RETURN_IF_ERROR(check_area(area, 0));
  std::vector<std::byte> zeros(kBlock);
  for (uint64_t b = 0; b < area.bitmap_blocks; ++b) {
    txn.write((area.bitmap_start + b) * kBlock, zeros.data(), zeros.size());
  }
  std::vector<std::byte> empty = HolderTable::empty_block();
  for (uint64_t b = 0; b < area.holder_blocks; ++b) {
    txn.write((area.holder_start + b) * kBlock, empty.data(), empty.size());
  }
  return Status::ok();
}

Status Allocator::Impl::load(const std::function<bool(const Holder&)>& alive,
                             std::vector<Holder>* dead, std::vector<size_t>* stale_pins) {
  // The bitmap, 64 bits at a time: runs of zero words and of full words cost
  // one comparison each, so a mostly empty or mostly full area opens fast.
  const std::byte* bitmap = region.data() + area.bitmap_start * kBlock;
  const uint64_t word_count = committed.word_count();
  // Only the parts that hold data: a bitmap block never written since mkfs
  // is a hole in a sparse region file, all free, and reading it would page
  // in (on tmpfs: allocate) memory for nothing; and only non-zero words make
  // DRAM pages (util/sparse_bits.h).
  const uint64_t bitmap_offset = area.bitmap_start * kBlock;
  for (const Region::ByteRange& r : region.data_ranges(bitmap_offset, word_count * 8)) {
    const uint64_t first = (r.offset - bitmap_offset) / 8;
    const uint64_t end = std::min(word_count, (r.offset - bitmap_offset + r.length + 7) / 8);
    for (uint64_t w = first; w < end; ++w) {
      uint64_t le;
      std::memcpy(&le, bitmap + w * 8, 8);
      committed.set_word(w, le64toh(le));
    }
  }
  // The last word's bits past the data area ("no blocks"); 0 when it is full.
  const uint64_t tail_mask = ~bit_words::last_word_mask(area.data_blocks);
  bool stray = tail_mask != 0 && (committed.word(word_count - 1) & tail_mask) != 0;
  for (uint64_t off = word_count * 8; !stray && off < area.bitmap_blocks * kBlock; off += 8) {
    uint64_t w;
    std::memcpy(&w, bitmap + off, 8);
    stray = w != 0;
  }
  if (stray) {
    return Status(Code::kCorruption, "block bitmap at block " + std::to_string(area.bitmap_start) +
                                         " marks blocks beyond the " +
                                         std::to_string(area.data_blocks) + "-block data area");
  }
  // Free runs, 64 bits at a time: runs of zero words and of full words cost
  // one comparison each, and an absent page (all zero) one step.
  bool in_run = false;
  uint64_t run_start = 0;
  for (uint64_t w = 0; w < word_count;) {
    const uint64_t page_end = std::min(word_count, (w / Bits::kWordsPerPage + 1) * Bits::kWordsPerPage);
    const bool page_absent = committed.page(w / Bits::kWordsPerPage) == nullptr;
    // The area's last word is padded with "no blocks" bits: not skipped.
    if (page_absent && !(tail_mask != 0 && page_end == word_count)) {
      if (!in_run) run_start = w * 64;
      in_run = true;
      w = page_end;
      continue;
    }
    uint64_t word = committed.word(w);
    if (w == word_count - 1) word |= tail_mask;  // no blocks there
    const uint64_t base = w * 64;
    ++w;
    if (word == 0) {
      if (!in_run) run_start = base;
      in_run = true;
      continue;
    }
    if (word == ~0ull) {
      if (in_run) free_space.append_run(area.data_start + run_start, base - run_start);
      in_run = false;
      continue;
    }
    uint64_t b = 0;
    while (b < 64) {
      if (in_run) {
        uint64_t rest = word >> b;
        if (rest == 0) break;
        b += static_cast<uint64_t>(__builtin_ctzll(rest));
        free_space.append_run(area.data_start + run_start, base + b - run_start);
        in_run = false;
      } else {
        uint64_t rest = ~word >> b;
        if (rest == 0) break;
        b += static_cast<uint64_t>(__builtin_ctzll(rest));
        run_start = base + b;
        in_run = true;
      }
    }
  }
  if (in_run) free_space.append_run(area.data_start + run_start, area.data_blocks - run_start);
  in_use = committed;

  auto table = HolderTable::load(region.data() + area.holder_start * kBlock, area.holder_start,
                                 area.holder_blocks, area.data_start, area.data_blocks);
  if (!table.is_ok()) return table.status();
  holders.emplace(std::move(table).value());
  for (size_t i = 0; i < holders->slot_count(); ++i) {
    const HolderTable::Slot& slot = holders->slot(i);
    if (slot.state != HolderTable::SlotState::kLive) continue;
    BlockExtent e = slot.entry.extent;
    if (slot.entry.pinned) {
      // A pin names blocks of a file; pins of one extent by several holders
      // overlap legitimately, and so do a pin and the quarantine it became.
      // A pin over free blocks is stale (its file freed them after the pin's
      // lease went and before the unpin committed): dropped.
      if (!alive(slot.entry.holder) || !in_use.all(bit(e.start), e.count)) {
        stale_pins->push_back(i);
      }
      continue;
    }
    if (!in_use.all(bit(e.start), e.count)) {
      return Status(Code::kCorruption, "holder table entry " + extent_text(e) +
                                           " covers blocks the bitmap marks free");
    }
    if (overlaps_quarantine(e)) {
      return Status(Code::kCorruption, "holder table entries overlap at " + extent_text(e));
    }
    quarantined.emplace(e.start, e.count);
    quarantined_blocks += e.count;
    if (!alive(slot.entry.holder) &&
        std::find(dead->begin(), dead->end(), slot.entry.holder) == dead->end()) {
      dead->push_back(slot.entry.holder);
    }
  }
  return Status::ok();
}

Result<std::unique_ptr<Allocator>> Allocator::open(
    const Region& region, Journal& journal, const AllocatorArea& area,
    const std::function<bool(const Holder&)>& alive) {
  RETURN_IF_ERROR(check_area(area, region.size() / kBlock));
  std::unique_ptr<Allocator> allocator(new Allocator());
  allocator->impl_ = std::make_unique<Impl>(region, journal, area);
  std::vector<Holder> dead;
  std::vector<size_t> stale_pins;
  {
    // Nobody else sees the allocator yet: the lock only tells the analysis.
    MutexLock lock(allocator->impl_->mu);
    RETURN_IF_ERROR(allocator->impl_->load(alive, &dead, &stale_pins));
  }
  if (!dead.empty() || !stale_pins.empty()) {
    Transaction txn = journal.begin();
    {
      MutexLock lock(allocator->impl_->mu);
      allocator->impl_->drop_pins_locked(txn, stale_pins);
      for (const Holder& h : dead) allocator->impl_->release_locked(txn, h);
    }
    Status s = journal.commit(std::move(txn));
    if (!s.is_ok()) return s.with_context("freeing the quarantine of exited holders");
    log().info("allocator: released the quarantine of {} exited holder(s), {} stale pin(s)",
               dead.size(), stale_pins.size());
  }
  return allocator;
}

Result<BlockExtent> Allocator::allocate(Transaction& txn, uint64_t count, uint64_t goal,
                                        uint64_t min_count) {
  if (count == 0) return Status(Code::kInvalid, "allocation of 0 blocks");
  Impl& a = *impl_;
  MutexLock lock(a.mu);
  auto choice = a.free_space.choose(count, goal, min_count);
  if (!choice) {
    return Status(Code::kNoSpace, "no free extent of " + std::to_string(std::max<uint64_t>(1, std::min(min_count, count))) +
                                      " blocks (" + std::to_string(a.free_space.free_blocks()) +
                                      " blocks free)");
  }
  BlockExtent e{choice->start, choice->count};
  a.free_space.remove(e.start, e.count);
  a.in_use.assign(a.bit(e.start), e.count, true);
  lock.unlock();

  Impl* impl = impl_.get();
  txn.on_prepare([impl, e](Transaction& t) {
    MutexLock guard(impl->mu);
    impl->committed.assign(impl->bit(e.start), e.count, true);
    impl->stage_words(t, e);
    // Undone under the journal mutex if the commit fails from here on,
    // before any other transaction stages words from `committed`.
    t.on_prepare_undo([impl, e] {
      MutexLock undo_guard(impl->mu);
      impl->committed.assign(impl->bit(e.start), e.count, false);
    });
  });
  txn.on_abort([impl, e] {
    MutexLock guard(impl->mu);
    impl->in_use.assign(impl->bit(e.start), e.count, false);
    impl->free_space.insert(e.start, e.count);
  });
  return e;
}

void Allocator::free(Transaction& txn, BlockExtent e) {
  Impl& a = *impl_;
  {
    MutexLock lock(a.mu);
    a.check_inside(e, "free");
    if (!a.in_use.all(a.bit(e.start), e.count)) broken("free of unallocated blocks in " + extent_text(e));
    if (!a.pending_free.none(a.bit(e.start), e.count)) broken("double free of " + extent_text(e));
    if (a.overlaps_quarantine(e)) broken("free of quarantined blocks in " + extent_text(e));
    a.pending_free.assign(a.bit(e.start), e.count, true);
  }
  Impl* impl = impl_.get();
  txn.on_prepare([impl, e](Transaction& t) {
    MutexLock guard(impl->mu);
    impl->committed.assign(impl->bit(e.start), e.count, false);
    impl->stage_words(t, e);
    t.on_prepare_undo([impl, e] {
      MutexLock undo_guard(impl->mu);
      impl->committed.assign(impl->bit(e.start), e.count, true);
    });
  });
  txn.on_commit([impl, e] {
    MutexLock guard(impl->mu);
    impl->pending_free.assign(impl->bit(e.start), e.count, false);
    impl->in_use.assign(impl->bit(e.start), e.count, false);
    impl->free_space.insert(e.start, e.count);
  });
  txn.on_abort([impl, e] {
    MutexLock guard(impl->mu);
    impl->pending_free.assign(impl->bit(e.start), e.count, false);
  });
}

Status Allocator::quarantine(Transaction& txn, BlockExtent e, const Holder& holder, uint64_t ino) {
  Impl& a = *impl_;
  QuarantineEntry entry{holder, ino, e};
  size_t slot = 0;
  {
    MutexLock lock(a.mu);
    a.check_inside(e, "quarantine");
    if (!a.in_use.all(a.bit(e.start), e.count)) {
      broken("quarantine of unallocated blocks in " + extent_text(e));
    }
    if (!a.pending_free.none(a.bit(e.start), e.count)) {
      broken("quarantine of blocks being freed in " + extent_text(e));
    }
    if (a.overlaps_quarantine(e)) broken("quarantine of quarantined blocks in " + extent_text(e));
    auto reserved = a.holders->reserve(entry);
    if (!reserved) {
      return Status(Code::kNoSpace, "holder table full (" + std::to_string(a.holders->slot_count()) +
                                        " slots) quarantining " + extent_text(e));
    }
    slot = *reserved;
    a.quarantined.emplace(e.start, e.count);
    a.quarantined_blocks += e.count;
  }
  Impl* impl = impl_.get();
  txn.on_prepare([impl, slot, entry](Transaction& t) {
    MutexLock guard(impl->mu);
    impl->holders->commit_set(slot, entry);
    impl->holders->stage_slot(t, slot);
    t.on_prepare_undo([impl, slot] {
      MutexLock undo_guard(impl->mu);
      impl->holders->commit_clear(slot);
    });
  });
  txn.on_abort([impl, slot, entry] {
    MutexLock guard(impl->mu);
    impl->holders->release_slot(slot);
    impl->quarantined.erase(entry.extent.start);
    impl->quarantined_blocks -= entry.extent.count;
  });
  return Status::ok();
}

Status Allocator::release_holder(Transaction& txn, const Holder& holder) {
  MutexLock lock(impl_->mu);
  impl_->release_locked(txn, holder);
  return Status::ok();
}

void Allocator::Impl::drop_pins_locked(Transaction& txn, const std::vector<size_t>& slots) {
  if (slots.empty()) return;
  std::vector<std::pair<size_t, QuarantineEntry>> taken;
  for (size_t i : slots) {
    HolderTable::Slot& slot = holders->slot(i);
    if (slot.state != HolderTable::SlotState::kLive || !slot.entry.pinned) {
      broken("dropping holder slot " + std::to_string(i) + " that is not a live pin");
    }
    slot.state = HolderTable::SlotState::kReleasing;
    taken.emplace_back(i, slot.entry);
  }
  Impl* impl = this;
  std::vector<size_t> slot_list;
  for (const auto& [slot, entry] : taken) slot_list.push_back(slot);
  txn.on_prepare([impl, slot_list, taken](Transaction& t) {
    MutexLock guard(impl->mu);
    impl->holders->commit_clear_many(slot_list);
    impl->holders->stage_slots(t, slot_list);
    t.on_prepare_undo([impl, taken] {
      MutexLock undo_guard(impl->mu);
      impl->holders->commit_set_many(taken);
    });
  });
  txn.on_commit([impl, taken] {
    MutexLock guard(impl->mu);
    for (const auto& [slot, entry] : taken) impl->holders->release_slot(slot);
  });
  txn.on_abort([impl, taken] {
    MutexLock guard(impl->mu);
    for (const auto& [slot, entry] : taken) {
      impl->holders->slot(slot).state = HolderTable::SlotState::kLive;
    }
  });
}

Status Allocator::pin(Transaction& txn, const std::vector<BlockExtent>& extents,
                      const Holder& holder, uint64_t ino) {
  Impl& a = *impl_;
  std::vector<std::pair<size_t, QuarantineEntry>> taken;
  {
    MutexLock lock(a.mu);
    for (const BlockExtent& e : extents) {
      a.check_inside(e, "pin");
      if (!a.in_use.all(a.bit(e.start), e.count)) broken("pin of unallocated blocks in " + extent_text(e));
      QuarantineEntry entry{holder, ino, e, /*pinned=*/true};
      auto reserved = a.holders->reserve(entry);
      if (!reserved) {
        for (const auto& [slot, ignored] : taken) a.holders->release_slot(slot);
        return Status(Code::kNoSpace, "holder table full (" + std::to_string(a.holders->slot_count()) +
                                          " slots) pinning " + extent_text(e));
      }
      taken.emplace_back(*reserved, entry);
    }
  }
  if (taken.empty()) return Status::ok();
  std::vector<size_t> slots;
  for (const auto& [slot, entry] : taken) slots.push_back(slot);
  Impl* impl = impl_.get();
  txn.on_prepare([impl, taken, slots](Transaction& t) {
    MutexLock guard(impl->mu);
    impl->holders->commit_set_many(taken);
    impl->holders->stage_slots(t, slots);
    t.on_prepare_undo([impl, slots] {
      MutexLock undo_guard(impl->mu);
      impl->holders->commit_clear_many(slots);
    });
  });
  txn.on_abort([impl, slots] {
    MutexLock guard(impl->mu);
    for (size_t slot : slots) impl->holders->release_slot(slot);
  });
  return Status::ok();
}

Status Allocator::unpin(Transaction& txn, const std::vector<BlockExtent>& extents,
                        const Holder& holder) {
  Impl& a = *impl_;
  MutexLock lock(a.mu);
  // One pass over the table for all of them (a 256-extent lease used to
  // scan it 256 times).
  std::multiset<std::pair<uint64_t, uint64_t>> wanted;
  for (const BlockExtent& e : extents) wanted.insert({e.start, e.count});
  std::vector<size_t> found;
  for (size_t i = 0; i < a.holders->slot_count() && !wanted.empty(); ++i) {
    const HolderTable::Slot& slot = a.holders->slot(i);
    if (slot.state != HolderTable::SlotState::kLive || !slot.entry.pinned ||
        !(slot.entry.holder == holder)) {
      continue;
    }
    auto it = wanted.find({slot.entry.extent.start, slot.entry.extent.count});
    if (it == wanted.end()) continue;
    wanted.erase(it);
    found.push_back(i);
  }
  if (!wanted.empty()) {
    const BlockExtent missing{wanted.begin()->first, wanted.begin()->second};
    return Status(Code::kNotFound, "no pin of " + extent_text(missing) + " for pid " +
                                       std::to_string(holder.pid));
  }
  a.drop_pins_locked(txn, found);
  return Status::ok();
}

std::vector<std::pair<BlockExtent, Holder>> Allocator::Impl::reached_by_others(
    BlockExtent e, const Holder& holder) const {
  // Live pins of other holders that intersect e, clipped to it.
  std::vector<std::pair<BlockExtent, Holder>> pins;
  for (size_t i = 0; i < holders->slot_count(); ++i) {
    const HolderTable::Slot& slot = holders->slot(i);
    if (slot.state != HolderTable::SlotState::kLive || !slot.entry.pinned ||
        slot.entry.holder == holder) {
      continue;
    }
    const uint64_t lo = std::max(e.start, slot.entry.extent.start);
    const uint64_t hi = std::min(e.end(), slot.entry.extent.end());
    if (lo < hi) pins.push_back({{lo, hi - lo}, slot.entry.holder});
  }
  // Walk e block range by block range: each covered stretch goes to the
  // first pin (in table order) covering it; neighbours with the same
  // holder merge.
  std::vector<uint64_t> cuts;
  for (const auto& [p, h] : pins) {
    cuts.push_back(p.start);
    cuts.push_back(p.end());
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  std::vector<std::pair<BlockExtent, Holder>> out;
  for (size_t c = 0; c + 1 < cuts.size(); ++c) {
    const uint64_t lo = cuts[c], hi = cuts[c + 1];
    for (const auto& [p, h] : pins) {
      if (p.start > lo || p.end() < hi) continue;
      if (!out.empty() && out.back().second == h && out.back().first.end() == lo) {
        out.back().first.count += hi - lo;
      } else {
        out.push_back({{lo, hi - lo}, h});
      }
      break;
    }
  }
  return out;
}

void Allocator::Impl::release_locked(Transaction& txn, const Holder& holder) {
  // A released entry's blocks go to free space, except the parts another
  // live holder has pinned (several holders revoked on one file): those are
  // handed over to a new quarantine entry against that holder, in the same
  // transaction, so no block leaves quarantine while anyone may reach it.
  struct Released {
    size_t slot;
    QuarantineEntry entry;
    std::vector<BlockExtent> freed;
    std::vector<std::pair<size_t, QuarantineEntry>> handed;  // new slot, entry
  };
  std::vector<size_t> pins;
  std::vector<Released> taken;
  for (size_t i = 0; i < holders->slot_count(); ++i) {
    HolderTable::Slot& slot = holders->slot(i);
    if (slot.state != HolderTable::SlotState::kLive || !(slot.entry.holder == holder)) continue;
    if (slot.entry.pinned) {
      pins.push_back(i);
      continue;
    }
    const BlockExtent e = slot.entry.extent;
    Released r{i, slot.entry, {}, {}};
    bool table_full = false;
    uint64_t at = e.start;
    for (const auto& [piece, other] : reached_by_others(e, holder)) {
      if (piece.start > at) r.freed.push_back({at, piece.start - at});
      QuarantineEntry handed{other, slot.entry.ino, piece};
      auto reserved = holders->reserve(handed);
      if (!reserved) {
        table_full = true;
        break;
      }
      r.handed.emplace_back(*reserved, handed);
      at = piece.end();
    }
    if (table_full) {
      // Keep the whole entry: its blocks stay quarantined against this
      // holder until the next mount finds it gone (a leak, never a reuse).
      for (const auto& [j, h] : r.handed) holders->release_slot(j);
      log().warn("allocator: holder table full; quarantine of {} kept until the next mount",
                 extent_text(e));
      continue;
    }
    if (at < e.end()) r.freed.push_back({at, e.end() - at});
    slot.state = HolderTable::SlotState::kReleasing;
    for (const BlockExtent& f : r.freed) pending_free.assign(bit(f.start), f.count, true);
    taken.push_back(std::move(r));
  }
  drop_pins_locked(txn, pins);
  if (taken.empty()) return;
  Impl* impl = this;
  auto undo = [impl, taken] {
    MutexLock undo_guard(impl->mu);
    for (const Released& r : taken) {
      impl->holders->commit_set(r.slot, r.entry);
      for (const auto& [j, h] : r.handed) impl->holders->commit_clear(j);
      for (const BlockExtent& f : r.freed) impl->committed.assign(impl->bit(f.start), f.count, true);
    }
  };
  txn.on_prepare([impl, taken, undo](Transaction& t) {
    MutexLock guard(impl->mu);
    for (const Released& r : taken) {
      impl->holders->commit_clear(r.slot);
      for (const auto& [j, h] : r.handed) impl->holders->commit_set(j, h);
      for (const BlockExtent& f : r.freed) impl->committed.assign(impl->bit(f.start), f.count, false);
    }
    for (const Released& r : taken) {
      impl->holders->stage_slot(t, r.slot);
      for (const auto& [j, h] : r.handed) impl->holders->stage_slot(t, j);
      for (const BlockExtent& f : r.freed) impl->stage_words(t, f);
    }
    t.on_prepare_undo(undo);
  });
  txn.on_commit([impl, taken] {
    MutexLock guard(impl->mu);
    for (const Released& r : taken) {
      const BlockExtent e = r.entry.extent;
      impl->holders->release_slot(r.slot);
      impl->quarantined.erase(e.start);
      impl->quarantined_blocks -= e.count;
      for (const auto& [j, h] : r.handed) {
        impl->quarantined.emplace(h.extent.start, h.extent.count);
        impl->quarantined_blocks += h.extent.count;
      }
      for (const BlockExtent& f : r.freed) {
        impl->pending_free.assign(impl->bit(f.start), f.count, false);
        impl->in_use.assign(impl->bit(f.start), f.count, false);
        impl->free_space.insert(f.start, f.count);
      }
    }
  });
  txn.on_abort([impl, taken] {
    MutexLock guard(impl->mu);
    for (const Released& r : taken) {
      impl->holders->slot(r.slot).state = HolderTable::SlotState::kLive;
      for (const auto& [j, h] : r.handed) impl->holders->release_slot(j);
      for (const BlockExtent& f : r.freed) {
        impl->pending_free.assign(impl->bit(f.start), f.count, false);
      }
    }
  });
}

uint64_t Allocator::free_blocks() const {
  MutexLock lock(impl_->mu);
  return impl_->free_space.free_blocks();
}

uint64_t Allocator::quarantined_blocks() const {
  MutexLock lock(impl_->mu);
  return impl_->quarantined_blocks;
}

std::vector<QuarantineEntry> Allocator::quarantine_entries() const {
  return impl_->entries(/*pinned=*/false);
}

std::vector<QuarantineEntry> Allocator::pinned_entries() const {
  return impl_->entries(/*pinned=*/true);
}

std::vector<QuarantineEntry> Allocator::Impl::entries(bool want_pinned) const {
  MutexLock lock(mu);
  std::vector<QuarantineEntry> out;
  for (size_t i = 0; i < holders->slot_count(); ++i) {
    const HolderTable::Slot& slot = holders->slot(i);
    if ((slot.state == HolderTable::SlotState::kLive ||
         slot.state == HolderTable::SlotState::kReleasing) &&
        slot.entry.pinned == want_pinned) {
      out.push_back(slot.entry);
    }
  }
  std::sort(out.begin(), out.end(), [](const QuarantineEntry& x, const QuarantineEntry& y) {
    return x.extent.start < y.extent.start;
  });
  return out;
}

std::vector<BlockExtent> Allocator::free_extents() const {
  MutexLock lock(impl_->mu);
  std::vector<BlockExtent> out;
  for (const auto& e : impl_->free_space.extents()) out.push_back({e.start, e.count});
  return out;
}

SparseBits Allocator::allocated_bits() const {
  MutexLock lock(impl_->mu);
  return impl_->in_use;
}

bool Allocator::is_allocated(uint64_t block) const {
  const Impl& a = *impl_;
  MutexLock lock(a.mu);
  if (block < a.area.data_start || block - a.area.data_start >= a.area.data_blocks) return false;
  return a.in_use.test(a.bit(block));
}

}  // namespace sealfs
