// util/cpu_flush: which lines a range covers, and that the chosen
// instruction runs over a real buffer without changing its bytes.
#include "util/cpu_flush.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace sealfs::cpu_flush {
namespace {

std::vector<uintptr_t> lines_visited(const void* addr, size_t len) {
  std::vector<uintptr_t> lines;
  for_each_line(addr, len, [&](uintptr_t line) { lines.push_back(line); });
  return lines;
}

alignas(kCacheLine) char g_buffer[16 * kCacheLine];

TEST(CpuFlushTest, AnUnalignedRangeVisitsEveryLineItTouchesOnce) {
  // From 3 bytes before the end of line 1 to 5 bytes into line 4.
  const char* start = g_buffer + 2 * kCacheLine - 3;
  const size_t len = 3 + 2 * kCacheLine + 5;
  auto lines = lines_visited(start, len);
  ASSERT_EQ(lines.size(), 4u);
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i], reinterpret_cast<uintptr_t>(g_buffer + (i + 1) * kCacheLine)) << i;
  }
  EXPECT_EQ(lines_covering(start, len), lines.size());
}

TEST(CpuFlushTest, ARangeEndingOnALineBoundaryStopsThere) {
  auto lines = lines_visited(g_buffer + kCacheLine, 2 * kCacheLine);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines.back(), reinterpret_cast<uintptr_t>(g_buffer + 2 * kCacheLine));
  EXPECT_EQ(lines_covering(g_buffer + kCacheLine, 2 * kCacheLine), 2u);
}

TEST(CpuFlushTest, OneByteAndEmptyRanges) {
  auto one = lines_visited(g_buffer + 5 * kCacheLine + 63, 1);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0], reinterpret_cast<uintptr_t>(g_buffer + 5 * kCacheLine));
  EXPECT_EQ(lines_covering(g_buffer + 5 * kCacheLine + 63, 1), 1u);
  // Two bytes across a boundary are two lines.
  EXPECT_EQ(lines_visited(g_buffer + 5 * kCacheLine + 63, 2).size(), 2u);
  EXPECT_EQ(lines_covering(g_buffer + 5 * kCacheLine + 63, 2), 2u);
  // Nothing at all for an empty range, even one inside a line.
  EXPECT_TRUE(lines_visited(g_buffer + 7, 0).empty());
  EXPECT_EQ(lines_covering(g_buffer + 7, 0), 0u);
}

TEST(CpuFlushTest, EveryOffsetAndLengthAgreesWithTheByteByByteCount) {
  for (size_t offset = 0; offset < 2 * kCacheLine; ++offset) {
    for (size_t len = 0; len < 4 * kCacheLine; ++len) {
      std::vector<bool> touched(16, false);
      for (size_t b = offset; b < offset + len; ++b) touched[b / kCacheLine] = true;
      size_t expected = 0;
      for (bool t : touched) expected += t;
      ASSERT_EQ(lines_visited(g_buffer + offset, len).size(), expected) << offset << "+" << len;
      ASSERT_EQ(lines_covering(g_buffer + offset, len), expected) << offset << "+" << len;
    }
  }
}

TEST(CpuFlushTest, TheBestInstructionWritesBackWithoutChangingBytes) {
  const Instruction best = best_instruction();
#if defined(__x86_64__)
  EXPECT_NE(best, Instruction::kNone) << "an x86-64 CPU without even clflush";
#endif
  EXPECT_EQ(best, best_instruction());  // detected once
  std::vector<char> data(3 * kCacheLine + 17);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  const std::vector<char> before = data;
  write_back(best, data.data() + 1, data.size() - 1);
  store_fence();
  EXPECT_EQ(data, before);
  EXPECT_STRNE(instruction_name(best), "?");
}

}  // namespace
}  // namespace sealfs::cpu_flush
