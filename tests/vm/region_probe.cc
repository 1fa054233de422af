// region_probe: exercises the region layer on whatever the path really is
// (devdax, a file on a DAX filesystem), for the VM tier where the kernel has
// an emulated NVDIMM. Prints what libpmem2 reported, checks it against what
// the caller expects, then writes, formats, journals and reads back through
// fresh mappings. Exit 0 only if every check held; each failure prints a
// line starting with "probe: FAIL".
//
//   region_probe [--kind K] [--size N] [--alignment N] [--granularity G,G..]
//                [--seed N] [--leave-pending] [--verify-only]
//                [--expect-replayed N] PATH
//
// --verify-only reopens a region the probe already ran on with the same seed
// and checks that the filesystem and the committed transactions are still
// there (after a driver rebind or a reboot of the guest). --leave-pending
// skips the full run's own reopen, so its last transaction is still in the
// log for the next --verify-only to replay (--expect-replayed 1).
#include <getopt.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "media/formatter.h"
#include "media/journal.h"
#include "media/region_pmem2.h"
#include "media/superblock.h"
#include "sealfs/format.h"
#include "util/units.h"

namespace sealfs {
// The probe writes raw patterns into the region, as the unit tests do.
class RegionTestAccess {
 public:
  static RegionWriteKey key() { return {}; }
};

namespace {

struct Expectations {
  std::optional<std::string> kind;
  std::optional<uint64_t> size;
  std::optional<uint64_t> alignment;
  std::vector<std::string> granularities;  // any of these is accepted
};

struct Args {
  Expectations expect;
  uint64_t seed = 1;
  bool verify_only = false;
  bool leave_pending = false;             // full run: end with record 1 in the log
  std::optional<uint64_t> expect_replayed;  // verify: transactions recovery must replay
  std::string path;
};

int g_failures = 0;

void fail(const std::string& what) {
  std::printf("probe: FAIL %s\n", what.c_str());
  ++g_failures;
}

// A byte stream that differs per seed and per offset, so stale bytes left
// by an earlier run (the devdax keeps them) can never pass for this run's.
std::byte pattern_byte(uint64_t seed, uint64_t offset) {
  uint64_t x = (offset + 1) * 0x9e3779b97f4a7c15ull ^ seed * 0xbf58476d1ce4e5b9ull;
  x ^= x >> 31;
  return static_cast<std::byte>(x & 0xff);
}

std::vector<std::byte> make_pattern(uint64_t seed, uint64_t offset, size_t len) {
  std::vector<std::byte> bytes(len);
  for (size_t i = 0; i < len; ++i) bytes[i] = pattern_byte(seed, offset + i);
  return bytes;
}

std::unique_ptr<RegionPmem2> open_region(const std::string& path) {
  auto opened = RegionPmem2::open(path, RegionOptions{});
  if (!opened.is_ok()) {
    fail("open " + path + ": " + opened.status().to_string());
    return nullptr;
  }
  return std::move(opened).value();
}

void report_and_check(const RegionPmem2& region, const Args& args) {
  struct stat st {};
  if (::stat(args.path.c_str(), &st) != 0) fail("stat " + args.path);
  const char* type = S_ISCHR(st.st_mode) ? "chardev" : S_ISREG(st.st_mode) ? "regular" : "other";
  std::printf("probe: path=%s type=%s st_size=%llu\n", args.path.c_str(), type,
              static_cast<unsigned long long>(st.st_size));
  std::printf("probe: kind=%s size=%llu (%s) alignment=%llu granularity=%s description=\"%s\"\n",
              region_kind_name(region.kind()), static_cast<unsigned long long>(region.size()),
              format_size(region.size()).c_str(),
              static_cast<unsigned long long>(region.alignment()),
              granularity_name(region.granularity()), region.description().c_str());

  const Expectations& e = args.expect;
  if (e.kind && *e.kind != region_kind_name(region.kind())) {
    fail("kind " + std::string(region_kind_name(region.kind())) + ", expected " + *e.kind);
  }
  if (e.size && *e.size != region.size()) {
    fail("size " + std::to_string(region.size()) + ", expected " + std::to_string(*e.size));
  }
  if (e.alignment && *e.alignment != region.alignment()) {
    fail("alignment " + std::to_string(region.alignment()) + ", expected " +
         std::to_string(*e.alignment));
  }
  if (!e.granularities.empty()) {
    bool accepted = false;
    for (const std::string& g : e.granularities) {
      accepted = accepted || g == granularity_name(region.granularity());
    }
    if (!accepted) {
      fail(std::string("granularity ") + granularity_name(region.granularity()) +
           " not among the expected ones");
    }
  }
  // A devdax device reports no size through stat: the region must have
  // found it elsewhere (pmem2_source_size), and a regular file's must match.
  if (region.kind() == RegionKind::kDevDax && st.st_size != 0) {
    fail("devdax st_size " + std::to_string(st.st_size) + ", expected 0");
  }
  if (region.kind() != RegionKind::kDevDax &&
      static_cast<uint64_t>(st.st_size) < region.size()) {
    fail("file st_size smaller than the region");
  }
}

// Spans chosen to hit the start, a stretch crossing an alignment boundary in
// the middle, and the very end of the region.
struct Span {
  uint64_t offset;
  size_t len;
};
std::vector<Span> pattern_spans(const Region& region) {
  const uint64_t size = region.size();
  const uint64_t mid = size / 2 / region.alignment() * region.alignment();
  return {{0, 256 * 1024}, {mid - 3000, 64 * 1024 + 17}, {size - 8192 - 5, 8192 + 5}};
}

void write_patterns(RegionPmem2& region, uint64_t seed) {
  auto key = RegionTestAccess::key();
  for (const Span& s : pattern_spans(region)) {
    std::vector<std::byte> bytes = make_pattern(seed, s.offset, s.len);
    region.copy_flush(key, region.writable(key) + s.offset, bytes.data(), s.len);
  }
  // A zeroed hole inside the first span: zero_flush must reach media too.
  region.zero_flush(key, region.writable(key) + 4096, 4096);
  region.drain();
}

void verify_patterns(const Region& region, uint64_t seed) {
  for (const Span& s : pattern_spans(region)) {
    std::vector<std::byte> expected = make_pattern(seed, s.offset, s.len);
    if (s.offset == 0) std::memset(expected.data() + 4096, 0, 4096);
    if (std::memcmp(region.data() + s.offset, expected.data(), s.len) != 0) {
      fail("pattern mismatch at offset " + std::to_string(s.offset));
    }
  }
}

// The transaction lands in the data area, which nothing else writes here.
constexpr size_t kRecordLen = 1000;
uint64_t record_offset(const Superblock& sb, int which) {
  return block_offset(sb.geometry.data_start) + static_cast<uint64_t>(which) * 8192 + 123;
}

JournalArea journal_area(const Superblock& sb) {
  return JournalArea{sb.geometry.journal_start, sb.geometry.journal_blocks};
}

bool commit_record(Journal& journal, const Superblock& sb, uint64_t seed, int which) {
  uint64_t offset = record_offset(sb, which);
  std::vector<std::byte> bytes = make_pattern(seed + 1000 + which, offset, kRecordLen);
  Transaction txn = journal.begin();
  txn.write(offset, bytes.data(), bytes.size());
  Status s = journal.commit(std::move(txn));
  if (!s.is_ok()) fail("commit: " + s.to_string());
  return s.is_ok();
}

void verify_record(const Region& region, const Superblock& sb, uint64_t seed, int which) {
  uint64_t offset = record_offset(sb, which);
  std::vector<std::byte> expected = make_pattern(seed + 1000 + which, offset, kRecordLen);
  if (std::memcmp(region.data() + offset, expected.data(), kRecordLen) != 0) {
    fail("journaled record " + std::to_string(which) + " not at its home location");
  }
}

std::optional<Superblock> read_sb(const Region& region) {
  bool used_backup = true;
  auto sb = read_superblock(region, &used_backup);
  if (!sb.is_ok()) {
    fail("read_superblock: " + sb.status().to_string());
    return std::nullopt;
  }
  if (used_backup) fail("primary superblock bad, backup used");
  return sb.value();
}

std::string label_for(uint64_t seed) { return "probe-" + std::to_string(seed); }

// Reopens everything and checks what a full run left: the superblock with
// this seed's label, and both journaled records at their home locations.
void verify_filesystem(const Args& args, bool check_expectations) {
  auto region = open_region(args.path);
  if (!region) return;
  if (check_expectations) report_and_check(*region, args);
  std::optional<Superblock> sb = read_sb(*region);
  if (!sb) return;
  if (sb->label != label_for(args.seed)) fail("label " + sb->label + ", expected " + label_for(args.seed));
  RecoveryStats stats;
  auto journal = Journal::open(*region, journal_area(*sb), &stats);
  if (!journal.is_ok()) {
    fail("journal open: " + journal.status().to_string());
    return;
  }
  std::printf("probe: reopen replayed=%llu torn_tail=%d\n",
              static_cast<unsigned long long>(stats.replayed_transactions), stats.torn_tail);
  if (stats.torn_tail) fail("torn tail after a clean run");
  if (args.expect_replayed && stats.replayed_transactions != *args.expect_replayed) {
    fail("replayed " + std::to_string(stats.replayed_transactions) + " transactions, expected " +
         std::to_string(*args.expect_replayed));
  }
  verify_record(*region, *sb, args.seed, 0);
  verify_record(*region, *sb, args.seed, 1);
}

void full_run(const Args& args) {
  {
    auto region = open_region(args.path);
    if (!region) return;
    report_and_check(*region, args);
    write_patterns(*region, args.seed);
    verify_patterns(*region, args.seed);
  }
  // A fresh mapping must see what the first one persisted.
  auto region = open_region(args.path);
  if (!region) return;
  verify_patterns(*region, args.seed);
  std::printf("probe: patterns ok\n");

  FormatOptions options;
  options.label = label_for(args.seed);
  auto formatted = Formatter::format(*region, options);
  if (!formatted.is_ok()) {
    fail("format: " + formatted.status().to_string());
    return;
  }
  const Geometry& g = formatted->geometry;
  std::printf("probe: formatted blocks=%llu device_alignment=%llu data_start=%llu inodes=%llu\n",
              static_cast<unsigned long long>(g.region_blocks),
              static_cast<unsigned long long>(g.device_alignment),
              static_cast<unsigned long long>(g.data_start),
              static_cast<unsigned long long>(g.inode_count));
  if (g.device_alignment < region->alignment() ||
      block_offset(g.data_start) % region->alignment() != 0) {
    fail("data area not aligned to the region's alignment");
  }
  {
    auto journal = Journal::open(*region, journal_area(*formatted));
    if (!journal.is_ok()) {
      fail("journal open after format: " + journal.status().to_string());
      return;
    }
    // Record 0 is checkpointed, record 1 left in the log for recovery.
    if (!commit_record(**journal, *formatted, args.seed, 0)) return;
    Status s = (*journal)->checkpoint();
    if (!s.is_ok()) fail("checkpoint: " + s.to_string());
    if (!commit_record(**journal, *formatted, args.seed, 1)) return;
  }
  region.reset();
  // Left pending, record 1 is what a later boot's recovery must replay.
  if (args.leave_pending) return;
  verify_filesystem(args, /*check_expectations=*/false);
  // The identity must be stable across mappings, not just the bytes we wrote.
  auto again = open_region(args.path);
  if (!again) return;
  std::optional<Superblock> sb = read_sb(*again);
  if (sb && sb->uuid != formatted->uuid) fail("uuid changed across reopen");
}

// A size or count as util/units.h reads it; nullopt, after saying why, when
// it is not one.
std::optional<uint64_t> size_arg(const char* text) {
  auto size = parse_size(text);
  if (!size.is_ok()) {
    std::fprintf(stderr, "region_probe: %s\n", size.status().message().c_str());
    return std::nullopt;
  }
  return *size;
}

bool parse_args(int argc, char** argv, Args* args) {
  enum { kKind = 256, kSize, kAlignment, kGranularity, kSeed, kVerifyOnly, kLeavePending,
         kExpectReplayed };
  static const option kOptions[] = {
      {"kind", required_argument, nullptr, kKind},
      {"size", required_argument, nullptr, kSize},
      {"alignment", required_argument, nullptr, kAlignment},
      {"granularity", required_argument, nullptr, kGranularity},
      {"seed", required_argument, nullptr, kSeed},
      {"verify-only", no_argument, nullptr, kVerifyOnly},
      {"leave-pending", no_argument, nullptr, kLeavePending},
      {"expect-replayed", required_argument, nullptr, kExpectReplayed},
      {nullptr, 0, nullptr, 0},
  };
  int c;
  while ((c = getopt_long(argc, argv, "", kOptions, nullptr)) != -1) {
    switch (c) {
      case kKind: args->expect.kind = optarg; break;
      case kSize:
        args->expect.size = size_arg(optarg);
        if (!args->expect.size) return false;
        break;
      case kAlignment:
        args->expect.alignment = size_arg(optarg);
        if (!args->expect.alignment) return false;
        break;
      case kGranularity: {
        std::string list = optarg;
        size_t start = 0;
        while (start <= list.size()) {
          size_t comma = list.find(',', start);
          if (comma == std::string::npos) comma = list.size();
          args->expect.granularities.push_back(list.substr(start, comma - start));
          start = comma + 1;
        }
        break;
      }
      case kSeed: {
        auto seed = size_arg(optarg);
        if (!seed) return false;
        args->seed = *seed;
        break;
      }
      case kVerifyOnly: args->verify_only = true; break;
      case kLeavePending: args->leave_pending = true; break;
      case kExpectReplayed:
        args->expect_replayed = size_arg(optarg);
        if (!args->expect_replayed) return false;
        break;
      default: return false;
    }
  }
  if (optind + 1 != argc) return false;
  args->path = argv[optind];
  return true;
}

}  // namespace
}  // namespace sealfs

int main(int argc, char** argv) {
  sealfs::Args args;
  if (!sealfs::parse_args(argc, argv, &args)) {
    std::fprintf(stderr,
                 "usage: region_probe [--kind K] [--size N] [--alignment N] "
                 "[--granularity G,G] [--seed N] [--leave-pending] [--verify-only] "
                 "[--expect-replayed N] PATH\n");
    return 2;
  }
  if (args.verify_only) {
    sealfs::verify_filesystem(args, /*check_expectations=*/true);
  } else {
    sealfs::full_run(args);
  }
  std::printf("probe: %s %s (%d failures)\n", sealfs::g_failures == 0 ? "OK" : "FAILED",
              args.path.c_str(), sealfs::g_failures);
  return sealfs::g_failures == 0 ? 0 : 1;
}
