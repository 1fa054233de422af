// A DRAM region with a journal, a bitmap, a holder table and a data area laid
// out by hand, for the allocator tests.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <vector>

#include "alloc/allocator.h"
#include "media/journal.h"
#include "media/region_dram.h"
#include "sealfs/format.h"

namespace sealfs::testing_alloc {

constexpr uint64_t kBlock = format::kBlockSize;

struct Layout {
  uint64_t journal_blocks = 64;
  uint64_t holder_blocks = 2;
  uint64_t data_blocks = 1024;
  uint64_t align_blocks = 16;
};

// Holders are alive unless listed in `dead`.
struct Liveness {
  std::set<uint32_t> dead_pids;
  std::function<bool(const Holder&)> fn() const {
    return [this](const Holder& h) { return dead_pids.count(h.pid) == 0; };
  }
};

class AllocEnv {
 public:
  explicit AllocEnv(const Layout& layout = Layout()) : layout_(layout) {
    journal_area_ = JournalArea{1, layout.journal_blocks};
    area_.bitmap_start = 1 + layout.journal_blocks;
    area_.bitmap_blocks = (layout.data_blocks + kBlock * 8 - 1) / (kBlock * 8);
    area_.holder_start = area_.bitmap_start + area_.bitmap_blocks;
    area_.holder_blocks = layout.holder_blocks;
    uint64_t after = area_.holder_start + area_.holder_blocks;
    area_.align_blocks = layout.align_blocks;
    area_.data_start = (after + layout.align_blocks - 1) / layout.align_blocks * layout.align_blocks;
    area_.data_blocks = layout.data_blocks;
    region_blocks_ = area_.data_start + area_.data_blocks + 1;
  }

  // mkfs: journal, then an all-free bitmap and an empty holder table.
  void format() {
    region_ = RegionDram::create(region_blocks_ * kBlock);
    ASSERT_TRUE(Journal::format(*region_, journal_area_).is_ok());
    auto journal = Journal::open(*region_, journal_area_);
    ASSERT_TRUE(journal.is_ok()) << journal.status().to_string();
    journal_ = std::move(journal).value();
    Transaction txn = journal_->begin();
    ASSERT_TRUE(Allocator::format(txn, area_).is_ok());
    ASSERT_TRUE(journal_->commit(std::move(txn)).is_ok());
    open_allocator();
  }

  void open_allocator() {
    auto a = Allocator::open(*region_, *journal_, area_, liveness.fn());
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    alloc_ = std::move(a).value();
  }

  // Drops the allocator and journal and opens both on `image` (default: what
  // the CPU sees now, i.e. a clean restart).
  Status reopen_from(std::vector<std::byte> image) {
    alloc_.reset();
    journal_.reset();
    region_ = RegionDram::from_image(std::move(image));
    auto journal = Journal::open(*region_, journal_area_);
    if (!journal.is_ok()) return journal.status();
    journal_ = std::move(journal).value();
    auto a = Allocator::open(*region_, *journal_, area_, liveness.fn());
    if (!a.is_ok()) return a.status();
    alloc_ = std::move(a).value();
    return Status::ok();
  }
  Status reopen() { return reopen_from(region_->image()); }
  Status reopen_after_crash(uint64_t seed = 0) {
    return reopen_from(region_->crash(RegionDram::CrashMode::kDrop, seed));
  }

  // Allocates and commits.
  BlockExtent take(uint64_t count, uint64_t goal = 0) {
    Transaction txn = journal_->begin();
    auto e = alloc_->allocate(txn, count, goal, count);
    EXPECT_TRUE(e.is_ok()) << e.status().to_string();
    EXPECT_TRUE(journal_->commit(std::move(txn)).is_ok());
    return e.is_ok() ? *e : BlockExtent{};
  }
  void give_back(BlockExtent e) {
    Transaction txn = journal_->begin();
    alloc_->free(txn, e);
    EXPECT_TRUE(journal_->commit(std::move(txn)).is_ok());
  }

  // The bitmap bit of `block` as the media holds it now.
  bool media_bit(uint64_t block) const {
    uint64_t i = block - area_.data_start;
    auto byte = static_cast<uint8_t>(region_->data()[area_.bitmap_start * kBlock + i / 8]);
    return (byte >> (i % 8)) & 1u;
  }
  // Every data block: media bit == allocated in DRAM (no transaction open).
  void expect_media_matches_dram() const {
    for (uint64_t b = area_.data_start; b < area_.data_start + area_.data_blocks; ++b) {
      ASSERT_EQ(media_bit(b), alloc_->is_allocated(b)) << "block " << b;
    }
  }

  RegionDram& region() { return *region_; }
  Journal& journal() { return *journal_; }
  Allocator& alloc() { return *alloc_; }
  const AllocatorArea& area() const { return area_; }
  const JournalArea& journal_area() const { return journal_area_; }

  Liveness liveness;

 private:
  Layout layout_;
  JournalArea journal_area_;
  AllocatorArea area_;
  uint64_t region_blocks_ = 0;
  std::unique_ptr<RegionDram> region_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Allocator> alloc_;
};

}  // namespace sealfs::testing_alloc
