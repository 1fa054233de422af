#include "meta/xattr_check.h"

#include <sys/stat.h>

#include <set>
#include <string_view>

#include "meta/posix_acl.h"
#include "sealfs/format.h"

namespace sealfs {

std::vector<XattrProblem> check_xattr_list(const XattrList& list, uint32_t mode) {
  std::vector<XattrProblem> problems;
  std::set<std::string_view> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    const XattrEntry& e = list[i];
    auto bad = [&](const std::string& why) {
      std::string shown = e.name;
      for (char& c : shown) {
        if (c < 32 || c > 126) c = '?';
      }
      problems.push_back({i, "xattr '" + shown + "': " + why});
    };
    if (e.name.find('\0') != std::string::npos) {
      bad("name holds a NUL byte");
      continue;
    }
    if (Status s = check_xattr_name(e.name); !s.is_ok()) {
      bad(s.message());
      continue;
    }
    if (!seen.insert(e.name).second) {
      bad("stored twice");
      continue;
    }
    if (e.value.size() > format::kXattrValueMax) {
      bad("value of " + std::to_string(e.value.size()) + " bytes");
      continue;
    }
    const bool access = e.name == kAclAccessXattr;
    const bool is_default = e.name == kAclDefaultXattr;
    if (!access && !is_default) continue;
    if (S_ISLNK(mode)) {
      bad("an ACL on a symlink");
    } else if (is_default && !S_ISDIR(mode)) {
      bad("a default ACL on a non-directory");
    } else if (auto acl = parse_acl(e.value.data(), e.value.size()); !acl.is_ok()) {
      bad(acl.status().message());
    }
  }
  return problems;
}

}  // namespace sealfs
