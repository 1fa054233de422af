// Extended attributes: namespace rules and the on-media codecs
// (docs/format.md §9): the chain of "SXT2" blocks every inode writes now,
// and the single "SXTR" block of images from before
// kFeatureIncompatXattrChain, still read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
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
// two POSIX ACLs, unknown), kRange for names longer than 255 bytes,
// kInvalid for an empty name.
Status check_xattr_name(std::string_view name);

// An inode's attributes as found on media.
struct XattrStore {
  std::vector<uint64_t> blocks;  // the chain in order, or the one legacy block
  bool legacy = false;           // a single "SXTR" block
  XattrList list;
};
// The bytes of a data-area block, or nullptr when `block` is outside it.
using XattrBlockReader = std::function<const std::byte*(uint64_t block)>;
// Walks the attributes starting at `first` (an inode's xattr_block) and
// decodes them. kCorruption or kBadCrc, naming the block, for anything that
// does not check: magic, crc, owner, chain position, a chain longer than
// kXattrChainMaxBlocks, a short block before the last, an entry cut off.
Result<XattrStore> read_xattr_store(uint64_t first, uint64_t owner, const XattrBlockReader& read);

// The blocks of the chain at `first` by their headers alone (no crc, no
// decoding), as far as they check: for the mount's block cross-check and
// for freeing an inode. Always includes `first`.
std::vector<uint64_t> xattr_chain_blocks(uint64_t first, uint64_t owner,
                                         const XattrBlockReader& read);

// The stream a chain carries, and how many blocks it takes (0 for none).
std::vector<uint8_t> encode_xattr_stream(const XattrList& list);
uint64_t xattr_chain_blocks_for(uint64_t stream_bytes);
// One chain block: header, `used` payload bytes, zeros after; crc sealed.
void encode_xattr_chain_block(std::byte* block, uint64_t owner, uint32_t index, uint64_t next,
                              const uint8_t* payload, uint32_t used);

// The legacy single block (at most 4 KiB of attributes, values < 64 KiB).
// The encoder stays for tests that build images of that age.
void encode_xattr_block(std::byte* block, uint64_t owner, const XattrList& list);
Result<XattrList> decode_xattr_block(const std::byte* block, uint64_t owner);

}  // namespace sealfs
