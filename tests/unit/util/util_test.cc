#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "util/crc32c.h"
#include "util/status.h"
#include "util/units.h"

namespace sealfs {
namespace {

TEST(Crc32c, KnownVectors) {
  // RFC 3720 B.4 test vectors.
  uint8_t zeros[32] = {};
  EXPECT_EQ(crc32c(zeros, 32), 0x8a9136aau);
  uint8_t ones[32];
  std::memset(ones, 0xff, 32);
  EXPECT_EQ(crc32c(ones, 32), 0x62a8ab43u);
  uint8_t inc[32];
  for (int i = 0; i < 32; ++i) inc[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(crc32c(inc, 32), 0x46dd794eu);
  EXPECT_EQ(crc32c("123456789", 9), 0xe3069283u);
}

TEST(Crc32c, ExtendEqualsWhole) {
  std::string s = "the quick brown fox jumps over the lazy dog, twice over";
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    uint32_t a = crc32c(s.data(), cut);
    EXPECT_EQ(crc32c_extend(a, s.data() + cut, s.size() - cut), crc32c(s.data(), s.size()));
  }
}

TEST(Crc32c, HoleCountsAsZero) {
  uint8_t buf[64];
  for (int i = 0; i < 64; ++i) buf[i] = static_cast<uint8_t>(i * 7);
  uint8_t copy[64];
  std::memcpy(copy, buf, 64);
  std::memset(copy + 12, 0, 4);
  EXPECT_EQ(crc32c_with_hole(buf, 64, 12), crc32c(copy, 64));
}

TEST(Status, MapsToErrno) {
  EXPECT_EQ(Status(Code::kNotFound, "x").to_errno(), ENOENT);
  EXPECT_EQ(Status(Code::kCorruption, "x").to_errno(), EUCLEAN);
  EXPECT_EQ(Status(Code::kBadCrc, "x").to_errno(), EBADMSG);
  EXPECT_EQ(Status::from_errno(ENOTTY, "ioctl").to_errno(), ENOTTY);
  EXPECT_EQ(Status::from_errno(ENOENT, "open").code(), Code::kNotFound);
  EXPECT_EQ(Status().to_errno(), 0);
}

TEST(Status, ContextIsPrepended) {
  Status s = Status(Code::kBadCrc, "inode block").with_context("inode 7");
  EXPECT_EQ(s.message(), "inode 7: inode block");
  EXPECT_EQ(s.code(), Code::kBadCrc);
}

// Parses `text`, which must be a valid size.
uint64_t size_of(std::string_view text) {
  auto r = parse_size(text);
  EXPECT_TRUE(r.is_ok()) << text << ": " << r.status().to_string();
  return r.is_ok() ? *r : 0;
}

// The message parse_size refuses `text` with ("" when it accepts it).
std::string refusal(std::string_view text) {
  auto r = parse_size(text);
  if (r.is_ok()) return "";
  EXPECT_EQ(r.status().code(), Code::kInvalid) << text;
  return r.status().message();
}

TEST(Units, ParseSize) {
  EXPECT_EQ(size_of("4096"), 4096u);
  EXPECT_EQ(size_of("64K"), 64u << 10);
  EXPECT_EQ(size_of("64M"), 64u << 20);
  EXPECT_EQ(size_of("64MiB"), 64u << 20);
  EXPECT_EQ(size_of("1G"), 1ull << 30);
  EXPECT_EQ(size_of("1GiB"), 1ull << 30);
  EXPECT_EQ(size_of("2t"), 2ull << 40);
  EXPECT_EQ(size_of("1P"), 1ull << 50);
  for (const char* bad : {"", "-1", "1X", "G", "1.5G", "99999999999999999999", "16777216T",
                          "4096B", "1Gi", "1GIB", "1G ", " 1G", "1GiBB"}) {
    EXPECT_NE(refusal(bad), "") << bad << " was accepted";
  }
  EXPECT_NE(refusal("1X").find("K, M, G, T or P"), std::string::npos) << refusal("1X");
  EXPECT_NE(refusal("1.5G").find("not a whole number"), std::string::npos) << refusal("1.5G");
}

TEST(Units, DecimalLookingUnitsAreRefusedAsAmbiguous) {
  // "64MB" meant 64 MiB without a word; to a user of dd or parted it is
  // 64,000,000 bytes.
  for (const char* text : {"64MB", "16KB", "1GB", "2TB", "1PB", "64mb"}) {
    const std::string why = refusal(text);
    EXPECT_NE(why.find("ambiguous"), std::string::npos) << text << ": " << why;
  }
  EXPECT_NE(refusal("64MB").find("write 64M or 64MiB"), std::string::npos) << refusal("64MB");
  EXPECT_NE(refusal("64mb").find("write 64M or 64MiB"), std::string::npos) << refusal("64mb");
}

TEST(Units, FormatSize) {
  EXPECT_EQ(format_size(4096), "4 KiB");
  EXPECT_EQ(format_size(16u << 20), "16 MiB");
  EXPECT_EQ(format_size(100), "100 B");
}

}  // namespace
}  // namespace sealfs
