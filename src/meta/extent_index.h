// Extent, and ExtentIndex: the sorted container behind ExtentMap. It offers
// the part of std::map<uint64_t, Extent>'s interface that ExtentMap uses, but
// keeps a lone extent inline: most files have at most one extent, and a tree
// node costs 80 bytes of heap beside the 48 of the tree itself (issue 12:
// 200 bytes of DRAM per cached inode).
//
// Two states: inline (no tree, zero or one entry in `lone_`) and tree (every
// entry in the tree, none inline). A second entry moves the lone one into a
// new tree: that insert invalidates iterators to the lone entry (the one
// difference from std::map's guarantees; ExtentMap holds none across an
// insert). The tree stays until clear(), even when it empties again, so that
// an erase never moves an entry and never invalidates an iterator it did not
// erase. A map loaded from media (one insert per stored extent) of a file
// with one extent stays inline.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace sealfs {

struct Extent {
  uint64_t file_block = 0;
  uint64_t region_block = 0;
  uint64_t length = 0;  // blocks
  bool unwritten = false;
  uint64_t file_end() const { return file_block + length; }
  uint64_t region_end() const { return region_block + length; }
  bool operator==(const Extent&) const = default;
};

class ExtentIndex {
 public:
  using key_type = uint64_t;
  using value_type = std::pair<const uint64_t, Extent>;

 private:
  using Tree = std::map<uint64_t, Extent>;

  template <bool kConst>
  class Iter {
    using Owner = std::conditional_t<kConst, const ExtentIndex, ExtentIndex>;
    using TreeIt = std::conditional_t<kConst, Tree::const_iterator, Tree::iterator>;

   public:
    using iterator_category = std::bidirectional_iterator_tag;
    using value_type = ExtentIndex::value_type;
    using difference_type = std::ptrdiff_t;
    using pointer = std::conditional_t<kConst, const value_type*, value_type*>;
    using reference = std::conditional_t<kConst, const value_type&, value_type&>;

    Iter() = default;
    // iterator -> const_iterator, as std::map's.
    template <bool kOther>
      requires(kConst && !kOther)
    Iter(const Iter<kOther>& other)  // NOLINT(google-explicit-constructor)
        : owner_(other.owner_), tree_it_(other.tree_it_), at_lone_(other.at_lone_) {}

    reference operator*() const { return owner_->tree_ ? *tree_it_ : *owner_->lone_; }
    pointer operator->() const { return &**this; }
    Iter& operator++() {
      if (owner_->tree_) {
        ++tree_it_;
      } else {
        at_lone_ = false;
      }
      return *this;
    }
    Iter operator++(int) {
      Iter was = *this;
      ++*this;
      return was;
    }
    Iter& operator--() {
      if (owner_->tree_) {
        --tree_it_;
      } else {
        at_lone_ = true;
      }
      return *this;
    }
    Iter operator--(int) {
      Iter was = *this;
      --*this;
      return was;
    }
    bool operator==(const Iter& other) const {
      if (owner_ != other.owner_) return false;
      if (owner_ == nullptr) return true;
      return owner_->tree_ ? tree_it_ == other.tree_it_ : at_lone_ == other.at_lone_;
    }

   private:
    friend class ExtentIndex;
    template <bool>
    friend class Iter;
    Iter(Owner* owner, TreeIt tree_it) : owner_(owner), tree_it_(tree_it) {}
    Iter(Owner* owner, bool at_lone) : owner_(owner), at_lone_(at_lone) {}

    Owner* owner_ = nullptr;
    TreeIt tree_it_{};      // tree state
    bool at_lone_ = false;  // inline state: at the lone entry (false: at the end)
  };

 public:
  using iterator = Iter<false>;
  using const_iterator = Iter<true>;

  ExtentIndex() = default;
  ExtentIndex(const ExtentIndex&) = delete;
  ExtentIndex& operator=(const ExtentIndex&) = delete;

  size_t size() const { return tree_ ? tree_->size() : (lone_ ? 1 : 0); }
  bool empty() const { return size() == 0; }
  void clear() {
    tree_.reset();
    lone_.reset();
  }

  iterator begin() { return tree_ ? iterator(this, tree_->begin()) : iterator(this, lone_.has_value()); }
  iterator end() { return tree_ ? iterator(this, tree_->end()) : iterator(this, false); }
  const_iterator begin() const {
    return tree_ ? const_iterator(this, tree_->cbegin()) : const_iterator(this, lone_.has_value());
  }
  const_iterator end() const {
    return tree_ ? const_iterator(this, tree_->cend()) : const_iterator(this, false);
  }

  iterator find(uint64_t key) {
    if (tree_) return iterator(this, tree_->find(key));
    return iterator(this, lone_ && lone_->first == key);
  }
  iterator lower_bound(uint64_t key) {
    if (tree_) return iterator(this, tree_->lower_bound(key));
    return iterator(this, lone_ && lone_->first >= key);
  }
  iterator upper_bound(uint64_t key) {
    if (tree_) return iterator(this, tree_->upper_bound(key));
    return iterator(this, lone_ && lone_->first > key);
  }
  const_iterator lower_bound(uint64_t key) const {
    if (tree_) return const_iterator(this, tree_->lower_bound(key));
    return const_iterator(this, lone_ && lone_->first >= key);
  }
  const_iterator upper_bound(uint64_t key) const {
    if (tree_) return const_iterator(this, tree_->upper_bound(key));
    return const_iterator(this, lone_ && lone_->first > key);
  }

  // As std::map::emplace: no change when `key` is present.
  std::pair<iterator, bool> emplace(uint64_t key, const Extent& extent) {
    if (!tree_ && !lone_) {
      lone_.emplace(key, extent);
      return {iterator(this, true), true};
    }
    if (!tree_) {
      if (lone_->first == key) return {iterator(this, true), false};
      auto tree = std::make_unique<Tree>();
      tree->emplace(lone_->first, lone_->second);
      lone_.reset();
      tree_ = std::move(tree);
    }
    auto [it, added] = tree_->emplace(key, extent);
    return {iterator(this, it), added};
  }
  // The entry after the erased one.
  iterator erase(iterator it) {
    if (tree_) return iterator(this, tree_->erase(it.tree_it_));
    lone_.reset();
    return end();
  }

 private:
  std::unique_ptr<Tree> tree_;
  std::optional<value_type> lone_;
};

}  // namespace sealfs
