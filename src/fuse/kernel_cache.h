// Telling the kernel to forget what it cached about an inode, for the
// changes the daemon makes without the kernel asking for them (docs/daemon.md
// "Caching and coherence": the kernel trusts cached attributes for
// attr_timeout, a day by default).
#pragma once

#include <fuse_lowlevel.h>

#include <cstdint>

#include "lease/lease_engine.h"

namespace sealfs::fuse {

// The inode's attributes only, never its pages: safe from a request thread
// (it waits for no page lock, which a READ waiting on the daemon may hold).
// A no-op before the session exists and for an inode the kernel does not
// know.
void drop_cached_attributes(fuse_session* session, uint64_t ino);

// What the lease engine changes behind the kernel's back (a grant that
// allocates, an EXTEND) reaches the kernel as a dropped attribute cache.
// Outlives the engine; its session is set before the engine starts.
class KernelCacheObserver final : public lease::LeaseObserver {
 public:
  void set_session(fuse_session* session) { session_ = session; }
  void attributes_changed(uint64_t ino) override { drop_cached_attributes(session_, ino); }

 private:
  fuse_session* session_ = nullptr;
};

}  // namespace sealfs::fuse
