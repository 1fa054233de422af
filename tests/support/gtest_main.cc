// gtest main for every sealfs test binary. With SEALFS_REQUIRE_ALL=1 (CI) a
// skipped test is reported as a failure: nothing may pass by skipping.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

namespace {

class SkipIsFailure : public testing::EmptyTestEventListener {
  void OnTestPartResult(const testing::TestPartResult& result) override {
    if (result.skipped()) {
      std::fprintf(stderr, "SEALFS_REQUIRE_ALL: skip is a failure here: %s\n",
                   result.message() ? result.message() : "");
      failed = true;
    }
  }
  void OnTestEnd(const testing::TestInfo& info) override {
    if (failed) {
      std::fprintf(stderr, "SEALFS_REQUIRE_ALL: %s.%s was skipped\n", info.test_suite_name(),
                   info.name());
      any_failed = true;
    }
    failed = false;
  }

 public:
  bool failed = false;
  bool any_failed = false;
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  const char* require = std::getenv("SEALFS_REQUIRE_ALL");
  SkipIsFailure* listener = nullptr;
  if (require != nullptr && std::strcmp(require, "0") != 0 && *require != '\0') {
    listener = new SkipIsFailure;
    testing::UnitTest::GetInstance()->listeners().Append(listener);
  }
  int rc = RUN_ALL_TESTS();
  if (listener != nullptr && listener->any_failed) return 1;
  return rc;
}
