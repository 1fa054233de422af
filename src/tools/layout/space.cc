#include "tools/layout/space.h"

#include "media/superblock.h"
#include "tools/layout/common.h"

namespace sealfs::layout {

Result<Space> load_space(const std::string& path) {
  ASSIGN_OR_RETURN(Target target, resolve_target(path));
  Space space;
  if (target.daemon) {
    auto answer = target.daemon->ask(wire::Type::kFreeSpace);
    if (!answer.is_ok()) return answer.status().with_context(path);
    space.from_daemon = true;
    space.block_size = answer->head.block_size;
    space.data_start = answer->head.a;
    space.data_length = answer->head.b;
    for (uint64_t i = 0; i < answer->count; ++i) {
      space.pieces.push_back(answer->record<wire::SpaceRecord>(i));
    }
    return space;
  }
  ASSIGN_OR_RETURN(Image image, open_image(path));
  ASSIGN_OR_RETURN(Superblock sb, read_superblock(image.fs->region()));
  space.block_size = format::kBlockSize;
  space.data_start = block_offset(sb.geometry.data_start);
  space.data_length = block_offset(sb.geometry.data_blocks);
  for (const BlockExtent& e : image.fs->free_extents()) {
    space.pieces.push_back({block_offset(e.start), block_offset(e.count), 0, 0, 0,
                            wire::kSpaceFree});
  }
  for (const QuarantineEntry& q : image.fs->quarantine_entries()) {
    space.pieces.push_back({block_offset(q.extent.start), block_offset(q.extent.count), q.ino,
                            q.holder.start_time, q.holder.pid, wire::kSpaceQuarantined});
  }
  return space;
}

}  // namespace sealfs::layout
