#include "meta/posix_acl.h"

#include <cstring>

namespace sealfs {

namespace {

constexpr uint32_t kXattrVersion = 2;     // POSIX_ACL_XATTR_VERSION
constexpr uint32_t kUndefinedId = ~0u;    // ACL_UNDEFINED_ID: no uid or gid maps to it
constexpr size_t kHeaderBytes = 4;
constexpr size_t kEntryBytes = 8;
constexpr uint16_t kPermBits = 07;

uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t load32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}
void store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void store32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

Status invalid(const char* why) { return Status(Code::kInvalid, std::string("ACL: ") + why); }

// posix_acl_valid: the entries come in tag order, with exactly one owner,
// owning group and other entry, and a mask whenever a named entry exists.
Status check_order(const Acl& acl) {
  enum State { kWantUserObj, kUsers, kGroups, kWantOther, kDone };
  State state = kWantUserObj;
  bool named = false;
  for (const AclEntry& e : acl) {
    if ((e.perm & ~kPermBits) != 0) return invalid("unknown permission bits");
    switch (e.tag) {
      case AclEntry::kUserObj:
        if (state != kWantUserObj) return invalid("owner entry out of place");
        state = kUsers;
        break;
      case AclEntry::kUser:
        if (state != kUsers) return invalid("named user out of place");
        if (e.id == kUndefinedId) return invalid("named user without an id");
        named = true;
        break;
      case AclEntry::kGroupObj:
        if (state != kUsers) return invalid("owning group out of place");
        state = kGroups;
        break;
      case AclEntry::kGroup:
        if (state != kGroups) return invalid("named group out of place");
        if (e.id == kUndefinedId) return invalid("named group without an id");
        named = true;
        break;
      case AclEntry::kMask:
        if (state != kGroups) return invalid("mask out of place");
        state = kWantOther;
        break;
      case AclEntry::kOther:
        if (state == kWantOther || (state == kGroups && !named)) {
          state = kDone;
          break;
        }
        return invalid(state == kGroups ? "named entries without a mask" : "other out of place");
      default:
        return invalid("unknown tag");
    }
  }
  return state == kDone ? Status::ok() : invalid("incomplete");
}

}  // namespace

Result<Acl> parse_acl(const void* value, size_t size) {
  if (size < kHeaderBytes || (size - kHeaderBytes) % kEntryBytes != 0) {
    return invalid("size is not a header and whole entries");
  }
  const auto* p = static_cast<const uint8_t*>(value);
  if (load32(p) != kXattrVersion) return invalid("unknown version");
  Acl acl((size - kHeaderBytes) / kEntryBytes);
  for (size_t i = 0; i < acl.size(); ++i) {
    const uint8_t* e = p + kHeaderBytes + i * kEntryBytes;
    acl[i].tag = load16(e);
    acl[i].perm = load16(e + 2);
    acl[i].id = load32(e + 4);
  }
  if (acl.empty()) return acl;
  RETURN_IF_ERROR(check_order(acl));
  return acl;
}

std::vector<uint8_t> encode_acl(const Acl& acl) {
  std::vector<uint8_t> out(kHeaderBytes + acl.size() * kEntryBytes);
  store32(out.data(), kXattrVersion);
  for (size_t i = 0; i < acl.size(); ++i) {
    uint8_t* e = out.data() + kHeaderBytes + i * kEntryBytes;
    store16(e, acl[i].tag);
    store16(e + 2, acl[i].perm);
    // The base entries carry no id: the kernel writes ACL_UNDEFINED_ID.
    bool named = acl[i].tag == AclEntry::kUser || acl[i].tag == AclEntry::kGroup;
    store32(e + 4, named ? acl[i].id : kUndefinedId);
  }
  return out;
}

uint32_t acl_mode_bits(const Acl& acl) {
  uint32_t owner = 0, group = 0, other = 0;
  bool masked = false;
  for (const AclEntry& e : acl) {
    if (e.tag == AclEntry::kUserObj) owner = e.perm;
    if (e.tag == AclEntry::kGroupObj && !masked) group = e.perm;
    if (e.tag == AclEntry::kMask) masked = true, group = e.perm;
    if (e.tag == AclEntry::kOther) other = e.perm;
  }
  return (owner << 6) | (group << 3) | other;
}

bool acl_is_mode(const Acl& acl) {
  for (const AclEntry& e : acl) {
    if (e.tag == AclEntry::kUser || e.tag == AclEntry::kGroup || e.tag == AclEntry::kMask) {
      return false;
    }
  }
  return true;
}

void acl_apply_mode(Acl& acl, uint32_t mode) {
  AclEntry* group_obj = nullptr;
  AclEntry* mask = nullptr;
  for (AclEntry& e : acl) {
    if (e.tag == AclEntry::kUserObj) e.perm = (mode >> 6) & kPermBits;
    if (e.tag == AclEntry::kGroupObj) group_obj = &e;
    if (e.tag == AclEntry::kMask) mask = &e;
    if (e.tag == AclEntry::kOther) e.perm = mode & kPermBits;
  }
  // The group bits of the mode are the mask when there is one: the owning
  // group's own entry keeps what it had.
  AclEntry* group_class = mask != nullptr ? mask : group_obj;
  if (group_class != nullptr) group_class->perm = (mode >> 3) & kPermBits;
}

uint32_t acl_create_masq(Acl& acl, uint32_t mode) {
  AclEntry* group_obj = nullptr;
  AclEntry* mask = nullptr;
  for (AclEntry& e : acl) {
    if (e.tag == AclEntry::kUserObj) {
      e.perm &= (mode >> 6) & kPermBits;
      mode &= ~(uint32_t{07} << 6) | (uint32_t{e.perm} << 6);
    } else if (e.tag == AclEntry::kOther) {
      e.perm &= mode & kPermBits;
      mode &= ~uint32_t{07} | e.perm;
    } else if (e.tag == AclEntry::kGroupObj) {
      group_obj = &e;
    } else if (e.tag == AclEntry::kMask) {
      mask = &e;
    }
  }
  AclEntry* group_class = mask != nullptr ? mask : group_obj;
  if (group_class != nullptr) {
    group_class->perm &= (mode >> 3) & kPermBits;
    mode &= ~(uint32_t{07} << 3) | (uint32_t{group_class->perm} << 3);
  }
  return mode;
}

}  // namespace sealfs
