// InlineBytes: the bytes an inode keeps in DRAM for its slot (see
// Inode::inline_bytes), in one pointer. Almost every cached inode has none
// (only an inline symlink and a staged edit of an inline file do), and a
// std::string costs 32 bytes even when empty (issue 12: 200 bytes of DRAM
// per cached inode). Empty means no heap: clear() and an empty assign free it.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace sealfs {

class InlineBytes {
 public:
  InlineBytes() = default;
  InlineBytes(const InlineBytes&) = delete;
  InlineBytes& operator=(const InlineBytes&) = delete;

  bool empty() const { return bytes_ == nullptr || bytes_->empty(); }
  size_t size() const { return bytes_ == nullptr ? 0 : bytes_->size(); }
  // Valid until the next change. When empty, a pointer to no bytes (never
  // null, so a copy of zero bytes to or from it is defined).
  const char* data() const { return bytes_ == nullptr ? &no_byte_ : bytes_->data(); }
  char* data() { return bytes_ == nullptr ? &no_byte_ : bytes_->data(); }
  std::string_view view() const { return {data(), size()}; }
  std::string str() const { return std::string(view()); }

  void assign(std::string_view bytes) {
    if (bytes.empty()) {
      clear();
    } else if (bytes_ != nullptr) {
      bytes_->assign(bytes);
    } else {
      bytes_ = std::make_unique<std::string>(bytes);
    }
  }
  // New bytes are zeros, as std::string::resize(n, '\0').
  void resize(size_t n) {
    if (n == 0) {
      clear();
      return;
    }
    if (bytes_ == nullptr) bytes_ = std::make_unique<std::string>();
    bytes_->resize(n, '\0');
  }
  void clear() { bytes_.reset(); }
  // Moves the bytes out and leaves this empty.
  std::string take() {
    std::string out = bytes_ == nullptr ? std::string() : std::move(*bytes_);
    bytes_.reset();
    return out;
  }

 private:
  std::unique_ptr<std::string> bytes_;
  // What data() points at when empty: nothing is ever written through it.
  static inline char no_byte_ = 0;
};

}  // namespace sealfs
