// Preen (-p, -a): the repairs fsck.sealfs makes unattended at boot, as
// e2fsck -p does. A repair is preen-safe when it loses nothing a user made
// and needs no judgement: it finishes what the daemon would have done at
// its next mount (journal replay, orphans), or corrects accounting from
// what the metadata itself says (bitmap, counts, the standby copies).
// Everything else (clearing an inode, dropping extents or entries, moving
// files to lost+found) waits for a person: preen then changes nothing and
// exits 4. The table is in docs/fsck.md.
#pragma once

#include <string_view>

namespace sealfs::fsck {

bool preen_safe(std::string_view kind);

}  // namespace sealfs::fsck
