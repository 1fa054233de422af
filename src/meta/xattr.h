// Extended attributes: namespace rules and the one-block-per-inode codec.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/status.h"

namespace sealfs {

struct XattrEntry {
  std::string name;  // full name with namespace prefix
  std::vector<uint8_t> value;
};
using XattrList = std::vector<XattrEntry>;

XattrList::iterator find_xattr(XattrList& list, std::string_view name);

// kNotSupported for namespaces we do not store (system.* other than the
// two POSIX ACLs, unknown),
// kRange for names longer than 255 bytes, kInvalid for an empty name.
Status check_xattr_name(std::string_view name);
// Bytes the list takes in a block (header included).
uint64_t xattr_block_bytes(const XattrList& list);
bool xattr_fits(const XattrList& list);
void encode_xattr_block(std::byte* block, uint64_t owner, const XattrList& list);
Result<XattrList> decode_xattr_block(const std::byte* block, uint64_t owner);

}  // namespace sealfs
