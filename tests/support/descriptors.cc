#include "support/descriptors.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

namespace sealfs::testing_support {

void with_no_free_descriptor(const std::function<void()>& f) {
  struct rlimit saved {};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  int probe = dup(0);
  ASSERT_GE(probe, 0);
  close(probe);
  struct rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(probe);  // the lowest free descriptor is now over the limit
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  f();
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

}  // namespace sealfs::testing_support
