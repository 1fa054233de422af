// A lease fixture holding one direct mapping with reserved address space
// after it (sealfs_map_reserve), for the tests of sealfs_extend; TearDown
// unmaps it and closes the file.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "lease_fixture.h"
#include "sealfs/sealfs.h"

namespace sealfs::itest {

class ReservedMapFixture : public LeaseFixture {
 protected:
  void TearDown() override {
    if (map_ != nullptr) sealfs_unmap(map_);
    if (fd_ >= 0) close(fd_);
    LeaseFixture::TearDown();
  }
  // Opens `name` read-write and maps [0, length) with `reserve` bytes of
  // address space.
  void map_here(const std::string& name, uint64_t length, uint64_t reserve) {
    fd_ = open(path(name).c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd_, 0) << std::strerror(errno);
    int r = sealfs_map_reserve(fd_, 0, length, reserve, PROT_READ | PROT_WRITE, 0, &map_);
    ASSERT_EQ(r, 0) << sealfs_last_error();
  }

  int fd_ = -1;
  struct sealfs_map* map_ = nullptr;
};

}  // namespace sealfs::itest
