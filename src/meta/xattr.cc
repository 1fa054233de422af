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

uint64_t xattr_block_bytes(const XattrList& list) {
  uint64_t total = sizeof(format::DiskXattrBlockHeader);
  for (const auto& e : list) total += entry_bytes(e);
  return total;
}

bool xattr_fits(const XattrList& list) { return xattr_block_bytes(list) <= format::kBlockSize; }

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

}  // namespace sealfs
