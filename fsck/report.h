// What fsck found and did: problems per phase, counts, the exit code, and
// the two renderings (a summary for people, one JSON object for scripts).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sealfs::fsck {

enum class Phase : int {
  kSuperblock = 0,
  kJournal,
  kInodes,
  kExtents,
  kBitmap,
  kDirectories,
  kLinks,
  kOrphans,
};
inline constexpr int kPhaseCount = 8;
const char* phase_name(Phase phase);

// fsck(8) exit codes (bits; fsck.sealfs returns one of them).
inline constexpr int kExitClean = 0;
inline constexpr int kExitCorrected = 1;
inline constexpr int kExitUncorrected = 4;
inline constexpr int kExitOperational = 8;
inline constexpr int kExitUsage = 16;

struct Problem {
  Phase phase = Phase::kSuperblock;
  std::string kind;    // stable identifier, e.g. "leaked_blocks" (docs/fsck.md)
  uint64_t inode = 0;  // 0 = not about one inode
  std::string detail;  // human text
  bool repaired = false;
  // Numbers a script may want besides the text (a kept inode's mode, uid,
  // gid, size): the JSON record's "values" object, absent when empty.
  std::vector<std::pair<std::string, uint64_t>> values;
};

struct PhaseSummary {
  uint64_t problems = 0;
  uint64_t repaired = 0;
  bool ran = false;
};

struct Counts {
  uint64_t inodes_total = 0;
  uint64_t inodes_used = 0;
  uint64_t regular_files = 0;
  uint64_t directories = 0;
  uint64_t symlinks = 0;
  uint64_t other_inodes = 0;
  uint64_t data_blocks = 0;
  uint64_t blocks_referenced = 0;  // by inodes and live holder entries
  uint64_t blocks_marked = 0;      // in the bitmap after the run
  uint64_t orphans = 0;
  uint64_t journal_transactions_replayed = 0;
  // -n: committed transactions a repair would replay (checked as replayed).
  uint64_t journal_transactions_pending = 0;
};

// Problems beyond this are counted but not listed (an image of random bytes
// would otherwise produce millions of lines).
inline constexpr size_t kMaxListedProblems = 2000;

struct Report {
  std::string target;
  bool repair = false;
  std::array<PhaseSummary, kPhaseCount> phases{};
  std::vector<Problem> problems;
  // Informational findings (what -y will do that is not a repair, a state
  // worth knowing): listed, never counted as problems, never change the
  // exit code.
  std::vector<Problem> notes;
  uint64_t problem_count = 0;  // including unlisted ones
  uint64_t repaired_count = 0;
  Counts counts;
  std::string operational_error;  // non-empty: exit 8
  // Problems the verification pass after repair still found.
  uint64_t remaining_after_repair = 0;
  int exit_code = kExitClean;
  bool preen = false;
  // Preen: problems that need a person; nonzero means nothing was repaired.
  uint64_t preen_unsafe = 0;

  void add(Phase phase, std::string kind, uint64_t inode, std::string detail, bool repaired,
           std::vector<std::pair<std::string, uint64_t>> values = {});
  void note(Phase phase, std::string kind, std::string detail);
};

// quiet: only problems, notes, errors and the verdict (no phase lines
// without findings, no counts).
std::string render_text(const Report& report, bool verbose, bool quiet = false);
std::string render_json(const Report& report);

}  // namespace sealfs::fsck
