// A mount fixture for tests that run the same steps on sealfs and on a tmpfs
// directory (its twin) and compare, some of them as the unprivileged test
// user: SetUp finds that user and makes the twin, both reachable by it;
// TearDown removes the twin. The test mounts sealfs itself (with
// allow_other, so that the user reaches it).
#pragma once

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "mount_fixture.h"

namespace sealfs::itest {

class TmpfsTwinFixture : public MountFixture {
 protected:
  // `tag` names the twin: /dev/shm/sealfs-TAG-XXXXXX.
  explicit TmpfsTwinFixture(std::string tag) : tag_(std::move(tag)) {}

  void SetUp() override {
    MountFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto user = test_user();
    ASSERT_TRUE(user.has_value()) << "SEALFS_TEST_USER (default sealfs-test) must exist";
    user_ = *user;
    ASSERT_EQ(chmod(dir().c_str(), 0755), 0);
    std::string templ = "/dev/shm/sealfs-" + tag_ + "-XXXXXX";
    ASSERT_NE(mkdtemp(templ.data()), nullptr) << std::strerror(errno);
    tmpfs_ = templ;
    ASSERT_EQ(chmod(tmpfs_.c_str(), 0755), 0);
  }
  void TearDown() override {
    if (!tmpfs_.empty()) std::filesystem::remove_all(tmpfs_);
    MountFixture::TearDown();
  }

  TestUser user_{};
  std::string tmpfs_;  // the twin

 private:
  std::string tag_;
};

}  // namespace sealfs::itest
