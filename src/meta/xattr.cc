#include "meta/xattr.h"

#include <algorithm>
#include <cstring>

#include "meta/posix_acl.h"
#include "sealfs/format.h"
#include "util/crc32c.h"

namespace sealfs {

namespace {
uint64_t entry_bytes(const XattrEntry& e) {
  return (sizeof(format::DiskXattrEntry) + e.name.size() + e.value.size() + 3) & ~uint64_t{3};
}
bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}
}  // namespace

XattrList::iterator find_xattr(XattrList& list, std::string_view name) {
  return std::find_if(list.begin(), list.end(), [&](const XattrEntry& e) { return e.name == name; });
}

Status check_xattr_name(std::string_view name) {
  if (name.size() > format::kNameMax) return Status(Code::kRange, "xattr name too long");
  if (name == kAclAccessXattr || name == kAclDefaultXattr) return Status::ok();
  for (std::string_view ns : {"user.", "trusted.", "security."}) {
    if (starts_with(name, ns)) {
      if (name.size() == ns.size()) return Status(Code::kInvalid, "empty xattr name");
      return Status::ok();
    }
  }
  if (name.empty()) return Status(Code::kInvalid, "empty xattr name");
  return Status(Code::kNotSupported, "xattr namespace not supported: " + std::string(name));
}

void encode_xattr_block(std::byte* block, uint64_t owner, const XattrList& list) {
  std::memset(block, 0, format::kBlockSize);
  uint64_t pos = sizeof(format::DiskXattrBlockHeader);
  for (const auto& e : list) {
    format::DiskXattrEntry d{};
    d.name_len = static_cast<uint8_t>(e.name.size());
    d.value_len.set(static_cast<uint16_t>(e.value.size()));
    std::memcpy(block + pos, &d, sizeof(d));
    std::memcpy(block + pos + sizeof(d), e.name.data(), e.name.size());
    if (!e.value.empty()) {
      std::memcpy(block + pos + sizeof(d) + e.name.size(), e.value.data(), e.value.size());
    }
    pos += entry_bytes(e);
  }
  format::DiskXattrBlockHeader h{};
  h.magic.set(format::kXattrBlockMagic);
  h.owner_ino.set(owner);
  h.count.set(static_cast<uint32_t>(list.size()));
  h.used.set(static_cast<uint32_t>(pos - sizeof(h)));
  std::memcpy(block, &h, sizeof(h));
  h.crc.set(crc32c_with_hole(block, format::kBlockSize, offsetof(format::DiskXattrBlockHeader, crc)));
  std::memcpy(block, &h, sizeof(h));
}

Result<XattrList> decode_xattr_block(const std::byte* block, uint64_t owner) {
  format::DiskXattrBlockHeader h;
  std::memcpy(&h, block, sizeof(h));
  if (h.magic.get() != format::kXattrBlockMagic) {
    return Status(Code::kCorruption, "xattr block: bad magic");
  }
  if (crc32c_with_hole(block, format::kBlockSize, offsetof(format::DiskXattrBlockHeader, crc)) !=
      h.crc.get()) {
    return Status(Code::kBadCrc, "xattr block: bad crc");
  }
  if (h.owner_ino.get() != owner) return Status(Code::kCorruption, "xattr block: wrong owner");
  uint64_t end = sizeof(h) + uint64_t{h.used.get()};
  if (end > format::kBlockSize) return Status(Code::kCorruption, "xattr block: used too large");
  XattrList list;
  uint64_t pos = sizeof(h);
  for (uint32_t i = 0; i < h.count.get(); ++i) {
    // Entries are padded, so pos can step past `end`: compare before
    // subtracting, or the unsigned difference wraps and the check passes.
    if (pos > end || end - pos < sizeof(format::DiskXattrEntry)) {
      return Status(Code::kCorruption, "xattr block: entry past the end");
    }
    format::DiskXattrEntry d;
    std::memcpy(&d, block + pos, sizeof(d));
    XattrEntry e;
    uint64_t payload = uint64_t{d.name_len} + d.value_len.get();
    if (d.name_len == 0 || end - pos - sizeof(d) < payload) {
      return Status(Code::kCorruption, "xattr block: entry past the end");
    }
    e.name.assign(reinterpret_cast<const char*>(block + pos + sizeof(d)), d.name_len);
    const auto* v = reinterpret_cast<const uint8_t*>(block + pos + sizeof(d) + d.name_len);
    e.value.assign(v, v + d.value_len.get());
    pos += entry_bytes(e);
    list.push_back(std::move(e));
  }
  return list;
}

std::vector<uint8_t> encode_xattr_stream(const XattrList& list) {
  std::vector<uint8_t> out;
  for (const auto& e : list) {
    format::DiskXattrChainEntry d{};
    d.name_len = static_cast<uint8_t>(e.name.size());
    d.value_len.set(static_cast<uint32_t>(e.value.size()));
    const auto* h = reinterpret_cast<const uint8_t*>(&d);
    out.insert(out.end(), h, h + sizeof(d));
    out.insert(out.end(), e.name.begin(), e.name.end());
    out.insert(out.end(), e.value.begin(), e.value.end());
  }
  return out;
}

uint64_t xattr_chain_blocks_for(uint64_t stream_bytes) {
  return (stream_bytes + format::kXattrChainPayload - 1) / format::kXattrChainPayload;
}

void encode_xattr_chain_block(std::byte* block, uint64_t owner, uint32_t index, uint64_t next,
                              const uint8_t* payload, uint32_t used) {
  std::memset(block, 0, format::kBlockSize);
  format::DiskXattrChainHeader h{};
  h.magic.set(format::kXattrChainMagic);
  h.owner_ino.set(owner);
  h.next_block.set(next);
  h.index.set(index);
  h.used.set(used);
  std::memcpy(block, &h, sizeof(h));
  if (used != 0) std::memcpy(block + sizeof(h), payload, used);
  h.crc.set(crc32c_with_hole(block, format::kBlockSize, offsetof(format::DiskXattrChainHeader, crc)));
  std::memcpy(block, &h, sizeof(h));
}

namespace {

Status chain_error(Code code, uint64_t block, const std::string& what) {
  return Status(code, "xattr block " + std::to_string(block) + ": " + what);
}

Result<XattrList> decode_xattr_stream(const std::vector<uint8_t>& s) {
  XattrList list;
  size_t pos = 0;
  while (pos < s.size()) {
    format::DiskXattrChainEntry d;
    if (s.size() - pos < sizeof(d)) return Status(Code::kCorruption, "xattrs: entry cut off");
    std::memcpy(&d, s.data() + pos, sizeof(d));
    pos += sizeof(d);
    uint64_t value_len = d.value_len.get();
    if (d.name_len == 0) return Status(Code::kCorruption, "xattrs: empty name");
    if (value_len > format::kXattrValueMax) {
      return Status(Code::kCorruption, "xattrs: value of " + std::to_string(value_len) + " bytes");
    }
    if (s.size() - pos < d.name_len + value_len) {
      return Status(Code::kCorruption, "xattrs: entry cut off");
    }
    XattrEntry e;
    e.name.assign(reinterpret_cast<const char*>(s.data() + pos), d.name_len);
    pos += d.name_len;
    e.value.assign(s.begin() + static_cast<ptrdiff_t>(pos),
                   s.begin() + static_cast<ptrdiff_t>(pos + value_len));
    pos += value_len;
    list.push_back(std::move(e));
  }
  return list;
}

}  // namespace

Result<XattrStore> read_xattr_store(uint64_t first, uint64_t owner, const XattrBlockReader& read) {
  XattrStore store;
  const std::byte* b = read(first);
  if (b == nullptr) return chain_error(Code::kCorruption, first, "outside the data area");
  format::DiskXattrChainHeader h;
  std::memcpy(&h, b, sizeof(h));
  if (h.magic.get() == format::kXattrBlockMagic) {
    auto list = decode_xattr_block(b, owner);
    if (!list.is_ok()) return list.status().with_context("xattr block " + std::to_string(first));
    store.legacy = true;
    store.blocks = {first};
    store.list = std::move(*list);
    return store;
  }
  std::vector<uint8_t> stream;
  uint64_t at = first;
  for (uint32_t index = 0;; ++index) {
    if (index == format::kXattrChainMaxBlocks) {
      return chain_error(Code::kCorruption, at, "chain longer than " +
                                                    std::to_string(format::kXattrChainMaxBlocks) +
                                                    " blocks");
    }
    b = read(at);
    if (b == nullptr) return chain_error(Code::kCorruption, at, "outside the data area");
    std::memcpy(&h, b, sizeof(h));
    if (h.magic.get() != format::kXattrChainMagic) {
      return chain_error(Code::kCorruption, at, "bad magic");
    }
    uint32_t crc =
        crc32c_with_hole(b, format::kBlockSize, offsetof(format::DiskXattrChainHeader, crc));
    if (crc != h.crc.get()) return chain_error(Code::kBadCrc, at, "bad crc");
    if (h.owner_ino.get() != owner) return chain_error(Code::kCorruption, at, "wrong owner");
    if (h.index.get() != index) {
      return chain_error(Code::kCorruption, at,
                         "at chain position " + std::to_string(index) + " but says " +
                             std::to_string(h.index.get()));
    }
    uint32_t used = h.used.get();
    uint64_t next = h.next_block.get();
    if (used > format::kXattrChainPayload || (next != 0 && used != format::kXattrChainPayload)) {
      return chain_error(Code::kCorruption, at, "used " + std::to_string(used));
    }
    const auto* payload = reinterpret_cast<const uint8_t*>(b + sizeof(h));
    stream.insert(stream.end(), payload, payload + used);
    store.blocks.push_back(at);
    if (next == 0) break;
    at = next;
  }
  auto list = decode_xattr_stream(stream);
  if (!list.is_ok()) return list.status().with_context("xattr chain at " + std::to_string(first));
  store.list = std::move(*list);
  return store;
}

std::vector<uint64_t> xattr_chain_blocks(uint64_t first, uint64_t owner,
                                         const XattrBlockReader& read) {
  std::vector<uint64_t> blocks;
  uint64_t at = first;
  while (at != 0 && blocks.size() < format::kXattrChainMaxBlocks) {
    const std::byte* b = read(at);
    if (b == nullptr) break;
    format::DiskXattrChainHeader h;
    std::memcpy(&h, b, sizeof(h));
    if (blocks.empty() && h.magic.get() == format::kXattrBlockMagic) return {first};
    if (h.magic.get() != format::kXattrChainMagic || h.owner_ino.get() != owner ||
        h.index.get() != blocks.size()) {
      break;
    }
    blocks.push_back(at);
    at = h.next_block.get();
  }
  if (blocks.empty()) blocks.push_back(first);
  return blocks;
}

}  // namespace sealfs
