// Holders that outlived the previous daemon (their pins were restored at
// mount, their blocks stay quarantined): a thread waits on each one's pidfd
// and hands the holder to Filesystem::release_holder when it exits, so the
// space comes back without another remount.
#pragma once

#include <atomic>
#include <thread>
#include <vector>

#include "meta/filesystem.h"

namespace sealfs::lease {

class RestoredHolderWatch {
 public:
  // Starts watching every holder in `holders`; those already gone are
  // released before this returns.
  RestoredHolderWatch(Filesystem& fs, const std::vector<Holder>& holders);
  ~RestoredHolderWatch();  // stops the thread; holders still alive stay quarantined
  RestoredHolderWatch(const RestoredHolderWatch&) = delete;
  RestoredHolderWatch& operator=(const RestoredHolderWatch&) = delete;

 private:
  struct Watched {
    Holder holder;
    int pidfd;
  };
  void release(const Holder& holder);
  void loop();

  Filesystem& fs_;
  std::vector<Watched> watched_;
  int stop_fd_ = -1;
  std::thread thread_;
};

}  // namespace sealfs::lease
