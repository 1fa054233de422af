// InodeStates: what the phases learned about each inode in use, kept only
// for inodes that have a state (never for free slots).
//
// A dense vector indexed by inode number made fsck's memory grow with the
// region (a 1 TiB region has 64M inode slots) instead of with what is used;
// this costs one hash entry per inode in use. References stay valid while
// entries are added (std::unordered_map never moves its nodes).
#pragma once

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace sealfs::fsck {

template <typename State>
class SparseStates {
 public:
  // The state of `ino`, nullptr when it has none.
  State* find(uint64_t ino) {
    auto it = states_.find(ino);
    return it == states_.end() ? nullptr : &it->second;
  }
  const State* find(uint64_t ino) const {
    auto it = states_.find(ino);
    return it == states_.end() ? nullptr : &it->second;
  }
  // The state of `ino`, default-constructed the first time.
  State& operator[](uint64_t ino) {
    auto [it, inserted] = states_.try_emplace(ino);
    if (inserted) {
      if (order_.empty() || order_.back() < ino) {
        order_.push_back(ino);  // the usual case: phase 3 adds in ascending order
      } else {
        order_.insert(std::lower_bound(order_.begin(), order_.end(), ino), ino);
      }
    }
    return it->second;
  }
  // Inode numbers that have a state, ascending. Loops that may add a state
  // (lost+found) iterate a copy.
  const std::vector<uint64_t>& numbers() const { return order_; }
  size_t size() const { return order_.size(); }
  void clear() {
    states_.clear();
    order_.clear();
  }

 private:
  std::unordered_map<uint64_t, State> states_;
  std::vector<uint64_t> order_;
};

}  // namespace sealfs::fsck
