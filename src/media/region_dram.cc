#include "media/region_dram.h"

#include <cstring>
#include <random>

namespace sealfs {
namespace {
constexpr uint64_t kLine = 64;
}

RegionDram::RegionDram(uint64_t size, uint64_t alignment, Granularity g)
    : visible_(size), durable_(size) {
  base_ = visible_.data();
  size_ = size;
  alignment_ = alignment;
  granularity_ = g;
  description_ = "dram";
}

RegionDram::~RegionDram() = default;

std::unique_ptr<RegionDram> RegionDram::create(uint64_t size, uint64_t alignment,
                                               Granularity g) {
  return std::unique_ptr<RegionDram>(new RegionDram(size, alignment, g));
}

std::unique_ptr<RegionDram> RegionDram::from_image(std::vector<std::byte> image,
                                                   uint64_t alignment, Granularity g) {
  auto r = create(image.size(), alignment, g);
  MutexLock lock(r->mu_);  // not shared yet: for the analysis
  std::memcpy(r->visible_.data(), image.data(), image.size());
  std::memcpy(r->durable_.data(), image.data(), image.size());
  return r;
}

void RegionDram::flush(const void* addr, size_t len) {
  if (len == 0) return;
  MutexLock lock(mu_);
  uint64_t off = offset_of(addr);
  uint64_t first = off / kLine;
  uint64_t last = (off + len - 1) / kLine;
  for (uint64_t line = first; line <= last; ++line) {
    std::vector<std::byte> bytes(visible_.begin() + static_cast<long>(line * kLine),
                                 visible_.begin() + static_cast<long>((line + 1) * kLine));
    pending_.emplace_back(line, std::move(bytes));
  }
  trace_.push_back({TraceEvent::kFlush, off, len});
  ++flushes_;
}

void RegionDram::drain() {
  if (drain_observer_) drain_observer_(drain_count());
  MutexLock lock(mu_);
  for (auto& [line, bytes] : pending_) {
    std::memcpy(durable_.data() + line * kLine, bytes.data(), kLine);
  }
  pending_.clear();
  trace_.push_back({TraceEvent::kDrain, 0, 0});
  ++drains_;
}

void RegionDram::copy_flush(RegionWriteKey, void* dst, const void* src, size_t len) {
  std::memcpy(dst, src, len);
  flush(dst, len);
}

void RegionDram::zero_flush(RegionWriteKey, void* dst, size_t len) {
  std::memset(dst, 0, len);
  flush(dst, len);
}

std::vector<std::byte> RegionDram::crash(CrashMode mode, uint64_t seed) const {
  MutexLock lock(mu_);
  std::vector<std::byte> out = durable_;
  if (mode == CrashMode::kDrop) return out;
  // Any differing word may or may not have reached the media. Flushed-but-
  // undrained lines are a subset of these: the visible image is at least as
  // new as the snapshot taken at flush.
  std::mt19937_64 rng(seed);
  for (uint64_t off = 0; off + 8 <= out.size(); off += 8) {
    if (std::memcmp(out.data() + off, visible_.data() + off, 8) != 0 && (rng() & 1)) {
      std::memcpy(out.data() + off, visible_.data() + off, 8);
    }
  }
  return out;
}

std::vector<std::byte> RegionDram::image() const {
  MutexLock lock(mu_);
  return visible_;
}

std::vector<RegionDram::TraceEvent> RegionDram::trace() const {
  MutexLock lock(mu_);
  return trace_;
}

void RegionDram::clear_trace() {
  MutexLock lock(mu_);
  trace_.clear();
}

uint64_t RegionDram::drain_count() const {
  MutexLock lock(mu_);
  return drains_;
}

uint64_t RegionDram::flush_count() const {
  MutexLock lock(mu_);
  return flushes_;
}

void RegionDram::set_drain_observer(std::function<void(uint64_t)> observer) {
  drain_observer_ = std::move(observer);
}

void RegionDram::corrupt(uint64_t offset, const void* bytes, size_t len) {
  MutexLock lock(mu_);
  std::memcpy(visible_.data() + offset, bytes, len);
  std::memcpy(durable_.data() + offset, bytes, len);
}

}  // namespace sealfs
