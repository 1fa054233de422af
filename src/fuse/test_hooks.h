// Race tests across processes: the daemon's named sync points, armed from
// the environment (only in builds with sync points, meson option
// sync_points; a no-op otherwise).
//
//   SEALFS_TEST_SYNC_DIR=DIR SEALFS_TEST_SYNC_POINTS=name1,name2 sealfs ...
//
// Each named point pauses the first thread that reaches it, once: the
// daemon creates DIR/<name>.reached, then waits until DIR/<name>.go exists.
// A test thereby holds the daemon at a known place while it starts the
// competing operation, without sleeps. `name@N` pauses the N-th thread to
// reach the point instead (the second write of a mount, say); the files are
// still DIR/<name>.reached and DIR/<name>.go.
#pragma once

namespace sealfs::fuse {

void arm_sync_points_from_env();

}  // namespace sealfs::fuse
