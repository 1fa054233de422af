// C++ RAII wrappers over libsealfs (sealfs.h). Errors are returned, never
// thrown: every factory gives a value or a negative errno.
//
// Needs C++17 or later (std::byte); DirectMap::bytes() (a std::span) only
// exists from C++20 on. tests/integration/examples builds a C++17 user.
#pragma once

#include <sealfs/sealfs.h>
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>
#if __cplusplus >= 202002L
#include <span>
#endif

namespace sealfs {

// A direct mapping; unmaps and releases its lease on destruction.
class DirectMap {
 public:
  DirectMap() = default;
  // 0 or -errno; on success *out holds the mapping.
  static int open(int fd, off_t offset, size_t length, int prot, unsigned flags, DirectMap* out,
                  uint64_t break_time_ns = 0) {
    struct sealfs_map* m = nullptr;
    int r = sealfs_map_ex(fd, offset, length, prot, flags, break_time_ns, &m);
    if (r == 0) *out = DirectMap(m);
    return r;
  }
  // As open, keeping `reserve` bytes of address space behind the mapping
  // for extend() (sealfs_map_reserve).
  static int open_reserve(int fd, off_t offset, size_t length, size_t reserve, int prot,
                          unsigned flags, DirectMap* out) {
    struct sealfs_map* m = nullptr;
    int r = sealfs_map_reserve(fd, offset, length, reserve, prot, flags, &m);
    if (r == 0) *out = DirectMap(m);
    return r;
  }
  DirectMap(DirectMap&& other) noexcept : map_(std::exchange(other.map_, nullptr)) {}
  DirectMap& operator=(DirectMap&& other) noexcept {
    if (this != &other) {
      reset();
      map_ = std::exchange(other.map_, nullptr);
    }
    return *this;
  }
  DirectMap(const DirectMap&) = delete;
  DirectMap& operator=(const DirectMap&) = delete;
  ~DirectMap() { reset(); }

  explicit operator bool() const { return map_ != nullptr; }
  void* data() const { return sealfs_map_addr(map_); }
  size_t size() const { return sealfs_map_length(map_); }
#if __cplusplus >= 202002L
  std::span<std::byte> bytes() const { return {static_cast<std::byte*>(data()), size()}; }
#endif
  uint64_t generation() const { return sealfs_map_generation(map_); }
  uint64_t lease_id() const { return sealfs_map_lease_id(map_); }
  unsigned mount_flags() const { return sealfs_map_mount_flags(map_); }
  int note_stores() const { return sealfs_note_stores(map_); }
  bool breaking() const { return map_ != nullptr && sealfs_map_state(map_) != 0; }
  int persist(const void* addr, size_t len) const { return sealfs_persist(map_, addr, len); }
  // Many ranges, one fence (sealfs_persist_ranges); 0 or -errno.
  int persist(const struct sealfs_range* ranges, size_t count) const {
    return sealfs_persist_ranges(map_, ranges, count);
  }
  int persist(const std::vector<struct sealfs_range>& ranges) const {
    return persist(ranges.data(), ranges.size());
  }
  // Grows the mapping, its lease and the file in place (sealfs_extend; fd:
  // the file, open read-write); data() stays. 0 or -errno.
  int extend(int fd, size_t new_length) { return sealfs_extend(map_, fd, new_length); }
  struct sealfs_map* get() const { return map_; }
  // Unmaps now; 0 or -errno.
  int reset() {
    int r = 0;
    if (map_ != nullptr) r = sealfs_unmap(std::exchange(map_, nullptr));
    return r;
  }

 private:
  explicit DirectMap(struct sealfs_map* m) : map_(m) {}
  struct sealfs_map* map_ = nullptr;
};

// A registration lease; unregisters (flushing its callback) on destruction.
class Registration {
 public:
  Registration() = default;
  static int open(const DirectMap& map,
                  void (*cb)(struct sealfs_map*, const struct sealfs_break_event*, void*),
                  void* arg, Registration* out) {
    struct sealfs_reg* reg = nullptr;
    int r = sealfs_register(map.get(), cb, arg, &reg);
    if (r == 0) *out = Registration(reg);
    return r;
  }
  Registration(Registration&& o) noexcept : reg_(std::exchange(o.reg_, nullptr)) {}
  Registration& operator=(Registration&& o) noexcept {
    if (this != &o) {
      reset();
      reg_ = std::exchange(o.reg_, nullptr);
    }
    return *this;
  }
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;
  ~Registration() { reset(); }
  void reset() {
    if (reg_ != nullptr) sealfs_unregister(std::exchange(reg_, nullptr));
  }

 private:
  explicit Registration(struct sealfs_reg* r) : reg_(r) {}
  struct sealfs_reg* reg_ = nullptr;
};

// A layout lease (extents without a mapping); released on destruction.
class LayoutLease {
 public:
  LayoutLease() = default;
  static int open(int fd, off_t offset, size_t length, unsigned flags, LayoutLease* out) {
    struct sealfs_layout* l = nullptr;
    int r = sealfs_layout_lease(fd, offset, length, flags, &l);
    if (r == 0) *out = LayoutLease(l);
    return r;
  }
  LayoutLease(LayoutLease&& o) noexcept : l_(std::exchange(o.l_, nullptr)) {}
  LayoutLease& operator=(LayoutLease&& o) noexcept {
    if (this != &o) {
      reset();
      l_ = std::exchange(o.l_, nullptr);
    }
    return *this;
  }
  LayoutLease(const LayoutLease&) = delete;
  LayoutLease& operator=(const LayoutLease&) = delete;
  ~LayoutLease() { reset(); }
  std::vector<sealfs_extent> extents() const {
    std::vector<sealfs_extent> out(sealfs_layout_extents(l_, nullptr, 0));
    sealfs_layout_extents(l_, out.data(), out.size());
    return out;
  }
  uint64_t generation() const { return sealfs_layout_generation(l_); }
  void reset() {
    if (l_ != nullptr) sealfs_layout_release(std::exchange(l_, nullptr));
  }

 private:
  explicit LayoutLease(struct sealfs_layout* l) : l_(l) {}
  struct sealfs_layout* l_ = nullptr;
};

}  // namespace sealfs
