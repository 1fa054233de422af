// Named sync points for race tests (RocksDB's SyncPoint, reduced).
//
// Production code marks a place with SEALFS_SYNC_POINT("layer.event.where");
// a test arms a callback on that name to pause, count or reorder threads
// there. Compiled to nothing unless SEALFS_SYNC_POINTS is defined (meson
// option sync_points). Callbacks run on the thread that reaches the point,
// with whatever locks it holds: the point's comment says which.
#pragma once

#include <functional>
#include <string>

namespace sealfs::sync_point {

void arm(const std::string& name, std::function<void()> callback);
void disarm(const std::string& name);
void disarm_all();
// Runs the callback armed on `name`, if any.
void reached(const char* name);

}  // namespace sealfs::sync_point

#ifdef SEALFS_SYNC_POINTS
#define SEALFS_SYNC_POINT(name) ::sealfs::sync_point::reached(name)
#else
#define SEALFS_SYNC_POINT(name) \
  do {                          \
  } while (0)
#endif
